// SPDX-License-Identifier: MIT
/*
 * device_common.h - what every kernel of the HIP backend shares: launch
 * constants, index arithmetic, team reductions and the 16-byte vectors of
 * the inputs.  Included by fp8kv_hip.hip only (hip/README maps the rooms).
 *
 * Teams: a (token, head) pair is written by a team of 1 to MAX_TEAM lanes,
 * aligned within a warp (32 lanes on NVIDIA) or wavefront (64 on AMD's gfx9),
 * so team shuffles never cross a warp at either width.
 */
#ifndef FP8KV_HIP_DEVICE_COMMON_H
#define FP8KV_HIP_DEVICE_COMMON_H

#include <stdint.h>

#include "fp8_convert.h"
#include "hip_compat.h"


#if defined(__NVCC__)
#define SHFL_XOR(v, mask) __shfl_xor_sync(0xFFFFFFFFu, (v), (mask))
#else
#define SHFL_XOR(v, mask) __shfl_xor((v), (mask))
#endif

#define BLOCK 256              // threads per block, every kernel
#define MAX_TEAM 32            // lanes per (token, head) pair, at most
#define BLOCKS_PER_SM 32       // grid cap, in blocks per multiprocessor
#define SHORT_LAUNCH_WAVES 2   // vector_grid_for()
#define VECTOR_MIN_BLOCKS 4    // resident blocks of the specialized kernel: <= 64 registers
#define PIPELINED_MIN_BLOCKS 3 // and of the pipelined specialized kernel: <= 85 registers
#define PIPELINED_WAVES 16     // specialized_grid_for()

// a / b for 0 <= a, 0 < b: 32-bit division when both fit
static __device__ __forceinline__ int64_t div_nonneg(int64_t a, int64_t b)
{
	if ((((uint64_t)a | (uint64_t)b) >> 32) == 0)
		return (int64_t)((uint32_t)a / (uint32_t)b);
	return a / b;
}

// n / d for n < 2^32, given magic_for(d) (Granlund and Montgomery's
// round-up method; the 33-bit sum is formed in 64 bits)
static __device__ __forceinline__ int64_t div_magic(int64_t n, uint32_t magic, uint32_t shift)
{
	return (int64_t)(((uint64_t)__umulhi((uint32_t)n, magic) + (uint64_t)(uint32_t)n) >> shift);
}

static __device__ __forceinline__ float max_nonneg(float a, float b)
{
	return b > a ? b : a;
}

// max over the lanes of a team (team lanes are aligned within a warp); the
// values are >= 0 and never NaN, so the order does not matter.  Unrolled,
// each step predicated on the team's width (uniform within a team).
static __device__ __forceinline__ float team_max(float v, int team)
{
#pragma unroll
	for (int m = MAX_TEAM >> 1; m > 0; m >>= 1)
		if (m < team)
			v = max_nonneg(v, SHFL_XOR(v, m));
	return v;
}

// *p raised to a in fp8kv_amax_raises' order (fp32 bits as signed
// integers: a +NaN or +Inf already there stays, -0 and -NaN give way), in
// one atomic whose answer nobody waits for: no load of the old value, no
// compare-and-swap loop (K-AMAX-ATOMIC)
static __device__ __forceinline__ void raise_float(float *p, float a)
{
	atomicMax((int *)p, (int)fp8kv_f32_bits(a));
}

// Block 0 raises every head's k_amax (amax0) and v_amax (amax1), where
// wanted, to +0, as the CPU merges a per-thread amax starting at 0 into
// each (fp8kv.h section 7: +0 for a head with no finite input).
static __device__ __forceinline__ void raise_amax_to_zero(float *amax0, float *amax1,
							  int64_t num_heads)
{
	if (blockIdx.x != 0)
		return;
	for (int64_t h = threadIdx.x; h < num_heads; h += blockDim.x) {
		if (amax0)
			raise_float(amax0 + h, 0.0f);
		if (amax1)
			raise_float(amax1 + h, 0.0f);
	}
}

static __device__ __forceinline__ uint4 load16(const unsigned char *p)
{
	return *(const uint4 *)p;
}

// the 16 / size elements of a 16-byte vector, widened exactly
template <int DT>
static __device__ __forceinline__ void unpack(const uint4 v, float x[8])
{
	const unsigned int w[4] = {v.x, v.y, v.z, v.w};
	if (DT == FP8KV_CV_F32) {
#pragma unroll
		for (int k = 0; k < 4; k++)
			x[k] = fp8kv_bits_f32(w[k]);
	} else {
#pragma unroll
		for (int k = 0; k < 4; k++) {
			const uint16_t lo = (uint16_t)(w[k] & 0xFFFFu), hi = (uint16_t)(w[k] >> 16);
			x[2 * k] = DT == FP8KV_CV_BF16 ? fp8kv_bf16_to_f32(lo) : fp8kv_f16_to_f32(lo);
			x[2 * k + 1] = DT == FP8KV_CV_BF16 ? fp8kv_bf16_to_f32(hi) : fp8kv_f16_to_f32(hi);
		}
	}
}

