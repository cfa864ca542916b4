// SPDX-License-Identifier: MIT
/*
 * fp8kv_hip.hip - the HIP backend: fp8kv's calls as GPU kernels, for AMD
 * GPUs (hipcc) and NVIDIA GPUs (nvcc, through hip_compat.h).
 *
 * The bytes are those of the CPU backend (cpu/cpu_backend.c): every
 * conversion goes through lib/fp8_convert.h, divisions are IEEE fp32
 * divisions (the build keeps correctly rounded division, denormals and no
 * contraction), and the row-level decisions (slots, scales, counters, amax)
 * follow the CPU code line by line.  Only the order in which two tokens
 * mapped to one slot land is left to the hardware.
 *
 * The cache write is one launch for keys and values.  A "team" of 1 to 32
 * lanes of one warp writes one (token, head) pair: its key row, then its
 * value row, with 16-byte loads (and 16, 8 or 4-byte stores) when every row
 * is aligned, element by element otherwise.  Teams are dealt pairs in
 * token-major order by a block-uniform grid-stride loop, so narrow rows put
 * many tokens in one block and the shuffles of a team (row amax) always
 * find every lane.
 *
 * Out-of-range slots (fp8kv.h section 7) are reported without any host
 * round trip on the launch path:
 *   - each launch gets an entry of a ring in device memory; a team whose
 *     token is out of range does atomicMin(entry.token, t);
 *   - the last block to finish (a count in the entry, see count_share;
 *     a launch of one block does without) takes the minimum, recomputes
 *     that token's slot, resets the entry's token, and publishes
 *     (token, slot) to a report in mapped, coherent host memory, claiming it
 *     with a compare-and-swap on a device word against the report's
 *     "consumed" generation, so that one report is pending at a time;
 *   - synchronize, and the next reshape_and_cache before it launches, read
 *     the report with plain host loads, turn it into FP8KV_ERANGE and mark
 *     it consumed.
 * Launches captured into a graph use a part of the ring of their own, so a
 * replay never shares an entry with an eager launch.  Nothing on the launch
 * path allocates, synchronizes or copies.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hip_compat.h"

#include "backend.h"
#include "fp8_convert.h"

#ifndef FP8KV_HIP_TARGETS
#define FP8KV_HIP_TARGETS "?"
#endif

#if defined(__NVCC__)
#define SHFL_XOR(v, mask) __shfl_xor_sync(0xFFFFFFFFu, (v), (mask))
#else
#define SHFL_XOR(v, mask) __shfl_xor((v), (mask))
#endif

#define BLOCK 256           // threads per block, every kernel
#define MAX_TEAM 32         // lanes per (token, head) pair, at most
#define BLOCKS_PER_SM 32    // grid cap, in blocks per multiprocessor
#define SHORT_LAUNCH_WAVES 2 // lean_grid_for()
#ifndef LEAN_MIN_BLOCKS
#define LEAN_MIN_BLOCKS 4   // resident blocks of the lean kernel: <= 64 registers
#endif
#define PIPE_MIN_BLOCKS 3   // and of the pipelined fast kernel: <= 85 registers
#define PIPELINED_WAVES 16  // fast_grid_for()
#define RING_EAGER 192      // error entries for eager launches
#define RING_GRAPH 64       // and for launches captured into graphs
#define RING (RING_EAGER + RING_GRAPH)
#define NO_TOKEN (~0ull)

static const fp8kv_host_services *host;

/* ------------------------------------------------------------ error state */

// one launch's out-of-range record, in device memory
typedef struct err_entry {
	unsigned long long token;  // smallest out-of-range token, NO_TOKEN if none
	// blocks finished (low 32 bits, see count_share) and blocks that saw
	// an out-of-range token (high 32 bits): 0 between launches
	unsigned long long state;
} err_entry;

typedef struct dev_state {
	unsigned long long claim;  // generation of the last report claimed
	unsigned long long pad;
	err_entry ring[RING];
} dev_state;

// the report, in mapped host memory: written by the device, read by the host
typedef struct host_report {
	unsigned long long published;  // generation of the last report written
	unsigned long long consumed;   // generation of the last report read
	long long token, slot, limit;
	int swa, pad;
} host_report;

/* ------------------------------------------------------------ parameters */

typedef struct rc_side {
	const unsigned char *input;
	unsigned char *cache;
	int64_t head_dim, stride_token, stride_head;        // elements
	int64_t cache_block, cache_slot, cache_head;        // elements
	const float *scale;      // TENSOR: [0]; HEAD: [h]
	float *scale_cache;      // TOKEN_HEAD
	float *amax;             // optional, [num_heads]
	int vec;                 // rows are 16-byte aligned: vector path
	int pad;
} rc_side;

typedef struct rc_params {
	rc_side side[2];         // key, value
	const void *slot_mapping, *swa_mapping;
	int64_t num_tokens, num_heads, block_size, num_slots, swa_len;
	int64_t scs_block, scs_slot, scs_head;
	unsigned long long *overflow_count, *nan_count;
	err_entry *entry;
	unsigned long long *claim;
	host_report *report;     // device address of the mapped report
	int slot_type, swa_type;
	int cache_dtype, saturate, scale_mode, team_log2;
	// pair / num_heads and slot / block_size by multiply and shift, when
	// pairs and slots fit in 32 bits (narrow != 0): see magic_for()
	uint32_t heads_magic, heads_shift, bs_magic, bs_shift;
	int narrow, pad2;
} rc_params;

typedef struct flat_params {
	unsigned char *dst;
	const unsigned char *src;
	int64_t count;
	const float *scale;
	unsigned long long *overflow_count;
	int format, saturate, scaled, vec;
} flat_params;

/* ------------------------------------------------------- device helpers */

enum { SLOT_WRITE, SLOT_PADDING, SLOT_OUT_OF_RANGE, SLOT_PAST_SWA };

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

static __device__ __forceinline__ int64_t load_index(const void *base, int64_t i, int type)
{
	return type == FP8KV_INDEX_INT32 ? (int64_t)((const int32_t *)base)[i]
					 : ((const int64_t *)base)[i];
}

// cpu_backend.c resolve_slot, in two steps so that the slot_mapping load
// can be issued early: raw_slot, then resolve_raw
static __device__ __forceinline__ int64_t raw_slot(const rc_params &p, int64_t t)
{
	return load_index(p.slot_mapping, t, p.slot_type);
}

static __device__ __forceinline__ int resolve_raw(const rc_params &p, int64_t s, int64_t *slot)
{
	if (s < 0)
		return SLOT_PADDING;
	if (p.swa_mapping) {
		if (s >= p.swa_len) {
			*slot = s;
			return SLOT_PAST_SWA;
		}
		s = load_index(p.swa_mapping, s, p.swa_type);
		if (s < 0)
			return SLOT_PADDING;
	}
	*slot = s;
	return s < p.num_slots ? SLOT_WRITE : SLOT_OUT_OF_RANGE;
}

static __device__ __forceinline__ int resolve_slot(const rc_params &p, int64_t t, int64_t *slot)
{
	return resolve_raw(p, raw_slot(p, t), slot);
}

static __device__ __forceinline__ float max_nonneg(float a, float b)
{
	return b > a ? b : a;
}

// max over the lanes of a team (team lanes are aligned within a warp); the
// values are >= 0 and never NaN, so the order does not matter
static __device__ __forceinline__ float team_max(float v, int team)
{
	for (int m = team >> 1; m > 0; m >>= 1)
		v = max_nonneg(v, SHFL_XOR(v, m));
	return v;
}

// *p = a if a > *p, as the CPU's "if (a > amax[h]) amax[h] = a" (a >= 0):
// a NaN or -0 already there stays, a negative value is raised
static __device__ __forceinline__ void raise_float(float *p, float a)
{
	unsigned int *u = (unsigned int *)p;
	unsigned int old = *(volatile unsigned int *)u;
	while (a > fp8kv_bits_f32(old)) {
		const unsigned int prev = atomicCAS(u, old, fp8kv_f32_bits(a));
		if (prev == old)
			break;
		old = prev;
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

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
#define HAVE_HW_FP8 1
// fp8kv_encode for the OCP formats (e4m3fn, e5m2) through the hardware's
// cvt.rn.satfinite, which rounds to nearest even (subnormals included) and
// clamps finite overflow and +-Inf to +-max, as the contract's saturating
// mode does.  Around it: NaN takes the contract's signed code (the hardware
// drops the sign), and the non-saturating mode and the overflow flag come
// from |y| > the largest value that rounds to max (e4m3fn: 464, a tie that
// goes to the even 448; e5m2: just below 61440, a tie that goes to 2^16).
// The exhaustive device test (fp8kv-validate --level exhaustive) holds this
// to the CPU for all 2^32 inputs.
static __device__ __forceinline__ uint32_t last_to_max(const fp8kv_fp8_format f)
{
	return f.mant_bits == 3 ? 0x43E80000u : 0x476FFFFFu;
}

static __device__ __forceinline__ uint32_t encode_hw(float y, const fp8kv_fp8_format f,
						     int saturate)
{
	unsigned short pair;
	if (f.mant_bits == 3)
		asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(0.0f), "f"(y));
	else
		asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(0.0f), "f"(y));
	const uint32_t u = fp8kv_f32_bits(y);
	const uint32_t sign = (u >> 31) << 7;
	const uint32_t a = u & 0x7FFFFFFFu;
	const uint32_t big = a > last_to_max(f) ? 1u : 0u;  // overflow, +-Inf or NaN
	uint32_t out = pair & 0xFFu;
	out = big && !saturate ? f.inf_code | sign : out;
	out = a > 0x7F800000u ? f.nan_code | sign : out;
	return out | ((big & (a < 0x7F800000u ? 1u : 0u)) << 8);
}
#endif

// How a kernel converts, fixed for the whole launch: whether it divides by
// a scale, and whether the hardware encoder serves the format.  The
// per-element code is compiled once per kind, and a kernel picks one with a
// branch that is uniform across the launch: a select between the two ways
// would run both for every element.
// HOW_TWIN (HW vectors, the fast kernel): an fnuz format through the
// hardware codes of its OCP twin (twin_codes).
enum { HOW_SCALED = 1, HOW_HW = 2, HOW_RECIP = 4 /* HW vectors: divide_recip */, HOW_TWIN = 8 };

static __device__ __forceinline__ int conversion_kind(int scaled, const fp8kv_fp8_format f)
{
#ifdef HAVE_HW_FP8
	return (scaled ? HOW_SCALED : 0) | (f.fnuz ? 0 : HOW_HW);
#else
	(void)f;
	return scaled ? HOW_SCALED : 0;
#endif
}

// conversion_kind's choice of the hardware encoder, for a format known at
// compile time (the fast kernel); and the fnuz formats that the fast
// kernel's vectors convert through their OCP twin (twin_codes)
#ifdef HAVE_HW_FP8
#define HW_FORMAT(FMT) ((FMT) == FP8KV_CV_E4M3FN || (FMT) == FP8KV_CV_E5M2)
#define TWIN_FORMAT(FMT) ((FMT) == FP8KV_CV_E4M3FNUZ || (FMT) == FP8KV_CV_E5M2FNUZ)
#else
#define HW_FORMAT(FMT) 0
#define TWIN_FORMAT(FMT) 0
#endif

