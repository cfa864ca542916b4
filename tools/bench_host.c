/* SPDX-License-Identifier: MIT */
/*
 * bench_host.c - the host as a bench device (wall-clock timing, an OpenMP
 * streaming ceiling, no launch floor), and what every case shares: the
 * clock, medians and the inputs.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_median(double *t, int n)
{
	qsort(t, (size_t)n, sizeof t[0], cmp_double);
	return t[n / 2];
}

void bench_fill_bf16(uint16_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* exponent 2^-6 .. 2^3, random sign and mantissa */
		const uint16_t exp = (uint16_t)(121 + (x >> 40) % 10);
		p[i] = (uint16_t)(((x >> 63) << 15) | (exp << 7) | ((x >> 20) & 0x7F));
	}
}

static void *host_stream_create(void) { return NULL; }
static void host_stream_destroy(void *s) { (void)s; }

static int host_time(bench_work_fn work, void *arg, void *stream, int per_sample, int graph,
		     double *seconds)
{
	(void)graph;
	for (int i = 0; i < 3; i++) /* warm-up: page faults, thread team */
		if (work(arg, stream))
			return -1;
	const double t0 = bench_now();
	for (int i = 0; i < per_sample; i++)
		if (work(arg, stream))
			return -1;
	*seconds = (bench_now() - t0) / per_sample;
	return 0;
}

static int host_stream_ceiling(uint8_t *dst, const uint16_t *src, size_t count, void *stream)
{
	(void)stream;
	const int64_t n = (int64_t)count;
#pragma omp parallel for schedule(static)
	for (int64_t i = 0; i < n; i++)
		dst[i] = (uint8_t)(src[i] >> 8);
	return 0;
}

static size_t host_cache_bytes(void)
{
#ifdef _SC_LEVEL3_CACHE_SIZE
	const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
	if (l3 > 0)
		return (size_t)l3;
#endif
	return 32u << 20;
}

/* No launch floor: a call on the host has no launch to pay. */
const bench_device bench_host_device = {
	"host", host_stream_create, host_stream_destroy, host_time, host_stream_ceiling,
	host_cache_bytes, NULL,
};

double bench_conversion_rate(fp8kv_backend *b, fp8kv_dtype input, fp8kv_dtype format, int scaled)
{
	/* below the library's parallel threshold, so this runs on one thread,
	 * and small enough to stay in cache: the conversion, not memory */
	enum { N = 16384 };
	static uint16_t src[2 * N];
	static uint8_t dst[N];
	const float s = 0.05f;
	bench_fill_bf16(src, 2 * N, 7);
	const double t0 = bench_now();
	int reps = 0;
	do {
		for (int i = 0; i < 64; i++)
			if (fp8kv_quantize(b, dst, format, src, input, N,
					   scaled ? FP8KV_SCALE_TENSOR : FP8KV_SCALE_ONE, &s,
					   FP8KV_SATURATE, NULL, NULL) != FP8KV_OK)
				return -1;
		reps += 64;
	} while (bench_now() - t0 < 0.3);
	return (double)reps * N / (bench_now() - t0);
}
