// SPDX-License-Identifier: MIT
/*
 * write_params.h - what a cache write kernel receives: the plan as the
 * front end made it (lib/write_plan.h) and what the launch adds
 * (launch_policy.h fills it in).
 */
#ifndef FP8KV_HIP_WRITE_PARAMS_H
#define FP8KV_HIP_WRITE_PARAMS_H

#include <stdint.h>

#include "error_ring.h"
#include "hip_compat.h"
#include "write_plan.h"

typedef struct write_params {
	fp8kv_write_plan plan;
	error_sink errors;
	int vectorized[2];  // the side's rows are 16-byte aligned: vector path
	int team_log2;
	int group_lanes_log2;  // the fast grouped kernel: lanes per group (group_policy.h)
	// pair / num_heads and slot / block_size by multiply and shift, when
	// pairs and slots fit in 32 bits (index32 != 0): see magic_for()
	int index32;
	uint32_t heads_magic, heads_shift, block_size_magic, block_size_shift;
} write_params;

// The recipe the kernels write both sides with, the key side's: the front
// end gives both sides one (A-RECIPE), and a kernel is specialized on it.
static __host__ __device__ __forceinline__ const fp8kv_row_recipe &plan_recipe(
	const fp8kv_write_plan &w)
{
	return w.side[FP8KV_SIDE_KEY].recipe;
}

#endif /* FP8KV_HIP_WRITE_PARAMS_H */
