/* SPDX-License-Identifier: MIT */
/*
 * plan_mla.c - the checks of fp8kv_concat_and_cache_mla (fp8kv.h section
 * 9) and its lowering into the write plan (A-MLA-RECORD): one head, two
 * sides writing one record.
 *
 *   FP8KV_MLA_PLAIN  side 0 = kv_c at the entry's element 0, side 1 = k_pe
 *                    at element kv_lora_rank, one recipe (the call's scale
 *                    or none, or a copy), sharing the tensor scale;
 *   FP8KV_MLA_DS     side 0 = kv_c as FP8KV_GROUP_F32 groups of 128 whose
 *                    fp32 scales lie in the record (scale array = cache +
 *                    512 bytes, strides = the record's / 4), side 1 = k_pe
 *                    copied raw at byte 528 (a side whose cache elements
 *                    are the input's, strides = the record's / 2).
 *
 * Shared memory is checked on the cache as one array: the two sides of a
 * record never meet.  Each failure names the field and its value.
 */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "plan_common.h"
#include "group_convert.h"

/* DeepSeek's fp8_ds_mla record (section 9). */
enum { DS_RANK = 512, DS_PE = 64, DS_TILE = 128, DS_SCALES_AT = 512, DS_ROPE_AT = 528,
       DS_BYTES = 656 };

static const plan_field mla_fields[] = {
	PLAN_FIELD(fp8kv_mla_write, size),
	PLAN_FIELD(fp8kv_mla_write, kind),
	PLAN_FIELD(fp8kv_mla_write, kv_c),
	PLAN_FIELD(fp8kv_mla_write, k_pe),
	PLAN_FIELD(fp8kv_mla_write, input_dtype),
	PLAN_FIELD(fp8kv_mla_write, num_tokens),
	PLAN_FIELD(fp8kv_mla_write, kv_lora_rank),
	PLAN_FIELD(fp8kv_mla_write, pe_dim),
	PLAN_FIELD(fp8kv_mla_write, kv_c_stride_token),
	PLAN_FIELD(fp8kv_mla_write, k_pe_stride_token),
	PLAN_FIELD(fp8kv_mla_write, cache),
	PLAN_FIELD(fp8kv_mla_write, cache_dtype),
	PLAN_FIELD(fp8kv_mla_write, num_blocks),
	PLAN_FIELD(fp8kv_mla_write, block_size),
	PLAN_FIELD(fp8kv_mla_write, stride_block),
	PLAN_FIELD(fp8kv_mla_write, stride_slot),
	PLAN_FIELD(fp8kv_mla_write, slot_mapping),
	PLAN_FIELD(fp8kv_mla_write, slot_type),
	PLAN_FIELD(fp8kv_mla_write, swa_mapping),
	PLAN_FIELD(fp8kv_mla_write, swa_type),
	PLAN_FIELD(fp8kv_mla_write, swa_mapping_len),
	PLAN_FIELD(fp8kv_mla_write, scale_mode),
	PLAN_FIELD(fp8kv_mla_write, scale),
	PLAN_FIELD(fp8kv_mla_write, divisor),
	PLAN_FIELD(fp8kv_mla_write, overflow),
	PLAN_FIELD(fp8kv_mla_write, overflow_count),
	PLAN_FIELD(fp8kv_mla_write, nan_count),
};

