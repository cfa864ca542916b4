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
 * Exit status: 0 all equal, 1 differences, 2 usage, 3 a backend failed,
 * 77 a requested backend is absent.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fp8kv.h"
#include "oracle.h"
#include "cache_case.h"

/* ---- options ---- */

enum level { LEVEL_QUICK, LEVEL_FULL, LEVEL_EXHAUSTIVE };

static struct options {
	const char *backends[8];
	int num_backends;
	enum level level;
	fp8kv_dtype formats[4];
	int num_formats;
	int scale_implicit, scale_tensor;
	int policy[2]; /* saturate, nonsat */
	uint64_t seed;
	const char *json;
	int verbose;
} opt;

static const fp8kv_dtype all_formats[4] = {FP8KV_E4M3FN, FP8KV_E4M3FNUZ, FP8KV_E5M2,
					   FP8KV_E5M2FNUZ};

/* ---- results ---- */

typedef struct group {
	char backend[32], operation[24], format[12], scale[24], policy[10];
	uint64_t cases, bytes, differing;
	int failed_to_run;
	char error[256];
} group;

static group **groups; /* pointers: a group stays put while others are added */
static size_t num_groups, cap_groups;
static int any_difference, any_failure;

static group *group_begin(const char *backend, const char *operation, const char *format,
			  const char *scale, const char *policy)
{
	if (num_groups == cap_groups) {
		cap_groups = cap_groups ? 2 * cap_groups : 64;
		group **more = realloc(groups, cap_groups * sizeof *more);
		if (!more) {
			fprintf(stderr, "fp8kv-validate: out of memory\n");
			exit(3);
		}
		groups = more;
	}
	group *g = calloc(1, sizeof *g);
	if (!g) {
		fprintf(stderr, "fp8kv-validate: out of memory\n");
		exit(3);
	}
	groups[num_groups++] = g;
	snprintf(g->backend, sizeof g->backend, "%s", backend);
	snprintf(g->operation, sizeof g->operation, "%s", operation);
	snprintf(g->format, sizeof g->format, "%s", format);
	snprintf(g->scale, sizeof g->scale, "%s", scale);
	snprintf(g->policy, sizeof g->policy, "%s", policy);
	return g;
}

static void group_end(group *g)
{
	const char *verdict = g->failed_to_run ? "ERROR" : g->differing ? "DIFFER" : "equal";
	printf("%-8s %-14s %-9s %-16s %-8s %12llu %14llu %10llu  %s\n", g->backend, g->operation,
	       g->format, g->scale, g->policy, (unsigned long long)g->cases,
	       (unsigned long long)g->bytes, (unsigned long long)g->differing, verdict);
	if (g->failed_to_run)
		printf("    error: %s\n", g->error);
	fflush(stdout);
	any_difference |= g->differing != 0;
	any_failure |= g->failed_to_run;
}

static void validate_fail(group *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g->error, sizeof g->error, fmt, ap);
	va_end(ap);
	g->failed_to_run = 1;
}

/* ---- progress on long levels ---- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A bar with the time left on a terminal, a plain line every ~10% otherwise. */
static void progress(const char *what, double done, double total, double started)
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

/* ---- describing codes ---- */

static void describe_code(uint8_t code, fp8kv_dtype format, char *out, size_t len)
{
	const double v = oracle_decode(code, format);
	if (oracle_is_nan(v))
		snprintf(out, len, "0x%02x (NaN)", code);
	else
		snprintf(out, len, "0x%02x (%.9g%s)", code, v,
			 v == fp8kv_fp8_max(format) || v == -fp8kv_fp8_max(format) ? ", max" : "");
}

static uint32_t input_bits(const void *src, fp8kv_dtype dtype, size_t i)
{
	if (dtype == FP8KV_F32)
		return ((const uint32_t *)src)[i];
	return ((const uint16_t *)src)[i];
}

/* ---- flat quantization groups ---- */

/* dst = reference codes of src for (format, scale, policy): the oracle when
 * the backend under test is the CPU, else the CPU backend. */
