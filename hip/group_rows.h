// SPDX-License-Identifier: MIT
/*
 * group_rows.h - rows whose groups carry their own scales (fp8kv.h section
 * 8) on the GPU, element by element: a group's quotient, its code (FP8,
 * e2m1 or int8) with the counters, and the general row, in which each lane
 * of a team writes whole groups.  The rules are lib/group_convert.h's, the
 * same functions cpu/group_rows.c calls (A-ONE-CONVERTER): the scale of a
 * group (fp8kv_group_scale_of), where it goes (fp8kv_group_scale_index,
 * fp8kv_store_group_scale) and each element's code.  The fast kernel
 * (group_fast.h) falls back to group_code for the vectors it cannot
 * convert its own way.
 */
#ifndef FP8KV_HIP_GROUP_ROWS_H
#define FP8KV_HIP_GROUP_ROWS_H

#include <stdint.h>

#include "device_common.h"
#include "device_convert.h"
#include "fp8_convert.h"
#include "group_convert.h"
#include "group_policy.h"
#include "hip_compat.h"
#include "write_plan.h"

// y = x / s for a group's scale s, which is never negative: the
// magnitude of the IEEE quotient with x's sign, NaN included (cpu/rows.c's
// SCALE_SIGN_CLEAR form; for s > 0 the bits of fp8kv_divide up to a NaN's
// payload, which no encoder reads).
static __device__ __forceinline__ float group_quotient(float x, float s)
{
	return fp8kv_bits_f32((fp8kv_f32_bits(x / s) & 0x7FFFFFFFu) |
			      (fp8kv_f32_bits(x) & 0x80000000u));
}

// The code of element x of a group whose quotient is y (group_quotient, or
// the same bits a faster way), as cpu/group_rows.c's group_element and
// cpu/rows.c's quantize_element: FP8 (format f, the call's policy), e2m1
// (zero: the NVFP4 group's codes are +-0 by sign) or int8 (toward_zero);
// COUNT adds a finite x that overflows (its quotient past the format, or
// already infinite) and a NaN x.
template <int ELEM, bool COUNT>
static __device__ __forceinline__ uint32_t group_code(float x, float y, uint32_t zero,
						      const fp8kv_fp8_format f, int saturate,
						      int toward_zero, unsigned int &overflows,
						      unsigned int &nans)
{
	const uint32_t xb = fp8kv_f32_bits(x), yb = fp8kv_f32_bits(y);
	uint32_t q, code;
	if (ELEM == GROUP_ELEM_E2M1) {
		q = fp8kv_e2m1_encode_bits(yb);
		code = zero ? fp8kv_e2m1_zero_code(xb) : q & 0xFu;
	} else if (ELEM == GROUP_ELEM_INT8) {
		q = fp8kv_int8_encode_bits(yb, toward_zero);
		code = q & 0xFFu;
	} else {
		q = FP8KV_DEVICE_ENCODE(y, f, saturate);
		code = q & 0xFFu;
	}
	if (COUNT) {
		const uint32_t xmag = xb & 0x7FFFFFFFu, ymag = yb & 0x7FFFFFFFu;
		uint32_t ovf = ((q >> 8) & 1u) | ((xmag < 0x7F800000u) & (ymag == 0x7F800000u));
		if (ELEM == GROUP_ELEM_E2M1)
			ovf = zero ? 0u : ovf;
		overflows += ovf;
		nans += xmag > 0x7F800000u;
	}
	return code;
}

