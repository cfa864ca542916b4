/* SPDX-License-Identifier: MIT */
/*
 * setuid_probe.c - run by tests/check_setuid.sh, once plainly and once as a
 * setuid program (AT_SECURE).  It links libfp8kv's objects statically, so
 * that it needs no LD_LIBRARY_PATH, which the loader ignores under AT_SECURE.
 *
 * It opens the backend "planted" (tests/planted_module.c) with the
 * FP8KV_MODULE_PATH it was given, then "auto" with the FP8KV_BACKEND it was
 * given, and prints what happened.  The script decides from the marker file
 * the planted module's constructor leaves.
 *
 * Exit: 0 it ran, 77 "secure" was asked for and AT_SECURE is not set (the
 * file system is mounted nosuid, say), 1 usage.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>

#include "fp8kv.h"

int main(int argc, char **argv)
{
	if (argc != 2 || (strcmp(argv[1], "secure") && strcmp(argv[1], "plain"))) {
		fprintf(stderr, "usage: setuid_probe secure|plain\n");
		return 1;
	}
	const unsigned long secure = getauxval(AT_SECURE);
	printf("AT_SECURE=%lu\n", secure);
	if (!strcmp(argv[1], "secure") && !secure)
		return 77;

	fp8kv_backend *b = NULL;
	fp8kv_status s = fp8kv_backend_open("planted", &b);
	printf("open(\"planted\"): %s: %s\n", fp8kv_strerror(s), fp8kv_last_error());
	fp8kv_backend_close(b);
	b = NULL;
	s = fp8kv_backend_open("auto", &b);
	printf("open(\"auto\"): %s: %s%s\n", fp8kv_strerror(s),
	       s == FP8KV_OK ? "backend " : fp8kv_last_error(),
	       s == FP8KV_OK ? fp8kv_backend_name(b) : "");
	fp8kv_backend_close(b);
	return 0;
}
