/* SPDX-License-Identifier: MIT */
/*
 * cache_write.c - the CPU backend's cache write, the golden reference, for
 * every plan: plain, grouped (rows by group_rows.c) and MLA (a plan of one
 * head whose two sides write one record, A-MLA-RECORD).
 *
 * Duplicate slots are written in token order even with several threads:
 * work is dealt out by slot group, so every write to one cache slot falls to
 * one thread, which walks the tokens in order.  Each token's slot is read
 * once, in the pass that writes, and an out-of-range token is recorded from
 * that same read (fp8kv.h section 7).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cpu.h"

/* One side as a thread writes it: the plan's, with this thread's amax and
 * the side's lookup table. */
typedef struct thread_side {
	const fp8kv_plan_side *plan;
	float *amax;       /* this thread's per-head amax, or NULL */
	const void *table; /* the lookup table of this side's conversion, or NULL */
} thread_side;

/* Heads at a time for the per-row amax and scales, on the stack. */
#define HEAD_CHUNK 64

/* Heads [h0, h0 + nh) of token t on one side, to block/offset; src and dst
 * point at head h0's rows, src_stride and dst_stride bytes apart.  What a
 * row reads, divides by and stores is lib/write_plan.h's (A-ROW). */
static void write_heads(const fp8kv_write_plan *p, const thread_side *ts, int64_t h0, int64_t nh,
			const uint8_t *src, int64_t src_stride, uint8_t *dst, int64_t dst_stride,
			int64_t block, int64_t offset, row_stats *stats)
{
	const fp8kv_plan_side *sd = ts->plan;
	const fp8kv_row_recipe *r = &sd->recipe;
	const int mode = r->scale_mode;
	const int64_t n = sd->head_dim;
	float amax[HEAD_CHUNK];

	if (fp8kv_mode_grouped(mode)) { /* each group its own scale (group_rows.c) */
		for (int64_t k = 0; k < nh; k++) {
			float a;
			cpu_group_row(sd, p->input_dtype, src + k * src_stride, dst + k * dst_stride,
				      block, offset, h0 + k, p->saturate, stats, &a);
			if (sd->amax && fp8kv_amax_raises(ts->amax[h0 + k], a))
				ts->amax[h0 + k] = a;
		}
		return;
	}
	if (fp8kv_row_wants_amax(sd, mode)) {
		cpu_rows_amax(amax, src, src_stride, nh, n, p->input_dtype);
		if (sd->amax)
			for (int64_t k = 0; k < nh; k++)
				if (fp8kv_amax_raises(ts->amax[h0 + k], amax[k]))
					ts->amax[h0 + k] = amax[k];
	}
	if (!r->converts) {
		for (int64_t k = 0; k < nh; k++) {
			memcpy(dst + k * dst_stride, src + k * src_stride, (size_t)(n * p->input_size));
			if (stats)
				stats->nans += cpu_row_nans(src + k * src_stride, n, p->input_dtype);
		}
		return;
	}
	if (ts->table) {
		cpu_lookup_rows(dst, dst_stride, src, src_stride, nh, n, ts->table, stats);
		return;
	}
	const fp8kv_fp8_format f = fp8kv_format_of(r->cache_dtype);
	/* one scale for every row (stride 0) lets back-to-back rows join */
	const float *scale = NULL;
	const int64_t scale_stride = fp8kv_mode_per_row(mode);
	float row_scale[HEAD_CHUNK];
	if (fp8kv_mode_divides(mode)) {
		const float fmax = fp8kv_format_max(f);
		const int computed = fp8kv_mode_computed(mode);
		for (int64_t k = 0; k < (scale_stride ? nh : 1); k++) {
			row_scale[k] =
				fp8kv_row_scale(sd, mode, h0 + k, computed ? amax[k] : 0.0f, fmax);
			if (computed)
				sd->scale_cache[fp8kv_scale_index(sd, block, offset, h0 + k)] =
					row_scale[k];
		}
		scale = row_scale;
	}
	cpu_quantize_rows(dst, dst_stride, src, src_stride, nh, n, p->input_dtype, scale,
			  scale_stride, f, p->saturate, stats);
}

