/* SPDX-License-Identifier: MIT */
/*
 * test_convert.c - the conversion contract of fp8kv.h section 5, element by
 * element: the scalar calls, fp8kv_quantize and fp8kv_dequantize on the CPU
 * backend, and the amax / scale helpers.
 *
 * Every expected value comes from the independent oracle (validate/oracle.c) or
 * from a literal written from the header's text; none from the library.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp8kv.h"
#include "oracle.h"

#define POISON 0xA5
#define GUARD 64                           /* bytes past count that must stay POISON */
#define COUNT_START 0x100000005ull         /* overflow counters start here: ADDED */
#define NFORMATS 4
#define NRUNS (NFORMATS * 2)               /* formats x overflow policies */

static const fp8kv_dtype formats[NFORMATS] = {FP8KV_E4M3FN, FP8KV_E4M3FNUZ,
					      FP8KV_E5M2, FP8KV_E5M2FNUZ};
static const char *const format_names[NFORMATS] = {"e4m3fn", "e4m3fnuz", "e5m2",
						   "e5m2fnuz"};
static const char *const policy_names[2] = {"saturate", "nonsaturating"};

static fp8kv_backend *be;

static void setup(void)
{
	ck_assert_int_eq(fp8kv_backend_open("cpu", &be), FP8KV_OK);
}

static void teardown(void)
{
	fp8kv_backend_close(be);
	be = NULL;
}

/* ------------------------------------------------------------- helpers */

static float f_of(uint32_t b)
{
	float f;
	memcpy(&f, &b, sizeof f);
	return f;
}

static uint32_t bits_of(float f)
{
	uint32_t b;
	memcpy(&b, &f, sizeof b);
	return b;
}

static uint64_t rng_state;

static uint64_t rng(void) /* splitmix64 */
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static int format_slot(fp8kv_dtype f)
{
	for (int i = 0; i < NFORMATS; i++)
		if (formats[i] == f)
			return i;
	return 0;
}

/* A growable list of fp32 bit patterns. */
typedef struct bitlist {
	uint32_t *v;
	size_t n, cap;
} bitlist;

static void push(bitlist *l, uint32_t b)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 1024;
		l->v = realloc(l->v, l->cap * sizeof *l->v);
		ck_assert_ptr_nonnull(l->v);
	}
	l->v[l->n++] = b;
}

/* b and its neighbours b-k..b+k (as bit patterns within one sign), both signs */
static void push_around(bitlist *l, uint32_t b, int k)
{
	b &= 0x7FFFFFFFu;
	for (int d = -k; d <= k; d++) {
		int64_t x = (int64_t)b + d;
		if (x < 0 || x > 0x7FFFFFFF)
			continue;
		push(l, (uint32_t)x);
		push(l, (uint32_t)x | 0x80000000u);
	}
}

/*
 * Runs fp8kv_quantize on the backend: n elements of dtype (host_src) into a
 * poisoned destination of n + GUARD bytes, which comes back in host_dst;
 * *added receives what the call added to an overflow counter.
 */
static void quantize_on_backend(const void *host_src, fp8kv_dtype dtype, size_t n,
				fp8kv_dtype format, fp8kv_overflow ovf, int scaled,
				float s, uint8_t *host_dst, uint64_t *added)
{
	size_t esize = fp8kv_dtype_size(dtype);
	void *src, *dst, *sbuf = NULL;
	uint64_t *counter, start = COUNT_START, end = 0;

	ck_assert_int_eq(fp8kv_buffer_alloc(be, n * esize + 4, &src), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_alloc(be, n + GUARD, &dst), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_alloc(be, sizeof start, (void **)&counter), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_upload(be, src, host_src, n * esize), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_fill(be, dst, POISON, n + GUARD), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_upload(be, counter, &start, sizeof start), FP8KV_OK);
	if (scaled) {
		ck_assert_int_eq(fp8kv_buffer_alloc(be, sizeof s, &sbuf), FP8KV_OK);
		ck_assert_int_eq(fp8kv_buffer_upload(be, sbuf, &s, sizeof s), FP8KV_OK);
	}
	fp8kv_status st = fp8kv_quantize(be, dst, format, src, dtype, n,
					 scaled ? FP8KV_SCALE_TENSOR : FP8KV_SCALE_ONE,
					 sbuf, ovf, counter, NULL);
	ck_assert_msg(st == FP8KV_OK, "fp8kv_quantize: %d %s", (int)st, fp8kv_last_error());
	ck_assert_int_eq(fp8kv_backend_synchronize(be, NULL), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_download(be, host_dst, dst, n + GUARD), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_download(be, &end, counter, sizeof end), FP8KV_OK);
	*added = end - start;
	fp8kv_buffer_free(be, src);
	fp8kv_buffer_free(be, dst);
	fp8kv_buffer_free(be, counter);
	if (sbuf)
		fp8kv_buffer_free(be, sbuf);
}

static void assert_guard_intact(const uint8_t *dst, size_t n, const char *what)
{
	for (size_t i = n; i < n + GUARD; i++)
		ck_assert_msg(dst[i] == POISON, "%s: byte %zu past count %zu was written (0x%02x)",
			      what, i - n, n, dst[i]);
}

/*
 * Holds fp8kv_from_float and fp8kv_quantize(f32, SCALE_ONE) to the oracle
 * for every pattern of a list, in one format and policy; the overflow
 * counter to the oracle's count.
 */
static void check_f32_list(const bitlist *l, fp8kv_dtype format, fp8kv_overflow ovf,
			   const char *what)
{
	float *src = malloc(l->n * sizeof *src + 1);
	uint8_t *want = malloc(l->n + 1), *got = malloc(l->n + GUARD);
	ck_assert(src && want && got);
	uint64_t overflows = 0, added = 0;
	size_t bad_scalar = 0, first_scalar = 0;
	for (size_t i = 0; i < l->n; i++) {
		int o;
		src[i] = f_of(l->v[i]);
		want[i] = oracle_encode(src[i], format, ovf, &o);
		overflows += (uint64_t)o;
		if (fp8kv_from_float(src[i], format, ovf) != want[i] && bad_scalar++ == 0)
			first_scalar = i;
	}
	ck_assert_msg(bad_scalar == 0,
		      "%s, %s, %s: fp8kv_from_float differs on %zu of %zu inputs, first "
		      "0x%08x (%a): got 0x%02x, oracle 0x%02x",
		      what, format_names[format_slot(format)], policy_names[ovf], bad_scalar,
		      l->n, (unsigned)l->v[first_scalar], (double)src[first_scalar],
		      fp8kv_from_float(src[first_scalar], format, ovf), want[first_scalar]);

	quantize_on_backend(src, FP8KV_F32, l->n, format, ovf, 0, 1.0f, got, &added);
	size_t bad = 0, first = 0;
	for (size_t i = 0; i < l->n; i++)
		if (got[i] != want[i] && bad++ == 0)
			first = i;
	ck_assert_msg(bad == 0,
		      "%s, %s, %s: fp8kv_quantize(f32) differs on %zu of %zu inputs, first "
		      "0x%08x (%a): got 0x%02x, oracle 0x%02x",
		      what, format_names[format_slot(format)], policy_names[ovf], bad, l->n,
		      (unsigned)l->v[first], (double)src[first], got[first], want[first]);
	assert_guard_intact(got, l->n, what);
	ck_assert_msg(added == overflows, "%s, %s, %s: overflow_count added %llu, oracle %llu",
		      what, format_names[format_slot(format)], policy_names[ovf],
		      (unsigned long long)added, (unsigned long long)overflows);
	free(src);
	free(want);
	free(got);
}

