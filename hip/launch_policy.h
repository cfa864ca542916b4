// SPDX-License-Identifier: MIT
/*
 * launch_policy.h - which write kernel serves a plan, with how many lanes
 * per team and how many blocks; and the launch.  Host code.  The grid
 * rules were each measured (docs/decisions.md cites the numbers).
 */
#ifndef FP8KV_HIP_LAUNCH_POLICY_H
#define FP8KV_HIP_LAUNCH_POLICY_H

#include <stdint.h>

#include "context.h"
#include "device_common.h"
#include "device_convert.h"
#include "hip_compat.h"
#include "write_kernels.h"
#include "write_params.h"
#include "write_plan.h"
#include "write_specialized.h"

static unsigned int grid_for(const hip_context *c, int64_t units, int64_t per_block)
{
	const int64_t cap = (int64_t)c->sm_count * BLOCKS_PER_SM;
	int64_t blocks = (units + per_block - 1) / per_block;
	if (blocks > cap)
		blocks = cap;
	return (unsigned int)(blocks < 1 ? 1 : blocks);
}

// Blocks for the specialized kernel, which is sized for
// VECTOR_MIN_BLOCKS resident blocks per multiprocessor (a wave): a launch of
// up to SHORT_LAUNCH_WAVES waves runs as one wave whose blocks loop, so that
// the fixed costs of a block (its start, the scale's reciprocal, its count
// in finish_launch) are paid once per resident block and no partial wave
// trails.
static unsigned int vector_grid_for(const hip_context *c, int64_t pairs, int team_log2)
{
	const unsigned int grid = grid_for(c, pairs, (int64_t)(BLOCK >> team_log2));
	const unsigned int wave = (unsigned int)c->sm_count * VECTOR_MIN_BLOCKS;
	return grid > wave && grid <= SHORT_LAUNCH_WAVES * wave ? wave : grid;
}

// The multiplier and shift of div_magic for 1 <= d < 2^31:
// shift = ceil(log2 d), magic = floor(2^32 (2^shift - d) / d) + 1.
static void magic_for(int64_t d, uint32_t *magic, uint32_t *shift)
{
	uint32_t l = 0;
	while (((int64_t)1 << l) < d)
		l++;
	*shift = l;
	*magic = (uint32_t)(((((uint64_t)1 << l) - (uint64_t)d) << 32) / (uint64_t)d + 1);
}

// May this side use 16-byte input vectors (and 16 / in_size-element cache
// stores)?
static int side_vectorizable(const fp8kv_plan_side *sd, int64_t in_size, int64_t cache_size)
{
	const int64_t ve = 16 / in_size;
	const uintptr_t out_bytes = (uintptr_t)(ve * cache_size);
	return sd->head_dim % ve == 0 && (uintptr_t)sd->input % 16 == 0 &&
	       sd->input_stride_token % ve == 0 && sd->input_stride_head % ve == 0 &&
	       (uintptr_t)sd->cache % out_bytes == 0 && sd->cache_stride_block % ve == 0 &&
	       sd->cache_stride_slot % ve == 0 && sd->cache_stride_head % ve == 0;
}

// log2 of a team's lanes for a row of `units` vectors (or elements), one
// per lane: the smallest power of two that covers them, at most MAX_TEAM
static int team_log2_for(int64_t units)
{
	int l = 0;
	while ((1 << l) < MAX_TEAM && (int64_t)1 << l < units)
		l++;
	return l;
}

// The specialized kernel's shapes: one vector per lane, or two (in turn
// pipelined, or in a long launch that tests the inputs against a limit)
enum { SHAPE_VPL1, SHAPE_VPL2, SHAPE_VPL2_PIPELINED, SHAPE_VPL2_LIMIT };

