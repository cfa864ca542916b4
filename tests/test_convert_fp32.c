/* SPDX-License-Identifier: MIT */
/*
 * test_convert_fp32.c - fp32 inputs where conversions go wrong, held to the
 * oracle through fp8kv_from_float and fp8kv_quantize: specials, NaN
 * quotients, binade edges, every midpoint and overflow threshold, the
 * subnormal region, every bf16 prefix and random bit patterns.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check_support.h"
#include "float_bits.h"
#include "fp8kv.h"
#include "oracle.h"
#include "test_convert.h"

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
			ck_assert_uint_eq(fp8kv_from_float(float_of_bits(0xFFA5A5A5), formats[f], p),
					  ocp ? 0xFF : 0x80);
			ck_assert_uint_eq(fp8kv_from_float(float_of_bits(0x7F800001), formats[f], p),
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
		push_around(&l, bits_of_float(m), 3);
		push_around(&l, bits_of_float((float)v[i]), 2);
	}
	ck_assert_msg((double)threshold[_i / 2] == (v[n - 1] + past_max[_i / 2]) / 2,
		      "%s: threshold", format_names[_i / 2]);
	push_around(&l, bits_of_float(threshold[_i / 2]), 8);
	push_around(&l, bits_of_float(past_max[_i / 2]), 3);
	push_around(&l, bits_of_float(2 * past_max[_i / 2]), 3);
	check_f32_list(&l, format, ovf, "midpoints");
	/* the threshold itself: a tie, to even - 448 for e4m3fn, overflow otherwise */
	int o;
	oracle_encode(threshold[_i / 2], format, ovf, &o);
	ck_assert_int_eq(o, format == FP8KV_E4M3FN ? 0 : 1);
	oracle_encode(float_of_bits(bits_of_float(threshold[_i / 2]) - 1), format, ovf, &o);
	ck_assert_int_eq(o, 0);
	oracle_encode(float_of_bits(bits_of_float(threshold[_i / 2]) + 1), format, ovf, &o);
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

void add_fp32_tests(Suite *s)
{
	TCase *tc = cpu_tcase(s, "fp32", 120);
	tcase_add_test(tc, fp32_specials_match_the_oracle);
	tcase_add_test(tc, nan_quotients_are_signed_by_the_contract);
	tcase_add_test(tc, every_binade_edge_matches_the_oracle);
	tcase_add_loop_test(tc, around_every_midpoint_and_overflow_threshold, 0, NRUNS);
	tcase_add_loop_test(tc, subnormal_region_matches_the_oracle, 0, NRUNS);
	tcase_add_loop_test(tc, every_bf16_prefix_with_several_tails, 0, NRUNS);
	tcase_add_loop_test(tc, random_fp32_bit_patterns_match_the_oracle, 0, NRUNS);
}
