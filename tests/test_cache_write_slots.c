/* SPDX-License-Identifier: MIT */
/*
 * test_cache_write_slots.c - slot mappings on the "cpu" backend, held to
 * the oracle: out-of-range tokens (ERANGE, the first one named, through the
 * swa_mapping table too), two tokens on one slot, and copies that keep
 * every bit.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "cache_case.h"
#include "case_fixtures.h"
#include "check_support.h"
#include "fp8kv.h"
#include "oracle.h"
#include "test_cache_write.h"

/* ERANGE: out-of-range tokens are skipped, every valid token is written,
 * the status is FP8KV_ERANGE and the message names the first one. */
START_TEST(erange_random)
{
	static const cache_case_shape shape = {30, 2, 16, 8, 4};
	for (int k = 0; k < 16; k++) {
		cache_case c;
		cache_result exp, got;
		erange_case(&c, k, &shape);
		c.num_out_of_range = 1 + k % 4;
		c.seed = (uint64_t)(7000 + k);
		ck_assert_int_eq(cache_case_prepare(&c, &exp), 0);
		ck_assert_int_ge(c.first_out_of_range, 0);
		run_and_compare(&c, &exp, &got);
		ck_assert_int_eq(got.status, FP8KV_ERANGE);
		ck_assert_int_eq(got.call_status, FP8KV_ERANGE); /* the CPU reports from the call */
		ck_assert_msg(strstr(got.message, "token") != NULL, "message: %s", got.message);
		cache_result_free(&exp);
		cache_result_free(&got);
		cache_case_free(&c);
	}
}
END_TEST

/* A constructed mapping: tokens 1 and 4 out of range (slot == num_slots and
 * INT64_MAX/INT32_MAX); the message must name token 1, not token 4. */
START_TEST(erange_constructed)
{
	for (int ty = 0; ty < 2; ty++) {
		cache_case c;
		cache_result exp, got;
		small_case(&c, 6, 3); /* 12 slots */
		c.slot_type = ty ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
		c.seed = 11 + (uint64_t)ty;
		ck_assert_int_eq(cache_case_generate(&c), 0);
		const int64_t slots[6] = {5, 12, -1, 11, ty ? INT32_MAX : INT64_MAX, 0};
		memcpy(c.slots, slots, sizeof slots);
		cache_case_update_dest(&c);
		ck_assert_int_eq(c.first_out_of_range, 1);
		ck_assert_int_eq(cache_case_expect(&c, &exp), 0);
		cache_case_fix_poison(&c, &exp);
		run_and_compare(&c, &exp, &got);
		ck_assert_int_eq(got.status, FP8KV_ERANGE);
		ck_assert_msg(strstr(got.message, "token 1") != NULL, "message: %s", got.message);
		/* slots 5, 11 and 0 written; the poison elsewhere */
		ck_assert_mem_ne(got.kc + 5 * 2 * 16, c.kc_init + 5 * 2 * 16, 32);
		ck_assert_mem_ne(got.kc + 11 * 2 * 16, c.kc_init + 11 * 2 * 16, 32);
		ck_assert_mem_eq(got.kc + 6 * 2 * 16, c.kc_init + 6 * 2 * 16, 5 * 32);
		cache_result_free(&exp);
		cache_result_free(&got);
		cache_case_free(&c);
	}
}
END_TEST

/* swa_mapping: an index >= swa_mapping_len and an entry >= num_slots are
 * both out of range; a negative entry is padding. */
START_TEST(erange_swa)
{
	for (int ty = 0; ty < 4; ty++) {
		cache_case c;
		cache_result exp, got;
		small_case(&c, 5, 2); /* 8 slots */
		c.use_swa = 1;
		c.slot_type = ty & 1 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
		c.swa_type = ty & 2 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
		c.seed = 21 + (uint64_t)ty;
		ck_assert_int_eq(cache_case_generate(&c), 0);
		ck_assert_int_ge(c.swa_len, 8);
		for (int64_t i = 0; i < c.swa_len; i++)
			c.swa[i] = -1;
		c.swa[0] = 3;
		c.swa[1] = 8;  /* out of range through the table */
		c.swa[2] = 7;
		c.swa[3] = -5; /* padding through the table */
		/* token 0 -> 3; token 1: index swa_len (out of range); token 2 ->
		 * 8 (out of range); token 3 -> padding; token 4 -> 7 */
		const int64_t slots[5] = {0, c.swa_len, 1, 3, 2};
		memcpy(c.slots, slots, sizeof slots);
		cache_case_update_dest(&c);
		ck_assert_int_eq(c.first_out_of_range, 1);
		ck_assert_int_eq(c.dest[2], CACHE_CASE_OUT_OF_RANGE);
		ck_assert_int_eq(c.dest[3], CACHE_CASE_PADDING);
		ck_assert_int_eq(cache_case_expect(&c, &exp), 0);
		cache_case_fix_poison(&c, &exp);
		run_and_compare(&c, &exp, &got);
		ck_assert_int_eq(got.status, FP8KV_ERANGE);
		ck_assert_msg(strstr(got.message, "token 1") != NULL, "message: %s", got.message);
		/* now token 1 in range: the first offender is token 2 */
		cache_result_free(&exp);
		cache_result_free(&got);
		c.slots[1] = 0;
		cache_case_update_dest(&c);
		ck_assert_int_eq(c.first_out_of_range, 2);
		ck_assert_int_eq(cache_case_expect(&c, &exp), 0);
		run_and_compare(&c, &exp, &got);
		ck_assert_msg(strstr(got.message, "token 2") != NULL, "message: %s", got.message);
		cache_result_free(&exp);
		cache_result_free(&got);
		cache_case_free(&c);
	}
}
END_TEST

