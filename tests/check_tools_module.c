/* SPDX-License-Identifier: MIT */
/*
 * check_tools_module.c - fp8kv_bench_faulty.so, a bench module for the test
 * backend "faulty" (a host backend, tests/faulty_backend.c), so that
 * tests/check_tools.sh can have fp8kv-bench find, load and use a module on
 * a machine without a GPU.  It times on the host clock.  With
 * FP8KV_TEST_BENCH_ABI set, it claims that ABI instead of its own, as a
 * module of another release would.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <time.h>

#include "bench_device.h"

static void *fake_stream_create(void) { return NULL; }
static void fake_stream_destroy(void *stream) { (void)stream; }

static int fake_time(bench_work_fn work, void *arg, void *stream, int per_sample, int graph,
		     double *seconds)
{
	struct timespec t0, t1;
	(void)graph;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < per_sample; i++)
		if (work(arg, stream))
			return -1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* never zero: the bench divides by it */
	*seconds = ((double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec) +
		    1e-9) / per_sample;
	return 0;
}

static int fake_stream_ceiling(uint8_t *dst, const uint16_t *src, size_t count, void *stream)
{
	(void)stream;
	for (size_t i = 0; i < count; i++)
		dst[i] = (uint8_t)(src[i] >> 8);
	return 0;
}

static size_t fake_cache_bytes(void) { return 1u << 20; }

/* an empty launch: the bench's floor path, timed on the host clock */
static int fake_launch_floor(void *arg, void *stream)
{
	(void)arg;
	(void)stream;
	return 0;
}

static const bench_device fake_device = {
	"fake", fake_stream_create, fake_stream_destroy, fake_time, fake_stream_ceiling,
	fake_cache_bytes, fake_launch_floor,
};

__attribute__((visibility("default"))) const bench_device *fp8kv_bench_device_entry(unsigned abi)
{
	const char *claimed = getenv("FP8KV_TEST_BENCH_ABI");
	const unsigned own = claimed ? (unsigned)strtoul(claimed, NULL, 10) : BENCH_DEVICE_ABI;
	return abi == own ? &fake_device : NULL;
}
