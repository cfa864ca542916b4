/* SPDX-License-Identifier: MIT */
/* tool_cli.c - the command-line and output helpers of the tools (tool_cli.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool_cli.h"

int tool_parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		const unsigned digit = (unsigned)(*s - '0');
		if (digit > 9 || v > (UINT64_MAX - digit) / 10)
			return -1;
		v = v * 10 + digit;
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int tool_find(const char *v, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(v, names[i]))
			return i;
	return -1;
}

int tool_option_with_value(const char *a, const char *v, const char *const *options, int n)
{
	if (tool_find(a, options, n) < 0) {
		fprintf(stderr, "%s: unknown option '%s'\n", tool_name, a);
		return -1;
	}
	if (!v) {
		fprintf(stderr, "%s: %s needs a value\n", tool_name, a);
		return -1;
	}
	return 0;
}

int tool_bad_value(const char *option, const char *value, const char *why, ...)
{
	va_list ap;
	fprintf(stderr, "%s: %s '%s': ", tool_name, option, value);
	va_start(ap, why);
	vfprintf(stderr, why, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

void tool_usage_hint(void)
{
	fprintf(stderr, "Try '%s --help' for the options.\n", tool_name);
}

int tool_open_failure_status(fp8kv_status st)
{
	return st == FP8KV_EINVAL ? TOOL_EXIT_USAGE
	       : st == FP8KV_ENODEV ? TOOL_EXIT_ABSENT
				    : TOOL_EXIT_FAILED;
}

FILE *tool_open_output(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		fprintf(stderr, "%s: cannot write %s: %s\n", tool_name, path, strerror(errno));
	return f;
}

int tool_close_output(FILE *f, const char *name)
{
	/* an earlier write may have failed and left only the error flag;
	 * fclose flushes the rest */
	const int lost = ferror(f);
	errno = 0;
	const int close_failed = fclose(f) != 0;
	if (!lost && !close_failed)
		return 0;
	fprintf(stderr, "%s: cannot write %s: %s\n", tool_name, name,
		errno ? strerror(errno) : "a write failed");
	return -1;
}

static void check_stdout(void)
{
	if (tool_close_output(stdout, "standard output"))
		_exit(TOOL_EXIT_FAILED);
}

void tool_check_stdout_at_exit(void)
{
	atexit(check_stdout);
}

void tool_out_of_memory(void)
{
	fprintf(stderr, "%s: out of memory\n", tool_name);
	exit(TOOL_EXIT_FAILED);
}
