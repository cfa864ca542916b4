/* SPDX-License-Identifier: MIT */
/*
 * test_errors_group.c - the bad inputs of fp8kv_reshape_and_cache_grouped
 * and fp8kv_concat_and_cache_mla (fp8kv.h sections 8 and 9): each returns
 * its code and a message naming the culprit, and leaves every output byte
 * as it was; and the size field of their descriptors (A-EXTENSIBLE-DESC),
 * held to hand-made structs: a smaller size gives the later fields their
 * defaults, a larger one is read only when its extra bytes are zero.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fp8kv.h"
#include "test_errors.h"

#define T 4
#define H 2
#define D 32
#define NB 3
#define BS 4
#define G 16
#define CACHE_BYTES (NB * BS * H * D)
#define SCALES (NB * BS * H * (D / G))
#define POISON 0xA5

static fp8kv_backend *cpu;
static uint16_t key[T * H * D], value[T * H * D];
static int64_t slots[T] = {5, 0, -1, 11};
/* every output in one arena: key cache, value cache, k and v scales (fp32
 * room), counters; then room for MLA records */
static _Alignas(64) uint8_t arena[2 * CACHE_BYTES + 2 * 4 * SCALES + 64 + NB * BS * 704];
#define KC (arena)
#define VC (arena + CACHE_BYTES)
#define KS (arena + 2 * CACHE_BYTES)
#define VS (arena + 2 * CACHE_BYTES + 4 * SCALES)
#define COUNTERS ((uint64_t *)(arena + 2 * CACHE_BYTES + 8 * SCALES))
#define MLA (arena + 2 * CACHE_BYTES + 8 * SCALES + 64)
static float globals[4] = {1.0f, 0.5f, 2.0f, 4.0f};

static void setup(void)
{
	ck_assert_int_eq(fp8kv_backend_open("cpu", &cpu), FP8KV_OK);
	for (int i = 0; i < T * H * D; i++) {
		key[i] = (uint16_t)(0x3F80 + i);
		value[i] = (uint16_t)(0xBF80 + i);
	}
	memset(arena, POISON, sizeof arena);
}

static void teardown(void)
{
	fp8kv_backend_close(cpu);
}

static int untouched(void)
{
	for (size_t i = 0; i < sizeof arena; i++)
		if (arena[i] != POISON)
			return 0;
	return 1;
}

/* A valid grouped write: bf16 -> e4m3fn, E8M0 rceil, groups of 16. */
static void valid_grouped(fp8kv_cache_write *d, fp8kv_group_scales *g)
{
	fp8kv_cache_write_init(d, T, H, D, D, NB, BS, FP8KV_LAYOUT_NHD);
	d->key = key;
	d->value = value;
	d->key_cache = KC;
	d->value_cache = VC;
	d->slot_mapping = slots;
	d->cache_dtype = FP8KV_E4M3FN;
	d->scale_mode = FP8KV_SCALE_GROUP;
	fp8kv_group_scales_init(g, FP8KV_GROUP_E8M0_RCEIL, G, H, D, BS, FP8KV_LAYOUT_NHD);
	g->k_scales = KS;
	g->v_scales = VS;
}

typedef struct bad_grouped {
	const char *what;
	void (*mutate)(fp8kv_cache_write *d, fp8kv_group_scales *g);
	fp8kv_status expect;
	const char *message_has;
} bad_grouped;

#define MUT(name, body) \
	static void name(fp8kv_cache_write *d, fp8kv_group_scales *g) { (void)d; (void)g; body; }

MUT(mode_one, d->scale_mode = FP8KV_SCALE_ONE)
MUT(mode_unknown, d->scale_mode = (fp8kv_scale_mode)9)
MUT(copy_cache, d->cache_dtype = FP8KV_BF16)
MUT(nonsat_e2m1, d->cache_dtype = FP8KV_E2M1; d->overflow = FP8KV_NONSATURATING;
    d->key_cache_stride_head = d->value_cache_stride_head = D / 2;
    d->key_cache_stride_slot = d->value_cache_stride_slot = H * D / 2;
    d->key_cache_stride_block = d->value_cache_stride_block = BS * H * D / 2)
