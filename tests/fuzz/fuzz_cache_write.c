/* SPDX-License-Identifier: MIT */
/*
 * fuzz_cache_write.c - libFuzzer target for the public API on the "cpu"
 * backend: fp8kv_reshape_and_cache above all, and fp8kv_quantize,
 * dequantize, amax, check_slots, from_float/to_float and the small helpers.
 *
 * Built by `make fuzz` (tests/hardening.mk) with clang
 * -fsanitize=fuzzer,address,undefined, the library's sources compiled into
 * the binary with the same flags.  Every input is a little program: a few
 * operations, each reading its arguments from the bytes.  Descriptors start
 * from fp8kv_cache_write_init() and are then bent: any size or stride set to
 * a small change, a value from a table of edges (0, -1, 2^31, 2^62,
 * INT64_MAX...) or raw bits; dtypes, scale modes, overflow policies and
 * index types outside their enums; slots negative, out of range or huge;
 * scales 0, negative, NaN, Inf, subnormal; pointers NULL or misaligned.
 *
 * The library cannot know how large a buffer is, so the harness makes sure
 * that whatever it calls with is safe IF the library accepts it:
 *  - every buffer is allocated at exactly the size the descriptor spans
 *    (so AddressSanitizer sees a one-element overrun), computed with 128-bit
 *    arithmetic;
 *  - when a span is too large for the budget (or has a negative stride), the
 *    slots that would write are turned into padding (-1), so an accepted
 *    call touches nothing but the slot and sliding-window maps;
 *  - num_tokens and counts past the budget are only passed when the header
 *    promises a rejection for another reason ("definite rejection": NULL,
 *    negative stride, size < 1, misalignment, a byte extent past 2^64, an
 *    unsupported dtype pair, an enum out of range); otherwise they shrink.
 *
 * What is checked, after every call (abort() with a message on violation):
 *  - the status is FP8KV_OK, or an error code with a non-empty
 *    fp8kv_last_error() (and "" after FP8KV_OK);
 *  - a definite rejection is rejected; a rejected call changed no byte;
 *    inputs are never written;
 *  - an accepted call did exactly what the header says, byte for byte: the
 *    caches, the TOKEN_HEAD scale caches, the counters and amax outputs are
 *    recomputed here from section 5 and 7 of fp8kv.h with a reference FP8
 *    encoder written from the format definitions (not the library's
 *    fp8_convert.h); FP8KV_ERANGE exactly when a slot is out of range,
 *    naming the first such token; two cache elements at one address are an
 *    overlap the library should have refused;
 *  - quantize/dequantize/amax/check_slots/from_float/to_float/suggest_scale
 *    against the same reference.
 *
 * Known disagreements can be tolerated while they are open, so that the
 * fuzzer gets past them: FP8KV_FUZZ_TOLERATE=key[,key...] in the
 * environment, keys listed at tolerate() below.  FP8KV_FUZZ_VERBOSE=1
 * prints every descriptor and its status (to read a reproducer).
 */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fp8kv.h"
#include "fuzz.h"

/* ---------------------------------------------------- the cache write */

/* The layouts of a descriptor, as the header defines them. */
typedef struct layouts {
	span key, value, key_cache, value_cache, scales;
} layouts;

static layouts layouts_of(const fp8kv_cache_write *d, int64_t tokens)
{
	layouts l;
	const int64_t ke[3] = {tokens, d->num_heads, d->head_dim_k},
		      ks[3] = {d->key_stride_token, d->key_stride_head, 1};
	const int64_t ve[3] = {tokens, d->num_heads, d->head_dim_v},
		      vs[3] = {d->value_stride_token, d->value_stride_head, 1};
	const int64_t kce[4] = {d->num_blocks, d->block_size, d->num_heads, d->head_dim_k},
		      kcs[4] = {d->key_cache_stride_block, d->key_cache_stride_slot,
				d->key_cache_stride_head, 1};
	const int64_t vce[4] = {d->num_blocks, d->block_size, d->num_heads, d->head_dim_v},
		      vcs[4] = {d->value_cache_stride_block, d->value_cache_stride_slot,
				d->value_cache_stride_head, 1};
	const int64_t se[3] = {d->num_blocks, d->block_size, d->num_heads},
		      ss[3] = {d->scale_cache_stride_block, d->scale_cache_stride_slot,
			       d->scale_cache_stride_head};
	l.key = span_of(3, ke, ks);
	l.value = span_of(3, ve, vs);
	l.key_cache = span_of(4, kce, kcs);
	l.value_cache = span_of(4, vce, vcs);
	l.scales = span_of(3, se, ss);
	return l;
}

