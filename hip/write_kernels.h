// SPDX-License-Identifier: MIT
/*
 * write_kernels.h - the cache write's kernels, one launch for keys and
 * values:
 *   write_general_kernel      any plan: rows of any length, copies,
 *                             unaligned rows, element by element;
 *   write_vector_kernel       an FP8 cache with both sides in 16-byte
 *                             vectors, every option (counters, amax, head
 *                             and dynamic scales, swa_mapping) at run time;
 *   write_specialized_kernel  the hot path, its choices made at compile
 *                             time (format, scale one or per tensor, no
 *                             options, 32-bit indices).
 * launch_policy.h picks one.  A "team" of 1 to MAX_TEAM lanes of one warp
 * writes one (token, head) pair: its key row, then its value row.  Teams are
 * dealt pairs in token-major order by a block-uniform grid-stride loop, so
 * narrow rows put many tokens in one block and the shuffles of a team (row
 * amax) always find every lane.  The row-level decisions (slots, scales,
 * counters, amax) are the CPU backend's (cpu/cache_write.c), the slot
 * rules lib/write_plan.h's own.
 */
#ifndef FP8KV_HIP_WRITE_KERNELS_H
#define FP8KV_HIP_WRITE_KERNELS_H

// The kernels' parameters: the plan as the front end made it, and what the
// launch adds.
typedef struct write_params {
	fp8kv_write_plan plan;
	error_sink errors;
	int vectorized[2];  // the side's rows are 16-byte aligned: vector path
	int team_log2;
	// pair / num_heads and slot / block_size by multiply and shift, when
	// pairs and slots fit in 32 bits (index32 != 0): see magic_for()
	int index32;
	uint32_t heads_magic, heads_shift, block_size_magic, block_size_shift;
} write_params;

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
	return load16(sd.input + (t * sd.input_stride_token + h * sd.input_stride_head) * IN +
		      (int64_t)lane * 16);
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
	const bool dynamic = FP8 && p.plan.scale_mode == FP8KV_SCALE_TOKEN_HEAD;
	row_work w;
	w.src = sd.input + (t * sd.input_stride_token + h * sd.input_stride_head) * IN;
	w.dst = sd.cache + (block * sd.cache_stride_block + offset * sd.cache_stride_slot +
			    h * sd.cache_stride_head) * (FP8 ? 1 : IN);
	w.n = sd.head_dim;
	w.vec = p.vectorized[side];
	w.first = w.vec && write && lane < sd.head_dim / VE;
	w.lane = lane;
	w.team = team;
	w.v0 = v0;  // first_vector(), already in registers

	// max |x| over the row's finite elements, for TOKEN_HEAD and k/v_amax
	float amax = 0.0f;
	if (dynamic || sd.amax) {
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
	float s = 1.0f;
	if (p.plan.scale_mode == FP8KV_SCALE_TENSOR) {
		s = sd.scale[0];
	} else if (p.plan.scale_mode == FP8KV_SCALE_HEAD) {
		s = sd.scale[h];
	} else if (dynamic) {
		s = fp8kv_dynamic_scale(amax, fmax);
		if (lane == 0)
			sd.scale_cache[block * sd.scale_stride_block + offset * sd.scale_stride_slot +
				       h * sd.scale_stride_head] = s;
	}
	const int conversion = conversion_kind(p.plan.scale_mode != FP8KV_SCALE_ONE, f);
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
	// the CPU merges a per-thread amax starting at 0 into every head
	if (blockIdx.x == 0)
		for (int64_t h = threadIdx.x; h < p.plan.num_heads; h += BLOCK) {
			if (p.plan.side[0].amax)
				raise_float(p.plan.side[0].amax + h, 0.0f);
			if (p.plan.side[1].amax)
				raise_float(p.plan.side[1].amax + h, 0.0f);
		}
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

template <int DT, bool FP8>
static __global__ void __launch_bounds__(BLOCK) write_general_kernel(const write_params p)
{
	__shared__ block_tally tally;
	block_begin(p, tally);

	const int team = 1 << p.team_log2;
	const int lane = (int)threadIdx.x & (team - 1);
	const int64_t teams_per_block = BLOCK >> p.team_log2;
	const int64_t team_in_block = (int64_t)(threadIdx.x >> p.team_log2);
	const int64_t pairs = p.plan.num_tokens * p.plan.num_heads;
	const int64_t stride = (int64_t)gridDim.x * teams_per_block;
	const fp8kv_fp8_format f = fp8kv_format_of(p.plan.cache_dtype);
	const float fmax = fp8kv_format_max(f);
	unsigned long long overflows = 0, nans = 0;

	// Block-uniform loop: every lane runs every iteration.  Both sides'
	// first vectors are loaded before either row is written, so that two
	// loads are in flight (the vector kernels are the fast paths; this one
	// serves every other descriptor).
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
			} else if (kind >= FP8KV_SLOT_OUT_OF_RANGE && h == 0 && lane == 0) {
				record_out_of_range(p.errors, t);
				tally.error = 1;
			}
		}
		write_row<DT, FP8>(p, FP8KV_SIDE_KEY, write, t, h, block, offset, lane, team, k0, f,
				   fmax, overflows, nans);
		write_row<DT, FP8>(p, FP8KV_SIDE_VALUE, write, t, h, block, offset, lane, team, v0, f,
				   fmax, overflows, nans);
	}

	block_end<FP8>(p, tally, overflows, nans);
}

