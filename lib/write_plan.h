/* SPDX-License-Identifier: MIT */
/*
 * write_plan.h - a cache write as every backend receives it: validated once
 * by the front end (lib/plan.c), normalised into two sides, key and value,
 * that backends treat alike, and the slot mapping with the one definition
 * of how a token's slot resolves.
 *
 * The C compiler and hipcc/nvcc both compile this file (FP8KV_HD), so the
 * CPU backend and the GPU kernels share the slot rules of fp8kv.h section
 * 7.  Plain C, fixed-width fields: the struct crosses into modules and into
 * kernel parameters.  Changing it changes FP8KV_MODULE_ABI (lib/backend.h).
 */
#ifndef FP8KV_WRITE_PLAN_H
#define FP8KV_WRITE_PLAN_H

#include <stdint.h>

#include "host_device.h"

/* Indices of fp8kv_write_plan.side. */
enum { FP8KV_SIDE_KEY = 0, FP8KV_SIDE_VALUE = 1 };

/* One side of the write: where its rows come from and go.  Strides are in
 * elements of the array they step through (input dtype, cache dtype, fp32
 * for the scale cache). */
typedef struct fp8kv_plan_side {
	const unsigned char *input;       /* [token][head][dim] through the strides */
	unsigned char *cache;             /* [block][slot][head][dim] through the strides */
	int64_t head_dim;
	int64_t input_stride_token, input_stride_head;
	int64_t cache_stride_block, cache_stride_slot, cache_stride_head;
	const float *scale;               /* TENSOR: [0]; HEAD: [head]; else NULL */
	float *scale_cache;               /* TOKEN_HEAD: the computed scales; else NULL */
	int64_t scale_stride_block, scale_stride_slot, scale_stride_head;
	float *amax;                      /* optional: [num_heads], raised */
} fp8kv_plan_side;

/* Where each token goes (fp8kv.h section 7). */
typedef struct fp8kv_slot_map {
	const void *slot_mapping;         /* num_tokens entries */
	const void *swa_mapping;          /* NULL: no second mapping */
	int64_t swa_len;                  /* entries of swa_mapping */
	int64_t num_slots;                /* num_blocks * block_size */
	int32_t slot_type, swa_type;      /* fp8kv_index_type */
} fp8kv_slot_map;

typedef struct fp8kv_write_plan {
	fp8kv_plan_side side[2];          /* FP8KV_SIDE_KEY, FP8KV_SIDE_VALUE */
	fp8kv_slot_map slots;
	int64_t num_tokens;               /* > 0: an empty write never reaches a backend */
	int64_t num_heads, num_blocks, block_size;
	uint64_t *overflow_count;         /* optional, added to */
	uint64_t *nan_count;              /* optional, added to */
	int32_t input_dtype, cache_dtype; /* fp8kv_dtype */
	int32_t input_size, cache_size;   /* bytes per element */
	int32_t cache_is_fp8;             /* else the rows are copied as they are */
	int32_t scale_mode;               /* fp8kv_scale_mode */
	int32_t saturate;                 /* overflow == FP8KV_SATURATE */
	int32_t reserved;
} fp8kv_write_plan;

/* ---- slot resolution, shared by every backend ---- */

/* What a token's slot says (FP8KV_SLOT_PAST_SWA: it indexes past the end
 * of swa_mapping). */
enum { FP8KV_SLOT_WRITE, FP8KV_SLOT_PADDING, FP8KV_SLOT_OUT_OF_RANGE, FP8KV_SLOT_PAST_SWA };

FP8KV_HD int64_t fp8kv_load_index(const void *base, int64_t i, int32_t type)
{
	/* 1 is FP8KV_INDEX_INT32 */
	return type == 1 ? (int64_t)((const int32_t *)base)[i] : ((const int64_t *)base)[i];
}

/* Token t's entry of slot_mapping, read once: backends resolve this value
 * (fp8kv_resolve_slot) and report an out-of-range token from the same
 * read that decided not to write it. */
FP8KV_HD int64_t fp8kv_raw_slot(const fp8kv_slot_map *m, int64_t t)
{
	return fp8kv_load_index(m->slot_mapping, t, m->slot_type);
}

/* Resolves a raw slot; *slot receives the final slot (or, for
 * FP8KV_SLOT_PAST_SWA, the raw one) except for padding. */
FP8KV_HD int fp8kv_resolve_slot(const fp8kv_slot_map *m, int64_t raw, int64_t *slot)
{
	int64_t s = raw;
	if (s < 0)
		return FP8KV_SLOT_PADDING;
	if (m->swa_mapping) {
		if (s >= m->swa_len) {
			*slot = s;
			return FP8KV_SLOT_PAST_SWA;
		}
		s = fp8kv_load_index(m->swa_mapping, s, m->swa_type);
		if (s < 0)
			return FP8KV_SLOT_PADDING;
	}
	*slot = s;
	return s < m->num_slots ? FP8KV_SLOT_WRITE : FP8KV_SLOT_OUT_OF_RANGE;
}

/* The limit an out-of-range slot of this kind broke: swa_mapping's length
 * or the cache's slots. */
FP8KV_HD int64_t fp8kv_slot_limit(const fp8kv_slot_map *m, int kind)
{
	return kind == FP8KV_SLOT_PAST_SWA ? m->swa_len : m->num_slots;
}

#endif /* FP8KV_WRITE_PLAN_H */
