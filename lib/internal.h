/* SPDX-License-Identifier: MIT */
/* internal.h - shared by the front end's files; nothing here is exported. */
#ifndef FP8KV_INTERNAL_H
#define FP8KV_INTERNAL_H

#include "backend.h"

struct fp8kv_backend {
	const fp8kv_backend_ops *ops;
	void *ctx;
	void *module; /* dlopen handle, NULL for a linked-in backend */
};

/* Clears the calling thread's message (at the start of each public call). */
void fp8kv_clear_error(void);

/* Validation, before anything is written (validate.c). */
fp8kv_status fp8kv_validate_cache_write(const fp8kv_cache_write *desc);
fp8kv_status fp8kv_validate_convert(const fp8kv_convert_args *args, int quantize);

/* What the library lends every backend's entry point (modules.c). */
extern const fp8kv_host_services fp8kv_host;

/* Module loading (modules.c): opens fp8kv_NAME.so and returns its table. */
fp8kv_status fp8kv_module_load(const char *name, const fp8kv_backend_ops **ops,
			       void **handle);
void fp8kv_module_unload(void *handle);

#endif /* FP8KV_INTERNAL_H */
