/* SPDX-License-Identifier: MIT */
/*
 * plan.c - every check a call must pass before anything is written, and the
 * plan (lib/write_plan.h, fp8kv_convert_plan) that backends then trust:
 * the cache write, plain or grouped (whose group checks are plan_group.c's),
 * and flat conversions; MLA writes are plan_mla.c's.  Each failure names
 * the field and its value.
 */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "plan_common.h"
#include "fp8_convert.h"
#include "group_convert.h"

/* The device code sees only fp8_convert.h, group_convert.h and
 * write_plan.h, whose numbers mirror the public enums. */
#define SAME_NUMBER(a, b) ((int)(a) == (int)(b))
_Static_assert(SAME_NUMBER(FP8KV_CV_F32, FP8KV_F32) && SAME_NUMBER(FP8KV_CV_F16, FP8KV_F16) &&
		       SAME_NUMBER(FP8KV_CV_BF16, FP8KV_BF16) &&
		       SAME_NUMBER(FP8KV_CV_E4M3FN, FP8KV_E4M3FN) &&
		       SAME_NUMBER(FP8KV_CV_E4M3FNUZ, FP8KV_E4M3FNUZ) &&
		       SAME_NUMBER(FP8KV_CV_E5M2, FP8KV_E5M2) &&
		       SAME_NUMBER(FP8KV_CV_E5M2FNUZ, FP8KV_E5M2FNUZ) &&
		       SAME_NUMBER(FP8KV_CV_E2M1, FP8KV_E2M1) &&
		       SAME_NUMBER(FP8KV_CV_INT8, FP8KV_INT8),
	       "fp8_convert.h's and group_convert.h's format numbers are fp8kv_dtype's");
_Static_assert(SAME_NUMBER(FP8KV_CV_GROUP_F32, FP8KV_GROUP_F32) &&
		       SAME_NUMBER(FP8KV_CV_GROUP_E8M0_FLOOR, FP8KV_GROUP_E8M0_FLOOR) &&
		       SAME_NUMBER(FP8KV_CV_GROUP_E8M0_RCEIL, FP8KV_GROUP_E8M0_RCEIL) &&
		       SAME_NUMBER(FP8KV_CV_GROUP_NVFP4, FP8KV_GROUP_NVFP4) &&
		       SAME_NUMBER(FP8KV_CV_ROUND_NEAREST_EVEN, FP8KV_ROUND_NEAREST_EVEN) &&
		       SAME_NUMBER(FP8KV_CV_ROUND_TOWARD_ZERO, FP8KV_ROUND_TOWARD_ZERO),
	       "group_convert.h's rule and rounding numbers are fp8kv.h's");

#define is_input_dtype plan_is_input_dtype
#define is_known_dtype plan_is_known_dtype
#define index_size plan_index_size
#define misaligned plan_misaligned

/* ---- extensible descriptors ---- */

/* Past this, a size is not one a header could have given: an
 * uninitialised descriptor, whose bytes past ours must not be read. */
#define MAX_DESC_SIZE 4096

fp8kv_status fp8kv_read_sized(void *ours, size_t ours_size, const void *src, const char *what,
			      const char *init, const plan_field *fields, int nfields)
{
	uint32_t size;
	memcpy(&size, src, sizeof size);
	if (size < fields[1].end || size > MAX_DESC_SIZE)
		FAIL(FP8KV_EINVAL, "%s->size is %" PRIu32 ": fill %s with %s() first", what, size,
		     what, init);
	for (int i = 0; i < nfields; i++)
		if (size > fields[i].begin && size < fields[i].end)
			FAIL(FP8KV_EINVAL, "%s->size (%" PRIu32 ") ends inside field %s (bytes %zu-%zu)",
			     what, size, fields[i].name, fields[i].begin, fields[i].end - 1);
	/* a caller's newer header: what it set past our struct must be zero,
	 * the defaults of fields we do not know */
	for (size_t i = ours_size; i < size; i++)
		if (((const unsigned char *)src)[i])
			FAIL(FP8KV_ENOTSUP,
			     "%s: byte %zu is not zero, past the %zu bytes of this library's "
			     "struct (%s->size is %" PRIu32 "): a field this library does not know "
			     "was set",
			     what, i, ours_size, what, size);
	memset(ours, 0, ours_size);
	memcpy(ours, src, size < ours_size ? size : ours_size);
	return FP8KV_OK;
}

