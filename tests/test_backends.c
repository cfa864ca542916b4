/* SPDX-License-Identifier: MIT */
/*
 * test_backends.c - every non-CPU backend against the CPU backend (the
 * golden reference, itself held to the oracle by test_cache_write and
 * test_convert), byte for byte on full downloaded images.
 *
 * The backends come from FP8KV_TEST_BACKENDS (names separated by commas or
 * spaces; default "hip").  A backend that is absent (FP8KV_ENODEV) is
 * skipped; when none opens the program exits 77, the Automake code for a
 * skipped test.  "cpu" in the list is allowed: it compares a second CPU
 * handle with the first, a self-check of this program on machines without
 * a GPU (FP8KV_TEST_BACKENDS=cpu).
 *
 * GPU contexts do not survive fork(), so Check runs without forking
 * (CK_NOFORK) and the backends are opened once, in main, before the suite
 * is built.  Each group prints a summary line to stdout:
 *   [hip:0 vs cpu] cache matrix: cases 2448, bytes compared ..., differing 0
 *
 * Groups (each a loop test over the backends):
 *   cache_matrix       the conversion product (3 inputs x {copy, 4 FP8} x 4
 *                      scale modes x 2 policies = 102) x a pairwise covering
 *                      array of layout {NHD, HND, strided} x head dims
 *                      {128/128, 96/64, 40/24} x block size {1, 16, 64} x
 *                      tokens {0, 1, 300} x swa x slot type, 8 heads mostly;
 *                      poisoned caches, counters, amax, ERANGE status and
 *                      message (reported by the call or by synchronize);
 *   long_launches      calls of 8-57 million elements, long enough for a
 *                      GPU's multi-wave launch shapes (skipped for "cpu");
 *   one_vs_tensor      implicit ONE == TENSOR 1.0 on the backend itself;
 *   erange             out-of-range tokens; the error is reported once;
 *   quantize           all 2^16 f16/bf16 inputs (and 2^20 f32) x formats x
 *                      policies x scales through fp8kv_quantize;
 *   dequantize         all 256 codes x formats x output dtypes x scales;
 *   amax               fp8kv_amax on buffers with NaN/Inf;
 *   check_slots        fp8kv_check_slots on constructed mappings.
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

#define MAX_BACKENDS 8
static fp8kv_backend *ref;                  /* "cpu" */
static fp8kv_backend *backends[MAX_BACKENDS];
static char backend_names[MAX_BACKENDS][64];
static int nbackends;

static const fp8kv_dtype inputs[] = {FP8KV_F32, FP8KV_F16, FP8KV_BF16};
static const fp8kv_dtype formats[] = {FP8KV_E4M3FN, FP8KV_E4M3FNUZ, FP8KV_E5M2, FP8KV_E5M2FNUZ};
static const fp8kv_overflow policies[] = {FP8KV_SATURATE, FP8KV_NONSATURATING};

static void summary(int bi, const char *what, uint64_t cases, uint64_t bytes, uint64_t differing)
{
	printf("[%s vs cpu] %-16s cases %8llu, bytes compared %12llu, differing %llu\n",
	       backend_names[bi], what, (unsigned long long)cases, (unsigned long long)bytes,
	       (unsigned long long)differing);
	fflush(stdout);
}

/* ------------------------------------------------------ the cache matrix */

enum { F_LAYOUT, F_HEADDIM, F_BLOCK, F_TOKENS, F_SWA, F_SLOT, NF };
static const int levels[NF] = {3, 3, 3, 3, 2, 2};
static const int64_t block_sizes[3] = {1, 16, 64};
static const int64_t token_counts[3] = {0, 1, 300};
static const int64_t head_dims[3][2] = {{128, 128}, {96, 64}, {40, 24}};

#define MAX_ROWS 32
static int rows[MAX_ROWS][NF];
static int nrows;