static void check_f32_list_all(const bitlist *l, const char *what)
{
	for (int r = 0; r < NRUNS; r++)
		check_f32_list(l, formats[r / 2], (fp8kv_overflow)(r % 2), what);
}

/* ------------------------------------------------ the spec's own anchors */

typedef struct anchor {
	fp8kv_dtype format;
	uint32_t y;         /* fp32 bits */
	uint8_t sat, nonsat; /* expected codes */
	int overflow;        /* a finite overflow */
} anchor;

/* Written from the header's text and the formats' definitions. */
static const anchor anchors[] = {
	/* e4m3fn: max 448; 464 is the tie that goes to 448 (even) */
	{FP8KV_E4M3FN, 0x43E00000, 0x7E, 0x7E, 0}, /* 448 */
	{FP8KV_E4M3FN, 0x43E80000, 0x7E, 0x7E, 0}, /* 464 */
	{FP8KV_E4M3FN, 0x43E80001, 0x7E, 0x7F, 1}, /* 464.00003 */
	{FP8KV_E4M3FN, 0xC3E80001, 0xFE, 0xFF, 1}, /* -464.00003 */
	{FP8KV_E4M3FN, 0x43F00000, 0x7E, 0x7F, 1}, /* 480 */
	{FP8KV_E4M3FN, 0x7F7FFFFF, 0x7E, 0x7F, 1}, /* FLT_MAX */
	{FP8KV_E4M3FN, 0x43D80000, 0x7E, 0x7E, 0}, /* 432: tie 416|448 -> even */
	{FP8KV_E4M3FN, 0x3F800000, 0x38, 0x38, 0}, /* 1 */
	{FP8KV_E4M3FN, 0x00000000, 0x00, 0x00, 0}, /* +0 */
	{FP8KV_E4M3FN, 0x80000000, 0x80, 0x80, 0}, /* -0 */
	{FP8KV_E4M3FN, 0x7FC00000, 0x7F, 0x7F, 0}, /* NaN */
	{FP8KV_E4M3FN, 0xFFC00000, 0xFF, 0xFF, 0}, /* -NaN */
	{FP8KV_E4M3FN, 0x7F800000, 0x7E, 0x7F, 0}, /* Inf: no overflow counted */
	{FP8KV_E4M3FN, 0xFF800000, 0xFE, 0xFF, 0}, /* -Inf */
	{FP8KV_E4M3FN, 0x3B000000, 0x01, 0x01, 0}, /* 2^-9, min subnormal */
	{FP8KV_E4M3FN, 0x3A800000, 0x00, 0x00, 0}, /* 2^-10: tie 0|2^-9 -> 0 */
	{FP8KV_E4M3FN, 0xBA800000, 0x80, 0x80, 0}, /* -2^-10 rounds to -0 */
	{FP8KV_E4M3FN, 0x00000001, 0x00, 0x00, 0}, /* 2^-149 */
	{FP8KV_E4M3FN, 0x80000001, 0x80, 0x80, 0}, /* -2^-149 */
	{FP8KV_E4M3FN, 0x3B400000, 0x02, 0x02, 0}, /* 3*2^-10: tie 1|2 -> 2 */
	{FP8KV_E4M3FN, 0x3C800000, 0x08, 0x08, 0}, /* 2^-6, min normal */
	{FP8KV_E4M3FN, 0x3C700000, 0x08, 0x08, 0}, /* 15*2^-10: carry into normals */
	/* e4m3fnuz: max 240; 248 is the tie that overflows */
	{FP8KV_E4M3FNUZ, 0x43700000, 0x7F, 0x7F, 0}, /* 240 */
	{FP8KV_E4M3FNUZ, 0x4377FFFF, 0x7F, 0x7F, 0}, /* 247.99998 */
	{FP8KV_E4M3FNUZ, 0x43780000, 0x7F, 0x80, 1}, /* 248 */
	{FP8KV_E4M3FNUZ, 0xC3780000, 0xFF, 0x80, 1}, /* -248 */
	{FP8KV_E4M3FNUZ, 0x80000000, 0x00, 0x00, 0}, /* -0: no negative zero */
	{FP8KV_E4M3FNUZ, 0xB9800000, 0x00, 0x00, 0}, /* -2^-12 rounds to 0 */
	{FP8KV_E4M3FNUZ, 0x7FC00000, 0x80, 0x80, 0}, /* NaN */
	{FP8KV_E4M3FNUZ, 0xFFC00000, 0x80, 0x80, 0}, /* -NaN */
	{FP8KV_E4M3FNUZ, 0x7F800000, 0x7F, 0x80, 0}, /* Inf */
	{FP8KV_E4M3FNUZ, 0xFF800000, 0xFF, 0x80, 0}, /* -Inf */
	{FP8KV_E4M3FNUZ, 0x3F800000, 0x40, 0x40, 0}, /* 1 */
	{FP8KV_E4M3FNUZ, 0x3A800000, 0x01, 0x01, 0}, /* 2^-10, min subnormal */
	{FP8KV_E4M3FNUZ, 0x3C000000, 0x08, 0x08, 0}, /* 2^-7, min normal */
	/* e5m2: max 57344; 61440 is the tie that overflows */
	{FP8KV_E5M2, 0x47600000, 0x7B, 0x7B, 0}, /* 57344 */
	{FP8KV_E5M2, 0x476FFFFF, 0x7B, 0x7B, 0}, /* 61439.996 */
	{FP8KV_E5M2, 0x47700000, 0x7B, 0x7C, 1}, /* 61440 */
	{FP8KV_E5M2, 0xC7700000, 0xFB, 0xFC, 1}, /* -61440 */
	{FP8KV_E5M2, 0x7F800000, 0x7B, 0x7C, 0}, /* Inf */
	{FP8KV_E5M2, 0xFF800000, 0xFB, 0xFC, 0}, /* -Inf */
	{FP8KV_E5M2, 0x7FC00000, 0x7F, 0x7F, 0}, /* NaN */
	{FP8KV_E5M2, 0xFFC00000, 0xFF, 0xFF, 0}, /* -NaN */
	{FP8KV_E5M2, 0x80000000, 0x80, 0x80, 0}, /* -0 */
	{FP8KV_E5M2, 0x3F800000, 0x3C, 0x3C, 0}, /* 1 */
	{FP8KV_E5M2, 0x37800000, 0x01, 0x01, 0}, /* 2^-16, min subnormal */
	{FP8KV_E5M2, 0x37000000, 0x00, 0x00, 0}, /* 2^-17: tie -> 0 */
	{FP8KV_E5M2, 0xB7000000, 0x80, 0x80, 0}, /* -2^-17 -> -0 */
	{FP8KV_E5M2, 0x37C00000, 0x02, 0x02, 0}, /* 3*2^-17: tie 1|2 -> 2 */
	{FP8KV_E5M2, 0x38800000, 0x04, 0x04, 0}, /* 2^-14, min normal */
	/* e5m2fnuz: max 57344 */
	{FP8KV_E5M2FNUZ, 0x47600000, 0x7F, 0x7F, 0}, /* 57344 */
	{FP8KV_E5M2FNUZ, 0x476FFFFF, 0x7F, 0x7F, 0}, /* 61439.996 */
	{FP8KV_E5M2FNUZ, 0x47700000, 0x7F, 0x80, 1}, /* 61440 */
	{FP8KV_E5M2FNUZ, 0xC7700000, 0xFF, 0x80, 1}, /* -61440 */
	{FP8KV_E5M2FNUZ, 0x80000000, 0x00, 0x00, 0}, /* -0 */
	{FP8KV_E5M2FNUZ, 0x80000001, 0x00, 0x00, 0}, /* -2^-149 -> 0 */
	{FP8KV_E5M2FNUZ, 0x7FC00000, 0x80, 0x80, 0}, /* NaN */
	{FP8KV_E5M2FNUZ, 0x7F800000, 0x7F, 0x80, 0}, /* Inf */
	{FP8KV_E5M2FNUZ, 0xFF800000, 0xFF, 0x80, 0}, /* -Inf */
	{FP8KV_E5M2FNUZ, 0x3F800000, 0x40, 0x40, 0}, /* 1 */
	{FP8KV_E5M2FNUZ, 0x37000000, 0x01, 0x01, 0}, /* 2^-17, min subnormal */
	{FP8KV_E5M2FNUZ, 0x38000000, 0x04, 0x04, 0}, /* 2^-15, min normal */
};
#define NANCHORS ((int)(sizeof anchors / sizeof anchors[0]))

