/* SPDX-License-Identifier: MIT */
/*
 * test_backends_cache.c - fp8kv_reshape_and_cache on each backend against
 * the CPU backend: the cache matrix, long launches, vectors at the edge of
 * the range, ONE against TENSOR 1.0, and ERANGE (see test_backends.c).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cache_case.h"
#include "case_fixtures.h"
#include "fp8kv.h"
#include "test_backends.h"

/* ------------------------------------------------------------ running cases */

/* A group's counts, how many of its comparisons differed and the report of
 * the first that did. */
typedef struct tally {
	cache_diff d;
	int failures;
	char first[6000];
} tally;

static void tally_start(tally *g)
{
	cache_diff_init(&g->d);
	g->failures = 0;
	g->first[0] = 0;
}

/* Adds the comparison `one` of case c to g. */
static void tally_add(tally *g, const cache_case *c, const cache_diff *one)
{
	g->d.cases += one->cases;
	g->d.bytes_compared += one->bytes_compared;
	g->d.bytes_differing += one->bytes_differing;
	g->d.differences += one->differences;
	if (one->differences && !g->failures++)
		cache_diff_report(c, one, 8, g->first, sizeof g->first);
}

/* Runs c on the CPU, makes the poison differ from every byte the CPU
 * wrote, runs it on backend bi and adds the comparison of the two results
 * to g. */
static void run_generated(int bi, cache_case *c, tally *g)
{
	cache_result want, got;
	cache_diff one;
	ck_assert_msg(cache_case_run(ref, c, &want) == 0, "cpu run: %s", cache_case_error());
	ck_assert_msg(!want.setup_error[0], "cpu: %s", want.setup_error);
	cache_case_fix_poison(c, &want);
	ck_assert_msg(cache_case_run(backends[bi], c, &got) == 0, "run: %s", cache_case_error());
	cache_diff_init(&one);
	cache_case_compare(c, &want, &got, &one, 8);
	tally_add(g, c, &one);
	cache_result_free(&want);
	cache_result_free(&got);
}

static void run_pair(int bi, cache_case *c, tally *g)
{
	ck_assert_msg(cache_case_generate(c) == 0, "generate: %s", cache_case_error());
	run_generated(bi, c, g);
}

/* A group of run_pair cases: its summary line, then no case may differ and
 * some bytes must have been compared. */
static void end_of_cases(int bi, const char *what, const tally *g)
{
	summary(bi, what, g->d.cases, g->d.bytes_compared, g->d.bytes_differing);
	ck_assert_msg(g->failures == 0, "%s: %d of %llu cases differ from the CPU; the first: %s",
		      backend_names[bi], g->failures, (unsigned long long)g->d.cases, g->first);
	ck_assert_uint_gt(g->d.bytes_compared, 0);
}

/* ------------------------------------------------------ the cache matrix */

static const matrix_structure structure = {
	.levels = {3, 3, 3, 3, 2, 2},
	.head_dims = {{128, 128}, {96, 64}, {40, 24}},
	.block_sizes = {1, 16, 64},
	.token_counts = {0, 1, 300},
};

static matrix_combo combos[MATRIX_MAX_COMBOS];
static int ncombos;
static covering_array array;

static void matrix_case_of(cache_case *c, int i, int r)
{
	static const int64_t heads[4] = {8, 8, 3, 1};
	int lv[MATRIX_FACTORS];
	matrix_levels(&array, r, i, 0, lv);
	matrix_case(c, &combos[i], &structure, lv, i, r, (uint64_t)(50000 + 1000 * i + r));
	c->num_heads = heads[c->seed % 4];
	c->num_duplicates = 0; /* GPUs make no promise */
}

START_TEST(cache_matrix)
{
	static tally g;
	tally_start(&g);
	for (int i = 0; i < ncombos; i++)
		for (int r = 0; r < array.nrows; r++) {
			cache_case c;
			matrix_case_of(&c, i, r);
			run_pair(_i, &c, &g);
			cache_case_free(&c);
		}
	end_of_cases(_i, "cache matrix", &g);
}
END_TEST