static fp8kv_status reference_quantize(fp8kv_backend *cpu, uint8_t *dst, const void *src,
				       fp8kv_dtype dtype, size_t n, fp8kv_dtype format,
				       const float *scale, fp8kv_overflow policy, uint64_t *overflows)
{
	*overflows = 0;
	if (!cpu) {
		uint64_t count = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(+ : count)
#endif
		for (int64_t i = 0; i < (int64_t)n; i++) {
			int ovf = 0;
			dst[i] = oracle_quantize_tabulated(input_bits(src, dtype, (size_t)i), dtype,
							   scale != NULL, scale ? *scale : 1.0f,
							   format, policy, &ovf);
			count += (uint64_t)ovf;
		}
		*overflows = count;
		return FP8KV_OK;
	}
	return fp8kv_quantize(cpu, dst, format, src, dtype, n,
			      scale ? FP8KV_SCALE_TENSOR : FP8KV_SCALE_ONE, scale, policy, overflows,
			      NULL);
}

/* Runs src (host) through backend b; codes land in host got[]. */
static fp8kv_status backend_quantize(fp8kv_backend *b, uint8_t *got, const void *src,
				     fp8kv_dtype dtype, size_t n, fp8kv_dtype format,
				     const float *scale, fp8kv_overflow policy, uint64_t *overflows)
{
	const size_t in_bytes = n * fp8kv_dtype_size(dtype);
	void *d_src = NULL, *d_dst = NULL, *d_scale = NULL, *d_count = NULL;
	fp8kv_status st;
	const uint64_t zero = 0;
	if ((st = fp8kv_buffer_alloc(b, in_bytes, &d_src)) ||
	    (st = fp8kv_buffer_alloc(b, n + 64, &d_dst)) ||
	    (st = fp8kv_buffer_alloc(b, sizeof(float), &d_scale)) ||
	    (st = fp8kv_buffer_alloc(b, sizeof(uint64_t), &d_count)) ||
	    (st = fp8kv_buffer_upload(b, d_src, src, in_bytes)) ||
	    (st = fp8kv_buffer_fill(b, d_dst, 0xA5, n + 64)) ||
	    (st = fp8kv_buffer_upload(b, d_count, &zero, sizeof zero)) ||
	    (scale && (st = fp8kv_buffer_upload(b, d_scale, scale, sizeof *scale))) ||
	    (st = fp8kv_quantize(b, d_dst, format, d_src, dtype, n,
				 scale ? FP8KV_SCALE_TENSOR : FP8KV_SCALE_ONE, d_scale, policy,
				 d_count, NULL)) ||
	    (st = fp8kv_backend_synchronize(b, NULL)) ||
	    (st = fp8kv_buffer_download(b, got, d_dst, n + 64)) ||
	    (st = fp8kv_buffer_download(b, overflows, d_count, sizeof *overflows))) {
		/* st says which step failed; the buffers go either way */
	}
	fp8kv_buffer_free(b, d_src);
	fp8kv_buffer_free(b, d_dst);
	fp8kv_buffer_free(b, d_scale);
	fp8kv_buffer_free(b, d_count);
	return st;
}

static const char *policy_name(fp8kv_overflow p)
{
	return p == FP8KV_SATURATE ? "saturate" : "nonsat";
}

/* Compares one batch; prints the first differences of the group in full. */
static void compare_codes(group *g, const void *src, fp8kv_dtype dtype, const float *scale,
			  fp8kv_dtype format, const uint8_t *expect, const uint8_t *got, size_t n,
			  uint64_t expect_ovf, uint64_t got_ovf, uint64_t index_base)
{
	for (size_t i = 0; i < n; i++) {
		if (expect[i] == got[i])
			continue;
		if (g->differing++ < 5 || opt.verbose) {
			char e[48], o[48];
			const uint32_t bits = input_bits(src, dtype, i);
			describe_code(expect[i], format, e, sizeof e);
			describe_code(got[i], format, o, sizeof o);
			printf("    element %llu: input %s 0x%0*x = %.9g, scale %s%.9g: expected %s, got %s\n",
			       (unsigned long long)(index_base + i), fp8kv_dtype_name(dtype),
			       dtype == FP8KV_F32 ? 8 : 4, bits, (double)oracle_widen(bits, dtype),
			       scale ? "" : "(implicit) ", scale ? (double)*scale : 1.0, e, o);
		}
	}
	/* bytes past the end must still hold the poison */
	for (size_t i = n; i < n + 64; i++)
		if (got[i] != 0xA5 && g->differing++ < 5)
			printf("    byte %zu past the end was written (0x%02x)\n", i, got[i]);
	if (expect_ovf != got_ovf && g->differing++ < 5)
		printf("    overflow count: expected %llu, got %llu\n",
		       (unsigned long long)expect_ovf, (unsigned long long)got_ovf);
	g->cases += n;
	g->bytes += n + 64 + sizeof(uint64_t);
}

