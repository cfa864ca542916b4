/* SPDX-License-Identifier: MIT */
/*
 * validate_quantize.c - fp8kv-validate's groups of flat conversions: every
 * input of a set through fp8kv_quantize in each format, policy and scale;
 * every code through fp8kv_dequantize; all 2^32 fp32 inputs.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp8kv.h"
#include "oracle.h"
#include "tool_cli.h"
#include "validate_tool.h"

static uint32_t input_bits(const void *src, fp8kv_dtype dtype, size_t i)
{
	if (dtype == FP8KV_F32)
		return ((const uint32_t *)src)[i];
	return ((const uint16_t *)src)[i];
}

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

/* A flat conversion's scale as the groups name it: "one", or "tensor S". */
static void scale_label_of(const float *scale, char *out, size_t len)
{
	if (scale)
		snprintf(out, len, "%s %.6g", fp8kv_scale_mode_name(FP8KV_SCALE_TENSOR),
			 (double)*scale);
	else
		snprintf(out, len, "%s", fp8kv_scale_mode_name(FP8KV_SCALE_ONE));
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
			       scale ? "" : "(one) ", scale ? (double)*scale : 1.0, e, o);
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

void check_quantize_set(fp8kv_backend *b, fp8kv_backend *cpu, const char *set, const void *src,
			fp8kv_dtype dtype, size_t n, const float *scales, int num_scales)
{
	uint8_t *expect = malloc(n + 64), *got = malloc(n + 64);
	if (!expect || !got) {
		tool_out_of_memory();
	}
	for (int f = 0; f < opt.num_formats; f++)
		for (int p = 0; p < 2; p++) {
			if (!opt.policy[p])
				continue;
			const fp8kv_overflow policy = (fp8kv_overflow)p;
			for (int s = -1; s < num_scales; s++) {
				if (!opt.scale[s < 0 ? FP8KV_SCALE_ONE : FP8KV_SCALE_TENSOR])
					continue;
				const float *scale = s < 0 ? NULL : &scales[s];
				char scale_label[24];
				scale_label_of(scale, scale_label, sizeof scale_label);
				group *g = group_begin(fp8kv_backend_name(b), set,
						       fp8kv_dtype_name(opt.formats[f]), scale_label,
						       policy_name(policy));
				if (!g)
					continue;
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
size_t boundary_inputs(uint32_t **out)
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
	for (int f = 0; f < num_all_formats; f++)
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

void check_dequantize(fp8kv_backend *b, fp8kv_backend *cpu, const float *scales, int num_scales)
{
	const fp8kv_dtype outs[3] = {FP8KV_F32, FP8KV_F16, FP8KV_BF16};
	uint8_t codes[256];
	for (int i = 0; i < 256; i++)
		codes[i] = (uint8_t)i;
	for (int f = 0; f < opt.num_formats; f++)
		for (int o = 0; o < 3; o++)
			for (int s = -1; s < num_scales; s++) {
				if (!opt.scale[s < 0 ? FP8KV_SCALE_ONE : FP8KV_SCALE_TENSOR])
					continue;
				const float *scale = s < 0 ? NULL : &scales[s];
				char label[24];
				scale_label_of(scale, label, sizeof label);
				group *g = group_begin(fp8kv_backend_name(b), "dequantize",
						       fp8kv_dtype_name(opt.formats[f]), label,
						       fp8kv_dtype_name(outs[o]));
				if (!g)
					continue;
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

void check_exhaustive(fp8kv_backend *b, fp8kv_backend *cpu)
{
	enum { CHUNK = 1 << 22 };
	group *g[MAX_FORMATS][2] = {{NULL}};
	int any = 0;
	uint32_t *src = malloc((size_t)CHUNK * 4);
	uint8_t *expect = malloc(CHUNK + 64), *got = malloc(CHUNK + 64);
	void *d_src = NULL, *d_dst = NULL, *d_count = NULL;
	fp8kv_status st;
	if (!src || !expect || !got) {
		tool_out_of_memory();
	}
	for (int f = 0; f < opt.num_formats; f++)
		for (int p = 0; p < 2; p++)
			if (opt.policy[p] && opt.scale[FP8KV_SCALE_ONE]) {
				g[f][p] = group_begin(fp8kv_backend_name(b), "quantize f32 all",
						      fp8kv_dtype_name(opt.formats[f]),
						      fp8kv_scale_mode_name(FP8KV_SCALE_ONE),
						      policy_name((fp8kv_overflow)p));
				any |= g[f][p] != NULL;
			}
	st = FP8KV_OK;
	if (!any) /* every group in other shards */
		goto out;
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
		for (int f = 0; f < opt.num_formats; f++)
			for (int p = 0; p < 2; p++)
				if (g[f][p])
					validate_fail(g[f][p], "%s", fp8kv_last_error());
	for (int f = 0; f < opt.num_formats; f++)
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
