/* SPDX-License-Identifier: MIT */
/*
 * fp8kv-validate - proves, byte for byte, that a backend writes FP8 exactly
 * as the contract says.
 *
 * The CPU backend is compared with the independent oracle (validate/oracle.c);
 * every other backend is compared with the CPU backend.  Each check group
 * prints one line; differences are printed in full, so that a kernel
 * engineer sees at once whether a fault is rounding, saturation, NaN or
 * indexing.
 *
 * Exit status: 0 all equal, 1 differences, 2 usage, 3 a backend failed or
 * the results could not be written, 77 a requested backend is absent.
 * validate_tool.h maps the other files.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp8kv.h"
#include "oracle.h"
#include "tool_cli.h"
#include "validate_tool.h"
#include "write_case.h"

/* ---- options ---- */

const char tool_name[] = "fp8kv-validate";
struct options opt;

const char *const level_names[3] = {"quick", "full", "exhaustive"};
const char *const write_names[NUM_WRITES] = {"flat", "mha", "grouped", "mla"};
fp8kv_dtype all_formats[MAX_FORMATS];
int num_all_formats;

/* The library's FP8 formats, from its names of the dtypes. */
static void find_formats(void)
{
	num_all_formats = 0;
	for (int t = 0; fp8kv_dtype_name((fp8kv_dtype)t) && num_all_formats < MAX_FORMATS; t++)
		if (fp8kv_dtype_is_fp8((fp8kv_dtype)t))
			all_formats[num_all_formats++] = (fp8kv_dtype)t;
}

/* ---- scales ---- */

/* Scales whose quotients land within 2 ulp of a rounding boundary of the
 * format for some inputs: s = x0 / m for a midpoint m between two codes,
 * nudged by up to 2 ulp either way. */
static int adversarial_scales(fp8kv_dtype format, float *out, int max)
{
	int n = 0;
	uint64_t r = opt.seed * 0x9E3779B97F4A7C15ull + 12345;
	while (n < max) {
		r ^= r << 13, r ^= r >> 7, r ^= r << 17;
		const uint8_t c = (uint8_t)(r % 0x70);
		const double a = oracle_decode(c, format), b = oracle_decode((uint8_t)(c + 1), format);
		const uint16_t x0 = (uint16_t)(0x3C00 + (r >> 20) % 0x800); /* bf16 in [2^-7, 2^9) */
		const float mid = (float)((a + b) / 2);
		const float s0 = oracle_divide(oracle_widen(x0, FP8KV_BF16), mid);
		uint32_t bits;
		memcpy(&bits, &s0, sizeof bits);
		if ((bits & 0x7F800000) == 0 || (bits & 0x7F800000) == 0x7F800000)
			continue;
		const int nudge = (int)((r >> 40) % 5) - 2;
		bits += (uint32_t)nudge;
		memcpy(&out[n++], &bits, sizeof bits);
	}
	return n;
}

/* ---- one backend ---- */

/* quantize and dequantize */
static void validate_flat(fp8kv_backend *b, fp8kv_backend *cpu)
{
	static const float quick_scales[] = {1.0f, 0.0478f, 3.0f, 1.0f / 448};
	float scales[64];
	int num_scales = (int)(sizeof quick_scales / sizeof quick_scales[0]);
	memcpy(scales, quick_scales, sizeof quick_scales);
	if (opt.level >= LEVEL_FULL) {
		const float more[] = {0.5f, 1e-3f, 1e-30f, 7e-39f /* subnormal */, 1e30f, 65504.0f};
		memcpy(scales + num_scales, more, sizeof more);
		num_scales += (int)(sizeof more / sizeof more[0]);
		for (int f = 0; f < opt.num_formats; f++)
			num_scales += adversarial_scales(opt.formats[f], scales + num_scales, 6);
	}

	/* every 16-bit input */
	uint16_t *all16 = malloc(65536 * sizeof *all16);
	if (!all16)
		tool_out_of_memory();
	for (uint32_t i = 0; i < 65536; i++)
		all16[i] = (uint16_t)i;
	check_quantize_set(b, cpu, "quantize bf16", all16, FP8KV_BF16, 65536, scales, num_scales);
	check_quantize_set(b, cpu, "quantize f16", all16, FP8KV_F16, 65536, scales, num_scales);
	free(all16);

	/* the fp32 inputs where conversions go wrong */
	uint32_t *edges = NULL;
	size_t n = boundary_inputs(&edges);
	if (n)
		check_quantize_set(b, cpu, "quantize f32 edges", edges, FP8KV_F32, n, scales,
				   num_scales);
	free(edges);

	if (opt.level >= LEVEL_FULL) { /* random fp32 bit patterns */
		const size_t count = 1 << 20;
		uint32_t *r = malloc(count * sizeof *r);
		uint64_t x = opt.seed + 99;
		if (!r)
			tool_out_of_memory();
		for (size_t i = 0; i < count; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			r[i] = (uint32_t)(x >> 16);
		}
		check_quantize_set(b, cpu, "quantize f32 rand", r, FP8KV_F32, count, scales,
				   num_scales);
		free(r);
	}

	check_dequantize(b, cpu, scales, (int)(sizeof quick_scales / sizeof quick_scales[0]));
}