MUT(nonsat_int8, d->cache_dtype = FP8KV_INT8; d->overflow = FP8KV_NONSATURATING;
    g->rule = FP8KV_GROUP_F32)
MUT(rule_unknown, g->rule = (fp8kv_group_rule)7)
MUT(nvfp4_on_fp8, g->rule = FP8KV_GROUP_NVFP4; g->k_global = globals; g->v_global = globals)
MUT(e8m0_on_int8, d->cache_dtype = FP8KV_INT8; g->rule = FP8KV_GROUP_E8M0_FLOOR)
MUT(group_zero, g->group_size = 0)
MUT(group_eight, g->group_size = 8)
MUT(group_not_dividing, g->group_size = 64)
MUT(group_row_unequal, d->head_dim_v = 16; g->group_size = 32)
MUT(nvfp4_group_32, d->cache_dtype = FP8KV_E2M1; g->rule = FP8KV_GROUP_NVFP4;
    g->group_size = 32; g->k_global = globals; g->v_global = globals)
MUT(rounding_unknown, g->rounding = (fp8kv_rounding)5)
MUT(rounding_on_fp8, g->rounding = FP8KV_ROUND_TOWARD_ZERO)
MUT(divisor_small, g->rule = FP8KV_GROUP_F32; g->divisor = 0.5f)
MUT(divisor_nan, g->rule = FP8KV_GROUP_F32; g->divisor = __builtin_nanf(""))
MUT(divisor_inf, g->rule = FP8KV_GROUP_F32; g->divisor = __builtin_inff())
MUT(divisor_negative, g->rule = FP8KV_GROUP_F32; g->divisor = -448.0f)
MUT(divisor_on_e8m0, g->divisor = 448.0f)
MUT(floor_above_one, g->rule = FP8KV_GROUP_F32; g->scale_floor = 2.0f)
MUT(floor_subnormal, g->rule = FP8KV_GROUP_F32; g->scale_floor = 0x1p-130f)
MUT(floor_negative, g->rule = FP8KV_GROUP_F32; g->scale_floor = -1e-6f)
MUT(floor_on_nvfp4, d->cache_dtype = FP8KV_E2M1; g->rule = FP8KV_GROUP_NVFP4;
    g->k_global = globals; g->v_global = globals; g->scale_floor = 1e-6f)
MUT(nvfp4_no_global, d->cache_dtype = FP8KV_E2M1; g->rule = FP8KV_GROUP_NVFP4;
    g->v_global = globals)
MUT(nvfp4_misaligned_global, d->cache_dtype = FP8KV_E2M1; g->rule = FP8KV_GROUP_NVFP4;
    g->k_global = globals; g->v_global = (const float *)((const uint8_t *)globals + 2))
MUT(no_k_scales, g->k_scales = NULL)
MUT(misaligned_fp32_scales, g->rule = FP8KV_GROUP_F32; g->v_scales = VS + 2)
MUT(interleave_negative, g->interleave = -4)
MUT(stride_interleave_alone, g->stride_interleave = 1)
MUT(v_own_layout_two, g->v_own_layout = 2)
MUT(v_strides_without_own, g->v_stride_group = 1)
MUT(v_interleave_alone, g->v_own_layout = 1; g->v_stride_group = 1; g->v_stride_head = 2;
    g->v_stride_slot = H * 2; g->v_stride_block = BS * H * 2; g->v_stride_interleave = 1)
MUT(scales_overlap_within, g->stride_group = 0)
MUT(scales_negative_stride, g->stride_head = -2)
MUT(scales_huge_stride, g->stride_block = INT64_MAX / 4)
MUT(e2m1_odd_row, d->cache_dtype = FP8KV_E2M1; d->head_dim_k = d->head_dim_v = 17;
    g->group_size = 17)
