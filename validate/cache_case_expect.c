/* SPDX-License-Identifier: MIT */
/*
 * cache_case_expect.c - the bytes a case must produce, computed with the
 * oracle element by element, following fp8kv.h sections 5 and 7 -- never
 * with the library -- and the poison made to differ from every one of them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_case_internal.h"
#include "float_bits.h"
#include "oracle.h"

static int is_nan_f(float f)
{
	uint32_t b = bits_of_float(f);
	return (b & 0x7F800000u) == 0x7F800000u && (b & 0x007FFFFFu) != 0;
}

static int is_finite_f(float f)
{
	return (bits_of_float(f) & 0x7F800000u) != 0x7F800000u;
}

static float fabs_f(float f)
{
	return float_of_bits(bits_of_float(f) & 0x7FFFFFFFu);
}

/* -------------------------------------------------------------- expected */

void cache_result_free(cache_result *r)
{
	void *owned[] = {r->kc, r->vc, r->ksc, r->vsc, r->k_amax, r->v_amax};
	for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
		free(owned[i]);
	memset(r, 0, sizeof *r);
}

int case_result_alloc(const cache_case *c, cache_result *r)
{
	const size_t csz = fp8kv_dtype_size(c->cache_dtype);
	memset(r, 0, sizeof *r);
	r->kc = case_calloc(c->kc_elems, csz);
	r->vc = case_calloc(c->vc_elems, csz);
	if (c->sc_elems) {
		r->ksc = case_calloc(c->sc_elems, sizeof(float));
		r->vsc = case_calloc(c->sc_elems, sizeof(float));
	}
	if (c->want_amax) {
		r->k_amax = case_calloc((size_t)c->num_heads, sizeof(float));
		r->v_amax = case_calloc((size_t)c->num_heads, sizeof(float));
	}
	if (!r->kc || !r->vc || (c->sc_elems && (!r->ksc || !r->vsc)) ||
	    (c->want_amax && (!r->k_amax || !r->v_amax))) {
		cache_result_free(r);
		return case_fail("out of memory");
	}
	return 0;
}

float case_row_scale(const cache_case *c, int kv, int64_t h, const uint32_t *row, int *scaled)
{
	const float *s = kv ? c->v_scales : c->k_scales;
	*scaled = 1;
	switch (c->scale_mode) {
	case FP8KV_SCALE_TENSOR: return s[0];
	case FP8KV_SCALE_HEAD: return s[h];
	case FP8KV_SCALE_TOKEN_HEAD:
		return oracle_row_scale(row, kv ? c->head_dim_v : c->head_dim_k, c->input_dtype,
					c->cache_dtype, NULL);
	default:
		*scaled = 0;
		return 1.0f;
	}
}

void case_load_row(const cache_case *c, int kv, int64_t t, int64_t h, uint32_t *row)
{
	const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
	const void *buf = kv ? c->value : c->key;
	const int64_t base = t * (kv ? c->value_stride_token : c->key_stride_token) +
			     h * (kv ? c->value_stride_head : c->key_stride_head);
	for (int64_t d = 0; d < D; d++)
		row[d] = cache_case_get_bits(buf, c->input_dtype, (size_t)(base + d));
}

int64_t case_cache_index(const cache_case *c, int kv, int64_t slot, int64_t h, int64_t d)
{
	const int64_t blk = slot / c->block_size, off = slot % c->block_size;
	if (kv)
		return blk * c->vc_stride_block + off * c->vc_stride_slot + h * c->vc_stride_head + d;
	return blk * c->kc_stride_block + off * c->kc_stride_slot + h * c->kc_stride_head + d;
}

int64_t case_scale_index(const cache_case *c, int64_t slot, int64_t h)
{
	const int64_t blk = slot / c->block_size, off = slot % c->block_size;
	return blk * c->sc_stride_block + off * c->sc_stride_slot + h * c->sc_stride_head;
}

int case_next_row(const cache_case *c, case_row *r)
{
	if (r->token >= c->num_tokens)
		return 0;
	if (r->token >= 0 && ++r->head < c->num_heads)
		return 1;
	r->head = 0;
	if (r->token >= 0 && r->kv == 0) {
		r->kv = 1;
		r->dim = c->head_dim_v;
		return 1;
	}
	do
		r->token++;
	while (r->token < c->num_tokens && c->dest[r->token] < 0);
	if (r->token >= c->num_tokens)
		return 0;
	r->slot = c->dest[r->token];
	r->kv = 0;
	r->dim = c->head_dim_k;
	return 1;
}

/* cur raised by a: the larger of the two as signed integers of their fp32
 * bits (fp8kv.h section 7: a +NaN or +Inf stays, a sign bit gives way) */
static float raised(float cur, float a)
{
	const uint32_t x = bits_of_float(cur), y = bits_of_float(a);
	const int64_t sx = x >> 31 ? (int64_t)x - 0x100000000ll : (int64_t)x;
	const int64_t sy = y >> 31 ? (int64_t)y - 0x100000000ll : (int64_t)y;
	return sy > sx ? a : cur;
}

