/* SPDX-License-Identifier: MIT */
/*
 * test_amd_hw_fp8_model.c - hip/amd_hw_fp8.h on the CPU: the plan (which
 * magnitudes go to the instruction, scaled how, through which instruction)
 * and the sign step, for gfx942 (fnuz instructions) and gfx950 (OCP
 * instructions), the four formats and both overflow modes, against the
 * independent oracle (tests/oracle.c).
 *
 * The instruction is modelled as what the wrapper trusts it to be: the
 * oracle's rounding of a positive value to the instruction's own format,
 * non-saturating, so that a plan that lets an out-of-range value through
 * gets a NaN or Inf code and fails.  Whether the real instruction is that
 * rounding only a GPU can tell (fp8kv-validate --backend hip).
 *
 * Inputs: every high half of the fp32 bits, with low halves 0, 1, 0x8000,
 * 0xFFFF and one random: every rounding boundary of every format is a
 * bf16 value (oracle.h), so these cover each interval between boundaries.
 * Four-wide codes (fp8kv_amd_hw_signed4) are checked on groups of four of
 * these inputs within the limit, their signs drawn at random.
 * The wrapper is then run with planted faults (a limit too high,
 * a twin unscaled, the sign put on fnuz zeros, the wrong instruction),
 * each of which must be caught.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amd_hw_fp8.h"
#include "oracle.h"

enum fault { NONE, LIMIT_TOO_HIGH, TWIN_UNSCALED, SIGNED_FNUZ_ZERO, SIGNED4_FNUZ_ZERO,
	      OTHER_INSTRUCTION };

static const char *const fault_names[] = {
	"none", "limit a binade too high", "twin unscaled", "sign on fnuz zeros",
	"sign on fnuz zeros, four at a time", "the other instruction"};

/* the instruction's format: e4m3 (fp8) or e5m2 (bf8), OCP or fnuz */
static fp8kv_dtype instruction_format(uint32_t bf8, int ocp_hw)
{
	if (ocp_hw)
		return bf8 ? FP8KV_E5M2 : FP8KV_E4M3FN;
	return bf8 ? FP8KV_E5M2FNUZ : FP8KV_E4M3FNUZ;
}

/* fp8kv_amd_encode of hip/amd_hw_fp8.h, the instruction modelled */
static uint32_t wrapper(uint32_t u, fp8kv_dtype format, int saturate, int ocp_hw,
			enum fault fault)
{
	const fp8kv_fp8_format f = fp8kv_format_of((int)format);
	fp8kv_amd_hw_plan p = fp8kv_amd_hw_plan_for(f, ocp_hw);
	if (fault == LIMIT_TOO_HIGH)
		p.limit += 1u << 23;
	if (fault == TWIN_UNSCALED)
		p.scale = 0x3F800000u;
	if (fault == OTHER_INSTRUCTION)
		p.bf8 ^= 1;
	if ((u & 0x7FFFFFFFu) > p.limit)
		return fp8kv_encode_bits(u, f, saturate);
	const float m = fp8kv_amd_hw_input(u, p);
	const int run = oracle_run(instruction_format(p.bf8, ocp_hw), FP8KV_NONSATURATING);
	const uint32_t hw = oracle_encode_tabulated(fp8kv_f32_bits(m), run) & 0xFFu;
	if (fault == SIGNED_FNUZ_ZERO)
		return (hw & 0x7Fu) | (u >> 31) << 7;
	return fp8kv_amd_hw_signed(u, hw, f);
}

/* the four-wide step (fp8kv_amd_hw_signed4) on inputs u[0..3], all within
 * the limit: 0 when its codes are the oracle's */
static int four_differ(const uint32_t u[4], fp8kv_dtype format, int saturate, int ocp_hw,
		       enum fault fault)
{
	fp8kv_fp8_format f = fp8kv_format_of((int)format);
	const fp8kv_amd_hw_plan p = fp8kv_amd_hw_plan_for(f, ocp_hw);
	const int run = oracle_run(format, saturate ? FP8KV_SATURATE : FP8KV_NONSATURATING);
	const int hw_run = oracle_run(instruction_format(p.bf8, ocp_hw), FP8KV_NONSATURATING);
	uint32_t hw = 0, want = 0;
	for (int k = 0; k < 4; k++) {
		const float m = fp8kv_amd_hw_input(u[k], p);
		hw |= (uint32_t)(oracle_encode_tabulated(fp8kv_f32_bits(m), hw_run) & 0xFFu) << 8 * k;
		want |= (uint32_t)(oracle_encode_tabulated(u[k], run) & 0xFFu) << 8 * k;
	}
	if (fault == SIGNED4_FNUZ_ZERO)
		f.fnuz = 0;  /* the sign kept on every byte */
	return fp8kv_amd_hw_signed4(u, hw, f) != want;
}