// one element, as cpu_backend.c quantize_row_generic; COUNT: the counters
// are wanted (else their arithmetic is left out)
template <bool COUNT, int HOW>
static __device__ __forceinline__ unsigned int quantize1_as(float x, float s,
							    const fp8kv_fp8_format f, int saturate,
							    unsigned int &overflows, unsigned int &nans)
{
	const float y = HOW & HOW_SCALED ? fp8kv_divide(x, s) : x;
#ifdef HAVE_HW_FP8
	const uint32_t q = HOW & HOW_HW ? encode_hw(y, f, saturate) : fp8kv_encode(y, f, saturate);
#else
	const uint32_t q = fp8kv_encode(y, f, saturate);
#endif
	if (COUNT) {
		const uint32_t xmag = fp8kv_f32_bits(x) & 0x7FFFFFFFu;
		const uint32_t ymag = fp8kv_f32_bits(y) & 0x7FFFFFFFu;
		overflows += (q >> 8) | ((xmag < 0x7F800000u) & (ymag == 0x7F800000u));
		nans += xmag > 0x7F800000u;
	}
	return q & 0xFFu;
}

template <bool COUNT>
static __device__ __forceinline__ unsigned int quantize1(float x, int how, float s,
							 const fp8kv_fp8_format f, int saturate,
							 unsigned int &overflows, unsigned int &nans)
{
	switch (how) {
	case 0: return quantize1_as<COUNT, 0>(x, s, f, saturate, overflows, nans);
	case HOW_SCALED: return quantize1_as<COUNT, HOW_SCALED>(x, s, f, saturate, overflows, nans);
	case HOW_HW: return quantize1_as<COUNT, HOW_HW>(x, s, f, saturate, overflows, nans);
	default:
		return quantize1_as<COUNT, HOW_SCALED | HOW_HW>(x, s, f, saturate, overflows, nans);
	}
}

#ifdef HAVE_HW_FP8
/*
 * x / s from rs = RN(1 / s) without a division, for the vector path below,
 * where only the FP8 code of the quotient matters and only when it is at
 * most last_to_max(f) <= 2^16 (anything larger goes the slow way).
 * q0 = RN(x * rs) is within 1.5 ulp of x / s; one step
 * q1 = RN(q0 + RN(x - s * q0) * rs) brings it within 1 ulp, and a second
 * step is then exactly RN(x / s) by Markstein's theorem (the fma computes
 * the remainder exactly), provided nothing on the way underflows or
 * overflows.  With 2^-30 <= |s| <= 2^30 (recip_exact, checked once per
 * scale) that holds whenever |x / s| >= 2^-18: x is then >= 2^-48 and the
 * remainder, about s * ulp(x / s), >= 2^-71.  Below 2^-18 every format
 * rounds to a zero, whatever the last bits, and only the zero's sign is
 * left to get right (the steps would also give x = +-0 the wrong one):
 * fp32 inputs take it from q0; 16-bit inputs, whose scale must then be
 * positive (recip_ok), take it from x itself, four codes at a time
 * (codes_signed_as), which costs a quarter of an instruction per element
 * where q0's sign costs one.
 * For x of at most 11 significant bits (every f16 and bf16 input) the
 * first step is already RN(x / s): the steps commute with powers of two,
 * so the pairs of significands decide, and dev/check-division.c tries them
 * all (2^33 pairs for f16, 0 misses); 16-bit inputs take STEPS = 1.
 * fp8kv-validate holds this to the CPU's IEEE division, with scales whose
 * quotients land within 2 ulp of rounding boundaries.
 */
static __device__ __forceinline__ bool recip_exact(float s)
{
	const uint32_t e = fp8kv_f32_bits(s) & 0x7F800000u;
	return e >= (127u - 30u) << 23 && e <= (127u + 29u) << 23;
}

// May the vectors of input DT divide by s the divide_recip way?
template <int DT>
static __device__ __forceinline__ bool recip_ok(float s)
{
	return recip_exact(s) && (DT == FP8KV_CV_F32 || s > 0.0f);
}

// Q0_SIGN: the quotient takes q0's sign; else its sign is left to the caller
template <int STEPS, bool Q0_SIGN>
static __device__ __forceinline__ float divide_recip(float x, float s, float rs)
{
	const float q0 = x * rs;
	float q = q0;
#pragma unroll
	for (int i = 0; i < STEPS; i++)
		q = __fmaf_rn(__fmaf_rn(-s, q, x), rs, q);
	if (!Q0_SIGN)
		return q;
	return fp8kv_bits_f32((fp8kv_f32_bits(q) & 0x7FFFFFFFu) |
			      (fp8kv_f32_bits(q0) & 0x80000000u));
}

// Four codes (the elements of 16-bit input words w0 and w1, in order), each
// given its input's sign bit: one byte permute gathers the four sign bytes,
// and one LOP3 merges them, (codes & m) | (signs & ~m) with m = 0x7F7F7F7F;
// 0xE4 is that function of 0xF0, 0xCC and 0xAA.  ptxas makes two LOP3 of
// the same expression in C (bench/NOTES.md, after v9).
static __device__ __forceinline__ unsigned int codes_signed_as(unsigned int codes,
							       unsigned int w0, unsigned int w1)
{
	const unsigned int signs = __byte_perm(w0, w1, 0x7531);
	unsigned int merged;
	asm("lop3.b32 %0, %1, %2, %3, 0xE4;"
	    : "=r"(merged)
	    : "r"(codes), "r"(signs), "r"(0x7F7F7F7Fu));
	return merged;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900  // max.u16x2
#define HAVE_INPUT_LIMIT 1
// A cheaper test for the hardware path in long launches of 16-bit inputs:
// input_limit(s, f) is the largest 16-bit magnitude T (as its bits, in
// both halves of a word) with T <= last_to_max(f) * s.  For s with
// recip_ok, inputs of magnitude <= T have quotients RN(x / s) <=
// last_to_max(f) (rounding is monotonic and last_to_max(f) is an fp32
// value): none overflows, and none is Inf or NaN, whose bits exceed any
// finite T.  inputs_within() tests that on the packed inputs, two at a
// time, where the quotients' maximum costs one or two instructions per
// element.  range_edges in tests/test_backends.c holds the line to the CPU.
template <int DT>
static __device__ __forceinline__ uint32_t input_limit(float s, const fp8kv_fp8_format f)
{
	const float l = fp8kv_bits_f32(last_to_max(f));
	const float q = l * s;  // may exceed l * s by half an ulp: mended below
	uint32_t t;
	float tf;
	if (DT == FP8KV_CV_BF16) {
		t = fp8kv_f32_bits(q) >> 16;  // toward zero
		tf = fp8kv_bits_f32(t << 16);
	} else {
		unsigned short h;
		asm("cvt.rz.f16.f32 %0, %1;" : "=h"(h) : "f"(q));  // toward zero, finite
		asm("cvt.f32.f16 %0, %1;" : "=f"(tf) : "h"(h));
		t = h;
	}
	// the sign of l * s - tf, exactly: both are multiples of 2^-80 or
	// coarser for recip_ok scales, so the difference cannot underflow
	if (__fmaf_rn(l, s, -tf) < 0.0f)
		t -= 1;
	return t | t << 16;
}

// Are the eight 16-bit magnitudes of v all <= the limit in lim2?
static __device__ __forceinline__ bool inputs_within(const uint4 v, uint32_t lim2)
{
	uint32_t a = v.x & 0x7FFF7FFFu, b = v.y & 0x7FFF7FFFu;
	uint32_t c = v.z & 0x7FFF7FFFu, d = v.w & 0x7FFF7FFFu;
	asm("max.u16x2 %0, %1, %2;" : "=r"(a) : "r"(a), "r"(b));
	asm("max.u16x2 %0, %1, %2;" : "=r"(c) : "r"(c), "r"(d));
	asm("max.u16x2 %0, %1, %2;" : "=r"(a) : "r"(a), "r"(c));
	asm("max.u16x2 %0, %1, %2;" : "=r"(a) : "r"(a), "r"(lim2));
	return a == lim2;
}
#endif

// The vector's elements as fp32 for the hardware path: f16 through the
// hardware's widening (exact for every finite f16, subnormals included,
// in one instruction where fp8kv_f16_to_f32 takes a dozen).  Infinities
// and NaNs (whose sign the hardware may not keep) never get past the
// path's range check, and the element-by-element path that takes them
// widens with fp8kv_f16_to_f32.
template <int DT>
static __device__ __forceinline__ void unpack_hw(const uint4 v, float x[8])
{
	if (DT != FP8KV_CV_F16) {
		unpack<DT>(v, x);
		return;
	}
	const unsigned int w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
	for (int k = 0; k < 4; k++) {
		const unsigned short lo = (unsigned short)(w[k] & 0xFFFFu);
		const unsigned short hi = (unsigned short)(w[k] >> 16);
		asm("cvt.f32.f16 %0, %1;" : "=f"(x[2 * k]) : "h"(lo));
		asm("cvt.f32.f16 %0, %1;" : "=f"(x[2 * k + 1]) : "h"(hi));
	}
}

/*
 * The fnuz formats have no hardware conversion, but each has an OCP twin
 * with the same bits and a bias one lower (e4m3fnuz: e4m3fn; e5m2fnuz:
 * e5m2), whose every value, subnormals included, is twice the fnuz value
 * of the same code.  Doubling is exact in fp32 and commutes with rounding
 * to either grid, so for |2y| <= the twin's last_to_max (|y| <= 232 for
 * e4m3fnuz, below 30720 for e5m2fnuz) the twin's hardware code of 2y is
 * the fnuz code of y, but for the sign of a zero: fnuz has no
 * negative zero (0x80 is its NaN), and twin_codes clears it, four codes at
 * a time.  Larger |2y| (e4m3fnuz's largest code, e5m2fnuz's top binade),
 * Inf and NaN go the element-by-element way, as for the OCP formats.
 */
static __device__ __forceinline__ unsigned int twin_codes(unsigned int codes)
{
	const unsigned int magnitudes = codes & 0x7F7F7F7Fu;
	// bit 7 of each byte: its magnitude is not 0 (no carry leaves a byte)
	const unsigned int nonzero = (magnitudes + 0x7F7F7F7Fu) & 0x80808080u;
	return magnitudes | (codes & nonzero);
}

// Two codes from the hardware, y0's in the low byte.
static __device__ __forceinline__ unsigned int cvt_pair(float y0, float y1,
							 const fp8kv_fp8_format f)
{
	unsigned short pair;
	if (f.mant_bits == 3)
		asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(y1), "f"(y0));
	else
		asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(y1), "f"(y0));
	return pair;
}
#endif

// one 16-byte input vector's 8 (or 4) codes, element by element
template <int DT, bool COUNT, int HOW>
static __device__ __forceinline__ void quantize_vec_elements(unsigned char *dst, const uint4 v,
							     float s, const fp8kv_fp8_format f,
							     int saturate, unsigned int &overflows,
							     unsigned int &nans)
{
	float x[8];
	unpack<DT>(v, x);
	unsigned int lo = 0, hi = 0;
#pragma unroll
	for (int k = 0; k < 4; k++)
		lo |= quantize1_as<COUNT, HOW>(x[k], s, f, saturate, overflows, nans) << (8 * k);
	if (DT == FP8KV_CV_F32) {
		*(unsigned int *)dst = lo;
	} else {
#pragma unroll
		for (int k = 0; k < 4; k++)
			hi |= quantize1_as<COUNT, HOW>(x[4 + k], s, f, saturate, overflows, nans)
			      << (8 * k);
		*(uint2 *)dst = make_uint2(lo, hi);
	}
}

