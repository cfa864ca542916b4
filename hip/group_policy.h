/* SPDX-License-Identifier: MIT */
/*
 * group_policy.h - which kernel writes a plan whose two sides may carry
 * recipes of their own (fp8kv.h sections 8 and 9: grouped writes, MLA
 * records), with how many lanes per team and vectors per lane.  Host code
 * in plain C, without the GPU runtime, so that tests/test_group_policy.c
 * runs every decision on the CPU (K-GROUP-KERNELS):
 *
 *   GROUP_KERNEL_ROWS    both sides one recipe of section 7 (FP8 with a
 *                        scale mode of section 7, or a copy): the cache
 *                        write's own kernels (launch_cache_write), which
 *                        specialize on that recipe.  MLA_PLAIN lands here.
 *   GROUP_KERNEL_GROUPS  the fast grouped kernel (group_fast.h): 16-bit
 *                        inputs in 16-byte vectors, every row of at most
 *                        2 * MAX_TEAM vectors, a group of G = 16 to 256
 *                        elements spanning G / 8 lanes of a team; side 1
 *                        grouped as side 0, or a 16-bit copy (MLA_DS).
 *   GROUP_KERNEL_SIDES   anything else: the general kernel
 *                        (side_kernels.h), each side by its own recipe,
 *                        element by element where it must.
 */
#ifndef FP8KV_HIP_GROUP_POLICY_H
#define FP8KV_HIP_GROUP_POLICY_H

#include <stdint.h>

#include "group_convert.h"
#include "host_device.h"
#include "write_plan.h"

enum { GROUP_KERNEL_ROWS = 0, GROUP_KERNEL_SIDES = 1, GROUP_KERNEL_GROUPS = 2 };

/* The element classes of the fast kernel: an FP8 format (read at run
 * time), e2m1 (two values per byte) or int8. */
enum { GROUP_ELEM_FP8 = 0, GROUP_ELEM_E2M1 = 1, GROUP_ELEM_INT8 = 2 };

/* What side 1 of the fast kernel is: grouped as side 0, or a copy. */
enum { GROUP_SIDE1_GROUPS = 0, GROUP_SIDE1_COPY = 1 };

/* Lanes per team at most (a warp on NVIDIA, within a wavefront on AMD):
 * device_common.h's MAX_TEAM, restated for code without the runtime. */
#define GROUP_MAX_TEAM 32
#define GROUP_BLOCK 256

typedef struct group_choice {
	int kernel;              /* GROUP_KERNEL_* */
	int team_log2;           /* SIDES, GROUPS: lanes per (token, head) pair */
	int vectorized[2];       /* SIDES: the side's 16-byte vector path */
	/* GROUPS only */
	int elem;                /* GROUP_ELEM_* */
	int rule;                /* fp8kv_group_rule */
	int side1;               /* GROUP_SIDE1_* */
	int vpl;                 /* vectors per lane: 1 or 2 */
	int group_lanes_log2;    /* log2(G / 8) */
} group_choice;

/* log2 of the smallest power of two >= units, at most GROUP_MAX_TEAM */
static inline int group_team_log2(int64_t units)
{
	int l = 0;
	while ((1 << l) < GROUP_MAX_TEAM && (int64_t)1 << l < units)
		l++;
	return l;
}

/* Bytes a 16-byte input vector (8 values of 16 bits) becomes in a side's
 * cache: 8 codes (FP8, int8), 4 bytes of e2m1 pairs, or 16 (a copy). */
static inline int64_t group_out_bytes(const fp8kv_plan_side *sd, int64_t in_size)
{
	const int64_t values = 16 / in_size;
	if (!sd->recipe.converts)
		return 16;
	return sd->recipe.cache_dtype == FP8KV_CV_E2M1 ? values / 2 : values;
}

/*
 * May side sd's rows go in 16-byte input vectors: the rows, their input
 * and cache strides and bases all on vector boundaries (the strides of a
 * dimension of one entry included, as launch_policy.h's
 * side_vectorizable does).  Cache strides count elements of cache_size
 * bytes; an e2m1 element is a byte holding two values.
 */
