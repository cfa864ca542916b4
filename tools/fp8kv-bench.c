/* SPDX-License-Identifier: MIT */
/*
 * fp8kv-bench - how close fp8kv_reshape_and_cache runs to memory speed.
 *
 * For each shape it times the fused write (median of interleaved rounds,
 * each after a warm-up), counts the fewest bytes the write must move, and
 * divides by a ceiling measured in the same run: a streaming pass that
 * reads 2 bytes and writes 1 byte per element, contiguous, with no
 * conversion.  It also times
 * the unfused path the fusion replaces (quantize K, quantize V into a
 * staging buffer, then scatter).  Correctness is the test suite's business;
 * this program only measures.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fp8kv.h"
#include "bench_device.h"
#include "tool_cli.h"

const char tool_name[] = "fp8kv-bench";

enum {
	MAX_HEADS = 64,    /* the scales of a shape are arrays of this many */
	MAX_SHAPES = 64,
	MAX_SAMPLES = 256,
	MAX_COPIES = 16,   /* of the buffers, that calls rotate over */
	MAX_SCALE_MODES = 8, /* a capacity: the modes are fp8kv_scale_mode_name's */
};

/* each field at most INT_MAX, heads at most MAX_HEADS (parse_shape) */
typedef struct shape {
	int64_t tokens, heads, dim, block_size;
} shape;

static const shape default_shapes[] = {
	{1, 8, 128, 16},     {64, 8, 128, 16},   {256, 8, 128, 16},  {16384, 8, 128, 16},
	{32768, 8, 128, 16}, {32768, 1, 128, 64}, {8192, 32, 128, 16}, {4096, 8, 256, 16},
};

typedef struct options {
	const char *backend;
	fp8kv_dtype input, format;
	int scale_modes[MAX_SCALE_MODES], num_scale_modes;
	int samples;
	const char *json;
	shape shapes[MAX_SHAPES];
	const char *shape_text[MAX_SHAPES]; /* as given */
	int num_shapes;
	int outputs; /* ask for the counters and k_amax/v_amax too */
} options;

/* ---- the host as a bench device ---- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* sorts t */
static double median(double *t, int n)
{
	qsort(t, (size_t)n, sizeof t[0], cmp_double);
	return t[n / 2];
}

static void *host_stream_create(void) { return NULL; }
static void host_stream_destroy(void *s) { (void)s; }

static int host_time(bench_work_fn work, void *arg, void *stream, int per_sample, int graph,
		     double *seconds)
{
	(void)graph;
	for (int i = 0; i < 3; i++) /* warm-up: page faults, thread team */
		if (work(arg, stream))
			return -1;
	const double t0 = now();
	for (int i = 0; i < per_sample; i++)
		if (work(arg, stream))
			return -1;
	*seconds = (now() - t0) / per_sample;
	return 0;
}

static int host_stream_ceiling(uint8_t *dst, const uint16_t *src, size_t count, void *stream)
{
	(void)stream;
	const int64_t n = (int64_t)count;
#pragma omp parallel for schedule(static)
	for (int64_t i = 0; i < n; i++)
		dst[i] = (uint8_t)(src[i] >> 8);
	return 0;
}

static size_t host_cache_bytes(void)
{
#ifdef _SC_LEVEL3_CACHE_SIZE
	const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
	if (l3 > 0)
		return (size_t)l3;
#endif
	return 32u << 20;
}

static const bench_device host_device = {
	"host", host_stream_create, host_stream_destroy, host_time, host_stream_ceiling,
	host_cache_bytes,
};

/* ---- one shape ---- */