#ifdef HAVE_HW_FP8
// The same, out of line, as the hardware path's fallback (overflow, Inf,
// NaN, a scale without an exact reciprocal): rare, and its registers then
// cost the loops that inline the hardware path nothing.  Returns the
// overflows and NaNs.
template <int DT, bool COUNT, int HOW>
static __device__ __noinline__ uint2 quantize_vec_fallback(unsigned char *dst, const uint4 v,
							   float s, const fp8kv_fp8_format f,
							   int saturate)
{
	unsigned int overflows = 0, nans = 0;
	quantize_vec_elements<DT, COUNT, HOW>(dst, v, s, f, saturate, overflows, nans);
	return make_uint2(overflows, nans);
}
#endif

// converts one 16-byte input vector and stores its 8 (or 4) codes; hw_ok
// false sends the vector the element-by-element way (the fast kernel's
// scale without an exact reciprocal); LIMIT: 16-bit inputs are tested
// against in_limit, input_limit() of the scale
template <int DT, bool COUNT, int HOW, bool LIMIT = false>
static __device__ __forceinline__ void quantize_vec_as(unsigned char *dst, const uint4 v, float s,
						       float rs, const fp8kv_fp8_format f, int saturate,
						       unsigned int &overflows, unsigned int &nans,
						       const bool hw_ok = true, const uint32_t in_limit = 0)
{
	(void)in_limit;
#ifdef HAVE_HW_FP8
	constexpr bool F32 = DT == FP8KV_CV_F32;
	constexpr int VE = F32 ? 4 : 8;
#ifdef HAVE_INPUT_LIMIT
	constexpr bool BY_INPUTS = LIMIT && !F32;
#else
	constexpr bool BY_INPUTS = false;
#endif
	static_assert(!(LIMIT && (HOW & HOW_TWIN)), "input_limit() is the OCP formats' bound");
	if (HOW & HOW_HW) {
		// When no quotient lies beyond the last value that rounds to max
		// (so none overflows, none is Inf or NaN), the hardware's codes
		// are the contract's codes and nothing counts: the whole vector
		// in a few instructions.  Otherwise, element by element.
		float x[8], y[8];
		unpack_hw<DT>(v, x);
		uint32_t amax = 0;
#pragma unroll
		for (int k = 0; k < VE; k++) {
			y[k] = HOW & HOW_RECIP ? divide_recip<F32 ? 2 : 1, F32>(x[k], s, rs)
			     : HOW & HOW_SCALED ? x[k] / s : x[k];
			if (HOW & HOW_TWIN)
				y[k] *= 2.0f;
			if (!BY_INPUTS) {
				const uint32_t a = fp8kv_f32_bits(y[k]) & 0x7FFFFFFFu;
				amax = a > amax ? a : amax;  // a NaN goes the slow way
			}
		}
		bool fits = amax <= last_to_max(f);
#ifdef HAVE_INPUT_LIMIT
		if (BY_INPUTS)
			fits = inputs_within(v, in_limit);
#endif
		if (hw_ok && fits) {
			unsigned int lo = cvt_pair(y[0], y[1], f) | cvt_pair(y[2], y[3], f) << 16;
			if (F32) {
				*(unsigned int *)dst = HOW & HOW_TWIN ? twin_codes(lo) : lo;
			} else {
				unsigned int hi = cvt_pair(y[4], y[5], f) | cvt_pair(y[6], y[7], f) << 16;
				if (HOW & HOW_RECIP) {  // the quotients' signs, left unset
					lo = codes_signed_as(lo, v.x, v.y);
					hi = codes_signed_as(hi, v.z, v.w);
				}
				if (HOW & HOW_TWIN) {
					lo = twin_codes(lo);
					hi = twin_codes(hi);
				}
				*(uint2 *)dst = make_uint2(lo, hi);
			}
			return;
		}
		// fnuz elements take the shared encoder
		constexpr int ELEMENTS = HOW & HOW_TWIN ? HOW & HOW_SCALED : HOW;
		const uint2 counts =
			quantize_vec_fallback<DT, COUNT, ELEMENTS>(dst, v, s, f, saturate);
		overflows += counts.x;
		nans += counts.y;
		return;
	}
#else
	(void)rs;
	(void)hw_ok;
#endif
	quantize_vec_elements<DT, COUNT, HOW>(dst, v, s, f, saturate, overflows, nans);
}

template <int DT, bool COUNT>
static __device__ __forceinline__ void quantize_vec(unsigned char *dst, const uint4 v, int how,
						    float s, float rs, const fp8kv_fp8_format f,
						    int saturate,
						    unsigned int &overflows, unsigned int &nans)
{
	switch (how) {
	case 0: quantize_vec_as<DT, COUNT, 0>(dst, v, s, rs, f, saturate, overflows, nans); break;
	case HOW_SCALED:
		quantize_vec_as<DT, COUNT, HOW_SCALED>(dst, v, s, rs, f, saturate, overflows, nans);
		break;
	case HOW_HW:
		quantize_vec_as<DT, COUNT, HOW_HW>(dst, v, s, rs, f, saturate, overflows, nans);
		break;
	default:
#ifdef HAVE_HW_FP8
		if (recip_ok<DT>(s)) {
			quantize_vec_as<DT, COUNT, HOW_SCALED | HOW_HW | HOW_RECIP>(
				dst, v, s, rs, f, saturate, overflows, nans);
			break;
		}
#endif
		quantize_vec_as<DT, COUNT, HOW_SCALED | HOW_HW>(dst, v, s, rs, f, saturate, overflows,
								nans);
		break;
	}
}