static inline int group_side_vectorizable(const fp8kv_plan_side *sd, int64_t in_size)
{
	const int64_t values = 16 / in_size;
	const int64_t out = group_out_bytes(sd, in_size);
	const int64_t cs = sd->recipe.cache_size;
	const int64_t out_elems = out / cs;
	return out % cs == 0 && sd->head_dim % values == 0 && (uintptr_t)sd->input % 16 == 0 &&
	       sd->input_stride_token % values == 0 && sd->input_stride_head % values == 0 &&
	       (uintptr_t)sd->cache % (uintptr_t)out == 0 && sd->cache_stride_block % out_elems == 0 &&
	       sd->cache_stride_slot % out_elems == 0 && sd->cache_stride_head % out_elems == 0;
}

/* Do two sides write alike (section 7's recipe, or the same groups)? */
static inline int group_same_recipe(const fp8kv_row_recipe *a, const fp8kv_row_recipe *b)
{
	return a->cache_dtype == b->cache_dtype && a->cache_size == b->cache_size &&
	       a->converts == b->converts && a->scale_mode == b->scale_mode &&
	       a->group.rule == b->group.rule && a->group.size == b->group.size &&
	       a->group.rounding == b->group.rounding &&
	       a->group.scale_bytes == b->group.scale_bytes &&
	       fp8kv_f32_bits(a->group.divisor) == fp8kv_f32_bits(b->group.divisor) &&
	       fp8kv_f32_bits(a->group.scale_floor) == fp8kv_f32_bits(b->group.scale_floor);
}

FP8KV_HD_CONSTEXPR int group_elem_of(int cache_dtype)
{
	return cache_dtype == FP8KV_CV_E2M1   ? GROUP_ELEM_E2M1
	       : cache_dtype == FP8KV_CV_INT8 ? GROUP_ELEM_INT8
					      : GROUP_ELEM_FP8;
}

/* The fast kernel's shape for w, or 0 when it cannot serve it. */
static inline int group_fast_choice(const fp8kv_write_plan *w, int sm_count, group_choice *c)
{
	const fp8kv_plan_side *s0 = &w->side[FP8KV_SIDE_KEY], *s1 = &w->side[FP8KV_SIDE_VALUE];
	const fp8kv_row_recipe *r0 = &s0->recipe, *r1 = &s1->recipe;
	const int64_t in_size = w->input_size;
	if (w->input_dtype != FP8KV_CV_F16 && w->input_dtype != FP8KV_CV_BF16)
		return 0;
	if (!fp8kv_mode_grouped(r0->scale_mode) || !r0->converts)
		return 0;
	const int64_t G = r0->group.size;
	if (G < 16 || G > 8 * GROUP_MAX_TEAM || (G & (G - 1)))
		return 0;
	int side1;
	if (fp8kv_mode_grouped(r1->scale_mode) && group_same_recipe(r0, r1))
		side1 = GROUP_SIDE1_GROUPS;
	else if (!r1->converts && r1->cache_dtype == w->input_dtype &&
		 r1->scale_mode == FP8KV_SCALE_ONE)
		side1 = GROUP_SIDE1_COPY;
	else
		return 0;
	int64_t units = 0;
	for (int i = 0; i < 2; i++) {
		const fp8kv_plan_side *sd = &w->side[i];
		if (!group_side_vectorizable(sd, in_size))
			return 0;
		const int64_t nvec = sd->head_dim / (16 / in_size);
		if (nvec > 2 * GROUP_MAX_TEAM)
			return 0;
		units = nvec > units ? nvec : units;
	}
	const int lanes_log2 = group_team_log2(G / 8);
	/* Two vectors per lane for rows of 8 vectors or more, in a team half
	 * as wide, as the specialized kernel (K-VPL2), unless the launch would
	 * then have blocks for fewer than a quarter of the multiprocessors
	 * (decode: one per lane in twice the blocks, K-GRID) or the team
	 * would be narrower than a group; rows past MAX_TEAM vectors take two
	 * whatever the launch. */
	int vpl = 1;
	if (units > GROUP_MAX_TEAM) {
		vpl = 2;
	} else if (units >= 8) {
		const int t2 = group_team_log2((units + 1) / 2);
		const int64_t per_block = GROUP_BLOCK >> t2;
		const int64_t pairs = w->num_tokens * w->num_heads;
		const int64_t blocks = (pairs + per_block - 1) / per_block;
		if (t2 >= lanes_log2 && blocks >= sm_count / 4)
			vpl = 2;
	}
	const int team_log2 = group_team_log2((units + vpl - 1) / vpl);
	if (team_log2 < lanes_log2)
		return 0; /* a group wider than the team: only with VPL 2 and rows past 32 */
	/* a copy beside groups is DeepSeek's record (plan_mla.c: FP8KV_GROUP_F32
	 * tiles of FP8 codes, 512 + 64 values), the one such kernel built */
	if (side1 == GROUP_SIDE1_COPY &&
	    (vpl != 2 || r0->group.rule != FP8KV_CV_GROUP_F32 ||
	     group_elem_of(r0->cache_dtype) != GROUP_ELEM_FP8))
		return 0;
	c->kernel = GROUP_KERNEL_GROUPS;
	c->team_log2 = team_log2;
	c->elem = group_elem_of(r0->cache_dtype);
	c->rule = r0->group.rule;
	c->side1 = side1;
	c->vpl = vpl;
	c->group_lanes_log2 = lanes_log2;
	return 1;
}

