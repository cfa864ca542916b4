/* SPDX-License-Identifier: MIT */
/*
 * test_backends_group.c - fp8kv_reshape_and_cache_grouped on each backend
 * against the CPU backend, every byte of the caches and scale arrays
 * compared (test_backends_io.c poisons them):
 *
 *   group_matrix   every rule x cache format (F32 into the four FP8
 *                  formats, e2m1 and int8 both roundings; E8M0 floor and
 *                  rceil into FP8 and e2m1; NVFP4) x input dtype, six cases
 *                  each: G 16, 32, 64, 128 and the whole row, head dims
 *                  from 16 to 1024 (rows of 2 to 128 vectors: both GPU
 *                  kernels, one and two vectors per lane), layouts NHD, HND
 *                  and with gaps, scales contiguous, gapped or in vLLM's
 *                  4-token interleave, V's scales by a layout of their own
 *                  (v_own_layout: vLLM's sm_100 NVFP4 page, K linear and V
 *                  interleaved), inputs off their 16-byte boundary,
 *                  int32 slots, padding, a swa_mapping, out-of-range
 *                  tokens, both overflow policies where the format has two,
 *                  counters and k_amax/v_amax; a quarter of the groups
 *                  special (zeros, NaN, Inf, subnormal or huge amax, ties,
 *                  one value); NVFP4 global scales normal, tiny, subnormal,
 *                  0, negative, NaN and Inf;
 *   compare_faults the comparison catches faults planted in a second CPU
 *                  handle's runs (once, whatever the backends);
 *   group_long     calls of 8-67 million elements (MXFP8, MXFP4, NVFP4,
 *                  int8 per (token, head)), long enough for a GPU's
 *                  multi-wave grids (skipped for "cpu").
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_case.h"
#include "fp8kv.h"
#include "test_backends.h"

/* ------------------------------------------------------------- values */

/* A double 2^e * u, u in [1, 2) from r. */
static double scaled(uint64_t r, int e)
{
	return ldexp(1.0 + (double)(r >> 11) * 0x1p-53, e);
}

void tb_fill_groups(void *buf, fp8kv_dtype dtype, size_t at, int64_t n, int64_t G, int specials,
		    uint64_t *x)
{
	/* the exponents of ordinary values, and of the extremes, per dtype */
	const int lo = dtype == FP8KV_F16 ? -12 : -40, hi = dtype == FP8KV_F16 ? 12 : 40;
	const int huge = dtype == FP8KV_F16 ? 15 : 127;
	const int tiny = dtype == FP8KV_F16 ? -24 : dtype == FP8KV_BF16 ? -133 : -149;
	static const double ties[] = {0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 0.5, 126.5, 127.5};
	for (int64_t g0 = 0; g0 < n; g0 += G) {
		const int64_t len = n - g0 < G ? n - g0 : G;
		const int kind = specials && next_random(x) % 4 == 0 ? 1 + (int)(next_random(x) % 9) : 0;
		const int e = lo + (int)(next_random(x) % (uint64_t)(hi - lo));
		const int64_t special_at = (int64_t)(next_random(x) % (uint64_t)len);
		for (int64_t i = 0; i < len; i++) {
			const uint64_t r = next_random(x);
			const double sign = r & 1 ? -1.0 : 1.0;
			double v = sign * scaled(r, e - (int)((r >> 1) % 9));
			switch (kind) {
			case 1: v = sign * 0.0; break;                          /* zeros, both signs */
			case 2: if (i == special_at) v = NAN; break;            /* one NaN */
			case 3: if (i == special_at) v = sign * INFINITY; break; /* one Inf */
			case 4: v = r & 2 ? NAN : sign * INFINITY; break;        /* nothing finite */
			case 5: v = sign * scaled(r, tiny + (int)((r >> 2) % 3)); break; /* subnormal */
			case 6: v = sign * scaled(r, huge - (int)((r >> 2) % 2)); break; /* huge */
			case 7: v = i == special_at ? v : sign * 0.0; break;     /* one value */
			case 8: /* ties of e2m1 and int8 under power-of-two scales */
				v = sign * ldexp(ties[(r >> 3) % 10], e / 4);
				break;
			case 9: v = sign * ldexp(1.0, e); break;                  /* a constant */
			default: break;
			}
			uint32_t bits = cache_case_round_bits(v, dtype);
			if (isnan(v)) /* a NaN of either sign, with a payload */
				bits = dtype == FP8KV_F32 ? 0x7FC00001u | (uint32_t)(r & 2) << 30
				       : dtype == FP8KV_F16 ? 0x7E01u | (uint32_t)(r & 2) << 14
							    : 0x7FC1u | (uint32_t)(r & 2) << 14;
			cache_case_set_bits(buf, dtype, at + (size_t)(g0 + i), bits);
		}
	}
}

