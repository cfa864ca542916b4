/* SPDX-License-Identifier: MIT */
/*
 * bench_group.c - the cases of the writes whose groups carry their own
 * scales (fp8kv_reshape_and_cache_grouped: MXFP8, MXFP4, NVFP4, INT8) and
 * of the MLA writes (fp8kv_concat_and_cache_mla: plain FP8 and DeepSeek's
 * ds_mla record), each against the streaming ceiling of the same run.
 *
 * Bytes are counted as #36 and #37 ask: 2 B read per 16-bit input element,
 * 1 B (FP8, int8) or 1/2 B (e2m1) written per element, 4 B (fp32) or 1 B
 * (E8M0, e4m3) per group scale, 8 B per token's slot; the ds_mla record's
 * RoPE part 2 B in and 2 B out per element and its four fp32 tile scales.
 * The ceiling reads 2 B and writes 1 B per element of the same count, so
 * the ratio compares GB/s (B-FLOOR for the graph-timed small calls).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* The named recipes of --group (#37): rule, cache format, G (0: the head
 * dim) and the stored scale's bytes. */
static const struct {
	const char *name;
	fp8kv_group_rule rule;
	fp8kv_dtype cache;
	int64_t G;
	int scale_bytes;
} recipes[BENCH_NUM_GROUPS] = {
	{"mxfp8", FP8KV_GROUP_E8M0_FLOOR, FP8KV_E4M3FN, 32, 1},
	{"mxfp4", FP8KV_GROUP_E8M0_FLOOR, FP8KV_E2M1, 32, 1},
	{"nvfp4", FP8KV_GROUP_NVFP4, FP8KV_E2M1, 16, 1},
	{"int8", FP8KV_GROUP_F32, FP8KV_INT8, 0, 4},
};

const char *bench_group_name(int g)
{
	return g >= 0 && g < BENCH_NUM_GROUPS ? recipes[g].name : NULL;
}

int bench_group_from_name(const char *name)
{
	for (int g = 0; g < BENCH_NUM_GROUPS; g++)
		if (!strcmp(name, recipes[g].name))
			return g;
	return -1;
}

/* Buffers rotated over (B-ROTATE): copy c of input, cache and scales at c
 * times their steps. */
typedef struct grun {
	fp8kv_backend *b;
	const bench_device *dev;
	fp8kv_cache_write desc;   /* grouped */
	fp8kv_group_scales groups;
	fp8kv_mla_write mla;      /* MLA */
	int is_mla;
	uint8_t *ceiling_dst;
	const uint16_t *ceiling_src;
	size_t elements;
	int copies, next;
	size_t input_step, cache_step, scale_step;
} grun;

static int next_copy(grun *r)
{
	const int c = r->next;
	r->next = (r->next + 1) % r->copies;
	return c;
}

static int do_write(void *arg, void *stream)
{
	grun *r = arg;
	const int c = next_copy(r);
	const size_t in = (size_t)c * r->input_step, out = (size_t)c * r->cache_step;
	if (r->is_mla) {
		fp8kv_mla_write m = r->mla;
		m.kv_c = (const uint8_t *)m.kv_c + in;
		m.k_pe = (const uint8_t *)m.k_pe + in;
		m.cache = (uint8_t *)m.cache + out;
		return fp8kv_concat_and_cache_mla(r->b, &m, stream) != FP8KV_OK;
	}
	fp8kv_cache_write d = r->desc;
	fp8kv_group_scales g = r->groups;
	d.key = (const uint8_t *)d.key + in;
	d.value = (const uint8_t *)d.value + in;
	d.key_cache = (uint8_t *)d.key_cache + out;
	d.value_cache = (uint8_t *)d.value_cache + out;
	g.k_scales = (uint8_t *)g.k_scales + (size_t)c * r->scale_step;
	g.v_scales = (uint8_t *)g.v_scales + (size_t)c * r->scale_step;
	return fp8kv_reshape_and_cache_grouped(r->b, &d, &g, stream) != FP8KV_OK;
}

static int do_ceiling(void *arg, void *stream)
{
	grun *r = arg;
	const int c = next_copy(r);
	return r->dev->stream_ceiling(r->ceiling_dst + (size_t)c * r->elements,
				      (const uint16_t *)((const uint8_t *)r->ceiling_src +
							 (size_t)c * r->input_step),
				      r->elements, stream);
}

