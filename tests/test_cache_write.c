/* SPDX-License-Identifier: MIT */
/*
 * test_cache_write.c - fp8kv_reshape_and_cache on the "cpu" backend, held
 * byte for byte to the oracle (validate/oracle.h) through validate/cache_case.h:
 * every byte of both (poisoned) caches and scale caches, the counters, the
 * amax outputs and the status are compared.
 *
 * The matrix.  Dimensions:
 *   conversion: input {f32, f16, bf16} x cache {same as input, e4m3fn,
 *               e4m3fnuz, e5m2, e5m2fnuz} x scale {ONE, TENSOR, HEAD,
 *               TOKEN_HEAD} (modes other than ONE only with FP8 caches) x
 *               overflow {saturate, nonsat}: 3 x 17 x 2 = 102 combinations;
 *   structure:  layout {NHD, HND, strided} x head dims {64/64, 24/40} x
 *               block size {1, 16, 64} x tokens {0, 1, many} (many = 100 in
 *               the first pass, 37 in the second) x swa {no, yes}
 *               x slot type {int64, int32}: 216 combinations.
 * The full product (22032 cases) would take minutes, so every conversion
 * combination (a loop-test iteration) runs the rows of a pairwise covering
 * array of the structural dimensions, built greedily by case_fixtures.c
 * (every pair of levels of any two structural dimensions appears in some
 * row: 12 rows), twice, with the levels rotated differently for each
 * combination and pass so that the combinations see different triples:
 * 102 x 12 x 2 = 2448 cases.  Hence every pair of dimensions of the whole matrix is covered:
 * conversion x conversion by the full product, conversion x structure
 * because each combination runs every row, structure x structure by the
 * covering array.  Seeds, head counts (1-4), padding fractions,
 * out-of-range tokens, special rows, scale cache layouts, the TENSOR scale
 * (from an adversarial list), the HEAD scales (adversarial, per head) and
 * the optional outputs vary from case to case.  The "matrix_summary" test
 * prints the counts (about 14 million input elements, 47 MB of cache
 * images compared) and checks the coverage.
 *
 * The dedicated tests are in test_cache_write_scales.c (scale modes,
 * counters, amax), test_cache_write_slots.c (slot mappings) and
 * test_cache_write_long.c (calls long enough for the CPU's lookup tables).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_case.h"
#include "case_fixtures.h"
#include "check_support.h"
#include "fp8kv.h"
#include "test_cache_write.h"

/* ------------------------------------------------------------- helpers */

void run_and_compare(cache_case *c, cache_result *exp, cache_result *got)
{
	cache_diff d;
	char report[6000];
	ck_assert_msg(cache_case_run(cpu, c, got) == 0, "run: %s", cache_case_error());
	cache_diff_init(&d);
	if (cache_case_compare(c, exp, got, &d, 8) != 0) {
		cache_diff_report(c, &d, 8, report, sizeof report);
		ck_abort_msg("CPU differs from the oracle: %s", report);
	}
	ck_assert_uint_gt(d.bytes_compared, 0);
}

void small_case(cache_case *c, int64_t num_tokens, int64_t num_blocks)
{
	cache_case_init(c);
	c->num_tokens = num_tokens;
	c->num_blocks = num_blocks;
}

void check_case(cache_case *c)
{
	cache_result exp, got;
	ck_assert_msg(cache_case_prepare(c, &exp) == 0, "prepare: %s", cache_case_error());
	run_and_compare(c, &exp, &got);
	cache_result_free(&exp);
	cache_result_free(&got);
	cache_case_free(c);
}

float stored_scale(const cache_case *c, const cache_result *r, int kv, int64_t t, int64_t h)
{
	const int64_t slot = c->dest[t], blk = slot / c->block_size, off = slot % c->block_size;
	const float *sc = kv ? r->vsc : r->ksc;
	if (c->layout == CACHE_CASE_STRIDED) /* padded: only the strides say */
		return sc[blk * c->sc_stride_block + off * c->sc_stride_slot + h * c->sc_stride_head];
	/* the documented layouts, spelled out rather than through the strides */
	if (c->scale_layout == CACHE_CASE_SCALES_BHS)
		return sc[(blk * c->num_heads + h) * c->block_size + off];
	return sc[(blk * c->block_size + off) * c->num_heads + h];
}