/* ---- the checks every write descriptor shares (D11) ---- */

fp8kv_status fp8kv_check_enums(fp8kv_dtype input_dtype, fp8kv_dtype cache_dtype,
			       fp8kv_overflow overflow, fp8kv_scale_mode scale_mode)
{
	if (!is_known_dtype(input_dtype))
		FAIL(FP8KV_EINVAL, "input_dtype %d is not an fp8kv_dtype", (int)input_dtype);
	if (!is_known_dtype(cache_dtype))
		FAIL(FP8KV_EINVAL, "cache_dtype %d is not an fp8kv_dtype", (int)cache_dtype);
	if (!is_input_dtype(input_dtype))
		FAIL(FP8KV_ENOTSUP, "input_dtype %s: inputs must be f32, f16 or bf16",
		     fp8kv_dtype_name(input_dtype));
	if ((unsigned)overflow > (unsigned)FP8KV_NONSATURATING)
		FAIL(FP8KV_EINVAL, "overflow %d is not an fp8kv_overflow", (int)overflow);
	if ((unsigned)scale_mode > (unsigned)FP8KV_SCALE_GROUP)
		FAIL(FP8KV_EINVAL, "scale_mode %d is not an fp8kv_scale_mode", (int)scale_mode);
	return FP8KV_OK;
}

fp8kv_status fp8kv_check_index_types(fp8kv_index_type slot_type, const void *swa_mapping,
				     fp8kv_index_type swa_type)
{
	if ((unsigned)slot_type > (unsigned)FP8KV_INDEX_INT32)
		FAIL(FP8KV_EINVAL, "slot_type %d is not an fp8kv_index_type", (int)slot_type);
	if (swa_mapping && (unsigned)swa_type > (unsigned)FP8KV_INDEX_INT32)
		FAIL(FP8KV_EINVAL, "swa_type %d is not an fp8kv_index_type", (int)swa_type);
	return FP8KV_OK;
}

/* The dtypes, enums and policy of a plain (grouped 0) or grouped write. */
static fp8kv_status check_dtypes(const fp8kv_cache_write *d, int grouped)
{
	fp8kv_status st = fp8kv_check_enums(d->input_dtype, d->cache_dtype, d->overflow,
					     d->scale_mode);
	if (st != FP8KV_OK)
		return st;
	if (grouped) {
		if (d->scale_mode != FP8KV_SCALE_GROUP)
			FAIL(FP8KV_EINVAL,
			     "scale_mode %d: a grouped write needs FP8KV_SCALE_GROUP (4)",
			     (int)d->scale_mode);
		if (!plan_is_element_format(d->cache_dtype))
			FAIL(FP8KV_ENOTSUP,
			     "cache_dtype %s: group scales need an FP8, e2m1 or int8 cache",
			     fp8kv_dtype_name(d->cache_dtype));
		if (d->overflow == FP8KV_NONSATURATING && !fp8kv_dtype_is_fp8(d->cache_dtype))
			FAIL(FP8KV_ENOTSUP,
			     "overflow FP8KV_NONSATURATING with cache_dtype %s: e2m1 and int8 "
			     "saturate (they have no Inf or NaN)",
			     fp8kv_dtype_name(d->cache_dtype));
	} else {
		if (d->scale_mode == FP8KV_SCALE_GROUP)
			FAIL(FP8KV_EINVAL, "scale_mode FP8KV_SCALE_GROUP: group scales are written "
					   "by fp8kv_reshape_and_cache_grouped");
		if (d->cache_dtype != d->input_dtype && !fp8kv_dtype_is_fp8(d->cache_dtype))
			FAIL(FP8KV_ENOTSUP,
			     "cache_dtype %s with input_dtype %s: the cache must be the input dtype "
			     "or FP8 (e2m1 and int8 caches take fp8kv_reshape_and_cache_grouped)",
			     fp8kv_dtype_name(d->cache_dtype), fp8kv_dtype_name(d->input_dtype));
		if (d->scale_mode != FP8KV_SCALE_ONE && !fp8kv_dtype_is_fp8(d->cache_dtype))
			FAIL(FP8KV_ENOTSUP, "scale_mode %d needs an FP8 cache (cache_dtype is %s)",
			     (int)d->scale_mode, fp8kv_dtype_name(d->cache_dtype));
	}
	return fp8kv_check_index_types(d->slot_type, d->swa_mapping, d->swa_type);
}