#define CHECK(call)                                                                       \
	do {                                                                              \
		if ((call) != FP8KV_OK) {                                                 \
			fprintf(stderr, "fp8kv-bench: %s: %s\n", #call, fp8kv_last_error()); \
			goto fail;                                                        \
		}                                                                         \
	} while (0)

/* Slots of T tokens in blocks of BS handed out in a scrambled order. */
static int64_t *scrambled_slots(int64_t T, int64_t BS, int64_t nb)
{
	int64_t *perm = malloc((size_t)nb * sizeof *perm);
	int64_t *slots = malloc((size_t)T * sizeof *slots);
	if (!perm || !slots) {
		free(perm);
		free(slots);
		return NULL;
	}
	for (int64_t i = 0; i < nb; i++)
		perm[i] = i;
	for (int64_t i = nb - 1; i > 0; i--) {
		const int64_t j = (i * 7919 + 13) % (i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (int64_t t = 0; t < T; t++)
		slots[t] = perm[t / BS] * BS + t % BS;
	free(perm);
	return slots;
}

/* What both kinds share: copies enough that a round of calls spans twice
 * the last-level cache, at most BENCH_MAX_COPIES. */
static int copies_for(const bench_device *dev, double footprint)
{
	const double llc = (double)dev->cache_bytes();
	int copies = 1;
	while (copies < BENCH_MAX_COPIES && (double)copies * footprint < 2.0 * llc)
		copies++;
	return copies;
}

int bench_special_case(fp8kv_backend *b, const bench_device *dev, const bench_options *o,
		       const bench_shape *s, int write, int group, bench_result *res)
{
	const int is_mla = write != BENCH_WRITE_GROUP;
	const int ds = write == BENCH_WRITE_MLA_DS;
	const int64_t T = s->tokens, BS = s->block_size, nb = (T + BS - 1) / BS + 1;
	/* MLA: one head of 512 + 64 (DeepSeek V2/V3, Kimi K2) whatever the shape's */
	const int64_t H = is_mla ? 1 : s->heads, D = is_mla ? 576 : s->dim;
	const size_t in_size = fp8kv_dtype_size(o->input);
	const size_t per_side = (size_t)T * (size_t)H * (size_t)D;
	const size_t elements = is_mla ? per_side : 2 * per_side;
	const int e2m1 = !is_mla && recipes[group].cache == FP8KV_E2M1;
	const int64_t G = is_mla ? 128 : recipes[group].G ? recipes[group].G : D;
	const size_t entry = ds ? 656 : (size_t)D; /* MLA: bytes per cache entry */
	const size_t cache_side = (size_t)nb * (size_t)BS * (size_t)H * (size_t)D / (e2m1 ? 2 : 1);
	const size_t cache_bytes = is_mla ? (size_t)nb * (size_t)BS * entry : 2 * cache_side;
	const size_t scale_side = is_mla ? 0
				  : (size_t)nb * (size_t)BS * (size_t)H * (size_t)(D / G) *
					    (size_t)recipes[group].scale_bytes;
	void *input = NULL, *cache = NULL, *slots = NULL, *scales = NULL, *globals = NULL,
	     *ceiling_dst = NULL, *outputs = NULL;
	uint16_t *host_in = malloc(elements * in_size);
	int64_t *host_slots = scrambled_slots(T, BS, nb);
	void *stream = dev->stream_create();
	int rc = -1;
	grun r;

	if (!host_in || !host_slots) {
		fprintf(stderr, "fp8kv-bench: cannot allocate %zu bytes of host memory\n",
			elements * in_size + (size_t)T * sizeof(int64_t));
		goto fail;
	}
	bench_fill_bf16(host_in, elements * in_size / 2, (uint64_t)(T * 37 + H * 5 + D));
	const int copies = copies_for(dev, (double)(elements * in_size + cache_bytes + 2 * scale_side));
	CHECK(fp8kv_buffer_alloc(b, (size_t)copies * elements * in_size, &input));
	CHECK(fp8kv_buffer_alloc(b, (size_t)copies * cache_bytes, &cache));
	CHECK(fp8kv_buffer_alloc(b, (size_t)copies * elements, &ceiling_dst));
	CHECK(fp8kv_buffer_alloc(b, (size_t)T * sizeof(int64_t), &slots));
	if (!is_mla)
		CHECK(fp8kv_buffer_alloc(b, (size_t)copies * 2 * scale_side, &scales));
	/* two counters, then k_amax and v_amax; and NVFP4's global scales,
	 * calibrated to the data's amax (below 16): g = 16 / (6 * 448) */
	const size_t outputs_bytes = 2 * sizeof(uint64_t) + 2 * BENCH_MAX_HEADS * sizeof(float);
	CHECK(fp8kv_buffer_alloc(b, outputs_bytes, &outputs));
	CHECK(fp8kv_buffer_fill(b, outputs, 0, outputs_bytes));
	const float host_globals[2] = {16.0f / 2688.0f, 16.0f / 2688.0f};
	const float tensor_scale = fp8kv_suggest_scale(16.0f, FP8KV_E4M3FN);
	CHECK(fp8kv_buffer_alloc(b, sizeof host_globals, &globals));
	CHECK(fp8kv_buffer_upload(b, globals, is_mla ? &tensor_scale : (const void *)host_globals,
				  is_mla ? sizeof tensor_scale : sizeof host_globals));
	for (int c = 0; c < copies; c++)
		CHECK(fp8kv_buffer_upload(b, (uint8_t *)input + (size_t)c * elements * in_size,
					  host_in, elements * in_size));
	CHECK(fp8kv_buffer_upload(b, slots, host_slots, (size_t)T * sizeof(int64_t)));
	CHECK(fp8kv_buffer_fill(b, cache, 0x5A, (size_t)copies * cache_bytes));

	memset(&r, 0, sizeof r);
	r.b = b;
	r.dev = dev;
	r.is_mla = is_mla;
	r.elements = elements;
	r.copies = copies;
	r.input_step = elements * in_size;
	r.cache_step = cache_bytes;
	r.scale_step = 2 * scale_side;
	r.ceiling_src = input;
	r.ceiling_dst = ceiling_dst;
	double bytes;
	if (is_mla) {
		fp8kv_mla_write *m = &r.mla;
		fp8kv_mla_write_init(m, ds ? FP8KV_MLA_DS : FP8KV_MLA_PLAIN, T, 512, 64, nb, BS);
		m->input_dtype = o->input;
		m->kv_c = input;
		m->k_pe = (const uint8_t *)input + 512 * in_size;
		m->kv_c_stride_token = m->k_pe_stride_token = 576; /* views of one [T][576] */
		m->cache = cache;
		m->cache_dtype = FP8KV_E4M3FN;
		m->slot_mapping = slots;
		if (!ds) {
			m->scale_mode = FP8KV_SCALE_TENSOR;
			m->scale = globals;
		}
		if (o->outputs) {
			m->overflow_count = outputs;
			m->nan_count = (uint64_t *)outputs + 1;
		}
		/* plain: 576 elements read (2 B) and written (1 B); ds: 512 read
		 * and written as codes, 4 fp32 scales, 64 read and written (2 B) */
		bytes = (double)T * (ds ? 512.0 * 3.0 + 16.0 + 64.0 * 4.0 : 576.0 * 3.0);
	} else {
		fp8kv_cache_write *d = &r.desc;
		fp8kv_cache_write_init(d, T, H, D, D, nb, BS, FP8KV_LAYOUT_NHD);
		d->input_dtype = o->input;
		d->cache_dtype = recipes[group].cache;
		d->key = input;
		d->value = (const uint8_t *)input + per_side * in_size;
		d->key_cache = cache;
		d->value_cache = (uint8_t *)cache + cache_side;
		d->slot_mapping = slots;
		d->scale_mode = FP8KV_SCALE_GROUP;
		if (e2m1) { /* strides count e2m1 bytes, two values each */
			d->key_cache_stride_head = d->value_cache_stride_head = D / 2;
			d->key_cache_stride_slot = d->value_cache_stride_slot = H * D / 2;
			d->key_cache_stride_block = d->value_cache_stride_block = BS * H * D / 2;
		}
		if (o->outputs) {
			d->overflow_count = outputs;
			d->nan_count = (uint64_t *)outputs + 1;
			d->k_amax = (float *)((uint64_t *)outputs + 2);
			d->v_amax = d->k_amax + BENCH_MAX_HEADS;
		}
		fp8kv_group_scales *g = &r.groups;
		fp8kv_group_scales_init(g, recipes[group].rule, G, H, D, BS, FP8KV_LAYOUT_NHD);
		g->k_scales = scales;
		g->v_scales = (uint8_t *)scales + scale_side;
		if (recipes[group].rule == FP8KV_GROUP_NVFP4) {
			g->k_global = globals;
			g->v_global = (const float *)globals + 1;
		}
		bytes = (double)elements * (2.0 + (e2m1 ? 0.5 : 1.0)) +
			(double)(2 * T * H * (D / G) * recipes[group].scale_bytes);
	}
	bytes += 8.0 * (double)T;

	const int graph = 3.0 * (double)elements < 64e6;
	const bench_timing timing = {
		.fused = do_write,
		.unfused = NULL,
		.ceiling = do_ceiling,
		.arg = &r,
		.graph = graph,
		.per_sample = graph ? 64 : 1,
		.bytes = bytes,
		.ceiling_bytes = (double)elements * 3.0,
	};
	if (bench_rounds(dev, stream, &timing, o->samples, res))
		goto fail;
	CHECK(fp8kv_backend_synchronize(b, stream));
	res->s = *s;
	res->s.heads = H;
	res->s.dim = D;
	res->mode = is_mla && !ds ? FP8KV_SCALE_TENSOR : FP8KV_SCALE_GROUP;
	snprintf(res->what, sizeof res->what, "%s",
		 is_mla ? (ds ? "mla_ds" : "mla_plain") : recipes[group].name);
	rc = 0;
fail:
	fp8kv_buffer_free(b, input);
	fp8kv_buffer_free(b, cache);
	fp8kv_buffer_free(b, ceiling_dst);
	fp8kv_buffer_free(b, slots);
	fp8kv_buffer_free(b, scales);
	fp8kv_buffer_free(b, globals);
	fp8kv_buffer_free(b, outputs);
	dev->stream_destroy(stream);
	free(host_in);
	free(host_slots);
	return rc;
}
