/* SPDX-License-Identifier: MIT */
/*
 * group_convert.h - the element rules of fp8kv.h sections 5b (e2m1) and 5c
 * (int8), and the group scales of section 8 (FP8KV_GROUP_F32, the E8M0
 * rules, NVFP4), in one place for every backend (A-ONE-CONVERTER).
 *
 * As fp8_convert.h: plain C, static inline, no libc, compiled by the C
 * compiler and by hipcc/nvcc (FP8KV_HD), branch-free where a loop runs
 * over it, -ffp-contract=off, IEEE division only, and no operation whose
 * result depends on the denormal mode (A-FLAGS: the GPU builds do not
 * flush either, and these rules meet fp32 subnormals: a scale 2^-127, a
 * subnormal g).
 */
#ifndef FP8KV_GROUP_CONVERT_H
#define FP8KV_GROUP_CONVERT_H

#include <stdint.h>

#include "fp8_convert.h"
#include "host_device.h"

/* The numbers of fp8kv_dtype, fp8kv_group_rule and fp8kv_rounding in
 * fp8kv.h (lib/plan.c checks them), for code that includes only this. */
enum { FP8KV_CV_E2M1 = 7, FP8KV_CV_INT8 = 8 };
enum {
	FP8KV_CV_GROUP_F32 = 0, FP8KV_CV_GROUP_E8M0_FLOOR = 1,
	FP8KV_CV_GROUP_E8M0_RCEIL = 2, FP8KV_CV_GROUP_NVFP4 = 3
};
enum { FP8KV_CV_ROUND_NEAREST_EVEN = 0, FP8KV_CV_ROUND_TOWARD_ZERO = 1 };

/* ---- e2m1 (5b) ---- */

/* e2m1 is the FP8 encoder's format with one mantissa bit and bias 1
 * (A-E2M1): its normal and subnormal roundings, the carry into the next
 * binade and the overflow test after rounding (|y| >= 7, the tie past 6
 * going to the even, overflowing, side) are those of fp8kv_encode_bits.
 * Overflow and +-Inf give 6 (max code 7), NaN the code 0; the sign comes
 * out in bit 7 and is moved to bit 3 below. */
FP8KV_HD fp8kv_fp8_format fp8kv_e2m1_format(void)
{
	fp8kv_fp8_format f;
	f.mant_bits = 1; f.bias = 1; f.max_code = 0x7;
	f.nan_code = 0x0; f.inf_code = 0x7; f.fnuz = 0;
	return f;
}

/* The e2m1 code of fp32 bits u in the low nibble (element 2i of a row goes
 * in the low nibble of byte i, 2i + 1 in the high one), with
 * FP8KV_ENCODE_OVERFLOW when u is finite and overflows.  A NaN gives 0x0,
 * without its sign. */
FP8KV_HD uint32_t fp8kv_e2m1_encode_bits(uint32_t u)
{
	const uint32_t q = fp8kv_encode_bits(u, fp8kv_e2m1_format(), 1);
	const uint32_t code = (q & 0x7u) | ((q >> 4) & 0x8u);
	const uint32_t nan = (u & 0x7FFFFFFFu) > 0x7F800000u ? 1u : 0u;
	return (nan ? 0u : code) | (q & FP8KV_ENCODE_OVERFLOW);
}

/* The exact fp32 bits of an e2m1 code (its low nibble). */
FP8KV_HD uint32_t fp8kv_e2m1_decode_bits(uint32_t code)
{
	const uint32_t sign = (code & 0x8u) << 28;
	const uint32_t mag = code & 0x7u;
	const uint32_t exp = mag >> 1, man = mag & 1u;
	/* 0.5 for the subnormal 0x1, else (1 + man / 2) * 2^(exp - 1) */
	const uint32_t normal = ((exp + 126u) << 23) | (man << 22);
	const uint32_t bits = exp ? normal : (man ? 0x3F000000u : 0u);
	return sign | bits;
}

/* ---- int8 (5c) ---- */

