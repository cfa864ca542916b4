/* SPDX-License-Identifier: MIT */
/* dtypes.c - the data types (names, sizes, FP8 limits, one-value conversion)
 * and the names of the scale modes. */
#include "config.h"

#include <string.h>

#include "internal.h"
#include "fp8_convert.h"
#include "group_convert.h"

static const struct {
	const char *name;
	size_t size;
} dtype_info[] = {
	[FP8KV_F32] = {"f32", 4},	  [FP8KV_F16] = {"f16", 2},
	[FP8KV_BF16] = {"bf16", 2},	  [FP8KV_E4M3FN] = {"e4m3fn", 1},
	[FP8KV_E4M3FNUZ] = {"e4m3fnuz", 1}, [FP8KV_E5M2] = {"e5m2", 1},
	[FP8KV_E5M2FNUZ] = {"e5m2fnuz", 1}, [FP8KV_E2M1] = {"e2m1", 1},
	[FP8KV_INT8] = {"int8", 1},
};

#define NUM_DTYPES (sizeof dtype_info / sizeof dtype_info[0])

FP8KV_API size_t fp8kv_dtype_size(fp8kv_dtype dtype)
{
	return (unsigned)dtype < NUM_DTYPES ? dtype_info[dtype].size : 0;
}

FP8KV_API const char *fp8kv_dtype_name(fp8kv_dtype dtype)
{
	return (unsigned)dtype < NUM_DTYPES ? dtype_info[dtype].name : NULL;
}

FP8KV_API fp8kv_status fp8kv_dtype_from_name(const char *name, fp8kv_dtype *dtype)
{
	fp8kv_clear_error();
	if (!name || !dtype)
		return fp8kv_set_error(FP8KV_EINVAL, "%s is NULL", name ? "dtype" : "name");
	for (unsigned i = 0; i < NUM_DTYPES; i++)
		if (!strcmp(name, dtype_info[i].name)) {
			*dtype = (fp8kv_dtype)i;
			return FP8KV_OK;
		}
	return fp8kv_set_error(FP8KV_EINVAL, "unknown dtype name '%s'", name);
}

/* The one spelling of each scale mode (fp8kv.h), for every tool and report. */
static const char *const scale_mode_names[] = {
	[FP8KV_SCALE_ONE] = "one",
	[FP8KV_SCALE_TENSOR] = "tensor",
	[FP8KV_SCALE_HEAD] = "head",
	[FP8KV_SCALE_TOKEN_HEAD] = "token_head",
};

#define NUM_SCALE_MODES (sizeof scale_mode_names / sizeof scale_mode_names[0])

FP8KV_API const char *fp8kv_scale_mode_name(fp8kv_scale_mode mode)
{
	return (unsigned)mode < NUM_SCALE_MODES ? scale_mode_names[mode] : NULL;
}

FP8KV_API fp8kv_status fp8kv_scale_mode_from_name(const char *name, fp8kv_scale_mode *mode)
{
	fp8kv_clear_error();
	if (!name || !mode)
		return fp8kv_set_error(FP8KV_EINVAL, "%s is NULL", name ? "mode" : "name");
	for (unsigned i = 0; i < NUM_SCALE_MODES; i++)
		if (!strcmp(name, scale_mode_names[i])) {
			*mode = (fp8kv_scale_mode)i;
			return FP8KV_OK;
		}
	return fp8kv_set_error(FP8KV_EINVAL,
			       "unknown scale mode name '%s' (one, tensor, head or token_head)", name);
}

FP8KV_API int fp8kv_dtype_is_fp8(fp8kv_dtype dtype)
{
	return dtype >= FP8KV_E4M3FN && dtype <= FP8KV_E5M2FNUZ;
}

FP8KV_API float fp8kv_fp8_max(fp8kv_dtype format)
{
	return fp8kv_dtype_is_fp8(format) ? fp8kv_format_max(fp8kv_format_of(format)) : 0.0f;
}

/* ---- scalar conversion ---- */

/* e2m1 (5b) saturates whatever the policy; int8 (5c) rounds to nearest
 * even here. */
FP8KV_API uint8_t fp8kv_from_float(float y, fp8kv_dtype format, fp8kv_overflow overflow)
{
	if (format == FP8KV_E2M1)
		return (uint8_t)(fp8kv_e2m1_encode_bits(fp8kv_f32_bits(y)) & 0xFu);
	if (format == FP8KV_INT8)
		return (uint8_t)fp8kv_int8_encode_bits(fp8kv_f32_bits(y), 0);
	if (!fp8kv_dtype_is_fp8(format))
		return 0;
	return (uint8_t)fp8kv_encode(y, fp8kv_format_of(format), overflow == FP8KV_SATURATE);
}

FP8KV_API float fp8kv_to_float(uint8_t code, fp8kv_dtype format)
{
	if (format == FP8KV_E2M1)
		return fp8kv_bits_f32(fp8kv_e2m1_decode_bits(code & 0xFu));
	if (format == FP8KV_INT8)
		return (float)(int8_t)code;
	if (!fp8kv_dtype_is_fp8(format))
		return fp8kv_bits_f32(0x7FC00000u);
	return fp8kv_bits_f32(fp8kv_decode_bits(code, fp8kv_format_of(format)));
}

FP8KV_API float fp8kv_suggest_scale(float amax, fp8kv_dtype format)
{
	if (!fp8kv_dtype_is_fp8(format) || !(amax > 0.0f) || fp8kv_finite_abs(amax) != amax)
		return 1.0f;
	return fp8kv_dynamic_scale(amax, fp8kv_fp8_max(format));
}
