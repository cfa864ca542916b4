/* SPDX-License-Identifier: MIT */
/*
 * test_cpu_threads.c - the CPU backend's own thread count (C-THREADS,
 * fp8kv.h section 3): FP8KV_NUM_THREADS, else OMP_NUM_THREADS's first value,
 * else omp_get_num_procs(); never libgomp's global count, which torch lowers
 * with omp_set_num_threads().
 *
 * Each test lowers that global count to 1 first, as torch does on import.
 * The count the backend uses is read two ways: from its device string, and
 * from the threads the process holds after a long call (libgomp keeps a
 * team's threads for the next one), with the bytes compared with a
 * one-thread run.  Check forks each test, so each starts with one thread
 * (with CK_FORK=no a later test may find an earlier one's threads).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fp8kv.h"

/* past the CPU backend's one-thread threshold (PARALLEL_MIN_ELEMENTS) */
#define LONG_CALL (1 << 20)
#define POISON 0xA5

static void lower_the_global_count(void)
{
	unsetenv("FP8KV_NUM_THREADS");
	unsetenv("OMP_NUM_THREADS");
#ifdef _OPENMP
	omp_set_num_threads(1);
#endif
}

static int processors(void)
{
#ifdef _OPENMP
	return omp_get_num_procs();
#else
	return 1;
#endif
}

static void expect_device(fp8kv_backend *b, int threads)
{
	char want[64];
#ifdef _OPENMP
	snprintf(want, sizeof want, "host CPU, %d OpenMP thread%s", threads, threads == 1 ? "" : "s");
#else
	(void)threads;
	snprintf(want, sizeof want, "host CPU, 1 thread (no OpenMP)");
#endif
	ck_assert_str_eq(fp8kv_backend_device(b), want);
}

static fp8kv_backend *open_cpu(void)
{
	fp8kv_backend *b = NULL;
	ck_assert_msg(fp8kv_backend_open("cpu", &b) == FP8KV_OK, "open: %s", fp8kv_last_error());
	return b;
}

/* the threads of this process (/proc/self/task), or -1 without /proc */
static int process_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return -1;
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

START_TEST(test_default_is_the_processors)
{
	lower_the_global_count();
	fp8kv_backend *b = open_cpu();
	expect_device(b, processors());
	fp8kv_backend_close(b);
}
END_TEST

START_TEST(test_omp_num_threads_first_value)
{
	static const struct {
		const char *env;
		int threads;
	} cases[] = {{"3", 3}, {"3,2", 3}, {" 2", 2}, {"5 ", 5}, {"abc", -1}, {"0", -1}, {"", -1}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		lower_the_global_count();
		setenv("OMP_NUM_THREADS", cases[i].env, 1);
		fp8kv_backend *b = open_cpu();
		/* libgomp judges a bad OMP_NUM_THREADS: the backend falls back */
		expect_device(b, cases[i].threads > 0 ? cases[i].threads : processors());
		fp8kv_backend_close(b);
	}
}
END_TEST

START_TEST(test_fp8kv_num_threads_comes_first)
{
	lower_the_global_count();
	setenv("OMP_NUM_THREADS", "3", 1);
	setenv("FP8KV_NUM_THREADS", "2", 1);
	fp8kv_backend *b = open_cpu();
	expect_device(b, 2);
	fp8kv_backend_close(b);
	setenv("FP8KV_NUM_THREADS", "4096", 1);
	b = open_cpu();
	expect_device(b, 4096);
	fp8kv_backend_close(b);
}
END_TEST

START_TEST(test_bad_fp8kv_num_threads_is_an_error)
{
	static const char *const bad[] = {"", "0", "-1", "abc", "3x", " 3", "3 ", "4097",
					  "99999999999", "2,2"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		lower_the_global_count();
		setenv("FP8KV_NUM_THREADS", bad[i], 1);
		fp8kv_backend *b = (fp8kv_backend *)(uintptr_t)0xA5A5A5A5u;
		ck_assert_int_eq(fp8kv_backend_open("cpu", &b), FP8KV_EINVAL);
		ck_assert_msg(b == NULL, "'%s': the handle is not NULL", bad[i]);
		ck_assert_msg(strstr(fp8kv_last_error(), "FP8KV_NUM_THREADS") != NULL,
			      "'%s': the message does not name FP8KV_NUM_THREADS: %s", bad[i],
			      fp8kv_last_error());
	}
}
END_TEST

/* The quantize of LONG_CALL bf16 values with the backend's count forced to
 * threads (FP8KV_NUM_THREADS), into out. */
static void long_quantize(int threads, uint8_t *out, const uint16_t *in)
{
	char value[16];
	snprintf(value, sizeof value, "%d", threads);
	setenv("FP8KV_NUM_THREADS", value, 1);
	fp8kv_backend *b = open_cpu();
	memset(out, POISON, LONG_CALL + 64);
	ck_assert_int_eq(fp8kv_quantize(b, out, FP8KV_E4M3FN, in, FP8KV_BF16, LONG_CALL,
					FP8KV_SCALE_ONE, NULL, FP8KV_SATURATE, NULL, NULL),
			 FP8KV_OK);
	fp8kv_backend_close(b);
	for (size_t i = LONG_CALL; i < LONG_CALL + 64; i++)
		ck_assert_int_eq(out[i], POISON);
}