START_TEST(spec_anchors_hold_for_oracle_and_library)
{
	const anchor *a = &anchors[_i];
	for (int p = 0; p < 2; p++) {
		fp8kv_overflow ovf = (fp8kv_overflow)p;
		uint8_t want = p ? a->nonsat : a->sat;
		int o = -1;
		uint8_t oracle = oracle_encode(f_of(a->y), a->format, ovf, &o);
		ck_assert_msg(oracle == want && o == a->overflow,
			      "oracle: %s %s 0x%08x gives 0x%02x (overflow %d), spec 0x%02x (%d)",
			      format_names[format_slot(a->format)], policy_names[p],
			      (unsigned)a->y, oracle, o, want, a->overflow);
		uint8_t lib = fp8kv_from_float(f_of(a->y), a->format, ovf);
		ck_assert_msg(lib == want, "fp8kv_from_float: %s %s 0x%08x gives 0x%02x, spec 0x%02x",
			      format_names[format_slot(a->format)], policy_names[p],
			      (unsigned)a->y, lib, want);
	}
}
END_TEST

START_TEST(fp8_max_is_the_largest_finite_value)
{
	static const float want[NFORMATS] = {448.0f, 240.0f, 57344.0f, 57344.0f};
	for (int f = 0; f < NFORMATS; f++) {
		ck_assert_msg(bits_of(fp8kv_fp8_max(formats[f])) == bits_of(want[f]),
			      "%s: %a", format_names[f], (double)fp8kv_fp8_max(formats[f]));
		double omax = 0;
		for (int c = 0; c < 256; c++) {
			double v = oracle_decode((uint8_t)c, formats[f]);
			if (!oracle_is_nan(v) && v > omax && v < 1e300)
				omax = v;
		}
		ck_assert_msg(omax == (double)want[f], "oracle max of %s: %a", format_names[f],
			      omax);
	}
	ck_assert(fp8kv_fp8_max(FP8KV_F32) == 0.0f);
	ck_assert(fp8kv_fp8_max(FP8KV_BF16) == 0.0f);
}
END_TEST

START_TEST(non_fp8_formats_give_zero_and_nan)
{
	ck_assert_uint_eq(fp8kv_from_float(1.0f, FP8KV_F32, FP8KV_SATURATE), 0);
	ck_assert_uint_eq(fp8kv_from_float(1.0f, FP8KV_BF16, FP8KV_NONSATURATING), 0);
	ck_assert(oracle_is_nan(fp8kv_to_float(0x38, FP8KV_F16)));
	ck_assert(oracle_is_nan(fp8kv_to_float(0x00, FP8KV_F32)));
}
END_TEST

START_TEST(oracle_widens_every_half_exactly)
{
	/* bf16 is the top half of fp32; f16 anchors from the IEEE definition */
	for (uint32_t b = 0; b < 65536; b++) {
		float w = oracle_widen(b, FP8KV_BF16);
		if (((b >> 7) & 0xFF) == 0xFF && (b & 0x7F)) {
			ck_assert(oracle_is_nan(w));
			ck_assert_uint_eq(bits_of(w) >> 31, b >> 15);
		} else {
			ck_assert_uint_eq(bits_of(w), b << 16);
		}
	}
	ck_assert(oracle_widen(0x3C00, FP8KV_F16) == 1.0f);
	ck_assert(oracle_widen(0x0001, FP8KV_F16) == 0x1p-24f);
	ck_assert(oracle_widen(0x03FF, FP8KV_F16) == 0x1.ff8p-15f);
	ck_assert(oracle_widen(0x0400, FP8KV_F16) == 0x1p-14f);
	ck_assert(oracle_widen(0x7BFF, FP8KV_F16) == 65504.0f);
	ck_assert(oracle_widen(0xC000, FP8KV_F16) == -2.0f);
	ck_assert_uint_eq(bits_of(oracle_widen(0x8000, FP8KV_F16)), 0x80000000u);
	ck_assert_uint_eq(bits_of(oracle_widen(0xFC00, FP8KV_F16)), 0xFF800000u);
	ck_assert(oracle_is_nan(oracle_widen(0x7C01, FP8KV_F16)));
	ck_assert(oracle_is_nan(oracle_widen(0xFE00, FP8KV_F16)));
	/* the f16 values are strictly increasing over the positive finite codes */
	for (uint32_t b = 1; b < 0x7C00; b++)
		ck_assert(oracle_widen(b - 1, FP8KV_F16) < oracle_widen(b, FP8KV_F16));
	ck_assert_uint_eq(bits_of(oracle_divide(1.0f, 3.0f)), 0x3EAAAAABu);
	ck_assert_uint_eq(bits_of(oracle_divide(0x1p-149f, 2.0f)), 0u); /* tie to even 0 */
	ck_assert_uint_eq(bits_of(oracle_divide(0x1.8p-148f, 2.0f)), 2u);  /* 1.5 ulp -> 2 */
	ck_assert_uint_eq(bits_of(oracle_divide(0x1p127f, 0.5f)), 0x7F800000u);
}
END_TEST