/* inputs where the wrapper and the oracle differ, one at a time and (those
 * within the limit) four at a time; the first in *first */
static long mismatches(fp8kv_dtype format, int saturate, int ocp_hw, enum fault fault,
		       uint32_t *first)
{
	const uint32_t lows[] = {0u, 1u, 0x8000u, 0xFFFFu, 0u};
	const int run = oracle_run(format, saturate ? FP8KV_SATURATE : FP8KV_NONSATURATING);
	const fp8kv_amd_hw_plan p = fp8kv_amd_hw_plan_for(fp8kv_format_of((int)format), ocp_hw);
	uint32_t four[4];
	int filled = 0;
	long bad = 0;
	for (uint32_t hi = 0; hi < 0x10000u; hi++) {
		for (size_t i = 0; i < sizeof lows / sizeof lows[0]; i++) {
			const uint32_t low = i == 4 ? 1u + (uint32_t)rand() % 0xFFFFu : lows[i];
			const uint32_t u = hi << 16 | low;
			const uint32_t want = oracle_encode_tabulated(u, run);
			if (wrapper(u, format, saturate, ocp_hw, fault) != want && bad++ == 0)
				*first = u;
			if ((u & 0x7FFFFFFFu) > p.limit || (fault != NONE && fault != SIGNED4_FNUZ_ZERO))
				continue;
			/* groups of four in-limit inputs, signs and zeros mixed */
			four[filled++] = u ^ ((uint32_t)rand() & 1u) << 31; /* RAND_MAX may be 2^31 - 1 */
			if (filled == 4) {
				filled = 0;
				if (four_differ(four, format, saturate, ocp_hw, fault) && bad++ == 0)
					*first = four[0];
			}
		}
	}
	return bad;
}

int main(void)
{
	static const fp8kv_dtype formats[] = {FP8KV_E4M3FN, FP8KV_E4M3FNUZ, FP8KV_E5M2,
					      FP8KV_E5M2FNUZ};
	char err[256];
	int failed = 0;
	srand(29);
	if (oracle_tabulate(1000, err, sizeof err) != 0) {
		printf("FAIL: the oracle's table: %s\n", err);
		return 1;
	}
	for (int ocp_hw = 0; ocp_hw <= 1; ocp_hw++) {
		const char *target = ocp_hw ? "gfx950" : "gfx942";
		for (size_t k = 0; k < sizeof formats / sizeof formats[0]; k++) {
			const fp8kv_dtype format = formats[k];
			const fp8kv_fp8_format f = fp8kv_format_of((int)format);
			const fp8kv_amd_hw_plan p = fp8kv_amd_hw_plan_for(f, ocp_hw);
			for (int saturate = 0; saturate <= 1; saturate++) {
				uint32_t first = 0;
				const long bad = mismatches(format, saturate, ocp_hw, NONE, &first);
				printf("%s %-8s %-14s limit 0x%08X scale 0x%08X %s: %ld mismatches\n",
				       target, fp8kv_dtype_name(format),
				       saturate ? "saturating" : "nonsaturating", (unsigned)p.limit,
				       (unsigned)p.scale, p.bf8 ? "bf8" : "fp8", bad);
				if (bad) {
					printf("FAIL: first at fp32 bits 0x%08X\n", (unsigned)first);
					failed = 1;
				}
			}
			/* every planted fault that applies to this format is caught */
			for (int fault = LIMIT_TOO_HIGH; fault <= OTHER_INSTRUCTION; fault++) {
				uint32_t first = 0;
				const int twin = f.fnuz == (uint32_t)ocp_hw;
				if ((fault == TWIN_UNSCALED && !twin) ||
				    ((fault == SIGNED_FNUZ_ZERO || fault == SIGNED4_FNUZ_ZERO) && !f.fnuz))
					continue;
				long bad = 0;
				for (int saturate = 0; saturate <= 1; saturate++)
					bad += mismatches(format, saturate, ocp_hw, (enum fault)fault,
							  &first);
				if (bad == 0) {
					printf("FAIL: %s %s: planted fault '%s' not caught\n", target,
					       fp8kv_dtype_name(format), fault_names[fault]);
					failed = 1;
				}
			}
		}
	}
	printf("%s\n", failed ? "FAIL" : "PASS: the wrapper's plans meet the contract");
	return failed;
}
