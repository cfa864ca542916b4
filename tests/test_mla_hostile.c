/* SPDX-License-Identifier: MIT */
/*
 * test_mla_hostile.c - hostile descriptors thrown at
 * fp8kv_concat_and_cache_mla on the CPU backend (fp8kv.h section 9), the
 * cache and counters in guarded memory (guarded.h: ending at a PROT_NONE
 * page, in poisoned pages), every input read-only.  Each rejected call must
 * return its status, name the argument, and leave every output byte as it
 * was.  test_errors_group.c holds the first list; this one adds DeepSeek
 * records of the wrong shape or stride, scale modes PLAIN does not take,
 * inputs and counters inside the record, mappings at their edges, every
 * size of the descriptor, and records worked out by hand.
 */
#include "config.h"

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check_support.h"
#include "fp8kv.h"
#include "guarded.h"

enum { T = 4, NB = 3, BS = 4, RANK = 48, PE = 16, DS_BYTES = 656 };

static struct {
	uint16_t *kv_c, *k_pe;
	int64_t *slots;
	float *scale;
	uint8_t *cache;
	uint64_t *ovf, *nan;
	fp8kv_mla_write m;
} F;

static void *outputs[3];

/* A valid write of kind: PLAIN bf16 -> e4m3fn entries of 48 + 16, or
 * DeepSeek's records; both counters set. */
static void fx_init(fp8kv_mla_kind kind)
{
	guarded_free_all();
	F.kv_c = guarded_alloc(T * 512 * 2);
	F.k_pe = guarded_alloc(T * 64 * 2);
	F.slots = guarded_alloc(T * 8);
	F.scale = guarded_alloc(8);
	for (int i = 0; i < T * 512; i++)
		F.kv_c[i] = (uint16_t)(0x3F80 + i % 64);
	for (int i = 0; i < T * 64; i++)
		F.k_pe[i] = (uint16_t)(0xC000 + i);
	static const int64_t s[T] = {5, 0, -1, 11};
	memcpy(F.slots, s, sizeof s);
	F.scale[0] = 2.0f;
	guarded_protect(F.kv_c, 1), guarded_protect(F.k_pe, 1);
	guarded_protect(F.slots, 1), guarded_protect(F.scale, 1);
	const int64_t entry = kind == FP8KV_MLA_DS ? DS_BYTES : RANK + PE;
	outputs[0] = F.cache = guarded_alloc((size_t)(NB * BS * entry));
	outputs[1] = F.ovf = guarded_alloc(8);
	outputs[2] = F.nan = guarded_alloc(8);
	fp8kv_mla_write_init(&F.m, kind, T, kind == FP8KV_MLA_DS ? 512 : RANK,
			     kind == FP8KV_MLA_DS ? 64 : PE, NB, BS);
	F.m.kv_c = F.kv_c, F.m.k_pe = F.k_pe, F.m.slot_mapping = F.slots, F.m.cache = F.cache;
	F.m.overflow_count = F.ovf, F.m.nan_count = F.nan;
}

static int outputs_untouched(void)
{
	for (int i = 0; i < 3; i++)
		if (!guarded_untouched(outputs[i]))
			return 0;
	return 1;
}

static void expect_refused(const char *what, fp8kv_status status, const char *a, const char *b)
{
	const fp8kv_status st = fp8kv_concat_and_cache_mla(cpu, &F.m, NULL);
	const char *msg = fp8kv_last_error();
	ck_assert_msg(st == status, "%s: status %d, want %d ('%s')", what, st, status, msg);
	ck_assert_msg(strstr(msg, a) && (!b || strstr(msg, b)), "%s: message '%s' should name %s%s%s",
		      what, msg, a, b ? " and " : "", b ? b : "");
	ck_assert_msg(outputs_untouched(), "%s: a refused call wrote memory", what);
}

typedef struct hostile {
	const char *what;
	fp8kv_mla_kind kind;
	void (*mutate)(fp8kv_mla_write *m);
	fp8kv_status expect;
	const char *names, *names_too;
} hostile;

#define MUT(name, body) static void name(fp8kv_mla_write *m) { body; }

