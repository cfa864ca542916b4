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
 * array of the structural dimensions, built greedily below (every pair of
 * levels of any two structural dimensions appears in some row: 12 rows),
 * twice, with the levels rotated differently for each combination and pass
 * so that the combinations see different triples: 102 x 12 x 2 = 2448
 * cases.  Hence every pair of dimensions of the whole matrix is covered:
 * conversion x conversion by the full product, conversion x structure
 * because each combination runs every row, structure x structure by the
 * covering array.  Seeds, head counts (1-4), padding fractions,
 * out-of-range tokens, special rows, scale cache layouts, the TENSOR scale
 * (from an adversarial list), the HEAD scales (adversarial, per head) and
 * the optional outputs vary from case to case.  The "matrix_summary" test
 * prints the counts (about 14 million input elements, 47 MB of cache
 * images compared) and checks the coverage.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_case.h"
#include "fp8kv.h"
#include "oracle.h"

static fp8kv_backend *cpu;

static void setup(void)
{
	ck_assert_int_eq(fp8kv_backend_open("cpu", &cpu), FP8KV_OK);
}

static void teardown(void)
{
	fp8kv_backend_close(cpu);
	cpu = NULL;
}

/* ------------------------------------------------------------- helpers */

static const fp8kv_dtype inputs[] = {FP8KV_F32, FP8KV_F16, FP8KV_BF16};
static const fp8kv_dtype formats[] = {FP8KV_E4M3FN, FP8KV_E4M3FNUZ, FP8KV_E5M2, FP8KV_E5M2FNUZ};
static const fp8kv_overflow policies[] = {FP8KV_SATURATE, FP8KV_NONSATURATING};

/* Runs c (already prepared into *exp) on the CPU into *got and asserts that
 * the two agree on every byte. */
static void run_and_compare(cache_case *c, cache_result *exp, cache_result *got)
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

/* Prepares, runs and compares c; frees everything. */
static void check_case(cache_case *c)
{
	cache_result exp, got;
	ck_assert_msg(cache_case_prepare(c, &exp) == 0, "prepare: %s", cache_case_error());
	run_and_compare(c, &exp, &got);
	cache_result_free(&exp);
	cache_result_free(&got);
	cache_case_free(c);
}

/* Two results of cases with identical inputs must be identical. */
static void assert_same(const cache_case *c, const cache_result *a, const cache_result *b,
			const char *what)
{
	cache_diff d;
	char report[6000];
	cache_diff_init(&d);
	if (cache_case_compare(c, a, b, &d, 8) != 0) {
		cache_diff_report(c, &d, 8, report, sizeof report);
		ck_abort_msg("%s: %s", what, report);
	}
}

/* --------------------------------------------------------------- matrix */

enum { F_LAYOUT, F_HEADDIM, F_BLOCK, F_TOKENS, F_SWA, F_SLOT, NF };
static const int levels[NF] = {3, 2, 3, 3, 2, 2};
static const int64_t block_sizes[3] = {1, 16, 64};
static const int64_t token_counts[2][3] = {{0, 1, 100}, {0, 1, 37}}; /* per pass */
static const int64_t head_dims[2][2] = {{64, 64}, {24, 40}};

#define MAX_ROWS 32
static int rows[MAX_ROWS][NF];
static int nrows;

/* A greedy pairwise covering array of the structural dimensions:
 * repeatedly the candidate row covering the most uncovered pairs. */
static void build_covering_array(void)
{
	static unsigned char covered[NF][3][NF][3];
	memset(covered, 0, sizeof covered);
	int left = 0;
	for (int f = 0; f < NF; f++)
		for (int g = f + 1; g < NF; g++)
			left += levels[f] * levels[g];
	nrows = 0;
	while (left > 0 && nrows < MAX_ROWS) {
		int best[NF] = {0}, best_gain = -1, cand[NF];
		int total = 1;
		for (int f = 0; f < NF; f++)
			total *= levels[f];
		for (int k = 0; k < total; k++) {
			int x = k, gain = 0;
			for (int f = 0; f < NF; f++) {
				cand[f] = x % levels[f];
				x /= levels[f];
			}
			for (int f = 0; f < NF; f++)
				for (int g = f + 1; g < NF; g++)
					gain += !covered[f][cand[f]][g][cand[g]];
			if (gain > best_gain) {
				best_gain = gain;
				memcpy(best, cand, sizeof best);
			}
		}
		for (int f = 0; f < NF; f++)
			for (int g = f + 1; g < NF; g++)
				if (!covered[f][best[f]][g][best[g]]) {
					covered[f][best[f]][g][best[g]] = 1;
					left--;
				}
		memcpy(rows[nrows++], best, sizeof best);
	}
}