/*
 * The common case, lean in registers: an FP8 cache, both sides vectorised
 * with at most VPL 16-byte vectors per lane (head dims up to 64 vectors).
 * No state is carried from one pair to the next, so many warps fit on a
 * multiprocessor, and each thread has its slot, its scale and both of its
 * vectors in flight at once.  Same arithmetic and order as write_row.
 * VPL: vectors per lane and side, lane and lane + team (2 for long rows:
 * the per-pair work is shared by more bytes, and more loads are in flight).
 */
template <int DT, bool COUNT, int VPL>
static __global__ void __launch_bounds__(BLOCK, VECTOR_MIN_BLOCKS)
write_vector_kernel(const write_params p)
{
	constexpr int VE = DT == FP8KV_CV_F32 ? 4 : 8;
	__shared__ block_tally tally;
	block_begin(p, tally);

	const int team = 1 << p.team_log2;
	const int lane = (int)threadIdx.x & (team - 1);
	const int64_t teams_per_block = BLOCK >> p.team_log2;
	const int64_t team_in_block = (int64_t)(threadIdx.x >> p.team_log2);
	const int64_t pairs = p.plan.num_tokens * p.plan.num_heads;
	const int64_t stride = (int64_t)gridDim.x * teams_per_block;
	const fp8kv_fp8_format f = fp8kv_format_of(p.plan.cache_dtype);
	const float fmax = fp8kv_format_max(f);
	const bool dynamic = p.plan.scale_mode == FP8KV_SCALE_TOKEN_HEAD;
	const int conversion = conversion_kind(p.plan.scale_mode != FP8KV_SCALE_ONE, f);
	unsigned int overflows = 0, nans = 0;
	// a per-tensor scale and its reciprocal, once
	float tensor_s[2] = {1.0f, 1.0f}, tensor_rs[2] = {1.0f, 1.0f};
	if (p.plan.scale_mode == FP8KV_SCALE_TENSOR)
		for (int i = 0; i < 2; i++) {
			tensor_s[i] = p.plan.side[i].scale[0];
			tensor_rs[i] = 1.0f / tensor_s[i];
		}

	// block-uniform loop: the team shuffles need every lane of the warp
	for (int64_t base = (int64_t)blockIdx.x * teams_per_block; base < pairs; base += stride) {
		const int64_t pair = base + team_in_block;
		int64_t t = 0, h = 0, raw = -1;
		uint4 x[2][VPL];
#pragma unroll
		for (int i = 0; i < 2; i++)
#pragma unroll
			for (int j = 0; j < VPL; j++)
				x[i][j] = make_uint4(0u, 0u, 0u, 0u);
		float s[2] = {tensor_s[0], tensor_s[1]}, rs[2] = {tensor_rs[0], tensor_rs[1]};
		if (pair < pairs) {
			t = p.index32 ? div_magic(pair, p.heads_magic, p.heads_shift)
				     : div_nonneg(pair, p.plan.num_heads);
			h = pair - t * p.plan.num_heads;
			raw = fp8kv_raw_slot(&p.plan.slots, t);
#pragma unroll
			for (int i = 0; i < 2; i++) {
#pragma unroll
				for (int j = 0; j < VPL; j++)
					x[i][j] = first_vector<DT>(p.plan.side[i], true, t, h,
								   lane + j * team);
				if (p.plan.scale_mode == FP8KV_SCALE_HEAD)
					s[i] = p.plan.side[i].scale[h];
			}
		}
		int64_t slot = 0, block = 0, offset = 0;
		const int kind = pair < pairs ? fp8kv_resolve_slot(&p.plan.slots, raw, &slot)
					      : FP8KV_SLOT_PADDING;
		const bool write = kind == FP8KV_SLOT_WRITE;
		if (p.plan.scale_mode == FP8KV_SCALE_HEAD) {
			rs[0] = 1.0f / s[0];
			rs[1] = 1.0f / s[1];
		}
		if (write) {
			block = p.index32 ? div_magic(slot, p.block_size_magic, p.block_size_shift)
					 : div_nonneg(slot, p.plan.block_size);
			offset = slot - block * p.plan.block_size;
		} else if (kind >= FP8KV_SLOT_OUT_OF_RANGE && h == 0 && lane == 0) {
			record_out_of_range(p.errors, t);
			tally.error = 1;
		}
#pragma unroll
		for (int i = 0; i < 2; i++) {
			const fp8kv_plan_side &sd = p.plan.side[i];
			bool mine[VPL];
			float amax = 0.0f;
#pragma unroll
			for (int j = 0; j < VPL; j++) {
				mine[j] = write && lane + j * team < sd.head_dim / VE;
				if (dynamic || sd.amax)
					amax = max_nonneg(amax, mine[j] ? vec_amax<DT>(x[i][j]) : 0.0f);
			}
			if (dynamic || sd.amax) {
				amax = team_max(amax, team);
				if (write && lane == 0 && sd.amax)
					raise_float(sd.amax + h, amax);
				if (dynamic) {
					s[i] = fp8kv_dynamic_scale(amax, fmax);
					rs[i] = 1.0f / s[i];
					if (write && lane == 0)
						sd.scale_cache[block * sd.scale_stride_block +
							       offset * sd.scale_stride_slot +
							       h * sd.scale_stride_head] = s[i];
				}
			}
			unsigned char *const row = sd.cache + block * sd.cache_stride_block +
						   offset * sd.cache_stride_slot + h * sd.cache_stride_head;
#pragma unroll
			for (int j = 0; j < VPL; j++)
				if (mine[j])
					quantize_vec<DT, COUNT>(row + (int64_t)(lane + j * team) * VE,
								x[i][j], conversion, s[i], rs[i], f, p.plan.saturate,
								overflows, nans);
		}
	}
	block_end<true>(p, tally, overflows, nans);
}

