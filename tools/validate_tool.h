/* SPDX-License-Identifier: MIT */
/*
 * validate_tool.h - what the files of fp8kv-validate share.
 *
 *   fp8kv-validate.c         options, the groups each backend runs, main
 *   validate_report.c        groups, their lines, progress and JSON
 *   validate_quantize.c      fp8kv_quantize and fp8kv_dequantize groups
 *   validate_cache_write.c   fp8kv_reshape_and_cache groups
 *   validate_group_write.c   fp8kv_reshape_and_cache_grouped and
 *                            fp8kv_concat_and_cache_mla groups
 *
 * In every check_* function, cpu is the CPU backend when b is another
 * backend (the reference), or NULL when b is the CPU backend itself (the
 * reference is then the oracle).
 */
#ifndef FP8KV_TOOLS_VALIDATE_TOOL_H
#define FP8KV_TOOLS_VALIDATE_TOOL_H

#include <stddef.h>
#include <stdint.h>

#include "fp8kv.h"

/* ---- options ---- */

enum level { LEVEL_QUICK, LEVEL_FULL, LEVEL_EXHAUSTIVE };
/* Capacities, not counts: the formats are those fp8kv_dtype_is_fp8 says
 * (all_formats), the scale modes those fp8kv_scale_mode_name names. */
enum { MAX_BACKENDS = 8, MAX_FORMATS = 16, MAX_SCALE_MODES = 8 };
/* The writes --write chooses: flat conversions, the cache write of
 * section 7, grouped writes (8), MLA writes (9). */
enum { WRITE_FLAT, WRITE_MHA, WRITE_GROUPED, WRITE_MLA, NUM_WRITES };
extern const char *const write_names[NUM_WRITES];
/* The group rules, by fp8kv_group_rule (write_case_rule_name's names). */
enum { NUM_RULES = 4 };
extern const char *const level_names[3]; /* indexed by enum level */

extern struct options {
	const char *backends[MAX_BACKENDS];
	int num_backends;
	enum level level;
	fp8kv_dtype formats[MAX_FORMATS]; /* the FP8 formats chosen */
	int num_formats;
	int e2m1, int8;             /* the other element formats (grouped writes) */
	int write[NUM_WRITES];      /* indexed by WRITE_*: checked */
	int rule[NUM_RULES];        /* indexed by fp8kv_group_rule: checked */
	int scale[MAX_SCALE_MODES]; /* indexed by fp8kv_scale_mode: checked */
	int policy[2];              /* saturate, nonsat */
	uint64_t seed;
	int shard, num_shards;      /* --shard K/N: shard = K - 1 */
	const char *json;
	int verbose;
} opt;

/* The library's FP8 formats, in the order of fp8kv_dtype. */
extern fp8kv_dtype all_formats[MAX_FORMATS];
extern int num_all_formats;

/* ---- results: one group per line of the table ---- */

/* The table's column widths: the longest label each column gets
 * ("quantize f32 edges"; "tensor %.6g" of any float, "tensor -1.17549e-38"),
 * so that rows stay aligned with the header. */
#define COL_OPERATION 18
#define COL_SCALE 19

typedef struct group {
	char backend[32], operation[24], format[12], scale[24], policy[10];
	uint64_t cases, bytes, differing;
	int failed_to_run;
	int unsupported;  /* the backend returned FP8KV_ENOTSUP: not yet written there */
	char error[256];
} group;

extern group **groups;
extern size_t num_groups;
extern int any_difference, any_failure;

/* The next group, or NULL when it belongs to another shard (--shard): the
 * caller then skips its work.  Groups are dealt to shards in the order
 * they begin, so the shards of one run add up to the whole. */
group *group_begin(const char *backend, const char *operation, const char *format,
		   const char *scale, const char *policy);
/* Prints the group's line (and its error) and adds its verdict to the
 * program's. */
void group_end(group *g);
/* group_end with the group's bytes from diff: those compared, and those
 * differing (the differences, where none is a byte of an image). */
struct cache_diff;
void group_end_diff(group *g, const struct cache_diff *diff);
/* Prints a case's difference report, ending it with a newline, and counts
 * it in *printed (the callers print the first of a group, all with
 * --verbose). */
void validate_print_report(const char *report, int *printed);
void validate_fail(group *g, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

/* Seconds on a monotonic clock. */
double now(void);
/* A bar with the time left on a terminal, a plain line every ~10% otherwise. */
void progress(const char *what, double done, double total, double started);
/* The results as JSON, in path: 0, or -1 (with a message) when the file
 * could not be written whole. */
int write_json(const char *path, double seconds);

/* "0x7e (448, max)": a code and its value in format. */
void describe_code(uint8_t code, fp8kv_dtype format, char *out, size_t len);
const char *policy_name(fp8kv_overflow p);

/* ---- the groups ---- */

/* Every input of src (n elements of dtype) in every format, policy and
 * scale chosen, as the operation named set. */
void check_quantize_set(fp8kv_backend *b, fp8kv_backend *cpu, const char *set, const void *src,
			fp8kv_dtype dtype, size_t n, const float *scales, int num_scales);
/* fp32 inputs that matter (*out: malloc'ed); their number, 0 when out of
 * memory. */
size_t boundary_inputs(uint32_t **out);
void check_dequantize(fp8kv_backend *b, fp8kv_backend *cpu, const float *scales, int num_scales);
void check_exhaustive(fp8kv_backend *b, fp8kv_backend *cpu);
void check_cache_write(fp8kv_backend *b, fp8kv_backend *cpu);
void check_grouped_write(fp8kv_backend *b, fp8kv_backend *cpu);
void check_mla_write(fp8kv_backend *b, fp8kv_backend *cpu);

#endif /* FP8KV_TOOLS_VALIDATE_TOOL_H */
