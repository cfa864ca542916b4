/* SPDX-License-Identifier: MIT */
/*
 * bench_cli.c - fp8kv-bench's options: strict values, each error naming
 * the option and the value (tool_cli.h).
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "tool_cli.h"

static const bench_shape default_shapes[] = {
	{1, 8, 128, 16},     {64, 8, 128, 16},   {256, 8, 128, 16},  {16384, 8, 128, 16},
	{32768, 8, 128, 16}, {32768, 1, 128, 64}, {8192, 32, 128, 16}, {4096, 8, 256, 16},
};

/* the grouped writes' shapes: decode and a long prefill (#37) */
static const bench_shape group_shapes[] = {{64, 8, 128, 16}, {32768, 8, 128, 16}};
/* the MLA writes' token counts, block size 64 (#36) */
static const bench_shape mla_shapes[] = {
	{1, 1, 576, 64}, {64, 1, 576, 64}, {256, 1, 576, 64}, {32768, 1, 576, 64}};

int bench_shapes_of(const bench_options *o, int write, const bench_shape **shapes)
{
	if (o->shapes_given || write == BENCH_WRITE_MHA) {
		*shapes = o->shapes;
		return o->num_shapes;
	}
	if (write == BENCH_WRITE_GROUP) {
		*shapes = group_shapes;
		return (int)(sizeof group_shapes / sizeof group_shapes[0]);
	}
	*shapes = mla_shapes;
	return (int)(sizeof mla_shapes / sizeof mla_shapes[0]);
}

const char *bench_mode_name(int m)
{
	return fp8kv_scale_mode_name((fp8kv_scale_mode)m);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: fp8kv-bench [OPTIONS]\n"
		"Times fp8kv_reshape_and_cache against a streaming ceiling measured in the same run.\n\n"
		"  --backend NAME     backend to time (default: auto)\n"
		"  --input DTYPE      bf16 (default), f16 or f32\n"
		"  --format FMT       e4m3fn (default), e4m3fnuz, e5m2, e5m2fnuz\n"
		"  --scale MODES      comma list of one,tensor,head,token_head, or all (default\n"
		"                     one,tensor)\n"
		"  --write WRITES     comma list of mha (fp8kv_reshape_and_cache, default), group\n"
		"                     (reshape_and_cache_grouped), mla_plain, mla_ds\n"
		"                     (concat_and_cache_mla, 512 + 64, one head), or all\n"
		"  --group RECIPES    the grouped writes: comma list of mxfp8 (E8M0 floor, e4m3fn,\n"
		"                     G 32), mxfp4 (E8M0 floor, e2m1, G 32), nvfp4 (e2m1, G 16),\n"
		"                     int8 (fp32 scale per row), or all (default)\n"
		"  --outputs          also ask for the overflow and NaN counters and k_amax/v_amax\n"
		"  --shape TxHxD[/BS] tokens x heads x head dim, block size (default 16); repeatable,\n"
		"                     up to %d shapes; heads at most %d (default: the standard set;\n"
		"                     group: 64x8x128 and 32768x8x128; MLA: 1, 64, 256 and 32768\n"
		"                     tokens, block size 64, whose heads and head dim are ignored)\n"
		"  --samples N        rounds of fused, unfused, ceiling (and launch floor); medians\n"
		"                     taken (default 21, at most %d)\n"
		"  --json FILE        also write the results as JSON\n"
		"  --help, --version\n\n"
		"Exit status: 0 success, 2 usage error (a bad option, option value or backend\n"
		"name), 3 a measurement failed, GPU timing is not installed or the results\n"
		"could not be written, 77 the backend is absent.\n",
		BENCH_MAX_SHAPES, BENCH_MAX_HEADS, BENCH_MAX_SAMPLES);
}

/* o->scale_modes from "all" (the modes of fp8kv_reshape_and_cache) or a
 * comma list of distinct mode names, the library's (A-NAMES). */
