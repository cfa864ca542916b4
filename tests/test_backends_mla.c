/* SPDX-License-Identifier: MIT */
/*
 * test_backends_mla.c - fp8kv_concat_and_cache_mla on each backend against
 * the CPU backend, every byte of the cache compared (test_backends_io.c
 * poisons it):
 *
 *   mla_matrix  FP8KV_MLA_PLAIN into the four FP8 formats (scale one and
 *               tensor, both policies) and a 16-bit copy, and FP8KV_MLA_DS
 *               (e4m3fn and e4m3fnuz, divisor 0, 224 and 1), from bf16,
 *               f16 and f32 where the kind takes them; ranks 512 + 64,
 *               128 + 32, 40 + 24 (rows off the vectors); kv_c and k_pe
 *               contiguous or as views of one [T][576] tensor, or off their
 *               16-byte boundary; entries packed or padded, blocks with
 *               gaps; 1 to 300 tokens, block sizes 1, 16 and 64; int32
 *               slots, padding, a swa_mapping, out-of-range tokens and the
 *               counters; a quarter of the 128-element tiles special (zero,
 *               NaN, Inf, nothing finite, subnormal, huge);
 *   mla_long    32768-token calls of both kinds (skipped for "cpu").
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cache_case.h"
#include "fp8kv.h"
#include "test_backends.h"

typedef struct mcase {
	fp8kv_mla_kind kind;
	fp8kv_dtype in, cache;
	fp8kv_scale_mode mode;
	float scale, divisor;
	fp8kv_overflow overflow;
	int64_t T, rank, pe, BS;
	int fused;     /* kv_c and k_pe are views of one [T][rank + pe + gap] tensor */
	int misalign;  /* inputs one element off their 16-byte boundary */
	int padded;    /* entries and blocks with gaps */
	int swa, slots32, counters, out_of_range;
	double padding;
	uint64_t seed;
	/* derived by mcase_build */
	int64_t NB, swa_len, entry, stride_slot, stride_block, kv_st, pe_st, kv_at, pe_at;
	int iin, ipe, icache, iscale, islots, iswa, icounts;
} mcase;

static void mcase_describe(const mcase *c, char *buf, size_t n)
{
	snprintf(buf, n,
		 "%s %s->%s %s scale=%g div=%g %s T=%lld rank=%lld pe=%lld BS=%lld fused=%d "
		 "misalign=%d padded=%d swa=%d slots32=%d counters=%d oor=%d pad=%.2f seed=%llu\n",
		 c->kind == FP8KV_MLA_DS ? "ds" : "plain", fp8kv_dtype_name(c->in),
		 fp8kv_dtype_name(c->cache), fp8kv_scale_mode_name(c->mode), (double)c->scale,
		 (double)c->divisor, c->overflow ? "nonsat" : "sat", (long long)c->T,
		 (long long)c->rank, (long long)c->pe, (long long)c->BS, c->fused, c->misalign,
		 c->padded, c->swa, c->slots32, c->counters, c->out_of_range, c->padding,
		 (unsigned long long)c->seed);
}

