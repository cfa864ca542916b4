/* SPDX-License-Identifier: MIT */
/*
 * bench_device.h - what fp8kv-bench needs from a device beyond the library:
 * a stream, a timer, the streaming ceiling, graph replay and the launch
 * floor.  The host implementation is in bench_host.c; a GPU one is a module,
 * fp8kv_bench_NAME.so for the backend NAME (bench_gpu.hip for "hip"),
 * that bench_module.c loads, so that fp8kv-bench needs no GPU runtime.
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
	/* The launch floor (B-FLOOR): enqueues one empty kernel on stream
	 * through the library's launch path (a dependent launch where the
	 * library makes them), as the work of time(); arg is unused.  NULL
	 * where calls have no launch to pay (the host). */
	bench_work_fn launch_floor;
} bench_device;

/* A module's one export: its table, or NULL when abi is not the
 * BENCH_DEVICE_ABI it was built with (a module of another release). */
#define BENCH_DEVICE_ABI 2u
#define BENCH_DEVICE_ENTRY "fp8kv_bench_device_entry"
typedef const bench_device *(*bench_device_entry_fn)(unsigned abi);

/* The device of the backend named backend ("hip:0": fp8kv_bench_hip.so),
 * from its module; NULL, with the reason in why, when there is none.
 * The module stays loaded until the program exits. */
const bench_device *bench_device_load(const char *backend, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif

#endif /* FP8KV_BENCH_DEVICE_H */