/* Slots for T tokens into num_slots, distinct, with padding, swa and
 * out-of-range tokens as asked: slot_mapping (int64 or int32 into
 * slot_buf) and, with swa, the table (int64 into swa_buf, *swa_len
 * entries). */
void tb_fill_slots(uint8_t *slot_buf, int slots32, uint8_t *swa_buf, int64_t *swa_len,
		   int64_t T, int64_t num_slots, double padding, int out_of_range, int swa,
		   uint64_t *x)
{
	int64_t *perm = malloc((size_t)num_slots * sizeof *perm);
	ck_assert_ptr_nonnull(perm);
	for (int64_t i = 0; i < num_slots; i++)
		perm[i] = i;
	for (int64_t i = num_slots - 1; i > 0; i--) {
		const int64_t j = (int64_t)(next_random(x) % (uint64_t)(i + 1)), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	const int64_t L = num_slots + 5;
	if (swa) {
		/* entry i maps to a distinct slot; entries past num_slots are padding */
		int64_t *table = (int64_t *)swa_buf;
		for (int64_t i = 0; i < L; i++)
			table[i] = i < num_slots ? perm[num_slots - 1 - i] : -1;
		*swa_len = L;
	}
	for (int64_t t = 0; t < T; t++) {
		int64_t s = perm[t % num_slots];
		const double u = (double)(next_random(x) >> 11) * 0x1p-53;
		if (u < padding)
			s = swa && t % 2 ? num_slots + 1 : -1; /* padding, directly or by the table */
		if (t >= T - out_of_range) {
			const int past = t % 2 || !swa;
			if (swa && !past)
				((int64_t *)swa_buf)[perm[t % num_slots]] = num_slots + t;
			else
				s = swa ? L + t : num_slots + t;
		}
		if (slots32)
			((int32_t *)slot_buf)[t] = (int32_t)s;
		else
			((int64_t *)slot_buf)[t] = s;
	}
	free(perm);
}

/* ----------------------------------------------------------- grouped case */

enum { GL_NHD, GL_HND, GL_GAPS };

typedef struct gcase {
	fp8kv_dtype in, cache;
	fp8kv_group_rule rule;
	int64_t G; /* 0: the head dim (both sides') */
	fp8kv_rounding rounding;
	float divisor, scale_floor;
	fp8kv_overflow overflow;
	int64_t T, H, Dk, Dv, BS;
	int layout, interleave, own_v, misalign, swa, slots32, outputs, out_of_range;
	double padding;
	float kg, vg;
	uint64_t seed;
	/* derived by gcase_build */
	int64_t NB, swa_len;
	int64_t in_st[2], in_sh[2], in_at[2];
	int64_t c_sb[2], c_ss[2], c_sh[2];
	fp8kv_group_scales gs;
	int ib[2], icache[2], iscale[2], iglobal, islots, iswa, icounts, iamax;
} gcase;

static const char *rule_name(fp8kv_group_rule r)
{
	static const char *const n[] = {"f32", "e8m0_floor", "e8m0_rceil", "nvfp4"};
	return n[r];
}

static void gcase_describe(const gcase *c, char *buf, size_t n)
{
	snprintf(buf, n,
		 "%s->%s %s G=%lld%s %s T=%lld H=%lld D=%lld/%lld BS=%lld layout=%d interleave=%d own_v=%d "
		 "misalign=%d swa=%d slots32=%d outputs=%d oor=%d pad=%.2f div=%g floor=%g "
		 "g=%g/%g seed=%llu\n",
		 fp8kv_dtype_name(c->in), fp8kv_dtype_name(c->cache), rule_name(c->rule),
		 (long long)c->G, c->rounding ? " toward-zero" : "",
		 c->overflow ? "nonsat" : "sat", (long long)c->T, (long long)c->H, (long long)c->Dk,
		 (long long)c->Dv, (long long)c->BS, c->layout, c->interleave, c->own_v, c->misalign, c->swa,
		 c->slots32, c->outputs, c->out_of_range, c->padding, (double)c->divisor,
		 (double)c->scale_floor, (double)c->kg, (double)c->vg,
		 (unsigned long long)c->seed);
}

/* V's scale strides as a K layout (v_own_layout), for scale_extent. */
static fp8kv_group_scales v_layout(const fp8kv_group_scales *g)
{
	fp8kv_group_scales v = *g;
	if (g->v_own_layout) {
		v.stride_block = g->v_stride_block;
		v.stride_slot = g->v_stride_slot;
		v.stride_head = g->v_stride_head;
		v.stride_group = g->v_stride_group;
		v.interleave = g->v_interleave;
		v.stride_interleave = g->v_stride_interleave;
	}
	return v;
}

/* The largest element index the scale layout reaches, plus one. */
static int64_t scale_extent(const gcase *c, const fp8kv_group_scales *g, int64_t groups)
{
	int64_t slot_max = 0;
	for (int64_t o = 0; o < c->BS; o++) {
		const int64_t term = g->interleave > 0 ? (o / g->interleave) * g->stride_slot +
								 (o % g->interleave) * g->stride_interleave
						       : o * g->stride_slot;
		slot_max = term > slot_max ? term : slot_max;
	}
	return (c->NB - 1) * g->stride_block + slot_max + (c->H - 1) * g->stride_head +
	       (groups - 1) * g->stride_group + 1;
}

/* The buffers of case c, filled, into s. */
static void gcase_build(gcase *c, tb_set *s)
{
	const int64_t G = c->G ? c->G : c->Dk;
	const size_t in_size = fp8kv_dtype_size(c->in);
	const int vpe = c->cache == FP8KV_E2M1 ? 2 : 1;
	uint64_t x = c->seed * 0x2545F4914F6CDD1Dull + 1;
	c->NB = (c->T + c->BS - 1) / c->BS + 2;
	const int64_t D[2] = {c->Dk, c->Dv};
	for (int i = 0; i < 2; i++) {
		const int64_t gap = c->layout == GL_GAPS ? 8 : 0;
		c->in_at[i] = c->misalign ? 1 : 0;
		c->in_sh[i] = D[i] + gap;
		c->in_st[i] = c->H * c->in_sh[i] + 2 * gap;
		const int64_t row = D[i] / vpe;
		if (c->layout == GL_HND) {
			c->c_ss[i] = row;
			c->c_sh[i] = c->BS * row;
			c->c_sb[i] = c->H * c->BS * row;
		} else {
			c->c_sh[i] = row + gap;
			c->c_ss[i] = c->H * c->c_sh[i] + 2 * gap;
			c->c_sb[i] = c->BS * c->c_ss[i] + 4 * gap;
		}
	}
	/* the scales: init's contiguous strides, gaps, or vLLM's interleave */
	const int64_t gm = (c->Dk > c->Dv ? c->Dk : c->Dv) / G;
	fp8kv_group_scales_init(&c->gs, c->rule, G, c->H, c->Dk > c->Dv ? c->Dk : c->Dv, c->BS,
				c->layout == GL_HND ? FP8KV_LAYOUT_HND : FP8KV_LAYOUT_NHD);
	c->gs.rounding = c->rounding;
	c->gs.divisor = c->divisor;
	c->gs.scale_floor = c->scale_floor;
	if (c->interleave) {
		c->gs.interleave = 4;
		c->gs.stride_interleave = 1;
		c->gs.stride_group = 4;
		c->gs.stride_head = 4 * gm;
		c->gs.stride_slot = c->H * 4 * gm;
		c->gs.stride_block = (c->BS + 3) / 4 * c->gs.stride_slot;
	} else if (c->layout == GL_GAPS) {
		c->gs.stride_group = 1;
		c->gs.stride_head = gm + 1;
		c->gs.stride_slot = c->H * (gm + 1) + 2;
		c->gs.stride_block = c->BS * c->gs.stride_slot + 3;
	}
	if (c->own_v) {
		/* V interleaved by 4 tokens, past a gap per head, whatever K's */
		c->gs.v_own_layout = 1;
		c->gs.v_interleave = 4;
		c->gs.v_stride_interleave = 1;
		c->gs.v_stride_group = 4;
		c->gs.v_stride_head = 4 * gm + 4;
		c->gs.v_stride_slot = c->H * c->gs.v_stride_head;
		c->gs.v_stride_block = (c->BS + 3) / 4 * c->gs.v_stride_slot + 1;
	}
	const fp8kv_group_scales vs = v_layout(&c->gs);
	const size_t scale_bytes = c->rule == FP8KV_GROUP_F32 ? 4 : 1;

	static const char *const in_names[2] = {"key", "value"};
	static const char *const cache_names[2] = {"key_cache", "value_cache"};
	static const char *const scale_names[2] = {"k_scales", "v_scales"};
	for (int i = 0; i < 2; i++) {
		const int64_t elems = c->in_at[i] + (c->T > 0 ? (c->T - 1) * c->in_st[i] : 0) +
				      (c->H - 1) * c->in_sh[i] + D[i];
		c->ib[i] = tb_add(s, in_names[i], TB_INPUT, (size_t)elems * in_size);
		/* gaps hold values that must never be read */
		for (int64_t k = 0; k < elems; k++)
			cache_case_set_bits(s->b[c->ib[i]].host, c->in, (size_t)k,
					    c->in == FP8KV_F32 ? 0x7FC0DEADu : 0x7FDEu);
		for (int64_t t = 0; t < c->T; t++)
			for (int64_t h = 0; h < c->H; h++)
				tb_fill_groups(s->b[c->ib[i]].host, c->in,
					       (size_t)(c->in_at[i] + t * c->in_st[i] + h * c->in_sh[i]),
					       D[i], G, 1, &x);
		c->icache[i] = tb_add(s, cache_names[i], TB_OUTPUT, (size_t)(c->NB * c->c_sb[i]));
		c->iscale[i] = tb_add(s, scale_names[i], TB_OUTPUT,
				      (size_t)scale_extent(c, i ? &vs : &c->gs, D[i] / G) *
					      scale_bytes);
	}
	c->iglobal = tb_add(s, "global", TB_INPUT, 8);
	memcpy(s->b[c->iglobal].host, &c->kg, 4);
	memcpy(s->b[c->iglobal].host + 4, &c->vg, 4);
	c->islots = tb_add(s, "slots", TB_INPUT, (size_t)(c->T > 0 ? c->T : 1) * 8);
	c->iswa = tb_add(s, "swa", TB_INPUT, (size_t)(c->NB * c->BS + 5) * 8);
	tb_fill_slots(s->b[c->islots].host, c->slots32, s->b[c->iswa].host, &c->swa_len, c->T,
		      c->NB * c->BS, c->padding, c->out_of_range, c->swa, &x);
	c->icounts = tb_add(s, "counters", TB_ACCUM, 16);
	const uint64_t start[2] = {7, 11};
	memcpy(s->b[c->icounts].host, start, sizeof start);
	c->iamax = tb_add(s, "amax", TB_ACCUM, (size_t)(2 * c->H) * 4);
	static const float amax_start[] = {0.0f, 0.25f, NAN, -1.0f, 1e30f, 3.0f};
	for (int64_t k = 0; k < 2 * c->H; k++)
		memcpy(s->b[c->iamax].host + 4 * k, &amax_start[k % 6], 4);
}

static fp8kv_status gcase_call(fp8kv_backend *b, void *const *dev, const void *ctx)
{
	const gcase *c = ctx;
	fp8kv_cache_write d;
	fp8kv_cache_write_init(&d, c->T, c->H, c->Dk, c->Dv, c->NB, c->BS, FP8KV_LAYOUT_NHD);
	const size_t in_size = fp8kv_dtype_size(c->in);
	d.input_dtype = c->in;
	d.cache_dtype = c->cache;
	d.key = (const uint8_t *)dev[c->ib[0]] + c->in_at[0] * in_size;
	d.value = (const uint8_t *)dev[c->ib[1]] + c->in_at[1] * in_size;
	d.key_stride_token = c->in_st[0];
	d.key_stride_head = c->in_sh[0];
	d.value_stride_token = c->in_st[1];
	d.value_stride_head = c->in_sh[1];
	d.key_cache = dev[c->icache[0]];
	d.value_cache = dev[c->icache[1]];
	d.key_cache_stride_block = c->c_sb[0];
	d.key_cache_stride_slot = c->c_ss[0];
	d.key_cache_stride_head = c->c_sh[0];
	d.value_cache_stride_block = c->c_sb[1];
	d.value_cache_stride_slot = c->c_ss[1];
	d.value_cache_stride_head = c->c_sh[1];
	d.slot_mapping = dev[c->islots];
	d.slot_type = c->slots32 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
	if (c->swa) {
		d.swa_mapping = dev[c->iswa];
		d.swa_type = FP8KV_INDEX_INT64;
		d.swa_mapping_len = c->swa_len;
	}
	d.scale_mode = FP8KV_SCALE_GROUP;
	d.overflow = c->overflow;
	if (c->outputs) {
		d.overflow_count = dev[c->icounts];
		d.nan_count = (uint64_t *)dev[c->icounts] + 1;
		d.k_amax = dev[c->iamax];
		d.v_amax = (float *)dev[c->iamax] + c->H;
	}
	fp8kv_group_scales g = c->gs;
	g.k_scales = dev[c->iscale[0]];
	g.v_scales = dev[c->iscale[1]];
	if (c->rule == FP8KV_GROUP_NVFP4) {
		g.k_global = dev[c->iglobal];
		g.v_global = (const float *)dev[c->iglobal] + 1;
	}
	return fp8kv_reshape_and_cache_grouped(b, &d, &g, NULL);
}

/* Runs c on backend bi against the CPU, into res. */
static void run_gcase(int bi, gcase *c, tb_result *res)
{
	tb_set s;
	memset(&s, 0, sizeof s);
	gcase_build(c, &s);
	if (!res->differing)
		gcase_describe(c, res->report, sizeof res->report);
	tb_compare_run(bi, &s, gcase_call, c, c->seed, res);
	tb_set_free(&s);
}

static void end_group(int bi, const char *what, const tb_result *res)
{
	summary(bi, what, res->cases, res->bytes, res->differing);
	ck_assert_msg(res->differing == 0, "%s: %s: %llu bytes differ from the CPU; the first case: %s",
		      backend_names[bi], what, (unsigned long long)res->differing, res->report);
	ck_assert_uint_gt(res->bytes, 0);
}

/* ------------------------------------------------------------ the matrix */

typedef struct recipe {
	fp8kv_group_rule rule;
	fp8kv_dtype cache;
	fp8kv_rounding rounding;
} recipe;

static const recipe recipes[] = {
	{FP8KV_GROUP_F32, FP8KV_E4M3FN, 0},         {FP8KV_GROUP_F32, FP8KV_E4M3FNUZ, 0},
	{FP8KV_GROUP_F32, FP8KV_E5M2, 0},           {FP8KV_GROUP_F32, FP8KV_E5M2FNUZ, 0},
	{FP8KV_GROUP_F32, FP8KV_E2M1, 0},           {FP8KV_GROUP_F32, FP8KV_INT8, 0},
	{FP8KV_GROUP_F32, FP8KV_INT8, 1},           {FP8KV_GROUP_E8M0_FLOOR, FP8KV_E4M3FN, 0},
	{FP8KV_GROUP_E8M0_FLOOR, FP8KV_E4M3FNUZ, 0}, {FP8KV_GROUP_E8M0_FLOOR, FP8KV_E5M2, 0},
	{FP8KV_GROUP_E8M0_FLOOR, FP8KV_E5M2FNUZ, 0}, {FP8KV_GROUP_E8M0_FLOOR, FP8KV_E2M1, 0},
	{FP8KV_GROUP_E8M0_RCEIL, FP8KV_E4M3FN, 0},  {FP8KV_GROUP_E8M0_RCEIL, FP8KV_E4M3FNUZ, 0},
	{FP8KV_GROUP_E8M0_RCEIL, FP8KV_E5M2, 0},    {FP8KV_GROUP_E8M0_RCEIL, FP8KV_E5M2FNUZ, 0},
	{FP8KV_GROUP_E8M0_RCEIL, FP8KV_E2M1, 0},    {FP8KV_GROUP_NVFP4, FP8KV_E2M1, 0},
};
#define N_RECIPES (sizeof recipes / sizeof recipes[0])

/* The shapes each recipe runs in: tokens, heads, head dims, block size, G
 * (0: the row); NVFP4 takes G = 16 in all. */
typedef struct gshape {
	int64_t T, H, Dk, Dv, BS, G;
} gshape;

static const gshape gshapes[] = {
	{1, 8, 128, 128, 16, 32},   /* decode: one vector per lane */
	{300, 8, 128, 128, 16, 16}, /* two per lane on a large GPU */
	{37, 3, 64, 128, 1, 64},    /* head dims that differ */
	{64, 2, 256, 256, 64, 0},   /* a group of a whole 256 row: 32 lanes */
	{9, 1, 1024, 1024, 16, 128}, /* 128 vectors: the general kernel */
	{20, 4, 96, 96, 4, 32},     /* 12 vectors: a team wider than the row */
	{5, 2, 16, 32, 2, 16},      /* a one-vector group, a row of two */
	{130, 1, 512, 512, 16, 128}, /* DeepSeek-sized rows: two per lane, 16-lane groups */
};
#define N_GSHAPES (sizeof gshapes / sizeof gshapes[0])

/* NVFP4's global scales: calibrated, unit, tiny, subnormal, zero,
 * negative, NaN, Inf and huge */
static const float globals[] = {0x1.3p-9f, 1.0f,   0x1p-126f, 0x1p-140f, 0.0f,
				-0.5f,      NAN,    INFINITY,  3e38f,     0x1.8p-3f};

START_TEST(group_matrix)
{
	static tb_result res;
	memset(&res, 0, sizeof res);
	static const fp8kv_dtype ins[3] = {FP8KV_BF16, FP8KV_F16, FP8KV_F32};
	int n = 0;
	for (size_t r = 0; r < N_RECIPES; r++)
		for (int k = 0; k < 3; k++)
			for (int v = 0; v < 6; v++, n++) {
				const recipe *rc = &recipes[r];
				const gshape *sh = &gshapes[(size_t)(n * 5 + v) % N_GSHAPES];
				gcase c;
				memset(&c, 0, sizeof c);
				c.in = ins[k];
				c.cache = rc->cache;
				c.rule = rc->rule;
				c.rounding = rc->rounding;
				c.T = sh->T;
				c.H = sh->H;
				c.Dk = sh->Dk;
				c.Dv = sh->Dv;
				c.BS = sh->BS;
				c.G = rc->rule == FP8KV_GROUP_NVFP4 ? 16 : sh->G;
				if (c.G == 0 && c.Dk != c.Dv)
					c.G = 16;
				c.seed = 90000 + (uint64_t)n;
				c.layout = n % 3;
				c.interleave = n % 5 == 1 && c.layout != GL_GAPS;
				c.own_v = n % 5 == 3;
				c.misalign = n % 7 == 3;
				c.swa = n % 4 == 2;
				c.slots32 = n % 3 == 1;
				c.outputs = n % 2;
				c.padding = n % 5 == 0 ? 0.0 : 0.15;
				c.out_of_range = n % 6 == 5 ? 2 : 0;
				if (c.out_of_range >= c.T)
					c.out_of_range = 0;
				c.overflow = fp8kv_dtype_is_fp8(c.cache) && n % 2 ? FP8KV_NONSATURATING
										  : FP8KV_SATURATE;
				if (rc->rule == FP8KV_GROUP_F32) {
					static const float divs[] = {0.0f, 224.0f, 1.0f, 0.0f, 1e30f};
					static const float floors[] = {0.0f, 1e-6f, 0.0f, 1.0f, 0.0f};
					c.divisor = divs[n % 5];
					c.scale_floor = floors[(n / 5) % 5];
				}
				c.kg = globals[n % 10];
				c.vg = globals[(n + 3) % 10];
				run_gcase(_i, &c, &res);
			}
	end_group(_i, "group matrix", &res);
}
END_TEST

/* Calls long enough for a GPU's multi-wave grids (K-GRID, V-LONG-LAUNCHES). */
START_TEST(group_long)
{
	static tb_result res;
	memset(&res, 0, sizeof res);
	if (skip_on_cpu(_i, "group long", "a GPU's launch shapes"))
		return;
	static const struct {
		fp8kv_group_rule rule;
		fp8kv_dtype cache;
		fp8kv_rounding rounding;
		int64_t T, H, D, G;
	} longs[] = {
		{FP8KV_GROUP_E8M0_FLOOR, FP8KV_E4M3FN, 0, 32768, 8, 128, 32},  /* MXFP8 */
		{FP8KV_GROUP_E8M0_RCEIL, FP8KV_E2M1, 0, 16384, 8, 128, 32},    /* MXFP4 */
		{FP8KV_GROUP_NVFP4, FP8KV_E2M1, 0, 16384, 8, 128, 16},         /* NVFP4 */
		{FP8KV_GROUP_F32, FP8KV_INT8, 1, 8192, 8, 128, 128},           /* vLLM int8 */
	};
	for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++) {
		gcase c;
		memset(&c, 0, sizeof c);
		c.in = i % 2 ? FP8KV_F16 : FP8KV_BF16;
		c.cache = longs[i].cache;
		c.rule = longs[i].rule;
		c.rounding = longs[i].rounding;
		c.T = longs[i].T;
		c.H = longs[i].H;
		c.Dk = c.Dv = longs[i].D;
		c.BS = 16;
		c.G = longs[i].G;
		c.seed = 95000 + i;
		c.layout = (int)i % 2;
		c.interleave = c.rule == FP8KV_GROUP_NVFP4;
		c.own_v = c.rule == FP8KV_GROUP_E8M0_RCEIL;
		c.padding = 0.05;
		c.out_of_range = i % 2 ? 3 : 0;
		c.kg = 0x1.3p-9f;
		c.vg = 0x1.1p-8f;
		run_gcase(_i, &c, &res);
	}
	end_group(_i, "group long", &res);
}
END_TEST

