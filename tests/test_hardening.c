/* SPDX-License-Identifier: MIT */
/*
 * test_hardening.c - what a hostile or careless caller can do, and what the
 * library must then do, on the CPU backend:
 *   - arguments that share memory: every rejected combination returns
 *     FP8KV_EINVAL naming both arguments and leaves poisoned memory as it
 *     was; the layouts engines use (K and V as halves of one tensor, or
 *     interleaved per page) are accepted and written right;
 *   - a slot mapping that changes during the call (here: one that aliases
 *     the cache through a second mapping of the same pages, which no
 *     address check can see) skips no token without FP8KV_ERANGE;
 *   - malformed device numbers; outputs of amax and check_slots untouched
 *     by a rejected call; modules that refuse or fail without a word, and
 *     relative directories in FP8KV_MODULE_PATH.
 * The grouped and MLA writes' are test_hardening_group.c's.
 * Expected bytes come from copies (cache dtype = input dtype) and from
 * powers of two, whose FP8 codes are written out here, never from the
 * library.
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

static int all_bytes(const void *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (((const uint8_t *)p)[i] != v)
			return 0;
	return 1;
}

/* bf16 of 2^e, and its e4m3fn code (exponent e + 7, no mantissa). */
static uint16_t bf16_pow2(int e) { return (uint16_t)((127 + e) << 7); }
static uint8_t e4m3fn_pow2(int e) { return (uint8_t)((e + 7) << 3); }

/* ---- arguments that share memory ---- */

enum { T = 4, H = 2, D = 8, BLOCKS = 3, BS = 4 };
#define CACHE_ELEMS (BLOCKS * BS * H * D)

typedef struct fixture {
	uint16_t key[T * H * D], value[T * H * D];
	int64_t slots[T];
	uint8_t arena[4 * CACHE_ELEMS * 4]; /* room for every output, poisoned */
} fixture;

/* A valid bf16 -> e4m3fn NHD write into two disjoint parts of the arena. */
static void fixture_init(fixture *f, fp8kv_cache_write *d)
{
	for (int i = 0; i < T * H * D; i++) {
		f->key[i] = bf16_pow2(i % 7 - 3);
		f->value[i] = bf16_pow2(i % 5 - 2);
	}
	for (int t = 0; t < T; t++)
		f->slots[t] = 2 * t + 1;
	memset(f->arena, POISON, sizeof f->arena);
	fp8kv_cache_write_init(d, T, H, D, D, BLOCKS, BS, FP8KV_LAYOUT_NHD);
	d->key = f->key;
	d->value = f->value;
	d->key_cache = f->arena;
	d->value_cache = f->arena + CACHE_ELEMS;
	d->slot_mapping = f->slots;
}

/* The call is rejected, names both arguments, and writes nothing. */
static void expect_rejected(fixture *f, const fp8kv_cache_write *d, const char *a, const char *b)
{
	uint8_t before[sizeof f->arena];
	memcpy(before, f->arena, sizeof before);
	ck_assert_int_eq(fp8kv_reshape_and_cache(cpu, d, NULL), FP8KV_EINVAL);
	const char *msg = fp8kv_last_error();
	ck_assert_msg(strstr(msg, a) && strstr(msg, b), "message '%s' should name %s and %s", msg,
		      a, b);
	ck_assert_msg(!memcmp(before, f->arena, sizeof before), "a rejected call wrote memory");
}

START_TEST(caches_are_one)
{
	fixture f;
	fp8kv_cache_write d;
	fixture_init(&f, &d);
	d.value_cache = d.key_cache;
	expect_rejected(&f, &d, "key_cache", "value_cache");
}
END_TEST

START_TEST(caches_overlap_by_one_row)
{
	fixture f;
	fp8kv_cache_write d;
	fixture_init(&f, &d);
	d.value_cache = f.arena + CACHE_ELEMS - D; /* the key cache's last row */
	expect_rejected(&f, &d, "key_cache", "value_cache");
}
END_TEST

