/* SPDX-License-Identifier: MIT */
/*
 * bench.h - the parts of fp8kv-bench: options (bench_cli.c), the host as a
 * bench device (bench_host.c), the rounds every measurement is timed in
 * (bench_rounds.c), the cache write's cases (bench_write.c), the grouped
 * and MLA writes' (bench_group.c) and the report (bench_report.c).
 */
#ifndef FP8KV_TOOLS_BENCH_H
#define FP8KV_TOOLS_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "bench_device.h"
#include "fp8kv.h"

enum {
	BENCH_MAX_HEADS = 64,    /* the scales of a shape are arrays of this many */
	BENCH_MAX_SHAPES = 64,
	BENCH_MAX_SAMPLES = 256,
	BENCH_MAX_COPIES = 16,   /* of the buffers, that calls rotate over */
	BENCH_NUM_MODES = 4,     /* fp8kv_scale_mode ONE .. TOKEN_HEAD */
	BENCH_NUM_GROUPS = 4,    /* --group's recipes: mxfp8, mxfp4, nvfp4, int8 */
};

/* The writes of --write, a bit each. */
enum {
	BENCH_WRITE_MHA = 1,       /* fp8kv_reshape_and_cache, by --scale */
	BENCH_WRITE_GROUP = 2,     /* fp8kv_reshape_and_cache_grouped, by --group */
	BENCH_WRITE_MLA_PLAIN = 4, /* fp8kv_concat_and_cache_mla, FP8 with a tensor scale */
	BENCH_WRITE_MLA_DS = 8,    /* the same, DeepSeek's fp8_ds_mla record */
};

/* each field at most INT_MAX, heads at most BENCH_MAX_HEADS (bench_cli.c) */
typedef struct bench_shape {
	int64_t tokens, heads, dim, block_size;
} bench_shape;

typedef struct bench_options {
	const char *backend;
	fp8kv_dtype input, format;
	int scale_modes[BENCH_NUM_MODES], num_scale_modes;
	int samples;
	const char *json;
	bench_shape shapes[BENCH_MAX_SHAPES];
	int num_shapes;
	int outputs; /* ask for the counters and k_amax/v_amax too */
	int writes;  /* BENCH_WRITE_* */
	int groups[BENCH_NUM_GROUPS], num_groups;
	int shapes_given; /* --shape: every write takes these shapes */
} bench_options;

/* One measured case: medians over the rounds. */
typedef struct bench_result {
	bench_shape s;
	int mode;
	double fused_s, unfused_s, ceiling_s; /* unfused_s 0: not timed */
	double floor_s;                        /* 0: not timed (no graph, or the host) */
	double bytes, ceiling_bytes;
	double ratio; /* median over the rounds of fused GB/s / ceiling GB/s */
	int graph;    /* timed as calls replayed from a graph */
	char what[16]; /* the grouped or MLA write's name; "" for the scale mode's */
} bench_result;

/* ---- bench_cli.c ---- */

/* 0, 1 when --help or --version was answered, -1 on a usage error (with
 * its message printed). */
int bench_parse_args(int argc, char **argv, bench_options *o);
/* The shapes write (BENCH_WRITE_*) runs in: --shape's, or its defaults. */
int bench_shapes_of(const bench_options *o, int write, const bench_shape **shapes);
/* The name of scale mode m in options and reports. */
const char *bench_mode_name(int m);

/* ---- bench_host.c ---- */

extern const bench_device bench_host_device;
double bench_now(void);
double bench_median(double *t, int n); /* sorts t */
/* Deterministic, never-zero bf16 values spread over several binades. */
void bench_fill_bf16(uint16_t *p, size_t n, uint64_t seed);
/* Elements per second one core converts, in cache: the conversion alone. */
double bench_conversion_rate(fp8kv_backend *b, fp8kv_dtype input, fp8kv_dtype format,
			     int scaled);

/* ---- bench_rounds.c ---- */

/* What one case times, in rounds of one sample each (B-ROUNDS): the fused
 * call, the unfused path (NULL: none), the ceiling, and, for launches
 * timed in a graph on a device that has one, the launch floor. */
typedef struct bench_timing {
	bench_work_fn fused, unfused, ceiling;
	void *arg;
	int graph, per_sample;
	double bytes, ceiling_bytes;
} bench_timing;

/* Times t samples times into res (fused_s, unfused_s, ceiling_s, floor_s,
 * ratio, bytes, graph): 0, or -1 with a message. */
int bench_rounds(const bench_device *dev, void *stream, const bench_timing *t, int samples,
		 bench_result *res);

/* ---- bench_write.c ---- */

/* One shape in one scale mode, through fp8kv_reshape_and_cache: 0, or -1
 * with a message. */
int bench_write_case(fp8kv_backend *b, const bench_device *dev, const bench_options *o,
		     const bench_shape *s, int mode, bench_result *res);
/* The bytes bench_write_case allocates for s at most, or 0 when that does
 * not fit in a size_t. */
size_t bench_write_bytes(const bench_shape *s, size_t in_size);

/* ---- bench_group.c ---- */

/* The name of --group's recipe g, and back (-1: none). */
const char *bench_group_name(int g);
int bench_group_from_name(const char *name);
/* One shape of a grouped write (write BENCH_WRITE_GROUP, recipe group) or
 * an MLA write (BENCH_WRITE_MLA_*: 512 + 64, one head, the shape's tokens
 * and block size): 0, or -1 with a message. */
int bench_special_case(fp8kv_backend *b, const bench_device *dev, const bench_options *o,
		       const bench_shape *s, int write, int group, bench_result *res);

/* ---- bench_report.c ---- */

void bench_print_header(const bench_options *o, fp8kv_backend *b, const bench_device *dev);
void bench_print_result(const bench_result *r);
/* "T x H x D/BS" */
void bench_shape_label(const bench_shape *s, char *out, size_t len);
/* The results as JSON in path: 0, or -1 (with a message) when the file
 * could not be written whole.  rates: only when on_host. */
int bench_write_json(const char *path, const bench_options *o, fp8kv_backend *b,
		     const bench_result *results, int nres, int on_host, double rates[2][3]);

#endif /* FP8KV_TOOLS_BENCH_H */
