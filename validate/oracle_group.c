/* SPDX-License-Identifier: MIT */
/*
 * oracle_group.c - the group half of oracle_group.h: the scale of a group
 * under each rule of fp8kv.h section 8, a grouped row, the scale address,
 * and the MLA entries of section 9.
 *
 * Method: E8M0 exponents are found by searching the powers of two 2^k
 * (exact doubles) rather than read from bit fields; products that the rules
 * round (6 * g, sf * g) are exact in binary64 and rounded once by
 * oracle_f32_round; divisions go through oracle_divide.  Elements are
 * encoded by the searches of oracle.c (FP8) and oracle_elem.c (e2m1, int8).
 */
#include "oracle_group.h"

#include <float.h>
#include <string.h>

#include "float_bits.h"
#include "oracle.h"

static int is_fp8(fp8kv_dtype f)
{
	return f == FP8KV_E4M3FN || f == FP8KV_E4M3FNUZ || f == FP8KV_E5M2 ||
	       f == FP8KV_E5M2FNUZ;
}

static int finite_double(double d)
{
	return d == d && d <= DBL_MAX && d >= -DBL_MAX;
}

static void store_le32(uint8_t *dst, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		dst[i] = (uint8_t)(v >> (8 * i));
}

int oracle_group_scale_bytes(fp8kv_group_rule rule)
{
	switch (rule) {
	case FP8KV_GROUP_F32: return 4;
	case FP8KV_GROUP_E8M0_FLOOR:
	case FP8KV_GROUP_E8M0_RCEIL:
	case FP8KV_GROUP_NVFP4: return 1;
	default: return 0;
	}
}

/* Which rules take which caches, and the policies that apply (section 8). */
static int params_ok(const oracle_group_params *p)
{
	const fp8kv_dtype f = p->format;
	if (!is_fp8(f) && f != FP8KV_E2M1 && f != FP8KV_INT8)
		return 0;
	if (p->rounding != FP8KV_ROUND_NEAREST_EVEN &&
	    (f != FP8KV_INT8 || p->rounding != FP8KV_ROUND_TOWARD_ZERO))
		return 0;
	if (p->overflow != FP8KV_SATURATE && (!is_fp8(f) || p->overflow != FP8KV_NONSATURATING))
		return 0;
	switch (p->rule) {
	case FP8KV_GROUP_F32: {
		const double d = oracle_f32_exact(p->divisor), fl = oracle_f32_exact(p->scale_floor);
		return finite_double(d) && d >= 0 && finite_double(fl) && fl >= 0;
	}
	case FP8KV_GROUP_E8M0_FLOOR:
	case FP8KV_GROUP_E8M0_RCEIL: return is_fp8(f) || f == FP8KV_E2M1;
	case FP8KV_GROUP_NVFP4: return f == FP8KV_E2M1;
	default: return 0;
	}
}

float oracle_group_amax(const uint32_t *bits, int64_t n, fp8kv_dtype dtype)
{
	double amax = 0;
	for (int64_t i = 0; i < n; i++) {
		double a = oracle_f32_exact(oracle_widen(bits[i], dtype));
		if (!finite_double(a))
			continue;
		if (a < 0)
			a = -a;
		if (a > amax)
			amax = a;
	}
	return oracle_f32_round(amax); /* exact: amax is one of the inputs */
}

/* The E8M0 byte of the OCP floor rule: e(amax) - emax, at least 0, where
 * e(amax) is the biased exponent field (0 for 0 and subnormals): the
 * largest k in [-126, 127] with 2^k <= amax, plus 127. */
static int e8m0_floor(double amax, int emax)
{
	int field = 0;
	for (int k = -126; k <= 127; k++)
		if (pow2(k) <= amax)
			field = k + 127;
	const int b = field - emax;
	return b < 0 ? 0 : b;
}

/* The E8M0 byte of rceil: 127 + the least k with max * 2^k >= amax,
 * exactly, within [0, 254]. */
static int e8m0_rceil(double amax, double max)
{
	for (int k = -127; k <= 127; k++)
		if (max * pow2(k) >= amax) /* exact: max has at most 3 significant bits */
			return k + 127;
	return 254;
}