START_TEST(scale_caches_are_one)
{
	fixture f;
	fp8kv_cache_write d;
	fixture_init(&f, &d);
	float *scales = (float *)(f.arena + 2 * CACHE_ELEMS);
	d.scale_mode = FP8KV_SCALE_TOKEN_HEAD;
	d.k_scale_cache = scales;
	d.v_scale_cache = scales;
	expect_rejected(&f, &d, "k_scale_cache", "v_scale_cache");
}
END_TEST

START_TEST(scale_cache_in_data_cache)
{
	fixture f;
	fp8kv_cache_write d;
	fixture_init(&f, &d);
	d.scale_mode = FP8KV_SCALE_TOKEN_HEAD;
	d.k_scale_cache = (float *)(f.arena + CACHE_ELEMS + 64); /* inside value_cache */
	d.v_scale_cache = (float *)(f.arena + 2 * CACHE_ELEMS);
	expect_rejected(&f, &d, "value_cache", "k_scale_cache");
}
END_TEST

START_TEST(counter_in_key_cache)
{
	fixture f;
	fp8kv_cache_write d;
	fixture_init(&f, &d);
	d.overflow_count = (uint64_t *)(f.arena + 16);
	expect_rejected(&f, &d, "key_cache", "overflow_count");
}
END_TEST

START_TEST(counters_are_one)
{
	fixture f;
	fp8kv_cache_write d;
	fixture_init(&f, &d);
	uint64_t *counter = (uint64_t *)(f.arena + 2 * CACHE_ELEMS);
	d.overflow_count = counter;
	d.nan_count = counter;
	expect_rejected(&f, &d, "overflow_count", "nan_count");
}
END_TEST

START_TEST(amax_in_value_cache)
{
	fixture f;
	fp8kv_cache_write d;
	fixture_init(&f, &d);
	d.v_amax = (float *)(f.arena + CACHE_ELEMS + 8);
	expect_rejected(&f, &d, "value_cache", "v_amax");
}
END_TEST

START_TEST(slot_mapping_in_its_cache)
{
	fixture f;
	fp8kv_cache_write d;
	fixture_init(&f, &d);
	int64_t *slots = (int64_t *)(f.arena + CACHE_ELEMS); /* value cache block 0 */
	memcpy(slots, f.slots, sizeof f.slots);
	d.slot_mapping = slots;
	expect_rejected(&f, &d, "value_cache", "slot_mapping");
}
END_TEST

START_TEST(input_in_cache)
{
	fixture f;
	fp8kv_cache_write d;
	fixture_init(&f, &d);
	uint16_t *key = (uint16_t *)(f.arena + 2 * CACHE_ELEMS);
	d.key = key;
	d.key_cache = f.arena + 2 * CACHE_ELEMS + 32; /* over the key input */
	expect_rejected(&f, &d, "key_cache", "key");
}
END_TEST

START_TEST(scale_in_cache)
{
	fixture f;
	fp8kv_cache_write d;
	fixture_init(&f, &d);
	float *s = (float *)(f.arena + 40);
	d.scale_mode = FP8KV_SCALE_TENSOR;
	d.k_scale = s;
	d.v_scale = s; /* inputs may share: only the key cache is a conflict */
	expect_rejected(&f, &d, "key_cache", "k_scale");
}
END_TEST

START_TEST(quantize_in_place)
{
	uint16_t buf[64];
	for (int i = 0; i < 64; i++)
		buf[i] = bf16_pow2(1);
	uint16_t before[64];
	memcpy(before, buf, sizeof buf);
	ck_assert_int_eq(fp8kv_quantize(cpu, buf, FP8KV_E4M3FN, buf, FP8KV_BF16, 64,
					FP8KV_SCALE_ONE, NULL, FP8KV_SATURATE, NULL, NULL),
			 FP8KV_EINVAL);
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "dst"));
	ck_assert(!memcmp(before, buf, sizeof buf));
	uint8_t codes[64];
	ck_assert_int_eq(fp8kv_dequantize(cpu, buf + 8, FP8KV_BF16, (uint8_t *)buf + 20,
					  FP8KV_E4M3FN, 16, FP8KV_SCALE_ONE, NULL, NULL),
			 FP8KV_EINVAL);
	ck_assert(!memcmp(before, buf, sizeof buf));
	/* apart, both work */
	ck_assert_int_eq(fp8kv_quantize(cpu, codes, FP8KV_E4M3FN, buf, FP8KV_BF16, 64,
					FP8KV_SCALE_ONE, NULL, FP8KV_SATURATE, NULL, NULL),
			 FP8KV_OK);
	ck_assert(all_bytes(codes, 64, e4m3fn_pow2(1)));
}
END_TEST

