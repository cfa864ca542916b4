/* SPDX-License-Identifier: MIT */
/*
 * write_case.c - a grouped or MLA case's parameters, description, layout
 * (strides and the arena of its outputs) and generation: slots, inputs
 * (write_case_values.c draws them), poison and starting outputs.  See
 * write_case.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_case_internal.h"
#include "float_bits.h"
#include "write_case.h"
#include "write_case_internal.h"

/* ------------------------------------------------------------------ errors */

static _Thread_local char error_text[256];

const char *write_case_error(void)
{
	return error_text;
}

int write_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(error_text, sizeof error_text, fmt, ap);
	va_end(ap);
	return -1;
}

/* -------------------------------------------------------------- parameters */

void write_case_init(write_case *c)
{
	*c = (write_case){
		.kind = WRITE_CASE_GROUPED, .input_dtype = FP8KV_BF16, .cache_dtype = FP8KV_E4M3FN,
		.overflow = FP8KV_SATURATE, .layout = WRITE_CASE_NHD, .num_tokens = 5,
		.num_heads = 2, .head_dim_k = 64, .head_dim_v = 64, .block_size = 4,
		.slot_type = FP8KV_INDEX_INT64, .swa_type = FP8KV_INDEX_INT64,
		.want_overflow_count = 1, .want_nan_count = 1, .want_amax = 1, .special = 1,
		.seed = 1, .rule = FP8KV_GROUP_E8M0_RCEIL, .group_size = 32,
		.rounding = FP8KV_ROUND_NEAREST_EVEN, .k_global = 1.0f, .v_global = 1.0f,
		.scale = 1.0f,
	};
}

void write_case_init_mla(write_case *c, write_case_kind kind, int64_t rank, int64_t pe)
{
	write_case_init(c);
	c->kind = kind;
	c->num_heads = 1;
	c->head_dim_k = kind == WRITE_CASE_MLA_DS ? ORACLE_DS_MLA_RANK : rank;
	c->head_dim_v = kind == WRITE_CASE_MLA_DS ? ORACLE_DS_MLA_PE : pe;
	c->want_amax = 0;
}

const char *write_case_kind_name(write_case_kind kind)
{
	switch (kind) {
	case WRITE_CASE_GROUPED: return "grouped";
	case WRITE_CASE_MLA_PLAIN: return "mla_plain";
	case WRITE_CASE_MLA_DS: return "mla_ds";
	}
	return "?";
}

const char *write_case_rule_name(fp8kv_group_rule rule)
{
	switch (rule) {
	case FP8KV_GROUP_F32: return "f32";
	case FP8KV_GROUP_E8M0_FLOOR: return "e8m0_floor";
	case FP8KV_GROUP_E8M0_RCEIL: return "e8m0_rceil";
	case FP8KV_GROUP_NVFP4: return "nvfp4";
	}
	return "?";
}

static const char *layout_name(write_case_layout l)
{
	static const char *const names[] = {"NHD", "HND", "strided", "page"};
	return (unsigned)l < 4 ? names[l] : "?";
}

void write_case_describe(const write_case *c, char *buf, size_t n)
{
	char what[200];
	const char *in = fp8kv_dtype_name(c->input_dtype), *out = fp8kv_dtype_name(c->cache_dtype);
	if (c->kind == WRITE_CASE_GROUPED)
		snprintf(what, sizeof what,
			 "grouped %s G=%lld %s->%s%s%s div=%g floor=%g g=%g/%g I=%lld/%lld H=%lld "
			 "Dk=%lld Dv=%lld",
			 write_case_rule_name(c->rule), (long long)c->group_size, in ? in : "?",
			 out ? out : "?",
			 c->rounding == FP8KV_ROUND_TOWARD_ZERO ? " trunc" : "",
			 c->overflow == FP8KV_SATURATE ? " sat" : " nonsat", (double)c->divisor,
			 (double)c->scale_floor, (double)c->k_global, (double)c->v_global,
			 (long long)c->k_interleave, (long long)c->v_interleave,
			 (long long)c->num_heads, (long long)c->head_dim_k, (long long)c->head_dim_v);
	else
		snprintf(what, sizeof what, "%s %s->%s%s%s rank=%lld pe=%lld%s", write_case_kind_name(c->kind),
			 in ? in : "?", out ? out : "?",
			 c->overflow == FP8KV_SATURATE ? " sat" : " nonsat",
			 c->scaled ? " scaled" : "", (long long)c->head_dim_k,
			 (long long)c->head_dim_v, c->divisor != 0.0f ? " divisor" : "");
	snprintf(buf, n,
		 "%s %s T=%lld bs=%lld nb=%lld slots=%s swa=%s pad=%.2f oor=%lld dup=%lld "
		 "special=%d outputs=%d%d%d seed=%llu",
		 what, layout_name(c->layout), (long long)c->num_tokens, (long long)c->block_size,
		 (long long)c->num_blocks, c->slot_type == FP8KV_INDEX_INT32 ? "int32" : "int64",
		 c->use_swa ? (c->swa_type == FP8KV_INDEX_INT32 ? "int32" : "int64") : "no",
		 c->padding_fraction, (long long)c->num_out_of_range, (long long)c->num_duplicates,
		 c->special, c->want_overflow_count, c->want_nan_count, c->want_amax,
		 (unsigned long long)c->seed);
	if (c->kind == WRITE_CASE_MLA_PLAIN && c->scaled) {
		const size_t l = strlen(buf);
		snprintf(buf + l, n - l, " scale=%.9g", (double)c->scale);
	}
}

