/* SPDX-License-Identifier: MIT */
/*
 * test_convert_codes.c - the anchors written from fp8kv.h's text, every
 * code of every FP8 format decoded and round-tripped, and the oracle's own
 * widening and TOKEN_HEAD scale on literal values.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdint.h>

#include "check_support.h"
#include "float_bits.h"
#include "fp8kv.h"
#include "oracle.h"
#include "test_convert.h"

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
		uint8_t oracle = oracle_encode(float_of_bits(a->y), a->format, ovf, &o);
		ck_assert_msg(oracle == want && o == a->overflow,
			      "oracle: %s %s 0x%08x gives 0x%02x (overflow %d), spec 0x%02x (%d)",
			      format_names[format_slot(a->format)], policy_names[p],
			      (unsigned)a->y, oracle, o, want, a->overflow);
		uint8_t lib = fp8kv_from_float(float_of_bits(a->y), a->format, ovf);
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
		ck_assert_msg(bits_of_float(fp8kv_fp8_max(formats[f])) == bits_of_float(want[f]),
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
			ck_assert_uint_eq(bits_of_float(w) >> 31, b >> 15);
		} else {
			ck_assert_uint_eq(bits_of_float(w), b << 16);
		}
	}
	ck_assert(oracle_widen(0x3C00, FP8KV_F16) == 1.0f);
	ck_assert(oracle_widen(0x0001, FP8KV_F16) == 0x1p-24f);
	ck_assert(oracle_widen(0x03FF, FP8KV_F16) == 0x1.ff8p-15f);
	ck_assert(oracle_widen(0x0400, FP8KV_F16) == 0x1p-14f);
	ck_assert(oracle_widen(0x7BFF, FP8KV_F16) == 65504.0f);
	ck_assert(oracle_widen(0xC000, FP8KV_F16) == -2.0f);
	ck_assert_uint_eq(bits_of_float(oracle_widen(0x8000, FP8KV_F16)), 0x80000000u);
	ck_assert_uint_eq(bits_of_float(oracle_widen(0xFC00, FP8KV_F16)), 0xFF800000u);
	ck_assert(oracle_is_nan(oracle_widen(0x7C01, FP8KV_F16)));
	ck_assert(oracle_is_nan(oracle_widen(0xFE00, FP8KV_F16)));
	/* the f16 values are strictly increasing over the positive finite codes */
	for (uint32_t b = 1; b < 0x7C00; b++)
		ck_assert(oracle_widen(b - 1, FP8KV_F16) < oracle_widen(b, FP8KV_F16));
	ck_assert_uint_eq(bits_of_float(oracle_divide(1.0f, 3.0f)), 0x3EAAAAABu);
	ck_assert_uint_eq(bits_of_float(oracle_divide(0x1p-149f, 2.0f)), 0u); /* tie to even 0 */
	ck_assert_uint_eq(bits_of_float(oracle_divide(0x1.8p-148f, 2.0f)), 2u);  /* 1.5 ulp -> 2 */
	ck_assert_uint_eq(bits_of_float(oracle_divide(0x1p127f, 0.5f)), 0x7F800000u);
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
			ck_assert_msg(bits_of_float(got) & 0x00400000u, "%s 0x%02x: NaN not quiet",
				      format_names[_i], c);
			/* the code's sign for OCP; fnuz 0x80 is unsigned: positive */
			const uint32_t want_sign = fnuz ? 0u : (uint32_t)(c >> 7);
			ck_assert_msg((bits_of_float(got) >> 31) == want_sign,
				      "%s 0x%02x: NaN sign %u, want %u", format_names[_i], c,
				      bits_of_float(got) >> 31, want_sign);
		} else {
			ck_assert_msg(bits_of_float(got) == bits_of_float((float)want),
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
		ck_assert_uint_eq(bits_of_float(fp8kv_to_float(0x80, format)), 0x80000000u);
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

void add_code_tests(Suite *s)
{
	TCase *tc = cpu_tcase(s, "spec", 0);
	tcase_add_loop_test(tc, spec_anchors_hold_for_oracle_and_library, 0, NANCHORS);
	tcase_add_test(tc, fp8_max_is_the_largest_finite_value);
	tcase_add_test(tc, non_fp8_formats_give_zero_and_nan);
	tcase_add_test(tc, oracle_widens_every_half_exactly);
	tcase_add_test(tc, row_scale_follows_section_7);

	tc = cpu_tcase(s, "codes", 0);
	tcase_add_loop_test(tc, every_code_decodes_exactly_as_the_oracle, 0, NFORMATS);
	tcase_add_loop_test(tc, every_code_round_trips_through_fp32, 0, NFORMATS);
}