/* The bytes of a copy write (bf16 cache = bf16 input) at element offset
 * off of the cache for token t, head h. */
static void expect_copied(const uint16_t *cache, int64_t stride_block, int64_t stride_slot,
			  int64_t stride_head, const uint16_t *input, const int64_t *slots)
{
	for (int t = 0; t < T; t++)
		for (int h = 0; h < H; h++) {
			const int64_t s = slots[t];
			const uint16_t *row = cache + (s / BS) * stride_block + (s % BS) * stride_slot +
					      h * stride_head;
			ck_assert(!memcmp(row, input + (t * H + h) * D, D * 2));
		}
}

/* vLLM: one tensor [2][blocks][block_size][heads][dim], K the first half. */
START_TEST(halves_of_one_tensor)
{
	fixture f;
	fp8kv_cache_write d;
	fixture_init(&f, &d);
	uint16_t *kv = (uint16_t *)f.arena; /* 2 * CACHE_ELEMS bf16 */
	d.input_dtype = d.cache_dtype = FP8KV_BF16;
	d.key_cache = kv;
	d.value_cache = kv + CACHE_ELEMS;
	ck_assert_int_eq(fp8kv_reshape_and_cache(cpu, &d, NULL), FP8KV_OK);
	expect_copied(kv, BS * H * D, H * D, D, f.key, f.slots);
	expect_copied(kv + CACHE_ELEMS, BS * H * D, H * D, D, f.value, f.slots);
	/* every byte no token wrote keeps the poison */
	int written = 0;
	for (size_t i = 0; i < 2 * CACHE_ELEMS; i++)
		written += kv[i] != (uint16_t)(POISON * 0x101);
	ck_assert_int_eq(written, 2 * T * H * D);
}
END_TEST

/* FlashInfer: one tensor [pages][2][page_size][heads][dim]; K and V spans
 * interleave without sharing an element. */
START_TEST(interleaved_per_page)
{
	fixture f;
	fp8kv_cache_write d;
	fixture_init(&f, &d);
	uint8_t *kv = f.arena; /* 2 * CACHE_ELEMS e4m3fn */
	const int64_t page = BS * H * D;
	d.key_cache = kv;
	d.value_cache = kv + page;
	d.key_cache_stride_block = d.value_cache_stride_block = 2 * page;
	ck_assert_int_eq(fp8kv_reshape_and_cache(cpu, &d, NULL), FP8KV_OK);
	int written = 0;
	for (int t = 0; t < T; t++)
		for (int h = 0; h < H; h++)
			for (int i = 0; i < D; i++) {
				const int64_t s = f.slots[t], e = (t * H + h) * D + i;
				const int64_t at = (s / BS) * 2 * page + (s % BS) * H * D + h * D + i;
				ck_assert_uint_eq(kv[at], e4m3fn_pow2((int)(e % 7) - 3));
				ck_assert_uint_eq(kv[at + page], e4m3fn_pow2((int)(e % 5) - 2));
			}
	for (size_t i = 0; i < 2 * CACHE_ELEMS; i++)
		written += kv[i] != POISON;
	ck_assert_int_eq(written, 2 * T * H * D);
	ck_assert(all_bytes(kv + 2 * CACHE_ELEMS, sizeof f.arena - 2 * CACHE_ELEMS, POISON));

	/* shifted by one element, the interleaved pages share elements */
	d.value_cache = kv + page - 1;
	expect_rejected(&f, &d, "key_cache", "value_cache");
}
END_TEST

/* ---- a mapping that changes during the call ---- */