/*
 * Launches long enough for a GPU's multi-wave paths, which the matrix's
 * 300 tokens never reach.  On a GPU of about 132 multiprocessors the HIP
 * backend runs them as one wave of pipelined blocks (2.6 to 15 waves of
 * work; rows of 4 to 32 vectors, and of two lengths), as a grid-stride
 * loop past 16 waves (28000 tokens), and as a looping wave of one vector
 * per lane (6000 tokens of 32 elements).  Most elements are finite
 * quotients well inside the format, so that whole vectors take the
 * hardware conversion as in real traffic; every 61st keeps the
 * generator's value (NaN, Inf, overflow, ties), so vectors that fall back
 * to the element path are interleaved with them.
 */
typedef struct long_case {
	cache_case_shape shape;
	fp8kv_dtype in, cache;
	fp8kv_scale_mode mode;
	cache_case_layout layout;
	int64_t out_of_range;
} long_case;

static const long_case long_cases[] = {
	{{32768, 1, 128, 128, 64}, FP8KV_BF16, FP8KV_E4M3FN, FP8KV_SCALE_ONE, CACHE_CASE_NHD, 0},
	{{32768, 1, 128, 128, 64}, FP8KV_BF16, FP8KV_E4M3FN, FP8KV_SCALE_TENSOR, CACHE_CASE_NHD, 1},
	{{32768, 1, 128, 128, 64}, FP8KV_F16, FP8KV_E5M2, FP8KV_SCALE_TENSOR, CACHE_CASE_HND, 0},
	{{32768, 1, 128, 128, 64}, FP8KV_F32, FP8KV_E4M3FN, FP8KV_SCALE_ONE, CACHE_CASE_NHD, 0},
	{{16384, 8, 128, 128, 16}, FP8KV_BF16, FP8KV_E4M3FN, FP8KV_SCALE_TENSOR, CACHE_CASE_NHD, 0},
	{{16384, 8, 128, 128, 16}, FP8KV_F16, FP8KV_E4M3FNUZ, FP8KV_SCALE_ONE, CACHE_CASE_HND, 2},
	{{16384, 4, 128, 64, 16}, FP8KV_BF16, FP8KV_E5M2, FP8KV_SCALE_TENSOR, CACHE_CASE_NHD, 0},
	{{28000, 8, 128, 128, 16}, FP8KV_BF16, FP8KV_E4M3FN, FP8KV_SCALE_ONE, CACHE_CASE_NHD, 1},
	{{28000, 8, 128, 128, 16}, FP8KV_BF16, FP8KV_E4M3FN, FP8KV_SCALE_TENSOR, CACHE_CASE_HND, 0},
	{{6000, 8, 32, 32, 16}, FP8KV_BF16, FP8KV_E4M3FN, FP8KV_SCALE_TENSOR, CACHE_CASE_NHD, 0},
	{{20000, 8, 32, 32, 16}, FP8KV_F32, FP8KV_E5M2FNUZ, FP8KV_SCALE_ONE, CACHE_CASE_NHD, 1},
	{{12000, 8, 256, 256, 16}, FP8KV_BF16, FP8KV_E4M3FN, FP8KV_SCALE_TENSOR, CACHE_CASE_NHD, 0},
};

/* The scale of each side's quotients: k, v */
static void side_scales(const cache_case *c, float scale[2])
{
	scale[0] = c->scale_mode == FP8KV_SCALE_ONE ? 1.0f : c->k_scale;
	scale[1] = c->scale_mode == FP8KV_SCALE_ONE ? 1.0f : c->v_scale;
}

/* Overwrites all but every 61st input element with x * s, x log-uniform
 * in [2^-12, 0.9 fmax) (less where f16 would overflow) with a random
 * sign: quotients that neither overflow nor are specials. */
