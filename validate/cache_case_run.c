/* SPDX-License-Identifier: MIT */
/*
 * cache_case_run.c - one case on a backend: its buffers allocated, inputs,
 * poison, scales and starting counters uploaded, fp8kv_reshape_and_cache
 * and fp8kv_backend_synchronize called, every byte the call may have
 * touched downloaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_case_internal.h"

typedef struct dev_bufs {
	void *key, *value, *kc, *vc, *slots, *swa, *ks, *vs, *ksc, *vsc;
	void *ovf, *nan, *kamax, *vamax;
} dev_bufs;

int case_setup_step(char *setup_error, size_t n, fp8kv_status st, const char *call,
		    size_t bytes)
{
	if (st == FP8KV_OK)
		return 0;
	if (!setup_error[0])
		snprintf(setup_error, n, "%s(%zu bytes): %s: %s", call, bytes, fp8kv_strerror(st),
			 fp8kv_last_error());
	return -1;
}

static int setup_step(cache_result *out, fp8kv_status st, const char *call, size_t bytes)
{
	return case_setup_step(out->setup_error, sizeof out->setup_error, st, call, bytes);
}

static int dev_alloc(fp8kv_backend *b, cache_result *out, void **p, size_t bytes)
{
	fp8kv_status st = fp8kv_buffer_alloc(b, bytes ? bytes : 1, p);
	if (st != FP8KV_OK)
		*p = NULL;
	return setup_step(out, st, "fp8kv_buffer_alloc", bytes);
}

static int dev_up(fp8kv_backend *b, cache_result *out, void *dst, const void *src, size_t bytes)
{
	if (!bytes)
		return 0;
	return setup_step(out, fp8kv_buffer_upload(b, dst, src, bytes), "fp8kv_buffer_upload", bytes);
}

static int dev_down(fp8kv_backend *b, cache_result *out, void *dst, const void *src, size_t bytes)
{
	if (!bytes)
		return 0;
	return setup_step(out, fp8kv_buffer_download(b, dst, src, bytes), "fp8kv_buffer_download",
			  bytes);
}

void *case_index_array(const int64_t *v, int64_t n, fp8kv_index_type type, size_t *bytes)
{
	if (type == FP8KV_INDEX_INT32) {
		int32_t *a = case_calloc((size_t)n, sizeof *a);
		if (a)
			for (int64_t i = 0; i < n; i++)
				a[i] = (int32_t)v[i];
		*bytes = (size_t)n * sizeof *a;
		return a;
	}
	int64_t *a = case_calloc((size_t)n, sizeof *a);
	if (a && n)
		memcpy(a, v, (size_t)n * sizeof *a);
	*bytes = (size_t)n * sizeof *a;
	return a;
}

/* The call's descriptor: the case's sizes, dtypes and strides on the
 * backend's buffers d. */
static void describe_call(const cache_case *c, const dev_bufs *d, fp8kv_cache_write *w)
{
	fp8kv_cache_write_init(w, c->num_tokens, c->num_heads, c->head_dim_k, c->head_dim_v,
			       c->num_blocks, c->block_size,
			       c->layout == CACHE_CASE_HND ? FP8KV_LAYOUT_HND : FP8KV_LAYOUT_NHD);
	w->key = d->key;
	w->value = d->value;
	w->input_dtype = c->input_dtype;
	w->key_stride_token = c->key_stride_token;
	w->key_stride_head = c->key_stride_head;
	w->value_stride_token = c->value_stride_token;
	w->value_stride_head = c->value_stride_head;

	w->key_cache = d->kc;
	w->value_cache = d->vc;
	w->cache_dtype = c->cache_dtype;
	w->key_cache_stride_block = c->kc_stride_block;
	w->key_cache_stride_slot = c->kc_stride_slot;
	w->key_cache_stride_head = c->kc_stride_head;
	w->value_cache_stride_block = c->vc_stride_block;
	w->value_cache_stride_slot = c->vc_stride_slot;
	w->value_cache_stride_head = c->vc_stride_head;

	w->slot_mapping = d->slots;
	w->slot_type = c->slot_type;
	if (c->use_swa) {
		w->swa_mapping = d->swa;
		w->swa_type = c->swa_type;
		w->swa_mapping_len = c->swa_len;
	}

	w->scale_mode = c->scale_mode;
	w->k_scale = d->ks;
	w->v_scale = d->vs;
	w->overflow = c->overflow;
	if (c->sc_elems) {
		w->k_scale_cache = d->ksc;
		w->v_scale_cache = d->vsc;
		w->scale_cache_stride_block = c->sc_stride_block;
		w->scale_cache_stride_slot = c->sc_stride_slot;
		w->scale_cache_stride_head = c->sc_stride_head;
	}
	w->overflow_count = d->ovf;
	w->nan_count = d->nan;
	w->k_amax = d->kamax;
	w->v_amax = d->vamax;
}

