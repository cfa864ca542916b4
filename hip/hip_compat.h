/* SPDX-License-Identifier: MIT */
/*
 * hip_compat.h - the HIP runtime API, on either platform.
 *
 * The HIP sources of fp8kv (hip/ and tools/) are written against HIP.  For
 * AMD GPUs hipcc compiles them with <hip/hip_runtime.h>.  For NVIDIA GPUs
 * nvcc compiles the same sources (-x cu) against the CUDA runtime directly:
 * HIP's own NVIDIA headers are tied to one CUDA release (those of Debian's
 * ROCm 5.2 do not compile against CUDA 13), so this file maps the hip*
 * names the sources use to their cuda* equivalents.  Kernel language
 * (__global__, __shared__, atomics, vector types) is common to both and
 * needs no mapping.  Two things have wrappers of their own here:
 * programmatic dependent launch (fp8kv_launch), which HIP lacks, and an
 * atomic whose answer nothing waits for until it is read
 * (fp8kv_atomic_add_if).
 */
#ifndef FP8KV_HIP_COMPAT_H
#define FP8KV_HIP_COMPAT_H

#if defined(__NVCC__)

#include <cuda_runtime.h>

/* errors */
#define hipError_t cudaError_t
#define hipSuccess cudaSuccess
#define hipGetErrorString cudaGetErrorString
#define hipGetLastError cudaGetLastError

/* devices */
#define hipGetDeviceCount cudaGetDeviceCount
#define hipGetDevice cudaGetDevice
#define hipSetDevice cudaSetDevice
#define hipDeviceProp_t cudaDeviceProp
#define hipGetDeviceProperties cudaGetDeviceProperties
#define hipDeviceGetAttribute cudaDeviceGetAttribute
#define hipDeviceAttributeL2CacheSize cudaDevAttrL2CacheSize
#define hipDeviceSynchronize cudaDeviceSynchronize
#define hipFuncAttributes cudaFuncAttributes
#define hipFuncGetAttributes cudaFuncGetAttributes

/* memory */
#define hipMalloc cudaMalloc
#define hipFree cudaFree
#define hipHostMalloc cudaHostAlloc
#define hipHostFree cudaFreeHost
#define hipHostMallocMapped cudaHostAllocMapped
/* CUDA's pinned memory is always coherent (the GPU does not cache it) */
#define hipHostMallocCoherent cudaHostAllocDefault
#define hipHostGetDevicePointer cudaHostGetDevicePointer
#define hipMemcpy cudaMemcpy
#define hipMemcpyHostToDevice cudaMemcpyHostToDevice
#define hipMemcpyDeviceToHost cudaMemcpyDeviceToHost
#define hipMemsetAsync cudaMemsetAsync

/* streams and events */
#define hipStream_t cudaStream_t
#define hipStreamCreateWithFlags cudaStreamCreateWithFlags
#define hipStreamNonBlocking cudaStreamNonBlocking
#define hipStreamDestroy cudaStreamDestroy
#define hipStreamSynchronize cudaStreamSynchronize
#define hipEvent_t cudaEvent_t
#define hipEventCreate cudaEventCreate
#define hipEventDestroy cudaEventDestroy
#define hipEventRecord cudaEventRecord
#define hipEventSynchronize cudaEventSynchronize
#define hipEventElapsedTime cudaEventElapsedTime

/* graphs */
#define hipStreamIsCapturing cudaStreamIsCapturing
#define hipStreamCaptureStatus cudaStreamCaptureStatus
#define hipStreamCaptureStatusNone cudaStreamCaptureStatusNone
#define hipStreamCaptureStatusActive cudaStreamCaptureStatusActive
#define hipStreamBeginCapture cudaStreamBeginCapture
#define hipStreamCaptureModeThreadLocal cudaStreamCaptureModeThreadLocal
#define hipStreamEndCapture cudaStreamEndCapture
#define hipGraph_t cudaGraph_t
#define hipGraphExec_t cudaGraphExec_t
#define hipGraphLaunch cudaGraphLaunch
#define hipGraphExecDestroy cudaGraphExecDestroy
#define hipGraphDestroy cudaGraphDestroy
#if CUDART_VERSION >= 12000
/* CUDA 12 dropped the error-node/log arguments HIP still has */
static inline cudaError_t fp8kv_compat_graph_instantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
							 cudaGraphNode_t *error_node,
							 char *log, size_t log_size)
{
	(void)error_node;
	(void)log;
	(void)log_size;
	return cudaGraphInstantiate(exec, graph, 0);
}
#define hipGraphInstantiate fp8kv_compat_graph_instantiate
#else
#define hipGraphInstantiate cudaGraphInstantiate
#endif

