/* SPDX-License-Identifier: MIT */
/*
 * host_device.h - FP8KV_HD, the qualifiers of code that the C compiler (CPU
 * backend, front end) and hipcc or nvcc (the HIP module) both compile: one
 * definition for both, so that they cannot drift.  Such code is plain C,
 * static inline, with no libc calls.
 */
#ifndef FP8KV_HOST_DEVICE_H
#define FP8KV_HOST_DEVICE_H

/* HIP (hipcc, or clang in HIP mode, __HIP__) takes __forceinline__ from
 * its runtime header, which hip/hip_compat.h includes too; nvcc has it
 * built in.  So this header stands alone, wherever a room includes it. */
#if defined(__HIP__) || (defined(__HIPCC__) && !defined(__CUDACC__))
#include <hip/hip_runtime.h>
#endif

#if defined(__HIPCC__) || defined(__CUDACC__) || defined(__HIP__)
#define FP8KV_HD __host__ __device__ __forceinline__
#else
#define FP8KV_HD static inline
#endif

/* FP8KV_HD for a function of its arguments alone, one return statement,
 * which device code may then use in constant expressions (template
 * arguments, constexpr). */
#if defined(__HIPCC__) || defined(__CUDACC__) || defined(__HIP__)
#define FP8KV_HD_CONSTEXPR __host__ __device__ __forceinline__ constexpr
#else
#define FP8KV_HD_CONSTEXPR static inline
#endif

#endif /* FP8KV_HOST_DEVICE_H */
