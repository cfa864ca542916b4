/* SPDX-License-Identifier: MIT */
/*
 * test_convert_bulk.c - whole input sets through the CPU backend, held to
 * the oracle: every f16 and bf16 input with every tensor scale, random f32
 * through x / s, short counts, every code dequantized; and the helpers
 * fp8kv_amax and fp8kv_suggest_scale.
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
		src[i] = float_of_bits(i % 5 == 0 ? (uint32_t)r : (b | e << 23));
	}
	for (int k = 0; k < NSCALES; k++) {
		float s = tensor_scales[k];
		uint64_t overflows = 0, added = 0;
		for (int i = 0; i < N; i++) {
			int o;
			want[i] = oracle_quantize(bits_of_float(src[i]), FP8KV_F32, 1, s, format, ovf, &o);
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
	ck_assert_int_eq(fp8kv_buffer_alloc(cpu, 256, &src), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_alloc(cpu, sizeof host, &dst), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_alloc(cpu, sizeof(float), &sbuf), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_upload(cpu, src, codes, 256), FP8KV_OK);

	for (int o = 0; o < 3; o++) {
		size_t esize = o == 0 ? 4 : 2;
		for (int k = -1; k < NDSCALES; k++) { /* -1: SCALE_ONE */
			int scaled = k >= 0;
			float s = scaled ? dequant_scales[k] : 1.0f;
			if (scaled)
				ck_assert_int_eq(fp8kv_buffer_upload(cpu, sbuf, &s, sizeof s), FP8KV_OK);
			ck_assert_int_eq(fp8kv_buffer_fill(cpu, dst, POISON, sizeof host), FP8KV_OK);
			fp8kv_status st = fp8kv_dequantize(cpu, dst, outs[o], src, format, 256,
							   scaled ? FP8KV_SCALE_TENSOR
								  : FP8KV_SCALE_ONE,
							   scaled ? sbuf : NULL, NULL);
			ck_assert_msg(st == FP8KV_OK, "fp8kv_dequantize: %s", fp8kv_last_error());
			ck_assert_int_eq(fp8kv_backend_synchronize(cpu, NULL), FP8KV_OK);
			ck_assert_int_eq(fp8kv_buffer_download(cpu, host, dst, sizeof host), FP8KV_OK);
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
	fp8kv_buffer_free(cpu, src);
	fp8kv_buffer_free(cpu, dst);
	fp8kv_buffer_free(cpu, sbuf);
}
END_TEST

/* ------------------------------------------------------------- helpers */

static float amax_of(const void *host, fp8kv_dtype dtype, size_t n)
{
	size_t bytes = n * fp8kv_dtype_size(dtype);
	void *buf;
	float amax = -1.0f;
	ck_assert_int_eq(fp8kv_buffer_alloc(cpu, bytes + 4, &buf), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_upload(cpu, buf, host, bytes), FP8KV_OK);
	ck_assert_int_eq(fp8kv_amax(cpu, buf, dtype, n, &amax), FP8KV_OK);
	fp8kv_buffer_free(cpu, buf);
	return amax;
}

START_TEST(amax_ignores_nan_and_inf)
{
	float a[] = {1.0f, -7.5f, float_of_bits(0x7FC00000), float_of_bits(0x7F800000),
		     float_of_bits(0xFF800000), 3.0f, -0.0f, float_of_bits(0xFFC00001), 7.25f};
	ck_assert(amax_of(a, FP8KV_F32, 9) == 7.5f);
	float nonfinite[] = {float_of_bits(0x7FC00000), float_of_bits(0xFF800000),
			     float_of_bits(0x7F800000)};
	ck_assert_uint_eq(bits_of_float(amax_of(nonfinite, FP8KV_F32, 3)), 0u);
	float zeros[] = {-0.0f, 0.0f, -0.0f};
	ck_assert(amax_of(zeros, FP8KV_F32, 3) == 0.0f);
	float big[] = {1.0f, -float_of_bits(0x7F7FFFFF), float_of_bits(0xFF800000)};
	ck_assert_uint_eq(bits_of_float(amax_of(big, FP8KV_F32, 3)), 0x7F7FFFFFu);
	float tiny[] = {float_of_bits(0x80000003), float_of_bits(0x00000002), float_of_bits(0x7FC00000)};
	ck_assert_uint_eq(bits_of_float(amax_of(tiny, FP8KV_F32, 3)), 3u);

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
	ck_assert_uint_eq(bits_of_float(amax_of(all, FP8KV_BF16, 65536)), 0x7F7F0000u);

	/* a large buffer, the maximum at one far-off place, NaN/Inf sprinkled */
	enum { N = 1000003 };
	float *v = malloc(N * sizeof *v);
	ck_assert_ptr_nonnull(v);
	rng_state = 42;
	for (int i = 0; i < N; i++)
		v[i] = (float)((int64_t)(rng() % 2000001) - 1000000) * 1e-6f;
	for (int i = 17; i < N; i += 99991)
		v[i] = float_of_bits(i & 1 ? 0x7F800000 : 0xFFC00000);
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
	ck_assert(fp8kv_suggest_scale(float_of_bits(0x7FC00000), FP8KV_E4M3FN) == 1.0f);
	ck_assert(fp8kv_suggest_scale(float_of_bits(0xFFC00000), FP8KV_E5M2) == 1.0f);
	ck_assert(fp8kv_suggest_scale(float_of_bits(0x7F800000), FP8KV_E4M3FNUZ) == 1.0f);
	ck_assert(fp8kv_suggest_scale(float_of_bits(0xFF800000), FP8KV_E4M3FNUZ) == 1.0f);
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
		ck_assert_msg(bits_of_float(s) == bits_of_float(want), "%s amax %a: scale %a, want %a",
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

void add_bulk_tests(Suite *s)
{
	TCase *tc = cpu_tcase(s, "bulk", 120);
	tcase_add_loop_test(tc, every_bf16_input_quantizes_as_the_oracle, 0, NRUNS);
	tcase_add_loop_test(tc, every_f16_input_quantizes_as_the_oracle, 0, NRUNS);
	tcase_add_loop_test(tc, f32_with_tensor_scales_matches_the_oracle, 0, NRUNS);
	tcase_add_loop_test(tc, short_counts_write_exactly_count_bytes, 0, NFORMATS);
	tcase_add_loop_test(tc, every_code_dequantizes_as_the_oracle, 0, NFORMATS);

	tc = cpu_tcase(s, "helpers", 60);
	tcase_add_test(tc, amax_ignores_nan_and_inf);
	tcase_add_test(tc, suggest_scale_literal_cases);
	tcase_add_loop_test(tc, suggested_scale_never_lets_amax_overflow, 0, NFORMATS);
}
