/* SPDX-License-Identifier: MIT */
/*
 * test_backends.h - what the files of test_backends share.
 *
 *   test_backends.c        opening the backends, main
 *   test_backends_cache.c  fp8kv_reshape_and_cache groups
 *   test_backends_flat.c   quantize, dequantize, amax, check_slots and
 *                          the order of calls on a stream
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

/* Each file's groups, added in this order as loop tests over the backends. */
void add_cache_write_groups(TCase *tc, int nbackends);
void add_flat_groups(TCase *tc, int nbackends);

#endif /* FP8KV_TESTS_TEST_BACKENDS_H */