/*
 * The kernel for plan w on a GPU of sm_count multiprocessors.  The
 * general kernel's team covers the widest side: its vectors (or
 * elements) for a side of section 7, its groups for a grouped side (one
 * lane per group, element by element).
 */
static inline void group_choose(const fp8kv_write_plan *w, int sm_count, group_choice *c)
{
	const fp8kv_plan_side *s0 = &w->side[FP8KV_SIDE_KEY], *s1 = &w->side[FP8KV_SIDE_VALUE];
	c->kernel = GROUP_KERNEL_SIDES;
	c->team_log2 = 0;
	c->vectorized[0] = c->vectorized[1] = 0;
	c->elem = GROUP_ELEM_FP8;
	c->rule = 0;
	c->side1 = GROUP_SIDE1_GROUPS;
	c->vpl = 1;
	c->group_lanes_log2 = 0;
	if (!fp8kv_mode_grouped(s0->recipe.scale_mode) &&
	    !fp8kv_mode_grouped(s1->recipe.scale_mode) && group_same_recipe(&s0->recipe, &s1->recipe)) {
		c->kernel = GROUP_KERNEL_ROWS;
		return;
	}
	if (group_fast_choice(w, sm_count, c))
		return;
	int64_t units = 1;
	for (int i = 0; i < 2; i++) {
		const fp8kv_plan_side *sd = &w->side[i];
		int64_t u;
		if (fp8kv_mode_grouped(sd->recipe.scale_mode)) {
			u = sd->head_dim / sd->recipe.group.size;
		} else {
			/* launch_policy.h's side_vectorizable: 16 / in_size codes
			 * or copied values per vector */
			const int64_t ve = 16 / w->input_size;
			const int64_t out = ve * sd->recipe.cache_size;
			c->vectorized[i] = sd->head_dim % ve == 0 && (uintptr_t)sd->input % 16 == 0 &&
					   sd->input_stride_token % ve == 0 &&
					   sd->input_stride_head % ve == 0 &&
					   (uintptr_t)sd->cache % (uintptr_t)out == 0 &&
					   sd->cache_stride_block % ve == 0 &&
					   sd->cache_stride_slot % ve == 0 &&
					   sd->cache_stride_head % ve == 0;
			u = c->vectorized[i] ? sd->head_dim / ve : sd->head_dim;
		}
		units = u > units ? u : units;
	}
	c->team_log2 = group_team_log2(units);
}

#endif /* FP8KV_HIP_GROUP_POLICY_H */
