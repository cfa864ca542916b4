/* SPDX-License-Identifier: MIT */
/*
 * test_errors.c - the README's bad-input table: every rejected input returns
 * its code and a message that names the culprit, and leaves every cache
 * byte as it was.  The grouped and MLA writes' are test_errors_group.c's.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fp8kv.h"
#include "test_errors.h"

#define T 4     /* tokens */
#define H 2     /* heads */
#define D 8     /* head dim */
#define NB 3    /* blocks */
#define BS 4    /* block size */
#define CACHE_BYTES (NB * BS * H * D)
#define POISON 0xA5

static fp8kv_backend *cpu;
static uint16_t key[T * H * D], value[T * H * D];
static int64_t slots[T] = {5, 0, -1, 11};
static int64_t swa[16];
static uint8_t key_cache[CACHE_BYTES + 16], value_cache[CACHE_BYTES + 16];
static float scales[2 * H] = {1, 2, 3, 4}, scale_cache[2 * NB * BS * H + 4];
static uint64_t counters[2];

static void setup(void)
{
	ck_assert_int_eq(fp8kv_backend_open("cpu", &cpu), FP8KV_OK);
	for (int i = 0; i < T * H * D; i++) {
		key[i] = (uint16_t)(0x3F80 + i); /* bf16 around 1.0, never zero */
		value[i] = (uint16_t)(0xBF80 + i);
	}
	memset(key_cache, POISON, sizeof key_cache);
	memset(value_cache, POISON, sizeof value_cache);
}

static void teardown(void)
{
	fp8kv_backend_close(cpu);
}

static void valid_desc(fp8kv_cache_write *d)
{
	fp8kv_cache_write_init(d, T, H, D, D, NB, BS, FP8KV_LAYOUT_NHD);
	d->key = key;
	d->value = value;
	d->key_cache = key_cache;
	d->value_cache = value_cache;
	d->slot_mapping = slots;
	d->input_dtype = FP8KV_BF16;
	d->cache_dtype = FP8KV_E4M3FN;
}

static int caches_untouched(void)
{
	for (size_t i = 0; i < sizeof key_cache; i++)
		if (key_cache[i] != POISON || value_cache[i] != POISON)
			return 0;
	return 1;
}

/* One row of the bad-input table: a change to a valid descriptor, the code
 * it must give, and a word the message must contain. */
typedef struct bad_input {
	const char *what;
	void (*mutate)(fp8kv_cache_write *d);
	fp8kv_status expect;
	const char *message_has;
} bad_input;

#define MUTATOR(name, body) static void name(fp8kv_cache_write *d) { body; }

MUTATOR(null_key, d->key = NULL)
MUTATOR(null_value, d->value = NULL)
MUTATOR(null_key_cache, d->key_cache = NULL)
MUTATOR(null_slots, d->slot_mapping = NULL)
MUTATOR(negative_tokens, d->num_tokens = -1)
MUTATOR(zero_heads, d->num_heads = 0)
MUTATOR(zero_head_dim, d->head_dim_v = 0)
MUTATOR(zero_block_size, d->block_size = 0)
MUTATOR(negative_blocks, d->num_blocks = -3)
MUTATOR(zero_blocks, d->num_blocks = 0)
MUTATOR(slot_count_overflow, d->num_blocks = INT64_MAX / 2; d->block_size = 4)
MUTATOR(negative_input_stride, d->key_stride_token = -16)
MUTATOR(negative_cache_stride, d->value_cache_stride_slot = -1)
MUTATOR(overlapping_heads, d->key_cache_stride_head = D - 1)
MUTATOR(overlapping_slots, d->key_cache_stride_slot = D; d->key_cache_stride_head = D)
MUTATOR(overlapping_blocks, d->value_cache_stride_block = BS * H * D - 1)
MUTATOR(huge_stride, d->key_cache_stride_block = INT64_MAX / 2)
MUTATOR(huge_input_stride, d->key_stride_token = INT64_MAX / 3)
MUTATOR(fp8_input, d->input_dtype = FP8KV_E4M3FN)
MUTATOR(cache_other_wide, d->cache_dtype = FP8KV_F16)
MUTATOR(unknown_input_dtype, d->input_dtype = (fp8kv_dtype)42)
MUTATOR(unknown_cache_dtype, d->cache_dtype = (fp8kv_dtype)-1)
MUTATOR(unknown_overflow, d->overflow = (fp8kv_overflow)7)
MUTATOR(unknown_scale_mode, d->scale_mode = (fp8kv_scale_mode)9)
MUTATOR(unknown_slot_type, d->slot_type = (fp8kv_index_type)5)
MUTATOR(scale_without_pointer, d->scale_mode = FP8KV_SCALE_TENSOR; d->k_scale = NULL;
	d->v_scale = scales)
