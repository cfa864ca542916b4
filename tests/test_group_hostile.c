/* SPDX-License-Identifier: MIT */
/*
 * test_group_hostile.c - hostile descriptors thrown at
 * fp8kv_reshape_and_cache_grouped on the CPU backend (fp8kv.h section 8),
 * every output in guarded memory (guarded.h: it ends at a PROT_NONE page,
 * so a write past it kills the test; its pages are poisoned, so a write
 * before it shows) and every input read-only.  Each rejected call must
 * return its status, name the argument, and leave every output byte as it
 * was.  test_errors_group.c holds the first list of bad inputs; this one
 * adds the edges (sizes of the descriptor, extreme strides and
 * interleaves, group sizes past 32 bits, scale arrays over every other
 * argument), the slot edges, and NVFP4 global scales worked by hand.
 * Expected bytes are worked out here, never taken from the library.
 */
#include "config.h"

#include <check.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check_support.h"
#include "fp8kv.h"
#include "guarded.h"

enum { T = 4, H = 2, D = 32, NB = 3, BS = 4, G = 16, GR = D / G };
#define CACHE_BYTES (NB * BS * H * D)
#define SCALE_COUNT (NB * BS * H * GR)

/* One call's buffers: outputs guarded and poisoned, inputs read-only. */
static struct {
	uint16_t *key, *value;
	int64_t *slots;
	float *globals; /* k_global, v_global */
	uint8_t *kc, *vc, *ks, *vs;
	uint64_t *ovf, *nan;
	float *kamax, *vamax;
	fp8kv_cache_write d;
	fp8kv_group_scales g;
} F;

static void *outputs[8];

/* A valid write: bf16 -> e4m3fn, E8M0 rceil, groups of 16, NHD, every
 * optional output set. */
static void fx_init(void)
{
	guarded_free_all();
	F.key = guarded_alloc(T * H * D * 2);
	F.value = guarded_alloc(T * H * D * 2);
	F.slots = guarded_alloc(T * 8);
	F.globals = guarded_alloc(8);
	for (int i = 0; i < T * H * D; i++) {
		F.key[i] = (uint16_t)(0x3F80 + i % 64);
		F.value[i] = (uint16_t)(0xBF80 + i % 64);
	}
	static const int64_t s[T] = {5, 0, -1, 11};
	memcpy(F.slots, s, sizeof s);
	F.globals[0] = 1.0f, F.globals[1] = 0.5f;
	guarded_protect(F.key, 1), guarded_protect(F.value, 1);
	guarded_protect(F.slots, 1), guarded_protect(F.globals, 1);
	outputs[0] = F.kc = guarded_alloc(CACHE_BYTES);
	outputs[1] = F.vc = guarded_alloc(CACHE_BYTES);
	outputs[2] = F.ks = guarded_alloc(SCALE_COUNT * 4);
	outputs[3] = F.vs = guarded_alloc(SCALE_COUNT * 4);
	outputs[4] = F.ovf = guarded_alloc(8);
	outputs[5] = F.nan = guarded_alloc(8);
	outputs[6] = F.kamax = guarded_alloc(H * 4);
	outputs[7] = F.vamax = guarded_alloc(H * 4);

	fp8kv_cache_write *d = &F.d;
	fp8kv_cache_write_init(d, T, H, D, D, NB, BS, FP8KV_LAYOUT_NHD);
	d->key = F.key, d->value = F.value, d->slot_mapping = F.slots;
	d->key_cache = F.kc, d->value_cache = F.vc;
	d->cache_dtype = FP8KV_E4M3FN, d->scale_mode = FP8KV_SCALE_GROUP;
	d->overflow_count = F.ovf, d->nan_count = F.nan, d->k_amax = F.kamax, d->v_amax = F.vamax;
	fp8kv_group_scales_init(&F.g, FP8KV_GROUP_E8M0_RCEIL, G, H, D, BS, FP8KV_LAYOUT_NHD);
	F.g.k_scales = F.ks, F.g.v_scales = F.vs;
}

static int outputs_untouched(void)
{
	for (int i = 0; i < 8; i++)
		if (!guarded_untouched(outputs[i]))
			return 0;
	return 1;
}

/* The call is refused with status, its message names a (and b), and
 * nothing is written. */
static void expect_refused(const char *what, fp8kv_status status, const char *a, const char *b)
{
	const fp8kv_status st = fp8kv_reshape_and_cache_grouped(cpu, &F.d, &F.g, NULL);
	const char *msg = fp8kv_last_error();
	ck_assert_msg(st == status, "%s: status %d, want %d ('%s')", what, st, status, msg);
	ck_assert_msg(strstr(msg, a) && (!b || strstr(msg, b)), "%s: message '%s' should name %s%s%s",
		      what, msg, a, b ? " and " : "", b ? b : "");
	ck_assert_msg(outputs_untouched(), "%s: a refused call wrote memory", what);
}

/* ---- the table ---- */

typedef struct hostile {
	const char *what;
	void (*mutate)(fp8kv_cache_write *d, fp8kv_group_scales *g);
	fp8kv_status expect;
	const char *names, *names_too;
} hostile;

#define MUT(name, body) \
	static void name(fp8kv_cache_write *d, fp8kv_group_scales *g) { (void)d; (void)g; body; }