// The specialized kernel's shape (SHAPE_*), team width and grid for `pairs`
// rows of `units` vectors:
// - rows of 8 vectors or more take 2 per lane, in a team half as wide,
//   except in a launch that would then have blocks for fewer than a
//   quarter of the multiprocessors (small decode batches): there 1 per
//   lane, in twice the blocks, shortens each lane's chain of latencies.
//   At 64 blocks (256 tokens x 8 heads on 132 multiprocessors) doubling
//   the blocks measured slower (K-GRID);
// - a launch of 2 per lane of more than one wave and up to PIPELINED_WAVES
//   runs as one wave of pipelined blocks, so that no partial wave trails
//   and a block's fixed costs (its start, the scale's reciprocal, its
//   count) are paid once.  Longer launches keep one pair per team: the
//   hardware then balances the multiprocessors' work, which a wave's fixed
//   split of it does not (K-GRID).  They test 16-bit inputs against
//   input_limit(): fewer instructions per vector, for a limit worked out
//   first, which cost shorter launches more than it saved (K-LIMIT);
// - dynamic scales are not pipelined: a row's scale is a chain of
//   shuffles and arithmetic on its own inputs, which the next pair's loads
//   do not shorten, and the pipelined block's fewer warps leave it less
//   hidden (K-DYNAMIC-SHAPE);
// - nor are plans with a swa_mapping, whose second load per pair the
//   pipelined kernel would hold in registers it has none to spare for
//   (K-OPTIONS).
static unsigned int specialized_grid_for(const hip_context *c, int64_t pairs, int64_t units,
					 int scale_mode, int swa, int *shape, int *team_log2)
{
	if (units >= 8) {
		*team_log2 = team_log2_for((units + 1) / 2);
		const int64_t per_block = BLOCK >> *team_log2;
		const int64_t blocks = (pairs + per_block - 1) / per_block;  // not capped
		const int64_t wave = (int64_t)c->sm_count * PIPELINED_MIN_BLOCKS;
		if (blocks > wave && blocks <= PIPELINED_WAVES * wave &&
		    !fp8kv_mode_computed(scale_mode) && !swa) {
			*shape = SHAPE_VPL2_PIPELINED;
			return (unsigned int)wave;
		}
		if (blocks >= c->sm_count / 4 || units > MAX_TEAM) {
			*shape = blocks > PIPELINED_WAVES * wave ? SHAPE_VPL2_LIMIT : SHAPE_VPL2;
			return vector_grid_for(c, pairs, *team_log2);
		}
	}
	*shape = SHAPE_VPL1;
	*team_log2 = team_log2_for(units);
	return vector_grid_for(c, pairs, *team_log2);
}

// May write_specialized_kernel serve this plan, whose rows are in vectors?
// Its index arithmetic is 32-bit (fp8kv_input_row32 and the others):
// pairs and slots (index32), and the largest element offset of a row
// within the input, a cache block and a scale cache block.  Larger plans
// take the general kernel.
static int specialized_eligible(const write_params *p)
{
	const fp8kv_write_plan *w = &p->plan;
	if (!p->index32)
		return 0;
	const int64_t limit = (int64_t)1 << 32;
	for (int i = 0; i < 2; i++) {
		const fp8kv_plan_side *sd = &w->side[i];
		const int64_t in_end = (w->num_tokens - 1) * sd->input_stride_token +
				       (w->num_heads - 1) * sd->input_stride_head + sd->head_dim;
		const int64_t row_end = (w->block_size - 1) * sd->cache_stride_slot +
					(w->num_heads - 1) * sd->cache_stride_head + sd->head_dim;
		const int64_t scale_end = (w->block_size - 1) * sd->scale_stride_slot +
					  (w->num_heads - 1) * sd->scale_stride_head + 1;
		if (in_end >= limit || row_end >= limit || sd->cache_stride_block >= limit ||
		    scale_end >= limit || sd->scale_stride_block >= limit)
			return 0;
	}
	return 1;
}

// Where a cache write launches; dependent: as a programmatic dependent
// launch (fp8kv_begin_after_prior_grid), where the code allows it.
typedef struct write_launch {
	unsigned int grid;
	hipStream_t stream;
	int dependent;
} write_launch;

template <typename Kernel>
static hipError_t launch_write(Kernel kernel, const write_launch &at, const write_params &p)
{
	return fp8kv_launch(kernel, at.grid, BLOCK, at.stream, at.dependent, p);
}

