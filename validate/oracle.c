/* SPDX-License-Identifier: MIT */
/*
 * oracle.c - an independent model of the fp8kv conversion contract
 * (include/fp8kv.h, sections 5 and 7), written from the header alone.
 *
 * Method, chosen to share nothing with a bit-twiddling converter:
 *   - every FP8 code is decoded from its bit fields into a double by
 *     building powers of two from their IEEE bit pattern (ldexp-style);
 *   - an fp32 value y is encoded by searching ALL 256 codes of the format
 *     (plus the two virtual codes +-(max + ulp(max)) just past the largest
 *     finite value) for the one nearest to y.  Distances |y - v| are
 *     compared exactly: each is held as an unevaluated pair hi + lo from
 *     Knuth's TwoSum (exact in binary64 round-to-nearest, no FMA), and
 *     pairs compare lexicographically because hi is the correctly rounded
 *     distance;
 *   - ties between two values go to the code whose least significant bit
 *     (the mantissa's last bit) is 0; the two zeros of the OCP formats are
 *     told apart by the sign of y;
 *   - landing on a virtual code means overflow; NaN, Inf and overflow codes
 *     come from the table of section 5 written out literally;
 *   - f16/bf16 inputs are widened from their bit fields, x / s is computed
 *     in binary64 and rounded once more (innocuous: 53 >= 2 * 24 + 2), and
 *     every rounding to f32/f16/bf16 is done by exact integer arithmetic on
 *     the significand, ties to even.
 * Nothing here converts with the hardware's float <-> double casts, so
 * flush-to-zero or a library bug cannot leak into the expected values.
 * Every product formed here is exact, so FMA contraction could not change
 * a result either (the build uses -ffp-contract=off all the same).
 */
#include "oracle.h"

#include <float.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "float_bits.h"

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "the oracle's exact arithmetic needs FLT_EVAL_METHOD == 0 (binary64 without excess precision)"
#endif

/* ------------------------------------------------------- binary64 helpers */

static double nan_with_sign(int neg)
{
	return double_of_bits(((uint64_t)(neg != 0) << 63) | 0x7FF8000000000000ull);
}

static double inf_with_sign(int neg)
{
	return double_of_bits(((uint64_t)(neg != 0) << 63) | 0x7FF0000000000000ull);
}

static int is_nan64(double d)
{
	return (bits_of_double(d) & 0x7FFFFFFFFFFFFFFFull) > 0x7FF0000000000000ull;
}

static int is_inf64(double d)
{
	return (bits_of_double(d) & 0x7FFFFFFFFFFFFFFFull) == 0x7FF0000000000000ull;
}

static int sign64(double d)
{
	return (int)(bits_of_double(d) >> 63);
}

/* floor(log2(a)) for a positive normal double. */
static int exponent_of(double a)
{
	return (int)((bits_of_double(a) >> 52) & 0x7FF) - 1023;
}

int oracle_is_nan(double x)
{
	return x != x;
}

/* --------------------------------------------- generic binary formats */

/*
 * The value of a binary floating-point number with ebits exponent bits and
 * mbits stored mantissa bits, IEEE layout (Inf/NaN at the top exponent),
 * given by its bits.  Exact for f32, f16 and bf16.
 */
static double ieee_value(uint32_t bits, int ebits, int mbits)
{
	int bias = (1 << (ebits - 1)) - 1;
	int neg = (int)((bits >> (ebits + mbits)) & 1);
	uint32_t e = (bits >> mbits) & ((1u << ebits) - 1);
	uint32_t m = bits & ((1u << mbits) - 1);
	double mag;

	if (e == (1u << ebits) - 1)
		return m ? nan_with_sign(neg) : inf_with_sign(neg);
	if (e == 0)
		mag = (double)m * pow2(1 - bias - mbits);
	else
		mag = (double)((1u << mbits) + m) * pow2((int)e - bias - mbits);
	return neg ? -mag : mag;
}

/*
 * v rounded to the binary format with p significand bits (implicit bit
 * included), minimum normal exponent emin and maximum exponent emax: to
 * nearest, ties to even, gradual underflow, overflow to Inf.  The exact
 * value to round must be the double v.
 */