/* e2m1 caches: rows of D / 2 bytes */
#define E2M1_CACHE(d)                                                                     \
	(d->cache_dtype = FP8KV_E2M1, d->key_cache_stride_head = d->value_cache_stride_head = D / 2, \
	 d->key_cache_stride_slot = d->value_cache_stride_slot = H * D / 2,                   \
	 d->key_cache_stride_block = d->value_cache_stride_block = BS * H * D / 2)
#define NVFP4(d, g) (E2M1_CACHE(d), g->rule = FP8KV_GROUP_NVFP4, g->k_global = F.globals, \
		     g->v_global = F.globals + 1)

MUT(g_minus16, g->group_size = -16)
MUT(g_int64_min, g->group_size = INT64_MIN)
MUT(g_256, g->group_size = 256)
MUT(g_48_unequal, d->head_dim_k = 48; d->key_stride_head = 48; d->key_stride_token = H * 48;
    d->key_cache_stride_head = 48; d->key_cache_stride_slot = H * 48;
    d->key_cache_stride_block = BS * H * 48; g->group_size = 48)
MUT(g_8_of_32, g->group_size = 8)
MUT(g_row_of_odd_e2m1, E2M1_CACHE(d); d->head_dim_k = d->head_dim_v = 31; g->group_size = 31)
MUT(rule_minus1, g->rule = (fp8kv_group_rule)-1)
MUT(rule_nvfp4_int8, d->cache_dtype = FP8KV_INT8; g->rule = FP8KV_GROUP_NVFP4;
    g->k_global = F.globals; g->v_global = F.globals + 1)
MUT(rule_rceil_int8, d->cache_dtype = FP8KV_INT8)
MUT(rule_f32_on_f32_cache, d->cache_dtype = FP8KV_F32; g->rule = FP8KV_GROUP_F32)
MUT(cache_dtype_99, d->cache_dtype = (fp8kv_dtype)99)
MUT(input_fp8, d->input_dtype = FP8KV_E5M2)
MUT(mode_token_head, d->scale_mode = FP8KV_SCALE_TOKEN_HEAD)
MUT(rounding_e2m1, E2M1_CACHE(d); g->rounding = FP8KV_ROUND_TOWARD_ZERO)
MUT(rounding_minus1, d->cache_dtype = FP8KV_INT8; g->rule = FP8KV_GROUP_F32;
    g->rounding = (fp8kv_rounding)-1)
MUT(divisor_minus1, g->rule = FP8KV_GROUP_F32; g->divisor = -1.0f)
MUT(divisor_subnormal, g->rule = FP8KV_GROUP_F32; g->divisor = 0x1p-149f)
MUT(divisor_minus_inf, g->rule = FP8KV_GROUP_F32; g->divisor = -__builtin_inff())
MUT(divisor_nan_on_rceil, g->divisor = __builtin_nanf(""))
MUT(floor_nan, g->rule = FP8KV_GROUP_F32; g->scale_floor = __builtin_nanf(""))
MUT(floor_inf, g->rule = FP8KV_GROUP_F32; g->scale_floor = __builtin_inff())
MUT(floor_min_subnormal, g->rule = FP8KV_GROUP_F32; g->scale_floor = 0x1p-149f)
MUT(floor_just_above_one, g->rule = FP8KV_GROUP_F32; g->scale_floor = 1.0000001f)
MUT(floor_on_rceil, g->scale_floor = 1e-6f)
MUT(nvfp4_no_v_global, NVFP4(d, g); g->v_global = NULL)
MUT(nvfp4_divisor, NVFP4(d, g); g->divisor = 6.0f)
MUT(nvfp4_rounding, NVFP4(d, g); g->rounding = FP8KV_ROUND_TOWARD_ZERO)
MUT(no_v_scales, g->v_scales = NULL)
MUT(misaligned_f32_k_scales, g->rule = FP8KV_GROUP_F32; g->k_scales = F.ks + 1)
MUT(stride_group_negative, g->stride_group = -1)
MUT(stride_block_max, g->stride_block = INT64_MAX)
MUT(stride_block_bytes_overflow, g->stride_block = INT64_MAX / 8) /* elements fit, bytes not */
MUT(stride_slot_zero, g->stride_slot = 0)
MUT(stride_head_is_group, g->stride_head = 1)
MUT(v_stride_head_negative, g->v_own_layout = 1; g->v_stride_block = BS * H * GR;
    g->v_stride_slot = H * GR; g->v_stride_head = -GR; g->v_stride_group = 1)
MUT(v_own_layout_zero_strides, g->v_own_layout = 1)
MUT(v_own_layout_minus1, g->v_own_layout = -1)
MUT(v_interleave_negative, g->v_own_layout = 1; g->v_stride_block = BS * H * GR;
    g->v_stride_slot = H * GR; g->v_stride_head = GR; g->v_stride_group = 1; g->v_interleave = -1)
MUT(v_strides_without_own, g->v_interleave = 4)
MUT(interleave_no_stride, g->interleave = 4)
MUT(interleave_slot_too_small, g->interleave = 2; g->stride_interleave = H * GR;
    g->stride_slot = H * GR; g->stride_block = BS * H * GR)