START_TEST(test_a_long_quantize_runs_on_the_backends_threads)
{
	uint16_t *in = malloc(LONG_CALL * sizeof *in);
	uint8_t *one = malloc(LONG_CALL + 64), *many = malloc(LONG_CALL + 64);
	ck_assert(in && one && many);
	for (size_t i = 0; i < LONG_CALL; i++)
		in[i] = (uint16_t)(i * 2654435761u >> 7);
	lower_the_global_count();
	const int before = process_threads();
	long_quantize(1, one, in);
	ck_assert_int_eq(process_threads(), before);
	long_quantize(5, many, in);
	if (before > 0) {
#ifdef _OPENMP
		ck_assert_int_ge(process_threads(), 5); /* this one and 4 */
#else
		ck_assert_int_eq(process_threads(), before);
#endif
	}
	ck_assert(memcmp(one, many, LONG_CALL) == 0);
	free(in);
	free(one);
	free(many);
}
END_TEST

/* The same through the cache write: one token per slot, one head of
 * LONG_CALL / 4096 rows of 4096, both sides. */
#define HEAD_DIM 4096
#define TOKENS (LONG_CALL / HEAD_DIM)
static void long_write(int threads, uint8_t *kc, uint8_t *vc, const uint16_t *in,
		       const int64_t *slots)
{
	char value[16];
	snprintf(value, sizeof value, "%d", threads);
	setenv("FP8KV_NUM_THREADS", value, 1);
	fp8kv_backend *b = open_cpu();
	fp8kv_cache_write d;
	fp8kv_cache_write_init(&d, TOKENS, 1, HEAD_DIM, HEAD_DIM, TOKENS, 1, FP8KV_LAYOUT_NHD);
	d.key = in;
	d.value = in;
	d.input_dtype = FP8KV_BF16;
	d.key_cache = kc;
	d.value_cache = vc;
	d.cache_dtype = FP8KV_E5M2;
	d.slot_mapping = slots;
	memset(kc, POISON, LONG_CALL);
	memset(vc, POISON, LONG_CALL);
	ck_assert_msg(fp8kv_reshape_and_cache(b, &d, NULL) == FP8KV_OK, "%s", fp8kv_last_error());
	fp8kv_backend_close(b);
}

START_TEST(test_a_long_cache_write_runs_on_the_backends_threads)
{
	uint16_t *in = malloc(LONG_CALL * sizeof *in);
	int64_t *slots = malloc(TOKENS * sizeof *slots);
	uint8_t *k1 = malloc(LONG_CALL), *v1 = malloc(LONG_CALL);
	uint8_t *k5 = malloc(LONG_CALL), *v5 = malloc(LONG_CALL);
	ck_assert(in && slots && k1 && v1 && k5 && v5);
	for (size_t i = 0; i < LONG_CALL; i++)
		in[i] = (uint16_t)(i * 40503u + 17);
	for (int64_t t = 0; t < TOKENS; t++)
		slots[t] = TOKENS - 1 - t;
	lower_the_global_count();
	const int before = process_threads();
	long_write(1, k1, v1, in, slots);
	ck_assert_int_eq(process_threads(), before);
	long_write(5, k5, v5, in, slots);
	if (before > 0) {
#ifdef _OPENMP
		ck_assert_int_ge(process_threads(), 5); /* this one and 4 */
#else
		ck_assert_int_eq(process_threads(), before);
#endif
	}
	ck_assert(memcmp(k1, k5, LONG_CALL) == 0 && memcmp(v1, v5, LONG_CALL) == 0);
	/* every row was written: no poison row is left */
	for (int64_t t = 0; t < TOKENS; t++) {
		int all_poison = 1;
		for (int64_t i = 0; i < HEAD_DIM && all_poison; i++)
			all_poison = k1[t * HEAD_DIM + i] == POISON && v1[t * HEAD_DIM + i] == POISON;
		ck_assert_msg(!all_poison, "row %lld was not written", (long long)t);
	}
	free(in);
	free(slots);
	free(k1);
	free(v1);
	free(k5);
	free(v5);
}
END_TEST

static Suite *threads_suite(void)
{
	Suite *s = suite_create("cpu_threads");
	TCase *tc = tcase_create("count");
	tcase_add_test(tc, test_default_is_the_processors);
	tcase_add_test(tc, test_omp_num_threads_first_value);
	tcase_add_test(tc, test_fp8kv_num_threads_comes_first);
	tcase_add_test(tc, test_bad_fp8kv_num_threads_is_an_error);
	tcase_add_test(tc, test_a_long_quantize_runs_on_the_backends_threads);
	tcase_add_test(tc, test_a_long_cache_write_runs_on_the_backends_threads);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(threads_suite());
	srunner_run_all(sr, CK_NORMAL);
	const int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