static void calm_inputs(cache_case *c, float fmax, uint64_t seed)
{
	void *side[2] = {c->key, c->value};
	const size_t elems[2] = {c->key_elems, c->value_elems};
	float scale[2];
	side_scales(c, scale);
	uint64_t x = seed | 1;
	for (int k = 0; k < 2; k++) {
		double lim = 0.9 * fmax;
		if (c->input_dtype == FP8KV_F16 && lim * scale[k] > 60000.0)
			lim = 60000.0 / scale[k]; /* finite in f16 */
		const double top = log2(lim);
		for (size_t i = 0; i < elems[k]; i++) {
			if (i % 61 == 0)
				continue;
			const uint64_t r = next_random(&x);
			const double v = calm_value(r, top, scale[k]);
			cache_case_set_bits(side[k], c->input_dtype, i,
					    cache_case_round_bits((r & 1) ? -v : v, c->input_dtype));
		}
	}
}

START_TEST(long_launches)
{
	static tally g;
	tally_start(&g);
	/* the CPU's work split does not depend on the call's length */
	if (skip_on_cpu(_i, "long launches", "a GPU's launch shapes"))
		return;
	for (size_t i = 0; i < sizeof long_cases / sizeof long_cases[0]; i++) {
		const long_case *lc = &long_cases[i];
		cache_case c;
		conversion_case(&c, lc->in, lc->cache,
				i % 2 ? FP8KV_NONSATURATING : FP8KV_SATURATE);
		c.seed = 70000 + i;
		c.scale_mode = lc->mode;
		c.layout = lc->layout;
		cache_case_set_shape(&c, &lc->shape);
		c.slot_type = i % 3 ? FP8KV_INDEX_INT64 : FP8KV_INDEX_INT32;
		c.padding_fraction = 0.1;
		c.num_out_of_range = lc->out_of_range;
		c.k_scale = 0.0478f;
		c.v_scale = 3.0f;
		/* the backend's fast path: no counters, amax or swa mapping */
		c.want_overflow_count = c.want_nan_count = c.want_amax = 0;
		ck_assert_msg(cache_case_generate(&c) == 0, "generate: %s", cache_case_error());
		calm_inputs(&c, fp8kv_fp8_max(lc->cache), c.seed * 0x9E3779B97F4A7C15ull);
		run_generated(_i, &c, &g);
		cache_case_free(&c);
	}
	end_of_cases(_i, "long launches", &g);
}
END_TEST

/*
 * Vectors whose largest quotient sits at the edge of the format's range:
 * in every 8-element vector one element is the 16-bit input nearest to
 * M * s, or one or two steps either side of it, where M = fmax + half an
 * ulp is the quotient that ties between fmax and the next binade; the
 * rest are calm.  A GPU that decides from the packed inputs whether a
 * vector may take the hardware conversion must draw that line exactly
 * where the quotients do.  Both policies, so a vector let through wrongly
 * shows as a saturated code where the contract wants Inf or NaN.
 */
static const float edge_scales[] = {1.0f, 0.0478f, 3.0f, 1.0f / 448, 0x1p-20f, 7.0f, 0.1f};
#define N_EDGE_SCALES (sizeof edge_scales / sizeof edge_scales[0])

static void edge_inputs(cache_case *c, fp8kv_dtype format, uint64_t seed)
{
	void *side[2] = {c->key, c->value};
	const size_t elems[2] = {c->key_elems, c->value_elems};
	float scale[2];
	side_scales(c, scale);
	const double fmax = fp8kv_fp8_max(format);
	const int mant = format == FP8KV_E4M3FN || format == FP8KV_E4M3FNUZ ? 3 : 2;
	const double tie = fmax + ldexp(1.0, ilogb(fmax) - mant - 1);
	const uint32_t inf_bits = c->input_dtype == FP8KV_F16 ? 0x7C00u : 0x7F80u;
	uint64_t x = seed | 1;
	for (int k = 0; k < 2; k++) {
		const uint32_t edge = cache_case_round_bits(tie * scale[k], c->input_dtype) & 0x7FFFu;
		const double top = log2(0.9 * fmax);
		for (size_t v = 0; v + 8 <= elems[k]; v += 8) {
			const size_t at = v + (next_random(&x) >> 8) % 8;
			for (size_t i = v; i < v + 8; i++) {
				const uint64_t r = next_random(&x);
				uint32_t bits;
				if (i == at) {
					bits = edge + (uint32_t)((r >> 20) % 5) - 2u;
					bits = bits > inf_bits ? inf_bits : bits;
				} else {
					bits = cache_case_round_bits(calm_value(r, top, scale[k]),
								     c->input_dtype);
				}
				cache_case_set_bits(side[k], c->input_dtype, i,
						    bits | (uint32_t)(r & 1) << 15);
			}
		}
	}
}

