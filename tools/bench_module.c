/* SPDX-License-Identifier: MIT */
/*
 * bench_module.c - loads the GPU part of fp8kv-bench: the module
 * fp8kv_bench_NAME.so for the backend NAME[:N], from the absolute
 * directories of FP8KV_MODULE_PATH, then the install directory, as the
 * library finds backend modules.  The variable is a trust boundary (a
 * module's constructors run when it is loaded), so setuid and setgid
 * programs ignore it and relative directories do not count.
 *
 * The module is never unloaded: the GPU code stays mapped until the
 * program exits, as it did when it was linked into fp8kv-bench.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_device.h"

static const char *module_path(void)
{
#ifdef HAVE_SECURE_GETENV
	return secure_getenv("FP8KV_MODULE_PATH");
#else
	const int privileged = getuid() != geteuid() || getgid() != getegid();
	return privileged ? NULL : getenv("FP8KV_MODULE_PATH");
#endif
}

/* dir (dir_len bytes) / file: 1 when absent, else 0 with the device in
 * *dev or the reason it could not be had in why. */
static int try_dir(const char *dir, size_t dir_len, const char *file, const bench_device **dev,
		   char *why, size_t why_len)
{
	char path[4096];
	const int n = snprintf(path, sizeof path, "%.*s/%s", (int)dir_len, dir, file);
	if (n < 0 || (size_t)n >= sizeof path || access(path, R_OK) != 0)
		return 1;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(why, why_len, "cannot load %s: %s", path, dlerror());
		return 0;
	}
	bench_device_entry_fn entry;
	*(void **)&entry = dlsym(h, BENCH_DEVICE_ENTRY);
	if (!entry)
		snprintf(why, why_len, "%s has no %s", path, BENCH_DEVICE_ENTRY);
	else if (!(*dev = entry(BENCH_DEVICE_ABI)))
		snprintf(why, why_len, "%s is a module of another fp8kv-bench (not ABI %u)", path,
			 BENCH_DEVICE_ABI);
	if (!*dev)
		dlclose(h);
	return 0;
}

const bench_device *bench_device_load(const char *backend, char *why, size_t why_len)
{
	char file[96];
	const bench_device *dev = NULL;
	snprintf(file, sizeof file, "fp8kv_bench_%.*s.so", (int)strcspn(backend, ":"), backend);
	for (const char *p = module_path(); p && *p;) {
		const size_t len = strcspn(p, ":");
		if (*p == '/' && !try_dir(p, len, file, &dev, why, why_len))
			return dev;
		p += len + (p[len] == ':');
	}
	if (!try_dir(FP8KV_BENCH_MODULE_DIR, strlen(FP8KV_BENCH_MODULE_DIR), file, &dev, why,
		     why_len))
		return dev;
	snprintf(why, why_len,
		 "%s, fp8kv-bench's part for it, is not in FP8KV_MODULE_PATH's absolute "
		 "directories or %s", file, FP8KV_BENCH_MODULE_DIR);
	return NULL;
}