MUTATOR(head_scale_without_pointer, d->scale_mode = FP8KV_SCALE_HEAD; d->k_scale = scales;
	d->v_scale = NULL)
MUTATOR(scale_on_plain_cache, d->cache_dtype = FP8KV_BF16; d->scale_mode = FP8KV_SCALE_TENSOR;
	d->k_scale = d->v_scale = scales)
MUTATOR(dynamic_without_scale_cache, d->scale_mode = FP8KV_SCALE_TOKEN_HEAD)
MUTATOR(dynamic_overlapping_scale_cache, d->scale_mode = FP8KV_SCALE_TOKEN_HEAD;
	d->k_scale_cache = scale_cache; d->v_scale_cache = scale_cache + NB * BS * H;
	d->scale_cache_stride_slot = 1)
MUTATOR(misaligned_key, d->key = (const uint8_t *)key + 1)
MUTATOR(misaligned_cache, d->cache_dtype = FP8KV_BF16; d->value_cache = value_cache + 1)
MUTATOR(misaligned_slots, d->slot_mapping = (const uint8_t *)slots + 4)
MUTATOR(misaligned_scale, d->scale_mode = FP8KV_SCALE_TENSOR;
	d->k_scale = (const float *)((const uint8_t *)scales + 2); d->v_scale = scales)
MUTATOR(misaligned_counter, d->overflow_count = (uint64_t *)((uint8_t *)counters + 4))
MUTATOR(swa_without_length, d->swa_mapping = swa; d->swa_mapping_len = 0)
MUTATOR(unknown_swa_type, d->swa_mapping = swa; d->swa_mapping_len = 16;
	d->swa_type = (fp8kv_index_type)3)

static const bad_input bad_inputs[] = {
	{"NULL key", null_key, FP8KV_EINVAL, "key"},
	{"NULL value", null_value, FP8KV_EINVAL, "value"},
	{"NULL key_cache", null_key_cache, FP8KV_EINVAL, "key_cache"},
	{"NULL slot_mapping", null_slots, FP8KV_EINVAL, "slot_mapping"},
	{"negative num_tokens", negative_tokens, FP8KV_EINVAL, "num_tokens"},
	{"zero num_heads", zero_heads, FP8KV_EINVAL, "num_heads"},
	{"zero head_dim_v", zero_head_dim, FP8KV_EINVAL, "head_dim_v"},
	{"zero block_size", zero_block_size, FP8KV_EINVAL, "block_size"},
	{"negative num_blocks", negative_blocks, FP8KV_EINVAL, "num_blocks"},
	{"zero num_blocks (the zero-size rule)", zero_blocks, FP8KV_EINVAL, "num_blocks"},
	{"num_blocks * block_size overflows", slot_count_overflow, FP8KV_EINVAL, "overflows"},
	{"negative input stride", negative_input_stride, FP8KV_EINVAL, "negative"},
	{"negative cache stride", negative_cache_stride, FP8KV_EINVAL, "negative"},
	{"cache heads overlap", overlapping_heads, FP8KV_EINVAL, "overlap"},
	{"cache slots and heads share a stride", overlapping_slots, FP8KV_EINVAL, "overlap"},
	{"cache blocks overlap", overlapping_blocks, FP8KV_EINVAL, "overlap"},
	{"cache byte extent overflows", huge_stride, FP8KV_EINVAL, "overflow"},
	{"input byte extent overflows", huge_input_stride, FP8KV_EINVAL, "overflow"},
	{"FP8 input", fp8_input, FP8KV_ENOTSUP, "input_dtype"},
	{"f16 cache for bf16 input", cache_other_wide, FP8KV_ENOTSUP, "cache_dtype"},
	{"unknown input dtype", unknown_input_dtype, FP8KV_EINVAL, "input_dtype"},
	{"unknown cache dtype", unknown_cache_dtype, FP8KV_EINVAL, "cache_dtype"},
	{"unknown overflow policy", unknown_overflow, FP8KV_EINVAL, "overflow"},
	{"unknown scale mode", unknown_scale_mode, FP8KV_EINVAL, "scale_mode"},
	{"unknown slot type", unknown_slot_type, FP8KV_EINVAL, "slot_type"},
	{"TENSOR scale without k_scale", scale_without_pointer, FP8KV_EINVAL, "k_scale"},
	{"HEAD scale without v_scale", head_scale_without_pointer, FP8KV_EINVAL, "v_scale"},
	{"scale on a non-FP8 cache", scale_on_plain_cache, FP8KV_ENOTSUP, "FP8"},
	{"TOKEN_HEAD without scale caches", dynamic_without_scale_cache, FP8KV_EINVAL,
	 "k_scale_cache"},
	{"TOKEN_HEAD scale cache overlaps", dynamic_overlapping_scale_cache, FP8KV_EINVAL,
	 "scale_cache"},
	{"misaligned key", misaligned_key, FP8KV_EINVAL, "aligned"},
	{"misaligned value_cache", misaligned_cache, FP8KV_EINVAL, "value_cache"},
	{"misaligned slot_mapping", misaligned_slots, FP8KV_EINVAL, "slot_mapping"},
	{"misaligned k_scale", misaligned_scale, FP8KV_EINVAL, "k_scale"},
	{"misaligned overflow_count", misaligned_counter, FP8KV_EINVAL, "overflow_count"},
	{"swa_mapping without a length", swa_without_length, FP8KV_EINVAL, "swa_mapping_len"},
	{"unknown swa type", unknown_swa_type, FP8KV_EINVAL, "swa_type"},
};