/* ------------------------------------------------------- every FP8 code */

START_TEST(every_code_decodes_exactly_as_the_oracle)
{
	fp8kv_dtype format = formats[_i];
	int fnuz = format == FP8KV_E4M3FNUZ || format == FP8KV_E5M2FNUZ;
	int nans = 0;
	for (int c = 0; c < 256; c++) {
		float got = fp8kv_to_float((uint8_t)c, format);
		double want = oracle_decode((uint8_t)c, format);
		if (oracle_is_nan(want)) {
			nans++;
			ck_assert_msg(oracle_is_nan(got), "%s 0x%02x: %a, want NaN",
				      format_names[_i], c, (double)got);
			ck_assert_msg(bits_of(got) & 0x00400000u, "%s 0x%02x: NaN not quiet",
				      format_names[_i], c);
			/* the code's sign for OCP; fnuz 0x80 is unsigned: positive */
			const uint32_t want_sign = fnuz ? 0u : (uint32_t)(c >> 7);
			ck_assert_msg((bits_of(got) >> 31) == want_sign,
				      "%s 0x%02x: NaN sign %u, want %u", format_names[_i], c,
				      bits_of(got) >> 31, want_sign);
		} else {
			ck_assert_msg(bits_of(got) == bits_of((float)want),
				      "%s 0x%02x: %a, oracle %a", format_names[_i], c,
				      (double)got, want);
		}
	}
	/* NaN codes per format: e4m3fn 0x7F/0xFF, e5m2 0x7D-0x7F and 0xFD-0xFF,
	 * fnuz only 0x80 */
	static const int want_nans[NFORMATS] = {2, 1, 6, 1};
	ck_assert_int_eq(nans, want_nans[_i]);
	if (fnuz)
		ck_assert(oracle_is_nan(fp8kv_to_float(0x80, format)));
	else
		ck_assert_uint_eq(bits_of(fp8kv_to_float(0x80, format)), 0x80000000u);
}
END_TEST

START_TEST(every_code_round_trips_through_fp32)
{
	fp8kv_dtype format = formats[_i];
	for (int c = 0; c < 256; c++) {
		double v = oracle_decode((uint8_t)c, format);
		if (oracle_is_nan(v))
			continue;
		float f = fp8kv_to_float((uint8_t)c, format);
		int inf = v > 1e300 || v < -1e300;
		for (int p = 0; p < 2; p++) {
			uint8_t back = fp8kv_from_float(f, format, (fp8kv_overflow)p);
			uint8_t want = (inf && p == FP8KV_SATURATE) ? (uint8_t)(0x7B | (c & 0x80))
								    : (uint8_t)c;
			ck_assert_msg(back == want, "%s %s: 0x%02x -> %a -> 0x%02x",
				      format_names[_i], policy_names[p], c, (double)f, back);
			ck_assert_uint_eq(oracle_encode(f, format, (fp8kv_overflow)p, NULL), want);
		}
	}
}
END_TEST

/* ------------------------------------------------------ fp32 to FP8 */

/*
 * A NaN quotient is signed by the contract, not the hardware: the sign of a
 * NaN x, else sign(x) XOR sign(s) -- 0/0, Inf/Inf and NaN scales included.
 * Literal codes for e4m3fn and e5m2 (0x7F | sign), then the oracle for all.
 */
START_TEST(nan_quotients_are_signed_by_the_contract)
{
	static const uint32_t xs[] = {0x00000000, 0x80000000, 0x7F800000, 0xFF800000,
				      0x7FC00000, 0xFFC00000, 0x3F800000, 0xBF800000};
	static const uint32_t ss[] = {0x00000000, 0x80000000, 0x7F800000, 0xFF800000,
				      0x7FC00000, 0xFFC00000, 0x40000000};
	uint8_t got[8 + GUARD];
	uint64_t added;
	for (size_t j = 0; j < sizeof ss / sizeof ss[0]; j++) {
		float s;
		memcpy(&s, &ss[j], sizeof s);
		for (int f = 0; f < NFORMATS; f++) {
			quantize_on_backend(xs, FP8KV_F32, 8, formats[f], FP8KV_SATURATE, 1, s, got,
					    &added);
			for (size_t i = 0; i < 8; i++) {
				int o;
				const uint8_t want = oracle_quantize(xs[i], FP8KV_F32, 1, s, formats[f],
								     FP8KV_SATURATE, &o);
				ck_assert_msg(got[i] == want, "%s: 0x%08x / 0x%08x: got 0x%02x, want 0x%02x",
					      fp8kv_dtype_name(formats[f]), xs[i], ss[j], got[i], want);
			}
			assert_guard_intact(got, 8, "nan quotients");
		}
	}
	/* literals: +0/+0 -> +NaN, -0/+0 -> -NaN, -NaN/2 -> -NaN, +1/-NaN -> -NaN */
	const uint32_t cases[4][3] = {{0x00000000, 0x00000000, 0x7F}, {0x80000000, 0x00000000, 0xFF},
				      {0xFFC00000, 0x40000000, 0xFF}, {0x3F800000, 0xFFC00000, 0xFF}};
	for (int k = 0; k < 4; k++) {
		float s;
		memcpy(&s, &cases[k][1], sizeof s);
		quantize_on_backend(&cases[k][0], FP8KV_F32, 1, FP8KV_E4M3FN, FP8KV_SATURATE, 1, s,
				    got, &added);
		ck_assert_uint_eq(got[0], cases[k][2]);
		quantize_on_backend(&cases[k][0], FP8KV_F32, 1, FP8KV_E5M2, FP8KV_SATURATE, 1, s,
				    got, &added);
		ck_assert_uint_eq(got[0], cases[k][2]);
	}
}
END_TEST

START_TEST(fp32_specials_match_the_oracle)
{
	static const uint32_t specials[] = {
		0x00000000, 0x80000000,                         /* +-0 */
		0x7F800000, 0xFF800000,                         /* +-Inf */
		0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, /* NaNs, quiet and signalling */
		0x7FFFFFFF, 0xFFFFFFFF, 0x7FA5A5A5, 0xFFC00001, 0x7FBFFFFF, 0xFF812345,
		0x7F7FFFFF, 0xFF7FFFFF,                         /* +-FLT_MAX */
		0x00000001, 0x80000001,                         /* +-min subnormal */
		0x007FFFFF, 0x807FFFFF,                         /* +-max subnormal */
		0x00800000, 0x80800000,                         /* +-min normal */
		0x3F800000, 0xBF800000, 0x7F000000, 0x0D000000,
	};
	bitlist l = {0};
	for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
		push(&l, specials[i]);
	check_f32_list_all(&l, "specials");
	/* NaNs of both signs: the table's codes, whatever the payload */
	for (int f = 0; f < NFORMATS; f++)
		for (int p = 0; p < 2; p++) {
			int ocp = formats[f] == FP8KV_E4M3FN || formats[f] == FP8KV_E5M2;
			ck_assert_uint_eq(fp8kv_from_float(f_of(0xFFA5A5A5), formats[f], p),
					  ocp ? 0xFF : 0x80);
			ck_assert_uint_eq(fp8kv_from_float(f_of(0x7F800001), formats[f], p),
					  ocp ? 0x7F : 0x80);
		}
	free(l.v);
}
END_TEST