static double round_binary(double v, int p, int emin, int emax)
{
	if (is_nan64(v) || is_inf64(v) || v == 0)
		return v;
	int neg = sign64(v);
	double a = neg ? -v : v;
	int e = exponent_of(a);
	int q = (e < emin ? emin : e) - (p - 1); /* the quantum is 2^q */
	double n = a * pow2(-q);                 /* exact: a power-of-two scaling */
	uint64_t whole = (uint64_t)n;            /* n < 2^p */
	double frac = n - (double)whole;         /* exact */

	if (frac > 0.5 || (frac == 0.5 && (whole & 1)))
		whole++;
	double r = (double)whole * pow2(q);
	double max = (double)((1ull << p) - 1) * pow2(emax - p + 1);
	if (r > max)
		r = inf_with_sign(0);
	return neg ? -r : r;
}

/* The bits of a value already representable in the format (see ieee_value). */
static uint32_t ieee_bits(double v, int ebits, int mbits)
{
	int bias = (1 << (ebits - 1)) - 1;
	int emin = 1 - bias;
	uint32_t sign = (uint32_t)sign64(v) << (ebits + mbits);
	uint32_t expmask = ((1u << ebits) - 1) << mbits;

	if (is_nan64(v))
		return sign | expmask | (1u << (mbits - 1)); /* quiet NaN */
	if (is_inf64(v))
		return sign | expmask;
	if (v == 0)
		return sign;
	double a = sign ? -v : v;
	int e = exponent_of(a);
	if (e < emin)
		return sign | (uint32_t)(a * pow2(mbits - emin));
	uint32_t m = (uint32_t)(a * pow2(mbits - e)) - (1u << mbits);
	return sign | ((uint32_t)(e + bias) << mbits) | m;
}

/* ------------------------------------------------------------- FP8 codes */

typedef struct fp8_layout {
	int ebits, mbits, bias;
	int fnuz; /* 0x80 is the only NaN; no Inf, no -0 */
} fp8_layout;

/* The formats the oracle knows, as fp8kv.h describes them; everything
 * below loops over this table. */
static const struct {
	fp8kv_dtype dtype;
	fp8_layout layout;
} formats[] = {
	{FP8KV_E4M3FN, {4, 3, 7, 0}},
	{FP8KV_E4M3FNUZ, {4, 3, 8, 1}},
	{FP8KV_E5M2, {5, 2, 15, 0}},
	{FP8KV_E5M2FNUZ, {5, 2, 16, 1}},
};
#define NUM_FORMATS ((int)(sizeof formats / sizeof formats[0]))

/* The format's row of formats[], or -1. */
static int format_index(fp8kv_dtype format)
{
	for (int f = 0; f < NUM_FORMATS; f++)
		if (formats[f].dtype == format)
			return f;
	return -1;
}

static int layout_of(fp8kv_dtype format, fp8_layout *l)
{
	const int f = format_index(format);
	if (f < 0)
		return 0;
	*l = formats[f].layout;
	return 1;
}

double oracle_decode(uint8_t code, fp8kv_dtype format)
{
	fp8_layout l;
	if (!layout_of(format, &l))
		return nan_with_sign(0);
	int neg = code >> 7;
	int e = (code >> l.mbits) & ((1 << l.ebits) - 1);
	int m = code & ((1 << l.mbits) - 1);
	int etop = (1 << l.ebits) - 1, mtop = (1 << l.mbits) - 1;

	if (l.fnuz) {
		if (code == 0x80) /* the one NaN, unsigned: fp8kv.h step 5 */
			return nan_with_sign(0);
	} else if (l.ebits == 4) {
		if (e == etop && m == mtop) /* e4m3fn: S.1111.111 */
			return nan_with_sign(neg);
	} else if (e == etop) { /* e5m2: IEEE-like top exponent */
		return m ? nan_with_sign(neg) : inf_with_sign(neg);
	}
	double mag = e == 0 ? (double)m * pow2(1 - l.bias - l.mbits)
			    : (double)((1 << l.mbits) + m) * pow2(e - l.bias - l.mbits);
	return neg ? -mag : mag;
}

/* The candidates of the nearest search: every finite code, then the two
 * virtual codes +-(max + ulp(max)), which mean overflow. */
#define NCAND 258
#define VIRTUAL 256

typedef struct candidates {
	int n;
	double value[NCAND];
	int code[NCAND]; /* 0..255, or VIRTUAL */
	int lsb[NCAND];  /* last mantissa bit, for ties */
} candidates;

static candidates cand[NUM_FORMATS];
static pthread_once_t cand_once = PTHREAD_ONCE_INIT;