/* Every head of token t on one side, to block/offset. */
static void write_token(const fp8kv_write_plan *p, const thread_side *ts, int64_t t,
			int64_t block, int64_t offset, row_stats *stats)
{
	const fp8kv_plan_side *sd = ts->plan;
	const int64_t in_size = p->input_size, cache_size = sd->recipe.cache_size;
	const int64_t H = p->num_heads;
	/* with one head the head strides are never used, and validation does
	 * not bound them */
	const int64_t src_stride = H > 1 ? sd->input_stride_head * in_size : 0;
	const int64_t dst_stride = H > 1 ? sd->cache_stride_head * cache_size : 0;

	for (int64_t h0 = 0; h0 < H; h0 += HEAD_CHUNK) {
		const int64_t nh = H - h0 < HEAD_CHUNK ? H - h0 : HEAD_CHUNK;
		write_heads(p, ts, h0, nh, sd->input + fp8kv_input_row(sd, t, h0) * in_size,
			    src_stride, sd->cache + fp8kv_cache_row(sd, block, offset, h0) * cache_size,
			    dst_stride, block, offset, stats);
	}
}

/* May a side's rows convert through a lookup table: 16-bit inputs, an FP8
 * cache and one scale (or none) for every row of the call. */
static int side_tabulates(const fp8kv_write_plan *p, const fp8kv_plan_side *sd)
{
	return p->input_dtype != FP8KV_F32 && sd->recipe.converts &&
	       !fp8kv_mode_per_row(sd->recipe.scale_mode);
}

/* Do two such sides convert alike, so that one table serves both? */
static int same_table(const fp8kv_plan_side *a, const fp8kv_plan_side *b)
{
	return a->recipe.cache_dtype == b->recipe.cache_dtype &&
	       a->recipe.scale_mode == b->recipe.scale_mode &&
	       (!fp8kv_mode_divides(a->recipe.scale_mode) ||
		fp8kv_f32_bits(a->scale[0]) == fp8kv_f32_bits(b->scale[0]));
}

/* The first out-of-range token a thread met, and what its slot said. */
typedef struct range_error {
	int64_t token; /* -1: none */
	int64_t slot;
	int kind;
} range_error;

