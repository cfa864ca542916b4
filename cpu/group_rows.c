/* SPDX-License-Identifier: MIT */
/*
 * group_rows.c - rows of the CPU backend whose groups carry their own
 * scales (fp8kv.h section 8): each group's amax, its scale by the side's
 * rule (lib/group_convert.h, the one definition the GPU kernels call too),
 * the scale stored through the side's map, and the elements converted as
 * FP8 (rows.c's quantize_element), e2m1 (packed two per byte, element 2i in
 * the low nibble) or int8.
 *
 * The scales of a piece of the row are spread to one per element first,
 * so that the conversion is one loop over the piece, which vectorises as
 * rows.c's do, whatever the group size (C-GROUP-ROWS).  A group's scale is
 * always positive (FP8KV_GROUP_F32: at least its floor; E8M0: a power of
 * two; NVFP4: sf * g with g > 0, or a zero group whose codes do not read
 * it), so the division takes the SCALE_SIGN_CLEAR form.
 */
#include "config.h"

#include <string.h>

#include "cpu.h"

/* Groups whose scales are computed at a time, and elements converted at a
 * time: their scales, zero flags and e2m1 codes live on the stack. */
#define GROUP_CHUNK 64
#define PIECE 2048

enum element_kind { KIND_FP8, KIND_E2M1, KIND_INT8_NEAREST, KIND_INT8_TOWARD_ZERO };

/*
 * One e2m1 or int8 element: its code, with ELEMENT_OVERFLOW for a finite x
 * that is clipped (its quotient overflows, or is already infinite) and
 * ELEMENT_NAN for a NaN x, when counting.  An element of a zero NVFP4
 * group is +-0 by sign and never an overflow.
 */
static ALWAYS_INLINE uint32_t small_element(float x, float s, uint32_t zero, int e2m1,
					    int toward_zero, int counting)
{
	const float y = scaled_value(x, SCALE_SIGN_CLEAR, s);
	const uint32_t xb = fp8kv_f32_bits(x), yb = fp8kv_f32_bits(y);
	const uint32_t q = e2m1 ? fp8kv_e2m1_encode_bits(yb) : fp8kv_int8_encode_bits(yb, toward_zero);
	const uint32_t code = e2m1 && zero ? fp8kv_e2m1_zero_code(xb) : q & 0xFFu;
	if (!counting)
		return code;
	const uint32_t xmag = xb & 0x7FFFFFFFu, ymag = yb & 0x7FFFFFFFu;
	uint32_t ovf = (q >> 8) | ((xmag < 0x7F800000u ? 1u : 0u) & (ymag == 0x7F800000u ? 1u : 0u));
	ovf = zero ? 0u : ovf;
	const uint32_t nan = xmag > 0x7F800000u ? 1u : 0u;
	return code | (ovf << 8) | (nan << 9);
}

/* n elements of src (dtype), element i divided by se[i] (ze[i]: of a zero
 * NVFP4 group), one code per byte of out.  Inlined with its flags
 * constant, so that each combination is its own branch-free loop. */
static ALWAYS_INLINE void codes_generic(uint8_t *restrict out, const void *restrict src,
					int64_t n, int dtype, enum element_kind kind,
					const float *restrict se, const uint32_t *restrict ze,
					fp8kv_fp8_format f, int saturate, int counting,
					row_stats *stats)
{
	uint32_t overflows = 0, nans = 0; /* n <= PIECE */
	for (int64_t i = 0; i < n; i++) {
		const float x = fp8kv_load_f32(src, i, dtype);
		const uint32_t e =
			kind == KIND_FP8
				? quantize_element(x, SCALE_SIGN_CLEAR, counting, se[i], f, saturate)
				: small_element(x, se[i], ze[i], kind == KIND_E2M1,
						kind == KIND_INT8_TOWARD_ZERO, counting);
		out[i] = (uint8_t)e;
		if (counting) {
			overflows += (e >> 8) & 1u;
			nans += e >> 9;
		}
	}
	if (counting) {
		stats->overflows += overflows;
		stats->nans += nans;
	}
}

VECTOR_CLONES
static void group_codes(uint8_t *out, const uint8_t *src, int64_t n, int dtype,
			enum element_kind kind, const float *se, const uint32_t *ze,
			fp8kv_fp8_format f, int saturate, row_stats *stats)
{
#define CODES(DT, K, CT) codes_generic(out, src, n, DT, K, se, ze, f, saturate, CT, stats)
#define BY_KIND(DT, CT)                                                                 \
	do {                                                                            \
		switch (kind) {                                                         \
		case KIND_FP8: CODES(DT, KIND_FP8, CT); break;                          \
		case KIND_E2M1: CODES(DT, KIND_E2M1, CT); break;                        \
		case KIND_INT8_NEAREST: CODES(DT, KIND_INT8_NEAREST, CT); break;        \
		default: CODES(DT, KIND_INT8_TOWARD_ZERO, CT); break;                   \
		}                                                                       \
	} while (0)
#define BY_COUNTING(DT)                                                                 \
	do {                                                                            \
		if (stats)                                                              \
			BY_KIND(DT, 1);                                                 \
		else                                                                    \
			BY_KIND(DT, 0);                                                 \
	} while (0)
	switch (dtype) {
	case FP8KV_CV_BF16: BY_COUNTING(FP8KV_CV_BF16); break;
	case FP8KV_CV_F16: BY_COUNTING(FP8KV_CV_F16); break;
	default: BY_COUNTING(FP8KV_CV_F32); break;
	}
#undef BY_COUNTING
#undef BY_KIND
#undef CODES
}