static void check_quantize_set(fp8kv_backend *b, fp8kv_backend *cpu, const char *set,
			       const void *src, fp8kv_dtype dtype, size_t n, const float *scales,
			       int num_scales)
{
	uint8_t *expect = malloc(n + 64), *got = malloc(n + 64);
	if (!expect || !got) {
		fprintf(stderr, "fp8kv-validate: out of memory\n");
		exit(3);
	}
	for (int f = 0; f < opt.num_formats; f++)
		for (int p = 0; p < 2; p++) {
			if (!opt.policy[p])
				continue;
			const fp8kv_overflow policy = (fp8kv_overflow)p;
			for (int s = -1; s < num_scales; s++) {
				if ((s < 0 && !opt.scale_implicit) || (s >= 0 && !opt.scale_tensor))
					continue;
				const float *scale = s < 0 ? NULL : &scales[s];
				char scale_label[24];
				if (scale)
					snprintf(scale_label, sizeof scale_label, "tensor %.6g", *scale);
				else
					snprintf(scale_label, sizeof scale_label, "implicit");
				group *g = group_begin(fp8kv_backend_name(b), set,
						       fp8kv_dtype_name(opt.formats[f]), scale_label,
						       policy_name(policy));
				uint64_t eo = 0, go = 0;
				fp8kv_status st = reference_quantize(cpu, expect, src, dtype, n,
								     opt.formats[f], scale, policy, &eo);
				if (st)
					validate_fail(g, "reference: %s", fp8kv_last_error());
				else if ((st = backend_quantize(b, got, src, dtype, n, opt.formats[f],
								scale, policy, &go)))
					validate_fail(g, "%s", fp8kv_last_error());
				else
					compare_codes(g, src, dtype, scale, opt.formats[f], expect, got, n,
						      eo, go, 0);
				group_end(g);
			}
		}
	free(expect);
	free(got);
}

/* fp32 inputs that matter: specials, every binade edge, and +-1 and 2 ulp
 * around each midpoint between neighbouring codes of every format and
 * around each overflow threshold. */
static size_t boundary_inputs(uint32_t **out)
{
	size_t cap = 1 << 16, n = 0;
	uint32_t *v = malloc(cap * sizeof *v);
	if (!v)
		return 0;
#define PUSH(x) do { if (n < cap) v[n++] = (x); } while (0)
	const uint32_t specials[] = {0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000,
				     0xFFC00000, 0x7F800001, 0xFFBFFFFF, 0x7F7FFFFF, 0xFF7FFFFF,
				     0x00000001, 0x80000001, 0x00800000, 0x80800000, 0x007FFFFF};
	for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
		PUSH(specials[i]);
	for (uint32_t e = 0; e < 255; e++)
		for (int d = -2; d <= 2; d++)
			for (uint32_t sign = 0; sign < 2; sign++)
				PUSH((sign << 31) | ((e << 23) + (uint32_t)d));
	for (int f = 0; f < 4; f++)
		for (uint32_t c = 0; c < 0x7F; c++) {
			const double a = oracle_decode((uint8_t)c, all_formats[f]);
			double b = oracle_decode((uint8_t)(c + 1), all_formats[f]);
			if (oracle_is_nan(a))
				continue;
			if (oracle_is_nan(b) || c + 1 > 0x7E) /* past max: the virtual next value */
				b = a + (a - oracle_decode((uint8_t)(c - 1), all_formats[f]));
			const float mid = (float)((a + b) / 2); /* exact: fits in fp32 */
			uint32_t m;
			memcpy(&m, &mid, sizeof m);
			for (int d = -2; d <= 2; d++)
				for (uint32_t sign = 0; sign < 2; sign++)
					PUSH((sign << 31) | (m + (uint32_t)d));
		}
#undef PUSH
	*out = v;
	return n;
}

/* ---- dequantization ---- */