START_TEST(every_binade_edge_matches_the_oracle)
{
	bitlist l = {0};
	for (int e = -149; e <= 127; e++) {
		uint32_t b = e >= -126 ? (uint32_t)(e + 127) << 23 : 1u << (e + 149);
		push_around(&l, b, 3);
		/* and three quarters of the way through the binade */
		push_around(&l, b | (e >= -126 ? 0x00400000u : 0), 1);
	}
	push_around(&l, 0x7F7FFFFF, 3);
	check_f32_list_all(&l, "binade edges");
	free(l.v);
}
END_TEST

/* The non-negative finite values of a format, ascending. */
static int sorted_values(fp8kv_dtype format, double *v)
{
	int n = 0;
	for (int c = 0; c < 256; c++) {
		double x = oracle_decode((uint8_t)c, format);
		if (oracle_is_nan(x) || x < 0 || x > 1e300 || (c & 0x80))
			continue;
		int j = n++;
		while (j > 0 && v[j - 1] > x) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
	return n;
}

START_TEST(around_every_midpoint_and_overflow_threshold)
{
	/* literal thresholds (max + ulp/2) and first unrepresentable values */
	static const float threshold[NFORMATS] = {464.0f, 248.0f, 61440.0f, 61440.0f};
	static const float past_max[NFORMATS] = {480.0f, 256.0f, 65536.0f, 65536.0f};
	fp8kv_dtype format = formats[_i / 2];
	fp8kv_overflow ovf = (fp8kv_overflow)(_i % 2);
	double v[256];
	int n = sorted_values(format, v);
	bitlist l = {0};
	for (int i = 0; i + 1 < n; i++) {
		double mid = (v[i] + v[i + 1]) / 2;
		float m = (float)mid;
		ck_assert((double)m == mid); /* midpoints are exact in fp32 */
		push_around(&l, bits_of(m), 3);
		push_around(&l, bits_of((float)v[i]), 2);
	}
	ck_assert_msg((double)threshold[_i / 2] == (v[n - 1] + past_max[_i / 2]) / 2,
		      "%s: threshold", format_names[_i / 2]);
	push_around(&l, bits_of(threshold[_i / 2]), 8);
	push_around(&l, bits_of(past_max[_i / 2]), 3);
	push_around(&l, bits_of(2 * past_max[_i / 2]), 3);
	check_f32_list(&l, format, ovf, "midpoints");
	/* the threshold itself: a tie, to even - 448 for e4m3fn, overflow otherwise */
	int o;
	oracle_encode(threshold[_i / 2], format, ovf, &o);
	ck_assert_int_eq(o, format == FP8KV_E4M3FN ? 0 : 1);
	oracle_encode(f_of(bits_of(threshold[_i / 2]) - 1), format, ovf, &o);
	ck_assert_int_eq(o, 0);
	oracle_encode(f_of(bits_of(threshold[_i / 2]) + 1), format, ovf, &o);
	ck_assert_int_eq(o, 1);
	free(l.v);
}
END_TEST

START_TEST(subnormal_region_matches_the_oracle)
{
	/* exponent of the format's min subnormal and min normal */
	static const int min_sub[NFORMATS] = {-9, -10, -16, -17};
	static const int min_norm[NFORMATS] = {-6, -7, -14, -15};
	fp8kv_dtype format = formats[_i / 2];
	fp8kv_overflow ovf = (fp8kv_overflow)(_i % 2);
	bitlist l = {0};
	rng_state = 0x5EED0000u + (uint64_t)_i;
	for (int e = min_sub[_i / 2] - 4; e <= min_norm[_i / 2] + 1; e++) {
		uint32_t base = (uint32_t)(e + 127) << 23;
		for (uint32_t k = 0; k < 4096; k++) {
			uint32_t m = k << 11;
			push_around(&l, base | m, 0);
			push_around(&l, base | m | (uint32_t)(rng() & 0x7FF), 0);
			push_around(&l, base | m | 0x7FF, 0);
		}
	}
	check_f32_list(&l, format, ovf, "subnormal region");
	free(l.v);
}
END_TEST

START_TEST(every_bf16_prefix_with_several_tails)
{
	static const uint32_t tails[] = {0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF};
	bitlist l = {0};
	for (uint32_t p = 0; p < 65536; p++)
		for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++)
			push(&l, p << 16 | tails[t]);
	check_f32_list(&l, formats[_i / 2], (fp8kv_overflow)(_i % 2), "bf16 prefixes");
	free(l.v);
}
END_TEST

#define RANDOM_PER_RUN (1u << 20)

START_TEST(random_fp32_bit_patterns_match_the_oracle)
{
	bitlist l = {0};
	rng_state = 0xF8C0FFEEull * (uint64_t)(_i + 1);
	for (uint32_t i = 0; i < RANDOM_PER_RUN; i++) {
		uint64_t r = rng();
		push(&l, (uint32_t)r);
		/* and one with an exponent where FP8 values live: 2^-24..2^20 */
		uint32_t e = (uint32_t)(103 + (r >> 32) % 45);
		uint32_t sign = (uint32_t)(r >> 63) << 31;
		push(&l, sign | e << 23 | ((uint32_t)(r >> 20) & 0x7FFFFF));
	}
	check_f32_list(&l, formats[_i / 2], (fp8kv_overflow)(_i % 2), "random");
	free(l.v);
}
END_TEST

/* -------------------------------------------------- bulk from f16/bf16 */

/* the scales of the TENSOR runs; 1.0 first */
static const float tensor_scales[] = {
	1.0f, 0.5f, 3.0f, 1.0f / 448.0f, 0.1f, 4096.0f,
	0x1.8p-130f, /* subnormal */
	0x1p-126f,   /* the suggest_scale floor */
	1e30f,
};
#define NSCALES ((int)(sizeof tensor_scales / sizeof tensor_scales[0]))

