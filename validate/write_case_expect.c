/* SPDX-License-Identifier: MIT */
/*
 * write_case_expect.c - the arena a grouped or MLA case must leave, from
 * the oracle of sections 5b-9 (oracle_group.h) row by row -- never the
 * library: the poison, then every token with a valid slot in token order
 * (a later token overwrites an earlier one), each row's codes and stored
 * scales at the addresses of sections 8 and 9; the counters and amax; and
 * who wrote each byte, for the reports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_case_internal.h"
#include "float_bits.h"
#include "write_case_internal.h"

void write_result_free(write_result *r)
{
	free(r->arena);
	free(r->k_amax);
	free(r->v_amax);
	memset(r, 0, sizeof *r);
}

size_t write_cache_byte(const write_case *c, int kv, int64_t slot, int64_t h)
{
	const int64_t blk = slot / c->block_size, off = slot % c->block_size;
	const size_t esz = fp8kv_dtype_size(c->cache_dtype);
	if (c->kind != WRITE_CASE_GROUPED)
		return c->kc_at + (size_t)(blk * c->kc_stride_block + off * c->kc_stride_slot) * esz;
	if (kv)
		return c->vc_at + (size_t)(blk * c->vc_stride_block + off * c->vc_stride_slot +
					   h * c->vc_stride_head) * esz;
	return c->kc_at + (size_t)(blk * c->kc_stride_block + off * c->kc_stride_slot +
				   h * c->kc_stride_head) * esz;
}

size_t write_scale_byte(const write_case *c, int kv, int64_t slot, int64_t h, int64_t j)
{
	const int64_t blk = slot / c->block_size, off = slot % c->block_size;
	if (c->kind == WRITE_CASE_MLA_DS) /* the record's fp32 scales at byte 512 */
		return write_cache_byte(c, 0, slot, 0) + ORACLE_DS_MLA_RANK + 4 * (size_t)j;
	const oracle_scale_layout *l = kv ? &c->v_scales : &c->k_scales;
	return (kv ? c->vs_at : c->ks_at) +
	       (size_t)oracle_group_scale_index(l, blk, off, h, j) * (size_t)c->scale_bytes;
}

/* Writes n bytes of row r (element or group pos0 + (i * num / den)) at
 * arena offset at. */
static void put(write_case *c, write_result *e, size_t at, const uint8_t *bytes, size_t n,
		int32_t r, int scale, int per_byte_num, int per_byte_den, int64_t pos0)
{
	memcpy(e->arena + at, bytes, n);
	for (size_t i = 0; i < n; i++) {
		c->owner_row[at + i] = r;
		c->owner_scale[at + i] = (uint8_t)scale;
		c->owner_pos[at + i] = (int32_t)(pos0 + (int64_t)i * per_byte_num / per_byte_den);
	}
}

static int32_t add_row(write_case *c, int64_t t, int64_t slot, int64_t h, int kv)
{
	c->rows[c->num_rows] = (struct write_case_row){t, slot, h, kv};
	return (int32_t)c->num_rows++;
}

/* One grouped row: codes at the cache row, scales at their addresses. */
static int grouped_row(write_case *c, write_result *e, int64_t t, int64_t slot, int64_t h, int kv,
		       const uint32_t *row, uint8_t *codes, uint8_t *scales, oracle_counts *all)
{
	const int64_t D = kv ? c->head_dim_v : c->head_dim_k, G = c->group_size;
	const oracle_group_params p = write_group_params(c, kv);
	oracle_counts n;
	float amax;
	if (oracle_group_row(&p, G, row, D, c->input_dtype, codes, scales, &n, &amax))
		return write_fail("the oracle refuses %s %s -> %s, G %lld",
				  write_case_rule_name(c->rule), fp8kv_dtype_name(c->input_dtype),
				  fp8kv_dtype_name(c->cache_dtype), (long long)G);
	const int32_t r = add_row(c, t, slot, h, kv);
	const int e2m1 = c->cache_dtype == FP8KV_E2M1;
	put(c, e, write_cache_byte(c, kv, slot, h), codes, (size_t)write_row_width(c, kv), r, 0,
	    e2m1 ? 2 : 1, 1, 0);
	for (int64_t j = 0; j < D / G; j++)
		put(c, e, write_scale_byte(c, kv, slot, h, j), scales + j * c->scale_bytes,
		    (size_t)c->scale_bytes, r, 1, 0, 1, j);
	all->overflows += n.overflows;
	all->nans += n.nans;
	float *top = kv ? e->v_amax : e->k_amax;
	if (top && amax > top[h])
		top[h] = amax;
	return 0;
}