static void mcase_build(mcase *c, tb_set *s)
{
	const size_t in_size = fp8kv_dtype_size(c->in);
	const size_t cache_size = c->kind == FP8KV_MLA_DS ? 1 : fp8kv_dtype_size(c->cache);
	uint64_t x = c->seed * 0x2545F4914F6CDD1Dull + 7;
	c->NB = (c->T + c->BS - 1) / c->BS + 2;
	c->entry = c->kind == FP8KV_MLA_DS ? 656 : c->rank + c->pe;
	/* gaps keep DS records on 16 bytes and plain entries on 8 elements */
	c->stride_slot = c->entry + (c->padded ? 16 : 0);
	c->stride_block = c->BS * c->stride_slot + (c->padded ? 32 : 0);
	const int64_t T = c->T > 0 ? c->T : 1;
	c->kv_at = c->misalign ? 1 : 0;
	if (c->fused) { /* one tensor: kv_c at 0, k_pe at rank */
		c->kv_st = c->pe_st = c->rank + c->pe + 8;
		c->pe_at = c->kv_at + c->rank;
	} else {
		c->kv_st = c->rank;
		c->pe_st = c->pe;
		c->pe_at = c->kv_at;
	}
	const int64_t in_elems = c->kv_at + (T - 1) * c->kv_st + c->rank + c->pe + 8;
	c->iin = tb_add(s, "kv_c", TB_INPUT, (size_t)in_elems * in_size);
	for (int64_t k = 0; k < in_elems; k++) /* gaps that must never be read */
		cache_case_set_bits(s->b[c->iin].host, c->in, (size_t)k,
				    c->in == FP8KV_F32 ? 0x7FC0DEADu : 0x7FDEu);
	c->ipe = c->iin;
	if (!c->fused) {
		c->ipe = tb_add(s, "k_pe", TB_INPUT,
				(size_t)(c->pe_at + (T - 1) * c->pe_st + c->pe) * in_size);
	}
	for (int64_t t = 0; t < c->T; t++) {
		tb_fill_groups(s->b[c->iin].host, c->in, (size_t)(c->kv_at + t * c->kv_st), c->rank,
			       c->rank % 128 ? c->rank : 128, 1, &x);
		tb_fill_groups(s->b[c->ipe].host, c->in, (size_t)(c->pe_at + t * c->pe_st), c->pe,
			       c->pe, t % 4 == 3, &x);
	}
	c->icache = tb_add(s, "cache", TB_OUTPUT, (size_t)(c->NB * c->stride_block) * cache_size);
	c->iscale = tb_add(s, "scale", TB_INPUT, 4);
	memcpy(s->b[c->iscale].host, &c->scale, 4);
	c->islots = tb_add(s, "slots", TB_INPUT, (size_t)T * 8);
	c->iswa = tb_add(s, "swa", TB_INPUT, (size_t)(c->NB * c->BS + 5) * 8);
	tb_fill_slots(s->b[c->islots].host, c->slots32, s->b[c->iswa].host, &c->swa_len, c->T,
		      c->NB * c->BS, c->padding, c->out_of_range, c->swa, &x);
	c->icounts = tb_add(s, "counters", TB_ACCUM, 16);
	const uint64_t start[2] = {3, 5};
	memcpy(s->b[c->icounts].host, start, sizeof start);
}

static fp8kv_status mcase_call(fp8kv_backend *b, void *const *dev, const void *ctx)
{
	const mcase *c = ctx;
	const size_t in_size = fp8kv_dtype_size(c->in);
	fp8kv_mla_write d;
	fp8kv_mla_write_init(&d, c->kind, c->T, c->rank, c->pe, c->NB, c->BS);
	d.input_dtype = c->in;
	d.cache_dtype = c->cache;
	d.kv_c = (const uint8_t *)dev[c->iin] + (size_t)c->kv_at * in_size;
	d.k_pe = (const uint8_t *)dev[c->ipe] + (size_t)c->pe_at * in_size;
	d.kv_c_stride_token = c->kv_st;
	d.k_pe_stride_token = c->pe_st;
	d.cache = dev[c->icache];
	d.stride_block = c->stride_block;
	d.stride_slot = c->stride_slot;
	d.slot_mapping = dev[c->islots];
	d.slot_type = c->slots32 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
	if (c->swa) {
		d.swa_mapping = dev[c->iswa];
		d.swa_type = FP8KV_INDEX_INT64;
		d.swa_mapping_len = c->swa_len;
	}
	d.scale_mode = c->mode;
	d.scale = dev[c->iscale];
	d.divisor = c->divisor;
	d.overflow = c->overflow;
	if (c->counters) {
		d.overflow_count = dev[c->icounts];
		d.nan_count = (uint64_t *)dev[c->icounts] + 1;
	}
	return fp8kv_concat_and_cache_mla(b, &d, NULL);
}

static void run_mcase(int bi, mcase *c, tb_result *res)
{
	tb_set s;
	memset(&s, 0, sizeof s);
	mcase_build(c, &s);
	if (!res->differing)
		mcase_describe(c, res->report, sizeof res->report);
	tb_compare_run(bi, &s, mcase_call, c, c->seed, res);
	tb_set_free(&s);
}

static void end_mla(int bi, const char *what, const tb_result *res)
{
	summary(bi, what, res->cases, res->bytes, res->differing);
	ck_assert_msg(res->differing == 0, "%s: %s: %llu bytes differ from the CPU; the first case: %s",
		      backend_names[bi], what, (unsigned long long)res->differing, res->report);
	ck_assert_uint_gt(res->bytes, 0);
}

/* The shapes: tokens, rank, pe, block size (DS takes 512 + 64 in all). */
static const int64_t mshapes[][4] = {
	{1, 512, 64, 16}, {64, 512, 64, 64}, {300, 512, 64, 1}, {33, 128, 32, 16}, {7, 40, 24, 4},
	{256, 512, 64, 16},
};
#define N_MSHAPES (sizeof mshapes / sizeof mshapes[0])

