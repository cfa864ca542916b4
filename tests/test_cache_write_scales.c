/* SPDX-License-Identifier: MIT */
/*
 * test_cache_write_scales.c - the scale modes on the "cpu" backend, held to
 * the oracle: ONE and TENSOR 1.0 alike, HEAD with uniform, given and
 * adversarial scales, TOKEN_HEAD's dynamic scale on constructed rows and in
 * both scale cache layouts; the counters and amax added to, never reset.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cache_case.h"
#include "case_fixtures.h"
#include "check_support.h"
#include "fp8kv.h"
#include "oracle.h"
#include "test_cache_write.h"

/* a and b have the same inputs and must give the same bytes: prepares
 * both, holds each to the oracle and the two results to each other, and
 * frees everything. */
static void check_same_bytes(cache_case *a, cache_case *b, const char *what)
{
	cache_result ea, ga, eb, gb;
	cache_diff d;
	char report[6000];
	ck_assert_int_eq(cache_case_prepare(a, &ea), 0);
	ck_assert_int_eq(cache_case_prepare(b, &eb), 0);
	ck_assert_mem_eq(a->key, b->key, a->key_elems * fp8kv_dtype_size(a->input_dtype));
	ck_assert_mem_eq(a->value, b->value, a->value_elems * fp8kv_dtype_size(a->input_dtype));
	run_and_compare(a, &ea, &ga);
	run_and_compare(b, &eb, &gb);
	cache_diff_init(&d);
	if (cache_case_compare(a, &ga, &gb, &d, 8) != 0) {
		cache_diff_report(a, &d, 8, report, sizeof report);
		ck_abort_msg("%s: %s", what, report);
	}
	cache_result_free(&ea);
	cache_result_free(&eb);
	cache_result_free(&ga);
	cache_result_free(&gb);
	cache_case_free(a);
	cache_case_free(b);
}

/* ONE and TENSOR with scale 1.0 give the same bytes (and both equal the
 * oracle).  Odd seeds also hand ONE a scale pointer holding 7, which it
 * must ignore. */
START_TEST(one_equals_tensor_one)
{
	for (int n = 0; n < FP8_CONVERSIONS; n++) {
		const int i = n / 8, f = n / 2 % 4;
		cache_case a, b;
		fp8_conversion_case(&a, n);
		cache_case_set_shape(&a, &(cache_case_shape){19, 3, 32, 8, 16});
		a.layout = (cache_case_layout)((i + f) % 3);
		a.padding_fraction = 0.2;
		a.seed = (uint64_t)(2 * n + 1);
		one_and_tensor_one(&a, &b);
		check_same_bytes(&a, &b, "ONE vs TENSOR 1.0");
	}
}
END_TEST

/* HEAD with one value in every head gives the bytes of TENSOR with it. */
START_TEST(head_uniform_equals_tensor)
{
	static const float values[] = {3.0f, 1.0f / 448, 1e-3f, 0x1p-140f, 0.5f, 1e30f};
	for (size_t v = 0; v < sizeof values / sizeof values[0]; v++)
		for (int f = 0; f < 4; f++) {
			cache_case a, b;
			conversion_case(&a, input_dtypes[(v + (size_t)f) % 3], fp8_formats[f],
					overflow_policies[(v + (size_t)f) % 2]);
			cache_case_set_shape(&a, &(cache_case_shape){23, 4, 24, 40, 8});
			a.layout = (cache_case_layout)(v % 3);
			a.k_scale = values[v];
			a.v_scale = values[(v + 1) % (sizeof values / sizeof values[0])];
			a.seed = 77 + v * 4 + (size_t)f;
			b = a;
			a.scale_mode = FP8KV_SCALE_HEAD;
			a.head_scales = CACHE_CASE_HEAD_SCALES_UNIFORM;
			b.scale_mode = FP8KV_SCALE_TENSOR;
			check_same_bytes(&a, &b, "HEAD uniform vs TENSOR");
		}
}
END_TEST

/* HEAD with given per-head arrays: every head its own divisor, the
 * defined odd ones included (0, negative, NaN, Inf). */
