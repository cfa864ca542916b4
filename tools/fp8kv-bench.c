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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fp8kv.h"
#include "bench_device.h"

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
	int scale_modes[4], num_scale_modes;
	int samples;
	const char *json;
	shape shapes[64];
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
	static const char *names[] = {"one", "tensor", "head", "dynamic"};
	return names[m];
}

typedef struct result {
	shape s;
	int mode;
	double fused_s, unfused_s, ceiling_s;  /* medians over the rounds */
	double bytes, ceiling_bytes;
	double ratio;  /* median over the rounds of fused GB/s / ceiling GB/s */
} result;

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
	const size_t per_side = (size_t)(T * H * D), slots_per_cache = (size_t)(nb * BS);
	const size_t in_size = fp8kv_dtype_size(o->input);
	const size_t cache_side = slots_per_cache * (size_t)(H * D);
	void *input = NULL, *cache = NULL, *slots = NULL, *scales = NULL, *staging = NULL,
	     *scale_cache = NULL, *ceiling_dst = NULL, *outputs = NULL;
	uint16_t *host_in = malloc(2 * per_side * in_size);
	int64_t *host_slots = malloc((size_t)T * sizeof(int64_t));
	int64_t *perm = malloc((size_t)nb * sizeof(int64_t));
	float host_scales[2 * 64];
	void *stream = dev->stream_create();
	int rc = -1;
	run r;

	if (!host_in || !host_slots || !perm)
		goto fail;
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
	for (int i = 0; i < 2 * 64; i++)
		host_scales[i] = fp8kv_suggest_scale(16.0f, o->format) * (1.0f + 0.01f * (float)(i % 64));

	/* enough copies that one round of calls overflows the cache twice */
	const double footprint = (double)(2 * per_side * in_size + 2 * cache_side);
	const size_t cache_bytes = dev->cache_bytes();
	int copies = 1;
	while (copies < 16 && (double)copies * footprint < 2.0 * (double)cache_bytes)
		copies++;
	CHECK(fp8kv_buffer_alloc(b, (size_t)copies * 2 * per_side * in_size, &input));
	CHECK(fp8kv_buffer_alloc(b, (size_t)copies * 2 * cache_side, &cache));
	CHECK(fp8kv_buffer_alloc(b, (size_t)copies * 2 * per_side, &staging));
	CHECK(fp8kv_buffer_alloc(b, (size_t)copies * 2 * per_side, &ceiling_dst));
	CHECK(fp8kv_buffer_alloc(b, (size_t)T * sizeof(int64_t), &slots));
	CHECK(fp8kv_buffer_alloc(b, sizeof host_scales, &scales));
	CHECK(fp8kv_buffer_alloc(b, 2 * slots_per_cache * (size_t)H * sizeof(float), &scale_cache));
	/* two counters, then k_amax and v_amax */
	CHECK(fp8kv_buffer_alloc(b, 2 * sizeof(uint64_t) + 2 * 64 * sizeof(float), &outputs));
	CHECK(fp8kv_buffer_fill(b, outputs, 0, 2 * sizeof(uint64_t) + 2 * 64 * sizeof(float)));
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
	d->v_scale = (const float *)scales + 64;
	d->k_scale_cache = scale_cache;
	d->v_scale_cache = (float *)scale_cache + slots_per_cache * (size_t)H;
	if (o->outputs) {
		d->overflow_count = outputs;
		d->nan_count = (uint64_t *)outputs + 1;
		d->k_amax = (float *)((uint64_t *)outputs + 2);
		d->v_amax = d->k_amax + 64;
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
		"  --scale MODES      comma list of one,tensor,head,dynamic, or all (default one,tensor)\n"
		"  --outputs          also ask for the overflow and NaN counters and k_amax/v_amax\n"
		"  --shape TxHxD[/BS] a shape (repeatable; default: the standard set)\n"
		"  --samples N        rounds of fused, unfused and ceiling; medians taken (default 21)\n"
		"  --json FILE        also write the results as JSON\n"
		"  --help, --version\n");
}

static int parse_modes(const char *s, options *o)
{
	o->num_scale_modes = 0;
	if (!strcmp(s, "all"))
		s = "one,tensor,head,dynamic";
	char buf[128];
	snprintf(buf, sizeof buf, "%s", s);
	for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
		int m = -1;
		for (int i = 0; i < 4; i++)
			if (!strcmp(tok, mode_name(i)))
				m = i;
		if (m < 0 || o->num_scale_modes == 4)
			return -1;
		o->scale_modes[o->num_scale_modes++] = m;
	}
	return o->num_scale_modes ? 0 : -1;
}