MUT(interleave_min, g->interleave = INT64_MIN; g->stride_interleave = 1)
MUT(scales_on_key, g->k_scales = (void *)F.key)
MUT(scales_on_value, g->v_scales = (void *)F.value)
MUT(scales_on_slots, g->k_scales = (void *)F.slots)
MUT(scales_on_globals, NVFP4(d, g); g->v_scales = (void *)F.globals)
MUT(scales_in_value_cache_tail, g->v_scales = F.vc + CACHE_BYTES - 8)
MUT(scales_on_k_amax, g->k_scales = F.kamax)
MUT(scales_on_nan_count, g->v_scales = F.nan)
MUT(scales_each_other_shifted, g->rule = FP8KV_GROUP_F32; g->v_scales = F.ks + 4 * (SCALE_COUNT - 1))
MUT(e8m0_scales_each_other_one_byte, g->v_scales = F.ks + SCALE_COUNT - 1)
MUT(global_in_key_cache, NVFP4(d, g); g->k_global = (const float *)F.kc)
MUT(global_in_k_scales, NVFP4(d, g); g->v_global = (const float *)(F.ks + 4))
MUT(global_is_overflow_count, NVFP4(d, g); g->k_global = (const float *)F.ovf)
MUT(counters_one, d->nan_count = d->overflow_count)
MUT(amax_in_cache, d->v_amax = (float *)(F.kc + 16))
MUT(key_cache_null, d->key_cache = NULL)
MUT(tokens_negative, d->num_tokens = -1)
MUT(heads_zero, d->num_heads = 0)
MUT(slot_type_7, d->slot_type = (fp8kv_index_type)7)
MUT(swa_len_zero, d->swa_mapping = F.slots; d->swa_mapping_len = 0)
MUT(swa_len_negative, d->swa_mapping = F.slots; d->swa_mapping_len = -5)
MUT(swa_type_bogus, d->swa_mapping = F.slots; d->swa_mapping_len = 4;
    d->swa_type = (fp8kv_index_type)-1)
MUT(swa_len_bytes_overflow, d->swa_mapping = F.slots; d->swa_mapping_len = INT64_MAX / 4 + 1)
MUT(swa_misaligned, d->swa_mapping = (const uint8_t *)F.slots + 4; d->swa_mapping_len = 2)
MUT(slots_misaligned, d->slot_mapping = (const uint8_t *)F.slots + 2)
MUT(overflow_policy_bogus, d->overflow = (fp8kv_overflow)2)