#define NUM_BAD (int)(sizeof bad_inputs / sizeof bad_inputs[0])

START_TEST(the_valid_descriptor_writes)
{
	fp8kv_cache_write d;
	valid_desc(&d);
	ck_assert_int_eq(fp8kv_reshape_and_cache(cpu, &d, NULL), FP8KV_OK);
	ck_assert_str_eq(fp8kv_last_error(), "");
	ck_assert(!caches_untouched());
}
END_TEST

START_TEST(each_bad_input_is_rejected_before_writing)
{
	const bad_input *bad = &bad_inputs[_i];
	fp8kv_cache_write d;
	valid_desc(&d);
	bad->mutate(&d);
	fp8kv_status st = fp8kv_reshape_and_cache(cpu, &d, NULL);
	ck_assert_msg(st == bad->expect, "%s: got %d (%s), want %d", bad->what, (int)st,
		      fp8kv_last_error(), (int)bad->expect);
	ck_assert_msg(strstr(fp8kv_last_error(), bad->message_has) != NULL,
		      "%s: message '%s' does not mention '%s'", bad->what, fp8kv_last_error(),
		      bad->message_has);
	ck_assert_msg(caches_untouched(), "%s: a cache byte changed", bad->what);
}
END_TEST

START_TEST(null_descriptor_and_backend)
{
	fp8kv_cache_write d;
	valid_desc(&d);
	ck_assert_int_eq(fp8kv_reshape_and_cache(cpu, NULL, NULL), FP8KV_EINVAL);
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "desc"));
	ck_assert_int_eq(fp8kv_reshape_and_cache(NULL, &d, NULL), FP8KV_EINVAL);
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "backend"));
	ck_assert(caches_untouched());
}
END_TEST

START_TEST(zero_tokens_need_no_inputs)
{
	fp8kv_cache_write d;
	valid_desc(&d);
	d.num_tokens = 0;
	d.key = d.value = NULL;
	d.slot_mapping = NULL;
	ck_assert_int_eq(fp8kv_reshape_and_cache(cpu, &d, NULL), FP8KV_OK);
	ck_assert(caches_untouched());
}
END_TEST