/* The call and the synchronize after it; the first failure's status, stage
 * and message go to out. */
static void call(fp8kv_backend *b, const fp8kv_cache_write *w, cache_result *out)
{
	out->call_status = fp8kv_reshape_and_cache(b, w, NULL);
	if (out->call_status != FP8KV_OK) {
		out->status = out->call_status;
		snprintf(out->stage, sizeof out->stage, "reshape_and_cache");
		snprintf(out->message, sizeof out->message, "%s", fp8kv_last_error());
	}
	out->sync_status = fp8kv_backend_synchronize(b, NULL);
	if (out->sync_status != FP8KV_OK && out->status == FP8KV_OK) {
		out->status = out->sync_status;
		snprintf(out->stage, sizeof out->stage, "synchronize");
		snprintf(out->message, sizeof out->message, "%s", fp8kv_last_error());
	}
}

/* Every output the call may have written, into out. */
static void download(fp8kv_backend *b, const cache_case *c, const dev_bufs *d, cache_result *out)
{
	const size_t csz = fp8kv_dtype_size(c->cache_dtype), H = (size_t)c->num_heads;
	dev_down(b, out, out->kc, d->kc, c->kc_elems * csz);
	dev_down(b, out, out->vc, d->vc, c->vc_elems * csz);
	if (c->sc_elems) {
		dev_down(b, out, out->ksc, d->ksc, c->sc_elems * sizeof(float));
		dev_down(b, out, out->vsc, d->vsc, c->sc_elems * sizeof(float));
	}
	if (c->want_overflow_count)
		dev_down(b, out, &out->overflow_count, d->ovf, sizeof(uint64_t));
	if (c->want_nan_count)
		dev_down(b, out, &out->nan_count, d->nan, sizeof(uint64_t));
	if (c->want_amax) {
		dev_down(b, out, out->k_amax, d->kamax, H * sizeof(float));
		dev_down(b, out, out->v_amax, d->vamax, H * sizeof(float));
	}
}