fp8kv_status cpu_reshape_and_cache(void *ctx, const fp8kv_write_plan *p, void *stream)
{
	(void)stream;
	const fp8kv_slot_map *map = &p->slots;
	const int64_t H = p->num_heads;
	const fp8kv_plan_side *key = &p->side[FP8KV_SIDE_KEY], *value = &p->side[FP8KV_SIDE_VALUE];

	const int want_amax = key->amax || value->amax;
	/* in floating point: the product of valid sizes may exceed 64 bits
	 * (broadcast inputs with zero strides) */
	const double work = (double)p->num_tokens * (double)H *
			    ((double)key->head_dim + (double)value->head_dim);
	const int threads = work >= PARALLEL_MIN_ELEMENTS ? CPU_THREADS(ctx) : 1;
	float *amax_scratch = NULL;
	if (want_amax) {
		amax_scratch = calloc((size_t)threads * 2 * (size_t)H, sizeof(float));
		if (!amax_scratch)
			return CPU_ERROR(FP8KV_ENOMEM, "cpu: no memory for amax scratch");
	}
	row_stats total = {0, 0};
	range_error first_bad = {-1, 0, FP8KV_SLOT_OUT_OF_RANGE};

	/* Lookup tables for a long call, one per side that may use one, or one
	 * for both when they convert alike.  Without memory for them the call
	 * converts arithmetically, to the same bytes. */
	const int counting = p->overflow_count || p->nan_count;
	const size_t table_bytes = TABLE_SIZE * (counting ? 2 : 1);
	int num_tables = 0, table_of[2] = {-1, -1};
	const fp8kv_plan_side *table_side[2] = {NULL, NULL};
	uint8_t *tables = NULL;
	for (int i = 0; i < 2 && work >= TABLE_MIN_ELEMENTS; i++) {
		if (!side_tabulates(p, &p->side[i]))
			continue;
		if (i == 1 && table_of[0] == 0 && same_table(key, value)) {
			table_of[1] = 0;
			continue;
		}
		table_side[num_tables] = &p->side[i];
		table_of[i] = num_tables++;
	}
	if (num_tables) {
		tables = aligned_alloc(64, (size_t)num_tables * table_bytes);
		if (!tables)
			num_tables = 0, table_of[0] = table_of[1] = -1;
	}

#pragma omp parallel num_threads(threads) if (threads > 1)
	{
		const int nthreads = THREAD_COUNT(), me = THREAD_INDEX();
		/* each thread builds its share of every table, and all wait for
		 * the whole before looking anything up */
		for (int i = 0; i < num_tables; i++) {
			const fp8kv_row_recipe *r = &table_side[i]->recipe;
			cpu_build_table(tables + (size_t)i * table_bytes, TABLE_SIZE * me / nthreads,
					TABLE_SIZE * (me + 1) / nthreads, p->input_dtype,
					fp8kv_mode_divides(r->scale_mode) ? table_side[i]->scale : NULL,
					fp8kv_format_of(r->cache_dtype), p->saturate, counting);
		}
		if (num_tables) {
#pragma omp barrier
		}
		float *my_amax = want_amax ? amax_scratch + (size_t)me * 2 * (size_t)H : NULL;
		const thread_side k = {key, my_amax,
				       table_of[0] < 0 ? NULL : tables + (size_t)table_of[0] * table_bytes};
		const thread_side v = {value, my_amax ? my_amax + H : NULL,
				       table_of[1] < 0 ? NULL : tables + (size_t)table_of[1] * table_bytes};
		row_stats mine = {0, 0};
		row_stats *stats = counting ? &mine : NULL;
		range_error my_bad = {-1, 0, FP8KV_SLOT_OUT_OF_RANGE};

		for (int64_t t = 0; t < p->num_tokens; t++) {
			int64_t s = 0;
			const int kind = fp8kv_resolve_slot(map, fp8kv_raw_slot(map, t), &s);
			if (kind != FP8KV_SLOT_WRITE) {
				if (fp8kv_slot_is_error(kind) && my_bad.token < 0)
					my_bad = (range_error){t, s, kind};
				continue;
			}
			/* groups of 16 slots keep neighbouring small rows on one thread */
			if ((s >> 4) % nthreads != me)
				continue;
			const int64_t block = s / p->block_size, offset = s % p->block_size;
			write_token(p, &k, t, block, offset, stats);
			write_token(p, &v, t, block, offset, stats);
		}
#pragma omp critical(fp8kv_cpu_stats)
		{
			total.overflows += mine.overflows;
			total.nans += mine.nans;
			if (my_bad.token >= 0 && (first_bad.token < 0 || my_bad.token < first_bad.token))
				first_bad = my_bad;
		}
	}

	if (p->overflow_count)
		*p->overflow_count += total.overflows;
	if (p->nan_count)
		*p->nan_count += total.nans;
	if (want_amax) {
		for (int i = 0; i < threads; i++)
			for (int64_t h = 0; h < H; h++) {
				const float *a = amax_scratch + (size_t)i * 2 * (size_t)H;
				if (key->amax && fp8kv_amax_raises(key->amax[h], a[h]))
					key->amax[h] = a[h];
				if (value->amax && fp8kv_amax_raises(value->amax[h], a[H + h]))
					value->amax[h] = a[H + h];
			}
		free(amax_scratch);
	}
	free(tables);
	if (first_bad.token >= 0)
		return fp8kv_range_error(CPU_HOST()->set_error, first_bad.token, first_bad.slot,
					 fp8kv_slot_limit(map, first_bad.kind),
					 first_bad.kind == FP8KV_SLOT_PAST_SWA);
	return FP8KV_OK;
}
