/* SPDX-License-Identifier: MIT */
/*
 * test_hardening_group.c - shared memory in grouped and MLA writes, and a
 * backend without them, on the CPU backend:
 *   - vLLM's NVFP4 page (one buffer per block: K codes, K scales, V codes,
 *     V scales, the V scales in the 4-token interleave) is accepted and
 *     written where section 8 says, every other byte kept; one byte too
 *     short a page, and scales laid over their own codes, are refused,
 *     naming both arguments, with nothing written;
 *   - DeepSeek's record, whose two sides and inline scales share each
 *     entry, is accepted; an input inside it is refused;
 *   - a module whose table lacks the new writes (an older module) gets
 *     FP8KV_ENOTSUP from the library, with nothing written.
 * Expected bytes are worked out here: NVFP4 block scales of groups whose
 * amax / 6 is a power of two, e2m1 codes of exact multiples.
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fp8kv.h"
#include "test_hardening.h"

#define POISON 0xA5

static fp8kv_backend *cpu;

static void setup(void)
{
	ck_assert_int_eq(fp8kv_backend_open("cpu", &cpu), FP8KV_OK);
}

static void teardown(void)
{
	fp8kv_backend_close(cpu);
}

/* One head of 32, blocks of 4 slots, two blocks: a page is K codes
 * [4][16], K scales [4][2], V codes [4][16], V scales interleaved [2][4]. */
enum { PT = 3, PD = 32, PBS = 4, PNB = 2, KC_AT = 0, KS_AT = 64, VC_AT = 72, VS_AT = 136,
       PAGE = 144 };

typedef struct page_call {
	uint16_t key[PT * PD], value[PT * PD];
	int64_t slots[PT];
	float g;
	_Alignas(64) uint8_t arena[PNB * PAGE + 64];
	fp8kv_cache_write d;
	fp8kv_group_scales s;
} page_call;

/* bf16 of +-m * 2^e, m in {1, 1.5}: exact. */
static uint16_t bf16(int neg, int e, int half)
{
	return (uint16_t)((neg ? 0x8000 : 0) | (127 + e) << 7 | (half ? 0x40 : 0));
}

static void page_init(page_call *c)
{
	memset(c, 0, sizeof *c);
	/* token t, group j: element 0 is the amax 6 * 2^(t + j) (sf 2^(t + j),
	 * e4m3fn 0x38 + 8 (t + j)), the others 2^(t + j) (code 0x2, 1.0) and
	 * -1.5 * 2^(t + j) (code 0xB); values with an extra factor 2 */
	for (int t = 0; t < PT; t++)
		for (int i = 0; i < PD; i++) {
			const int e = t + i / 16;
			c->key[t * PD + i] = i % 16 == 0 ? bf16(0, e + 2, 1) : bf16(i % 2, e, i % 2);
			c->value[t * PD + i] =
				i % 16 == 0 ? bf16(0, e + 3, 1) : bf16(i % 2, e + 1, i % 2);
		}
	c->slots[0] = 6, c->slots[1] = 1, c->slots[2] = 3; /* block 1 offset 2; block 0 */
	c->g = 1.0f;
	memset(c->arena, POISON, sizeof c->arena);
	fp8kv_cache_write_init(&c->d, PT, 1, PD, PD, PNB, PBS, FP8KV_LAYOUT_HND);
	c->d.key = c->key, c->d.value = c->value, c->d.slot_mapping = c->slots;
	c->d.cache_dtype = FP8KV_E2M1, c->d.scale_mode = FP8KV_SCALE_GROUP;
	c->d.key_cache = c->arena + KC_AT, c->d.value_cache = c->arena + VC_AT;
	c->d.key_cache_stride_slot = c->d.value_cache_stride_slot = PD / 2;
	c->d.key_cache_stride_head = c->d.value_cache_stride_head = PBS * PD / 2;
	c->d.key_cache_stride_block = c->d.value_cache_stride_block = PAGE;
	fp8kv_group_scales_init(&c->s, FP8KV_GROUP_NVFP4, 16, 1, PD, PBS, FP8KV_LAYOUT_HND);
	c->s.k_global = c->s.v_global = &c->g;
	c->s.k_scales = c->arena + KS_AT, c->s.v_scales = c->arena + VS_AT;
	c->s.stride_block = PAGE;
	/* V: [slot / 4][group][slot % 4] */
	c->s.v_own_layout = 1;
	c->s.v_stride_block = PAGE, c->s.v_stride_head = 8, c->s.v_stride_slot = 8;
	c->s.v_stride_group = 4, c->s.v_interleave = 4, c->s.v_stride_interleave = 1;
}