MUT(e2m1_rows_overlap, d->cache_dtype = FP8KV_E2M1; d->key_cache_stride_head = D / 2 - 1;
    d->value_cache_stride_head = D / 2; d->key_cache_stride_slot = d->value_cache_stride_slot = H * D / 2)
MUT(scales_are_one, g->v_scales = g->k_scales)
MUT(scales_in_key_cache, g->k_scales = KC + 8)
MUT(global_in_scales, d->cache_dtype = FP8KV_E2M1; g->rule = FP8KV_GROUP_NVFP4;
    g->k_global = (const float *)VS; g->v_global = globals)
MUT(counter_in_scales, d->overflow_count = (uint64_t *)(KS + 8))
MUT(no_key, d->key = NULL)
MUT(no_slots, d->slot_mapping = NULL)

static const bad_grouped bad_groups[] = {
	{"scale_mode ONE", mode_one, FP8KV_EINVAL, "scale_mode"},
	{"unknown scale_mode", mode_unknown, FP8KV_EINVAL, "scale_mode"},
	{"a copy cache", copy_cache, FP8KV_ENOTSUP, "cache_dtype"},
	{"nonsaturating e2m1", nonsat_e2m1, FP8KV_ENOTSUP, "NONSATURATING"},
	{"nonsaturating int8", nonsat_int8, FP8KV_ENOTSUP, "NONSATURATING"},
	{"unknown rule", rule_unknown, FP8KV_EINVAL, "groups->rule"},
	{"NVFP4 on e4m3fn", nvfp4_on_fp8, FP8KV_ENOTSUP, "groups->rule"},
	{"E8M0 on int8", e8m0_on_int8, FP8KV_ENOTSUP, "groups->rule"},
	{"group size 0", group_zero, FP8KV_EINVAL, "groups->group_size"},
	{"group size 8", group_eight, FP8KV_EINVAL, "groups->group_size"},
	{"group size past the row", group_not_dividing, FP8KV_EINVAL, "groups->group_size"},
	{"a whole row of unequal sides", group_row_unequal, FP8KV_EINVAL, "groups->group_size"},
	{"NVFP4 of 32", nvfp4_group_32, FP8KV_ENOTSUP, "groups->group_size"},
	{"unknown rounding", rounding_unknown, FP8KV_EINVAL, "groups->rounding"},
	{"truncation on FP8", rounding_on_fp8, FP8KV_ENOTSUP, "groups->rounding"},
	{"divisor 0.5", divisor_small, FP8KV_EINVAL, "groups->divisor"},
	{"divisor NaN", divisor_nan, FP8KV_EINVAL, "groups->divisor"},
	{"divisor Inf", divisor_inf, FP8KV_EINVAL, "groups->divisor"},
	{"divisor -448", divisor_negative, FP8KV_EINVAL, "groups->divisor"},
	{"divisor with E8M0", divisor_on_e8m0, FP8KV_EINVAL, "groups->divisor"},
	{"floor 2", floor_above_one, FP8KV_EINVAL, "groups->scale_floor"},
	{"floor subnormal", floor_subnormal, FP8KV_EINVAL, "groups->scale_floor"},
	{"floor negative", floor_negative, FP8KV_EINVAL, "groups->scale_floor"},
	{"floor with NVFP4", floor_on_nvfp4, FP8KV_EINVAL, "groups->scale_floor"},
	{"NVFP4 without k_global", nvfp4_no_global, FP8KV_EINVAL, "groups->k_global"},
	{"NVFP4 misaligned v_global", nvfp4_misaligned_global, FP8KV_EINVAL, "groups->v_global"},
	{"no k_scales", no_k_scales, FP8KV_EINVAL, "groups->k_scales"},
	{"misaligned fp32 scales", misaligned_fp32_scales, FP8KV_EINVAL, "groups->v_scales"},
	{"negative interleave", interleave_negative, FP8KV_EINVAL, "groups->interleave"},
	{"stride_interleave alone", stride_interleave_alone, FP8KV_EINVAL, "stride_interleave"},
	{"v_own_layout 2", v_own_layout_two, FP8KV_EINVAL, "groups->v_own_layout"},
	{"v strides without v_own_layout", v_strides_without_own, FP8KV_EINVAL, "v_own_layout"},
	{"v_stride_interleave alone", v_interleave_alone, FP8KV_EINVAL, "v_stride_interleave"},
	{"scales at one address", scales_overlap_within, FP8KV_EINVAL, "groups->k_scales"},
	{"negative scale stride", scales_negative_stride, FP8KV_EINVAL, "groups->k_scales"},
	{"scale extent past 64 bits", scales_huge_stride, FP8KV_EINVAL, "groups->k_scales"},
	{"odd e2m1 rows", e2m1_odd_row, FP8KV_EINVAL, "head_dim_k"},
	{"overlapping e2m1 rows", e2m1_rows_overlap, FP8KV_EINVAL, "key_cache"},
	{"k_scales is v_scales", scales_are_one, FP8KV_EINVAL, "groups->v_scales"},
	{"k_scales in key_cache", scales_in_key_cache, FP8KV_EINVAL, "groups->k_scales"},
	{"k_global in v_scales", global_in_scales, FP8KV_EINVAL, "groups->k_global"},
	{"overflow_count in k_scales", counter_in_scales, FP8KV_EINVAL, "overflow_count"},
	{"no key", no_key, FP8KV_EINVAL, "key"},
	{"no slot mapping", no_slots, FP8KV_EINVAL, "slot_mapping"},
};
#define NUM_BAD_GROUPS (int)(sizeof bad_groups / sizeof bad_groups[0])

