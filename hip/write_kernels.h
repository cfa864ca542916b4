// SPDX-License-Identifier: MIT
/*
 * write_kernels.h - the cache write's general kernel, write_general_kernel:
 * any plan (rows of any length, copies, unaligned rows, element by
 * element; 64-bit offsets), one launch for keys and values.  The hot path
 * is write_specialized_kernel (write_specialized.h); launch_policy.h picks
 * one (K-KERNELS).  A "team" of 1 to MAX_TEAM lanes of one warp writes one
 * (token, head) pair: its key row, then its value row.  Teams are dealt
 * pairs in token-major order by a block-uniform grid-stride loop, so
 * narrow rows put many tokens in one block and the shuffles of a team (row
 * amax) always find every lane.  Where a row is read and written, which
 * scale it divides by and where that goes are lib/write_plan.h's (A-ROW),
 * as for the CPU backend (cpu/cache_write.c).
 */
#ifndef FP8KV_HIP_WRITE_KERNELS_H
#define FP8KV_HIP_WRITE_KERNELS_H

#include <stdint.h>

#include "device_common.h"
#include "device_convert.h"
#include "error_ring.h"
#include "fp8_convert.h"
#include "hip_compat.h"
#include "write_params.h"
#include "write_plan.h"

// what one lane of a team does to one row: the vectors (or elements) lane,
// lane + team, ...; with vec, v0 already holds the lane's first vector
// when first is set
typedef struct row_work {
	const unsigned char *src;
	unsigned char *dst;
	int64_t n;  // elements
	int vec, first, lane, team;
	uint4 v0;
} row_work;

// the row's codes
template <int DT, bool COUNT>
static __device__ __forceinline__ void quantize_row(const row_work &w, int conversion, float s,
						    fp8kv_fp8_format f, int saturate,
						    unsigned int &overflows, unsigned int &nans)
{
	constexpr int VE = DT == FP8KV_CV_F32 ? 4 : 8;
	if (w.vec) {
		const int64_t nvec = w.n / VE;
		const float rs = 1.0f / s;
		if (w.first)
			quantize_vec<DT, COUNT>(w.dst + (int64_t)w.lane * VE, w.v0, conversion, s, rs, f,
						saturate, overflows, nans);
		for (int64_t v = w.lane + w.team; v < nvec; v += w.team)
			quantize_vec<DT, COUNT>(w.dst + v * VE, load16(w.src + v * 16), conversion, s, rs, f,
						saturate, overflows, nans);
	} else {
		for (int64_t d = w.lane; d < w.n; d += w.team)
			w.dst[d] = (unsigned char)quantize1<COUNT>(fp8kv_load_f32(w.src, d, DT), conversion,
								   s, f, saturate, overflows, nans);
	}
}

// the row copied as it is (cache dtype = input dtype), NaN inputs counted
template <int DT>
static __device__ __forceinline__ void copy_row(const row_work &w, bool count_nans,
						unsigned int &nans)
{
	constexpr int IN = DT == FP8KV_CV_F32 ? 4 : 2;
	if (w.vec) {
		const int64_t nvec = w.n / (16 / IN);
		if (w.first) {
			*(uint4 *)(w.dst + (int64_t)w.lane * 16) = w.v0;
			if (count_nans)
				nans += vec_nans<DT>(w.v0);
		}
		for (int64_t v = w.lane + w.team; v < nvec; v += w.team) {
			const uint4 x = load16(w.src + v * 16);
			*(uint4 *)(w.dst + v * 16) = x;
			if (count_nans)
				nans += vec_nans<DT>(x);
		}
	} else {
		for (int64_t d = w.lane; d < w.n; d += w.team) {
			if (IN == 4)
				((uint32_t *)w.dst)[d] = ((const uint32_t *)w.src)[d];
			else
				((uint16_t *)w.dst)[d] = ((const uint16_t *)w.src)[d];
			if (count_nans)
				nans += (fp8kv_f32_bits(fp8kv_load_f32(w.src, d, DT)) & 0x7FFFFFFFu) >
					0x7F800000u;
		}
	}
}