static void validate_backend(fp8kv_backend *b, fp8kv_backend *cpu)
{
	if (opt.write[WRITE_FLAT])
		validate_flat(b, cpu);
	if (opt.write[WRITE_MHA])
		check_cache_write(b, cpu);
	if (opt.write[WRITE_GROUPED])
		check_grouped_write(b, cpu);
	if (opt.write[WRITE_MLA])
		check_mla_write(b, cpu);
	if (opt.level == LEVEL_EXHAUSTIVE && opt.write[WRITE_FLAT])
		check_exhaustive(b, cpu);
}

/* ---- command line ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: fp8kv-validate [OPTIONS]\n"
		"Proves byte for byte that each backend writes FP8 KV caches as the contract says:\n"
		"the CPU backend against an independent oracle, every other backend against the CPU.\n\n"
		"  --backend NAME        a backend to validate (repeatable; default: every one present)\n"
		"  --level LEVEL         quick (seconds), full (minutes) or exhaustive (all 2^32 fp32)\n"
		"  --format F            e4m3fn, e4m3fnuz, e5m2, e5m2fnuz, e2m1, int8 or all\n"
		"                        (default all; e2m1 and int8 are grouped writes' only)\n"
		"  --scale MODES         comma list of one, tensor, head, token_head, or all\n"
		"                        (default all; quantize and dequantize take one and tensor)\n"
		"  --write WRITES        comma list of flat (quantize, dequantize), mha\n"
		"                        (reshape_and_cache), grouped (group scales), mla\n"
		"                        (concat_and_cache_mla), or all (default all)\n"
		"  --rule RULES          the grouped writes' rules: comma list of f32,\n"
		"                        e8m0_floor, e8m0_rceil, nvfp4, or all (default all)\n"
		"  --overflow POLICY     saturate, nonsat or both (default both)\n"
		"  --seed N              seed of the random cases (default 1)\n"
		"  --shard K/N           only the K-th of N parts of the groups (1 <= K <= N <= 1000):\n"
		"                        the N parts of one level and seed add up to the whole\n"
		"  --json FILE           also write the results as JSON\n"
		"  --verbose             print every difference, not the first five of a group\n"
		"  --help, --version\n\n"
		"Exit status: 0 all bytes equal, 1 differences found, 2 usage error (a bad\n"
		"option, option value or backend name), 3 a backend failed to run or the\n"
		"results could not be written, 77 a requested backend is absent.\n");
}

/* The option's value, from a list of names; -1 (with a message) if absent. */
static int choose(const char *option, const char *v, const char *const *names, int n)
{
	const int found = tool_find(v, names, n);
	if (found >= 0)
		return found;
	char list[96] = "";
	for (int i = 0; i < n; i++)
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
			 i == 0 ? "" : i == n - 1 ? " or " : ", ", names[i]);
	return tool_bad_value(option, v, "expected %s", list);
}

/* opt.scale from a comma list of scale mode names, or "all": 0, or -1. */
static int parse_scales(const char *v)
{
	int any = 0;
	memset(opt.scale, 0, sizeof opt.scale);
	for (const char *p = v;; p++) {
		const char *end = strchr(p, ',');
		const size_t len = end ? (size_t)(end - p) : strlen(p);
		char name[24];
		if (len == 0 || len >= sizeof name)
			return -1;
		memcpy(name, p, len);
		name[len] = '\0';
		fp8kv_scale_mode m;
		if (!strcmp(name, "all")) {
			for (int k = 0; k < MAX_SCALE_MODES && fp8kv_scale_mode_name((fp8kv_scale_mode)k); k++)
				opt.scale[k] = 1;
		} else if (fp8kv_scale_mode_from_name(name, &m) || (int)m >= MAX_SCALE_MODES) {
			return -1;
		} else {
			opt.scale[m] = 1;
		}
		any = 1;
		if (!end)
			break;
		p = end;
	}
	return any ? 0 : -1;
}