static const hostile table[] = {
	{"group_size -16", g_minus16, FP8KV_EINVAL, "groups->group_size", NULL},
	{"group_size INT64_MIN", g_int64_min, FP8KV_EINVAL, "groups->group_size", NULL},
	{"group_size 256 on rows of 32", g_256, FP8KV_EINVAL, "groups->group_size", NULL},
	{"group_size 48 = head_dim_k only", g_48_unequal, FP8KV_EINVAL, "groups->group_size", NULL},
	{"group_size 8 on rows of 32", g_8_of_32, FP8KV_EINVAL, "groups->group_size", NULL},
	{"odd e2m1 whole rows", g_row_of_odd_e2m1, FP8KV_EINVAL, "head_dim_k", NULL},
	{"rule -1", rule_minus1, FP8KV_EINVAL, "groups->rule", NULL},
	{"NVFP4 on int8", rule_nvfp4_int8, FP8KV_ENOTSUP, "groups->rule", "int8"},
	{"RCEIL on int8", rule_rceil_int8, FP8KV_ENOTSUP, "groups->rule", "int8"},
	{"F32 groups on an f32 cache", rule_f32_on_f32_cache, FP8KV_ENOTSUP, "cache_dtype", NULL},
	{"cache_dtype 99", cache_dtype_99, FP8KV_EINVAL, "cache_dtype", NULL},
	{"e5m2 input", input_fp8, FP8KV_ENOTSUP, "input_dtype", NULL},
	{"TOKEN_HEAD mode", mode_token_head, FP8KV_EINVAL, "scale_mode", NULL},
	{"truncation on e2m1", rounding_e2m1, FP8KV_ENOTSUP, "groups->rounding", NULL},
	{"rounding -1", rounding_minus1, FP8KV_EINVAL, "groups->rounding", NULL},
	{"divisor -1", divisor_minus1, FP8KV_EINVAL, "groups->divisor", NULL},
	{"divisor 2^-149", divisor_subnormal, FP8KV_EINVAL, "groups->divisor", NULL},
	{"divisor -Inf", divisor_minus_inf, FP8KV_EINVAL, "groups->divisor", NULL},
	{"divisor NaN on E8M0", divisor_nan_on_rceil, FP8KV_EINVAL, "groups->divisor", NULL},
	{"floor NaN", floor_nan, FP8KV_EINVAL, "groups->scale_floor", NULL},
	{"floor Inf", floor_inf, FP8KV_EINVAL, "groups->scale_floor", NULL},
	{"floor 2^-149", floor_min_subnormal, FP8KV_EINVAL, "groups->scale_floor", NULL},
	{"floor 1 + ulp", floor_just_above_one, FP8KV_EINVAL, "groups->scale_floor", NULL},
	{"floor on E8M0", floor_on_rceil, FP8KV_EINVAL, "groups->scale_floor", NULL},
	{"NVFP4 without v_global", nvfp4_no_v_global, FP8KV_EINVAL, "groups->v_global", NULL},
	{"NVFP4 with a divisor", nvfp4_divisor, FP8KV_EINVAL, "groups->divisor", NULL},
	{"NVFP4 truncating", nvfp4_rounding, FP8KV_ENOTSUP, "groups->rounding", NULL},
	{"no v_scales", no_v_scales, FP8KV_EINVAL, "groups->v_scales", NULL},
	{"fp32 k_scales off by a byte", misaligned_f32_k_scales, FP8KV_EINVAL, "groups->k_scales",
	 NULL},
	{"stride_group -1", stride_group_negative, FP8KV_EINVAL, "groups->k_scales", NULL},
	{"stride_block INT64_MAX", stride_block_max, FP8KV_EINVAL, "groups->k_scales", NULL},
	{"stride_block past 64-bit bytes", stride_block_bytes_overflow, FP8KV_EINVAL,
	 "groups->k_scales", NULL},
	{"stride_slot 0", stride_slot_zero, FP8KV_EINVAL, "groups->k_scales", NULL},
	{"stride_head = stride_group", stride_head_is_group, FP8KV_EINVAL, "groups->k_scales", NULL},
	{"v_stride_head negative", v_stride_head_negative, FP8KV_EINVAL, "groups->v_scales", NULL},
	{"v_own_layout with no strides", v_own_layout_zero_strides, FP8KV_EINVAL, "groups->v_scales",
	 NULL},
	{"v_own_layout -1", v_own_layout_minus1, FP8KV_EINVAL, "groups->v_own_layout", NULL},
	{"v_interleave -1", v_interleave_negative, FP8KV_EINVAL, "groups->v_interleave", NULL},
	{"v_interleave without v_own_layout", v_strides_without_own, FP8KV_EINVAL, "v_own_layout",
	 NULL},
	{"interleave without its stride", interleave_no_stride, FP8KV_EINVAL, "groups->k_scales",
	 NULL},
	{"interleave within a too small slot stride", interleave_slot_too_small, FP8KV_EINVAL,
	 "groups->k_scales", NULL},
	{"interleave INT64_MIN", interleave_min, FP8KV_EINVAL, "groups->interleave", NULL},
	{"k_scales on key", scales_on_key, FP8KV_EINVAL, "groups->k_scales", "key"},
	{"v_scales on value", scales_on_value, FP8KV_EINVAL, "groups->v_scales", "value"},
	{"k_scales on slot_mapping", scales_on_slots, FP8KV_EINVAL, "groups->k_scales",
	 "slot_mapping"},
	{"v_scales on k_global", scales_on_globals, FP8KV_EINVAL, "groups->v_scales",
	 "groups->k_global"},
	{"v_scales over value_cache's tail", scales_in_value_cache_tail, FP8KV_EINVAL,
	 "groups->v_scales", "value_cache"},
	{"k_scales on k_amax", scales_on_k_amax, FP8KV_EINVAL, "groups->k_scales", "k_amax"},
	{"v_scales on nan_count", scales_on_nan_count, FP8KV_EINVAL, "groups->v_scales",
	 "nan_count"},
	{"v_scales on k_scales' last fp32", scales_each_other_shifted, FP8KV_EINVAL,
	 "groups->k_scales", "groups->v_scales"},
	{"v_scales on k_scales' last E8M0 byte", e8m0_scales_each_other_one_byte, FP8KV_EINVAL,
	 "groups->k_scales", "groups->v_scales"},
	{"k_global in key_cache", global_in_key_cache, FP8KV_EINVAL, "groups->k_global",
	 "key_cache"},
	{"v_global in k_scales", global_in_k_scales, FP8KV_EINVAL, "groups->v_global",
	 "groups->k_scales"},
	{"k_global is overflow_count", global_is_overflow_count, FP8KV_EINVAL, "groups->k_global",
	 "overflow_count"},
	{"nan_count is overflow_count", counters_one, FP8KV_EINVAL, "overflow_count", "nan_count"},
	{"v_amax in key_cache", amax_in_cache, FP8KV_EINVAL, "v_amax", "key_cache"},
	{"key_cache NULL", key_cache_null, FP8KV_EINVAL, "key_cache", NULL},
	{"num_tokens -1", tokens_negative, FP8KV_EINVAL, "num_tokens", NULL},
	{"num_heads 0", heads_zero, FP8KV_EINVAL, "num_heads", NULL},
	{"slot_type 7", slot_type_7, FP8KV_EINVAL, "slot_type", NULL},
	{"swa_mapping_len 0", swa_len_zero, FP8KV_EINVAL, "swa_mapping_len", NULL},
	{"swa_mapping_len -5", swa_len_negative, FP8KV_EINVAL, "swa_mapping_len", NULL},
	{"swa_type -1", swa_type_bogus, FP8KV_EINVAL, "swa_type", NULL},
	{"swa_mapping_len past 64-bit bytes", swa_len_bytes_overflow, FP8KV_EINVAL, "swa_mapping",
	 NULL},
	{"swa_mapping misaligned", swa_misaligned, FP8KV_EINVAL, "swa_mapping", NULL},
	{"slot_mapping misaligned", slots_misaligned, FP8KV_EINVAL, "slot_mapping", NULL},
	{"overflow 2", overflow_policy_bogus, FP8KV_EINVAL, "overflow", NULL},
};
#define NUM_HOSTILE (int)(sizeof table / sizeof table[0])

START_TEST(baseline_is_valid)
{
	fx_init();
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &F.d, &F.g, NULL), FP8KV_OK);
	ck_assert(!guarded_untouched(F.kc) && !guarded_untouched(F.vs));
	guarded_free_all();
}
END_TEST

