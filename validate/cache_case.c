/* SPDX-License-Identifier: MIT */
/*
 * cache_case.c - see cache_case.h.
 *
 * Expected bytes come from oracle.h, element by element, following
 * fp8kv.h sections 5 and 7; nothing here calls the library's conversion.
 * (fp8kv_dtype_name/size and the buffer/backend calls are used, nothing
 * else of the library.)
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_case.h"
#include "oracle.h"

/* ------------------------------------------------------------ small helpers */

static _Thread_local char case_error[256];

const char *cache_case_error(void)
{
	return case_error;
}

static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(case_error, sizeof case_error, fmt, ap);
	va_end(ap);
	return -1;
}

static uint32_t fbits(float f)
{
	uint32_t b;
	memcpy(&b, &f, sizeof b);
	return b;
}

static float ffrom(uint32_t b)
{
	float f;
	memcpy(&f, &b, sizeof f);
	return f;
}

static int is_nan_f(float f)
{
	uint32_t b = fbits(f);
	return (b & 0x7F800000u) == 0x7F800000u && (b & 0x007FFFFFu) != 0;
}

static int is_finite_f(float f)
{
	return (fbits(f) & 0x7F800000u) != 0x7F800000u;
}

static float fabs_f(float f)
{
	return ffrom(fbits(f) & 0x7FFFFFFFu);
}

/* 2^k as a double, for -1022 <= k <= 1023. */
static double pow2(int k)
{
	uint64_t b = (uint64_t)(k + 1023) << 52;
	double d;
	memcpy(&d, &b, sizeof d);
	return d;
}

/* splitmix64: small, fast, and every stream is independent of the others. */
typedef struct rng {
	uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed, uint64_t stream)
{
	r->s = seed * 0xD1342543DE82EF95ull + stream * 0x9E3779B97F4A7C15ull + 0x1234567ull;
	rng_next(r);
}