START_TEST(valid_grouped_writes)
{
	fp8kv_cache_write d;
	fp8kv_group_scales g;
	valid_grouped(&d, &g);
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &d, &g, NULL), FP8KV_OK);
	ck_assert(!untouched());
}
END_TEST

START_TEST(each_bad_grouped_input_writes_nothing)
{
	const bad_grouped *b = &bad_groups[_i];
	fp8kv_cache_write d;
	fp8kv_group_scales g;
	valid_grouped(&d, &g);
	b->mutate(&d, &g);
	const fp8kv_status st = fp8kv_reshape_and_cache_grouped(cpu, &d, &g, NULL);
	ck_assert_msg(st == b->expect, "%s: status %d, want %d (%s)", b->what, st, b->expect,
		      fp8kv_last_error());
	ck_assert_msg(strstr(fp8kv_last_error(), b->message_has), "%s: message '%s' lacks '%s'",
		      b->what, fp8kv_last_error(), b->message_has);
	ck_assert_msg(untouched(), "%s: a rejected call wrote memory", b->what);
}
END_TEST

START_TEST(null_arguments)
{
	fp8kv_cache_write d;
	fp8kv_group_scales g;
	fp8kv_mla_write m;
	valid_grouped(&d, &g);
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(NULL, &d, &g, NULL), FP8KV_EINVAL);
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "backend"));
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, NULL, &g, NULL), FP8KV_EINVAL);
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "desc"));
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &d, NULL, NULL), FP8KV_EINVAL);
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "groups"));
	ck_assert_int_eq(fp8kv_concat_and_cache_mla(cpu, NULL, NULL), FP8KV_EINVAL);
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "desc"));
	fp8kv_mla_write_init(&m, FP8KV_MLA_PLAIN, 0, 8, 8, 1, 1);
	ck_assert_int_eq(fp8kv_concat_and_cache_mla(NULL, &m, NULL), FP8KV_EINVAL);
	fp8kv_group_scales_init(NULL, FP8KV_GROUP_F32, 16, 1, 16, 1, FP8KV_LAYOUT_NHD);
	fp8kv_mla_write_init(NULL, FP8KV_MLA_DS, 1, 512, 64, 1, 1); /* no crash */
	ck_assert(untouched());
}
END_TEST