/* --------------------------------------------------------------- matrix */

static const matrix_structure structure = {
	.levels = {3, 2, 3, 3, 2, 2},
	.head_dims = {{64, 64}, {24, 40}},
	.block_sizes = {1, 16, 64},
};

/* Each combination runs the covering array twice, with two different
 * rotations of the levels and different seeds and options. */
#define MATRIX_PASSES 2

/* tokens {0, 1, many}: many is 100 in the first pass, 37 in the second */
static const int64_t token_counts[MATRIX_PASSES][3] = {{0, 1, 100}, {0, 1, 37}};

static matrix_combo combos[MATRIX_MAX_COMBOS];
static int ncombos;
static covering_array array;

/* Case r of combination i in pass p. */
static void matrix_case_of(cache_case *c, int i, int r, int p)
{
	matrix_structure st = structure;
	int lv[MATRIX_FACTORS];
	memcpy(st.token_counts, token_counts[p], sizeof st.token_counts);
	matrix_levels(&array, r, i, p, lv);
	r += p * array.nrows;
	matrix_case(c, &combos[i], &st, lv, i, r, (uint64_t)(1000 * i + r + 1));
	c->num_heads = 1 + (int64_t)(c->seed % 4);
}

START_TEST(matrix)
{
	/* _i: the conversion combination.  Every case runs; the first
	 * failing one is reported in full with the number of failures. */
	int failures = 0, cases = 0;
	static char first[6000];
	first[0] = 0;
	for (int pass = 0; pass < MATRIX_PASSES; pass++)
		for (int r = 0; r < array.nrows; r++) {
			cache_case c;
			cache_result exp, got;
			cache_diff d;
			matrix_case_of(&c, _i, r, pass);
			ck_assert_msg(cache_case_prepare(&c, &exp) == 0, "prepare: %s", cache_case_error());
			ck_assert_msg(cache_case_run(cpu, &c, &got) == 0, "run: %s", cache_case_error());
			cache_diff_init(&d);
			cases++;
			if (cache_case_compare(&c, &exp, &got, &d, 8) != 0 && failures++ == 0)
				cache_diff_report(&c, &d, 8, first, sizeof first);
			ck_assert_uint_gt(d.bytes_compared, 0);
			cache_result_free(&exp);
			cache_result_free(&got);
			cache_case_free(&c);
		}
	ck_assert_msg(failures == 0, "%d of %d cases differ from the oracle; the first: %s",
		      failures, cases, first);
}
END_TEST

/* Prints the size of the matrix (cases, bytes compared) and checks that it
 * is what the comment above says. */
START_TEST(matrix_summary)
{
	uint64_t cases = 0, bytes = 0, elements = 0;
	ck_assert_int_eq(ncombos, 102);
	ck_assert_int_ge(array.nrows, 9);
	/* every structural pair is covered */
	for (int f = 0; f < MATRIX_FACTORS; f++)
		for (int g = f + 1; g < MATRIX_FACTORS; g++)
			for (int a = 0; a < structure.levels[f]; a++)
				for (int b = 0; b < structure.levels[g]; b++) {
					int found = 0;
					for (int r = 0; r < array.nrows && !found; r++)
						found = array.rows[r][f] == a && array.rows[r][g] == b;
					ck_assert_msg(found, "pair (%d=%d, %d=%d) not covered", f, a, g, b);
				}
	for (int i = 0; i < ncombos; i++) {
		for (int r = 0; r < array.nrows * MATRIX_PASSES; r++) {
			cache_case c;
			matrix_case_of(&c, i, r % array.nrows, r / array.nrows);
			ck_assert_int_eq(cache_case_generate(&c), 0);
			cases++;
			bytes += (c.kc_elems + c.vc_elems) * fp8kv_dtype_size(c.cache_dtype) +
				 2 * c.sc_elems * 4;
			elements += (uint64_t)(c.num_tokens * c.num_heads * (c.head_dim_k + c.head_dim_v));
			cache_case_free(&c);
		}
	}
	printf("cache write matrix: %d conversion combinations x %d structural rows x %d passes"
	       " = %llu cases, %llu input elements, %llu cache bytes compared\n",
	       ncombos, array.nrows, MATRIX_PASSES, (unsigned long long)cases,
	       (unsigned long long)elements, (unsigned long long)bytes);
	ck_assert_uint_gt(cases, 2000);
}
END_TEST