/* ------------------------------------------------------ the cache write */

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
static __device__ __forceinline__ void quantize_row(const row_work &w, int how, float s,
						    fp8kv_fp8_format f, int saturate,
						    unsigned int &overflows, unsigned int &nans)
{
	constexpr int VE = DT == FP8KV_CV_F32 ? 4 : 8;
	if (w.vec) {
		const int64_t nvec = w.n / VE;
		const float rs = 1.0f / s;
		if (w.first)
			quantize_vec<DT, COUNT>(w.dst + (int64_t)w.lane * VE, w.v0, how, s, rs, f,
						saturate, overflows, nans);
		for (int64_t v = w.lane + w.team; v < nvec; v += w.team)
			quantize_vec<DT, COUNT>(w.dst + v * VE, load16(w.src + v * 16), how, s, rs, f,
						saturate, overflows, nans);
	} else {
		for (int64_t d = w.lane; d < w.n; d += w.team)
			w.dst[d] = (unsigned char)quantize1<COUNT>(fp8kv_load_f32(w.src, d, DT), how,
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
 * One row (token t, head h) of one side, by the lanes of a team: cpu_backend.c
 * write_token for one head.  Every lane of the warp calls this with the same
 * sd; write is uniform within a team.  The team_max shuffles run on every
 * lane, writing or not.
 */
// The lane's first 16-byte vector of row (t, h) of a side, when the side is
// vectorised and the row has one for this lane; fetched a pair ahead.
template <int DT>
static __device__ __forceinline__ uint4 first_vector(const rc_side &sd, const int64_t t,
						     const int64_t h, const int lane)
{
	constexpr int IN = DT == FP8KV_CV_F32 ? 4 : 2;
	if (!sd.vec || lane >= sd.head_dim / (16 / IN))
		return make_uint4(0u, 0u, 0u, 0u);
	return load16(sd.input + (t * sd.stride_token + h * sd.stride_head) * IN +
		      (int64_t)lane * 16);
}

template <int DT, bool FP8>
static __device__ __forceinline__ void write_row(const rc_params &p, const rc_side &sd,
						 const bool write, const int64_t t, const int64_t h,
						 const int64_t block, const int64_t offset,
						 const int lane, const int team, const uint4 v0,
						 const fp8kv_fp8_format f, const float fmax,
						 unsigned long long &overflow_total,
						 unsigned long long &nan_total)
{
	constexpr int IN = DT == FP8KV_CV_F32 ? 4 : 2;
	constexpr int VE = 16 / IN;
	const bool dynamic = FP8 && p.scale_mode == FP8KV_SCALE_TOKEN_HEAD;
	row_work w;
	w.src = sd.input + (t * sd.stride_token + h * sd.stride_head) * IN;
	w.dst = sd.cache + (block * sd.cache_block + offset * sd.cache_slot + h * sd.cache_head) *
				   (FP8 ? 1 : IN);
	w.n = sd.head_dim;
	w.vec = sd.vec;
	w.first = sd.vec && write && lane < sd.head_dim / VE;
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
		copy_row<DT>(w, p.nan_count != NULL, nans);
		nan_total += nans;
		return;
	}
	float s = 1.0f;
	if (p.scale_mode == FP8KV_SCALE_TENSOR) {
		s = sd.scale[0];
	} else if (p.scale_mode == FP8KV_SCALE_HEAD) {
		s = sd.scale[h];
	} else if (dynamic) {
		s = fp8kv_dynamic_scale(amax, fmax);
		if (lane == 0)
			sd.scale_cache[block * p.scs_block + offset * p.scs_slot + h * p.scs_head] = s;
	}
	const int how = conversion_kind(p.scale_mode != FP8KV_SCALE_ONE, f);
	if (p.overflow_count || p.nan_count)
		quantize_row<DT, true>(w, how, s, f, p.saturate, overflows, nans);
	else
		quantize_row<DT, false>(w, how, s, f, p.saturate, overflows, nans);
	overflow_total += overflows;
	nan_total += nans;
}

// The last block of a launch that saw an out-of-range token publishes the
// smallest one, once, and resets the entry's token for the next launch.
static __device__ void publish_first(const rc_params &p)
{
	__threadfence();
	const unsigned long long token = atomicExch(&p.entry->token, NO_TOKEN);
	if (token == NO_TOKEN)
		return;
	int64_t slot = 0;
	const int past_swa = resolve_slot(p, (int64_t)token, &slot) == SLOT_PAST_SWA;

	volatile host_report *r = p.report;
	const unsigned long long gen = r->consumed;
	if (atomicCAS(p.claim, gen, gen + 1) != gen)
		return;  // a report is pending: it keeps the earlier error
	r->token = (long long)token;
	r->slot = (long long)slot;
	r->limit = (long long)(past_swa ? p.swa_len : p.num_slots);
	r->swa = past_swa;
	__threadfence_system();
	r->published = gen + 1;
	__threadfence_system();
}

/*
 * The count of finished blocks, in a launch of G > 1 blocks: each block's
 * thread 0 adds count_share() to the entry's state once the block has
 * recorded its out-of-range tokens (error: it recorded one).  Block 0 adds
 * 1 - G and every other block 1, so that the low 32 bits of the sum are 0
 * only once all G have added, whatever their order, and a launch adds 0 in
 * all: the entry is ready for the next launch (graph replays) without a
 * reset, which would cost the last block a second atomic.  The high 32
 * bits count the blocks that saw an out-of-range token; they alone are
 * reset, by the last block, when not 0.
 */
static __device__ __forceinline__ unsigned long long count_share(int error)
{
	return (blockIdx.x == 0 ? 1ull - gridDim.x : 1ull) + (error ? 1ull << 32 : 0ull);
}

// Issues the block's share where mine (thread 0); sets before to the state
// before it, which finish_launch needs, so that a caller may do other work
// while the atomic's round trip runs.  Predicated rather than branched on,
// so that nothing waits for the answer until finish_launch reads it.
static __device__ __forceinline__ void count_block(const rc_params &p, bool mine, int error,
						   unsigned long long &before)
{
	if (gridDim.x == 1)
		return;  // its own last block: nothing to count
	if (mine && error)
		__threadfence();  // the token before the count
	fp8kv_atomic_add_if(mine, &p.entry->state, count_share(error), before);
}

// Thread 0 of every block, after count_block: the last block of the launch
// publishes the smallest out-of-range token, if any.
static __device__ void finish_launch(const rc_params &p, int error, unsigned long long before)
{
	if (gridDim.x == 1) {
		if (!error)
			return;
	} else {
		const unsigned long long state = before + count_share(error);
		if ((unsigned int)state != 0 || (state >> 32) == 0)
			return;
		atomicExch(&p.entry->state, 0ull);
	}
	publish_first(p);
}

// The block's shared tallies, set up by block_begin and handed on by block_end.
typedef struct block_tally {
	unsigned long long overflows, nans;
	int error;  // an out-of-range token was recorded
} block_tally;

// Every kernel launched on the caller's stream (the cache writes and the
// flat conversions) starts with fp8kv_begin_after_prior_grid(): they are
// dependent launches (fp8kv_launch in hip_compat.h) where the code allows,
// and may start before the kernel ahead of them has finished.
static __device__ __forceinline__ void block_begin(const rc_params &p, block_tally &b)
{
	fp8kv_begin_after_prior_grid();
	if (threadIdx.x == 0) {
		b.overflows = 0;
		b.nans = 0;
		b.error = 0;
	}
	// the CPU merges a per-thread amax starting at 0 into every head
	if (blockIdx.x == 0)
		for (int64_t h = threadIdx.x; h < p.num_heads; h += BLOCK) {
			if (p.side[0].amax)
				raise_float(p.side[0].amax + h, 0.0f);
			if (p.side[1].amax)
				raise_float(p.side[1].amax + h, 0.0f);
		}
	__syncthreads();
}

// the first out-of-range token of the launch wins (token order)
static __device__ __forceinline__ void record_out_of_range(const rc_params &p, int64_t t)
{
	atomicMin(&p.entry->token, (unsigned long long)t);
	__threadfence();  // done before this block counts itself finished
}

template <bool FP8>
static __device__ __forceinline__ void block_end(const rc_params &p, block_tally &b,
						 unsigned long long overflows,
						 unsigned long long nans)
{
	if (FP8 && p.overflow_count && overflows)
		atomicAdd(&b.overflows, overflows);
	if (p.nan_count && nans)  // copies count NaN inputs too
		atomicAdd(&b.nans, nans);
	__syncthreads();
	if (threadIdx.x == 0) {
		if (b.overflows)
			atomicAdd(p.overflow_count, b.overflows);
		if (b.nans)
			atomicAdd(p.nan_count, b.nans);
		unsigned long long before = 0;
		count_block(p, true, b.error, before);
		finish_launch(p, b.error, before);
	}
}

// Any descriptor: rows of any length (a lane loops over its vectors or
// elements), copies, unaligned rows.
template <int DT, bool FP8>
static __global__ void __launch_bounds__(BLOCK) reshape_and_cache_kernel(const rc_params p)
{
	__shared__ block_tally tally;
	block_begin(p, tally);

	const int team = 1 << p.team_log2;
	const int lane = (int)threadIdx.x & (team - 1);
	const int64_t teams_per_block = BLOCK >> p.team_log2;
	const int64_t team_in_block = (int64_t)(threadIdx.x >> p.team_log2);
	const int64_t pairs = p.num_tokens * p.num_heads;
	const int64_t stride = (int64_t)gridDim.x * teams_per_block;
	const fp8kv_fp8_format f = fp8kv_format_of(p.cache_dtype);
	const float fmax = fp8kv_format_max(f);
	unsigned long long overflows = 0, nans = 0;

	// Block-uniform loop: every lane runs every iteration.  Both sides'
	// first vectors are loaded before either row is written, so that two
	// loads are in flight (the lean kernel is the fast path; this one
	// serves every other descriptor).
	for (int64_t base = (int64_t)blockIdx.x * teams_per_block; base < pairs; base += stride) {
		const int64_t pair = base + team_in_block;
		int64_t t = 0, h = 0, block = 0, offset = 0;
		uint4 k0 = make_uint4(0u, 0u, 0u, 0u), v0 = k0;
		bool write = false;
		if (pair < pairs) {
			t = div_nonneg(pair, p.num_heads);
			h = pair - t * p.num_heads;
			const int64_t raw = raw_slot(p, t);  // issued before the vectors
			k0 = first_vector<DT>(p.side[0], t, h, lane);
			v0 = first_vector<DT>(p.side[1], t, h, lane);
			int64_t slot = 0;
			const int kind = resolve_raw(p, raw, &slot);
			if (kind == SLOT_WRITE) {
				write = true;
				block = div_nonneg(slot, p.block_size);
				offset = slot - block * p.block_size;
			} else if (kind >= SLOT_OUT_OF_RANGE && h == 0 && lane == 0) {
				record_out_of_range(p, t);
				tally.error = 1;
			}
		}
		write_row<DT, FP8>(p, p.side[0], write, t, h, block, offset, lane, team, k0, f, fmax,
				   overflows, nans);
		write_row<DT, FP8>(p, p.side[1], write, t, h, block, offset, lane, team, v0, f, fmax,
				   overflows, nans);
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
static __global__ void __launch_bounds__(BLOCK, LEAN_MIN_BLOCKS) reshape_and_cache_lean(const rc_params p)
{
	constexpr int VE = DT == FP8KV_CV_F32 ? 4 : 8;
	__shared__ block_tally tally;
	block_begin(p, tally);

	const int team = 1 << p.team_log2;
	const int lane = (int)threadIdx.x & (team - 1);
	const int64_t teams_per_block = BLOCK >> p.team_log2;
	const int64_t team_in_block = (int64_t)(threadIdx.x >> p.team_log2);
	const int64_t pairs = p.num_tokens * p.num_heads;
	const int64_t stride = (int64_t)gridDim.x * teams_per_block;
	const fp8kv_fp8_format f = fp8kv_format_of(p.cache_dtype);
	const float fmax = fp8kv_format_max(f);
	const bool dynamic = p.scale_mode == FP8KV_SCALE_TOKEN_HEAD;
	const int how = conversion_kind(p.scale_mode != FP8KV_SCALE_ONE, f);
	unsigned int overflows = 0, nans = 0;
	// a per-tensor scale and its reciprocal, once
	float tensor_s[2] = {1.0f, 1.0f}, tensor_rs[2] = {1.0f, 1.0f};
	if (p.scale_mode == FP8KV_SCALE_TENSOR)
		for (int i = 0; i < 2; i++) {
			tensor_s[i] = p.side[i].scale[0];
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
			t = p.narrow ? div_magic(pair, p.heads_magic, p.heads_shift)
				     : div_nonneg(pair, p.num_heads);
			h = pair - t * p.num_heads;
			raw = raw_slot(p, t);
#pragma unroll
			for (int i = 0; i < 2; i++) {
#pragma unroll
				for (int j = 0; j < VPL; j++)
					x[i][j] = first_vector<DT>(p.side[i], t, h, lane + j * team);
				if (p.scale_mode == FP8KV_SCALE_HEAD)
					s[i] = p.side[i].scale[h];
			}
		}
		int64_t slot = 0, block = 0, offset = 0;
		const int kind = pair < pairs ? resolve_raw(p, raw, &slot) : SLOT_PADDING;
		const bool write = kind == SLOT_WRITE;
		if (p.scale_mode == FP8KV_SCALE_HEAD) {
			rs[0] = 1.0f / s[0];
			rs[1] = 1.0f / s[1];
		}
		if (write) {
			block = p.narrow ? div_magic(slot, p.bs_magic, p.bs_shift)
					 : div_nonneg(slot, p.block_size);
			offset = slot - block * p.block_size;
		} else if (kind >= SLOT_OUT_OF_RANGE && h == 0 && lane == 0) {
			record_out_of_range(p, t);
			tally.error = 1;
		}
#pragma unroll
		for (int i = 0; i < 2; i++) {
			const rc_side &sd = p.side[i];
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
						sd.scale_cache[block * p.scs_block + offset * p.scs_slot +
							       h * p.scs_head] = s[i];
				}
			}
			unsigned char *const row = sd.cache + block * sd.cache_block +
						   offset * sd.cache_slot + h * sd.cache_head;
#pragma unroll
			for (int j = 0; j < VPL; j++)
				if (mine[j])
					quantize_vec<DT, COUNT>(row + (int64_t)(lane + j * team) * VE,
								x[i][j], how, s[i], rs[i], f, p.saturate,
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
 * slots and every element offset in 32 bits (fast_eligible()).  It is the
 * lean kernel without the runtime branches and the 64-bit index
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
template <int DT, int FMT, int HOW, int VPL, bool FULL, bool LIMIT>
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
				quantize_vec_as<DT, false, HOW, LIMIT>(
					row[i] + (lane + j * team) * VE, x[i][j], s[i], rs[i], f,
					saturate, overflows, nans, hw_ok, lim[i]);
}

// Pair `pair` (none past `pairs`): its token t, head h, raw slot and the
// lane's input vectors.
template <int DT, int VPL, bool FULL>
static __device__ __forceinline__ void fetch_pair(const rc_params &p, uint64_t pair, uint64_t pairs,
						  uint32_t lane, uint32_t team,
						  const uint32_t nvec[2], uint32_t &t, uint32_t &h,
						  int64_t &raw, uint4 (&x)[2][VPL])
{
	constexpr int IN = DT == FP8KV_CV_F32 ? 4 : 2;
	raw = -1;
	if (pair >= pairs)
		return;
	t = (uint32_t)div_magic((int64_t)pair, p.heads_magic, p.heads_shift);
	h = (uint32_t)pair - t * (uint32_t)p.num_heads;
	raw = raw_slot(p, t);
#pragma unroll
	for (int i = 0; i < 2; i++) {
		const rc_side &sd = p.side[i];
		const unsigned char *src =
			sd.input + (uint64_t)(t * (uint32_t)sd.stride_token + h * (uint32_t)sd.stride_head) * IN;
#pragma unroll
		for (int j = 0; j < VPL; j++)
			if (FULL || lane + j * team < nvec[i])
				x[i][j] = load16(src + (lane + j * team) * 16);
	}
}

// PIPELINED: the launch is one wave of blocks that loop (fast_grid_for),
// and each iteration issues the next pair's loads before it converts its
// own, so that a lane keeps a pair's loads in flight all the way through.
// The second set of vectors costs registers: such a block is sized for
// PIPE_MIN_BLOCKS per multiprocessor.
// LIMIT: 16-bit inputs take the hardware path by input_limit(), worked out
// once per block (fast_grid_for says when that pays).
template <int DT, int FMT, bool SCALED, int VPL, bool FULL, bool PIPELINED, bool LIMIT>
static __global__ void __launch_bounds__(BLOCK, PIPELINED ? PIPE_MIN_BLOCKS : LEAN_MIN_BLOCKS)
reshape_and_cache_fast(const rc_params p)
{
	constexpr int VE = DT == FP8KV_CV_F32 ? 4 : 8;
	// the twin only with scale one: a per-tensor scale calibrated to the
	// format's max puts quotients past the twin's range in most warps, and
	// the divergent fallback then costs more than the shared encoder
	// (bench/NOTES.md, v12)
	constexpr int HW = HW_FORMAT(FMT)		 ? HOW_HW
			   : TWIN_FORMAT(FMT) && !SCALED ? HOW_HW | HOW_TWIN
							 : 0;
	fp8kv_begin_after_prior_grid();
	const uint32_t team = 1u << p.team_log2;
	const uint32_t lane = threadIdx.x & (team - 1);
	const uint32_t teams_per_block = BLOCK >> p.team_log2;
	const uint32_t my_team = threadIdx.x >> p.team_log2;
	const uint64_t pairs = (uint64_t)(p.num_tokens * p.num_heads);
	const uint64_t stride = (uint64_t)gridDim.x * teams_per_block;
	const uint32_t block_size = (uint32_t)p.block_size;
	const uint32_t nvec[2] = {(uint32_t)(p.side[0].head_dim / VE),
				  (uint32_t)(p.side[1].head_dim / VE)};
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
			s[0] = p.side[0].scale[0];
			s[1] = p.side[1].scale[0];
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
		if (raw >= p.num_slots && h == 0 && lane == 0) {
			record_out_of_range(p, t);
			error = 1;
		}
		if (last) {
			error = __syncthreads_or(error);
			count_block(p, threadIdx.x == 0, error, counted);
		}
		if (raw < 0 || raw >= p.num_slots)
			continue;
		const uint32_t block = (uint32_t)div_magic(raw, p.bs_magic, p.bs_shift);
		const uint32_t offset = (uint32_t)raw - block * block_size;
		unsigned char *row[2];
#pragma unroll
		for (int i = 0; i < 2; i++) {
			const rc_side &sd = p.side[i];
			row[i] = sd.cache + (uint64_t)block * (uint32_t)sd.cache_block +
				 (offset * (uint32_t)sd.cache_slot + h * (uint32_t)sd.cache_head);
		}
		if (!SCALED)
			convert_pair<DT, FMT, HW, VPL, FULL, LIMIT>(row, x, s, rs, lane, team, nvec,
								    p.saturate, lim);
		else
			convert_pair<DT, FMT, HOW_SCALED | HW | HOW_RECIP, VPL, FULL, LIMIT>(
				row, x, s, rs, lane, team, nvec, p.saturate, lim, recip);
	}
	if (threadIdx.x == 0)
		finish_launch(p, error, counted);
}

/* ------------------------------------------------------ flat conversions */

template <int DT, bool COUNT>
static __global__ void __launch_bounds__(BLOCK) quantize_kernel(const flat_params p)
{
	constexpr int VE = DT == FP8KV_CV_F32 ? 4 : 8;
	__shared__ unsigned long long block_overflows;
	fp8kv_begin_after_prior_grid();
	if (threadIdx.x == 0)
		block_overflows = 0;
	__syncthreads();

	const fp8kv_fp8_format f = fp8kv_format_of(p.format);
	const float s = p.scaled ? p.scale[0] : 1.0f, rs = 1.0f / s;
	const int how = conversion_kind(p.scaled, f);
	const int64_t first = (int64_t)blockIdx.x * BLOCK + threadIdx.x;
	const int64_t stride = (int64_t)gridDim.x * BLOCK;
	unsigned int overflows = 0, nans = 0;
	unsigned long long total = 0;
	int64_t done = 0;
	if (p.vec) {
		const int64_t nvec = p.count / VE;
		for (int64_t v = first; v < nvec; v += stride) {
			quantize_vec<DT, COUNT>(p.dst + v * VE, load16(p.src + v * 16), how, s, rs, f,
						p.saturate, overflows, nans);
			total += overflows;
			overflows = 0;
		}
		done = nvec * VE;
	}
	for (int64_t i = done + first; i < p.count; i += stride) {
		p.dst[i] = (unsigned char)quantize1<COUNT>(fp8kv_load_f32(p.src, i, DT), how, s,
							   f, p.saturate, overflows, nans);
		total += overflows;
		overflows = 0;
	}

	if (COUNT && total)
		atomicAdd(&block_overflows, total);
	__syncthreads();
	if (COUNT && threadIdx.x == 0 && block_overflows)
		atomicAdd(p.overflow_count, block_overflows);
}

// x = float(q) * s, rounded to the output dtype (cpu_backend.c cpu_dequantize)
template <int DT>
static __global__ void __launch_bounds__(BLOCK) dequantize_kernel(const flat_params p)
{
	fp8kv_begin_after_prior_grid();
	const fp8kv_fp8_format f = fp8kv_format_of(p.format);
	const float s = p.scaled ? p.scale[0] : 1.0f;
	const int64_t stride = (int64_t)gridDim.x * BLOCK;
	for (int64_t i = (int64_t)blockIdx.x * BLOCK + threadIdx.x; i < p.count; i += stride) {
		const float x = fp8kv_bits_f32(fp8kv_decode_bits(p.src[i], f));
		const float y = p.scaled ? fp8kv_multiply(x, s) : x;
		if (DT == FP8KV_CV_F32)
			((float *)p.dst)[i] = y;
		else if (DT == FP8KV_CV_F16)
			((uint16_t *)p.dst)[i] = fp8kv_f32_to_f16(y);
		else
			((uint16_t *)p.dst)[i] = fp8kv_f32_to_bf16(y);
	}
}

// *out = max over finite |x|, as fp32 bits (all >= +0, so unsigned order)
template <int DT>
static __global__ void __launch_bounds__(BLOCK) amax_kernel(const void *src, int64_t count,
							    unsigned int *out)
{
	__shared__ unsigned int block_max;
	if (threadIdx.x == 0)
		block_max = 0;
	__syncthreads();
	float m = 0.0f;
	const int64_t stride = (int64_t)gridDim.x * BLOCK;
	for (int64_t i = (int64_t)blockIdx.x * BLOCK + threadIdx.x; i < count; i += stride)
		m = max_nonneg(m, fp8kv_finite_abs(fp8kv_load_f32(src, i, DT)));
	if (m > 0.0f)
		atomicMax(&block_max, fp8kv_f32_bits(m));
	__syncthreads();
	if (threadIdx.x == 0 && block_max)
		atomicMax(out, block_max);
}

/* ----------------------------------------------------------- slot checks */

typedef struct slot_totals {
	unsigned long long padding, out_of_range, duplicates;
	unsigned long long first_padding, first_out_of_range;  // NO_TOKEN if none
	unsigned long long found;  // check_dup_prefix: a duplicate in the prefix
} slot_totals;

// counts padding and out-of-range tokens (first = smallest index) and sets
// the bitmap; a token finding its bit set is one duplicate
static __global__ void __launch_bounds__(BLOCK) check_slots_kernel(const void *slots, int type,
								   int64_t count, int64_t num_slots,
								   unsigned long long *bitmap,
								   slot_totals *out)
{
	unsigned long long padding = 0, out_of_range = 0, duplicates = 0;
	unsigned long long first_padding = NO_TOKEN, first_out_of_range = NO_TOKEN;
	const int64_t stride = (int64_t)gridDim.x * BLOCK;
	for (int64_t t = (int64_t)blockIdx.x * BLOCK + threadIdx.x; t < count; t += stride) {
		const int64_t s = load_index(slots, t, type);
		if (s < 0) {
			if (padding++ == 0)
				first_padding = (unsigned long long)t;
		} else if (s >= num_slots) {
			if (out_of_range++ == 0)
				first_out_of_range = (unsigned long long)t;
		} else {
			const unsigned long long bit = 1ull << (s & 63);
			if (atomicOr(&bitmap[s >> 6], bit) & bit)
				duplicates++;
		}
	}
	if (padding) {
		atomicAdd(&out->padding, padding);
		atomicMin(&out->first_padding, first_padding);
	}
	if (out_of_range) {
		atomicAdd(&out->out_of_range, out_of_range);
		atomicMin(&out->first_out_of_range, first_out_of_range);
	}
	if (duplicates)
		atomicAdd(&out->duplicates, duplicates);
}

// out->found = 1 if two of tokens [0, prefix) share a slot
static __global__ void __launch_bounds__(BLOCK) check_dup_prefix_kernel(const void *slots, int type,
									int64_t prefix, int64_t num_slots,
									unsigned long long *bitmap,
									slot_totals *out)
{
	const int64_t stride = (int64_t)gridDim.x * BLOCK;
	for (int64_t t = (int64_t)blockIdx.x * BLOCK + threadIdx.x; t < prefix; t += stride) {
		const int64_t s = load_index(slots, t, type);
		if (s < 0 || s >= num_slots)
			continue;
		const unsigned long long bit = 1ull << (s & 63);
		if (atomicOr(&bitmap[s >> 6], bit) & bit)
			out->found = 1;
	}
}

// clears the words that tokens [0, prefix) set (nothing else set any)
static __global__ void __launch_bounds__(BLOCK) clear_bits_kernel(const void *slots, int type,
								  int64_t prefix, int64_t num_slots,
								  unsigned long long *bitmap)
{
	const int64_t stride = (int64_t)gridDim.x * BLOCK;
	for (int64_t t = (int64_t)blockIdx.x * BLOCK + threadIdx.x; t < prefix; t += stride) {
		const int64_t s = load_index(slots, t, type);
		if (s >= 0 && s < num_slots)
			bitmap[s >> 6] = 0;
	}
}

/* ------------------------------------------------------------ host side */

typedef struct hip_context {
	int device;
	int sm_count;
	dev_state *dev;             // device memory
	host_report *report;        // mapped host memory, host address
	host_report *report_dev;    // its device address
	unsigned int eager_seq, graph_seq;
	int dependent_launch;       // fp8kv_dependent_launch_usable()
	pthread_mutex_t lock;       // report consumption
	char name[24];
	char description[320];
} hip_context;

typedef struct pending_report {
	long long token, slot, limit;
	int swa;
} pending_report;

// makes ctx's device current for the life of the object, then restores
class device_guard {
      public:
	explicit device_guard(int device) : previous_(-1)
	{
		if (hipGetDevice(&previous_) != hipSuccess) {
			(void)hipGetLastError();
			previous_ = -1;
		}
		if (previous_ != device)
			(void)hipSetDevice(device);
	}
	~device_guard()
	{
		int now = -1;
		if (previous_ >= 0 && hipGetDevice(&now) == hipSuccess && now != previous_)
			(void)hipSetDevice(previous_);
	}

      private:
	int previous_;
	device_guard(const device_guard &);
	device_guard &operator=(const device_guard &);
};

static fp8kv_status runtime_error(fp8kv_status status, const char *what, hipError_t e)
{
	(void)hipGetLastError();  // clear a non-sticky error
	return host->set_error(status, "hip: %s: %s", what, hipGetErrorString(e));
}

static unsigned int grid_for(const hip_context *c, int64_t units, int64_t per_block)
{
	const int64_t cap = (int64_t)c->sm_count * BLOCKS_PER_SM;
	int64_t blocks = (units + per_block - 1) / per_block;
	if (blocks > cap)
		blocks = cap;
	return (unsigned int)(blocks < 1 ? 1 : blocks);
}

// Blocks for the lean and fast kernels, which are sized for LEAN_MIN_BLOCKS
// resident blocks per multiprocessor (a wave): a launch of up to
// SHORT_LAUNCH_WAVES waves runs as one wave whose blocks loop, so that the
// fixed costs of a block (its start, the scale's reciprocal, its count in
// finish_launch) are paid once per resident block and no partial wave
// trails.
static unsigned int lean_grid_for(const hip_context *c, int64_t pairs, int team_log2)
{
	const unsigned int grid = grid_for(c, pairs, (int64_t)(BLOCK >> team_log2));
	const unsigned int wave = (unsigned int)c->sm_count * LEAN_MIN_BLOCKS;
	return grid > wave && grid <= SHORT_LAUNCH_WAVES * wave ? wave : grid;
}

// a report the device published and nobody has read yet
static int take_report(hip_context *c, pending_report *out)
{
	int found = 0;
	pthread_mutex_lock(&c->lock);
	const unsigned long long published =
		__atomic_load_n(&c->report->published, __ATOMIC_ACQUIRE);
	if (published != c->report->consumed) {
		const volatile host_report *r = c->report;
		out->token = r->token;
		out->slot = r->slot;
		out->limit = r->limit;
		out->swa = r->swa;
		__atomic_store_n(&c->report->consumed, published, __ATOMIC_RELEASE);
		found = 1;
	}
	pthread_mutex_unlock(&c->lock);
	return found;
}

static fp8kv_status report_error(const pending_report *r)
{
	return fp8kv_range_error(host->set_error, (int64_t)r->token, (int64_t)r->slot,
				 (int64_t)r->limit, r->swa);
}

static fp8kv_status hip_open(int device, void **out)
{
	int count = 0;
	hipError_t e = hipGetDeviceCount(&count);
	if (e != hipSuccess) {
		(void)hipGetLastError();
		return host->set_error(FP8KV_ENODEV, "hip: no usable GPU (hipGetDeviceCount: %s)",
				       hipGetErrorString(e));
	}
	if (count <= 0)
		return host->set_error(FP8KV_ENODEV, "hip: no GPU found");
	if (device < 0)
		device = 0;
	if (device >= count)
		return host->set_error(FP8KV_ENODEV, "hip: device %d requested, %d present", device,
				       count);

	hip_context *c = (hip_context *)calloc(1, sizeof *c);
	if (!c)
		return host->set_error(FP8KV_ENOMEM, "hip: no memory for the backend");
	c->device = device;
	device_guard guard(device);
	fp8kv_status st = FP8KV_OK;

	hipDeviceProp_t prop;
	memset(&prop, 0, sizeof prop);
	if ((e = hipGetDeviceProperties(&prop, device)) != hipSuccess) {
		st = runtime_error(FP8KV_ENODEV, "hipGetDeviceProperties", e);
		goto fail;
	}
	c->sm_count = prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 1;
	{
		char arch[64];
#if defined(__NVCC__)
		snprintf(arch, sizeof arch, "sm_%d%d", prop.major, prop.minor);
#else
		snprintf(arch, sizeof arch, "%.63s", prop.gcnArchName);
		arch[strcspn(arch, ":")] = '\0';  // "gfx90a:sramecc+:xnack-"
#endif
		snprintf(c->name, sizeof c->name, "hip:%d", device);
		snprintf(c->description, sizeof c->description, "%.200s (%.60s)", prop.name, arch);

		// the module must hold code for this device
		hipFuncAttributes attr;
		if ((e = hipFuncGetAttributes(
			     &attr, (const void *)reshape_and_cache_kernel<FP8KV_CV_BF16, true>)) !=
		    hipSuccess) {
			(void)hipGetLastError();
			st = host->set_error(FP8KV_ENODEV,
					     "hip: %s: fp8kv_hip.so has no code for %s (built for %s): %s",
					     c->name, arch, FP8KV_HIP_TARGETS, hipGetErrorString(e));
			goto fail;
		}
	}
	c->dependent_launch =
		fp8kv_dependent_launch_usable(reshape_and_cache_kernel<FP8KV_CV_BF16, true>);

	if ((e = hipMalloc((void **)&c->dev, sizeof(dev_state))) != hipSuccess) {
		st = runtime_error(FP8KV_ENOMEM, "hipMalloc (error state)", e);
		goto fail;
	}
	{
		dev_state init;
		memset(&init, 0, sizeof init);
		for (int i = 0; i < RING; i++)
			init.ring[i].token = NO_TOKEN;
		if ((e = hipMemcpy(c->dev, &init, sizeof init, hipMemcpyHostToDevice)) != hipSuccess) {
			st = runtime_error(FP8KV_EBACKEND, "hipMemcpy (error state)", e);
			goto fail;
		}
	}
	if ((e = hipHostMalloc((void **)&c->report, sizeof(host_report),
			       hipHostMallocMapped | hipHostMallocCoherent)) != hipSuccess) {
		c->report = NULL;
		st = runtime_error(FP8KV_ENOMEM, "hipHostMalloc (error report)", e);
		goto fail;
	}
	memset(c->report, 0, sizeof *c->report);
	if ((e = hipHostGetDevicePointer((void **)&c->report_dev, c->report, 0)) != hipSuccess) {
		st = runtime_error(FP8KV_EBACKEND, "hipHostGetDevicePointer", e);
		goto fail;
	}
	if ((e = hipDeviceSynchronize()) != hipSuccess) {
		st = runtime_error(FP8KV_EBACKEND, "hipDeviceSynchronize", e);
		goto fail;
	}
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		st = host->set_error(FP8KV_EBACKEND, "hip: cannot create a mutex");
		goto fail;
	}
	*out = c;
	return FP8KV_OK;

fail:
	if (c->report)
		(void)hipHostFree(c->report);
	if (c->dev)
		(void)hipFree(c->dev);
	(void)hipGetLastError();
	free(c);
	return st;
}

static void hip_close(void *ctx)
{
	hip_context *c = (hip_context *)ctx;
	{
		device_guard guard(c->device);
		(void)hipDeviceSynchronize();
		(void)hipFree(c->dev);
		(void)hipHostFree(c->report);
		(void)hipGetLastError();
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static const char *hip_name(void *ctx)
{
	return ((hip_context *)ctx)->name;
}

static const char *hip_device(void *ctx)
{
	return ((hip_context *)ctx)->description;
}

static fp8kv_status hip_synchronize(void *ctx, void *stream)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	const hipError_t e = hipStreamSynchronize((hipStream_t)stream);
	if (e != hipSuccess)
		return runtime_error(FP8KV_EBACKEND, "hipStreamSynchronize", e);
	pending_report r = {0, 0, 0, 0};
	if (take_report(c, &r))
		return report_error(&r);
	return FP8KV_OK;
}

/* ---- buffers: synchronous, on the default stream ---- */

static fp8kv_status hip_alloc(void *ctx, size_t bytes, void **ptr)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	void *p = NULL;
	const hipError_t e = hipMalloc(&p, bytes);
	if (e != hipSuccess) {
		(void)hipGetLastError();
		return host->set_error(FP8KV_ENOMEM, "hip: cannot allocate %zu bytes on %s: %s",
				       bytes, c->name, hipGetErrorString(e));
	}
	*ptr = p;
	return FP8KV_OK;
}

static void hip_free(void *ctx, void *ptr)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	if (hipFree(ptr) != hipSuccess)
		(void)hipGetLastError();
}

static fp8kv_status hip_upload(void *ctx, void *dst, const void *src, size_t bytes)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	hipError_t e = hipMemcpy(dst, src, bytes, hipMemcpyHostToDevice);
	if (e == hipSuccess)
		e = hipStreamSynchronize(0);  // a pageable copy may return before the DMA ends
	return e == hipSuccess ? FP8KV_OK : runtime_error(FP8KV_EBACKEND, "upload (hipMemcpy)", e);
}