/*
 * The comparison itself (V-MUTANTS): a second CPU handle, with a fault
 * planted in its runs only, must be told apart from the CPU: its call
 * skipped (every written byte keeps the backend's poison), one byte of a
 * cache or of a scale array changed (exactly one byte differs, written or
 * not), a counter off by one, a status the CPU did not give; and without
 * a fault nothing differs.
 */
enum { FAULT_NONE, FAULT_SKIP, FAULT_CACHE_BYTE, FAULT_SCALE_BYTE, FAULT_COUNTER, FAULT_STATUS };

typedef struct faulty_call {
	const gcase *c;
	int fault;
	size_t at; /* the byte changed */
} faulty_call;

static fp8kv_backend *planted; /* the second handle, whose runs get the fault */

/* Adds delta to byte `at` of a buffer of b. */
static void poke(fp8kv_backend *b, void *buf, size_t at, uint8_t delta)
{
	uint8_t v;
	ck_assert_int_eq(fp8kv_buffer_download(b, &v, (uint8_t *)buf + at, 1), FP8KV_OK);
	v = (uint8_t)(v + delta);
	ck_assert_int_eq(fp8kv_buffer_upload(b, (uint8_t *)buf + at, &v, 1), FP8KV_OK);
}

static fp8kv_status faulty_gcase_call(fp8kv_backend *b, void *const *dev, const void *ctx)
{
	const faulty_call *f = ctx;
	if (b != planted)
		return gcase_call(b, dev, f->c);
	if (f->fault == FAULT_SKIP)
		return FP8KV_OK;
	fp8kv_status st = gcase_call(b, dev, f->c);
	ck_assert_int_eq(fp8kv_backend_synchronize(b, NULL), FP8KV_OK);
	switch (f->fault) {
	case FAULT_CACHE_BYTE: poke(b, dev[f->c->icache[1]], f->at, 1); break;
	case FAULT_SCALE_BYTE: poke(b, dev[f->c->iscale[0]], f->at, 0x40); break;
	case FAULT_COUNTER: poke(b, dev[f->c->icounts], 8, 1); break;
	case FAULT_STATUS: st = FP8KV_ERANGE; break;
	default: break;
	}
	return st;
}