/* All 65,536 inputs of a 16-bit dtype, with SCALE_ONE and every tensor scale. */
static void check_all_16bit_inputs(fp8kv_dtype dtype, int run)
{
	enum { N = 65536 };
	fp8kv_dtype format = formats[run / 2];
	fp8kv_overflow ovf = (fp8kv_overflow)(run % 2);
	const char *dname = dtype == FP8KV_BF16 ? "bf16" : "f16";
	uint16_t *src = malloc(N * sizeof *src);
	uint8_t *one = malloc(N + GUARD), *got = malloc(N + GUARD), *want = malloc(N);
	ck_assert(src && one && got && want);
	for (uint32_t i = 0; i < N; i++)
		src[i] = (uint16_t)i;

	for (int k = -1; k < NSCALES; k++) { /* -1: SCALE_ONE */
		int scaled = k >= 0;
		float s = scaled ? tensor_scales[k] : 1.0f;
		uint64_t overflows = 0, added = 0;
		for (uint32_t i = 0; i < N; i++) {
			int o;
			want[i] = oracle_quantize(i, dtype, scaled, s, format, ovf, &o);
			overflows += (uint64_t)o;
		}
		uint8_t *dst = scaled ? got : one;
		quantize_on_backend(src, dtype, N, format, ovf, scaled, s, dst, &added);
		size_t bad = 0, first = 0;
		for (uint32_t i = 0; i < N; i++)
			if (dst[i] != want[i] && bad++ == 0)
				first = i;
		ck_assert_msg(bad == 0,
			      "%s -> %s, %s, %s scale %a: %zu of 65536 differ, first input "
			      "0x%04zx (%a): got 0x%02x, oracle 0x%02x",
			      dname, format_names[run / 2], policy_names[ovf],
			      scaled ? "TENSOR" : "ONE", (double)s, bad, first,
			      (double)oracle_widen((uint32_t)first, dtype), dst[first], want[first]);
		assert_guard_intact(dst, N, dname);
		ck_assert_msg(added == overflows,
			      "%s -> %s, %s, scale %a: overflow_count added %llu, oracle %llu",
			      dname, format_names[run / 2], policy_names[ovf], (double)s,
			      (unsigned long long)added, (unsigned long long)overflows);
		if (scaled && s == 1.0f)
			ck_assert_msg(memcmp(got, one, N) == 0,
				      "%s: TENSOR scale 1.0 differs from SCALE_ONE", dname);
	}
	free(src);
	free(one);
	free(got);
	free(want);
}

START_TEST(every_bf16_input_quantizes_as_the_oracle)
{
	check_all_16bit_inputs(FP8KV_BF16, _i);
}
END_TEST

START_TEST(every_f16_input_quantizes_as_the_oracle)
{
	check_all_16bit_inputs(FP8KV_F16, _i);
}
END_TEST

START_TEST(f32_with_tensor_scales_matches_the_oracle)
{
	/* random f32 around the scales' useful range, through x / s */
	enum { N = 200003 };
	fp8kv_dtype format = formats[_i / 2];
	fp8kv_overflow ovf = (fp8kv_overflow)(_i % 2);
	float *src = malloc(N * sizeof *src);
	uint8_t *got = malloc(N + GUARD), *want = malloc(N);
	ck_assert(src && got && want);
	rng_state = 0xD1CEull + (uint64_t)_i;
	for (int i = 0; i < N; i++) {
		uint64_t r = rng();
		uint32_t e = (uint32_t)(1 + (r >> 32) % 254); /* any finite exponent */
		uint32_t b = (uint32_t)(r >> 63) << 31 | ((uint32_t)(r >> 20) & 0x7FFFFF);
		src[i] = f_of(i % 5 == 0 ? (uint32_t)r : (b | e << 23));
	}
	for (int k = 0; k < NSCALES; k++) {
		float s = tensor_scales[k];
		uint64_t overflows = 0, added = 0;
		for (int i = 0; i < N; i++) {
			int o;
			want[i] = oracle_quantize(bits_of(src[i]), FP8KV_F32, 1, s, format, ovf, &o);
			overflows += (uint64_t)o;
		}
		quantize_on_backend(src, FP8KV_F32, N, format, ovf, 1, s, got, &added);
		size_t bad = 0, first = 0;
		for (int i = 0; i < N; i++)
			if (got[i] != want[i] && bad++ == 0)
				first = (size_t)i;
		ck_assert_msg(bad == 0,
			      "f32 -> %s, %s, scale %a: %zu differ, first %a: got 0x%02x, oracle 0x%02x",
			      format_names[_i / 2], policy_names[ovf], (double)s, bad,
			      (double)src[first], got[first], want[first]);
		assert_guard_intact(got, N, "f32 scaled");
		ck_assert_msg(added == overflows, "f32 -> %s, scale %a: overflow_count %llu, oracle %llu",
			      format_names[_i / 2], (double)s, (unsigned long long)added,
			      (unsigned long long)overflows);
	}
	free(src);
	free(got);
	free(want);
}
END_TEST

START_TEST(short_counts_write_exactly_count_bytes)
{
	/* odd counts around vector widths: nothing past count is written */
	uint16_t src[300];
	uint8_t got[300 + GUARD];
	for (int i = 0; i < 300; i++)
		src[i] = (uint16_t)(0x3F80 + 37 * i); /* bf16 of assorted magnitudes */
	for (size_t n = 1; n <= 300; n += (n < 70 ? 1 : 23)) {
		uint64_t added;
		quantize_on_backend(src, FP8KV_BF16, n, formats[_i], FP8KV_SATURATE, 0, 1.0f,
				    got, &added);
		for (size_t i = 0; i < n; i++)
			ck_assert_uint_eq(got[i], oracle_quantize(src[i], FP8KV_BF16, 0, 1.0f,
								  formats[_i], FP8KV_SATURATE,
								  NULL));
		assert_guard_intact(got, n, "short count");
	}
}
END_TEST

/* ------------------------------------------------------------ dequantize */

static const float dequant_scales[] = {
	1.0f, 0.5f, 3.0f, 1.0f / 448.0f, 0.1f, 0x1p-140f, 0x1.8p-149f, 1e30f, 1e35f, -2.0f,
};
#define NDSCALES ((int)(sizeof dequant_scales / sizeof dequant_scales[0]))

static int is_nan_bits(uint32_t b, fp8kv_dtype dtype)
{
	switch (dtype) {
	case FP8KV_F32: return (b & 0x7FFFFFFFu) > 0x7F800000u;
	case FP8KV_F16: return (b & 0x7FFFu) > 0x7C00u;
	default: return (b & 0x7FFFu) > 0x7F80u;
	}
}