/* ------------------------------------------------- the descriptor's defaults */

/* fp8kv_cache_write_init fills the documented sizes, strides and defaults. */
START_TEST(init_strides)
{
	fp8kv_cache_write d;
	memset(&d, 0x5A, sizeof d);
	fp8kv_cache_write_init(&d, 7, 3, 24, 40, 5, 16, FP8KV_LAYOUT_NHD);
	ck_assert_int_eq(d.num_tokens, 7);
	ck_assert_int_eq(d.num_heads, 3);
	ck_assert_int_eq(d.head_dim_k, 24);
	ck_assert_int_eq(d.head_dim_v, 40);
	ck_assert_int_eq(d.num_blocks, 5);
	ck_assert_int_eq(d.block_size, 16);
	ck_assert_int_eq(d.key_stride_token, 3 * 24);
	ck_assert_int_eq(d.key_stride_head, 24);
	ck_assert_int_eq(d.value_stride_token, 3 * 40);
	ck_assert_int_eq(d.value_stride_head, 40);
	ck_assert_int_eq(d.key_cache_stride_block, 16 * 3 * 24);
	ck_assert_int_eq(d.key_cache_stride_slot, 3 * 24);
	ck_assert_int_eq(d.key_cache_stride_head, 24);
	ck_assert_int_eq(d.value_cache_stride_block, 16 * 3 * 40);
	ck_assert_int_eq(d.value_cache_stride_slot, 3 * 40);
	ck_assert_int_eq(d.value_cache_stride_head, 40);
	/* scale cache [blocks][block_size][heads] for NHD */
	ck_assert_int_eq(d.scale_cache_stride_block, 16 * 3);
	ck_assert_int_eq(d.scale_cache_stride_slot, 3);
	ck_assert_int_eq(d.scale_cache_stride_head, 1);
	ck_assert_int_eq(d.slot_type, FP8KV_INDEX_INT64);
	ck_assert_int_eq(d.scale_mode, FP8KV_SCALE_ONE);
	ck_assert_int_eq(d.overflow, FP8KV_SATURATE);
	ck_assert_ptr_null(d.key);
	ck_assert_ptr_null(d.swa_mapping);
	ck_assert_ptr_null(d.overflow_count);
	ck_assert_ptr_null(d.k_amax);
	ck_assert_int_eq(d.swa_mapping_len, 0);

	fp8kv_cache_write_init(&d, 7, 3, 24, 40, 5, 16, FP8KV_LAYOUT_HND);
	ck_assert_int_eq(d.key_cache_stride_block, 3 * 16 * 24);
	ck_assert_int_eq(d.key_cache_stride_head, 16 * 24);
	ck_assert_int_eq(d.key_cache_stride_slot, 24);
	ck_assert_int_eq(d.value_cache_stride_block, 3 * 16 * 40);
	ck_assert_int_eq(d.value_cache_stride_head, 16 * 40);
	ck_assert_int_eq(d.value_cache_stride_slot, 40);
	/* scale cache [blocks][heads][block_size] for HND */
	ck_assert_int_eq(d.scale_cache_stride_block, 3 * 16);
	ck_assert_int_eq(d.scale_cache_stride_head, 16);
	ck_assert_int_eq(d.scale_cache_stride_slot, 1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cache_write");
	TCase *tc = cpu_tcase(s, "matrix", 120);
	tcase_add_test(tc, matrix_summary);
	tcase_add_loop_test(tc, matrix, 0, ncombos);

	tc = cpu_tcase(s, "dedicated", 120);
	tcase_add_test(tc, init_strides);
	add_scale_tests(tc);
	add_slot_tests(tc);
	add_long_call_tests(tc);
	return s;
}

int main(void)
{
	ncombos = matrix_combos(combos);
	covering_array_build(&array, structure.levels);
	return run_suite(suite());
}
