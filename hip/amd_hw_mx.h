/* SPDX-License-Identifier: MIT */
/*
 * amd_hw_mx.h - gfx950's scaled (MX) conversions, v_cvt_scalef32_pk_fp8_f32,
 * _pk_bf8_f32 and _pk_fp4_f32, held to the contract of fp8kv.h sections 5,
 * 5b and 8 for the grouped writes under the E8M0 rules (K-AMD-HW-MX).  Off
 * by default, under the same switch as amd_hw_fp8.h: configure
 * --enable-amd-hw-fp8 defines FP8KV_AMD_HW_FP8, and only then does the
 * gfx950 code object use them.  Unproven until fp8kv-validate --backend hip
 * passes on a gfx950 (docs/amd.md).
 *
 * What the sources state (docs/amd.md, "The hardware FP8 conversions"):
 * the instruction converts two fp32 values to the OCP format, rounding to
 * nearest even, after dividing them by 2^(E - 127), E the exponent field
 * (bits 30:23) of the fp32 scale operand.  The hardware is trusted with
 * that alone, for a positive finite |x| whose quotient is not at the
 * overflow boundary; the rest never reaches it:
 *
 *   - the group's scale is 2^(b - 127), b its E8M0 byte, so the operand is
 *     the fp32 with exponent field b (bits b << 23): its value is the scale
 *     itself, and the exponent is all the instruction needs to read;
 *   - a group goes to the instruction only when amax * 2^(127 - b) (exact,
 *     or below 2^-126 and then far below any code) is within the FP8
 *     limits of amd_hw_fp8.h (464, 61440 midpoints) or, for e2m1, below its
 *     overflow midpoint 7: no element overflows, so the overflow mode and
 *     the clamp bit play no part;
 *   - and only when b >= FP8KV_AMD_MX_MIN_BYTE (2^-109): then the quotient
 *     of an fp32 subnormal input is below 2^-17, under half the least
 *     subnormal of e5m2, e4m3fn and e2m1, so its code is zero whether the
 *     instruction flushes subnormal inputs or not (not stated); and a
 *     scale byte 0, whose fp32 operand would be +0, never reaches it;
 *   - the instruction sees |x| (NaN and Inf vectors take the exact path
 *     before this), and the sign of x is put back on every code: the OCP
 *     formats and e2m1 have a -0, which the contract keeps.
 *
 * The contract's quotient is RN_fp32(x * 2^(127 - b)); the instruction
 * rounds x / 2^(b - 127) once.  They differ only when the quotient is an
 * fp32 subnormal, below 2^-126, which every format rounds to zero.
 *
 * The plan (usable, the operand, the signs) is plain C (FP8KV_HD), so that
 * tests/test_amd_hw_mx_model.c checks it on the CPU against the oracle for
 * e4m3fn, e5m2 and e2m1, every scale byte, with the instruction modelled as
 * that rounding, flushing subnormal inputs or not.  Whether the
 * instruction is that rounding, and which way it applies the scale, only a
 * GPU can show.
 *
 * Hook: FP8KV_AMD_HAVE_HW_MX is 1 in gfx950 device code with
 * FP8KV_AMD_HW_FP8, and hip/group_fast.h's group_vec then asks
 * fp8kv_amd_mx_codes for a vector's eight codes.
 */
#ifndef FP8KV_AMD_HW_MX_H
#define FP8KV_AMD_HW_MX_H

#include <stdint.h>

#include "amd_hw_fp8.h"
#include "fp8_convert.h"
#include "group_convert.h"
#include "host_device.h"

/* The least E8M0 byte given to the instruction (see above). */
#define FP8KV_AMD_MX_MIN_BYTE 18u

/* The largest quotient (fp32 bits) the instruction converts for a cache
 * of format (fp8kv_dtype number), or 0 when it has no such instruction:
 * the fnuz formats (gfx950 converts to OCP only) and int8. */
FP8KV_HD uint32_t fp8kv_amd_mx_limit(int format)
{
	if (format == FP8KV_CV_E2M1)
		return 0x40DFFFFFu; /* just below 7, e2m1's overflow midpoint */
	if (format == FP8KV_CV_INT8)
		return 0u;
	const fp8kv_fp8_format f = fp8kv_format_of(format);
	return f.fnuz ? 0u : fp8kv_amd_hw_plan_for(f, 1).limit;
}

/* Whether a group of E8M0 byte b whose finite elements' largest magnitude
 * is amax goes to the instruction, for a limit from fp8kv_amd_mx_limit. */
FP8KV_HD int fp8kv_amd_mx_usable(uint32_t b, float amax, uint32_t limit)
{
	/* 2^(127 - b) for b in [MIN, 254]: amax times it is exact, or below
	 * 2^-126 (rounded, still far below the limit) */
	const float r = fp8kv_e8m0_value(254u - b);
	const uint32_t q = fp8kv_f32_bits(amax * r) & 0x7FFFFFFFu;
	return limit != 0u && b - FP8KV_AMD_MX_MIN_BYTE <= 254u - FP8KV_AMD_MX_MIN_BYTE &&
	       q <= limit;
}