// The elements [0, n) of one group (n = G), all divided by its scale, from
// src (input DT, element stride 1) to dst (the group's first byte: codes,
// or e2m1 pairs), element by element.
template <int DT, int ELEM, bool COUNT>
static __device__ __forceinline__ void group_elements(unsigned char *dst, const unsigned char *src,
						      int64_t n, const fp8kv_group_scale &sc,
						      const fp8kv_fp8_format f, int saturate,
						      int toward_zero, unsigned int &overflows,
						      unsigned int &nans)
{
	if (ELEM == GROUP_ELEM_E2M1) {
		for (int64_t i = 0; i < n; i += 2) {
			const float x0 = fp8kv_load_f32(src, i, DT), x1 = fp8kv_load_f32(src, i + 1, DT);
			const uint32_t lo = group_code<ELEM, COUNT>(x0, group_quotient(x0, sc.s), sc.zero,
								     f, saturate, 0, overflows, nans);
			const uint32_t hi = group_code<ELEM, COUNT>(x1, group_quotient(x1, sc.s), sc.zero,
								     f, saturate, 0, overflows, nans);
			dst[i / 2] = (unsigned char)(lo | hi << 4);
		}
	} else {
		for (int64_t i = 0; i < n; i++) {
			const float x = fp8kv_load_f32(src, i, DT);
			dst[i] = (unsigned char)group_code<ELEM, COUNT>(x, group_quotient(x, sc.s), sc.zero,
									f, saturate, toward_zero,
									overflows, nans);
		}
	}
}

// The groups of row (t, h) of side sd that this lane writes (j = lane,
// lane + team, ...), whole, to (block, offset): cpu/group_rows.c's
// cpu_group_row for them.  Returns the largest amax of the lane's groups
// (fp8kv_amax_raises order), for the row's amax.
template <int DT, int ELEM, bool COUNT>
static __device__ __forceinline__ float group_row_lane(const fp8kv_plan_side &sd, int saturate,
						       const int64_t t, const int64_t h,
						       const int64_t block, const int64_t offset,
						       const int lane, const int team,
						       unsigned int &overflows, unsigned int &nans)
{
	constexpr int IN = DT == FP8KV_CV_F32 ? 4 : 2;
	const fp8kv_row_recipe &r = sd.recipe;
	const int64_t G = r.group.size, groups = sd.head_dim / G;
	const unsigned char *src = sd.input + fp8kv_input_row(&sd, t, h) * IN;
	// grouped caches hold bytes: FP8 and int8 codes, e2m1 pairs
	unsigned char *dst = sd.cache + fp8kv_cache_row(&sd, block, offset, h);
	const fp8kv_fp8_format f = fp8kv_format_of(r.cache_dtype);
	const int toward_zero = r.group.rounding == FP8KV_CV_ROUND_TOWARD_ZERO;
	float top = 0.0f;
	for (int64_t j = lane; j < groups; j += team) {
		const unsigned char *in = src + j * G * IN;
		float amax = 0.0f;
		for (int64_t i = 0; i < G; i++)
			amax = max_nonneg(amax, fp8kv_finite_abs(fp8kv_load_f32(in, i, DT)));
		const fp8kv_group_scale sc = fp8kv_group_scale_of_side(&sd, amax);
		fp8kv_store_group_scale(&sd, fp8kv_group_scale_index(&sd, block, offset, h, j),
					sc.stored);
		if (fp8kv_amax_raises(top, amax))
			top = amax;
		group_elements<DT, ELEM, COUNT>(dst + (ELEM == GROUP_ELEM_E2M1 ? j * G / 2 : j * G), in,
						G, sc, f, saturate, toward_zero, overflows, nans);
	}
	return top;
}

// The same for a side whose element class is known only at run time (the
// general kernel: one instantiation per input type).
template <int DT, bool COUNT>
static __device__ __forceinline__ float group_row_any(const fp8kv_plan_side &sd, int saturate,
						      const int64_t t, const int64_t h,
						      const int64_t block, const int64_t offset,
						      const int lane, const int team,
						      unsigned int &overflows, unsigned int &nans)
{
	switch (group_elem_of(sd.recipe.cache_dtype)) {
	case GROUP_ELEM_E2M1:
		return group_row_lane<DT, GROUP_ELEM_E2M1, COUNT>(sd, saturate, t, h, block, offset,
								  lane, team, overflows, nans);
	case GROUP_ELEM_INT8:
		return group_row_lane<DT, GROUP_ELEM_INT8, COUNT>(sd, saturate, t, h, block, offset,
								  lane, team, overflows, nans);
	default:
		return group_row_lane<DT, GROUP_ELEM_FP8, COUNT>(sd, saturate, t, h, block, offset,
								 lane, team, overflows, nans);
	}
}

#endif /* FP8KV_HIP_GROUP_ROWS_H */