static int parse_modes(const char *s, bench_options *o)
{
	o->num_scale_modes = 0;
	if (!strcmp(s, "all")) {
		for (int m = 0; m < BENCH_NUM_MODES; m++)
			o->scale_modes[o->num_scale_modes++] = m;
		return 0;
	}
	for (const char *p = s;; p++) {
		const char *end = strchr(p, ',');
		const size_t len = end ? (size_t)(end - p) : strlen(p);
		char name[24];
		fp8kv_scale_mode m;
		if (len == 0 || len >= sizeof name || o->num_scale_modes == BENCH_NUM_MODES)
			return -1;
		memcpy(name, p, len);
		name[len] = '\0';
		if (fp8kv_scale_mode_from_name(name, &m) || (int)m >= BENCH_NUM_MODES)
			return -1;
		for (int i = 0; i < o->num_scale_modes; i++)
			if (o->scale_modes[i] == (int)m)
				return -1;
		o->scale_modes[o->num_scale_modes++] = (int)m;
		if (!end)
			return 0;
		p = end;
	}
}

/* A comma list of distinct names, each name's number by from_name (-1:
 * not a name), into out (at most max): their count, or -1. */
static int parse_names(const char *s, int (*from_name)(const char *), int *out, int max)
{
	int n = 0;
	for (const char *p = s;; p++) {
		const char *end = strchr(p, ',');
		const size_t len = end ? (size_t)(end - p) : strlen(p);
		char name[24];
		if (len == 0 || len >= sizeof name || n == max)
			return -1;
		memcpy(name, p, len);
		name[len] = '\0';
		const int k = from_name(name);
		if (k < 0)
			return -1;
		for (int i = 0; i < n; i++)
			if (out[i] == k)
				return -1;
		out[n++] = k;
		if (!end)
			return n;
		p = end;
	}
}

static int write_from_name(const char *name)
{
	static const char *const names[] = {"mha", "group", "mla_plain", "mla_ds"};
	for (int k = 0; k < 4; k++)
		if (!strcmp(name, names[k]))
			return k;
	return -1;
}

/* "TxHxD" or "TxHxD/BS", each field a decimal number in its range. */
static int parse_shape(const char *v, bench_shape *s)
{
	static const char *const what[4] = {"tokens", "heads", "head dim", "block size"};
	const uint64_t max[4] = {INT_MAX, BENCH_MAX_HEADS, INT_MAX, INT_MAX};
	char buf[96];
	if (strlen(v) >= sizeof buf)
		return tool_bad_value("--shape", v, "too long");
	strcpy(buf, v);
	char *bs = strchr(buf, '/');
	if (bs)
		*bs++ = '\0';
	char *h = strchr(buf, 'x'), *d = h ? strchr(h + 1, 'x') : NULL;
	if (!d)
		return tool_bad_value("--shape", v, "expected TOKENSxHEADSxDIM or TOKENSxHEADSxDIM/BLOCK");
	*h++ = '\0';
	*d++ = '\0';
	const char *field[4] = {buf, h, d, bs ? bs : "16"};
	uint64_t n[4];
	for (int k = 0; k < 4; k++)
		if (tool_parse_number(field[k], 1, max[k], &n[k]))
			return tool_bad_value("--shape", v, "%s must be a number from 1 to %llu",
					      what[k], (unsigned long long)max[k]);
	s->tokens = (int64_t)n[0];
	s->heads = (int64_t)n[1];
	s->dim = (int64_t)n[2];
	s->block_size = (int64_t)n[3];
	return 0;
}