/* ---- the size field ---- */

/* An fp8kv_group_scales inside a larger buffer, as a newer header's. */
typedef struct {
	fp8kv_group_scales g;
	uint8_t more[64];
} bigger_groups;

START_TEST(group_scales_size)
{
	fp8kv_cache_write d;
	bigger_groups big;
	memset(&big, 0, sizeof big);
	valid_grouped(&d, &big.g);
	const uint32_t full = big.g.size;
	ck_assert_uint_eq(full, sizeof(fp8kv_group_scales));

	static const uint32_t bad_sizes[] = {0, 3, 7, 4096 + 1, 0xA5A5A5A5u,
					     (uint32_t)offsetof(fp8kv_group_scales, group_size) + 4};
	for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
		big.g.size = bad_sizes[i];
		ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &d, &big.g, NULL), FP8KV_EINVAL);
		ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "groups->size"));
		ck_assert(untouched());
	}
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "inside field group_size"));

	/* a newer header's struct: a nonzero byte past ours is refused, named
	 * by its offset; zeros there are read as this library's struct */
	big.g.size = full + 16;
	big.more[5] = 1;
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &d, &big.g, NULL), FP8KV_ENOTSUP);
	char want[64];
	snprintf(want, sizeof want, "byte %u is not zero", full + 5);
	ck_assert_msg(strstr(fp8kv_last_error(), want), "message '%s'", fp8kv_last_error());
	ck_assert(untouched());
	big.more[5] = 0;
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &d, &big.g, NULL), FP8KV_OK);
	uint8_t newer[sizeof arena];
	memcpy(newer, arena, sizeof arena);

	/* an older header's struct: the fields past its size take their
	 * defaults, whatever the caller's memory holds there */
	memset(arena, POISON, sizeof arena);
	big.g.size = (uint32_t)offsetof(fp8kv_group_scales, interleave);
	big.g.interleave = 4; /* past the size: not read */
	big.g.stride_interleave = 99;
	big.g.v_own_layout = 77;
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &d, &big.g, NULL), FP8KV_OK);
	ck_assert(!memcmp(newer, arena, sizeof arena));
	/* read in full, the same fields are refused */
	memset(arena, POISON, sizeof arena);
	big.g.size = full;
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &d, &big.g, NULL), FP8KV_EINVAL);
	ck_assert(untouched());
}
END_TEST

/* ---- MLA ---- */

static uint16_t kv_c[T * 512], k_pe[T * 64];

static void valid_mla(fp8kv_mla_write *m, fp8kv_mla_kind kind)
{
	fp8kv_mla_write_init(m, kind, T, kind == FP8KV_MLA_DS ? 512 : 48,
			     kind == FP8KV_MLA_DS ? 64 : 16, NB, BS);
	for (int i = 0; i < T * 512; i++)
		kv_c[i] = (uint16_t)(0x3F80 + i % 64);
	m->kv_c = kv_c;
	m->k_pe = k_pe;
	m->cache = MLA;
	m->slot_mapping = slots;
}

typedef struct bad_mla {
	const char *what;
	fp8kv_mla_kind kind;
	void (*mutate)(fp8kv_mla_write *m);
	fp8kv_status expect;
	const char *message_has;
} bad_mla;

#define MMUT(name, body) static void name(fp8kv_mla_write *m) { body; }

