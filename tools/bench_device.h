/* SPDX-License-Identifier: MIT */
/*
 * bench_device.h - what fp8kv-bench needs from a device beyond the library:
 * a stream, a timer, the streaming ceiling and graph replay.  The host
 * implementation is in fp8kv-bench.c; the GPU one in bench_gpu.hip, linked
 * only when the HIP backend is built (bench_gpu_none.c otherwise).
 */
#ifndef FP8KV_BENCH_DEVICE_H
#define FP8KV_BENCH_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Work to time: enqueues one call on stream, returns 0 on success. */
typedef int (*bench_work_fn)(void *arg, void *stream);

typedef struct bench_device {
	const char *name;
	/* stream to pass to fp8kv calls (NULL on the host) */
	void *(*stream_create)(void);
	void (*stream_destroy)(void *stream);
	/* seconds per call of work, after a warm-up: per_sample calls back to
	 * back, timed once (through a graph on a GPU when graph is nonzero).
	 * The caller takes medians over rounds of its own. */
	int (*time)(bench_work_fn work, void *arg, void *stream, int per_sample, int graph,
		    double *seconds);
	/* The yardstick: read count 2-byte elements from src, write count bytes
	 * to dst, contiguous, no conversion. */
	int (*stream_ceiling)(uint8_t *dst, const uint16_t *src, size_t count, void *stream);
	/* Bytes of the last-level cache that consecutive calls could share;
	 * the bench rotates over copies of its buffers to stay out of it. */
	size_t (*cache_bytes)(void);
} bench_device;

/* The GPU implementation, or NULL when the HIP backend is not built. */
const bench_device *bench_gpu_device(void);

#ifdef __cplusplus
}
#endif

#endif /* FP8KV_BENCH_DEVICE_H */
