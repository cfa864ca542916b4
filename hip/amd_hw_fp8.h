/* SPDX-License-Identifier: MIT */
/*
 * amd_hw_fp8.h - the FP8 conversion instructions of gfx942 and gfx950, held
 * to the contract of fp8kv.h section 5.  Off by default: configure
 * --enable-amd-hw-fp8 defines FP8KV_AMD_HW_FP8, and only then do the
 * gfx942 and gfx950 code objects use them.  Unproven until
 * fp8kv-validate --backend hip passes on such a GPU (docs/amd.md).
 *
 * The hardware is trusted with one thing only: rounding a positive finite
 * fp32 value to nearest even on its FP8 grid, subnormals included, where
 * the result is finite and not at the overflow boundary.  Everything the
 * instructions do differently from the contract, or that the sources
 * describe unclearly (NaN and Inf inputs, overflow, the clamp bit, the
 * sign of a zero), never reaches them:
 *
 *   - |y| above a limit strictly below the format's overflow midpoint
 *     (464, 248, 61440) goes to the shared encoder, fp8kv_encode_bits:
 *     overflow, Inf and NaN, in either overflow mode, with the counter's
 *     overflow flag;
 *   - the instruction sees |y|, and the sign is put back here: on every
 *     code for the OCP formats (zeros included), on nonzero codes only for
 *     the fnuz ones (which have no -0: 0x80 is their NaN);
 *   - a format the instruction does not produce goes through its twin,
 *     the format with the same bits and a bias one apart, every value of
 *     which is twice (OCP) or half (fnuz) that of the same code: gfx942
 *     converts only to fnuz, so e4m3fn/e5m2 take the fnuz code of y / 2;
 *     gfx950 converts only to OCP, so e4m3fnuz/e5m2fnuz take the OCP code
 *     of 2y (exact scalings, which commute with rounding; a y / 2 that is
 *     an fp32 subnormal is far below any FP8 code and rounds to zero
 *     either way).  The limit then also keeps the twin's value in range.
 *
 * The plan (limit, scaling, which instruction) and the final step are
 * plain C (FP8KV_HD), so that tests/test_amd_hw_fp8_model.c checks them
 * on the CPU against fp8kv_encode_bits for both targets, all four formats
 * and both overflow modes, with the instruction modelled as exactly that
 * rounding.  Whether the instruction is that rounding is what only a GPU
 * can show.
 *
 * Hooks: the HIP sources include this file and encode with
 * FP8KV_DEVICE_ENCODE(y, f, saturate) where they would call fp8kv_encode;
 * it is fp8kv_encode except in the device code of gfx942 and gfx950 with
 * FP8KV_AMD_HW_FP8, where FP8KV_AMD_HAVE_HW_FP8 is 1 and the vector paths
 * that count nothing may also try fp8kv_amd_quantize_vec (four codes per
 * two instructions) before going element by element.
 */
#ifndef FP8KV_AMD_HW_FP8_H
#define FP8KV_AMD_HW_FP8_H

#include "fp8_convert.h"

/* How one format is converted by one target's instruction. */
typedef struct fp8kv_amd_hw_plan {
	uint32_t limit;  /* the largest |y| (fp32 bits) the instruction converts */
	uint32_t scale;  /* fp32 bits of 0.5, 1 or 2: y to the instruction's format */
	uint32_t bf8;    /* 1: the e5m2 instruction (bf8), 0: the e4m3 one (fp8) */
} fp8kv_amd_hw_plan;

/* ocp_hw: the instruction converts to the OCP formats (gfx950), else to the
 * fnuz formats (gfx942). */
FP8KV_HD fp8kv_amd_hw_plan fp8kv_amd_hw_plan_for(fp8kv_fp8_format f, int ocp_hw)
{
	fp8kv_amd_hw_plan p;
	const uint32_t twin = f.fnuz == (uint32_t)(ocp_hw != 0);
	p.bf8 = f.mant_bits == 2 ? 1u : 0u;
	/* just below the overflow midpoints 464 (e4m3fn), 248 (e4m3fnuz) and
	 * 61440 (both e5m2): the instruction is never asked about them */
	p.limit = p.bf8 ? 0x476FFFFFu : f.fnuz ? 0x4377FFFFu : 0x43E7FFFFu;
	p.scale = 0x3F800000u; /* 1 */
	if (twin && f.fnuz) {
		/* the OCP code of 2y: 2y below the OCP midpoint too (232, 30720) */
		p.scale = 0x40000000u;
		p.limit = p.bf8 ? 0x46EFFFFFu : 0x4367FFFFu;
	} else if (twin) {
		p.scale = 0x3F000000u; /* the fnuz code of y / 2, within range */
	}
	return p;
}

/* What the instruction is given for fp32 bits u: |y| on its format's grid. */
FP8KV_HD float fp8kv_amd_hw_input(uint32_t u, fp8kv_amd_hw_plan p)
{
	return fp8kv_bits_f32(u & 0x7FFFFFFFu) * fp8kv_bits_f32(p.scale);
}

/* The contract's code for u (as fp8kv_encode_bits returns it) from the
 * instruction's code hw of fp8kv_amd_hw_input(u, p), for |y| <= p.limit.
 * The bit 7 of hw is ignored. */
FP8KV_HD uint32_t fp8kv_amd_hw_signed(uint32_t u, uint32_t hw, fp8kv_fp8_format f)
{
	const uint32_t mag = hw & 0x7Fu;
	const uint32_t signed_code = mag != 0 || !f.fnuz ? (u >> 31) << 7 : 0u;
	return mag | signed_code;
}