int oracle_group_scale_of(const oracle_group_params *p, float amax, oracle_group_scale *out)
{
	memset(out, 0, sizeof *out);
	if (!params_ok(p))
		return -1;
	const double a = oracle_f32_exact(amax);
	if (!finite_double(a) || a < 0)
		return -1;
	const double max = oracle_format_max(p->format);
	int b;

	switch (p->rule) {
	case FP8KV_GROUP_F32: {
		const float d = oracle_f32_exact(p->divisor) != 0 ? p->divisor : oracle_f32_round(max);
		const float floor = oracle_f32_exact(p->scale_floor) != 0 ? p->scale_floor
									  : oracle_f32_round(pow2(-126));
		const float q = oracle_divide(amax, d);
		out->s = oracle_f32_exact(q) >= oracle_f32_exact(floor) ? q : floor;
		store_le32(out->stored, bits_of_float(out->s));
		out->stored_bytes = 4;
		return 0;
	}
	case FP8KV_GROUP_E8M0_FLOOR:
	case FP8KV_GROUP_E8M0_RCEIL:
		b = p->rule == FP8KV_GROUP_E8M0_FLOOR ? e8m0_floor(a, oracle_format_emax(p->format))
						      : e8m0_rceil(a, max);
		out->s = oracle_f32_round(pow2(b - 127)); /* exact; 2^-127 is subnormal */
		out->stored[0] = (uint8_t)b;
		out->stored_bytes = 1;
		return 0;
	case FP8KV_GROUP_NVFP4: {
		const double g = oracle_f32_exact(p->global);
		out->stored_bytes = 1;
		if (!(finite_double(g) && g > 0)) {
			out->zero = 1;
			return 0;
		}
		const float six_g = oracle_f32_round(6 * g); /* exact product */
		const float q = oracle_divide(amax, six_g);
		const uint8_t sf = oracle_encode(q, FP8KV_E4M3FN, FP8KV_SATURATE, NULL);
		if (sf == 0x00) {
			out->zero = 1;
			return 0;
		}
		out->stored[0] = sf;
		/* sf has 4 significant bits, g 24: the product is exact */
		out->s = oracle_f32_round(oracle_decode(sf, FP8KV_E4M3FN) * g);
		/* s of 0 (a subnormal g): the codes are +-0, sf is stored */
		out->zero = oracle_f32_exact(out->s) == 0;
		return 0;
	}
	default:
		return -1;
	}
}

int oracle_group_row(const oracle_group_params *p, int64_t group_size, const uint32_t *bits,
		     int64_t n, fp8kv_dtype dtype, uint8_t *codes, uint8_t *scales,
		     oracle_counts *counts, float *amax)
{
	const int e2m1 = p->format == FP8KV_E2M1;
	if (group_size < 1 || n < 0 || n % group_size || (e2m1 && n % 2) ||
	    (p->rule == FP8KV_GROUP_NVFP4 && group_size != 16) || !params_ok(p))
		return -1;
	if (dtype != FP8KV_F32 && dtype != FP8KV_F16 && dtype != FP8KV_BF16)
		return -1;
	oracle_counts c = {0, 0};
	if (e2m1)
		memset(codes, 0, (size_t)(n / 2));
	for (int64_t j = 0; j < n / group_size; j++) {
		const uint32_t *g = bits + j * group_size;
		oracle_group_scale sc;
		if (oracle_group_scale_of(p, oracle_group_amax(g, group_size, dtype), &sc))
			return -1;
		memcpy(scales + j * sc.stored_bytes, sc.stored, (size_t)sc.stored_bytes);
		for (int64_t i = 0; i < group_size; i++) {
			const int64_t d = j * group_size + i;
			const double x = oracle_f32_exact(oracle_widen(g[i], dtype));
			int o = 0;
			uint8_t code;
			if (x != x)
				c.nans++;
			if (sc.zero) /* NVFP4: +-0 by sign, 0x0 for NaN */
				code = x != x ? 0x0 : (bits_of_double(x) >> 63 ? 0x8 : 0x0);
			else
				code = oracle_group_element(g[i], dtype, sc.s, p->format, p->overflow,
							    p->rounding, &o);
			c.overflows += (uint64_t)o;
			if (e2m1)
				codes[d / 2] |= (uint8_t)(code << (4 * (d % 2)));
			else
				codes[d] = code;
		}
	}
	if (counts)
		*counts = c;
	if (amax)
		*amax = oracle_group_amax(bits, n, dtype);
	return 0;
}

