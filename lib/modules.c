/* SPDX-License-Identifier: MIT */
/*
 * modules.c - loading backend modules (fp8kv_NAME.so) with dlopen.
 *
 * Only fp8kv_backend_open() gets here, so nothing is loaded, and no GPU
 * runtime initialised, before a caller asks.  The search path is
 * FP8KV_MODULE_PATH (colon-separated, for uninstalled builds and tests),
 * then the install directory.  FP8KV_MODULE_PATH is a trust boundary, as
 * LD_LIBRARY_PATH is: a module's constructors run at dlopen.  So it is
 * read with secure_getenv (ignored in setuid and setgid programs), and
 * only its absolute directories count: a relative one would follow the
 * current directory.
 */
#include "config.h"

#include <dlfcn.h>
#ifdef HAVE_GETAUXVAL
#include <sys/auxv.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

const fp8kv_host_services fp8kv_host = {fp8kv_set_error};

static fp8kv_status try_dir(const char *dir, size_t dir_len, const char *name,
			    const fp8kv_backend_ops **ops, void **handle, int *found)
{
	char path[4096];
	int n = snprintf(path, sizeof path, "%.*s/fp8kv_%s.so", (int)dir_len, dir, name);
	if (n < 0 || (size_t)n >= sizeof path || access(path, R_OK) != 0)
		return FP8KV_ENODEV;
	*found = 1;

	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return fp8kv_set_error(FP8KV_ENODEV, "backend '%s': cannot load %s: %s", name,
				       path, dlerror());
	fp8kv_module_entry_fn entry;
	*(void **)&entry = dlsym(h, FP8KV_MODULE_ENTRY);
	if (!entry) {
		dlclose(h);
		return fp8kv_set_error(FP8KV_EBACKEND, "backend '%s': %s has no %s", name, path,
				       FP8KV_MODULE_ENTRY);
	}
	const fp8kv_backend_ops *table = entry(&fp8kv_host);
	if (!table) {
		dlclose(h);
		return fp8kv_set_error(FP8KV_EBACKEND, "backend '%s': %s refused to start (its %s "
				       "returned NULL)", name, path, FP8KV_MODULE_ENTRY);
	}
	if (table->abi != FP8KV_MODULE_ABI) {
		unsigned abi = table->abi;
		dlclose(h);
		return fp8kv_set_error(FP8KV_EBACKEND,
				       "backend '%s': %s has module ABI %u, this library needs %u",
				       name, path, abi, (unsigned)FP8KV_MODULE_ABI);
	}
	*ops = table;
	*handle = h;
	return FP8KV_OK;
}

fp8kv_status fp8kv_module_load(const char *name, const fp8kv_backend_ops **ops, void **handle)
{
	const char *env = fp8kv_trusted_getenv("FP8KV_MODULE_PATH");
	fp8kv_status st;
	int found = 0;

	for (const char *p = env; p && *p;) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len && *p == '/' && (st = try_dir(p, len, name, ops, handle, &found)) != FP8KV_ENODEV)
			return st;
		if (found)
			return FP8KV_ENODEV; /* message already set */
		p = end ? end + 1 : p + len;
	}
	if ((st = try_dir(FP8KV_MODULE_DIR, strlen(FP8KV_MODULE_DIR), name, ops, handle,
			  &found)) != FP8KV_ENODEV || found)
		return st;
	return fp8kv_set_error(FP8KV_ENODEV,
			       "backend '%s' is not available: no fp8kv_%s.so in FP8KV_MODULE_PATH's "
			       "absolute directories or %s",
			       name, name, FP8KV_MODULE_DIR);
}

const char *fp8kv_trusted_getenv(const char *name)
{
#if defined(HAVE_SECURE_GETENV)
	return secure_getenv(name);
#elif defined(HAVE_GETAUXVAL)
	return getauxval(AT_SECURE) ? NULL : getenv(name);
#else
	return getenv(name);
#endif
}

void fp8kv_module_unload(void *handle)
{
	if (handle)
		dlclose(handle);
}