/*
 * The hot path, its choices made at compile time: FP8 format FMT, a scale
 * of 1 or one per tensor (SCALED), no counters, amax or swa_mapping, both
 * sides vectorised in rows of at most VPL vectors per lane (FULL: exactly
 * VPL in both rows, so no lane checks its vectors' bounds), and pairs,
 * slots and every element offset in 32 bits (specialized_eligible()).  It is
 * the vector kernel without the runtime branches and the 64-bit index
 * arithmetic: a prefill launch is bound by the instructions issued per
 * 16-byte vector, and a decode launch is a chain of latencies, which this
 * kernel keeps short:
 * - the scale is read after the first pair's loads are issued (and, when
 *   PIPELINED, the next pair's), so that its latency overlaps theirs;
 * - the block counts itself finished (count_block) as soon as the slot of
 *   its last pair is resolved, and reads the count's answer only after its
 *   last stores (finish_launch), so that the atomic's round trip overlaps
 *   the conversion, its own warp's included (fp8kv_atomic_add_if keeps
 *   nvcc from copying the answer, and so waiting for it, right after the
 *   branch: bench/NOTES.md, v13 and v14).
 */
template <int DT, int FMT, int KIND, int VPL, bool FULL, bool LIMIT>
static __device__ __forceinline__ void convert_pair(unsigned char *const row[2],
						    const uint4 x[2][VPL], const float s[2],
						    const float rs[2], const uint32_t lane,
						    const uint32_t team, const uint32_t nvec[2],
						    const int saturate, const uint32_t lim[2],
						    const bool hw_ok = true)
{
	constexpr int VE = DT == FP8KV_CV_F32 ? 4 : 8;
	const fp8kv_fp8_format f = fp8kv_format_of(FMT);
	unsigned int overflows = 0, nans = 0;  // not counted here
#pragma unroll
	for (int i = 0; i < 2; i++)
#pragma unroll
		for (int j = 0; j < VPL; j++)
			if (FULL || lane + j * team < nvec[i])
				quantize_vec_as<DT, false, KIND, LIMIT>(
					row[i] + (lane + j * team) * VE, x[i][j], s[i], rs[i], f,
					saturate, overflows, nans, hw_ok, lim[i]);
}