MMUT(m_kind, m->kind = (fp8kv_mla_kind)5)
MMUT(m_input_fp8, m->input_dtype = FP8KV_E4M3FN)
MMUT(m_cache_e2m1, m->cache_dtype = FP8KV_E2M1)
MMUT(m_cache_other_wide, m->cache_dtype = FP8KV_F16)
MMUT(m_mode_head, m->scale_mode = FP8KV_SCALE_HEAD)
MMUT(m_mode_unknown, m->scale_mode = (fp8kv_scale_mode)11)
MMUT(m_tensor_without_scale, m->scale_mode = FP8KV_SCALE_TENSOR)
MMUT(m_tensor_on_copy, m->cache_dtype = FP8KV_BF16; m->scale_mode = FP8KV_SCALE_TENSOR;
     m->scale = globals)
MMUT(m_plain_divisor, m->divisor = 224.0f)
MMUT(m_overflow, m->overflow = (fp8kv_overflow)4)
MMUT(m_slot_type, m->slot_type = (fp8kv_index_type)3)
MMUT(m_tokens, m->num_tokens = -1)
MMUT(m_rank, m->kv_lora_rank = 0)
MMUT(m_pe, m->pe_dim = 0)
MMUT(m_blocks, m->num_blocks = 0)
MMUT(m_block_size, m->block_size = -2)
MMUT(m_no_kv_c, m->kv_c = NULL)
MMUT(m_no_cache, m->cache = NULL)
MMUT(m_misaligned_k_pe, m->k_pe = (const uint8_t *)k_pe + 1)
MMUT(m_negative_stride, m->kv_c_stride_token = -48)
MMUT(m_entries_overlap, m->stride_slot = 63)
MMUT(m_kv_c_in_cache, m->kv_c = MLA + 2 * 64)
MMUT(m_counter_in_cache, m->nan_count = (uint64_t *)(MLA + 64))
MMUT(m_swa_without_length, m->swa_mapping = slots)
MMUT(m_ds_f32, m->input_dtype = FP8KV_F32)
MMUT(m_ds_e5m2, m->cache_dtype = FP8KV_E5M2)
MMUT(m_ds_rank, m->kv_lora_rank = 256)
MMUT(m_ds_tensor, m->scale_mode = FP8KV_SCALE_TENSOR; m->scale = globals)
MMUT(m_ds_divisor_small, m->divisor = 0.5f)
MMUT(m_ds_divisor_nan, m->divisor = __builtin_nanf(""))
MMUT(m_ds_divisor_negative, m->divisor = -224.0f)
MMUT(m_ds_stride_odd, m->stride_slot = 658; m->stride_block = BS * 658)
MMUT(m_ds_stride_short, m->stride_slot = 652; m->stride_block = BS * 656)
MMUT(m_ds_block_odd, m->stride_block = BS * 656 + 2)
MMUT(m_ds_misaligned, m->cache = MLA + 2)