static void build_candidates(void)
{
	for (int f = 0; f < NUM_FORMATS; f++) {
		candidates *c = &cand[f];
		const fp8_layout l = formats[f].layout;
		int max_code = 0;
		double max = 0;
		c->n = 0;
		for (int code = 0; code < 256; code++) {
			double v = oracle_decode((uint8_t)code, formats[f].dtype);
			if (is_nan64(v) || is_inf64(v))
				continue;
			c->value[c->n] = v;
			c->code[c->n] = code;
			c->lsb[c->n] = code & 1;
			c->n++;
			if (v > max) {
				max = v;
				max_code = code;
			}
		}
		/* ulp(max) from max's exponent field; the virtual code would be
		 * max_code + 1, so its last mantissa bit is the opposite one. */
		int e = (max_code >> l.mbits) & ((1 << l.ebits) - 1);
		double ulp = pow2(e - l.bias - l.mbits);
		for (int s = 0; s < 2; s++) {
			c->value[c->n] = s ? -(max + ulp) : max + ulp;
			c->code[c->n] = VIRTUAL;
			c->lsb[c->n] = (max_code + 1) & 1;
			c->n++;
		}
	}
}

/* |y - v| exactly, as hi + lo with hi = round(|y - v|) (TwoSum). */
typedef struct distance {
	double hi, lo;
} distance;

static distance exact_distance(double y, double v)
{
	double a = y, b = -v;
	double s = a + b;
	double bb = s - a;
	double err = (a - (s - bb)) + (b - bb);
	if (s < 0) {
		s = -s;
		err = -err;
	}
	return (distance){s, err};
}

static int distance_cmp(distance x, distance y)
{
	if (x.hi != y.hi)
		return x.hi < y.hi ? -1 : 1;
	if (x.lo != y.lo)
		return x.lo < y.lo ? -1 : 1;
	return 0;
}

/* The codes of section 5's table for NaN and for overflow/Inf. */
static uint8_t nan_code(fp8kv_dtype format, int neg)
{
	switch (format) {
	case FP8KV_E4M3FN:
	case FP8KV_E5M2: return (uint8_t)(0x7F | (neg ? 0x80 : 0));
	default: return 0x80;
	}
}

static uint8_t overflow_code(fp8kv_dtype format, fp8kv_overflow overflow, int neg)
{
	uint8_t sign = neg ? 0x80 : 0;
	if (overflow == FP8KV_SATURATE) {
		switch (format) {
		case FP8KV_E4M3FN: return 0x7E | sign;
		case FP8KV_E5M2: return 0x7B | sign;
		default: return 0x7F | sign; /* the fnuz formats */
		}
	}
	switch (format) {
	case FP8KV_E4M3FN: return 0x7F | sign;
	case FP8KV_E5M2: return 0x7C | sign;
	default: return 0x80;
	}
}

uint8_t oracle_encode(float y, fp8kv_dtype format, fp8kv_overflow overflow,
		      int *overflowed)
{
	fp8_layout l;
	if (overflowed)
		*overflowed = 0;
	if (!layout_of(format, &l))
		return 0;
	pthread_once(&cand_once, build_candidates);

	double yd = ieee_value(bits_of_float(y), 8, 23); /* exact, no FTZ */
	int neg = sign64(yd);
	if (is_nan64(yd))
		return nan_code(format, neg);
	if (is_inf64(yd))
		return overflow_code(format, overflow, neg);

	const candidates *c = &cand[format_index(format)];
	int best = 0;
	distance bd = exact_distance(yd, c->value[0]);
	for (int i = 1; i < c->n; i++) {
		double v = c->value[i];
		double hi = yd - v;
		if (hi < 0)
			hi = -hi;
		if (hi > bd.hi) /* rounded distances ordered: exact ones too */
			continue;
		distance d = exact_distance(yd, v);
		int cmp = distance_cmp(d, bd);
		if (cmp == 0) {
			if (v == c->value[best]) /* +0 and -0: keep y's sign */
				cmp = sign64(v) == neg ? -1 : 1;
			else /* a true tie: the even code */
				cmp = c->lsb[i] == 0 ? -1 : 1;
		}
		if (cmp < 0) {
			best = i;
			bd = d;
		}
	}
	if (c->code[best] == VIRTUAL) {
		if (overflowed)
			*overflowed = 1;
		return overflow_code(format, overflow, neg);
	}
	return (uint8_t)c->code[best];
}

/* ------------------------------------------------- widening and division */