/*
 * One row (token t, head h) of one side, by the lanes of a team: cpu/cache_write.c
 * write_token for one head.  Every lane of the warp calls this with the same
 * sd; write is uniform within a team.  The team_max shuffles run on every
 * lane, writing or not.
 */
// The lane's first 16-byte vector of row (t, h) of a side, when the side is
// vectorised and the row has one for this lane; fetched a pair ahead.
template <int DT>
static __device__ __forceinline__ uint4 first_vector(const fp8kv_plan_side &sd, const bool vec,
						     const int64_t t, const int64_t h,
						     const int lane)
{
	constexpr int IN = DT == FP8KV_CV_F32 ? 4 : 2;
	if (!vec || lane >= sd.head_dim / (16 / IN))
		return make_uint4(0u, 0u, 0u, 0u);
	return load16(sd.input + fp8kv_input_row(&sd, t, h) * IN + (int64_t)lane * 16);
}

template <int DT, bool FP8>
static __device__ __forceinline__ void write_row(const write_params &p, const int side,
						 const bool write, const int64_t t, const int64_t h,
						 const int64_t block, const int64_t offset,
						 const int lane, const int team, const uint4 v0,
						 const fp8kv_fp8_format f, const float fmax,
						 unsigned long long &overflow_total,
						 unsigned long long &nan_total)
{
	constexpr int IN = DT == FP8KV_CV_F32 ? 4 : 2;
	constexpr int VE = 16 / IN;
	const fp8kv_plan_side &sd = p.plan.side[side];
	const int mode = FP8 ? sd.recipe.scale_mode : FP8KV_SCALE_ONE;  // copies divide by none
	row_work w;
	w.src = sd.input + fp8kv_input_row(&sd, t, h) * IN;
	w.dst = sd.cache + fp8kv_cache_row(&sd, block, offset, h) * (FP8 ? 1 : IN);
	w.n = sd.head_dim;
	w.vec = p.vectorized[side];
	w.first = w.vec && write && lane < sd.head_dim / VE;
	w.lane = lane;
	w.team = team;
	w.v0 = v0;  // first_vector(), already in registers

	// max |x| over the row's finite elements
	float amax = 0.0f;
	if (fp8kv_row_wants_amax(&sd, mode)) {
		if (write) {
			if (w.vec) {
				if (w.first)
					amax = vec_amax<DT>(w.v0);
				for (int64_t v = lane + team; v < w.n / VE; v += team)
					amax = max_nonneg(amax, vec_amax<DT>(load16(w.src + v * 16)));
			} else {
				for (int64_t d = lane; d < w.n; d += team)
					amax = max_nonneg(amax, fp8kv_finite_abs(fp8kv_load_f32(w.src, d, DT)));
			}
		}
		amax = team_max(amax, team);
	}
	if (!write)
		return;
	if (sd.amax && lane == 0)
		raise_float(sd.amax + h, amax);

	unsigned int overflows = 0, nans = 0;
	if (!FP8) {
		copy_row<DT>(w, p.plan.nan_count != NULL, nans);
		nan_total += nans;
		return;
	}
	const float s = fp8kv_row_scale(&sd, mode, h, amax, fmax);
	if (fp8kv_mode_computed(mode) && lane == 0)
		sd.scale_cache[fp8kv_scale_index(&sd, block, offset, h)] = s;
	const int conversion = conversion_kind(fp8kv_mode_divides(mode), f);
	if (p.plan.overflow_count || p.plan.nan_count)
		quantize_row<DT, true>(w, conversion, s, f, p.plan.saturate, overflows, nans);
	else
		quantize_row<DT, false>(w, conversion, s, f, p.plan.saturate, overflows, nans);
	overflow_total += overflows;
	nan_total += nans;
}


typedef struct block_tally {
	unsigned long long overflows, nans;
	int error;  // an out-of-range token was recorded
} block_tally;

// Every kernel launched on the caller's stream (the cache writes and the
// flat conversions) starts with fp8kv_begin_after_prior_grid(): they are
// dependent launches (fp8kv_launch in hip_compat.h) where the code allows,
// and may start before the kernel ahead of them has finished.
static __device__ __forceinline__ void block_begin(const write_params &p, block_tally &b)
{
	fp8kv_begin_after_prior_grid();
	if (threadIdx.x == 0) {
		b.overflows = 0;
		b.nans = 0;
		b.error = 0;
	}
	raise_amax_to_zero(p.plan.side[0].amax, p.plan.side[1].amax, p.plan.num_heads);
	__syncthreads();
}