START_TEST(hostile_descriptor)
{
	const hostile *h = &table[_i];
	fx_init();
	h->mutate(&F.d, &F.g);
	expect_refused(h->what, h->expect, h->names, h->names_too);
	guarded_free_all();
}
END_TEST

/* ---- nothing to write ---- */

/* num_tokens 0: FP8KV_OK with no inputs, and no output touched (amax and
 * counters included: section 7's zero sizes). */
START_TEST(no_tokens)
{
	fx_init();
	F.d.num_tokens = 0;
	F.d.key = F.d.value = NULL;
	F.d.slot_mapping = NULL;
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &F.d, &F.g, NULL), FP8KV_OK);
	ck_assert(outputs_untouched());
	guarded_free_all();
}
END_TEST

/* Every token padding (INT64_MIN among them): FP8KV_OK; caches, scales and
 * counters keep their bytes, and each head's amax, which had the sign bit
 * set (the poison), gives way to +0 (section 7: "+0 for a head with none,
 * in a call with tokens"). */
START_TEST(all_padding)
{
	fx_init();
	int64_t *pad = guarded_alloc(T * 8);
	pad[0] = INT64_MIN, pad[1] = -1, pad[2] = INT64_MIN + 1, pad[3] = -(int64_t)NB * BS;
	guarded_protect(pad, 1);
	F.d.slot_mapping = pad;
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &F.d, &F.g, NULL), FP8KV_OK);
	for (int i = 0; i < 6; i++)
		ck_assert_msg(guarded_untouched(outputs[i]), "output %d written", i);
	for (int h = 0; h < H; h++) {
		uint32_t kb, vb;
		memcpy(&kb, &F.kamax[h], 4), memcpy(&vb, &F.vamax[h], 4);
		ck_assert_uint_eq(kb, 0);
		ck_assert_uint_eq(vb, 0);
	}
	guarded_free_all();
}
END_TEST

/* ---- slots at their edges ---- */

/* The key row of token 2 (bf16 1 + k/128, k = 0..63), head 0, group 0
 * (k = 0..15): amax 1 + 15/128; RCEIL for e4m3fn gives 2^-8 (448 * 2^-8 =
 * 1.75 >= amax > 0.875), byte 127 - 8 = 0x77; x * 256 = 256 + 2k rounds to
 * 256 (0x78) up to the tie 272 (k = 8, to even), to 288 (0x79) above. */
static void expect_token2_at(int64_t block, int64_t offset)
{
	const uint8_t *row = F.kc + (block * BS + offset) * H * D;
	for (int k = 0; k < 16; k++)
		ck_assert_msg(row[k] == (k <= 8 ? 0x78 : 0x79), "code %d: 0x%02x", k, row[k]);
	ck_assert_uint_eq(F.ks[(block * BS + offset) * H * GR], 0x77);
}

/* The bytes of F.kc outside row (block, offset) are the poison. */
static void expect_only_row(int64_t block, int64_t offset)
{
	const int64_t at = (block * BS + offset) * H * D;
	for (int64_t i = 0; i < CACHE_BYTES; i++)
		if (i < at || i >= at + H * D)
			ck_assert_msg(F.kc[i] == GUARD_POISON, "key_cache byte %" PRId64 " written", i);
}

/* int32 slots: -1 and INT32_MIN are padding, num_slots is out of range
 * (FP8KV_ERANGE, naming token 1), and token 2 is still written. */
START_TEST(int32_slots)
{
	fx_init();
	int32_t *s32 = guarded_alloc(T * 4 + 8);
	s32[0] = -1, s32[1] = NB * BS, s32[2] = 0, s32[3] = INT32_MIN;
	guarded_protect(s32, 1);
	F.d.slot_mapping = s32, F.d.slot_type = FP8KV_INDEX_INT32;
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &F.d, &F.g, NULL), FP8KV_ERANGE);
	ck_assert_msg(strstr(fp8kv_last_error(), "token 1"), "'%s'", fp8kv_last_error());
	expect_token2_at(0, 0);
	expect_only_row(0, 0);
	guarded_free_all();
}
END_TEST

/* int64 slots INT64_MAX and num_slots are out of range, INT64_MIN padding;
 * slot 11 (block 2, offset 3) gets token 3's row, whose head 0 group 0 is
 * token 2's (k = 0..15 again: 192..207 mod 64). */
START_TEST(int64_slot_extremes)
{
	fx_init();
	int64_t *s64 = guarded_alloc(T * 8);
	s64[0] = INT64_MAX, s64[1] = INT64_MIN, s64[2] = NB * BS, s64[3] = NB * BS - 1;
	guarded_protect(s64, 1);
	F.d.slot_mapping = s64;
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &F.d, &F.g, NULL), FP8KV_ERANGE);
	ck_assert_msg(strstr(fp8kv_last_error(), "token 0"), "'%s'", fp8kv_last_error());
	expect_token2_at(NB - 1, BS - 1);
	expect_only_row(NB - 1, BS - 1);
	guarded_free_all();
}
END_TEST

/* A swa_mapping of 2 entries: a slot past it is out of range, a mapped -1
 * is padding, a mapped INT64_MIN too. */
