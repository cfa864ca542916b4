/* SPDX-License-Identifier: MIT */
/*
 * test_hostile_sizes.c - the checks of fp8kv_reshape_and_cache_grouped and
 * fp8kv_concat_and_cache_mla on extreme sizes and strides: every int64
 * field of the descriptors drawn from the values that break arithmetic (0,
 * +-1, powers of two up to 2^62, INT64_MIN, INT64_MAX and its halves), in
 * calls with no tokens, so that whatever the verdict nothing may be
 * written.  Each call must return (no signal; under --enable-sanitizers no
 * overflow), with FP8KV_OK or an error that has a message, and leave every
 * guarded output byte as it was.  A fixed seed: the same draws each run.
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <string.h>

#include "check_support.h"
#include "fp8kv.h"
#include "guarded.h"

static const int64_t edges[] = {0,
				1,
				2,
				-1,
				-2,
				3,
				16,
				17,
				32,
				48,
				128,
				656,
				INT64_C(1) << 31,
				(INT64_C(1) << 31) - 1,
				INT64_C(1) << 32,
				INT64_C(1) << 62,
				-(INT64_C(1) << 62),
				INT64_MAX,
				INT64_MAX - 1,
				INT64_MAX / 2,
				INT64_MAX / 2 + 1,
				INT64_MAX / 4 + 1,
				INT64_MIN,
				INT64_MIN + 1};
#define NUM_EDGES (sizeof edges / sizeof edges[0])

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return rng;
}

/* A field keeps its valid value half the time, else takes an edge. */
static void draw(int64_t *field)
{
	const uint64_t r = next();
	if (r % 4 < 2)
		return;
	*field = edges[(r >> 8) % NUM_EDGES];
}

enum { CACHE = 1 << 14 };

static void *outs[6];

static int untouched(int n)
{
	for (int i = 0; i < n; i++)
		if (!guarded_untouched(outs[i]))
			return 0;
	return 1;
}

START_TEST(grouped_sizes)
{
	uint16_t *in = guarded_alloc(4096);
	guarded_protect(in, 1);
	float *gl = guarded_alloc(8);
	gl[0] = gl[1] = 1.0f;
	guarded_protect(gl, 1);
	outs[0] = guarded_alloc(CACHE), outs[1] = guarded_alloc(CACHE);
	outs[2] = guarded_alloc(CACHE), outs[3] = guarded_alloc(CACHE);
	outs[4] = guarded_alloc(8), outs[5] = guarded_alloc(8);
	static const fp8kv_group_rule rules[4] = {FP8KV_GROUP_F32, FP8KV_GROUP_E8M0_FLOOR,
						  FP8KV_GROUP_E8M0_RCEIL, FP8KV_GROUP_NVFP4};
	for (int it = 0; it < 20000; it++) {
		fp8kv_cache_write d;
		fp8kv_group_scales g;
		const fp8kv_group_rule rule = rules[it % 4];
		const fp8kv_cache_layout lay = (it / 4) % 2 ? FP8KV_LAYOUT_HND : FP8KV_LAYOUT_NHD;
		fp8kv_cache_write_init(&d, 0, 2, 32, 32, 2, 4, lay);
		fp8kv_group_scales_init(&g, rule, 16, 2, 32, 4, lay);
		d.key = d.value = in;
		d.key_cache = outs[0], d.value_cache = outs[1];
		d.cache_dtype = rule == FP8KV_GROUP_NVFP4 || it % 3 == 0 ? FP8KV_E2M1 : FP8KV_E4M3FN;
		d.scale_mode = FP8KV_SCALE_GROUP;
		d.overflow_count = outs[4], d.nan_count = outs[5];
		g.k_scales = outs[2], g.v_scales = outs[3];
		g.k_global = gl, g.v_global = gl + 1;
		int64_t *fields[] = {&d.num_heads, &d.head_dim_k, &d.head_dim_v,
				     &d.key_stride_token, &d.key_stride_head,
				     &d.value_stride_token, &d.value_stride_head, &d.num_blocks,
				     &d.block_size, &d.key_cache_stride_block,
				     &d.key_cache_stride_slot, &d.key_cache_stride_head,
				     &d.value_cache_stride_block, &d.value_cache_stride_slot,
				     &d.value_cache_stride_head, &g.group_size, &g.stride_block,
				     &g.stride_slot, &g.stride_head, &g.stride_group, &g.interleave,
				     &g.stride_interleave};
		const int nf = (int)(sizeof fields / sizeof fields[0]);
		const int changes = 1 + (int)(next() % 4);
		for (int k = 0; k < changes; k++)
			draw(fields[next() % (uint64_t)nf]);
		if (next() % 4 == 0) {
			g.v_own_layout = 1;
			g.v_stride_block = g.stride_block, g.v_stride_slot = g.stride_slot;
			g.v_stride_head = g.stride_head, g.v_stride_group = g.stride_group;
			draw(&g.v_interleave), draw(&g.v_stride_interleave), draw(&g.v_stride_slot);
		}
		if (next() % 8 == 0)
			d.swa_mapping = in, draw(&d.swa_mapping_len);
		const fp8kv_status st = fp8kv_reshape_and_cache_grouped(cpu, &d, &g, NULL);
		ck_assert_msg(st == FP8KV_OK || *fp8kv_last_error(), "draw %d: status %d, no message",
			      it, st);
		ck_assert_msg(untouched(6), "draw %d: status %d wrote memory ('%s')", it, st,
			      fp8kv_last_error());
	}
	guarded_free_all();
}
END_TEST