static void check_dequantize(fp8kv_backend *b, fp8kv_backend *cpu, const float *scales,
			     int num_scales)
{
	const fp8kv_dtype outs[3] = {FP8KV_F32, FP8KV_F16, FP8KV_BF16};
	uint8_t codes[256];
	for (int i = 0; i < 256; i++)
		codes[i] = (uint8_t)i;
	for (int f = 0; f < opt.num_formats; f++)
		for (int o = 0; o < 3; o++)
			for (int s = -1; s < num_scales; s++) {
				if ((s < 0 && !opt.scale_implicit) || (s >= 0 && !opt.scale_tensor))
					continue;
				const float *scale = s < 0 ? NULL : &scales[s];
				char label[24];
				snprintf(label, sizeof label, scale ? "tensor %.6g" : "implicit",
					 scale ? *scale : 0.0);
				group *g = group_begin(fp8kv_backend_name(b), "dequantize",
						       fp8kv_dtype_name(opt.formats[f]), label,
						       fp8kv_dtype_name(outs[o]));
				const size_t osz = fp8kv_dtype_size(outs[o]);
				uint8_t expect[256 * 4], got[256 * 4];
				void *d_src = NULL, *d_dst = NULL, *d_scale = NULL;
				fp8kv_status st = FP8KV_OK;
				if (!cpu) {
					for (int i = 0; i < 256; i++) {
						uint32_t bits = oracle_dequantize(
							(uint8_t)i, opt.formats[f], scale != NULL,
							scale ? *scale : 1.0f, outs[o]);
						memcpy(expect + i * osz, &bits, osz); /* little-endian */
					}
				} else {
					st = fp8kv_dequantize(cpu, expect, outs[o], codes, opt.formats[f],
							      256,
							      scale ? FP8KV_SCALE_TENSOR : FP8KV_SCALE_ONE,
							      scale, NULL);
				}
				if (!st && !((st = fp8kv_buffer_alloc(b, 256, &d_src)) ||
					     (st = fp8kv_buffer_alloc(b, 256 * 4, &d_dst)) ||
					     (st = fp8kv_buffer_alloc(b, 4, &d_scale)) ||
					     (st = fp8kv_buffer_upload(b, d_src, codes, 256)) ||
					     (scale && (st = fp8kv_buffer_upload(b, d_scale, scale, 4))) ||
					     (st = fp8kv_dequantize(
						      b, d_dst, outs[o], d_src, opt.formats[f], 256,
						      scale ? FP8KV_SCALE_TENSOR : FP8KV_SCALE_ONE,
						      d_scale, NULL)) ||
					     (st = fp8kv_backend_synchronize(b, NULL)) ||
					     (st = fp8kv_buffer_download(b, got, d_dst, 256 * osz))))
					for (int i = 0; i < 256; i++) {
						/* NaN payloads may differ; NaN-ness may not */
						uint32_t e = 0, x = 0;
						memcpy(&e, expect + i * osz, osz);
						memcpy(&x, got + i * osz, osz);
						const int en = osz == 4 ? (e & 0x7FFFFFFF) > 0x7F800000
							       : outs[o] == FP8KV_F16 ? (e & 0x7FFF) > 0x7C00
										: (e & 0x7FFF) > 0x7F80;
						const int xn = osz == 4 ? (x & 0x7FFFFFFF) > 0x7F800000
							       : outs[o] == FP8KV_F16 ? (x & 0x7FFF) > 0x7C00
										: (x & 0x7FFF) > 0x7F80;
						if ((en && xn) || e == x)
							continue;
						if (g->differing++ < 5 || opt.verbose) {
							char c[48];
							describe_code((uint8_t)i, opt.formats[f], c, sizeof c);
							printf("    code %s: expected 0x%0*x, got 0x%0*x\n", c,
							       (int)osz * 2, e, (int)osz * 2, x);
						}
					}
				if (st)
					validate_fail(g, "%s", fp8kv_last_error());
				g->cases += 256;
				g->bytes += 256 * osz;
				fp8kv_buffer_free(b, d_src);
				fp8kv_buffer_free(b, d_dst);
				fp8kv_buffer_free(b, d_scale);
				group_end(g);
			}
}

/* ---- all 2^32 fp32 inputs ---- */