/* flags[0..n) from a comma list of names[] or "all": 0, or -1. */
static int parse_list(const char *v, const char *const *names, int n, int *flags)
{
	int any = 0;
	for (int i = 0; i < n; i++)
		flags[i] = 0;
	for (const char *p = v;; p++) {
		const char *end = strchr(p, ',');
		const size_t len = end ? (size_t)(end - p) : strlen(p);
		int found = -1;
		if (len == 3 && !strncmp(p, "all", 3)) {
			for (int i = 0; i < n; i++)
				flags[i] = 1;
			found = n;
		}
		for (int i = 0; i < n && found < 0; i++)
			if (strlen(names[i]) == len && !strncmp(p, names[i], len))
				found = i;
		if (found < 0)
			return -1;
		if (found < n)
			flags[found] = 1;
		any = 1;
		if (!end)
			break;
		p = end;
	}
	return any ? 0 : -1;
}

/* opt.shard and opt.num_shards from "K/N": 0, or -1. */
static int parse_shard(const char *v)
{
	char k[24];
	const char *slash = strchr(v, '/');
	uint64_t part = 0, parts = 0;
	if (!slash || (size_t)(slash - v) >= sizeof k)
		return -1;
	memcpy(k, v, (size_t)(slash - v));
	k[slash - v] = '\0';
	if (tool_parse_number(k, 1, 1000, &part) || tool_parse_number(slash + 1, 1, 1000, &parts) ||
	    part > parts)
		return -1;
	opt.shard = (int)part - 1;
	opt.num_shards = (int)parts;
	return 0;
}

/* 0, 1 when --help or --version was answered, -1 on a usage error (with
 * its message printed). */
static int parse_args(int argc, char **argv)
{
	static const char *const policies[] = {"saturate", "nonsat", "both"};
	static const char *const with_value[] = {"--backend",  "--level", "--format", "--scale",
						 "--overflow", "--seed",  "--shard",  "--json",
						 "--write",    "--rule"};
	const char *rule_names[NUM_RULES];
	for (int r = 0; r < NUM_RULES; r++)
		rule_names[r] = write_case_rule_name((fp8kv_group_rule)r);
	opt.level = LEVEL_QUICK;
	parse_scales("all");
	opt.policy[0] = opt.policy[1] = 1;
	opt.seed = 1;
	opt.num_shards = 1;
	find_formats();
	opt.num_formats = num_all_formats;
	memcpy(opt.formats, all_formats, sizeof all_formats);
	opt.e2m1 = opt.int8 = 1;
	parse_list("all", write_names, NUM_WRITES, opt.write);
	parse_list("all", rule_names, NUM_RULES, opt.rule);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int k;
		if (!strcmp(a, "--help")) {
			usage(stdout);
			return 1;
		} else if (!strcmp(a, "--version")) {
			printf("fp8kv-validate %s\n", fp8kv_version());
			return 1;
		} else if (!strcmp(a, "--verbose")) {
			opt.verbose = 1;
			continue;
		} else if (tool_option_with_value(a, v, with_value, 10)) {
			return -1;
		} else if (!strcmp(a, "--backend")) {
			if (opt.num_backends == MAX_BACKENDS)
				return tool_bad_value(a, v, "at most %d backends", MAX_BACKENDS);
			opt.backends[opt.num_backends++] = v;
		} else if (!strcmp(a, "--level")) {
			if ((k = choose(a, v, level_names, 3)) < 0)
				return -1;
			opt.level = (enum level)k;
		} else if (!strcmp(a, "--format")) {
			fp8kv_dtype t;
			if (!strcmp(v, "all")) {
				opt.num_formats = num_all_formats;
				memcpy(opt.formats, all_formats, sizeof all_formats);
				opt.e2m1 = opt.int8 = 1;
			} else if (fp8kv_dtype_from_name(v, &t) ||
				   !(fp8kv_dtype_is_fp8(t) || t == FP8KV_E2M1 || t == FP8KV_INT8)) {
				char list[160] = "";
				for (int f = 0; f < num_all_formats; f++)
					snprintf(list + strlen(list), sizeof list - strlen(list), "%s, ",
						 fp8kv_dtype_name(all_formats[f]));
				return tool_bad_value(a, v, "expected %se2m1, int8 or all", list);
			} else {
				/* an FP8 format for every write, or e2m1 or int8 for the
				 * grouped writes alone */
				opt.num_formats = fp8kv_dtype_is_fp8(t);
				opt.formats[0] = t;
				opt.e2m1 = t == FP8KV_E2M1;
				opt.int8 = t == FP8KV_INT8;
			}
		} else if (!strcmp(a, "--scale")) {
			if (parse_scales(v))
				return tool_bad_value(a, v, "expected all, or one or more of one, tensor, "
							    "head and token_head separated by commas");
		} else if (!strcmp(a, "--overflow")) {
			if ((k = choose(a, v, policies, 3)) < 0)
				return -1;
			opt.policy[0] = k != 1;
			opt.policy[1] = k != 0;
		} else if (!strcmp(a, "--seed")) {
			if (tool_parse_number(v, 0, UINT64_MAX, &opt.seed))
				return tool_bad_value(a, v, "expected a decimal number from 0 to %llu",
						      (unsigned long long)UINT64_MAX);
		} else if (!strcmp(a, "--write")) {
			if (parse_list(v, write_names, NUM_WRITES, opt.write))
				return tool_bad_value(a, v, "expected all, or one or more of flat, mha, "
							    "grouped and mla separated by commas");
		} else if (!strcmp(a, "--rule")) {
			if (parse_list(v, rule_names, NUM_RULES, opt.rule))
				return tool_bad_value(a, v, "expected all, or one or more of f32, "
							    "e8m0_floor, e8m0_rceil and nvfp4 separated "
							    "by commas");
		} else if (!strcmp(a, "--shard")) {
			if (parse_shard(v))
				return tool_bad_value(a, v, "expected K/N, 1 <= K <= N <= 1000");
		} else {
			opt.json = v;
		}
		i++;
	}
	return 0;
}

