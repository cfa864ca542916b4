/* SPDX-License-Identifier: MIT */
/* test_errors.h - the parts of the test_errors program. */
#ifndef FP8KV_TESTS_TEST_ERRORS_H
#define FP8KV_TESTS_TEST_ERRORS_H

#include <check.h>

/* The bad inputs of the grouped and MLA writes (test_errors_group.c). */
void add_group_error_tests(Suite *s);

#endif /* FP8KV_TESTS_TEST_ERRORS_H */
