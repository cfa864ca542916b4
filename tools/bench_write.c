/* SPDX-License-Identifier: MIT */
/*
 * bench_write.c - the cases of fp8kv_reshape_and_cache: one shape in one
 * scale mode, fused, against the unfused path it replaces (quantize K and
 * V into staging, then scatter) and the streaming ceiling.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

typedef struct run {
	fp8kv_backend *b;
	const bench_device *dev;
	fp8kv_cache_write desc;
	/* unfused path */
	uint8_t *staging;
	fp8kv_cache_write scatter;
	const float *k_scale, *v_scale;
	fp8kv_scale_mode flat_mode;
	/* ceiling */
	uint8_t *ceiling_dst;
	const uint16_t *ceiling_src;
	size_t elements;
	/* Copies of inputs and outputs, used in turn, so that a call does not
	 * find the previous call's bytes in the cache (B-ROTATE): copy c of a
	 * buffer is at c * its step. */
	int copies, next;
	size_t input_step, cache_step, staging_step;
} run;

/* the descriptors of the copy to use now, and on to the next */
static int take_copy(run *r, fp8kv_cache_write *fused, fp8kv_cache_write *scatter,
		     uint8_t **staging)
{
	const int c = r->next;
	r->next = (r->next + 1) % r->copies;
	const size_t in = (size_t)c * r->input_step, out = (size_t)c * r->cache_step;
	*fused = r->desc;
	fused->key = (const uint8_t *)fused->key + in;
	fused->value = (const uint8_t *)fused->value + in;
	fused->key_cache = (uint8_t *)fused->key_cache + out;
	fused->value_cache = (uint8_t *)fused->value_cache + out;
	*scatter = r->scatter;
	*staging = r->staging + (size_t)c * r->staging_step;
	scatter->key = (const uint8_t *)scatter->key + (size_t)c * r->staging_step;
	scatter->value = (const uint8_t *)scatter->value + (size_t)c * r->staging_step;
	scatter->key_cache = fused->key_cache;
	scatter->value_cache = fused->value_cache;
	return c;
}

static int do_fused(void *arg, void *stream)
{
	run *r = arg;
	fp8kv_cache_write d, unused;
	uint8_t *staging;
	take_copy(r, &d, &unused, &staging);
	return fp8kv_reshape_and_cache(r->b, &d, stream) != FP8KV_OK;
}

static int do_unfused(void *arg, void *stream)
{
	run *r = arg;
	const size_t half = r->elements / 2;
	fp8kv_cache_write d, scatter;
	uint8_t *staging;
	take_copy(r, &d, &scatter, &staging);
	return fp8kv_quantize(r->b, staging, d.cache_dtype, d.key, d.input_dtype, half,
			      r->flat_mode, r->k_scale, d.overflow, NULL, stream) != FP8KV_OK ||
	       fp8kv_quantize(r->b, staging + half, d.cache_dtype, d.value, d.input_dtype,
			      half, r->flat_mode, r->v_scale, d.overflow, NULL, stream) != FP8KV_OK ||
	       fp8kv_reshape_and_cache(r->b, &scatter, stream) != FP8KV_OK;
}

static int do_ceiling(void *arg, void *stream)
{
	run *r = arg;
	const int c = r->next;
	r->next = (r->next + 1) % r->copies;
	/* as many elements as the fused call, from the copy's input */
	return r->dev->stream_ceiling(r->ceiling_dst + (size_t)c * r->staging_step,
				      (const uint16_t *)((const uint8_t *)r->ceiling_src +
							 (size_t)c * r->input_step),
				      r->elements, stream);
}

/* *sum += a * b; nonzero when that overflows size_t */
static int add_product(size_t *sum, size_t a, size_t b)
{
	size_t product;
	return __builtin_mul_overflow(a, b, &product) || __builtin_add_overflow(*sum, product, sum);
}

size_t bench_write_bytes(const bench_shape *s, size_t in_size)
{
	const int64_t num_blocks = (s->tokens + s->block_size - 1) / s->block_size + 1;
	size_t slots = 0, rows = 0, per_side = 0, cache_side = 0, scales = 0, total = 0;
	if (add_product(&slots, (size_t)num_blocks, (size_t)s->block_size) ||
	    add_product(&rows, (size_t)s->tokens, (size_t)s->heads) ||
	    add_product(&per_side, rows, (size_t)s->dim) ||
	    add_product(&scales, slots, (size_t)s->heads) ||
	    add_product(&cache_side, scales, (size_t)s->dim))
		return 0;
	/* copies of the inputs, the caches, staging and the ceiling's output
	 * (both sides each), the host's inputs, slots and block order */
	if (add_product(&total, 2 * BENCH_MAX_COPIES * in_size, per_side) ||
	    add_product(&total, 2 * BENCH_MAX_COPIES, cache_side) ||
	    add_product(&total, 4 * BENCH_MAX_COPIES, per_side) ||
	    add_product(&total, 2 * in_size, per_side) ||
	    add_product(&total, 2 * sizeof(float), scales) ||
	    add_product(&total, 2 * sizeof(int64_t), (size_t)s->tokens) ||
	    add_product(&total, sizeof(int64_t), (size_t)num_blocks))
		return 0;
	return total;
}

