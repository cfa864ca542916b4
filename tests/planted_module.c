/* SPDX-License-Identifier: MIT */
/*
 * planted_module.c - fp8kv_planted.so, a module that misbehaves on purpose,
 * built only for make check.  It links nothing of fp8kv.
 *
 *   - its constructor creates the file FP8KV_PLANTED_MARKER names, so that
 *     a test sees whether the library loaded it at all (tests/check_setuid.sh:
 *     a setuid program must not load modules from FP8KV_MODULE_PATH);
 *   - its entry returns NULL (refuses), or with FP8KV_PLANTED_MODE=silent-open
 *     a table whose open fails without a message (tests/test_hardening.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

__attribute__((constructor)) static void planted_loaded(void)
{
	const char *marker = getenv("FP8KV_PLANTED_MARKER");
	FILE *f = marker ? fopen(marker, "w") : NULL;
	if (f)
		fclose(f);
}

static fp8kv_status silent_open(int device, void **ctx)
{
	(void)device;
	(void)ctx;
	return FP8KV_EBACKEND;
}

static const fp8kv_backend_ops silent_ops = {
	.abi = FP8KV_MODULE_ABI,
	.name = "planted",
	.open = silent_open,
};

__attribute__((visibility("default"))) const fp8kv_backend_ops *
fp8kv_module_entry(const fp8kv_host_services *services)
{
	(void)services;
	const char *mode = getenv("FP8KV_PLANTED_MODE");
	return mode && !strcmp(mode, "silent-open") ? &silent_ops : NULL;
}