START_TEST(swa_mapping_edges)
{
	fx_init();
	int64_t *s64 = guarded_alloc(T * 8), *swa = guarded_alloc(3 * 8);
	s64[0] = 2, s64[1] = 1, s64[2] = 0, s64[3] = INT64_MAX;
	swa[0] = 7, swa[1] = -1, swa[2] = INT64_MIN;
	guarded_protect(s64, 1), guarded_protect(swa, 1);
	F.d.slot_mapping = s64, F.d.swa_mapping = swa, F.d.swa_mapping_len = 2;
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &F.d, &F.g, NULL), FP8KV_ERANGE);
	expect_token2_at(1, 3);
	expect_only_row(1, 3);
	F.d.swa_mapping_len = 3; /* INT64_MIN mapped: padding, token 3 still out of range */
	guarded_repoison(F.kc);
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &F.d, &F.g, NULL), FP8KV_ERANGE);
	ck_assert_msg(strstr(fp8kv_last_error(), "token 3"), "'%s'", fp8kv_last_error());
	expect_only_row(1, 3);
	guarded_free_all();
}
END_TEST

/* ---- layouts whose extent the checks must not misjudge ---- */

/*
 * An interleave past any block (INT64_MAX) leaves one run of slots, so
 * stride_slot is never used; the key scales reach block * 16 + offset * 4
 * + h * 2 + j, up to byte 47.  v_scales placed at byte 40 meet the key
 * scales of block 2, offsets 2 and 3: the call must be refused, not
 * written with K and V scales on one byte (a rounding up of block_size +
 * interleave - 1 that overflows would make the key scales' extent 40).
 */
START_TEST(interleave_past_any_block)
{
	fx_init();
	F.g.interleave = INT64_MAX, F.g.stride_interleave = H * GR;
	F.g.stride_slot = 8, F.g.stride_head = GR, F.g.stride_group = 1;
	F.g.stride_block = BS * H * GR;
	F.g.v_own_layout = 1;
	F.g.v_stride_block = BS * H * GR, F.g.v_stride_slot = H * GR;
	F.g.v_stride_head = GR, F.g.v_stride_group = 1;
	F.g.v_scales = F.ks + 40;
	expect_refused("v_scales in the reach of interleaved k_scales", FP8KV_EINVAL,
		       "groups->k_scales", "groups->v_scales");
	/* apart, the same interleave is valid: every slot at offset * 4 */
	F.g.v_scales = F.vs;
	int64_t *s64 = guarded_alloc(T * 8);
	s64[0] = -1, s64[1] = -1, s64[2] = 2 * BS + 3, s64[3] = -1;
	guarded_protect(s64, 1);
	F.d.slot_mapping = s64;
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &F.d, &F.g, NULL), FP8KV_OK);
	for (int i = 0; i < SCALE_COUNT * 4; i++)
		if (i < 44 || i >= 48)
			ck_assert_msg(F.ks[i] == GUARD_POISON, "k_scales byte %d written", i);
	ck_assert_uint_eq(F.ks[44], 0x77);
	guarded_free_all();
}
END_TEST

/*
 * A whole row of 2^32 elements as one group (G = the head dim, allowed by
 * section 8): the library cannot see the buffers' sizes, so it must either
 * write such rows or refuse them, never crash or touch memory.  The
 * buffers here are reservations no access may enter: a refusal, naming
 * groups->group_size, is the only outcome that passes.
 */
START_TEST(group_of_2_to_the_32)
{
	fx_init();
	const int64_t big = INT64_C(1) << 32;
	uint8_t *in = guarded_reserve((size_t)big * 2), *caches = guarded_reserve((size_t)big * 2);
	int64_t *s64 = guarded_alloc(8);
	s64[0] = 0;
	guarded_protect(s64, 1);
	fp8kv_cache_write_init(&F.d, 1, 1, big, big, 1, 1, FP8KV_LAYOUT_NHD);
	F.d.key = F.d.value = in, F.d.slot_mapping = s64;
	F.d.key_cache = caches, F.d.value_cache = caches + big;
	F.d.cache_dtype = FP8KV_E4M3FN, F.d.scale_mode = FP8KV_SCALE_GROUP;
	fp8kv_group_scales_init(&F.g, FP8KV_GROUP_E8M0_RCEIL, big, 1, big, 1, FP8KV_LAYOUT_NHD);
	F.g.k_scales = F.ks, F.g.v_scales = F.vs;
	const fp8kv_status st = fp8kv_reshape_and_cache_grouped(cpu, &F.d, &F.g, NULL);
	ck_assert_msg(st == FP8KV_ENOTSUP, "status %d ('%s')", st, fp8kv_last_error());
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "groups->group_size"));
	ck_assert(guarded_untouched(F.ks) && guarded_untouched(F.vs));
	guarded_free_all();
}
END_TEST

/* ---- NVFP4 under subnormal global scales, worked by hand ---- */