START_TEST(compare_faults)
{
	ck_assert_int_eq(fp8kv_backend_open("cpu", &planted), FP8KV_OK);
	for (int fault = FAULT_NONE; fault <= FAULT_STATUS; fault++)
		for (int k = 0; k < 3; k++) {
			static tb_result res;
			memset(&res, 0, sizeof res);
			gcase c;
			memset(&c, 0, sizeof c);
			c.in = FP8KV_BF16;
			c.cache = k == 1 ? FP8KV_E2M1 : FP8KV_E4M3FN;
			c.rule = k == 1 ? FP8KV_GROUP_NVFP4 : FP8KV_GROUP_E8M0_RCEIL;
			c.G = k == 1 ? 16 : 32;
			c.T = 9;
			c.H = 2;
			c.Dk = c.Dv = 64;
			c.BS = 4;
			c.layout = k == 2 ? GL_GAPS : GL_NHD;
			c.outputs = 1;
			c.kg = c.vg = 0x1p-8f;
			c.seed = 96000 + (uint64_t)(fault * 3 + k);
			tb_set s;
			memset(&s, 0, sizeof s);
			gcase_build(&c, &s);
			faulty_call f = {&c, fault, 0};
			uint64_t x = c.seed;
			f.at = (size_t)(next_random(&x) %
					s.b[fault == FAULT_SCALE_BYTE ? c.iscale[0] : c.icache[1]].bytes);
			const uint64_t found = tb_compare_on(planted, "planted", &s, faulty_gcase_call, &f,
							     c.seed, &res);
			tb_set_free(&s);
			if (fault == FAULT_NONE)
				ck_assert_msg(found == 0, "no fault, yet: %s", res.report);
			else if (fault == FAULT_CACHE_BYTE || fault == FAULT_SCALE_BYTE ||
				 fault == FAULT_COUNTER || fault == FAULT_STATUS)
				ck_assert_msg(found == 1, "fault %d (byte %zu): %llu found: %s", fault,
					      f.at, (unsigned long long)found, res.report);
			else
				ck_assert_msg(found > 0, "fault %d not found", fault);
		}
	fp8kv_backend_close(planted);
	planted = NULL;
}
END_TEST

void add_group_groups(TCase *tc, int nbackends)
{
	tcase_add_test(tc, compare_faults);
	tcase_add_loop_test(tc, group_matrix, 0, nbackends);
	tcase_add_loop_test(tc, group_long, 0, nbackends);
}