typedef struct run {
	fp8kv_backend *b;
	const bench_device *dev;
	fp8kv_cache_write desc;
	/* unfused path */
	uint8_t *staging;
	fp8kv_cache_write scatter;
	const float *k_scale, *v_scale;
	fp8kv_scale_mode flat_mode;
	/* ceiling */
	uint8_t *ceiling_dst;
	const uint16_t *ceiling_src;
	size_t elements;
	/* Copies of inputs and outputs, used in turn, so that a call does not
	 * find the previous call's bytes in the cache: copy c of a buffer is at
	 * c * its step. */
	int copies, next;
	size_t input_step, cache_step, staging_step;
} run;

/* the descriptors of the copy to use now, and on to the next */
static int take_copy(run *r, fp8kv_cache_write *fused, fp8kv_cache_write *scatter,
		     uint8_t **staging)
{
	const int c = r->next;
	r->next = (r->next + 1) % r->copies;
	const size_t in = (size_t)c * r->input_step, out = (size_t)c * r->cache_step;
	*fused = r->desc;
	fused->key = (const uint8_t *)fused->key + in;
	fused->value = (const uint8_t *)fused->value + in;
	fused->key_cache = (uint8_t *)fused->key_cache + out;
	fused->value_cache = (uint8_t *)fused->value_cache + out;
	*scatter = r->scatter;
	*staging = r->staging + (size_t)c * r->staging_step;
	scatter->key = (const uint8_t *)scatter->key + (size_t)c * r->staging_step;
	scatter->value = (const uint8_t *)scatter->value + (size_t)c * r->staging_step;
	scatter->key_cache = fused->key_cache;
	scatter->value_cache = fused->value_cache;
	return c;
}

static int do_fused(void *arg, void *stream)
{
	run *r = arg;
	fp8kv_cache_write d, unused;
	uint8_t *staging;
	take_copy(r, &d, &unused, &staging);
	return fp8kv_reshape_and_cache(r->b, &d, stream) != FP8KV_OK;
}

static int do_unfused(void *arg, void *stream)
{
	run *r = arg;
	const size_t half = r->elements / 2;
	fp8kv_cache_write d, scatter;
	uint8_t *staging;
	take_copy(r, &d, &scatter, &staging);
	return fp8kv_quantize(r->b, staging, d.cache_dtype, d.key, d.input_dtype, half,
			      r->flat_mode, r->k_scale, d.overflow, NULL, stream) != FP8KV_OK ||
	       fp8kv_quantize(r->b, staging + half, d.cache_dtype, d.value, d.input_dtype,
			      half, r->flat_mode, r->v_scale, d.overflow, NULL, stream) != FP8KV_OK ||
	       fp8kv_reshape_and_cache(r->b, &scatter, stream) != FP8KV_OK;
}

static int do_ceiling(void *arg, void *stream)
{
	run *r = arg;
	const int c = r->next;
	r->next = (r->next + 1) % r->copies;
	/* as many elements as the fused call, from the copy's input */
	return r->dev->stream_ceiling(r->ceiling_dst + (size_t)c * r->staging_step,
				      (const uint16_t *)((const uint8_t *)r->ceiling_src +
							 (size_t)c * r->input_step),
				      r->elements, stream);
}

/* Deterministic, never-zero bf16 values spread over several binades. */
static void fill_bf16(uint16_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* exponent 2^-6 .. 2^3, random sign and mantissa */
		const uint16_t exp = (uint16_t)(121 + (x >> 40) % 10);
		p[i] = (uint16_t)(((x >> 63) << 15) | (exp << 7) | ((x >> 20) & 0x7F));
	}
}

static const char *mode_name(int m)
{
	return fp8kv_scale_mode_name((fp8kv_scale_mode)m);
}

typedef struct result {
	shape s;
	int mode;
	double fused_s, unfused_s, ceiling_s;  /* medians over the rounds */
	double bytes, ceiling_bytes;
	double ratio;  /* median over the rounds of fused GB/s / ceiling GB/s */
} result;

/* "T x H x D/BS" */
static void shape_label(const shape *s, char *out, size_t len)
{
	snprintf(out, len, "%lld x %lld x %lld/%lld", (long long)s->tokens, (long long)s->heads,
		 (long long)s->dim, (long long)s->block_size);
}