/* The int8 code of fp32 bits u (two's complement in the low byte), rounded
 * to nearest even or toward zero, with FP8KV_ENCODE_OVERFLOW when u is
 * finite and the rounded value is beyond +-127.  +-Inf give +-127, NaN 0;
 * -128 is never written. */
FP8KV_HD uint32_t fp8kv_int8_encode_bits(uint32_t u, int toward_zero)
{
	const uint32_t a = u & 0x7FFFFFFFu;
	/* |y| clipped at 256 (NaN and Inf included): every integer result past
	 * 127 then still reads as one; the clip is exact */
	const float c = fp8kv_bits_f32(a < 0x43800000u ? a : 0x43800000u);
	/* c + 2^23 rounds c to an integer, ties to even, exactly: c < 2^23, and
	 * the sum is a normal number whatever the denormal mode */
	const uint32_t nearest = fp8kv_f32_bits(c + 8388608.0f) - 0x4B000000u;
	const uint32_t truncated = (uint32_t)c; /* C's conversion truncates */
	uint32_t n = toward_zero ? truncated : nearest;
	const uint32_t ovf = (n > 127u ? 1u : 0u) & (a < 0x7F800000u ? 1u : 0u);
	n = n > 127u ? 127u : n;
	n = a > 0x7F800000u ? 0u : n;
	const uint32_t code = (u >> 31) ? (0u - n) & 0xFFu : n;
	return code | (ovf << 8);
}

/* ---- the element formats of a grouped write ---- */

/* The largest finite value of a cache element format: the FP8 formats',
 * 6 for e2m1, 127 for int8 (section 8's max). */
FP8KV_HD float fp8kv_element_max(int format)
{
	if (format == FP8KV_CV_E2M1)
		return 6.0f;
	if (format == FP8KV_CV_INT8)
		return 127.0f;
	return fp8kv_format_max(fp8kv_format_of(format));
}

/* Values per stored element: an e2m1 byte holds two. */
FP8KV_HD_CONSTEXPR int fp8kv_values_per_element(int format)
{
	return format == FP8KV_CV_E2M1 ? 2 : 1;
}

/* ---- group scales (section 8) ---- */

/* The scale of one group: s divides its elements; stored is what goes to
 * the scale array (fp32 bits, an E8M0 byte or an e4m3fn code); zero says
 * that the group's codes are +-0 by sign (NVFP4 only). */
typedef struct fp8kv_group_scale {
	float s;
	uint32_t stored;
	uint32_t zero;
} fp8kv_group_scale;

/* FP8KV_GROUP_F32: s = max(RN(amax / D), floor), stored as fp32. */
FP8KV_HD float fp8kv_f32_group_scale(float amax, float divisor, float scale_floor)
{
	const float q = amax / divisor;
	return q < scale_floor ? scale_floor : q;
}

/* E8M0 floor (OCP MX): b = e(amax) - emax, at least 0, with e(amax) the
 * biased exponent field (0 for 0 and subnormals) and emax the exponent of
 * the format's largest power of two, read from its max. */
FP8KV_HD uint32_t fp8kv_e8m0_floor(float amax, float fmax)
{
	const uint32_t field = (fp8kv_f32_bits(amax) >> 23) & 0xFFu;
	const uint32_t emax = (fp8kv_f32_bits(fmax) >> 23) - 127u;
	return field > emax ? field - emax : 0u;
}

FP8KV_HD uint32_t fp8kv_clz32(uint32_t x) /* x != 0 */
{
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
	return (uint32_t)__clz((int)x);
#else
	return (uint32_t)__builtin_clz(x);
#endif
}

/*
 * E8M0 rceil: b = 127 + the least k with fmax * 2^k >= amax, exactly,
 * within [0, 254]; 0 for amax 0.  With amax = A * 2^ea and fmax = M * 2^em,
 * A and M 24-bit significands (a subnormal amax normalised first), A / M
 * lies in (1/2, 2), so k = ea - em, plus one when M < A: integers only.
 */
