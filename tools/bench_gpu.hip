// SPDX-License-Identifier: MIT
// bench_gpu.hip - fp8kv-bench on a GPU: events for timing, graphs so that
// small shapes are not measured as launch gaps, the streaming ceiling and
// the launch floor.
// Built as the module fp8kv_bench_hip.so, which fp8kv-bench loads for the
// hip backend (bench_module.c); it exports fp8kv_bench_device_entry only.
#include "hip_compat.h"

#include "bench_device.h"

// The yardstick: 8 elements per thread, one 16-byte load and one 8-byte
// store, each thread touching its bytes once; the high byte of each 16-bit
// element is kept, so no arithmetic hides the memory time.
static __global__ void stream_ceiling_kernel(uint2 *__restrict__ dst,
					     const uint4 *__restrict__ src, size_t vectors)
{
	fp8kv_begin_after_prior_grid();  // as the library's kernels begin
	const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= vectors)
		return;
	const uint4 x = src[i];
	uint2 y;
	y.x = ((x.x >> 8) & 0xFFu) | ((x.x >> 16) & 0xFF00u) | ((x.y << 8) & 0xFF0000u) |
	      (x.y & 0xFF000000u);
	y.y = ((x.z >> 8) & 0xFFu) | ((x.z >> 16) & 0xFF00u) | ((x.w << 8) & 0xFF0000u) |
	      (x.w & 0xFF000000u);
	dst[i] = y;
}

static __global__ void stream_ceiling_tail(uint8_t *dst, const uint16_t *src, size_t begin,
					   size_t count)
{
	const size_t i = begin + (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < count)
		dst[i] = (uint8_t)(src[i] >> 8);
}

// The launch floor: what a cache write must do before and after its work
// (wait for the kernel ahead, let the next one be scheduled), and nothing
// else, in one block of the write's size.
static __global__ void launch_floor_kernel(int unused)
{
	fp8kv_begin_after_prior_grid();
	(void)unused;
}

// The ceiling launches as the library's kernels do (fp8kv_hip.hip,
// hip_open, decides the same way for its own), so that both gain the same
// overlap of one launch with the next.
static int gpu_dependent_launch(void)
{
	static int dependent = -1;
	if (dependent < 0)
		dependent = fp8kv_dependent_launch_usable(stream_ceiling_kernel);
	return dependent;
}

static int gpu_stream_ceiling(uint8_t *dst, const uint16_t *src, size_t count, void *stream)
{
	const hipStream_t s = (hipStream_t)stream;
	const size_t vectors = count / 8, threads = 256;
	if (vectors &&
	    fp8kv_launch(stream_ceiling_kernel, (unsigned)((vectors + threads - 1) / threads),
			 (unsigned)threads, s, gpu_dependent_launch(), (uint2 *)dst,
			 (const uint4 *)src, vectors) != hipSuccess)
		return 1;
	if (count % 8)
		stream_ceiling_tail<<<1, 8, 0, s>>>(dst, src, vectors * 8, count);
	return hipGetLastError() != hipSuccess;
}

static int gpu_launch_floor(void *arg, void *stream)
{
	(void)arg;
	return fp8kv_launch(launch_floor_kernel, 1u, 256u, (hipStream_t)stream,
			    gpu_dependent_launch(), 0) != hipSuccess;
}

static void *gpu_stream_create(void)
{
	hipStream_t s = nullptr;
	if (hipStreamCreateWithFlags(&s, hipStreamNonBlocking) != hipSuccess)
		return nullptr;
	return (void *)s;
}

static void gpu_stream_destroy(void *stream)
{
	if (stream)
		(void)hipStreamDestroy((hipStream_t)stream);
}

static int gpu_time(bench_work_fn work, void *arg, void *stream, int per_sample, int use_graph,
		    double *seconds)
{
	const hipStream_t s = (hipStream_t)stream;
	hipEvent_t start, stop;
	hipGraph_t graph = nullptr;
	hipGraphExec_t exec = nullptr;
	float ms = 0;
	int rc = -1;

	if (hipEventCreate(&start) != hipSuccess)
		return -1;
	if (hipEventCreate(&stop) != hipSuccess) {
		(void)hipEventDestroy(start);
		return -1;
	}
	for (int i = 0; i < 3; i++) // warm-up: module load, first-touch
		if (work(arg, stream))
			goto out;
	if (hipStreamSynchronize(s) != hipSuccess)
		goto out;
	if (use_graph) {
		// the whole sample as one graph: the launch path must not sync
		if (hipStreamBeginCapture(s, hipStreamCaptureModeThreadLocal) != hipSuccess)
			goto out;
		for (int i = 0; i < per_sample; i++)
			if (work(arg, stream)) {
				(void)hipStreamEndCapture(s, &graph);
				goto out;
			}
		if (hipStreamEndCapture(s, &graph) != hipSuccess ||
		    hipGraphInstantiate(&exec, graph, nullptr, nullptr, 0) != hipSuccess ||
		    hipGraphLaunch(exec, s) != hipSuccess || hipStreamSynchronize(s) != hipSuccess)
			goto out;
	}
	(void)hipEventRecord(start, s);
	if (use_graph) {
		if (hipGraphLaunch(exec, s) != hipSuccess)
			goto out;
	} else {
		for (int i = 0; i < per_sample; i++)
			if (work(arg, stream))
				goto out;
	}
	(void)hipEventRecord(stop, s);
	if (hipEventSynchronize(stop) != hipSuccess ||
	    hipEventElapsedTime(&ms, start, stop) != hipSuccess)
		goto out;
	*seconds = 1e-3 * ms / per_sample;
	rc = 0;
out:
	if (exec)
		(void)hipGraphExecDestroy(exec);
	if (graph)
		(void)hipGraphDestroy(graph);
	(void)hipEventDestroy(start);
	(void)hipEventDestroy(stop);
	return rc;
}

static size_t gpu_cache_bytes(void)
{
	int device = 0, l2 = 0;
	if (hipGetDevice(&device) != hipSuccess ||
	    hipDeviceGetAttribute(&l2, hipDeviceAttributeL2CacheSize, device) != hipSuccess)
		return 64u << 20;  // larger than any L2 so far
	return (size_t)l2;
}

static const bench_device gpu_device = {
	"gpu", gpu_stream_create, gpu_stream_destroy, gpu_time, gpu_stream_ceiling,
	gpu_cache_bytes, gpu_launch_floor,
};

extern "C" __attribute__((visibility("default"))) const bench_device *
fp8kv_bench_device_entry(unsigned abi)
{
	return abi == BENCH_DEVICE_ABI ? &gpu_device : nullptr;
}