/* The instruction's scale operand for E8M0 byte b (1 to 254): 2^(b - 127),
 * the group's scale, with exponent field b. */
FP8KV_HD float fp8kv_amd_mx_scale_operand(uint32_t b)
{
	return fp8kv_bits_f32(b << 23);
}

/* What the instruction is given for the fp32 bits u of an input: |x|. */
FP8KV_HD float fp8kv_amd_mx_input(uint32_t u)
{
	return fp8kv_bits_f32(u & 0x7FFFFFFFu);
}

/* Four FP8 codes (u[0]'s in the low byte) from the instruction's codes
 * of |x|: x's signs on every byte (the OCP formats keep -0). */
FP8KV_HD uint32_t fp8kv_amd_mx_signed4(const uint32_t u[4], uint32_t hw)
{
	const uint32_t signs = (u[0] >> 31) << 7 | (u[1] >> 31) << 15 | (u[2] >> 31) << 23 |
			       (u[3] >> 31) << 31;
	return (hw & 0x7F7F7F7Fu) | signs;
}

/* Eight e2m1 codes (u[k]'s in nibble k) from the instruction's nibbles of
 * |x|: x's signs in bit 3 of every nibble (e2m1 keeps -0, 0x8). */
FP8KV_HD uint32_t fp8kv_amd_mx_signed_e2m1(const uint32_t u[8], uint32_t hw)
{
	uint32_t signs = 0;
	for (int k = 0; k < 8; k++)
		signs |= (u[k] >> 31) << (4 * k + 3);
	return (hw & 0x77777777u) | signs;
}

#if FP8KV_AMD_HAVE_HW_FP8 && defined(__gfx950__)
#define FP8KV_AMD_HAVE_HW_MX 1

typedef short fp8kv_amd_short2 __attribute__((ext_vector_type(2)));

/* two FP8 codes of m0, m1 into the low (HIGH false) or high half of old */
template <bool HIGH>
static __device__ __forceinline__ fp8kv_amd_short2 fp8kv_amd_mx_pair(fp8kv_amd_short2 old,
								     float m0, float m1, float s,
								     bool bf8)
{
	return bf8 ? __builtin_amdgcn_cvt_scalef32_pk_bf8_f32(old, m0, m1, s, HIGH)
		   : __builtin_amdgcn_cvt_scalef32_pk_fp8_f32(old, m0, m1, s, HIGH);
}

/* The codes of a vector's eight finite values x in a group of E8M0 byte b
 * for which fp8kv_amd_mx_usable holds: FP8 bytes in .x (values 0-3) and .y
 * (4-7), or (E2M1) e2m1 nibbles in .x, as group_pack_codes packs them. */
template <bool E2M1>
static __device__ __forceinline__ uint2 fp8kv_amd_mx_codes(const float x[8], uint32_t b, bool bf8)
{
	const float s = fp8kv_amd_mx_scale_operand(b);
	uint32_t u[8];
	float m[8];
#pragma unroll
	for (int k = 0; k < 8; k++) {
		u[k] = fp8kv_f32_bits(x[k]);
		m[k] = fp8kv_amd_mx_input(u[k]);
	}
	if (E2M1) {
		// byte i holds the codes of m[2i] (low nibble) and m[2i + 1]
		uint32_t w = 0;
		w = __builtin_amdgcn_cvt_scalef32_pk_fp4_f32(w, m[0], m[1], s, 0);
		w = __builtin_amdgcn_cvt_scalef32_pk_fp4_f32(w, m[2], m[3], s, 1);
		w = __builtin_amdgcn_cvt_scalef32_pk_fp4_f32(w, m[4], m[5], s, 2);
		w = __builtin_amdgcn_cvt_scalef32_pk_fp4_f32(w, m[6], m[7], s, 3);
		return make_uint2(fp8kv_amd_mx_signed_e2m1(u, w), 0u);
	}
	fp8kv_amd_short2 lo = {0, 0}, hi = {0, 0};
	lo = fp8kv_amd_mx_pair<false>(lo, m[0], m[1], s, bf8);
	lo = fp8kv_amd_mx_pair<true>(lo, m[2], m[3], s, bf8);
	hi = fp8kv_amd_mx_pair<false>(hi, m[4], m[5], s, bf8);
	hi = fp8kv_amd_mx_pair<true>(hi, m[6], m[7], s, bf8);
	return make_uint2(fp8kv_amd_mx_signed4(u, __builtin_bit_cast(uint32_t, lo)),
			  fp8kv_amd_mx_signed4(u + 4, __builtin_bit_cast(uint32_t, hi)));
}
#else
#define FP8KV_AMD_HAVE_HW_MX 0
#endif

#endif /* FP8KV_AMD_HW_MX_H */