START_TEST(range_edges)
{
	static const fp8kv_dtype edge_inputs_dt[2] = {FP8KV_BF16, FP8KV_F16};
	/* on about 132 multiprocessors: rows of two vectors per lane, full
	 * and not; a pipelined wave; a launch past 16 waves, contiguous, for
	 * the formats with hardware codes and the policy that shows a vector
	 * let through wrongly, with and without a scale */
	static const int64_t shapes[4][4] = {{300, 8, 128, 128}, {300, 8, 96, 64},
					     {2000, 8, 128, 128}, {28000, 8, 128, 128}};
	static tally g;
	int n = 0;
	tally_start(&g);
	/* the CPU decides per element, so there is no line to draw */
	if (skip_on_cpu(_i, "range edges", "a GPU's vector paths"))
		return;
	for (int in = 0; in < 2; in++)
		for (int f = 0; f < 4; f++)
			for (int p = 0; p < 2; p++)
				for (size_t sc = 0; sc < N_EDGE_SCALES; sc++, n++) {
					const int longest = (fp8_formats[f] == FP8KV_E4M3FN ||
							     fp8_formats[f] == FP8KV_E5M2) &&
							    overflow_policies[p] == FP8KV_NONSATURATING &&
							    sc <= 1;
					const int64_t *sh = shapes[longest ? 3 : n % 3];
					cache_case c;
					conversion_case(&c, edge_inputs_dt[in], fp8_formats[f],
							overflow_policies[p]);
					c.seed = 90000 + (uint64_t)n;
					c.scale_mode = sc == 0 ? FP8KV_SCALE_ONE : FP8KV_SCALE_TENSOR;
					c.k_scale = edge_scales[sc];
					c.v_scale = edge_scales[(sc + 3) % N_EDGE_SCALES];
					c.layout = (cache_case_layout)(n % (longest ? 2 : 3));
					c.num_tokens = sh[0];
					c.num_heads = sh[1];
					c.head_dim_k = sh[2];
					c.head_dim_v = sh[3];
					c.block_size = 16;
					c.padding_fraction = 0.05;
					/* the backend's fast path */
					c.want_overflow_count = c.want_nan_count = c.want_amax = 0;
					ck_assert_msg(cache_case_generate(&c) == 0, "generate: %s",
						      cache_case_error());
					edge_inputs(&c, fp8_formats[f], c.seed * 0x9E3779B97F4A7C15ull);
					run_generated(_i, &c, &g);
					cache_case_free(&c);
				}
	end_of_cases(_i, "range edges", &g);
}
END_TEST

