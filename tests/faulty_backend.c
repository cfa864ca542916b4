/* SPDX-License-Identifier: MIT */
/*
 * faulty_backend.c - a backend module that is wrong on purpose, built only
 * for make check, to prove that fp8kv-validate notices a wrong backend.
 *
 * It forwards everything to the CPU backend, with one fault chosen by the
 * environment variable FP8KV_FAULT:
 *   scale  (default) the TENSOR/HEAD scales are dropped, as if they were 1;
 *   slot   every token is written one slot further on (when that exists).
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"

static const fp8kv_host_services *host;

typedef enum { FAULT_SCALE, FAULT_SLOT } fault;

typedef struct faulty {
	fp8kv_backend *cpu;
	fault fault;
} faulty;

static fp8kv_status pass(fp8kv_status st)
{
	return st == FP8KV_OK ? st : host->set_error(st, "faulty: %s", fp8kv_last_error());
}

static fp8kv_status faulty_open(int device, void **ctx)
{
	(void)device;
	const char *f = getenv("FP8KV_FAULT");
	faulty *c = calloc(1, sizeof *c);
	if (!c)
		return host->set_error(FP8KV_ENOMEM, "faulty: no memory");
	c->fault = f && !strcmp(f, "slot") ? FAULT_SLOT : FAULT_SCALE;
	fp8kv_status st = fp8kv_backend_open("cpu", &c->cpu);
	if (st != FP8KV_OK) {
		free(c);
		return pass(st);
	}
	*ctx = c;
	return FP8KV_OK;
}

static void faulty_close(void *ctx)
{
	faulty *c = ctx;
	fp8kv_backend_close(c->cpu);
	free(c);
}

static const char *faulty_name(void *ctx) { (void)ctx; return "faulty"; }
static const char *faulty_device(void *ctx) { (void)ctx; return "the CPU, with a fault"; }

static fp8kv_status faulty_sync(void *ctx, void *stream)
{
	return pass(fp8kv_backend_synchronize(((faulty *)ctx)->cpu, stream));
}

static fp8kv_status faulty_alloc(void *ctx, size_t bytes, void **ptr)
{
	return pass(fp8kv_buffer_alloc(((faulty *)ctx)->cpu, bytes, ptr));
}

static void faulty_free(void *ctx, void *ptr) { fp8kv_buffer_free(((faulty *)ctx)->cpu, ptr); }

static fp8kv_status faulty_upload(void *ctx, void *dst, const void *src, size_t bytes)
{
	return pass(fp8kv_buffer_upload(((faulty *)ctx)->cpu, dst, src, bytes));
}

static fp8kv_status faulty_download(void *ctx, void *dst, const void *src, size_t bytes)
{
	return pass(fp8kv_buffer_download(((faulty *)ctx)->cpu, dst, src, bytes));
}

static fp8kv_status faulty_fill(void *ctx, void *dst, uint8_t byte, size_t bytes)
{
	return pass(fp8kv_buffer_fill(((faulty *)ctx)->cpu, dst, byte, bytes));
}

/* The scale mode the CPU is asked for: the fault drops static scales. */
static fp8kv_scale_mode scale_mode_of(const faulty *c, const float *scale)
{
	return scale && c->fault != FAULT_SCALE ? FP8KV_SCALE_TENSOR : FP8KV_SCALE_ONE;
}

static fp8kv_status faulty_quantize(void *ctx, const fp8kv_convert_plan *a, void *stream)
{
	faulty *c = ctx;
	return pass(fp8kv_quantize(c->cpu, a->dst, a->dst_dtype, a->src, a->src_dtype,
				   (size_t)a->count, scale_mode_of(c, a->scale), a->scale,
				   a->saturate ? FP8KV_SATURATE : FP8KV_NONSATURATING,
				   a->overflow_count, stream));
}

static fp8kv_status faulty_dequantize(void *ctx, const fp8kv_convert_plan *a, void *stream)
{
	faulty *c = ctx;
	return pass(fp8kv_dequantize(c->cpu, a->dst, a->dst_dtype, a->src, a->src_dtype,
				     (size_t)a->count, scale_mode_of(c, a->scale), a->scale, stream));
}

/* The public descriptor of a plan, so that the write can go back through
 * the CPU backend's public call. */
