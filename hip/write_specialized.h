// SPDX-License-Identifier: MIT
/*
 * write_specialized.h - the cache write's hot path, its choices made at
 * compile time: FP8 format FMT, scale mode SCALE, whether the run-time
 * options are wanted (OPTIONS: counters, k_amax/v_amax, swa_mapping), both
 * sides vectorised in rows of at most VPL vectors per lane (FULL: exactly
 * VPL in both rows, so no lane checks its vectors' bounds), and pairs,
 * slots and every element offset in 32 bits (specialized_eligible()).
 * Plans it cannot serve (64-bit offsets, unaligned rows, copies) take the
 * general kernel (write_kernels.h, K-KERNELS).  Its rows are those of
 * lib/write_plan.h (A-ROW), in their 32-bit form: a prefill launch is bound
 * by the instructions issued per 16-byte vector, and a decode launch is a
 * chain of latencies, which this kernel keeps short:
 * - a per-tensor scale is read after the first pair's loads are issued
 *   (and, when PIPELINED, the next pair's), so that its latency overlaps
 *   theirs; a per-head scale is loaded with its pair's vectors;
 * - the block counts itself finished (count_block) as soon as the slot of
 *   its last pair is resolved, and reads the count's answer only after its
 *   last stores (finish_launch), so that the atomic's round trip overlaps
 *   the conversion, its own warp's included (fp8kv_atomic_add_if keeps
 *   nvcc from copying the answer, and so waiting for it, right after the
 *   branch: K-COUNT-LATE).
 * Every scale mode divides by its reciprocal with exact correction steps
 * (divide_recip) when the scale allows (recip_ok), so a per-head or a
 * dynamic scale costs one reciprocal per row and lane, not a division per
 * element (K-SCALES).
 */
#ifndef FP8KV_HIP_WRITE_SPECIALIZED_H
#define FP8KV_HIP_WRITE_SPECIALIZED_H

#include <stdint.h>

#include "device_common.h"
#include "device_convert.h"
#include "error_ring.h"
#include "fp8_convert.h"
#include "hip_compat.h"
#include "write_params.h"
#include "write_plan.h"

#define AMAX_HEADS 64  // heads whose amax a block gathers in shared memory

// COUNT: overflows and NaN inputs are added up (the hardware path, where
// none can be, costs nothing more)
template <int DT, bool COUNT, int KIND, int VPL, bool FULL, bool LIMIT>
static __device__ __forceinline__ void convert_pair(unsigned char *const row[2],
						    const uint4 x[2][VPL], const float s[2],
						    const float rs[2], const uint32_t lane,
						    const uint32_t team, const uint32_t nvec[2],
						    const fp8kv_fp8_format f, const int saturate,
						    const uint32_t lim[2], unsigned int &overflows,
						    unsigned int &nans, const bool hw_ok = true)
{
	constexpr int VE = DT == FP8KV_CV_F32 ? 4 : 8;
#pragma unroll
	for (int i = 0; i < 2; i++)
#pragma unroll
		for (int j = 0; j < VPL; j++)
			if (FULL || lane + j * team < nvec[i])
				quantize_vec_as<DT, COUNT, KIND, LIMIT>(
					row[i] + (lane + j * team) * VE, x[i][j], s[i], rs[i], f,
					saturate, overflows, nans, hw_ok, lim[i]);
}

// What fetch_pair reads for one pair: its token t, head h, raw slot, the
// lane's input vectors and, for per-head scales, the head's scales.
template <int VPL>
struct pair_inputs {
	uint32_t t, h;
	int64_t raw;
	uint4 x[2][VPL];
	float s[2];
};