/* Opens the backends to validate, all before any is run, so that a
 * malformed name is a usage error at once rather than after minutes of
 * checks.  handles[i] is NULL for a backend that did not open: errors[i]
 * says why.  The status to exit with now, or 0 to go on. */
static int open_backends(fp8kv_backend *cpu, fp8kv_backend **handles, fp8kv_status *status,
			 char (*errors)[256])
{
	for (int i = 0; i < opt.num_backends; i++) {
		handles[i] = NULL;
		status[i] = FP8KV_OK;
		if (!strcmp(opt.backends[i], "cpu")) {
			handles[i] = cpu;
			continue;
		}
		status[i] = fp8kv_backend_open(opt.backends[i], &handles[i]);
		snprintf(errors[i], sizeof errors[i], "%s", fp8kv_last_error());
		if (tool_open_failure_status(status[i]) == TOOL_EXIT_USAGE) {
			tool_bad_value("--backend", opt.backends[i], "%s", errors[i]);
			tool_usage_hint();
			return TOOL_EXIT_USAGE;
		}
	}
	return 0;
}

static void close_backends(fp8kv_backend *cpu, fp8kv_backend **handles)
{
	for (int i = 0; i < opt.num_backends; i++)
		if (handles[i] != cpu)
			fp8kv_backend_close(handles[i]);
	fp8kv_backend_close(cpu);
}