/* The same for four codes in a word (u[0]'s in the low byte), from the
 * instruction's four codes hw: the signs gathered in one go, and on fnuz
 * formats kept only on bytes whose magnitude is not 0 (bit 7 of each byte
 * of mags + 0x7F7F7F7F: no carry leaves a byte). */
FP8KV_HD uint32_t fp8kv_amd_hw_signed4(const uint32_t u[4], uint32_t hw, fp8kv_fp8_format f)
{
	const uint32_t mags = hw & 0x7F7F7F7Fu;
	const uint32_t signs = (u[0] >> 31) << 7 | (u[1] >> 31) << 15 | (u[2] >> 31) << 23 |
			       (u[3] >> 31) << 31;
	const uint32_t keep = f.fnuz ? (mags + 0x7F7F7F7Fu) & 0x80808080u : 0x80808080u;
	return mags | (signs & keep);
}

#if defined(FP8KV_AMD_HW_FP8) && defined(__HIP_DEVICE_COMPILE__) && \
	(defined(__gfx942__) || defined(__gfx950__))
#define FP8KV_AMD_HAVE_HW_FP8 1
#if defined(__gfx950__)
#define FP8KV_AMD_OCP_HW 1
#else
#define FP8KV_AMD_OCP_HW 0
#endif

/* fp8kv_encode (code and overflow flag) through the instruction, for the
 * elements within the plan's limit; the rest by the shared encoder, in a
 * branch that a wavefront without such an element skips. */
static __device__ __forceinline__ uint32_t fp8kv_amd_encode(float y, fp8kv_fp8_format f,
							    int saturate)
{
	const fp8kv_amd_hw_plan p = fp8kv_amd_hw_plan_for(f, FP8KV_AMD_OCP_HW);
	const uint32_t u = fp8kv_f32_bits(y);
	if ((u & 0x7FFFFFFFu) > p.limit)
		return fp8kv_encode_bits(u, f, saturate);
	const float m = fp8kv_amd_hw_input(u, p);
	const uint32_t hw = p.bf8 ? (uint32_t)__builtin_amdgcn_cvt_pk_bf8_f32(m, m, 0, false)
				  : (uint32_t)__builtin_amdgcn_cvt_pk_fp8_f32(m, m, 0, false);
	return fp8kv_amd_hw_signed(u, hw, f);
}
#define FP8KV_DEVICE_ENCODE(y, f, saturate) fp8kv_amd_encode((y), (f), (saturate))

/* two codes into the low (HIGH false) or high 16 bits of old */
template <bool HIGH>
static __device__ __forceinline__ uint32_t fp8kv_amd_cvt_pair(float m0, float m1, uint32_t old,
							      uint32_t bf8)
{
	return bf8 ? (uint32_t)__builtin_amdgcn_cvt_pk_bf8_f32(m0, m1, (int)old, HIGH)
		   : (uint32_t)__builtin_amdgcn_cvt_pk_fp8_f32(m0, m1, (int)old, HIGH);
}

/* Four codes in *codes (y[0]'s in the low byte) by two instructions, when
 * every |y[k]| is within the plan's limit; else false, nothing written.
 * None of them overflows, so there is nothing to count. */
static __device__ __forceinline__ bool fp8kv_amd_encode4(const float y[4], fp8kv_fp8_format f,
							 uint32_t *codes)
{
	const fp8kv_amd_hw_plan p = fp8kv_amd_hw_plan_for(f, FP8KV_AMD_OCP_HW);
	uint32_t u[4], amax = 0;
	float m[4];
	for (int k = 0; k < 4; k++) {
		u[k] = fp8kv_f32_bits(y[k]);
		const uint32_t a = u[k] & 0x7FFFFFFFu;
		amax = a > amax ? a : amax;  /* a NaN exceeds any limit */
		m[k] = fp8kv_amd_hw_input(u[k], p);
	}
	if (amax > p.limit)
		return false;
	const uint32_t lo = fp8kv_amd_cvt_pair<false>(m[0], m[1], 0u, p.bf8);
	*codes = fp8kv_amd_hw_signed4(u, fp8kv_amd_cvt_pair<true>(m[2], m[3], lo, p.bf8), f);
	return true;
}

/* The VE (4 or 8) codes of a vector of inputs x (divided by s when
 * SCALED, as fp8kv_divide does), stored at dst, when no quotient is beyond
 * the plan's limit; else false, and the caller converts element by element.
 * For the vector paths that count nothing. */
template <int VE, bool SCALED>
static __device__ __forceinline__ bool fp8kv_amd_quantize_vec(unsigned char *dst, const float x[],
							      float s, fp8kv_fp8_format f)
{
	float y[8];
	uint32_t lo = 0, hi = 0;
	for (int k = 0; k < VE; k++)
		y[k] = SCALED ? fp8kv_divide(x[k], s) : x[k];
	if (!fp8kv_amd_encode4(y, f, &lo) || (VE == 8 && !fp8kv_amd_encode4(y + 4, f, &hi)))
		return false;
	if (VE == 4)
		*(uint32_t *)dst = lo;
	else
		*(uint2 *)dst = make_uint2(lo, hi);
	return true;
}
#else
#define FP8KV_AMD_HAVE_HW_FP8 0
#define FP8KV_DEVICE_ENCODE(y, f, saturate) fp8kv_encode((y), (f), (saturate))
#endif

#endif /* FP8KV_AMD_HW_FP8_H */
