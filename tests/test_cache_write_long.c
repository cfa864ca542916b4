/* SPDX-License-Identifier: MIT */
/*
 * test_cache_write_long.c - fp8kv_reshape_and_cache calls on the "cpu"
 * backend long enough for its lookup tables, held to the oracle.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "case_fixtures.h"
#include "check_support.h"
#include "fp8kv.h"
#include "oracle.h"
#include "test_cache_write.h"

/*
 * Calls long enough (2^20 elements and more) for the CPU backend to convert
 * 16-bit inputs through lookup tables, for every 16-bit input dtype, format,
 * policy, scale ONE and TENSOR, with counters and without.  Every side holds
 * all 65,536 input patterns at least once (NaN, Inf, subnormals and the
 * overflows of a tiny scale among them).  The key side has padded token
 * and head strides and rows of 7, so its rows are converted one by one and
 * each is shorter than the lookup loop's step; the value side is contiguous, so its
 * heads merge into long rows.  A few tokens are padding.  The expected codes
 * come from oracle_quantize(), evaluated once per pattern and scale.
 */
enum { LONG_T = 3600, LONG_H = 4, LONG_DK = 7, LONG_DV = 121, LONG_PAD = 5, LONG_BS = 16 };

/* The pattern at element j of side kv: every aligned run of 65,536 elements
 * holds all 65,536 patterns, and each run is shifted by an odd offset, so
 * that a pattern falls on different positions of an 8-wide step. */
static uint16_t long_pattern(int kv, int64_t j)
{
	return (uint16_t)((uint64_t)j * 40503u + (uint64_t)(j >> 16) * 3u + (kv ? 12345u : 0u));
}

