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
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

enum { CACHE = 1 << 12 };

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
	for (int it = 0; it < 10000; it++) {
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
	for (int it = 0; it < 10000; it++) {
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

/* ---- shared memory, against the addresses themselves ---- */

enum { ARENA = 4096 };

/* A random int in [0, n). */
static int64_t below(int64_t n)
{
	return (int64_t)(next() % (uint64_t)n);
}

/* Padding between rows: mostly none, sometimes a little, rarely negative
 * (then rows overlap). */
static int64_t pad(void)
{
	const uint64_t r = next() % 16;
	return r < 10 ? 0 : r < 14 ? (int64_t)(next() % 24) : -(int64_t)(next() % 3) - 1;
}

/* Marks [at, at + len) in owner map o as array a; returns 0 when the bytes
 * leave the arena. */
static int mark(uint8_t *o, uint8_t *self_hit, int64_t at, int64_t len, int a)
{
	if (at < 0 || at + len > ARENA)
		return 0;
	for (int64_t i = at; i < at + len; i++) {
		if (o[i] & (1u << a))
			*self_hit = 1;
		o[i] |= (uint8_t)(1u << a);
	}
	return 1;
}

/*
 * Key and value caches and both scale arrays at random places and strides
 * in one arena, every slot written: whenever the library accepts, no byte
 * belongs to two arrays and no array writes a byte twice (worked out here
 * from section 7's and 8's address formulas), and the call writes only
 * bytes of the arrays; whenever it refuses, nothing is written.
 */
START_TEST(shared_memory_against_addresses)
{
	enum { H = 2, D = 32, G = 16, GR = 2, NB = 3, BS = 4, T = NB * BS };
	uint16_t *in = guarded_alloc(T * H * D * 2);
	int64_t *slots = guarded_alloc(T * 8);
	for (int t = 0; t < T; t++)
		slots[t] = T - 1 - t;
	guarded_protect(in, 1), guarded_protect(slots, 1);
	uint8_t *arena = guarded_alloc(ARENA);
	static uint8_t owner[ARENA];
	int accepted = 0, refused = 0, interleaved = 0;
	for (int it = 0; it < 4000; it++) {
		fp8kv_cache_write d;
		fp8kv_group_scales g;
		const int f32 = it % 2;
		const int64_t sb = f32 ? 4 : 1;
		fp8kv_cache_write_init(&d, T, H, D, D, NB, BS, FP8KV_LAYOUT_NHD);
		fp8kv_group_scales_init(&g, f32 ? FP8KV_GROUP_F32 : FP8KV_GROUP_E8M0_RCEIL, G, H, D,
					BS, FP8KV_LAYOUT_NHD);
		d.key = d.value = in, d.slot_mapping = slots;
		d.cache_dtype = FP8KV_E4M3FN, d.scale_mode = FP8KV_SCALE_GROUP;
		int64_t at[4];
		for (int a = 0; a < 4; a++) /* apart, or anywhere */
			at[a] = (next() % 4 ? a * (ARENA / 4) + below(64) : below(ARENA / 2)) / sb * sb;
		d.key_cache_stride_head = D + pad(), d.value_cache_stride_head = D + pad();
		d.key_cache_stride_slot = H * d.key_cache_stride_head + pad();
		d.value_cache_stride_slot = H * d.value_cache_stride_head + pad();
		d.key_cache_stride_block = BS * d.key_cache_stride_slot + pad();
		d.value_cache_stride_block = BS * d.value_cache_stride_slot + pad();
		const int64_t I = (int64_t[]){0, 0, 2, 4}[next() % 4];
		g.stride_group = 1 + (next() % 16 == 0), g.stride_head = GR * g.stride_group + pad() / 4;
		g.interleave = I;
		g.stride_interleave = I ? H * g.stride_head + pad() / 4 : 0;
		g.stride_slot = (I ? I * g.stride_interleave : H * g.stride_head) + pad() / 4;
		g.stride_block = (I ? (BS + I - 1) / I : BS) * g.stride_slot + pad() / 4;
		if (next() % 2) {
			/* the key scales in the key cache's pages (vLLM's NVFP4 page):
			 * each block's codes, then its scales, at one block stride,
			 * the scales nudged by -1, 0 or +1 of their elements */
			const int64_t codes = BS * d.key_cache_stride_slot;
			const int64_t room = (g.stride_block + GR) * sb;
			d.key_cache_stride_block = (codes + room + sb - 1) / sb * sb;
			g.stride_block = d.key_cache_stride_block / sb;
			at[0] = at[0] / sb * sb;
			at[2] = at[0] + (codes + sb - 1) / sb * sb + (below(3) - 1) * sb;
		}
		d.key_cache = arena + at[0], d.value_cache = arena + at[1];
		g.k_scales = arena + at[2], g.v_scales = arena + at[3];

		/* the bytes each array owns, by the formulas */
		memset(owner, 0, sizeof owner);
		uint8_t self_hit = 0;
		int inside = 1;
		for (int64_t b = 0; b < NB; b++)
			for (int64_t o = 0; o < BS; o++)
				for (int64_t h = 0; h < H; h++) {
					inside &= mark(owner, &self_hit,
						       at[0] + b * d.key_cache_stride_block +
							       o * d.key_cache_stride_slot +
							       h * d.key_cache_stride_head,
						       D, 0);
					inside &= mark(owner, &self_hit,
						       at[1] + b * d.value_cache_stride_block +
							       o * d.value_cache_stride_slot +
							       h * d.value_cache_stride_head,
						       D, 1);
					const int64_t slot_term =
						I ? o / I * g.stride_slot + o % I * g.stride_interleave
						  : o * g.stride_slot;
					for (int64_t j = 0; j < GR; j++) {
						const int64_t e = b * g.stride_block + slot_term +
								  h * g.stride_head + j * g.stride_group;
						inside &= mark(owner, &self_hit, at[2] + e * sb, sb, 2);
						inside &= mark(owner, &self_hit, at[3] + e * sb, sb, 3);
					}
				}
		if (!inside)
			continue; /* the library cannot know the arena's size */
		int shared = 0, lo[4] = {ARENA, ARENA, ARENA, ARENA}, hi[4] = {0};
		for (int i = 0; i < ARENA; i++) {
			shared |= __builtin_popcount(owner[i]) > 1;
			for (int a = 0; a < 4; a++)
				if (owner[i] & (1u << a))
					lo[a] = lo[a] < i ? lo[a] : i, hi[a] = i;
		}
		int spans_meet = 0; /* arrays interleaved, not only apart */
		for (int a = 0; a < 4; a++)
			for (int c = a + 1; c < 4; c++)
				spans_meet |= lo[a] <= hi[c] && lo[c] <= hi[a];
		guarded_repoison(arena);
		const fp8kv_status st = fp8kv_reshape_and_cache_grouped(cpu, &d, &g, NULL);
		if (st != FP8KV_OK) {
			refused++;
			if (getenv("HOSTILE_VERBOSE") && !shared && !self_hit)
				fprintf(stderr, "%d (apart by the formulas): %s\n", it,
					fp8kv_last_error());
			ck_assert_msg(guarded_untouched(arena), "draw %d: refused and wrote", it);
			continue;
		}
		accepted++;
		interleaved += spans_meet;
		ck_assert_msg(!shared && !self_hit,
			      "draw %d accepted, but %s (kc %" PRId64 " vc %" PRId64 " ks %" PRId64
			      " vs %" PRId64 ", interleave %" PRId64 ")",
			      it, shared ? "two arrays share a byte" : "an array writes a byte twice",
			      at[0], at[1], at[2], at[3], I);
		for (int i = 0; i < ARENA; i++)
			ck_assert_msg(owner[i] || arena[i] == GUARD_POISON,
				      "draw %d: byte %d, of no array, written", it, i);
	}
	ck_assert_msg(accepted > 100 && refused > 100 && interleaved > 20,
		      "accepted %d (%d interleaved), refused %d: draws too one-sided", accepted,
		      interleaved, refused);
	guarded_free_all();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hostile_sizes");
	TCase *tc = cpu_tcase(s, "sizes", 300); /* minutes under ASan on a loaded host */
	tcase_add_test(tc, grouped_sizes);
	tcase_add_test(tc, mla_sizes);
	tcase_add_test(tc, shared_memory_against_addresses);
	return run_suite(s);
}