static fp8kv_status hip_download(void *ctx, void *dst, const void *src, size_t bytes)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	const hipError_t e = hipMemcpy(dst, src, bytes, hipMemcpyDeviceToHost);
	return e == hipSuccess ? FP8KV_OK
			       : runtime_error(FP8KV_EBACKEND, "download (hipMemcpy)", e);
}

static fp8kv_status hip_fill(void *ctx, void *dst, uint8_t byte, size_t bytes)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	hipError_t e = hipMemsetAsync(dst, byte, bytes, 0);
	if (e == hipSuccess)
		e = hipStreamSynchronize(0);
	return e == hipSuccess ? FP8KV_OK : runtime_error(FP8KV_EBACKEND, "fill (hipMemset)", e);
}

/* ---- the cache write ---- */

// may this side use 16-byte input vectors (and VE-element cache stores)?
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

static int side_vectorizable(const void *input, size_t in_size, const void *cache,
			     size_t cache_size, int64_t head_dim, int64_t stride_token,
			     int64_t stride_head, int64_t cb, int64_t cs, int64_t ch)
{
	const int64_t ve = (int64_t)(16 / in_size);
	const uintptr_t out_bytes = (uintptr_t)ve * cache_size;
	return head_dim % ve == 0 && (uintptr_t)input % 16 == 0 && stride_token % ve == 0 &&
	       stride_head % ve == 0 && (uintptr_t)cache % out_bytes == 0 && cb % ve == 0 &&
	       cs % ve == 0 && ch % ve == 0;
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

// The fast kernel's shapes: one vector per lane, or two (in turn
// pipelined, or in a long launch that tests the inputs against a limit)
enum { FAST_VPL1, FAST_VPL2, FAST_VPL2_PIPELINED, FAST_VPL2_LIMIT };

// The fast kernel's shape (FAST_*), team width and grid for `pairs` rows of
// `units` vectors:
// - rows of 8 vectors or more take 2 per lane, in a team half as wide,
//   except in a launch that would then have blocks for fewer than a
//   quarter of the multiprocessors (small decode batches): there 1 per
//   lane, in twice the blocks, shortens each lane's chain of latencies.
//   At 64 blocks (256 tokens x 8 heads on 132 multiprocessors) doubling
//   the blocks measured slower (bench/NOTES.md, v9);
// - a launch of 2 per lane of more than one wave and up to PIPELINED_WAVES
//   runs as one wave of pipelined blocks, so that no partial wave trails
//   and a block's fixed costs (its start, the scale's reciprocal, its
//   count) are paid once.  Longer launches keep one pair per team: the
//   hardware then balances the multiprocessors' work, which a wave's fixed
//   split of it does not (bench/NOTES.md, v9).  They test 16-bit inputs
//   against input_limit(): fewer instructions per vector, for a limit
//   worked out first, which cost shorter launches more than it saved
//   (bench/NOTES.md, v11).
static unsigned int fast_grid_for(const hip_context *c, int64_t pairs, int64_t units, int *shape,
				  int *team_log2)
{
	if (units >= 8) {
		*team_log2 = team_log2_for((units + 1) / 2);
		const int64_t per_block = BLOCK >> *team_log2;
		const int64_t blocks = (pairs + per_block - 1) / per_block;  // not capped
		const int64_t wave = (int64_t)c->sm_count * PIPE_MIN_BLOCKS;
		if (blocks > wave && blocks <= PIPELINED_WAVES * wave) {
			*shape = FAST_VPL2_PIPELINED;
			return (unsigned int)wave;
		}
		if (blocks >= c->sm_count / 4 || units > MAX_TEAM) {
			*shape = blocks > PIPELINED_WAVES * wave ? FAST_VPL2_LIMIT : FAST_VPL2;
			return lean_grid_for(c, pairs, *team_log2);
		}
	}
	*shape = FAST_VPL1;
	*team_log2 = team_log2_for(units);
	return lean_grid_for(c, pairs, *team_log2);
}

// Does reshape_and_cache_fast serve this descriptor (besides lean)?  Its
// index arithmetic is 32-bit: pairs and slots (narrow), and the largest
// element offset of a row within the input and within a cache block.
static int fast_eligible(const fp8kv_cache_write *d, const rc_params *p)
{
	if (d->overflow_count || d->nan_count || d->k_amax || d->v_amax || d->swa_mapping ||
	    !p->narrow ||
	    (d->scale_mode != FP8KV_SCALE_ONE && d->scale_mode != FP8KV_SCALE_TENSOR))
		return 0;
	const int64_t limit = (int64_t)1 << 32;
	for (int i = 0; i < 2; i++) {
		const rc_side *sd = &p->side[i];
		const int64_t in_end = (p->num_tokens - 1) * sd->stride_token +
				       (p->num_heads - 1) * sd->stride_head + sd->head_dim;
		const int64_t row_end = (p->block_size - 1) * sd->cache_slot +
					(p->num_heads - 1) * sd->cache_head + sd->head_dim;
		if (in_end >= limit || row_end >= limit || sd->cache_block >= limit)
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
static hipError_t launch_write(Kernel kernel, const write_launch &at, const rc_params &p)
{
	return fp8kv_launch(kernel, at.grid, BLOCK, at.stream, at.dependent, p);
}

template <int DT, int FMT, bool SCALED>
static hipError_t launch_fast_rows(const write_launch &at, const rc_params &p, int shape, int full)
{
	// the limit serves 16-bit inputs of the formats with hardware codes
	// (not HW_FORMAT: host and device code must launch the same kernels)
	constexpr bool LIMIT = DT != FP8KV_CV_F32 &&
			       (FMT == FP8KV_CV_E4M3FN || FMT == FP8KV_CV_E5M2);
#define FAST(VPL, FULL, PIPELINED, LIM) \
	launch_write(reshape_and_cache_fast<DT, FMT, SCALED, VPL, FULL, PIPELINED, LIM>, at, p)
	switch (shape * 2 + !!full) {
	case FAST_VPL1 * 2: return FAST(1, false, false, false);
	case FAST_VPL1 * 2 + 1: return FAST(1, true, false, false);
	case FAST_VPL2 * 2: return FAST(2, false, false, false);
	case FAST_VPL2 * 2 + 1: return FAST(2, true, false, false);
	case FAST_VPL2_LIMIT * 2: return FAST(2, false, false, LIMIT);
	case FAST_VPL2_LIMIT * 2 + 1: return FAST(2, true, false, LIMIT);
	case FAST_VPL2_PIPELINED * 2: return FAST(2, false, true, false);
	default: return FAST(2, true, true, false);
	}
#undef FAST
}

template <int DT, int FMT>
static hipError_t launch_fast(const write_launch &at, const rc_params &p, int scaled, int shape,
			      int full)
{
	return scaled ? launch_fast_rows<DT, FMT, true>(at, p, shape, full)
		      : launch_fast_rows<DT, FMT, false>(at, p, shape, full);
}

// full: every lane of a team has VPL vectors in both rows
template <int DT>
static hipError_t launch_fast_dt(const write_launch &at, const rc_params &p, int scaled, int shape,
				 int full)
{
	switch (p.cache_dtype) {
	case FP8KV_E4M3FNUZ: return launch_fast<DT, FP8KV_CV_E4M3FNUZ>(at, p, scaled, shape, full);
	case FP8KV_E5M2: return launch_fast<DT, FP8KV_CV_E5M2>(at, p, scaled, shape, full);
	case FP8KV_E5M2FNUZ: return launch_fast<DT, FP8KV_CV_E5M2FNUZ>(at, p, scaled, shape, full);
	default: return launch_fast<DT, FP8KV_CV_E4M3FN>(at, p, scaled, shape, full);
	}
}

static fp8kv_status hip_reshape_and_cache(void *ctx, const fp8kv_cache_write *d, void *stream)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	const hipStream_t s = (hipStream_t)stream;

	// an error an earlier launch published is this call's to report
	pending_report earlier = {0, 0, 0, 0};
	const int have_earlier = take_report(c, &earlier);

	const int fp8 = fp8kv_dtype_is_fp8(d->cache_dtype);
	const size_t in_size = d->input_dtype == FP8KV_F32 ? 4 : 2;
	const size_t cache_size = fp8 ? 1 : in_size;
	const int64_t ve = (int64_t)(16 / in_size);

	rc_params p;
	memset(&p, 0, sizeof p);
	rc_side *k = &p.side[0], *v = &p.side[1];
	k->input = (const unsigned char *)d->key;
	k->cache = (unsigned char *)d->key_cache;
	k->head_dim = d->head_dim_k;
	k->stride_token = d->key_stride_token;
	k->stride_head = d->key_stride_head;
	k->cache_block = d->key_cache_stride_block;
	k->cache_slot = d->key_cache_stride_slot;
	k->cache_head = d->key_cache_stride_head;
	k->scale = d->k_scale;
	k->scale_cache = d->k_scale_cache;
	k->amax = d->k_amax;
	v->input = (const unsigned char *)d->value;
	v->cache = (unsigned char *)d->value_cache;
	v->head_dim = d->head_dim_v;
	v->stride_token = d->value_stride_token;
	v->stride_head = d->value_stride_head;
	v->cache_block = d->value_cache_stride_block;
	v->cache_slot = d->value_cache_stride_slot;
	v->cache_head = d->value_cache_stride_head;
	v->scale = d->v_scale;
	v->scale_cache = d->v_scale_cache;
	v->amax = d->v_amax;

	int64_t units = 1;
	for (int i = 0; i < 2; i++) {
		rc_side *sd = &p.side[i];
		sd->vec = side_vectorizable(sd->input, in_size, sd->cache, cache_size, sd->head_dim,
					    sd->stride_token, sd->stride_head, sd->cache_block,
					    sd->cache_slot, sd->cache_head);
		const int64_t u = sd->vec ? sd->head_dim / ve : sd->head_dim;
		units = u > units ? u : units;
	}
	const int team_log2 = team_log2_for(units);

	p.slot_mapping = d->slot_mapping;
	p.swa_mapping = d->swa_mapping;
	p.num_tokens = d->num_tokens;
	p.num_heads = d->num_heads;
	p.block_size = d->block_size;
	p.num_slots = d->num_blocks * d->block_size;
	p.swa_len = d->swa_mapping ? d->swa_mapping_len : 0;
	p.scs_block = d->scale_cache_stride_block;
	p.scs_slot = d->scale_cache_stride_slot;
	p.scs_head = d->scale_cache_stride_head;
	p.overflow_count = (unsigned long long *)d->overflow_count;
	p.nan_count = (unsigned long long *)d->nan_count;
	p.claim = (unsigned long long *)((char *)c->dev + offsetof(dev_state, claim));
	p.report = c->report_dev;
	p.slot_type = d->slot_type;
	p.swa_type = d->swa_type;
	p.cache_dtype = d->cache_dtype;
	p.saturate = d->overflow == FP8KV_SATURATE;
	p.scale_mode = d->scale_mode;
	p.team_log2 = team_log2;
	p.narrow = d->num_tokens * d->num_heads < ((int64_t)1 << 32) && p.num_slots < ((int64_t)1 << 32) &&
		   d->num_heads < ((int64_t)1 << 31) && d->block_size < ((int64_t)1 << 31);
	if (p.narrow) {
		magic_for(d->num_heads, &p.heads_magic, &p.heads_shift);
		magic_for(d->block_size, &p.bs_magic, &p.bs_shift);
	}

	// a ring entry: graph replays keep theirs, so eager launches never share it
	hipStreamCaptureStatus capture = hipStreamCaptureStatusNone;
	if (hipStreamIsCapturing(s, &capture) != hipSuccess) {
		(void)hipGetLastError();
		capture = hipStreamCaptureStatusNone;
	}
	const unsigned int slot =
		capture == hipStreamCaptureStatusActive
			? RING_EAGER + __atomic_fetch_add(&c->graph_seq, 1u, __ATOMIC_RELAXED) % RING_GRAPH
			: __atomic_fetch_add(&c->eager_seq, 1u, __ATOMIC_RELAXED) % RING_EAGER;
	p.entry = (err_entry *)((char *)c->dev + offsetof(dev_state, ring) + slot * sizeof(err_entry));

	write_launch at = {grid_for(c, d->num_tokens * d->num_heads, (int64_t)(BLOCK >> team_log2)), s,
			   c->dependent_launch};
	const int lean = fp8 && k->vec && v->vec && units <= 2 * MAX_TEAM;
	const int count = d->overflow_count || d->nan_count;
	hipError_t e;
	if (lean && fast_eligible(d, &p)) {
		int shape;
		at.grid = fast_grid_for(c, d->num_tokens * d->num_heads, units, &shape, &p.team_log2);
		const int scaled = d->scale_mode == FP8KV_SCALE_TENSOR;
		const int64_t row_vectors = (int64_t)(shape == FAST_VPL1 ? 1 : 2) << p.team_log2;
		const int full = k->head_dim / ve == row_vectors && v->head_dim / ve == row_vectors;
		switch (d->input_dtype) {
		case FP8KV_F32: e = launch_fast_dt<FP8KV_CV_F32>(at, p, scaled, shape, full); break;
		case FP8KV_F16: e = launch_fast_dt<FP8KV_CV_F16>(at, p, scaled, shape, full); break;
		default: e = launch_fast_dt<FP8KV_CV_BF16>(at, p, scaled, shape, full); break;
		}
	} else if (lean) {
		// rows of 8 vectors or more: 2 per lane, in a team half as wide
		const int vpl = units >= 8 ? 2 : 1;
		p.team_log2 = team_log2_for((units + vpl - 1) / vpl);
		at.grid = lean_grid_for(c, d->num_tokens * d->num_heads, p.team_log2);
#define LEAN(DT, COUNT, VPL) e = launch_write(reshape_and_cache_lean<DT, COUNT, VPL>, at, p)
		switch ((d->input_dtype * 2 + count) * 2 + (vpl == 2)) {
		case (FP8KV_F32 * 2) * 2: LEAN(FP8KV_CV_F32, false, 1); break;
		case (FP8KV_F32 * 2) * 2 + 1: LEAN(FP8KV_CV_F32, false, 2); break;
		case (FP8KV_F32 * 2 + 1) * 2: LEAN(FP8KV_CV_F32, true, 1); break;
		case (FP8KV_F32 * 2 + 1) * 2 + 1: LEAN(FP8KV_CV_F32, true, 2); break;
		case (FP8KV_F16 * 2) * 2: LEAN(FP8KV_CV_F16, false, 1); break;
		case (FP8KV_F16 * 2) * 2 + 1: LEAN(FP8KV_CV_F16, false, 2); break;
		case (FP8KV_F16 * 2 + 1) * 2: LEAN(FP8KV_CV_F16, true, 1); break;
		case (FP8KV_F16 * 2 + 1) * 2 + 1: LEAN(FP8KV_CV_F16, true, 2); break;
		case (FP8KV_BF16 * 2) * 2: LEAN(FP8KV_CV_BF16, false, 1); break;
		case (FP8KV_BF16 * 2) * 2 + 1: LEAN(FP8KV_CV_BF16, false, 2); break;
		case (FP8KV_BF16 * 2 + 1) * 2: LEAN(FP8KV_CV_BF16, true, 1); break;
		default: LEAN(FP8KV_CV_BF16, true, 2); break;
		}
#undef LEAN
	} else {
#define GENERAL(DT, FP8) e = launch_write(reshape_and_cache_kernel<DT, FP8>, at, p)
		switch (d->input_dtype * 2 + fp8) {
		case FP8KV_F32 * 2: GENERAL(FP8KV_CV_F32, false); break;
		case FP8KV_F32 * 2 + 1: GENERAL(FP8KV_CV_F32, true); break;
		case FP8KV_F16 * 2: GENERAL(FP8KV_CV_F16, false); break;
		case FP8KV_F16 * 2 + 1: GENERAL(FP8KV_CV_F16, true); break;
		case FP8KV_BF16 * 2: GENERAL(FP8KV_CV_BF16, false); break;
		default: GENERAL(FP8KV_CV_BF16, true); break;
		}
#undef GENERAL
	}
	if (e != hipSuccess)
		return runtime_error(FP8KV_EBACKEND, "reshape_and_cache launch", e);
	return have_earlier ? report_error(&earlier) : FP8KV_OK;
}

/* ---- flat conversions ---- */

static fp8kv_status hip_quantize(void *ctx, const fp8kv_convert_args *a, void *stream)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	const hipStream_t s = (hipStream_t)stream;
	const int64_t ve = a->src_dtype == FP8KV_F32 ? 4 : 8;
	flat_params p;
	memset(&p, 0, sizeof p);
	p.dst = (unsigned char *)a->dst;
	p.src = (const unsigned char *)a->src;
	p.count = (int64_t)a->count;
	p.scale = a->scale;
	p.overflow_count = (unsigned long long *)a->overflow_count;
	p.format = a->dst_dtype;
	p.saturate = a->overflow == FP8KV_SATURATE;
	p.scaled = a->scale_mode == FP8KV_SCALE_TENSOR;
	p.vec = (uintptr_t)a->src % 16 == 0 && (uintptr_t)a->dst % (uintptr_t)ve == 0;
	const unsigned int grid = grid_for(c, p.vec ? (p.count + ve - 1) / ve : p.count, BLOCK);
	hipError_t e;
#define QUANTIZE(DT, COUNT) \
	e = fp8kv_launch(quantize_kernel<DT, COUNT>, grid, BLOCK, s, c->dependent_launch, p)
	switch (a->src_dtype * 2 + (p.overflow_count != NULL)) {
	case FP8KV_F32 * 2: QUANTIZE(FP8KV_CV_F32, false); break;
	case FP8KV_F32 * 2 + 1: QUANTIZE(FP8KV_CV_F32, true); break;
	case FP8KV_F16 * 2: QUANTIZE(FP8KV_CV_F16, false); break;
	case FP8KV_F16 * 2 + 1: QUANTIZE(FP8KV_CV_F16, true); break;
	case FP8KV_BF16 * 2: QUANTIZE(FP8KV_CV_BF16, false); break;
	default: QUANTIZE(FP8KV_CV_BF16, true); break;
	}
#undef QUANTIZE
	return e == hipSuccess ? FP8KV_OK : runtime_error(FP8KV_EBACKEND, "quantize launch", e);
}

static fp8kv_status hip_dequantize(void *ctx, const fp8kv_convert_args *a, void *stream)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	const hipStream_t s = (hipStream_t)stream;
	flat_params p;
	memset(&p, 0, sizeof p);
	p.dst = (unsigned char *)a->dst;
	p.src = (const unsigned char *)a->src;
	p.count = (int64_t)a->count;
	p.scale = a->scale;
	p.format = a->src_dtype;
	p.scaled = a->scale_mode == FP8KV_SCALE_TENSOR;
	const unsigned int grid = grid_for(c, p.count, BLOCK);
	hipError_t e;
#define DEQUANTIZE(DT) \
	e = fp8kv_launch(dequantize_kernel<DT>, grid, BLOCK, s, c->dependent_launch, p)
	switch (a->dst_dtype) {
	case FP8KV_F32: DEQUANTIZE(FP8KV_CV_F32); break;
	case FP8KV_F16: DEQUANTIZE(FP8KV_CV_F16); break;
	default: DEQUANTIZE(FP8KV_CV_BF16); break;
	}
#undef DEQUANTIZE
	return e == hipSuccess ? FP8KV_OK : runtime_error(FP8KV_EBACKEND, "dequantize launch", e);
}