/* *sum += a * b; nonzero when that overflows size_t */
static int add_product(size_t *sum, size_t a, size_t b)
{
	size_t product;
	return __builtin_mul_overflow(a, b, &product) || __builtin_add_overflow(*sum, product, sum);
}

/* The bytes bench_shape allocates for s at most, host and backend memory
 * together, or 0 when that does not fit in a size_t: a shape the bench
 * cannot even count. */
static size_t shape_bytes(const shape *s, size_t in_size)
{
	const int64_t num_blocks = (s->tokens + s->block_size - 1) / s->block_size + 1;
	size_t slots = 0, rows = 0, per_side = 0, cache_side = 0, scales = 0, total = 0;
	if (add_product(&slots, (size_t)num_blocks, (size_t)s->block_size) ||
	    add_product(&rows, (size_t)s->tokens, (size_t)s->heads) ||
	    add_product(&per_side, rows, (size_t)s->dim) ||
	    add_product(&scales, slots, (size_t)s->heads) ||
	    add_product(&cache_side, scales, (size_t)s->dim))
		return 0;
	/* copies of the inputs, the caches, staging and the ceiling's output
	 * (both sides each), the host's inputs, slots and block order */
	if (add_product(&total, 2 * MAX_COPIES * in_size, per_side) ||
	    add_product(&total, 2 * MAX_COPIES, cache_side) ||
	    add_product(&total, 4 * MAX_COPIES, per_side) ||
	    add_product(&total, 2 * in_size, per_side) ||
	    add_product(&total, 2 * sizeof(float), scales) ||
	    add_product(&total, 2 * sizeof(int64_t), (size_t)s->tokens) ||
	    add_product(&total, sizeof(int64_t), (size_t)num_blocks))
		return 0;
	return total;
}