template <bool FP8>
static __device__ __forceinline__ void block_end(const write_params &p, block_tally &b,
						 unsigned long long overflows,
						 unsigned long long nans)
{
	if (FP8 && p.plan.overflow_count && overflows)
		atomicAdd(&b.overflows, overflows);
	if (p.plan.nan_count && nans)  // copies count NaN inputs too
		atomicAdd(&b.nans, nans);
	__syncthreads();
	if (threadIdx.x == 0) {
		if (b.overflows)
			atomicAdd((unsigned long long *)p.plan.overflow_count, b.overflows);
		if (b.nans)
			atomicAdd((unsigned long long *)p.plan.nan_count, b.nans);
		unsigned long long before = 0;
		count_block(p.errors, true, b.error, before);
		finish_launch(p.errors, p.plan.slots, b.error, before);
	}
}

// The loop of the general kernels: teams of 2^team_log2 lanes over the
// (token, head) pairs, block-uniform (every lane runs every iteration, for
// the shuffles).  Both sides' first vectors are loaded before either row is
// written, so that two loads are in flight.  rows(side, write, t, h, block,
// offset, lane, team, first vector, overflows, nans) writes one side's row:
// write_row for one recipe (general_rows), write_side for a recipe per side
// (side_kernels.h).
template <int DT, bool FP8, class Rows>
static __device__ __forceinline__ void write_pairs(const write_params &p, block_tally &tally,
						   const Rows &rows)
{
	const int team = 1 << p.team_log2;
	const int lane = (int)threadIdx.x & (team - 1);
	const int64_t teams_per_block = BLOCK >> p.team_log2;
	const int64_t team_in_block = (int64_t)(threadIdx.x >> p.team_log2);
	const int64_t pairs = p.plan.num_tokens * p.plan.num_heads;
	const int64_t stride = (int64_t)gridDim.x * teams_per_block;
	unsigned long long overflows = 0, nans = 0;

	for (int64_t base = (int64_t)blockIdx.x * teams_per_block; base < pairs; base += stride) {
		const int64_t pair = base + team_in_block;
		int64_t t = 0, h = 0, block = 0, offset = 0;
		uint4 k0 = make_uint4(0u, 0u, 0u, 0u), v0 = k0;
		bool write = false;
		if (pair < pairs) {
			t = div_nonneg(pair, p.plan.num_heads);
			h = pair - t * p.plan.num_heads;
			const int64_t raw = fp8kv_raw_slot(&p.plan.slots, t);  // issued before the vectors
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
		rows(FP8KV_SIDE_KEY, write, t, h, block, offset, lane, team, k0, overflows, nans);
		rows(FP8KV_SIDE_VALUE, write, t, h, block, offset, lane, team, v0, overflows, nans);
	}

	block_end<FP8>(p, tally, overflows, nans);
}

// Both sides by write_row, in the call's one format.
template <int DT, bool FP8>
struct general_rows {
	const write_params &p;
	const fp8kv_fp8_format f;
	const float fmax;
	__device__ __forceinline__ void operator()(const int side, const bool write, const int64_t t,
						   const int64_t h, const int64_t block,
						   const int64_t offset, const int lane, const int team,
						   const uint4 v0, unsigned long long &overflows,
						   unsigned long long &nans) const
	{
		write_row<DT, FP8>(p, side, write, t, h, block, offset, lane, team, v0, f, fmax,
				   overflows, nans);
	}
};

template <int DT, bool FP8>
static __global__ void __launch_bounds__(BLOCK) write_general_kernel(const write_params p)
{
	__shared__ block_tally tally;
	block_begin(p, tally);
	const fp8kv_fp8_format f = fp8kv_format_of(plan_recipe(p.plan).cache_dtype);
	write_pairs<DT, FP8>(p, tally, general_rows<DT, FP8>{p, f, fp8kv_format_max(f)});
}

#endif /* FP8KV_HIP_WRITE_KERNELS_H */
