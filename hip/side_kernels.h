// SPDX-License-Identifier: MIT
/*
 * side_kernels.h - the general kernel of plans whose sides carry recipes
 * of their own (fp8kv.h sections 8 and 9, A-RECIPE), write_sides_kernel:
 * any input type, alignment, stride and row length, 64-bit offsets, each
 * side by its own recipe:
 *   - grouped (FP8KV_SCALE_GROUP): each lane of the team writes whole
 *     groups, element by element (group_rows.h);
 *   - a row of section 7 (FP8 with a scale mode of section 7, or a copy):
 *     write_kernels.h's write_row, with the side's own format.
 * Teams, the grid-stride loop, the counters and the out-of-range report
 * are the general cache write kernel's (write_kernels.h).  The fast
 * grouped kernel (group_fast.h) serves the common shapes;
 * group_policy.h decides (K-GROUP-KERNELS).
 */
#ifndef FP8KV_HIP_SIDE_KERNELS_H
#define FP8KV_HIP_SIDE_KERNELS_H

#include <stdint.h>

#include "device_common.h"
#include "error_ring.h"
#include "fp8_convert.h"
#include "group_rows.h"
#include "hip_compat.h"
#include "write_kernels.h"
#include "write_params.h"
#include "write_plan.h"

// Row (t, h) of one side, by its own recipe; v0: the lane's first vector
// of a vectorised row of section 7 (first_vector).  Every lane of the warp
// calls this with the same side (the amax shuffles).
template <int DT>
static __device__ __forceinline__ void write_side(const write_params &p, const int side,
						  const bool write, const int64_t t, const int64_t h,
						  const int64_t block, const int64_t offset,
						  const int lane, const int team, const uint4 v0,
						  unsigned long long &overflow_total,
						  unsigned long long &nan_total)
{
	const fp8kv_plan_side &sd = p.plan.side[side];
	const fp8kv_row_recipe &r = sd.recipe;
	if (fp8kv_mode_grouped(r.scale_mode)) {
		unsigned int overflows = 0, nans = 0;
		float top = 0.0f;
		if (write) {
			if (p.plan.overflow_count || p.plan.nan_count)
				top = group_row_any<DT, true>(sd, p.plan.saturate, t, h, block, offset, lane,
							      team, overflows, nans);
			else
				top = group_row_any<DT, false>(sd, p.plan.saturate, t, h, block, offset,
							       lane, team, overflows, nans);
		}
		if (sd.amax) {  // uniform: every lane shuffles
			top = team_max(top, team);
			if (write && lane == 0)
				raise_float(sd.amax + h, top);
		}
		overflow_total += overflows;
		nan_total += nans;
		return;
	}
	const fp8kv_fp8_format f = fp8kv_format_of(r.converts ? r.cache_dtype : FP8KV_CV_E4M3FN);
	if (r.converts)
		write_row<DT, true>(p, side, write, t, h, block, offset, lane, team, v0, f,
				    fp8kv_format_max(f), overflow_total, nan_total);
	else
		write_row<DT, false>(p, side, write, t, h, block, offset, lane, team, v0, f,
				     fp8kv_format_max(f), overflow_total, nan_total);
}

// Each side by write_side, with its own recipe.
template <int DT>
struct side_rows {
	const write_params &p;
	__device__ __forceinline__ void operator()(const int side, const bool write, const int64_t t,
						   const int64_t h, const int64_t block,
						   const int64_t offset, const int lane, const int team,
						   const uint4 v0, unsigned long long &overflows,
						   unsigned long long &nans) const
	{
		write_side<DT>(p, side, write, t, h, block, offset, lane, team, v0, overflows, nans);
	}
};

template <int DT>
static __global__ void __launch_bounds__(BLOCK) write_sides_kernel(const write_params p)
{
	__shared__ block_tally tally;
	block_begin(p, tally);
	write_pairs<DT, true>(p, tally, side_rows<DT>{p});
}

#endif /* FP8KV_HIP_SIDE_KERNELS_H */