/* One f32 row of 16 per side into one slot; returns the call's status. */
static fp8kv_status nvfp4_row(const uint32_t *kbits, float kg, float vg)
{
	fx_init();
	float *k = guarded_alloc(16 * 4), *v = guarded_alloc(16 * 4), *gl = guarded_alloc(8);
	int64_t *s64 = guarded_alloc(8);
	memcpy(k, kbits, 16 * 4);
	memset(v, 0, 16 * 4);
	gl[0] = kg, gl[1] = vg, s64[0] = 0;
	guarded_protect(k, 1), guarded_protect(v, 1), guarded_protect(gl, 1);
	guarded_protect(s64, 1);
	fp8kv_cache_write_init(&F.d, 1, 1, 16, 16, 1, 1, FP8KV_LAYOUT_NHD);
	F.d.input_dtype = FP8KV_F32, F.d.key = k, F.d.value = v, F.d.slot_mapping = s64;
	F.d.key_cache = F.kc, F.d.value_cache = F.vc, F.d.cache_dtype = FP8KV_E2M1;
	F.d.key_cache_stride_head = F.d.value_cache_stride_head = 8;
	F.d.key_cache_stride_slot = F.d.value_cache_stride_slot = 8;
	F.d.key_cache_stride_block = F.d.value_cache_stride_block = 8;
	F.d.scale_mode = FP8KV_SCALE_GROUP;
	F.d.overflow_count = F.ovf, F.d.nan_count = F.nan, F.d.k_amax = F.kamax;
	*F.ovf = 0, *F.nan = 0;
	fp8kv_group_scales_init(&F.g, FP8KV_GROUP_NVFP4, 16, 1, 16, 1, FP8KV_LAYOUT_NHD);
	F.g.k_scales = F.ks, F.g.v_scales = F.vs, F.g.k_global = gl, F.g.v_global = gl + 1;
	return fp8kv_reshape_and_cache_grouped(cpu, &F.d, &F.g, NULL);
}

static void expect_bytes(const uint8_t *p, const uint8_t *want, int n, const char *what)
{
	for (int i = 0; i < n; i++)
		ck_assert_msg(p[i] == want[i], "%s byte %d: 0x%02x, want 0x%02x", what, i, p[i],
			      want[i]);
	ck_assert_msg(p[n] == GUARD_POISON, "%s: byte %d past the end written", what, n);
}

/*
 * g = 2^-143 (subnormal), amax 2^-149: 6g = 384 * 2^-149 exactly, amax /
 * 6g = 1/384 = 1.33 * 2^-9, so sf = e4m3fn 2^-9 (0x01, stored); s =
 * RN(2^-9 * 2^-143) = RN(2^-152) = 0: the group's codes are +-0 by sign,
 * 0x0 for NaN, and nothing overflows.  Values (all 0): sf 0x00, codes 0.
 */
START_TEST(nvfp4_scale_underflows_to_zero)
{
	uint32_t row[16];
	for (int i = 0; i < 12; i++)
		row[i] = i % 2 ? 0x80000001u : 0x00000001u; /* -+2^-149 */
	row[12] = 0x7FC00000u, row[13] = 0xFFC00000u, row[14] = 0, row[15] = 0x80000000u;
	ck_assert_int_eq(nvfp4_row(row, 0x1p-143f, 1.0f), FP8KV_OK);
	static const uint8_t kcodes[8] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x80};
	static const uint8_t zeros[8] = {0};
	expect_bytes(F.kc, kcodes, 8, "key codes");
	expect_bytes(F.vc, zeros, 8, "value codes");
	expect_bytes(F.ks, (const uint8_t[]){0x01}, 1, "key sf");
	expect_bytes(F.vs, (const uint8_t[]){0x00}, 1, "value sf");
	ck_assert_uint_eq(*F.ovf, 0);
	ck_assert_uint_eq(*F.nan, 2);
	uint32_t amax;
	memcpy(&amax, F.kamax, 4);
	ck_assert_uint_eq(amax, 1); /* 2^-149 */
	guarded_free_all();
}
END_TEST

/*
 * g = 2^-149, amax 1: 1 / (6 * 2^-149) overflows fp32 to +Inf, which
 * saturates to sf 448 (0x7E); s = 448 * 2^-149 (exact, subnormal, not 0),
 * and x / s = +-Inf for x = +-1: code 6 by sign (0x7, 0xF), one overflow
 * each; +-0 stay +-0 (0x0, 0x8).
 */
START_TEST(nvfp4_subnormal_scale_overflows)
{
	uint32_t row[16];
	for (int i = 0; i < 14; i++)
		row[i] = i % 2 ? 0xBF800000u : 0x3F800000u;
	row[14] = 0, row[15] = 0x80000000u;
	ck_assert_int_eq(nvfp4_row(row, 0x1p-149f, 1.0f), FP8KV_OK);
	static const uint8_t kcodes[8] = {0xF7, 0xF7, 0xF7, 0xF7, 0xF7, 0xF7, 0xF7, 0x80};
	expect_bytes(F.kc, kcodes, 8, "key codes");
	expect_bytes(F.ks, (const uint8_t[]){0x7E}, 1, "key sf");
	ck_assert_uint_eq(*F.ovf, 14);
	ck_assert_uint_eq(*F.nan, 0);
	guarded_free_all();
}
END_TEST

/* ---- the size field, against a struct that ends at a guard page ---- */

/* Where each field of fp8kv_group_scales lies, from the public header. */
#define FIELD(f) {offsetof(fp8kv_group_scales, f), sizeof(((fp8kv_group_scales *)0)->f)}
static const struct { size_t at, len; } group_fields[] = {
	FIELD(size), FIELD(rule), FIELD(group_size), FIELD(rounding), FIELD(divisor),
	FIELD(scale_floor), FIELD(k_global), FIELD(v_global), FIELD(k_scales), FIELD(v_scales),
	FIELD(stride_block), FIELD(stride_slot), FIELD(stride_head), FIELD(stride_group),
	FIELD(interleave), FIELD(stride_interleave), FIELD(v_own_layout), FIELD(v_stride_block),
	FIELD(v_stride_slot), FIELD(v_stride_head), FIELD(v_stride_group), FIELD(v_interleave),
	FIELD(v_stride_interleave)};