START_TEST(head_given_scales)
{
	static const float k[8] = {3.0f, 0.0f, -0.5f, NAN, 1.0f / 448, INFINITY, 0x1p-140f, 1.0f};
	static const float v[8] = {1e-3f, 1e30f, -0.0f, 1.0f / 57344, 0x1p-126f, 7.0f, -INFINITY, 0.1f};
	for (int n = 0; n < FP8_CONVERSIONS; n++) {
		const int i = n / 8, f = n / 2 % 4, p = n % 2;
		cache_case c;
		fp8_conversion_case(&c, n);
		c.scale_mode = FP8KV_SCALE_HEAD;
		c.head_scales = CACHE_CASE_HEAD_SCALES_GIVEN;
		c.head_k_scales = k;
		c.head_v_scales = v;
		cache_case_set_shape(&c, &(cache_case_shape){13, 8, 16, 24, 4});
		c.layout = (cache_case_layout)((i + f + p) % 3);
		c.seed = (uint64_t)(600 + n);
		check_case(&c);
	}
}
END_TEST

/* TENSOR s == the oracle on x / s, for adversarial s (loop over s),
 * including those whose quotients fp8kv.h section 5 pins down: negative,
 * +-0 (x / 0 = +-Inf counts as an overflow, 0 / 0 = NaN signed sign(x) ^
 * sign(s)), +-Inf and NaN scales. */
static const float adversarial[] = {1.0f / 448, 3.0f, 1e-3f, 0x1p-140f, 0x1p-149f, 0x1p-126f,
				    1e30f, 0.1f, 0.3f, 1.0f / 57344, 65504.0f, FLT_MAX,
				    -3.0f, 0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, -0x1p-140f};
#define N_ADVERSARIAL (int)(sizeof adversarial / sizeof adversarial[0])

START_TEST(tensor_adversarial_scales)
{
	const float s = adversarial[_i];
	for (int n = 0; n < FP8_CONVERSIONS; n++) {
		cache_case c;
		fp8_conversion_case(&c, n);
		c.scale_mode = FP8KV_SCALE_TENSOR;
		c.k_scale = s;
		c.v_scale = adversarial[(_i + 5) % N_ADVERSARIAL];
		cache_case_set_shape(&c, &(cache_case_shape){17, 2, 40, 24, 16});
		c.seed = (uint64_t)(500 + _i * 32 + n);
		check_case(&c);
	}
}
END_TEST

static int32_t signed_bits(float f)
{
	int32_t i;
	memcpy(&i, &f, sizeof i);
	return i;
}

/* Overflow and NaN counters are ADDED to their starting values and equal
 * the oracle's counts over the written tokens; amax is raised, never
 * lowered. */
START_TEST(counters_match_oracle)
{
	for (int i = 0; i < 3; i++)
		for (int f = 0; f < 4; f++) {
			cache_case c;
			cache_result exp, got;
			conversion_case(&c, input_dtypes[i], fp8_formats[f],
					overflow_policies[(i + f) % 2]);
			c.scale_mode = FP8KV_SCALE_TENSOR;
			c.k_scale = 1e-3f; /* many finite overflows */
			c.v_scale = 0x1p-140f;
			cache_case_set_shape(&c, &(cache_case_shape){40, 3, 32, 32, 16});
			c.padding_fraction = 0.3;
			c.num_out_of_range = 2;
			c.seed = (uint64_t)(900 + i * 4 + f);
			ck_assert_int_eq(cache_case_prepare(&c, &exp), 0);
			ck_assert_uint_gt(exp.overflow_count, c.overflow_init);
			ck_assert_uint_gt(exp.nan_count, c.nan_init);
			run_and_compare(&c, &exp, &got);
			ck_assert_uint_eq(got.overflow_count, exp.overflow_count);
			ck_assert_uint_eq(got.nan_count, exp.nan_count);
			/* raised, in section 7's order (fp32 bits as signed integers) */
			for (int64_t h = 0; h < c.num_heads; h++) {
				ck_assert_int_ge(signed_bits(got.k_amax[h]), signed_bits(c.k_amax_init[h]));
				ck_assert_int_ge(signed_bits(got.v_amax[h]), signed_bits(c.v_amax_init[h]));
			}
			cache_result_free(&exp);
			cache_result_free(&got);
			cache_case_free(&c);
		}
}
END_TEST