MUT(ds_rank_511, m->kv_lora_rank = 511; m->kv_c_stride_token = 511)
MUT(ds_pe_32, m->pe_dim = 32)
MUT(ds_f32, m->input_dtype = FP8KV_F32)
MUT(ds_e5m2, m->cache_dtype = FP8KV_E5M2)
MUT(ds_int8, m->cache_dtype = FP8KV_INT8)
MUT(ds_slot_655, m->stride_slot = 655)
MUT(ds_slot_657, m->stride_slot = 657)
MUT(ds_slot_652, m->stride_slot = 652)
MUT(ds_slot_0, m->stride_slot = 0)
MUT(ds_block_short, m->stride_block = BS * DS_BYTES - 4)
MUT(ds_block_2, m->stride_block = 2)
MUT(ds_misaligned_2, m->cache = F.cache + 2)
MUT(ds_misaligned_1, m->cache = F.cache + 1)
MUT(ds_divisor_inf, m->divisor = __builtin_inff())
MUT(ds_divisor_subnormal, m->divisor = 0x1p-149f)
MUT(ds_divisor_minus1, m->divisor = -1.0f)
MUT(ds_divisor_neg_nan, m->divisor = -__builtin_nanf(""))
MUT(ds_tensor, m->scale_mode = FP8KV_SCALE_TENSOR; m->scale = F.scale)
MUT(ds_head, m->scale_mode = FP8KV_SCALE_HEAD; m->scale = F.scale)
MUT(ds_group, m->scale_mode = FP8KV_SCALE_GROUP)
MUT(ds_mode_99, m->scale_mode = (fp8kv_scale_mode)99)
MUT(ds_counter_in_record_scales, m->nan_count = (uint64_t *)(F.cache + 512))
MUT(ds_counters_one, m->overflow_count = m->nan_count)
MUT(ds_k_pe_in_rope, m->k_pe = F.cache + DS_BYTES + 528)
MUT(ds_kv_c_at_cache_end, m->kv_c = F.cache + NB * BS * DS_BYTES - 2)
MUT(ds_slots_in_cache, m->slot_mapping = F.cache + 8 * DS_BYTES)
MUT(kind_2, m->kind = (fp8kv_mla_kind)2)
MUT(kind_minus1, m->kind = (fp8kv_mla_kind)-1)
MUT(swa_len_0, m->swa_mapping = F.slots; m->swa_mapping_len = 0)
MUT(swa_len_minus1, m->swa_mapping = F.slots; m->swa_mapping_len = -1)
MUT(swa_type_9, m->swa_mapping = F.slots; m->swa_mapping_len = 4;
    m->swa_type = (fp8kv_index_type)9)
MUT(swa_len_bytes_overflow, m->swa_mapping = F.slots; m->swa_mapping_len = INT64_MAX / 4 + 1)
MUT(swa_in_cache, m->swa_mapping = F.cache; m->swa_mapping_len = 2)
MUT(slot_type_2, m->slot_type = (fp8kv_index_type)2)
MUT(tokens_minus1, m->num_tokens = -1)
MUT(slots_overflow, m->num_blocks = INT64_MAX; m->block_size = 2)
MUT(kv_c_stride_negative, m->kv_c_stride_token = -1)
MUT(k_pe_stride_overflow, m->k_pe_stride_token = INT64_MAX / 2)
MUT(p_head, m->scale_mode = FP8KV_SCALE_HEAD; m->scale = F.scale)
MUT(p_token_head, m->scale_mode = FP8KV_SCALE_TOKEN_HEAD)
MUT(p_group, m->scale_mode = FP8KV_SCALE_GROUP)
MUT(p_tensor_null, m->scale_mode = FP8KV_SCALE_TENSOR)
MUT(p_tensor_misaligned, m->scale_mode = FP8KV_SCALE_TENSOR;
    m->scale = (const float *)((const uint8_t *)F.scale + 2))
MUT(p_tensor_in_cache, m->scale_mode = FP8KV_SCALE_TENSOR; m->scale = (const float *)F.cache)
MUT(p_tensor_is_counter, m->scale_mode = FP8KV_SCALE_TENSOR; m->scale = (const float *)F.ovf)
MUT(p_e2m1, m->cache_dtype = FP8KV_E2M1)
MUT(p_int8, m->cache_dtype = FP8KV_INT8)
MUT(p_f32_cache, m->cache_dtype = FP8KV_F32)
MUT(p_divisor, m->divisor = FP8KV_DIVISOR_GFX942)
MUT(p_divisor_nan, m->divisor = __builtin_nanf(""))
MUT(p_entries_overlap, m->stride_slot = RANK + PE - 1)
/* rank + pe past INT64_MAX: refused before an entry's length is computed
 * (it overflowed, undefined behaviour, before any layout check) */