static const bad_mla bad_mlas[] = {
	{"unknown kind", FP8KV_MLA_PLAIN, m_kind, FP8KV_EINVAL, "kind"},
	{"FP8 input", FP8KV_MLA_PLAIN, m_input_fp8, FP8KV_ENOTSUP, "input_dtype"},
	{"e2m1 cache", FP8KV_MLA_PLAIN, m_cache_e2m1, FP8KV_ENOTSUP, "cache_dtype"},
	{"another 16-bit cache", FP8KV_MLA_PLAIN, m_cache_other_wide, FP8KV_ENOTSUP, "cache_dtype"},
	{"HEAD scales", FP8KV_MLA_PLAIN, m_mode_head, FP8KV_ENOTSUP, "scale_mode"},
	{"unknown scale mode", FP8KV_MLA_PLAIN, m_mode_unknown, FP8KV_EINVAL, "scale_mode"},
	{"TENSOR without scale", FP8KV_MLA_PLAIN, m_tensor_without_scale, FP8KV_EINVAL, "scale"},
	{"TENSOR on a copy", FP8KV_MLA_PLAIN, m_tensor_on_copy, FP8KV_ENOTSUP, "scale_mode"},
	{"a divisor on PLAIN", FP8KV_MLA_PLAIN, m_plain_divisor, FP8KV_EINVAL, "divisor"},
	{"unknown overflow", FP8KV_MLA_PLAIN, m_overflow, FP8KV_EINVAL, "overflow"},
	{"unknown slot type", FP8KV_MLA_PLAIN, m_slot_type, FP8KV_EINVAL, "slot_type"},
	{"negative tokens", FP8KV_MLA_PLAIN, m_tokens, FP8KV_EINVAL, "num_tokens"},
	{"rank 0", FP8KV_MLA_PLAIN, m_rank, FP8KV_EINVAL, "kv_lora_rank"},
	{"pe 0", FP8KV_MLA_PLAIN, m_pe, FP8KV_EINVAL, "pe_dim"},
	{"no blocks", FP8KV_MLA_PLAIN, m_blocks, FP8KV_EINVAL, "num_blocks"},
	{"negative block size", FP8KV_MLA_PLAIN, m_block_size, FP8KV_EINVAL, "block_size"},
	{"no kv_c", FP8KV_MLA_PLAIN, m_no_kv_c, FP8KV_EINVAL, "kv_c"},
	{"no cache", FP8KV_MLA_PLAIN, m_no_cache, FP8KV_EINVAL, "cache"},
	{"misaligned k_pe", FP8KV_MLA_PLAIN, m_misaligned_k_pe, FP8KV_EINVAL, "k_pe"},
	{"negative kv_c stride", FP8KV_MLA_PLAIN, m_negative_stride, FP8KV_EINVAL, "kv_c"},
	{"overlapping entries", FP8KV_MLA_PLAIN, m_entries_overlap, FP8KV_EINVAL, "cache"},
	{"kv_c in the cache", FP8KV_MLA_PLAIN, m_kv_c_in_cache, FP8KV_EINVAL, "kv_c"},
	{"nan_count in the cache", FP8KV_MLA_PLAIN, m_counter_in_cache, FP8KV_EINVAL, "nan_count"},
	{"swa_mapping without length", FP8KV_MLA_PLAIN, m_swa_without_length, FP8KV_EINVAL,
	 "swa_mapping_len"},
	{"DS of f32", FP8KV_MLA_DS, m_ds_f32, FP8KV_ENOTSUP, "input_dtype"},
	{"DS of e5m2", FP8KV_MLA_DS, m_ds_e5m2, FP8KV_ENOTSUP, "cache_dtype"},
	{"DS of rank 256", FP8KV_MLA_DS, m_ds_rank, FP8KV_ENOTSUP, "kv_lora_rank"},
	{"DS with a tensor scale", FP8KV_MLA_DS, m_ds_tensor, FP8KV_ENOTSUP, "scale_mode"},
	{"DS divisor 0.5", FP8KV_MLA_DS, m_ds_divisor_small, FP8KV_EINVAL, "divisor"},
	{"DS divisor NaN", FP8KV_MLA_DS, m_ds_divisor_nan, FP8KV_EINVAL, "divisor"},
	{"DS divisor -224", FP8KV_MLA_DS, m_ds_divisor_negative, FP8KV_EINVAL, "divisor"},
	{"DS slot stride 658", FP8KV_MLA_DS, m_ds_stride_odd, FP8KV_EINVAL, "stride_slot"},
	{"DS slot stride 652", FP8KV_MLA_DS, m_ds_stride_short, FP8KV_EINVAL, "cache"},
	{"DS block stride not of 4", FP8KV_MLA_DS, m_ds_block_odd, FP8KV_EINVAL, "stride_block"},
	{"DS cache misaligned", FP8KV_MLA_DS, m_ds_misaligned, FP8KV_EINVAL, "cache"},
};
#define NUM_BAD_MLA (int)(sizeof bad_mlas / sizeof bad_mlas[0])