// Pair `pair` (none past `pairs`, whose raw slot stays -1).
template <int DT, int SCALE, int VPL, bool FULL>
static __device__ __forceinline__ void fetch_pair(const write_params &p, uint64_t pair,
						  uint64_t pairs, uint32_t lane, uint32_t team,
						  const uint32_t nvec[2], pair_inputs<VPL> &in)
{
	constexpr int IN = DT == FP8KV_CV_F32 ? 4 : 2;
	in.raw = -1;
	if (pair >= pairs)
		return;
	const uint32_t t = (uint32_t)div_magic((int64_t)pair, p.heads_magic, p.heads_shift);
	const uint32_t h = (uint32_t)pair - t * (uint32_t)p.plan.num_heads;
	in.t = t;
	in.h = h;
	in.raw = fp8kv_raw_slot(&p.plan.slots, t);
#pragma unroll
	for (int i = 0; i < 2; i++) {
		const fp8kv_plan_side &sd = p.plan.side[i];
		const unsigned char *src = sd.input + fp8kv_input_row32(&sd, t, h) * IN;
#pragma unroll
		for (int j = 0; j < VPL; j++)
			if (FULL || lane + j * team < nvec[i])
				in.x[i][j] = load16(src + (lane + j * team) * 16);
	}
	if (fp8kv_mode_per_row(SCALE) && fp8kv_mode_given(SCALE)) {
		in.s[0] = p.plan.side[0].scale[fp8kv_given_index(SCALE, h)];
		in.s[1] = p.plan.side[1].scale[fp8kv_given_index(SCALE, h)];
	}
}

// max |x| over the finite elements of the lane's vectors of one row,
// 0 for a lane without vectors
template <int DT, int VPL, bool FULL>
static __device__ __forceinline__ float lane_amax(const uint4 (&x)[VPL], uint32_t lane,
						  uint32_t team, uint32_t nvec)
{
	float a = 0.0f;
#pragma unroll
	for (int j = 0; j < VPL; j++)
		if (FULL || lane + j * team < nvec)
			a = max_nonneg(a, vec_amax_finite<DT>(x[j]));
	return a;
}

// fp8kv_row_scale of a computed scale, fp8kv_dynamic_scale(amax, fmax),
// without its division where K-DIV's proof holds: amax is an input value,
// so for 16-bit inputs it has at most 11 significant bits and one
// correction step from rfmax = RN(1 / fmax) gives RN(amax / fmax); fp32
// inputs take two.  fmax is within recip_exact's
// range for every format, and the quotient must be >= 2^-18 (the
// remainders then stay normal), which also keeps it above the 2^-126
// floor; smaller amax (and 0) take the division.
template <int DT>
static __device__ __forceinline__ float dynamic_scale(float amax, float fmax, float rfmax)
{
#ifdef HAVE_HW_FP8
	if (amax >= fmax * 0x1p-18f)  // exact: fmax times a power of two
		return divide_recip<DT == FP8KV_CV_F32 ? 2 : 1, false>(amax, fmax, rfmax);
#else
	(void)rfmax;
#endif
	return fp8kv_dynamic_scale(amax, fmax);
}

// FMT: the format, or FORMAT_AT_RUN_TIME (where no hardware path depends on
// it, launch_policy.h).  OPTIONS: the plan asks for the counters, for
// k_amax/v_amax or has a swa_mapping (any of them: the pointers say which).
// PIPELINED: the launch is one wave of blocks that loop
// (specialized_grid_for), and each iteration issues the next pair's loads
// before it converts its own, so that a lane keeps a pair's loads in
// flight all the way through.  The second set of vectors costs registers:
// such a block is sized for PIPELINED_MIN_BLOCKS per multiprocessor.
// LIMIT (scale one or per tensor): 16-bit inputs take the hardware path by
// input_limit(), worked out once per block (specialized_grid_for says when
// that pays).
template <int DT, int FMT, int SCALE, bool OPTIONS, int VPL, bool FULL, bool PIPELINED,
	  bool LIMIT>