START_TEST(mla_sizes)
{
	uint16_t *in = guarded_alloc(4096);
	guarded_protect(in, 1);
	float *scale = guarded_alloc(8);
	scale[0] = 1.0f;
	guarded_protect(scale, 1);
	outs[0] = guarded_alloc(CACHE), outs[1] = guarded_alloc(8), outs[2] = guarded_alloc(8);
	for (int it = 0; it < 20000; it++) {
		fp8kv_mla_write m;
		const fp8kv_mla_kind kind = it % 2 ? FP8KV_MLA_DS : FP8KV_MLA_PLAIN;
		fp8kv_mla_write_init(&m, kind, 0, kind ? 512 : 48, kind ? 64 : 16, 2, 4);
		m.kv_c = m.k_pe = in;
		m.cache = outs[0], m.overflow_count = outs[1], m.nan_count = outs[2];
		if (kind == FP8KV_MLA_PLAIN && it % 4 == 0)
			m.scale_mode = FP8KV_SCALE_TENSOR, m.scale = scale;
		int64_t *fields[] = {&m.kv_lora_rank, &m.pe_dim, &m.kv_c_stride_token,
				     &m.k_pe_stride_token, &m.num_blocks, &m.block_size,
				     &m.stride_block, &m.stride_slot};
		const int nf = (int)(sizeof fields / sizeof fields[0]);
		const int changes = 1 + (int)(next() % 3);
		for (int k = 0; k < changes; k++)
			draw(fields[next() % (uint64_t)nf]);
		if (next() % 8 == 0)
			m.swa_mapping = in, draw(&m.swa_mapping_len);
		const fp8kv_status st = fp8kv_concat_and_cache_mla(cpu, &m, NULL);
		ck_assert_msg(st == FP8KV_OK || *fp8kv_last_error(), "draw %d: status %d, no message",
			      it, st);
		ck_assert_msg(untouched(3), "draw %d: status %d wrote memory", it, st);
	}
	guarded_free_all();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hostile_sizes");
	TCase *tc = cpu_tcase(s, "sizes", 60);
	tcase_add_test(tc, grouped_sizes);
	tcase_add_test(tc, mla_sizes);
	return run_suite(s);
}
