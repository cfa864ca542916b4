/* SPDX-License-Identifier: MIT */
/*
 * test_convert.c - the conversion contract of fp8kv.h section 5, element by
 * element: the scalar calls, fp8kv_quantize and fp8kv_dequantize on the CPU
 * backend, and the amax / scale helpers.  This file holds what the others
 * share (test_convert.h maps them) and main.
 *
 * Every expected value comes from the independent oracle (validate/oracle.c) or
 * from a literal written from the header's text; none from the library.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_support.h"
#include "float_bits.h"
#include "fp8kv.h"
#include "oracle.h"
#include "test_convert.h"

const fp8kv_dtype formats[NFORMATS] = {FP8KV_E4M3FN, FP8KV_E4M3FNUZ, FP8KV_E5M2,
				       FP8KV_E5M2FNUZ};
const char *const format_names[NFORMATS] = {"e4m3fn", "e4m3fnuz", "e5m2", "e5m2fnuz"};
const char *const policy_names[2] = {"saturate", "nonsaturating"};

uint64_t rng_state;

uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

int format_slot(fp8kv_dtype f)
{
	for (int i = 0; i < NFORMATS; i++)
		if (formats[i] == f)
			return i;
	return 0;
}

void push(bitlist *l, uint32_t b)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 1024;
		l->v = realloc(l->v, l->cap * sizeof *l->v);
		ck_assert_ptr_nonnull(l->v);
	}
	l->v[l->n++] = b;
}

void push_around(bitlist *l, uint32_t b, int k)
{
	b &= 0x7FFFFFFFu;
	for (int d = -k; d <= k; d++) {
		int64_t x = (int64_t)b + d;
		if (x < 0 || x > 0x7FFFFFFF)
			continue;
		push(l, (uint32_t)x);
		push(l, (uint32_t)x | 0x80000000u);
	}
}

void quantize_on_backend(const void *host_src, fp8kv_dtype dtype, size_t n, fp8kv_dtype format,
			 fp8kv_overflow ovf, int scaled, float s, uint8_t *host_dst,
			 uint64_t *added)
{
	size_t esize = fp8kv_dtype_size(dtype);
	void *src, *dst, *sbuf = NULL;
	uint64_t *counter, start = COUNT_START, end = 0;

	ck_assert_int_eq(fp8kv_buffer_alloc(cpu, n * esize + 4, &src), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_alloc(cpu, n + GUARD, &dst), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_alloc(cpu, sizeof start, (void **)&counter), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_upload(cpu, src, host_src, n * esize), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_fill(cpu, dst, POISON, n + GUARD), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_upload(cpu, counter, &start, sizeof start), FP8KV_OK);
	if (scaled) {
		ck_assert_int_eq(fp8kv_buffer_alloc(cpu, sizeof s, &sbuf), FP8KV_OK);
		ck_assert_int_eq(fp8kv_buffer_upload(cpu, sbuf, &s, sizeof s), FP8KV_OK);
	}
	fp8kv_status st = fp8kv_quantize(cpu, dst, format, src, dtype, n,
					 scaled ? FP8KV_SCALE_TENSOR : FP8KV_SCALE_ONE,
					 sbuf, ovf, counter, NULL);
	ck_assert_msg(st == FP8KV_OK, "fp8kv_quantize: %d %s", (int)st, fp8kv_last_error());
	ck_assert_int_eq(fp8kv_backend_synchronize(cpu, NULL), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_download(cpu, host_dst, dst, n + GUARD), FP8KV_OK);
	ck_assert_int_eq(fp8kv_buffer_download(cpu, &end, counter, sizeof end), FP8KV_OK);
	*added = end - start;
	fp8kv_buffer_free(cpu, src);
	fp8kv_buffer_free(cpu, dst);
	fp8kv_buffer_free(cpu, counter);
	if (sbuf)
		fp8kv_buffer_free(cpu, sbuf);
}

void assert_guard_intact(const uint8_t *dst, size_t n, const char *what)
{
	for (size_t i = n; i < n + GUARD; i++)
		ck_assert_msg(dst[i] == POISON, "%s: byte %zu past count %zu was written (0x%02x)",
			      what, i - n, n, dst[i]);
}

void check_f32_list(const bitlist *l, fp8kv_dtype format, fp8kv_overflow ovf, const char *what)
{
	float *src = malloc(l->n * sizeof *src + 1);
	uint8_t *want = malloc(l->n + 1), *got = malloc(l->n + GUARD);
	ck_assert(src && want && got);
	uint64_t overflows = 0, added = 0;
	size_t bad_scalar = 0, first_scalar = 0;
	for (size_t i = 0; i < l->n; i++) {
		int o;
		src[i] = float_of_bits(l->v[i]);
		want[i] = oracle_encode(src[i], format, ovf, &o);
		overflows += (uint64_t)o;
		if (fp8kv_from_float(src[i], format, ovf) != want[i] && bad_scalar++ == 0)
			first_scalar = i;
	}
	ck_assert_msg(bad_scalar == 0,
		      "%s, %s, %s: fp8kv_from_float differs on %zu of %zu inputs, first "
		      "0x%08x (%a): got 0x%02x, oracle 0x%02x",
		      what, format_names[format_slot(format)], policy_names[ovf], bad_scalar,
		      l->n, (unsigned)l->v[first_scalar], (double)src[first_scalar],
		      fp8kv_from_float(src[first_scalar], format, ovf), want[first_scalar]);

	quantize_on_backend(src, FP8KV_F32, l->n, format, ovf, 0, 1.0f, got, &added);
	size_t bad = 0, first = 0;
	for (size_t i = 0; i < l->n; i++)
		if (got[i] != want[i] && bad++ == 0)
			first = i;
	ck_assert_msg(bad == 0,
		      "%s, %s, %s: fp8kv_quantize(f32) differs on %zu of %zu inputs, first "
		      "0x%08x (%a): got 0x%02x, oracle 0x%02x",
		      what, format_names[format_slot(format)], policy_names[ovf], bad, l->n,
		      (unsigned)l->v[first], (double)src[first], got[first], want[first]);
	assert_guard_intact(got, l->n, what);
	ck_assert_msg(added == overflows, "%s, %s, %s: overflow_count added %llu, oracle %llu",
		      what, format_names[format_slot(format)], policy_names[ovf],
		      (unsigned long long)added, (unsigned long long)overflows);
	free(src);
	free(want);
	free(got);
}

void check_f32_list_all(const bitlist *l, const char *what)
{
	for (int r = 0; r < NRUNS; r++)
		check_f32_list(l, formats[r / 2], (fp8kv_overflow)(r % 2), what);
}

int main(void)
{
	Suite *s = suite_create("convert");
	add_code_tests(s);
	add_fp32_tests(s);
	add_bulk_tests(s);
	return run_suite(s);
}