void write_case_free(write_case *c)
{
	cache_case_free(&c->slots);
	void *owned[] = {c->key, c->value, c->arena_init, c->k_amax_init, c->v_amax_init,
			 c->owner_row, c->owner_pos, c->owner_scale, c->rows};
	for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
		free(owned[i]);
	c->key = c->value = NULL;
	c->arena_init = NULL;
	c->k_amax_init = c->v_amax_init = NULL;
	c->owner_row = c->owner_pos = NULL;
	c->owner_scale = NULL;
	c->rows = NULL;
	c->num_rows = 0;
}

/* ------------------------------------------------------------------ layout */

static size_t align_up(size_t x, size_t a)
{
	return (x + a - 1) / a * a;
}

int64_t write_row_width(const write_case *c, int kv)
{
	const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
	return c->cache_dtype == FP8KV_E2M1 ? D / 2 : D;
}

/* Scale strides of one side: [block][slot][head][group] (NHD), or
 * [block][head][slot][group] (HND), with gaps when padded; interleaved per
 * I tokens when I > 0. */
static oracle_scale_layout scale_strides(int64_t H, int64_t bs, int64_t groups, int hnd,
					 int padded, int64_t I)
{
	oracle_scale_layout l = {0};
	const int64_t gap = padded ? 1 : 0;
	if (I > 0) { /* [block][head][slot / I][group][slot % I] */
		l.interleave = I;
		l.stride_interleave = 1;
		l.stride_group = I;
		l.stride_slot = I * groups + gap;
		l.stride_head = (bs + I - 1) / I * l.stride_slot + 2 * gap;
		l.stride_block = H * l.stride_head + 3 * gap;
	} else if (hnd) {
		l.stride_group = 1;
		l.stride_slot = groups + gap;
		l.stride_head = bs * l.stride_slot + gap;
		l.stride_block = H * l.stride_head + 2 * gap;
	} else {
		l.stride_group = 1;
		l.stride_head = groups + gap;
		l.stride_slot = H * l.stride_head + 2 * gap;
		l.stride_block = bs * l.stride_slot + 3 * gap;
	}
	return l;
}

/* Elements from a scale array's start to the end of its last element. */
static int64_t scale_extent(const oracle_scale_layout *l, int64_t nb, int64_t bs, int64_t H,
			    int64_t groups)
{
	int64_t top = 0;
	for (int64_t off = 0; off < bs; off++) {
		const int64_t i = oracle_group_scale_index(l, nb - 1, off, H - 1, groups - 1);
		top = i > top ? i : top;
	}
	return top + 1;
}

static int64_t cache_extent(int64_t nb, int64_t bs, int64_t H, int64_t W, int64_t sb, int64_t ss,
			    int64_t sh)
{
	return (nb - 1) * sb + (bs - 1) * ss + (H - 1) * sh + W;
}