MUT(p_rank_max, m->kv_lora_rank = INT64_MAX; m->kv_c_stride_token = 0)
MUT(p_no_kv_c, m->kv_c = NULL)
MUT(p_no_slots, m->slot_mapping = NULL)
MUT(p_copy_misaligned, m->cache_dtype = FP8KV_BF16; m->stride_slot = 32; m->stride_block = 128;
    m->kv_lora_rank = 24; m->pe_dim = 8; m->kv_c_stride_token = 24; m->k_pe_stride_token = 8;
    m->cache = F.cache + 1)
MUT(p_input_42, m->input_dtype = (fp8kv_dtype)42)
MUT(p_overflow_minus1, m->overflow = (fp8kv_overflow)-1)

#define P FP8KV_MLA_PLAIN
#define DS FP8KV_MLA_DS
static const hostile table[] = {
	{"DS rank 511", DS, ds_rank_511, FP8KV_ENOTSUP, "kv_lora_rank", NULL},
	{"DS pe 32", DS, ds_pe_32, FP8KV_ENOTSUP, "pe_dim", NULL},
	{"DS of f32", DS, ds_f32, FP8KV_ENOTSUP, "input_dtype", NULL},
	{"DS on e5m2", DS, ds_e5m2, FP8KV_ENOTSUP, "cache_dtype", NULL},
	{"DS on int8", DS, ds_int8, FP8KV_ENOTSUP, "cache_dtype", NULL},
	{"DS stride_slot 655", DS, ds_slot_655, FP8KV_EINVAL, "stride_slot", NULL},
	{"DS stride_slot 657", DS, ds_slot_657, FP8KV_EINVAL, "stride_slot", NULL},
	{"DS stride_slot 652", DS, ds_slot_652, FP8KV_EINVAL, "cache", NULL},
	{"DS stride_slot 0", DS, ds_slot_0, FP8KV_EINVAL, "cache", NULL},
	{"DS stride_block a word short", DS, ds_block_short, FP8KV_EINVAL, "cache", NULL},
	{"DS stride_block 2", DS, ds_block_2, FP8KV_EINVAL, "stride_block", NULL},
	{"DS cache off by 2", DS, ds_misaligned_2, FP8KV_EINVAL, "cache", NULL},
	{"DS cache off by 1", DS, ds_misaligned_1, FP8KV_EINVAL, "cache", NULL},
	{"DS divisor Inf", DS, ds_divisor_inf, FP8KV_EINVAL, "divisor", NULL},
	{"DS divisor 2^-149", DS, ds_divisor_subnormal, FP8KV_EINVAL, "divisor", NULL},
	{"DS divisor -1", DS, ds_divisor_minus1, FP8KV_EINVAL, "divisor", NULL},
	{"DS divisor -NaN", DS, ds_divisor_neg_nan, FP8KV_EINVAL, "divisor", NULL},
	{"DS TENSOR", DS, ds_tensor, FP8KV_ENOTSUP, "scale_mode", NULL},
	{"DS HEAD", DS, ds_head, FP8KV_ENOTSUP, "scale_mode", NULL},
	{"DS GROUP", DS, ds_group, FP8KV_ENOTSUP, "scale_mode", NULL},
	{"DS scale_mode 99", DS, ds_mode_99, FP8KV_EINVAL, "scale_mode", NULL},
	{"DS nan_count on a record's scales", DS, ds_counter_in_record_scales, FP8KV_EINVAL,
	 "nan_count", "cache"},
	{"DS one counter for both", DS, ds_counters_one, FP8KV_EINVAL, "overflow_count",
	 "nan_count"},
	{"DS k_pe in a record's RoPE part", DS, ds_k_pe_in_rope, FP8KV_EINVAL, "k_pe", "cache"},
	{"DS kv_c over the cache's last bytes", DS, ds_kv_c_at_cache_end, FP8KV_EINVAL, "kv_c",
	 "cache"},
	{"DS slot_mapping in the cache", DS, ds_slots_in_cache, FP8KV_EINVAL, "slot_mapping",
	 "cache"},
	{"kind 2", P, kind_2, FP8KV_EINVAL, "kind", NULL},
	{"kind -1", DS, kind_minus1, FP8KV_EINVAL, "kind", NULL},
	{"swa_mapping_len 0", P, swa_len_0, FP8KV_EINVAL, "swa_mapping_len", NULL},
	{"swa_mapping_len -1", DS, swa_len_minus1, FP8KV_EINVAL, "swa_mapping_len", NULL},
	{"swa_type 9", P, swa_type_9, FP8KV_EINVAL, "swa_type", NULL},
	{"swa_mapping_len past 64-bit bytes", P, swa_len_bytes_overflow, FP8KV_EINVAL,
	 "swa_mapping", NULL},
	{"swa_mapping in the cache", DS, swa_in_cache, FP8KV_EINVAL, "swa_mapping", "cache"},
	{"slot_type 2", DS, slot_type_2, FP8KV_EINVAL, "slot_type", NULL},
	{"num_tokens -1", P, tokens_minus1, FP8KV_EINVAL, "num_tokens", NULL},
	{"num_blocks * block_size past 64 bits", P, slots_overflow, FP8KV_EINVAL,
	 "num_blocks * block_size", NULL},
	{"kv_c stride -1", DS, kv_c_stride_negative, FP8KV_EINVAL, "kv_c", NULL},
	{"k_pe stride past 64-bit bytes", DS, k_pe_stride_overflow, FP8KV_EINVAL, "k_pe", NULL},
	{"PLAIN HEAD", P, p_head, FP8KV_ENOTSUP, "scale_mode", NULL},
	{"PLAIN TOKEN_HEAD", P, p_token_head, FP8KV_ENOTSUP, "scale_mode", NULL},
	{"PLAIN GROUP", P, p_group, FP8KV_ENOTSUP, "scale_mode", NULL},
	{"PLAIN TENSOR without scale", P, p_tensor_null, FP8KV_EINVAL, "scale", NULL},
	{"PLAIN TENSOR scale off by 2", P, p_tensor_misaligned, FP8KV_EINVAL, "scale", NULL},
	{"PLAIN TENSOR scale in the cache", P, p_tensor_in_cache, FP8KV_EINVAL, "scale", "cache"},
	{"PLAIN TENSOR scale is overflow_count", P, p_tensor_is_counter, FP8KV_EINVAL, "scale",
	 "overflow_count"},
	{"PLAIN e2m1", P, p_e2m1, FP8KV_ENOTSUP, "cache_dtype", NULL},
	{"PLAIN int8", P, p_int8, FP8KV_ENOTSUP, "cache_dtype", NULL},
	{"PLAIN f32 cache of bf16", P, p_f32_cache, FP8KV_ENOTSUP, "cache_dtype", NULL},
	{"PLAIN divisor 224", P, p_divisor, FP8KV_EINVAL, "divisor", NULL},
	{"PLAIN divisor NaN", P, p_divisor_nan, FP8KV_EINVAL, "divisor", NULL},
	{"PLAIN entries overlap", P, p_entries_overlap, FP8KV_EINVAL, "cache", NULL},
	{"PLAIN rank INT64_MAX", P, p_rank_max, FP8KV_EINVAL, "kv_lora_rank", "pe_dim"},
	{"PLAIN no kv_c", P, p_no_kv_c, FP8KV_EINVAL, "kv_c", NULL},
	{"PLAIN no slot_mapping", P, p_no_slots, FP8KV_EINVAL, "slot_mapping", NULL},
	{"PLAIN bf16 copy cache off by 1", P, p_copy_misaligned, FP8KV_EINVAL, "cache", NULL},
	{"input_dtype 42", P, p_input_42, FP8KV_EINVAL, "input_dtype", NULL},
	{"overflow -1", DS, p_overflow_minus1, FP8KV_EINVAL, "overflow", NULL},
};
#define NUM_HOSTILE (int)(sizeof table / sizeof table[0])