// Pair `pair` (none past `pairs`): its token t, head h, raw slot and the
// lane's input vectors.
template <int DT, int VPL, bool FULL>
static __device__ __forceinline__ void fetch_pair(const write_params &p, uint64_t pair,
						  uint64_t pairs,
						  uint32_t lane, uint32_t team,
						  const uint32_t nvec[2], uint32_t &t, uint32_t &h,
						  int64_t &raw, uint4 (&x)[2][VPL])
{
	constexpr int IN = DT == FP8KV_CV_F32 ? 4 : 2;
	raw = -1;
	if (pair >= pairs)
		return;
	t = (uint32_t)div_magic((int64_t)pair, p.heads_magic, p.heads_shift);
	h = (uint32_t)pair - t * (uint32_t)p.plan.num_heads;
	raw = fp8kv_raw_slot(&p.plan.slots, t);
#pragma unroll
	for (int i = 0; i < 2; i++) {
		const fp8kv_plan_side &sd = p.plan.side[i];
		const unsigned char *src =
			sd.input + (uint64_t)(t * (uint32_t)sd.input_stride_token +
					      h * (uint32_t)sd.input_stride_head) * IN;
#pragma unroll
		for (int j = 0; j < VPL; j++)
			if (FULL || lane + j * team < nvec[i])
				x[i][j] = load16(src + (lane + j * team) * 16);
	}
}

