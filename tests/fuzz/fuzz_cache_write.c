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

#define MAX_TOKENS 512       /* slot_mapping entries we allocate at most */
#define MAX_SWA 1024         /* swa_mapping entries we allocate at most */
#define MAX_HEADS 4096       /* per-head arrays (k_scale, k_amax) */
#define BUDGET (256 << 10)   /* bytes per input, cache or scale-cache buffer */
#define MAX_FLAT 8192        /* elements of a flat conversion */
#define MAX_CHECK_SLOTS (1 << 20) /* num_slots given to fp8kv_check_slots */
#define POISON 0xA5

typedef __int128 i128;

static fp8kv_backend *cpu;

/* ------------------------------------------------------------ reporting */

static const char *current_op = "start";
static const fp8kv_cache_write *current_desc; /* printed on failure */
static const char *tolerated;                 /* FP8KV_FUZZ_TOLERATE */
static int verbose;                           /* FP8KV_FUZZ_VERBOSE: print each descriptor */

static void dump_desc(const fp8kv_cache_write *d)
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

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...)
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

#define REQUIRE(cond, ...)                                                               \
	do {                                                                             \
		if (!(cond))                                                             \
			fail(__VA_ARGS__);                                               \
	} while (0)

/* Keys: nan-count-copy (nan_count not raised for plain-copy caches),
 * erange-message (the ERANGE message does not name the first token),
 * init-overflow (do not feed fp8kv_cache_write_init sizes whose products
 * overflow), head-stride-overflow (with num_heads 1, keep the unused head
 * strides small enough that stride * element size fits in int64),
 * overlap-span-overflow (skip descriptors with a cache stride * extent past
 * INT64_MAX, which validate.c's overlap test multiplies), work-overflow
 * (skip descriptors whose num_tokens * num_heads * (head_dim_k + head_dim_v)
 * passes INT64_MAX, which the CPU backend computes). */
static int tolerate(const char *key)
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
static void check_status(fp8kv_status st, const char *call)
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

typedef struct fz {
	const uint8_t *p;
	size_t n;
} fz;

static uint8_t u8(fz *f)
{
	if (!f->n)
		return 0;
	f->n--;
	return *f->p++;
}

/* little-endian; one read per statement, so the byte order is fixed */
static uint16_t u16(fz *f)
{
	const uint16_t lo = u8(f);
	return (uint16_t)(lo | u8(f) << 8);
}

static uint32_t u32(fz *f)
{
	const uint32_t lo = u16(f);
	return lo | (uint32_t)u16(f) << 16;
}

static uint64_t u64(fz *f)
{
	const uint64_t lo = u32(f);
	return lo | (uint64_t)u32(f) << 32;
}

/* true with probability k/256; exhausted input (zeros) takes the common path */
static int rare(fz *f, unsigned k)
{
	return u8(f) >= 256u - k;
}