START_TEST(out_of_range_skips_only_bad_tokens)
{
	int64_t bad_slots[T] = {5, NB * BS, -1, 11};
	fp8kv_cache_write d;
	valid_desc(&d);
	d.slot_mapping = bad_slots;
	ck_assert_int_eq(fp8kv_reshape_and_cache(cpu, &d, NULL), FP8KV_ERANGE);
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "token 1"));
	/* tokens 0 and 3 written at slots 5 and 11; slot 12 does not exist */
	int written = 0;
	for (int i = 0; i < CACHE_BYTES; i++)
		written += key_cache[i] != POISON;
	ck_assert_int_gt(written, 0);
	for (int i = CACHE_BYTES; i < CACHE_BYTES + 16; i++)
		ck_assert_int_eq(key_cache[i], POISON);
	for (int s = 0; s < NB * BS; s++) {
		int row_written = 0;
		for (int j = 0; j < H * D; j++)
			row_written |= key_cache[s * H * D + j] != POISON;
		ck_assert_int_eq(row_written, s == 5 || s == 11);
	}
}
END_TEST

START_TEST(out_of_range_messages_name_the_limit)
{
	/* slot 5 goes through swa[5]; slot 20 is past the 16 swa entries */
	int64_t through_swa[T] = {5, 20, -1, 3};
	fp8kv_cache_write d;
	valid_desc(&d);
	for (int i = 0; i < 16; i++)
		swa[i] = i;
	d.slot_mapping = through_swa;
	d.swa_mapping = swa;
	d.swa_mapping_len = 16;
	ck_assert_int_eq(fp8kv_reshape_and_cache(cpu, &d, NULL), FP8KV_ERANGE);
	ck_assert_msg(strstr(fp8kv_last_error(), "token 1: slot 20 is past the end of "
						 "swa_mapping (16 entries)") != NULL,
		      "%s", fp8kv_last_error());
	/* in the swa_mapping, but mapped past the 12 cache slots */
	swa[3] = NB * BS + 7;
	through_swa[1] = 2;
	ck_assert_int_eq(fp8kv_reshape_and_cache(cpu, &d, NULL), FP8KV_ERANGE);
	ck_assert_msg(strstr(fp8kv_last_error(), "token 3: slot 19 is out of range "
						 "(12 cache slots)") != NULL,
		      "%s", fp8kv_last_error());
}
END_TEST

START_TEST(backend_names)
{
	fp8kv_backend *b = (fp8kv_backend *)&b;
	ck_assert_int_eq(fp8kv_backend_open("no_such_backend", &b), FP8KV_ENODEV);
	ck_assert_ptr_null(b);
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "no_such_backend"));
	ck_assert_int_eq(fp8kv_backend_open("cpu:1", &b), FP8KV_ENODEV);
	ck_assert_int_eq(fp8kv_backend_open("cpu:x", &b), FP8KV_EINVAL);
	ck_assert_int_eq(fp8kv_backend_open("../evil", &b), FP8KV_EINVAL);
	ck_assert_int_eq(fp8kv_backend_open("", &b), FP8KV_EINVAL);
	ck_assert_int_eq(fp8kv_backend_open("cpu", NULL), FP8KV_EINVAL);
	ck_assert_int_eq(fp8kv_backend_open("cpu:0", &b), FP8KV_OK);
	ck_assert_str_eq(fp8kv_backend_name(b), "cpu");
	ck_assert_ptr_nonnull(fp8kv_backend_device(b));
	fp8kv_backend_close(b);
}
END_TEST

START_TEST(backend_from_environment)
{
	fp8kv_backend *b;
	setenv("FP8KV_BACKEND", "no_such_backend", 1);
	ck_assert_int_eq(fp8kv_backend_open(NULL, &b), FP8KV_ENODEV);
	setenv("FP8KV_BACKEND", "cpu", 1);
	ck_assert_int_eq(fp8kv_backend_open("auto", &b), FP8KV_OK);
	ck_assert_str_eq(fp8kv_backend_name(b), "cpu");
	fp8kv_backend_close(b);
	unsetenv("FP8KV_BACKEND");
}
END_TEST

