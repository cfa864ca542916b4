/* SPDX-License-Identifier: MIT */
/*
 * cache_case.c - a case's parameters: defaults, names and description; the
 * bits of the input dtypes; the engine's errors.  See cache_case.h.
 *
 * Expected bytes come from oracle.h, element by element, following fp8kv.h
 * sections 5 and 7 (cache_case_expect.c); nothing in the engine calls the
 * library's conversion.  (fp8kv_dtype_name/size and the buffer/backend
 * calls are used, nothing else of the library.)
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_case_internal.h"
#include "float_bits.h"

/* ------------------------------------------------------------------ errors */

static _Thread_local char case_error[256];

const char *cache_case_error(void)
{
	return case_error;
}

void case_clear_error(void)
{
	case_error[0] = 0;
}

int case_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(case_error, sizeof case_error, fmt, ap);
	va_end(ap);
	return -1;
}

void *case_calloc(size_t n, size_t size)
{
	return calloc(n ? n : 1, size ? size : 1);
}

/* ---------------------------------------------------- input dtype handling */

int case_dtype_bits(fp8kv_dtype dt, dtype_bits *b)
{
	switch (dt) {
	case FP8KV_F32: b->ebits = 8; b->mbits = 23; break;
	case FP8KV_F16: b->ebits = 5; b->mbits = 10; break;
	case FP8KV_BF16: b->ebits = 8; b->mbits = 7; break;
	default: return 0;
	}
	b->sign = 1u << (b->ebits + b->mbits);
	b->inf = ((1u << b->ebits) - 1) << b->mbits;
	b->mask = b->sign | (b->sign - 1);
	b->max_finite = b->inf - 1;
	return 1;
}

uint32_t case_round_format(double v, int ebits, int mbits)
{
	const uint64_t b = bits_of_double(v);
	uint32_t sign = (uint32_t)(b >> 63) << (ebits + mbits);
	uint64_t E = (b >> 52) & 0x7FF, M = b & ((1ull << 52) - 1);
	uint32_t inf = ((1u << ebits) - 1) << mbits;
	if (E == 0x7FF)
		return sign | inf | (M ? 1u << (mbits - 1) : 0);
	if (E == 0)
		return sign;
	int e = (int)E - 1023;
	int bias = (1 << (ebits - 1)) - 1;
	int emin = 1 - bias;
	uint64_t sig = (1ull << 52) | M;
	int shift = 52 - mbits + (e < emin ? emin - e : 0);
	uint64_t q = 0;
	if (shift < 64) {
		uint64_t rem = sig & ((1ull << shift) - 1), half = 1ull << (shift - 1);
		q = sig >> shift;
		if (rem > half || (rem == half && (q & 1)))
			q++;
	}
	uint64_t bits;
	if (e < emin) {
		bits = q;
	} else {
		if (e > bias)
			return sign | inf;
		bits = ((uint64_t)(e + bias) << mbits) + q - (1ull << mbits);
	}
	if (bits >= inf)
		bits = inf;
	return sign | (uint32_t)bits;
}

uint32_t cache_case_round_bits(double v, fp8kv_dtype dtype)
{
	dtype_bits b;
	if (!case_dtype_bits(dtype, &b))
		return 0;
	return case_round_format(v, b.ebits, b.mbits);
}

uint32_t cache_case_get_bits(const void *buf, fp8kv_dtype dtype, size_t i)
{
	switch (fp8kv_dtype_size(dtype)) {
	case 4: { uint32_t v; memcpy(&v, (const uint8_t *)buf + 4 * i, 4); return v; }
	case 2: { uint16_t v; memcpy(&v, (const uint8_t *)buf + 2 * i, 2); return v; }
	case 1: return ((const uint8_t *)buf)[i];
	default: return 0;
	}
}

void cache_case_set_bits(void *buf, fp8kv_dtype dtype, size_t i, uint32_t bits)
{
	switch (fp8kv_dtype_size(dtype)) {
	case 4: memcpy((uint8_t *)buf + 4 * i, &bits, 4); break;
	case 2: { uint16_t v = (uint16_t)bits; memcpy((uint8_t *)buf + 2 * i, &v, 2); break; }
	case 1: ((uint8_t *)buf)[i] = (uint8_t)bits; break;
	default: break;
	}
}

/* ------------------------------------------------------------- parameters */

void cache_case_init(cache_case *c)
{
	*c = (cache_case){
		.input_dtype = FP8KV_BF16, .cache_dtype = FP8KV_E4M3FN,
		.scale_mode = FP8KV_SCALE_ONE, .overflow = FP8KV_SATURATE,
		.layout = CACHE_CASE_NHD, .scale_layout = CACHE_CASE_SCALES_BHS,
		.num_tokens = 5, .num_heads = 2, .head_dim_k = 16, .head_dim_v = 16,
		.block_size = 4, .num_blocks = 0,
		.slot_type = FP8KV_INDEX_INT64, .swa_type = FP8KV_INDEX_INT64,
		.want_overflow_count = 1, .want_nan_count = 1, .want_amax = 1,
		.seed = 1, .k_scale = 1.0f, .v_scale = 1.0f,
		.head_scales = CACHE_CASE_HEAD_SCALES_RANDOM,
		.first_out_of_range = -1,
	};
}