int cache_case_run(fp8kv_backend *b, const cache_case *c, cache_result *out)
{
	const size_t isz = fp8kv_dtype_size(c->input_dtype), csz = fp8kv_dtype_size(c->cache_dtype);
	const size_t H = (size_t)c->num_heads;
	dev_bufs d;
	memset(&d, 0, sizeof d);
	if (case_result_alloc(c, out))
		return -1;

	/* ONE ignores k_scale/v_scale: on odd seeds hand it a scale of 7 that
	 * must not be applied */
	const int one = c->scale_mode == FP8KV_SCALE_ONE;
	const int pass_scales = c->scale_mode == FP8KV_SCALE_TENSOR || c->scale_mode == FP8KV_SCALE_HEAD ||
				(one && (c->seed & 1));
	const size_t nsc = one ? H : (size_t)c->num_scales;
	size_t slot_bytes = 0, swa_bytes = 0;
	void *hslots = case_index_array(c->slots, c->num_tokens, c->slot_type, &slot_bytes);
	void *hswa =
		c->use_swa ? case_index_array(c->swa, c->swa_len, c->swa_type, &swa_bytes) : NULL;
	float *ones = one ? case_calloc(H, sizeof *ones) : NULL;
	if (!hslots || (c->use_swa && !hswa) || (one && !ones)) {
		free(hslots);
		free(hswa);
		free(ones);
		cache_result_free(out);
		return case_fail("out of memory");
	}
	for (size_t h = 0; one && h < H; h++)
		ones[h] = 7.0f;
	const uint64_t ovf0 = c->overflow_init, nan0 = c->nan_init;

	int bad = 0;
	bad |= dev_alloc(b, out, &d.key, c->key_elems * isz);
	bad |= dev_alloc(b, out, &d.value, c->value_elems * isz);
	bad |= dev_alloc(b, out, &d.kc, c->kc_elems * csz);
	bad |= dev_alloc(b, out, &d.vc, c->vc_elems * csz);
	bad |= dev_alloc(b, out, &d.slots, slot_bytes);
	if (c->use_swa)
		bad |= dev_alloc(b, out, &d.swa, swa_bytes);
	if (pass_scales) {
		bad |= dev_alloc(b, out, &d.ks, nsc * sizeof(float));
		bad |= dev_alloc(b, out, &d.vs, nsc * sizeof(float));
	}
	if (c->sc_elems) {
		bad |= dev_alloc(b, out, &d.ksc, c->sc_elems * sizeof(float));
		bad |= dev_alloc(b, out, &d.vsc, c->sc_elems * sizeof(float));
	}
	if (c->want_overflow_count)
		bad |= dev_alloc(b, out, &d.ovf, sizeof(uint64_t));
	if (c->want_nan_count)
		bad |= dev_alloc(b, out, &d.nan, sizeof(uint64_t));
	if (c->want_amax) {
		bad |= dev_alloc(b, out, &d.kamax, H * sizeof(float));
		bad |= dev_alloc(b, out, &d.vamax, H * sizeof(float));
	}
	if (!bad) {
		bad |= dev_up(b, out, d.key, c->key, c->key_elems * isz);
		bad |= dev_up(b, out, d.value, c->value, c->value_elems * isz);
		bad |= dev_up(b, out, d.kc, c->kc_init, c->kc_elems * csz);
		bad |= dev_up(b, out, d.vc, c->vc_init, c->vc_elems * csz);
		bad |= dev_up(b, out, d.slots, hslots, slot_bytes);
		if (c->use_swa)
			bad |= dev_up(b, out, d.swa, hswa, swa_bytes);
		if (pass_scales) {
			bad |= dev_up(b, out, d.ks, ones ? ones : c->k_scales, nsc * sizeof(float));
			bad |= dev_up(b, out, d.vs, ones ? ones : c->v_scales, nsc * sizeof(float));
		}
		if (c->sc_elems) {
			bad |= dev_up(b, out, d.ksc, c->ksc_init, c->sc_elems * sizeof(float));
			bad |= dev_up(b, out, d.vsc, c->vsc_init, c->sc_elems * sizeof(float));
		}
		if (c->want_overflow_count)
			bad |= dev_up(b, out, d.ovf, &ovf0, sizeof ovf0);
		if (c->want_nan_count)
			bad |= dev_up(b, out, d.nan, &nan0, sizeof nan0);
		if (c->want_amax) {
			bad |= dev_up(b, out, d.kamax, c->k_amax_init, H * sizeof(float));
			bad |= dev_up(b, out, d.vamax, c->v_amax_init, H * sizeof(float));
		}
	}
	if (!bad) {
		fp8kv_cache_write w;
		describe_call(c, &d, &w);
		call(b, &w, out);
		download(b, c, &d, out);
	}
	void *all[] = {d.key, d.value, d.kc, d.vc, d.slots, d.swa, d.ks, d.vs,
		       d.ksc, d.vsc, d.ovf, d.nan, d.kamax, d.vamax};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		if (all[i])
			fp8kv_buffer_free(b, all[i]);
	free(hslots);
	free(hswa);
	free(ones);
	return 0;
}
