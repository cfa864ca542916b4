/* SPDX-License-Identifier: MIT */
/*
 * fp8kv.c - the public entry points: check the arguments and make a plan
 * (plan.c), then hand the work to the backend's table.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

#include "internal.h"

#define CHECK_BACKEND(b)                                                         \
	do {                                                                     \
		fp8kv_clear_error();                                             \
		if (!(b))                                                        \
			return fp8kv_set_error(FP8KV_EINVAL, "backend is NULL"); \
	} while (0)

FP8KV_API const char *fp8kv_version(void)
{
	return PACKAGE_VERSION;
}

/* ---- backends ---- */

/* N of "NAME:N": decimal digits only (no sign, no space), at most 2^20. */
static int parse_device(const char *s, int *device)
{
	long v = 0;
	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > 1 << 20)
			return -1;
		v = v * 10 + (*s - '0');
	}
	if (v > 1 << 20)
		return -1;
	*device = (int)v;
	return 0;
}

/* The backends inside the library; any other name is a module. */
static const struct {
	const char *name;
	fp8kv_module_entry_fn entry;
} linked_backends[] = {
	{"cpu", fp8kv_cpu_entry},
#if FP8KV_HIP_LINKED
	{"hip", fp8kv_hip_entry},
#endif
};

static fp8kv_status open_named(const char *name, fp8kv_backend **out)
{
	char module[64];
	int device = -1;
	const fp8kv_backend_ops *ops;
	void *handle = NULL, *ctx = NULL;
	fp8kv_status st;

	/* NAME or NAME:N */
	const char *colon = strchr(name, ':');
	size_t len = colon ? (size_t)(colon - name) : strlen(name);
	if (len == 0 || len >= sizeof module)
		return fp8kv_set_error(FP8KV_EINVAL, "backend name '%s' is malformed", name);
	memcpy(module, name, len);
	module[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if (!((module[i] >= 'a' && module[i] <= 'z') ||
		      (module[i] >= '0' && module[i] <= '9') || module[i] == '_'))
			return fp8kv_set_error(FP8KV_EINVAL, "backend name '%s' is malformed",
					       name);
	if (colon && parse_device(colon + 1, &device))
		return fp8kv_set_error(FP8KV_EINVAL, "backend '%s': bad device number", name);

	ops = NULL;
	for (size_t i = 0; i < sizeof linked_backends / sizeof *linked_backends; i++)
		if (!strcmp(module, linked_backends[i].name) &&
		    !(ops = linked_backends[i].entry(&fp8kv_host)))
			return fp8kv_set_error(FP8KV_EBACKEND, "backend '%s' refused to start",
					       module);
	if (!ops && (st = fp8kv_module_load(module, &ops, &handle)) != FP8KV_OK)
		return st;

	if ((st = ops->open(device, &ctx)) != FP8KV_OK) {
		if (!fp8kv_last_error()[0])
			fp8kv_set_error(st, "backend '%s' failed to open (%s; it gave no reason)", name,
					fp8kv_strerror(st));
		fp8kv_module_unload(handle);
		return st;
	}
	fp8kv_backend *b = calloc(1, sizeof *b);
	if (!b) {
		ops->close(ctx);
		fp8kv_module_unload(handle);
		return fp8kv_set_error(FP8KV_ENOMEM, "no memory for the backend handle");
	}
	b->ops = ops;
	b->ctx = ctx;
	b->module = handle;
	*out = b;
	return FP8KV_OK;
}

FP8KV_API fp8kv_status fp8kv_backend_open(const char *name, fp8kv_backend **backend)
{
	fp8kv_clear_error();
	if (!backend)
		return fp8kv_set_error(FP8KV_EINVAL, "backend is NULL");
	*backend = NULL;
	if (!name || !strcmp(name, "auto")) {
		const char *env = fp8kv_trusted_getenv("FP8KV_BACKEND");
		if (env && *env && strcmp(env, "auto"))
			return open_named(env, backend);
		if (open_named("hip", backend) == FP8KV_OK)
			return FP8KV_OK;
		fp8kv_clear_error();
		return open_named("cpu", backend);
	}
	return open_named(name, backend);
}

FP8KV_API void fp8kv_backend_close(fp8kv_backend *b)
{
	if (!b)
		return;
	b->ops->close(b->ctx);
	fp8kv_module_unload(b->module);
	free(b);
}

FP8KV_API const char *fp8kv_backend_name(const fp8kv_backend *b)
{
	return b ? b->ops->canonical_name(b->ctx) : NULL;
}

FP8KV_API const char *fp8kv_backend_device(const fp8kv_backend *b)
{
	return b ? b->ops->device(b->ctx) : NULL;
}

FP8KV_API fp8kv_status fp8kv_backend_synchronize(fp8kv_backend *b, void *stream)
{
	CHECK_BACKEND(b);
	return b->ops->synchronize(b->ctx, stream);
}

/* ---- buffers ---- */

FP8KV_API fp8kv_status fp8kv_buffer_alloc(fp8kv_backend *b, size_t bytes, void **ptr)
{
	CHECK_BACKEND(b);
	if (!ptr)
		return fp8kv_set_error(FP8KV_EINVAL, "ptr is NULL");
	*ptr = NULL;
	if (bytes == 0)
		return fp8kv_set_error(FP8KV_EINVAL, "bytes is 0");
	return b->ops->alloc(b->ctx, bytes, ptr);
}

FP8KV_API void fp8kv_buffer_free(fp8kv_backend *b, void *ptr)
{
	if (b && ptr)
		b->ops->free(b->ctx, ptr);
}

FP8KV_API fp8kv_status fp8kv_buffer_upload(fp8kv_backend *b, void *dst, const void *src,
					   size_t bytes)
{
	CHECK_BACKEND(b);
	if (bytes && (!dst || !src))
		return fp8kv_set_error(FP8KV_EINVAL, "%s is NULL", dst ? "host_src" : "dst");
	return bytes ? b->ops->upload(b->ctx, dst, src, bytes) : FP8KV_OK;
}

FP8KV_API fp8kv_status fp8kv_buffer_download(fp8kv_backend *b, void *dst, const void *src,
					     size_t bytes)
{
	CHECK_BACKEND(b);
	if (bytes && (!dst || !src))
		return fp8kv_set_error(FP8KV_EINVAL, "%s is NULL", dst ? "src" : "host_dst");
	return bytes ? b->ops->download(b->ctx, dst, src, bytes) : FP8KV_OK;
}

FP8KV_API fp8kv_status fp8kv_buffer_fill(fp8kv_backend *b, void *dst, uint8_t byte,
					 size_t bytes)
{
	CHECK_BACKEND(b);
	if (bytes && !dst)
		return fp8kv_set_error(FP8KV_EINVAL, "dst is NULL");
	return bytes ? b->ops->fill(b->ctx, dst, byte, bytes) : FP8KV_OK;
}

/* ---- conversions ---- */

FP8KV_API fp8kv_status fp8kv_quantize(fp8kv_backend *b, void *dst, fp8kv_dtype format,
				      const void *src, fp8kv_dtype src_dtype, size_t count,
				      fp8kv_scale_mode scale_mode, const float *scale,
				      fp8kv_overflow overflow, uint64_t *overflow_count,
				      void *stream)
{
	fp8kv_status st;
	const fp8kv_convert_args args = {dst, format, src, src_dtype, count,
					 scale_mode, scale, overflow, overflow_count};
	fp8kv_convert_plan plan;
	CHECK_BACKEND(b);
	if ((st = fp8kv_plan_convert(&args, 1, &plan)) != FP8KV_OK || count == 0)
		return st;
	return b->ops->quantize(b->ctx, &plan, stream);
}

FP8KV_API fp8kv_status fp8kv_dequantize(fp8kv_backend *b, void *dst, fp8kv_dtype dst_dtype,
					const void *src, fp8kv_dtype format, size_t count,
					fp8kv_scale_mode scale_mode, const float *scale,
					void *stream)
{
	fp8kv_status st;
	const fp8kv_convert_args args = {dst, dst_dtype, src, format, count,
					 scale_mode, scale, FP8KV_SATURATE, NULL};
	fp8kv_convert_plan plan;
	CHECK_BACKEND(b);
	if ((st = fp8kv_plan_convert(&args, 0, &plan)) != FP8KV_OK || count == 0)
		return st;
	return b->ops->dequantize(b->ctx, &plan, stream);
}

/* ---- the cache write ---- */

/* A product of sizes that stays INT64_MAX when it would overflow, so that
 * fp8kv_reshape_and_cache rejects the descriptor instead of wrapping. */
static int64_t mul_saturated(int64_t a, int64_t b)
{
	int64_t r;
	return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

/* The defaults every write descriptor's init gives (fp8kv_cache_write_init,
 * fp8kv_mla_write_init): bf16 in, e4m3fn out, int64 indices, scale one,
 * saturating. */
#define SET_WRITE_DEFAULTS(d)                          \
	do {                                           \
		(d)->input_dtype = FP8KV_BF16;         \
		(d)->cache_dtype = FP8KV_E4M3FN;       \
		(d)->slot_type = FP8KV_INDEX_INT64;    \
		(d)->swa_type = FP8KV_INDEX_INT64;     \
		(d)->scale_mode = FP8KV_SCALE_ONE;     \
		(d)->overflow = FP8KV_SATURATE;        \
	} while (0)

FP8KV_API void fp8kv_cache_write_init(fp8kv_cache_write *d, int64_t num_tokens,
				      int64_t num_heads, int64_t head_dim_k, int64_t head_dim_v,
				      int64_t num_blocks, int64_t block_size,
				      fp8kv_cache_layout layout)
{
	if (!d)
		return;
#define MUL(x, y) mul_saturated(x, y)
	memset(d, 0, sizeof *d);
	d->num_tokens = num_tokens;
	d->num_heads = num_heads;
	d->head_dim_k = head_dim_k;
	d->head_dim_v = head_dim_v;
	d->num_blocks = num_blocks;
	d->block_size = block_size;
	d->key_stride_head = head_dim_k;
	d->key_stride_token = MUL(num_heads, head_dim_k);
	d->value_stride_head = head_dim_v;
	d->value_stride_token = MUL(num_heads, head_dim_v);
	if (layout == FP8KV_LAYOUT_HND) {
		d->key_cache_stride_slot = head_dim_k;
		d->key_cache_stride_head = MUL(block_size, head_dim_k);
		d->value_cache_stride_slot = head_dim_v;
		d->value_cache_stride_head = MUL(block_size, head_dim_v);
		d->scale_cache_stride_slot = 1;
		d->scale_cache_stride_head = block_size;
	} else {
		d->key_cache_stride_head = head_dim_k;
		d->key_cache_stride_slot = MUL(num_heads, head_dim_k);
		d->value_cache_stride_head = head_dim_v;
		d->value_cache_stride_slot = MUL(num_heads, head_dim_v);
		d->scale_cache_stride_head = 1;
		d->scale_cache_stride_slot = num_heads;
	}
	d->key_cache_stride_block = MUL(MUL(block_size, num_heads), head_dim_k);
	d->value_cache_stride_block = MUL(MUL(block_size, num_heads), head_dim_v);
	d->scale_cache_stride_block = MUL(block_size, num_heads);
	SET_WRITE_DEFAULTS(d);
#undef MUL
}

/* The tail every write entry point shares once its plan is made: nothing to
 * do for zero tokens (before asking the backend, so an empty call succeeds
 * everywhere), and ENOTSUP naming the backend and the write where the
 * backend lacks the op (only the grouped and MLA ops are optional). */
typedef fp8kv_status (*write_op)(void *ctx, const fp8kv_write_plan *plan, void *stream);

static fp8kv_status dispatch_write(fp8kv_backend *b, const fp8kv_write_plan *plan, write_op op,
				   const char *what, void *stream)
{
	if (plan->num_tokens == 0)
		return FP8KV_OK;
	if (!op)
		return fp8kv_set_error(FP8KV_ENOTSUP,
				       "backend %s: %s writes are not yet on this backend",
				       b->ops->name, what);
	return op(b->ctx, plan, stream);
}

FP8KV_API fp8kv_status fp8kv_reshape_and_cache(fp8kv_backend *b, const fp8kv_cache_write *desc,
					       void *stream)
{
	fp8kv_status st;
	fp8kv_write_plan plan;
	CHECK_BACKEND(b);
	if ((st = fp8kv_plan_cache_write(desc, NULL, &plan)) != FP8KV_OK)
		return st;
	return dispatch_write(b, &plan, b->ops->reshape_and_cache, "cache", stream);
}

/* ---- group scales (section 8) ---- */

FP8KV_API void fp8kv_group_scales_init(fp8kv_group_scales *g, fp8kv_group_rule rule,
				       int64_t group_size, int64_t num_heads, int64_t head_dim,
				       int64_t block_size, fp8kv_cache_layout layout)
{
	if (!g)
		return;
#define MUL(x, y) mul_saturated(x, y)
	memset(g, 0, sizeof *g);
	g->size = sizeof *g;
	g->rule = rule;
	g->group_size = group_size;
	g->rounding = FP8KV_ROUND_NEAREST_EVEN;
	/* [blocks][block_size][heads][groups] or [blocks][heads][block_size][groups] */
	const int64_t groups = group_size > 0 ? head_dim / group_size : 0;
	g->stride_group = 1;
	if (layout == FP8KV_LAYOUT_HND) {
		g->stride_slot = groups;
		g->stride_head = MUL(block_size, groups);
	} else {
		g->stride_head = groups;
		g->stride_slot = MUL(num_heads, groups);
	}
	g->stride_block = MUL(MUL(block_size, num_heads), groups);
#undef MUL
}

FP8KV_API fp8kv_status fp8kv_reshape_and_cache_grouped(fp8kv_backend *b,
						       const fp8kv_cache_write *desc,
						       const fp8kv_group_scales *groups,
						       void *stream)
{
	fp8kv_status st;
	fp8kv_group_scales g;
	fp8kv_write_plan plan;
	CHECK_BACKEND(b);
	if (!desc)
		return fp8kv_set_error(FP8KV_EINVAL, "desc is NULL");
	if ((st = fp8kv_read_groups(groups, &g)) != FP8KV_OK ||
	    (st = fp8kv_plan_cache_write(desc, &g, &plan)) != FP8KV_OK)
		return st;
	return dispatch_write(b, &plan, b->ops->reshape_and_cache_grouped, "grouped", stream);
}

/* ---- MLA latent writes (section 9) ---- */

FP8KV_API void fp8kv_mla_write_init(fp8kv_mla_write *d, fp8kv_mla_kind kind, int64_t num_tokens,
				    int64_t kv_lora_rank, int64_t pe_dim, int64_t num_blocks,
				    int64_t block_size)
{
	if (!d)
		return;
	memset(d, 0, sizeof *d);
	d->size = sizeof *d;
	d->kind = kind;
	d->num_tokens = num_tokens;
	d->kv_lora_rank = kv_lora_rank;
	d->pe_dim = pe_dim;
	d->num_blocks = num_blocks;
	d->block_size = block_size;
	d->kv_c_stride_token = kv_lora_rank;
	d->k_pe_stride_token = pe_dim;
	/* entries of kv_lora_rank + pe_dim elements, or DeepSeek's 656 bytes */
	d->stride_slot = kind == FP8KV_MLA_DS ? 656 : (kv_lora_rank > INT64_MAX - pe_dim
							       ? INT64_MAX
							       : kv_lora_rank + pe_dim);
	d->stride_block = mul_saturated(block_size, d->stride_slot);
	SET_WRITE_DEFAULTS(d);
}

FP8KV_API fp8kv_status fp8kv_concat_and_cache_mla(fp8kv_backend *b, const fp8kv_mla_write *desc,
						  void *stream)
{
	fp8kv_status st;
	fp8kv_write_plan plan;
	CHECK_BACKEND(b);
	if ((st = fp8kv_plan_mla_write(desc, &plan)) != FP8KV_OK)
		return st;
	return dispatch_write(b, &plan, b->ops->concat_and_cache_mla, "MLA", stream);
}

/* ---- helpers ---- */

FP8KV_API fp8kv_status fp8kv_amax(fp8kv_backend *b, const void *src, fp8kv_dtype dtype,
				  size_t count, float *amax)
{
	CHECK_BACKEND(b);
	if (!amax)
		return fp8kv_set_error(FP8KV_EINVAL, "amax is NULL");
	if (dtype != FP8KV_F32 && dtype != FP8KV_F16 && dtype != FP8KV_BF16)
		return fp8kv_set_error((unsigned)dtype <= FP8KV_INT8 ? FP8KV_ENOTSUP
									 : FP8KV_EINVAL,
				       "amax: dtype %d must be f32, f16 or bf16", (int)dtype);
	if (count > 0 && !src)
		return fp8kv_set_error(FP8KV_EINVAL, "src is NULL");
	if ((uintptr_t)src % fp8kv_dtype_size(dtype))
		return fp8kv_set_error(FP8KV_EINVAL, "src is not aligned to its element size");
	if (count > (size_t)INT64_MAX / 4)
		return fp8kv_set_error(FP8KV_EINVAL, "count %zu is too large", count);
	*amax = 0.0f;
	return count ? b->ops->amax(b->ctx, src, dtype, count, amax) : FP8KV_OK;
}

FP8KV_API fp8kv_status fp8kv_check_slots(fp8kv_backend *b, const void *slots, int64_t count,
					 fp8kv_index_type type, int64_t num_slots,
					 fp8kv_slot_report *report)
{
	CHECK_BACKEND(b);
	if (!report)
		return fp8kv_set_error(FP8KV_EINVAL, "report is NULL");
	if ((unsigned)type > FP8KV_INDEX_INT32)
		return fp8kv_set_error(FP8KV_EINVAL, "type %d is not an fp8kv_index_type", (int)type);
	if (count < 0 || num_slots < 0)
		return fp8kv_set_error(FP8KV_EINVAL,
				       "count (%" PRId64 ") and num_slots (%" PRId64 ") must be >= 0",
				       count, num_slots);
	if (count > 0 && !slots)
		return fp8kv_set_error(FP8KV_EINVAL, "slot_mapping is NULL");
	if ((uintptr_t)slots % (type == FP8KV_INDEX_INT32 ? 4 : 8))
		return fp8kv_set_error(FP8KV_EINVAL, "slot_mapping is not aligned");
	memset(report, 0, sizeof *report);
	report->first_padding = report->first_out_of_range = report->first_duplicate = -1;
	return count ? b->ops->check_slots(b->ctx, slots, count, type, num_slots, report)
		     : FP8KV_OK;
}