/* A greedy pairwise covering array (as in test_cache_write.c). */
static void build_covering_array(void)
{
	static unsigned char covered[NF][3][NF][3];
	memset(covered, 0, sizeof covered);
	int left = 0, total = 1;
	for (int f = 0; f < NF; f++) {
		total *= levels[f];
		for (int g = f + 1; g < NF; g++)
			left += levels[f] * levels[g];
	}
	nrows = 0;
	while (left > 0 && nrows < MAX_ROWS) {
		int best[NF] = {0}, best_gain = -1, cand[NF];
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

typedef struct combo {
	fp8kv_dtype in, cache;
	fp8kv_scale_mode mode;
	fp8kv_overflow overflow;
} combo;

static combo combos[128];
static int ncombos;

static void build_combos(void)
{
	ncombos = 0;
	for (int i = 0; i < 3; i++)
		for (int k = -1; k < 4; k++)
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

static const float tensor_scales[] = {1.0f, 3.0f, 1.0f / 448, 1e-3f, 0.5f, 0x1p-140f,
				      7.0f, 0x1p-126f, 1e30f, 0.1f, 1.0f / 240, 4096.0f,
				      -3.0f, 0.0f, INFINITY, NAN};
#define N_TENSOR_SCALES (sizeof tensor_scales / sizeof tensor_scales[0])

static void matrix_case(cache_case *c, int i, int r)
{
	const combo *cb = &combos[i];
	int lv[NF];
	for (int f = 0; f < NF; f++)
		lv[f] = (rows[r][f] + i * (f + 1)) % levels[f];
	cache_case_init(c);
	c->seed = (uint64_t)(50000 + 1000 * i + r);
	c->input_dtype = cb->in;
	c->cache_dtype = cb->cache;
	c->scale_mode = cb->mode;
	c->overflow = cb->overflow;
	c->layout = (cache_case_layout)lv[F_LAYOUT];
	c->head_dim_k = head_dims[lv[F_HEADDIM]][0];
	c->head_dim_v = head_dims[lv[F_HEADDIM]][1];
	c->block_size = block_sizes[lv[F_BLOCK]];
	c->num_tokens = token_counts[lv[F_TOKENS]];
	c->use_swa = lv[F_SWA];
	c->slot_type = lv[F_SLOT] ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
	c->swa_type = (r + i) % 3 == 0 ? FP8KV_INDEX_INT32 : c->slot_type;
	static const int64_t heads[4] = {8, 8, 3, 1};
	c->num_heads = heads[c->seed % 4];
	c->padding_fraction = r % 2 ? 0.25 : 0.0;
	c->num_out_of_range = r % 4 == 3 ? 1 + (int64_t)(c->seed % 3) : 0;
	c->special_rows = (r + i) % 2 == 0;
	c->scale_layout = (cache_case_scale_layout)((r + i / 2) % 2);
	c->k_scale = tensor_scales[(size_t)(i + r) % N_TENSOR_SCALES];
	c->v_scale = tensor_scales[(size_t)(i + 3 * r + 5) % N_TENSOR_SCALES];
	c->want_overflow_count = c->want_nan_count = c->want_amax = r % 5 != 4;
	c->num_duplicates = 0; /* GPUs make no promise */
	if (r % 3 == 2)
		c->num_blocks = (c->num_tokens + 2 * c->block_size) / c->block_size + 1;
}

/* Runs c on the CPU, makes the poison differ from every byte the CPU
 * wrote, runs it on backend bi and compares the two results.  Returns the
 * number of differences; *first receives the first report. */
static uint64_t run_generated(int bi, cache_case *c, cache_diff *d, char *first, size_t n)
{
	cache_result want, got;
	cache_diff one;
	ck_assert_msg(cache_case_run(ref, c, &want) == 0, "cpu run: %s", cache_case_error());
	ck_assert_msg(!want.setup_error[0], "cpu: %s", want.setup_error);
	cache_case_fix_poison(c, &want);
	ck_assert_msg(cache_case_run(backends[bi], c, &got) == 0, "run: %s", cache_case_error());
	cache_diff_init(&one);
	uint64_t diffs = cache_case_compare(c, &want, &got, &one, 8);
	if (diffs && first && !first[0])
		cache_diff_report(c, &one, 8, first, n);
	d->cases += one.cases;
	d->bytes_compared += one.bytes_compared;
	d->bytes_differing += one.bytes_differing;
	d->differences += one.differences;
	cache_result_free(&want);
	cache_result_free(&got);
	return diffs;
}

static uint64_t run_pair(int bi, cache_case *c, cache_diff *d, char *first, size_t n)
{
	ck_assert_msg(cache_case_generate(c) == 0, "generate: %s", cache_case_error());
	return run_generated(bi, c, d, first, n);
}

/* A group of run_pair cases: its summary line, then no case may differ and
 * some bytes must have been compared. */
static void end_of_cases(int bi, const char *what, const cache_diff *d, int failures,
			 const char *first)
{
	summary(bi, what, d->cases, d->bytes_compared, d->bytes_differing);
	ck_assert_msg(failures == 0, "%s: %d of %llu cases differ from the CPU; the first: %s",
		      backend_names[bi], failures, (unsigned long long)d->cases, first);
	ck_assert_uint_gt(d->bytes_compared, 0);
}

START_TEST(cache_matrix)
{
	static char first[6000];
	cache_diff d;
	int failures = 0;
	first[0] = 0;
	cache_diff_init(&d);
	for (int i = 0; i < ncombos; i++)
		for (int r = 0; r < nrows; r++) {
			cache_case c;
			matrix_case(&c, i, r);
			failures += run_pair(_i, &c, &d, first, sizeof first) != 0;
			cache_case_free(&c);
		}
	end_of_cases(_i, "cache matrix", &d, failures, first);
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
	int64_t tokens, heads, dk, dv, block_size;
	fp8kv_dtype in, cache;
	fp8kv_scale_mode mode;
	cache_case_layout layout;
	int64_t out_of_range;
} long_case;

static const long_case long_cases[] = {
	{32768, 1, 128, 128, 64, FP8KV_BF16, FP8KV_E4M3FN, FP8KV_SCALE_ONE, CACHE_CASE_NHD, 0},
	{32768, 1, 128, 128, 64, FP8KV_BF16, FP8KV_E4M3FN, FP8KV_SCALE_TENSOR, CACHE_CASE_NHD, 1},
	{32768, 1, 128, 128, 64, FP8KV_F16, FP8KV_E5M2, FP8KV_SCALE_TENSOR, CACHE_CASE_HND, 0},
	{32768, 1, 128, 128, 64, FP8KV_F32, FP8KV_E4M3FN, FP8KV_SCALE_ONE, CACHE_CASE_NHD, 0},
	{16384, 8, 128, 128, 16, FP8KV_BF16, FP8KV_E4M3FN, FP8KV_SCALE_TENSOR, CACHE_CASE_NHD, 0},
	{16384, 8, 128, 128, 16, FP8KV_F16, FP8KV_E4M3FNUZ, FP8KV_SCALE_ONE, CACHE_CASE_HND, 2},
	{16384, 4, 128, 64, 16, FP8KV_BF16, FP8KV_E5M2, FP8KV_SCALE_TENSOR, CACHE_CASE_NHD, 0},
	{28000, 8, 128, 128, 16, FP8KV_BF16, FP8KV_E4M3FN, FP8KV_SCALE_ONE, CACHE_CASE_NHD, 1},
	{28000, 8, 128, 128, 16, FP8KV_BF16, FP8KV_E4M3FN, FP8KV_SCALE_TENSOR, CACHE_CASE_HND, 0},
	{6000, 8, 32, 32, 16, FP8KV_BF16, FP8KV_E4M3FN, FP8KV_SCALE_TENSOR, CACHE_CASE_NHD, 0},
	{20000, 8, 32, 32, 16, FP8KV_F32, FP8KV_E5M2FNUZ, FP8KV_SCALE_ONE, CACHE_CASE_NHD, 1},
	{12000, 8, 256, 256, 16, FP8KV_BF16, FP8KV_E4M3FN, FP8KV_SCALE_TENSOR, CACHE_CASE_NHD, 0},
};

/* Groups that only a GPU's kernels give a meaning skip the cpu backend,
 * saying why; nonzero when skipped. */
static int skip_on_cpu(int bi, const char *what, const char *why)
{
	if (strcmp(fp8kv_backend_name(backends[bi]), "cpu"))
		return 0;
	printf("[%s vs cpu] %-16s skipped: %s\n", backend_names[bi], what, why);
	return 1;
}

/* The next state of a xorshift64 generator */
static uint64_t next_random(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* s times a value log-uniform in [2^-12, 2^top), from the top bits of r */
static double calm_value(uint64_t r, double top, float s)
{
	const double u = (double)(r >> 11) * 0x1p-53;
	return exp2(-12.0 + u * (top + 12.0)) * s;
}

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
	static char first[6000];
	cache_diff d;
	int failures = 0;
	first[0] = 0;
	/* the CPU's work split does not depend on the call's length */
	if (skip_on_cpu(_i, "long launches", "a GPU's launch shapes"))
		return;
	cache_diff_init(&d);
	for (size_t i = 0; i < sizeof long_cases / sizeof long_cases[0]; i++) {
		const long_case *lc = &long_cases[i];
		cache_case c;
		cache_case_init(&c);
		c.seed = 70000 + i;
		c.input_dtype = lc->in;
		c.cache_dtype = lc->cache;
		c.scale_mode = lc->mode;
		c.overflow = i % 2 ? FP8KV_NONSATURATING : FP8KV_SATURATE;
		c.layout = lc->layout;
		c.num_tokens = lc->tokens;
		c.num_heads = lc->heads;
		c.head_dim_k = lc->dk;
		c.head_dim_v = lc->dv;
		c.block_size = lc->block_size;
		c.slot_type = i % 3 ? FP8KV_INDEX_INT64 : FP8KV_INDEX_INT32;
		c.padding_fraction = 0.1;
		c.num_out_of_range = lc->out_of_range;
		c.k_scale = 0.0478f;
		c.v_scale = 3.0f;
		/* the backend's fast path: no counters, amax or swa mapping */
		c.want_overflow_count = c.want_nan_count = c.want_amax = 0;
		ck_assert_msg(cache_case_generate(&c) == 0, "generate: %s", cache_case_error());
		calm_inputs(&c, fp8kv_fp8_max(lc->cache), c.seed * 0x9E3779B97F4A7C15ull);
		failures += run_generated(_i, &c, &d, first, sizeof first) != 0;
		cache_case_free(&c);
	}
	end_of_cases(_i, "long launches", &d, failures, first);
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
	static char first[6000];
	cache_diff d;
	int failures = 0, n = 0;
	first[0] = 0;
	/* the CPU decides per element, so there is no line to draw */
	if (skip_on_cpu(_i, "range edges", "a GPU's vector paths"))
		return;
	cache_diff_init(&d);
	for (int in = 0; in < 2; in++)
		for (int f = 0; f < 4; f++)
			for (int p = 0; p < 2; p++)
				for (size_t sc = 0; sc < N_EDGE_SCALES; sc++, n++) {
					const int longest = (formats[f] == FP8KV_E4M3FN ||
							     formats[f] == FP8KV_E5M2) &&
							    policies[p] == FP8KV_NONSATURATING &&
							    sc <= 1;
					const int64_t *sh = shapes[longest ? 3 : n % 3];
					cache_case c;
					cache_case_init(&c);
					c.seed = 90000 + (uint64_t)n;
					c.input_dtype = edge_inputs_dt[in];
					c.cache_dtype = formats[f];
					c.overflow = policies[p];
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
					edge_inputs(&c, formats[f], c.seed * 0x9E3779B97F4A7C15ull);
					failures += run_generated(_i, &c, &d, first, sizeof first) != 0;
					cache_case_free(&c);
				}
	end_of_cases(_i, "range edges", &d, failures, first);
}
END_TEST

/* ONE and TENSOR 1.0 give the same bytes on the backend (and the CPU's). */
START_TEST(one_vs_tensor)
{
	static char first[6000];
	cache_diff d;
	int failures = 0;
	first[0] = 0;
	cache_diff_init(&d);
	for (int i = 0; i < 3; i++)
		for (int f = 0; f < 4; f++)
			for (int p = 0; p < 2; p++) {
				cache_case a, b;
				cache_result ga, gb;
				cache_case_init(&a);
				a.input_dtype = inputs[i];
				a.cache_dtype = formats[f];
				a.overflow = policies[p];
				a.num_tokens = 200;
				a.num_heads = 8;
				a.head_dim_k = a.head_dim_v = 128;
				a.block_size = 16;
				a.layout = (cache_case_layout)((i + f + p) % 3);
				a.padding_fraction = 0.1;
				a.seed = (uint64_t)(2 * (i * 8 + f * 2 + p) + 1); /* odd: ONE gets a stray scale */
				b = a;
				a.scale_mode = FP8KV_SCALE_ONE;
				b.scale_mode = FP8KV_SCALE_TENSOR;
				b.k_scale = b.v_scale = 1.0f;
				failures += run_pair(_i, &a, &d, first, sizeof first) != 0;
				failures += run_pair(_i, &b, &d, first, sizeof first) != 0;
				/* same inputs and, after the same poison fix, the same poison */
				ck_assert_mem_eq(a.key, b.key, a.key_elems * fp8kv_dtype_size(a.input_dtype));
				ck_assert_int_eq(cache_case_run(backends[_i], &a, &ga), 0);
				ck_assert_int_eq(cache_case_run(backends[_i], &b, &gb), 0);
				cache_diff one;
				cache_diff_init(&one);
				if (cache_case_compare(&a, &ga, &gb, &one, 8) != 0) {
					failures++;
					if (!first[0])
						cache_diff_report(&a, &one, 8, first, sizeof first);
				}
				d.cases++;
				d.bytes_compared += one.bytes_compared;
				d.bytes_differing += one.bytes_differing;
				cache_result_free(&ga);
				cache_result_free(&gb);
				cache_case_free(&a);
				cache_case_free(&b);
			}
	summary(_i, "ONE vs TENSOR 1", d.cases, d.bytes_compared, d.bytes_differing);
	ck_assert_msg(failures == 0, "%d comparisons differ; the first: %s", failures, first);
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
	static char first[6000];
	cache_diff d;
	int failures = 0;
	first[0] = 0;
	cache_diff_init(&d);
	for (int k = 0; k < 60; k++) {
		cache_case c;
		cache_case_init(&c);
		c.input_dtype = inputs[k % 3];
		c.cache_dtype = formats[k % 4];
		c.scale_mode = (fp8kv_scale_mode)(k % 4);
		c.k_scale = 3.0f;
		c.v_scale = 0.25f;
		c.num_tokens = 257;
		c.num_heads = 8;
		c.head_dim_k = 128;
		c.head_dim_v = 64;
		c.block_size = 16;
		c.use_swa = k % 2;
		c.slot_type = k & 2 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
		c.swa_type = k & 4 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
		c.padding_fraction = 0.2;
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
		failures += run_pair(_i, &c, &d, first, sizeof first) != 0;
		ck_assert_int_ge(c.first_out_of_range, 0);
		/* the error was reported; a further synchronize has nothing */
		cache_result got;
		ck_assert_int_eq(cache_case_run(backends[_i], &c, &got), 0);
		ck_assert_int_eq(got.status, FP8KV_ERANGE);
		ck_assert_int_eq(fp8kv_backend_synchronize(backends[_i], NULL), FP8KV_OK);
		cache_result_free(&got);
		cache_case_free(&c);
	}
	summary(_i, "erange", d.cases, d.bytes_compared, d.bytes_differing);
	ck_assert_msg(failures == 0, "%d cases differ; the first: %s", failures, first);
}
END_TEST

/* -------------------------------------------------- quantize/dequantize */

typedef struct flat_run {
	fp8kv_status status;
	char message[256];
	uint64_t counter;
} flat_run;

static void *dev_copy(fp8kv_backend *b, const void *host, size_t bytes)
{
	void *p = NULL;
	ck_assert_int_eq(fp8kv_buffer_alloc(b, bytes ? bytes : 1, &p), FP8KV_OK);
	if (bytes)
		ck_assert_int_eq(fp8kv_buffer_upload(b, p, host, bytes), FP8KV_OK);
	return p;
}

static void dev_fetch(fp8kv_backend *b, void *host, void *dev, size_t bytes)
{
	ck_assert_int_eq(fp8kv_buffer_download(b, host, dev, bytes), FP8KV_OK);
	fp8kv_buffer_free(b, dev);
}

static void record(flat_run *r, fp8kv_status st)
{
	if (st != FP8KV_OK && r->status == FP8KV_OK) {
		r->status = st;
		snprintf(r->message, sizeof r->message, "%s", fp8kv_last_error());
	}
}

static void quantize_on(fp8kv_backend *b, const void *src, fp8kv_dtype sdt, size_t count,
			fp8kv_dtype fmt, fp8kv_scale_mode mode, float scale, fp8kv_overflow ov,
			uint8_t *dst, flat_run *r)
{
	const size_t ssz = fp8kv_dtype_size(sdt);
	const uint64_t counter0 = 0x200000000ull + 17;
	memset(r, 0, sizeof *r);
	memset(dst, 0xA5, count);
	void *dsrc = dev_copy(b, src, count * ssz);
	void *ddst = dev_copy(b, dst, count);
	void *dscale = dev_copy(b, &scale, sizeof scale);
	void *dctr = dev_copy(b, &counter0, sizeof counter0);
	record(r, fp8kv_quantize(b, ddst, fmt, dsrc, sdt, count, mode, dscale, ov, dctr, NULL));
	record(r, fp8kv_backend_synchronize(b, NULL));
	dev_fetch(b, dst, ddst, count);
	dev_fetch(b, &r->counter, dctr, sizeof r->counter);
	fp8kv_buffer_free(b, dsrc);
	fp8kv_buffer_free(b, dscale);
}

/* including the divisors whose quotients fp8kv.h section 5 pins down
 * because hardware differs: negative, +-0, +-Inf, NaN */
static const float flat_scales[] = {1.0f, 3.0f, 1.0f / 448, 1e-3f, 0x1p-140f, 0x1p-126f,
				    1e30f, 0.1f, 1.0f / 57344, 65504.0f, -3.0f, 0.0f, -0.0f,
				    INFINITY, -INFINITY, NAN, -NAN};
#define N_FLAT_SCALES (sizeof flat_scales / sizeof flat_scales[0])

static uint64_t count_diff(const uint8_t *a, const uint8_t *b, size_t n, size_t *first)
{
	uint64_t k = 0;
	*first = n;
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i]) {
			if (!k)
				*first = i;
			k++;
		}
	return k;
}

/* ------------------------------------------------------- stream order */

/*
 * Calls queued on one stream see what the calls before them wrote.  Six
 * calls, each reading the buffer the one before it filled, are queued
 * without a synchronize: a write, a dequantization of its cache, a write
 * from that, and so on.  Every output starts as poison; a kernel that read
 * its input before the previous kernel's writes were visible (a GPU that
 * starts kernels early, as dependent launches do, and lets them read too
 * soon) would carry poison or stale codes into the bytes compared here.
 * The rows fill the cache exactly (NHD), so a cache read flat is the rows
 * of the next write, in slot order.
 */
enum { SO_TOKENS = 16384, SO_HEADS = 8, SO_DIM = 128, SO_BS = 16, SO_STAGES = 6 };
#define SO_ELEMS ((size_t)2 * SO_TOKENS * SO_HEADS * SO_DIM) /* keys, then values */

static const char *const so_names[SO_STAGES] = {"write 1", "dequantize 1", "write 2",
						 "dequantize 2", "write 3", "quantize"};

/* The chain on b from the bf16 rows x and the slots; out[k] receives stage
 * k's output (SO_ELEMS codes or bf16 values).  Nonzero on an error. */
static int stream_chain(fp8kv_backend *b, const uint16_t *x, const int64_t *slots, float scale,
			uint8_t *out[SO_STAGES], char *why, size_t n)
{
	const size_t bf = SO_ELEMS * 2, codes = SO_ELEMS;
	const size_t bytes[SO_STAGES] = {codes, bf, codes, bf, codes, codes};
	void *buf[SO_STAGES] = {NULL}, *dx = dev_copy(b, x, bf);
	void *dslots = dev_copy(b, slots, SO_TOKENS * sizeof *slots);
	void *dscale = dev_copy(b, &scale, sizeof scale);
	for (int k = 0; k < SO_STAGES; k++) {
		ck_assert_int_eq(fp8kv_buffer_alloc(b, bytes[k], &buf[k]), FP8KV_OK);
		ck_assert_int_eq(fp8kv_buffer_fill(b, buf[k], bytes[k] == bf ? 0xFF : 0xA5, bytes[k]),
				 FP8KV_OK);
	}
	const size_t half = SO_ELEMS / 2;
	fp8kv_status st[SO_STAGES];
	const void *rows[3] = {dx, buf[1], buf[3]};
	for (int w = 0; w < 3; w++) {
		fp8kv_cache_write d;
		fp8kv_cache_write_init(&d, SO_TOKENS, SO_HEADS, SO_DIM, SO_DIM, SO_TOKENS / SO_BS,
				       SO_BS, FP8KV_LAYOUT_NHD);
		d.key = rows[w];
		d.value = (const uint16_t *)rows[w] + half;
		d.input_dtype = FP8KV_BF16;
		d.key_cache = buf[2 * w];
		d.value_cache = (uint8_t *)buf[2 * w] + half;
		d.cache_dtype = FP8KV_E4M3FN;
		d.slot_mapping = dslots;
		d.scale_mode = FP8KV_SCALE_TENSOR;
		d.k_scale = d.v_scale = dscale;
		st[2 * w] = fp8kv_reshape_and_cache(b, &d, NULL);
		if (w < 2)
			st[2 * w + 1] = fp8kv_dequantize(b, buf[2 * w + 1], FP8KV_BF16, buf[2 * w],
							 FP8KV_E4M3FN, SO_ELEMS, FP8KV_SCALE_TENSOR,
							 dscale, NULL);
	}
	st[5] = fp8kv_quantize(b, buf[5], FP8KV_E5M2, buf[3], FP8KV_BF16, SO_ELEMS,
			       FP8KV_SCALE_TENSOR, dscale, FP8KV_SATURATE, NULL, NULL);
	const fp8kv_status sync = fp8kv_backend_synchronize(b, NULL);
	int failed = sync != FP8KV_OK;
	if (failed)
		snprintf(why, n, "synchronize: %s", fp8kv_last_error());
	for (int k = 0; k < SO_STAGES; k++) {
		if (st[k] != FP8KV_OK && !failed) {
			snprintf(why, n, "%s: %s", so_names[k], fp8kv_strerror(st[k]));
			failed = 1;
		}
		dev_fetch(b, out[k], buf[k], bytes[k]);
	}
	fp8kv_buffer_free(b, dx);
	fp8kv_buffer_free(b, dslots);
	fp8kv_buffer_free(b, dscale);
	return failed;
}

START_TEST(stream_order)
{
	if (skip_on_cpu(_i, "stream order", "the CPU backend's calls are synchronous"))
		return;
	const size_t bf = SO_ELEMS * 2;
	const size_t bytes[SO_STAGES] = {SO_ELEMS, bf, SO_ELEMS, bf, SO_ELEMS, SO_ELEMS};
	uint16_t *x = malloc(bf);
	int64_t *slots = malloc(SO_TOKENS * sizeof *slots);
	int64_t *perm = malloc((SO_TOKENS / SO_BS) * sizeof *perm);
	uint8_t *want[SO_STAGES], *got[SO_STAGES];
	ck_assert(x && slots && perm);
	for (int k = 0; k < SO_STAGES; k++) {
		want[k] = malloc(bytes[k]);
		got[k] = malloc(bytes[k]);
		ck_assert(want[k] && got[k]);
	}
	/* calm rows (|x| / s in [2^-12, 400)) and the blocks in a random order */
	const float scale = 0.75f;
	uint64_t r = 0x5EED0DE2ull;
	for (size_t i = 0; i < SO_ELEMS; i++) {
		const uint64_t u = next_random(&r);
		const double v = calm_value(u, log2(400.0), scale);
		cache_case_set_bits(x, FP8KV_BF16, i, cache_case_round_bits((u & 1) ? -v : v, FP8KV_BF16));
	}
	for (int64_t i = 0; i < SO_TOKENS / SO_BS; i++)
		perm[i] = i;
	for (int64_t i = SO_TOKENS / SO_BS - 1; i > 0; i--) {
		const int64_t j = (int64_t)(next_random(&r) % (uint64_t)(i + 1)), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (int64_t t = 0; t < SO_TOKENS; t++)
		slots[t] = perm[t / SO_BS] * SO_BS + t % SO_BS;

	char why[300] = "";
	ck_assert_msg(stream_chain(ref, x, slots, scale, want, why, sizeof why) == 0, "cpu: %s", why);
	ck_assert_msg(stream_chain(backends[_i], x, slots, scale, got, why, sizeof why) == 0, "%s: %s",
		      backend_names[_i], why);
	uint64_t compared = 0, differing = 0;
	char first[200] = "";
	for (int k = 0; k < SO_STAGES; k++) {
		size_t at;
		const uint64_t dk = count_diff(want[k], got[k], bytes[k], &at);
		if (dk && !differing)
			snprintf(first, sizeof first, "%s: byte %zu: cpu 0x%02x, %s 0x%02x",
				 so_names[k], at, want[k][at], backend_names[_i], got[k][at]);
		differing += dk;
		compared += bytes[k];
	}
	/* the chain means something only if no stage kept its poison (the
	 * bf16 stages: 0xA5 is also a code) */
	for (int k = 1; k <= 3; k += 2)
		for (size_t i = 0; i < bf; i += 2)
			ck_assert_msg(!(want[k][i] == 0xFF && want[k][i + 1] == 0xFF),
				      "cpu: %s left poison at %zu", so_names[k], i);
	summary(_i, "stream order", SO_STAGES, compared, differing);
	for (int k = 0; k < SO_STAGES; k++) {
		free(want[k]);
		free(got[k]);
	}
	free(x);
	free(slots);
	free(perm);
	ck_assert_msg(differing == 0, "%llu bytes differ; the first: %s", (unsigned long long)differing,
		      first);
}
END_TEST

START_TEST(quantize_all)
{
	enum { N16 = 65536, N32 = 1 << 20 };
	uint16_t *src16 = malloc(N16 * sizeof *src16);
	uint32_t *src32 = malloc(N32 * sizeof *src32);
	uint8_t *want = malloc(N32), *got = malloc(N32);
	ck_assert(src16 && src32 && want && got);
	for (uint32_t i = 0; i < N16; i++)
		src16[i] = (uint16_t)i;
	uint64_t x = 0x12345678ull;
	for (uint32_t i = 0; i < N32; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		src32[i] = (uint32_t)(x >> 32);
		if (i < 4096) /* every fp32 exponent with a few mantissas, both signs */
			src32[i] = (i & 1u) << 31 | (i >> 4 & 0xFFu) << 23 | (uint32_t)(x >> 41);
	}
	uint64_t cases = 0, bytes = 0, differing = 0;
	int failures = 0;
	char first[512] = "";
	const fp8kv_dtype sdts[3] = {FP8KV_F16, FP8KV_BF16, FP8KV_F32};
	for (int s = 0; s < 3; s++)
		for (int f = 0; f < 4; f++)
			for (int p = 0; p < 2; p++)
				for (size_t k = 0; k <= N_FLAT_SCALES; k++) {
					/* k == N_FLAT_SCALES: ONE (with a stray scale of 1e-3 to ignore) */
					const fp8kv_scale_mode mode = k < N_FLAT_SCALES ? FP8KV_SCALE_TENSOR
											: FP8KV_SCALE_ONE;
					const float scale = k < N_FLAT_SCALES ? flat_scales[k] : 1e-3f;
					const size_t n = s < 2 ? N16 : N32;
					const void *src = s < 2 ? (const void *)src16 : (const void *)src32;
					flat_run rw, rg;
					quantize_on(ref, src, sdts[s], n, formats[f], mode, scale, policies[p], want, &rw);
					quantize_on(backends[_i], src, sdts[s], n, formats[f], mode, scale,
						    policies[p], got, &rg);
					ck_assert_msg(rw.status == FP8KV_OK, "cpu quantize: %s", rw.message);
					size_t at;
					uint64_t dd = count_diff(want, got, n, &at);
					cases++;
					bytes += n + 8;
					differing += dd + (rw.counter != rg.counter);
					if (dd || rw.counter != rg.counter || rg.status != rw.status) {
						if (!failures++)
							snprintf(first, sizeof first,
								 "%s->%s %s %s scale %a: status %d (%s); %llu codes differ,"
								 " first input 0x%x: cpu 0x%02x, got 0x%02x; overflow_count cpu %llu got %llu",
								 fp8kv_dtype_name(sdts[s]), fp8kv_dtype_name(formats[f]),
								 mode == FP8KV_SCALE_ONE ? "ONE" : "TENSOR",
								 p ? "nonsat" : "sat", (double)scale, (int)rg.status,
								 rg.message, (unsigned long long)dd,
								 at < n ? (unsigned)(s < 2 ? src16[at] : src32[at]) : 0u,
								 at < n ? want[at] : 0, at < n ? got[at] : 0,
								 (unsigned long long)rw.counter,
								 (unsigned long long)rg.counter);
					}
				}
	summary(_i, "quantize", cases, bytes, differing);
	free(src16);
	free(src32);
	free(want);
	free(got);
	ck_assert_msg(failures == 0, "%d quantize runs differ; the first: %s", failures, first);
}
END_TEST

START_TEST(dequantize_all)
{
	uint8_t codes[256];
	uint8_t want[256 * 4], got[256 * 4];
	for (int i = 0; i < 256; i++)
		codes[i] = (uint8_t)i;
	uint64_t cases = 0, bytes = 0, differing = 0;
	int failures = 0;
	char first[512] = "";
	for (int f = 0; f < 4; f++)
		for (int o = 0; o < 3; o++)
			for (size_t k = 0; k <= N_FLAT_SCALES; k++) {
				const fp8kv_scale_mode mode = k < N_FLAT_SCALES ? FP8KV_SCALE_TENSOR : FP8KV_SCALE_ONE;
				const float scale = k < N_FLAT_SCALES ? flat_scales[k] : 7.0f;
				const size_t osz = fp8kv_dtype_size(inputs[o]);
				fp8kv_backend *bs[2] = {ref, backends[_i]};
				uint8_t *outs[2] = {want, got};
				fp8kv_status st[2];
				for (int w = 0; w < 2; w++) {
					flat_run r;
					memset(&r, 0, sizeof r);
					memset(outs[w], 0x5A, sizeof want);
					void *dsrc = dev_copy(bs[w], codes, sizeof codes);
					void *ddst = dev_copy(bs[w], outs[w], 256 * osz);
					void *dscale = dev_copy(bs[w], &scale, sizeof scale);
					record(&r, fp8kv_dequantize(bs[w], ddst, inputs[o], dsrc, formats[f], 256,
								    mode, dscale, NULL));
					record(&r, fp8kv_backend_synchronize(bs[w], NULL));
					dev_fetch(bs[w], outs[w], ddst, 256 * osz);
					fp8kv_buffer_free(bs[w], dsrc);
					fp8kv_buffer_free(bs[w], dscale);
					st[w] = r.status;
				}
				ck_assert_int_eq(st[0], FP8KV_OK);
				size_t at;
				uint64_t dd = count_diff(want, got, 256 * osz, &at);
				cases++;
				bytes += 256 * osz;
				differing += dd;
				if (dd || st[1] != FP8KV_OK) {
					if (!failures++)
						snprintf(first, sizeof first,
							 "%s->%s scale %a: status %d; %llu bytes differ, first at code 0x%02zx",
							 fp8kv_dtype_name(formats[f]), fp8kv_dtype_name(inputs[o]),
							 (double)scale, (int)st[1], (unsigned long long)dd,
							 at < 256 * osz ? at / osz : 0);
				}
			}
	summary(_i, "dequantize", cases, bytes, differing);
	ck_assert_msg(failures == 0, "%d dequantize runs differ; the first: %s", failures, first);
}
END_TEST

/* ------------------------------------------------------------ amax */

static float host_amax(const void *src, fp8kv_dtype dt, size_t n)
{
	float m = 0.0f;
	for (size_t i = 0; i < n; i++) {
		float x = oracle_widen(cache_case_get_bits(src, dt, i), dt);
		uint32_t b;
		memcpy(&b, &x, 4);
		if ((b & 0x7F800000u) == 0x7F800000u)
			continue;
		b &= 0x7FFFFFFFu;
		memcpy(&x, &b, 4);
		if (x > m)
			m = x;
	}
	return m;
}

START_TEST(amax)
{
	static const size_t sizes[] = {1, 7, 1000, 65536 + 3, (1u << 20) + 5};
	uint64_t cases = 0, bytes = 0, differing = 0;
	uint32_t *buf = malloc(((1u << 20) + 5) * 4);
	ck_assert_ptr_nonnull(buf);
	uint64_t x = 99;
	for (int dt = 0; dt < 3; dt++)
		for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
			for (int kind = 0; kind < 4; kind++) {
				const fp8kv_dtype d = inputs[dt];
				const size_t n = sizes[si], esz = fp8kv_dtype_size(d);
				const uint32_t inf = d == FP8KV_F32 ? 0x7F800000u : d == FP8KV_F16 ? 0x7C00u : 0x7F80u;
				for (size_t i = 0; i < n; i++) {
					x = x * 6364136223846793005ull + 1442695040888963407ull;
					uint32_t v = (uint32_t)(x >> 32);
					if (esz == 2)
						v &= 0xFFFF;
					if (kind == 1 && (x >> 20) % 4 == 0) /* many NaN and Inf */
						v = inf | ((x >> 8) & 1 ? 1u : 0u) | (v & (esz == 2 ? 0x8000u : 0x80000000u));
					if (kind == 2) /* nothing finite: amax 0 */
						v = inf | (uint32_t)(i & 1);
					if (kind == 3) /* tiny: subnormals only */
						v &= esz == 2 ? 0x807Fu : 0x807FFFFFu;
					cache_case_set_bits(buf, d, i, v);
				}
				float got[2] = {-1, -1};
				fp8kv_backend *bs[2] = {ref, backends[_i]};
				for (int w = 0; w < 2; w++) {
					void *dev = dev_copy(bs[w], buf, n * esz);
					ck_assert_int_eq(fp8kv_amax(bs[w], dev, d, n, &got[w]), FP8KV_OK);
					fp8kv_buffer_free(bs[w], dev);
				}
				const float want = host_amax(buf, d, n);
				cases++;
				bytes += 4;
				differing += memcmp(&got[0], &got[1], 4) != 0;
				ck_assert_msg(memcmp(&got[0], &want, 4) == 0,
					      "cpu amax %a, host %a (%s, n=%zu, kind %d)", (double)got[0],
					      (double)want, fp8kv_dtype_name(d), n, kind);
				ck_assert_msg(memcmp(&got[1], &want, 4) == 0,
					      "%s amax %a, want %a (%s, n=%zu, kind %d)", backend_names[_i],
					      (double)got[1], (double)want, fp8kv_dtype_name(d), n, kind);
			}
	free(buf);
	summary(_i, "amax", cases, bytes, differing);
}
END_TEST

/* ------------------------------------------------------- check_slots */

static void host_slot_report(const int64_t *s, int64_t n, int64_t num_slots, fp8kv_slot_report *r)
{
	unsigned char *seen = calloc((size_t)num_slots, 1);
	ck_assert_ptr_nonnull(seen);
	memset(r, 0, sizeof *r);
	r->first_padding = r->first_out_of_range = r->first_duplicate = -1;
	for (int64_t t = 0; t < n; t++) {
		if (s[t] < 0) {
			if (!r->padding++)
				r->first_padding = t;
		} else if (s[t] >= num_slots) {
			if (!r->out_of_range++)
				r->first_out_of_range = t;
		} else if (seen[s[t]]) {
			if (!r->duplicates++)
				r->first_duplicate = t;
		} else {
			seen[s[t]] = 1;
		}
	}
	free(seen);
}

static void slots_on(fp8kv_backend *b, const int64_t *s, int64_t n, fp8kv_index_type ty,
		     int64_t num_slots, fp8kv_slot_report *r)
{
	void *host;
	size_t bytes;
	if (ty == FP8KV_INDEX_INT32) {
		int32_t *a = malloc((size_t)(n ? n : 1) * 4);
		ck_assert_ptr_nonnull(a);
		for (int64_t i = 0; i < n; i++)
			a[i] = (int32_t)s[i];
		host = a;
		bytes = (size_t)n * 4;
	} else {
		host = (void *)s;
		bytes = (size_t)n * 8;
	}
	void *dev = dev_copy(b, host, bytes);
	memset(r, 0x77, sizeof *r);
	fp8kv_status st = fp8kv_check_slots(b, dev, n, ty, num_slots, r);
	ck_assert_msg(st == FP8KV_OK, "check_slots on %s: %s", fp8kv_backend_name(b), fp8kv_last_error());
	fp8kv_buffer_free(b, dev);
	if (host != (void *)s)
		free(host);
}

#define ASSERT_REPORT_EQ(a, b, what)                                                          \
	ck_assert_msg(memcmp(&(a), &(b), sizeof(a)) == 0,                                     \
		      "%s: padding %lld/%lld oor %lld/%lld dup %lld/%lld first %lld/%lld %lld/%lld" \
		      " %lld/%lld",                                                             \
		      what, (long long)(a).padding, (long long)(b).padding,                   \
		      (long long)(a).out_of_range, (long long)(b).out_of_range,               \
		      (long long)(a).duplicates, (long long)(b).duplicates,                   \
		      (long long)(a).first_padding, (long long)(b).first_padding,             \
		      (long long)(a).first_out_of_range, (long long)(b).first_out_of_range,   \
		      (long long)(a).first_duplicate, (long long)(b).first_duplicate)

START_TEST(check_slots)
{
	enum { N = 100000 };
	int64_t *s = malloc(N * sizeof *s);
	ck_assert_ptr_nonnull(s);
	uint64_t cases = 0;
	uint64_t x = 5;
	for (int variant = 0; variant < 8; variant++) {
		const fp8kv_index_type ty = variant & 1 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
		const int64_t num_slots = variant & 2 ? 4096 : 3 * N;
		const int64_t n = variant & 4 ? N : 1000 + variant;
		/* distinct negative padding values and distinct out-of-range
		 * values, so that only in-range repeats are duplicates; and
		 * one run with plain -1 padding compared with the CPU only */
		for (int64_t t = 0; t < n; t++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			const unsigned k = (unsigned)(x >> 58);
			if (k < 6)
				s[t] = -1 - t;
			else if (k < 9)
				s[t] = num_slots + t;
			else
				s[t] = (int64_t)((x >> 20) % (uint64_t)num_slots);
		}
		fp8kv_slot_report want, cpu, got;
		host_slot_report(s, n, num_slots, &want);
		slots_on(ref, s, n, ty, num_slots, &cpu);
		slots_on(backends[_i], s, n, ty, num_slots, &got);
		ASSERT_REPORT_EQ(cpu, want, "cpu vs host");
		ASSERT_REPORT_EQ(got, want, "backend vs host");
		ck_assert_int_gt(want.padding, 0);
		ck_assert_int_gt(want.out_of_range, 0);
		cases++;
		/* the usual -1 padding and a repeated out-of-range value */
		for (int64_t t = 0; t < n; t++)
			if (s[t] < 0)
				s[t] = -1;
			else if (s[t] >= num_slots)
				s[t] = num_slots;
		slots_on(ref, s, n, ty, num_slots, &cpu);
		slots_on(backends[_i], s, n, ty, num_slots, &got);
		ASSERT_REPORT_EQ(got, cpu, "backend vs cpu, -1 padding");
		cases++;
	}
	/* a permutation: no duplicates at all */
	for (int64_t t = 0; t < N; t++)
		s[t] = (t * 7919) % N;
	fp8kv_slot_report want, got;
	host_slot_report(s, N, N, &want);
	ck_assert_int_eq(want.duplicates, 0);
	slots_on(backends[_i], s, N, FP8KV_INDEX_INT64, N, &got);
	ASSERT_REPORT_EQ(got, want, "permutation");
	cases++;
	free(s);
	summary(_i, "check_slots", cases, cases * sizeof(fp8kv_slot_report), 0);
}
END_TEST

/* ------------------------------------------------------------- main */

static Suite *suite(void)
{
	Suite *s = suite_create("backends");
	TCase *tc = tcase_create("vs_cpu");
	tcase_add_loop_test(tc, cache_matrix, 0, nbackends);
	tcase_add_loop_test(tc, long_launches, 0, nbackends);
	tcase_add_loop_test(tc, range_edges, 0, nbackends);
	tcase_add_loop_test(tc, one_vs_tensor, 0, nbackends);
	tcase_add_loop_test(tc, erange, 0, nbackends);
	tcase_add_loop_test(tc, stream_order, 0, nbackends);
	tcase_add_loop_test(tc, quantize_all, 0, nbackends);
	tcase_add_loop_test(tc, dequantize_all, 0, nbackends);
	tcase_add_loop_test(tc, amax, 0, nbackends);
	tcase_add_loop_test(tc, check_slots, 0, nbackends);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	const char *env = getenv("FP8KV_TEST_BACKENDS");
	char list[512];
	snprintf(list, sizeof list, "%s", env && *env ? env : "hip");

	fp8kv_status st = fp8kv_backend_open("cpu", &ref);
	if (st != FP8KV_OK) {
		fprintf(stderr, "test_backends: cannot open the cpu backend: %s\n", fp8kv_last_error());
		return 99;
	}
	for (char *save = NULL, *name = strtok_r(list, ", \t", &save); name;
	     name = strtok_r(NULL, ", \t", &save)) {
		fp8kv_backend *b = NULL;
		if (nbackends == MAX_BACKENDS)
			break;
		st = fp8kv_backend_open(name, &b);
		if (st == FP8KV_ENODEV) {
			printf("backend %s: not available (%s), skipped\n", name, fp8kv_last_error());
			continue;
		}
		if (st != FP8KV_OK) {
			fprintf(stderr, "test_backends: backend %s: %s: %s\n", name, fp8kv_strerror(st),
				fp8kv_last_error());
			return EXIT_FAILURE;
		}
		backends[nbackends] = b;
		snprintf(backend_names[nbackends], sizeof backend_names[0], "%s", fp8kv_backend_name(b));
		printf("backend %s: %s\n", fp8kv_backend_name(b), fp8kv_backend_device(b));
		nbackends++;
	}
	if (nbackends == 0) {
		printf("test_backends: no backend of \"%s\" is available; skipped\n",
		       env && *env ? env : "hip");
		fp8kv_backend_close(ref);
		return 77;
	}
	fflush(stdout);

	build_combos();
	build_covering_array();
	SRunner *sr = srunner_create(suite());
	srunner_set_fork_status(sr, CK_NOFORK); /* GPU contexts do not survive fork */
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	for (int i = 0; i < nbackends; i++)
		fp8kv_backend_close(backends[i]);
	fp8kv_backend_close(ref);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