START_TEST(every_code_dequantizes_as_the_oracle)
{
	static const fp8kv_dtype outs[3] = {FP8KV_F32, FP8KV_F16, FP8KV_BF16};
	static const char *const out_names[3] = {"f32", "f16", "bf16"};
	fp8kv_dtype format = formats[_i];
	uint8_t codes[256];
	for (int c = 0; c < 256; c++)
		codes[c] = (uint8_t)c;
	void *src, *dst, *sbuf;
	uint8_t host[256 * 4 + GUARD], one[256 * 4];
	ck_assert_int_eq(fp8kv_buffer_alloc(be, 256, &src), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_alloc(be, sizeof host, &dst), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_alloc(be, sizeof(float), &sbuf), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_upload(be, src, codes, 256), FP8KV_OK);

	for (int o = 0; o < 3; o++) {
		size_t esize = o == 0 ? 4 : 2;
		for (int k = -1; k < NDSCALES; k++) { /* -1: SCALE_ONE */
			int scaled = k >= 0;
			float s = scaled ? dequant_scales[k] : 1.0f;
			if (scaled)
				ck_assert_int_eq(fp8kv_buffer_upload(be, sbuf, &s, sizeof s), FP8KV_OK);
			ck_assert_int_eq(fp8kv_buffer_fill(be, dst, POISON, sizeof host), FP8KV_OK);
			fp8kv_status st = fp8kv_dequantize(be, dst, outs[o], src, format, 256,
							   scaled ? FP8KV_SCALE_TENSOR
								  : FP8KV_SCALE_ONE,
							   scaled ? sbuf : NULL, NULL);
			ck_assert_msg(st == FP8KV_OK, "fp8kv_dequantize: %s", fp8kv_last_error());
			ck_assert_int_eq(fp8kv_backend_synchronize(be, NULL), FP8KV_OK);
			ck_assert_int_eq(fp8kv_buffer_download(be, host, dst, sizeof host), FP8KV_OK);
			for (int c = 0; c < 256; c++) {
				uint32_t got = 0;
				memcpy(&got, host + (size_t)c * esize, esize);
				uint32_t want = oracle_dequantize((uint8_t)c, format, scaled, s, outs[o]);
				if (is_nan_bits(want, outs[o]))
					ck_assert_msg(is_nan_bits(got, outs[o]),
						      "%s 0x%02x -> %s scale %a: 0x%x, want NaN",
						      format_names[_i], c, out_names[o], (double)s, got);
				else
					ck_assert_msg(got == want,
						      "%s 0x%02x -> %s scale %a: got 0x%x, oracle 0x%x",
						      format_names[_i], c, out_names[o], (double)s, got,
						      want);
			}
			for (size_t i = 256 * esize; i < sizeof host; i++)
				ck_assert_msg(host[i] == POISON, "dequantize wrote past count");
			if (!scaled)
				memcpy(one, host, 256 * esize);
			else if (s == 1.0f)
				ck_assert_msg(memcmp(one, host, 256 * esize) == 0,
					      "dequantize: TENSOR 1.0 differs from ONE (%s)",
					      out_names[o]);
		}
	}
	fp8kv_buffer_free(be, src);
	fp8kv_buffer_free(be, dst);
	fp8kv_buffer_free(be, sbuf);
}
END_TEST

/* ------------------------------------------------------------- helpers */

static float amax_of(const void *host, fp8kv_dtype dtype, size_t n)
{
	size_t bytes = n * fp8kv_dtype_size(dtype);
	void *buf;
	float amax = -1.0f;
	ck_assert_int_eq(fp8kv_buffer_alloc(be, bytes + 4, &buf), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_upload(be, buf, host, bytes), FP8KV_OK);
	ck_assert_int_eq(fp8kv_amax(be, buf, dtype, n, &amax), FP8KV_OK);
	fp8kv_buffer_free(be, buf);
	return amax;
}

START_TEST(amax_ignores_nan_and_inf)
{
	float a[] = {1.0f, -7.5f, f_of(0x7FC00000), f_of(0x7F800000), f_of(0xFF800000),
		     3.0f, -0.0f, f_of(0xFFC00001), 7.25f};
	ck_assert(amax_of(a, FP8KV_F32, 9) == 7.5f);
	float nonfinite[] = {f_of(0x7FC00000), f_of(0xFF800000), f_of(0x7F800000)};
	ck_assert_uint_eq(bits_of(amax_of(nonfinite, FP8KV_F32, 3)), 0u);
	float zeros[] = {-0.0f, 0.0f, -0.0f};
	ck_assert(amax_of(zeros, FP8KV_F32, 3) == 0.0f);
	float big[] = {1.0f, -f_of(0x7F7FFFFF), f_of(0xFF800000)};
	ck_assert_uint_eq(bits_of(amax_of(big, FP8KV_F32, 3)), 0x7F7FFFFFu);
	float tiny[] = {f_of(0x80000003), f_of(0x00000002), f_of(0x7FC00000)};
	ck_assert_uint_eq(bits_of(amax_of(tiny, FP8KV_F32, 3)), 3u);

	/* every bf16 and every f16, against a straightforward loop */
	uint16_t all[65536];
	for (uint32_t i = 0; i < 65536; i++)
		all[i] = (uint16_t)i;
	for (int d = 0; d < 2; d++) {
		fp8kv_dtype dtype = d ? FP8KV_F16 : FP8KV_BF16;
		float want = 0;
		for (uint32_t i = 0; i < 65536; i++) {
			float x = oracle_widen(i, dtype);
			if (oracle_is_nan(x) || x > 0x1.fffffep127f || x < -0x1.fffffep127f)
				continue;
			if (x < 0)
				x = -x;
			if (x > want)
				want = x;
		}
		ck_assert(amax_of(all, dtype, 65536) == want);
	}
	ck_assert(amax_of(all, FP8KV_F16, 65536) == 65504.0f);
	ck_assert_uint_eq(bits_of(amax_of(all, FP8KV_BF16, 65536)), 0x7F7F0000u);

	/* a large buffer, the maximum at one far-off place, NaN/Inf sprinkled */
	enum { N = 1000003 };
	float *v = malloc(N * sizeof *v);
	ck_assert_ptr_nonnull(v);
	rng_state = 42;
	for (int i = 0; i < N; i++)
		v[i] = (float)((int64_t)(rng() % 2000001) - 1000000) * 1e-6f;
	for (int i = 17; i < N; i += 99991)
		v[i] = f_of(i & 1 ? 0x7F800000 : 0xFFC00000);
	v[777777] = -42.5f;
	ck_assert(amax_of(v, FP8KV_F32, N) == 42.5f);
	free(v);
}
END_TEST