START_TEST(mla_matrix)
{
	static tb_result res;
	memset(&res, 0, sizeof res);
	static const fp8kv_dtype ins[3] = {FP8KV_BF16, FP8KV_F16, FP8KV_F32};
	static const fp8kv_dtype fp8[4] = {FP8KV_E4M3FN, FP8KV_E4M3FNUZ, FP8KV_E5M2,
					   FP8KV_E5M2FNUZ};
	static const float scales[] = {1.0f, 0.0478f, 3.0f, 1.0f / 448, 0x1p-20f};
	static const float divisors[] = {0.0f, 224.0f, 1.0f};
	int n = 0;
	/* plain: each format (and the copy) x input x scale mode x 3 */
	for (int f = 0; f < 5; f++)
		for (int k = 0; k < 3; k++)
			for (int m = 0; m < (f < 4 ? 2 : 1); m++)
				for (int v = 0; v < 3; v++, n++) {
					mcase c;
					memset(&c, 0, sizeof c);
					const int64_t *sh = mshapes[(size_t)(n * 5 + v) % N_MSHAPES];
					c.kind = FP8KV_MLA_PLAIN;
					c.in = ins[k];
					c.cache = f < 4 ? fp8[f] : c.in;
					c.mode = m ? FP8KV_SCALE_TENSOR : FP8KV_SCALE_ONE;
					c.scale = scales[n % 5];
					c.overflow = f < 4 && n % 2 ? FP8KV_NONSATURATING : FP8KV_SATURATE;
					c.T = sh[0];
					c.rank = sh[1];
					c.pe = sh[2];
					c.BS = sh[3];
					c.fused = n % 3 == 1;
					c.misalign = n % 7 == 2;
					c.padded = n % 2;
					c.swa = n % 4 == 3;
					c.slots32 = n % 3 == 2;
					c.counters = n % 2 == 0;
					c.padding = n % 5 ? 0.1 : 0.0;
					c.out_of_range = n % 6 == 1 && c.T > 4 ? 2 : 0;
					c.seed = 97000 + (uint64_t)n;
					run_mcase(_i, &c, &res);
				}
	/* DeepSeek's record: e4m3fn and e4m3fnuz x bf16, f16 x divisor x 4 */
	for (int f = 0; f < 2; f++)
		for (int k = 0; k < 2; k++)
			for (int dv = 0; dv < 3; dv++)
				for (int v = 0; v < 4; v++, n++) {
					mcase c;
					memset(&c, 0, sizeof c);
					const int64_t *sh = mshapes[(size_t)(n * 5 + v) % N_MSHAPES];
					c.kind = FP8KV_MLA_DS;
					c.in = ins[k];
					c.cache = fp8[f];
					c.mode = FP8KV_SCALE_ONE;
					c.divisor = divisors[dv];
					c.overflow = n % 2 ? FP8KV_NONSATURATING : FP8KV_SATURATE;
					c.T = sh[0];
					c.rank = 512;
					c.pe = 64;
					c.BS = sh[3];
					c.fused = n % 3 == 1;
					c.misalign = n % 7 == 2;
					c.padded = n % 2;
					c.swa = n % 4 == 3;
					c.slots32 = n % 3 == 2;
					c.counters = n % 2 == 0;
					c.padding = n % 5 ? 0.1 : 0.0;
					c.out_of_range = n % 6 == 1 && c.T > 4 ? 2 : 0;
					c.seed = 98000 + (uint64_t)n;
					run_mcase(_i, &c, &res);
				}
	end_mla(_i, "mla matrix", &res);
}
END_TEST

START_TEST(mla_long)
{
	static tb_result res;
	memset(&res, 0, sizeof res);
	if (skip_on_cpu(_i, "mla long", "a GPU's launch shapes"))
		return;
	for (int i = 0; i < 4; i++) {
		mcase c;
		memset(&c, 0, sizeof c);
		c.kind = i < 2 ? FP8KV_MLA_DS : FP8KV_MLA_PLAIN;
		c.in = i % 2 ? FP8KV_F16 : FP8KV_BF16;
		c.cache = FP8KV_E4M3FN;
		c.mode = i == 3 ? FP8KV_SCALE_TENSOR : FP8KV_SCALE_ONE;
		c.scale = 0.0478f;
		c.T = 32768;
		c.rank = 512;
		c.pe = 64;
		c.BS = i % 2 ? 64 : 16;
		c.fused = i == 1;
		c.padding = 0.02;
		c.out_of_range = i == 2 ? 3 : 0;
		c.seed = 99000 + (uint64_t)i;
		run_mcase(_i, &c, &res);
	}
	end_mla(_i, "mla long", &res);
}
END_TEST

void add_mla_groups(TCase *tc, int nbackends)
{
	tcase_add_loop_test(tc, mla_matrix, 0, nbackends);
	tcase_add_loop_test(tc, mla_long, 0, nbackends);
}