static void check_exhaustive(fp8kv_backend *b, fp8kv_backend *cpu)
{
	enum { CHUNK = 1 << 22 };
	group *g[4][2] = {{NULL}};
	uint32_t *src = malloc((size_t)CHUNK * 4);
	uint8_t *expect = malloc(CHUNK + 64), *got = malloc(CHUNK + 64);
	void *d_src = NULL, *d_dst = NULL, *d_count = NULL;
	fp8kv_status st;
	if (!src || !expect || !got) {
		fprintf(stderr, "fp8kv-validate: out of memory\n");
		exit(3);
	}
	for (int f = 0; f < opt.num_formats; f++)
		for (int p = 0; p < 2; p++)
			if (opt.policy[p])
				g[f][p] = group_begin(fp8kv_backend_name(b), "quantize f32 all",
						      fp8kv_dtype_name(opt.formats[f]), "implicit",
						      policy_name((fp8kv_overflow)p));
	if ((st = fp8kv_buffer_alloc(b, (size_t)CHUNK * 4, &d_src)) ||
	    (st = fp8kv_buffer_alloc(b, CHUNK + 64, &d_dst)) ||
	    (st = fp8kv_buffer_alloc(b, 8, &d_count)))
		goto out;
	const double started = now();
	for (uint64_t base = 0; base < (1ull << 32); base += CHUNK) {
		for (uint32_t i = 0; i < CHUNK; i++)
			src[i] = (uint32_t)(base + i);
		if ((st = fp8kv_buffer_upload(b, d_src, src, (size_t)CHUNK * 4)))
			goto out;
		for (int f = 0; f < opt.num_formats; f++)
			for (int p = 0; p < 2; p++) {
				if (!g[f][p])
					continue;
				const fp8kv_overflow policy = (fp8kv_overflow)p;
				uint64_t eo = 0, go = 0;
				const uint64_t zero = 0;
				if ((st = reference_quantize(cpu, expect, src, FP8KV_F32, CHUNK,
							     opt.formats[f], NULL, policy, &eo)) ||
				    (st = fp8kv_buffer_fill(b, d_dst, 0xA5, CHUNK + 64)) ||
				    (st = fp8kv_buffer_upload(b, d_count, &zero, 8)) ||
				    (st = fp8kv_quantize(b, d_dst, opt.formats[f], d_src, FP8KV_F32, CHUNK,
							 FP8KV_SCALE_ONE, NULL, policy, d_count, NULL)) ||
				    (st = fp8kv_backend_synchronize(b, NULL)) ||
				    (st = fp8kv_buffer_download(b, got, d_dst, CHUNK + 64)) ||
				    (st = fp8kv_buffer_download(b, &go, d_count, 8)))
					goto out;
				compare_codes(g[f][p], src, FP8KV_F32, NULL, opt.formats[f], expect, got,
					      CHUNK, eo, go, base);
			}
		progress("quantize f32, all inputs", (double)(base + CHUNK), 4294967296.0, started);
	}
out:
	if (st)
		for (int f = 0; f < 4; f++)
			for (int p = 0; p < 2; p++)
				if (g[f][p])
					validate_fail(g[f][p], "%s", fp8kv_last_error());
	for (int f = 0; f < 4; f++)
		for (int p = 0; p < 2; p++)
			if (g[f][p])
				group_end(g[f][p]);
	fp8kv_buffer_free(b, d_src);
	fp8kv_buffer_free(b, d_dst);
	fp8kv_buffer_free(b, d_count);
	free(src);
	free(expect);
	free(got);
}

/* ---- the fused cache write ---- */

static const char *scale_mode_label(fp8kv_scale_mode m)
{
	static const char *names[] = {"implicit", "tensor", "head", "token-head"};
	return names[m];
}

/* Runs case c on b and on the reference, and adds the comparison to diff. */
static void cache_write_case(group *g, fp8kv_backend *b, fp8kv_backend *cpu, cache_case *c,
			     cache_diff *diff, int *printed)
{
	cache_result expect, got;
	memset(&expect, 0, sizeof expect);
	memset(&got, 0, sizeof got);
	int rc = cache_case_prepare(c, &expect);
	if (!rc && cpu) { /* the reference is the CPU backend, not the oracle */
		cache_result_free(&expect);
		memset(&expect, 0, sizeof expect);
		rc = cache_case_run(cpu, c, &expect);
	}
	if (rc || cache_case_run(b, c, &got)) {
		validate_fail(g, "test engine: %s", cache_case_error());
	} else if (got.setup_error[0] || expect.setup_error[0]) {
		validate_fail(g, "%s", got.setup_error[0] ? got.setup_error : expect.setup_error);
	} else {
		const uint64_t before = diff->differences;
		cache_case_compare(c, &expect, &got, diff, CACHE_DIFF_MAX_REPORT);
		if (diff->differences > before && (*printed < 1 || opt.verbose)) {
			char report[4096];
			cache_diff_report(c, diff, opt.verbose ? 16 : 5, report, sizeof report);
			printf("%s%s", report,
			       report[0] && report[strlen(report) - 1] != '\n' ? "\n" : "");
			(*printed)++;
		}
	}
	g->cases++;
	cache_result_free(&expect);
	cache_result_free(&got);
}