FP8KV_HD uint32_t fp8kv_e8m0_rceil(float amax, float fmax)
{
	const uint32_t a = fp8kv_f32_bits(amax) & 0x7FFFFFFFu, m = fp8kv_f32_bits(fmax);
	const uint32_t field = a >> 23;
	uint32_t A = (a & 0x7FFFFFu) | (field ? 0x800000u : 0u);
	A = A ? A : 0x800000u; /* amax 0: any value, the result is 0 */
	const uint32_t shift = fp8kv_clz32(A) - 8u;
	A <<= shift;
	const int32_t ea = (int32_t)(field ? field : 1u) - 150 - (int32_t)shift;
	const uint32_t M = (m & 0x7FFFFFu) | 0x800000u;
	const int32_t em = (int32_t)(m >> 23) - 150;
	int32_t b = 127 + ea - em + (M < A ? 1 : 0);
	b = b < 0 ? 0 : b > 254 ? 254 : b;
	return a ? (uint32_t)b : 0u;
}

/* The scale an E8M0 byte b (0-254) stands for: 2^(b - 127), 2^-127 being
 * an fp32 subnormal. */
FP8KV_HD float fp8kv_e8m0_value(uint32_t b)
{
	return fp8kv_bits_f32(b ? b << 23 : 0x00400000u);
}

/*
 * NVFP4 under the decode-direction global scale g: sf = e4m3fn(RN(amax /
 * RN(6 g))), saturating, and s = RN(sf * g).  When g is not positive and
 * finite, sf is stored as 0x00; the codes are +-0 then, and when sf or s
 * is 0.
 */
FP8KV_HD fp8kv_group_scale fp8kv_nvfp4_scale(float amax, float g)
{
	const fp8kv_fp8_format e4m3 = fp8kv_format_of(FP8KV_CV_E4M3FN);
	const uint32_t gb = fp8kv_f32_bits(g);
	const uint32_t ok = gb - 1u < 0x7F7FFFFFu ? 1u : 0u; /* 0 < g < +Inf */
	const float six_g = 6.0f * g;
	const float q = amax / six_g;
	const uint32_t sf = ok ? fp8kv_encode(q, e4m3, 1) & 0xFFu : 0u;
	fp8kv_group_scale r;
	r.s = fp8kv_bits_f32(fp8kv_decode_bits(sf, e4m3)) * g;
	r.stored = sf;
	r.zero = (ok ^ 1u) | (sf == 0u ? 1u : 0u) | (r.s == 0.0f ? 1u : 0u);
	return r;
}

/* The scale of a group of amax (its finite elements' largest magnitude)
 * under rule, for a cache of format; divisor and floor are
 * FP8KV_GROUP_F32's (resolved, never 0), g NVFP4's global scale. */
FP8KV_HD fp8kv_group_scale fp8kv_group_scale_of(int rule, int format, float divisor,
						float scale_floor, float g, float amax)
{
	fp8kv_group_scale r;
	r.zero = 0u;
	if (rule == FP8KV_CV_GROUP_F32) {
		r.s = fp8kv_f32_group_scale(amax, divisor, scale_floor);
		r.stored = fp8kv_f32_bits(r.s);
	} else if (rule == FP8KV_CV_GROUP_NVFP4) {
		r = fp8kv_nvfp4_scale(amax, g);
	} else {
		const float fmax = fp8kv_element_max(format);
		r.stored = rule == FP8KV_CV_GROUP_E8M0_FLOOR ? fp8kv_e8m0_floor(amax, fmax)
							     : fp8kv_e8m0_rceil(amax, fmax);
		r.s = fp8kv_e8m0_value(r.stored);
	}
	return r;
}

/* The code of an element of a zero NVFP4 group: +-0 by x's sign, 0x0 for
 * a NaN (section 8). */
FP8KV_HD uint32_t fp8kv_e2m1_zero_code(uint32_t x_bits)
{
	return (x_bits & 0x7FFFFFFFu) > 0x7F800000u ? 0u : (x_bits >> 28) & 0x8u;
}

#endif /* FP8KV_GROUP_CONVERT_H */
