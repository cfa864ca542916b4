// SPDX-License-Identifier: MIT
/*
 * device_convert.h - the conversion on the GPU: lib/fp8_convert.h's
 * encoder, element by element, and the faster ways to the same bytes for
 * 16-byte vectors (NVIDIA's hardware FP8 codes from sm_89, the division by
 * a reciprocal with exact correction steps, the fnuz formats through their
 * OCP twin).  Every way is held to the CPU by fp8kv-validate.
 */
#ifndef FP8KV_HIP_DEVICE_CONVERT_H
#define FP8KV_HIP_DEVICE_CONVERT_H

#include <stdint.h>

#include "amd_hw_fp8.h"
#include "device_common.h"
#include "fp8_convert.h"
#include "hip_compat.h"


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
// CONVERT_TWIN (HW vectors, the specialized kernel): an fnuz format through the
// hardware codes of its OCP twin (twin_codes).
enum { CONVERT_SCALED = 1, CONVERT_HW = 2, CONVERT_RECIP = 4 /* HW vectors: divide_recip */, CONVERT_TWIN = 8 };

static __device__ __forceinline__ int conversion_kind(int scaled, const fp8kv_fp8_format f)
{
#ifdef HAVE_HW_FP8
	return (scaled ? CONVERT_SCALED : 0) | (f.fnuz ? 0 : CONVERT_HW);
#else
	(void)f;
	return scaled ? CONVERT_SCALED : 0;
#endif
}

// conversion_kind's choice of the hardware encoder, for a format known at
// compile time (the specialized kernel); and the fnuz formats that the
// specialized kernel's vectors convert through their OCP twin (twin_codes)
#ifdef HAVE_HW_FP8
#define HW_FORMAT(FMT) ((FMT) == FP8KV_CV_E4M3FN || (FMT) == FP8KV_CV_E5M2)
#define TWIN_FORMAT(FMT) ((FMT) == FP8KV_CV_E4M3FNUZ || (FMT) == FP8KV_CV_E5M2FNUZ)
#else
#define HW_FORMAT(FMT) 0
#define TWIN_FORMAT(FMT) 0
#endif

