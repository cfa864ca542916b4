/* SPDX-License-Identifier: MIT */
/*
 * test_check_slots.c - fp8kv_check_slots on the CPU backend counts padding,
 * out-of-range and duplicate slots of mappings built so that their counts
 * and first offenders are known by construction; both index types, and a
 * slot space so large that the backend cannot use a bitmap.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check_support.h"
#include "fp8kv.h"

/* A mapping of n tokens over num_slots slots, and what it holds.  Token t
 * is padding when t % 7 == 3, out of range when t % 11 == 5 (and not
 * padding), a copy of the slot of token t - 13 when t % 17 == 16 and token
 * t - 13 is an ordinary one, else slot base + t * stride, all distinct. */
typedef struct mapping {
	int64_t n, num_slots;
	int64_t *slots;
	fp8kv_slot_report want;
} mapping;

static int ordinary(int64_t t)
{
	return t % 7 != 3 && t % 11 != 5 && t % 17 != 16;
}

static mapping build(int64_t n, int64_t num_slots, int64_t base, int64_t stride)
{
	mapping m = {n, num_slots, malloc((size_t)(n ? n : 1) * sizeof(int64_t)),
		     {0, 0, 0, -1, -1, -1}};
	ck_assert_ptr_nonnull(m.slots);
	for (int64_t t = 0; t < n; t++) {
		if (t % 7 == 3) {
			m.slots[t] = -1 - t % 3;
			if (m.want.padding++ == 0)
				m.want.first_padding = t;
		} else if (t % 11 == 5) {
			m.slots[t] = num_slots + (t % 2 ? t : 0); /* num_slots itself, and beyond */
			if (m.want.out_of_range++ == 0)
				m.want.first_out_of_range = t;
		} else if (t % 17 == 16 && t >= 13 && ordinary(t - 13)) {
			m.slots[t] = m.slots[t - 13];
			if (m.want.duplicates++ == 0)
				m.want.first_duplicate = t;
		} else {
			m.slots[t] = base + t * stride;
		}
	}
	return m;
}

static void expect_report(const mapping *m, fp8kv_index_type type)
{
	void *slots = m->slots;
	int32_t *narrow = NULL;
	if (type == FP8KV_INDEX_INT32) {
		narrow = malloc((size_t)(m->n ? m->n : 1) * sizeof *narrow);
		ck_assert_ptr_nonnull(narrow);
		for (int64_t t = 0; t < m->n; t++) {
			ck_assert(m->slots[t] >= INT32_MIN && m->slots[t] <= INT32_MAX);
			narrow[t] = (int32_t)m->slots[t];
		}
		slots = narrow;
	}
	fp8kv_slot_report r;
	memset(&r, 0x5A, sizeof r);
	ck_assert_msg(fp8kv_check_slots(cpu, slots, m->n, type, m->num_slots, &r) == FP8KV_OK,
		      "%s", fp8kv_last_error());
	ck_assert_int_eq(r.padding, m->want.padding);
	ck_assert_int_eq(r.out_of_range, m->want.out_of_range);
	ck_assert_int_eq(r.duplicates, m->want.duplicates);
	ck_assert_int_eq(r.first_padding, m->want.first_padding);
	ck_assert_int_eq(r.first_out_of_range, m->want.first_out_of_range);
	ck_assert_int_eq(r.first_duplicate, m->want.first_duplicate);
	free(narrow);
}

START_TEST(empty_mapping)
{
	mapping m = build(0, 16, 0, 1);
	expect_report(&m, FP8KV_INDEX_INT64);
	expect_report(&m, FP8KV_INDEX_INT32);
	free(m.slots);
}
END_TEST

START_TEST(constructed_counts)
{
	/* dense: the slots fill most of the space (the bitmap path) */
	mapping m = build(5000, 5000, 0, 1);
	ck_assert_int_gt(m.want.padding, 0);
	ck_assert_int_gt(m.want.out_of_range, 0);
	ck_assert_int_gt(m.want.duplicates, 0);
	expect_report(&m, FP8KV_INDEX_INT64);
	expect_report(&m, FP8KV_INDEX_INT32);
	free(m.slots);
}
END_TEST

START_TEST(huge_slot_space)
{
	/* 2^40 slots: a bitmap would take 128 GiB, so the backend must count
	 * duplicates another way and still find the same ones */
	const int64_t num_slots = (int64_t)1 << 40;
	mapping m = build(5000, num_slots, num_slots / 3, 104729);
	expect_report(&m, FP8KV_INDEX_INT64);
	free(m.slots);
}
END_TEST

START_TEST(one_slot_many_times)
{
	/* tokens 2, 4 and 7 repeat token 0's slot; the first duplicate is 2 */
	int64_t slots[8] = {9, 1, 9, 2, 9, -5, 3, 9};
	for (int big = 0; big < 2; big++) {
		fp8kv_slot_report r;
		ck_assert_int_eq(fp8kv_check_slots(cpu, slots, 8, FP8KV_INDEX_INT64,
						   big ? (int64_t)1 << 50 : 10, &r),
				 FP8KV_OK);
		ck_assert_int_eq(r.duplicates, 3);
		ck_assert_int_eq(r.first_duplicate, 2);
		ck_assert_int_eq(r.padding, 1);
		ck_assert_int_eq(r.first_padding, 5);
		ck_assert_int_eq(r.out_of_range, 0);
		ck_assert_int_eq(r.first_out_of_range, -1);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("check_slots");
	TCase *tc = cpu_tcase(s, "cpu", 0);
	tcase_add_test(tc, empty_mapping);
	tcase_add_test(tc, constructed_counts);
	tcase_add_test(tc, huge_slot_space);
	tcase_add_test(tc, one_slot_many_times);
	return run_suite(s);
}