template <int DT>
static __device__ __forceinline__ float vec_amax(const uint4 v)
{
	constexpr int VE = DT == FP8KV_CV_F32 ? 4 : 8;
	float x[8];
	unpack<DT>(v, x);
	float a = 0.0f;
#pragma unroll
	for (int k = 0; k < VE; k++)
		a = max_nonneg(a, fp8kv_finite_abs(x[k]));
	return a;
}

// NaN inputs among the elements of a 16-byte vector (copies count them too)
template <int DT>
static __device__ __forceinline__ unsigned int vec_nans(const uint4 v)
{
	constexpr int VE = DT == FP8KV_CV_F32 ? 4 : 8;
	float x[8];
	unpack<DT>(v, x);
	unsigned int n = 0;
#pragma unroll
	for (int k = 0; k < VE; k++)
		n += (fp8kv_f32_bits(x[k]) & 0x7FFFFFFFu) > 0x7F800000u;
	return n;
}

// The largest magnitude's bits among a 16-bit vector's eight values (the
// sign bits cleared): packed compares where the hardware has them (sm_90).
static __device__ __forceinline__ uint32_t vec16_max_magnitude_bits(const uint4 v)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900  // max.u16x2
	uint32_t a = v.x & 0x7FFF7FFFu, b = v.y & 0x7FFF7FFFu;
	uint32_t c = v.z & 0x7FFF7FFFu, d = v.w & 0x7FFF7FFFu;
	asm("max.u16x2 %0, %1, %2;" : "=r"(a) : "r"(a), "r"(b));
	asm("max.u16x2 %0, %1, %2;" : "=r"(c) : "r"(c), "r"(d));
	asm("max.u16x2 %0, %1, %2;" : "=r"(a) : "r"(a), "r"(c));
	return max(a >> 16, a & 0xFFFFu);
#else
	const unsigned int w[4] = {v.x, v.y, v.z, v.w};
	uint32_t m = 0;
#pragma unroll
	for (int k = 0; k < 4; k++) {
		m = max(m, w[k] & 0x7FFFu);
		m = max(m, (w[k] >> 16) & 0x7FFFu);
	}
	return m;
#endif
}

// The value of a finite 16-bit magnitude's bits m (bf16 or f16).
template <int DT>
static __device__ __forceinline__ float widen16(const uint32_t m)
{
	return DT == FP8KV_CV_BF16 ? fp8kv_bf16_to_f32((uint16_t)m) : fp8kv_f16_to_f32((uint16_t)m);
}

// vec_amax, faster where the hardware compares packed halves (sm_90): the
// largest magnitude's bits, taken as they are unless one is Inf or NaN,
// which the exact way then skips
template <int DT>
static __device__ __forceinline__ float vec_amax_finite(const uint4 v)
{
	if (DT == FP8KV_CV_F32) {
		uint32_t m = v.x & 0x7FFFFFFFu;
		m = max(m, v.y & 0x7FFFFFFFu);
		m = max(m, v.z & 0x7FFFFFFFu);
		m = max(m, v.w & 0x7FFFFFFFu);
		if (m < 0x7F800000u)
			return fp8kv_bits_f32(m);
	}
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900  // max.u16x2
	if (DT != FP8KV_CV_F32) {
		const uint32_t m = vec16_max_magnitude_bits(v);
		if (m < (DT == FP8KV_CV_BF16 ? 0x7F80u : 0x7C00u))
			return widen16<DT>(m);
	}
#endif
	return vec_amax<DT>(v);
}

// A block's overflow and NaN counts, in two steps around what else the
// block gathers: each thread adds its counts to the block's shared pair
// (zeroed at the block's start), all wait; then thread 0 adds the pair to
// the call's counters (NULL: not wanted).
static __device__ __forceinline__ void gather_block_counts(unsigned long long counts[2],
							   unsigned int overflows, unsigned int nans,
							   const uint64_t *overflow_count,
							   const uint64_t *nan_count)
{
	if (overflows && overflow_count)
		atomicAdd(&counts[0], (unsigned long long)overflows);
	if (nans && nan_count)
		atomicAdd(&counts[1], (unsigned long long)nans);
	__syncthreads();
}

static __device__ __forceinline__ void publish_block_counts(const unsigned long long counts[2],
							    uint64_t *overflow_count,
							    uint64_t *nan_count)
{
	if (threadIdx.x == 0) {
		if (counts[0])
			atomicAdd((unsigned long long *)overflow_count, counts[0]);
		if (counts[1])
			atomicAdd((unsigned long long *)nan_count, counts[1]);
	}
}

#endif /* FP8KV_HIP_DEVICE_COMMON_H */