/* The kind, dtypes, scale mode, divisor and enums. */
static fp8kv_status check_kind(const fp8kv_mla_write *d)
{
	if ((unsigned)d->kind > (unsigned)FP8KV_MLA_DS)
		FAIL(FP8KV_EINVAL, "kind %d is not an fp8kv_mla_kind", (int)d->kind);
	fp8kv_status st = fp8kv_check_enums(d->input_dtype, d->cache_dtype, d->overflow,
					     d->scale_mode);
	if (st != FP8KV_OK ||
	    (st = fp8kv_check_index_types(d->slot_type, d->swa_mapping, d->swa_type)) != FP8KV_OK)
		return st;
	if (d->kind == FP8KV_MLA_PLAIN) {
		if (d->cache_dtype != d->input_dtype && !fp8kv_dtype_is_fp8(d->cache_dtype))
			FAIL(FP8KV_ENOTSUP,
			     "cache_dtype %s with input_dtype %s: an FP8KV_MLA_PLAIN cache is the "
			     "input dtype or FP8",
			     fp8kv_dtype_name(d->cache_dtype), fp8kv_dtype_name(d->input_dtype));
		if (d->scale_mode != FP8KV_SCALE_ONE && d->scale_mode != FP8KV_SCALE_TENSOR)
			FAIL(FP8KV_ENOTSUP,
			     "scale_mode %d: FP8KV_MLA_PLAIN takes FP8KV_SCALE_ONE or "
			     "FP8KV_SCALE_TENSOR",
			     (int)d->scale_mode);
		if (d->scale_mode == FP8KV_SCALE_TENSOR && !fp8kv_dtype_is_fp8(d->cache_dtype))
			FAIL(FP8KV_ENOTSUP, "scale_mode FP8KV_SCALE_TENSOR needs an FP8 cache "
					    "(cache_dtype is %s)",
			     fp8kv_dtype_name(d->cache_dtype));
		if (d->divisor != 0.0f)
			FAIL(FP8KV_EINVAL, "divisor (%g) applies to FP8KV_MLA_DS only",
			     (double)d->divisor);
	} else {
		if (d->input_dtype != FP8KV_BF16 && d->input_dtype != FP8KV_F16)
			FAIL(FP8KV_ENOTSUP, "input_dtype %s: FP8KV_MLA_DS takes bf16 or f16 inputs",
			     fp8kv_dtype_name(d->input_dtype));
		if (d->cache_dtype != FP8KV_E4M3FN && d->cache_dtype != FP8KV_E4M3FNUZ)
			FAIL(FP8KV_ENOTSUP, "cache_dtype %s: FP8KV_MLA_DS needs e4m3fn or e4m3fnuz",
			     fp8kv_dtype_name(d->cache_dtype));
		if (d->scale_mode != FP8KV_SCALE_ONE)
			FAIL(FP8KV_ENOTSUP,
			     "scale_mode %d: FP8KV_MLA_DS computes its tiles' scales "
			     "(FP8KV_SCALE_ONE)",
			     (int)d->scale_mode);
		if (d->divisor != 0.0f && !(plan_is_finite(d->divisor) && d->divisor >= 1.0f))
			FAIL(FP8KV_EINVAL,
			     "divisor %g must be 0 (the format's max) or a finite number >= 1",
			     (double)d->divisor);
	}
	return FP8KV_OK;
}

static fp8kv_status check_sizes(const fp8kv_mla_write *d)
{
	int64_t num_slots;
	if (d->num_tokens < 0)
		FAIL(FP8KV_EINVAL, "num_tokens must be >= 0 (got %" PRId64 ")", d->num_tokens);
	REQUIRE_POSITIVE(kv_lora_rank);
	REQUIRE_POSITIVE(pe_dim);
	REQUIRE_POSITIVE(num_blocks);
	REQUIRE_POSITIVE(block_size);
	if (__builtin_mul_overflow(d->num_blocks, d->block_size, &num_slots))
		FAIL(FP8KV_EINVAL, "num_blocks * block_size overflows 64 bits");
	/* an entry's length (entry_elements) must be a number before any
	 * layout is checked */
	if (d->kv_lora_rank > INT64_MAX - d->pe_dim)
		FAIL(FP8KV_EINVAL,
		     "kv_lora_rank (%" PRId64 ") + pe_dim (%" PRId64 ") overflows 64 bits",
		     d->kv_lora_rank, d->pe_dim);
	if (d->swa_mapping && d->swa_mapping_len < 1)
		FAIL(FP8KV_EINVAL, "swa_mapping_len must be >= 1 with a swa_mapping (got %" PRId64 ")",
		     d->swa_mapping_len);
	if (d->kind == FP8KV_MLA_DS) {
		if (d->kv_lora_rank != DS_RANK || d->pe_dim != DS_PE)
			FAIL(FP8KV_ENOTSUP,
			     "kv_lora_rank %" PRId64 ", pe_dim %" PRId64 ": FP8KV_MLA_DS records "
			     "are 512 + 64",
			     d->kv_lora_rank, d->pe_dim);
		/* the record's fp32 scales and 16-bit RoPE values stay aligned */
		if (d->block_size > 1 && d->stride_slot % 4)
			FAIL(FP8KV_EINVAL,
			     "stride_slot (%" PRId64 ") of an FP8KV_MLA_DS cache must be a multiple "
			     "of 4 bytes: the tiles' scales are fp32",
			     d->stride_slot);
		if (d->num_blocks > 1 && d->stride_block % 4)
			FAIL(FP8KV_EINVAL,
			     "stride_block (%" PRId64 ") of an FP8KV_MLA_DS cache must be a multiple "
			     "of 4 bytes: the tiles' scales are fp32",
			     d->stride_block);
	}
	return FP8KV_OK;
}

