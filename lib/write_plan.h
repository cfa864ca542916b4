/* SPDX-License-Identifier: MIT */
/*
 * write_plan.h - a cache write as every backend receives it: validated once
 * by the front end (lib/plan.c), normalised into two sides, key and value,
 * that backends treat alike, and the slot mapping; and the one definition
 * of a row: where a token's slot resolves to, where a row is read and
 * written, which scale it divides by and where that scale goes (A-ROW).
 *
 * The C compiler and hipcc/nvcc both compile this file (FP8KV_HD), so the
 * CPU backend and the GPU kernels share the rules of fp8kv.h sections 5
 * and 7.  Plain C, fixed-width fields: the struct crosses into modules and
 * into kernel parameters.  Changing it changes FP8KV_MODULE_ABI
 * (lib/backend.h).
 */
#ifndef FP8KV_WRITE_PLAN_H
#define FP8KV_WRITE_PLAN_H

#include <stdint.h>

#include "fp8kv.h"
#include "fp8_convert.h"
#include "group_convert.h"
#include "host_device.h"

/* Indices of fp8kv_write_plan.side. */
enum { FP8KV_SIDE_KEY = 0, FP8KV_SIDE_VALUE = 1 };

/* How the groups of a side's rows are scaled (FP8KV_SCALE_GROUP, fp8kv.h
 * section 8, A-GROUP-SCALES).  The numbers are the public enums'. */
typedef struct fp8kv_group_recipe {
	int32_t rule;                     /* fp8kv_group_rule */
	int32_t size;                     /* G: elements per group, dividing head_dim */
	int32_t rounding;                 /* fp8kv_rounding (int8 elements) */
	int32_t scale_bytes;              /* a stored scale: 4 (fp32) or 1 (E8M0, e4m3fn) */
	float divisor;                    /* FP8KV_GROUP_F32: D, resolved (never 0) */
	float scale_floor;                /* FP8KV_GROUP_F32: the floor, resolved */
} fp8kv_group_recipe;

/* How a side's rows are written (A-RECIPE): the cache's element format,
 * whether the rows are converted or copied, and where the divisor comes
 * from.  Each side carries its own, and the row helpers below read the
 * side's.  A plain write gives both sides one recipe (plan_side in
 * lib/plan.c), and the GPU kernels, specialized on a recipe, take the key
 * side's for both; a grouped write too; an MLA write (lib/plan_mla.c)
 * gives its two sides, the latent and the RoPE part, recipes that may
 * differ (A-MLA-RECORD). */
typedef struct fp8kv_row_recipe {
	int32_t cache_dtype;              /* fp8kv_dtype of the cache elements */
	int32_t cache_size;               /* bytes per cache element (an e2m1 byte holds 2 values) */
	int32_t converts;                 /* FP8, e2m1, int8: q = code(x / s); else copied */
	int32_t scale_mode;               /* fp8kv_scale_mode; FP8KV_SCALE_ONE for copies */
	fp8kv_group_recipe group;         /* FP8KV_SCALE_GROUP only; else zero */
} fp8kv_row_recipe;

/* Where the scales of a side's groups go (section 8): group j of row h
 * written to (block, offset) stores its scale at element
 * fp8kv_group_scale_index of scales, in elements of recipe.group.scale_bytes
 * bytes. */
typedef struct fp8kv_group_scale_map {
	unsigned char *scales;            /* FP8KV_SCALE_GROUP: the stored scales; else NULL */
	const float *global;              /* FP8KV_GROUP_NVFP4: g, one fp32; else NULL */
	int64_t stride_block, stride_slot, stride_head, stride_group;
	int64_t interleave, stride_interleave; /* 0, 0: none */
} fp8kv_group_scale_map;

/* One side of the write: where its rows come from and go.  Strides are in
 * elements of the array they step through (input dtype, cache dtype, fp32
 * for the scale cache). */
typedef struct fp8kv_plan_side {
	fp8kv_row_recipe recipe;
	const unsigned char *input;       /* [token][head][dim] through the strides */
	unsigned char *cache;             /* [block][slot][head][dim] through the strides */
	int64_t head_dim;
	int64_t input_stride_token, input_stride_head;
	int64_t cache_stride_block, cache_stride_slot, cache_stride_head;
	const float *scale;               /* given scales (fp8kv_mode_given); else NULL */
	float *scale_cache;               /* computed scales (fp8kv_mode_computed); else NULL */
	int64_t scale_stride_block, scale_stride_slot, scale_stride_head;
	float *amax;                      /* optional: [num_heads], raised */
	fp8kv_group_scale_map groups;     /* FP8KV_SCALE_GROUP: the groups' scales */
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
	int32_t input_dtype;              /* fp8kv_dtype */
	int32_t input_size;               /* bytes per element */
	int32_t saturate;                 /* overflow == FP8KV_SATURATE */
	int32_t reserved;
} fp8kv_write_plan;

/* ---- slot resolution, shared by every backend ---- */

/* What a token's slot says (FP8KV_SLOT_PAST_SWA: it indexes past the end
 * of swa_mapping). */