static int parse_args(int argc, char **argv, options *o)
{
	memset(o, 0, sizeof *o);
	o->backend = "auto";
	o->input = FP8KV_BF16;
	o->format = FP8KV_E4M3FN;
	o->samples = 21;
	parse_modes("one,tensor", o);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "--version")) {
			printf("fp8kv-bench %s\n", fp8kv_version());
			exit(0);
		} else if (!strcmp(a, "--outputs")) {
			o->outputs = 1;
			continue; /* a flag: no value to step over */
		} else if (!v) {
			return -1;
		} else if (!strcmp(a, "--backend")) {
			o->backend = v;
		} else if (!strcmp(a, "--input")) {
			if (fp8kv_dtype_from_name(v, &o->input) || fp8kv_dtype_is_fp8(o->input))
				return -1;
		} else if (!strcmp(a, "--format")) {
			if (fp8kv_dtype_from_name(v, &o->format) || !fp8kv_dtype_is_fp8(o->format))
				return -1;
		} else if (!strcmp(a, "--scale")) {
			if (parse_modes(v, o))
				return -1;
		} else if (!strcmp(a, "--shape")) {
			shape s = {0, 0, 0, 16};
			long long t, h, d, bs = 16;
			int n = sscanf(v, "%lldx%lldx%lld/%lld", &t, &h, &d, &bs);
			if (n < 3 || t < 1 || h < 1 || h > 64 || d < 1 || bs < 1 || o->num_shapes == 64)
				return -1;
			s.tokens = t, s.heads = h, s.dim = d, s.block_size = bs;
			o->shapes[o->num_shapes++] = s;
		} else if (!strcmp(a, "--samples")) {
			o->samples = atoi(v);
			if (o->samples < 1 || o->samples > 256)
				return -1;
		} else if (!strcmp(a, "--json")) {
			o->json = v;
		} else {
			return -1;
		}
		i++;
	}
	if (!o->num_shapes) {
		o->num_shapes = (int)(sizeof default_shapes / sizeof default_shapes[0]);
		memcpy(o->shapes, default_shapes, sizeof default_shapes);
	}
	return 0;
}

int main(int argc, char **argv)
{
	options o;
	fp8kv_backend *b;
	if (parse_args(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	fp8kv_status st = fp8kv_backend_open(o.backend, &b);
	if (st != FP8KV_OK) {
		fprintf(stderr, "fp8kv-bench: %s\n", fp8kv_last_error());
		return st == FP8KV_ENODEV ? 77 : 3;
	}
	const int on_host = !strcmp(fp8kv_backend_name(b), "cpu");
	const bench_device *dev = on_host ? &host_device : bench_gpu_device();
	if (!dev) {
		fprintf(stderr, "fp8kv-bench: no timing support for backend %s in this build\n",
			fp8kv_backend_name(b));
		fp8kv_backend_close(b);
		return 3;
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
	printf("%-22s %-8s %10s %9s %10s %9s %7s %11s %8s\n", "tokens x heads x dim/bs", "scale",
	       "fused us", "GB/s", "ceiling us", "GB/s", "ratio", "unfused us", "speedup");

	result results[64 * 4];
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
			snprintf(label, sizeof label, "%lld x %lld x %lld/%lld",
				 (long long)r->s.tokens, (long long)r->s.heads, (long long)r->s.dim,
				 (long long)r->s.block_size);
			const double gbs = r->bytes / r->fused_s * 1e-9;
			const double cgbs = r->ceiling_bytes / r->ceiling_s * 1e-9;
			printf("%-22s %-8s %10.2f %9.1f %10.2f %9.1f %6.1f%% ", label, mode_name(r->mode),
			       r->fused_s * 1e6, gbs, r->ceiling_s * 1e6, cgbs, 100.0 * r->ratio);
			if (r->unfused_s > 0)
				printf("%11.2f %7.2fx\n", r->unfused_s * 1e6, r->unfused_s / r->fused_s);
			else
				printf("%11s %8s\n", "-", "-");
			fflush(stdout);
		}

	double rates[2][3];
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

	if (o.json) {
		FILE *f = fopen(o.json, "w");
		if (!f) {
			perror(o.json);
			failed = 1;
		} else {
			fprintf(f, "{\"version\": \"%s\", \"backend\": \"%s\", \"device\": \"%s\", "
				   "\"input\": \"%s\", \"format\": \"%s\", \"outputs\": %s, \"results\": [",
				fp8kv_version(), fp8kv_backend_name(b), fp8kv_backend_device(b),
				fp8kv_dtype_name(o.input), fp8kv_dtype_name(o.format),
				o.outputs ? "true" : "false");
			for (int i = 0; i < nres; i++) {
				const result *r = &results[i];
				fprintf(f, "%s\n {\"tokens\": %lld, \"heads\": %lld, \"dim\": %lld, "
					   "\"block_size\": %lld, \"scale\": \"%s\", \"fused_s\": %.9g, "
					   "\"bytes\": %.0f, \"ceiling_s\": %.9g, \"ceiling_bytes\": %.0f, "
					   "\"unfused_s\": %.9g, \"ratio\": %.4f}",
					i ? "," : "", (long long)r->s.tokens, (long long)r->s.heads,
					(long long)r->s.dim, (long long)r->s.block_size,
					mode_name(r->mode), r->fused_s, r->bytes, r->ceiling_s,
					r->ceiling_bytes, r->unfused_s,
					r->ratio);
			}
			fprintf(f, "\n]");
			if (on_host)
				fprintf(f, ", \"conversion_per_core\": {\"bf16_one\": %.4g, "
					   "\"f16_one\": %.4g, \"f32_one\": %.4g, \"bf16_tensor\": %.4g, "
					   "\"f16_tensor\": %.4g, \"f32_tensor\": %.4g}",
					rates[0][0], rates[0][1], rates[0][2], rates[1][0], rates[1][1],
					rates[1][2]);
			fprintf(f, "}\n");
			fclose(f);
		}
	}
	fp8kv_backend_close(b);
	return failed ? 3 : 0;
}
