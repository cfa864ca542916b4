/* SPDX-License-Identifier: MIT */
/*
 * test_group_policy.c - hip/group_policy.h's choice of kernel for the
 * grouped and MLA writes (K-GROUP-KERNELS), on the CPU: plain C, no GPU
 * runtime.  Each plan is built by hand and each expected choice worked out
 * by hand from the rules in group_policy.h's comments (lanes per group
 * G / 8, two vectors per lane from rows of 8 vectors unless the launch
 * would have blocks for fewer than a quarter of the multiprocessors, rows
 * past 32 vectors always two, at most 64 vectors), not by the code under
 * test.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "group_policy.h"

static int failures;

/* A plan of T tokens x H heads, both sides grouped by (rule, G) into
 * cache format fmt (NHD, contiguous), from input dtype in, at 16-byte
 * aligned addresses. */
static fp8kv_write_plan grouped(int in, int64_t T, int64_t H, int64_t D, int fmt, int rule,
				int64_t G)
{
	fp8kv_write_plan w;
	memset(&w, 0, sizeof w);
	w.num_tokens = T;
	w.num_heads = H;
	w.block_size = 16;
	w.num_blocks = T / 16 + 1;
	w.input_dtype = in;
	w.input_size = in == FP8KV_CV_F32 ? 4 : 2;
	for (int i = 0; i < 2; i++) {
		fp8kv_plan_side *sd = &w.side[i];
		const int64_t row = fmt == FP8KV_CV_E2M1 ? D / 2 : D;
		sd->recipe.cache_dtype = fmt;
		sd->recipe.cache_size = 1;
		sd->recipe.converts = 1;
		sd->recipe.scale_mode = FP8KV_SCALE_GROUP;
		sd->recipe.group.rule = rule;
		sd->recipe.group.size = (int32_t)G;
		sd->recipe.group.scale_bytes = rule == FP8KV_CV_GROUP_F32 ? 4 : 1;
		sd->recipe.group.divisor = 448.0f;
		sd->recipe.group.scale_floor = 0x1p-126f;
		sd->input = (const unsigned char *)(uintptr_t)(0x100000u * (unsigned)(i + 1));
		sd->cache = (unsigned char *)(uintptr_t)(0x10000000u * (unsigned)(i + 1));
		sd->head_dim = D;
		sd->input_stride_head = D;
		sd->input_stride_token = H * D;
		sd->cache_stride_head = row;
		sd->cache_stride_slot = H * row;
		sd->cache_stride_block = 16 * H * row;
	}
	return w;
}

/* An MLA write of T tokens (512 + 64, one head): DS (side 0 F32 tiles of
 * 128 into e4m3fn, side 1 a bf16 copy at byte 528 of a 656-byte entry) or
 * plain (both sides e4m3fn with a tensor scale, 576-byte entries). */
static fp8kv_write_plan mla(int64_t T, int ds)
{
	fp8kv_write_plan w = grouped(FP8KV_CV_BF16, T, 1, 512, FP8KV_CV_E4M3FN,
				     FP8KV_CV_GROUP_F32, 128);
	fp8kv_plan_side *lat = &w.side[0], *pe = &w.side[1];
	const int64_t entry = ds ? 656 : 576;
	pe->head_dim = 64;
	pe->input = lat->input + 1024;
	pe->input_stride_token = lat->input_stride_token = 576;
	lat->cache_stride_slot = entry;
	lat->cache_stride_block = 16 * entry;
	if (ds) {
		memset(&pe->recipe, 0, sizeof pe->recipe);
		pe->recipe.cache_dtype = FP8KV_CV_BF16;
		pe->recipe.cache_size = 2;
		pe->recipe.scale_mode = FP8KV_SCALE_ONE;
		pe->cache = lat->cache + 528;
		pe->cache_stride_slot = entry / 2;
		pe->cache_stride_block = 16 * entry / 2;
	} else {
		for (int i = 0; i < 2; i++) {
			memset(&w.side[i].recipe.group, 0, sizeof w.side[i].recipe.group);
			w.side[i].recipe.scale_mode = FP8KV_SCALE_TENSOR;
		}
		pe->cache = lat->cache + 512;
		pe->cache_stride_slot = entry;
		pe->cache_stride_block = 16 * entry;
	}
	return w;
}

/* kernel, then for GROUP_KERNEL_GROUPS: team_log2, vpl, group_lanes_log2,
 * side1, elem; for GROUP_KERNEL_SIDES: team_log2 */
static void expect(const char *what, const fp8kv_write_plan *w, int sm, int kernel, int team_log2,
		   int vpl, int lanes_log2, int side1, int elem)
{
	group_choice c;
	group_choose(w, sm, &c);
	int ok = c.kernel == kernel;
	if (ok && kernel == GROUP_KERNEL_GROUPS)
		ok = c.team_log2 == team_log2 && c.vpl == vpl && c.group_lanes_log2 == lanes_log2 &&
		     c.side1 == side1 && c.elem == elem;
	else if (ok && kernel == GROUP_KERNEL_SIDES)
		ok = c.team_log2 == team_log2;
	printf("%s %-48s kernel %d team 2^%d vpl %d lanes 2^%d side1 %d elem %d\n",
	       ok ? "ok  " : "FAIL", what, c.kernel, c.team_log2, c.vpl, c.group_lanes_log2, c.side1,
	       c.elem);
	failures += !ok;
}