enum { FP8KV_SLOT_WRITE, FP8KV_SLOT_PADDING, FP8KV_SLOT_OUT_OF_RANGE, FP8KV_SLOT_PAST_SWA };

FP8KV_HD int64_t fp8kv_load_index(const void *base, int64_t i, int32_t type)
{
	return type == FP8KV_INDEX_INT32 ? (int64_t)((const int32_t *)base)[i]
					 : ((const int64_t *)base)[i];
}

/* Token t's entry of slot_mapping, read once: backends resolve this value
 * (fp8kv_resolve_slot) and report an out-of-range token from the same
 * read that decided not to write it. */
FP8KV_HD int64_t fp8kv_raw_slot(const fp8kv_slot_map *m, int64_t t)
{
	return fp8kv_load_index(m->slot_mapping, t, m->slot_type);
}

/* Resolves a raw slot; *slot receives the final slot (the raw one for
 * FP8KV_SLOT_PAST_SWA; anything for padding).  swa: whether the map has a
 * swa_mapping, which a kernel specialized on it knows at compile time (the
 * branch then compiles away). */
FP8KV_HD int fp8kv_resolve_slot_as(const fp8kv_slot_map *m, int64_t raw, int64_t *slot, int swa)
{
	*slot = raw;
	if (raw < 0)
		return FP8KV_SLOT_PADDING;
	if (swa) {
		if (raw >= m->swa_len)
			return FP8KV_SLOT_PAST_SWA;
		*slot = fp8kv_load_index(m->swa_mapping, raw, m->swa_type);
		if (*slot < 0)
			return FP8KV_SLOT_PADDING;
	}
	return *slot < m->num_slots ? FP8KV_SLOT_WRITE : FP8KV_SLOT_OUT_OF_RANGE;
}

FP8KV_HD int fp8kv_resolve_slot(const fp8kv_slot_map *m, int64_t raw, int64_t *slot)
{
	return fp8kv_resolve_slot_as(m, raw, slot, m->swa_mapping != 0);
}

/* Does a slot of this kind skip a token that must be reported
 * (FP8KV_ERANGE)? */
FP8KV_HD_CONSTEXPR int fp8kv_slot_is_error(int kind)
{
	return kind >= FP8KV_SLOT_OUT_OF_RANGE;
}

/* The limit an out-of-range slot of this kind broke: swa_mapping's length
 * or the cache's slots. */
FP8KV_HD int64_t fp8kv_slot_limit(const fp8kv_slot_map *m, int kind)
{
	return kind == FP8KV_SLOT_PAST_SWA ? m->swa_len : m->num_slots;
}

/* ---- where a row is: element offsets ----
 *
 * Row (t, h) of a side is read at input + fp8kv_input_row(t, h) elements
 * and written to cache + fp8kv_cache_row(block, offset, h) elements; a
 * computed scale goes to scale_cache[fp8kv_scale_index(block, offset, h)].
 * Each is defined once, for index type I and offset type W:
 *   fp8kv_X(...)    int64_t: every writer;
 *   fp8kv_X32(...)  uint32_t indices and in-block offsets, a 64-bit offset
 *                   only for block * stride_block: the specialized
 *                   kernel's index arithmetic (K-INDEX32), where the
 *                   launch has checked that they fit (specialized_eligible
 *                   in hip/launch_policy.h).
 * A row's head stride is multiplied by h, so a single head's stride,
 * which validation does not bound, is never used.
 */
#define FP8KV_ROW_INDEX(SUFFIX, I, W)                                                        \
	FP8KV_HD W fp8kv_input_row##SUFFIX(const fp8kv_plan_side *sd, I t, I h)              \
	{                                                                                    \
		return (W)(t * (I)sd->input_stride_token + h * (I)sd->input_stride_head);     \
	}                                                                                    \
	FP8KV_HD W fp8kv_cache_row##SUFFIX(const fp8kv_plan_side *sd, I block, I offset, I h) \
	{                                                                                    \
		return (W)block * (W)(I)sd->cache_stride_block +                             \
		       (W)(offset * (I)sd->cache_stride_slot + h * (I)sd->cache_stride_head); \
	}                                                                                    \
	FP8KV_HD W fp8kv_scale_index##SUFFIX(const fp8kv_plan_side *sd, I block, I offset, I h) \
	{                                                                                    \
		return (W)block * (W)(I)sd->scale_stride_block +                             \
		       (W)(offset * (I)sd->scale_stride_slot + h * (I)sd->scale_stride_head); \
	}

FP8KV_ROW_INDEX(, int64_t, int64_t)
FP8KV_ROW_INDEX(32, uint32_t, uint64_t)
#undef FP8KV_ROW_INDEX

/* ---- which scale a row divides by (fp8kv.h sections 5 and 7) ----
 *
 * A scale mode is what these functions say of it (A-ROW): adding one means
 * a case here, in fp8kv_scale_mode_name's table, in plan.c's checks of its
 * arguments, and a template value of the specialized kernel
 * (hip/launch_policy.h launch_specialized_format).
 */

