/* SPDX-License-Identifier: MIT */
/*
 * amd_device_compat.h - ROCm 5.2's HIP headers for a newer clang that has
 * no ROCm device library to link (clang >= 20 against Debian's ROCm 5.2).
 *
 * configure force-includes this file (-include, before any source line)
 * only when the HIP compiler links device code with -nogpulib; a compiler
 * that finds its own device libraries (hipcc, any ROCm >= 6.3) never sees
 * it.  It does two things:
 *
 *   - defines __AMDGCN_WAVEFRONT_SIZE, which the 5.2 headers read (for
 *     warpSize, the shuffles' default width) and clang 20 stopped
 *     predefining.  Only gfx9 targets are built this way, all wave64; a
 *     device pass for any other target stops here (see below).
 *   - defines, from clang's own builtins, the few device-library functions
 *     the 5.2 headers call from what fp8kv uses: the work-item and
 *     work-group indices and sizes, __umulhi, __clz, __syncthreads_or and
 *     the memory fences.  Their semantics are those of ROCm's ockl and hip
 *     bitcode (same names, same results); anything else the headers would
 *     take from the device library stays undefined and fails the device
 *     link, loudly, rather than doing something else.
 *
 * The builtins read the dispatch packet or the implicit kernel arguments
 * as the code object version requires, so this works for any version the
 * compiler emits.
 */
#ifndef FP8KV_AMD_DEVICE_COMPAT_H
#define FP8KV_AMD_DEVICE_COMPAT_H

#if defined(__HIP_DEVICE_COMPILE__) && !defined(__GFX9__)
#error "amd_device_compat.h: only gfx9 (wave64) targets build without ROCm's device library"
#endif

#ifndef __AMDGCN_WAVEFRONT_SIZE
#define __AMDGCN_WAVEFRONT_SIZE 64
#endif

#include <stddef.h>
#include <hip/hip_runtime.h>

#if defined(__HIP_DEVICE_COMPILE__)

extern "C" {

__device__ inline size_t __ockl_get_local_id(unsigned int dim)
{
	return dim == 0 ? __builtin_amdgcn_workitem_id_x()
	     : dim == 1 ? __builtin_amdgcn_workitem_id_y()
	     : dim == 2 ? __builtin_amdgcn_workitem_id_z() : 0;
}

__device__ inline size_t __ockl_get_group_id(unsigned int dim)
{
	return dim == 0 ? __builtin_amdgcn_workgroup_id_x()
	     : dim == 1 ? __builtin_amdgcn_workgroup_id_y()
	     : dim == 2 ? __builtin_amdgcn_workgroup_id_z() : 0;
}

__device__ inline size_t __ockl_get_local_size(unsigned int dim)
{
	return dim == 0 ? __builtin_amdgcn_workgroup_size_x()
	     : dim == 1 ? __builtin_amdgcn_workgroup_size_y()
	     : dim == 2 ? __builtin_amdgcn_workgroup_size_z() : 1;
}

// work-groups in the grid, the last one possibly partial (ockl's rule)
__device__ inline size_t __ockl_get_num_groups(unsigned int dim)
{
	const unsigned int items = dim == 0 ? __builtin_amdgcn_grid_size_x()
				 : dim == 1 ? __builtin_amdgcn_grid_size_y()
				 : dim == 2 ? __builtin_amdgcn_grid_size_z() : 1;
	const unsigned int size = (unsigned int)__ockl_get_local_size(dim);
	return items / size + (items % size != 0);
}

__device__ inline unsigned int __ockl_mul_hi_u32(unsigned int x, unsigned int y)
{
	return (unsigned int)(((unsigned long long)x * y) >> 32);
}

// __clz (lib/group_convert.h's fp8kv_clz32, E8M0 rceil): leading zeros,
// 32 for 0, as ockl's
__device__ inline unsigned int __ockl_clz_u32(unsigned int x)
{
	return x ? (unsigned int)__builtin_clz(x) : 32u;
}

// OR of a over the work-group (__syncthreads_or).  The trailing barrier
// keeps a following call's reset from overtaking this call's reads.
__device__ inline int __ockl_wgred_or_i32(int a)
{
	__shared__ int any;
	const bool first = __builtin_amdgcn_workitem_id_x() == 0 &&
			   __builtin_amdgcn_workitem_id_y() == 0 &&
			   __builtin_amdgcn_workitem_id_z() == 0;
	if (first)
		__hip_atomic_store(&any, 0, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_WORKGROUP);
	__syncthreads();
	if (a)
		__hip_atomic_fetch_or(&any, 1, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_WORKGROUP);
	__syncthreads();
	const int r = __hip_atomic_load(&any, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_WORKGROUP);
	__syncthreads();
	return r;
}

// OpenCL's fence: order and scope as the HIP headers pass them (the flags
// are ignored, as in ROCm's hip bitcode).  Always inlined with constant
// arguments, so the switches fold to one fence.
__device__ inline __attribute__((always_inline)) void
__atomic_work_item_fence(__cl_mem_fence_flags flags, __memory_order order, __memory_scope scope)
{
	(void)flags;
#define FP8KV_FENCE(SCOPE)                                              \
	switch (order) {                                                \
	case __memory_order_acquire: __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, SCOPE); break; \
	case __memory_order_release: __builtin_amdgcn_fence(__ATOMIC_RELEASE, SCOPE); break; \
	case __memory_order_acq_rel: __builtin_amdgcn_fence(__ATOMIC_ACQ_REL, SCOPE); break; \
	case __memory_order_seq_cst: __builtin_amdgcn_fence(__ATOMIC_SEQ_CST, SCOPE); break; \
	default: break;                                                 \
	}
	switch (scope) {
	case __memory_scope_work_item: break;
	case __memory_scope_sub_group: FP8KV_FENCE("wavefront") break;
	case __memory_scope_work_group: FP8KV_FENCE("workgroup") break;
	case __memory_scope_device: FP8KV_FENCE("agent") break;
	default: FP8KV_FENCE("") break;  // all_svm_devices: the system
	}
#undef FP8KV_FENCE
}

} /* extern "C" */

#endif /* __HIP_DEVICE_COMPILE__ */

#endif /* FP8KV_AMD_DEVICE_COMPAT_H */
