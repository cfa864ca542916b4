/* SPDX-License-Identifier: MIT */
/*
 * fuzz_harness.c - the libFuzzer target's harness: reporting, the input reader,
 * element values, buffers and 128-bit spans, and the entry points
 * (fuzz.h maps the files of the fuzz target).
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

fp8kv_backend *cpu;

/* ------------------------------------------------------------ reporting */

const char *current_op = "start";
const fp8kv_cache_write *current_desc; /* printed on failure */
const char *tolerated;                 /* FP8KV_FUZZ_TOLERATE */
int verbose;                           /* FP8KV_FUZZ_VERBOSE: print each descriptor */

void dump_desc(const fp8kv_cache_write *d)
{
	fprintf(stderr,
		"*** descriptor: input_dtype %d cache_dtype %d num_tokens %lld num_heads %lld "
		"head_dim_k %lld head_dim_v %lld\n"
		"***   key strides %lld %lld, value strides %lld %lld\n"
		"***   num_blocks %lld block_size %lld key_cache strides %lld %lld %lld, "
		"value_cache strides %lld %lld %lld\n"
		"***   slot_type %d swa %s swa_type %d swa_mapping_len %lld scale_mode %d "
		"overflow %d scale_cache strides %lld %lld %lld\n"
		"***   pointers: key %p value %p key_cache %p value_cache %p slots %p k_scale %p "
		"v_scale %p k_scale_cache %p v_scale_cache %p overflow_count %p nan_count %p "
		"k_amax %p v_amax %p\n",
		(int)d->input_dtype, (int)d->cache_dtype, (long long)d->num_tokens,
		(long long)d->num_heads, (long long)d->head_dim_k, (long long)d->head_dim_v,
		(long long)d->key_stride_token, (long long)d->key_stride_head,
		(long long)d->value_stride_token, (long long)d->value_stride_head,
		(long long)d->num_blocks, (long long)d->block_size,
		(long long)d->key_cache_stride_block, (long long)d->key_cache_stride_slot,
		(long long)d->key_cache_stride_head, (long long)d->value_cache_stride_block,
		(long long)d->value_cache_stride_slot, (long long)d->value_cache_stride_head,
		(int)d->slot_type, d->swa_mapping ? "yes" : "no", (int)d->swa_type,
		(long long)d->swa_mapping_len, (int)d->scale_mode, (int)d->overflow,
		(long long)d->scale_cache_stride_block, (long long)d->scale_cache_stride_slot,
		(long long)d->scale_cache_stride_head, d->key, d->value, d->key_cache,
		d->value_cache, d->slot_mapping, (const void *)d->k_scale, (const void *)d->v_scale,
		(void *)d->k_scale_cache, (void *)d->v_scale_cache, (void *)d->overflow_count,
		(void *)d->nan_count, (void *)d->k_amax, (void *)d->v_amax);
}

void fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "\n*** fp8kv fuzz: %s: ", current_op);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n*** last_error: '%s'\n", fp8kv_last_error());
	if (current_desc)
		dump_desc(current_desc);
	abort();
}


/* Keys: nan-count-copy (nan_count not raised for plain-copy caches),
 * erange-message (the ERANGE message does not name the first token),
 * init-overflow (do not feed fp8kv_cache_write_init sizes whose products
 * overflow), head-stride-overflow (with num_heads 1, keep the unused head
 * strides small enough that stride * element size fits in int64),
 * overlap-span-overflow (skip descriptors with a cache stride * extent past
 * INT64_MAX, which lib/overlap.c's test multiplies), work-overflow
 * (skip descriptors whose num_tokens * num_heads * (head_dim_k + head_dim_v)
 * passes INT64_MAX, which the CPU backend computes). */
int tolerate(const char *key)
{
	const size_t n = strlen(key);
	for (const char *p = tolerated; p && *p;) {
		const char *end = strchr(p, ',');
		const size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == n && !memcmp(p, key, n))
			return 1;
		p = end ? end + 1 : p + len;
	}
	return 0;
}