// PIPELINED: the launch is one wave of blocks that loop
// (specialized_grid_for), and each iteration issues the next pair's loads before it converts its
// own, so that a lane keeps a pair's loads in flight all the way through.
// The second set of vectors costs registers: such a block is sized for
// PIPELINED_MIN_BLOCKS per multiprocessor.
// LIMIT: 16-bit inputs take the hardware path by input_limit(), worked out
// once per block (specialized_grid_for says when that pays).
template <int DT, int FMT, bool SCALED, int VPL, bool FULL, bool PIPELINED, bool LIMIT>
static __global__ void
__launch_bounds__(BLOCK, PIPELINED ? PIPELINED_MIN_BLOCKS : VECTOR_MIN_BLOCKS)
write_specialized_kernel(const write_params p)
{
	constexpr int VE = DT == FP8KV_CV_F32 ? 4 : 8;
	// the twin only with scale one: a per-tensor scale calibrated to the
	// format's max puts quotients past the twin's range in most warps, and
	// the divergent fallback then costs more than the shared encoder
	// (bench/NOTES.md, v12)
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
	float s[2] = {1.0f, 1.0f}, rs[2] = {1.0f, 1.0f};
	bool recip = HW != 0;
	int error = 0;
	uint32_t lim[2] = {0, 0};  // input_limit() of each side's scale
#ifdef HAVE_INPUT_LIMIT
	if (LIMIT && HW && !SCALED)
		lim[0] = lim[1] = input_limit<DT>(1.0f, fp8kv_format_of(FMT));
#endif

	// Every block has at least one pair (the grids never hold more blocks
	// than the pairs fill), so each counts itself finished in its last
	// iteration.  PIPELINED carries the next pair (its loads in flight)
	// from one iteration to the next in next_*.
	bool have_scale = !SCALED;
	unsigned long long counted = 0;  // count_block's result, used after the stores
	uint32_t next_t = 0, next_h = 0;
	int64_t next_raw = -1;
	uint4 next_x[2][VPL];
	if (PIPELINED)
		fetch_pair<DT, VPL, FULL>(p, (uint64_t)blockIdx.x * teams_per_block + my_team, pairs,
					  lane, team, nvec, next_t, next_h, next_raw, next_x);
	for (uint64_t base = (uint64_t)blockIdx.x * teams_per_block; base < pairs; base += stride) {
		uint32_t t = 0, h = 0;
		int64_t raw = -1;
		uint4 x[2][VPL];  // the pair's vectors, converted below
		if (PIPELINED) {
			t = next_t;
			h = next_h;
			raw = next_raw;
#pragma unroll
			for (int i = 0; i < 2; i++)
#pragma unroll
				for (int j = 0; j < VPL; j++)
					x[i][j] = next_x[i][j];
		} else {
			fetch_pair<DT, VPL, FULL>(p, base + my_team, pairs, lane, team, nvec, t, h,
						  raw, x);
		}
		const bool last = base + stride >= pairs;  // the block's last pair
		if (PIPELINED && !last)
			fetch_pair<DT, VPL, FULL>(p, base + stride + my_team, pairs, lane, team, nvec,
						  next_t, next_h, next_raw, next_x);
		if (!have_scale) {
			// once, after the loads above, the next pair's included: the
			// compiler may not hoist the scale's load (and the wait for
			// it, which the division's slow path fences) above them
			asm volatile("" ::: "memory");
			s[0] = p.plan.side[0].scale[0];
			s[1] = p.plan.side[1].scale[0];
			rs[0] = 1.0f / s[0];
			rs[1] = 1.0f / s[1];
#ifdef HAVE_HW_FP8
			recip = HW && recip_ok<DT>(s[0]) && recip_ok<DT>(s[1]);
#endif
#ifdef HAVE_INPUT_LIMIT
			if (LIMIT && HW && recip)
				for (int i = 0; i < 2; i++)
					lim[i] = input_limit<DT>(s[i], fp8kv_format_of(FMT));
#endif
			have_scale = true;
		}
		if (raw >= p.plan.slots.num_slots && h == 0 && lane == 0) {
			record_out_of_range(p.errors, t);
			error = 1;
		}
		if (last) {
			error = __syncthreads_or(error);
			count_block(p.errors, threadIdx.x == 0, error, counted);
		}
		if (raw < 0 || raw >= p.plan.slots.num_slots)
			continue;
		const uint32_t block = (uint32_t)div_magic(raw, p.block_size_magic, p.block_size_shift);
		const uint32_t offset = (uint32_t)raw - block * block_size;
		unsigned char *row[2];
#pragma unroll
		for (int i = 0; i < 2; i++) {
			const fp8kv_plan_side &sd = p.plan.side[i];
			row[i] = sd.cache + (uint64_t)block * (uint32_t)sd.cache_stride_block +
				 (offset * (uint32_t)sd.cache_stride_slot +
				  h * (uint32_t)sd.cache_stride_head);
		}
		if (!SCALED)
			convert_pair<DT, FMT, HW, VPL, FULL, LIMIT>(row, x, s, rs, lane, team, nvec,
								    p.plan.saturate, lim);
		else
			convert_pair<DT, FMT, CONVERT_SCALED | HW | CONVERT_RECIP, VPL, FULL, LIMIT>(
				row, x, s, rs, lane, team, nvec, p.plan.saturate, lim, recip);
	}
	if (threadIdx.x == 0)
		finish_launch(p.errors, p.plan.slots, error, counted);
}

#endif /* FP8KV_HIP_WRITE_KERNELS_H */
