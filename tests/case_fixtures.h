/* SPDX-License-Identifier: MIT */
/*
 * case_fixtures.h - the cache write cases that test_cache_write (the CPU
 * against the oracle) and test_backends (each backend against the CPU)
 * both build: the matrix, ERANGE groups, and cases of one conversion.
 *
 * A matrix crosses every conversion combination (input dtype x cache dtype
 * x scale mode x overflow policy: 102) with the rows of a pairwise covering
 * array of six structural dimensions (layout, head dims, block size,
 * tokens, swa, slot type): every pair of levels of any two dimensions
 * appears in some row.  The values the levels stand for, the seeds and the
 * head counts are each program's own; the rest of a case is drawn here, so
 * that both programs vary the same things the same way.
 */
#ifndef FP8KV_TESTS_CASE_FIXTURES_H
#define FP8KV_TESTS_CASE_FIXTURES_H

#include <stdint.h>

#include "cache_case.h"
#include "fp8kv.h"

/* The dtypes and policies the tests loop over. */
extern const fp8kv_dtype input_dtypes[3];       /* f32, f16, bf16 */
extern const fp8kv_dtype fp8_formats[4];        /* e4m3fn, e4m3fnuz, e5m2, e5m2fnuz */
extern const fp8kv_overflow overflow_policies[2]; /* saturate, nonsaturating */

/* cache_case_init, then one conversion: input dtype, cache dtype, policy. */
void conversion_case(cache_case *c, fp8kv_dtype in, fp8kv_dtype cache, fp8kv_overflow overflow);

/* The 24 conversions to FP8: conversion n is input dtype n / 8, format
 * n / 2 % 4 and policy n % 2 of the arrays above. */
#define FP8_CONVERSIONS 24

/* conversion_case of conversion n. */
void fp8_conversion_case(cache_case *c, int n);

/* Makes b a copy of a with scale mode TENSOR and scales 1.0, and a one of
 * mode ONE: two cases that must give the same bytes. */
void one_and_tensor_one(cache_case *a, cache_case *b);

/* Case k of an ERANGE group, of the given sizes: the input dtype, FP8
 * format, scale mode (TENSOR scales 3 and 0.25), swa mapping and both index
 * types cycle with k; a fifth of the tokens are padding.  The number of
 * out-of-range tokens and the seed are the caller's. */
void erange_case(cache_case *c, int k, const cache_case_shape *shape);

/* ---- conversion combinations ---- */

typedef struct matrix_combo {
	fp8kv_dtype in, cache;
	fp8kv_scale_mode mode;
	fp8kv_overflow overflow;
} matrix_combo;

#define MATRIX_MAX_COMBOS 128

/* Every combination, in a fixed order: for each input dtype, a copy (cache
 * of the input dtype, ONE), then each FP8 format with each scale mode; each
 * with both policies.  Returns their number (102). */
int matrix_combos(matrix_combo out[MATRIX_MAX_COMBOS]);

/* ---- the structural dimensions ---- */

enum {
	MATRIX_LAYOUT,    /* cache_case_layout: NHD, HND, strided */
	MATRIX_HEAD_DIMS, /* an entry of matrix_structure.head_dims */
	MATRIX_BLOCK,     /* an entry of matrix_structure.block_sizes */
	MATRIX_TOKENS,    /* an entry of matrix_structure.token_counts */
	MATRIX_SWA,       /* no swa_mapping, or one */
	MATRIX_SLOT,      /* int64 or int32 slots */
	MATRIX_FACTORS
};

#define MATRIX_MAX_LEVELS 3
#define MATRIX_MAX_ROWS 32

/* What the levels of a matrix stand for. */
typedef struct matrix_structure {
	int levels[MATRIX_FACTORS]; /* 1 to MATRIX_MAX_LEVELS each */
	int64_t head_dims[MATRIX_MAX_LEVELS][2]; /* key, value */
	int64_t block_sizes[MATRIX_MAX_LEVELS];
	int64_t token_counts[MATRIX_MAX_LEVELS];
} matrix_structure;

typedef struct covering_array {
	int levels[MATRIX_FACTORS];
	int rows[MATRIX_MAX_ROWS][MATRIX_FACTORS];
	int nrows;
} covering_array;

/* A pairwise covering array of the levels, built greedily: repeatedly the
 * candidate row that covers the most pairs not yet covered. */
void covering_array_build(covering_array *a, const int levels[MATRIX_FACTORS]);

/* The levels of row r for combination i in pass p, rotated so that the
 * combinations (and passes) see different triples of levels. */
void matrix_levels(const covering_array *a, int r, int i, int p, int lv[MATRIX_FACTORS]);

/* Initialises c as case r of combination cb (number i) at levels lv, with
 * the given seed: padding, out-of-range tokens, special rows, scale cache
 * layout, TENSOR scales (from an adversarial list), the optional outputs,
 * spare blocks and the swa index type all vary with r, i and the seed.
 * The head count is left to the caller. */
void matrix_case(cache_case *c, const matrix_combo *cb, const matrix_structure *st,
		 const int lv[MATRIX_FACTORS], int i, int r, uint64_t seed);

#endif /* FP8KV_TESTS_CASE_FIXTURES_H */