int cache_case_expect(const cache_case *c, cache_result *e)
{
	const size_t csz = fp8kv_dtype_size(c->cache_dtype);
	const int copy = c->cache_dtype == c->input_dtype;
	if (case_result_alloc(c, e))
		return -1;
	memcpy(e->kc, c->kc_init, c->kc_elems * csz);
	memcpy(e->vc, c->vc_init, c->vc_elems * csz);
	if (c->sc_elems) {
		memcpy(e->ksc, c->ksc_init, c->sc_elems * sizeof(float));
		memcpy(e->vsc, c->vsc_init, c->sc_elems * sizeof(float));
	}
	/* the call's amax per side and head, from +0 (section 7), raised into
	 * the initial values at the end */
	float *call_amax = c->want_amax ? case_calloc(2 * (size_t)c->num_heads, sizeof(float))
					: NULL;
	if (c->want_amax && !call_amax)
		return -1;
	uint64_t overflows = 0, nans = 0;
	const int64_t Dmax = c->head_dim_k > c->head_dim_v ? c->head_dim_k : c->head_dim_v;
	uint32_t *row = case_calloc((size_t)Dmax, sizeof *row);
	if (!row) {
		cache_result_free(e);
		return case_fail("out of memory");
	}
	for (case_row r = CASE_ROWS_START; case_next_row(c, &r);) {
		uint8_t *img = r.kv ? e->vc : e->kc;
		float *amax = call_amax ? call_amax + (r.kv ? c->num_heads : 0) : NULL;
		int scaled;
		case_load_row(c, r.kv, r.token, r.head, row);
		const float s = case_row_scale(c, r.kv, r.head, row, &scaled);
		if (c->scale_mode == FP8KV_SCALE_TOKEN_HEAD)
			(r.kv ? e->vsc : e->ksc)[case_scale_index(c, r.slot, r.head)] = s;
		for (int64_t d = 0; d < r.dim; d++) {
			const size_t ci = (size_t)case_cache_index(c, r.kv, r.slot, r.head, d);
			if (copy) {
				cache_case_set_bits(img, c->cache_dtype, ci, row[d]);
			} else {
				int o = 0;
				img[ci] = oracle_quantize(row[d], c->input_dtype, scaled, s,
							  c->cache_dtype, c->overflow, &o);
				overflows += (uint64_t)o;
			}
			const float x = oracle_widen(row[d], c->input_dtype);
			if (is_nan_f(x))
				nans++;
			else if (amax && is_finite_f(x) && fabs_f(x) > amax[r.head])
				amax[r.head] = fabs_f(x);
		}
	}
	free(row);
	/* a call without tokens writes nothing (A-ZERO-SIZE) */
	for (int64_t h = 0; call_amax && c->num_tokens > 0 && h < c->num_heads; h++) {
		e->k_amax[h] = raised(c->k_amax_init[h], call_amax[h]);
		e->v_amax[h] = raised(c->v_amax_init[h], call_amax[c->num_heads + h]);
	}
	for (int64_t h = 0; call_amax && c->num_tokens == 0 && h < c->num_heads; h++) {
		e->k_amax[h] = c->k_amax_init[h];
		e->v_amax[h] = c->v_amax_init[h];
	}
	free(call_amax);
	e->overflow_count = c->want_overflow_count ? c->overflow_init + overflows : 0;
	e->nan_count = c->want_nan_count ? c->nan_init + nans : 0;
	e->status = e->call_status = FP8KV_OK;
	e->sync_status = FP8KV_OK;
	if (c->first_out_of_range >= 0) {
		e->status = e->call_status = FP8KV_ERANGE;
		snprintf(e->stage, sizeof e->stage, "reshape_and_cache");
		snprintf(e->message, sizeof e->message, "token %lld",
			 (long long)c->first_out_of_range);
	}
	return 0;
}

/* Flips (^ 0x5A) each byte of the n bytes at poison that equals the byte
 * at written. */
static void make_differ(uint8_t *poison, const uint8_t *written, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (poison[k] == written[k])
			poison[k] = (uint8_t)(written[k] ^ 0x5A);
}

void cache_case_fix_poison(cache_case *c, cache_result *e)
{
	const size_t csz = fp8kv_dtype_size(c->cache_dtype);
	for (case_row r = CASE_ROWS_START; case_next_row(c, &r);) {
		uint8_t *init = r.kv ? c->vc_init : c->kc_init;
		const uint8_t *img = r.kv ? e->vc : e->kc;
		for (int64_t d = 0; d < r.dim; d++) {
			const size_t ci = (size_t)case_cache_index(c, r.kv, r.slot, r.head, d) * csz;
			make_differ(init + ci, img + ci, csz);
		}
		if (c->sc_elems) {
			const int64_t i = case_scale_index(c, r.slot, r.head);
			make_differ((uint8_t *)&(r.kv ? c->vsc_init : c->ksc_init)[i],
				    (const uint8_t *)&(r.kv ? e->vsc : e->ksc)[i], sizeof(float));
		}
	}
}

int cache_case_prepare(cache_case *c, cache_result *expected)
{
	memset(expected, 0, sizeof *expected);
	if (cache_case_generate(c))
		return -1;
	if (cache_case_expect(c, expected))
		return -1;
	cache_case_fix_poison(c, expected);
	return 0;
}