int64_t oracle_group_scale_index(const oracle_scale_layout *l, int64_t block, int64_t offset,
				 int64_t h, int64_t j)
{
	const int64_t slot_term = l->interleave > 0
					  ? (offset / l->interleave) * l->stride_slot +
						    (offset % l->interleave) * l->stride_interleave
					  : offset * l->stride_slot;
	return block * l->stride_block + slot_term + h * l->stride_head + j * l->stride_group;
}

/* ---------------------------------------------------------------- MLA */

static int input_bytes(fp8kv_dtype dtype)
{
	switch (dtype) {
	case FP8KV_F32: return 4;
	case FP8KV_F16:
	case FP8KV_BF16: return 2;
	default: return 0;
	}
}

static int is_nan_input(uint32_t bits, fp8kv_dtype dtype)
{
	const double x = oracle_f32_exact(oracle_widen(bits, dtype));
	return x != x;
}

int64_t oracle_mla_plain_entry(const uint32_t *kv_c, int64_t rank, const uint32_t *k_pe,
			       int64_t pe, fp8kv_dtype dtype, fp8kv_dtype cache_dtype, int scaled,
			       float s, fp8kv_overflow overflow, uint8_t *entry,
			       oracle_counts *counts)
{
	const int in = input_bytes(dtype);
	const int copy = cache_dtype == dtype;
	if (!in || (!copy && !is_fp8(cache_dtype)) || rank < 0 || pe < 0)
		return -1;
	const int out = copy ? in : 1;
	oracle_counts c = {0, 0};
	for (int64_t i = 0; i < rank + pe; i++) {
		const uint32_t x = i < rank ? kv_c[i] : k_pe[i - rank];
		c.nans += (uint64_t)is_nan_input(x, dtype);
		if (copy) {
			for (int k = 0; k < in; k++)
				entry[i * in + k] = (uint8_t)(x >> (8 * k));
		} else {
			int o = 0;
			entry[i] = oracle_table /* tabulated by a tool, held to the search */
					   ? oracle_quantize_tabulated(x, dtype, scaled, s, cache_dtype,
								       overflow, &o)
					   : oracle_quantize(x, dtype, scaled, s, cache_dtype, overflow,
							     &o);
			c.overflows += (uint64_t)o;
		}
	}
	if (counts)
		*counts = c;
	return (rank + pe) * out;
}

int oracle_mla_ds_record(const uint32_t *kv_c, const uint32_t *k_pe, fp8kv_dtype dtype,
			 fp8kv_dtype format, float divisor, fp8kv_overflow overflow,
			 uint8_t record[ORACLE_DS_MLA_BYTES], oracle_counts *counts)
{
	if (input_bytes(dtype) != 2 || (format != FP8KV_E4M3FN && format != FP8KV_E4M3FNUZ))
		return -1;
	/* four FP8KV_GROUP_F32 tiles of 128, floor 2^-126 */
	const oracle_group_params p = {FP8KV_GROUP_F32, format, overflow,
				       FP8KV_ROUND_NEAREST_EVEN, divisor, 0.0f, 0.0f};
	oracle_counts c;
	if (oracle_group_row(&p, ORACLE_DS_MLA_TILE, kv_c, ORACLE_DS_MLA_RANK, dtype, record,
			     record + ORACLE_DS_MLA_RANK, &c, NULL))
		return -1;
	uint8_t *rope = record + ORACLE_DS_MLA_RANK + 4 * (ORACLE_DS_MLA_RANK / ORACLE_DS_MLA_TILE);
	for (int i = 0; i < ORACLE_DS_MLA_PE; i++) {
		rope[2 * i] = (uint8_t)k_pe[i];
		rope[2 * i + 1] = (uint8_t)(k_pe[i] >> 8);
		c.nans += (uint64_t)is_nan_input(k_pe[i], dtype);
	}
	if (counts)
		*counts = c;
	return 0;
}