struct cache_shape {
	int64_t tokens, heads, dk, dv, block_size;
};

/* One group per (format, scale mode, policy), over input dtypes, layouts,
 * shapes (int32 and int64 slots, with and without the swa mapping and
 * out-of-range tokens), seeds, and with and without the optional outputs
 * (overflow and NaN counters, amax): every other case leaves them out, as
 * most callers do, and a GPU then runs its specialised kernels, which the
 * outputs rule out.  A cache of the input dtype (a plain copy) is one more
 * group, "copy". */
static void check_cache_write(fp8kv_backend *b, fp8kv_backend *cpu)
{
	static const fp8kv_dtype inputs[3] = {FP8KV_BF16, FP8KV_F16, FP8KV_F32};
	static const struct cache_shape quick[3] = {
		{37, 4, 16, 24, 16}, {1, 2, 8, 8, 1}, {9, 3, 40, 8, 4}};
	static const struct cache_shape full[3] = {
		{300, 8, 128, 128, 16}, {257, 2, 64, 32, 64}, {64, 8, 256, 128, 16}};
	const struct cache_shape *shapes = opt.level >= LEVEL_FULL ? full : quick;
	const int seeds = opt.level >= LEVEL_FULL ? 4 : 1;

	for (int f = -1; f < opt.num_formats; f++)
		for (int m = 0; m < 4; m++)
			for (int p = 0; p < 2; p++) {
				if ((f < 0 && (m > 0 || p > 0)) || !opt.policy[p] ||
				    (m == 0 && !opt.scale_implicit) || (m > 0 && !opt.scale_tensor))
					continue;
				group *g = group_begin(fp8kv_backend_name(b), "reshape_and_cache",
						       f < 0 ? "copy" : fp8kv_dtype_name(opt.formats[f]),
						       scale_mode_label((fp8kv_scale_mode)m),
						       f < 0 ? "-" : policy_name((fp8kv_overflow)p));
				cache_diff diff;
				int printed = 0;
				cache_diff_init(&diff);
				for (int k = 0; k < 3 * 3 * 3 * seeds && !g->failed_to_run; k++) {
					const int in = k % 3, layout = k / 3 % 3, sh = k / 9 % 3;
					const struct cache_shape *s = &shapes[sh];
					cache_case c;
					cache_case_init(&c);
					c.input_dtype = inputs[in];
					c.cache_dtype = f < 0 ? inputs[in] : opt.formats[f];
					c.scale_mode = (fp8kv_scale_mode)m;
					c.overflow = (fp8kv_overflow)p;
					c.layout = (cache_case_layout)layout;
					c.scale_layout = (cache_case_scale_layout)(sh & 1);
					c.num_tokens = s->tokens;
					c.num_heads = s->heads;
					c.head_dim_k = s->dk;
					c.head_dim_v = s->dv;
					c.block_size = s->block_size;
					c.slot_type = sh == 1 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
					c.padding_fraction = 0.15;
					c.use_swa = sh == 2;
					c.num_out_of_range = sh == 0 ? 2 : 0;
					c.special_rows = 1;
					c.want_overflow_count = c.want_nan_count = c.want_amax = k % 2;
					c.seed = opt.seed * 1000003u + (uint64_t)k;
					c.k_scale = 0.0478f;
					c.v_scale = 3.0f;
					cache_write_case(g, b, cpu, &c, &diff, &printed);
					cache_case_free(&c);
				}
				g->bytes = diff.bytes_compared;
				g->differing = diff.bytes_differing ? diff.bytes_differing
								    : diff.differences;
				group_end(g);
			}
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

static void validate_backend(fp8kv_backend *b, fp8kv_backend *cpu)
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
		exit(3);
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
			exit(3);
		for (size_t i = 0; i < count; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			r[i] = (uint32_t)(x >> 16);
		}
		check_quantize_set(b, cpu, "quantize f32 rand", r, FP8KV_F32, count, scales,
				   num_scales);
		free(r);
	}

	check_dequantize(b, cpu, scales, 4);
	check_cache_write(b, cpu);
	if (opt.level == LEVEL_EXHAUSTIVE)
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
		"  --format F            e4m3fn, e4m3fnuz, e5m2, e5m2fnuz or all (default all)\n"
		"  --scale MODE          implicit, tensor or both (default both)\n"
		"  --overflow POLICY     saturate, nonsat or both (default both)\n"
		"  --seed N              seed of the random cases (default 1)\n"
		"  --json FILE           also write the results as JSON\n"
		"  --verbose             print every difference, not the first five of a group\n"
		"  --help, --version\n\n"
		"Exit status: 0 all bytes equal, 1 differences found, 2 usage error,\n"
		"3 a backend failed to run, 77 a requested backend is absent.\n");
}

