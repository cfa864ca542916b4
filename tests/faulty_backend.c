/* SPDX-License-Identifier: MIT */
/*
 * faulty_backend.c - a backend module that is wrong on purpose, built only
 * for make check, to prove that fp8kv-validate notices a wrong backend.
 *
 * It forwards everything to the CPU backend, with one fault chosen by the
 * environment variable FP8KV_FAULT:
 *   scale      (default) the TENSOR/HEAD scales are dropped, as if they were 1;
 *   slot       every token is written one slot further on (when that exists);
 *   ties       grouped e2m1 rows round ties away from zero (x / s of 0.25,
 *              1.25, 2.5 or 5 goes up a code);
 *   nibbles    grouped e2m1 rows with the two nibbles of each byte swapped;
 *   rceil      FP8KV_GROUP_E8M0_FLOOR written by the rceil rule;
 *   ds_order   DeepSeek's MLA records with each tile scale's bytes reversed
 *              (big-endian);
 *   old_table  a table without the grouped and MLA entries (an older
 *              module): the library must refuse those writes.
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"

static const fp8kv_host_services *host;

typedef enum {
	FAULT_SCALE, FAULT_SLOT, FAULT_TIES, FAULT_NIBBLES, FAULT_RCEIL, FAULT_DS_ORDER,
	FAULT_OLD_TABLE
} fault;

static fault fault_of(const char *name)
{
	static const char *const names[] = {"scale", "slot", "ties", "nibbles", "rceil",
					    "ds_order", "old_table"};
	for (int i = 0; name && i < (int)(sizeof names / sizeof names[0]); i++)
		if (!strcmp(name, names[i]))
			return (fault)i;
	return FAULT_SCALE;
}

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
	c->fault = fault_of(f);
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

/* ---- grouped and MLA writes ---- */

/* The public group scales of a plan's sides. */
static void groups_of(const fp8kv_write_plan *p, fp8kv_group_scales *g)
{
	const fp8kv_plan_side *k = &p->side[FP8KV_SIDE_KEY], *v = &p->side[FP8KV_SIDE_VALUE];
	const fp8kv_group_recipe *r = &k->recipe.group;
	fp8kv_group_scales_init(g, (fp8kv_group_rule)r->rule, r->size, p->num_heads, k->head_dim,
				p->block_size, FP8KV_LAYOUT_NHD);
	g->rounding = (fp8kv_rounding)r->rounding;
	g->divisor = r->rule == FP8KV_GROUP_F32 ? r->divisor : 0.0f; /* resolved: the same */
	g->scale_floor = r->rule == FP8KV_GROUP_F32 ? r->scale_floor : 0.0f;
	g->k_global = k->groups.global;
	g->v_global = v->groups.global;
	g->k_scales = k->groups.scales;
	g->v_scales = v->groups.scales;
	g->stride_block = k->groups.stride_block, g->stride_slot = k->groups.stride_slot;
	g->stride_head = k->groups.stride_head, g->stride_group = k->groups.stride_group;
	g->interleave = k->groups.interleave, g->stride_interleave = k->groups.stride_interleave;
	g->v_own_layout = 1;
	g->v_stride_block = v->groups.stride_block, g->v_stride_slot = v->groups.stride_slot;
	g->v_stride_head = v->groups.stride_head, g->v_stride_group = v->groups.stride_group;
	g->v_interleave = v->groups.interleave;
	g->v_stride_interleave = v->groups.stride_interleave;
}

/* The last token written to each slot, in slot order: a fault applied
 * after the CPU's write touches each written row once. */
static int64_t *last_writers(const fp8kv_write_plan *p, int64_t *n)
{
	const int64_t S = p->slots.num_slots;
	int64_t *who = malloc((size_t)(S > 0 ? S : 1) * sizeof *who), m = 0;
	if (!who)
		return NULL;
	for (int64_t s = 0; s < S; s++)
		who[s] = -1;
	for (int64_t t = 0; t < p->num_tokens; t++) {
		int64_t s;
		if (fp8kv_resolve_slot(&p->slots, fp8kv_raw_slot(&p->slots, t), &s) == FP8KV_SLOT_WRITE)
			who[s] = t;
	}
	for (int64_t s = 0; s < S; s++)
		if (who[s] >= 0)
			who[m++] = s << 32 | who[s]; /* small test shapes: both fit */
	*n = m;
	return who;
}

/* x / s of an e2m1 element is a tie that rounding to even takes down:
 * the code one up, away from zero. */
static uint32_t tie_away(float x, float s, uint32_t code)
{
	static const float down[] = {0.25f, 1.25f, 2.5f, 5.0f};
	const float y = x / s, a = y < 0 ? -y : y;
	for (int i = 0; i < 4; i++)
		if (a == down[i])
			return code + 1;
	return code;
}