/*
 * The slot mapping is a second view (memfd, mapped twice) of the page that
 * holds the key cache: token 0's key row, when written, becomes token 1's
 * slot, out of range.  The library sees two unrelated addresses.  Token 1
 * must then be reported, from the read that skipped it.
 */
START_TEST(mapping_changed_by_the_write)
{
	const long page = sysconf(_SC_PAGESIZE);
	const int fd = memfd_create("fp8kv-alias", 0);
	if (fd < 0 || ftruncate(fd, page) != 0)
		return; /* no memfd: nothing to alias with */
	uint8_t *cache = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int64_t *slots = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert(cache != MAP_FAILED && slots != MAP_FAILED && (void *)cache != (void *)slots);

	/* one head of 8 elements; the key cache's slot 2 covers bytes 16..23,
	 * which are slots[2]; token 0 writes slot 2, token 2 reads slots[2] */
	enum { DIM = 8, NBLOCKS = 4, BSIZE = 4 };
	memset(cache, POISON, (size_t)page);
	slots[0] = 2;
	slots[1] = 5;
	slots[2] = 6; /* valid until token 0 writes over it */
	uint16_t key[3 * DIM], value[3 * DIM];
	uint8_t value_cache[NBLOCKS * BSIZE * DIM];
	memset(value_cache, POISON, sizeof value_cache);
	for (int i = 0; i < 3 * DIM; i++)
		key[i] = value[i] = bf16_pow2(1); /* code 0x40 */
	fp8kv_cache_write d;
	fp8kv_cache_write_init(&d, 3, 1, DIM, DIM, NBLOCKS, BSIZE, FP8KV_LAYOUT_NHD);
	d.key = key;
	d.value = value;
	d.key_cache = cache + 0; /* slot s at bytes 8 s */
	d.value_cache = value_cache;
	d.slot_mapping = slots;
	/* token 0 -> slot 2 = bytes 16..23 = slots[2] := 0x4040...40 */
	const fp8kv_status st = fp8kv_reshape_and_cache(cpu, &d, NULL);
	ck_assert_int_eq(slots[2], (int64_t)0x4040404040404040ll);
	ck_assert_msg(st == FP8KV_ERANGE, "token 2 was skipped without FP8KV_ERANGE (%s)",
		      fp8kv_strerror(st));
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "token 2"));
	/* token 1 was written, token 2 was not */
	ck_assert(all_bytes(value_cache + 5 * DIM, DIM, 0x40));
	ck_assert(all_bytes(value_cache + 6 * DIM, DIM, POISON));
	munmap(cache, (size_t)page);
	munmap(slots, (size_t)page);
	close(fd);
}
END_TEST

/* ---- names, outputs of helpers, modules ---- */

START_TEST(device_numbers_are_digits)
{
	static const char *bad[] = {"cpu:-0", "cpu: 0", "cpu:+0", "cpu:0x0", "cpu:", "cpu:0 "};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		fp8kv_backend *b = (fp8kv_backend *)&b;
		ck_assert_msg(fp8kv_backend_open(bad[i], &b) == FP8KV_EINVAL, "'%s' accepted", bad[i]);
		ck_assert_ptr_null(b);
	}
	fp8kv_backend *b = NULL;
	ck_assert_int_eq(fp8kv_backend_open("cpu:0", &b), FP8KV_OK);
	fp8kv_backend_close(b);
}
END_TEST

START_TEST(rejected_helpers_write_nothing)
{
	uint16_t src[4] = {0};
	float amax = -7.0f;
	ck_assert_int_eq(fp8kv_amax(cpu, (uint8_t *)src + 1, FP8KV_BF16, 2, &amax), FP8KV_EINVAL);
	ck_assert(amax == -7.0f);
	fp8kv_slot_report report;
	memset(&report, POISON, sizeof report);
	int64_t slots[2] = {0, 1};
	ck_assert_int_eq(fp8kv_check_slots(cpu, (uint8_t *)slots + 4, 1, FP8KV_INDEX_INT64, 8,
					   &report),
			 FP8KV_EINVAL);
	ck_assert(all_bytes(&report, sizeof report, POISON));
	ck_assert_int_eq(fp8kv_check_slots(cpu, NULL, 3, FP8KV_INDEX_INT64, 8, &report),
			 FP8KV_EINVAL);
	ck_assert(all_bytes(&report, sizeof report, POISON));
}
END_TEST

