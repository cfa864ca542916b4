/* SPDX-License-Identifier: MIT */
/*
 * oracle_elem.c - the element half of oracle_group.h: e2m1 (fp8kv.h 5b)
 * and int8 (5c) codes, the formats' max and emax, one element of a group.
 *
 * Method, as oracle.c's and sharing no code with the library:
 *   - an e2m1 code is decoded from its bit fields; an fp32 y is encoded by
 *     searching all 16 codes, plus the two virtual codes +-8 (max + ulp(max),
 *     whose last mantissa bit is 0) that mean overflow, for the nearest
 *     value, the distances compared exactly (TwoSum pairs), ties to the code
 *     whose last bit is 0, the two zeros told apart by y's sign;
 *   - an int8 code by searching the integers -128..128 (+-128 virtual: past
 *     the written range) for the nearest (ties to the even integer) or for
 *     the largest magnitude not above |y| with y's sign (toward zero);
 *   - fp32 values are read from their bit fields, never through a hardware
 *     float -> double cast, so no FPU mode can touch them.
 */
#include "oracle_group.h"

#include <float.h>

#include "float_bits.h"
#include "oracle.h"

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "the oracle's exact arithmetic needs FLT_EVAL_METHOD == 0 (binary64 without excess precision)"
#endif

/* ------------------------------------------------------ exact helpers */

static double signed_special(int neg, int nan)
{
	uint64_t b = nan ? 0x7FF8000000000000ull : 0x7FF0000000000000ull;
	return double_of_bits(b | (uint64_t)(neg != 0) << 63);
}

double oracle_f32_exact(float f)
{
	const uint32_t b = bits_of_float(f);
	const int neg = (int)(b >> 31);
	const uint32_t e = (b >> 23) & 0xFF, m = b & 0x7FFFFF;
	if (e == 0xFF)
		return signed_special(neg, m != 0);
	const double mag = e ? (double)(m | 0x800000u) * pow2((int)e - 150)
			     : (double)m * pow2(-149);
	return neg ? -mag : mag;
}

/* The largest k with 2^k <= a, for a finite a > 0 that is a normal double. */
static int floor_log2_double(double a)
{
	return (int)((bits_of_double(a) >> 52) & 0x7FF) - 1023;
}

float oracle_f32_round(double v)
{
	if (v != v)
		return float_of_bits(0x7FC00000u | (uint32_t)(bits_of_double(v) >> 63) << 31);
	const uint32_t sign = (uint32_t)(bits_of_double(v) >> 63) << 31;
	const double a = sign ? -v : v;
	if (a == 0)
		return float_of_bits(sign);
	if (a > DBL_MAX)
		return float_of_bits(sign | 0x7F800000u);
	/* the quantum 2^q of fp32 at a: 24 significant bits, or 2^-149 */
	const int k = floor_log2_double(a);
	int q = (k < -126 ? -126 : k) - 23;
	if (q > 200) /* far past FLT_MAX */
		return float_of_bits(sign | 0x7F800000u);
	const double n = a * pow2(-q); /* exact: a power-of-two scaling, n < 2^24 */
	uint64_t whole = (uint64_t)n;
	const double frac = n - (double)whole; /* exact */
	if (frac > 0.5 || (frac == 0.5 && (whole & 1)))
		whole++;
	if (whole == 1u << 24) { /* carry into the next binade */
		whole >>= 1;
		q++;
	}
	if (whole >= 1u << 23) {
		const int biased = q + 23 + 127;
		if (biased >= 255)
			return float_of_bits(sign | 0x7F800000u);
		return float_of_bits(sign | (uint32_t)biased << 23 | ((uint32_t)whole - (1u << 23)));
	}
	return float_of_bits(sign | (uint32_t)whole); /* subnormal: q = -149 */
}

/* |y - v| exactly, as hi + lo with hi = RN(|y - v|) (Knuth's TwoSum). */
typedef struct gap {
	double hi, lo;
} gap;

static gap exact_gap(double y, double v)
{
	const double a = y, b = -v;
	const double s = a + b;
	const double bb = s - a;
	const double err = (a - (s - bb)) + (b - bb);
	return s < 0 ? (gap){-s, -err} : (gap){s, err};
}

static int gap_cmp(gap x, gap y)
{
	if (x.hi != y.hi)
		return x.hi < y.hi ? -1 : 1;
	if (x.lo != y.lo)
		return x.lo < y.lo ? -1 : 1;
	return 0;
}

static int sign_of(double d)
{
	return (int)(bits_of_double(d) >> 63);
}

/* A candidate of a nearest search: a value, and whether its code (or
 * integer) is even, for ties. */
typedef struct candidate {
	double value;
	int even;
} candidate;

/* The index of the candidate nearest to the finite y: ties between two
 * values to the even one, between +0 and -0 to y's sign. */
static int nearest(double y, const candidate *c, int n)
{
	int best = 0;
	gap bg = exact_gap(y, c[0].value);
	for (int i = 1; i < n; i++) {
		const gap g = exact_gap(y, c[i].value);
		int cmp = gap_cmp(g, bg);
		if (cmp == 0) {
			if (c[i].value == c[best].value) /* +0 and -0 */
				cmp = sign_of(c[i].value) == sign_of(y) ? -1 : 1;
			else
				cmp = c[i].even ? -1 : 1;
		}
		if (cmp < 0) {
			best = i;
			bg = g;
		}
	}
	return best;
}

/* ------------------------------------------------------------- e2m1 */

double oracle_e2m1_decode(uint8_t code)
{
	const int neg = (code >> 3) & 1, e = (code >> 1) & 3, m = code & 1;
	/* bias 1: subnormal m * 2^-1, normal (1 + m / 2) * 2^(e - 1) */
	const double mag = e == 0 ? (double)m * pow2(-1) : (double)(2 + m) * pow2(e - 2);
	return neg ? -mag : mag;
}

