/* SPDX-License-Identifier: MIT */
/*
 * struct_layout.c - prints the C layout of the structures and the values of
 * the constants of fp8kv.h, one "name value" per line, so that the Python
 * package's ctypes mirror can be held to the header (test_capi.py).
 */
#include <stddef.h>
#include <stdio.h>

#include <fp8kv.h>

#define SIZE(type) printf("sizeof %s %zu\n", #type, sizeof(type))
#define FIELD(type, field) \
	printf("offsetof %s.%s %zu %zu\n", #type, #field, offsetof(type, field), \
	       sizeof(((type *)0)->field))
#define CONST(name) printf("const %s %d\n", #name, (int)(name))

int main(void)
{
	SIZE(fp8kv_cache_write);
	FIELD(fp8kv_cache_write, key);
	FIELD(fp8kv_cache_write, value);
	FIELD(fp8kv_cache_write, input_dtype);
	FIELD(fp8kv_cache_write, num_tokens);
	FIELD(fp8kv_cache_write, num_heads);
	FIELD(fp8kv_cache_write, head_dim_k);
	FIELD(fp8kv_cache_write, head_dim_v);
	FIELD(fp8kv_cache_write, key_stride_token);
	FIELD(fp8kv_cache_write, key_stride_head);
	FIELD(fp8kv_cache_write, value_stride_token);
	FIELD(fp8kv_cache_write, value_stride_head);
	FIELD(fp8kv_cache_write, key_cache);
	FIELD(fp8kv_cache_write, value_cache);
	FIELD(fp8kv_cache_write, cache_dtype);
	FIELD(fp8kv_cache_write, num_blocks);
	FIELD(fp8kv_cache_write, block_size);
	FIELD(fp8kv_cache_write, key_cache_stride_block);
	FIELD(fp8kv_cache_write, key_cache_stride_slot);
	FIELD(fp8kv_cache_write, key_cache_stride_head);
	FIELD(fp8kv_cache_write, value_cache_stride_block);
	FIELD(fp8kv_cache_write, value_cache_stride_slot);
	FIELD(fp8kv_cache_write, value_cache_stride_head);
	FIELD(fp8kv_cache_write, slot_mapping);
	FIELD(fp8kv_cache_write, slot_type);
	FIELD(fp8kv_cache_write, swa_mapping);
	FIELD(fp8kv_cache_write, swa_type);
	FIELD(fp8kv_cache_write, swa_mapping_len);
	FIELD(fp8kv_cache_write, scale_mode);
	FIELD(fp8kv_cache_write, k_scale);
	FIELD(fp8kv_cache_write, v_scale);
	FIELD(fp8kv_cache_write, overflow);
	FIELD(fp8kv_cache_write, k_scale_cache);
	FIELD(fp8kv_cache_write, v_scale_cache);
	FIELD(fp8kv_cache_write, scale_cache_stride_block);
	FIELD(fp8kv_cache_write, scale_cache_stride_slot);
	FIELD(fp8kv_cache_write, scale_cache_stride_head);
	FIELD(fp8kv_cache_write, overflow_count);
	FIELD(fp8kv_cache_write, nan_count);
	FIELD(fp8kv_cache_write, k_amax);
	FIELD(fp8kv_cache_write, v_amax);

	SIZE(fp8kv_slot_report);
	FIELD(fp8kv_slot_report, padding);
	FIELD(fp8kv_slot_report, out_of_range);
	FIELD(fp8kv_slot_report, duplicates);
	FIELD(fp8kv_slot_report, first_padding);
	FIELD(fp8kv_slot_report, first_out_of_range);
	FIELD(fp8kv_slot_report, first_duplicate);

	SIZE(fp8kv_group_scales);
	FIELD(fp8kv_group_scales, size);
	FIELD(fp8kv_group_scales, rule);
	FIELD(fp8kv_group_scales, group_size);
	FIELD(fp8kv_group_scales, rounding);
	FIELD(fp8kv_group_scales, divisor);
	FIELD(fp8kv_group_scales, scale_floor);
	FIELD(fp8kv_group_scales, k_global);
	FIELD(fp8kv_group_scales, v_global);
	FIELD(fp8kv_group_scales, k_scales);
	FIELD(fp8kv_group_scales, v_scales);
	FIELD(fp8kv_group_scales, stride_block);
	FIELD(fp8kv_group_scales, stride_slot);
	FIELD(fp8kv_group_scales, stride_head);
	FIELD(fp8kv_group_scales, stride_group);
	FIELD(fp8kv_group_scales, interleave);
	FIELD(fp8kv_group_scales, stride_interleave);
	FIELD(fp8kv_group_scales, v_own_layout);
	FIELD(fp8kv_group_scales, v_stride_block);
	FIELD(fp8kv_group_scales, v_stride_slot);
	FIELD(fp8kv_group_scales, v_stride_head);
	FIELD(fp8kv_group_scales, v_stride_group);
	FIELD(fp8kv_group_scales, v_interleave);
	FIELD(fp8kv_group_scales, v_stride_interleave);

	SIZE(fp8kv_mla_write);
	FIELD(fp8kv_mla_write, size);
	FIELD(fp8kv_mla_write, kind);
	FIELD(fp8kv_mla_write, kv_c);
	FIELD(fp8kv_mla_write, k_pe);
	FIELD(fp8kv_mla_write, input_dtype);
	FIELD(fp8kv_mla_write, num_tokens);
	FIELD(fp8kv_mla_write, kv_lora_rank);
	FIELD(fp8kv_mla_write, pe_dim);
	FIELD(fp8kv_mla_write, kv_c_stride_token);
	FIELD(fp8kv_mla_write, k_pe_stride_token);
	FIELD(fp8kv_mla_write, cache);
	FIELD(fp8kv_mla_write, cache_dtype);
	FIELD(fp8kv_mla_write, num_blocks);
	FIELD(fp8kv_mla_write, block_size);
	FIELD(fp8kv_mla_write, stride_block);
	FIELD(fp8kv_mla_write, stride_slot);
	FIELD(fp8kv_mla_write, slot_mapping);
	FIELD(fp8kv_mla_write, slot_type);
	FIELD(fp8kv_mla_write, swa_mapping);
	FIELD(fp8kv_mla_write, swa_type);
	FIELD(fp8kv_mla_write, swa_mapping_len);
	FIELD(fp8kv_mla_write, scale_mode);
	FIELD(fp8kv_mla_write, scale);
	FIELD(fp8kv_mla_write, divisor);
	FIELD(fp8kv_mla_write, overflow);
	FIELD(fp8kv_mla_write, overflow_count);
	FIELD(fp8kv_mla_write, nan_count);
	CONST(FP8KV_OK);
	CONST(FP8KV_EINVAL);
	CONST(FP8KV_ENOTSUP);
	CONST(FP8KV_ERANGE);
	CONST(FP8KV_ENODEV);
	CONST(FP8KV_EBACKEND);
	CONST(FP8KV_ENOMEM);
	CONST(FP8KV_F32);
	CONST(FP8KV_F16);
	CONST(FP8KV_BF16);
	CONST(FP8KV_E4M3FN);
	CONST(FP8KV_E4M3FNUZ);
	CONST(FP8KV_E5M2);
	CONST(FP8KV_E5M2FNUZ);
	CONST(FP8KV_SATURATE);
	CONST(FP8KV_NONSATURATING);
	CONST(FP8KV_SCALE_ONE);
	CONST(FP8KV_SCALE_TENSOR);
	CONST(FP8KV_SCALE_HEAD);
	CONST(FP8KV_SCALE_TOKEN_HEAD);
	CONST(FP8KV_INDEX_INT64);
	CONST(FP8KV_INDEX_INT32);
	CONST(FP8KV_LAYOUT_NHD);
	CONST(FP8KV_LAYOUT_HND);
	CONST(FP8KV_E2M1);
	CONST(FP8KV_INT8);
	CONST(FP8KV_SCALE_GROUP);
	CONST(FP8KV_GROUP_F32);
	CONST(FP8KV_GROUP_E8M0_FLOOR);
	CONST(FP8KV_GROUP_E8M0_RCEIL);
	CONST(FP8KV_GROUP_NVFP4);
	CONST(FP8KV_ROUND_NEAREST_EVEN);
	CONST(FP8KV_ROUND_TOWARD_ZERO);
	CONST(FP8KV_MLA_PLAIN);
	CONST(FP8KV_MLA_DS);
	printf("sizeof enum %zu\n", sizeof(fp8kv_dtype));
	return 0;
}
