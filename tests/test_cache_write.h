/* SPDX-License-Identifier: MIT */
/*
 * test_cache_write.h - what the files of test_cache_write share.
 *
 *   test_cache_write.c         the matrix, the descriptor's defaults, main
 *   test_cache_write_scales.c  scale modes, counters and amax
 *   test_cache_write_slots.c   slot mappings: ERANGE, duplicates, copies
 *   test_cache_write_long.c    calls long enough for the CPU's tables
 */
#ifndef FP8KV_TESTS_TEST_CACHE_WRITE_H
#define FP8KV_TESTS_TEST_CACHE_WRITE_H

#include <check.h>
#include <stdint.h>

#include "cache_case.h"

/* Runs c (already prepared into *exp) on the CPU into *got and asserts that
 * the two agree on every byte. */
void run_and_compare(cache_case *c, cache_result *exp, cache_result *got);

/* cache_case_init with num_tokens tokens and num_blocks blocks of the
 * default block size, 4 (2 heads of 16 elements, NHD), for tests that
 * build their own slot mapping or rows. */
void small_case(cache_case *c, int64_t num_tokens, int64_t num_blocks);

/* Prepares, runs and compares c; frees everything. */
void check_case(cache_case *c);

/* The TOKEN_HEAD scale the result r holds for (token t, head h) of K (kv =
 * 0) or V, found through the documented scale cache layouts. */
float stored_scale(const cache_case *c, const cache_result *r, int kv, int64_t t, int64_t h);

/* Each file's tests, added to the "dedicated" test case in this order. */
void add_scale_tests(TCase *tc);
void add_slot_tests(TCase *tc);
void add_long_call_tests(TCase *tc);

#endif /* FP8KV_TESTS_TEST_CACHE_WRITE_H */
