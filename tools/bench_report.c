/* SPDX-License-Identifier: MIT */
/*
 * bench_report.c - fp8kv-bench's table and JSON.  A launch timed in a
 * graph is also shown as the launch floor measured in the same rounds
 * plus the excess over it (B-FLOOR).
 */
#include "config.h"

#include <stdio.h>

#include "bench.h"
#include "tool_cli.h"

void bench_shape_label(const bench_shape *s, char *out, size_t len)
{
	snprintf(out, len, "%lld x %lld x %lld/%lld", (long long)s->tokens, (long long)s->heads,
		 (long long)s->dim, (long long)s->block_size);
}

void bench_print_header(const bench_options *o, fp8kv_backend *b, const bench_device *dev)
{
	printf("fp8kv-bench %s: backend %s (%s), %s -> %s%s\n", fp8kv_version(),
	       fp8kv_backend_name(b), fp8kv_backend_device(b), fp8kv_dtype_name(o->input),
	       fp8kv_dtype_name(o->format), o->outputs ? ", with counters and amax" : "");
	printf("bytes = minimal traffic (inputs read, codes written, 8 B/token slots, computed scales);\n"
	       "ceiling = same-run stream reading 2 B and writing 1 B per element, no conversion;\n"
	       "fused, unfused and ceiling timed in turns; ratio = median of each round's GB/s ratio;\n"
	       "calls rotate over up to 16 copies of the buffers, to span twice the %zu MiB last-level cache\n",
	       dev->cache_bytes() >> 20);
	if (dev->launch_floor)
		printf("floor = an empty kernel through the same launch path, timed in the same rounds\n"
		       "for the launches replayed from a graph; excess = fused - floor\n");
	if (o->writes & ~BENCH_WRITE_MHA)
		printf("grouped and MLA writes: 2 B read per 16-bit element, 1 B (1/2 B e2m1) written,\n"
		       "4 B or 1 B per group scale; ds_mla: 2 B in and out per RoPE element, 16 B of\n"
		       "tile scales per token; MLA rows are one head of 512 + 64\n");
	printf("\n%-22s %-10s %10s %9s %10s %9s %7s %11s %8s %8s %8s\n", "tokens x heads x dim/bs",
	       "scale", "fused us", "GB/s", "ceiling us", "GB/s", "ratio", "unfused us", "speedup",
	       "floor us", "excess");
}

void bench_print_result(const bench_result *r)
{
	char label[64];
	bench_shape_label(&r->s, label, sizeof label);
	const double gbs = r->bytes / r->fused_s * 1e-9;
	const double cgbs = r->ceiling_bytes / r->ceiling_s * 1e-9;
	printf("%-22s %-10s %10.2f %9.1f %10.2f %9.1f %6.1f%% ", label,
	       r->what[0] ? r->what : bench_mode_name(r->mode),
	       r->fused_s * 1e6, gbs, r->ceiling_s * 1e6, cgbs, 100.0 * r->ratio);
	if (r->unfused_s > 0)
		printf("%11.2f %7.2fx", r->unfused_s * 1e6, r->unfused_s / r->fused_s);
	else
		printf("%11s %8s", "-", "-");
	if (r->floor_s > 0)
		printf(" %8.2f %8.2f\n", r->floor_s * 1e6, (r->fused_s - r->floor_s) * 1e6);
	else
		printf(" %8s %8s\n", "-", "-");
	fflush(stdout);
}

int bench_write_json(const char *path, const bench_options *o, fp8kv_backend *b,
		     const bench_result *results, int nres, int on_host, double rates[2][3])
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
		const bench_result *r = &results[i];
		fprintf(f, "%s\n {\"tokens\": %lld, \"heads\": %lld, \"dim\": %lld, "
			   "\"block_size\": %lld, \"scale\": \"%s\", \"write\": \"%s\", "
			   "\"fused_s\": %.9g, "
			   "\"bytes\": %.0f, \"ceiling_s\": %.9g, \"ceiling_bytes\": %.0f, "
			   "\"unfused_s\": %.9g, \"graph\": %s, \"floor_s\": %.9g, \"ratio\": %.4f}",
			i ? "," : "", (long long)r->s.tokens, (long long)r->s.heads,
			(long long)r->s.dim, (long long)r->s.block_size, bench_mode_name(r->mode),
			r->what[0] ? r->what : "mha",
			r->fused_s, r->bytes, r->ceiling_s, r->ceiling_bytes, r->unfused_s,
			r->graph ? "true" : "false", r->floor_s, r->ratio);
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