/*
 * Reasons the header gives for a rejection that no backend may skip.  Not
 * every rejection (the overlap test is conservative by design), only those
 * that leave no doubt.
 */
static const char *definite_reject(const fp8kv_cache_write *d)
{
	if (!is_known(d->input_dtype) || !is_known(d->cache_dtype))
		return "dtype out of the enum";
	if (!is_wide(d->input_dtype))
		return "input dtype not f32/f16/bf16";
	if (d->cache_dtype != d->input_dtype && !fp8kv_dtype_is_fp8(d->cache_dtype))
		return "cache neither the input dtype nor FP8";
	if ((unsigned)d->scale_mode > FP8KV_SCALE_TOKEN_HEAD)
		return "scale_mode out of the enum";
	if (d->scale_mode != FP8KV_SCALE_ONE && !fp8kv_dtype_is_fp8(d->cache_dtype))
		return "a scale mode other than ONE without an FP8 cache";
	if (fp8kv_dtype_is_fp8(d->cache_dtype) && (unsigned)d->overflow > FP8KV_NONSATURATING)
		return "overflow out of the enum";
	if ((unsigned)d->slot_type > FP8KV_INDEX_INT32)
		return "slot_type out of the enum";
	if (d->swa_mapping && (unsigned)d->swa_type > FP8KV_INDEX_INT32)
		return "swa_type out of the enum";
	if (d->num_tokens < 0 || d->num_heads < 1 || d->head_dim_k < 1 || d->head_dim_v < 1 ||
	    d->num_blocks < 1 || d->block_size < 1)
		return "a size < 1";
	if (d->swa_mapping && d->swa_mapping_len < 1)
		return "swa_mapping_len < 1";
	if (!d->key_cache || !d->value_cache)
		return "NULL cache";
	if (d->num_tokens > 0 && (!d->key || !d->value || !d->slot_mapping))
		return "NULL input or slot_mapping";
	const int scaled = d->scale_mode == FP8KV_SCALE_TENSOR || d->scale_mode == FP8KV_SCALE_HEAD;
	const int dynamic = d->scale_mode == FP8KV_SCALE_TOKEN_HEAD;
	if (scaled && (!d->k_scale || !d->v_scale))
		return "NULL k_scale/v_scale";
	if (dynamic && (!d->k_scale_cache || !d->v_scale_cache))
		return "NULL scale cache";
	const size_t in = fp8kv_dtype_size(d->input_dtype), cs = fp8kv_dtype_size(d->cache_dtype);
	if (misaligned(d->key_cache, cs) || misaligned(d->value_cache, cs))
		return "misaligned cache";
	if (d->num_tokens > 0 &&
	    (misaligned(d->key, in) || misaligned(d->value, in) ||
	     misaligned(d->slot_mapping, index_bytes(d->slot_type))))
		return "misaligned input or slot_mapping";
	if (d->swa_mapping && misaligned(d->swa_mapping, index_bytes(d->swa_type)))
		return "misaligned swa_mapping";
	if (scaled && (misaligned(d->k_scale, 4) || misaligned(d->v_scale, 4)))
		return "misaligned k_scale/v_scale";
	if (dynamic && (misaligned(d->k_scale_cache, 4) || misaligned(d->v_scale_cache, 4)))
		return "misaligned scale cache";
	if (misaligned(d->overflow_count, 8) || misaligned(d->nan_count, 8) ||
	    misaligned(d->k_amax, 4) || misaligned(d->v_amax, 4))
		return "misaligned optional output";
	if (d->key_stride_token < 0 || d->key_stride_head < 0 || d->value_stride_token < 0 ||
	    d->value_stride_head < 0 || d->key_cache_stride_block < 0 ||
	    d->key_cache_stride_slot < 0 || d->key_cache_stride_head < 0 ||
	    d->value_cache_stride_block < 0 || d->value_cache_stride_slot < 0 ||
	    d->value_cache_stride_head < 0)
		return "a negative stride";
	if (dynamic && (d->scale_cache_stride_block < 0 || d->scale_cache_stride_slot < 0 ||
			d->scale_cache_stride_head < 0))
		return "a negative scale-cache stride";
	const layouts l = layouts_of(d, d->num_tokens);
	const i128 two64 = (i128)1 << 64;
	if ((d->num_tokens > 0 && (span_bytes(l.key, in) >= two64 || span_bytes(l.value, in) >= two64)) ||
	    span_bytes(l.key_cache, cs) >= two64 || span_bytes(l.value_cache, cs) >= two64 ||
	    (dynamic && span_bytes(l.scales, 4) >= two64))
		return "a byte extent past 2^64";
	return NULL;
}