START_TEST(baselines_are_valid)
{
	for (int k = 0; k < 2; k++) {
		fx_init((fp8kv_mla_kind)k);
		ck_assert_int_eq(fp8kv_concat_and_cache_mla(cpu, &F.m, NULL), FP8KV_OK);
		ck_assert(!guarded_untouched(F.cache));
	}
	guarded_free_all();
}
END_TEST

START_TEST(hostile_descriptor)
{
	const hostile *h = &table[_i];
	fx_init(h->kind);
	h->mutate(&F.m);
	expect_refused(h->what, h->expect, h->names, h->names_too);
	guarded_free_all();
}
END_TEST

/* num_tokens 0, no inputs: FP8KV_OK, nothing touched, either kind. */
START_TEST(no_tokens)
{
	for (int k = 0; k < 2; k++) {
		fx_init((fp8kv_mla_kind)k);
		F.m.num_tokens = 0;
		F.m.kv_c = F.m.k_pe = NULL;
		F.m.slot_mapping = NULL;
		ck_assert_int_eq(fp8kv_concat_and_cache_mla(cpu, &F.m, NULL), FP8KV_OK);
		ck_assert(outputs_untouched());
	}
	guarded_free_all();
}
END_TEST

/* A bf16 copy cache (entries of 48 + 16 bf16) with int32 slots: -1 and
 * INT32_MIN padding, num_slots out of range (FP8KV_ERANGE naming token 1),
 * token 2 copied raw into entry 0, and no other byte written. */