// NVIDIA GPUs from sm_89 convert some formats in hardware, so the format is
// a template argument there; elsewhere one kernel serves every format,
// read at run time (a quarter of the code to compile).  Host and device
// passes must agree, so this is the compiler's platform, not the target.
#if defined(__NVCC__)
#define PER_FORMAT_KERNELS 1
#else
#define PER_FORMAT_KERNELS 0
#endif
#define FORMAT_AT_RUN_TIME (-1)

template <int DT, int FMT, int SCALE>
static hipError_t launch_specialized_rows(const write_launch &at, const write_params &p,
					  int shape, int full, int options)
{
	// the limit serves 16-bit inputs of the formats with hardware codes
	// (not HW_FORMAT: host and device code must launch the same kernels),
	// with a scale known for the whole launch
	constexpr bool LIMIT = PER_FORMAT_KERNELS && DT != FP8KV_CV_F32 &&
			       (FMT == FP8KV_CV_E4M3FN || FMT == FP8KV_CV_E5M2) &&
			       !fp8kv_mode_per_row(SCALE);
	// the options take the shapes' general forms only: fewer kernels
	if (options) {
#define WITH_OPTIONS(VPL, PIPELINED) \
	launch_write(write_specialized_kernel<DT, FMT, SCALE, true, VPL, false, PIPELINED, false>, at, p)
		switch (shape) {
		case SHAPE_VPL1: return WITH_OPTIONS(1, false);
		case SHAPE_VPL2_PIPELINED: return WITH_OPTIONS(2, true);
		default: return WITH_OPTIONS(2, false);
		}
#undef WITH_OPTIONS
	}
#define SPECIALIZED(VPL, FULL, PIPELINED, LIM) \
	launch_write(write_specialized_kernel<DT, FMT, SCALE, false, VPL, FULL, PIPELINED, LIM>, at, p)
	switch (shape * 2 + !!full) {
	case SHAPE_VPL1 * 2: return SPECIALIZED(1, false, false, false);
	case SHAPE_VPL1 * 2 + 1: return SPECIALIZED(1, true, false, false);
	case SHAPE_VPL2 * 2: return SPECIALIZED(2, false, false, false);
	case SHAPE_VPL2 * 2 + 1: return SPECIALIZED(2, true, false, false);
	case SHAPE_VPL2_LIMIT * 2: return SPECIALIZED(2, false, false, LIMIT);
	case SHAPE_VPL2_LIMIT * 2 + 1: return SPECIALIZED(2, true, false, LIMIT);
	case SHAPE_VPL2_PIPELINED * 2: return SPECIALIZED(2, false, true, false);
	default: return SPECIALIZED(2, true, true, false);
	}
#undef SPECIALIZED
}

template <int DT, int FMT>
static hipError_t launch_specialized_format(const write_launch &at, const write_params &p,
					    int shape, int full, int options)
{
	switch (plan_recipe(p.plan).scale_mode) {
	case FP8KV_SCALE_ONE:
		return launch_specialized_rows<DT, FMT, FP8KV_SCALE_ONE>(at, p, shape, full, options);
	case FP8KV_SCALE_TENSOR:
		return launch_specialized_rows<DT, FMT, FP8KV_SCALE_TENSOR>(at, p, shape, full,
									    options);
	case FP8KV_SCALE_HEAD:
		return launch_specialized_rows<DT, FMT, FP8KV_SCALE_HEAD>(at, p, shape, full, options);
	default:
		return launch_specialized_rows<DT, FMT, FP8KV_SCALE_TOKEN_HEAD>(at, p, shape, full,
										options);
	}
}

// full: every lane of a team has VPL vectors in both rows; options: the
// counters, amax or swa_mapping are wanted
template <int DT>
static hipError_t launch_specialized(const write_launch &at, const write_params &p, int shape,
				     int full, int options)
{
#if PER_FORMAT_KERNELS
	switch (plan_recipe(p.plan).cache_dtype) {
	case FP8KV_E4M3FNUZ:
		return launch_specialized_format<DT, FP8KV_CV_E4M3FNUZ>(at, p, shape, full, options);
	case FP8KV_E5M2:
		return launch_specialized_format<DT, FP8KV_CV_E5M2>(at, p, shape, full, options);
	case FP8KV_E5M2FNUZ:
		return launch_specialized_format<DT, FP8KV_CV_E5M2FNUZ>(at, p, shape, full, options);
	default:
		return launch_specialized_format<DT, FP8KV_CV_E4M3FN>(at, p, shape, full, options);
	}
#else
	return launch_specialized_format<DT, FORMAT_AT_RUN_TIME>(at, p, shape, full, options);
#endif
}

