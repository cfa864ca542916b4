/* SPDX-License-Identifier: MIT */
/*
 * fp8_convert.h - the conversion contract of fp8kv.h section 5, in one place.
 *
 * Every backend compiles this file: the C compiler for the CPU, hipcc or nvcc
 * for the GPU, so the bytes cannot drift.  Hence: plain C, static inline, no
 * libc, no floating-point operation whose result depends on the denormal
 * mode, and FP8KV_HD for the device qualifiers.
 * The code is branch-free where it matters, so that loops over it vectorise.
 * Build with -ffp-contract=off and without -ffast-math.
 */
#ifndef FP8KV_FP8_CONVERT_H
#define FP8KV_FP8_CONVERT_H

#include <stdint.h>

#include "host_device.h"

/* The numbers must match enum fp8kv_dtype / fp8kv_overflow in fp8kv.h; the
 * kernels include only this file. */
enum {
	FP8KV_CV_F32 = 0, FP8KV_CV_F16 = 1, FP8KV_CV_BF16 = 2,
	FP8KV_CV_E4M3FN = 3, FP8KV_CV_E4M3FNUZ = 4,
	FP8KV_CV_E5M2 = 5, FP8KV_CV_E5M2FNUZ = 6
};

/* Everything the encoder needs about a format, as integers. */
typedef struct fp8kv_fp8_format {
	uint32_t mant_bits;  /* 3 or 2 */
	uint32_t bias;       /* 7, 8, 15, 16 */
	uint32_t max_code;   /* largest finite magnitude code */
	uint32_t nan_code;   /* code of NaN (sign added for OCP formats) */
	uint32_t inf_code;   /* what non-saturating overflow gives (sign added for OCP) */
	uint32_t fnuz;       /* 1: no negative zero, one unsigned NaN 0x80 */
} fp8kv_fp8_format;

FP8KV_HD fp8kv_fp8_format fp8kv_format_of(int format)
{
	fp8kv_fp8_format f;
	switch (format) {
	case FP8KV_CV_E4M3FNUZ:
		f.mant_bits = 3; f.bias = 8; f.max_code = 0x7F;
		f.nan_code = 0x80; f.inf_code = 0x80; f.fnuz = 1;
		break;
	case FP8KV_CV_E5M2:
		f.mant_bits = 2; f.bias = 15; f.max_code = 0x7B;
		f.nan_code = 0x7F; f.inf_code = 0x7C; f.fnuz = 0;
		break;
	case FP8KV_CV_E5M2FNUZ:
		f.mant_bits = 2; f.bias = 16; f.max_code = 0x7F;
		f.nan_code = 0x80; f.inf_code = 0x80; f.fnuz = 1;
		break;
	default: /* FP8KV_CV_E4M3FN */
		f.mant_bits = 3; f.bias = 7; f.max_code = 0x7E;
		f.nan_code = 0x7F; f.inf_code = 0x7F; f.fnuz = 0;
		break;
	}
	return f;
}

/* Bit casts.  memcpy through the builtin (no libc call) rather than a union,
 * which would keep GCC from vectorising the loops that use them. */
FP8KV_HD uint32_t fp8kv_f32_bits(float x)
{
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
	return __float_as_uint(x);
#else
	uint32_t u;
	__builtin_memcpy(&u, &x, sizeof u);
	return u;
#endif
}

FP8KV_HD float fp8kv_bits_f32(uint32_t u)
{
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
	return __uint_as_float(u);
#else
	float x;
	__builtin_memcpy(&x, &u, sizeof x);
	return x;
#endif
}

/*
 * Encodes fp32 bits u (steps 2-4 of the contract).  The code is in the low
 * 8 bits; FP8KV_ENCODE_OVERFLOW is set when u is finite and overflows.  (One
 * return value rather than an out-parameter keeps the loops vectorisable.)
 *
 * For |y| in the format's normal range, rounding to nearest even is an
 * integer add on the fp32 bits, (a + 2^(k-1) - 1 + lsb) >> k with k the
 * mantissa bits dropped; a carry runs into the exponent, which is then
 * rebiased by a subtraction.  Below that range the codes are multiples of
 * the subnormal quantum q, and |y| + C with C = q * 2^23 makes the fp32 adder
 * do the rounding: the sum lies in C's binade, whose ulp is q, so its low
 * bits are round(|y| / q), ties to even.  The sum is exact in any IEEE
 * implementation with round-to-nearest (the default everywhere) and is
 * normal, so denormal flushing of the result cannot touch it; a flushed
 * subnormal |y| is below q/2 and rounds to 0 either way.
 */