START_TEST(copy_with_int32_slot_edges)
{
	fx_init(FP8KV_MLA_PLAIN);
	int32_t *s32 = guarded_alloc(16);
	s32[0] = -1, s32[1] = NB * BS, s32[2] = 0, s32[3] = INT32_MIN;
	guarded_protect(s32, 1);
	F.m.cache_dtype = FP8KV_BF16;
	F.m.kv_lora_rank = 24, F.m.pe_dim = 8, F.m.kv_c_stride_token = 24, F.m.k_pe_stride_token = 8;
	F.m.stride_slot = 32, F.m.stride_block = BS * 32; /* 64-byte entries */
	F.m.slot_mapping = s32, F.m.slot_type = FP8KV_INDEX_INT32;
	ck_assert_int_eq(fp8kv_concat_and_cache_mla(cpu, &F.m, NULL), FP8KV_ERANGE);
	ck_assert_msg(strstr(fp8kv_last_error(), "token 1"), "'%s'", fp8kv_last_error());
	const uint16_t *e = (const uint16_t *)F.cache;
	for (int i = 0; i < 24; i++)
		ck_assert_uint_eq(e[i], F.kv_c[2 * 24 + i]);
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(e[24 + i], F.k_pe[2 * 8 + i]);
	for (int i = 64; i < NB * BS * 64; i++)
		ck_assert_msg(F.cache[i] == GUARD_POISON, "cache byte %d written", i);
	ck_assert_uint_eq(*F.nan, GUARD_POISON * 0x0101010101010101ull); /* + 0 */
	guarded_free_all();
}
END_TEST

/*
 * DeepSeek's record of token 2 (slots -1, -1, 0, -1), worked by hand: the
 * latent all 1.0 gives each tile s = RN(1 / 448) and codes RN(1 / s) = 448
 * (0x7E); the RoPE part keeps its raw bits, NaNs included, and its two
 * NaNs are counted: section 9, "the copied parts included".
 */
START_TEST(ds_record_by_hand)
{
	fx_init(FP8KV_MLA_DS);
	uint16_t *kv = guarded_alloc(T * 512 * 2), *pe = guarded_alloc(T * 64 * 2);
	int64_t *s64 = guarded_alloc(T * 8);
	for (int i = 0; i < T * 512; i++)
		kv[i] = 0x3F80;
	for (int i = 0; i < T * 64; i++)
		pe[i] = (uint16_t)(0x4000 + i);
	pe[2 * 64 + 5] = 0x7FC1, pe[2 * 64 + 6] = 0xFFC0, pe[2 * 64 + 7] = 0xFF80; /* NaN, -NaN, -Inf */
	s64[0] = -1, s64[1] = -1, s64[2] = 0, s64[3] = -1;
	guarded_protect(kv, 1), guarded_protect(pe, 1), guarded_protect(s64, 1);
	F.m.kv_c = kv, F.m.k_pe = pe, F.m.slot_mapping = s64;
	*F.ovf = 0, *F.nan = 0;
	ck_assert_int_eq(fp8kv_concat_and_cache_mla(cpu, &F.m, NULL), FP8KV_OK);
	for (int i = 0; i < 512; i++)
		ck_assert_msg(F.cache[i] == 0x7E, "code %d: 0x%02x", i, F.cache[i]);
	const volatile float one = 1.0f, max = 448.0f;
	const float s = one / max;
	for (int j = 0; j < 4; j++)
		ck_assert(!memcmp(F.cache + 512 + 4 * j, &s, 4)); /* little-endian host */
	ck_assert(!memcmp(F.cache + 528, pe + 2 * 64, 128));
	for (int i = DS_BYTES; i < NB * BS * DS_BYTES; i++)
		ck_assert_msg(F.cache[i] == GUARD_POISON, "cache byte %d written", i);
	ck_assert_uint_eq(*F.nan, 2);
	ck_assert_uint_eq(*F.ovf, 0);
	guarded_free_all();
}
END_TEST