/* Every call: OK with "", or an error code with a message. */
void check_status(fp8kv_status st, const char *call)
{
	const char *msg = fp8kv_last_error();
	REQUIRE(msg != NULL, "%s: fp8kv_last_error() is NULL", call);
	if (st == FP8KV_OK) {
		REQUIRE(msg[0] == '\0', "%s: FP8KV_OK, but fp8kv_last_error() is '%s'", call, msg);
		return;
	}
	REQUIRE(st >= FP8KV_EINVAL && st <= FP8KV_ENOMEM, "%s: status %d is not an fp8kv_status",
		call, (int)st);
	REQUIRE(msg[0] != '\0', "%s: status %d (%s) with an empty fp8kv_last_error()", call,
		(int)st, fp8kv_strerror(st));
	REQUIRE(strlen(msg) < 4096, "%s: message not terminated?", call);
}

/* ---------------------------------------------------------------- input */


uint8_t u8(fz *f)
{
	if (!f->n)
		return 0;
	f->n--;
	return *f->p++;
}

/* little-endian; one read per statement, so the byte order is fixed */
uint16_t u16(fz *f)
{
	const uint16_t lo = u8(f);
	return (uint16_t)(lo | u8(f) << 8);
}

uint32_t u32(fz *f)
{
	const uint32_t lo = u16(f);
	return lo | (uint32_t)u16(f) << 16;
}

uint64_t u64(fz *f)
{
	const uint64_t lo = u32(f);
	return lo | (uint64_t)u32(f) << 32;
}

/* true with probability k/256; exhausted input (zeros) takes the common path */
int rare(fz *f, unsigned k)
{
	return u8(f) >= 256u - k;
}

const int64_t edge_i64[] = {
	0, 1, -1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 63, 64, 127, 128, 255, 256, 1023, 4096,
	65535, 65536, INT32_MAX, (int64_t)INT32_MAX + 1, UINT32_MAX, (int64_t)1 << 32,
	(int64_t)1 << 40, (int64_t)1 << 48, (int64_t)1 << 56, (int64_t)1 << 61, (int64_t)1 << 62,
	((int64_t)1 << 62) + 1, INT64_MAX / 2, INT64_MAX / 2 + 1, INT64_MAX / 3, INT64_MAX / 3 + 1,
	INT64_MAX / 4, INT64_MAX / 4 + 1, INT64_MAX / 8, INT64_MAX - 1, INT64_MAX, INT64_MIN,
	INT64_MIN + 1, -2, -256, INT32_MIN, -((int64_t)1 << 32), -((int64_t)1 << 62),
};
const size_t num_edge_i64 = COUNT(edge_i64);


int64_t edge(fz *f)
{
	return edge_i64[u8(f) % COUNT(edge_i64)];
}

/* a mutated int64: a small change, an edge, raw bits, a product, a negation */
int64_t bend(fz *f, int64_t v)
{
	uint64_t u = (uint64_t)v;
	switch (u8(f) % 6) {
	case 0: return (int64_t)(u + (uint64_t)(int64_t)(int8_t)u8(f));
	case 1: return edge(f);
	case 2: return (int64_t)u64(f);
	case 3: return (int64_t)(u * (uint64_t)(u8(f) % 8 + 2));
	case 4: return (int64_t)(0 - u);
	default: return (int64_t)(u + (uint64_t)edge(f));
	}
}

float bits_f32(uint32_t u)
{
	float x;
	memcpy(&x, &u, sizeof x);
	return x;
}

uint32_t f32_bits(float x)
{
	uint32_t u;
	memcpy(&u, &x, sizeof u);
	return u;
}

