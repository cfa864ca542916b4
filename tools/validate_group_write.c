/* SPDX-License-Identifier: MIT */
/*
 * validate_group_write.c - fp8kv-validate's groups of grouped writes
 * (fp8kv_reshape_and_cache_grouped) and MLA writes
 * (fp8kv_concat_and_cache_mla), through the write case engine
 * (validate/write_case.h): the CPU against the oracle, any other backend
 * against the CPU, with adversarial patterns in half the groups or tiles
 * of every case.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "fp8kv.h"
#include "validate_tool.h"
#include "write_case.h"

/* Runs case c on b and on the reference, adds the comparison to diff; a
 * backend that does not write this kind yet (FP8KV_ENOTSUP from a backend
 * other than the CPU) marks the group unsupported instead. */
static void write_case_check(group *g, fp8kv_backend *b, fp8kv_backend *cpu, write_case *c,
			     cache_diff *diff, int *printed)
{
	write_result expect, got;
	memset(&expect, 0, sizeof expect);
	memset(&got, 0, sizeof got);
	int rc = write_case_prepare(c, &expect);
	if (!rc && cpu) { /* the reference is the CPU backend, not the oracle */
		write_result_free(&expect);
		rc = write_case_run(cpu, c, &expect);
	}
	if (rc || write_case_run(b, c, &got)) {
		validate_fail(g, "test engine: %s", write_case_error());
	} else if (got.setup_error[0] || expect.setup_error[0]) {
		validate_fail(g, "%s", got.setup_error[0] ? got.setup_error : expect.setup_error);
	} else if (cpu && got.call_status == FP8KV_ENOTSUP && expect.call_status != FP8KV_ENOTSUP) {
		g->unsupported = 1;
		snprintf(g->error, sizeof g->error, "%s", got.message);
	} else {
		const uint64_t before = diff->differences;
		write_case_compare(c, &expect, &got, diff, CACHE_DIFF_MAX_REPORT);
		if (diff->differences > before && (*printed < 1 || opt.verbose)) {
			char report[6000];
			write_diff_report(c, diff, opt.verbose ? 16 : 5, report, sizeof report);
			validate_print_report(report, printed);
		}
	}
	g->cases++;
	write_result_free(&expect);
	write_result_free(&got);
}

/* The structure of case k of a group: input dtype, layout, shape, slots. */
static void vary(write_case *c, int k, int big, int on_cpu)
{
	static const fp8kv_dtype inputs[3] = {FP8KV_BF16, FP8KV_F16, FP8KV_F32};
	c->input_dtype = inputs[k % 3];
	c->layout = (write_case_layout)(k / 3 % 4);
	c->num_tokens = big ? (int64_t[]){300, 257, 64}[k % 3] : (int64_t[]){37, 1, 9}[k % 3];
	c->block_size = (int64_t[]){16, 1, 4, 64}[k % 4];
	c->slot_type = k % 2 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
	c->use_swa = k % 3 == 2;
	c->swa_type = k % 4 < 2 ? FP8KV_INDEX_INT64 : FP8KV_INDEX_INT32;
	c->padding_fraction = 0.15;
	c->num_out_of_range = k % 3 == 0 ? 2 : 0;
	/* duplicate slots: the CPU writes them in token order, a GPU makes no
	 * promise (A-DUPLICATES) */
	c->num_duplicates = on_cpu && k % 4 == 3 ? 1 : 0;
	c->want_overflow_count = c->want_nan_count = c->want_amax = k % 2;
	c->seed = opt.seed * 1000003u + (uint64_t)k;
}

/* One group per (rule, element format, rounding, policy), over group
 * sizes, input dtypes, layouts (vLLM's page among them), interleaved
 * scales, shapes and slot mappings. */