static uint64_t rng_below(rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

static double unit_of(uint64_t x)
{
	return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

enum { STREAM_VALUES = 1, STREAM_SLOTS, STREAM_POISON, STREAM_SCALES, STREAM_INIT,
       STREAM_SPECIAL, STREAM_GARBAGE, STREAM_ROWS };

/* ---------------------------------------------------- input dtype handling */

typedef struct dtype_bits {
	int ebits, mbits;
	uint32_t sign, inf, mask; /* sign bit, +Inf bits, all bits */
	uint32_t max_finite;
} dtype_bits;

static int dtype_bits_of(fp8kv_dtype dt, dtype_bits *b)
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

/* Rounds v to a binary format with ebits/mbits, to nearest even. */
static uint32_t round_format(double v, int ebits, int mbits)
{
	uint64_t b;
	memcpy(&b, &v, sizeof b);
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
	if (!dtype_bits_of(dtype, &b))
		return 0;
	return round_format(v, b.ebits, b.mbits);
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

/* ------------------------------------------------------------- defaults */

void cache_case_init(cache_case *c)
{
	memset(c, 0, sizeof *c);
	c->input_dtype = FP8KV_BF16;
	c->cache_dtype = FP8KV_E4M3FN;
	c->scale_mode = FP8KV_SCALE_ONE;
	c->overflow = FP8KV_SATURATE;
	c->layout = CACHE_CASE_NHD;
	c->scale_layout = CACHE_CASE_SCALES_BHS;
	c->num_tokens = 5;
	c->num_heads = 2;
	c->head_dim_k = 16;
	c->head_dim_v = 16;
	c->block_size = 4;
	c->num_blocks = 0;
	c->slot_type = FP8KV_INDEX_INT64;
	c->swa_type = FP8KV_INDEX_INT64;
	c->want_overflow_count = 1;
	c->want_nan_count = 1;
	c->want_amax = 1;
	c->seed = 1;
	c->k_scale = 1.0f;
	c->v_scale = 1.0f;
	c->head_scales = CACHE_CASE_HEAD_SCALES_RANDOM;
	c->first_out_of_range = -1;
}

void cache_case_free(cache_case *c)
{
	free(c->key);
	free(c->value);
	free(c->slots);
	free(c->swa);
	free(c->k_scales);
	free(c->v_scales);
	free(c->kc_init);
	free(c->vc_init);
	free(c->ksc_init);
	free(c->vsc_init);
	free(c->k_amax_init);
	free(c->v_amax_init);
	free(c->dest);
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

const char *cache_case_scale_mode_name(fp8kv_scale_mode mode)
{
	switch (mode) {
	case FP8KV_SCALE_ONE: return "ONE";
	case FP8KV_SCALE_TENSOR: return "TENSOR";
	case FP8KV_SCALE_HEAD: return "HEAD";
	case FP8KV_SCALE_TOKEN_HEAD: return "TOKEN_HEAD";
	}
	return "?";
}

static const char *name_or(fp8kv_dtype dt)
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
		 name_or(c->input_dtype), name_or(c->cache_dtype),
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
		bits = round_format(v, b->ebits, b->mbits);
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
		bits = round_format(base * scale, b->ebits, b->mbits);
		bits = perturb(bits, (int)(r2 % 7) - 3, b);
	} else if (cat < 67) { /* midpoints between neighbouring codes: ties */
		int i = (int)(r1 % (uint64_t)(g->f.nvals - 1));
		v = (g->f.vals[i] + g->f.vals[i + 1]) / 2 * scale;
		bits = round_format(v, b->ebits, b->mbits);
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
				bits = sign | round_format((1.0 + unit_of(x)) * pow2((int)((x >> 3) % 40) - 20),
							   b->ebits, b->mbits);
			break;
		case 3: /* tiny amax: subnormals and tiny normals, s floored at 2^-126 */
			if (x & 2)
				bits = sign | (uint32_t)((x >> 8) & ((1u << b->mbits) - 1));
			else
				bits = sign | round_format(unit_of(x) * 0x1p-126 * g->f.max / 4,
							   b->ebits, b->mbits);
			break;
		case 4: /* the largest finite input somewhere */
			bits = d == pos ? sign | b->max_finite
					: sign | round_format((1.0 + unit_of(x)) * pow2((int)((x >> 3) % 60) - 30),
							      b->ebits, b->mbits);
			break;
		case 5: /* a single nonzero element */
			bits = d == pos ? sign | round_format((1.0 + unit_of(x)) * pow2((int)((x >> 3) % 60) - 30),
							      b->ebits, b->mbits)
					: 0;
			break;
		default: /* a constant magnitude: every element lands on fmax */
			bits = sign | (row[0] & ~b->sign);
			if (d == 0)
				bits = round_format((1.0 + unit_of(x)) * pow2((int)((x >> 3) % 60) - 30),
						    b->ebits, b->mbits);
			break;
		}
		row[d] = bits & b->mask;
	}
}

static int64_t pad_value(rng *r, fp8kv_index_type t)
{
	static const int64_t v64[] = {-1, -1, -2, -1000, INT64_MIN, INT32_MIN, -7};
	static const int64_t v32[] = {-1, -1, -2, -1000, INT32_MIN, -7};
	if (t == FP8KV_INDEX_INT32)
		return v32[rng_below(r, sizeof v32 / sizeof v32[0])];
	return v64[rng_below(r, sizeof v64 / sizeof v64[0])];
}

/* A value >= limit that fits the index type. */
static int64_t oor_value(rng *r, fp8kv_index_type t, int64_t limit)
{
	switch (rng_below(r, 5)) {
	case 0: return limit;
	case 1: return limit + 1;
	case 2: return limit + (int64_t)rng_below(r, 100);
	case 3: return t == FP8KV_INDEX_INT32 ? INT32_MAX : INT64_MAX;
	default: return INT32_MAX;
	}
}

static void *xcalloc(size_t n, size_t size)
{
	return calloc(n ? n : 1, size ? size : 1);
}

static void shuffle(rng *r, int64_t *a, int64_t n)
{
	for (int64_t i = n - 1; i > 0; i--) {
		int64_t j = (int64_t)rng_below(r, (uint64_t)i + 1);
		int64_t t = a[i];
		a[i] = a[j];
		a[j] = t;
	}
}

static void layout_strides(cache_case *c)
{
	const int64_t T = c->num_tokens, H = c->num_heads, Dk = c->head_dim_k, Dv = c->head_dim_v;
	const int64_t bs = c->block_size, nb = c->num_blocks;
	const int strided = c->layout == CACHE_CASE_STRIDED;

	if (!strided) {
		c->key_stride_head = Dk;
		c->key_stride_token = H * Dk;
		c->value_stride_head = Dv;
		c->value_stride_token = H * Dv;
		c->key_elems = (size_t)(T * H * Dk);
		c->value_elems = (size_t)(T * H * Dv);
	} else {
		c->key_stride_token = Dk + 3;
		c->key_stride_head = (T + 1) * (Dk + 3);
		c->key_elems = (size_t)(H * (T + 1) * (Dk + 3));
		c->value_stride_head = Dv + 5;
		c->value_stride_token = H * (Dv + 5) + 7;
		c->value_elems = (size_t)(T * c->value_stride_token);
	}
	if (c->layout == CACHE_CASE_NHD) {
		c->kc_stride_head = Dk;
		c->kc_stride_slot = H * Dk;
		c->kc_stride_block = bs * H * Dk;
		c->vc_stride_head = Dv;
		c->vc_stride_slot = H * Dv;
		c->vc_stride_block = bs * H * Dv;
	} else if (c->layout == CACHE_CASE_HND) {
		c->kc_stride_slot = Dk;
		c->kc_stride_head = bs * Dk;
		c->kc_stride_block = H * bs * Dk;
		c->vc_stride_slot = Dv;
		c->vc_stride_head = bs * Dv;
		c->vc_stride_block = H * bs * Dv;
	} else { /* key cache HND, value cache NHD, both with gaps */
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

/* The fate of token t under the contract of fp8kv.h section 7. */
static int64_t token_dest(const cache_case *c, int64_t t)
{
	int64_t s = c->slots[t];
	if (s < 0)
		return CACHE_CASE_PADDING;
	if (c->use_swa) {
		if (s >= c->swa_len)
			return CACHE_CASE_OUT_OF_RANGE;
		s = c->swa[s];
		if (s < 0)
			return CACHE_CASE_PADDING;
	}
	if (s >= c->num_slots)
		return CACHE_CASE_OUT_OF_RANGE;
	return s;
}

static int gen_slots(cache_case *c)
{
	rng r;
	const int64_t T = c->num_tokens;
	rng_seed(&r, c->seed, STREAM_SLOTS);

	int64_t n_oor = c->num_out_of_range < T ? c->num_out_of_range : T;
	int64_t n_pad = (int64_t)(c->padding_fraction * (double)T + 0.5);
	if (n_pad > T - n_oor)
		n_pad = T - n_oor;
	int64_t n_dup = c->num_duplicates;
	if (n_dup > T - n_oor - n_pad - 1)
		n_dup = T - n_oor - n_pad - 1;
	if (n_dup < 0)
		n_dup = 0;
	int64_t n_valid = T - n_oor - n_pad - n_dup;

	if (c->num_blocks == 0) {
		int64_t need = n_valid + (n_valid / 4 > 2 ? n_valid / 4 : 2);
		c->num_blocks = (need + c->block_size - 1) / c->block_size;
	}
	c->num_slots = c->num_blocks * c->block_size;
	if (n_valid > c->num_slots)
		return fail("%lld valid tokens do not fit %lld slots", (long long)n_valid,
			    (long long)c->num_slots);

	enum { K_VALID, K_PAD, K_OOR, K_DUP };
	int64_t *kind = xcalloc((size_t)T, sizeof *kind);
	int64_t *perm = NULL;
	c->slots = xcalloc((size_t)T, sizeof *c->slots);
	c->dest = xcalloc((size_t)T, sizeof *c->dest);
	/* a partial Fisher-Yates: n_valid distinct slots */
	int64_t np = c->num_slots;
	perm = xcalloc((size_t)np, sizeof *perm);
	if (!kind || !c->slots || !c->dest || !perm) {
		free(kind);
		free(perm);
		return fail("out of memory");
	}
	for (int64_t i = 0; i < np; i++)
		perm[i] = i;
	for (int64_t i = 0; i < n_valid; i++) {
		int64_t j = i + (int64_t)rng_below(&r, (uint64_t)(np - i));
		int64_t t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (int64_t t = 0; t < T; t++)
		kind[t] = t < n_valid ? K_VALID : t < n_valid + n_pad ? K_PAD
			: t < n_valid + n_pad + n_oor ? K_OOR : K_DUP;
	shuffle(&r, kind, T);

	int64_t *swa_idx = NULL;
	if (c->use_swa) {
		c->swa_len = T + 3 + (int64_t)rng_below(&r, 8);
		c->swa = xcalloc((size_t)c->swa_len, sizeof *c->swa);
		swa_idx = xcalloc((size_t)c->swa_len, sizeof *swa_idx);
		if (!c->swa || !swa_idx) {
			free(kind);
			free(perm);
			free(swa_idx);
			return fail("out of memory");
		}
		/* unused entries hold junk nobody may read: padding, valid and
		 * out-of-range slots */
		for (int64_t i = 0; i < c->swa_len; i++) {
			swa_idx[i] = i;
			switch (rng_below(&r, 3)) {
			case 0: c->swa[i] = pad_value(&r, c->swa_type); break;
			case 1: c->swa[i] = (int64_t)rng_below(&r, (uint64_t)c->num_slots); break;
			default: c->swa[i] = oor_value(&r, c->swa_type, c->num_slots); break;
			}
		}
		shuffle(&r, swa_idx, c->swa_len);
	}

	int64_t next_slot = 0, next_idx = 0;
	int64_t *valid_tokens = xcalloc((size_t)T, sizeof *valid_tokens);
	int64_t n_valid_seen = 0;
	if (!valid_tokens) {
		free(kind);
		free(perm);
		free(swa_idx);
		return fail("out of memory");
	}
	for (int64_t t = 0; t < T; t++) {
		if (kind[t] != K_VALID)
			continue;
		int64_t slot = perm[next_slot++];
		valid_tokens[n_valid_seen++] = t;
		if (c->use_swa) {
			int64_t p = swa_idx[next_idx++];
			c->swa[p] = slot;
			c->slots[t] = p;
		} else {
			c->slots[t] = slot;
		}
	}
	for (int64_t t = 0; t < T; t++) {
		int64_t p;
		switch (kind[t]) {
		case K_PAD:
			if (c->use_swa && (rng_next(&r) & 1)) {
				p = swa_idx[next_idx++];
				c->swa[p] = pad_value(&r, c->swa_type);
				c->slots[t] = p;
			} else {
				c->slots[t] = pad_value(&r, c->slot_type);
			}
			break;
		case K_OOR:
			if (c->use_swa && (rng_next(&r) & 1)) {
				p = swa_idx[next_idx++];
				c->swa[p] = oor_value(&r, c->swa_type, c->num_slots);
				c->slots[t] = p;
			} else {
				c->slots[t] = oor_value(&r, c->slot_type,
							c->use_swa ? c->swa_len : c->num_slots);
			}
			break;
		case K_DUP: {
			int64_t v = valid_tokens[rng_below(&r, (uint64_t)n_valid_seen)];
			if (c->use_swa && (rng_next(&r) & 1)) {
				p = swa_idx[next_idx++];
				c->swa[p] = c->swa[c->slots[v]];
				c->slots[t] = p;
			} else {
				c->slots[t] = c->slots[v];
			}
			break;
		}
		default:
			break;
		}
	}
	free(valid_tokens);
	free(kind);
	free(perm);
	free(swa_idx);
	cache_case_update_dest(c);
	return 0;
}

void cache_case_update_dest(cache_case *c)
{
	c->first_out_of_range = -1;
	for (int64_t t = 0; t < c->num_tokens; t++) {
		c->dest[t] = token_dest(c, t);
		if (c->dest[t] == CACHE_CASE_OUT_OF_RANGE && c->first_out_of_range < 0)
			c->first_out_of_range = t;
	}
}

int cache_case_generate(cache_case *c)
{
	cache_case_free(c);
	case_error[0] = 0;
	if (!fp8kv_dtype_size(c->input_dtype) || fp8kv_dtype_is_fp8(c->input_dtype))
		return fail("input dtype %d is not f32/f16/bf16", (int)c->input_dtype);
	if (c->cache_dtype != c->input_dtype && !fp8kv_dtype_is_fp8(c->cache_dtype))
		return fail("cache dtype %d is neither the input dtype nor FP8", (int)c->cache_dtype);
	if (c->scale_mode != FP8KV_SCALE_ONE && !fp8kv_dtype_is_fp8(c->cache_dtype))
		return fail("scale mode %s needs an FP8 cache", cache_case_scale_mode_name(c->scale_mode));
	if (c->num_tokens < 0 || c->num_heads < 1 || c->head_dim_k < 1 || c->head_dim_v < 1 ||
	    c->block_size < 1 || c->num_blocks < 0)
		return fail("bad sizes");

	if (c->scale_mode == FP8KV_SCALE_HEAD && c->head_scales == CACHE_CASE_HEAD_SCALES_GIVEN &&
	    (!c->head_k_scales || !c->head_v_scales))
		return fail("head_scales GIVEN without head_k_scales/head_v_scales");

	const int64_t T = c->num_tokens, H = c->num_heads;
	int rc = gen_slots(c);
	if (rc)
		return rc;
	layout_strides(c);

	const fp8kv_dtype in = c->input_dtype;
	const size_t isz = fp8kv_dtype_size(in), csz = fp8kv_dtype_size(c->cache_dtype);
	c->key = xcalloc(c->key_elems, isz);
	c->value = xcalloc(c->value_elems, isz);
	c->kc_init = xcalloc(c->kc_elems, csz);
	c->vc_init = xcalloc(c->vc_elems, csz);
	c->ksc_init = xcalloc(c->sc_elems, sizeof(float));
	c->vsc_init = xcalloc(c->sc_elems, sizeof(float));
	c->k_amax_init = xcalloc((size_t)H, sizeof(float));
	c->v_amax_init = xcalloc((size_t)H, sizeof(float));
	c->k_scales = xcalloc((size_t)H, sizeof(float));
	c->v_scales = xcalloc((size_t)H, sizeof(float));
	if (!c->key || !c->value || !c->kc_init || !c->vc_init || !c->ksc_init || !c->vsc_init ||
	    !c->k_amax_init || !c->v_amax_init || !c->k_scales || !c->v_scales) {
		cache_case_free(c);
		return fail("out of memory");
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
	dtype_bits_of(in, &g.in);
	g.input_dtype = in;
	fmt_info_get(fp8kv_dtype_is_fp8(c->cache_dtype) ? c->cache_dtype : FP8KV_E4M3FN, &g.f);
	const uint32_t garbage[4] = {g.in.max_finite, g.in.inf | 1u, g.in.inf,
				     g.in.sign | g.in.max_finite};
	for (size_t i = 0; i < c->key_elems; i++)
		cache_case_set_bits(c->key, in, i, garbage[i % 4]);
	for (size_t i = 0; i < c->value_elems; i++)
		cache_case_set_bits(c->value, in, i, garbage[(i + 1) % 4]);

	rng rv, rs, rrow;
	rng_seed(&rv, c->seed, STREAM_VALUES);
	rng_seed(&rs, c->seed, STREAM_SPECIAL);
	rng_seed(&rrow, c->seed, STREAM_ROWS);
	const int64_t Dmax = c->head_dim_k > c->head_dim_v ? c->head_dim_k : c->head_dim_v;
	uint32_t *row = xcalloc((size_t)Dmax, sizeof *row);
	if (!row) {
		cache_case_free(c);
		return fail("out of memory");
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
		cache_case_set_bits(c->key, in, 0, round_format(1.0, g.in.ebits, g.in.mbits));

	/* poison and initial outputs */
	rng_seed(&r, c->seed, STREAM_POISON);
	for (size_t i = 0; i < c->kc_elems * csz; i++)
		c->kc_init[i] = (uint8_t)rng_next(&r);
	for (size_t i = 0; i < c->vc_elems * csz; i++)
		c->vc_init[i] = (uint8_t)rng_next(&r);
	for (size_t i = 0; i < c->sc_elems; i++) {
		c->ksc_init[i] = ffrom((uint32_t)rng_next(&r));
		c->vsc_init[i] = ffrom((uint32_t)rng_next(&r));
	}
	rng_seed(&r, c->seed, STREAM_INIT);
	static const float amax0[] = {0.25f, 1e-6f, 3.5f, 1e20f, 0x1p-140f, 100.0f};
	c->overflow_init = 0x100000000ull + rng_below(&r, 1000000) + 1;
	c->nan_init = 0x300000000ull + rng_below(&r, 1000000) + 1;
	for (int64_t h = 0; h < H; h++) {
		c->k_amax_init[h] = amax0[rng_below(&r, sizeof amax0 / sizeof amax0[0])];
		c->v_amax_init[h] = amax0[rng_below(&r, sizeof amax0 / sizeof amax0[0])];
	}
	return 0;
}

/* -------------------------------------------------------------- expected */

void cache_result_free(cache_result *r)
{
	free(r->kc);
	free(r->vc);
	free(r->ksc);
	free(r->vsc);
	free(r->k_amax);
	free(r->v_amax);
	memset(r, 0, sizeof *r);
}

static int result_alloc(const cache_case *c, cache_result *r)
{
	const size_t csz = fp8kv_dtype_size(c->cache_dtype);
	memset(r, 0, sizeof *r);
	r->kc = xcalloc(c->kc_elems, csz);
	r->vc = xcalloc(c->vc_elems, csz);
	if (c->sc_elems) {
		r->ksc = xcalloc(c->sc_elems, sizeof(float));
		r->vsc = xcalloc(c->sc_elems, sizeof(float));
	}
	if (c->want_amax) {
		r->k_amax = xcalloc((size_t)c->num_heads, sizeof(float));
		r->v_amax = xcalloc((size_t)c->num_heads, sizeof(float));
	}
	if (!r->kc || !r->vc || (c->sc_elems && (!r->ksc || !r->vsc)) ||
	    (c->want_amax && (!r->k_amax || !r->v_amax))) {
		cache_result_free(r);
		return fail("out of memory");
	}
	return 0;
}

/* The divisor of row (t, h) of K (kv = 0) or V: *scaled = 0 for none. */
static float row_scale(const cache_case *c, int kv, int64_t t, int64_t h, const uint32_t *row,
		       int *scaled)
{
	const float *s = kv ? c->v_scales : c->k_scales;
	(void)t;
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

static void load_row(const cache_case *c, int kv, int64_t t, int64_t h, uint32_t *row)
{
	const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
	const void *buf = kv ? c->value : c->key;
	const int64_t base = t * (kv ? c->value_stride_token : c->key_stride_token) +
			     h * (kv ? c->value_stride_head : c->key_stride_head);
	for (int64_t d = 0; d < D; d++)
		row[d] = cache_case_get_bits(buf, c->input_dtype, (size_t)(base + d));
}

static int64_t cache_index(const cache_case *c, int kv, int64_t slot, int64_t h, int64_t d)
{
	const int64_t blk = slot / c->block_size, off = slot % c->block_size;
	if (kv)
		return blk * c->vc_stride_block + off * c->vc_stride_slot + h * c->vc_stride_head + d;
	return blk * c->kc_stride_block + off * c->kc_stride_slot + h * c->kc_stride_head + d;
}

static int64_t scale_index(const cache_case *c, int64_t slot, int64_t h)
{
	const int64_t blk = slot / c->block_size, off = slot % c->block_size;
	return blk * c->sc_stride_block + off * c->sc_stride_slot + h * c->sc_stride_head;
}

int cache_case_expect(const cache_case *c, cache_result *e)
{
	const size_t csz = fp8kv_dtype_size(c->cache_dtype);
	const int copy = c->cache_dtype == c->input_dtype;
	if (result_alloc(c, e))
		return -1;
	memcpy(e->kc, c->kc_init, c->kc_elems * csz);
	memcpy(e->vc, c->vc_init, c->vc_elems * csz);
	if (c->sc_elems) {
		memcpy(e->ksc, c->ksc_init, c->sc_elems * sizeof(float));
		memcpy(e->vsc, c->vsc_init, c->sc_elems * sizeof(float));
	}
	if (c->want_amax) {
		memcpy(e->k_amax, c->k_amax_init, (size_t)c->num_heads * sizeof(float));
		memcpy(e->v_amax, c->v_amax_init, (size_t)c->num_heads * sizeof(float));
	}
	uint64_t overflows = 0, nans = 0;
	const int64_t Dmax = c->head_dim_k > c->head_dim_v ? c->head_dim_k : c->head_dim_v;
	uint32_t *row = xcalloc((size_t)Dmax, sizeof *row);
	if (!row) {
		cache_result_free(e);
		return fail("out of memory");
	}
	for (int64_t t = 0; t < c->num_tokens; t++) {
		const int64_t slot = c->dest[t];
		if (slot < 0)
			continue;
		for (int kv = 0; kv < 2; kv++) {
			const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
			uint8_t *img = kv ? e->vc : e->kc;
			float *amax = kv ? e->v_amax : e->k_amax;
			for (int64_t h = 0; h < c->num_heads; h++) {
				int scaled;
				load_row(c, kv, t, h, row);
				const float s = row_scale(c, kv, t, h, row, &scaled);
				if (c->scale_mode == FP8KV_SCALE_TOKEN_HEAD)
					(kv ? e->vsc : e->ksc)[scale_index(c, slot, h)] = s;
				for (int64_t d = 0; d < D; d++) {
					const size_t ci = (size_t)cache_index(c, kv, slot, h, d);
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
					else if (amax && is_finite_f(x) && fabs_f(x) > amax[h])
						amax[h] = fabs_f(x);
				}
			}
		}
	}
	free(row);
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

void cache_case_fix_poison(cache_case *c, cache_result *e)
{
	const size_t csz = fp8kv_dtype_size(c->cache_dtype);
	for (int64_t t = 0; t < c->num_tokens; t++) {
		const int64_t slot = c->dest[t];
		if (slot < 0)
			continue;
		for (int kv = 0; kv < 2; kv++) {
			const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
			uint8_t *init = kv ? c->vc_init : c->kc_init;
			const uint8_t *img = kv ? e->vc : e->kc;
			for (int64_t h = 0; h < c->num_heads; h++) {
				for (int64_t d = 0; d < D; d++) {
					const size_t ci = (size_t)cache_index(c, kv, slot, h, d) * csz;
					for (size_t k = 0; k < csz; k++)
						if (init[ci + k] == img[ci + k])
							init[ci + k] = (uint8_t)(img[ci + k] ^ 0x5A);
				}
				if (c->sc_elems) {
					float *si = kv ? c->vsc_init : c->ksc_init;
					const float *se = kv ? e->vsc : e->ksc;
					const int64_t i = scale_index(c, slot, h);
					uint8_t a[4], b[4];
					memcpy(a, &si[i], 4);
					memcpy(b, &se[i], 4);
					for (int k = 0; k < 4; k++)
						if (a[k] == b[k])
							a[k] = (uint8_t)(b[k] ^ 0x5A);
					memcpy(&si[i], a, 4);
				}
			}
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

/* ------------------------------------------------------------------- run */

typedef struct dev_bufs {
	void *key, *value, *kc, *vc, *slots, *swa, *ks, *vs, *ksc, *vsc;
	void *ovf, *nan, *kamax, *vamax;
} dev_bufs;

static int dev_alloc(fp8kv_backend *b, cache_result *out, void **p, size_t bytes)
{
	fp8kv_status st = fp8kv_buffer_alloc(b, bytes ? bytes : 1, p);
	if (st != FP8KV_OK) {
		*p = NULL;
		if (!out->setup_error[0])
			snprintf(out->setup_error, sizeof out->setup_error,
				 "fp8kv_buffer_alloc(%zu bytes): %s: %s", bytes, fp8kv_strerror(st),
				 fp8kv_last_error());
		return -1;
	}
	return 0;
}

static int dev_up(fp8kv_backend *b, cache_result *out, void *dst, const void *src, size_t bytes)
{
	if (!bytes)
		return 0;
	fp8kv_status st = fp8kv_buffer_upload(b, dst, src, bytes);
	if (st != FP8KV_OK) {
		if (!out->setup_error[0])
			snprintf(out->setup_error, sizeof out->setup_error,
				 "fp8kv_buffer_upload(%zu bytes): %s: %s", bytes, fp8kv_strerror(st),
				 fp8kv_last_error());
		return -1;
	}
	return 0;
}

static int dev_down(fp8kv_backend *b, cache_result *out, void *dst, const void *src, size_t bytes)
{
	if (!bytes)
		return 0;
	fp8kv_status st = fp8kv_buffer_download(b, dst, src, bytes);
	if (st != FP8KV_OK) {
		if (!out->setup_error[0])
			snprintf(out->setup_error, sizeof out->setup_error,
				 "fp8kv_buffer_download(%zu bytes): %s: %s", bytes, fp8kv_strerror(st),
				 fp8kv_last_error());
		return -1;
	}
	return 0;
}

/* An index array converted to its upload type. */
static void *index_array(const int64_t *v, int64_t n, fp8kv_index_type type, size_t *bytes)
{
	if (type == FP8KV_INDEX_INT32) {
		int32_t *a = xcalloc((size_t)n, sizeof *a);
		if (a)
			for (int64_t i = 0; i < n; i++)
				a[i] = (int32_t)v[i];
		*bytes = (size_t)n * sizeof *a;
		return a;
	}
	int64_t *a = xcalloc((size_t)n, sizeof *a);
	if (a && n)
		memcpy(a, v, (size_t)n * sizeof *a);
	*bytes = (size_t)n * sizeof *a;
	return a;
}

int cache_case_run(fp8kv_backend *b, const cache_case *c, cache_result *out)
{
	const size_t isz = fp8kv_dtype_size(c->input_dtype), csz = fp8kv_dtype_size(c->cache_dtype);
	const size_t H = (size_t)c->num_heads;
	dev_bufs d;
	memset(&d, 0, sizeof d);
	if (result_alloc(c, out))
		return -1;

	size_t slot_bytes = 0, swa_bytes = 0;
	void *hslots = index_array(c->slots, c->num_tokens, c->slot_type, &slot_bytes);
	void *hswa = c->use_swa ? index_array(c->swa, c->swa_len, c->swa_type, &swa_bytes) : NULL;
	if (!hslots || (c->use_swa && !hswa)) {
		free(hslots);
		free(hswa);
		cache_result_free(out);
		return fail("out of memory");
	}
	/* ONE ignores k_scale/v_scale: on odd seeds hand it a scale of 7 that
	 * must not be applied */
	const int pass_scales = c->scale_mode == FP8KV_SCALE_TENSOR || c->scale_mode == FP8KV_SCALE_HEAD ||
				(c->scale_mode == FP8KV_SCALE_ONE && (c->seed & 1));
	const size_t nsc = c->scale_mode == FP8KV_SCALE_ONE ? H : (size_t)c->num_scales;
	float *ones = NULL;
	if (c->scale_mode == FP8KV_SCALE_ONE) {
		ones = xcalloc(H, sizeof *ones);
		if (!ones) {
			free(hslots);
			free(hswa);
			cache_result_free(out);
			return fail("out of memory");
		}
		for (size_t h = 0; h < H; h++)
			ones[h] = 7.0f;
	}
	const uint64_t ovf0 = c->overflow_init, nan0 = c->nan_init;

	int bad = 0;
	bad |= dev_alloc(b, out, &d.key, c->key_elems * isz);
	bad |= dev_alloc(b, out, &d.value, c->value_elems * isz);
	bad |= dev_alloc(b, out, &d.kc, c->kc_elems * csz);
	bad |= dev_alloc(b, out, &d.vc, c->vc_elems * csz);
	bad |= dev_alloc(b, out, &d.slots, slot_bytes);
	if (c->use_swa)
		bad |= dev_alloc(b, out, &d.swa, swa_bytes);
	if (pass_scales) {
		bad |= dev_alloc(b, out, &d.ks, nsc * sizeof(float));
		bad |= dev_alloc(b, out, &d.vs, nsc * sizeof(float));
	}
	if (c->sc_elems) {
		bad |= dev_alloc(b, out, &d.ksc, c->sc_elems * sizeof(float));
		bad |= dev_alloc(b, out, &d.vsc, c->sc_elems * sizeof(float));
	}
	if (c->want_overflow_count)
		bad |= dev_alloc(b, out, &d.ovf, sizeof(uint64_t));
	if (c->want_nan_count)
		bad |= dev_alloc(b, out, &d.nan, sizeof(uint64_t));
	if (c->want_amax) {
		bad |= dev_alloc(b, out, &d.kamax, H * sizeof(float));
		bad |= dev_alloc(b, out, &d.vamax, H * sizeof(float));
	}
	if (!bad) {
		bad |= dev_up(b, out, d.key, c->key, c->key_elems * isz);
		bad |= dev_up(b, out, d.value, c->value, c->value_elems * isz);
		bad |= dev_up(b, out, d.kc, c->kc_init, c->kc_elems * csz);
		bad |= dev_up(b, out, d.vc, c->vc_init, c->vc_elems * csz);
		bad |= dev_up(b, out, d.slots, hslots, slot_bytes);
		if (c->use_swa)
			bad |= dev_up(b, out, d.swa, hswa, swa_bytes);
		if (pass_scales) {
			bad |= dev_up(b, out, d.ks, ones ? ones : c->k_scales, nsc * sizeof(float));
			bad |= dev_up(b, out, d.vs, ones ? ones : c->v_scales, nsc * sizeof(float));
		}
		if (c->sc_elems) {
			bad |= dev_up(b, out, d.ksc, c->ksc_init, c->sc_elems * sizeof(float));
			bad |= dev_up(b, out, d.vsc, c->vsc_init, c->sc_elems * sizeof(float));
		}
		if (c->want_overflow_count)
			bad |= dev_up(b, out, d.ovf, &ovf0, sizeof ovf0);
		if (c->want_nan_count)
			bad |= dev_up(b, out, d.nan, &nan0, sizeof nan0);
		if (c->want_amax) {
			bad |= dev_up(b, out, d.kamax, c->k_amax_init, H * sizeof(float));
			bad |= dev_up(b, out, d.vamax, c->v_amax_init, H * sizeof(float));
		}
	}
	if (!bad) {
		fp8kv_cache_write w;
		fp8kv_cache_write_init(&w, c->num_tokens, c->num_heads, c->head_dim_k, c->head_dim_v,
				       c->num_blocks, c->block_size,
				       c->layout == CACHE_CASE_HND ? FP8KV_LAYOUT_HND : FP8KV_LAYOUT_NHD);
		w.key = d.key;
		w.value = d.value;
		w.input_dtype = c->input_dtype;
		w.key_stride_token = c->key_stride_token;
		w.key_stride_head = c->key_stride_head;
		w.value_stride_token = c->value_stride_token;
		w.value_stride_head = c->value_stride_head;
		w.key_cache = d.kc;
		w.value_cache = d.vc;
		w.cache_dtype = c->cache_dtype;
		w.key_cache_stride_block = c->kc_stride_block;
		w.key_cache_stride_slot = c->kc_stride_slot;
		w.key_cache_stride_head = c->kc_stride_head;
		w.value_cache_stride_block = c->vc_stride_block;
		w.value_cache_stride_slot = c->vc_stride_slot;
		w.value_cache_stride_head = c->vc_stride_head;
		w.slot_mapping = d.slots;
		w.slot_type = c->slot_type;
		if (c->use_swa) {
			w.swa_mapping = d.swa;
			w.swa_type = c->swa_type;
			w.swa_mapping_len = c->swa_len;
		}
		w.scale_mode = c->scale_mode;
		w.k_scale = d.ks;
		w.v_scale = d.vs;
		w.overflow = c->overflow;
		if (c->sc_elems) {
			w.k_scale_cache = d.ksc;
			w.v_scale_cache = d.vsc;
			w.scale_cache_stride_block = c->sc_stride_block;
			w.scale_cache_stride_slot = c->sc_stride_slot;
			w.scale_cache_stride_head = c->sc_stride_head;
		}
		w.overflow_count = d.ovf;
		w.nan_count = d.nan;
		w.k_amax = d.kamax;
		w.v_amax = d.vamax;

		out->call_status = fp8kv_reshape_and_cache(b, &w, NULL);
		if (out->call_status != FP8KV_OK) {
			out->status = out->call_status;
			snprintf(out->stage, sizeof out->stage, "reshape_and_cache");
			snprintf(out->message, sizeof out->message, "%s", fp8kv_last_error());
		}
		out->sync_status = fp8kv_backend_synchronize(b, NULL);
		if (out->sync_status != FP8KV_OK && out->status == FP8KV_OK) {
			out->status = out->sync_status;
			snprintf(out->stage, sizeof out->stage, "synchronize");
			snprintf(out->message, sizeof out->message, "%s", fp8kv_last_error());
		}

		dev_down(b, out, out->kc, d.kc, c->kc_elems * csz);
		dev_down(b, out, out->vc, d.vc, c->vc_elems * csz);
		if (c->sc_elems) {
			dev_down(b, out, out->ksc, d.ksc, c->sc_elems * sizeof(float));
			dev_down(b, out, out->vsc, d.vsc, c->sc_elems * sizeof(float));
		}
		if (c->want_overflow_count)
			dev_down(b, out, &out->overflow_count, d.ovf, sizeof(uint64_t));
		if (c->want_nan_count)
			dev_down(b, out, &out->nan_count, d.nan, sizeof(uint64_t));
		if (c->want_amax) {
			dev_down(b, out, out->k_amax, d.kamax, H * sizeof(float));
			dev_down(b, out, out->v_amax, d.vamax, H * sizeof(float));
		}
	}
	void *all[] = {d.key, d.value, d.kc, d.vc, d.slots, d.swa, d.ks, d.vs,
		       d.ksc, d.vsc, d.ovf, d.nan, d.kamax, d.vamax};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		if (all[i])
			fp8kv_buffer_free(b, all[i]);
	free(hslots);
	free(hswa);
	free(ones);
	return 0;
}

/* --------------------------------------------------------------- compare */

void cache_diff_init(cache_diff *d)
{
	memset(d, 0, sizeof *d);
}

static cache_diff_entry *new_entry(cache_diff *d, int max_report, cache_diff_what what)
{
	if (max_report > CACHE_DIFF_MAX_REPORT)
		max_report = CACHE_DIFF_MAX_REPORT;
	if (d->reported >= max_report)
		return NULL;
	cache_diff_entry *e = &d->e[d->reported++];
	memset(e, 0, sizeof *e);
	e->what = what;
	e->index = e->token = e->head = e->element = e->slot = -1;
	return e;
}

/* Which input element was written last at element idx of the key (kv = 0)
 * or value cache (or its scale cache, scale != 0).  0 if none. */
static int locate(const cache_case *c, int kv, int scale, int64_t idx, cache_diff_entry *e)
{
	const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
	for (int64_t t = c->num_tokens - 1; t >= 0; t--) {
		const int64_t slot = c->dest[t];
		if (slot < 0)
			continue;
		for (int64_t h = 0; h < c->num_heads; h++) {
			if (scale) {
				if (scale_index(c, slot, h) == idx) {
					e->token = t;
					e->head = h;
					e->slot = slot;
					return 1;
				}
				continue;
			}
			const int64_t rel = idx - cache_index(c, kv, slot, h, 0);
			if (rel >= 0 && rel < D) {
				e->token = t;
				e->head = h;
				e->element = rel;
				e->slot = slot;
				return 1;
			}
		}
	}
	return 0;
}

/* Fills in the input, scale and the oracle's code of a located entry. */
static void explain(const cache_case *c, int kv, cache_diff_entry *e)
{
	const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
	uint32_t *row = xcalloc((size_t)D, sizeof *row);
	if (!row)
		return;
	load_row(c, kv, e->token, e->head, row);
	e->scale = row_scale(c, kv, e->token, e->head, row, &e->scaled);
	if (e->element >= 0) {
		e->has_input = 1;
		e->input_bits = row[e->element];
		e->input = oracle_widen(e->input_bits, c->input_dtype);
		e->has_oracle = 1;
		if (c->cache_dtype == c->input_dtype)
			e->oracle = e->input_bits;
		else
			e->oracle = oracle_quantize(e->input_bits, c->input_dtype, e->scaled, e->scale,
						    c->cache_dtype, c->overflow, NULL);
	} else if (e->scaled) { /* a scale cache element: the oracle's scale */
		e->has_oracle = 1;
		e->oracle = fbits(e->scale);
	}
	free(row);
}

static uint64_t compare_image(const cache_case *c, cache_diff_what what, int kv, int scale,
			      const uint8_t *exp, const uint8_t *got, size_t elems, size_t esz,
			      cache_diff *d, int max_report)
{
	uint64_t diffs = 0;
	if (!exp || !got)
		return 0;
	d->bytes_compared += elems * esz;
	if (memcmp(exp, got, elems * esz) == 0)
		return 0;
	for (size_t i = 0; i < elems; i++) {
		const uint8_t *a = exp + i * esz, *b = got + i * esz;
		if (memcmp(a, b, esz) == 0)
			continue;
		for (size_t k = 0; k < esz; k++)
			d->bytes_differing += a[k] != b[k];
		diffs++;
		cache_diff_entry *e = new_entry(d, max_report, what);
		if (!e)
			continue;
		e->index = (int64_t)i;
		uint32_t ea = 0, ga = 0;
		memcpy(&ea, a, esz); /* little-endian element bits */
		memcpy(&ga, b, esz);
		e->expected = ea;
		e->got = ga;
		if (locate(c, kv, scale, (int64_t)i, e))
			explain(c, kv, e);
	}
	return diffs;
}

/* "token N" in msg, N not followed by another digit. */
static int names_token(const char *msg, int64_t token)
{
	char want[40];
	int n = snprintf(want, sizeof want, "token %lld", (long long)token);
	for (const char *p = strstr(msg, want); p; p = strstr(p + 1, want))
		if (p[n] < '0' || p[n] > '9')
			return 1;
	return 0;
}

uint64_t cache_case_compare(const cache_case *c, const cache_result *exp, const cache_result *got,
			    cache_diff *d, int max_report)
{
	uint64_t diffs = 0;
	cache_diff_entry *e;
	d->cases++;

	const cache_result *rs[2] = {exp, got};
	for (int i = 0; i < 2; i++) {
		if (rs[i]->setup_error[0]) {
			diffs++;
			if ((e = new_entry(d, max_report, CACHE_DIFF_SETUP)))
				snprintf(e->note, sizeof e->note, "%s: %s", i ? "got" : "expected",
					 rs[i]->setup_error);
		}
	}
	if (exp->status != got->status) {
		diffs++;
		if ((e = new_entry(d, max_report, CACHE_DIFF_STATUS))) {
			e->expected = (uint64_t)exp->status;
			e->got = (uint64_t)got->status;
			snprintf(e->note, sizeof e->note, "%s%s%s", got->stage, got->stage[0] ? ": " : "",
				 got->message);
		}
	} else if (got->status == FP8KV_ERANGE && c->first_out_of_range >= 0 &&
		   !names_token(got->message, c->first_out_of_range)) {
		diffs++;
		if ((e = new_entry(d, max_report, CACHE_DIFF_MESSAGE))) {
			e->token = c->first_out_of_range;
			snprintf(e->note, sizeof e->note, "%s", got->message);
		}
	}

	const size_t csz = fp8kv_dtype_size(c->cache_dtype);
	diffs += compare_image(c, CACHE_DIFF_KEY, 0, 0, exp->kc, got->kc, c->kc_elems, csz, d,
			       max_report);
	diffs += compare_image(c, CACHE_DIFF_VALUE, 1, 0, exp->vc, got->vc, c->vc_elems, csz, d,
			       max_report);
	if (c->sc_elems) {
		diffs += compare_image(c, CACHE_DIFF_KEY_SCALE, 0, 1, (const uint8_t *)exp->ksc,
				       (const uint8_t *)got->ksc, c->sc_elems, 4, d, max_report);
		diffs += compare_image(c, CACHE_DIFF_VALUE_SCALE, 1, 1, (const uint8_t *)exp->vsc,
				       (const uint8_t *)got->vsc, c->sc_elems, 4, d, max_report);
	}
	const struct {
		int want;
		cache_diff_what what;
		uint64_t a, b;
	} counters[2] = {
		{c->want_overflow_count, CACHE_DIFF_OVERFLOW_COUNT, exp->overflow_count, got->overflow_count},
		{c->want_nan_count, CACHE_DIFF_NAN_COUNT, exp->nan_count, got->nan_count},
	};
	for (int i = 0; i < 2; i++) {
		if (!counters[i].want)
			continue;
		d->bytes_compared += 8;
		if (counters[i].a == counters[i].b)
			continue;
		diffs++;
		for (int k = 0; k < 8; k++)
			d->bytes_differing += ((counters[i].a >> (8 * k)) & 0xFF) != ((counters[i].b >> (8 * k)) & 0xFF);
		if ((e = new_entry(d, max_report, counters[i].what))) {
			e->expected = counters[i].a;
			e->got = counters[i].b;
		}
	}
	if (c->want_amax && exp->k_amax && got->k_amax) {
		for (int kv = 0; kv < 2; kv++) {
			const float *a = kv ? exp->v_amax : exp->k_amax, *b = kv ? got->v_amax : got->k_amax;
			for (int64_t h = 0; h < c->num_heads; h++) {
				d->bytes_compared += 4;
				uint32_t x = fbits(a[h]), y = fbits(b[h]);
				if (x == y)
					continue;
				diffs++;
				for (int k = 0; k < 4; k++)
					d->bytes_differing += ((x >> (8 * k)) & 0xFF) != ((y >> (8 * k)) & 0xFF);
				if ((e = new_entry(d, max_report, kv ? CACHE_DIFF_V_AMAX : CACHE_DIFF_K_AMAX))) {
					e->index = e->head = h;
					e->expected = x;
					e->got = y;
				}
			}
		}
	}
	d->differences += diffs;
	return diffs;
}

static const char *status_name(uint64_t s)
{
	static const char *names[] = {"FP8KV_OK", "FP8KV_EINVAL", "FP8KV_ENOTSUP", "FP8KV_ERANGE",
				      "FP8KV_ENODEV", "FP8KV_EBACKEND", "FP8KV_ENOMEM"};
	return s < sizeof names / sizeof names[0] ? names[s] : "?";
}

void cache_diff_format(const cache_case *c, const cache_diff_entry *e, char *buf, size_t n)
{
	const int hexw = (int)(2 * fp8kv_dtype_size(c->cache_dtype));
	char where[160], input[160] = "";
	switch (e->what) {
	case CACHE_DIFF_SETUP:
		snprintf(buf, n, "setup failed: %s", e->note);
		return;
	case CACHE_DIFF_STATUS:
		snprintf(buf, n, "status: expected %s, got %s (%s)", status_name(e->expected),
			 status_name(e->got), e->note);
		return;
	case CACHE_DIFF_MESSAGE:
		snprintf(buf, n, "ERANGE message does not name \"token %lld\": \"%s\"",
			 (long long)e->token, e->note);
		return;
	case CACHE_DIFF_OVERFLOW_COUNT:
	case CACHE_DIFF_NAN_COUNT:
		snprintf(buf, n, "%s: expected %llu, got %llu (initial %llu)",
			 e->what == CACHE_DIFF_NAN_COUNT ? "nan_count" : "overflow_count",
			 (unsigned long long)e->expected, (unsigned long long)e->got,
			 (unsigned long long)(e->what == CACHE_DIFF_NAN_COUNT ? c->nan_init
									       : c->overflow_init));
		return;
	case CACHE_DIFF_K_AMAX:
	case CACHE_DIFF_V_AMAX:
		snprintf(buf, n, "%s[%lld]: expected %.9g (0x%08llx), got %.9g (0x%08llx)",
			 e->what == CACHE_DIFF_K_AMAX ? "k_amax" : "v_amax", (long long)e->head,
			 (double)ffrom((uint32_t)e->expected), (unsigned long long)e->expected,
			 (double)ffrom((uint32_t)e->got), (unsigned long long)e->got);
		return;
	default:
		break;
	}
	const int scale = e->what == CACHE_DIFF_KEY_SCALE || e->what == CACHE_DIFF_VALUE_SCALE;
	const char *what = e->what == CACHE_DIFF_KEY ? "key cache"
			 : e->what == CACHE_DIFF_VALUE ? "value cache"
			 : e->what == CACHE_DIFF_KEY_SCALE ? "key scale cache" : "value scale cache";
	if (e->token < 0)
		snprintf(where, sizeof where, "%s element %lld (written by no token: poison)", what,
			 (long long)e->index);
	else if (scale)
		snprintf(where, sizeof where, "%s element %lld (token %lld, head %lld, slot %lld)", what,
			 (long long)e->index, (long long)e->token, (long long)e->head, (long long)e->slot);
	else
		snprintf(where, sizeof where, "%s element %lld (token %lld, head %lld, d %lld, slot %lld)",
			 what, (long long)e->index, (long long)e->token, (long long)e->head,
			 (long long)e->element, (long long)e->slot);
	if (e->has_input)
		snprintf(input, sizeof input, ": input %s 0x%0*x (%.9g)%s", name_or(c->input_dtype),
			 (int)(2 * fp8kv_dtype_size(c->input_dtype)), (unsigned)e->input_bits,
			 (double)e->input, "");
	if (e->scaled && !scale) {
		size_t l = strlen(input);
		snprintf(input + l, sizeof input - l, " / scale %.9g (0x%08x)", (double)e->scale,
			 (unsigned)fbits(e->scale));
	}
	if (scale && e->has_oracle)
		snprintf(buf, n, "%s: expected %.9g (0x%08llx), got %.9g (0x%08llx), oracle scale %.9g",
			 where, (double)ffrom((uint32_t)e->expected), (unsigned long long)e->expected,
			 (double)ffrom((uint32_t)e->got), (unsigned long long)e->got,
			 (double)ffrom(e->oracle));
	else if (scale)
		snprintf(buf, n, "%s: expected %.9g (0x%08llx), got %.9g (0x%08llx)", where,
			 (double)ffrom((uint32_t)e->expected), (unsigned long long)e->expected,
			 (double)ffrom((uint32_t)e->got), (unsigned long long)e->got);
	else if (e->has_oracle)
		snprintf(buf, n, "%s%s: expected 0x%0*llx, got 0x%0*llx, oracle 0x%0*x", where, input,
			 hexw, (unsigned long long)e->expected, hexw, (unsigned long long)e->got, hexw,
			 (unsigned)e->oracle);
	else
		snprintf(buf, n, "%s%s: expected 0x%0*llx, got 0x%0*llx", where, input, hexw,
			 (unsigned long long)e->expected, hexw, (unsigned long long)e->got);
}

void cache_diff_report(const cache_case *c, const cache_diff *d, int max_lines, char *buf, size_t n)
{
	size_t l;
	char line[512];
	if (!n)
		return;
	cache_case_describe(c, buf, n);
	l = strlen(buf);
	snprintf(buf + l, n - l, "\n  %llu differences, %llu of %llu bytes differ",
		 (unsigned long long)d->differences, (unsigned long long)d->bytes_differing,
		 (unsigned long long)d->bytes_compared);
	for (int i = 0; i < d->reported && i < max_lines; i++) {
		cache_diff_format(c, &d->e[i], line, sizeof line);
		l = strlen(buf);
		snprintf(buf + l, n - l, "\n  %s", line);
	}
}