static int parse_args(int argc, char **argv)
{
	opt.level = LEVEL_QUICK;
	opt.scale_implicit = opt.scale_tensor = 1;
	opt.policy[0] = opt.policy[1] = 1;
	opt.seed = 1;
	opt.num_formats = 4;
	memcpy(opt.formats, all_formats, sizeof all_formats);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "--version")) {
			printf("fp8kv-validate %s\n", fp8kv_version());
			exit(0);
		} else if (!strcmp(a, "--verbose")) {
			opt.verbose = 1;
			continue;
		} else if (!v) {
			fprintf(stderr, "fp8kv-validate: %s needs a value or is unknown\n", a);
			return -1;
		} else if (!strcmp(a, "--backend")) {
			if (opt.num_backends == 8)
				return -1;
			opt.backends[opt.num_backends++] = v;
		} else if (!strcmp(a, "--level")) {
			if (!strcmp(v, "quick"))
				opt.level = LEVEL_QUICK;
			else if (!strcmp(v, "full"))
				opt.level = LEVEL_FULL;
			else if (!strcmp(v, "exhaustive"))
				opt.level = LEVEL_EXHAUSTIVE;
			else
				return -1;
		} else if (!strcmp(a, "--format")) {
			fp8kv_dtype t;
			if (!strcmp(v, "all"))
				continue;
			if (fp8kv_dtype_from_name(v, &t) || !fp8kv_dtype_is_fp8(t))
				return -1;
			opt.formats[0] = t;
			opt.num_formats = 1;
		} else if (!strcmp(a, "--scale")) {
			opt.scale_implicit = !strcmp(v, "implicit") || !strcmp(v, "both");
			opt.scale_tensor = !strcmp(v, "tensor") || !strcmp(v, "both");
			if (!opt.scale_implicit && !opt.scale_tensor)
				return -1;
		} else if (!strcmp(a, "--overflow")) {
			opt.policy[0] = !strcmp(v, "saturate") || !strcmp(v, "both");
			opt.policy[1] = !strcmp(v, "nonsat") || !strcmp(v, "both");
			if (!opt.policy[0] && !opt.policy[1])
				return -1;
		} else if (!strcmp(a, "--seed")) {
			char *end;
			opt.seed = strtoull(v, &end, 10);
			if (*end)
				return -1;
		} else if (!strcmp(a, "--json")) {
			opt.json = v;
		} else {
			fprintf(stderr, "fp8kv-validate: unknown option %s\n", a);
			return -1;
		}
		i++;
	}
	return 0;
}

static void write_json(const char *path, double seconds)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		any_failure = 1;
		return;
	}
	fprintf(f, "{\"version\": \"%s\", \"level\": \"%s\", \"seed\": %llu, \"seconds\": %.3f,\n"
		   " \"groups\": [",
		fp8kv_version(),
		opt.level == LEVEL_QUICK ? "quick" : opt.level == LEVEL_FULL ? "full" : "exhaustive",
		(unsigned long long)opt.seed, seconds);
	for (size_t i = 0; i < num_groups; i++) {
		const group *g = groups[i];
		fprintf(f, "%s\n  {\"backend\": \"%s\", \"operation\": \"%s\", \"format\": \"%s\", "
			   "\"scale\": \"%s\", \"policy\": \"%s\", \"cases\": %llu, \"bytes\": %llu, "
			   "\"differing\": %llu, \"verdict\": \"%s\"}",
			i ? "," : "", g->backend, g->operation, g->format, g->scale, g->policy,
			(unsigned long long)g->cases, (unsigned long long)g->bytes,
			(unsigned long long)g->differing,
			g->failed_to_run ? "error" : g->differing ? "differ" : "equal");
	}
	fprintf(f, "\n ],\n \"result\": \"%s\"}\n",
		any_failure ? "error" : any_difference ? "differ" : "equal");
	fclose(f);
}

