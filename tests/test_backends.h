/* SPDX-License-Identifier: MIT */
/*
 * test_backends.h - what the files of test_backends share.
 *
 *   test_backends.c        opening the backends, main
 *   test_backends_cache.c  fp8kv_reshape_and_cache groups
 *   test_backends_flat.c   quantize, dequantize, amax, check_slots and
 *                          the order of calls on a stream
 *   test_backends_group.c  fp8kv_reshape_and_cache_grouped groups
 *   test_backends_mla.c    fp8kv_concat_and_cache_mla groups
 *   test_backends_io.c     a call over a set of buffers, compared
 */
#ifndef FP8KV_TESTS_TEST_BACKENDS_H
#define FP8KV_TESTS_TEST_BACKENDS_H

#include <check.h>
#include <stdint.h>

#include "fp8kv.h"

#define MAX_BACKENDS 8
extern fp8kv_backend *ref; /* "cpu" */
extern fp8kv_backend *backends[MAX_BACKENDS];
extern char backend_names[MAX_BACKENDS][64];

/* A group's line on stdout: "[hip vs cpu] what  cases ..., bytes compared
 * ..., differing ...". */
void summary(int bi, const char *what, uint64_t cases, uint64_t bytes, uint64_t differing);

/* Groups that only a GPU's kernels give a meaning skip the cpu backend,
 * saying why; nonzero when skipped. */
int skip_on_cpu(int bi, const char *what, const char *why);

/* The next state of a xorshift64 generator */
uint64_t next_random(uint64_t *x);

/* s times a value log-uniform in [2^-12, 2^top), from the top bits of r */
double calm_value(uint64_t r, double top, float s);

/* ---- test_backends_io.c: a call over a set of buffers, run on the CPU
 * and on a backend, every output byte compared (poisoned twice) ---- */

#define TB_MAX_BUFS 16

typedef enum tb_kind {
	TB_INPUT,  /* uploaded, never compared */
	TB_OUTPUT, /* poisoned; where the CPU wrote, its bytes, else the poison */
	TB_ACCUM   /* starts from its host bytes, ends as the CPU's (counters, amax) */
} tb_kind;

typedef struct tb_buf {
	const char *name;
	tb_kind kind;
	size_t bytes;
	uint8_t *host; /* INPUT and ACCUM: the contents uploaded */
} tb_buf;

typedef struct tb_set {
	tb_buf b[TB_MAX_BUFS];
	int n;
} tb_set;

/* The call on backend b with buffer i at dev[i]: its status. */
typedef fp8kv_status (*tb_call_fn)(fp8kv_backend *b, void *const *dev, const void *ctx);

/* A group's counts, and the report of its first difference: the caller
 * writes the case's description while differing is 0, the comparison
 * appends the differences. */
typedef struct tb_result {
	uint64_t cases, bytes, differing;
	char report[4000];
} tb_result;

/* Adds a zeroed buffer of bytes to s; its index. */
int tb_add(tb_set *s, const char *name, tb_kind kind, size_t bytes);
void tb_set_free(tb_set *s);
/* Runs call over s on the CPU (twice) and on backends[bi], as the file
 * says; adds to res, returns the differences found. */
uint64_t tb_compare_run(int bi, const tb_set *s, tb_call_fn call, const void *ctx,
			uint64_t seed, tb_result *res);
/* The same against backend b, called name in reports. */
uint64_t tb_compare_on(fp8kv_backend *b, const char *name, const tb_set *s, tb_call_fn call,
		       const void *ctx, uint64_t seed, tb_result *res);

/* ---- test_backends_group.c: data the grouped and MLA groups share ---- */

/* n values of dtype at element `at` of buf, in groups of G, a quarter of
 * the groups special when specials (zeros, NaN, Inf, nothing finite,
 * subnormal or huge, one value, ties, a constant). */
void tb_fill_groups(void *buf, fp8kv_dtype dtype, size_t at, int64_t n, int64_t G, int specials,
		    uint64_t *x);
/* The slots of T tokens into num_slots, distinct: slot_buf (int32 when
 * slots32, else int64) and with swa the int64 table in swa_buf (*swa_len
 * entries, num_slots + 5); a fraction padding of padding tokens, the last
 * out_of_range tokens out of range (past the table or mapped past the
 * cache, with swa). */
void tb_fill_slots(uint8_t *slot_buf, int slots32, uint8_t *swa_buf, int64_t *swa_len,
		   int64_t T, int64_t num_slots, double padding, int out_of_range, int swa,
		   uint64_t *x);

/* Each file's groups, added in this order as loop tests over the backends. */
void add_cache_write_groups(TCase *tc, int nbackends);
void add_flat_groups(TCase *tc, int nbackends);
void add_group_groups(TCase *tc, int nbackends);
void add_mla_groups(TCase *tc, int nbackends);

#endif /* FP8KV_TESTS_TEST_BACKENDS_H */