static void descriptor_of(const fp8kv_write_plan *p, fp8kv_cache_write *d)
{
	const fp8kv_plan_side *k = &p->side[FP8KV_SIDE_KEY], *v = &p->side[FP8KV_SIDE_VALUE];
	fp8kv_cache_write_init(d, p->num_tokens, p->num_heads, k->head_dim, v->head_dim,
			       p->num_blocks, p->block_size, FP8KV_LAYOUT_NHD);
	d->key = k->input;
	d->value = v->input;
	d->input_dtype = (fp8kv_dtype)p->input_dtype;
	d->key_stride_token = k->input_stride_token;
	d->key_stride_head = k->input_stride_head;
	d->value_stride_token = v->input_stride_token;
	d->value_stride_head = v->input_stride_head;
	d->key_cache = k->cache;
	d->value_cache = v->cache;
	d->cache_dtype = (fp8kv_dtype)k->recipe.cache_dtype; /* the sides agree */
	d->key_cache_stride_block = k->cache_stride_block;
	d->key_cache_stride_slot = k->cache_stride_slot;
	d->key_cache_stride_head = k->cache_stride_head;
	d->value_cache_stride_block = v->cache_stride_block;
	d->value_cache_stride_slot = v->cache_stride_slot;
	d->value_cache_stride_head = v->cache_stride_head;
	d->slot_mapping = p->slots.slot_mapping;
	d->slot_type = (fp8kv_index_type)p->slots.slot_type;
	d->swa_mapping = p->slots.swa_mapping;
	d->swa_type = (fp8kv_index_type)p->slots.swa_type;
	d->swa_mapping_len = p->slots.swa_len;
	d->scale_mode = (fp8kv_scale_mode)k->recipe.scale_mode;
	d->k_scale = k->scale;
	d->v_scale = v->scale;
	d->overflow = p->saturate ? FP8KV_SATURATE : FP8KV_NONSATURATING;
	d->k_scale_cache = k->scale_cache;
	d->v_scale_cache = v->scale_cache;
	d->scale_cache_stride_block = k->scale_stride_block;
	d->scale_cache_stride_slot = k->scale_stride_slot;
	d->scale_cache_stride_head = k->scale_stride_head;
	d->overflow_count = p->overflow_count;
	d->nan_count = p->nan_count;
	d->k_amax = k->amax;
	d->v_amax = v->amax;
}

static fp8kv_status faulty_reshape_and_cache(void *ctx, const fp8kv_write_plan *plan,
					     void *stream)
{
	faulty *c = ctx;
	fp8kv_cache_write d;
	descriptor_of(plan, &d);
	int64_t *shifted = NULL;
	if (c->fault == FAULT_SCALE &&
	    (d.scale_mode == FP8KV_SCALE_TENSOR || d.scale_mode == FP8KV_SCALE_HEAD))
		d.scale_mode = FP8KV_SCALE_ONE;
	if (c->fault == FAULT_SLOT) {
		const int64_t num_slots = d.num_blocks * d.block_size;
		shifted = malloc((size_t)d.num_tokens * sizeof *shifted);
		if (!shifted)
			return host->set_error(FP8KV_ENOMEM, "faulty: no memory");
		for (int64_t t = 0; t < d.num_tokens; t++) {
			const int64_t s = d.slot_type == FP8KV_INDEX_INT32
						  ? ((const int32_t *)d.slot_mapping)[t]
						  : ((const int64_t *)d.slot_mapping)[t];
			shifted[t] = s >= 0 && s < num_slots - 1 && !d.swa_mapping ? s + 1 : s;
		}
		d.slot_mapping = shifted;
		d.slot_type = FP8KV_INDEX_INT64;
	}
	fp8kv_status st = fp8kv_reshape_and_cache(c->cpu, &d, stream);
	free(shifted);
	return pass(st);
}

static fp8kv_status faulty_amax(void *ctx, const void *src, fp8kv_dtype dtype, size_t count,
				float *amax)
{
	return pass(fp8kv_amax(((faulty *)ctx)->cpu, src, dtype, count, amax));
}

static fp8kv_status faulty_check_slots(void *ctx, const void *slots, int64_t count,
				       fp8kv_index_type type, int64_t num_slots,
				       fp8kv_slot_report *report)
{
	return pass(fp8kv_check_slots(((faulty *)ctx)->cpu, slots, count, type, num_slots, report));
}

static const fp8kv_backend_ops faulty_ops = {
	.abi = FP8KV_MODULE_ABI,
	.name = "faulty",
	.open = faulty_open,
	.close = faulty_close,
	.canonical_name = faulty_name,
	.device = faulty_device,
	.synchronize = faulty_sync,
	.alloc = faulty_alloc,
	.free = faulty_free,
	.upload = faulty_upload,
	.download = faulty_download,
	.fill = faulty_fill,
	.reshape_and_cache = faulty_reshape_and_cache,
	.quantize = faulty_quantize,
	.dequantize = faulty_dequantize,
	.amax = faulty_amax,
	.check_slots = faulty_check_slots,
};

__attribute__((visibility("default"))) const fp8kv_backend_ops *
fp8kv_module_entry(const fp8kv_host_services *services)
{
	host = services;
	return &faulty_ops;
}