/* Two tokens on one slot: the CPU writes in token order, the last wins
 * (values and, for TOKEN_HEAD, the scale). */
START_TEST(duplicate_slot_last_wins)
{
	for (int m = 0; m < 4; m++) {
		cache_case c;
		cache_result exp, got;
		small_case(&c, 4, 3);
		c.scale_mode = (fp8kv_scale_mode)m;
		c.head_scales = CACHE_CASE_HEAD_SCALES_UNIFORM;
		c.k_scale = c.v_scale = 0.5f;
		c.seed = 31 + (uint64_t)m;
		ck_assert_int_eq(cache_case_generate(&c), 0);
		const int64_t slots[4] = {3, 7, 3, -1};
		memcpy(c.slots, slots, sizeof slots);
		cache_case_update_dest(&c);
		/* distinct rows: token 0 all 1.0, token 2 all -2.0 (bf16) */
		for (int64_t h = 0; h < c.num_heads; h++)
			for (int64_t d = 0; d < c.head_dim_k; d++) {
				cache_case_set_bits(c.key, c.input_dtype,
						    (size_t)(0 * c.key_stride_token + h * c.key_stride_head + d), 0x3F80);
				cache_case_set_bits(c.key, c.input_dtype,
						    (size_t)(2 * c.key_stride_token + h * c.key_stride_head + d), 0xC000);
			}
		ck_assert_int_eq(cache_case_expect(&c, &exp), 0);
		cache_case_fix_poison(&c, &exp);
		run_and_compare(&c, &exp, &got);
		/* slot 3 (NHD, 2 heads x 16) holds fp8(-2 / s), token 2's value */
		const float s = m == FP8KV_SCALE_ONE ? 1.0f : m == FP8KV_SCALE_TOKEN_HEAD ? 2.0f / 448 : 0.5f;
		const uint8_t want = oracle_quantize(0xC000, FP8KV_BF16, m != FP8KV_SCALE_ONE, s,
						     FP8KV_E4M3FN, FP8KV_SATURATE, NULL);
		for (int k = 0; k < 32; k++)
			ck_assert_uint_eq(got.kc[3 * 32 + k], want);
		if (m == FP8KV_SCALE_TOKEN_HEAD)
			ck_assert(stored_scale(&c, &got, 0, 2, 0) == 2.0f / 448);
		cache_result_free(&exp);
		cache_result_free(&got);
		cache_case_free(&c);
	}
	/* random duplicates too (CPU only) */
	for (int k = 0; k < 12; k++) {
		cache_case c;
		cache_case_init(&c);
		c.num_tokens = 40;
		c.num_duplicates = 8;
		c.use_swa = k % 2;
		c.scale_mode = (fp8kv_scale_mode)(k % 4);
		c.input_dtype = input_dtypes[k % 3];
		c.cache_dtype = fp8_formats[(k / 3) % 4];
		c.layout = (cache_case_layout)(k % 3);
		c.seed = (uint64_t)(8100 + k);
		check_case(&c);
	}
}
END_TEST

/* Copies (cache dtype == input dtype) keep every bit, NaN payloads and
 * signalling NaNs included, and convert nothing. */
START_TEST(copy_keeps_bits)
{
	for (int i = 0; i < 3; i++) {
		cache_case c;
		cache_result exp, got;
		cache_case_init(&c);
		c.input_dtype = c.cache_dtype = input_dtypes[i];
		c.num_tokens = 9;
		c.head_dim_k = 8;
		c.head_dim_v = 8;
		c.layout = (cache_case_layout)i;
		c.seed = 123 + (uint64_t)i;
		ck_assert_int_eq(cache_case_generate(&c), 0);
		const uint32_t nans[3][4] = {{0x7F800001u, 0xFFC00000u, 0x7FBFFFFFu, 0x80000001u},
					     {0x7C01u, 0xFE00u, 0x7DFFu, 0x8001u},
					     {0x7F81u, 0xFFC0u, 0x7FBFu, 0x8001u}};
		for (int64_t h = 0; h < c.num_heads; h++)
			for (int d = 0; d < 4; d++)
				cache_case_set_bits(c.key, c.input_dtype,
						    (size_t)(2 * c.key_stride_token + h * c.key_stride_head + d),
						    nans[i][d]);
		ck_assert_int_eq(cache_case_expect(&c, &exp), 0);
		cache_case_fix_poison(&c, &exp);
		run_and_compare(&c, &exp, &got);
		ck_assert_uint_eq(got.overflow_count, c.overflow_init);
		cache_result_free(&exp);
		cache_result_free(&got);
		cache_case_free(&c);
	}
}
END_TEST

void add_slot_tests(TCase *tc)
{
	tcase_add_test(tc, erange_random);
	tcase_add_test(tc, erange_constructed);
	tcase_add_test(tc, erange_swa);
	tcase_add_test(tc, duplicate_slot_last_wins);
	tcase_add_test(tc, copy_keeps_bits);
}