/* The grouped case's strides and arena. */
static void grouped_layout(write_case *c)
{
	const int64_t H = c->num_heads, bs = c->block_size, nb = c->num_blocks;
	const int64_t Wk = write_row_width(c, 0), Wv = write_row_width(c, 1);
	const int64_t Gk = c->head_dim_k / c->group_size, Gv = c->head_dim_v / c->group_size;
	const int64_t Gmax = Gk > Gv ? Gk : Gv;
	const size_t sb = (size_t)c->scale_bytes;
	const int hnd = c->layout != WRITE_CASE_NHD;

	if (c->layout == WRITE_CASE_PAGE) {
		/* one page per block: K codes, K scales, V codes, V scales, HND */
		c->k_scales = scale_strides(H, bs, Gk, 1, 0, c->k_interleave);
		c->v_scales = scale_strides(H, bs, Gv, 1, 0, c->v_interleave);
		const size_t kc = (size_t)(H * bs * Wk);
		const size_t ks = (size_t)c->k_scales.stride_block * sb; /* one block's scales */
		const size_t vc = (size_t)(H * bs * Wv);
		const size_t vs = (size_t)c->v_scales.stride_block * sb;
		c->kc_at = 0;
		c->ks_at = align_up(kc, 4);
		c->vc_at = align_up(c->ks_at + ks, 4);
		c->vs_at = align_up(c->vc_at + vc, 4);
		const int64_t page = (int64_t)align_up(c->vs_at + vs, 4);
		c->kc_stride_slot = Wk, c->kc_stride_head = bs * Wk, c->kc_stride_block = page;
		c->vc_stride_slot = Wv, c->vc_stride_head = bs * Wv, c->vc_stride_block = page;
		c->k_scales.stride_block = c->v_scales.stride_block = page / (int64_t)sb;
		c->arena_bytes = (size_t)(nb * page);
		return;
	}
	if (c->layout == WRITE_CASE_STRIDED) {
		/* key cache HND and value cache NHD, gaps after rows, slots, heads
		 * and blocks; scale arrays likewise, with gaps */
		c->kc_stride_slot = Wk + 2;
		c->kc_stride_head = bs * (Wk + 2) + 3;
		c->kc_stride_block = H * c->kc_stride_head + 5;
		c->vc_stride_head = Wv + 1;
		c->vc_stride_slot = H * (Wv + 1) + 2;
		c->vc_stride_block = bs * c->vc_stride_slot + 4;
		c->k_scales = scale_strides(H, bs, Gk, 0, 1, c->k_interleave);
		c->v_scales = scale_strides(H, bs, Gv, 1, 1, c->v_interleave);
	} else {
		/* the init function's arrays: one set of strides (for the larger
		 * head dim) for both sides, unless their interleaves differ */
		const int64_t bk = hnd ? Wk : H * Wk, bv = hnd ? Wv : H * Wv;
		c->kc_stride_slot = bk, c->kc_stride_head = hnd ? bs * Wk : Wk;
		c->kc_stride_block = bs * H * Wk;
		c->vc_stride_slot = bv, c->vc_stride_head = hnd ? bs * Wv : Wv;
		c->vc_stride_block = bs * H * Wv;
		const int64_t ki = hnd ? c->k_interleave : 0, vi = hnd ? c->v_interleave : 0;
		c->k_scales = scale_strides(H, bs, ki == vi ? Gmax : Gk, hnd, 0, ki);
		c->v_scales = scale_strides(H, bs, ki == vi ? Gmax : Gv, hnd, 0, vi);
	}
	const int64_t ek = cache_extent(nb, bs, H, Wk, c->kc_stride_block, c->kc_stride_slot,
					c->kc_stride_head);
	const int64_t ev = cache_extent(nb, bs, H, Wv, c->vc_stride_block, c->vc_stride_slot,
					c->vc_stride_head);
	const int64_t esk = scale_extent(&c->k_scales, nb, bs, H, Gk);
	const int64_t esv = scale_extent(&c->v_scales, nb, bs, H, Gv);
	/* the arrays apart, 64 poisoned bytes between them and after */
	c->kc_at = 0;
	c->vc_at = align_up((size_t)ek, 64) + 64;
	c->ks_at = align_up(c->vc_at + (size_t)ev, 64) + 64;
	c->vs_at = align_up(c->ks_at + (size_t)esk * sb, 64) + 64;
	c->arena_bytes = align_up(c->vs_at + (size_t)esv * sb, 64) + 64;
}

/* The MLA case's strides (in cache elements; DS: bytes) and arena. */
static void mla_layout(write_case *c)
{
	const int ds = c->kind == WRITE_CASE_MLA_DS;
	const int64_t E = ds ? ORACLE_DS_MLA_BYTES : c->head_dim_k + c->head_dim_v;
	const int padded = c->layout == WRITE_CASE_STRIDED || c->layout == WRITE_CASE_PAGE;
	const size_t esz = fp8kv_dtype_size(c->cache_dtype);
	c->kc_stride_slot = E + (padded ? 4 : 0); /* multiples of 4 for DS */
	c->kc_stride_block = c->block_size * c->kc_stride_slot + (padded ? 8 : 0);
	c->kc_stride_head = 0;
	c->kc_at = 0;
	const int64_t extent = (c->num_blocks - 1) * c->kc_stride_block +
			       (c->block_size - 1) * c->kc_stride_slot + E;
	c->arena_bytes = align_up((size_t)extent * esz, 64) + 64;
}

