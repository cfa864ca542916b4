/* SPDX-License-Identifier: MIT */
/*
 * write_case_run.c - one grouped or MLA case on a backend: its buffers
 * allocated, inputs, the poisoned arena, global scales and starting
 * counters uploaded, the call and fp8kv_backend_synchronize made, the
 * whole arena, the counters and amax downloaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_case_internal.h"
#include "write_case_internal.h"

typedef struct bufs {
	void *key, *value, *arena, *slots, *swa, *globals, *scale, *ovf, *nan, *kamax, *vamax;
} bufs;

static int step(write_result *out, fp8kv_status st, const char *call, size_t bytes)
{
	return case_setup_step(out->setup_error, sizeof out->setup_error, st, call, bytes);
}

static int alloc_up(fp8kv_backend *b, write_result *out, void **p, const void *src, size_t bytes)
{
	fp8kv_status st = fp8kv_buffer_alloc(b, bytes ? bytes : 1, p);
	if (st != FP8KV_OK) {
		*p = NULL;
		return step(out, st, "fp8kv_buffer_alloc", bytes);
	}
	if (src && bytes)
		return step(out, fp8kv_buffer_upload(b, *p, src, bytes), "fp8kv_buffer_upload", bytes);
	return 0;
}

static int same_layout(const oracle_scale_layout *a, const oracle_scale_layout *b)
{
	return a->stride_block == b->stride_block && a->stride_slot == b->stride_slot &&
	       a->stride_head == b->stride_head && a->stride_group == b->stride_group &&
	       a->interleave == b->interleave && a->stride_interleave == b->stride_interleave;
}

static fp8kv_status call_grouped(fp8kv_backend *b, const write_case *c, const bufs *d)
{
	fp8kv_cache_write w;
	fp8kv_group_scales g;
	uint8_t *arena = d->arena;
	const int64_t Dmax = c->head_dim_k > c->head_dim_v ? c->head_dim_k : c->head_dim_v;
	fp8kv_cache_write_init(&w, c->num_tokens, c->num_heads, c->head_dim_k, c->head_dim_v,
			       c->num_blocks, c->block_size, FP8KV_LAYOUT_NHD);
	w.key = d->key;
	w.value = d->value;
	w.input_dtype = c->input_dtype;
	w.key_stride_token = c->key_stride_token;
	w.key_stride_head = c->key_stride_head;
	w.value_stride_token = c->value_stride_token;
	w.value_stride_head = c->value_stride_head;
	w.key_cache = arena + c->kc_at;
	w.value_cache = arena + c->vc_at;
	w.cache_dtype = c->cache_dtype;
	w.key_cache_stride_block = c->kc_stride_block;
	w.key_cache_stride_slot = c->kc_stride_slot;
	w.key_cache_stride_head = c->kc_stride_head;
	w.value_cache_stride_block = c->vc_stride_block;
	w.value_cache_stride_slot = c->vc_stride_slot;
	w.value_cache_stride_head = c->vc_stride_head;
	w.slot_mapping = d->slots;
	w.slot_type = c->slot_type;
	if (c->use_swa) {
		w.swa_mapping = d->swa;
		w.swa_type = c->swa_type;
		w.swa_mapping_len = c->slots.swa_len;
	}
	w.scale_mode = FP8KV_SCALE_GROUP;
	/* unused by a grouped write: on odd seeds a scale that must not be applied */
	w.k_scale = w.v_scale = (c->seed & 1) ? d->scale : NULL;
	w.overflow = c->overflow;
	w.overflow_count = d->ovf;
	w.nan_count = d->nan;
	w.k_amax = d->kamax;
	w.v_amax = d->vamax;

	fp8kv_group_scales_init(&g, c->rule, c->group_size, c->num_heads, Dmax, c->block_size,
				FP8KV_LAYOUT_NHD);
	g.rounding = c->rounding;
	g.divisor = c->divisor;
	g.scale_floor = c->scale_floor;
	if (c->rule == FP8KV_GROUP_NVFP4) {
		g.k_global = (const float *)d->globals;
		g.v_global = (const float *)d->globals + 1;
	}
	g.k_scales = arena + c->ks_at;
	g.v_scales = arena + c->vs_at;
	const oracle_scale_layout *k = &c->k_scales, *v = &c->v_scales;
	g.stride_block = k->stride_block, g.stride_slot = k->stride_slot;
	g.stride_head = k->stride_head, g.stride_group = k->stride_group;
	g.interleave = k->interleave, g.stride_interleave = k->stride_interleave;
	if (!same_layout(k, v)) {
		g.v_own_layout = 1;
		g.v_stride_block = v->stride_block, g.v_stride_slot = v->stride_slot;
		g.v_stride_head = v->stride_head, g.v_stride_group = v->stride_group;
		g.v_interleave = v->interleave, g.v_stride_interleave = v->stride_interleave;
	}
	return fp8kv_reshape_and_cache_grouped(b, &w, &g, NULL);
}