float oracle_widen(uint32_t bits, fp8kv_dtype dtype)
{
	double v;
	switch (dtype) {
	case FP8KV_F32: return float_of_bits(bits);
	case FP8KV_F16: v = ieee_value(bits & 0xFFFF, 5, 10); break;
	case FP8KV_BF16: v = ieee_value(bits & 0xFFFF, 8, 7); break;
	default: return float_of_bits(0x7FC00000u);
	}
	return float_of_bits(ieee_bits(v, 8, 23));
}

float oracle_divide(float x, float s)
{
	double q = ieee_value(bits_of_float(x), 8, 23) / ieee_value(bits_of_float(s), 8, 23);
	if (is_nan64(q)) /* fp8kv.h: a NaN x keeps its sign, else sign(x) ^ sign(s) */
		return float_of_bits(0x7FC00000u |
				       (is_nan64(ieee_value(bits_of_float(x), 8, 23))
						? bits_of_float(x) & 0x80000000u
						: (bits_of_float(x) ^ bits_of_float(s)) & 0x80000000u));
	return float_of_bits(ieee_bits(round_binary(q, 24, -126, 127), 8, 23));
}

static int finite32(float x)
{
	return (bits_of_float(x) & 0x7F800000u) != 0x7F800000u;
}

/* widen, divide, and the overflow rule for finite x with infinite y; the
 * encode step is the caller's (the search, or its table). */
static uint8_t quantize_with(uint32_t bits, fp8kv_dtype dtype, int scaled, float s,
			     fp8kv_dtype format, fp8kv_overflow overflow, int tabulated,
			     int *overflowed)
{
	float x = oracle_widen(bits, dtype);
	float y = scaled ? oracle_divide(x, s) : x;
	int o = 0;
	uint8_t code;
	if (tabulated) {
		uint16_t w = oracle_encode_tabulated(bits_of_float(y), oracle_run(format, overflow));
		code = (uint8_t)w;
		o = w >> 8;
	} else {
		code = oracle_encode(y, format, overflow, &o);
	}
	/* A finite x whose y = x / s overflowed fp32 itself is clipped just
	 * the same: it counts (only +-Inf inputs do not). */
	if (finite32(x) && !finite32(y) && !oracle_is_nan(y))
		o = 1;
	if (overflowed)
		*overflowed = o;
	return code;
}

uint8_t oracle_quantize(uint32_t bits, fp8kv_dtype dtype, int scaled, float s,
			fp8kv_dtype format, fp8kv_overflow overflow, int *overflowed)
{
	return quantize_with(bits, dtype, scaled, s, format, overflow, 0, overflowed);
}

uint8_t oracle_quantize_tabulated(uint32_t bits, fp8kv_dtype dtype, int scaled, float s,
				  fp8kv_dtype format, fp8kv_overflow overflow, int *overflowed)
{
	return quantize_with(bits, dtype, scaled, s, format, overflow, 1, overflowed);
}

/* ------------------------------------------------------------ dequantize */

uint32_t oracle_dequantize(uint8_t code, fp8kv_dtype format, int scaled, float s,
			   fp8kv_dtype dtype)
{
	double v = oracle_decode(code, format);
	double sd = scaled ? ieee_value(bits_of_float(s), 8, 23) : 1.0;
	/* Exact: <= 4 + 24 significant bits, exponents far inside binary64. */
	double product = v * sd;
	double f32 = round_binary(product, 24, -126, 127);

	switch (dtype) {
	case FP8KV_F32: return ieee_bits(f32, 8, 23);
	case FP8KV_F16: return ieee_bits(round_binary(f32, 11, -14, 15), 5, 10);
	case FP8KV_BF16: return ieee_bits(round_binary(f32, 8, -126, 127), 8, 7);
	default: return 0x7FC00000u;
	}
}

/* ------------------------------------------------------ TOKEN_HEAD scale */