/* The conversion combinations, in a fixed order. */
typedef struct combo {
	fp8kv_dtype in, cache;
	fp8kv_scale_mode mode;
	fp8kv_overflow overflow;
} combo;

#define MAX_COMBOS 128
static combo combos[MAX_COMBOS];
static int ncombos;

static void build_combos(void)
{
	ncombos = 0;
	for (int i = 0; i < 3; i++) {
		for (int k = -1; k < 4; k++) {
			for (int m = 0; m < 4; m++) {
				if (k < 0 && m > 0)
					continue;
				for (int p = 0; p < 2; p++) {
					combo *cb = &combos[ncombos++];
					cb->in = inputs[i];
					cb->cache = k < 0 ? inputs[i] : formats[k];
					cb->mode = (fp8kv_scale_mode)m;
					cb->overflow = policies[p];
				}
			}
		}
	}
}

static const float tensor_scales[] = {1.0f, 3.0f, 1.0f / 448, 1e-3f, 0.5f, 0x1p-140f,
				      7.0f, 0x1p-126f, 1e30f, 0.1f, 1.0f / 240, 4096.0f,
				      -3.0f, 0.0f, INFINITY, NAN};
#define N_TENSOR_SCALES (sizeof tensor_scales / sizeof tensor_scales[0])

/* Each combination runs the covering array twice, with two different
 * rotations of the levels and different seeds and options. */
#define MATRIX_PASSES 2

/* Case r of combination i in pass p. */
static void matrix_case(cache_case *c, int i, int r, int p)
{
	const combo *cb = &combos[i];
	int lv[NF];
	for (int f = 0; f < NF; f++)
		lv[f] = (rows[r][f] + i * (f + 1 + p)) % levels[f];
	r += p * nrows;
	cache_case_init(c);
	c->seed = (uint64_t)(1000 * i + r + 1);
	c->input_dtype = cb->in;
	c->cache_dtype = cb->cache;
	c->scale_mode = cb->mode;
	c->overflow = cb->overflow;
	c->layout = (cache_case_layout)lv[F_LAYOUT];
	c->head_dim_k = head_dims[lv[F_HEADDIM]][0];
	c->head_dim_v = head_dims[lv[F_HEADDIM]][1];
	c->block_size = block_sizes[lv[F_BLOCK]];
	c->num_tokens = token_counts[p][lv[F_TOKENS]];
	c->use_swa = lv[F_SWA];
	c->slot_type = lv[F_SLOT] ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
	c->swa_type = (r + i) % 3 == 0 ? FP8KV_INDEX_INT32 : c->slot_type;
	c->num_heads = 1 + (int64_t)(c->seed % 4);
	c->padding_fraction = r % 2 ? 0.25 : 0.0;
	c->num_out_of_range = r % 4 == 3 ? 1 + (int64_t)(c->seed % 3) : 0;
	c->special_rows = (r + i) % 2 == 0;
	c->scale_layout = (cache_case_scale_layout)((r + i / 2) % 2);
	c->k_scale = tensor_scales[(size_t)(i + r) % N_TENSOR_SCALES];
	c->v_scale = tensor_scales[(size_t)(i + 3 * r + 5) % N_TENSOR_SCALES];
	c->want_overflow_count = c->want_nan_count = c->want_amax = r % 5 != 4;
	c->num_blocks = 0;
	if (r % 3 == 2) /* plenty of spare blocks that must stay untouched */
		c->num_blocks = (c->num_tokens + 2 * c->block_size) / c->block_size + 1;
}