int bench_parse_args(int argc, char **argv, bench_options *o)
{
	static const char *const with_value[] = {"--backend", "--input", "--format",
						 "--scale",   "--shape", "--samples",
						 "--json",    "--write", "--group"};
	const char *shape_text[BENCH_MAX_SHAPES]; /* as given */
	memset(o, 0, sizeof *o);
	o->backend = "auto";
	o->input = FP8KV_BF16;
	o->format = FP8KV_E4M3FN;
	o->samples = 21;
	parse_modes("one,tensor", o);
	o->writes = BENCH_WRITE_MHA;
	for (int g = 0; g < BENCH_NUM_GROUPS; g++)
		o->groups[o->num_groups++] = g;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t n;
		if (!strcmp(a, "--help")) {
			usage(stdout);
			return 1;
		} else if (!strcmp(a, "--version")) {
			printf("fp8kv-bench %s\n", fp8kv_version());
			return 1;
		} else if (!strcmp(a, "--outputs")) {
			o->outputs = 1;
			continue; /* a flag: no value to step over */
		} else if (tool_option_with_value(a, v, with_value, 9)) {
			return -1;
		} else if (!strcmp(a, "--backend")) {
			o->backend = v;
		} else if (!strcmp(a, "--input")) {
			if (fp8kv_dtype_from_name(v, &o->input) || fp8kv_dtype_is_fp8(o->input))
				return tool_bad_value(a, v, "expected bf16, f16 or f32");
		} else if (!strcmp(a, "--format")) {
			if (fp8kv_dtype_from_name(v, &o->format) || !fp8kv_dtype_is_fp8(o->format))
				return tool_bad_value(a, v, "expected e4m3fn, e4m3fnuz, e5m2 or e5m2fnuz");
		} else if (!strcmp(a, "--scale")) {
			if (parse_modes(v, o))
				return tool_bad_value(a, v, "expected all, or one or more of one, tensor, "
							    "head and token_head, each once, separated by "
							    "commas");
		} else if (!strcmp(a, "--write")) {
			int w[4], n = !strcmp(v, "all") ? 4 : parse_names(v, write_from_name, w, 4);
			if (n < 0)
				return tool_bad_value(a, v, "expected all, or one or more of mha, group, "
							    "mla_plain and mla_ds, each once, separated "
							    "by commas");
			o->writes = 0;
			for (int k = 0; k < n; k++)
				o->writes |= 1 << (!strcmp(v, "all") ? k : w[k]);
		} else if (!strcmp(a, "--group")) {
			if (!strcmp(v, "all")) {
				o->num_groups = 0;
				for (int g = 0; g < BENCH_NUM_GROUPS; g++)
					o->groups[o->num_groups++] = g;
			} else if ((o->num_groups = parse_names(v, bench_group_from_name, o->groups,
								BENCH_NUM_GROUPS)) < 0) {
				return tool_bad_value(a, v, "expected all, or one or more of mxfp8, "
							    "mxfp4, nvfp4 and int8, each once, separated "
							    "by commas");
			}
		} else if (!strcmp(a, "--shape")) {
			if (o->num_shapes == BENCH_MAX_SHAPES)
				return tool_bad_value(a, v, "at most %d shapes", BENCH_MAX_SHAPES);
			if (parse_shape(v, &o->shapes[o->num_shapes]))
				return -1;
			shape_text[o->num_shapes++] = v;
		} else if (!strcmp(a, "--samples")) {
			if (tool_parse_number(v, 1, BENCH_MAX_SAMPLES, &n))
				return tool_bad_value(a, v, "expected a number from 1 to %d",
						      BENCH_MAX_SAMPLES);
			o->samples = (int)n;
		} else {
			o->json = v;
		}
		i++;
	}
	/* the buffers of each shape, once the input type is known */
	for (int i = 0; i < o->num_shapes; i++)
		if (!bench_write_bytes(&o->shapes[i], fp8kv_dtype_size(o->input)))
			return tool_bad_value("--shape", shape_text[i],
					      "its buffers would exceed the address space");
	if ((o->writes & BENCH_WRITE_MLA_DS) && o->input == FP8KV_F32)
		return tool_bad_value("--input", "f32", "mla_ds takes 16-bit inputs (bf16, f16)");
	o->shapes_given = o->num_shapes > 0;
	if (!o->num_shapes) {
		o->num_shapes = (int)(sizeof default_shapes / sizeof default_shapes[0]);
		memcpy(o->shapes, default_shapes, sizeof default_shapes);
	}
	return 0;
}