static fp8kv_status check_pointers(const fp8kv_cache_write *d)
{
	const size_t in_size = fp8kv_dtype_size(d->input_dtype);
	const size_t cache_size = fp8kv_dtype_size(d->cache_dtype);

	REQUIRE_PTR(key_cache);
	REQUIRE_PTR(value_cache);
	if (d->num_tokens > 0) {
		REQUIRE_PTR(key);
		REQUIRE_PTR(value);
		REQUIRE_PTR(slot_mapping);
	}
	if (d->scale_mode == FP8KV_SCALE_TENSOR || d->scale_mode == FP8KV_SCALE_HEAD) {
		REQUIRE_PTR(k_scale);
		REQUIRE_PTR(v_scale);
	}
	if (d->scale_mode == FP8KV_SCALE_TOKEN_HEAD) {
		REQUIRE_PTR(k_scale_cache);
		REQUIRE_PTR(v_scale_cache);
	}
	REQUIRE_ALIGNED(key, in_size);
	REQUIRE_ALIGNED(value, in_size);
	REQUIRE_ALIGNED(key_cache, cache_size);
	REQUIRE_ALIGNED(value_cache, cache_size);
	REQUIRE_ALIGNED(slot_mapping, index_size(d->slot_type));
	REQUIRE_ALIGNED(swa_mapping, index_size(d->swa_type));
	if (d->scale_mode != FP8KV_SCALE_GROUP) { /* unused by a grouped write */
		REQUIRE_ALIGNED(k_scale, 4);
		REQUIRE_ALIGNED(v_scale, 4);
		REQUIRE_ALIGNED(k_scale_cache, 4);
		REQUIRE_ALIGNED(v_scale_cache, 4);
	}
	REQUIRE_ALIGNED(overflow_count, 8);
	REQUIRE_ALIGNED(nan_count, 8);
	REQUIRE_ALIGNED(k_amax, 4);
	REQUIRE_ALIGNED(v_amax, 4);
	return FP8KV_OK;
}

/* The regions a call may have: section 7's 14, the groups' 4. */
#define MAX_REGIONS 18