/* ONE and TENSOR 1.0 give the same bytes on the backend (and the CPU's). */
START_TEST(one_vs_tensor)
{
	static tally g;
	tally_start(&g);
	for (int n = 0; n < FP8_CONVERSIONS; n++) {
		const int i = n / 8, f = n / 2 % 4, p = n % 2;
		cache_case a, b;
		cache_result ga, gb;
		fp8_conversion_case(&a, n);
		cache_case_set_shape(&a, &(cache_case_shape){200, 8, 128, 128, 16});
		a.layout = (cache_case_layout)((i + f + p) % 3);
		a.padding_fraction = 0.1;
		a.seed = (uint64_t)(2 * n + 1); /* odd: ONE gets a stray scale */
		one_and_tensor_one(&a, &b);
		run_pair(_i, &a, &g);
		run_pair(_i, &b, &g);
		/* same inputs and, after the same poison fix, the same poison */
		ck_assert_mem_eq(a.key, b.key, a.key_elems * fp8kv_dtype_size(a.input_dtype));
		ck_assert_int_eq(cache_case_run(backends[_i], &a, &ga), 0);
		ck_assert_int_eq(cache_case_run(backends[_i], &b, &gb), 0);
		cache_diff one;
		cache_diff_init(&one);
		cache_case_compare(&a, &ga, &gb, &one, 8);
		tally_add(&g, &a, &one);
		cache_result_free(&ga);
		cache_result_free(&gb);
		cache_case_free(&a);
		cache_case_free(&b);
	}
	summary(_i, "ONE vs TENSOR 1", g.d.cases, g.d.bytes_compared, g.d.bytes_differing);
	ck_assert_msg(g.failures == 0, "%d comparisons differ; the first: %s", g.failures, g.first);
}
END_TEST

/* ERANGE: skipped tokens, every valid token written, the first offending
 * token named, by the call or by synchronize, and reported only once.
 * Cases 24-35 are writes of 1 to 3 tokens: a GPU launch of one block,
 * which publishes its error without the count of finished blocks.  Cases
 * 36-59 write 4 to 54 tokens of 8 heads: launches of a few blocks, whose
 * count finds its last block whichever order they finish in, in the fast
 * kernel, the lean one and (copies) the general one. */
START_TEST(erange)
{
	static const cache_case_shape shape = {257, 8, 128, 64, 16};
	static tally g;
	tally_start(&g);
	for (int k = 0; k < 60; k++) {
		cache_case c;
		erange_case(&c, k, &shape);
		c.num_out_of_range = 1 + k % 5;
		if (k >= 24) {
			c.num_tokens = 1 + k % 3;
			c.num_out_of_range = 1 + k % 2;
			/* half without counters, amax or swa_mapping: the fast kernel
			 * (scale one and tensor) and the lean one (head, token-head) */
			c.use_swa = k % 8 >= 4;
			c.want_overflow_count = c.want_nan_count = c.want_amax = k % 8 >= 4;
		}
		if (k >= 36) {
			c.num_tokens = 4 + 10 * (k % 6);
			c.num_out_of_range = 1 + k % 3;
			if (k % 12 == 11) { /* a copy */
				c.cache_dtype = c.input_dtype;
				c.scale_mode = FP8KV_SCALE_ONE;
			}
		}
		c.seed = (uint64_t)(9000 + k);
		run_pair(_i, &c, &g);
		ck_assert_int_ge(c.first_out_of_range, 0);
		/* the error was reported; a further synchronize has nothing */
		cache_result got;
		ck_assert_int_eq(cache_case_run(backends[_i], &c, &got), 0);
		ck_assert_int_eq(got.status, FP8KV_ERANGE);
		ck_assert_int_eq(fp8kv_backend_synchronize(backends[_i], NULL), FP8KV_OK);
		cache_result_free(&got);
		cache_case_free(&c);
	}
	summary(_i, "erange", g.d.cases, g.d.bytes_compared, g.d.bytes_differing);
	ck_assert_msg(g.failures == 0, "%d cases differ; the first: %s", g.failures, g.first);
}
END_TEST

void add_cache_write_groups(TCase *tc, int nbackends)
{
	ncombos = matrix_combos(combos);
	covering_array_build(&array, structure.levels);
	tcase_add_loop_test(tc, cache_matrix, 0, nbackends);
	tcase_add_loop_test(tc, long_launches, 0, nbackends);
	tcase_add_loop_test(tc, range_edges, 0, nbackends);
	tcase_add_loop_test(tc, one_vs_tensor, 0, nbackends);
	tcase_add_loop_test(tc, erange, 0, nbackends);
}
