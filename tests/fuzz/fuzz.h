/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h - what the files of the libFuzzer target share (fuzz_cache_write.c
 * describes the target):
 *
 *   fuzz_harness.c     reporting, the input reader, element values, the
 *                      buffers and 128-bit spans, and the target's entry
 *   fuzz_reference.c   the reference FP8 encoder and 16-bit floats, written
 *                      from the format definitions (not fp8_convert.h)
 *   fuzz_cache_write.c fp8kv_reshape_and_cache against the reference
 *   fuzz_flat.c        quantize, dequantize, amax, check_slots, scalars
 */
#ifndef FP8KV_FUZZ_H
#define FP8KV_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "fp8kv.h"

#define MAX_TOKENS 512       /* slot_mapping entries we allocate at most */
#define MAX_SWA 1024         /* swa_mapping entries we allocate at most */
#define MAX_HEADS 4096       /* per-head arrays (k_scale, k_amax) */
#define BUDGET (256 << 10)   /* bytes per input, cache or scale-cache buffer */
#define MAX_FLAT 8192        /* elements of a flat conversion */
#define MAX_CHECK_SLOTS (1 << 20) /* num_slots given to fp8kv_check_slots */
#define POISON 0xA5

typedef __int128 i128;

/* ---- reporting (fuzz_harness.c) ---- */

extern fp8kv_backend *cpu;
extern const char *current_op;
extern const fp8kv_cache_write *current_desc; /* printed on failure */
extern const char *tolerated;                 /* FP8KV_FUZZ_TOLERATE */
extern int verbose;                           /* FP8KV_FUZZ_VERBOSE: print each descriptor */

__attribute__((noreturn, format(printf, 1, 2))) void fail(const char *fmt, ...);

#define REQUIRE(cond, ...)                                                               \
	do {                                                                             \
		if (!(cond))                                                             \
			fail(__VA_ARGS__);                                               \
	} while (0)

void dump_desc(const fp8kv_cache_write *d);
int tolerate(const char *key);
void check_status(fp8kv_status st, const char *call);

/* ---- the input (fuzz_harness.c) ---- */

typedef struct fz {
	const uint8_t *p;
	size_t n;
} fz;

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

extern const int64_t edge_i64[];
extern const uint32_t edge_f32_bits[];
extern const size_t num_edge_i64, num_edge_f32_bits;

uint8_t u8(fz *f);
uint16_t u16(fz *f);
uint32_t u32(fz *f);
uint64_t u64(fz *f);
int rare(fz *f, unsigned k);
int64_t edge(fz *f);
int64_t bend(fz *f, int64_t v);
float bits_f32(uint32_t u);
uint32_t f32_bits(float x);
float interesting_f32(fz *f);
uint64_t splitmix(uint64_t *s);
void fill_elements(uint8_t *dst, size_t bytes, fp8kv_dtype t, uint64_t seed, int style);

/* dtypes, enums and indices */
int is_wide(int t);
int is_known(int t);
int misaligned(const void *p, size_t a);
size_t index_bytes(fp8kv_index_type t);
int64_t load_index(const void *base, int64_t i, fp8kv_index_type t);
void store_index(void *base, int64_t i, fp8kv_index_type t, int64_t v);
fp8kv_dtype pick_dtype(fz *f, int wide);
int pick_enum(fz *f, int n);

/* ---- the reference (fuzz_reference.c) ---- */

typedef struct fmt {
	int valid;
	int mbits, bias, fnuz, e5m2;
	int max_code; /* largest finite magnitude code */
} fmt;

fmt fmt_of(int t);
double mag_value(fmt f, int c);
int nan_code(fmt f, int neg);
int ref_encode(float y, fmt f, int saturate, int *overflow);
float nan_signed(float x, float s, float r);
float ref_div(float x, float s);
float ref_mul(float x, float s);
double ref_decode(int code, fmt f, int *is_nan);
float fmt_max(fmt f);
float load_f16(uint16_t h);
float load_elem(const uint8_t *base, int64_t i, fp8kv_dtype t);
float finite_abs(float x);
uint16_t round_bf16(float x);
uint16_t round_f16(float x);
int is_nan16(uint16_t h, fp8kv_dtype t);

/* ---- buffers and spans (fuzz_harness.c) ---- */

typedef struct buf {
	uint8_t *mem;     /* what malloc gave */
	size_t size;      /* bytes of the region */
	size_t shift;     /* misalignment added to the pointer handed out */
	uint8_t *copy;    /* the bytes before the call */
} buf;

#define BIG ((i128)1 << 100)

typedef struct span {
	int negative;  /* a stride < 0 */
	i128 max;      /* largest element offset (clamped near 2^100) */
} span;

void buf_alloc(buf *b, size_t size, size_t shift, uint8_t fill);
void *buf_ptr(const buf *b);
void buf_snapshot(buf *b);
int buf_unchanged(const buf *b);
void buf_free(buf *b);
span span_of(int rank, const int64_t *extent, const int64_t *stride);
i128 span_bytes(span s, size_t elem);

/* ---- the operations ---- */

void fuzz_cache_write(fz *f);                 /* fuzz_cache_write.c */
void fuzz_quantize(fz *f, int dequantize);    /* fuzz_flat.c */
void fuzz_amax(fz *f);
void fuzz_check_slots(fz *f);
void fuzz_scalars(fz *f);
void fuzz_init_sizes(fz *f);

#endif /* FP8KV_FUZZ_H */