static fp8kv_status check_pointers(const fp8kv_mla_write *d)
{
	const size_t in_size = fp8kv_dtype_size(d->input_dtype);
	const size_t cache_align = d->kind == FP8KV_MLA_DS ? 4 : fp8kv_dtype_size(d->cache_dtype);
	REQUIRE_PTR(cache);
	if (d->num_tokens > 0) {
		REQUIRE_PTR(kv_c);
		REQUIRE_PTR(k_pe);
		REQUIRE_PTR(slot_mapping);
	}
	if (d->scale_mode == FP8KV_SCALE_TENSOR)
		REQUIRE_PTR(scale);
	REQUIRE_ALIGNED(kv_c, in_size);
	REQUIRE_ALIGNED(k_pe, in_size);
	REQUIRE_ALIGNED(cache, cache_align);
	REQUIRE_ALIGNED(slot_mapping, plan_index_size(d->slot_type));
	REQUIRE_ALIGNED(swa_mapping, plan_index_size(d->swa_type));
	REQUIRE_ALIGNED(scale, 4);
	REQUIRE_ALIGNED(overflow_count, 8);
	REQUIRE_ALIGNED(nan_count, 8);
	return FP8KV_OK;
}

/* Elements of cache_dtype in an entry. */
static int64_t entry_elements(const fp8kv_mla_write *d)
{
	return d->kind == FP8KV_MLA_DS ? DS_BYTES : d->kv_lora_rank + d->pe_dim;
}

static fp8kv_status validate_mla(const fp8kv_mla_write *d)
{
	fp8kv_status st;
	if ((st = check_kind(d)) != FP8KV_OK || (st = check_sizes(d)) != FP8KV_OK ||
	    (st = check_pointers(d)) != FP8KV_OK)
		return st;
	const size_t in_size = fp8kv_dtype_size(d->input_dtype);
	const size_t cache_size = fp8kv_dtype_size(d->cache_dtype);
	const int64_t tokens = d->num_tokens > 0 ? d->num_tokens : 1;
	const fp8kv_layout kv_c = {2, {tokens, d->kv_lora_rank}, {d->kv_c_stride_token, 1},
				   {"token", "dim"}};
	const fp8kv_layout k_pe = {2, {tokens, d->pe_dim}, {d->k_pe_stride_token, 1},
				   {"token", "dim"}};
	const fp8kv_layout cache = {3, {d->num_blocks, d->block_size, entry_elements(d)},
				    {d->stride_block, d->stride_slot, 1},
				    {"block", "slot", "entry"}};
	if ((st = fp8kv_layout_check(&kv_c, in_size, "kv_c", 0)) != FP8KV_OK ||
	    (st = fp8kv_layout_check(&k_pe, in_size, "k_pe", 0)) != FP8KV_OK ||
	    (st = fp8kv_layout_check(&cache, cache_size, "cache", 1)) != FP8KV_OK)
		return st;

	uint64_t slot_bytes = 0, swa_bytes = 0;
	if (__builtin_mul_overflow((uint64_t)d->num_tokens, plan_index_size(d->slot_type),
				   &slot_bytes) ||
	    (d->swa_mapping && __builtin_mul_overflow((uint64_t)d->swa_mapping_len,
						      plan_index_size(d->swa_type), &swa_bytes)))
		FAIL(FP8KV_EINVAL, "slot_mapping or swa_mapping: length overflows 64-bit byte sizes");
	fp8kv_region r[8];
	int n = 0;
	fp8kv_region_strided(&r[n++], "cache", 1, d->cache, &cache, cache_size);
	fp8kv_region_flat(&r[n++], "overflow_count", 1, d->overflow_count, 8);
	fp8kv_region_flat(&r[n++], "nan_count", 1, d->nan_count, 8);
	if (d->scale_mode == FP8KV_SCALE_TENSOR)
		fp8kv_region_flat(&r[n++], "scale", 0, d->scale, 4);
	if (d->num_tokens > 0) {
		fp8kv_region_strided(&r[n++], "kv_c", 0, d->kv_c, &kv_c, in_size);
		fp8kv_region_strided(&r[n++], "k_pe", 0, d->k_pe, &k_pe, in_size);
		fp8kv_region_flat(&r[n++], "slot_mapping", 0, d->slot_mapping, slot_bytes);
		fp8kv_region_flat(&r[n++], "swa_mapping", 0, d->swa_mapping, swa_bytes);
	}
	return fp8kv_regions_apart(r, n);
}

/* A side of an MLA plan: input rows of head_dim elements, one head. */
static void mla_side(fp8kv_plan_side *sd, const void *input, int64_t stride_token, int64_t head_dim,
		     unsigned char *cache, int64_t stride_block, int64_t stride_slot, int cache_dtype)
{
	sd->recipe.cache_dtype = cache_dtype;
	sd->recipe.cache_size = (int32_t)fp8kv_dtype_size((fp8kv_dtype)cache_dtype);
	sd->input = (const unsigned char *)input;
	sd->input_stride_token = stride_token;
	sd->head_dim = head_dim;
	sd->cache = cache;
	sd->cache_stride_block = stride_block;
	sd->cache_stride_slot = stride_slot;
}