#define CHECK(call)                                                                       \
	do {                                                                              \
		if ((call) != FP8KV_OK) {                                                 \
			fprintf(stderr, "fp8kv-bench: %s: %s\n", #call, fp8kv_last_error()); \
			goto fail;                                                        \
		}                                                                         \
	} while (0)

int bench_write_case(fp8kv_backend *b, const bench_device *dev, const bench_options *o,
		     const bench_shape *s, int mode, bench_result *res)
{
	const int64_t T = s->tokens, H = s->heads, D = s->dim, BS = s->block_size;
	const int64_t nb = (T + BS - 1) / BS + 1;
	/* none of these overflows: bench_parse_args checked bench_write_bytes */
	const size_t per_side = (size_t)T * (size_t)H * (size_t)D;
	const size_t slots_per_cache = (size_t)nb * (size_t)BS;
	const size_t in_size = fp8kv_dtype_size(o->input);
	const size_t cache_side = slots_per_cache * (size_t)H * (size_t)D;
	void *input = NULL, *cache = NULL, *slots = NULL, *scales = NULL, *staging = NULL,
	     *scale_cache = NULL, *ceiling_dst = NULL, *outputs = NULL;
	uint16_t *host_in = malloc(2 * per_side * in_size);
	int64_t *host_slots = malloc((size_t)T * sizeof(int64_t));
	int64_t *perm = malloc((size_t)nb * sizeof(int64_t));
	float host_scales[2 * BENCH_MAX_HEADS];
	void *stream = dev->stream_create();
	int rc = -1;
	run r;

	if (!host_in || !host_slots || !perm) {
		char label[64];
		bench_shape_label(s, label, sizeof label);
		fprintf(stderr, "fp8kv-bench: shape %s: cannot allocate %zu bytes of host memory\n",
			label, 2 * per_side * in_size + ((size_t)T + (size_t)nb) * sizeof(int64_t));
		goto fail;
	}
	bench_fill_bf16(host_in, 2 * per_side * in_size / 2, (uint64_t)(T * 31 + H * 7 + D));
	for (int64_t i = 0; i < nb; i++)
		perm[i] = i;
	for (int64_t i = nb - 1; i > 0; i--) { /* blocks in random order, as a pool hands them out */
		const int64_t j = (i * 7919 + 13) % (i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (int64_t t = 0; t < T; t++)
		host_slots[t] = perm[t / BS] * BS + t % BS;
	/* calibrated scales, as an engine would pick them (B-CALIBRATED): the
	 * data's amax (below 16) over the format's max, a little more for each
	 * head, so that nothing overflows */
	for (int i = 0; i < 2 * BENCH_MAX_HEADS; i++)
		host_scales[i] = fp8kv_suggest_scale(16.0f, o->format) *
				 (1.0f + 0.01f * (float)(i % BENCH_MAX_HEADS));

	/* enough copies that one round of calls overflows the cache twice */
	const double footprint = (double)(2 * per_side * in_size + 2 * cache_side);
	const size_t cache_bytes = dev->cache_bytes();
	int copies = 1;
	while (copies < BENCH_MAX_COPIES && (double)copies * footprint < 2.0 * (double)cache_bytes)
		copies++;
	CHECK(fp8kv_buffer_alloc(b, (size_t)copies * 2 * per_side * in_size, &input));
	CHECK(fp8kv_buffer_alloc(b, (size_t)copies * 2 * cache_side, &cache));
	CHECK(fp8kv_buffer_alloc(b, (size_t)copies * 2 * per_side, &staging));
	CHECK(fp8kv_buffer_alloc(b, (size_t)copies * 2 * per_side, &ceiling_dst));
	CHECK(fp8kv_buffer_alloc(b, (size_t)T * sizeof(int64_t), &slots));
	CHECK(fp8kv_buffer_alloc(b, sizeof host_scales, &scales));
	CHECK(fp8kv_buffer_alloc(b, 2 * slots_per_cache * (size_t)H * sizeof(float), &scale_cache));
	/* two counters, then k_amax and v_amax */
	const size_t outputs_bytes = 2 * sizeof(uint64_t) + 2 * BENCH_MAX_HEADS * sizeof(float);
	CHECK(fp8kv_buffer_alloc(b, outputs_bytes, &outputs));
	CHECK(fp8kv_buffer_fill(b, outputs, 0, outputs_bytes));
	for (int c = 0; c < copies; c++)
		CHECK(fp8kv_buffer_upload(b, (uint8_t *)input + (size_t)c * 2 * per_side * in_size,
					  host_in, 2 * per_side * in_size));
	CHECK(fp8kv_buffer_upload(b, slots, host_slots, (size_t)T * sizeof(int64_t)));
	CHECK(fp8kv_buffer_upload(b, scales, host_scales, sizeof host_scales));
	CHECK(fp8kv_buffer_fill(b, cache, 0x5A, (size_t)copies * 2 * cache_side));

	memset(&r, 0, sizeof r);
	r.b = b;
	r.dev = dev;
	r.elements = 2 * per_side;
	r.copies = copies;
	r.input_step = 2 * per_side * in_size;
	r.cache_step = 2 * cache_side;
	r.staging_step = 2 * per_side;
	fp8kv_cache_write *d = &r.desc;
	fp8kv_cache_write_init(d, T, H, D, D, nb, BS, FP8KV_LAYOUT_NHD);
	d->input_dtype = o->input;
	d->cache_dtype = o->format;
	d->key = input;
	d->value = (uint8_t *)input + per_side * in_size;
	d->key_cache = cache;
	d->value_cache = (uint8_t *)cache + cache_side;
	d->slot_mapping = slots;
	d->scale_mode = (fp8kv_scale_mode)mode;
	d->k_scale = scales;
	d->v_scale = (const float *)scales + BENCH_MAX_HEADS;
	d->k_scale_cache = scale_cache;
	d->v_scale_cache = (float *)scale_cache + slots_per_cache * (size_t)H;
	if (o->outputs) {
		d->overflow_count = outputs;
		d->nan_count = (uint64_t *)outputs + 1;
		d->k_amax = (float *)((uint64_t *)outputs + 2);
		d->v_amax = d->k_amax + BENCH_MAX_HEADS;
	}

	/* unfused: quantize both sides to staging, then scatter the FP8 rows as
	 * a plain copy (each pair of FP8 bytes viewed as one 16-bit element).
	 * The flat calls take one scale per side, so only scale one and per
	 * tensor have an unfused path that writes the same bytes (B-UNFUSED). */
	r.staging = staging;
	r.k_scale = d->k_scale;
	r.v_scale = d->v_scale;
	r.flat_mode = mode == FP8KV_SCALE_ONE ? FP8KV_SCALE_ONE : FP8KV_SCALE_TENSOR;
	fp8kv_cache_write_init(&r.scatter, T, H, D / 2, D / 2, nb, BS, FP8KV_LAYOUT_NHD);
	r.scatter.input_dtype = r.scatter.cache_dtype = FP8KV_BF16;
	r.scatter.key = staging;
	r.scatter.value = (uint8_t *)staging + per_side;
	r.scatter.key_cache = cache;
	r.scatter.value_cache = (uint8_t *)cache + cache_side;
	r.scatter.slot_mapping = slots;
	r.ceiling_src = input;
	r.ceiling_dst = ceiling_dst;

	/* small shapes: many calls per sample, captured in a graph on a GPU
	 * (B-GRAPH); minimal bytes: inputs read once, codes written once, slots
	 * read once, computed scales written once */
	const int graph = 3.0 * (double)r.elements < 64e6;
	const bench_timing timing = {
		.fused = do_fused,
		.unfused = D % 2 == 0 && o->input != FP8KV_F32 &&
				   (mode == FP8KV_SCALE_ONE || mode == FP8KV_SCALE_TENSOR)
			   ? do_unfused
			   : NULL,
		.ceiling = do_ceiling,
		.arg = &r,
		.graph = graph,
		.per_sample = graph ? 64 : 1,
		.bytes = (double)r.elements * (double)(in_size + 1) + 8.0 * (double)T +
			 (mode == FP8KV_SCALE_TOKEN_HEAD ? 8.0 * (double)(T * H) : 0.0),
		.ceiling_bytes = (double)r.elements * 3.0,
	};
	if (bench_rounds(dev, stream, &timing, o->samples, res))
		goto fail;
	CHECK(fp8kv_backend_synchronize(b, stream));
	res->s = *s;
	res->mode = mode;
	rc = 0;
fail:
	fp8kv_buffer_free(b, input);
	fp8kv_buffer_free(b, cache);
	fp8kv_buffer_free(b, staging);
	fp8kv_buffer_free(b, ceiling_dst);
	fp8kv_buffer_free(b, slots);
	fp8kv_buffer_free(b, scales);
	fp8kv_buffer_free(b, scale_cache);
	fp8kv_buffer_free(b, outputs);
	dev->stream_destroy(stream);
	free(host_in);
	free(host_slots);
	free(perm);
	return rc;
}
