// SPDX-License-Identifier: MIT
/*
 * contract_probe.hip - device code for tests/check_amd_codeobjects.sh: the
 * conversions of lib/fp8_convert.h, one element per kernel, compiled with
 * the module's flags (and with planted faults) for each AMD target, so
 * that the code-object checks can be shown to pass and to fail.
 *
 *   probe_quantize    x / s, then encoded: the one correctly rounded
 *                     division (v_div_scale, v_div_fmas, v_div_fixup)
 *   probe_encode      the scale-one conversion: no FP multiply-add in it
 *   probe_dequantize  decode, x * s, rounded to bf16: none either
 *   probe_contract    a * b + c: contracted into an FMA only when the
 *                     flags allow it (the check's canary)
 *
 * The encoder is the kernels' own, FP8KV_DEVICE_ENCODE (hip/amd_hw_fp8.h):
 * with -DFP8KV_AMD_HW_FP8, the gfx942 and gfx950 probes use the hardware
 * conversion, and must keep all three properties.
 *
 * Indices come from threadIdx alone, so that no integer division (which
 * AMDGPU expands with v_rcp_f32 and FMAs) muddies the counts.
 */
#include <hip/hip_runtime.h>

#include "fp8_convert.h"
#include "amd_hw_fp8.h"

extern "C" __global__ void probe_quantize(const float *x, const float *s, unsigned int *q)
{
	const unsigned int i = threadIdx.x;
	q[i] = FP8KV_DEVICE_ENCODE(fp8kv_divide(x[i], s[0]), fp8kv_format_of(FP8KV_CV_E4M3FN), 1);
}

extern "C" __global__ void probe_encode(const float *x, unsigned int *q)
{
	const unsigned int i = threadIdx.x;
	q[i] = FP8KV_DEVICE_ENCODE(x[i], fp8kv_format_of(FP8KV_CV_E4M3FN), 0);
}

extern "C" __global__ void probe_dequantize(const unsigned char *q, const float *s,
					    unsigned short *y)
{
	const unsigned int i = threadIdx.x;
	const float x = fp8kv_bits_f32(fp8kv_decode_bits(q[i], fp8kv_format_of(FP8KV_CV_E4M3FN)));
	y[i] = fp8kv_f32_to_bf16(fp8kv_multiply(x, s[0]));
}

extern "C" __global__ void probe_contract(const float *a, float *y)
{
	const unsigned int i = threadIdx.x;
	y[i] = a[i] * a[i + 64] + a[i + 128];
}