/* Nothing written: counters and amax keep their starting values. */
START_TEST(counters_untouched_without_writes)
{
	cache_case c;
	cache_result exp, got;
	cache_case_init(&c);
	c.num_tokens = 12;
	c.padding_fraction = 1.0; /* every token is padding */
	c.scale_mode = FP8KV_SCALE_TENSOR;
	c.k_scale = c.v_scale = 1e-3f;
	ck_assert_int_eq(cache_case_prepare(&c, &exp), 0);
	run_and_compare(&c, &exp, &got);
	ck_assert_uint_eq(got.overflow_count, c.overflow_init);
	ck_assert_uint_eq(got.nan_count, c.nan_init);
	ck_assert_mem_eq(got.k_amax, c.k_amax_init, (size_t)c.num_heads * sizeof(float));
	ck_assert_mem_eq(got.kc, c.kc_init, c.kc_elems);
	cache_result_free(&exp);
	cache_result_free(&got);
	cache_case_free(&c);
}
END_TEST

/* num_tokens == 0 writes nothing and succeeds. */
START_TEST(zero_tokens)
{
	for (int m = 0; m < 4; m++) {
		cache_case c;
		cache_result exp, got;
		small_case(&c, 0, 3);
		c.scale_mode = (fp8kv_scale_mode)m;
		c.k_scale = c.v_scale = 3.0f;
		ck_assert_int_eq(cache_case_prepare(&c, &exp), 0);
		run_and_compare(&c, &exp, &got);
		ck_assert_int_eq(got.status, FP8KV_OK);
		ck_assert_mem_eq(got.kc, c.kc_init, c.kc_elems);
		ck_assert_mem_eq(got.vc, c.vc_init, c.vc_elems);
		ck_assert_uint_eq(got.overflow_count, c.overflow_init);
		cache_result_free(&exp);
		cache_result_free(&got);
		cache_case_free(&c);
	}
}
END_TEST

/* TOKEN_HEAD's dynamic scale on constructed rows. */
static void set_row(cache_case *c, int kv, int64_t t, int64_t h, const uint32_t *bits)
{
	const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
	const int64_t base = t * (kv ? c->value_stride_token : c->key_stride_token) +
			     h * (kv ? c->value_stride_head : c->key_stride_head);
	for (int64_t d = 0; d < D; d++)
		cache_case_set_bits(kv ? c->value : c->key, c->input_dtype, (size_t)(base + d), bits[d]);
}

