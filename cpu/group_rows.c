/* SPDX-License-Identifier: MIT */
/*
 * group_rows.c - rows of the CPU backend whose groups carry their own
 * scales (fp8kv.h section 8): each group's amax, its scale by the side's
 * rule (lib/group_convert.h, the one definition the GPU kernels call too),
 * the scale stored through the side's map, and the elements converted as
 * FP8 (rows.c's loops, a group being a row with its own scale), e2m1
 * (packed two per byte, element 2i in the low nibble) or int8.
 *
 * A group's scale is always positive (FP8KV_GROUP_F32: at least its floor;
 * E8M0: a power of two; NVFP4: sf * g with g > 0, or a zero group whose
 * codes do not read it), so the division takes rows.c's SCALE_SIGN_CLEAR
 * form.
 */
#include "config.h"

#include "cpu.h"

/* Groups at a time, their amax and scales on the stack. */
#define GROUP_CHUNK 64

/*
 * One e2m1 or int8 element: its code, with ELEMENT_OVERFLOW for a finite x
 * that is clipped (its quotient overflows, or is already infinite) and
 * ELEMENT_NAN for a NaN x, when counting.  An element of a zero NVFP4
 * group is +-0 by sign and never an overflow.
 */
#define ELEMENT_OVERFLOW 0x100u
#define ELEMENT_NAN 0x200u

static ALWAYS_INLINE uint32_t group_element(float x, float s, uint32_t zero, int e2m1,
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

/* groups groups of G elements of src (dtype), group j divided by s[j]:
 * e2m1 (two codes per byte of dst) or int8 (one per byte).  Inlined with
 * its flags constant, so that each combination is its own loop. */
static ALWAYS_INLINE void small_groups_generic(uint8_t *restrict dst, const void *restrict src,
					       int64_t groups, int64_t G, int dtype,
					       const float *s, const uint32_t *zero, int e2m1,
					       int toward_zero, int counting, row_stats *stats)
{
	uint32_t overflows = 0, nans = 0; /* a call's row: far below 2^32 elements */
	for (int64_t j = 0; j < groups; j++) {
		const float sj = s[j];
		const uint32_t zj = zero[j];
		const int64_t base = j * G;
		if (e2m1) {
			uint8_t *out = dst + base / 2;
			for (int64_t i = 0; i < G / 2; i++) {
				const uint32_t lo = group_element(fp8kv_load_f32(src, base + 2 * i, dtype),
								  sj, zj, 1, 0, counting);
				const uint32_t hi = group_element(
					fp8kv_load_f32(src, base + 2 * i + 1, dtype), sj, zj, 1, 0,
					counting);
				out[i] = (uint8_t)((lo & 0xFu) | (hi & 0xFu) << 4);
				if (counting) {
					overflows += ((lo >> 8) & 1u) + ((hi >> 8) & 1u);
					nans += (lo >> 9) + (hi >> 9);
				}
			}
		} else {
			uint8_t *out = dst + base;
			for (int64_t i = 0; i < G; i++) {
				const uint32_t e = group_element(fp8kv_load_f32(src, base + i, dtype), sj,
								 zj, 0, toward_zero, counting);
				out[i] = (uint8_t)e;
				if (counting) {
					overflows += (e >> 8) & 1u;
					nans += e >> 9;
				}
			}
		}
	}
	if (counting) {
		stats->overflows += overflows;
		stats->nans += nans;
	}
}

VECTOR_CLONES
static void small_groups(uint8_t *dst, const uint8_t *src, int64_t groups, int64_t G, int dtype,
			 const float *s, const uint32_t *zero, int e2m1, int toward_zero,
			 row_stats *stats)
{
#define GROUPS(DT, E2, TZ, CT) \
	small_groups_generic(dst, src, groups, G, DT, s, zero, E2, TZ, CT, stats)
#define BY_DTYPE(E2, TZ, CT)                                                    \
	do {                                                                    \
		if (dtype == FP8KV_CV_BF16)                                     \
			GROUPS(FP8KV_CV_BF16, E2, TZ, CT);                      \
		else if (dtype == FP8KV_CV_F16)                                 \
			GROUPS(FP8KV_CV_F16, E2, TZ, CT);                       \
		else                                                            \
			GROUPS(FP8KV_CV_F32, E2, TZ, CT);                       \
	} while (0)
	const int counting = stats != NULL;
	switch (e2m1 * 4 + toward_zero * 2 + counting) {
	case 0: BY_DTYPE(0, 0, 0); break;
	case 1: BY_DTYPE(0, 0, 1); break;
	case 2: BY_DTYPE(0, 1, 0); break;
	case 3: BY_DTYPE(0, 1, 1); break;
	case 4: BY_DTYPE(1, 0, 0); break;
	default: BY_DTYPE(1, 0, 1); break;
	}
#undef BY_DTYPE
#undef GROUPS
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

void cpu_group_row(const fp8kv_plan_side *sd, int dtype, const uint8_t *src, uint8_t *dst,
		   int64_t block, int64_t offset, int64_t h, int saturate, row_stats *stats,
		   float *row_amax)
{
	const fp8kv_row_recipe *r = &sd->recipe;
	const int64_t G = r->group.size, groups = sd->head_dim / G;
	const int64_t in_size = dtype == FP8KV_CV_F32 ? 4 : 2;
	const int format = r->cache_dtype;
	const int e2m1 = format == FP8KV_CV_E2M1, int8 = format == FP8KV_CV_INT8;
	float amax[GROUP_CHUNK], s[GROUP_CHUNK];
	uint32_t stored[GROUP_CHUNK], zero[GROUP_CHUNK];
	float top = 0.0f;

	for (int64_t j0 = 0; j0 < groups; j0 += GROUP_CHUNK) {
		const int64_t n = groups - j0 < GROUP_CHUNK ? groups - j0 : GROUP_CHUNK;
		const uint8_t *in = src + j0 * G * in_size;
		cpu_rows_amax(amax, in, G * in_size, n, G, dtype);
		group_scales(sd, amax, n, s, stored, zero);
		for (int64_t j = 0; j < n; j++) {
			fp8kv_store_group_scale(sd, fp8kv_group_scale_index(sd, block, offset, h, j0 + j),
						stored[j]);
			if (fp8kv_amax_raises(top, amax[j]))
				top = amax[j];
		}
		if (e2m1 || int8)
			small_groups(dst + j0 * G / (e2m1 ? 2 : 1), in, n, G, dtype, s, zero, e2m1,
				     r->group.rounding == FP8KV_CV_ROUND_TOWARD_ZERO, stats);
		else /* FP8: a group is a row of rows.c with its own scale */
			cpu_quantize_rows(dst + j0 * G, G, in, G * in_size, n, G, dtype, s, 1,
					  fp8kv_format_of(format), saturate, stats);
	}
	*row_amax = top;
}
