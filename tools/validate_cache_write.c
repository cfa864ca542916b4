/* SPDX-License-Identifier: MIT */
/*
 * validate_cache_write.c - fp8kv-validate's groups of fp8kv_reshape_and_cache
 * cases, through the cache case engine (validate/cache_case.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "cache_case.h"
#include "fp8kv.h"
#include "validate_tool.h"

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
			validate_print_report(report, printed);
		}
	}
	g->cases++;
	cache_result_free(&expect);
	cache_result_free(&got);
}

/* One group per (format, scale mode, policy), over input dtypes, layouts,
 * shapes (int32 and int64 slots, with and without the swa mapping and
 * out-of-range tokens), seeds, and with and without the optional outputs
 * (overflow and NaN counters, amax): every other case leaves them out, as
 * most callers do, and a GPU then runs its specialised kernels, which the
 * outputs rule out.  A cache of the input dtype (a plain copy) is one more
 * group, "copy". */
void check_cache_write(fp8kv_backend *b, fp8kv_backend *cpu)
{
	static const fp8kv_dtype inputs[3] = {FP8KV_BF16, FP8KV_F16, FP8KV_F32};
	static const cache_case_shape quick[3] = {
		{37, 4, 16, 24, 16}, {1, 2, 8, 8, 1}, {9, 3, 40, 8, 4}};
	static const cache_case_shape full[3] = {
		{300, 8, 128, 128, 16}, {257, 2, 64, 32, 64}, {64, 8, 256, 128, 16}};
	const cache_case_shape *shapes = opt.level >= LEVEL_FULL ? full : quick;
	const int seeds = opt.level >= LEVEL_FULL ? 4 : 1;

	for (int f = -1; f < opt.num_formats; f++)
		for (int m = 0; m < MAX_SCALE_MODES && fp8kv_scale_mode_name((fp8kv_scale_mode)m); m++)
			for (int p = 0; p < 2; p++) {
				if ((f < 0 && (m != FP8KV_SCALE_ONE || p > 0)) || !opt.policy[p] ||
				    !opt.scale[m])
					continue;
				group *g = group_begin(fp8kv_backend_name(b), "reshape_and_cache",
						       f < 0 ? "copy" : fp8kv_dtype_name(opt.formats[f]),
						       fp8kv_scale_mode_name((fp8kv_scale_mode)m),
						       f < 0 ? "-" : policy_name((fp8kv_overflow)p));
				if (!g)
					continue;
				cache_diff diff;
				int printed = 0;
				cache_diff_init(&diff);
				for (int k = 0; k < 3 * 3 * 3 * seeds && !g->failed_to_run; k++) {
					const int in = k % 3, layout = k / 3 % 3, sh = k / 9 % 3;
					const cache_case_shape *s = &shapes[sh];
					cache_case c;
					cache_case_init(&c);
					c.input_dtype = inputs[in];
					c.cache_dtype = f < 0 ? inputs[in] : opt.formats[f];
					c.scale_mode = (fp8kv_scale_mode)m;
					c.overflow = (fp8kv_overflow)p;
					c.layout = (cache_case_layout)layout;
					c.scale_layout = (cache_case_scale_layout)(sh & 1);
					cache_case_set_shape(&c, s);
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
				group_end_diff(g, &diff);
			}
}
