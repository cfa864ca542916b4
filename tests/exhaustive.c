/* SPDX-License-Identifier: MIT */
/*
 * exhaustive.c - every one of the 2^32 fp32 inputs, in the four FP8 formats
 * and both overflow policies, converted by the library and held to the
 * oracle (tests/oracle.c).  Run by `make check-exhaustive`; minutes.
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
 * 2^35 conversions.  The sweep uses a table made from it instead, resting on
 * one fact that is checked before the sweep starts: every decision boundary
 * of the rounding (the midpoint between two neighbouring FP8 values, or
 * between the largest one and max + ulp(max)) is a bf16 value, i.e. an fp32
 * value whose low 16 bits are 0.  So all fp32 values sharing their high 16
 * bits P and having nonzero low bits lie strictly between two neighbouring
 * bf16 values and convert alike, and the table holds, for each P, the
 * oracle's answer for low bits 0 and for low bits 1.  Before use the table is
 * also checked against the 256-code search at low bits 0xFFFF (rounding is
 * monotone, so equal ends mean a constant interval) and on --verify N
 * (default 2^22) random patterns per format and policy.
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

/* table[run][prefix][tail != 0]: code | overflow << 8 */
static uint16_t (*table)[65536][2];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float f_of(uint32_t b)
{
	float f;
	memcpy(&f, &b, sizeof f);
	return f;
}

static uint16_t slow(uint32_t bits, int run)
{
	int o;
	uint8_t c = oracle_encode(f_of(bits), formats[run / 2], (fp8kv_overflow)(run % 2), &o);
	return (uint16_t)(c | o << 8);
}

static inline uint16_t fast(uint32_t bits, int run)
{
	return table[run][bits >> 16][(bits & 0xFFFF) != 0];
}

/* The fact the table rests on: every rounding boundary is a bf16 value. */
static int boundaries_are_bf16(void)
{
	int ok = 1;
	for (int f = 0; f < NFORMATS; f++) {
		double v[260];
		int n = 0;
		for (int c = 0; c < 128; c++) {
			double x = oracle_decode((uint8_t)c, formats[f]);
			if (!oracle_is_nan(x) && x < 1e300)
				v[n++] = x; /* codes 0..0x7F ascend with value */
		}
		for (int i = 1; i < n; i++)
			if (!(v[i] > v[i - 1])) {
				fprintf(stderr, "%s: codes not ascending at %d\n", format_names[f], i);
				ok = 0;
			}
		v[n] = v[n - 1] + (v[n - 1] - v[n - 2]); /* max + ulp(max) */
		n++;
		for (int i = 0; i + 1 < n; i++) {
			double mid = (v[i] + v[i + 1]) / 2;
			float m = (float)mid;
			uint32_t b;
			memcpy(&b, &m, sizeof b);
			if ((double)m != mid || (b & 0xFFFF) != 0) {
				fprintf(stderr, "%s: boundary %a is not a bf16 value\n",
					format_names[f], mid);
				ok = 0;
			}
		}
	}
	return ok;
}

static int build_table(uint64_t verify)
{
	table = malloc(sizeof(*table) * NRUNS);
	if (!table)
		return 0;
	long split = 0, wrong = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1024) reduction(+ : split)
#endif
	for (int64_t i = 0; i < (int64_t)NRUNS * 65536; i++) {
		int run = (int)(i >> 16);
		uint32_t p = (uint32_t)(i & 0xFFFF) << 16;
		table[run][p >> 16][0] = slow(p, run);
		table[run][p >> 16][1] = slow(p | 1, run);
		if (slow(p | 0xFFFF, run) != table[run][p >> 16][1])
			split++;
	}
	if (split) {
		fprintf(stderr, "table: %ld prefixes do not convert alike\n", split);
		return 0;
	}
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : wrong)
#endif
	for (int run = 0; run < NRUNS; run++) {
		uint64_t s = 0x243F6A8885A308D3ull ^ (uint64_t)run;
		for (uint64_t k = 0; k < verify; k++) {
			s ^= s << 13; /* xorshift64 */
			s ^= s >> 7;
			s ^= s << 17;
			uint32_t b = (uint32_t)(s >> 16);
			if (k & 1) /* half of them where the FP8 values are */
				b = (b & 0x807FFFFFu) | (uint32_t)(103 + (s >> 56) % 45) << 23;
			if (fast(b, run) != slow(b, run))
				wrong++;
		}
	}
	if (wrong) {
		fprintf(stderr, "table: %ld random values differ from the 256-code search\n",
			wrong);
		return 0;
	}
	return 1;
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
	if (!boundaries_are_bf16() || !build_table(verify)) {
		printf("exhaustive: the oracle's table failed its checks\n");
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
			src[i] = f_of((uint32_t)(base + (uint64_t)i));
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
					uint16_t w = fast(b, run);
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
	free(table);
	printf("exhaustive: %" PRIu64 " inputs x %d runs in %.1f s: %" PRIu64 " mismatches\n",
	       total, NRUNS, now() - t0, mismatches);
	return mismatches ? 1 : 0;
}