static __global__ void
__launch_bounds__(BLOCK, PIPELINED ? PIPELINED_MIN_BLOCKS : VECTOR_MIN_BLOCKS)
write_specialized_kernel(const write_params p)
{
	constexpr int VE = DT == FP8KV_CV_F32 ? 4 : 8;
	constexpr bool SCALED = fp8kv_mode_divides(SCALE);
	constexpr bool PER_ROW = fp8kv_mode_per_row(SCALE);
	static_assert(!(LIMIT && PER_ROW), "input_limit() is worked out once per block");
	// the twin only with scale one: a scale calibrated to the format's max
	// puts quotients past the twin's range in most warps, and the
	// divergent fallback then costs more than the shared encoder (K-TWIN)
	constexpr int HW = HW_FORMAT(FMT)		 ? CONVERT_HW
			   : TWIN_FORMAT(FMT) && !SCALED ? CONVERT_HW | CONVERT_TWIN
							 : 0;
	fp8kv_begin_after_prior_grid();
	const uint32_t team = 1u << p.team_log2;
	const uint32_t lane = threadIdx.x & (team - 1);
	const uint32_t teams_per_block = BLOCK >> p.team_log2;
	const uint32_t my_team = threadIdx.x >> p.team_log2;
	const uint64_t pairs = (uint64_t)(p.plan.num_tokens * p.plan.num_heads);
	const uint64_t stride = (uint64_t)gridDim.x * teams_per_block;
	const uint32_t block_size = (uint32_t)p.plan.block_size;
	const uint32_t nvec[2] = {(uint32_t)(p.plan.side[0].head_dim / VE),
				  (uint32_t)(p.plan.side[1].head_dim / VE)};
	const fp8kv_fp8_format f = fp8kv_format_of(FMT >= 0 ? FMT : plan_recipe(p.plan).cache_dtype);
	const float fmax = fp8kv_format_max(f);
	const float rfmax = 1.0f / fmax;  // a constant of the format
	float s[2] = {1.0f, 1.0f}, rs[2] = {1.0f, 1.0f};
	bool recip = HW != 0;
	int error = 0;
	uint32_t lim[2] = {0, 0};  // input_limit() of each side's scale
#ifdef HAVE_INPUT_LIMIT
	if (LIMIT && HW && !SCALED)
		lim[0] = lim[1] = input_limit<DT>(1.0f, f);
#endif
	unsigned int overflows = 0, nans = 0;  // OPTIONS
	__shared__ unsigned long long block_counts[2];
	// OPTIONS: the block's amax of each head and side, as fp32 bits (>= +0,
	// so they order as integers), raised into k_amax/v_amax once at the
	// end rather than by every row (K-AMAX-BLOCK)
	__shared__ unsigned int block_amax[2][AMAX_HEADS];
	const bool amax_in_block = p.plan.num_heads <= AMAX_HEADS;
	if (OPTIONS) {
		if (threadIdx.x == 0)
			block_counts[0] = block_counts[1] = 0;
		for (uint32_t k = threadIdx.x; k < 2 * AMAX_HEADS; k += BLOCK)
			block_amax[k / AMAX_HEADS][k % AMAX_HEADS] = 0;
		raise_amax_to_zero(p.plan.side[0].amax, p.plan.side[1].amax, p.plan.num_heads);
		__syncthreads();
	}

	// Every block has at least one pair (the grids never hold more blocks
	// than the pairs fill), so each counts itself finished in its last
	// iteration.  PIPELINED carries the next pair (its loads in flight)
	// from one iteration to the next.
	bool have_scale = PER_ROW || !SCALED;  // else one given scale, read below
	unsigned long long counted = 0;  // count_block's result, used after the stores
	pair_inputs<VPL> next;
	if (PIPELINED)
		fetch_pair<DT, SCALE, VPL, FULL>(p, (uint64_t)blockIdx.x * teams_per_block + my_team,
						 pairs, lane, team, nvec, next);
	for (uint64_t base = (uint64_t)blockIdx.x * teams_per_block; base < pairs; base += stride) {
		pair_inputs<VPL> in;  // the pair's inputs, converted below
		if (PIPELINED)
			in = next;
		else
			fetch_pair<DT, SCALE, VPL, FULL>(p, base + my_team, pairs, lane, team, nvec,
							 in);
		const bool last = base + stride >= pairs;  // the block's last pair
		if (PIPELINED && !last)
			fetch_pair<DT, SCALE, VPL, FULL>(p, base + stride + my_team, pairs, lane, team,
							 nvec, next);
		if (!have_scale) {
			// once, after the loads above, the next pair's included: the
			// compiler may not hoist the scale's load (and the wait for
			// it, which the division's slow path fences) above them
			asm volatile("" ::: "memory");
			s[0] = p.plan.side[0].scale[fp8kv_given_index(SCALE, 0)];
			s[1] = p.plan.side[1].scale[fp8kv_given_index(SCALE, 0)];
			rs[0] = 1.0f / s[0];
			rs[1] = 1.0f / s[1];
#ifdef HAVE_HW_FP8
			recip = HW && recip_ok<DT>(s[0]) && recip_ok<DT>(s[1]);
#endif
#ifdef HAVE_INPUT_LIMIT
			if (LIMIT && HW && recip)
				for (int i = 0; i < 2; i++)
					lim[i] = input_limit<DT>(s[i], f);
#endif
			have_scale = true;
		}
		// the rows' amax (fp8kv_row_wants_amax; without OPTIONS no side
		// has an amax): every lane of the warp shuffles (the loop is
		// block-uniform), before any team leaves for a padding slot
		float amax[2] = {0.0f, 0.0f};
#pragma unroll
		for (int i = 0; i < 2; i++)
			if (fp8kv_mode_computed(SCALE) || (OPTIONS && p.plan.side[i].amax))
				amax[i] = team_max(lane_amax<DT, VPL, FULL>(in.x[i], lane, team, nvec[i]),
						   (int)team);
		if (PER_ROW && fp8kv_mode_given(SCALE)) {
			s[0] = in.s[0];
			s[1] = in.s[1];
		} else if (fp8kv_mode_computed(SCALE)) {
			s[0] = dynamic_scale<DT>(amax[0], fmax, rfmax);
			s[1] = dynamic_scale<DT>(amax[1], fmax, rfmax);
		}
		if (PER_ROW) {
			rs[0] = 1.0f / s[0];
			rs[1] = 1.0f / s[1];
#ifdef HAVE_HW_FP8
			recip = HW && recip_ok<DT>(s[0]) && recip_ok<DT>(s[1]);
#endif
		}
		// a swa_mapping is an option, and never pipelined
		// (specialized_grid_for): elsewhere the plan has none
		int64_t slot = 0;
		const int kind = resolve_team_slot(
			p.errors, p.plan.slots, in.raw, in.t, in.h, lane,
			OPTIONS && !PIPELINED && p.plan.slots.swa_mapping, last, error, counted, slot);
		if (kind != FP8KV_SLOT_WRITE)
			continue;
		const uint32_t block =
			(uint32_t)div_magic(slot, p.block_size_magic, p.block_size_shift);
		const uint32_t offset = (uint32_t)slot - block * block_size;
		unsigned char *row[2];
#pragma unroll
		for (int i = 0; i < 2; i++) {
			const fp8kv_plan_side &sd = p.plan.side[i];
			row[i] = sd.cache + fp8kv_cache_row32(&sd, block, offset, in.h);
			if (fp8kv_mode_computed(SCALE) && lane == 0)
				sd.scale_cache[fp8kv_scale_index32(&sd, block, offset, in.h)] = s[i];
			if (OPTIONS && sd.amax && lane == 0) {
				if (amax_in_block)
					atomicMax(&block_amax[i][in.h], fp8kv_f32_bits(amax[i]));
				else
					raise_float(sd.amax + in.h, amax[i]);
			}
		}
		if (!SCALED)
			convert_pair<DT, OPTIONS, HW, VPL, FULL, LIMIT>(row, in.x, s, rs, lane, team,
								       nvec, f, p.plan.saturate, lim,
								       overflows, nans);
		else
			convert_pair<DT, OPTIONS, CONVERT_SCALED | HW | CONVERT_RECIP, VPL, FULL, LIMIT>(
				row, in.x, s, rs, lane, team, nvec, f, p.plan.saturate, lim, overflows,
				nans, recip);
	}
	if (OPTIONS) {
		gather_block_counts(block_counts, overflows, nans, p.plan.overflow_count,
				    p.plan.nan_count);
		if (amax_in_block)
			for (uint32_t k = threadIdx.x; k < 2 * (uint32_t)p.plan.num_heads; k += BLOCK) {
				const uint32_t i = k / (uint32_t)p.plan.num_heads;
				const uint32_t h = k % (uint32_t)p.plan.num_heads;
				if (p.plan.side[i].amax && block_amax[i][h])
					raise_float(p.plan.side[i].amax + h, fp8kv_bits_f32(block_amax[i][h]));
			}
		publish_block_counts(block_counts, p.plan.overflow_count, p.plan.nan_count);
	}
	if (threadIdx.x == 0)
		finish_launch(p.errors, p.plan.slots, error, counted);
}

#endif /* FP8KV_HIP_WRITE_SPECIALIZED_H */