/*
 * Fills in p's launch fields (vectorized, team_log2, the magic divisors)
 * and launches the kernel that serves p.plan (K-KERNELS):
 *   - an FP8 cache with both sides in vectors of at most 2 * MAX_TEAM per
 *     row, within 32-bit offsets (specialized_eligible): the specialized
 *     kernel, with the run-time options (counters, amax, swa_mapping) when
 *     the plan asks for any;
 *   - anything else: the general kernel.
 */
static hipError_t launch_cache_write(const hip_context *c, write_params &p, hipStream_t stream)
{
	const fp8kv_write_plan &w = p.plan;
	const fp8kv_row_recipe &r = plan_recipe(w);
	const int64_t ve = 16 / w.input_size;
	const int64_t pairs = w.num_tokens * w.num_heads;
	int64_t units = 1;
	for (int i = 0; i < 2; i++) {
		const fp8kv_plan_side *sd = &w.side[i];
		p.vectorized[i] = side_vectorizable(sd, w.input_size, r.cache_size);
		const int64_t u = p.vectorized[i] ? sd->head_dim / ve : sd->head_dim;
		units = u > units ? u : units;
	}
	p.team_log2 = team_log2_for(units);
	p.index32 = pairs < ((int64_t)1 << 32) && w.slots.num_slots < ((int64_t)1 << 32) &&
		    w.num_heads < ((int64_t)1 << 31) && w.block_size < ((int64_t)1 << 31);
	if (p.index32) {
		magic_for(w.num_heads, &p.heads_magic, &p.heads_shift);
		magic_for(w.block_size, &p.block_size_magic, &p.block_size_shift);
	}

	write_launch at = {grid_for(c, pairs, (int64_t)(BLOCK >> p.team_log2)), stream,
			   c->dependent_launch};
	const int vector = r.converts && p.vectorized[0] && p.vectorized[1] &&
			   units <= 2 * MAX_TEAM;
	if (vector && specialized_eligible(&p)) {
		int shape;
		at.grid = specialized_grid_for(c, pairs, units, r.scale_mode,
					       w.slots.swa_mapping != NULL, &shape, &p.team_log2);
		const int64_t row_vectors = (int64_t)(shape == SHAPE_VPL1 ? 1 : 2) << p.team_log2;
		const int full = w.side[0].head_dim / ve == row_vectors &&
				 w.side[1].head_dim / ve == row_vectors;
		const int options = w.overflow_count || w.nan_count || w.side[0].amax ||
				    w.side[1].amax || w.slots.swa_mapping;
		switch (w.input_dtype) {
		case FP8KV_F32:
			return launch_specialized<FP8KV_CV_F32>(at, p, shape, full, options);
		case FP8KV_F16:
			return launch_specialized<FP8KV_CV_F16>(at, p, shape, full, options);
		default: return launch_specialized<FP8KV_CV_BF16>(at, p, shape, full, options);
		}
	}
#define GENERAL(DT, FP8) return launch_write(write_general_kernel<DT, FP8>, at, p)
	switch (w.input_dtype * 2 + !!r.converts) {
	case FP8KV_F32 * 2: GENERAL(FP8KV_CV_F32, false);
	case FP8KV_F32 * 2 + 1: GENERAL(FP8KV_CV_F32, true);
	case FP8KV_F16 * 2: GENERAL(FP8KV_CV_F16, false);
	case FP8KV_F16 * 2 + 1: GENERAL(FP8KV_CV_F16, true);
	case FP8KV_BF16 * 2: GENERAL(FP8KV_CV_BF16, false);
	default: GENERAL(FP8KV_CV_BF16, true);
	}
#undef GENERAL
}

#endif /* FP8KV_HIP_LAUNCH_POLICY_H */
