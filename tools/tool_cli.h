/* SPDX-License-Identifier: MIT */
/*
 * tool_cli.h - what fp8kv-validate and fp8kv-bench share: strict option
 * values, the wording of a bad one, the exit status of a backend that does
 * not open, and output whose loss is an error.
 */
#ifndef FP8KV_TOOLS_TOOL_CLI_H
#define FP8KV_TOOLS_TOOL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "fp8kv.h"

/* Exit statuses the two tools share (each man page lists its own). */
enum {
	TOOL_EXIT_USAGE = 2,   /* a bad option or option value */
	TOOL_EXIT_FAILED = 3,  /* a backend failed, or output was lost */
	TOOL_EXIT_ABSENT = 77, /* a requested backend is absent (Automake's skip) */
};

/* The program's name in its messages; each tool defines it. */
extern const char tool_name[];

/* s as a decimal number in [min, max]: digits only, no sign, space or
 * suffix.  0, or -1 when s is not such a number. */
int tool_parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* The index of v in names (n of them), or -1. */
int tool_find(const char *v, const char *const *names, int n);

/* Whether a, followed by v (NULL at the end of the command line), is one
 * of the n options that take a value, and has it: 0, or -1 with a
 * message. */
int tool_option_with_value(const char *a, const char *v, const char *const *options, int n);

/* Prints "NAME: OPTION 'VALUE': WHY" on stderr; returns -1. */
int tool_bad_value(const char *option, const char *value, const char *why, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

/* The line after a usage error: where the options are described. */
void tool_usage_hint(void);

/* The exit status for a backend fp8kv_backend_open() refused with st:
 * a malformed name is a usage error, an absent backend 77, else a failure. */
int tool_open_failure_status(fp8kv_status st);

/* path opened for writing, or NULL with a message on stderr. */
FILE *tool_open_output(const char *path);

/* Closes f, written as name: 0, or -1 with a message on stderr when
 * anything written to it was lost (a full disk, an I/O error). */
int tool_close_output(FILE *f, const char *name);

/* From now on, exiting checks that all written to standard output reached
 * it: if not, a message and TOOL_EXIT_FAILED, whatever the status was. */
void tool_check_stdout_at_exit(void);

/* "NAME: out of memory", and exit with TOOL_EXIT_FAILED. */
#if defined(__GNUC__)
__attribute__((noreturn))
#endif
void tool_out_of_memory(void);

#endif /* FP8KV_TOOLS_TOOL_CLI_H */