/* Candidates: the 16 codes (index = code), then +8 and -8, the virtual
 * code past 6 (code 8 of the magnitude field: last bit 0). */
#define E2M1_VIRTUAL 16

uint8_t oracle_e2m1_encode(float y, int *overflowed)
{
	candidate c[18];
	const double yd = oracle_f32_exact(y);
	if (overflowed)
		*overflowed = 0;
	if (yd != yd) /* 5b step 4 */
		return 0x0;
	const uint8_t sign = sign_of(yd) ? 0x8 : 0x0;
	if (yd > DBL_MAX || yd < -DBL_MAX) /* +-Inf: +-6, not counted here */
		return 0x7 | sign;
	for (int code = 0; code < 16; code++)
		c[code] = (candidate){oracle_e2m1_decode((uint8_t)code), (code & 1) == 0};
	const double top = oracle_e2m1_decode(0x7), below = oracle_e2m1_decode(0x6);
	c[E2M1_VIRTUAL] = (candidate){top + (top - below), 1};
	c[E2M1_VIRTUAL + 1] = (candidate){-(top + (top - below)), 1};
	const int i = nearest(yd, c, 18);
	if (i >= E2M1_VIRTUAL) {
		if (overflowed)
			*overflowed = 1;
		return 0x7 | sign;
	}
	return (uint8_t)i;
}

/* ------------------------------------------------------------- int8 */

uint8_t oracle_int8_encode(float y, fp8kv_rounding rounding, int *overflowed)
{
	candidate c[257];
	const double yd = oracle_f32_exact(y);
	int k;
	if (overflowed)
		*overflowed = 0;
	if (yd != yd)
		return 0;
	if (yd > DBL_MAX)
		return 127;
	if (yd < -DBL_MAX)
		return (uint8_t)(int8_t)-127;
	for (int i = 0; i < 257; i++) /* -128 .. 128 */
		c[i] = (candidate){(double)(i - 128), ((i - 128) & 1) == 0};
	if (rounding == FP8KV_ROUND_NEAREST_EVEN) {
		k = nearest(yd, c, 257) - 128;
	} else {
		/* toward zero: the largest |k| <= |y| of y's sign (or 0) */
		k = 0;
		for (int i = 0; i < 257; i++) {
			const double v = c[i].value;
			const int same_side = (v >= 0 && yd >= 0) || (v <= 0 && yd <= 0);
			const double av = v < 0 ? -v : v, ay = yd < 0 ? -yd : yd;
			const double ak = k < 0 ? -(double)k : (double)k;
			if (same_side && av <= ay && av > ak)
				k = i - 128;
		}
	}
	if (k > 127 || k < -127) {
		if (overflowed)
			*overflowed = 1;
		k = k > 0 ? 127 : -127;
	}
	return (uint8_t)(int8_t)k;
}

/* ------------------------------------------------------ formats' range */

double oracle_format_max(fp8kv_dtype format)
{
	double max = 0;
	switch (format) {
	case FP8KV_E4M3FN:
	case FP8KV_E4M3FNUZ:
	case FP8KV_E5M2:
	case FP8KV_E5M2FNUZ:
		for (int code = 0; code < 256; code++) {
			const double v = oracle_decode((uint8_t)code, format);
			if (v == v && v <= DBL_MAX && v > max)
				max = v;
		}
		return max;
	case FP8KV_E2M1:
		for (int code = 0; code < 16; code++)
			if (oracle_e2m1_decode((uint8_t)code) > max)
				max = oracle_e2m1_decode((uint8_t)code);
		return max;
	case FP8KV_INT8:
		for (int code = 0; code < 256; code++) /* -128 is never written */
			if ((int8_t)code != -128 && (double)(int8_t)code > max)
				max = (double)(int8_t)code;
		return max;
	default:
		return 0;
	}
}

int oracle_format_emax(fp8kv_dtype format)
{
	if (format == FP8KV_INT8)
		return -1000;
	const double max = oracle_format_max(format);
	int emax = -1000;
	for (int k = -200; k <= 200; k++)
		if (max > 0 && pow2(k) <= max)
			emax = k;
	return emax;
}

/* ------------------------------------------------------------ elements */

uint8_t oracle_group_element(uint32_t bits, fp8kv_dtype dtype, float s, fp8kv_dtype format,
			     fp8kv_overflow overflow, fp8kv_rounding rounding,
			     int *overflowed)
{
	int o = 0;
	uint8_t code;
	if (format != FP8KV_E2M1 && format != FP8KV_INT8) /* section 5 */
		/* the search's answers, tabulated and held to it by
		 * oracle_tabulate() when a tool built the table (oracle.h) */
		return oracle_table ? oracle_quantize_tabulated(bits, dtype, 1, s, format, overflow,
								overflowed)
				    : oracle_quantize(bits, dtype, 1, s, format, overflow, overflowed);
	const float x = oracle_widen(bits, dtype);
	const float y = oracle_divide(x, s);
	code = format == FP8KV_E2M1 ? oracle_e2m1_encode(y, &o)
				    : oracle_int8_encode(y, rounding, &o);
	/* a finite x whose y = x / s is +-Inf is clipped and counts, as in
	 * section 5; +-Inf and NaN inputs never count */
	const double xd = oracle_f32_exact(x), yd = oracle_f32_exact(y);
	if (xd == xd && xd <= DBL_MAX && xd >= -DBL_MAX && (yd > DBL_MAX || yd < -DBL_MAX))
		o = 1;
	if (overflowed)
		*overflowed = o;
	return code;
}
