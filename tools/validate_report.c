/* SPDX-License-Identifier: MIT */
/*
 * validate_report.c - fp8kv-validate's results: the groups and their lines,
 * progress on long levels, and the JSON file.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache_case.h"
#include "fp8kv.h"
#include "oracle.h"
#include "tool_cli.h"
#include "validate_tool.h"
#include "write_case.h"

group **groups; /* pointers: a group stays put while others are added */
size_t num_groups;
int any_difference, any_failure;
static size_t cap_groups;

group *group_begin(const char *backend, const char *operation, const char *format,
		   const char *scale, const char *policy)
{
	static uint64_t dealt;
	if (opt.num_shards > 1 && (int)(dealt++ % (uint64_t)opt.num_shards) != opt.shard)
		return NULL;
	if (num_groups == cap_groups) {
		cap_groups = cap_groups ? 2 * cap_groups : 64;
		group **more = realloc(groups, cap_groups * sizeof *more);
		if (!more)
			tool_out_of_memory();
		groups = more;
	}
	group *g = calloc(1, sizeof *g);
	if (!g)
		tool_out_of_memory();
	groups[num_groups++] = g;
	snprintf(g->backend, sizeof g->backend, "%s", backend);
	snprintf(g->operation, sizeof g->operation, "%s", operation);
	snprintf(g->format, sizeof g->format, "%s", format);
	snprintf(g->scale, sizeof g->scale, "%s", scale);
	snprintf(g->policy, sizeof g->policy, "%s", policy);
	return g;
}

void group_end(group *g)
{
	const char *verdict = g->failed_to_run ? "ERROR"
			      : g->differing  ? "DIFFER"
			      : g->unsupported ? "not supported"
					       : "equal";
	printf("%-8s %-*s %-9s %-*s %-8s %12llu %14llu %10llu  %s\n", g->backend, COL_OPERATION,
	       g->operation, g->format, COL_SCALE, g->scale, g->policy, (unsigned long long)g->cases,
	       (unsigned long long)g->bytes, (unsigned long long)g->differing, verdict);
	if (g->failed_to_run || g->unsupported)
		printf("    %s: %s\n", g->failed_to_run ? "error" : "FP8KV_ENOTSUP", g->error);
	fflush(stdout);
	any_difference |= g->differing != 0;
	any_failure |= g->failed_to_run;
}

void group_end_diff(group *g, const cache_diff *diff)
{
	g->bytes = diff->bytes_compared;
	g->differing = diff->bytes_differing ? diff->bytes_differing : diff->differences;
	group_end(g);
}

void validate_print_report(const char *report, int *printed)
{
	printf("%s%s", report, report[0] && report[strlen(report) - 1] != '\n' ? "\n" : "");
	(*printed)++;
}

void validate_fail(group *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g->error, sizeof g->error, fmt, ap);
	va_end(ap);
	g->failed_to_run = 1;
}

double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress(const char *what, double done, double total, double started)
{
	static int last_decile = -1;
	const double frac = total > 0 ? done / total : 1;
	const double elapsed = now() - started;
	const double left = frac > 0 ? elapsed * (1 - frac) / frac : 0;
	if (isatty(STDERR_FILENO)) {
		char bar[41];
		int fill = (int)(frac * 40);
		for (int i = 0; i < 40; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[40] = '\0';
		fprintf(stderr, "\r%-28s [%s] %5.1f%%  %4.0f s left ", what, bar, 100 * frac, left);
		if (frac >= 1)
			fprintf(stderr, "\n");
	} else {
		const int decile = (int)(frac * 10);
		if (decile != last_decile || frac >= 1)
			fprintf(stderr, "progress: %s %.0f%%, %.0f s elapsed, about %.0f s left\n",
				what, 100 * frac, elapsed, left);
		last_decile = frac >= 1 ? -1 : decile;
	}
	fflush(stderr);
}

void describe_code(uint8_t code, fp8kv_dtype format, char *out, size_t len)
{
	const double v = oracle_decode(code, format);
	if (oracle_is_nan(v))
		snprintf(out, len, "0x%02x (NaN)", code);
	else
		snprintf(out, len, "0x%02x (%.9g%s)", code, v,
			 v == fp8kv_fp8_max(format) || v == -fp8kv_fp8_max(format) ? ", max" : "");
}

const char *policy_name(fp8kv_overflow p)
{
	return p == FP8KV_SATURATE ? "saturate" : "nonsat";
}

int write_json(const char *path, double seconds)
{
	FILE *f = tool_open_output(path);
	if (!f)
		return -1;
	fprintf(f, "{\"version\": \"%s\", \"level\": \"%s\", \"seed\": %llu, \"seconds\": %.3f,\n"
		   " \"shard\": %d, \"shards\": %d,\n \"writes\": [",
		fp8kv_version(), level_names[opt.level], (unsigned long long)opt.seed, seconds,
		opt.shard + 1, opt.num_shards);
	const char *sep = "";
	for (int w = 0; w < NUM_WRITES; w++)
		if (opt.write[w])
			fprintf(f, "%s\"%s\"", sep, write_names[w]), sep = ", ";
	fprintf(f, "],\n \"rules\": [");
	sep = "";
	for (int r = 0; r < NUM_RULES; r++)
		if (opt.rule[r])
			fprintf(f, "%s\"%s\"", sep, write_case_rule_name((fp8kv_group_rule)r)), sep = ", ";
	fprintf(f, "],\n \"formats\": [");
	sep = "";
	for (int i = 0; i < opt.num_formats; i++)
		fprintf(f, "%s\"%s\"", sep, fp8kv_dtype_name(opt.formats[i])), sep = ", ";
	if (opt.e2m1)
		fprintf(f, "%s\"e2m1\"", sep), sep = ", ";
	if (opt.int8)
		fprintf(f, "%s\"int8\"", sep);
	fprintf(f, "],\n \"groups\": [");
	for (size_t i = 0; i < num_groups; i++) {
		const group *g = groups[i];
		fprintf(f, "%s\n  {\"backend\": \"%s\", \"operation\": \"%s\", \"format\": \"%s\", "
			   "\"scale\": \"%s\", \"policy\": \"%s\", \"cases\": %llu, \"bytes\": %llu, "
			   "\"differing\": %llu, \"verdict\": \"%s\"}",
			i ? "," : "", g->backend, g->operation, g->format, g->scale, g->policy,
			(unsigned long long)g->cases, (unsigned long long)g->bytes,
			(unsigned long long)g->differing,
			g->failed_to_run ? "error"
			: g->differing	 ? "differ"
			: g->unsupported ? "unsupported"
					 : "equal");
	}
	fprintf(f, "\n ],\n \"result\": \"%s\"}\n",
		any_failure ? "error" : any_difference ? "differ" : "equal");
	return tool_close_output(f, path);
}