/* One MLA entry: plain or DeepSeek's record. */
static int mla_entry(write_case *c, write_result *e, int64_t t, int64_t slot, const uint32_t *kv_c,
		     const uint32_t *k_pe, uint8_t *entry, oracle_counts *all)
{
	const int64_t rank = c->head_dim_k, pe = c->head_dim_v;
	const size_t at = write_cache_byte(c, 0, slot, 0);
	const int32_t r0 = add_row(c, t, slot, 0, 0), r1 = add_row(c, t, slot, 0, 1);
	oracle_counts n;
	if (c->kind == WRITE_CASE_MLA_DS) {
		if (oracle_mla_ds_record(kv_c, k_pe, c->input_dtype, c->cache_dtype, c->divisor,
					 c->overflow, entry, &n))
			return write_fail("the oracle refuses this DS record");
		put(c, e, at, entry, ORACLE_DS_MLA_RANK, r0, 0, 1, 1, 0);
		put(c, e, at + ORACLE_DS_MLA_RANK, entry + ORACLE_DS_MLA_RANK, 16, r0, 1, 1, 4, 0);
		put(c, e, at + ORACLE_DS_MLA_RANK + 16, entry + ORACLE_DS_MLA_RANK + 16,
		    2 * ORACLE_DS_MLA_PE, r1, 0, 1, 2, 0);
	} else {
		const int64_t bytes = oracle_mla_plain_entry(kv_c, rank, k_pe, pe, c->input_dtype,
							     c->cache_dtype, c->scaled, c->scale,
							     c->overflow, entry, &n);
		if (bytes < 0)
			return write_fail("the oracle refuses this MLA entry");
		const int esz = (int)fp8kv_dtype_size(c->cache_dtype);
		put(c, e, at, entry, (size_t)(rank * esz), r0, 0, 1, esz, 0);
		put(c, e, at + (size_t)(rank * esz), entry + rank * esz, (size_t)(pe * esz), r1, 0, 1,
		    esz, 0);
	}
	all->overflows += n.overflows;
	all->nans += n.nans;
	return 0;
}

int write_case_expect(write_case *c, write_result *e)
{
	const size_t H = (size_t)c->num_heads;
	memset(e, 0, sizeof *e);
	free(c->owner_row), free(c->owner_pos), free(c->owner_scale), free(c->rows);
	c->num_rows = 0;
	e->arena = malloc(c->arena_bytes ? c->arena_bytes : 1);
	c->owner_row = malloc((c->arena_bytes ? c->arena_bytes : 1) * sizeof(int32_t));
	c->owner_pos = calloc(c->arena_bytes ? c->arena_bytes : 1, sizeof(int32_t));
	c->owner_scale = calloc(c->arena_bytes ? c->arena_bytes : 1, 1);
	c->rows = calloc((size_t)(c->num_tokens * (int64_t)H * 2 + 1), sizeof *c->rows);
	if (c->want_amax && c->kind == WRITE_CASE_GROUPED) {
		e->k_amax = malloc(H * sizeof(float));
		e->v_amax = malloc(H * sizeof(float));
	}
	const int64_t Dmax = c->head_dim_k > c->head_dim_v ? c->head_dim_k : c->head_dim_v;
	uint32_t *rows = calloc((size_t)(2 * Dmax), sizeof *rows);
	uint8_t *codes = calloc((size_t)(4 * Dmax + ORACLE_DS_MLA_BYTES), 1);
	uint8_t *scales = calloc((size_t)(4 * Dmax), 1);
	if (!e->arena || !c->owner_row || !c->owner_pos || !c->owner_scale || !c->rows || !rows ||
	    !codes || !scales ||
	    (c->want_amax && c->kind == WRITE_CASE_GROUPED && (!e->k_amax || !e->v_amax))) {
		free(rows), free(codes), free(scales);
		write_result_free(e);
		return write_fail("out of memory");
	}
	memcpy(e->arena, c->arena_init, c->arena_bytes);
	for (size_t i = 0; i < c->arena_bytes; i++)
		c->owner_row[i] = -1;
	if (e->k_amax) {
		memcpy(e->k_amax, c->k_amax_init, H * sizeof(float));
		memcpy(e->v_amax, c->v_amax_init, H * sizeof(float));
	}
	oracle_counts all = {0, 0};
	int rc = 0;
	for (int64_t t = 0; t < c->num_tokens && !rc; t++) {
		const int64_t slot = c->slots.dest[t];
		if (slot < 0)
			continue;
		if (c->kind != WRITE_CASE_GROUPED) {
			write_load_row(c, 0, t, 0, rows);
			write_load_row(c, 1, t, 0, rows + Dmax);
			rc = mla_entry(c, e, t, slot, rows, rows + Dmax, codes, &all);
			continue;
		}
		for (int kv = 0; kv < 2 && !rc; kv++)
			for (int64_t h = 0; h < c->num_heads && !rc; h++) {
				write_load_row(c, kv, t, h, rows);
				rc = grouped_row(c, e, t, slot, h, kv, rows, codes, scales, &all);
			}
	}
	free(rows), free(codes), free(scales);
	if (rc) {
		write_result_free(e);
		return -1;
	}
	e->overflow_count = c->want_overflow_count ? c->overflow_init + all.overflows : 0;
	e->nan_count = c->want_nan_count ? c->nan_init + all.nans : 0;
	e->status = e->call_status = e->sync_status = FP8KV_OK;
	if (c->slots.first_out_of_range >= 0) {
		e->status = e->call_status = FP8KV_ERANGE;
		snprintf(e->stage, sizeof e->stage, "%s",
			 c->kind == WRITE_CASE_GROUPED ? "reshape_and_cache_grouped"
						       : "concat_and_cache_mla");
		snprintf(e->message, sizeof e->message, "token %lld",
			 (long long)c->slots.first_out_of_range);
	}
	return 0;
}

void write_case_fix_poison(write_case *c, write_result *e)
{
	for (size_t i = 0; i < c->arena_bytes; i++)
		if (c->owner_row[i] >= 0 && c->arena_init[i] == e->arena[i])
			c->arena_init[i] = (uint8_t)(e->arena[i] ^ 0x5A);
}

int write_case_prepare(write_case *c, write_result *expected)
{
	memset(expected, 0, sizeof *expected);
	if (write_case_generate(c) || write_case_expect(c, expected))
		return -1;
	write_case_fix_poison(c, expected);
	return 0;
}