START_TEST(token_head_special_rows)
{
	enum { D = 16, T = 6 };
	for (int i = 0; i < 3; i++)
		for (int f = 0; f < 4; f++)
			for (int sl = 0; sl < 2; sl++) {
				const fp8kv_dtype in = input_dtypes[i];
				const fp8kv_dtype fmt = fp8_formats[f];
				const uint32_t one = cache_case_round_bits(1.0, in);
				const uint32_t sign = in == FP8KV_F32 ? 0x80000000u : 0x8000u;
				const uint32_t inf = in == FP8KV_F32 ? 0x7F800000u : in == FP8KV_F16 ? 0x7C00u : 0x7F80u;
				const uint32_t maxf = inf - 1; /* the largest finite input */
				uint32_t rows_[T][D];
				for (int d = 0; d < D; d++) {
					rows_[0][d] = d % 3 ? 0 : sign;              /* zeros, some -0 */
					rows_[1][d] = d % 2 ? inf | (d % 4 ? sign : 0) : inf | 1u | (uint32_t)d; /* no finite */
					rows_[2][d] = (uint32_t)(d + 1) | (d % 2 ? sign : 0); /* subnormals */
					rows_[3][d] = d == 5 ? maxf | sign : one;    /* amax = max finite */
					rows_[4][d] = d == 1 ? inf : d == 2 ? inf | 3u : one + (uint32_t)d; /* mixed */
					rows_[5][d] = d == 7 ? cache_case_round_bits(-0.75, in) : 0; /* one value */
				}
				cache_case c;
				cache_result exp, got;
				conversion_case(&c, in, fmt, overflow_policies[(i + f) % 2]);
				c.scale_mode = FP8KV_SCALE_TOKEN_HEAD;
				c.scale_layout = (cache_case_scale_layout)sl;
				c.layout = (cache_case_layout)((i + f + sl) % 3);
				c.num_tokens = T;
				c.num_heads = 2;
				c.head_dim_k = c.head_dim_v = D;
				c.block_size = 4;
				c.seed = (uint64_t)(40 + i * 8 + f * 2 + sl);
				ck_assert_int_eq(cache_case_generate(&c), 0);
				for (int64_t t = 0; t < T; t++)
					for (int64_t h = 0; h < 2; h++)
						for (int kv = 0; kv < 2; kv++)
							set_row(&c, kv, t, h, rows_[(t + h + kv) % T]);
				ck_assert_int_eq(cache_case_expect(&c, &exp), 0);
				cache_case_fix_poison(&c, &exp);
				run_and_compare(&c, &exp, &got);
				ck_assert_uint_eq(got.overflow_count, c.overflow_init); /* never overflows */
				for (int64_t t = 0; t < T; t++)
					for (int64_t h = 0; h < 2; h++)
						for (int kv = 0; kv < 2; kv++) {
							const int row = (int)((t + h + kv) % T);
							const float s = stored_scale(&c, &got, kv, t, h);
							if (row == 0 || row == 1)
								ck_assert_msg(s == 1.0f, "row %d: s = %a, want 1", row, (double)s);
							if (row == 2 && in != FP8KV_F16)
								ck_assert_msg(s == 0x1p-126f, "subnormal amax: s = %a, want 2^-126",
									      (double)s);
							if (row == 3) {
								/* the largest input becomes -fmax, not an overflow */
								const int64_t slot = c.dest[t];
								const int64_t blk = slot / c.block_size, off = slot % c.block_size;
								const int64_t idx = kv
									? blk * c.vc_stride_block + off * c.vc_stride_slot + h * c.vc_stride_head + 5
									: blk * c.kc_stride_block + off * c.kc_stride_slot + h * c.kc_stride_head + 5;
								const uint8_t q = (kv ? got.vc : got.kc)[idx];
								ck_assert_msg(oracle_decode(q, fmt) == -(double)fp8kv_fp8_max(fmt),
									      "max row: code 0x%02x", q);
							}
						}
				cache_result_free(&exp);
				cache_result_free(&got);
				cache_case_free(&c);
			}
}
END_TEST

/* Both scale cache layouts, with every cache layout, on random data. */
START_TEST(scale_cache_layouts)
{
	for (int sl = 0; sl < 2; sl++)
		for (int l = 0; l < 3; l++)
			for (int f = 0; f < 4; f++) {
				cache_case c;
				conversion_case(&c, input_dtypes[(l + f) % 3], fp8_formats[f],
						overflow_policies[(sl + l) % 2]);
				c.scale_mode = FP8KV_SCALE_TOKEN_HEAD;
				c.scale_layout = (cache_case_scale_layout)sl;
				c.layout = (cache_case_layout)l;
				cache_case_set_shape(&c, &(cache_case_shape){29, 3, 24, 40, 8});
				c.num_blocks = 7;
				c.padding_fraction = 0.2;
				c.special_rows = 1;
				c.seed = (uint64_t)(3000 + sl * 100 + l * 10 + f);
				check_case(&c);
			}
}
END_TEST

void add_scale_tests(TCase *tc)
{
	tcase_add_test(tc, one_equals_tensor_one);
	tcase_add_test(tc, head_uniform_equals_tensor);
	tcase_add_test(tc, head_given_scales);
	tcase_add_loop_test(tc, tensor_adversarial_scales, 0, N_ADVERSARIAL);
	tcase_add_test(tc, counters_match_oracle);
	tcase_add_test(tc, counters_untouched_without_writes);
	tcase_add_test(tc, zero_tokens);
	tcase_add_test(tc, token_head_special_rows);
	tcase_add_test(tc, scale_cache_layouts);
}