START_TEST(long_calls_match_oracle)
{
	const fp8kv_dtype in = input_dtypes[1 + _i / 4], fmt = fp8_formats[_i % 4];
	const int64_t T = LONG_T, H = LONG_H, dims[2] = {LONG_DK, LONG_DV};
	/* elements per token and per head of each side's input */
	const int64_t strides[2] = {LONG_H * (LONG_DK + 1) + LONG_PAD, LONG_H * LONG_DV};
	const int64_t head_strides[2] = {LONG_DK + 1, LONG_DV};
	const int64_t num_blocks = (T + LONG_BS - 1) / LONG_BS + 2;
	const int64_t num_slots = num_blocks * LONG_BS;
	ck_assert_int_ge(T * H * (LONG_DK + LONG_DV), 1 << 20);

	uint16_t *src[2];
	uint8_t *cache[2], *expect[2], *got[2];
	size_t cache_bytes[2];
	uint8_t(*codes)[65536] = malloc(2 * sizeof *codes);
	uint8_t(*clipped)[65536] = malloc(2 * sizeof *clipped);
	int64_t *slots = malloc((size_t)T * sizeof *slots);
	ck_assert_ptr_nonnull(codes);
	ck_assert_ptr_nonnull(clipped);
	ck_assert_ptr_nonnull(slots);
	for (int kv = 0; kv < 2; kv++) {
		const size_t n = (size_t)(T * strides[kv]);
		uint16_t *host = malloc(n * 2);
		ck_assert_ptr_nonnull(host);
		for (size_t i = 0; i < n; i++) /* the gaps: never read */
			host[i] = 0x7FC1;
		for (int64_t t = 0; t < T; t++)
			for (int64_t h = 0; h < H; h++)
				for (int64_t e = 0; e < dims[kv]; e++)
					host[t * strides[kv] + h * head_strides[kv] + e] =
						long_pattern(kv, (t * H + h) * dims[kv] + e);
		ck_assert_int_eq(fp8kv_buffer_alloc(cpu, n * 2, (void **)&src[kv]), FP8KV_OK);
		ck_assert_int_eq(fp8kv_buffer_upload(cpu, src[kv], host, n * 2), FP8KV_OK);
		free(host);
		cache_bytes[kv] = (size_t)(num_slots * H * dims[kv]);
		ck_assert_int_eq(fp8kv_buffer_alloc(cpu, cache_bytes[kv], (void **)&cache[kv]),
				 FP8KV_OK);
		expect[kv] = malloc(cache_bytes[kv]);
		got[kv] = malloc(cache_bytes[kv]);
		ck_assert_ptr_nonnull(expect[kv]);
		ck_assert_ptr_nonnull(got[kv]);
	}
	/* blocks in a scrambled order; every 97th token is padding */
	for (int64_t t = 0; t < T; t++)
		slots[t] = t % 97 == 13 ? -1
					: ((t / LONG_BS) * 7 % num_blocks) * LONG_BS + t % LONG_BS;
	int64_t *dev_slots;
	ck_assert_int_eq(fp8kv_buffer_alloc(cpu, (size_t)T * sizeof *slots, (void **)&dev_slots),
			 FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_upload(cpu, dev_slots, slots, (size_t)T * sizeof *slots),
			 FP8KV_OK);
	/* a tiny key scale: many finite overflows, and infinite quotients */
	const float tensor_scales[2] = {1e-3f, 0.37f};
	float *dev_scales;
	ck_assert_int_eq(fp8kv_buffer_alloc(cpu, sizeof tensor_scales, (void **)&dev_scales),
			 FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_upload(cpu, dev_scales, tensor_scales, sizeof tensor_scales),
			 FP8KV_OK);

	for (int p = 0; p < 2; p++)
		for (int tensor = 0; tensor < 2; tensor++) {
			uint64_t exp_overflows = 7, exp_nans = 11; /* counters are added to */
			for (int kv = 0; kv < 2; kv++)
				for (uint32_t b = 0; b < 65536; b++) {
					int o = 0;
					codes[kv][b] = oracle_quantize(b, in, tensor,
								       tensor ? tensor_scales[kv] : 1.0f,
								       fmt, overflow_policies[p], &o);
					clipped[kv][b] = (uint8_t)o;
				}
			for (int kv = 0; kv < 2; kv++) {
				memset(expect[kv], 0xA5, cache_bytes[kv]);
				for (int64_t t = 0; t < T; t++) {
					if (slots[t] < 0)
						continue;
					for (int64_t e = 0; e < H * dims[kv]; e++) {
						const uint16_t b = long_pattern(kv, t * H * dims[kv] + e);
						expect[kv][slots[t] * H * dims[kv] + e] = codes[kv][b];
						exp_overflows += clipped[kv][b];
						exp_nans += oracle_is_nan(oracle_widen(b, in)) ? 1 : 0;
					}
				}
			}
			for (int counting = 0; counting < 2; counting++) {
				uint64_t overflows = 7, nans = 11;
				fp8kv_cache_write d;
				fp8kv_cache_write_init(&d, T, H, LONG_DK, LONG_DV, num_blocks, LONG_BS,
						       FP8KV_LAYOUT_NHD);
				d.key = src[0];
				d.value = src[1];
				d.key_stride_token = strides[0];
				d.key_stride_head = head_strides[0];
				d.input_dtype = in;
				d.key_cache = cache[0];
				d.value_cache = cache[1];
				d.cache_dtype = fmt;
				d.slot_mapping = dev_slots;
				d.overflow = overflow_policies[p];
				if (tensor) {
					d.scale_mode = FP8KV_SCALE_TENSOR;
					d.k_scale = dev_scales;
					d.v_scale = dev_scales + 1;
				}
				if (counting) {
					d.overflow_count = &overflows;
					d.nan_count = &nans;
				}
				for (int kv = 0; kv < 2; kv++)
					ck_assert_int_eq(fp8kv_buffer_fill(cpu, cache[kv], 0xA5,
									   cache_bytes[kv]),
							 FP8KV_OK);
				ck_assert_int_eq(fp8kv_reshape_and_cache(cpu, &d, NULL), FP8KV_OK);
				ck_assert_int_eq(fp8kv_backend_synchronize(cpu, NULL), FP8KV_OK);
				for (int kv = 0; kv < 2; kv++) {
					ck_assert_int_eq(fp8kv_buffer_download(cpu, got[kv], cache[kv],
									       cache_bytes[kv]),
							 FP8KV_OK);
					for (size_t i = 0; i < cache_bytes[kv]; i++)
						if (got[kv][i] != expect[kv][i])
							ck_abort_msg("%s -> %s, %s, %s, counters %d: %s "
								     "cache byte %zu is 0x%02x, "
								     "expected 0x%02x",
								     fp8kv_dtype_name(in),
								     fp8kv_dtype_name(fmt),
								     p ? "nonsat" : "saturate",
								     tensor ? "tensor" : "one", counting,
								     kv ? "value" : "key", i, got[kv][i],
								     expect[kv][i]);
				}
				if (counting) {
					ck_assert_uint_eq(overflows, exp_overflows);
					ck_assert_uint_eq(nans, exp_nans);
				}
			}
		}

	for (int kv = 0; kv < 2; kv++) {
		fp8kv_buffer_free(cpu, src[kv]);
		fp8kv_buffer_free(cpu, cache[kv]);
		free(expect[kv]);
		free(got[kv]);
	}
	fp8kv_buffer_free(cpu, dev_slots);
	fp8kv_buffer_free(cpu, dev_scales);
	free(slots);
	free(codes);
	free(clipped);
}
END_TEST

void add_long_call_tests(TCase *tc)
{
	tcase_add_loop_test(tc, long_calls_match_oracle, 0, 8);
}