START_TEST(flat_conversion_errors)
{
	uint8_t out[8];
	memset(out, POISON, sizeof out);
	ck_assert_int_eq(fp8kv_quantize(cpu, out, FP8KV_BF16, key, FP8KV_BF16, 8,
					FP8KV_SCALE_ONE, NULL, FP8KV_SATURATE, NULL, NULL),
			 FP8KV_ENOTSUP);
	ck_assert_int_eq(fp8kv_quantize(cpu, out, FP8KV_E4M3FN, key, FP8KV_E5M2, 8,
					FP8KV_SCALE_ONE, NULL, FP8KV_SATURATE, NULL, NULL),
			 FP8KV_ENOTSUP);
	ck_assert_int_eq(fp8kv_quantize(cpu, out, FP8KV_E4M3FN, key, FP8KV_BF16, 8,
					FP8KV_SCALE_TENSOR, NULL, FP8KV_SATURATE, NULL, NULL),
			 FP8KV_EINVAL);
	ck_assert_int_eq(fp8kv_quantize(cpu, out, FP8KV_E4M3FN, key, FP8KV_BF16, 8,
					FP8KV_SCALE_HEAD, scales, FP8KV_SATURATE, NULL, NULL),
			 FP8KV_ENOTSUP);
	ck_assert_int_eq(fp8kv_quantize(cpu, out, FP8KV_E4M3FN, NULL, FP8KV_BF16, 8,
					FP8KV_SCALE_ONE, NULL, FP8KV_SATURATE, NULL, NULL),
			 FP8KV_EINVAL);
	ck_assert_int_eq(fp8kv_dequantize(cpu, out, FP8KV_E4M3FN, key, FP8KV_E5M2, 8,
					  FP8KV_SCALE_ONE, NULL, NULL),
			 FP8KV_ENOTSUP);
	for (size_t i = 0; i < sizeof out; i++)
		ck_assert_int_eq(out[i], POISON);
	float amax;
	ck_assert_int_eq(fp8kv_amax(cpu, key, FP8KV_E4M3FN, 8, &amax), FP8KV_ENOTSUP);
	ck_assert_int_eq(fp8kv_amax(cpu, key, FP8KV_BF16, 8, NULL), FP8KV_EINVAL);
}
END_TEST

START_TEST(buffer_errors)
{
	void *p = &p;
	ck_assert_int_eq(fp8kv_buffer_alloc(cpu, 0, &p), FP8KV_EINVAL);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(fp8kv_buffer_alloc(cpu, SIZE_MAX, &p), FP8KV_ENOMEM);
	ck_assert_int_eq(fp8kv_buffer_alloc(NULL, 16, &p), FP8KV_EINVAL);
	ck_assert_int_eq(fp8kv_buffer_upload(cpu, NULL, key, 4), FP8KV_EINVAL);
	ck_assert_int_eq(fp8kv_buffer_download(cpu, key_cache, NULL, 4), FP8KV_EINVAL);
	ck_assert_int_eq(fp8kv_buffer_fill(cpu, NULL, 0, 4), FP8KV_EINVAL);
	ck_assert(caches_untouched());
}
END_TEST

START_TEST(status_strings)
{
	const fp8kv_status all[] = {FP8KV_OK, FP8KV_EINVAL, FP8KV_ENOTSUP, FP8KV_ERANGE,
				    FP8KV_ENODEV, FP8KV_EBACKEND, FP8KV_ENOMEM};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		ck_assert_int_gt(strlen(fp8kv_strerror(all[i])), 0);
		for (size_t j = 0; j < i; j++)
			ck_assert_str_ne(fp8kv_strerror(all[i]), fp8kv_strerror(all[j]));
	}
	ck_assert_str_eq(fp8kv_strerror((fp8kv_status)99), "unknown status");
	ck_assert_str_eq(fp8kv_version(), FP8KV_VERSION_STRING);
	fp8kv_dtype t;
	ck_assert_int_eq(fp8kv_dtype_from_name("e5m2fnuz", &t), FP8KV_OK);
	ck_assert_int_eq(t, FP8KV_E5M2FNUZ);
	ck_assert_int_eq(fp8kv_dtype_from_name("fp8", &t), FP8KV_EINVAL);
	ck_assert_int_eq(fp8kv_dtype_from_name("e2m1", &t), FP8KV_OK);
	ck_assert_int_eq(t, FP8KV_E2M1);
	ck_assert_int_eq(fp8kv_dtype_from_name("int8", &t), FP8KV_OK);
	ck_assert_int_eq(t, FP8KV_INT8);
	ck_assert_str_eq(fp8kv_dtype_name(FP8KV_E2M1), "e2m1");
	ck_assert_str_eq(fp8kv_dtype_name(FP8KV_INT8), "int8");
	/* an e2m1 element is a byte of two values, as torch.float4_e2m1fn_x2 */
	ck_assert_uint_eq(fp8kv_dtype_size(FP8KV_E2M1), 1);
	ck_assert_uint_eq(fp8kv_dtype_size(FP8KV_INT8), 1);
	ck_assert(!fp8kv_dtype_is_fp8(FP8KV_E2M1) && !fp8kv_dtype_is_fp8(FP8KV_INT8));
	ck_assert(fp8kv_fp8_max(FP8KV_E2M1) == 0.0f && fp8kv_fp8_max(FP8KV_INT8) == 0.0f);
	ck_assert_ptr_null(fp8kv_dtype_name((fp8kv_dtype)9));
	ck_assert_uint_eq(fp8kv_dtype_size((fp8kv_dtype)-1), 0);
}
END_TEST