float oracle_row_scale(const uint32_t *bits, int64_t n, fp8kv_dtype dtype,
		       fp8kv_dtype format, float *amax_out)
{
	double amax = 0;
	for (int64_t i = 0; i < n; i++) {
		float x = oracle_widen(bits[i], dtype);
		if (!finite32(x))
			continue;
		double a = ieee_value(bits_of_float(x), 8, 23);
		if (a < 0)
			a = -a;
		if (a > amax)
			amax = a;
	}
	float famax = float_of_bits(ieee_bits(amax, 8, 23));
	if (amax_out)
		*amax_out = famax;
	if (amax == 0)
		return 1.0f;

	/* fmax: the largest finite code value, found by decoding all codes */
	double fmax = 0;
	for (int code = 0; code < 256; code++) {
		double v = oracle_decode((uint8_t)code, format);
		if (!is_nan64(v) && !is_inf64(v) && v > fmax)
			fmax = v;
	}
	float q = oracle_divide(famax, float_of_bits(ieee_bits(fmax, 8, 23)));
	double qd = ieee_value(bits_of_float(q), 8, 23);
	return qd < pow2(-126) ? float_of_bits(ieee_bits(pow2(-126), 8, 23)) : q;
}

/* ------------------------------------------------------------ the table */

uint16_t (*oracle_table)[65536][2];

static uint16_t searched(uint32_t y, int run)
{
	int o = 0;
	uint8_t c = oracle_encode(float_of_bits(y), formats[run / 2].dtype,
				  (fp8kv_overflow)(run % 2), &o);
	return (uint16_t)(c | o << 8);
}

/* The fact the table rests on: every rounding boundary is a bf16 value. */
static int boundaries_are_bf16(char *err, size_t errlen)
{
	for (int f = 0; f < NUM_FORMATS; f++) {
		double v[130];
		int n = 0;
		for (int c = 0; c < 128; c++) {
			double x = oracle_decode((uint8_t)c, formats[f].dtype);
			if (!is_nan64(x) && !is_inf64(x))
				v[n++] = x; /* codes 0..0x7F ascend with value */
		}
		for (int i = 1; i < n; i++)
			if (!(v[i] > v[i - 1])) {
				snprintf(err, errlen, "format %d: codes not ascending at %d", f, i);
				return 0;
			}
		v[n] = v[n - 1] + (v[n - 1] - v[n - 2]); /* max + ulp(max) */
		n++;
		for (int i = 0; i + 1 < n; i++) {
			double mid = (v[i] + v[i + 1]) / 2; /* exact */
			uint64_t b = bits_of_double(mid);
			/* a bf16 value: at most 8 significant bits, in fp32's range */
			if (mid != 0 && (b & ((1ull << 45) - 1)) != 0) {
				snprintf(err, errlen, "format %d: boundary %a is not a bf16 value",
					 f, mid);
				return 0;
			}
		}
	}
	return 1;
}

int oracle_tabulate(uint64_t verify, char *err, size_t errlen)
{
	enum { RUNS = 2 * NUM_FORMATS }; /* oracle_run(): format and policy */
	for (int f = 0; f < NUM_FORMATS; f++)
		if (oracle_run(formats[f].dtype, FP8KV_NONSATURATING) != 2 * f + 1) {
			snprintf(err, errlen, "oracle_run() does not number format %d", f);
			return -1;
		}
	if (!boundaries_are_bf16(err, errlen))
		return -1;
	if (!oracle_table && !(oracle_table = malloc(sizeof *oracle_table * RUNS))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	long split = 0, wrong = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1024) reduction(+ : split)
#endif
	for (int64_t i = 0; i < RUNS * 65536; i++) {
		const int run = (int)(i >> 16);
		const uint32_t p = (uint32_t)(i & 0xFFFF) << 16;
		oracle_table[run][p >> 16][0] = searched(p, run);
		oracle_table[run][p >> 16][1] = searched(p | 1, run);
		if (searched(p | 0xFFFF, run) != oracle_table[run][p >> 16][1])
			split++;
	}
	if (split) {
		snprintf(err, errlen, "%ld prefixes do not encode alike", split);
		return -1;
	}
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : wrong)
#endif
	for (int run = 0; run < RUNS; run++) {
		uint64_t r = 0x243F6A8885A308D3ull ^ (uint64_t)run;
		for (uint64_t k = 0; k < verify; k++) {
			r ^= r << 13; /* xorshift64 */
			r ^= r >> 7;
			r ^= r << 17;
			uint32_t b = (uint32_t)(r >> 16);
			if (k & 1) /* half of them where the FP8 values are */
				b = (b & 0x807FFFFFu) | (uint32_t)(103 + (r >> 56) % 45) << 23;
			if (oracle_encode_tabulated(b, run) != searched(b, run))
				wrong++;
		}
	}
	if (wrong) {
		snprintf(err, errlen, "%ld random values differ from the 256-code search", wrong);
		return -1;
	}
	return 0;
}