/* ---- synchronous helpers ---- */

static fp8kv_status hip_amax(void *ctx, const void *src, fp8kv_dtype dtype, size_t count,
			     float *amax)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	unsigned int *d_out = NULL, bits = 0;
	hipError_t e = hipMalloc((void **)&d_out, sizeof *d_out);
	if (e != hipSuccess)
		return runtime_error(FP8KV_ENOMEM, "amax: hipMalloc", e);
	const int64_t n = (int64_t)count;
	const unsigned int grid = grid_for(c, n, BLOCK);
	e = hipMemsetAsync(d_out, 0, sizeof *d_out, 0);
	if (e == hipSuccess) {
		switch (dtype) {
		case FP8KV_F32: amax_kernel<FP8KV_CV_F32><<<grid, BLOCK, 0, 0>>>(src, n, d_out); break;
		case FP8KV_F16: amax_kernel<FP8KV_CV_F16><<<grid, BLOCK, 0, 0>>>(src, n, d_out); break;
		default: amax_kernel<FP8KV_CV_BF16><<<grid, BLOCK, 0, 0>>>(src, n, d_out); break;
		}
		e = hipGetLastError();
	}
	if (e == hipSuccess)
		e = hipMemcpy(&bits, d_out, sizeof bits, hipMemcpyDeviceToHost);
	const hipError_t freed = hipFree(d_out);
	if (e == hipSuccess)
		e = freed;
	if (e != hipSuccess)
		return runtime_error(FP8KV_EBACKEND, "amax", e);
	*amax = fp8kv_bits_f32(bits);
	return FP8KV_OK;
}