static const int64_t edge_i64[] = {
	0, 1, -1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 63, 64, 127, 128, 255, 256, 1023, 4096,
	65535, 65536, INT32_MAX, (int64_t)INT32_MAX + 1, UINT32_MAX, (int64_t)1 << 32,
	(int64_t)1 << 40, (int64_t)1 << 48, (int64_t)1 << 56, (int64_t)1 << 61, (int64_t)1 << 62,
	((int64_t)1 << 62) + 1, INT64_MAX / 2, INT64_MAX / 2 + 1, INT64_MAX / 3, INT64_MAX / 3 + 1,
	INT64_MAX / 4, INT64_MAX / 4 + 1, INT64_MAX / 8, INT64_MAX - 1, INT64_MAX, INT64_MIN,
	INT64_MIN + 1, -2, -256, INT32_MIN, -((int64_t)1 << 32), -((int64_t)1 << 62),
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int64_t edge(fz *f)
{
	return edge_i64[u8(f) % COUNT(edge_i64)];
}

/* a mutated int64: a small change, an edge, raw bits, a product, a negation */
static int64_t bend(fz *f, int64_t v)
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

static float bits_f32(uint32_t u)
{
	float x;
	memcpy(&x, &u, sizeof x);
	return x;
}

static uint32_t f32_bits(float x)
{
	uint32_t u;
	memcpy(&u, &x, sizeof u);
	return u;
}

static const uint32_t edge_f32_bits[] = {
	0x00000000u, 0x80000000u, 0x3F800000u, 0xBF800000u, 0x3F000000u, 0x40000000u,
	0x00000001u, 0x80000001u, 0x00400000u, 0x00800000u, 0x007FFFFFu, 0x7F7FFFFFu,
	0xFF7FFFFFu, 0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFC00000u, 0x7F800001u,
	0x43E00000u, /* 448 */ 0x43E80000u, /* 464 */ 0x43E80001u, 0x43700000u, /* 240 */
	0x43780000u, /* 248 */ 0x47600000u, /* 57344 */ 0x47700000u, /* 61440 */
	0x3B124925u, /* 1/448 */ 0x40400000u, 0x3DCCCCCDu, 0x0DA24260u, 0x7149F2CAu,
	0x3A800000u, /* 2^-10 */ 0x3B000000u, 0x3C000000u, 0x37800000u, /* 2^-16 */
	0x38000000u, 0x35800000u, /* 2^-20 */ 0x33800000u, 0x3F7FFFFFu, 0x3F800001u,
};

/* fp32 values with specials and format edges likely */
static float interesting_f32(fz *f)
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

/* ------------------------------------------ element values of the inputs */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* n elements of dtype t (or raw bytes for an unknown dtype) */
static void fill_elements(uint8_t *dst, size_t bytes, fp8kv_dtype t, uint64_t seed, int style)
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

/* --------------------------------------------- reference FP8 (independent) */

typedef struct fmt {
	int valid;
	int mbits, bias, fnuz, e5m2;
	int max_code; /* largest finite magnitude code */
} fmt;

static fmt fmt_of(int t)
{
	fmt f = {0, 0, 0, 0, 0, 0};
	switch (t) {
	case FP8KV_E4M3FN: f = (fmt){1, 3, 7, 0, 0, 0x7E}; break;
	case FP8KV_E4M3FNUZ: f = (fmt){1, 3, 8, 1, 0, 0x7F}; break;
	case FP8KV_E5M2: f = (fmt){1, 2, 15, 0, 1, 0x7B}; break;
	case FP8KV_E5M2FNUZ: f = (fmt){1, 2, 16, 1, 0, 0x7F}; break;
	}
	return f;
}

/* the value of a finite magnitude code, exactly */
static double mag_value(fmt f, int c)
{
	const int e = c >> f.mbits, m = c & ((1 << f.mbits) - 1);
	if (e == 0)
		return ldexp((double)m, 1 - f.bias - f.mbits);
	return ldexp((double)((1 << f.mbits) + m), e - f.bias - f.mbits);
}

static int nan_code(fmt f, int neg)
{
	return f.fnuz ? 0x80 : 0x7F | (neg ? 0x80 : 0);
}

/* the code of y (contract steps 2-4); *overflow: y was past the range
 * (finite and rounded past max, or infinite) */
static int ref_encode(float y, fmt f, int saturate, int *overflow)
{
	const int neg = signbit(y) != 0;
	*overflow = 0;
	if (isnan(y))
		return nan_code(f, neg);
	const double a = fabs((double)y);
	int over = isinf(y), c = 0;
	if (!over) {
		/* largest code at or below a */
		int lo = 0, hi = f.max_code;
		while (lo < hi) {
			const int mid = (lo + hi + 1) / 2;
			if (mag_value(f, mid) <= a)
				lo = mid;
			else
				hi = mid - 1;
		}
		c = lo;
		const double v = mag_value(f, c);
		if (a > v) {
			/* the next code up; past max, the virtual one an ulp above */
			const double next = c < f.max_code
						    ? mag_value(f, c + 1)
						    : v + ldexp(1.0, (c >> f.mbits) - f.bias - f.mbits);
			const double midpoint = (v + next) / 2; /* exact in double */
			if (a > midpoint || (a == midpoint && (c & 1)))
				c++;
		}
		over = c > f.max_code;
	}
	if (over) {
		*overflow = 1;
		if (saturate)
			return f.max_code | (neg ? 0x80 : 0);
		if (f.fnuz)
			return 0x80;
		return (f.e5m2 ? 0x7C : 0x7F) | (neg ? 0x80 : 0);
	}
	if (c == 0)
		return f.fnuz ? 0x00 : (neg ? 0x80 : 0x00);
	return c | (neg ? 0x80 : 0);
}

/*
 * x / s and x * s as the contract has them (fp8kv.h section 5, step 1): one
 * IEEE operation, but a NaN result carries the sign of x when x is NaN,
 * else sign(x) XOR sign(s), whatever the hardware did.
 */
static float nan_signed(float x, float s, float r)
{
	if (!isnan(r))
		return r;
	const int neg = isnan(x) ? signbit(x) != 0 : (signbit(x) != 0) != (signbit(s) != 0);
	return neg ? -NAN : NAN;
}

static float ref_div(float x, float s)
{
	return nan_signed(x, s, x / s);
}

static float ref_mul(float x, float s)
{
	return nan_signed(x, s, x * s);
}

/* decoded value; *is_nan for NaN codes, which keep the code's sign bit
 * (fp8kv.h: "sign kept for OCP"; for the fnuz NaN 0x80 the header names no
 * sign, and the checks below do not look at it) */
static double ref_decode(int code, fmt f, int *is_nan)
{
	const int neg = code >> 7, mag = code & 0x7F;
	*is_nan = 0;
	if (f.fnuz && code == 0x80) {
		*is_nan = 1;
		return -NAN;
	}
	if (f.e5m2 && mag == 0x7C)
		return neg ? -INFINITY : INFINITY;
	if (mag > f.max_code) {
		*is_nan = 1;
		return neg ? -NAN : NAN;
	}
	const double v = mag_value(f, mag);
	return neg ? -v : v;
}

static float fmt_max(fmt f)
{
	return (float)mag_value(f, f.max_code);
}

/* ------------------------------------------------- 16-bit floats, by hand */

static float load_f16(uint16_t h)
{
	const int s = h >> 15, e = (h >> 10) & 0x1F, m = h & 0x3FF;
	float v;
	if (e == 0x1F)
		v = m ? NAN : INFINITY;
	else if (e == 0)
		v = ldexpf((float)m, -24);
	else
		v = ldexpf((float)(1024 + m), e - 25);
	return s ? -v : v;
}

static float load_elem(const uint8_t *base, int64_t i, fp8kv_dtype t)
{
	if (t == FP8KV_F32) {
		float x;
		memcpy(&x, base + 4 * i, 4);
		return x;
	}
	uint16_t h;
	memcpy(&h, base + 2 * i, 2);
	return t == FP8KV_BF16 ? bits_f32((uint32_t)h << 16) : load_f16(h);
}

/* |x| when finite, else 0 */
static float finite_abs(float x)
{
	return isfinite(x) ? fabsf(x) : 0.0f;
}

/* x rounded to bf16 or f16 bits, nearest even; NaN: any NaN accepted */
static uint16_t round_bf16(float x)
{
	const uint32_t u = f32_bits(x);
	return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

static uint16_t round_f16(float x)
{
	const uint16_t sign = signbit(x) ? 0x8000 : 0;
	const double a = fabs((double)x);
	if (isnan(x))
		return sign | 0x7E00;
	if (isinf(x) || a >= 65520.0)
		return sign | 0x7C00;
	if (a < 0x1p-14) /* subnormal, or rounds up to the smallest normal */
		return sign | (uint16_t)nearbyint(a * 0x1p24);
	int e;
	const double m = frexp(a, &e); /* a = m * 2^e, m in [0.5, 1) */
	double mant = nearbyint((m * 2 - 1) * 1024);
	int ex = e - 1;
	if (mant == 1024) {
		mant = 0;
		ex++;
	}
	if (ex + 15 >= 31)
		return sign | 0x7C00;
	return sign | (uint16_t)((ex + 15) << 10 | (int)mant);
}

static int is_nan16(uint16_t h, fp8kv_dtype t)
{
	return t == FP8KV_BF16 ? (h & 0x7FFF) > 0x7F80 : (h & 0x7FFF) > 0x7C00;
}

/* ------------------------------------------------------------ buffers */

typedef struct buf {
	uint8_t *mem;     /* what malloc gave */
	size_t size;      /* bytes of the region */
	size_t shift;     /* misalignment added to the pointer handed out */
	uint8_t *copy;    /* the bytes before the call */
} buf;

static void buf_alloc(buf *b, size_t size, size_t shift, uint8_t fill)
{
	b->size = size;
	b->shift = shift;
	b->mem = malloc(size + shift ? size + shift : 1);
	b->copy = malloc(size + shift ? size + shift : 1);
	if (!b->mem || !b->copy)
		abort();
	memset(b->mem, fill, size + shift);
}

static void *buf_ptr(const buf *b)
{
	return b->mem ? b->mem + b->shift : NULL;
}

static void buf_snapshot(buf *b)
{
	if (b->mem)
		memcpy(b->copy, b->mem, b->size + b->shift);
}

static int buf_unchanged(const buf *b)
{
	return !b->mem || !memcmp(b->copy, b->mem, b->size + b->shift);
}

static void buf_free(buf *b)
{
	free(b->mem);
	free(b->copy);
	memset(b, 0, sizeof *b);
}

/* --------------------------------------------------- spans, in 128 bits */

#define BIG ((i128)1 << 100)

typedef struct span {
	int negative;  /* a stride < 0 */
	i128 max;      /* largest element offset (clamped near 2^100) */
} span;

static span span_of(int rank, const int64_t *extent, const int64_t *stride)
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
static i128 span_bytes(span s, size_t elem)
{
	return (s.max + 1) * (i128)elem;
}

/* ---------------------------------------------------- the cache write */

static int is_wide(int t)
{
	return t == FP8KV_F32 || t == FP8KV_F16 || t == FP8KV_BF16;
}

static int is_known(int t)
{
	return t >= 0 && t <= FP8KV_E5M2FNUZ;
}

static int misaligned(const void *p, size_t a)
{
	return a > 1 && ((uintptr_t)p % a) != 0;
}

static size_t index_bytes(fp8kv_index_type t)
{
	return t == FP8KV_INDEX_INT32 ? 4 : 8;
}

static int64_t load_index(const void *base, int64_t i, fp8kv_index_type t)
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

static void store_index(void *base, int64_t i, fp8kv_index_type t, int64_t v)
{
	if (t == FP8KV_INDEX_INT32) {
		const int32_t w = (int32_t)v;
		memcpy((uint8_t *)base + 4 * i, &w, 4);
	} else {
		memcpy((uint8_t *)base + 8 * i, &v, 8);
	}
}

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
 * (validate.c's overlap test multiplies them; see the report) */
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

/* fp8kv_dtype values, mostly valid */
static fp8kv_dtype pick_dtype(fz *f, int wide)
{
	const uint8_t k = u8(f);
	if (k < 230)
		return wide ? (fp8kv_dtype)(k % 3) : (fp8kv_dtype)(3 + k % 4);
	if (k < 250)
		return (fp8kv_dtype)(k % 9 - 1); /* -1 .. 7 */
	return (fp8kv_dtype)(int32_t)u32(f);
}

static int pick_enum(fz *f, int n)
{
	const uint8_t k = u8(f);
	if (k < 240)
		return k % n;
	return k < 250 ? (int)(k % 5) - 1 + n : (int)(int32_t)u32(f);
}

static void fuzz_cache_write(fz *f)
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
		case 3: v = edge_i64[(r >> 8) % COUNT(edge_i64)]; break;
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
			v = edge_i64[(r >> 8) % COUNT(edge_i64)];
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

/* ------------------------------------------------------- flat conversions */

static void fuzz_quantize(fz *f, int dequantize)
{
	current_op = dequantize ? "fp8kv_dequantize" : "fp8kv_quantize";
	const fp8kv_dtype wide = pick_dtype(f, 1), narrow = pick_dtype(f, 0);
	const fp8kv_dtype dst_t = dequantize ? wide : narrow, src_t = dequantize ? narrow : wide;
	fp8kv_scale_mode mode = (fp8kv_scale_mode)(rare(f, 32) ? pick_enum(f, 4) : u8(f) % 2);
	const fp8kv_overflow ovf = (fp8kv_overflow)pick_enum(f, 2);
	size_t count = u16(f) % MAX_FLAT;
	if (rare(f, 8))
		count = (size_t)edge(f);
	const float s = interesting_f32(f);
	const uint8_t nulls = rare(f, 24) ? u8(f) : 0, shifts = rare(f, 16) ? u8(f) : 0;
	const int want_counter = u8(f) & 1;
	const uint64_t counter0 = rare(f, 64) ? u64(f) : 0;
	const uint64_t seed = u64(f);
	const int style = u8(f) % 3;
	const size_t ss = fp8kv_dtype_size(src_t) ? fp8kv_dtype_size(src_t) : 1;
	const size_t ds = fp8kv_dtype_size(dst_t) ? fp8kv_dtype_size(dst_t) : 1;
	const size_t n_alloc = count <= MAX_FLAT ? count : MAX_FLAT;

	buf src = {0}, dst = {0}, scale = {0}, counter = {0};
	buf_alloc(&src, n_alloc * ss, shifts & 1 ? 1 + (shifts >> 4) % 3 : 0, 0);
	buf_alloc(&dst, n_alloc * ds, shifts & 2 ? 1 + (shifts >> 4) % 3 : 0, POISON);
	buf_alloc(&scale, 4, shifts & 4 ? 2 : 0, 0);
	buf_alloc(&counter, 8, shifts & 8 ? 4 : 0, 0);
	fill_elements(src.mem + src.shift, src.size, src_t, seed, style);
	memcpy(scale.mem + scale.shift, &s, 4);
	memcpy(counter.mem + counter.shift, &counter0, 8);

	void *dp = nulls & 1 ? NULL : buf_ptr(&dst);
	const void *sp = nulls & 2 ? NULL : buf_ptr(&src);
	const float *scp = nulls & 4 ? NULL : (const float *)buf_ptr(&scale);
	uint64_t *cp = want_counter ? (uint64_t *)buf_ptr(&counter) : NULL;

	/* a rejection the header promises: types, then pointers */
	int definite = !is_known(dst_t) || !is_known(src_t) || !fp8kv_dtype_is_fp8(narrow) ||
		       !is_wide(wide) ||
		       (mode != FP8KV_SCALE_ONE && mode != FP8KV_SCALE_TENSOR) ||
		       (!dequantize && (unsigned)ovf > FP8KV_NONSATURATING);
	if (count > 0)
		definite |= !dp || !sp || (mode == FP8KV_SCALE_TENSOR && !scp) ||
			    misaligned(dp, ds) || misaligned(sp, ss) ||
			    (mode == FP8KV_SCALE_TENSOR && misaligned(scp, 4)) ||
			    (!dequantize && cp && misaligned(cp, 8));
	if (count > MAX_FLAT && !definite) {
		count = n_alloc;
	}
	buf_snapshot(&src);
	buf_snapshot(&dst);
	buf_snapshot(&counter);

	const fp8kv_status st =
		dequantize ? fp8kv_dequantize(cpu, dp, dst_t, sp, src_t, count, mode, scp, NULL)
			   : fp8kv_quantize(cpu, dp, dst_t, sp, src_t, count, mode, scp, ovf, cp,
					    NULL);
	check_status(st, current_op);
	REQUIRE(buf_unchanged(&src), "the source changed");
	if (st != FP8KV_OK) {
		REQUIRE(st == FP8KV_EINVAL || st == FP8KV_ENOTSUP || st == FP8KV_ENOMEM,
			"rejected with status %d", (int)st);
		REQUIRE(buf_unchanged(&dst) && buf_unchanged(&counter),
			"rejected, but the output changed");
	} else {
		REQUIRE(!definite, "accepted arguments the header rejects");
		const float sc = mode == FP8KV_SCALE_TENSOR ? s : 1.0f;
		const fmt fm = fmt_of(narrow);
		uint64_t overflows = 0;
		for (size_t i = 0; i < count; i++) {
			if (!dequantize) {
				const float x = load_elem(src.mem + src.shift, (int64_t)i, src_t);
				int over;
				const float y = mode == FP8KV_SCALE_TENSOR ? ref_div(x, sc) : x;
				const int want = ref_encode(y, fm, ovf == FP8KV_SATURATE, &over);
				overflows += over && isfinite(x);
				REQUIRE(dst.mem[dst.shift + i] == want,
					"element %zu: x = %a (bits %08X), scale %a: code 0x%02X, "
					"expected 0x%02X",
					i, (double)x, f32_bits(x), (double)sc, dst.mem[dst.shift + i],
					want);
				continue;
			}
			int is_nan;
			const uint8_t code = src.mem[src.shift + i];
			const float x = (float)ref_decode(code, fm, &is_nan);
			const float y = mode == FP8KV_SCALE_TENSOR ? ref_mul(x, sc) : x;
			const uint8_t *out = dst.mem + dst.shift + i * ds;
			if (dst_t == FP8KV_F32) {
				float got;
				memcpy(&got, out, 4);
				REQUIRE(isnan(y) ? isnan(got) && (fm.fnuz || signbit(got) == signbit(y))
						 : f32_bits(got) == f32_bits(y),
					"element %zu: code 0x%02X * %a gave %a, expected %a", i, code,
					(double)sc, (double)got, (double)y);
			} else {
				uint16_t got;
				memcpy(&got, out, 2);
				const uint16_t want = dst_t == FP8KV_BF16 ? round_bf16(y) : round_f16(y);
				REQUIRE(isnan(y) ? is_nan16(got, dst_t) &&
							   (fm.fnuz || (got >> 15) == (signbit(y) != 0))
						 : got == want,
					"element %zu: code 0x%02X * %a = %a gave 0x%04X, expected "
					"0x%04X",
					i, code, (double)sc, (double)y, got, want);
			}
		}
		for (size_t i = count * ds; i < dst.size; i++)
			REQUIRE(dst.mem[dst.shift + i] == POISON, "wrote past count (byte %zu)", i);
		if (cp) {
			uint64_t got;
			memcpy(&got, counter.mem + counter.shift, 8);
			REQUIRE(got == counter0 + (dequantize ? 0 : overflows),
				"overflow_count %llu, expected %llu + %llu", (unsigned long long)got,
				(unsigned long long)counter0, (unsigned long long)overflows);
		}
	}
	buf_free(&src);
	buf_free(&dst);
	buf_free(&scale);
	buf_free(&counter);
}

/* --------------------------------------------------- amax and check_slots */

static void fuzz_amax(fz *f)
{
	current_op = "fp8kv_amax";
	const fp8kv_dtype t = pick_dtype(f, rare(f, 32) ? 0 : 1);
	size_t count = u16(f) % MAX_FLAT;
	if (rare(f, 8))
		count = (size_t)edge(f);
	const int style = u8(f) % 3, null_src = rare(f, 16), null_out = rare(f, 8);
	const size_t shift = rare(f, 16) ? 1 : 0;
	const uint64_t seed = u64(f);
	const size_t es = fp8kv_dtype_size(t) ? fp8kv_dtype_size(t) : 1;
	const size_t n_alloc = count <= MAX_FLAT ? count : MAX_FLAT;
	buf src = {0};
	buf_alloc(&src, n_alloc * es, shift, 0);
	fill_elements(src.mem + shift, src.size, t, seed, style);
	const void *sp = null_src ? NULL : buf_ptr(&src);
	const int definite = null_out || !is_wide(t) ||
			     (count > 0 && (!sp || misaligned(sp, es)));
	if (count > MAX_FLAT && !definite)
		count = n_alloc;
	float amax = -7.0f;
	buf_snapshot(&src);
	const fp8kv_status st = fp8kv_amax(cpu, sp, t, count, null_out ? NULL : &amax);
	check_status(st, "fp8kv_amax");
	REQUIRE(buf_unchanged(&src), "the source changed");
	if (st == FP8KV_OK) {
		REQUIRE(!definite, "accepted arguments the header rejects");
		float want = 0.0f;
		for (size_t i = 0; i < count; i++)
			want = fmaxf(want, finite_abs(load_elem(src.mem + shift, (int64_t)i, t)));
		REQUIRE(f32_bits(amax) == f32_bits(want), "amax %a, expected %a over %zu elements",
			(double)amax, (double)want, count);
	} else {
		REQUIRE(st == FP8KV_EINVAL || st == FP8KV_ENOTSUP, "status %d", (int)st);
	}
	buf_free(&src);
}

static void fuzz_check_slots(fz *f)
{
	current_op = "fp8kv_check_slots";
	const fp8kv_index_type t = (fp8kv_index_type)pick_enum(f, 2);
	int64_t count = u16(f) % (MAX_TOKENS + 1);
	if (rare(f, 8))
		count = edge(f);
	int64_t num_slots = u16(f) % 300;
	if (rare(f, 32))
		num_slots = bend(f, num_slots);
	/* a bitmap of num_slots bits is allocated; past this, a fuzzer
	 * allocation limit, not a finding (see the report) */
	if (num_slots > MAX_CHECK_SLOTS)
		num_slots = (int64_t)((uint64_t)num_slots % MAX_CHECK_SLOTS);
	const int null_slots = rare(f, 16), null_report = rare(f, 8);
	const size_t shift = rare(f, 16) ? 2 : 0;
	const uint64_t seed = u64(f);
	const int style = u8(f);
	const int64_t n_alloc = count >= 0 && count <= MAX_TOKENS ? count : MAX_TOKENS;
	buf slots = {0};
	buf_alloc(&slots, (size_t)n_alloc * index_bytes(t), shift, 0);
	uint64_t s = seed;
	for (int64_t i = 0; i < n_alloc; i++) {
		const uint64_t r = splitmix(&s);
		int64_t v;
		switch ((style + (int)(r & 3)) % 6) {
		case 0: v = -1 - (int64_t)(r >> 50); break;
		case 1: v = num_slots + (int64_t)(r >> 60); break;
		case 2: v = edge_i64[(r >> 8) % COUNT(edge_i64)]; break;
		default: v = num_slots > 0 ? (int64_t)((r >> 8) % (uint64_t)num_slots) : 0; break;
		}
		store_index(slots.mem + shift, i, t, v);
	}
	const void *sp = null_slots ? NULL : buf_ptr(&slots);
	const int definite = null_report || (unsigned)t > FP8KV_INDEX_INT32 || count < 0 ||
			     num_slots < 0 || (count > 0 && (!sp || misaligned(sp, index_bytes(t))));
	if (count > MAX_TOKENS && !definite)
		count = n_alloc;
	fp8kv_slot_report r;
	memset(&r, 0x5A, sizeof r);
	buf_snapshot(&slots);
	const fp8kv_status st =
		fp8kv_check_slots(cpu, sp, count, t, num_slots, null_report ? NULL : &r);
	check_status(st, "fp8kv_check_slots");
	REQUIRE(buf_unchanged(&slots), "the slot mapping changed");
	if (st == FP8KV_OK) {
		REQUIRE(!definite, "accepted arguments the header rejects");
		fp8kv_slot_report w = {0, 0, 0, -1, -1, -1};
		uint8_t *seen = calloc((size_t)num_slots / 8 + 1, 1);
		if (!seen)
			abort();
		for (int64_t i = 0; i < count; i++) {
			const int64_t v = load_index(slots.mem + shift, i, t);
			if (v < 0) {
				if (w.padding++ == 0)
					w.first_padding = i;
			} else if (v >= num_slots) {
				if (w.out_of_range++ == 0)
					w.first_out_of_range = i;
			} else if (seen[v / 8] & (1 << (v % 8))) {
				if (w.duplicates++ == 0)
					w.first_duplicate = i;
			} else {
				seen[v / 8] |= (uint8_t)(1 << (v % 8));
			}
		}
		free(seen);
		REQUIRE(!memcmp(&r, &w, sizeof r),
			"report %lld/%lld/%lld first %lld/%lld/%lld, expected "
			"%lld/%lld/%lld first %lld/%lld/%lld",
			(long long)r.padding, (long long)r.out_of_range, (long long)r.duplicates,
			(long long)r.first_padding, (long long)r.first_out_of_range,
			(long long)r.first_duplicate, (long long)w.padding,
			(long long)w.out_of_range, (long long)w.duplicates,
			(long long)w.first_padding, (long long)w.first_out_of_range,
			(long long)w.first_duplicate);
	} else {
		REQUIRE(st == FP8KV_EINVAL || st == FP8KV_ENOMEM, "status %d", (int)st);
	}
	buf_free(&slots);
}

/* ------------------------------------------------------ scalars and names */

static void fuzz_scalars(fz *f)
{
	current_op = "fp8kv_from_float/to_float";
	for (int i = 0; i < 8; i++) {
		const float y = interesting_f32(f);
		const int k = u8(f);
		const fp8kv_dtype t = k < 240 ? (fp8kv_dtype)(k % 8) : (fp8kv_dtype)(int8_t)u8(f);
		const fp8kv_overflow ovf = (fp8kv_overflow)(rare(f, 16) ? (int)(int8_t)u8(f) : k & 1);
		const uint8_t code = fp8kv_from_float(y, t, ovf);
		const fmt fm = fmt_of(t);
		if (!fm.valid) {
			REQUIRE(code == 0, "from_float(%a) in non-FP8 dtype %d gave 0x%02X", (double)y,
				(int)t, code);
			REQUIRE(isnan(fp8kv_to_float(code, t)), "to_float in non-FP8 dtype %d is not NaN",
				(int)t);
			REQUIRE(fp8kv_fp8_max(t) == 0.0f, "fp8_max(%d) is not 0", (int)t);
			REQUIRE(fp8kv_suggest_scale(y, t) == 1.0f, "suggest_scale in non-FP8 dtype %d",
				(int)t);
			continue;
		}
		int over;
		const int want = ref_encode(y, fm, ovf == FP8KV_SATURATE, &over);
		REQUIRE(code == want, "from_float(%a = bits %08X, %s, %s) = 0x%02X, expected 0x%02X",
			(double)y, f32_bits(y), fp8kv_dtype_name(t),
			ovf == FP8KV_SATURATE ? "saturate" : "nonsaturating", code, want);
		const uint8_t c2 = u8(f);
		int is_nan;
		const double v = ref_decode(c2, fm, &is_nan);
		const float got = fp8kv_to_float(c2, t);
		if (is_nan) {
			REQUIRE(isnan(got), "to_float(0x%02X, %s) is not NaN", c2, fp8kv_dtype_name(t));
			REQUIRE(fm.fnuz || (signbit(got) != 0) == (c2 >> 7),
				"to_float(0x%02X, %s): NaN lost its sign", c2, fp8kv_dtype_name(t));
		} else {
			REQUIRE(f32_bits(got) == f32_bits((float)v),
				"to_float(0x%02X, %s) = %a, expected %a", c2, fp8kv_dtype_name(t),
				(double)got, v);
		}
		REQUIRE(fp8kv_fp8_max(t) == fmt_max(fm), "fp8_max(%s)", fp8kv_dtype_name(t));

		current_op = "fp8kv_suggest_scale";
		const float amax = interesting_f32(f);
		const float sug = fp8kv_suggest_scale(amax, t);
		float want_s = 1.0f;
		if (amax > 0.0f && isfinite(amax)) {
			const float q = amax / fmt_max(fm);
			want_s = q < 0x1p-126f ? 0x1p-126f : q;
		}
		REQUIRE(f32_bits(sug) == f32_bits(want_s), "suggest_scale(%a, %s) = %a, expected %a",
			(double)amax, fp8kv_dtype_name(t), (double)sug, (double)want_s);
		current_op = "fp8kv_from_float/to_float";
	}

	current_op = "dtype helpers";
	const int k = (int)(int32_t)u32(f);
	const fp8kv_dtype t = (fp8kv_dtype)(rare(f, 128) ? k : k % 9 - 1);
	const char *name = fp8kv_dtype_name(t);
	REQUIRE((name != NULL) == is_known(t), "dtype_name(%d)", (int)t);
	REQUIRE((fp8kv_dtype_size(t) != 0) == is_known(t), "dtype_size(%d)", (int)t);
	REQUIRE(!fp8kv_dtype_is_fp8(t) == !fmt_of(t).valid, "dtype_is_fp8(%d)", (int)t);
	if (name) {
		fp8kv_dtype back = (fp8kv_dtype)-5;
		check_status(fp8kv_dtype_from_name(name, &back), "fp8kv_dtype_from_name");
		REQUIRE(back == t, "dtype_from_name(dtype_name(%d))", (int)t);
	}
	REQUIRE(fp8kv_strerror((fp8kv_status)k) != NULL, "strerror(%d) is NULL", k);

	/* names from the bytes: dtype names and backend names */
	char text[80];
	const size_t n = u8(f) % sizeof text;
	for (size_t i = 0; i < n; i++)
		text[i] = (char)u8(f);
	text[n] = '\0';
	fp8kv_dtype parsed = (fp8kv_dtype)-5;
	const fp8kv_status st = fp8kv_dtype_from_name(text, &parsed);
	check_status(st, "fp8kv_dtype_from_name");
	if (st == FP8KV_OK)
		REQUIRE(fp8kv_dtype_name(parsed) && !strcmp(fp8kv_dtype_name(parsed), text),
			"dtype_from_name('%s') = %d", text, (int)parsed);
	check_status(fp8kv_dtype_from_name(NULL, &parsed), "fp8kv_dtype_from_name(NULL)");

	current_op = "fp8kv_backend_open";
	fp8kv_backend *b = (fp8kv_backend *)&b;
	const fp8kv_status ost = fp8kv_backend_open(n && text[0] == '@' ? NULL : text, &b);
	check_status(ost, "fp8kv_backend_open");
	if (ost == FP8KV_OK) {
		REQUIRE(b != NULL, "opened a NULL backend");
		REQUIRE(fp8kv_backend_name(b) && fp8kv_backend_device(b), "nameless backend");
		fp8kv_backend_close(b);
	} else {
		REQUIRE(b == NULL, "a failed open left *backend set");
	}
	fp8kv_cache_write d;
	int64_t v[6];
	for (int i = 0; i < 6; i++)
		v[i] = (i > 0) + u8(f);
	fp8kv_cache_write_init(&d, v[0], v[1], v[2], v[3], v[4], v[5],
			       (fp8kv_cache_layout)(u8(f) % 3));
	fp8kv_cache_write_init(NULL, 1, 1, 1, 1, 1, 1, FP8KV_LAYOUT_NHD);
}

/* the raw sizes given to fp8kv_cache_write_init (see the report: products of
 * sizes overflow int64 inside it) */
static void fuzz_init_sizes(fz *f)
{
	current_op = "fp8kv_cache_write_init";
	fp8kv_cache_write d;
	int64_t v[6];
	for (int i = 0; i < 6; i++)
		v[i] = rare(f, 128) ? bend(f, 1 + u8(f)) : 1 + u8(f);
	fp8kv_cache_write_init(&d, v[0], v[1], v[2], v[3], v[4], v[5],
			       (fp8kv_cache_layout)(u8(f) & 1));
	REQUIRE(d.num_heads == v[1] && d.block_size == v[5], "init lost a size");
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