fp8kv_status fp8kv_validate_cache_write(const fp8kv_cache_write *d, const fp8kv_group_scales *g)
{
	fp8kv_status st;
	int64_t num_slots;

	if (!d)
		FAIL(FP8KV_EINVAL, "desc is NULL");
	if ((st = check_dtypes(d, g != NULL)) != FP8KV_OK)
		return st;
	if (d->num_tokens < 0)
		FAIL(FP8KV_EINVAL, "num_tokens must be >= 0 (got %" PRId64 ")", d->num_tokens);
	REQUIRE_POSITIVE(num_heads);
	REQUIRE_POSITIVE(head_dim_k);
	REQUIRE_POSITIVE(head_dim_v);
	REQUIRE_POSITIVE(num_blocks);
	REQUIRE_POSITIVE(block_size);
	if (__builtin_mul_overflow(d->num_blocks, d->block_size, &num_slots))
		FAIL(FP8KV_EINVAL, "num_blocks * block_size overflows 64 bits");
	if (d->swa_mapping && d->swa_mapping_len < 1)
		FAIL(FP8KV_EINVAL, "swa_mapping_len must be >= 1 with a swa_mapping (got %" PRId64 ")",
		     d->swa_mapping_len);
	/* two e2m1 values share a byte (section 5b): rows of whole bytes */
	const int64_t per = fp8kv_values_per_element(d->cache_dtype);
	if (d->head_dim_k % per || d->head_dim_v % per)
		FAIL(FP8KV_EINVAL, "%s (%" PRId64 ") is odd: rows of an e2m1 cache have an even length",
		     d->head_dim_k % per ? "head_dim_k" : "head_dim_v",
		     d->head_dim_k % per ? d->head_dim_k : d->head_dim_v);
	if ((st = check_pointers(d)) != FP8KV_OK)
		return st;

	const size_t in_size = fp8kv_dtype_size(d->input_dtype);
	const size_t cache_size = fp8kv_dtype_size(d->cache_dtype);
	const int64_t tokens = d->num_tokens > 0 ? d->num_tokens : 1;
	const fp8kv_layout key_in = {3, {tokens, d->num_heads, d->head_dim_k},
			       {d->key_stride_token, d->key_stride_head, 1},
			       {"token", "head", "dim"}};
	const fp8kv_layout value_in = {3, {tokens, d->num_heads, d->head_dim_v},
				 {d->value_stride_token, d->value_stride_head, 1},
				 {"token", "head", "dim"}};
	/* a cache row holds head_dim / per elements */
	const fp8kv_layout key_cache = {4, {d->num_blocks, d->block_size, d->num_heads,
					    d->head_dim_k / per},
				  {d->key_cache_stride_block, d->key_cache_stride_slot,
				   d->key_cache_stride_head, 1},
				  {"block", "slot", "head", "dim"}};
	const fp8kv_layout value_cache = {4, {d->num_blocks, d->block_size, d->num_heads,
					      d->head_dim_v / per},
				    {d->value_cache_stride_block, d->value_cache_stride_slot,
				     d->value_cache_stride_head, 1},
				    {"block", "slot", "head", "dim"}};
	/* inputs are only read, so overlapping (broadcast) rows are allowed */
	if ((st = fp8kv_layout_check(&key_in, in_size, "key", 0)) != FP8KV_OK ||
	    (st = fp8kv_layout_check(&value_in, in_size, "value", 0)) != FP8KV_OK ||
	    (st = fp8kv_layout_check(&key_cache, cache_size, "key_cache", 1)) != FP8KV_OK ||
	    (st = fp8kv_layout_check(&value_cache, cache_size, "value_cache", 1)) != FP8KV_OK)
		return st;
	const fp8kv_layout scales = {3, {d->num_blocks, d->block_size, d->num_heads},
				     {d->scale_cache_stride_block, d->scale_cache_stride_slot,
				      d->scale_cache_stride_head},
				     {"block", "slot", "head"}};
	const int dynamic = d->scale_mode == FP8KV_SCALE_TOKEN_HEAD;
	if (dynamic && (st = fp8kv_layout_check(&scales, 4, "scale_cache", 1)) != FP8KV_OK)
		return st;

	/* which arguments share memory: outputs with anything, inputs with
	 * outputs (the sizes below cannot overflow once the layouts passed,
	 * but for the mappings, whose lengths nothing else bounds) */
	uint64_t slot_bytes = 0, swa_bytes = 0;
	if (__builtin_mul_overflow((uint64_t)d->num_tokens, index_size(d->slot_type), &slot_bytes) ||
	    (d->swa_mapping && __builtin_mul_overflow((uint64_t)d->swa_mapping_len,
						      index_size(d->swa_type), &swa_bytes)))
		FAIL(FP8KV_EINVAL, "slot_mapping or swa_mapping: length overflows 64-bit byte sizes");
	const int reading = d->num_tokens > 0;
	const uint64_t heads_floats = (uint64_t)d->num_heads * 4;
	const uint64_t scale_bytes = d->scale_mode == FP8KV_SCALE_TENSOR ? 4
				     : d->scale_mode == FP8KV_SCALE_HEAD ? heads_floats
									 : 0;
	fp8kv_region r[MAX_REGIONS];
	int n = 0;
	fp8kv_region_strided(&r[n++], "key_cache", 1, d->key_cache, &key_cache, cache_size);
	fp8kv_region_strided(&r[n++], "value_cache", 1, d->value_cache, &value_cache, cache_size);
	if (dynamic) {
		fp8kv_region_strided(&r[n++], "k_scale_cache", 1, d->k_scale_cache, &scales, 4);
		fp8kv_region_strided(&r[n++], "v_scale_cache", 1, d->v_scale_cache, &scales, 4);
	}
	fp8kv_region_flat(&r[n++], "overflow_count", 1, d->overflow_count, 8);
	fp8kv_region_flat(&r[n++], "nan_count", 1, d->nan_count, 8);
	fp8kv_region_flat(&r[n++], "k_amax", 1, d->k_amax, heads_floats);
	fp8kv_region_flat(&r[n++], "v_amax", 1, d->v_amax, heads_floats);
	if (scale_bytes) {
		fp8kv_region_flat(&r[n++], "k_scale", 0, d->k_scale, scale_bytes);
		fp8kv_region_flat(&r[n++], "v_scale", 0, d->v_scale, scale_bytes);
	}
	if (reading) {
		fp8kv_region_strided(&r[n++], "key", 0, d->key, &key_in, in_size);
		fp8kv_region_strided(&r[n++], "value", 0, d->value, &value_in, in_size);
		fp8kv_region_flat(&r[n++], "slot_mapping", 0, d->slot_mapping, slot_bytes);
		fp8kv_region_flat(&r[n++], "swa_mapping", 0, d->swa_mapping, swa_bytes);
	}
	if (g && (st = fp8kv_check_groups(d, g, r, &n)) != FP8KV_OK)
		return st;
	return fp8kv_regions_apart(r, n);
}

