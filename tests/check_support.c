/* SPDX-License-Identifier: MIT */
/*
 * check_support.c - see check_support.h.
 */
#include <stdlib.h>

#include "check_support.h"

fp8kv_backend *cpu;

static void open_cpu(void)
{
	ck_assert_int_eq(fp8kv_backend_open("cpu", &cpu), FP8KV_OK);
}

static void close_cpu(void)
{
	fp8kv_backend_close(cpu);
	cpu = NULL;
}

TCase *cpu_tcase(Suite *s, const char *name, double timeout)
{
	TCase *tc = tcase_create(name);
	tcase_add_checked_fixture(tc, open_cpu, close_cpu);
	if (timeout > 0)
		tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

int run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	const int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