int main(int argc, char **argv)
{
	fp8kv_backend *cpu = NULL, *handles[MAX_BACKENDS] = {NULL};
	fp8kv_status st, status[MAX_BACKENDS];
	char errors[MAX_BACKENDS][256];
	int rc;

	tool_check_stdout_at_exit();
	if ((rc = parse_args(argc, argv)) != 0) {
		if (rc < 0)
			tool_usage_hint();
		return rc < 0 ? TOOL_EXIT_USAGE : 0;
	}
	const double started = now();
	if ((st = fp8kv_backend_open("cpu", &cpu)) != FP8KV_OK) {
		fprintf(stderr, "fp8kv-validate: cpu: %s\n", fp8kv_last_error());
		return TOOL_EXIT_FAILED;
	}
	/* default: cpu, then every GPU backend that opens */
	const char *defaults[] = {"cpu", "hip"};
	const int explicit_list = opt.num_backends > 0;
	if (!explicit_list) {
		opt.backends[0] = defaults[0];
		opt.backends[1] = defaults[1];
		opt.num_backends = 2;
	}
	if ((rc = open_backends(cpu, handles, status, errors)) != 0) {
		close_backends(cpu, handles);
		return rc;
	}

	printf("fp8kv-validate %s, level %s, seed %llu", fp8kv_version(), level_names[opt.level],
	       (unsigned long long)opt.seed);
	if (opt.num_shards > 1)
		printf(", shard %d/%d", opt.shard + 1, opt.num_shards);
	printf("\n");
	printf("reference: the oracle for cpu; the cpu backend for every other backend\n\n");
	printf("%-8s %-*s %-9s %-*s %-8s %12s %14s %10s  %s\n", "backend", COL_OPERATION,
	       "operation", "format", COL_SCALE, "scale", "policy", "cases", "bytes", "differing",
	       "verdict");

	int absent = 0, tabulated = 0;
	for (int i = 0; i < opt.num_backends; i++) {
		fp8kv_backend *b = handles[i];
		if (!b && status[i] == FP8KV_ENODEV) {
			if (explicit_list) {
				fprintf(stderr, "fp8kv-validate: %s\n", errors[i]);
				absent = 1;
			} else {
				printf("(%s: not present, skipped)\n", opt.backends[i]);
			}
			continue;
		} else if (!b) {
			fprintf(stderr, "fp8kv-validate: %s: %s\n", opt.backends[i], errors[i]);
			any_failure = 1;
			continue;
		}
		printf("# %s: %s\n", fp8kv_backend_name(b), fp8kv_backend_device(b));
		if (b == cpu && !tabulated) {
			/* The oracle's search, tabulated for the bulk groups, and
			 * held to the search on random inputs first. */
			const uint64_t verify = opt.level == LEVEL_QUICK ? 1u << 16
					      : opt.level == LEVEL_FULL ? 1u << 20 : 1u << 22;
			char why[160];
			if (oracle_tabulate(verify, why, sizeof why)) {
				fprintf(stderr, "fp8kv-validate: the oracle's table: %s\n", why);
				return TOOL_EXIT_FAILED;
			}
			tabulated = 1;
		}
		validate_backend(b, b == cpu ? NULL : cpu);
	}
	close_backends(cpu, handles);

	uint64_t cases = 0, bytes = 0, differing = 0;
	size_t bad = 0, unsupported = 0;
	for (size_t i = 0; i < num_groups; i++) {
		cases += groups[i]->cases;
		bytes += groups[i]->bytes;
		differing += groups[i]->differing;
		bad += groups[i]->differing || groups[i]->failed_to_run;
		unsupported += groups[i]->unsupported && !groups[i]->differing &&
			       !groups[i]->failed_to_run;
	}
	const double seconds = now() - started;
	printf("\nsummary: %zu groups%s, %llu cases, %llu bytes compared, %llu differing bytes, "
	       "%zu groups not equal, %.1f s\n",
	       num_groups, opt.num_shards > 1 ? " in this shard" : "", (unsigned long long)cases, (unsigned long long)bytes,
	       (unsigned long long)differing, bad, seconds);
	if (unsupported)
		printf("%zu groups not supported by their backend (FP8KV_ENOTSUP): not validated\n",
		       unsupported);
	const int json_lost = opt.json && write_json(opt.json, seconds);
	for (size_t i = 0; i < num_groups; i++)
		free(groups[i]);
	free(groups);
	if (any_failure) {
		printf("verdict: a backend failed to run\n");
		rc = TOOL_EXIT_FAILED;
	} else if (any_difference) {
		printf("verdict: DIFFERENCES FOUND\n");
		rc = 1;
	} else if (absent) {
		printf("verdict: a requested backend is absent\n");
		rc = TOOL_EXIT_ABSENT;
	} else if (unsupported) {
		printf("verdict: all bytes equal where the backends write (%zu groups not supported)\n",
		       unsupported);
		rc = 0;
	} else {
		printf("verdict: all bytes equal\n");
		rc = 0;
	}
	if (json_lost) {
		printf("(the JSON results were not written)\n");
		rc = TOOL_EXIT_FAILED;
	}
	return rc;
}