static fp8kv_status hip_check_slots(void *ctx, const void *slots, int64_t count,
				    fp8kv_index_type type, int64_t num_slots,
				    fp8kv_slot_report *r)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	const size_t words = (size_t)(num_slots / 64 + 1);
	if (words > (SIZE_MAX - sizeof(slot_totals)) / 8)
		return host->set_error(FP8KV_ENOMEM, "hip: no memory for a %" PRId64 "-slot bitmap",
				       num_slots);
	const size_t bytes = sizeof(slot_totals) + words * 8;
	unsigned char *mem = NULL;
	hipError_t e = hipMalloc((void **)&mem, bytes);
	if (e != hipSuccess) {
		(void)hipGetLastError();
		return host->set_error(FP8KV_ENOMEM,
				       "hip: no memory for a %" PRId64 "-slot bitmap: %s", num_slots,
				       hipGetErrorString(e));
	}
	slot_totals *d_tot = (slot_totals *)mem;
	unsigned long long *bitmap = (unsigned long long *)(mem + sizeof(slot_totals));
	slot_totals tot;
	memset(&tot, 0, sizeof tot);
	tot.first_padding = tot.first_out_of_range = NO_TOKEN;
	const unsigned int grid = grid_for(c, count, BLOCK);
	const int itype = (int)type;

	e = hipMemcpy(d_tot, &tot, sizeof tot, hipMemcpyHostToDevice);
	if (e == hipSuccess)
		e = hipMemsetAsync(bitmap, 0, words * 8, 0);
	if (e == hipSuccess) {
		check_slots_kernel<<<grid, BLOCK, 0, 0>>>(slots, itype, count, num_slots, bitmap,
							  d_tot);
		e = hipGetLastError();
	}
	if (e == hipSuccess)
		e = hipMemcpy(&tot, d_tot, sizeof tot, hipMemcpyDeviceToHost);

	// The first duplicate is the smallest T - 1 such that tokens [0, T) hold
	// two equal slots: a binary search on T, each probe a fresh bitmap.
	int64_t first_duplicate = -1;
	if (e == hipSuccess && tot.duplicates > 0) {
		int64_t lo = 1, hi = count;  // [0, lo) has no duplicate, [0, hi) has one
		clear_bits_kernel<<<grid, BLOCK, 0, 0>>>(slots, itype, count, num_slots, bitmap);
		e = hipGetLastError();
		while (e == hipSuccess && hi - lo > 1) {
			const int64_t mid = lo + (hi - lo) / 2;
			const unsigned int g = grid_for(c, mid, BLOCK);
			unsigned long long found = 0;
			e = hipMemsetAsync(&d_tot->found, 0, sizeof found, 0);
			if (e == hipSuccess) {
				check_dup_prefix_kernel<<<g, BLOCK, 0, 0>>>(slots, itype, mid,
									    num_slots, bitmap, d_tot);
				clear_bits_kernel<<<g, BLOCK, 0, 0>>>(slots, itype, mid, num_slots,
								      bitmap);
				e = hipGetLastError();
			}
			if (e == hipSuccess)
				e = hipMemcpy(&found, &d_tot->found, sizeof found,
					      hipMemcpyDeviceToHost);
			if (found)
				hi = mid;
			else
				lo = mid;
		}
		first_duplicate = hi - 1;
	}
	const hipError_t freed = hipFree(mem);
	if (e == hipSuccess)
		e = freed;
	if (e != hipSuccess)
		return runtime_error(FP8KV_EBACKEND, "check_slots", e);

	r->padding = (int64_t)tot.padding;
	r->out_of_range = (int64_t)tot.out_of_range;
	r->duplicates = (int64_t)tot.duplicates;
	r->first_padding = tot.padding ? (int64_t)tot.first_padding : -1;
	r->first_out_of_range = tot.out_of_range ? (int64_t)tot.first_out_of_range : -1;
	r->first_duplicate = first_duplicate;
	return FP8KV_OK;
}

/* ---- the entry point: the module's one export, or, linked into the
 * library (FP8KV_HIP_LINKED), a hidden function lib/fp8kv.c calls ---- */

static const fp8kv_backend_ops hip_backend = {
	FP8KV_MODULE_ABI,
	"hip",
	hip_open,
	hip_close,
	hip_name,
	hip_device,
	hip_synchronize,
	hip_alloc,
	hip_free,
	hip_upload,
	hip_download,
	hip_fill,
	hip_reshape_and_cache,
	hip_quantize,
	hip_dequantize,
	hip_amax,
	hip_check_slots,
};

#if FP8KV_HIP_LINKED
#define HIP_ENTRY fp8kv_hip_entry
#define HIP_ENTRY_VISIBILITY "hidden"
#else
#define HIP_ENTRY fp8kv_module_entry
#define HIP_ENTRY_VISIBILITY "default"
#endif

extern "C" __attribute__((visibility(HIP_ENTRY_VISIBILITY))) const fp8kv_backend_ops *
HIP_ENTRY(const fp8kv_host_services *services)
{
	if (!services || !services->set_error)
		return NULL;
	host = services;
	return &hip_backend;
}