#define FP8KV_ENCODE_OVERFLOW 0x100u

FP8KV_HD uint32_t fp8kv_encode_bits(uint32_t u, fp8kv_fp8_format f, int saturate)
{
	/* Every condition is a select between two uint32 values: GCC does not
	 * vectorise arithmetic on comparison results (1-bit booleans). */
	const uint32_t k = 23u - f.mant_bits;
	const uint32_t sign = u >> 31;
	const uint32_t a = u & 0x7FFFFFFFu;

	const uint32_t rounded = a + ((1u << (k - 1)) - 1u) + ((a >> k) & 1u);
	const uint32_t normal = (rounded >> k) - ((127u - f.bias) << f.mant_bits);
	const uint32_t magic = (128u - f.bias - f.mant_bits + 23u) << 23; /* C = q * 2^23 */
	const uint32_t subnormal =
		fp8kv_f32_bits(fp8kv_bits_f32(a) + fp8kv_bits_f32(magic)) - magic;
	const uint32_t code = a < ((128u - f.bias) << 23) ? subnormal : normal;

	const uint32_t ovf = (code > f.max_code ? 1u : 0u) & (a < 0x7F800000u ? 1u : 0u);
	const uint32_t too_big = saturate ? f.max_code : f.inf_code;
	uint32_t out = code > f.max_code ? too_big : code; /* overflow, and +-Inf */
	out = a > 0x7F800000u ? f.nan_code : out;

	/* OCP formats carry the sign on every code, NaN and zero included; fnuz
	 * formats have no -0 and one unsigned NaN/overflow code 0x80.  Bit 7 of
	 * sign_on says where the sign goes, in integer arithmetic: a select on
	 * f.fnuz made GCC juggle mask registers, at 2.5 times the cost. */
	const uint32_t sign_on = ((out & 0x7Fu) + 0x7Fu) | ((f.fnuz ^ 1u) << 7);
	return out | ((sign << 7) & sign_on & 0x80u) | (ovf << 8);
}

FP8KV_HD uint32_t fp8kv_encode(float y, fp8kv_fp8_format f, int saturate)
{
	return fp8kv_encode_bits(fp8kv_f32_bits(y), f, saturate);
}

/* The exact fp32 bits of code; NaN codes give a quiet NaN (fp8kv.h, 5). */
FP8KV_HD uint32_t fp8kv_decode_bits(uint32_t code, fp8kv_fp8_format f)
{
	const uint32_t m = f.mant_bits;
	const uint32_t sign = (code >> 7) << 31;
	const uint32_t mag = code & 0x7Fu;
	const uint32_t exp = mag >> m;
	const uint32_t man = mag & ((1u << m) - 1u);

	const uint32_t is_inf = !f.fnuz && m == 2 && mag == 0x7Cu; /* e5m2 only */
	const uint32_t is_nan = f.fnuz ? code == 0x80u : (mag > f.max_code && !is_inf);
	if (is_nan) /* fnuz: 0x80 is an unsigned NaN, so +qNaN as PyTorch gives */
		return (f.fnuz ? 0u : sign) | 0x7FC00000u;
	if (is_inf)
		return sign | 0x7F800000u;
	if (exp != 0)
		return sign | ((exp - f.bias + 127u) << 23) | (man << (23 - m));
	/* zero or subnormal man * 2^(1 - bias - m): an exact product, normal in fp32 */
	const uint32_t quantum = (128u - f.bias - m) << 23; /* 2^(1-bias-m) as fp32 bits */
	return sign | fp8kv_f32_bits((float)man * fp8kv_bits_f32(quantum));
}

/* ---- 16-bit floats ---- */

FP8KV_HD float fp8kv_bf16_to_f32(uint16_t h)
{
	return fp8kv_bits_f32((uint32_t)h << 16);
}

/* fp16 to fp32, exact.  A subnormal man * 2^-24 is formed as a product
 * that is exact in any rounding mode and normal in fp32, so no loop and no
 * branch: the loops over it vectorise. */
FP8KV_HD float fp8kv_f16_to_f32(uint16_t h)
{
	const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	const uint32_t exp = (h >> 10) & 0x1Fu;
	const uint32_t man = h & 0x3FFu;
	const uint32_t normal = ((exp + 112u) << 23) | (man << 13);
	const uint32_t special = 0x7F800000u | (man << 13);
	const uint32_t subnormal = fp8kv_f32_bits((float)man * 0x1p-24f);
	const uint32_t mag = exp == 0x1Fu ? special : exp != 0 ? normal : subnormal;
	return fp8kv_bits_f32(sign | mag);
}