static void grouped_groups(fp8kv_backend *b, fp8kv_backend *cpu)
{
	fp8kv_dtype formats[MAX_FORMATS + 2];
	int nf = 0;
	for (int f = 0; f < opt.num_formats; f++)
		formats[nf++] = opt.formats[f];
	if (opt.e2m1)
		formats[nf++] = FP8KV_E2M1;
	if (opt.int8)
		formats[nf++] = FP8KV_INT8;
	const int big = opt.level >= LEVEL_FULL;
	const int cases = big ? 24 : 8;
	static const float globals[] = {1.0f, 0.37f, 3e-3f, 4096.0f, 0x1p-140f, 0.0f};

	for (int r = FP8KV_GROUP_F32; r <= FP8KV_GROUP_NVFP4; r++)
		for (int f = 0; f < nf; f++)
			for (int rd = 0; rd < 2; rd++)
				for (int p = 0; p < 2; p++) {
					const fp8kv_dtype fmt = formats[f];
					const int fp8 = fp8kv_dtype_is_fp8(fmt);
					if (!opt.rule[r] || !opt.policy[p] || (p && !fp8) ||
					    (rd && fmt != FP8KV_INT8) ||
					    (r == FP8KV_GROUP_NVFP4 && fmt != FP8KV_E2M1) ||
					    (r != FP8KV_GROUP_F32 && fmt == FP8KV_INT8))
						continue;
					char op[24];
					snprintf(op, sizeof op, "grouped %s",
						 write_case_rule_name((fp8kv_group_rule)r));
					group *g = group_begin(fp8kv_backend_name(b), op,
							       fp8kv_dtype_name(fmt),
							       fmt == FP8KV_INT8 ? (rd ? "groups, toward 0"
										       : "groups, nearest")
										 : "groups",
							       fp8 ? policy_name((fp8kv_overflow)p) : "-");
					if (!g)
						continue;
					cache_diff diff;
					int printed = 0;
					cache_diff_init(&diff);
					for (int k = 0; k < cases && !g->failed_to_run && !g->unsupported;
					     k++) {
						write_case c;
						write_case_init(&c);
						c.rule = (fp8kv_group_rule)r;
						c.cache_dtype = fmt;
						c.rounding = (fp8kv_rounding)rd;
						c.overflow = (fp8kv_overflow)p;
						vary(&c, k, big, cpu == NULL);
						static const int64_t sizes[5] = {16, 32, 64, 128, 0};
						const int64_t G = r == FP8KV_GROUP_NVFP4 ? 16 : sizes[k % 5];
						c.group_size = G ? G : (k % 2 ? 48 : 40);
						c.head_dim_k = G ? (big ? 256 : 128) : c.group_size;
						c.head_dim_v = G ? (G > 64 ? 128 : (big ? 128 : 2 * G))
								 : c.group_size;
						c.num_heads = big ? 8 : 1 + k % 4;
						c.k_interleave = k % 4 == 1 ? 4 : 0;
						c.v_interleave = k % 2 ? 4 : 0;
						c.k_global = globals[k % 6];
						c.v_global = globals[(k + 2) % 6];
						if (r == FP8KV_GROUP_F32 && k % 4 == 2) {
							c.divisor = fmt == FP8KV_E4M3FNUZ ? FP8KV_DIVISOR_GFX942
											  : 0.0f;
							c.scale_floor = 1e-6f;
						}
						write_case_check(g, b, cpu, &c, &diff, &printed);
						write_case_free(&c);
					}
					group_end_diff(g, &diff);
				}
}

/* MLA: plain per FP8 format and policy (scaled and not), the 16-bit copy;
 * DS per e4m3 format and policy (divisors 0, 224 and one past max). */
static void mla_groups(fp8kv_backend *b, fp8kv_backend *cpu)
{
	const int big = opt.level >= LEVEL_FULL;
	const int cases = big ? 24 : 6;
	for (int kind = WRITE_CASE_MLA_PLAIN; kind <= WRITE_CASE_MLA_DS; kind++)
		for (int f = -1; f < opt.num_formats; f++)
			for (int p = 0; p < 2; p++) {
				const int ds = kind == WRITE_CASE_MLA_DS;
				const fp8kv_dtype fmt = f < 0 ? FP8KV_BF16 : opt.formats[f];
				if ((f < 0 && (ds || p)) || !opt.policy[p] ||
				    (ds && fmt != FP8KV_E4M3FN && fmt != FP8KV_E4M3FNUZ))
					continue;
				group *g = group_begin(fp8kv_backend_name(b),
						       ds ? "concat_mla ds" : "concat_mla plain",
						       f < 0 ? "copy" : fp8kv_dtype_name(fmt),
						       ds ? "tiles of 128" : f < 0 ? "-" : "one, tensor",
						       f < 0 ? "-" : policy_name((fp8kv_overflow)p));
				if (!g)
					continue;
				cache_diff diff;
				int printed = 0;
				cache_diff_init(&diff);
				for (int k = 0; k < cases && !g->failed_to_run && !g->unsupported; k++) {
					write_case c;
					const int64_t rank = (int64_t[]){512, 48, 128}[k % 3];
					const int64_t pe = (int64_t[]){64, 16, 32}[k % 3];
					write_case_init_mla(&c, (write_case_kind)kind, rank, pe);
					vary(&c, k, big, cpu == NULL);
					if (ds && c.input_dtype == FP8KV_F32)
						c.input_dtype = FP8KV_BF16;
					c.layout = k % 2 ? WRITE_CASE_STRIDED : WRITE_CASE_NHD;
					c.cache_dtype = f < 0 ? c.input_dtype : fmt;
					c.overflow = (fp8kv_overflow)p;
					c.scaled = !ds && f >= 0 && k % 2;
					c.scale = (float[]){0.0371f, 3.0f, 1.0f / 448}[k % 3];
					if (ds)
						c.divisor = (float[]){0.0f, FP8KV_DIVISOR_GFX942, 1000.0f}[k % 3];
					write_case_check(g, b, cpu, &c, &diff, &printed);
					write_case_free(&c);
				}
				group_end_diff(g, &diff);
			}
}

void check_grouped_write(fp8kv_backend *b, fp8kv_backend *cpu)
{
	grouped_groups(b, cpu);
}

void check_mla_write(fp8kv_backend *b, fp8kv_backend *cpu)
{
	mla_groups(b, cpu);
}