START_TEST(suggest_scale_literal_cases)
{
	/* 1 when amax is 0, negative, NaN or Inf, or format is not FP8 */
	ck_assert(fp8kv_suggest_scale(0.0f, FP8KV_E4M3FN) == 1.0f);
	ck_assert(fp8kv_suggest_scale(-0.0f, FP8KV_E4M3FN) == 1.0f);
	ck_assert(fp8kv_suggest_scale(-5.0f, FP8KV_E5M2) == 1.0f);
	ck_assert(fp8kv_suggest_scale(f_of(0x7FC00000), FP8KV_E4M3FN) == 1.0f);
	ck_assert(fp8kv_suggest_scale(f_of(0xFFC00000), FP8KV_E5M2) == 1.0f);
	ck_assert(fp8kv_suggest_scale(f_of(0x7F800000), FP8KV_E4M3FNUZ) == 1.0f);
	ck_assert(fp8kv_suggest_scale(f_of(0xFF800000), FP8KV_E4M3FNUZ) == 1.0f);
	ck_assert(fp8kv_suggest_scale(100.0f, FP8KV_F32) == 1.0f);
	ck_assert(fp8kv_suggest_scale(100.0f, FP8KV_BF16) == 1.0f);
	/* amax / fmax */
	ck_assert(fp8kv_suggest_scale(448.0f, FP8KV_E4M3FN) == 1.0f);
	ck_assert(fp8kv_suggest_scale(896.0f, FP8KV_E4M3FN) == 2.0f);
	ck_assert(fp8kv_suggest_scale(224.0f, FP8KV_E4M3FN) == 0.5f);
	ck_assert(fp8kv_suggest_scale(240.0f, FP8KV_E4M3FNUZ) == 1.0f);
	ck_assert(fp8kv_suggest_scale(57344.0f, FP8KV_E5M2) == 1.0f);
	ck_assert(fp8kv_suggest_scale(57344.0f, FP8KV_E5M2FNUZ) == 1.0f);
	ck_assert(fp8kv_suggest_scale(1.0f, FP8KV_E4M3FN) == 1.0f / 448.0f);
	/* the 2^-126 floor */
	ck_assert(fp8kv_suggest_scale(1e-38f, FP8KV_E4M3FN) == 0x1p-126f);
	ck_assert(fp8kv_suggest_scale(0x1p-149f, FP8KV_E5M2) == 0x1p-126f);
	ck_assert(fp8kv_suggest_scale(448.0f * 0x1p-126f, FP8KV_E4M3FN) == 0x1p-126f);
	ck_assert(fp8kv_suggest_scale(448.0f * 0x1p-125f, FP8KV_E4M3FN) == 0x1p-125f);
}
END_TEST

START_TEST(suggested_scale_never_lets_amax_overflow)
{
	/* every positive finite bf16 as amax: the scale is the formula, and
	 * +-amax / s converts without overflow */
	static const float fmax[NFORMATS] = {448.0f, 240.0f, 57344.0f, 57344.0f};
	fp8kv_dtype format = formats[_i];
	for (uint32_t b = 1; b < 0x7F80; b++) {
		float amax = oracle_widen(b, FP8KV_BF16);
		float s = fp8kv_suggest_scale(amax, format);
		float q = oracle_divide(amax, fmax[_i]);
		float want = q < 0x1p-126f ? 0x1p-126f : q;
		ck_assert_msg(bits_of(s) == bits_of(want), "%s amax %a: scale %a, want %a",
			      format_names[_i], (double)amax, (double)s, (double)want);
		for (int p = 0; p < 2; p++) {
			int o;
			oracle_quantize(b, FP8KV_BF16, 1, s, format, (fp8kv_overflow)p, &o);
			ck_assert_msg(!o, "%s amax %a overflows with scale %a", format_names[_i],
				      (double)amax, (double)s);
			oracle_quantize(b | 0x8000, FP8KV_BF16, 1, s, format, (fp8kv_overflow)p, &o);
			ck_assert(!o);
		}
	}
}
END_TEST

START_TEST(row_scale_follows_section_7)
{
	/* the oracle's TOKEN_HEAD scale on literal rows */
	uint32_t row[4] = {0x3F80, 0xC3E0, 0x7FC0, 0xFF80}; /* 1, -448, NaN, -Inf */
	float amax;
	ck_assert(oracle_row_scale(row, 4, FP8KV_BF16, FP8KV_E4M3FN, &amax) == 1.0f);
	ck_assert(amax == 448.0f);
	ck_assert(oracle_row_scale(row, 4, FP8KV_BF16, FP8KV_E4M3FNUZ, &amax) == 448.0f / 240.0f);
	uint32_t none[2] = {0x7F80, 0xFFC0};
	ck_assert(oracle_row_scale(none, 2, FP8KV_BF16, FP8KV_E5M2, &amax) == 1.0f);
	ck_assert(amax == 0.0f);
	uint32_t zero[2] = {0x8000, 0x0000};
	ck_assert(oracle_row_scale(zero, 2, FP8KV_F16, FP8KV_E5M2, &amax) == 1.0f);
	uint32_t tiny[1] = {0x0001}; /* f16 2^-24: well above the floor */
	ck_assert(oracle_row_scale(tiny, 1, FP8KV_F16, FP8KV_E4M3FN, &amax) ==
		  0x1p-24f / 448.0f);
	ck_assert(amax == 0x1p-24f);
	uint32_t tinier[2] = {0x8001, 0x0000}; /* bf16 -2^-133: the 2^-126 floor */
	ck_assert(oracle_row_scale(tinier, 2, FP8KV_BF16, FP8KV_E4M3FN, &amax) == 0x1p-126f);
	ck_assert(amax == 0x1p-133f);
}
END_TEST

/* ---------------------------------------------------------------- suite */

static Suite *convert_suite(void)
{
	Suite *s = suite_create("convert");
	TCase *tc = tcase_create("spec");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, spec_anchors_hold_for_oracle_and_library, 0, NANCHORS);
	tcase_add_test(tc, fp8_max_is_the_largest_finite_value);
	tcase_add_test(tc, non_fp8_formats_give_zero_and_nan);
	tcase_add_test(tc, oracle_widens_every_half_exactly);
	tcase_add_test(tc, row_scale_follows_section_7);
	suite_add_tcase(s, tc);

	tc = tcase_create("codes");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, every_code_decodes_exactly_as_the_oracle, 0, NFORMATS);
	tcase_add_loop_test(tc, every_code_round_trips_through_fp32, 0, NFORMATS);
	suite_add_tcase(s, tc);

	tc = tcase_create("fp32");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, fp32_specials_match_the_oracle);
	tcase_add_test(tc, nan_quotients_are_signed_by_the_contract);
	tcase_add_test(tc, every_binade_edge_matches_the_oracle);
	tcase_add_loop_test(tc, around_every_midpoint_and_overflow_threshold, 0, NRUNS);
	tcase_add_loop_test(tc, subnormal_region_matches_the_oracle, 0, NRUNS);
	tcase_add_loop_test(tc, every_bf16_prefix_with_several_tails, 0, NRUNS);
	tcase_add_loop_test(tc, random_fp32_bit_patterns_match_the_oracle, 0, NRUNS);
	suite_add_tcase(s, tc);

	tc = tcase_create("bulk");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, every_bf16_input_quantizes_as_the_oracle, 0, NRUNS);
	tcase_add_loop_test(tc, every_f16_input_quantizes_as_the_oracle, 0, NRUNS);
	tcase_add_loop_test(tc, f32_with_tensor_scales_matches_the_oracle, 0, NRUNS);
	tcase_add_loop_test(tc, short_counts_write_exactly_count_bytes, 0, NFORMATS);
	tcase_add_loop_test(tc, every_code_dequantizes_as_the_oracle, 0, NFORMATS);
	suite_add_tcase(s, tc);

	tc = tcase_create("helpers");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, amax_ignores_nan_and_inf);
	tcase_add_test(tc, suggest_scale_literal_cases);
	tcase_add_loop_test(tc, suggested_scale_never_lets_amax_overflow, 0, NFORMATS);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(convert_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
