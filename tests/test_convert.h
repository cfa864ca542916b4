/* SPDX-License-Identifier: MIT */
/*
 * test_convert.h - what the files of test_convert share.
 *
 *   test_convert.c        fp8kv_quantize on the CPU, lists of fp32 inputs
 *                         held to the oracle; main
 *   test_convert_codes.c  the spec's anchors, every FP8 code, the oracle's
 *                         own widening and row scale
 *   test_convert_fp32.c   fp32 inputs where conversions go wrong
 *   test_convert_bulk.c   every 16-bit input, tensor scales, short counts,
 *                         dequantization, amax and suggest_scale
 */
#ifndef FP8KV_TESTS_TEST_CONVERT_H
#define FP8KV_TESTS_TEST_CONVERT_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "fp8kv.h"

#define POISON 0xA5
#define GUARD 64                           /* bytes past count that must stay POISON */
#define COUNT_START 0x100000005ull         /* overflow counters start here: ADDED */
#define NFORMATS 4
#define NRUNS (NFORMATS * 2)               /* formats x overflow policies */

extern const fp8kv_dtype formats[NFORMATS];
extern const char *const format_names[NFORMATS];
extern const char *const policy_names[2];

/* The index of an FP8 format in formats[]. */
int format_slot(fp8kv_dtype f);

/* splitmix64 on rng_state */
extern uint64_t rng_state;
uint64_t rng(void);

/* A growable list of fp32 bit patterns. */
typedef struct bitlist {
	uint32_t *v;
	size_t n, cap;
} bitlist;

void push(bitlist *l, uint32_t b);

/* b and its neighbours b-k..b+k (as bit patterns within one sign), both signs */
void push_around(bitlist *l, uint32_t b, int k);

/*
 * Runs fp8kv_quantize on the CPU backend: n elements of dtype (host_src)
 * into a poisoned destination of n + GUARD bytes, which comes back in
 * host_dst; *added receives what the call added to an overflow counter.
 */
void quantize_on_backend(const void *host_src, fp8kv_dtype dtype, size_t n, fp8kv_dtype format,
			 fp8kv_overflow ovf, int scaled, float s, uint8_t *host_dst,
			 uint64_t *added);

void assert_guard_intact(const uint8_t *dst, size_t n, const char *what);

/*
 * Holds fp8kv_from_float and fp8kv_quantize(f32, SCALE_ONE) to the oracle
 * for every pattern of a list, in one format and policy; the overflow
 * counter to the oracle's count.
 */
void check_f32_list(const bitlist *l, fp8kv_dtype format, fp8kv_overflow ovf, const char *what);

/* check_f32_list in every format and policy. */
void check_f32_list_all(const bitlist *l, const char *what);

/* Each file's test cases, added to the suite in this order. */
void add_code_tests(Suite *s);
void add_fp32_tests(Suite *s);
void add_bulk_tests(Suite *s);

#endif /* FP8KV_TESTS_TEST_CONVERT_H */