int main(void)
{
	const int bf16 = FP8KV_CV_BF16, e4m3 = FP8KV_CV_E4M3FN, e2m1 = FP8KV_CV_E2M1;
	const int floor_ = FP8KV_CV_GROUP_E8M0_FLOOR;
	fp8kv_write_plan w;

	/* 16 vectors a row, G 32 (4 lanes); 8192 blocks of 32 teams of 8 */
	w = grouped(bf16, 32768, 8, 128, e4m3, floor_, 32);
	expect("MXFP8 32768x8x128", &w, 132, GROUP_KERNEL_GROUPS, 3, 2, 2, GROUP_SIDE1_GROUPS,
	       GROUP_ELEM_FP8);
	/* decode: one block of pairs, fewer than 132 / 4: one vector per lane */
	w = grouped(bf16, 1, 8, 128, e4m3, floor_, 32);
	expect("MXFP8 decode 1x8x128", &w, 132, GROUP_KERNEL_GROUPS, 4, 1, 2, GROUP_SIDE1_GROUPS,
	       GROUP_ELEM_FP8);
	/* 64x8x128: 512 pairs, 16 blocks of 32 < 33: one per lane on an H100,
	 * two on a GPU of 64 multiprocessors (16 >= 16) */
	w = grouped(bf16, 64, 8, 128, e4m3, floor_, 32);
	expect("MXFP8 decode 64x8x128, 132 SMs", &w, 132, GROUP_KERNEL_GROUPS, 4, 1, 2,
	       GROUP_SIDE1_GROUPS, GROUP_ELEM_FP8);
	expect("MXFP8 decode 64x8x128, 64 SMs", &w, 64, GROUP_KERNEL_GROUPS, 3, 2, 2,
	       GROUP_SIDE1_GROUPS, GROUP_ELEM_FP8);
	/* NVFP4: G 16 (2 lanes), e2m1 rows of 64 bytes */
	w = grouped(FP8KV_CV_F16, 32768, 8, 128, e2m1, FP8KV_CV_GROUP_NVFP4, 16);
	expect("NVFP4 32768x8x128", &w, 132, GROUP_KERNEL_GROUPS, 3, 2, 1, GROUP_SIDE1_GROUPS,
	       GROUP_ELEM_E2M1);
	/* int8 per row: a group of 16 lanes, wider than a VPL 2 team of 8 */
	w = grouped(bf16, 32768, 8, 128, FP8KV_CV_INT8, FP8KV_CV_GROUP_F32, 128);
	expect("INT8 32768x8x128, G 128", &w, 132, GROUP_KERNEL_GROUPS, 4, 1, 4,
	       GROUP_SIDE1_GROUPS, GROUP_ELEM_INT8);
	/* DS: 64 vectors, always two per lane, a team of 32, tiles of 16 lanes */
	w = mla(32768, 1);
	expect("MLA DS 32768", &w, 132, GROUP_KERNEL_GROUPS, 5, 2, 4, GROUP_SIDE1_COPY,
	       GROUP_ELEM_FP8);
	w = mla(1, 1);
	expect("MLA DS decode 1", &w, 132, GROUP_KERNEL_GROUPS, 5, 2, 4, GROUP_SIDE1_COPY,
	       GROUP_ELEM_FP8);
	/* plain: one recipe of section 7 on both sides */
	w = mla(64, 0);
	expect("MLA plain 64", &w, 132, GROUP_KERNEL_ROWS, 0, 0, 0, 0, 0);

	/* the general kernel: a lane per group, the widest side's groups */
	w = grouped(FP8KV_CV_F32, 256, 8, 128, e4m3, floor_, 32);
	expect("f32 input: 4 groups", &w, 132, GROUP_KERNEL_SIDES, 2, 0, 0, 0, 0);
	w = grouped(bf16, 256, 8, 128, e4m3, floor_, 32);
	w.side[1].input += 2;
	expect("value input off its 16 bytes", &w, 132, GROUP_KERNEL_SIDES, 2, 0, 0, 0, 0);
	w = grouped(bf16, 256, 2, 512, e4m3, FP8KV_CV_GROUP_F32, 512);
	expect("G 512: one group", &w, 132, GROUP_KERNEL_SIDES, 0, 0, 0, 0, 0);
	w = grouped(bf16, 256, 2, 1024, e4m3, floor_, 128);
	expect("128 vectors a row: 8 groups", &w, 132, GROUP_KERNEL_SIDES, 3, 0, 0, 0, 0);
	w = grouped(bf16, 256, 8, 128, e4m3, floor_, 32);
	w.side[1].recipe.group.rule = FP8KV_CV_GROUP_E8M0_RCEIL;
	expect("sides of two rules", &w, 132, GROUP_KERNEL_SIDES, 2, 0, 0, 0, 0);
	w = mla(64, 1);
	w.side[1].cache_stride_slot = 327; /* a RoPE copy off its 16 bytes */
	expect("MLA DS entries of 654 bytes", &w, 132, GROUP_KERNEL_SIDES, 5, 0, 0, 0, 0);

	printf("%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