static fp8kv_status validate_convert(const fp8kv_convert_args *a, int quantize)
{
	const fp8kv_dtype fmt = quantize ? a->dst_dtype : a->src_dtype;
	const fp8kv_dtype wide = quantize ? a->src_dtype : a->dst_dtype;

	if (!is_known_dtype(fmt) || !is_known_dtype(wide))
		FAIL(FP8KV_EINVAL, "dtype %d / %d is not an fp8kv_dtype", (int)a->dst_dtype,
		     (int)a->src_dtype);
	if (!fp8kv_dtype_is_fp8(fmt))
		FAIL(FP8KV_ENOTSUP, "%s: the %s must be an FP8 format (got %s)",
		     quantize ? "quantize" : "dequantize",
		     quantize ? "destination" : "source", fp8kv_dtype_name(fmt));
	if (!is_input_dtype(wide))
		FAIL(FP8KV_ENOTSUP, "%s: the %s must be f32, f16 or bf16 (got %s)",
		     quantize ? "quantize" : "dequantize",
		     quantize ? "source" : "destination", fp8kv_dtype_name(wide));
	if ((unsigned)a->overflow > (unsigned)FP8KV_NONSATURATING)
		FAIL(FP8KV_EINVAL, "overflow %d is not an fp8kv_overflow", (int)a->overflow);
	if (a->scale_mode != FP8KV_SCALE_ONE && a->scale_mode != FP8KV_SCALE_TENSOR)
		FAIL((unsigned)a->scale_mode <= FP8KV_SCALE_GROUP ? FP8KV_ENOTSUP : FP8KV_EINVAL,
		     "scale_mode %d: flat conversions take FP8KV_SCALE_ONE or FP8KV_SCALE_TENSOR",
		     (int)a->scale_mode);
	if (a->count == 0)
		return FP8KV_OK;
	if (!a->src || !a->dst)
		FAIL(FP8KV_EINVAL, "%s is NULL", a->src ? "dst" : "src");
	if (a->scale_mode == FP8KV_SCALE_TENSOR && !a->scale)
		FAIL(FP8KV_EINVAL, "scale is NULL with FP8KV_SCALE_TENSOR");
	if (a->count > (size_t)INT64_MAX / 4)
		FAIL(FP8KV_EINVAL, "count %zu is too large", a->count);
	if (misaligned(a->src, fp8kv_dtype_size(a->src_dtype)) ||
	    misaligned(a->dst, fp8kv_dtype_size(a->dst_dtype)))
		FAIL(FP8KV_EINVAL, "src or dst is not aligned to its element size");
	if (a->scale_mode == FP8KV_SCALE_TENSOR && misaligned(a->scale, 4))
		FAIL(FP8KV_EINVAL, "scale (%p) is not aligned to 4 bytes", (const void *)a->scale);
	if (a->overflow_count && misaligned(a->overflow_count, 8))
		FAIL(FP8KV_EINVAL, "overflow_count (%p) is not aligned to 8 bytes",
		     (void *)a->overflow_count);
	/* no conversion in place: the elements differ in size, and threads
	 * would read what others wrote */
	fp8kv_region r[4];
	int n = 0;
	fp8kv_region_flat(&r[n++], "dst", 1, a->dst, a->count * fp8kv_dtype_size(a->dst_dtype));
	fp8kv_region_flat(&r[n++], "src", 0, a->src, a->count * fp8kv_dtype_size(a->src_dtype));
	fp8kv_region_flat(&r[n++], "overflow_count", 1, a->overflow_count, 8);
	if (a->scale_mode == FP8KV_SCALE_TENSOR)
		fp8kv_region_flat(&r[n++], "scale", 0, a->scale, 4);
	return fp8kv_regions_apart(r, n);
}

/* ---- plans ---- */