/* fp32 to bf16, round to nearest even; NaN stays a quiet NaN. */
FP8KV_HD uint16_t fp8kv_f32_to_bf16(float x)
{
	const uint32_t u = fp8kv_f32_bits(x);
	if ((u & 0x7FFFFFFFu) > 0x7F800000u)
		return (uint16_t)((u >> 16) | 0x40u);
	const uint32_t rounded = u + 0x7FFFu + ((u >> 16) & 1u);
	return (uint16_t)(rounded >> 16);
}

/* fp32 to fp16, round to nearest even, subnormals and overflow to Inf. */
FP8KV_HD uint16_t fp8kv_f32_to_f16(float x)
{
	const uint32_t u = fp8kv_f32_bits(x);
	const uint32_t sign = (u >> 16) & 0x8000u;
	const uint32_t mag = u & 0x7FFFFFFFu;
	if (mag > 0x7F800000u)
		return (uint16_t)(sign | 0x7E00u);
	if (mag >= 0x47800000u) /* >= 65536: Inf after any rounding */
		return (uint16_t)(sign | 0x7C00u);
	const uint32_t exp_field = mag >> 23;
	const int32_t hexp = (int32_t)exp_field - 127 + 15;
	const uint32_t signif = (mag & 0x7FFFFFu) | (exp_field ? 0x800000u : 0u);
	const int32_t denorm = hexp < 1 ? 1 - hexp : 0;
	int32_t shift = 13 + denorm;
	shift = shift > 31 ? 31 : shift;
	const uint32_t half = 1u << (shift - 1);
	const uint32_t rem = signif & ((1u << shift) - 1u);
	uint32_t r = signif >> shift;
	r += (rem > half) | ((rem == half) & (r & 1u));
	const uint32_t code = ((uint32_t)(hexp + denorm) << 10) + r - 0x400u;
	return (uint16_t)(sign | code); /* a carry past 0x7BFF lands on 0x7C00, Inf */
}

/* An input element, widened exactly. */
FP8KV_HD float fp8kv_load_f32(const void *base, int64_t index, int dtype)
{
	if (dtype == FP8KV_CV_F32)
		return ((const float *)base)[index];
	const uint16_t h = ((const uint16_t *)base)[index];
	return dtype == FP8KV_CV_BF16 ? fp8kv_bf16_to_f32(h) : fp8kv_f16_to_f32(h);
}

/*
 * The scaled value: x / s (quantize) or x * s (dequantize), one correctly
 * rounded fp32 operation, with the sign of a NaN result fixed by the
 * contract rather than by the hardware (x86 keeps a NaN operand's sign and
 * makes 0/0 negative; GPUs return one positive NaN): the sign of x when x
 * is NaN, else sign(x) XOR sign(s), as for any other quotient.
 */
FP8KV_HD float fp8kv_fix_nan_sign(float x, float s, float r)
{
	const uint32_t xb = fp8kv_f32_bits(x), sb = fp8kv_f32_bits(s);
	const uint32_t sign = (xb & 0x7FFFFFFFu) > 0x7F800000u ? xb & 0x80000000u
							      : (xb ^ sb) & 0x80000000u;
	return (fp8kv_f32_bits(r) & 0x7FFFFFFFu) > 0x7F800000u ? fp8kv_bits_f32(0x7FC00000u | sign)
								 : r;
}

FP8KV_HD float fp8kv_divide(float x, float s)
{
	return fp8kv_fix_nan_sign(x, s, x / s);
}

FP8KV_HD float fp8kv_multiply(float x, float s)
{
	return fp8kv_fix_nan_sign(x, s, x * s);
}

/* |x| for the amax of finite values: 0 for NaN and +-Inf. */
FP8KV_HD float fp8kv_finite_abs(float x)
{
	const uint32_t mag = fp8kv_f32_bits(x) & 0x7FFFFFFFu;
	return fp8kv_bits_f32(mag >= 0x7F800000u ? 0u : mag);
}

/* The dynamic per-row scale of fp8kv.h section 7, from the row's amax. */
FP8KV_HD float fp8kv_dynamic_scale(float amax, float fmax)
{
	if (!(amax > 0.0f))
		return 1.0f;
	const float s = amax / fmax;
	const float floor_normal = fp8kv_bits_f32(0x00800000u); /* 2^-126 */
	return s < floor_normal ? floor_normal : s;
}

/* fmax of a format as fp32, from its max code. */
FP8KV_HD float fp8kv_format_max(fp8kv_fp8_format f)
{
	return fp8kv_bits_f32(fp8kv_decode_bits(f.max_code, f));
}

#endif /* FP8KV_FP8_CONVERT_H */
