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

/* The calling thread's message (errors.c): cleared at the start of each
 * public call, set by a failure. */
void fp8kv_clear_error(void);
fp8kv_status fp8kv_set_error(fp8kv_status status, const char *fmt, ...)
#ifdef __GNUC__
	__attribute__((format(printf, 2, 3)))
#endif
	;

/* A flat conversion as the public call states it. */
typedef struct fp8kv_convert_args {
	void *dst;
	fp8kv_dtype dst_dtype;
	const void *src;
	fp8kv_dtype src_dtype;
	size_t count;
	fp8kv_scale_mode scale_mode;
	const float *scale;
	fp8kv_overflow overflow;
	uint64_t *overflow_count;
} fp8kv_convert_args;

/* Validation, then the plan a backend receives (plan.c, plan_group.c,
 * plan_mla.c).  Nothing is written before they succeed.  groups: NULL for
 * fp8kv_reshape_and_cache, the (complete) group scales of
 * fp8kv_reshape_and_cache_grouped. */
fp8kv_status fp8kv_plan_cache_write(const fp8kv_cache_write *desc,
				    const fp8kv_group_scales *groups, fp8kv_write_plan *plan);
fp8kv_status fp8kv_plan_mla_write(const fp8kv_mla_write *desc, fp8kv_write_plan *plan);
/* The caller's group scales as this library's struct: the fields its
 * header had, defaults for the rest (A-EXTENSIBLE-DESC). */
fp8kv_status fp8kv_read_groups(const fp8kv_group_scales *groups, fp8kv_group_scales *out);
fp8kv_status fp8kv_plan_convert(const fp8kv_convert_args *args, int quantize,
				fp8kv_convert_plan *plan);

/* What the library lends every backend's entry point (modules.c). */
extern const fp8kv_host_services fp8kv_host;

/* Module loading (modules.c): opens fp8kv_NAME.so and returns its table. */
fp8kv_status fp8kv_module_load(const char *name, const fp8kv_backend_ops **ops,
			       void **handle);
void fp8kv_module_unload(void *handle);

/* getenv, except in a setuid or setgid program (secure_getenv): for the
 * variables that choose code to load (FP8KV_MODULE_PATH, FP8KV_BACKEND). */
const char *fp8kv_trusted_getenv(const char *name);

#endif /* FP8KV_INTERNAL_H */