/* Two e2m1 codes per byte, element 2i in the low nibble: n / 2 bytes. */
static void pack_e2m1(uint8_t *restrict dst, const uint8_t *restrict codes, int64_t n)
{
	for (int64_t i = 0; i < n / 2; i++) {
		uint16_t pair; /* codes 2i (low byte) and 2i + 1, little-endian */
		memcpy(&pair, codes + 2 * i, sizeof pair);
		dst[i] = (uint8_t)((pair & 0x0Fu) | ((pair >> 4) & 0xF0u));
	}
}

/* The scales of n groups from their amax, by one rule at a time, so that
 * each loop is branch-free and may vectorise. */
static ALWAYS_INLINE void scales_generic(int rule, int format, float divisor, float scale_floor,
					 float g, const float *amax, int64_t n, float *s,
					 uint32_t *stored, uint32_t *zero)
{
	for (int64_t j = 0; j < n; j++) {
		const fp8kv_group_scale sc =
			fp8kv_group_scale_of(rule, format, divisor, scale_floor, g, amax[j]);
		s[j] = sc.s;
		stored[j] = sc.stored;
		zero[j] = sc.zero;
	}
}

VECTOR_CLONES
static void group_scales(const fp8kv_plan_side *sd, const float *amax, int64_t n, float *s,
			 uint32_t *stored, uint32_t *zero)
{
	const fp8kv_row_recipe *r = &sd->recipe;
	const float g = r->group.rule == FP8KV_CV_GROUP_NVFP4 ? sd->groups.global[0] : 0.0f;
#define SCALES(RULE) \
	scales_generic(RULE, r->cache_dtype, r->group.divisor, r->group.scale_floor, g, amax, n, \
		       s, stored, zero)
	switch (r->group.rule) {
	case FP8KV_CV_GROUP_F32: SCALES(FP8KV_CV_GROUP_F32); break;
	case FP8KV_CV_GROUP_E8M0_FLOOR: SCALES(FP8KV_CV_GROUP_E8M0_FLOOR); break;
	case FP8KV_CV_GROUP_E8M0_RCEIL: SCALES(FP8KV_CV_GROUP_E8M0_RCEIL); break;
	default: SCALES(FP8KV_CV_GROUP_NVFP4); break;
	}
#undef SCALES
}

static enum element_kind kind_of(const fp8kv_row_recipe *r)
{
	if (r->cache_dtype == FP8KV_CV_E2M1)
		return KIND_E2M1;
	if (r->cache_dtype == FP8KV_CV_INT8)
		return r->group.rounding == FP8KV_CV_ROUND_TOWARD_ZERO ? KIND_INT8_TOWARD_ZERO
								       : KIND_INT8_NEAREST;
	return KIND_FP8;
}

VECTOR_CLONES
void cpu_group_row(const fp8kv_plan_side *sd, int dtype, const uint8_t *src, uint8_t *dst,
		   int64_t block, int64_t offset, int64_t h, int saturate, row_stats *stats,
		   float *row_amax)
{
	const fp8kv_row_recipe *r = &sd->recipe;
	const int64_t G = r->group.size, groups = sd->head_dim / G;
	const int64_t in_size = dtype == FP8KV_CV_F32 ? 4 : 2;
	const enum element_kind kind = kind_of(r);
	const fp8kv_fp8_format f = fp8kv_format_of(kind == KIND_FP8 ? r->cache_dtype : FP8KV_CV_E4M3FN);
	const int64_t per = kind == KIND_E2M1 ? 2 : 1;
	/* whole groups, a piece's worth when they are small */
	const int64_t chunk = G < PIECE ? (PIECE / G < GROUP_CHUNK ? PIECE / G : GROUP_CHUNK) : 1;
	float amax[GROUP_CHUNK], s[GROUP_CHUNK], se[PIECE];
	uint32_t stored[GROUP_CHUNK], zero[GROUP_CHUNK], ze[PIECE];
	uint8_t codes[PIECE];
	float top = 0.0f;

	for (int64_t j0 = 0; j0 < groups; j0 += chunk) {
		const int64_t n = groups - j0 < chunk ? groups - j0 : chunk;
		const int64_t first = j0 * G, count = n * G;
		cpu_rows_amax(amax, src + first * in_size, G * in_size, n, G, dtype);
		group_scales(sd, amax, n, s, stored, zero);
		for (int64_t j = 0; j < n; j++) {
			fp8kv_store_group_scale(sd, fp8kv_group_scale_index(sd, block, offset, h, j0 + j),
						stored[j]);
			if (fp8kv_amax_raises(top, amax[j]))
				top = amax[j];
		}
		/* the elements, a piece at a time (a group longer than a piece,
		 * a whole row, spans several): every element's scale spread */
		for (int64_t e0 = 0; e0 < count; e0 += PIECE) {
			const int64_t len = count - e0 < PIECE ? count - e0 : PIECE;
			for (int64_t i = 0; i < len;) {
				const int64_t j = (e0 + i) / G;
				const int64_t end = (j + 1) * G - e0 < len ? (j + 1) * G - e0 : len;
				for (; i < end; i++) {
					se[i] = s[j];
					ze[i] = zero[j];
				}
			}
			const uint8_t *in = src + (first + e0) * in_size;
			uint8_t *out = dst + (first + e0) / per;
			group_codes(kind == KIND_E2M1 ? codes : out, in, len, dtype, kind, se, ze, f,
				    saturate, stats);
			if (kind == KIND_E2M1)
				pack_e2m1(out, codes, len);
		}
	}
	*row_amax = top;
}
