/* SPDX-License-Identifier: MIT */
/*
 * test_rtld_local.c - the HIP module loads into a process that opened
 * libfp8kv with RTLD_LOCAL, as Python's ctypes does: fp8kv_backend_open
 * ("hip") then reaches the module's own verdict (a GPU, or FP8KV_ENODEV
 * "no GPU"), never a dynamic-linker error about a missing fp8kv_ symbol.
 *
 * Usage: test_rtld_local [LIBFP8KV.so]; by default the build tree's
 * ($abs_top_builddir/lib/.libs/libfp8kv.so).  The module is found through
 * FP8KV_MODULE_PATH, as in every test.  Exit 0 pass, 1 fail, 77 skip (no
 * module built).
 */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fp8kv.h"

int main(int argc, char **argv)
{
	const char *top = getenv("abs_top_builddir");
	char lib[4096], module[4096];
	struct stat st;

	snprintf(lib, sizeof lib, "%s/lib/.libs/libfp8kv.so", top ? top : ".");
	snprintf(module, sizeof module, "%s/hip/.libs/fp8kv_hip.so", top ? top : ".");
	if (argc > 1)
		snprintf(lib, sizeof lib, "%s", argv[1]);
	if (stat(module, &st) != 0) {
		printf("SKIP: %s not built\n", module);
		return 77;
	}

	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		printf("FAIL: dlopen %s: %s\n", lib, dlerror());
		return 1;
	}
	fp8kv_status (*open_backend)(const char *, fp8kv_backend **);
	void (*close_backend)(fp8kv_backend *);
	const char *(*last_error)(void);
	*(void **)&open_backend = dlsym(h, "fp8kv_backend_open");
	*(void **)&close_backend = dlsym(h, "fp8kv_backend_close");
	*(void **)&last_error = dlsym(h, "fp8kv_last_error");
	if (!open_backend || !close_backend || !last_error) {
		printf("FAIL: %s lacks the API\n", lib);
		return 1;
	}

	fp8kv_backend *b = NULL;
	const fp8kv_status s = open_backend("hip", &b);
	const char *message = last_error();
	printf("fp8kv_backend_open(\"hip\") with libfp8kv RTLD_LOCAL: status %d, \"%s\"\n", (int)s,
	       message);
	int ok;
	if (s == FP8KV_OK) {
		ok = 1; /* a GPU: the module loaded and opened it */
		close_backend(b);
	} else {
		/* no GPU: the module's own message ("hip: no usable GPU ...",
		 * "hip: no GPU found"), not the loader's */
		ok = s == FP8KV_ENODEV && strncmp(message, "hip: ", 5) == 0 &&
		     !strstr(message, "cannot load") && !strstr(message, "undefined symbol");
	}
	dlclose(h);
	printf("%s\n", ok ? "PASS" : "FAIL: the module did not load, or failed for another reason");
	return ok ? 0 : 1;
}