static fp8kv_status call_mla(fp8kv_backend *b, const write_case *c, const bufs *d)
{
	fp8kv_mla_write m;
	fp8kv_mla_write_init(&m, c->kind == WRITE_CASE_MLA_DS ? FP8KV_MLA_DS : FP8KV_MLA_PLAIN,
			     c->num_tokens, c->head_dim_k, c->head_dim_v, c->num_blocks,
			     c->block_size);
	m.kv_c = d->key;
	m.k_pe = d->value;
	m.input_dtype = c->input_dtype;
	m.kv_c_stride_token = c->key_stride_token;
	m.k_pe_stride_token = c->value_stride_token;
	m.cache = (uint8_t *)d->arena + c->kc_at;
	m.cache_dtype = c->cache_dtype;
	m.stride_block = c->kc_stride_block;
	m.stride_slot = c->kc_stride_slot;
	m.slot_mapping = d->slots;
	m.slot_type = c->slot_type;
	if (c->use_swa) {
		m.swa_mapping = d->swa;
		m.swa_type = c->swa_type;
		m.swa_mapping_len = c->slots.swa_len;
	}
	if (c->scaled) {
		m.scale_mode = FP8KV_SCALE_TENSOR;
		m.scale = d->scale;
	}
	m.divisor = c->kind == WRITE_CASE_MLA_DS ? c->divisor : 0.0f;
	m.overflow = c->overflow;
	m.overflow_count = d->ovf;
	m.nan_count = d->nan;
	return fp8kv_concat_and_cache_mla(b, &m, NULL);
}

int write_case_run(fp8kv_backend *b, const write_case *c, write_result *out)
{
	const size_t isz = fp8kv_dtype_size(c->input_dtype), H = (size_t)c->num_heads;
	const int amax = c->want_amax && c->kind == WRITE_CASE_GROUPED;
	bufs d;
	memset(&d, 0, sizeof d);
	memset(out, 0, sizeof *out);
	out->arena = malloc(c->arena_bytes ? c->arena_bytes : 1);
	if (amax) {
		out->k_amax = malloc(H * sizeof(float));
		out->v_amax = malloc(H * sizeof(float));
	}
	size_t slot_bytes = 0, swa_bytes = 0;
	void *hslots = case_index_array(c->slots.slots, c->num_tokens, c->slot_type, &slot_bytes);
	void *hswa = c->use_swa ? case_index_array(c->slots.swa, c->slots.swa_len, c->swa_type,
						   &swa_bytes)
				: NULL;
	if (!out->arena || (amax && (!out->k_amax || !out->v_amax)) || !hslots ||
	    (c->use_swa && !hswa)) {
		free(hslots), free(hswa);
		write_result_free(out);
		return write_fail("out of memory");
	}
	const float globals[2] = {c->k_global, c->v_global};
	const float scale = c->kind == WRITE_CASE_MLA_PLAIN ? c->scale : 7.0f;
	int bad = 0;
	bad |= alloc_up(b, out, &d.key, c->key, c->key_elems * isz);
	bad |= alloc_up(b, out, &d.value, c->value, c->value_elems * isz);
	bad |= alloc_up(b, out, &d.arena, c->arena_init, c->arena_bytes);
	bad |= alloc_up(b, out, &d.slots, hslots, slot_bytes);
	if (c->use_swa)
		bad |= alloc_up(b, out, &d.swa, hswa, swa_bytes);
	bad |= alloc_up(b, out, &d.globals, globals, sizeof globals);
	bad |= alloc_up(b, out, &d.scale, &scale, sizeof scale);
	if (c->want_overflow_count)
		bad |= alloc_up(b, out, &d.ovf, &c->overflow_init, sizeof(uint64_t));
	if (c->want_nan_count)
		bad |= alloc_up(b, out, &d.nan, &c->nan_init, sizeof(uint64_t));
	if (amax) {
		bad |= alloc_up(b, out, &d.kamax, c->k_amax_init, H * sizeof(float));
		bad |= alloc_up(b, out, &d.vamax, c->v_amax_init, H * sizeof(float));
	}
	if (!bad) {
		const char *stage = c->kind == WRITE_CASE_GROUPED ? "reshape_and_cache_grouped"
								  : "concat_and_cache_mla";
		out->call_status = c->kind == WRITE_CASE_GROUPED ? call_grouped(b, c, &d)
								 : call_mla(b, c, &d);
		if (out->call_status != FP8KV_OK) {
			out->status = out->call_status;
			snprintf(out->stage, sizeof out->stage, "%s", stage);
			snprintf(out->message, sizeof out->message, "%s", fp8kv_last_error());
		}
		out->sync_status = fp8kv_backend_synchronize(b, NULL);
		if (out->sync_status != FP8KV_OK && out->status == FP8KV_OK) {
			out->status = out->sync_status;
			snprintf(out->stage, sizeof out->stage, "synchronize");
			snprintf(out->message, sizeof out->message, "%s", fp8kv_last_error());
		}
		step(out, fp8kv_buffer_download(b, out->arena, d.arena, c->arena_bytes),
		     "fp8kv_buffer_download", c->arena_bytes);
		if (c->want_overflow_count)
			step(out, fp8kv_buffer_download(b, &out->overflow_count, d.ovf, 8),
			     "fp8kv_buffer_download", 8);
		if (c->want_nan_count)
			step(out, fp8kv_buffer_download(b, &out->nan_count, d.nan, 8),
			     "fp8kv_buffer_download", 8);
		if (amax) {
			step(out, fp8kv_buffer_download(b, out->k_amax, d.kamax, H * sizeof(float)),
			     "fp8kv_buffer_download", H * sizeof(float));
			step(out, fp8kv_buffer_download(b, out->v_amax, d.vamax, H * sizeof(float)),
			     "fp8kv_buffer_download", H * sizeof(float));
		}
	}
	void *all[] = {d.key, d.value, d.arena, d.slots, d.swa, d.globals, d.scale, d.ovf,
		       d.nan, d.kamax, d.vamax};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		if (all[i])
			fp8kv_buffer_free(b, all[i]);
	free(hslots), free(hswa);
	return 0;
}