START_TEST(valid_mla_writes)
{
	for (int k = 0; k < 2; k++) {
		fp8kv_mla_write m;
		valid_mla(&m, (fp8kv_mla_kind)k);
		memset(arena, POISON, sizeof arena);
		ck_assert_int_eq(fp8kv_concat_and_cache_mla(cpu, &m, NULL), FP8KV_OK);
		ck_assert(!untouched());
	}
}
END_TEST

START_TEST(each_bad_mla_input_writes_nothing)
{
	const bad_mla *b = &bad_mlas[_i];
	fp8kv_mla_write m;
	valid_mla(&m, b->kind);
	b->mutate(&m);
	const fp8kv_status st = fp8kv_concat_and_cache_mla(cpu, &m, NULL);
	ck_assert_msg(st == b->expect, "%s: status %d, want %d (%s)", b->what, st, b->expect,
		      fp8kv_last_error());
	ck_assert_msg(strstr(fp8kv_last_error(), b->message_has), "%s: message '%s' lacks '%s'",
		      b->what, fp8kv_last_error(), b->message_has);
	ck_assert_msg(untouched(), "%s: a rejected call wrote memory", b->what);
}
END_TEST

typedef struct {
	fp8kv_mla_write m;
	uint8_t more[32];
} bigger_mla;

START_TEST(mla_write_size)
{
	bigger_mla big;
	memset(&big, 0, sizeof big);
	valid_mla(&big.m, FP8KV_MLA_DS);
	const uint32_t full = big.m.size;
	ck_assert_uint_eq(full, sizeof(fp8kv_mla_write));
	big.m.size = 0;
	ck_assert_int_eq(fp8kv_concat_and_cache_mla(cpu, &big.m, NULL), FP8KV_EINVAL);
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "fp8kv_mla_write_init"));
	big.m.size = (uint32_t)offsetof(fp8kv_mla_write, num_tokens) + 3;
	ck_assert_int_eq(fp8kv_concat_and_cache_mla(cpu, &big.m, NULL), FP8KV_EINVAL);
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "inside field num_tokens"));
	big.m.size = full + 8;
	big.more[0] = 0x10;
	ck_assert_int_eq(fp8kv_concat_and_cache_mla(cpu, &big.m, NULL), FP8KV_ENOTSUP);
	char want[48];
	snprintf(want, sizeof want, "byte %u is not zero", full);
	ck_assert_msg(strstr(fp8kv_last_error(), want), "message '%s'", fp8kv_last_error());
	ck_assert(untouched());
	big.more[0] = 0;
	ck_assert_int_eq(fp8kv_concat_and_cache_mla(cpu, &big.m, NULL), FP8KV_OK);
	/* an older header without the counters: they are NULL, whatever the
	 * caller's memory holds past its size */
	uint8_t written[sizeof arena];
	memcpy(written, arena, sizeof arena);
	memset(arena, POISON, sizeof arena);
	big.m.size = (uint32_t)offsetof(fp8kv_mla_write, overflow_count);
	big.m.overflow_count = (uint64_t *)(MLA + 8); /* inside the cache: never read */
	ck_assert_int_eq(fp8kv_concat_and_cache_mla(cpu, &big.m, NULL), FP8KV_OK);
	ck_assert(!memcmp(written, arena, sizeof arena));
}
END_TEST

void add_group_error_tests(Suite *s)
{
	TCase *tc = tcase_create("grouped_and_mla");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, valid_grouped_writes);
	tcase_add_loop_test(tc, each_bad_grouped_input_writes_nothing, 0, NUM_BAD_GROUPS);
	tcase_add_test(tc, null_arguments);
	tcase_add_test(tc, group_scales_size);
	tcase_add_test(tc, valid_mla_writes);
	tcase_add_loop_test(tc, each_bad_mla_input_writes_nothing, 0, NUM_BAD_MLA);
	tcase_add_test(tc, mla_write_size);
	suite_add_tcase(s, tc);
}
