// SPDX-License-Identifier: MIT
/*
 * group_launch.h - the launch of a plan whose sides carry recipes of their
 * own (grouped writes, MLA records): group_policy.h picks the kernel, and
 * this fills in the launch fields and launches it.  Host code.
 */
#ifndef FP8KV_HIP_GROUP_LAUNCH_H
#define FP8KV_HIP_GROUP_LAUNCH_H

#include <stdint.h>

#include "context.h"
#include "device_common.h"
#include "group_fast.h"
#include "group_policy.h"
#include "hip_compat.h"
#include "launch_policy.h"
#include "side_kernels.h"
#include "write_params.h"
#include "write_plan.h"

// the fast kernel's vectors per lane and options, for one rule and
// element class
template <int DT, int RULE, int ELEM, bool TZ, int SIDE1>
static hipError_t launch_group_shape(const write_launch &at, const write_params &p, int vpl,
				     int options)
{
#define GROUP_KERNEL(VPL, OPT) \
	launch_write(write_group_kernel<DT, RULE, ELEM, TZ, VPL, OPT, SIDE1>, at, p)
	if (SIDE1 == GROUP_SIDE1_COPY)  // MLA_DS: always 2 (group_fast_choice)
		return options ? GROUP_KERNEL(2, true) : GROUP_KERNEL(2, false);
	switch (vpl * 2 + !!options) {
	case 2: return GROUP_KERNEL(1, false);
	case 3: return GROUP_KERNEL(1, true);
	case 4: return GROUP_KERNEL(2, false);
	default: return GROUP_KERNEL(2, true);
	}
#undef GROUP_KERNEL
}

// the element classes a rule takes (fp8kv.h section 8)
template <int DT, int RULE>
static hipError_t launch_group_elements(const write_launch &at, const write_params &p,
					const group_choice &ch, int options)
{
	const int tz = plan_recipe(p.plan).group.rounding == FP8KV_CV_ROUND_TOWARD_ZERO;
	switch (ch.elem) {
	case GROUP_ELEM_E2M1:
		return launch_group_shape<DT, RULE, GROUP_ELEM_E2M1, false, GROUP_SIDE1_GROUPS>(
			at, p, ch.vpl, options);
	case GROUP_ELEM_INT8:
		if (RULE != FP8KV_CV_GROUP_F32)  // not reached: the front end refuses it
			break;
		return tz ? launch_group_shape<DT, FP8KV_CV_GROUP_F32, GROUP_ELEM_INT8, true,
					       GROUP_SIDE1_GROUPS>(at, p, ch.vpl, options)
			  : launch_group_shape<DT, FP8KV_CV_GROUP_F32, GROUP_ELEM_INT8, false,
					       GROUP_SIDE1_GROUPS>(at, p, ch.vpl, options);
	default: {
		// NVFP4 takes e2m1 only (not reached): no FP8 kernel of it is built
		constexpr int ELEM = RULE == FP8KV_CV_GROUP_NVFP4 ? GROUP_ELEM_E2M1 : GROUP_ELEM_FP8;
		return launch_group_shape<DT, RULE, ELEM, false, GROUP_SIDE1_GROUPS>(at, p, ch.vpl,
										   options);
	}
	}
	return launch_write(write_sides_kernel<DT>, at, p);
}

template <int DT>
static hipError_t launch_group_fast(const write_launch &at, const write_params &p,
				    const group_choice &ch, int options)
{
	if (ch.side1 == GROUP_SIDE1_COPY)
		return launch_group_shape<DT, FP8KV_CV_GROUP_F32, GROUP_ELEM_FP8, false,
					  GROUP_SIDE1_COPY>(at, p, 2, options);
	switch (ch.rule) {
	case FP8KV_CV_GROUP_F32:
		return launch_group_elements<DT, FP8KV_CV_GROUP_F32>(at, p, ch, options);
	case FP8KV_CV_GROUP_E8M0_FLOOR:
		return launch_group_elements<DT, FP8KV_CV_GROUP_E8M0_FLOOR>(at, p, ch, options);
	case FP8KV_CV_GROUP_E8M0_RCEIL:
		return launch_group_elements<DT, FP8KV_CV_GROUP_E8M0_RCEIL>(at, p, ch, options);
	default:
		return launch_group_elements<DT, FP8KV_CV_GROUP_NVFP4>(at, p, ch, options);
	}
}

/*
 * Fills in p's launch fields and launches the kernel group_choose picks
 * for p.plan (K-GROUP-KERNELS): section 7's kernels when both sides share
 * one recipe of that section (launch_cache_write), the fast grouped
 * kernel, or the general one.
 */
static hipError_t launch_sides_write(const hip_context *c, write_params &p, hipStream_t stream)
{
	const fp8kv_write_plan &w = p.plan;
	group_choice ch;
	group_choose(&w, c->sm_count, &ch);
	if (ch.kernel == GROUP_KERNEL_ROWS)
		return launch_cache_write(c, p, stream);
	const int64_t pairs = w.num_tokens * w.num_heads;
	p.vectorized[0] = ch.vectorized[0];
	p.vectorized[1] = ch.vectorized[1];
	p.team_log2 = ch.team_log2;
	p.group_lanes_log2 = ch.group_lanes_log2;
	p.index32 = pairs < ((int64_t)1 << 32) && w.num_heads < ((int64_t)1 << 31);
	if (p.index32)
		magic_for(w.num_heads, &p.heads_magic, &p.heads_shift);
	write_launch at = {grid_for(c, pairs, (int64_t)(BLOCK >> p.team_log2)), stream,
			   c->dependent_launch};
	if (ch.kernel == GROUP_KERNEL_GROUPS) {
		// a short launch as one looping wave (K-SHORT-WAVE); every block
		// has a pair (count_block)
		at.grid = vector_grid_for(c, pairs, p.team_log2);
		const int options = w.overflow_count || w.nan_count || w.side[0].amax ||
				    w.side[1].amax || w.slots.swa_mapping;
		if (w.input_dtype == FP8KV_F16)
			return launch_group_fast<FP8KV_CV_F16>(at, p, ch, options);
		return launch_group_fast<FP8KV_CV_BF16>(at, p, ch, options);
	}
	switch (w.input_dtype) {
	case FP8KV_F32: return launch_write(write_sides_kernel<FP8KV_CV_F32>, at, p);
	case FP8KV_F16: return launch_write(write_sides_kernel<FP8KV_CV_F16>, at, p);
	default: return launch_write(write_sides_kernel<FP8KV_CV_BF16>, at, p);
	}
}

#endif /* FP8KV_HIP_GROUP_LAUNCH_H */