START_TEST(vllm_nvfp4_page)
{
	page_call *c = malloc(sizeof *c);
	page_init(c);
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &c->d, &c->s, NULL), FP8KV_OK);
	uint8_t want[sizeof c->arena];
	memset(want, POISON, sizeof want);
	for (int t = 0; t < PT; t++) {
		const int64_t blk = c->slots[t] / PBS, off = c->slots[t] % PBS;
		for (int j = 0; j < 2; j++) {
			const int e = t + j;
			/* codes: +6 (7), then pairs (+1, -1.5): 0x2 and 0xB */
			for (int kv = 0; kv < 2; kv++) {
				uint8_t *row = want + blk * PAGE + (kv ? VC_AT : KC_AT) + off * PD / 2 + j * 8;
				row[0] = 0xB7;
				for (int b = 1; b < 8; b++)
					row[b] = 0xB2;
			}
			want[blk * PAGE + KS_AT + off * 2 + j] = (uint8_t)(0x38 + 8 * e);
			want[blk * PAGE + VS_AT + (off / 4) * 8 + j * 4 + off % 4] =
				(uint8_t)(0x38 + 8 * (e + 1));
		}
	}
	ck_assert(!memcmp(want, c->arena, sizeof want));

	/* a page one byte short: V scales of block 0 meet block 1's K codes */
	page_init(c);
	c->d.key_cache_stride_block = c->d.value_cache_stride_block = PAGE - 1;
	c->s.stride_block = c->s.v_stride_block = PAGE - 1;
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &c->d, &c->s, NULL), FP8KV_EINVAL);
	ck_assert_msg(strstr(fp8kv_last_error(), "key_cache") &&
			      strstr(fp8kv_last_error(), "groups->v_scales"),
		      "message: %s", fp8kv_last_error());
	/* K scales laid over the K codes of their own page */
	page_init(c);
	c->s.k_scales = c->arena + KC_AT + 60;
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &c->d, &c->s, NULL), FP8KV_EINVAL);
	ck_assert_msg(strstr(fp8kv_last_error(), "key_cache") &&
			      strstr(fp8kv_last_error(), "groups->k_scales"),
		      "message: %s", fp8kv_last_error());
	for (size_t i = 0; i < sizeof c->arena; i++)
		ck_assert_uint_eq(c->arena[i], POISON);
	free(c);
}
END_TEST

/* DeepSeek's record: latent codes, their scales and the raw RoPE part in
 * one entry; k_pe inside the cache is refused. */
START_TEST(ds_record_sides_share_entries)
{
	enum { N = 2, BS = 2, ENTRY = 656 };
	uint16_t *kv_c = calloc(N * 512, 2), *k_pe = calloc(N * 64, 2);
	uint8_t *cache = aligned_alloc(64, 2 * BS * ENTRY);
	int64_t slots[N] = {3, 0};
	memset(cache, POISON, 2 * BS * ENTRY);
	for (int i = 0; i < N * 512; i++)
		kv_c[i] = 0x43E0; /* 448: s = 1, code 0x7E */
	for (int i = 0; i < N * 64; i++)
		k_pe[i] = (uint16_t)(0x1100 + i);
	fp8kv_mla_write m;
	fp8kv_mla_write_init(&m, FP8KV_MLA_DS, N, 512, 64, 2, BS);
	m.kv_c = kv_c, m.k_pe = k_pe, m.cache = cache, m.slot_mapping = slots;
	ck_assert_int_eq(fp8kv_concat_and_cache_mla(cpu, &m, NULL), FP8KV_OK);
	for (int t = 0; t < N; t++) {
		const uint8_t *r = cache + slots[t] * ENTRY;
		for (int i = 0; i < 512; i++)
			ck_assert_uint_eq(r[i], 0x7E);
		for (int j = 0; j < 4; j++) /* 1.0f, little-endian */
			ck_assert(r[512 + 4 * j] == 0 && r[513 + 4 * j] == 0 &&
				  r[514 + 4 * j] == 0x80 && r[515 + 4 * j] == 0x3F);
		for (int i = 0; i < 64; i++)
			ck_assert(r[528 + 2 * i] == (uint8_t)(t * 64 + i) && r[529 + 2 * i] == 0x11);
	}
	for (int s = 1; s < 3; s++) /* slots 1 and 2 untouched */
		for (int i = 0; i < ENTRY; i++)
			ck_assert_uint_eq(cache[s * ENTRY + i], POISON);
	m.k_pe = (const uint16_t *)(cache + 2 * ENTRY + 528);
	ck_assert_int_eq(fp8kv_concat_and_cache_mla(cpu, &m, NULL), FP8KV_EINVAL);
	ck_assert_msg(strstr(fp8kv_last_error(), "cache") && strstr(fp8kv_last_error(), "k_pe"),
		      "message: %s", fp8kv_last_error());
	free(kv_c), free(k_pe), free(cache);
}
END_TEST

/* An older module (the faulty module's table without the new entries):
 * the library refuses the new writes for it, and nothing is written. */
START_TEST(module_without_the_new_writes)
{
	setenv("FP8KV_FAULT", "old_table", 1);
	fp8kv_backend *b = NULL;
	ck_assert_int_eq(fp8kv_backend_open("faulty", &b), FP8KV_OK);
	page_call *c = malloc(sizeof *c);
	page_init(c);
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(b, &c->d, &c->s, NULL), FP8KV_ENOTSUP);
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "not yet on this backend"));
	fp8kv_mla_write m;
	fp8kv_mla_write_init(&m, FP8KV_MLA_PLAIN, 1, 16, 16, 1, 4);
	m.kv_c = c->key, m.k_pe = c->value, m.cache = c->arena, m.slot_mapping = c->slots + 2;
	ck_assert_int_eq(fp8kv_concat_and_cache_mla(b, &m, NULL), FP8KV_ENOTSUP);
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "not yet on this backend"));
	for (size_t i = 0; i < sizeof c->arena; i++)
		ck_assert_uint_eq(c->arena[i], POISON);
	free(c);
	fp8kv_backend_close(b);
	unsetenv("FP8KV_FAULT");
}
END_TEST

void add_group_hardening_tests(Suite *s)
{
	TCase *tc = tcase_create("grouped_and_mla");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, vllm_nvfp4_page);
	tcase_add_test(tc, ds_record_sides_share_entries);
	tcase_add_test(tc, module_without_the_new_writes);
	suite_add_tcase(s, tc);
}