#define CHECK(call)                                                                       \
	do {                                                                              \
		if ((call) != FP8KV_OK) {                                                 \
			fprintf(stderr, "fp8kv-bench: %s: %s\n", #call, fp8kv_last_error()); \
			goto fail;                                                        \
		}                                                                         \
	} while (0)

static int bench_shape(fp8kv_backend *b, const bench_device *dev, const options *o,
		       const shape *s, int mode, result *res)
{
	const int64_t T = s->tokens, H = s->heads, D = s->dim, BS = s->block_size;
	const int64_t nb = (T + BS - 1) / BS + 1;
	/* none of these overflows: parse_args checked shape_bytes */
	const size_t per_side = (size_t)T * (size_t)H * (size_t)D;
	const size_t slots_per_cache = (size_t)nb * (size_t)BS;
	const size_t in_size = fp8kv_dtype_size(o->input);
	const size_t cache_side = slots_per_cache * (size_t)H * (size_t)D;
	void *input = NULL, *cache = NULL, *slots = NULL, *scales = NULL, *staging = NULL,
	     *scale_cache = NULL, *ceiling_dst = NULL, *outputs = NULL;
	uint16_t *host_in = malloc(2 * per_side * in_size);
	int64_t *host_slots = malloc((size_t)T * sizeof(int64_t));
	int64_t *perm = malloc((size_t)nb * sizeof(int64_t));
	float host_scales[2 * MAX_HEADS];
	void *stream = dev->stream_create();
	int rc = -1;
	run r;

	if (!host_in || !host_slots || !perm) {
		char label[64];
		shape_label(s, label, sizeof label);
		fprintf(stderr, "fp8kv-bench: shape %s: cannot allocate %zu bytes of host memory\n",
			label, 2 * per_side * in_size + ((size_t)T + (size_t)nb) * sizeof(int64_t));
		goto fail;
	}
	fill_bf16(host_in, 2 * per_side * in_size / 2, (uint64_t)(T * 31 + H * 7 + D));
	for (int64_t i = 0; i < nb; i++)
		perm[i] = i;
	for (int64_t i = nb - 1; i > 0; i--) { /* blocks in random order, as a pool hands them out */
		const int64_t j = (i * 7919 + 13) % (i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (int64_t t = 0; t < T; t++)
		host_slots[t] = perm[t / BS] * BS + t % BS;
	/* calibrated scales, as an engine would pick them: the data's amax
	 * (below 16) over the format's max, a little more for each head, so
	 * that nothing overflows */
	for (int i = 0; i < 2 * MAX_HEADS; i++)
		host_scales[i] = fp8kv_suggest_scale(16.0f, o->format) *
				 (1.0f + 0.01f * (float)(i % MAX_HEADS));

	/* enough copies that one round of calls overflows the cache twice */
	const double footprint = (double)(2 * per_side * in_size + 2 * cache_side);
	const size_t cache_bytes = dev->cache_bytes();
	int copies = 1;
	while (copies < MAX_COPIES && (double)copies * footprint < 2.0 * (double)cache_bytes)
		copies++;
	CHECK(fp8kv_buffer_alloc(b, (size_t)copies * 2 * per_side * in_size, &input));
	CHECK(fp8kv_buffer_alloc(b, (size_t)copies * 2 * cache_side, &cache));
	CHECK(fp8kv_buffer_alloc(b, (size_t)copies * 2 * per_side, &staging));
	CHECK(fp8kv_buffer_alloc(b, (size_t)copies * 2 * per_side, &ceiling_dst));
	CHECK(fp8kv_buffer_alloc(b, (size_t)T * sizeof(int64_t), &slots));
	CHECK(fp8kv_buffer_alloc(b, sizeof host_scales, &scales));
	CHECK(fp8kv_buffer_alloc(b, 2 * slots_per_cache * (size_t)H * sizeof(float), &scale_cache));
	/* two counters, then k_amax and v_amax */
	CHECK(fp8kv_buffer_alloc(b, 2 * sizeof(uint64_t) + 2 * MAX_HEADS * sizeof(float), &outputs));
	CHECK(fp8kv_buffer_fill(b, outputs, 0, 2 * sizeof(uint64_t) + 2 * MAX_HEADS * sizeof(float)));
	for (int c = 0; c < copies; c++)
		CHECK(fp8kv_buffer_upload(b, (uint8_t *)input + (size_t)c * 2 * per_side * in_size,
					  host_in, 2 * per_side * in_size));
	CHECK(fp8kv_buffer_upload(b, slots, host_slots, (size_t)T * sizeof(int64_t)));
	CHECK(fp8kv_buffer_upload(b, scales, host_scales, sizeof host_scales));
	CHECK(fp8kv_buffer_fill(b, cache, 0x5A, (size_t)copies * 2 * cache_side));

	memset(&r, 0, sizeof r);
	r.b = b;
	r.dev = dev;
	r.elements = 2 * per_side;
	r.copies = copies;
	r.input_step = 2 * per_side * in_size;
	r.cache_step = 2 * cache_side;
	r.staging_step = 2 * per_side;
	fp8kv_cache_write *d = &r.desc;
	fp8kv_cache_write_init(d, T, H, D, D, nb, BS, FP8KV_LAYOUT_NHD);
	d->input_dtype = o->input;
	d->cache_dtype = o->format;
	d->key = input;
	d->value = (uint8_t *)input + per_side * in_size;
	d->key_cache = cache;
	d->value_cache = (uint8_t *)cache + cache_side;
	d->slot_mapping = slots;
	d->scale_mode = (fp8kv_scale_mode)mode;
	d->k_scale = scales;
	d->v_scale = (const float *)scales + MAX_HEADS;
	d->k_scale_cache = scale_cache;
	d->v_scale_cache = (float *)scale_cache + slots_per_cache * (size_t)H;
	if (o->outputs) {
		d->overflow_count = outputs;
		d->nan_count = (uint64_t *)outputs + 1;
		d->k_amax = (float *)((uint64_t *)outputs + 2);
		d->v_amax = d->k_amax + MAX_HEADS;
	}

	/* unfused: quantize both sides to staging, then scatter the FP8 rows as
	 * a plain copy (each pair of FP8 bytes viewed as one 16-bit element) */
	r.staging = staging;
	r.k_scale = d->k_scale;
	r.v_scale = d->v_scale;
	r.flat_mode = mode == FP8KV_SCALE_ONE ? FP8KV_SCALE_ONE : FP8KV_SCALE_TENSOR;
	fp8kv_cache_write_init(&r.scatter, T, H, D / 2, D / 2, nb, BS, FP8KV_LAYOUT_NHD);
	r.scatter.input_dtype = r.scatter.cache_dtype = FP8KV_BF16;
	r.scatter.key = staging;
	r.scatter.value = (uint8_t *)staging + per_side;
	r.scatter.key_cache = cache;
	r.scatter.value_cache = (uint8_t *)cache + cache_side;
	r.scatter.slot_mapping = slots;
	r.ceiling_src = input;
	r.ceiling_dst = ceiling_dst;

	/* small shapes: many calls per sample, captured in a graph on a GPU */
	const double fused_bytes = 3.0 * (double)r.elements;
	const int graph = fused_bytes < 64e6;
	const int per_sample = graph ? 64 : 1;
	/* minimal bytes: inputs read once, codes written once, slots read once,
	 * computed scales written once */
	res->bytes = (double)r.elements * (double)(in_size + 1) + 8.0 * (double)T +
		     (mode == FP8KV_SCALE_TOKEN_HEAD ? 8.0 * (double)(T * H) : 0.0);
	res->ceiling_bytes = (double)r.elements * 3.0;
	/* Rounds of fused, unfused and ceiling, one sample each, so that the
	 * three see the same machine (a shared VM's bandwidth drifts between
	 * seconds); medians over the rounds. */
	const int unfused = D % 2 == 0 && o->input != FP8KV_F32;
	double fused_t[256], unfused_t[256], ceiling_t[256], ratio_t[256];
	for (int k = 0; k < o->samples; k++) {
		if (dev->time(do_fused, &r, stream, per_sample, graph, &fused_t[k]) ||
		    (unfused && dev->time(do_unfused, &r, stream, per_sample, graph, &unfused_t[k])) ||
		    dev->time(do_ceiling, &r, stream, per_sample, graph, &ceiling_t[k])) {
			fprintf(stderr, "fp8kv-bench: timing failed: %s\n", fp8kv_last_error());
			goto fail;
		}
		ratio_t[k] = (res->bytes / fused_t[k]) / (res->ceiling_bytes / ceiling_t[k]);
	}
	CHECK(fp8kv_backend_synchronize(b, stream));
	res->fused_s = median(fused_t, o->samples);
	res->unfused_s = unfused ? median(unfused_t, o->samples) : 0.0;
	res->ceiling_s = median(ceiling_t, o->samples);
	res->ratio = median(ratio_t, o->samples);
	res->s = *s;
	res->mode = mode;
	rc = 0;
fail:
	fp8kv_buffer_free(b, input);
	fp8kv_buffer_free(b, cache);
	fp8kv_buffer_free(b, staging);
	fp8kv_buffer_free(b, ceiling_dst);
	fp8kv_buffer_free(b, slots);
	fp8kv_buffer_free(b, scales);
	fp8kv_buffer_free(b, scale_cache);
	fp8kv_buffer_free(b, outputs);
	dev->stream_destroy(stream);
	free(host_in);
	free(host_slots);
	free(perm);
	return rc;
}

/* ---- conversion alone, one core ---- */

static double conversion_rate(fp8kv_backend *b, fp8kv_dtype input, fp8kv_dtype format,
			      int scaled)
{
	/* below the library's parallel threshold, so this runs on one thread,
	 * and small enough to stay in cache: the conversion, not memory */
	enum { N = 16384 };
	static uint16_t src[2 * N];
	static uint8_t dst[N];
	const float s = 0.05f;
	fill_bf16(src, 2 * N, 7);
	const double t0 = now();
	int reps = 0;
	do {
		for (int i = 0; i < 64; i++)
			if (fp8kv_quantize(b, dst, format, src, input, N,
					   scaled ? FP8KV_SCALE_TENSOR : FP8KV_SCALE_ONE, &s,
					   FP8KV_SATURATE, NULL, NULL) != FP8KV_OK)
				return -1;
		reps += 64;
	} while (now() - t0 < 0.3);
	return (double)reps * N / (now() - t0);
}

/* ---- output ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: fp8kv-bench [OPTIONS]\n"
		"Times fp8kv_reshape_and_cache against a streaming ceiling measured in the same run.\n\n"
		"  --backend NAME     backend to time (default: auto)\n"
		"  --input DTYPE      bf16 (default), f16 or f32\n"
		"  --format FMT       e4m3fn (default), e4m3fnuz, e5m2, e5m2fnuz\n"
		"  --scale MODES      comma list of one,tensor,head,token_head, or all (default one,tensor)\n"
		"  --outputs          also ask for the overflow and NaN counters and k_amax/v_amax\n"
		"  --shape TxHxD[/BS] tokens x heads x head dim, block size (default 16); repeatable,\n"
		"                     up to %d shapes; heads at most %d (default: the standard set)\n"
		"  --samples N        rounds of fused, unfused and ceiling; medians taken (default 21,\n"
		"                     at most %d)\n"
		"  --json FILE        also write the results as JSON\n"
		"  --help, --version\n\n"
		"Exit status: 0 success, 2 usage error (a bad option, option value or backend\n"
		"name), 3 a measurement failed, GPU timing is not installed or the results\n"
		"could not be written, 77 the backend is absent.\n",
		MAX_SHAPES, MAX_HEADS, MAX_SAMPLES);
}

/* o->scale_modes from "all" or a comma list of distinct mode names. */
static int parse_modes(const char *s, options *o)
{
	o->num_scale_modes = 0;
	if (!strcmp(s, "all")) {
		for (int m = 0; m < MAX_SCALE_MODES && mode_name(m); m++)
			o->scale_modes[o->num_scale_modes++] = m;
		return 0;
	}
	for (const char *p = s;; p++) {
		const char *end = strchr(p, ',');
		const size_t len = end ? (size_t)(end - p) : strlen(p);
		char name[24];
		fp8kv_scale_mode m;
		if (len == 0 || len >= sizeof name || o->num_scale_modes == MAX_SCALE_MODES)
			return -1;
		memcpy(name, p, len);
		name[len] = '\0';
		if (fp8kv_scale_mode_from_name(name, &m))
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

/* "TxHxD" or "TxHxD/BS", each field a decimal number in its range. */
static int parse_shape(const char *v, shape *s)
{
	static const char *const what[4] = {"tokens", "heads", "head dim", "block size"};
	const uint64_t max[4] = {INT_MAX, MAX_HEADS, INT_MAX, INT_MAX};
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

/* 0, 1 when --help or --version was answered, -1 on a usage error (with
 * its message printed). */
static int parse_args(int argc, char **argv, options *o)
{
	static const char *const with_value[] = {"--backend", "--input",   "--format", "--scale",
						 "--shape",   "--samples", "--json"};
	memset(o, 0, sizeof *o);
	o->backend = "auto";
	o->input = FP8KV_BF16;
	o->format = FP8KV_E4M3FN;
	o->samples = 21;
	parse_modes("one,tensor", o);
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
		} else if (tool_option_with_value(a, v, with_value, 7)) {
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
		} else if (!strcmp(a, "--shape")) {
			if (o->num_shapes == MAX_SHAPES)
				return tool_bad_value(a, v, "at most %d shapes", MAX_SHAPES);
			if (parse_shape(v, &o->shapes[o->num_shapes]))
				return -1;
			o->shape_text[o->num_shapes++] = v;
		} else if (!strcmp(a, "--samples")) {
			if (tool_parse_number(v, 1, MAX_SAMPLES, &n))
				return tool_bad_value(a, v, "expected a number from 1 to %d", MAX_SAMPLES);
			o->samples = (int)n;
		} else {
			o->json = v;
		}
		i++;
	}
	/* the buffers of each shape, once the input type is known */
	for (int i = 0; i < o->num_shapes; i++)
		if (!shape_bytes(&o->shapes[i], fp8kv_dtype_size(o->input)))
			return tool_bad_value("--shape", o->shape_text[i],
					      "its buffers would exceed the address space");
	if (!o->num_shapes) {
		o->num_shapes = (int)(sizeof default_shapes / sizeof default_shapes[0]);
		memcpy(o->shapes, default_shapes, sizeof default_shapes);
	}
	return 0;
}

/* The results as JSON, in path: 0, or -1 (with a message) when the file
 * could not be written whole.  rates: only when on_host. */
static int write_json(const char *path, const options *o, fp8kv_backend *b,
		      const result *results, int nres, int on_host, double rates[2][3])
{
	FILE *f = tool_open_output(path);
	if (!f)
		return -1;
	fprintf(f, "{\"version\": \"%s\", \"backend\": \"%s\", \"device\": \"%s\", "
		   "\"input\": \"%s\", \"format\": \"%s\", \"outputs\": %s, \"results\": [",
		fp8kv_version(), fp8kv_backend_name(b), fp8kv_backend_device(b),
		fp8kv_dtype_name(o->input), fp8kv_dtype_name(o->format),
		o->outputs ? "true" : "false");
	for (int i = 0; i < nres; i++) {
		const result *r = &results[i];
		fprintf(f, "%s\n {\"tokens\": %lld, \"heads\": %lld, \"dim\": %lld, "
			   "\"block_size\": %lld, \"scale\": \"%s\", \"fused_s\": %.9g, "
			   "\"bytes\": %.0f, \"ceiling_s\": %.9g, \"ceiling_bytes\": %.0f, "
			   "\"unfused_s\": %.9g, \"ratio\": %.4f}",
			i ? "," : "", (long long)r->s.tokens, (long long)r->s.heads,
			(long long)r->s.dim, (long long)r->s.block_size, mode_name(r->mode),
			r->fused_s, r->bytes, r->ceiling_s, r->ceiling_bytes, r->unfused_s, r->ratio);
	}
	fprintf(f, "\n]");
	if (on_host)
		fprintf(f, ", \"conversion_per_core\": {\"bf16_one\": %.4g, "
			   "\"f16_one\": %.4g, \"f32_one\": %.4g, \"bf16_tensor\": %.4g, "
			   "\"f16_tensor\": %.4g, \"f32_tensor\": %.4g}",
			rates[0][0], rates[0][1], rates[0][2], rates[1][0], rates[1][1], rates[1][2]);
	fprintf(f, "}\n");
	return tool_close_output(f, path);
}

int main(int argc, char **argv)
{
	options o;
	fp8kv_backend *b;
	int rc;

	tool_check_stdout_at_exit();
	if ((rc = parse_args(argc, argv, &o)) != 0) {
		if (rc < 0)
			tool_usage_hint();
		return rc < 0 ? TOOL_EXIT_USAGE : 0;
	}
	fp8kv_status st = fp8kv_backend_open(o.backend, &b);
	if (st != FP8KV_OK) {
		if ((rc = tool_open_failure_status(st)) == TOOL_EXIT_USAGE) {
			tool_bad_value("--backend", o.backend, "%s", fp8kv_last_error());
			tool_usage_hint();
		} else {
			fprintf(stderr, "fp8kv-bench: %s\n", fp8kv_last_error());
		}
		return rc;
	}
	/* a GPU's timer, streams and ceiling kernel live in a module, so that
	 * this program needs no GPU runtime */
	const int on_host = !strcmp(fp8kv_backend_name(b), "cpu");
	char why[512];
	const bench_device *dev =
		on_host ? &host_device : bench_device_load(fp8kv_backend_name(b), why, sizeof why);
	if (!dev) {
		fprintf(stderr, "fp8kv-bench: no timing for backend %s: %s\n", fp8kv_backend_name(b),
			why);
		fp8kv_backend_close(b);
		return TOOL_EXIT_FAILED;
	}

	printf("fp8kv-bench %s: backend %s (%s), %s -> %s%s\n", fp8kv_version(),
	       fp8kv_backend_name(b), fp8kv_backend_device(b), fp8kv_dtype_name(o.input),
	       fp8kv_dtype_name(o.format),
	       o.outputs ? ", with counters and amax" : "");
	printf("bytes = minimal traffic (inputs read, codes written, 8 B/token slots, computed scales);\n"
	       "ceiling = same-run stream reading 2 B and writing 1 B per element, no conversion;\n"
	       "fused, unfused and ceiling timed in turns; ratio = median of each round's GB/s ratio;\n"
	       "calls rotate over up to 16 copies of the buffers, to span twice the %zu MiB last-level cache\n\n",
	       dev->cache_bytes() >> 20);
	printf("%-22s %-10s %10s %9s %10s %9s %7s %11s %8s\n", "tokens x heads x dim/bs", "scale",
	       "fused us", "GB/s", "ceiling us", "GB/s", "ratio", "unfused us", "speedup");

	result results[MAX_SHAPES * 4];
	int nres = 0, failed = 0;
	for (int i = 0; i < o.num_shapes; i++)
		for (int m = 0; m < o.num_scale_modes; m++) {
			result *r = &results[nres];
			memset(r, 0, sizeof *r);
			if (bench_shape(b, dev, &o, &o.shapes[i], o.scale_modes[m], r)) {
				failed = 1;
				continue;
			}
			nres++;
			char label[64];
			shape_label(&r->s, label, sizeof label);
			const double gbs = r->bytes / r->fused_s * 1e-9;
			const double cgbs = r->ceiling_bytes / r->ceiling_s * 1e-9;
			printf("%-22s %-10s %10.2f %9.1f %10.2f %9.1f %6.1f%% ", label, mode_name(r->mode),
			       r->fused_s * 1e6, gbs, r->ceiling_s * 1e6, cgbs, 100.0 * r->ratio);
			if (r->unfused_s > 0)
				printf("%11.2f %7.2fx\n", r->unfused_s * 1e6, r->unfused_s / r->fused_s);
			else
				printf("%11s %8s\n", "-", "-");
			fflush(stdout);
		}

	double rates[2][3] = {{0}};
	if (on_host) {
		const fp8kv_dtype ins[3] = {FP8KV_BF16, FP8KV_F16, FP8KV_F32};
		printf("\nconversion alone, one core (elements/s): ");
		for (int sc = 0; sc < 2; sc++)
			for (int k = 0; k < 3; k++) {
				rates[sc][k] = conversion_rate(b, ins[k], o.format, sc);
				printf("%s%s %s %.3g", sc || k ? ", " : "", fp8kv_dtype_name(ins[k]),
				       sc ? "tensor" : "one", rates[sc][k]);
			}
		printf("\n");
	}

	if (o.json && write_json(o.json, &o, b, results, nres, on_host, rates))
		failed = 1;
	fp8kv_backend_close(b);
	return failed ? TOOL_EXIT_FAILED : 0;
}