void cache_case_set_shape(cache_case *c, const cache_case_shape *s)
{
	c->num_tokens = s->num_tokens;
	c->num_heads = s->num_heads;
	c->head_dim_k = s->head_dim_k;
	c->head_dim_v = s->head_dim_v;
	c->block_size = s->block_size;
}

void cache_case_free(cache_case *c)
{
	void *owned[] = {c->key, c->value, c->slots, c->swa, c->k_scales, c->v_scales,
			 c->kc_init, c->vc_init, c->ksc_init, c->vsc_init, c->k_amax_init,
			 c->v_amax_init, c->dest};
	for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
		free(owned[i]);
	c->key = c->value = NULL;
	c->slots = c->swa = c->dest = NULL;
	c->k_scales = c->v_scales = c->ksc_init = c->vsc_init = NULL;
	c->k_amax_init = c->v_amax_init = NULL;
	c->kc_init = c->vc_init = NULL;
}

const char *cache_case_layout_name(cache_case_layout layout)
{
	switch (layout) {
	case CACHE_CASE_NHD: return "NHD";
	case CACHE_CASE_HND: return "HND";
	case CACHE_CASE_STRIDED: return "strided";
	}
	return "?";
}

/* The library's one spelling of each mode (fp8kv_scale_mode_name). */
const char *cache_case_scale_mode_name(fp8kv_scale_mode mode)
{
	const char *name = fp8kv_scale_mode_name(mode);
	return name ? name : "?";
}

const char *case_dtype_name(fp8kv_dtype dt)
{
	const char *n = fp8kv_dtype_name(dt);
	return n ? n : "?";
}

void cache_case_describe(const cache_case *c, char *buf, size_t n)
{
	char sc[512] = "";
	if (c->scale_mode == FP8KV_SCALE_TENSOR) {
		snprintf(sc, sizeof sc, " k_scale=%.9g v_scale=%.9g", (double)c->k_scale,
			 (double)c->v_scale);
	} else if (c->scale_mode == FP8KV_SCALE_HEAD) {
		static const char *kinds[] = {"random", "uniform", "given"};
		snprintf(sc, sizeof sc, " head_scales=%s", kinds[c->head_scales % 3]);
		if (c->k_scales) { /* generated: list the first few */
			for (int kv = 0; kv < 2; kv++) {
				size_t l = strlen(sc);
				snprintf(sc + l, sizeof sc - l, " %s=[", kv ? "v" : "k");
				for (int64_t h = 0; h < c->num_heads && h < 8; h++) {
					l = strlen(sc);
					snprintf(sc + l, sizeof sc - l, "%s%.9g", h ? "," : "",
						 (double)(kv ? c->v_scales : c->k_scales)[h]);
				}
				l = strlen(sc);
				snprintf(sc + l, sizeof sc - l, "%s]", c->num_heads > 8 ? ",..." : "");
			}
		}
	} else if (c->scale_mode == FP8KV_SCALE_TOKEN_HEAD)
		snprintf(sc, sizeof sc, " scale_cache=%s",
			 c->scale_layout == CACHE_CASE_SCALES_BHS ? "[blocks,heads,bs]"
								  : "[blocks,bs,heads]");
	snprintf(buf, n,
		 "%s->%s %s%s %s %s T=%lld H=%lld Dk=%lld Dv=%lld bs=%lld nb=%lld slots=%s"
		 " swa=%s pad=%.2f oor=%lld dup=%lld special=%d outputs=%d%d%d seed=%llu",
		 case_dtype_name(c->input_dtype), case_dtype_name(c->cache_dtype),
		 cache_case_scale_mode_name(c->scale_mode), sc,
		 c->overflow == FP8KV_SATURATE ? "sat" : "nonsat", cache_case_layout_name(c->layout),
		 (long long)c->num_tokens, (long long)c->num_heads, (long long)c->head_dim_k,
		 (long long)c->head_dim_v, (long long)c->block_size, (long long)c->num_blocks,
		 c->slot_type == FP8KV_INDEX_INT32 ? "int32" : "int64",
		 c->use_swa ? (c->swa_type == FP8KV_INDEX_INT32 ? "int32" : "int64") : "no",
		 c->padding_fraction, (long long)c->num_out_of_range, (long long)c->num_duplicates,
		 c->special_rows, c->want_overflow_count, c->want_nan_count, c->want_amax,
		 (unsigned long long)c->seed);
}