int main(int argc, char **argv)
{
	fp8kv_backend *cpu = NULL, *b;
	fp8kv_status st;
	if (parse_args(argc, argv)) {
		usage(stderr);
		return 2;
	}
	const double started = now();
	if ((st = fp8kv_backend_open("cpu", &cpu)) != FP8KV_OK) {
		fprintf(stderr, "fp8kv-validate: cpu: %s\n", fp8kv_last_error());
		return 3;
	}
	/* default: cpu, then every GPU backend that opens */
	const char *defaults[] = {"cpu", "hip"};
	const int explicit_list = opt.num_backends > 0;
	if (!explicit_list) {
		opt.backends[0] = defaults[0];
		opt.backends[1] = defaults[1];
		opt.num_backends = 2;
	}

	printf("fp8kv-validate %s, level %s, seed %llu\n", fp8kv_version(),
	       opt.level == LEVEL_QUICK ? "quick" : opt.level == LEVEL_FULL ? "full" : "exhaustive",
	       (unsigned long long)opt.seed);
	printf("reference: the oracle for cpu; the cpu backend for every other backend\n\n");
	printf("%-8s %-14s %-9s %-16s %-8s %12s %14s %10s  %s\n", "backend", "operation", "format",
	       "scale", "policy", "cases", "bytes", "differing", "verdict");

	int absent = 0, tabulated = 0;
	for (int i = 0; i < opt.num_backends; i++) {
		const int is_cpu = !strcmp(opt.backends[i], "cpu");
		if (is_cpu) {
			b = cpu;
		} else if ((st = fp8kv_backend_open(opt.backends[i], &b)) != FP8KV_OK) {
			if (st == FP8KV_ENODEV) {
				if (explicit_list) {
					fprintf(stderr, "fp8kv-validate: %s\n", fp8kv_last_error());
					absent = 1;
				} else {
					printf("(%s: not present, skipped)\n", opt.backends[i]);
				}
				continue;
			}
			fprintf(stderr, "fp8kv-validate: %s: %s\n", opt.backends[i], fp8kv_last_error());
			any_failure = 1;
			continue;
		}
		printf("# %s: %s\n", fp8kv_backend_name(b), fp8kv_backend_device(b));
		if (is_cpu && !tabulated) {
			/* The oracle's search, tabulated for the bulk groups, and
			 * held to the search on random inputs first. */
			const uint64_t verify = opt.level == LEVEL_QUICK ? 1u << 16
					      : opt.level == LEVEL_FULL ? 1u << 20 : 1u << 22;
			char why[160];
			if (oracle_tabulate(verify, why, sizeof why)) {
				fprintf(stderr, "fp8kv-validate: the oracle's table: %s\n", why);
				return 3;
			}
			tabulated = 1;
		}
		validate_backend(b, is_cpu ? NULL : cpu);
		if (!is_cpu)
			fp8kv_backend_close(b);
	}
	fp8kv_backend_close(cpu);

	uint64_t cases = 0, bytes = 0, differing = 0;
	size_t bad = 0;
	for (size_t i = 0; i < num_groups; i++) {
		cases += groups[i]->cases;
		bytes += groups[i]->bytes;
		differing += groups[i]->differing;
		bad += groups[i]->differing || groups[i]->failed_to_run;
	}
	const double seconds = now() - started;
	printf("\nsummary: %zu groups, %llu cases, %llu bytes compared, %llu differing bytes, "
	       "%zu groups not equal, %.1f s\n",
	       num_groups, (unsigned long long)cases, (unsigned long long)bytes,
	       (unsigned long long)differing, bad, seconds);
	if (opt.json)
		write_json(opt.json, seconds);
	for (size_t i = 0; i < num_groups; i++)
		free(groups[i]);
	free(groups);
	if (any_failure) {
		printf("verdict: a backend failed to run\n");
		return 3;
	}
	if (any_difference) {
		printf("verdict: DIFFERENCES FOUND\n");
		return 1;
	}
	if (absent) {
		printf("verdict: a requested backend is absent\n");
		return 77;
	}
	printf("verdict: all bytes equal\n");
	return 0;
}