static void plan_side(fp8kv_plan_side *side, const void *input, void *cache, int64_t head_dim,
		      int64_t stride_token, int64_t stride_head, int64_t cache_block,
		      int64_t cache_slot, int64_t cache_head, const float *scale,
		      float *scale_cache, float *amax, const fp8kv_cache_write *d)
{
	side->recipe.cache_dtype = (int32_t)d->cache_dtype;
	side->recipe.cache_size = (int32_t)fp8kv_dtype_size(d->cache_dtype);
	side->recipe.converts = plan_is_element_format(d->cache_dtype);
	side->recipe.scale_mode = (int32_t)d->scale_mode;
	side->input = (const unsigned char *)input;
	side->cache = (unsigned char *)cache;
	side->head_dim = head_dim;
	side->input_stride_token = stride_token;
	side->input_stride_head = stride_head;
	side->cache_stride_block = cache_block;
	side->cache_stride_slot = cache_slot;
	side->cache_stride_head = cache_head;
	side->scale = fp8kv_mode_given(d->scale_mode) ? scale : NULL;
	if (fp8kv_mode_computed(d->scale_mode)) {
		side->scale_cache = scale_cache;
		side->scale_stride_block = d->scale_cache_stride_block;
		side->scale_stride_slot = d->scale_cache_stride_slot;
		side->scale_stride_head = d->scale_cache_stride_head;
	}
	side->amax = amax;
}

fp8kv_status fp8kv_plan_cache_write(const fp8kv_cache_write *d, const fp8kv_group_scales *g,
				    fp8kv_write_plan *p)
{
	fp8kv_status st = fp8kv_validate_cache_write(d, g);
	if (st != FP8KV_OK)
		return st;
	memset(p, 0, sizeof *p);
	plan_side(&p->side[FP8KV_SIDE_KEY], d->key, d->key_cache, d->head_dim_k,
		  d->key_stride_token, d->key_stride_head, d->key_cache_stride_block,
		  d->key_cache_stride_slot, d->key_cache_stride_head, d->k_scale, d->k_scale_cache,
		  d->k_amax, d);
	plan_side(&p->side[FP8KV_SIDE_VALUE], d->value, d->value_cache, d->head_dim_v,
		  d->value_stride_token, d->value_stride_head, d->value_cache_stride_block,
		  d->value_cache_stride_slot, d->value_cache_stride_head, d->v_scale,
		  d->v_scale_cache, d->v_amax, d);
	p->slots.slot_mapping = d->slot_mapping;
	p->slots.slot_type = (int32_t)d->slot_type;
	if (d->swa_mapping) {
		p->slots.swa_mapping = d->swa_mapping;
		p->slots.swa_len = d->swa_mapping_len;
		p->slots.swa_type = (int32_t)d->swa_type;
	}
	p->slots.num_slots = d->num_blocks * d->block_size; /* validated */
	p->num_tokens = d->num_tokens;
	p->num_heads = d->num_heads;
	p->num_blocks = d->num_blocks;
	p->block_size = d->block_size;
	p->overflow_count = d->overflow_count;
	p->nan_count = d->nan_count;
	p->input_dtype = (int32_t)d->input_dtype;
	p->input_size = (int32_t)fp8kv_dtype_size(d->input_dtype);
	p->saturate = d->overflow == FP8KV_SATURATE;
	if (g)
		fp8kv_plan_groups(d, g, p);
	return FP8KV_OK;
}

fp8kv_status fp8kv_plan_convert(const fp8kv_convert_args *a, int quantize, fp8kv_convert_plan *p)
{
	fp8kv_status st = validate_convert(a, quantize);
	if (st != FP8KV_OK)
		return st;
	memset(p, 0, sizeof *p);
	p->dst = a->dst;
	p->src = a->src;
	p->count = (int64_t)a->count; /* validated: <= INT64_MAX / 4 */
	p->dst_dtype = (int32_t)a->dst_dtype;
	p->src_dtype = (int32_t)a->src_dtype;
	p->dst_size = (int32_t)fp8kv_dtype_size(a->dst_dtype);
	p->src_size = (int32_t)fp8kv_dtype_size(a->src_dtype);
	p->scale = a->scale_mode == FP8KV_SCALE_TENSOR ? a->scale : NULL;
	p->saturate = a->overflow == FP8KV_SATURATE;
	p->overflow_count = quantize ? a->overflow_count : NULL;
	return FP8KV_OK;
}
