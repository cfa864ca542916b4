// SPDX-License-Identifier: MIT
/*
 * flat_kernels.h - the kernels of the calls on flat buffers: quantize,
 * dequantize, amax and check_slots.
 */
#ifndef FP8KV_HIP_FLAT_KERNELS_H
#define FP8KV_HIP_FLAT_KERNELS_H

#include <stdint.h>

#include "backend.h"
#include "device_common.h"
#include "device_convert.h"
#include "error_ring.h"
#include "fp8_convert.h"
#include "hip_compat.h"
#include "write_plan.h"


// quantize and dequantize: the plan, and whether 16-byte vectors serve
typedef struct flat_params {
	fp8kv_convert_plan plan;
	int vec;
} flat_params;

template <int DT, bool COUNT>
static __global__ void __launch_bounds__(BLOCK) quantize_kernel(const flat_params p)
{
	constexpr int VE = DT == FP8KV_CV_F32 ? 4 : 8;
	__shared__ unsigned long long block_overflows;
	fp8kv_begin_after_prior_grid();
	if (threadIdx.x == 0)
		block_overflows = 0;
	__syncthreads();

	const fp8kv_convert_plan &a = p.plan;
	const fp8kv_fp8_format f = fp8kv_format_of(a.dst_dtype);
	const float s = a.scale ? a.scale[0] : 1.0f, rs = 1.0f / s;
	const int conversion = conversion_kind(a.scale != NULL, f);
	unsigned char *const dst = (unsigned char *)a.dst;
	const unsigned char *const src = (const unsigned char *)a.src;
	const int64_t first = (int64_t)blockIdx.x * BLOCK + threadIdx.x;
	const int64_t stride = (int64_t)gridDim.x * BLOCK;
	unsigned int overflows = 0, nans = 0;
	unsigned long long total = 0;
	int64_t done = 0;
	if (p.vec) {
		const int64_t nvec = a.count / VE;
		for (int64_t v = first; v < nvec; v += stride) {
			quantize_vec<DT, COUNT>(dst + v * VE, load16(src + v * 16), conversion, s, rs, f,
						a.saturate, overflows, nans);
			total += overflows;
			overflows = 0;
		}
		done = nvec * VE;
	}
	for (int64_t i = done + first; i < a.count; i += stride) {
		dst[i] = (unsigned char)quantize1<COUNT>(fp8kv_load_f32(src, i, DT), conversion, s, f,
							 a.saturate, overflows, nans);
		total += overflows;
		overflows = 0;
	}

	if (COUNT && total)
		atomicAdd(&block_overflows, total);
	__syncthreads();
	if (COUNT && threadIdx.x == 0 && block_overflows)
		atomicAdd((unsigned long long *)a.overflow_count, block_overflows);
}

// x = float(q) * s, rounded to the output dtype (cpu/flat.c cpu_dequantize)
template <int DT>
static __global__ void __launch_bounds__(BLOCK) dequantize_kernel(const flat_params p)
{
	fp8kv_begin_after_prior_grid();
	const fp8kv_convert_plan &a = p.plan;
	const fp8kv_fp8_format f = fp8kv_format_of(a.src_dtype);
	const float s = a.scale ? a.scale[0] : 1.0f;
	const unsigned char *const src = (const unsigned char *)a.src;
	const int64_t stride = (int64_t)gridDim.x * BLOCK;
	for (int64_t i = (int64_t)blockIdx.x * BLOCK + threadIdx.x; i < a.count; i += stride) {
		const float x = fp8kv_bits_f32(fp8kv_decode_bits(src[i], f));
		const float y = a.scale ? fp8kv_multiply(x, s) : x;
		if (DT == FP8KV_CV_F32)
			((float *)a.dst)[i] = y;
		else if (DT == FP8KV_CV_F16)
			((uint16_t *)a.dst)[i] = fp8kv_f32_to_f16(y);
		else
			((uint16_t *)a.dst)[i] = fp8kv_f32_to_bf16(y);
	}
}

