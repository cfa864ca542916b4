/* SPDX-License-Identifier: MIT */
/*
 * check_support.h - what the Check programs of tests/ share: the CPU
 * backend as a fixture, and running a suite.
 */
#ifndef FP8KV_TESTS_CHECK_SUPPORT_H
#define FP8KV_TESTS_CHECK_SUPPORT_H

#include <check.h>

#include "fp8kv.h"

/* The CPU backend, open while a test of a cpu_tcase runs. */
extern fp8kv_backend *cpu;

/* A new test case of s, named name, whose tests find the CPU backend open
 * in `cpu` (a checked fixture: opened and closed around each test); with a
 * timeout in seconds, or Check's default when timeout is 0. */
TCase *cpu_tcase(Suite *s, const char *name, double timeout);

/* Runs s (forking as Check is told to) and returns the program's exit
 * status: EXIT_SUCCESS when no test failed. */
int run_suite(Suite *s);

#endif /* FP8KV_TESTS_CHECK_SUPPORT_H */
