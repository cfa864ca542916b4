/* SPDX-License-Identifier: MIT */
/*
 * cache_case_internal.h - what the files of the cache case engine share
 * among themselves; the public face is cache_case.h.
 *
 *   cache_case.c           parameters: defaults, names, description; the
 *                          input dtypes' bits; errors
 *   cache_case_slots.c     the slot mapping and each token's fate
 *   cache_case_generate.c  inputs, scales, strides, poison
 *   cache_case_expect.c    the expected images, from the oracle
 *   cache_case_run.c       one call on a backend
 *   cache_case_compare.c   two results, byte for byte
 *   cache_case_report.c    differences as text
 */
#ifndef FP8KV_CACHE_CASE_INTERNAL_H
#define FP8KV_CACHE_CASE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cache_case.h"

/* Records the reason for cache_case_error() and returns -1. */
int case_fail(const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 1, 2)))
#endif
	;

/* Clears the reason (at the start of cache_case_generate). */
void case_clear_error(void);

/* calloc that never returns NULL for a zero count or size. */
void *case_calloc(size_t n, size_t size);

/* fp8kv_dtype_name, or "?" for an unknown dtype. */
const char *case_dtype_name(fp8kv_dtype dtype);

/* ---- the input dtypes (f32, f16, bf16) as bit fields ---- */

typedef struct dtype_bits {
	int ebits, mbits;
	uint32_t sign, inf, mask; /* sign bit, +Inf bits, all bits */
	uint32_t max_finite;
} dtype_bits;

/* Fills *b for f32, f16 or bf16; 0 for any other dtype. */
int case_dtype_bits(fp8kv_dtype dtype, dtype_bits *b);

/* v rounded to the binary format with ebits/mbits, to nearest even. */
uint32_t case_round_format(double v, int ebits, int mbits);

/* ---- random streams: splitmix64, each independent of the others ---- */

typedef struct rng {
	uint64_t s;
} rng;

enum { STREAM_VALUES = 1, STREAM_SLOTS, STREAM_POISON, STREAM_SCALES, STREAM_INIT,
       STREAM_SPECIAL, STREAM_GARBAGE, STREAM_ROWS };

static inline uint64_t rng_next(rng *r)
{
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static inline void rng_seed(rng *r, uint64_t seed, uint64_t stream)
{
	r->s = seed * 0xD1342543DE82EF95ull + stream * 0x9E3779B97F4A7C15ull + 0x1234567ull;
	rng_next(r);
}

static inline uint64_t rng_below(rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

/* ---- generation ---- */

/* Draws slots[], swa[] and num_blocks (when 0) from the seed, then dest[]. */
int case_generate_slots(cache_case *c);

/* ---- where elements live ---- */

/* Element index of (slot, head h, element d) in the key (kv = 0) or value
 * cache image. */
int64_t case_cache_index(const cache_case *c, int kv, int64_t slot, int64_t h, int64_t d);

/* Element index of (slot, head h) in a scale cache image. */
int64_t case_scale_index(const cache_case *c, int64_t slot, int64_t h);

/* The input bits of row (token t, head h) of K (kv = 0) or V. */
void case_load_row(const cache_case *c, int kv, int64_t t, int64_t h, uint32_t *row);

/* The divisor of that row, from the oracle for TOKEN_HEAD; *scaled = 0
 * when none divides it. */
float case_row_scale(const cache_case *c, int kv, int64_t h, const uint32_t *row, int *scaled);

/* The rows a case writes: (token, side, head) for every token with a valid
 * slot, in token order (a later token overwrites an earlier one), K before
 * V, heads in order.  Walk them with
 *     for (case_row r = CASE_ROWS_START; case_next_row(c, &r);)
 */
typedef struct case_row {
	int64_t token, slot, head;
	int kv;      /* 0: K, 1: V */
	int64_t dim; /* head_dim_k or head_dim_v */
} case_row;

#define CASE_ROWS_START {.token = -1}

/* Moves r to the next row; 0 past the last. */
int case_next_row(const cache_case *c, case_row *r);

/* Allocates the images of a result for c (zeroed); -1 when out of memory. */
int case_result_alloc(const cache_case *c, cache_result *r);

/* Garbage (max finite, NaN, Inf, -max finite, in turn; value's shifted
 * by one) in every element of key and value, which the strided gaps
 * keep once the rows are written (cache_case_generate.c). */
void case_fill_garbage(const dtype_bits *b, fp8kv_dtype in, void *key, size_t key_elems,
		       void *value, size_t value_elems);

/* ---- running pieces every case engine shares (cache_case_run.c) ---- */

/* 0 when the buffer call `call` of `bytes` bytes returned FP8KV_OK; else -1,
 * and the first such failure of the run is kept in setup_error (n bytes). */
int case_setup_step(char *setup_error, size_t n, fp8kv_status st, const char *call,
		    size_t bytes);

/* An index array (n entries) converted to its upload type, *bytes long;
 * NULL when out of memory. */
void *case_index_array(const int64_t *v, int64_t n, fp8kv_index_type type, size_t *bytes);

/* ---- comparison pieces every case engine shares (cache_case_compare.c) ---- */

/* The next entry of d's report, of kind what and located nowhere (-1s);
 * NULL once max_report (at most CACHE_DIFF_MAX_REPORT) are reported. */
cache_diff_entry *cache_diff_new_entry(cache_diff *d, int max_report, cache_diff_what what);

/* The setup errors of both results, then their statuses, then that an
 * ERANGE message names first_out_of_range (when >= 0): the differences
 * found, each reported in d. */
uint64_t cache_diff_outcome(cache_diff *d, int max_report, const char *exp_setup,
			    const char *got_setup, fp8kv_status exp_status, fp8kv_status got_status,
			    const char *got_stage, const char *got_message,
			    int64_t first_out_of_range);

/* The overflow and NaN counters asked for, 8 bytes each. */
uint64_t cache_diff_counters(cache_diff *d, int max_report, int want_overflow, int want_nan,
			     uint64_t exp_overflow, uint64_t got_overflow, uint64_t exp_nan,
			     uint64_t got_nan);

/* Both sides' amax, num_heads floats each, by bits (nothing when either
 * result has no k_amax). */
uint64_t cache_diff_amax(cache_diff *d, int max_report, int64_t num_heads, const float *exp_k,
			 const float *exp_v, const float *got_k, const float *got_v);

/* The line of a setup, status or ERANGE message entry, into buf; 0 for
 * another kind, which the caller formats (cache_case_report.c). */
int cache_diff_format_outcome(const cache_diff_entry *e, char *buf, size_t n);

#endif /* FP8KV_CACHE_CASE_INTERNAL_H */