const uint32_t edge_f32_bits[] = {
	0x00000000u, 0x80000000u, 0x3F800000u, 0xBF800000u, 0x3F000000u, 0x40000000u,
	0x00000001u, 0x80000001u, 0x00400000u, 0x00800000u, 0x007FFFFFu, 0x7F7FFFFFu,
	0xFF7FFFFFu, 0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFC00000u, 0x7F800001u,
	0x43E00000u, /* 448 */ 0x43E80000u, /* 464 */ 0x43E80001u, 0x43700000u, /* 240 */
	0x43780000u, /* 248 */ 0x47600000u, /* 57344 */ 0x47700000u, /* 61440 */
	0x3B124925u, /* 1/448 */ 0x40400000u, 0x3DCCCCCDu, 0x0DA24260u, 0x7149F2CAu,
	0x3A800000u, /* 2^-10 */ 0x3B000000u, 0x3C000000u, 0x37800000u, /* 2^-16 */
	0x38000000u, 0x35800000u, /* 2^-20 */ 0x33800000u, 0x3F7FFFFFu, 0x3F800001u,
};
const size_t num_edge_f32_bits = COUNT(edge_f32_bits);

/* fp32 values with specials and format edges likely */
float interesting_f32(fz *f)
{
	const uint8_t k = u8(f);
	if (k < 128)
		return bits_f32(edge_f32_bits[k % COUNT(edge_f32_bits)] ^
				(k & 64 ? 0x80000000u : 0u));
	if (k < 192) { /* near an FP8 threshold, a few ulps off */
		const uint32_t b = edge_f32_bits[u8(f) % COUNT(edge_f32_bits)];
		return bits_f32(b + (uint32_t)(int32_t)(int8_t)u8(f));
	}
	return bits_f32(u32(f));
}

/* ------------------------------------------------ dtypes and indices */

int is_wide(int t)
{
	return t == FP8KV_F32 || t == FP8KV_F16 || t == FP8KV_BF16;
}

int is_known(int t)
{
	return t >= 0 && t <= FP8KV_INT8;
}

int misaligned(const void *p, size_t a)
{
	return a > 1 && ((uintptr_t)p % a) != 0;
}

size_t index_bytes(fp8kv_index_type t)
{
	return t == FP8KV_INDEX_INT32 ? 4 : 8;
}

int64_t load_index(const void *base, int64_t i, fp8kv_index_type t)
{
	if (t == FP8KV_INDEX_INT32) {
		int32_t v;
		memcpy(&v, (const uint8_t *)base + 4 * i, 4);
		return v;
	}
	int64_t v;
	memcpy(&v, (const uint8_t *)base + 8 * i, 8);
	return v;
}

void store_index(void *base, int64_t i, fp8kv_index_type t, int64_t v)
{
	if (t == FP8KV_INDEX_INT32) {
		const int32_t w = (int32_t)v;
		memcpy((uint8_t *)base + 4 * i, &w, 4);
	} else {
		memcpy((uint8_t *)base + 8 * i, &v, 8);
	}
}

/* fp8kv_dtype values, mostly valid */
fp8kv_dtype pick_dtype(fz *f, int wide)
{
	const uint8_t k = u8(f);
	if (k < 230)
		return wide ? (fp8kv_dtype)(k % 3) : (fp8kv_dtype)(3 + k % 4);
	if (k < 250)
		return (fp8kv_dtype)(k % 9 - 1); /* -1 .. 7 */
	return (fp8kv_dtype)(int32_t)u32(f);
}

int pick_enum(fz *f, int n)
{
	const uint8_t k = u8(f);
	if (k < 240)
		return k % n;
	return k < 250 ? (int)(k % 5) - 1 + n : (int)(int32_t)u32(f);
}

/* ------------------------------------------ element values of the inputs */

uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* n elements of dtype t (or raw bytes for an unknown dtype) */
void fill_elements(uint8_t *dst, size_t bytes, fp8kv_dtype t, uint64_t seed, int style)
{
	uint64_t s = seed;
	const size_t es = fp8kv_dtype_size(t) ? fp8kv_dtype_size(t) : 1;
	for (size_t i = 0; i + es <= bytes; i += es) {
		const uint64_t r = splitmix(&s);
		uint32_t b;
		switch (style) {
		case 0: /* magnitudes around the FP8 ranges */
			b = (uint32_t)(r >> 63) << 31 | (uint32_t)(100 + (r >> 8) % 60) << 23 |
			    ((uint32_t)(r >> 32) & 0x7FFFFFu);
			break;
		case 1: /* the edge table */
			b = edge_f32_bits[(r >> 8) % COUNT(edge_f32_bits)] ^ (uint32_t)(r >> 63) << 31;
			break;
		default: /* anything */
			b = (uint32_t)r;
			break;
		}
		if ((r & 0xFF) == 0x17)
			b = 0x7FC00000u | (uint32_t)(r >> 9 & 0x803FFFFFu); /* NaN */
		switch (es) {
		case 4: memcpy(dst + i, &b, 4); break;
		case 2: {
			/* bf16: the top half; f16: its own bits so subnormals appear */
			uint16_t h = t == FP8KV_F16 && style != 1 ? (uint16_t)(r >> 16)
								   : (uint16_t)(b >> 16);
			memcpy(dst + i, &h, 2);
			break;
		}
		default: dst[i] = (uint8_t)b; break;
		}
	}
	for (size_t i = bytes - bytes % es; i < bytes; i++)
		dst[i] = (uint8_t)splitmix(&s);
}

/* ------------------------------------------------------------ buffers */


void buf_alloc(buf *b, size_t size, size_t shift, uint8_t fill)
{
	b->size = size;
	b->shift = shift;
	b->mem = malloc(size + shift ? size + shift : 1);
	b->copy = malloc(size + shift ? size + shift : 1);
	if (!b->mem || !b->copy)
		abort();
	memset(b->mem, fill, size + shift);
}

void *buf_ptr(const buf *b)
{
	return b->mem ? b->mem + b->shift : NULL;
}

void buf_snapshot(buf *b)
{
	if (b->mem)
		memcpy(b->copy, b->mem, b->size + b->shift);
}

int buf_unchanged(const buf *b)
{
	return !b->mem || !memcmp(b->copy, b->mem, b->size + b->shift);
}

void buf_free(buf *b)
{
	free(b->mem);
	free(b->copy);
	memset(b, 0, sizeof *b);
}

/* --------------------------------------------------- spans, in 128 bits */



span span_of(int rank, const int64_t *extent, const int64_t *stride)
{
	span s = {0, 0};
	for (int i = 0; i < rank; i++) {
		if (stride[i] < 0)
			s.negative = 1;
		/* an extent < 1 is rejected anyway; it spans nothing */
		i128 term = extent[i] < 1 ? 0 : ((i128)extent[i] - 1) * stride[i];
		if (term > BIG)
			term = BIG;
		if (term < -BIG)
			term = -BIG;
		if (term > 0)
			s.max += term;
	}
	return s;
}

/* bytes of the span: (max + 1) * elem */
i128 span_bytes(span s, size_t elem)
{
	return (s.max + 1) * (i128)elem;
}


/* ------------------------------------------------------------- the target */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* hermetic: no modules, no backend chosen by the environment */
	unsetenv("FP8KV_MODULE_PATH");
	unsetenv("FP8KV_BACKEND");
	tolerated = getenv("FP8KV_FUZZ_TOLERATE");
	verbose = getenv("FP8KV_FUZZ_VERBOSE") != NULL;
	if (fp8kv_backend_open("cpu", &cpu) != FP8KV_OK) {
		fprintf(stderr, "cannot open the cpu backend: %s\n", fp8kv_last_error());
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz f = {data, size};
	const int ops = 1 + u8(&f) % 3;
	for (int i = 0; i < ops && (i == 0 || f.n > 0); i++) {
		const uint8_t op = u8(&f);
		switch (op % 16) {
		case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7:
			fuzz_cache_write(&f);
			break;
		case 8: case 9: fuzz_quantize(&f, 0); break;
		case 10: fuzz_quantize(&f, 1); break;
		case 11: fuzz_amax(&f); break;
		case 12: fuzz_check_slots(&f); break;
		case 13: case 14: fuzz_scalars(&f); break;
		default:
			if (!tolerate("init-overflow"))
				fuzz_init_sizes(&f);
			else
				fuzz_scalars(&f);
			break;
		}
	}
	return 0;
}