START_TEST(matrix)
{
	/* _i: the conversion combination.  Every case runs; the first
	 * failing one is reported in full with the number of failures. */
	int failures = 0, cases = 0;
	static char first[6000];
	first[0] = 0;
	for (int pass = 0; pass < MATRIX_PASSES; pass++)
		for (int r = 0; r < nrows; r++) {
			cache_case c;
			cache_result exp, got;
			cache_diff d;
			matrix_case(&c, _i, r, pass);
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
	ck_assert_int_ge(nrows, 9);
	/* every structural pair is covered */
	for (int f = 0; f < NF; f++)
		for (int g = f + 1; g < NF; g++)
			for (int a = 0; a < levels[f]; a++)
				for (int b = 0; b < levels[g]; b++) {
					int found = 0;
					for (int r = 0; r < nrows && !found; r++)
						found = rows[r][f] == a && rows[r][g] == b;
					ck_assert_msg(found, "pair (%d=%d, %d=%d) not covered", f, a, g, b);
				}
	for (int i = 0; i < ncombos; i++) {
		for (int r = 0; r < nrows * MATRIX_PASSES; r++) {
			cache_case c;
			matrix_case(&c, i, r % nrows, r / nrows);
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
	       ncombos, nrows, MATRIX_PASSES, (unsigned long long)cases, (unsigned long long)elements,
	       (unsigned long long)bytes);
	ck_assert_uint_gt(cases, 2000);
}
END_TEST

/* ------------------------------------------------------ dedicated tests */

/* ONE and TENSOR with scale 1.0 give the same bytes (and both equal the
 * oracle).  Odd seeds also hand ONE a scale pointer holding 7, which it
 * must ignore. */
START_TEST(one_equals_tensor_one)
{
	for (int i = 0; i < 3; i++)
		for (int f = 0; f < 4; f++)
			for (int p = 0; p < 2; p++) {
				cache_case a, b;
				cache_result ea, ga, eb, gb;
				cache_case_init(&a);
				a.input_dtype = inputs[i];
				a.cache_dtype = formats[f];
				a.overflow = policies[p];
				a.num_tokens = 19;
				a.num_heads = 3;
				a.head_dim_k = 32;
				a.head_dim_v = 8;
				a.block_size = 16;
				a.layout = (cache_case_layout)((i + f) % 3);
				a.padding_fraction = 0.2;
				a.seed = (uint64_t)(2 * (i * 8 + f * 2 + p) + 1);
				b = a;
				a.scale_mode = FP8KV_SCALE_ONE;
				b.scale_mode = FP8KV_SCALE_TENSOR;
				b.k_scale = b.v_scale = 1.0f;
				ck_assert_int_eq(cache_case_prepare(&a, &ea), 0);
				ck_assert_int_eq(cache_case_prepare(&b, &eb), 0);
				ck_assert_mem_eq(a.key, b.key, a.key_elems * fp8kv_dtype_size(a.input_dtype));
				run_and_compare(&a, &ea, &ga);
				run_and_compare(&b, &eb, &gb);
				assert_same(&a, &ga, &gb, "ONE vs TENSOR 1.0");
				cache_result_free(&ea);
				cache_result_free(&eb);
				cache_result_free(&ga);
				cache_result_free(&gb);
				cache_case_free(&a);
				cache_case_free(&b);
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
			cache_result ea, ga, eb, gb;
			cache_case_init(&a);
			a.input_dtype = inputs[(v + (size_t)f) % 3];
			a.cache_dtype = formats[f];
			a.overflow = policies[(v + (size_t)f) % 2];
			a.num_tokens = 23;
			a.num_heads = 4;
			a.head_dim_k = 24;
			a.head_dim_v = 40;
			a.block_size = 8;
			a.layout = (cache_case_layout)(v % 3);
			a.k_scale = values[v];
			a.v_scale = values[(v + 1) % (sizeof values / sizeof values[0])];
			a.seed = 77 + v * 4 + (size_t)f;
			b = a;
			a.scale_mode = FP8KV_SCALE_HEAD;
			a.head_scales = CACHE_CASE_HEAD_SCALES_UNIFORM;
			b.scale_mode = FP8KV_SCALE_TENSOR;
			ck_assert_int_eq(cache_case_prepare(&a, &ea), 0);
			ck_assert_int_eq(cache_case_prepare(&b, &eb), 0);
			ck_assert_mem_eq(a.value, b.value, a.value_elems * fp8kv_dtype_size(a.input_dtype));
			run_and_compare(&a, &ea, &ga);
			run_and_compare(&b, &eb, &gb);
			assert_same(&a, &ga, &gb, "HEAD uniform vs TENSOR");
			cache_result_free(&ea);
			cache_result_free(&eb);
			cache_result_free(&ga);
			cache_result_free(&gb);
			cache_case_free(&a);
			cache_case_free(&b);
		}
}
END_TEST

/* HEAD with given per-head arrays: every head its own divisor, the
 * defined odd ones included (0, negative, NaN, Inf). */
START_TEST(head_given_scales)
{
	static const float k[8] = {3.0f, 0.0f, -0.5f, NAN, 1.0f / 448, INFINITY, 0x1p-140f, 1.0f};
	static const float v[8] = {1e-3f, 1e30f, -0.0f, 1.0f / 57344, 0x1p-126f, 7.0f, -INFINITY, 0.1f};
	for (int i = 0; i < 3; i++)
		for (int f = 0; f < 4; f++)
			for (int p = 0; p < 2; p++) {
				cache_case c;
				cache_case_init(&c);
				c.input_dtype = inputs[i];
				c.cache_dtype = formats[f];
				c.overflow = policies[p];
				c.scale_mode = FP8KV_SCALE_HEAD;
				c.head_scales = CACHE_CASE_HEAD_SCALES_GIVEN;
				c.head_k_scales = k;
				c.head_v_scales = v;
				c.num_tokens = 13;
				c.num_heads = 8;
				c.head_dim_k = 16;
				c.head_dim_v = 24;
				c.block_size = 4;
				c.layout = (cache_case_layout)((i + f + p) % 3);
				c.seed = (uint64_t)(600 + i * 8 + f * 2 + p);
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
	for (int i = 0; i < 3; i++)
		for (int f = 0; f < 4; f++)
			for (int p = 0; p < 2; p++) {
				cache_case c;
				cache_case_init(&c);
				c.input_dtype = inputs[i];
				c.cache_dtype = formats[f];
				c.overflow = policies[p];
				c.scale_mode = FP8KV_SCALE_TENSOR;
				c.k_scale = s;
				c.v_scale = adversarial[(_i + 5) % N_ADVERSARIAL];
				c.num_tokens = 17;
				c.num_heads = 2;
				c.head_dim_k = 40;
				c.head_dim_v = 24;
				c.block_size = 16;
				c.seed = (uint64_t)(500 + _i * 32 + i * 8 + f * 2 + p);
				check_case(&c);
			}
}
END_TEST

/* Overflow and NaN counters are ADDED to their starting values and equal
 * the oracle's counts over the written tokens; amax is raised, never
 * lowered. */
START_TEST(counters_match_oracle)
{
	for (int i = 0; i < 3; i++)
		for (int f = 0; f < 4; f++) {
			cache_case c;
			cache_result exp, got;
			cache_case_init(&c);
			c.input_dtype = inputs[i];
			c.cache_dtype = formats[f];
			c.overflow = policies[(i + f) % 2];
			c.scale_mode = FP8KV_SCALE_TENSOR;
			c.k_scale = 1e-3f; /* many finite overflows */
			c.v_scale = 0x1p-140f;
			c.num_tokens = 40;
			c.num_heads = 3;
			c.head_dim_k = 32;
			c.head_dim_v = 32;
			c.block_size = 16;
			c.padding_fraction = 0.3;
			c.num_out_of_range = 2;
			c.seed = (uint64_t)(900 + i * 4 + f);
			ck_assert_int_eq(cache_case_prepare(&c, &exp), 0);
			ck_assert_uint_gt(exp.overflow_count, c.overflow_init);
			ck_assert_uint_gt(exp.nan_count, c.nan_init);
			run_and_compare(&c, &exp, &got);
			ck_assert_uint_eq(got.overflow_count, exp.overflow_count);
			ck_assert_uint_eq(got.nan_count, exp.nan_count);
			for (int64_t h = 0; h < c.num_heads; h++) {
				ck_assert(got.k_amax[h] >= c.k_amax_init[h]);
				ck_assert(got.v_amax[h] >= c.v_amax_init[h]);
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
		cache_case_init(&c);
		c.num_tokens = 0;
		c.num_blocks = 3;
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

static float stored_scale(const cache_case *c, const cache_result *r, int kv, int64_t t, int64_t h)
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

START_TEST(token_head_special_rows)
{
	enum { D = 16, T = 6 };
	for (int i = 0; i < 3; i++)
		for (int f = 0; f < 4; f++)
			for (int sl = 0; sl < 2; sl++) {
				const fp8kv_dtype in = inputs[i];
				const fp8kv_dtype fmt = formats[f];
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
				cache_case_init(&c);
				c.input_dtype = in;
				c.cache_dtype = fmt;
				c.overflow = policies[(i + f) % 2];
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
				cache_case_init(&c);
				c.input_dtype = inputs[(l + f) % 3];
				c.cache_dtype = formats[f];
				c.scale_mode = FP8KV_SCALE_TOKEN_HEAD;
				c.scale_layout = (cache_case_scale_layout)sl;
				c.layout = (cache_case_layout)l;
				c.num_tokens = 29;
				c.num_heads = 3;
				c.head_dim_k = 24;
				c.head_dim_v = 40;
				c.block_size = 8;
				c.num_blocks = 7;
				c.padding_fraction = 0.2;
				c.special_rows = 1;
				c.overflow = policies[(sl + l) % 2];
				c.seed = (uint64_t)(3000 + sl * 100 + l * 10 + f);
				check_case(&c);
			}
}
END_TEST

/* ERANGE: out-of-range tokens are skipped, every valid token is written,
 * the status is FP8KV_ERANGE and the message names the first one. */
START_TEST(erange_random)
{
	for (int k = 0; k < 16; k++) {
		cache_case c;
		cache_result exp, got;
		cache_case_init(&c);
		c.input_dtype = inputs[k % 3];
		c.cache_dtype = formats[k % 4];
		c.scale_mode = (fp8kv_scale_mode)(k % 4);
		c.k_scale = 3.0f;
		c.v_scale = 0.25f;
		c.num_tokens = 30;
		c.num_heads = 2;
		c.head_dim_k = 16;
		c.head_dim_v = 8;
		c.block_size = 4;
		c.use_swa = k % 2;
		c.slot_type = k & 2 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
		c.swa_type = k & 4 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
		c.padding_fraction = 0.2;
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
		cache_case_init(&c);
		c.num_tokens = 6;
		c.num_blocks = 3;
		c.block_size = 4; /* 12 slots */
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
		cache_case_init(&c);
		c.num_tokens = 5;
		c.num_blocks = 2;
		c.block_size = 4; /* 8 slots */
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
		cache_case_init(&c);
		c.num_tokens = 4;
		c.num_blocks = 3;
		c.block_size = 4;
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
		c.input_dtype = inputs[k % 3];
		c.cache_dtype = formats[(k / 3) % 4];
		c.layout = (cache_case_layout)(k % 3);
		c.seed = (uint64_t)(8100 + k);
		check_case(&c);
	}
}
END_TEST

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

/* Copies (cache dtype == input dtype) keep every bit, NaN payloads and
 * signalling NaNs included, and convert nothing. */
START_TEST(copy_keeps_bits)
{
	for (int i = 0; i < 3; i++) {
		cache_case c;
		cache_result exp, got;
		cache_case_init(&c);
		c.input_dtype = c.cache_dtype = inputs[i];
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

/* ------------------------------------------------------- long calls */

/*
 * Calls long enough (2^20 elements and more) for the CPU backend to convert
 * 16-bit inputs through lookup tables, for every 16-bit input dtype, format,
 * policy, scale ONE and TENSOR, with counters and without.  Every side holds
 * all 65,536 input patterns at least once (NaN, Inf, subnormals and the
 * overflows of a tiny scale among them).  The key side has padded token
 * and head strides and rows of 7, so its rows are converted one by one and
 * each is shorter than the lookup loop's step; the value side is contiguous, so its
 * heads merge into long rows.  A few tokens are padding.  The expected codes
 * come from oracle_quantize(), evaluated once per pattern and scale.
 */
enum { LONG_T = 3600, LONG_H = 4, LONG_DK = 7, LONG_DV = 121, LONG_PAD = 5, LONG_BS = 16 };

/* The pattern at element j of side kv: every aligned run of 65,536 elements
 * holds all 65,536 patterns, and each run is shifted by an odd offset, so
 * that a pattern falls on different positions of an 8-wide step. */
static uint16_t long_pattern(int kv, int64_t j)
{
	return (uint16_t)((uint64_t)j * 40503u + (uint64_t)(j >> 16) * 3u + (kv ? 12345u : 0u));
}

START_TEST(long_calls_match_oracle)
{
	const fp8kv_dtype in = inputs[1 + _i / 4], fmt = formats[_i % 4];
	const int64_t T = LONG_T, H = LONG_H, dims[2] = {LONG_DK, LONG_DV};
	/* elements per token and per head of each side's input */
	const int64_t strides[2] = {LONG_H * (LONG_DK + 1) + LONG_PAD, LONG_H * LONG_DV};
	const int64_t head_strides[2] = {LONG_DK + 1, LONG_DV};
	const int64_t num_blocks = (T + LONG_BS - 1) / LONG_BS + 2;
	const int64_t num_slots = num_blocks * LONG_BS;
	ck_assert_int_ge(T * H * (LONG_DK + LONG_DV), 1 << 20);

	uint16_t *src[2];
	uint8_t *cache[2], *expect[2], *got[2];
	size_t cache_bytes[2];
	uint8_t(*codes)[65536] = malloc(2 * sizeof *codes);
	uint8_t(*clipped)[65536] = malloc(2 * sizeof *clipped);
	int64_t *slots = malloc((size_t)T * sizeof *slots);
	ck_assert_ptr_nonnull(codes);
	ck_assert_ptr_nonnull(clipped);
	ck_assert_ptr_nonnull(slots);
	for (int kv = 0; kv < 2; kv++) {
		const size_t n = (size_t)(T * strides[kv]);
		uint16_t *host = malloc(n * 2);
		ck_assert_ptr_nonnull(host);
		for (size_t i = 0; i < n; i++) /* the gaps: never read */
			host[i] = 0x7FC1;
		for (int64_t t = 0; t < T; t++)
			for (int64_t h = 0; h < H; h++)
				for (int64_t e = 0; e < dims[kv]; e++)
					host[t * strides[kv] + h * head_strides[kv] + e] =
						long_pattern(kv, (t * H + h) * dims[kv] + e);
		ck_assert_int_eq(fp8kv_buffer_alloc(cpu, n * 2, (void **)&src[kv]), FP8KV_OK);
		ck_assert_int_eq(fp8kv_buffer_upload(cpu, src[kv], host, n * 2), FP8KV_OK);
		free(host);
		cache_bytes[kv] = (size_t)(num_slots * H * dims[kv]);
		ck_assert_int_eq(fp8kv_buffer_alloc(cpu, cache_bytes[kv], (void **)&cache[kv]),
				 FP8KV_OK);
		expect[kv] = malloc(cache_bytes[kv]);
		got[kv] = malloc(cache_bytes[kv]);
		ck_assert_ptr_nonnull(expect[kv]);
		ck_assert_ptr_nonnull(got[kv]);
	}
	/* blocks in a scrambled order; every 97th token is padding */
	for (int64_t t = 0; t < T; t++)
		slots[t] = t % 97 == 13 ? -1
					: ((t / LONG_BS) * 7 % num_blocks) * LONG_BS + t % LONG_BS;
	int64_t *dev_slots;
	ck_assert_int_eq(fp8kv_buffer_alloc(cpu, (size_t)T * sizeof *slots, (void **)&dev_slots),
			 FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_upload(cpu, dev_slots, slots, (size_t)T * sizeof *slots),
			 FP8KV_OK);
	/* a tiny key scale: many finite overflows, and infinite quotients */
	const float tensor_scales[2] = {1e-3f, 0.37f};
	float *dev_scales;
	ck_assert_int_eq(fp8kv_buffer_alloc(cpu, sizeof tensor_scales, (void **)&dev_scales),
			 FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_upload(cpu, dev_scales, tensor_scales, sizeof tensor_scales),
			 FP8KV_OK);

	for (int p = 0; p < 2; p++)
		for (int tensor = 0; tensor < 2; tensor++) {
			uint64_t exp_overflows = 7, exp_nans = 11; /* counters are added to */
			for (int kv = 0; kv < 2; kv++)
				for (uint32_t b = 0; b < 65536; b++) {
					int o = 0;
					codes[kv][b] = oracle_quantize(b, in, tensor,
								       tensor ? tensor_scales[kv] : 1.0f,
								       fmt, policies[p], &o);
					clipped[kv][b] = (uint8_t)o;
				}
			for (int kv = 0; kv < 2; kv++) {
				memset(expect[kv], 0xA5, cache_bytes[kv]);
				for (int64_t t = 0; t < T; t++) {
					if (slots[t] < 0)
						continue;
					for (int64_t e = 0; e < H * dims[kv]; e++) {
						const uint16_t b = long_pattern(kv, t * H * dims[kv] + e);
						expect[kv][slots[t] * H * dims[kv] + e] = codes[kv][b];
						exp_overflows += clipped[kv][b];
						exp_nans += oracle_is_nan(oracle_widen(b, in)) ? 1 : 0;
					}
				}
			}
			for (int counting = 0; counting < 2; counting++) {
				uint64_t overflows = 7, nans = 11;
				fp8kv_cache_write d;
				fp8kv_cache_write_init(&d, T, H, LONG_DK, LONG_DV, num_blocks, LONG_BS,
						       FP8KV_LAYOUT_NHD);
				d.key = src[0];
				d.value = src[1];
				d.key_stride_token = strides[0];
				d.key_stride_head = head_strides[0];
				d.input_dtype = in;
				d.key_cache = cache[0];
				d.value_cache = cache[1];
				d.cache_dtype = fmt;
				d.slot_mapping = dev_slots;
				d.overflow = policies[p];
				if (tensor) {
					d.scale_mode = FP8KV_SCALE_TENSOR;
					d.k_scale = dev_scales;
					d.v_scale = dev_scales + 1;
				}
				if (counting) {
					d.overflow_count = &overflows;
					d.nan_count = &nans;
				}
				for (int kv = 0; kv < 2; kv++)
					ck_assert_int_eq(fp8kv_buffer_fill(cpu, cache[kv], 0xA5,
									   cache_bytes[kv]),
							 FP8KV_OK);
				ck_assert_int_eq(fp8kv_reshape_and_cache(cpu, &d, NULL), FP8KV_OK);
				ck_assert_int_eq(fp8kv_backend_synchronize(cpu, NULL), FP8KV_OK);
				for (int kv = 0; kv < 2; kv++) {
					ck_assert_int_eq(fp8kv_buffer_download(cpu, got[kv], cache[kv],
									       cache_bytes[kv]),
							 FP8KV_OK);
					for (size_t i = 0; i < cache_bytes[kv]; i++)
						if (got[kv][i] != expect[kv][i])
							ck_abort_msg("%s -> %s, %s, %s, counters %d: %s "
								     "cache byte %zu is 0x%02x, "
								     "expected 0x%02x",
								     fp8kv_dtype_name(in),
								     fp8kv_dtype_name(fmt),
								     p ? "nonsat" : "saturate",
								     tensor ? "tensor" : "one", counting,
								     kv ? "value" : "key", i, got[kv][i],
								     expect[kv][i]);
				}
				if (counting) {
					ck_assert_uint_eq(overflows, exp_overflows);
					ck_assert_uint_eq(nans, exp_nans);
				}
			}
		}

	for (int kv = 0; kv < 2; kv++) {
		fp8kv_buffer_free(cpu, src[kv]);
		fp8kv_buffer_free(cpu, cache[kv]);
		free(expect[kv]);
		free(got[kv]);
	}
	fp8kv_buffer_free(cpu, dev_slots);
	fp8kv_buffer_free(cpu, dev_scales);
	free(slots);
	free(codes);
	free(clipped);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("cache_write");
	TCase *tc = tcase_create("matrix");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, matrix_summary);
	tcase_add_loop_test(tc, matrix, 0, ncombos);
	suite_add_tcase(s, tc);

	tc = tcase_create("dedicated");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, init_strides);
	tcase_add_test(tc, one_equals_tensor_one);
	tcase_add_test(tc, head_uniform_equals_tensor);
	tcase_add_test(tc, head_given_scales);
	tcase_add_loop_test(tc, tensor_adversarial_scales, 0, N_ADVERSARIAL);
	tcase_add_test(tc, counters_match_oracle);
	tcase_add_test(tc, counters_untouched_without_writes);
	tcase_add_test(tc, zero_tokens);
	tcase_add_test(tc, token_head_special_rows);
	tcase_add_test(tc, scale_cache_layouts);
	tcase_add_test(tc, erange_random);
	tcase_add_test(tc, erange_constructed);
	tcase_add_test(tc, erange_swa);
	tcase_add_test(tc, duplicate_slot_last_wins);
	tcase_add_test(tc, copy_keeps_bits);
	tcase_add_loop_test(tc, long_calls_match_oracle, 0, 8);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	build_combos();
	build_covering_array();
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