/* a cache dimension of extent > 1 whose stride * extent passes INT64_MAX
 * (lib/overlap.c's test multiplies them; see the report) */
static int stride_times_extent_overflows(const fp8kv_cache_write *d)
{
	const int64_t e[4] = {d->num_blocks, d->block_size, d->num_heads, 0};
	const int64_t s[3][3] = {
		{d->key_cache_stride_block, d->key_cache_stride_slot, d->key_cache_stride_head},
		{d->value_cache_stride_block, d->value_cache_stride_slot,
		 d->value_cache_stride_head},
		{d->scale_cache_stride_block, d->scale_cache_stride_slot,
		 d->scale_cache_stride_head},
	};
	int64_t p;
	for (int l = 0; l < 3; l++)
		for (int i = 0; i < 3; i++)
			if (e[i] > 1 && __builtin_mul_overflow(s[l][i], e[i], &p))
				return 1;
	return 0;
}

/* how a token resolves (fp8kv.h section 7) */
enum { T_PAD, T_RANGE, T_WRITE };

static int resolve(const fp8kv_cache_write *d, int64_t t, int64_t num_slots, int64_t *slot)
{
	int64_t s = load_index(d->slot_mapping, t, d->slot_type);
	if (s < 0)
		return T_PAD;
	if (d->swa_mapping) {
		if (s >= d->swa_mapping_len)
			return T_RANGE;
		s = load_index(d->swa_mapping, s, d->swa_type);
		if (s < 0)
			return T_PAD;
	}
	*slot = s;
	return s < num_slots ? T_WRITE : T_RANGE;
}

/* element address -> which (block, offset, head, dim) wrote it, to catch an
 * accepted layout under which two elements share an address */
typedef struct owner {
	int64_t addr, id;
} owner;