// one element, as cpu/rows.c quantize_element; COUNT: the counters
// are wanted (else their arithmetic is left out)
template <bool COUNT, int KIND>
static __device__ __forceinline__ unsigned int quantize1_as(float x, float s,
							    const fp8kv_fp8_format f, int saturate,
							    unsigned int &overflows, unsigned int &nans)
{
	const float y = KIND & CONVERT_SCALED ? fp8kv_divide(x, s) : x;
#ifdef HAVE_HW_FP8
	const uint32_t q = KIND & CONVERT_HW ? encode_hw(y, f, saturate) : fp8kv_encode(y, f, saturate);
#else
	const uint32_t q = FP8KV_DEVICE_ENCODE(y, f, saturate);  // amd_hw_fp8.h
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
static __device__ __forceinline__ unsigned int quantize1(float x, int conversion, float s,
							 const fp8kv_fp8_format f, int saturate,
							 unsigned int &overflows, unsigned int &nans)
{
	switch (conversion) {
	case 0: return quantize1_as<COUNT, 0>(x, s, f, saturate, overflows, nans);
	case CONVERT_SCALED: return quantize1_as<COUNT, CONVERT_SCALED>(x, s, f, saturate, overflows, nans);
	case CONVERT_HW: return quantize1_as<COUNT, CONVERT_HW>(x, s, f, saturate, overflows, nans);
	default:
		return quantize1_as<COUNT, CONVERT_SCALED | CONVERT_HW>(x, s, f, saturate, overflows, nans);
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
// the same expression in C (decision K-LOP3).
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
// element.  range_edges in tests/test_backends_cache.c holds the line to the CPU.
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
template <int DT, bool COUNT, int KIND>
static __device__ __forceinline__ void quantize_vec_elements(unsigned char *dst, const uint4 v,
							     float s, const fp8kv_fp8_format f,
							     int saturate, unsigned int &overflows,
							     unsigned int &nans)
{
	float x[8];
	unpack<DT>(v, x);
#if FP8KV_AMD_HAVE_HW_FP8
	// gfx942/gfx950 with --enable-amd-hw-fp8: the hardware codes, where
	// they are the contract's (amd_hw_fp8.h); false sends the vector on
	if (!COUNT && fp8kv_amd_quantize_vec<DT == FP8KV_CV_F32 ? 4 : 8,
					     (KIND & CONVERT_SCALED) != 0>(dst, x, s, f))
		return;
#endif
	unsigned int lo = 0, hi = 0;
#pragma unroll
	for (int k = 0; k < 4; k++)
		lo |= quantize1_as<COUNT, KIND>(x[k], s, f, saturate, overflows, nans) << (8 * k);
	if (DT == FP8KV_CV_F32) {
		*(unsigned int *)dst = lo;
	} else {
#pragma unroll
		for (int k = 0; k < 4; k++)
			hi |= quantize1_as<COUNT, KIND>(x[4 + k], s, f, saturate, overflows, nans)
			      << (8 * k);
		*(uint2 *)dst = make_uint2(lo, hi);
	}
}

#ifdef HAVE_HW_FP8
// The same, out of line, as the hardware path's fallback (overflow, Inf,
// NaN, a scale without an exact reciprocal): rare, and its registers then
// cost the loops that inline the hardware path nothing.  Returns the
// overflows and NaNs.
template <int DT, bool COUNT, int KIND>
static __device__ __noinline__ uint2 quantize_vec_fallback(unsigned char *dst, const uint4 v,
							   float s, const fp8kv_fp8_format f,
							   int saturate)
{
	unsigned int overflows = 0, nans = 0;
	quantize_vec_elements<DT, COUNT, KIND>(dst, v, s, f, saturate, overflows, nans);
	return make_uint2(overflows, nans);
}
#endif

// converts one 16-byte input vector and stores its 8 (or 4) codes; hw_ok
// false sends the vector the element-by-element way (the specialized kernel's
// scale without an exact reciprocal); LIMIT: 16-bit inputs are tested
// against in_limit, input_limit() of the scale
template <int DT, bool COUNT, int KIND, bool LIMIT = false>
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
	static_assert(!(LIMIT && (KIND & CONVERT_TWIN)), "input_limit() is the OCP formats' bound");
	if (KIND & CONVERT_HW) {
		// When no quotient lies beyond the last value that rounds to max
		// (so none overflows, none is Inf or NaN), the hardware's codes
		// are the contract's codes and nothing counts: the whole vector
		// in a few instructions.  Otherwise, element by element.
		float x[8], y[8];
		unpack_hw<DT>(v, x);
		uint32_t amax = 0;
#pragma unroll
		for (int k = 0; k < VE; k++) {
			y[k] = KIND & CONVERT_RECIP ? divide_recip<F32 ? 2 : 1, F32>(x[k], s, rs)
			     : KIND & CONVERT_SCALED ? x[k] / s : x[k];
			if (KIND & CONVERT_TWIN)
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
				*(unsigned int *)dst = KIND & CONVERT_TWIN ? twin_codes(lo) : lo;
			} else {
				unsigned int hi = cvt_pair(y[4], y[5], f) | cvt_pair(y[6], y[7], f) << 16;
				if (KIND & CONVERT_RECIP) {  // the quotients' signs, left unset
					lo = codes_signed_as(lo, v.x, v.y);
					hi = codes_signed_as(hi, v.z, v.w);
				}
				if (KIND & CONVERT_TWIN) {
					lo = twin_codes(lo);
					hi = twin_codes(hi);
				}
				*(uint2 *)dst = make_uint2(lo, hi);
			}
			return;
		}
		// fnuz elements take the shared encoder
		constexpr int ELEMENTS = KIND & CONVERT_TWIN ? KIND & CONVERT_SCALED : KIND;
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
	quantize_vec_elements<DT, COUNT, KIND>(dst, v, s, f, saturate, overflows, nans);
}

template <int DT, bool COUNT>
static __device__ __forceinline__ void quantize_vec(unsigned char *dst, const uint4 v, int conversion,
						    float s, float rs, const fp8kv_fp8_format f,
						    int saturate,
						    unsigned int &overflows, unsigned int &nans)
{
	switch (conversion) {
	case 0: quantize_vec_as<DT, COUNT, 0>(dst, v, s, rs, f, saturate, overflows, nans); break;
	case CONVERT_SCALED:
		quantize_vec_as<DT, COUNT, CONVERT_SCALED>(dst, v, s, rs, f, saturate, overflows, nans);
		break;
	case CONVERT_HW:
		quantize_vec_as<DT, COUNT, CONVERT_HW>(dst, v, s, rs, f, saturate, overflows, nans);
		break;
	default:
#ifdef HAVE_HW_FP8
		if (recip_ok<DT>(s)) {
			quantize_vec_as<DT, COUNT, CONVERT_SCALED | CONVERT_HW | CONVERT_RECIP>(
				dst, v, s, rs, f, saturate, overflows, nans);
			break;
		}
#endif
		quantize_vec_as<DT, COUNT, CONVERT_SCALED | CONVERT_HW>(dst, v, s, rs, f, saturate, overflows,
								nans);
		break;
	}
}

#endif /* FP8KV_HIP_DEVICE_CONVERT_H */
