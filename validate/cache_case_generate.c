/* SPDX-License-Identifier: MIT */
/*
 * cache_case_generate.c - a case's inputs from its seed: the strides of its
 * layout, the scales, values drawn where the FP8 format is hard (ties,
 * the overflow threshold, subnormals, NaN, Inf), special rows for the
 * dynamic scale, garbage in every gap, and the poison of the caches.
 */
#include <stdlib.h>
#include <string.h>

#include "cache_case_internal.h"
#include "float_bits.h"
#include "oracle.h"

/* The top 53 bits of x as a double in [0, 1). */
static double unit_of(uint64_t x)
{
	return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

/* Moves the magnitude of bits by delta units in the last place, staying
 * within [0, +Inf]. */
static uint32_t perturb(uint32_t bits, int delta, const dtype_bits *b)
{
	uint32_t s = bits & b->sign, m = bits & ~b->sign;
	if (m > b->inf)
		return bits; /* NaN */
	int64_t v = (int64_t)m + delta;
	if (v < 0)
		v = 0;
	if (v > (int64_t)b->inf)
		v = b->inf;
	return s | (uint32_t)v;
}

/* ----------------------------------------------------- FP8 format summary */

typedef struct fmt_info {
	double vals[256]; /* distinct nonnegative finite values, ascending */
	int nvals;
	double max, thr, min_sub;
	int lo_exp, hi_exp; /* exponent range for log-uniform values */
} fmt_info;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void fmt_info_get(fp8kv_dtype format, fmt_info *f)
{
	memset(f, 0, sizeof *f);
	for (int code = 0; code < 256; code++) {
		double v = oracle_decode((uint8_t)code, format);
		if (oracle_is_nan(v) || v < 0 || v - v != 0) /* NaN, negative, Inf */
			continue;
		int dup = 0;
		for (int i = 0; i < f->nvals; i++)
			if (f->vals[i] == v)
				dup = 1;
		if (!dup)
			f->vals[f->nvals++] = v;
	}
	qsort(f->vals, (size_t)f->nvals, sizeof f->vals[0], cmp_double);
	f->max = f->vals[f->nvals - 1];
	f->thr = f->max + (f->max - f->vals[f->nvals - 2]) / 2;
	f->min_sub = f->vals[1];
	int e = 0;
	double m = f->min_sub;
	while (m < 1) {
		m *= 2;
		e--;
	}
	f->lo_exp = e - 3;
	e = 0;
	m = f->thr;
	while (m >= 2) {
		m /= 2;
		e++;
	}
	f->hi_exp = e + 1;
}

/* ------------------------------------------------------------ generation */

/* Divisors to stress HEAD mode: exact powers of two, awkward values, one
 * that makes y = x / s overflow fp32, a subnormal, the smallest normal, and
 * the ones fp8kv.h section 5 defines too: negative, zero (x / 0 = +-Inf,
 * 0 / 0 = NaN signed sign(x) ^ sign(s)), infinite. */
static const float adversarial_scales[] = {
	1.0f, 0.5f, 3.0f, 1.0f / 448, 1e-3f, 0.1f, 7.0f, 1e4f, 0x1p-126f,
	0x1p-140f, 1e30f, 1.0f / 240, 1.0f / 57344, 0.3f, 2.0f, 0.0625f,
	-3.0f, 0.0f, -0.0f, 1.0f / 0.0f, -0.25f,
};
#define N_ADVERSARIAL (sizeof adversarial_scales / sizeof adversarial_scales[0])

typedef struct gen_ctx {
	dtype_bits in;
	fmt_info f;
	fp8kv_dtype input_dtype;
} gen_ctx;

/* One input element whose value after division by scale falls in
 * interesting places of the FP8 format.  Always consumes four draws, so the
 * streams do not depend on scale. */
static uint32_t gen_value(rng *r, const gen_ctx *g, double scale)
{
	uint64_t r0 = rng_next(r), r1 = rng_next(r), r2 = rng_next(r), r3 = rng_next(r);
	const dtype_bits *b = &g->in;
	uint32_t sign = (r0 & 1) ? b->sign : 0;
	unsigned cat = (unsigned)((r0 >> 1) % 100);
	uint32_t bits;
	double v;

	if (cat < 40) { /* log-uniform over the whole format and around it */
		int span = g->f.hi_exp - g->f.lo_exp + 1;
		int k = g->f.lo_exp + (int)(r1 % (uint64_t)span);
		v = (1.0 + unit_of(r2)) * pow2(k) * scale;
		bits = case_round_format(v, b->ebits, b->mbits);
		if ((r3 & 7) == 0)
			bits = perturb(bits, (int)((r3 >> 3) % 5) - 2, b);
	} else if (cat < 55) { /* near max, the overflow threshold, zero */
		double base;
		switch (r1 % 6) {
		case 0: base = g->f.max; break;
		case 1: base = g->f.thr; break;
		case 2: base = g->f.min_sub; break;
		case 3: base = g->f.min_sub / 2; break;
		case 4: base = g->f.vals[g->f.nvals - 2]; break;
		default: base = 2 * g->f.thr; break;
		}
		bits = case_round_format(base * scale, b->ebits, b->mbits);
		bits = perturb(bits, (int)(r2 % 7) - 3, b);
	} else if (cat < 67) { /* midpoints between neighbouring codes: ties */
		int i = (int)(r1 % (uint64_t)(g->f.nvals - 1));
		v = (g->f.vals[i] + g->f.vals[i + 1]) / 2 * scale;
		bits = case_round_format(v, b->ebits, b->mbits);
		if ((r2 & 3) == 0)
			bits = perturb(bits, (r2 & 4) ? 1 : -1, b);
	} else if (cat < 74) { /* input subnormals */
		bits = (uint32_t)(r1 & ((1u << b->mbits) - 1)) | 1u;
	} else if (cat < 78) { /* NaN, any payload */
		bits = b->inf | ((uint32_t)(r1 & ((1u << b->mbits) - 1)) | 1u);
	} else if (cat < 82) {
		bits = b->inf;
	} else if (cat < 87) {
		bits = 0;
	} else { /* anything at all */
		bits = (uint32_t)(r1 & b->mask);
		sign = 0;
	}
	return (sign | bits) & b->mask;
}

/* Special rows for TOKEN_HEAD's dynamic scale (and the others). */
static void gen_special_row(rng *r, const gen_ctx *g, int kind, uint32_t *row, int64_t n)
{
	const dtype_bits *b = &g->in;
	int64_t pos = (int64_t)rng_below(r, (uint64_t)n);
	for (int64_t d = 0; d < n; d++) {
		uint64_t x = rng_next(r);
		uint32_t sign = (x & 1) ? b->sign : 0;
		uint32_t bits;
		switch (kind) {
		case 0: /* all zeros: s = 1 */
			bits = sign;
			break;
		case 1: /* nothing finite: s = 1 */
		case 2: /* nothing finite but one element */
			bits = sign | b->inf | ((x & 2) ? (uint32_t)((x >> 8) & ((1u << b->mbits) - 1)) | 1u : 0);
			if (kind == 2 && d == pos)
				bits = sign | case_round_format((1.0 + unit_of(x)) * pow2((int)((x >> 3) % 40) - 20),
							   b->ebits, b->mbits);
			break;
		case 3: /* tiny amax: subnormals and tiny normals, s floored at 2^-126 */
			if (x & 2)
				bits = sign | (uint32_t)((x >> 8) & ((1u << b->mbits) - 1));
			else
				bits = sign | case_round_format(unit_of(x) * 0x1p-126 * g->f.max / 4,
							   b->ebits, b->mbits);
			break;
		case 4: /* the largest finite input somewhere */
			bits = d == pos ? sign | b->max_finite
					: sign | case_round_format((1.0 + unit_of(x)) * pow2((int)((x >> 3) % 60) - 30),
							      b->ebits, b->mbits);
			break;
		case 5: /* a single nonzero element */
			bits = d == pos ? sign | case_round_format((1.0 + unit_of(x)) * pow2((int)((x >> 3) % 60) - 30),
							      b->ebits, b->mbits)
					: 0;
			break;
		default: /* a constant magnitude: every element lands on fmax */
			bits = sign | (row[0] & ~b->sign);
			if (d == 0)
				bits = case_round_format((1.0 + unit_of(x)) * pow2((int)((x >> 3) % 60) - 30),
						    b->ebits, b->mbits);
			break;
		}
		row[d] = bits & b->mask;
	}
}

/* The strides of a cache without gaps, of H heads of D elements:
 * [blocks][block_size][heads][D] (NHD) or [blocks][heads][block_size][D]
 * (HND, hnd != 0). */
static void dense_cache_strides(int hnd, int64_t H, int64_t bs, int64_t D, int64_t *block,
				int64_t *slot, int64_t *head)
{
	*block = bs * H * D;
	*slot = hnd ? D : H * D;
	*head = hnd ? bs * D : D;
}

/* Sizes and strides of the inputs, caches and scale caches of c's layout. */
static void layout_strides(cache_case *c)
{
	const int64_t T = c->num_tokens, H = c->num_heads, Dk = c->head_dim_k, Dv = c->head_dim_v;
	const int64_t bs = c->block_size, nb = c->num_blocks;
	const int strided = c->layout == CACHE_CASE_STRIDED;

	if (!strided) {
		const int hnd = c->layout == CACHE_CASE_HND;
		c->key_stride_head = Dk;
		c->key_stride_token = H * Dk;
		c->value_stride_head = Dv;
		c->value_stride_token = H * Dv;
		c->key_elems = (size_t)(T * H * Dk);
		c->value_elems = (size_t)(T * H * Dv);
		dense_cache_strides(hnd, H, bs, Dk, &c->kc_stride_block, &c->kc_stride_slot,
				    &c->kc_stride_head);
		dense_cache_strides(hnd, H, bs, Dv, &c->vc_stride_block, &c->vc_stride_slot,
				    &c->vc_stride_head);
	} else {
		c->key_stride_token = Dk + 3;
		c->key_stride_head = (T + 1) * (Dk + 3);
		c->key_elems = (size_t)(H * (T + 1) * (Dk + 3));
		c->value_stride_head = Dv + 5;
		c->value_stride_token = H * (Dv + 5) + 7;
		c->value_elems = (size_t)(T * c->value_stride_token);
		/* key cache HND, value cache NHD, both with gaps */
		c->kc_stride_slot = Dk + 2;
		c->kc_stride_head = bs * (Dk + 2) + 3;
		c->kc_stride_block = H * c->kc_stride_head + 5;
		c->vc_stride_head = Dv + 1;
		c->vc_stride_slot = H * (Dv + 1) + 2;
		c->vc_stride_block = bs * c->vc_stride_slot + 4;
	}
	c->kc_elems = (size_t)(nb * c->kc_stride_block);
	c->vc_elems = (size_t)(nb * c->vc_stride_block);

	if (c->scale_layout == CACHE_CASE_SCALES_BHS) {
		c->sc_stride_slot = 1;
		c->sc_stride_head = bs + (strided ? 1 : 0);
		c->sc_stride_block = H * c->sc_stride_head + (strided ? 2 : 0);
	} else {
		c->sc_stride_head = 1;
		c->sc_stride_slot = H + (strided ? 1 : 0);
		c->sc_stride_block = bs * c->sc_stride_slot + (strided ? 3 : 0);
	}
	c->sc_elems = c->scale_mode == FP8KV_SCALE_TOKEN_HEAD ? (size_t)(nb * c->sc_stride_block) : 0;
}

void case_fill_garbage(const dtype_bits *b, fp8kv_dtype in, void *key, size_t key_elems,
		       void *value, size_t value_elems)
{
	const uint32_t garbage[4] = {b->max_finite, b->inf | 1u, b->inf, b->sign | b->max_finite};
	for (size_t i = 0; i < key_elems; i++)
		cache_case_set_bits(key, in, i, garbage[i % 4]);
	for (size_t i = 0; i < value_elems; i++)
		cache_case_set_bits(value, in, i, garbage[(i + 1) % 4]);
}

int cache_case_generate(cache_case *c)
{
	cache_case_free(c);
	case_clear_error();
	if (!fp8kv_dtype_size(c->input_dtype) || fp8kv_dtype_is_fp8(c->input_dtype))
		return case_fail("input dtype %d is not f32/f16/bf16", (int)c->input_dtype);
	if (c->cache_dtype != c->input_dtype && !fp8kv_dtype_is_fp8(c->cache_dtype))
		return case_fail("cache dtype %d is neither the input dtype nor FP8", (int)c->cache_dtype);
	if (c->scale_mode != FP8KV_SCALE_ONE && !fp8kv_dtype_is_fp8(c->cache_dtype))
		return case_fail("scale mode %s needs an FP8 cache", cache_case_scale_mode_name(c->scale_mode));
	if (c->num_tokens < 0 || c->num_heads < 1 || c->head_dim_k < 1 || c->head_dim_v < 1 ||
	    c->block_size < 1 || c->num_blocks < 0)
		return case_fail("bad sizes");

	if (c->scale_mode == FP8KV_SCALE_HEAD && c->head_scales == CACHE_CASE_HEAD_SCALES_GIVEN &&
	    (!c->head_k_scales || !c->head_v_scales))
		return case_fail("head_scales GIVEN without head_k_scales/head_v_scales");

	const int64_t T = c->num_tokens, H = c->num_heads;
	int rc = case_generate_slots(c);
	if (rc)
		return rc;
	layout_strides(c);

	const fp8kv_dtype in = c->input_dtype;
	const size_t isz = fp8kv_dtype_size(in), csz = fp8kv_dtype_size(c->cache_dtype);
	c->key = case_calloc(c->key_elems, isz);
	c->value = case_calloc(c->value_elems, isz);
	c->kc_init = case_calloc(c->kc_elems, csz);
	c->vc_init = case_calloc(c->vc_elems, csz);
	c->ksc_init = case_calloc(c->sc_elems, sizeof(float));
	c->vsc_init = case_calloc(c->sc_elems, sizeof(float));
	c->k_amax_init = case_calloc((size_t)H, sizeof(float));
	c->v_amax_init = case_calloc((size_t)H, sizeof(float));
	c->k_scales = case_calloc((size_t)H, sizeof(float));
	c->v_scales = case_calloc((size_t)H, sizeof(float));
	if (!c->key || !c->value || !c->kc_init || !c->vc_init || !c->ksc_init || !c->vsc_init ||
	    !c->k_amax_init || !c->v_amax_init || !c->k_scales || !c->v_scales) {
		cache_case_free(c);
		return case_fail("out of memory");
	}

	/* scales */
	rng r;
	rng_seed(&r, c->seed, STREAM_SCALES);
	c->num_scales = c->scale_mode == FP8KV_SCALE_TENSOR ? 1
		      : c->scale_mode == FP8KV_SCALE_HEAD ? H : 0;
	for (int64_t h = 0; h < H; h++) {
		uint64_t x = rng_next(&r);
		if (c->scale_mode == FP8KV_SCALE_HEAD && c->head_scales == CACHE_CASE_HEAD_SCALES_RANDOM) {
			c->k_scales[h] = adversarial_scales[x % N_ADVERSARIAL];
			c->v_scales[h] = adversarial_scales[(x >> 16) % N_ADVERSARIAL];
		} else if (c->scale_mode == FP8KV_SCALE_HEAD &&
			   c->head_scales == CACHE_CASE_HEAD_SCALES_GIVEN) {
			c->k_scales[h] = c->head_k_scales[h];
			c->v_scales[h] = c->head_v_scales[h];
		} else {
			c->k_scales[h] = c->k_scale;
			c->v_scales[h] = c->v_scale;
		}
	}

	/* inputs: garbage everywhere first (strided gaps keep it), then the
	 * elements in logical order, so that layouts share values */
	gen_ctx g;
	case_dtype_bits(in, &g.in);
	g.input_dtype = in;
	fmt_info_get(fp8kv_dtype_is_fp8(c->cache_dtype) ? c->cache_dtype : FP8KV_E4M3FN, &g.f);
	case_fill_garbage(&g.in, in, c->key, c->key_elems, c->value, c->value_elems);

	rng rv, rs, rrow;
	rng_seed(&rv, c->seed, STREAM_VALUES);
	rng_seed(&rs, c->seed, STREAM_SPECIAL);
	rng_seed(&rrow, c->seed, STREAM_ROWS);
	const int64_t Dmax = c->head_dim_k > c->head_dim_v ? c->head_dim_k : c->head_dim_v;
	uint32_t *row = case_calloc((size_t)Dmax, sizeof *row);
	if (!row) {
		cache_case_free(c);
		return case_fail("out of memory");
	}
	int any_nonzero = 0;
	for (int64_t t = 0; t < T; t++) {
		for (int64_t h = 0; h < H; h++) {
			for (int kv = 0; kv < 2; kv++) {
				const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
				void *buf = kv ? c->value : c->key;
				const int64_t base = t * (kv ? c->value_stride_token : c->key_stride_token) +
						     h * (kv ? c->value_stride_head : c->key_stride_head);
				/* the divisor the values are drawn around */
				uint64_t rowdraw = rng_next(&rrow);
				double gs = 1.0;
				if (fp8kv_dtype_is_fp8(c->cache_dtype)) {
					switch (c->scale_mode) {
					case FP8KV_SCALE_TENSOR:
					case FP8KV_SCALE_HEAD:
						gs = kv ? c->v_scales[h] : c->k_scales[h];
						break;
					case FP8KV_SCALE_TOKEN_HEAD:
						gs = (1.0 + unit_of(rowdraw)) * pow2((int)(rowdraw % 49) - 24);
						break;
					default:
						break;
					}
				}
				/* zero, negative, huge or non-finite divisors: draw
				 * the values as for 1 */
				if (!(gs > 0x1p-149) || gs > 0x1p100)
					gs = 1.0;
				for (int64_t d = 0; d < D; d++)
					row[d] = gen_value(&rv, &g, gs);
				uint64_t sp = rng_next(&rs);
				if (c->special_rows && sp % 4 == 0) {
					rng sr;
					rng_seed(&sr, sp, STREAM_SPECIAL);
					gen_special_row(&sr, &g, (int)((sp >> 8) % 7), row, D);
				}
				for (int64_t d = 0; d < D; d++) {
					cache_case_set_bits(buf, in, (size_t)(base + d), row[d]);
					if (row[d] & ~g.in.sign)
						any_nonzero = 1;
				}
			}
		}
	}
	free(row);
	if (T > 0 && !any_nonzero) /* never an all-zero input */
		cache_case_set_bits(c->key, in, 0, case_round_format(1.0, g.in.ebits, g.in.mbits));

	/* poison and initial outputs */
	rng_seed(&r, c->seed, STREAM_POISON);
	for (size_t i = 0; i < c->kc_elems * csz; i++)
		c->kc_init[i] = (uint8_t)rng_next(&r);
	for (size_t i = 0; i < c->vc_elems * csz; i++)
		c->vc_init[i] = (uint8_t)rng_next(&r);
	for (size_t i = 0; i < c->sc_elems; i++) {
		c->ksc_init[i] = float_of_bits((uint32_t)rng_next(&r));
		c->vsc_init[i] = float_of_bits((uint32_t)rng_next(&r));
	}
	rng_seed(&r, c->seed, STREAM_INIT);
	/* running amax a caller passed in: calibrated ones, and values only the
	 * signed-integer order of section 7 settles (+-0, negatives, +-NaN, Inf) */
	static const uint32_t amax0[] = {0x3E800000u /* 0.25 */, 0x358637BDu /* 1e-6 */,
					 0x40600000u /* 3.5 */,  0x60AD78ECu /* 1e20 */,
					 0x00000200u /* 2^-140 */, 0x42C80000u /* 100 */,
					 0x80000000u /* -0 */,   0xC0400000u /* -3 */,
					 0x7FC00000u /* NaN */,  0xFFC00001u /* -NaN */,
					 0x7F800000u /* Inf */,  0x00000000u /* +0 */};
	c->overflow_init = 0x100000000ull + rng_below(&r, 1000000) + 1;
	c->nan_init = 0x300000000ull + rng_below(&r, 1000000) + 1;
	for (int64_t h = 0; h < H; h++) {
		c->k_amax_init[h] = float_of_bits(amax0[rng_below(&r, sizeof amax0 / sizeof amax0[0])]);
		c->v_amax_init[h] = float_of_bits(amax0[rng_below(&r, sizeof amax0 / sizeof amax0[0])]);
	}
	return 0;
}