/* The rows are divided by a scale (every mode but FP8KV_SCALE_ONE). */
FP8KV_HD_CONSTEXPR int fp8kv_mode_divides(int mode)
{
	return mode != FP8KV_SCALE_ONE;
}

/* The scale is an argument of the call: side->scale[fp8kv_given_index]. */
FP8KV_HD_CONSTEXPR int fp8kv_mode_given(int mode)
{
	return mode == FP8KV_SCALE_TENSOR || mode == FP8KV_SCALE_HEAD;
}

/* The scale is computed from the row's amax and stored in the side's
 * scale cache at fp8kv_scale_index. */
FP8KV_HD_CONSTEXPR int fp8kv_mode_computed(int mode)
{
	return mode == FP8KV_SCALE_TOKEN_HEAD;
}

/* Each group of a row computes its own scale (section 8): the row is
 * written by groups (fp8kv_group_scale_of_side, fp8kv_group_scale_index),
 * not by fp8kv_row_scale. */
FP8KV_HD_CONSTEXPR int fp8kv_mode_grouped(int mode)
{
	return mode == FP8KV_SCALE_GROUP;
}

/* Rows of one call may divide by different scales. */
FP8KV_HD_CONSTEXPR int fp8kv_mode_per_row(int mode)
{
	return mode == FP8KV_SCALE_HEAD || mode == FP8KV_SCALE_TOKEN_HEAD ||
	       mode == FP8KV_SCALE_GROUP;
}

/* Which given scale row h divides by. */
FP8KV_HD_CONSTEXPR int64_t fp8kv_given_index(int mode, int64_t h)
{
	return mode == FP8KV_SCALE_HEAD ? h : 0;
}

/* Does row writing need the row's amax (max |x| over its finite elements,
 * fp8kv_finite_abs): for a computed scale, or to raise side->amax? */
FP8KV_HD int fp8kv_row_wants_amax(const fp8kv_plan_side *sd, int mode)
{
	return fp8kv_mode_computed(mode) || sd->amax != 0;
}

/* The scale of row h under mode (1 when the rows are not divided), from
 * the row's amax for a computed scale; fmax: the largest finite value of
 * the side's format (fp8kv_format_max). */
FP8KV_HD float fp8kv_row_scale(const fp8kv_plan_side *sd, int mode, int64_t h, float amax,
			       float fmax)
{
	if (fp8kv_mode_computed(mode))
		return fp8kv_dynamic_scale(amax, fmax);
	return fp8kv_mode_given(mode) ? sd->scale[fp8kv_given_index(mode, h)] : 1.0f;
}

/* Does a row's amax a (>= +0) raise the running amax cur of its head?  The
 * fp32 bits compare as signed integers (fp8kv.h section 7), which is what
 * one fire-and-forget atomic max does on a GPU (K-AMAX-ATOMIC); the CPU
 * merges every row, and a per-thread amax starting at +0, by this test. */
FP8KV_HD int fp8kv_amax_raises(float cur, float a)
{
	return (int32_t)fp8kv_f32_bits(a) > (int32_t)fp8kv_f32_bits(cur);
}

/* ---- group scales (fp8kv.h section 8, A-GROUP-SCALES) ---- */

/* The element of sd's scale array where the scale of group j of row h,
 * written to (block, offset), goes: section 8's address, with the 4-token
 * interleave of vLLM's and TensorRT-LLM's NVFP4 V scales when interleave
 * > 0. */
FP8KV_HD int64_t fp8kv_group_scale_index(const fp8kv_plan_side *sd, int64_t block,
					 int64_t offset, int64_t h, int64_t j)
{
	const fp8kv_group_scale_map *m = &sd->groups;
	const int64_t slot_term = m->interleave > 0
					  ? (offset / m->interleave) * m->stride_slot +
						    (offset % m->interleave) * m->stride_interleave
					  : offset * m->stride_slot;
	return block * m->stride_block + slot_term + h * m->stride_head + j * m->stride_group;
}

/* The scale of a group of sd's rows whose finite elements' largest
 * magnitude is amax; NVFP4 reads its global scale from memory here. */
FP8KV_HD fp8kv_group_scale fp8kv_group_scale_of_side(const fp8kv_plan_side *sd, float amax)
{
	const fp8kv_row_recipe *r = &sd->recipe;
	const float g = r->group.rule == FP8KV_CV_GROUP_NVFP4 ? sd->groups.global[0] : 0.0f;
	return fp8kv_group_scale_of(r->group.rule, r->cache_dtype, r->group.divisor,
				    r->group.scale_floor, g, amax);
}

/* Stores a group's scale (fp8kv_group_scale.stored) at element index of
 * sd's scale array: an fp32 (aligned, validated) or a byte. */
FP8KV_HD void fp8kv_store_group_scale(const fp8kv_plan_side *sd, int64_t index, uint32_t stored)
{
	if (sd->recipe.group.scale_bytes == 4)
		((uint32_t *)sd->groups.scales)[index] = stored;
	else
		sd->groups.scales[index] = (unsigned char)stored;
}

#endif /* FP8KV_WRITE_PLAN_H */