/* ---- the size field ---- */

#define FIELD(f) {offsetof(fp8kv_mla_write, f), sizeof(((fp8kv_mla_write *)0)->f)}
static const struct { size_t at, len; } mla_fields[] = {
	FIELD(size), FIELD(kind), FIELD(kv_c), FIELD(k_pe), FIELD(input_dtype), FIELD(num_tokens),
	FIELD(kv_lora_rank), FIELD(pe_dim), FIELD(kv_c_stride_token), FIELD(k_pe_stride_token),
	FIELD(cache), FIELD(cache_dtype), FIELD(num_blocks), FIELD(block_size),
	FIELD(stride_block), FIELD(stride_slot), FIELD(slot_mapping), FIELD(slot_type),
	FIELD(swa_mapping), FIELD(swa_type), FIELD(swa_mapping_len), FIELD(scale_mode),
	FIELD(scale), FIELD(divisor), FIELD(overflow), FIELD(overflow_count), FIELD(nan_count)};

static int ends_inside_a_field(size_t size)
{
	for (size_t i = 0; i < sizeof mla_fields / sizeof mla_fields[0]; i++)
		if (size > mla_fields[i].at && size < mla_fields[i].at + mla_fields[i].len)
			return 1;
	return 0;
}

/* Every size from 0 to 24 past the struct, the caller's struct holding
 * exactly those bytes (then poison, or a PROT_NONE page), read-only: under
 * 8 or inside a field, FP8KV_EINVAL naming desc->size; the full struct
 * and larger ones with zeros past it, OK and the same bytes; any other,
 * OK or a refusal that writes nothing. */
START_TEST(every_size)
{
	for (int k = 0; k < 2; k++) {
		fx_init((fp8kv_mla_kind)k);
		ck_assert_int_eq(fp8kv_concat_and_cache_mla(cpu, &F.m, NULL), FP8KV_OK);
		static uint8_t want[NB * BS * DS_BYTES];
		const size_t cache_bytes = (size_t)NB * BS * (k ? DS_BYTES : RANK + PE);
		memcpy(want, F.cache, cache_bytes);
		const size_t full = sizeof(fp8kv_mla_write);
		for (size_t size = 0; size <= full + 24; size++) {
			for (int i = 0; i < 3; i++)
				guarded_repoison(outputs[i]);
			const size_t len = size < 4 ? 4 : size, room = (len + 7) / 8 * 8;
			uint8_t *buf = guarded_alloc(room);
			memset(buf, GUARD_POISON, room);
			memcpy(buf, &F.m, len < full ? len : full);
			if (len > full)
				memset(buf + full, 0, len - full);
			const uint32_t sz = (uint32_t)size;
			memcpy(buf, &sz, 4);
			guarded_protect(buf, 1);
			const fp8kv_status st = fp8kv_concat_and_cache_mla(
				cpu, (const fp8kv_mla_write *)(void *)buf, NULL);
			const char *msg = fp8kv_last_error();
			if (size < 8 || ends_inside_a_field(size))
				ck_assert_msg(st == FP8KV_EINVAL && strstr(msg, "desc->size"),
					      "size %zu: status %d '%s'", size, st, msg);
			else if (size >= full)
				ck_assert_msg(st == FP8KV_OK && !memcmp(F.cache, want, cache_bytes),
					      "size %zu: status %d '%s'", size, st, msg);
			else
				ck_assert_msg(st == FP8KV_OK || st == FP8KV_EINVAL ||
						      st == FP8KV_ENOTSUP,
					      "size %zu: status %d '%s'", size, st, msg);
			if (st != FP8KV_OK)
				ck_assert_msg(outputs_untouched(), "size %zu: a refused call wrote",
					      size);
		}
	}
	guarded_free_all();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mla_hostile");
	TCase *tc = cpu_tcase(s, "table", 60);
	tcase_add_test(tc, baselines_are_valid);
	tcase_add_loop_test(tc, hostile_descriptor, 0, NUM_HOSTILE);
	tc = cpu_tcase(s, "edges", 60);
	tcase_add_test(tc, no_tokens);
	tcase_add_test(tc, copy_with_int32_slot_edges);
	tcase_add_test(tc, ds_record_by_hand);
	tcase_add_test(tc, every_size);
	return run_suite(s);
}