static int ends_inside_a_field(size_t size)
{
	for (size_t i = 0; i < sizeof group_fields / sizeof group_fields[0]; i++)
		if (size > group_fields[i].at && size < group_fields[i].at + group_fields[i].len)
			return 1;
	return 0;
}

/*
 * Every size from 0 to 24 bytes past the struct, the caller's struct
 * holding exactly `size` bytes (those past it are poison or, when size is
 * a multiple of 8, a PROT_NONE page), read-only: a size under 8 or ending
 * inside a field is FP8KV_EINVAL naming groups->size; a larger one with
 * zeros past this library's struct is read as it; any other gives OK or
 * a refusal that writes nothing; from the interleave on (every stride
 * set) the bytes are the full struct's.
 */
START_TEST(every_size)
{
	fx_init();
	ck_assert_int_eq(fp8kv_reshape_and_cache_grouped(cpu, &F.d, &F.g, NULL), FP8KV_OK);
	static uint8_t want_kc[CACHE_BYTES], want_vs[SCALE_COUNT * 4];
	memcpy(want_kc, F.kc, sizeof want_kc), memcpy(want_vs, F.vs, sizeof want_vs);
	const size_t full = sizeof(fp8kv_group_scales);
	for (size_t size = 0; size <= full + 24; size++) {
		for (int i = 0; i < 8; i++)
			guarded_repoison(outputs[i]);
		const size_t len = size < 4 ? 4 : size, room = (len + 7) / 8 * 8;
		uint8_t *buf = guarded_alloc(room);
		memset(buf, GUARD_POISON, room); /* past size: not to be read */
		memcpy(buf, &F.g, len < full ? len : full);
		if (len > full)
			memset(buf + full, 0, len - full);
		const uint32_t sz = (uint32_t)size;
		memcpy(buf, &sz, 4);
		guarded_protect(buf, 1);
		const fp8kv_status st = fp8kv_reshape_and_cache_grouped(
			cpu, &F.d, (const fp8kv_group_scales *)(void *)buf, NULL);
		const char *msg = fp8kv_last_error();
		if (size < 8 || ends_inside_a_field(size)) {
			ck_assert_msg(st == FP8KV_EINVAL && strstr(msg, "groups->size"),
				      "size %zu: status %d '%s'", size, st, msg);
		} else if (size >= offsetof(fp8kv_group_scales, interleave)) {
			ck_assert_msg(st == FP8KV_OK, "size %zu: status %d '%s'", size, st, msg);
			ck_assert_msg(!memcmp(F.kc, want_kc, sizeof want_kc) &&
					      !memcmp(F.vs, want_vs, sizeof want_vs),
				      "size %zu: other bytes than the full struct's", size);
		} else {
			ck_assert_msg(st == FP8KV_OK || st == FP8KV_EINVAL, "size %zu: status %d '%s'",
				      size, st, msg);
		}
		if (st != FP8KV_OK)
			ck_assert_msg(outputs_untouched(), "size %zu: a refused call wrote", size);
	}
	guarded_free_all();
}
END_TEST

/* A newer header's struct with one nonzero byte past ours, at each place:
 * FP8KV_ENOTSUP naming the byte, nothing written. */
START_TEST(unknown_fields_set)
{
	fx_init();
	const size_t full = sizeof(fp8kv_group_scales);
	for (size_t extra = 0; extra < 16; extra++) {
		uint8_t *buf = guarded_alloc(full + 16);
		memset(buf, 0, full + 16);
		memcpy(buf, &F.g, full);
		const uint32_t sz = (uint32_t)(full + 16);
		memcpy(buf, &sz, 4);
		buf[full + extra] = 0x80;
		guarded_protect(buf, 1);
		const fp8kv_status st = fp8kv_reshape_and_cache_grouped(
			cpu, &F.d, (const fp8kv_group_scales *)(void *)buf, NULL);
		char want[32];
		snprintf(want, sizeof want, "byte %zu", full + extra);
		ck_assert_msg(st == FP8KV_ENOTSUP && strstr(fp8kv_last_error(), want),
			      "byte %zu: status %d '%s'", full + extra, st, fp8kv_last_error());
		ck_assert(outputs_untouched());
	}
	guarded_free_all();
}
END_TEST

static void add_edge_tests(TCase *tc)
{
	tcase_add_test(tc, no_tokens);
	tcase_add_test(tc, all_padding);
	tcase_add_test(tc, int32_slots);
	tcase_add_test(tc, int64_slot_extremes);
	tcase_add_test(tc, swa_mapping_edges);
	tcase_add_test(tc, interleave_past_any_block);
	tcase_add_test(tc, group_of_2_to_the_32);
	tcase_add_test(tc, nvfp4_scale_underflows_to_zero);
	tcase_add_test(tc, nvfp4_subnormal_scale_overflows);
	tcase_add_test(tc, every_size);
	tcase_add_test(tc, unknown_fields_set);
}

int main(void)
{
	Suite *s = suite_create("group_hostile");
	TCase *tc = cpu_tcase(s, "table", 60);
	tcase_add_test(tc, baseline_is_valid);
	tcase_add_loop_test(tc, hostile_descriptor, 0, NUM_HOSTILE);
	tc = cpu_tcase(s, "edges", 60);
	add_edge_tests(tc);
	return run_suite(s);
}
