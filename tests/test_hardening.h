/* SPDX-License-Identifier: MIT */
/* test_hardening.h - the parts of the test_hardening program. */
#ifndef FP8KV_TESTS_TEST_HARDENING_H
#define FP8KV_TESTS_TEST_HARDENING_H

#include <check.h>

/* Shared memory in grouped and MLA writes, and a module without them
 * (test_hardening_group.c). */
void add_group_hardening_tests(Suite *s);

#endif /* FP8KV_TESTS_TEST_HARDENING_H */
