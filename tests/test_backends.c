/* SPDX-License-Identifier: MIT */
/*
 * test_backends.c - every non-CPU backend against the CPU backend (the
 * golden reference, itself held to the oracle by test_cache_write and
 * test_convert), byte for byte on full downloaded images.
 *
 * The backends come from FP8KV_TEST_BACKENDS (names separated by commas or
 * spaces; default "hip").  A backend that is absent (FP8KV_ENODEV) is
 * skipped; when none opens the program exits 77, the Automake code for a
 * skipped test.  "cpu" in the list is allowed: it compares a second CPU
 * handle with the first, a self-check of this program on machines without
 * a GPU (FP8KV_TEST_BACKENDS=cpu).
 *
 * GPU contexts do not survive fork(), so Check runs without forking
 * (CK_NOFORK) and the backends are opened once, in main, before the suite
 * is built.  Each group prints a summary line to stdout:
 *   [hip:0 vs cpu] cache matrix: cases 2448, bytes compared ..., differing 0
 *
 * Groups (each a loop test over the backends):
 *   cache_matrix       the conversion product (3 inputs x {copy, 4 FP8} x 4
 *                      scale modes x 2 policies = 102) x a pairwise covering
 *                      array of layout {NHD, HND, strided} x head dims
 *                      {128/128, 96/64, 40/24} x block size {1, 16, 64} x
 *                      tokens {0, 1, 300} x swa x slot type, 8 heads mostly;
 *                      poisoned caches, counters, amax, ERANGE status and
 *                      message (reported by the call or by synchronize);
 *   long_launches      calls of 8-57 million elements, long enough for a
 *                      GPU's multi-wave launch shapes (skipped for "cpu");
 *   one_vs_tensor      implicit ONE == TENSOR 1.0 on the backend itself;
 *   erange             out-of-range tokens; the error is reported once;
 *   quantize           all 2^16 f16/bf16 inputs (and 2^20 f32) x formats x
 *                      policies x scales through fp8kv_quantize;
 *   dequantize         all 256 codes x formats x output dtypes x scales;
 *   amax               fp8kv_amax on buffers with NaN/Inf;
 *   check_slots        fp8kv_check_slots on constructed mappings;
 *   group_matrix, group_long  fp8kv_reshape_and_cache_grouped: every rule
 *                      x format x input, G, e2m1 packing, interleaved
 *                      scales, special groups (test_backends_group.c);
 *   mla_matrix, mla_long  fp8kv_concat_and_cache_mla, plain and DS, with
 *                      NaN/Inf/zero tiles (test_backends_mla.c).
 * The cache write groups are in test_backends_cache.c, the flat ones in
 * test_backends_flat.c; test_backends_io.c runs a call over a set of
 * buffers on both backends for the grouped and MLA groups.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp8kv.h"
#include "test_backends.h"

fp8kv_backend *ref;
fp8kv_backend *backends[MAX_BACKENDS];
char backend_names[MAX_BACKENDS][64];
static int nbackends;

void summary(int bi, const char *what, uint64_t cases, uint64_t bytes, uint64_t differing)
{
	printf("[%s vs cpu] %-16s cases %8llu, bytes compared %12llu, differing %llu\n",
	       backend_names[bi], what, (unsigned long long)cases, (unsigned long long)bytes,
	       (unsigned long long)differing);
	fflush(stdout);
}

int skip_on_cpu(int bi, const char *what, const char *why)
{
	if (strcmp(fp8kv_backend_name(backends[bi]), "cpu"))
		return 0;
	printf("[%s vs cpu] %-16s skipped: %s\n", backend_names[bi], what, why);
	return 1;
}

uint64_t next_random(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

double calm_value(uint64_t r, double top, float s)
{
	const double u = (double)(r >> 11) * 0x1p-53;
	return exp2(-12.0 + u * (top + 12.0)) * s;
}

static Suite *suite(void)
{
	Suite *s = suite_create("backends");
	/* one test case per file, so that CK_RUN_CASE=group (cache, flat,
	 * group, mla) runs one file's groups */
	static const char *const names[] = {"cache", "flat", "group", "mla"};
	void (*const adders[])(TCase *, int) = {add_cache_write_groups, add_flat_groups,
						 add_group_groups, add_mla_groups};
	for (int i = 0; i < 4; i++) {
		TCase *tc = tcase_create(names[i]);
		adders[i](tc, nbackends);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	const char *env = getenv("FP8KV_TEST_BACKENDS");
	char list[512];
	snprintf(list, sizeof list, "%s", env && *env ? env : "hip");

	fp8kv_status st = fp8kv_backend_open("cpu", &ref);
	if (st != FP8KV_OK) {
		fprintf(stderr, "test_backends: cannot open the cpu backend: %s\n", fp8kv_last_error());
		return 99;
	}
	for (char *save = NULL, *name = strtok_r(list, ", \t", &save); name;
	     name = strtok_r(NULL, ", \t", &save)) {
		fp8kv_backend *b = NULL;
		if (nbackends == MAX_BACKENDS)
			break;
		st = fp8kv_backend_open(name, &b);
		if (st == FP8KV_ENODEV) {
			printf("backend %s: not available (%s), skipped\n", name, fp8kv_last_error());
			continue;
		}
		if (st != FP8KV_OK) {
			fprintf(stderr, "test_backends: backend %s: %s: %s\n", name, fp8kv_strerror(st),
				fp8kv_last_error());
			return EXIT_FAILURE;
		}
		backends[nbackends] = b;
		snprintf(backend_names[nbackends], sizeof backend_names[0], "%s", fp8kv_backend_name(b));
		printf("backend %s: %s\n", fp8kv_backend_name(b), fp8kv_backend_device(b));
		nbackends++;
	}
	if (nbackends == 0) {
		printf("test_backends: no backend of \"%s\" is available; skipped\n",
		       env && *env ? env : "hip");
		fp8kv_backend_close(ref);
		return 77;
	}
	fflush(stdout);

	SRunner *sr = srunner_create(suite());
	srunner_set_fork_status(sr, CK_NOFORK); /* GPU contexts do not survive fork */
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	for (int i = 0; i < nbackends; i++)
		fp8kv_backend_close(backends[i]);
	fp8kv_backend_close(ref);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
