/* SPDX-License-Identifier: MIT */
/*
 * hip_compat.h - the HIP runtime API, on either platform.
 *
 * The HIP sources of fp8kv (hip/ and tools/) are written against HIP.  For
 * AMD GPUs hipcc compiles them with <hip/hip_runtime.h>.  For NVIDIA GPUs
 * nvcc compiles the same sources (-x cu) against the CUDA runtime directly:
 * HIP's own NVIDIA headers are tied to one CUDA release (those of Debian's
 * ROCm 5.2 do not compile against CUDA 13), so this file maps the hip*
 * names the sources use to their cuda* equivalents, and nothing else.
 * Kernel language (__global__, __shared__, atomics, vector types) is
 * common to both and needs no mapping.
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

#endif /* FP8KV_HIP_COMPAT_H */
