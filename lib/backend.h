/* SPDX-License-Identifier: MIT */
/*
 * backend.h - what a backend implements, and what a loadable module exports.
 *
 * The front end (lib/fp8kv.c) validates every argument and turns it into a
 * plan (lib/write_plan.h, fp8kv_convert_plan below); a backend computes
 * from the plan and never re-validates.  Every backend, the linked-in CPU
 * backend included, is reached through one entry function that receives
 * the library's services and returns its table: modules (fp8kv_NAME.so)
 * export it as FP8KV_MODULE_ENTRY and need no symbol of libfp8kv, so they
 * load whether libfp8kv was opened RTLD_GLOBAL or RTLD_LOCAL.  A module
 * built against another FP8KV_MODULE_ABI is refused.  Bump FP8KV_MODULE_ABI
 * whenever this file or lib/write_plan.h changes.
 */
#ifndef FP8KV_BACKEND_H
#define FP8KV_BACKEND_H

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include "fp8kv.h"
#include "write_plan.h"

#define FP8KV_MODULE_ABI 4
#define FP8KV_MODULE_ENTRY "fp8kv_module_entry"

#ifdef __cplusplus
extern "C" {
#endif

/* Services the library lends every backend (so that a module needs no
 * link to libfp8kv and its messages land in the caller's thread). */
typedef struct fp8kv_host_services {
	/* Records the detailed message of the current failure; returns status. */
	fp8kv_status (*set_error)(fp8kv_status status, const char *fmt, ...)
#ifdef __GNUC__
		__attribute__((format(printf, 2, 3)))
#endif
		;
} fp8kv_host_services;

/* The FP8KV_ERANGE message of a write, one wording for every backend:
 * past_swa says the token's slot fell past the end of the swa_mapping
 * (limit = its length), else the final slot was past the cache (limit =
 * num_blocks * block_size). */
static inline fp8kv_status fp8kv_range_error(fp8kv_status (*set_error)(fp8kv_status,
								       const char *, ...),
					     int64_t token, int64_t slot, int64_t limit,
					     int past_swa)
{
	return past_swa ? set_error(FP8KV_ERANGE,
				    "token %" PRId64 ": slot %" PRId64 " is past the end of "
				    "swa_mapping (%" PRId64 " entries); such tokens were skipped",
				    token, slot, limit)
			: set_error(FP8KV_ERANGE,
				    "token %" PRId64 ": slot %" PRId64 " is out of range (%" PRId64
				    " cache slots); such tokens were skipped",
				    token, slot, limit);
}

/* A flat conversion (fp8kv_quantize, fp8kv_dequantize), validated: count
 * > 0 elements; scale is NULL for FP8KV_SCALE_ONE. */
typedef struct fp8kv_convert_plan {
	void *dst;
	const void *src;
	int64_t count;
	int32_t dst_dtype, src_dtype;     /* fp8kv_dtype */
	int32_t dst_size, src_size;       /* bytes per element */
	const float *scale;               /* one fp32 in backend memory, or NULL */
	int32_t saturate;                 /* quantize: overflow == FP8KV_SATURATE */
	int32_t reserved;
	uint64_t *overflow_count;         /* quantize, optional, added to */
} fp8kv_convert_plan;

typedef struct fp8kv_backend_ops {
	unsigned abi;        /* FP8KV_MODULE_ABI */
	const char *name;    /* "cpu", "hip", ... */

	/* device < 0: the default device.  *ctx is the backend's own state. */
	fp8kv_status (*open)(int device, void **ctx);
	void (*close)(void *ctx);
	/* "NAME" or "NAME:N", and a description of the device */
	const char *(*canonical_name)(void *ctx);
	const char *(*device)(void *ctx);
	fp8kv_status (*synchronize)(void *ctx, void *stream);

	fp8kv_status (*alloc)(void *ctx, size_t bytes, void **ptr);
	void (*free)(void *ctx, void *ptr);
	fp8kv_status (*upload)(void *ctx, void *dst, const void *src, size_t bytes);
	fp8kv_status (*download)(void *ctx, void *dst, const void *src, size_t bytes);
	fp8kv_status (*fill)(void *ctx, void *dst, uint8_t byte, size_t bytes);

	fp8kv_status (*reshape_and_cache)(void *ctx, const fp8kv_write_plan *plan, void *stream);
	fp8kv_status (*quantize)(void *ctx, const fp8kv_convert_plan *plan, void *stream);
	fp8kv_status (*dequantize)(void *ctx, const fp8kv_convert_plan *plan, void *stream);
	fp8kv_status (*amax)(void *ctx, const void *src, fp8kv_dtype dtype, size_t count,
			     float *amax);
	fp8kv_status (*check_slots)(void *ctx, const void *slots, int64_t count,
				    fp8kv_index_type type, int64_t num_slots,
				    fp8kv_slot_report *report);

	/* fp8kv_reshape_and_cache_grouped: the plan of a cache write whose
	 * sides scale by groups (recipe.scale_mode FP8KV_SCALE_GROUP,
	 * A-GROUP-SCALES), into FP8, e2m1 or int8 caches.  A backend that
	 * cannot returns FP8KV_ENOTSUP. */
	fp8kv_status (*reshape_and_cache_grouped)(void *ctx, const fp8kv_write_plan *plan,
						  void *stream);
	/* fp8kv_concat_and_cache_mla: a plan of one head whose two sides, the
	 * latent part and the RoPE part, write one record (A-MLA-RECORD).  A
	 * backend that cannot returns FP8KV_ENOTSUP. */
	fp8kv_status (*concat_and_cache_mla)(void *ctx, const fp8kv_write_plan *plan,
					     void *stream);
} fp8kv_backend_ops;

/* The entry of a backend: the one symbol a module exports, or the function
 * of a backend linked into the library.  NULL refuses (services missing). */
typedef const fp8kv_backend_ops *(*fp8kv_module_entry_fn)(const fp8kv_host_services *host);

/* The CPU backend, always linked in. */
const fp8kv_backend_ops *fp8kv_cpu_entry(const fp8kv_host_services *host);

/* The HIP backend's entry when it is linked into the library (configure
 * --disable-hip-module) rather than built as a module: the same function
 * as the module's fp8kv_module_entry, under a hidden name of its own. */
const fp8kv_backend_ops *fp8kv_hip_entry(const fp8kv_host_services *host);

#ifdef __cplusplus
}
#endif

#endif /* FP8KV_BACKEND_H */