static void plan_plain(const fp8kv_mla_write *d, fp8kv_write_plan *p)
{
	unsigned char *cache = (unsigned char *)d->cache;
	const size_t cache_size = fp8kv_dtype_size(d->cache_dtype);
	mla_side(&p->side[0], d->kv_c, d->kv_c_stride_token, d->kv_lora_rank, cache, d->stride_block,
		 d->stride_slot, d->cache_dtype);
	mla_side(&p->side[1], d->k_pe, d->k_pe_stride_token, d->pe_dim,
		 cache + (size_t)d->kv_lora_rank * cache_size, d->stride_block, d->stride_slot,
		 d->cache_dtype);
	for (int i = 0; i < 2; i++) {
		fp8kv_row_recipe *r = &p->side[i].recipe;
		r->converts = fp8kv_dtype_is_fp8(d->cache_dtype);
		r->scale_mode = (int32_t)d->scale_mode;
		p->side[i].scale = d->scale_mode == FP8KV_SCALE_TENSOR ? d->scale : NULL;
	}
}

static void plan_ds(const fp8kv_mla_write *d, fp8kv_write_plan *p)
{
	unsigned char *cache = (unsigned char *)d->cache;
	fp8kv_plan_side *latent = &p->side[0], *rope = &p->side[1];
	/* strides are validated multiples of 4 wherever they are used */
	mla_side(latent, d->kv_c, d->kv_c_stride_token, DS_RANK, cache, d->stride_block,
		 d->stride_slot, d->cache_dtype);
	latent->recipe.converts = 1;
	latent->recipe.scale_mode = FP8KV_SCALE_GROUP;
	latent->recipe.group = (fp8kv_group_recipe){
		.rule = FP8KV_GROUP_F32, .size = DS_TILE, .rounding = FP8KV_ROUND_NEAREST_EVEN,
		.scale_bytes = 4,
		.divisor = d->divisor != 0.0f ? d->divisor : fp8kv_element_max(d->cache_dtype),
		.scale_floor = 0x1p-126f};
	latent->groups.scales = cache + DS_SCALES_AT;
	latent->groups.stride_block = d->stride_block / 4;
	latent->groups.stride_slot = d->stride_slot / 4;
	latent->groups.stride_group = 1;
	/* the RoPE part: 16-bit inputs copied into 16-bit elements of the record */
	mla_side(rope, d->k_pe, d->k_pe_stride_token, DS_PE, cache + DS_ROPE_AT,
		 d->stride_block / 2, d->stride_slot / 2, d->input_dtype);
	rope->recipe.scale_mode = FP8KV_SCALE_ONE;
}

fp8kv_status fp8kv_plan_mla_write(const fp8kv_mla_write *desc, fp8kv_write_plan *p)
{
	fp8kv_mla_write d;
	fp8kv_status st;
	if (!desc)
		FAIL(FP8KV_EINVAL, "desc is NULL");
	if ((st = fp8kv_read_sized(&d, sizeof d, desc, "desc", "fp8kv_mla_write_init", mla_fields,
				   (int)(sizeof mla_fields / sizeof mla_fields[0]))) != FP8KV_OK ||
	    (st = validate_mla(&d)) != FP8KV_OK)
		return st;
	memset(p, 0, sizeof *p);
	if (d.kind == FP8KV_MLA_DS)
		plan_ds(&d, p);
	else
		plan_plain(&d, p);
	p->slots.slot_mapping = d.slot_mapping;
	p->slots.slot_type = (int32_t)d.slot_type;
	if (d.swa_mapping) {
		p->slots.swa_mapping = d.swa_mapping;
		p->slots.swa_len = d.swa_mapping_len;
		p->slots.swa_type = (int32_t)d.swa_type;
	}
	p->slots.num_slots = d.num_blocks * d.block_size; /* validated */
	p->num_tokens = d.num_tokens;
	p->num_heads = 1;
	p->num_blocks = d.num_blocks;
	p->block_size = d.block_size;
	p->overflow_count = d.overflow_count;
	p->nan_count = d.nan_count;
	p->input_dtype = (int32_t)d.input_dtype;
	p->input_size = (int32_t)fp8kv_dtype_size(d.input_dtype);
	p->saturate = d.overflow == FP8KV_SATURATE;
	return FP8KV_OK;
}