#else /* AMD */

#include <hip/hip_runtime.h>

#endif

#include <stdlib.h>
#include <string.h>
#include <utility>

/*
 * Programmatic dependent launch (CUDA 11.8 and later, code for sm_90 and
 * later).  A kernel launched by fp8kv_launch(..., dependent = 1) may be
 * scheduled while the kernel before it on the stream is still finishing,
 * so that its launch latency hides behind that kernel's tail.  Such a
 * kernel must call fp8kv_begin_after_prior_grid() before its first access
 * to global memory: that waits until the kernel before has completed and
 * its writes are visible, exactly as ordinary stream order would, then
 * lets the kernel after it be scheduled early in turn (that kernel still
 * waits, if it asked for early launch, until this one completes).
 * Elsewhere the launch is an ordinary one and the call does nothing.
 *
 * fp8kv_dependent_launch_usable(kernel): may kernel be launched so on the
 * current device?  Only if the code the device runs was compiled for
 * compute_90 or later (its ptxVersion), since only that code holds the
 * wait: a build for sm_80 alone runs on an H100 through its PTX, without
 * it.  FP8KV_HIP_DEPENDENT_LAUNCH=0 in the environment also says no.
 */
#if defined(__NVCC__) && CUDART_VERSION >= 11080
template <typename... Params>
static inline int fp8kv_dependent_launch_usable(void (*kernel)(Params...))
{
	const char *env = getenv("FP8KV_HIP_DEPENDENT_LAUNCH");
	cudaFuncAttributes attr;
	if (env && strcmp(env, "0") == 0)
		return 0;
	if (cudaFuncGetAttributes(&attr, (const void *)kernel) != cudaSuccess) {
		(void)cudaGetLastError();
		return 0;
	}
	return attr.ptxVersion >= 90;
}

template <typename... Params, typename... Args>
static inline cudaError_t fp8kv_launch(void (*kernel)(Params...), unsigned int grid,
				       unsigned int block, cudaStream_t stream, int dependent,
				       Args &&...args)
{
	cudaLaunchAttribute attr[1];
	attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
	attr[0].val.programmaticStreamSerializationAllowed = dependent ? 1 : 0;
	cudaLaunchConfig_t config = {};
	config.gridDim = dim3(grid);
	config.blockDim = dim3(block);
	config.stream = stream;
	config.attrs = attr;
	config.numAttrs = 1;
	return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}
#else
template <typename... Params>
static inline int fp8kv_dependent_launch_usable(void (*kernel)(Params...))
{
	(void)kernel;
	return 0;
}

template <typename... Params, typename... Args>
static inline hipError_t fp8kv_launch(void (*kernel)(Params...), unsigned int grid,
				      unsigned int block, hipStream_t stream, int dependent,
				      Args &&...args)
{
	(void)dependent;
	kernel<<<grid, block, 0, stream>>>(std::forward<Args>(args)...);
	return hipGetLastError();
}
#endif

static __device__ __forceinline__ void fp8kv_begin_after_prior_grid(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
	asm volatile("griddepcontrol.wait;" ::: "memory");
	asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/*
 * result = atomicAdd(address, value) (address in global memory) where pred
 * holds, else result stays.  On NVIDIA, inline PTX with result as an
 * in-out operand: the answer lands in result's own register, where nvcc
 * would merge a value assigned under a branch into a new register right
 * after it, and that copy waits for the atomic's whole round trip there.
 */
static __device__ __forceinline__ void fp8kv_atomic_add_if(bool pred, unsigned long long *address,
							   unsigned long long value,
							   unsigned long long &result)
{
#if defined(__CUDA_ARCH__)
	// a global address: a generic atom also tests for shared memory,
	// and waits for that answer
	const unsigned long long global = (unsigned long long)__cvta_generic_to_global(address);
	asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.u32 p, %3, 0;\n\t"
		     "@p atom.global.add.u64 %0, [%1], %2;\n\t}"
		     : "+l"(result)
		     : "l"(global), "l"(value), "r"((unsigned int)pred)
		     : "memory");
#else
	if (pred)
		result = atomicAdd(address, value);
#endif
}

#endif /* FP8KV_HIP_COMPAT_H */
