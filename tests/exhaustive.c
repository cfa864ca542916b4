/* SPDX-License-Identifier: MIT */
/*
 * exhaustive.c - every one of the 2^32 fp32 inputs, in the four FP8 formats
 * and both overflow policies, converted by the library and held to the
 * oracle (validate/oracle.c).  Run by `make check-exhaustive`; minutes.
 *
 *   exhaustive [--bulk | --scalar] [--backend NAME] [--verify N] [FIRST [LAST]]
 *
 * FIRST and LAST (inclusive, decimal or 0x-hex) limit the sweep to a range
 * of fp32 bit patterns, e.g. `exhaustive 0x3F000000 0x3FFFFFFF` for a quick
 * run.  Each input goes through fp8kv_quantize (f32 input, SCALE_ONE, in
 * large chunks on the backend, "cpu" unless --backend; its overflow counter
 * is checked too) and through fp8kv_from_float; --bulk or --scalar keeps one
 * of the two.  Exits 0 when nothing differs, 1 otherwise (2: could not run).
 * About 3 minutes on 2 cores.
 *
 * The oracle's encoder searches all 256 codes for each value: too slow for
 * 2^35 conversions.  The sweep reads its answers from oracle_tabulate()'s
 * table instead (validate/oracle.h says why that is exact and how the table is
 * checked against the search first, here on --verify N random patterns per
 * format and policy, default 2^22).
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "float_bits.h"
#include "fp8kv.h"
#include "oracle.h"

#define NFORMATS 4
#define NRUNS (NFORMATS * 2)
#define CHUNK (1u << 24)
#define MAX_REPORTED 20

static const fp8kv_dtype formats[NFORMATS] = {FP8KV_E4M3FN, FP8KV_E4M3FNUZ,
					      FP8KV_E5M2, FP8KV_E5M2FNUZ};
static const char *const format_names[NFORMATS] = {"e4m3fn", "e4m3fnuz", "e5m2",
						   "e5m2fnuz"};
static const char *const policy_names[2] = {"saturate", "nonsaturating"};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t parse_u64(const char *s)
{
	return strtoull(s, NULL, 0);
}

int main(int argc, char **argv)
{
	const char *backend_name = "cpu";
	int use_bulk = 1, use_scalar = 1;
	uint64_t first = 0, last = 0xFFFFFFFFull, verify = 1u << 22;
	int npos = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--scalar")) {
			use_bulk = 0;
			use_scalar = 1;
		} else if (!strcmp(argv[i], "--bulk")) {
			use_bulk = 1;
			use_scalar = 0;
		} else if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
			backend_name = argv[++i];
		} else if (!strcmp(argv[i], "--verify") && i + 1 < argc) {
			verify = parse_u64(argv[++i]);
		} else if (argv[i][0] != '-' && npos < 2) {
			if (npos++ == 0)
				first = parse_u64(argv[i]);
			else
				last = parse_u64(argv[i]);
		} else {
			fprintf(stderr,
				"usage: %s [--bulk | --scalar] [--backend NAME] [--verify N] "
				"[FIRST [LAST]]\n", argv[0]);
			return 2;
		}
	}
	if (first > last || last > 0xFFFFFFFFull) {
		fprintf(stderr, "bad range 0x%" PRIx64 "..0x%" PRIx64 "\n", first, last);
		return 2;
	}

	double t0 = now();
	int threads = 1;
#ifdef _OPENMP
	threads = omp_get_max_threads();
#endif
	printf("exhaustive: fp32 0x%08" PRIx64 "..0x%08" PRIx64 ", 4 formats x 2 policies, "
	       "%s%s%s, %d thread(s)\n", first, last, use_bulk ? "fp8kv_quantize" : "",
	       use_bulk && use_scalar ? " + " : "", use_scalar ? "fp8kv_from_float" : "",
	       threads);
	char why[160];
	if (oracle_tabulate(verify, why, sizeof why)) {
		printf("exhaustive: the oracle's table failed its checks: %s\n", why);
		return 1;
	}
	printf("oracle table built and checked (%" PRIu64 " random values per run) in %.1f s\n",
	       verify, now() - t0);
	fflush(stdout);

	fp8kv_backend *be = NULL;
	void *dsrc = NULL, *ddst = NULL;
	uint64_t *dcount = NULL;
	float *src = malloc((size_t)CHUNK * sizeof *src);
	uint8_t *got = malloc(CHUNK);
	if (!src || !got)
		return 2;
	if (use_bulk) {
		fp8kv_status st = fp8kv_backend_open(backend_name, &be);
		if (st != FP8KV_OK) {
			fprintf(stderr, "backend %s: %s\n", backend_name, fp8kv_last_error());
			return 2;
		}
		if (fp8kv_buffer_alloc(be, (size_t)CHUNK * sizeof(float), &dsrc) != FP8KV_OK ||
		    fp8kv_buffer_alloc(be, CHUNK, &ddst) != FP8KV_OK ||
		    fp8kv_buffer_alloc(be, sizeof(uint64_t), (void **)&dcount) != FP8KV_OK) {
			fprintf(stderr, "buffers: %s\n", fp8kv_last_error());
			return 2;
		}
	}

	uint64_t total = last - first + 1, done = 0, mismatches = 0, reported = 0;
	uint64_t next_report = 0;
	double t_sweep = now();
	for (uint64_t base = first; base <= last; base += CHUNK) {
		uint64_t n64 = last - base + 1 < CHUNK ? last - base + 1 : CHUNK;
		int64_t n = (int64_t)n64;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
		for (int64_t i = 0; i < n; i++)
			src[i] = float_of_bits((uint32_t)(base + (uint64_t)i));
		if (use_bulk &&
		    fp8kv_buffer_upload(be, dsrc, src, (size_t)n * sizeof(float)) != FP8KV_OK) {
			fprintf(stderr, "upload: %s\n", fp8kv_last_error());
			return 2;
		}

		for (int run = 0; run < NRUNS; run++) {
			fp8kv_dtype format = formats[run / 2];
			fp8kv_overflow ovf = (fp8kv_overflow)(run % 2);
			for (int mode = 0; mode < 2; mode++) {
				if ((mode == 0 && !use_bulk) || (mode == 1 && !use_scalar))
					continue;
				uint64_t start = 1000, end = 0, want_count = 0, bad = 0;
				if (mode == 0) {
					fp8kv_status st;
					st = fp8kv_buffer_upload(be, dcount, &start, sizeof start);
					if (st == FP8KV_OK)
						st = fp8kv_quantize(be, ddst, format, dsrc, FP8KV_F32,
								    (size_t)n, FP8KV_SCALE_ONE, NULL,
								    ovf, dcount, NULL);
					if (st == FP8KV_OK)
						st = fp8kv_backend_synchronize(be, NULL);
					if (st == FP8KV_OK)
						st = fp8kv_buffer_download(be, got, ddst, (size_t)n);
					if (st == FP8KV_OK)
						st = fp8kv_buffer_download(be, &end, dcount, sizeof end);
					if (st != FP8KV_OK) {
						fprintf(stderr, "quantize: %s\n", fp8kv_last_error());
						return 2;
					}
				}
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(+ : want_count, bad)
#endif
				for (int64_t i = 0; i < n; i++) {
					uint32_t b = (uint32_t)(base + (uint64_t)i);
					uint16_t w = oracle_encode_tabulated(b, run);
					uint8_t g = mode == 0 ? got[i] : fp8kv_from_float(src[i], format, ovf);
					want_count += (uint64_t)(w >> 8);
					if (g != (uint8_t)w) {
						bad++;
#ifdef _OPENMP
#pragma omp critical(report)
#endif
						if (reported < MAX_REPORTED) {
							reported++;
							printf("MISMATCH %s %s %s: y = 0x%08" PRIx32
							       " (%a): library 0x%02x, oracle 0x%02x\n",
							       mode ? "fp8kv_from_float" : "fp8kv_quantize",
							       format_names[run / 2], policy_names[ovf], b,
							       (double)src[i], g, (unsigned)(w & 0xFF));
						}
					}
				}
				mismatches += bad;
				if (mode == 0 && end - start != want_count) {
					mismatches++;
					printf("MISMATCH overflow_count %s %s, chunk 0x%08" PRIx64
					       ": added %" PRIu64 ", oracle %" PRIu64 "\n",
					       format_names[run / 2], policy_names[ovf], base,
					       end - start, want_count);
				}
			}
		}
		done += n64;
		if (done >= next_report || done == total) {
			double t = now() - t_sweep;
			printf("[%5.1f%%] up to 0x%08" PRIx64 ", %.0f s, %" PRIu64 " mismatches, "
			       "about %.0f s left\n", 100.0 * (double)done / (double)total,
			       base + n64 - 1, now() - t0, mismatches,
			       t * (double)(total - done) / (double)done);
			fflush(stdout);
			next_report = done + total / 32;
		}
	}

	if (be) {
		fp8kv_buffer_free(be, dsrc);
		fp8kv_buffer_free(be, ddst);
		fp8kv_buffer_free(be, dcount);
		fp8kv_backend_close(be);
	}
	free(src);
	free(got);
	printf("exhaustive: %" PRIu64 " inputs x %d runs in %.1f s: %" PRIu64 " mismatches\n",
	       total, NRUNS, now() - t0, mismatches);
	return mismatches ? 1 : 0;
}