/* The ties and nibbles faults, on the grouped e2m1 rows the CPU wrote. */
static void spoil_e2m1_rows(const faulty *c, const fp8kv_write_plan *p)
{
	int64_t n = 0;
	int64_t *rows = last_writers(p, &n);
	for (int64_t i = 0; rows && i < n; i++) {
		const int64_t slot = rows[i] >> 32, t = rows[i] & 0xFFFFFFFF;
		const int64_t block = slot / p->block_size, offset = slot % p->block_size;
		for (int side = 0; side < 2; side++) {
			const fp8kv_plan_side *sd = &p->side[side];
			if (sd->recipe.cache_dtype != FP8KV_E2M1)
				continue;
			for (int64_t h = 0; h < p->num_heads; h++) {
				uint8_t *row = sd->cache + fp8kv_cache_row(sd, block, offset, h);
				const int64_t G = sd->recipe.group.size;
				for (int64_t d = 0; d < sd->head_dim; d += 2) {
					uint8_t b = row[d / 2];
					if (c->fault == FAULT_NIBBLES) {
						row[d / 2] = (uint8_t)(b >> 4 | b << 4);
						continue;
					}
					/* the group's scale, as stored */
					const int64_t j = d / G;
					const uint8_t *st = sd->groups.scales;
					const int64_t at = fp8kv_group_scale_index(sd, block, offset, h, j);
					float s;
					if (sd->recipe.group.scale_bytes == 4)
						memcpy(&s, st + 4 * at, 4);
					else if (sd->recipe.group.rule == FP8KV_GROUP_NVFP4)
						s = fp8kv_to_float(st[at], FP8KV_E4M3FN) * sd->groups.global[0];
					else
						s = fp8kv_e8m0_value(st[at]);
					for (int k = 0; k < 2; k++) {
						const float x = fp8kv_load_f32(sd->input,
							fp8kv_input_row(sd, t, h) + d + k, p->input_dtype);
						const uint32_t code = (b >> (4 * k)) & 0xFu;
						const uint32_t mag = tie_away(x, s, code & 7u);
						b = (uint8_t)((b & ~(0xFu << (4 * k))) |
							      ((mag | (code & 8u)) & 0xFu) << (4 * k));
					}
					row[d / 2] = b;
				}
			}
		}
	}
	free(rows);
}

static fp8kv_status faulty_grouped(void *ctx, const fp8kv_write_plan *plan, void *stream)
{
	faulty *c = ctx;
	fp8kv_cache_write d;
	fp8kv_group_scales g;
	descriptor_of(plan, &d);
	groups_of(plan, &g);
	if (c->fault == FAULT_RCEIL && g.rule == FP8KV_GROUP_E8M0_FLOOR)
		g.rule = FP8KV_GROUP_E8M0_RCEIL;
	const fp8kv_status st = fp8kv_reshape_and_cache_grouped(c->cpu, &d, &g, stream);
	if ((st == FP8KV_OK || st == FP8KV_ERANGE) &&
	    (c->fault == FAULT_TIES || c->fault == FAULT_NIBBLES))
		spoil_e2m1_rows(c, plan);
	return pass(st);
}

static fp8kv_status faulty_mla(void *ctx, const fp8kv_write_plan *p, void *stream)
{
	faulty *c = ctx;
	const fp8kv_plan_side *latent = &p->side[0], *rope = &p->side[1];
	const int ds = latent->recipe.scale_mode == FP8KV_SCALE_GROUP;
	fp8kv_mla_write m;
	fp8kv_mla_write_init(&m, ds ? FP8KV_MLA_DS : FP8KV_MLA_PLAIN, p->num_tokens,
			     latent->head_dim, rope->head_dim, p->num_blocks, p->block_size);
	m.kv_c = latent->input;
	m.k_pe = rope->input;
	m.input_dtype = (fp8kv_dtype)p->input_dtype;
	m.kv_c_stride_token = latent->input_stride_token;
	m.k_pe_stride_token = rope->input_stride_token;
	m.cache = latent->cache;
	m.cache_dtype = (fp8kv_dtype)latent->recipe.cache_dtype;
	m.stride_block = latent->cache_stride_block;
	m.stride_slot = latent->cache_stride_slot;
	m.slot_mapping = p->slots.slot_mapping;
	m.slot_type = (fp8kv_index_type)p->slots.slot_type;
	m.swa_mapping = p->slots.swa_mapping;
	m.swa_type = (fp8kv_index_type)p->slots.swa_type;
	m.swa_mapping_len = p->slots.swa_len;
	m.scale_mode = ds ? FP8KV_SCALE_ONE : (fp8kv_scale_mode)latent->recipe.scale_mode;
	m.scale = latent->scale;
	m.divisor = ds ? latent->recipe.group.divisor : 0.0f;
	m.overflow = p->saturate ? FP8KV_SATURATE : FP8KV_NONSATURATING;
	m.overflow_count = p->overflow_count;
	m.nan_count = p->nan_count;
	const fp8kv_status st = fp8kv_concat_and_cache_mla(c->cpu, &m, stream);
	if ((st == FP8KV_OK || st == FP8KV_ERANGE) && ds && c->fault == FAULT_DS_ORDER) {
		int64_t n = 0;
		int64_t *rows = last_writers(p, &n);
		for (int64_t i = 0; rows && i < n; i++) {
			const int64_t slot = rows[i] >> 32;
			uint8_t *s = latent->groups.scales +
				     4 * fp8kv_group_scale_index(latent, slot / p->block_size,
								 slot % p->block_size, 0, 0);
			for (int j = 0; j < 4; j++, s += 4) {
				const uint8_t b0 = s[0], b1 = s[1];
				s[0] = s[3], s[1] = s[2], s[2] = b1, s[3] = b0;
			}
		}
		free(rows);
	}
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

static const fp8kv_backend_ops faulty_old_ops = { /* an older module's table */
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
	.reshape_and_cache_grouped = faulty_grouped,
	.concat_and_cache_mla = faulty_mla,
};

__attribute__((visibility("default"))) const fp8kv_backend_ops *
fp8kv_module_entry(const fp8kv_host_services *services)
{
	host = services;
	return fault_of(getenv("FP8KV_FAULT")) == FAULT_OLD_TABLE ? &faulty_old_ops : &faulty_ops;
}
