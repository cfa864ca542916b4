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

template <int DT>
static __global__ void __launch_bounds__(BLOCK) write_sides_kernel(const write_params p)
{
	__shared__ block_tally tally;
	block_begin(p, tally);

	const int team = 1 << p.team_log2;
	const int lane = (int)threadIdx.x & (team - 1);
	const int64_t teams_per_block = BLOCK >> p.team_log2;
	const int64_t team_in_block = (int64_t)(threadIdx.x >> p.team_log2);
	const int64_t pairs = p.plan.num_tokens * p.plan.num_heads;
	const int64_t stride = (int64_t)gridDim.x * teams_per_block;
	unsigned long long overflows = 0, nans = 0;

	// block-uniform: every lane runs every iteration (the shuffles)
	for (int64_t base = (int64_t)blockIdx.x * teams_per_block; base < pairs; base += stride) {
		const int64_t pair = base + team_in_block;
		int64_t t = 0, h = 0, block = 0, offset = 0;
		uint4 k0 = make_uint4(0u, 0u, 0u, 0u), v0 = k0;
		bool write = false;
		if (pair < pairs) {
			t = div_nonneg(pair, p.plan.num_heads);
			h = pair - t * p.plan.num_heads;
			const int64_t raw = fp8kv_raw_slot(&p.plan.slots, t);
			k0 = first_vector<DT>(p.plan.side[0], p.vectorized[0], t, h, lane);
			v0 = first_vector<DT>(p.plan.side[1], p.vectorized[1], t, h, lane);
			int64_t slot = 0;
			const int kind = fp8kv_resolve_slot(&p.plan.slots, raw, &slot);
			if (kind == FP8KV_SLOT_WRITE) {
				write = true;
				block = div_nonneg(slot, p.plan.block_size);
				offset = slot - block * p.plan.block_size;
			} else if (fp8kv_slot_is_error(kind) && h == 0 && lane == 0) {
				record_out_of_range(p.errors, t);
				tally.error = 1;
			}
		}
		write_side<DT>(p, FP8KV_SIDE_KEY, write, t, h, block, offset, lane, team, k0,
			       overflows, nans);
		write_side<DT>(p, FP8KV_SIDE_VALUE, write, t, h, block, offset, lane, team, v0,
			       overflows, nans);
	}

	block_end<true>(p, tally, overflows, nans);
}

#endif /* FP8KV_HIP_SIDE_KERNELS_H */