// *out = max over finite |x|, as fp32 bits (all >= +0, so unsigned order)
template <int DT>
static __global__ void __launch_bounds__(BLOCK) amax_kernel(const void *src, int64_t count,
							    unsigned int *out)
{
	__shared__ unsigned int block_max;
	if (threadIdx.x == 0)
		block_max = 0;
	__syncthreads();
	float m = 0.0f;
	const int64_t stride = (int64_t)gridDim.x * BLOCK;
	for (int64_t i = (int64_t)blockIdx.x * BLOCK + threadIdx.x; i < count; i += stride)
		m = max_nonneg(m, fp8kv_finite_abs(fp8kv_load_f32(src, i, DT)));
	if (m > 0.0f)
		atomicMax(&block_max, fp8kv_f32_bits(m));
	__syncthreads();
	if (threadIdx.x == 0 && block_max)
		atomicMax(out, block_max);
}

/* ----------------------------------------------------------- slot checks */

typedef struct slot_totals {
	unsigned long long padding, out_of_range, duplicates;
	unsigned long long first_padding, first_out_of_range;  // NO_TOKEN if none
	unsigned long long found;  // check_dup_prefix: a duplicate in the prefix
} slot_totals;

// counts padding and out-of-range tokens (first = smallest index) and sets
// the bitmap; a token finding its bit set is one duplicate
static __global__ void __launch_bounds__(BLOCK) check_slots_kernel(const void *slots, int type,
								   int64_t count, int64_t num_slots,
								   unsigned long long *bitmap,
								   slot_totals *out)
{
	unsigned long long padding = 0, out_of_range = 0, duplicates = 0;
	unsigned long long first_padding = NO_TOKEN, first_out_of_range = NO_TOKEN;
	const int64_t stride = (int64_t)gridDim.x * BLOCK;
	for (int64_t t = (int64_t)blockIdx.x * BLOCK + threadIdx.x; t < count; t += stride) {
		const int64_t s = fp8kv_load_index(slots, t, type);
		if (s < 0) {
			if (padding++ == 0)
				first_padding = (unsigned long long)t;
		} else if (s >= num_slots) {
			if (out_of_range++ == 0)
				first_out_of_range = (unsigned long long)t;
		} else {
			const unsigned long long bit = 1ull << (s & 63);
			if (atomicOr(&bitmap[s >> 6], bit) & bit)
				duplicates++;
		}
	}
	if (padding) {
		atomicAdd(&out->padding, padding);
		atomicMin(&out->first_padding, first_padding);
	}
	if (out_of_range) {
		atomicAdd(&out->out_of_range, out_of_range);
		atomicMin(&out->first_out_of_range, first_out_of_range);
	}
	if (duplicates)
		atomicAdd(&out->duplicates, duplicates);
}

// out->found = 1 if two of tokens [0, prefix) share a slot
static __global__ void __launch_bounds__(BLOCK) check_dup_prefix_kernel(const void *slots, int type,
									int64_t prefix, int64_t num_slots,
									unsigned long long *bitmap,
									slot_totals *out)
{
	const int64_t stride = (int64_t)gridDim.x * BLOCK;
	for (int64_t t = (int64_t)blockIdx.x * BLOCK + threadIdx.x; t < prefix; t += stride) {
		const int64_t s = fp8kv_load_index(slots, t, type);
		if (s < 0 || s >= num_slots)
			continue;
		const unsigned long long bit = 1ull << (s & 63);
		if (atomicOr(&bitmap[s >> 6], bit) & bit)
			out->found = 1;
	}
}

// clears the words that tokens [0, prefix) set (nothing else set any)
static __global__ void __launch_bounds__(BLOCK) clear_bits_kernel(const void *slots, int type,
								  int64_t prefix, int64_t num_slots,
								  unsigned long long *bitmap)
{
	const int64_t stride = (int64_t)gridDim.x * BLOCK;
	for (int64_t t = (int64_t)blockIdx.x * BLOCK + threadIdx.x; t < prefix; t += stride) {
		const int64_t s = fp8kv_load_index(slots, t, type);
		if (s >= 0 && s < num_slots)
			bitmap[s >> 6] = 0;
	}
}

#endif /* FP8KV_HIP_FLAT_KERNELS_H */