/* Input strides and sizes; gaps hold garbage that must never be read. */
static void input_layout(write_case *c)
{
	const int64_t T = c->num_tokens > 0 ? c->num_tokens : 1, H = c->num_heads;
	const int64_t Dk = c->head_dim_k, Dv = c->head_dim_v;
	const int padded = c->layout == WRITE_CASE_STRIDED ||
			   (c->kind != WRITE_CASE_GROUPED && c->layout == WRITE_CASE_PAGE);
	if (!padded) {
		c->key_stride_head = Dk, c->key_stride_token = H * Dk;
		c->value_stride_head = Dv, c->value_stride_token = H * Dv;
		c->key_elems = (size_t)(T * H * Dk);
		c->value_elems = (size_t)(T * H * Dv);
	} else if (c->kind != WRITE_CASE_GROUPED) {
		c->key_stride_head = 0, c->key_stride_token = Dk + 3;
		c->value_stride_head = 0, c->value_stride_token = Dv + 5;
		c->key_elems = (size_t)(T * (Dk + 3));
		c->value_elems = (size_t)(T * (Dv + 5));
	} else {
		c->key_stride_token = Dk + 3;
		c->key_stride_head = (T + 1) * (Dk + 3);
		c->key_elems = (size_t)(H * (T + 1) * (Dk + 3));
		c->value_stride_head = Dv + 5;
		c->value_stride_token = H * (Dv + 5) + 7;
		c->value_elems = (size_t)(T * c->value_stride_token);
	}
}

/* ------------------------------------------------------------- generation */

int write_case_generate(write_case *c)
{
	write_case_free(c);
	error_text[0] = 0;
	const int grouped = c->kind == WRITE_CASE_GROUPED;
	if (c->input_dtype != FP8KV_F32 && c->input_dtype != FP8KV_F16 &&
	    c->input_dtype != FP8KV_BF16)
		return write_fail("input dtype %d is not f32/f16/bf16", (int)c->input_dtype);
	if (c->num_tokens < 0 || c->num_heads < 1 || c->head_dim_k < 1 || c->head_dim_v < 1 ||
	    c->block_size < 1 || c->num_blocks < 0 || (grouped && c->group_size < 1) ||
	    (!grouped && c->num_heads != 1))
		return write_fail("bad sizes");
	if (grouped && (c->head_dim_k % c->group_size || c->head_dim_v % c->group_size))
		return write_fail("the group size does not divide the head dims");
	if (c->cache_dtype == FP8KV_E2M1 && (c->head_dim_k % 2 || c->head_dim_v % 2))
		return write_fail("e2m1 rows of odd length");
	c->scale_bytes = c->rule == FP8KV_GROUP_F32 ? 4 : 1;

	/* the slots, by cache_case_slots.c, from a case of the same sizes */
	cache_case_init(&c->slots);
	c->slots.num_tokens = c->num_tokens;
	c->slots.num_heads = c->num_heads;
	c->slots.block_size = c->block_size;
	c->slots.num_blocks = c->num_blocks;
	c->slots.slot_type = c->slot_type;
	c->slots.swa_type = c->swa_type;
	c->slots.use_swa = c->use_swa;
	c->slots.padding_fraction = c->padding_fraction;
	c->slots.num_out_of_range = c->num_out_of_range;
	c->slots.num_duplicates = c->num_duplicates;
	c->slots.seed = c->seed;
	if (case_generate_slots(&c->slots))
		return write_fail("slots: %s", cache_case_error());
	c->num_blocks = c->slots.num_blocks;

	if (grouped)
		grouped_layout(c);
	else
		mla_layout(c);
	input_layout(c);

	const size_t isz = fp8kv_dtype_size(c->input_dtype);
	const size_t H = (size_t)c->num_heads;
	c->key = case_calloc(c->key_elems, isz);
	c->value = case_calloc(c->value_elems, isz);
	c->arena_init = case_calloc(c->arena_bytes, 1);
	c->k_amax_init = case_calloc(H, sizeof(float));
	c->v_amax_init = case_calloc(H, sizeof(float));
	if (!c->key || !c->value || !c->arena_init || !c->k_amax_init || !c->v_amax_init) {
		write_case_free(c);
		return write_fail("out of memory");
	}
	if (write_case_values(c)) {
		write_case_free(c);
		return -1;
	}
	rng r;
	rng_seed(&r, c->seed, STREAM_POISON);
	for (size_t i = 0; i < c->arena_bytes; i++)
		c->arena_init[i] = (uint8_t)rng_next(&r);
	rng_seed(&r, c->seed, STREAM_INIT);
	static const float amax0[] = {0.25f, 1e-6f, 3.5f, 1e20f, 0x1p-140f, 100.0f};
	c->overflow_init = 0x100000000ull + rng_below(&r, 1000000) + 1;
	c->nan_init = 0x300000000ull + rng_below(&r, 1000000) + 1;
	for (size_t h = 0; h < H; h++) {
		c->k_amax_init[h] = amax0[rng_below(&r, sizeof amax0 / sizeof amax0[0])];
		c->v_amax_init[h] = amax0[rng_below(&r, sizeof amax0 / sizeof amax0[0])];
	}
	return 0;
}