/* The one spelling of each scale mode (the lead's list, written out here,
 * not read from the library), both ways, and the retired names refused. */
START_TEST(scale_mode_names)
{
	static const struct {
		fp8kv_scale_mode mode;
		const char *name;
	} names[] = {{FP8KV_SCALE_ONE, "one"},
		     {FP8KV_SCALE_TENSOR, "tensor"},
		     {FP8KV_SCALE_HEAD, "head"},
		     {FP8KV_SCALE_TOKEN_HEAD, "token_head"}};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		fp8kv_scale_mode m = (fp8kv_scale_mode)99;
		ck_assert_str_eq(fp8kv_scale_mode_name(names[i].mode), names[i].name);
		ck_assert_int_eq(fp8kv_scale_mode_from_name(names[i].name, &m), FP8KV_OK);
		ck_assert_int_eq(m, names[i].mode);
	}
	ck_assert_ptr_null(fp8kv_scale_mode_name((fp8kv_scale_mode)4));
	ck_assert_ptr_null(fp8kv_scale_mode_name((fp8kv_scale_mode)-1));
	static const char *const retired[] = {"dynamic", "implicit", "token-head", "TOKEN_HEAD",
					      "", "one "};
	for (size_t i = 0; i < sizeof retired / sizeof retired[0]; i++) {
		fp8kv_scale_mode m = (fp8kv_scale_mode)99;
		ck_assert_int_eq(fp8kv_scale_mode_from_name(retired[i], &m), FP8KV_EINVAL);
		ck_assert_int_eq(m, 99); /* untouched */
		ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "unknown scale mode name"));
	}
	fp8kv_scale_mode m;
	ck_assert_int_eq(fp8kv_scale_mode_from_name(NULL, &m), FP8KV_EINVAL);
	ck_assert_int_eq(fp8kv_scale_mode_from_name("one", NULL), FP8KV_EINVAL);
}
END_TEST

START_TEST(slot_checker_arguments)
{
	fp8kv_slot_report r;
	ck_assert_int_eq(fp8kv_check_slots(cpu, slots, T, FP8KV_INDEX_INT64, -1, &r), FP8KV_EINVAL);
	ck_assert_int_eq(fp8kv_check_slots(cpu, slots, T, (fp8kv_index_type)2, 8, &r),
			 FP8KV_EINVAL);
	ck_assert_int_eq(fp8kv_check_slots(cpu, NULL, T, FP8KV_INDEX_INT64, 8, &r), FP8KV_EINVAL);
	ck_assert_int_eq(fp8kv_check_slots(cpu, slots, T, FP8KV_INDEX_INT64, 8, NULL),
			 FP8KV_EINVAL);
}
END_TEST

static Suite *errors_suite(void)
{
	Suite *s = suite_create("errors");
	TCase *tc = tcase_create("descriptor");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, the_valid_descriptor_writes);
	tcase_add_loop_test(tc, each_bad_input_is_rejected_before_writing, 0, NUM_BAD);
	tcase_add_test(tc, null_descriptor_and_backend);
	tcase_add_test(tc, zero_tokens_need_no_inputs);
	tcase_add_test(tc, out_of_range_skips_only_bad_tokens);
	tcase_add_test(tc, out_of_range_messages_name_the_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, backend_names);
	tcase_add_test(tc, backend_from_environment);
	tcase_add_test(tc, flat_conversion_errors);
	tcase_add_test(tc, buffer_errors);
	tcase_add_test(tc, status_strings);
	tcase_add_test(tc, scale_mode_names);
	tcase_add_test(tc, slot_checker_arguments);
	suite_add_tcase(s, tc);
	add_group_error_tests(s);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(errors_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