/* the build tree's tests/.libs, where fp8kv_planted.so is */
static void use_planted_module(void)
{
	static char path[4096];
	const char *top = getenv("abs_top_builddir");
	ck_assert_ptr_nonnull(top);
	snprintf(path, sizeof path, "%s/tests/.libs", top);
	ck_assert_int_eq(setenv("FP8KV_MODULE_PATH", path, 1), 0);
}

START_TEST(module_that_refuses)
{
	fp8kv_backend *b = NULL;
	use_planted_module();
	unsetenv("FP8KV_PLANTED_MODE");
	ck_assert_int_eq(fp8kv_backend_open("planted", &b), FP8KV_EBACKEND);
	ck_assert_msg(strstr(fp8kv_last_error(), "refused") &&
			      strstr(fp8kv_last_error(), "returned NULL"),
		      "message: %s", fp8kv_last_error());
}
END_TEST

START_TEST(module_that_fails_silently)
{
	fp8kv_backend *b = NULL;
	use_planted_module();
	setenv("FP8KV_PLANTED_MODE", "silent-open", 1);
	ck_assert_int_eq(fp8kv_backend_open("planted", &b), FP8KV_EBACKEND);
	ck_assert_msg(strstr(fp8kv_last_error(), "planted") && strstr(fp8kv_last_error(), "open"),
		      "message: '%s'", fp8kv_last_error());
	unsetenv("FP8KV_PLANTED_MODE");
}
END_TEST

START_TEST(relative_module_directories_ignored)
{
	const char *top = getenv("abs_top_builddir");
	ck_assert_ptr_nonnull(top);
	ck_assert_int_eq(chdir(top), 0);
	setenv("FP8KV_MODULE_PATH", "tests/.libs:./tests/.libs", 1);
	fp8kv_backend *b = NULL;
	ck_assert_int_eq(fp8kv_backend_open("planted", &b), FP8KV_ENODEV);
	ck_assert_ptr_nonnull(strstr(fp8kv_last_error(), "not available"));
}
END_TEST

static Suite *hardening_suite(void)
{
	Suite *s = suite_create("hardening");
	TCase *overlap = tcase_create("overlap");
	tcase_add_checked_fixture(overlap, setup, teardown);
	tcase_add_test(overlap, caches_are_one);
	tcase_add_test(overlap, caches_overlap_by_one_row);
	tcase_add_test(overlap, scale_caches_are_one);
	tcase_add_test(overlap, scale_cache_in_data_cache);
	tcase_add_test(overlap, counter_in_key_cache);
	tcase_add_test(overlap, counters_are_one);
	tcase_add_test(overlap, amax_in_value_cache);
	tcase_add_test(overlap, slot_mapping_in_its_cache);
	tcase_add_test(overlap, input_in_cache);
	tcase_add_test(overlap, scale_in_cache);
	tcase_add_test(overlap, quantize_in_place);
	tcase_add_test(overlap, halves_of_one_tensor);
	tcase_add_test(overlap, interleaved_per_page);
	suite_add_tcase(s, overlap);

	TCase *once = tcase_create("read_once");
	tcase_add_checked_fixture(once, setup, teardown);
	tcase_add_test(once, mapping_changed_by_the_write);
	suite_add_tcase(s, once);

	TCase *misc = tcase_create("names_and_modules");
	tcase_add_checked_fixture(misc, setup, teardown);
	tcase_add_test(misc, device_numbers_are_digits);
	tcase_add_test(misc, rejected_helpers_write_nothing);
	tcase_add_test(misc, module_that_refuses);
	tcase_add_test(misc, module_that_fails_silently);
	tcase_add_test(misc, relative_module_directories_ignored);
	suite_add_tcase(s, misc);
	add_group_hardening_tests(s);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hardening_suite());
	srunner_run_all(sr, CK_NORMAL);
	const int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