static int by_addr(const void *a, const void *b)
{
	const owner *x = a, *y = b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static void check_owners(owner *o, size_t n, const char *what)
{
	if (n < 2)
		return;
	qsort(o, n, sizeof *o, by_addr);
	for (size_t i = 1; i < n; i++)
		REQUIRE(o[i].addr != o[i - 1].addr || o[i].id == o[i - 1].id,
			"accepted a %s layout under which two elements share element offset %lld "
			"(element ids %lld and %lld)",
			what, (long long)o[i].addr, (long long)o[i - 1].id, (long long)o[i].id);
}

typedef struct cw_bufs {
	buf key, value, key_cache, value_cache, slots, swa, k_scale, v_scale;
	buf k_scale_cache, v_scale_cache, overflow_count, nan_count, k_amax, v_amax;
} cw_bufs;

#define CW_NBUF (int)(sizeof(cw_bufs) / sizeof(buf))

/* the expected result of an accepted write, applied to the snapshots */
static void expect_write(const fp8kv_cache_write *d, cw_bufs *b, int64_t *first_bad)
{
	const int64_t H = d->num_heads, num_slots = d->num_blocks * d->block_size;
	const int fp8 = fp8kv_dtype_is_fp8(d->cache_dtype);
	const fmt f = fmt_of(d->cache_dtype);
	const int saturate = d->overflow == FP8KV_SATURATE;
	const size_t in = fp8kv_dtype_size(d->input_dtype), cs = fp8kv_dtype_size(d->cache_dtype);
	uint64_t overflows = 0, nans = 0;
	/* more heads than MAX_HEADS: nothing is written (all padding) */
	const size_t amax_n = H <= MAX_HEADS ? (size_t)H : 1;
	float *amax[2] = {calloc(amax_n, sizeof(float)), calloc(amax_n, sizeof(float))};
	size_t n_owned[3] = {0, 0, 0}, cap_owned[3] = {0, 0, 0};
	owner *owned[3] = {NULL, NULL, NULL};
	if (!amax[0] || !amax[1])
		abort();
	*first_bad = -1;

	for (int64_t t = 0; t < d->num_tokens; t++) {
		int64_t slot = 0;
		const int r = resolve(d, t, num_slots, &slot);
		if (r == T_RANGE && *first_bad < 0)
			*first_bad = t;
		if (r != T_WRITE)
			continue;
		const int64_t block = slot / d->block_size, off = slot % d->block_size;
		for (int side = 0; side < 2; side++) {
			const uint8_t *src = side ? d->value : d->key;
			const int64_t D = side ? d->head_dim_v : d->head_dim_k;
			const int64_t st = side ? d->value_stride_token : d->key_stride_token;
			const int64_t sh = side ? d->value_stride_head : d->key_stride_head;
			const int64_t cb = side ? d->value_cache_stride_block : d->key_cache_stride_block;
			const int64_t csl = side ? d->value_cache_stride_slot : d->key_cache_stride_slot;
			const int64_t ch = side ? d->value_cache_stride_head : d->key_cache_stride_head;
			buf *cache = side ? &b->value_cache : &b->key_cache;
			const float *scale = side ? d->v_scale : d->k_scale;
			buf *scache = side ? &b->v_scale_cache : &b->k_scale_cache;
			for (int64_t h = 0; h < H; h++) {
				const int64_t row = t * st + h * sh, crow = block * cb + off * csl + h * ch;
				float s = 1.0f, ra = 0.0f;
				int scaled = 0;
				for (int64_t e = 0; e < D; e++)
					ra = fmaxf(ra, finite_abs(load_elem(src, row + e, d->input_dtype)));
				amax[side][h] = fmaxf(amax[side][h], ra);
				if (fp8 && d->scale_mode == FP8KV_SCALE_TENSOR) {
					s = scale[0];
					scaled = 1;
				} else if (fp8 && d->scale_mode == FP8KV_SCALE_HEAD) {
					s = scale[h];
					scaled = 1;
				} else if (fp8 && d->scale_mode == FP8KV_SCALE_TOKEN_HEAD) {
					const float q = ra / fmt_max(f);
					s = ra == 0.0f ? 1.0f : q < 0x1p-126f ? 0x1p-126f : q;
					scaled = 1;
					const int64_t at = block * d->scale_cache_stride_block +
							   off * d->scale_cache_stride_slot +
							   h * d->scale_cache_stride_head;
					memcpy(scache->copy + scache->shift + 4 * at, &s, 4);
					if (n_owned[2] == cap_owned[2]) {
						cap_owned[2] = cap_owned[2] ? 2 * cap_owned[2] : 256;
						owned[2] = realloc(owned[2], cap_owned[2] * sizeof(owner));
						if (!owned[2])
							abort();
					}
					owned[2][n_owned[2]++] = (owner){
						at * 2 + side, (block * d->block_size + off) * H + h};
				}
				if (n_owned[side] + (size_t)D > cap_owned[side]) {
					while (n_owned[side] + (size_t)D > cap_owned[side])
						cap_owned[side] = cap_owned[side] ? 2 * cap_owned[side] : 1024;
					owned[side] = realloc(owned[side], cap_owned[side] * sizeof(owner));
					if (!owned[side])
						abort();
				}
				for (int64_t e = 0; e < D; e++) {
					uint8_t *dst = cache->copy + cache->shift + (size_t)(crow + e) * cs;
					owned[side][n_owned[side]++] = (owner){
						crow + e, ((block * d->block_size + off) * H + h) * D + e};
					if (!fp8) {
						memcpy(dst, src + (size_t)(row + e) * in, in);
						if (isnan(load_elem(src, row + e, d->input_dtype)) &&
						    !tolerate("nan-count-copy"))
							nans++;
						continue;
					}
					const float x = load_elem(src, row + e, d->input_dtype);
					const float y = scaled ? ref_div(x, s) : x;
					int over;
					*dst = (uint8_t)ref_encode(y, f, saturate, &over);
					overflows += over && isfinite(x);
					nans += isnan(x) != 0;
				}
			}
		}
	}
	check_owners(owned[0], n_owned[0], "key_cache");
	check_owners(owned[1], n_owned[1], "value_cache");
	/* the scale caches: k and v are separate arrays, the id keeps the side */
	check_owners(owned[2], n_owned[2], "scale_cache");
	for (int i = 0; i < 3; i++)
		free(owned[i]);

	if (d->overflow_count) {
		uint64_t v;
		memcpy(&v, b->overflow_count.copy, 8);
		v += overflows;
		memcpy(b->overflow_count.copy, &v, 8);
	}
	if (d->nan_count) {
		uint64_t v;
		memcpy(&v, b->nan_count.copy, 8);
		v += nans;
		memcpy(b->nan_count.copy, &v, 8);
	}
	for (int side = 0; side < 2; side++) {
		buf *a = side ? &b->v_amax : &b->k_amax;
		if (!(side ? d->v_amax : d->k_amax))
			continue;
		for (int64_t h = 0; h < H; h++) {
			float old;
			memcpy(&old, a->copy + a->shift + 4 * h, 4);
			if (amax[side][h] > old)
				memcpy(a->copy + a->shift + 4 * h, &amax[side][h], 4);
		}
	}
	free(amax[0]);
	free(amax[1]);
}

static const char *buf_names[CW_NBUF] = {
	"key", "value", "key_cache", "value_cache", "slot_mapping", "swa_mapping",
	"k_scale", "v_scale", "k_scale_cache", "v_scale_cache", "overflow_count",
	"nan_count", "k_amax", "v_amax",
};

/* the first byte where a buffer and its expected image differ */
static void compare_buf(const buf *b, const char *name, const char *why)
{
	if (!b->mem)
		return;
	for (size_t i = 0; i < b->size + b->shift; i++)
		REQUIRE(b->mem[i] == b->copy[i],
			"%s: %s byte %zu (of %zu) is 0x%02X, expected 0x%02X", why, name, i,
			b->size + b->shift, b->mem[i], b->copy[i]);
}

void fuzz_cache_write(fz *f)
{
	current_op = "fp8kv_reshape_and_cache";
	fp8kv_cache_write d;

	/* shape */
	int64_t T = u8(f) % 17;
	if (rare(f, 24))
		T = u16(f) % (MAX_TOKENS + 1);
	const int64_t H = 1 + u8(f) % 4, DK = 1 + (rare(f, 32) ? u8(f) : u8(f) % 32),
		      DV = 1 + (rare(f, 32) ? u8(f) : u8(f) % 32), NB = 1 + u8(f) % 6,
		      BS = 1 + u8(f) % 16;
	const int layout_pick = u8(f);
	fp8kv_cache_write_init(&d, T, H, DK, DV, NB, BS,
			       layout_pick < 250 ? (fp8kv_cache_layout)(layout_pick & 1)
						 : (fp8kv_cache_layout)(layout_pick - 248));

	/* types and modes */
	d.input_dtype = pick_dtype(f, 1);
	d.cache_dtype = rare(f, 40) ? d.input_dtype : pick_dtype(f, 0);
	d.scale_mode = (fp8kv_scale_mode)pick_enum(f, 4);
	d.overflow = (fp8kv_overflow)pick_enum(f, 2);
	d.slot_type = (fp8kv_index_type)pick_enum(f, 2);
	const int want_swa = rare(f, 48);
	d.swa_type = rare(f, 64) ? d.slot_type : (fp8kv_index_type)pick_enum(f, 2);
	d.swa_mapping_len = want_swa ? 1 + u8(f) % 64 : 0;

	/* bends: any size or stride */
	int64_t *fields[] = {
		&d.num_tokens, &d.num_heads, &d.head_dim_k, &d.head_dim_v,
		&d.key_stride_token, &d.key_stride_head, &d.value_stride_token,
		&d.value_stride_head, &d.num_blocks, &d.block_size,
		&d.key_cache_stride_block, &d.key_cache_stride_slot, &d.key_cache_stride_head,
		&d.value_cache_stride_block, &d.value_cache_stride_slot,
		&d.value_cache_stride_head, &d.swa_mapping_len, &d.scale_cache_stride_block,
		&d.scale_cache_stride_slot, &d.scale_cache_stride_head,
	};
	const int nbend = rare(f, 112) ? 1 + u8(f) % 4 : 0;
	for (int i = 0; i < nbend; i++) {
		int64_t *field = fields[u8(f) % COUNT(fields)];
		*field = bend(f, *field);
	}

	/* pointers: which are NULL, which misaligned, which outputs wanted */
	const uint16_t nulls = rare(f, 24) ? u16(f) : 0;
	const uint16_t shifts = rare(f, 16) ? u16(f) : 0;
	const uint8_t outputs = u8(f);
	const uint64_t seed = u64(f);
	const int style = u8(f) % 3;
	const float scale_a = interesting_f32(f), scale_b = interesting_f32(f);
	const int scale_style = u8(f) % 4;
	const int slot_style = u8(f);
	const uint64_t counter0 = rare(f, 64) ? u64(f) : 0;
	const float amax0 = rare(f, 64) ? fabsf(interesting_f32(f)) : 0.0f;
	void *stream = rare(f, 8) ? (void *)&d : NULL;

	cw_bufs b;
	memset(&b, 0, sizeof b);
	const int64_t tokens_alloc = d.num_tokens > MAX_TOKENS ? MAX_TOKENS
				   : d.num_tokens > 0	   ? d.num_tokens
							   : 0;
	const size_t in = fp8kv_dtype_size(d.input_dtype), cs = fp8kv_dtype_size(d.cache_dtype);
	const size_t in_elem = in ? in : 4, cs_elem = cs ? cs : 1;
	const layouts l = layouts_of(&d, d.num_tokens > 0 ? d.num_tokens : 1);
	const int dynamic = d.scale_mode == FP8KV_SCALE_TOKEN_HEAD;
	int unsafe = 0; /* an accepted call could touch memory we do not have */

	/* size a buffer from a span: exact when it fits, else capped + unsafe */
	size_t sizes[4];
	const span *spans[4] = {&l.key, &l.value, &l.key_cache, &l.value_cache};
	const size_t elems[4] = {in_elem, in_elem, cs_elem, cs_elem};
	for (int i = 0; i < 4; i++) {
		const i128 need = span_bytes(*spans[i], elems[i]);
		if (spans[i]->negative || need > BUDGET) {
			unsafe = 1;
			sizes[i] = 64;
		} else {
			sizes[i] = (size_t)need;
		}
	}
	if (d.num_tokens <= 0)
		sizes[0] = sizes[1] = in_elem;
	size_t scache_size = 16;
	if (dynamic) {
		const i128 need = span_bytes(l.scales, 4);
		if (l.scales.negative || need > BUDGET)
			unsafe = 1;
		else
			scache_size = (size_t)need;
	}
	const int64_t heads_alloc = d.num_heads > 0 && d.num_heads <= MAX_HEADS ? d.num_heads : 1;
	if (d.num_heads > MAX_HEADS)
		unsafe = 1;

	/* shifts: misalign one pointer by 1..7 bytes */
	size_t shift[CW_NBUF] = {0};
	if (shifts)
		shift[shifts % CW_NBUF] = 1 + (shifts >> 8) % 7;

	buf_alloc(&b.key, sizes[0], shift[0], 0);
	buf_alloc(&b.value, sizes[1], shift[1], 0);
	fill_elements(b.key.mem + shift[0], sizes[0], d.input_dtype, seed, style);
	fill_elements(b.value.mem + shift[1], sizes[1], d.input_dtype, seed ^ 0xABCDEF, style);
	buf_alloc(&b.key_cache, sizes[2], shift[2], POISON);
	buf_alloc(&b.value_cache, sizes[3], shift[3], POISON);
	buf_alloc(&b.slots, (size_t)tokens_alloc * index_bytes(d.slot_type), shift[4], 0);
	const int64_t swa_alloc = want_swa ? (d.swa_mapping_len > 0 && d.swa_mapping_len <= MAX_SWA
						     ? d.swa_mapping_len
						     : MAX_SWA)
					   : 0;
	if (want_swa)
		buf_alloc(&b.swa, (size_t)swa_alloc * index_bytes(d.swa_type), shift[5], 0);
	const size_t scale_n = d.scale_mode == FP8KV_SCALE_HEAD ? (size_t)heads_alloc : 1;
	buf_alloc(&b.k_scale, 4 * scale_n, shift[6], 0);
	buf_alloc(&b.v_scale, 4 * scale_n, shift[7], 0);
	for (size_t i = 0; i < scale_n; i++) {
		float ks, vs;
		switch (scale_style) {
		case 0: ks = scale_a, vs = scale_b; break;
		case 1: ks = vs = 1.0f; break;
		case 2: ks = ldexpf(1.0f, (int)(i % 9) - 4), vs = scale_a; break;
		default: ks = scale_b * (float)(i + 1), vs = scale_a / (float)(i + 1); break;
		}
		memcpy(b.k_scale.mem + shift[6] + 4 * i, &ks, 4);
		memcpy(b.v_scale.mem + shift[7] + 4 * i, &vs, 4);
	}
	if (dynamic || (outputs & 1)) {
		buf_alloc(&b.k_scale_cache, scache_size, shift[8], POISON);
		buf_alloc(&b.v_scale_cache, scache_size, shift[9], POISON);
	}
	if (outputs & 2) {
		buf_alloc(&b.overflow_count, 8, shift[10], 0);
		memcpy(b.overflow_count.mem + shift[10], &counter0, 8);
	}
	if (outputs & 4) {
		buf_alloc(&b.nan_count, 8, shift[11], 0);
		memcpy(b.nan_count.mem + shift[11], &counter0, 8);
	}
	if (outputs & 8) {
		buf_alloc(&b.k_amax, 4 * (size_t)heads_alloc, shift[12], 0);
		buf_alloc(&b.v_amax, 4 * (size_t)heads_alloc, shift[13], 0);
		for (int64_t h = 0; h < heads_alloc; h++) {
			const float a = h % 2 ? amax0 : 0.0f;
			memcpy(b.k_amax.mem + shift[12] + 4 * h, &a, 4);
			memcpy(b.v_amax.mem + shift[13] + 4 * h, &amax0, 4);
		}
	}

	/* pointers into the descriptor, then the NULLs */
	d.key = buf_ptr(&b.key);
	d.value = buf_ptr(&b.value);
	d.key_cache = buf_ptr(&b.key_cache);
	d.value_cache = buf_ptr(&b.value_cache);
	d.slot_mapping = buf_ptr(&b.slots);
	d.swa_mapping = want_swa ? buf_ptr(&b.swa) : NULL;
	d.k_scale = buf_ptr(&b.k_scale);
	d.v_scale = buf_ptr(&b.v_scale);
	d.k_scale_cache = buf_ptr(&b.k_scale_cache);
	d.v_scale_cache = buf_ptr(&b.v_scale_cache);
	d.overflow_count = buf_ptr(&b.overflow_count);
	d.nan_count = buf_ptr(&b.nan_count);
	d.k_amax = buf_ptr(&b.k_amax);
	d.v_amax = buf_ptr(&b.v_amax);
	const void **ptrs[CW_NBUF] = {
		&d.key, &d.value, (const void **)&d.key_cache, (const void **)&d.value_cache,
		&d.slot_mapping, &d.swa_mapping, (const void **)&d.k_scale,
		(const void **)&d.v_scale, (const void **)&d.k_scale_cache,
		(const void **)&d.v_scale_cache, (const void **)&d.overflow_count,
		(const void **)&d.nan_count, (const void **)&d.k_amax, (const void **)&d.v_amax,
	};
	for (int i = 0; i < CW_NBUF; i++)
		if (nulls & (1u << i))
			*ptrs[i] = NULL;

	/* slots and the sliding-window map */
	const int num_slots_ok = d.num_blocks > 0 && d.block_size > 0 &&
				 d.num_blocks <= INT64_MAX / d.block_size;
	const int64_t num_slots = num_slots_ok ? d.num_blocks * d.block_size : 1;
	uint64_t s = seed ^ 0x51075107u;
	for (int64_t t = 0; t < tokens_alloc; t++) {
		const uint64_t r = splitmix(&s);
		int64_t v;
		switch ((slot_style + (int)(r & 7)) % 10) {
		case 0: v = -1; break;
		case 1: v = -(int64_t)(r >> 40) - 1; break;
		case 2: v = num_slots; break;
		case 3: v = edge_i64[(r >> 8) % num_edge_i64]; break;
		case 4: v = t % (want_swa ? d.swa_mapping_len > 0 ? d.swa_mapping_len : 1 : num_slots); break;
		default:
			v = (int64_t)((r >> 8) % (want_swa && swa_alloc
							  ? (uint64_t)swa_alloc + 2
							  : (uint64_t)num_slots + (slot_style & 1)));
			break;
		}
		store_index(b.slots.mem + shift[4], t, d.slot_type, v);
	}
	for (int64_t i = 0; i < swa_alloc; i++) {
		const uint64_t r = splitmix(&s);
		int64_t v = (int64_t)((r >> 8) % ((uint64_t)num_slots + 1));
		if ((r & 15) == 0)
			v = -1;
		else if ((r & 15) == 1)
			v = edge_i64[(r >> 8) % num_edge_i64];
		store_index(b.swa.mem + shift[5], i, d.swa_type, v);
	}

	/* too many tokens to allocate, or per-head outputs we could not
	 * allocate: passed only when a rejection is promised anyway */
	if (!definite_reject(&d) && d.num_tokens > MAX_TOKENS)
		d.num_tokens = tokens_alloc;
	if (!definite_reject(&d) && d.num_heads > MAX_HEADS)
		d.k_amax = d.v_amax = NULL; /* read for every head, written or not */
	const char *reason = definite_reject(&d);
	const int definite = reason != NULL;
	current_desc = &d;

	/* make an accepted call safe: tokens whose maps we do not have, or whose
	 * rows we could not allocate, become padding */
	if (!definite && d.num_tokens > 0 && d.slot_mapping) {
		for (int64_t t = 0; t < d.num_tokens; t++) {
			int64_t v = load_index(d.slot_mapping, t, d.slot_type), slot;
			if (v < 0)
				continue;
			if (d.swa_mapping && v < d.swa_mapping_len && v >= swa_alloc) {
				store_index((void *)d.slot_mapping, t, d.slot_type, -1);
				continue;
			}
			/* with no usable slot count, every slot might write */
			if (unsafe && (!num_slots_ok || resolve(&d, t, num_slots, &slot) == T_WRITE))
				store_index((void *)d.slot_mapping, t, d.slot_type, -1);
		}
	}

	/* with one head, the head strides are never used, and validation takes
	 * any value; the CPU backend still multiplies them by the element size
	 * (see the report) */
	if (d.num_heads == 1 && tolerate("head-stride-overflow")) {
		int64_t *hs[] = {&d.key_stride_head, &d.value_stride_head, &d.key_cache_stride_head,
				 &d.value_cache_stride_head};
		for (size_t i = 0; i < COUNT(hs); i++)
			if (*hs[i] > INT64_MAX / 8)
				*hs[i] %= (int64_t)1 << 40;
	}

	buf *all = (buf *)&b;
	int64_t work;
	if ((tolerate("overlap-span-overflow") && stride_times_extent_overflows(&d)) ||
	    (tolerate("work-overflow") &&
	     (__builtin_add_overflow(d.head_dim_k, d.head_dim_v, &work) ||
	      __builtin_mul_overflow(work, d.num_heads, &work) ||
	      __builtin_mul_overflow(work, d.num_tokens, &work)))) {
		for (int i = 0; i < CW_NBUF; i++)
			buf_free(&all[i]);
		current_desc = NULL;
		return;
	}
	for (int i = 0; i < CW_NBUF; i++)
		buf_snapshot(&all[i]);
	if (verbose)
		dump_desc(&d);

	const fp8kv_status st = fp8kv_reshape_and_cache(cpu, &d, stream);
	if (verbose)
		fprintf(stderr, "*** -> status %d '%s'%s\n", (int)st, fp8kv_last_error(),
			unsafe ? " (writing tokens made padding)" : "");
	check_status(st, "fp8kv_reshape_and_cache");

	/* inputs are const */
	const int inputs[] = {0, 1, 4, 5, 6, 7};
	for (size_t i = 0; i < COUNT(inputs); i++)
		REQUIRE(buf_unchanged(&all[inputs[i]]), "the call wrote into its input %s",
			buf_names[inputs[i]]);

	if (st != FP8KV_OK && st != FP8KV_ERANGE) {
		REQUIRE(st == FP8KV_EINVAL || st == FP8KV_ENOTSUP || st == FP8KV_ENOMEM,
			"a rejected descriptor gave status %d", (int)st);
		for (int i = 0; i < CW_NBUF; i++)
			REQUIRE(buf_unchanged(&all[i]), "rejected (%d), but %s changed", (int)st,
				buf_names[i]);
	} else {
		REQUIRE(!definite, "accepted (status %d) a descriptor the header rejects: %s",
			(int)st, reason);
		REQUIRE(num_slots_ok, "accepted num_blocks * block_size past INT64_MAX");
		int64_t first_bad;
		expect_write(&d, &b, &first_bad);
		REQUIRE((st == FP8KV_ERANGE) == (first_bad >= 0),
			"status %d, but the first out-of-range token is %lld", (int)st,
			(long long)first_bad);
		if (st == FP8KV_ERANGE && !tolerate("erange-message")) {
			char want[48];
			snprintf(want, sizeof want, "token %lld", (long long)first_bad);
			const char *at = strstr(fp8kv_last_error(), want);
			REQUIRE(at && !(at[strlen(want)] >= '0' && at[strlen(want)] <= '9'),
				"FP8KV_ERANGE message does not name token %lld", (long long)first_bad);
		}
		for (int i = 0; i < CW_NBUF; i++)
			compare_buf(&all[i], buf_names[i], "accepted write");
	}
	current_desc = NULL;
	for (int i = 0; i < CW_NBUF; i++)
		buf_free(&all[i]);
}
