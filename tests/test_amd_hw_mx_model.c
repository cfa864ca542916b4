/* SPDX-License-Identifier: MIT */
/*
 * test_amd_hw_mx_model.c - hip/amd_hw_mx.h on the CPU: which E8M0 groups go
 * to gfx950's scaled conversions, the scale operand they are given, and the
 * signs put back, for e4m3fn, e5m2 and e2m1 elements and every scale byte,
 * against the independent oracle (validate/oracle.h, oracle_group.h).
 *
 * The instruction is modelled as what the sources state (docs/amd.md): |x|
 * divided by 2^(E - 127), E the exponent field of the scale operand,
 * rounded once to nearest even on the format's grid; a result beyond the
 * range is not stated and is modelled as a value no code equals, so a plan
 * that lets one through fails.  Whether it flushes fp32 subnormal inputs
 * is not stated either: both models run, and the plan must pass both.
 * Whether the real instruction is this only a GPU can tell (fp8kv-validate
 * --backend hip on a gfx950).
 *
 * Inputs: for every byte b, the fp32 values whose quotient by 2^(b - 127)
 * lies between 2^-30 and 2^18, every fp32 subnormal binade, and zeros,
 * with high halves on every bf16 value and low halves 0, 1, 0x8000, 0xFFFF
 * and one random (every rounding boundary of these formats is a bf16 value,
 * oracle.h), signs at random, taken eight at a time as one vector of a
 * group whose amax is theirs.  Then planted faults (the scale applied the
 * wrong way, a limit a binade too high, scale bytes down to 1 reaching
 * the instruction, the fnuz sign rule, e2m1 nibbles swapped), each of
 * which must be caught.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "amd_hw_mx.h"
#include "oracle.h"
#include "oracle_group.h"

enum fault { NONE, SCALE_INVERTED, LIMIT_TOO_HIGH, MIN_BYTE_ONE, FNUZ_SIGNS, NIBBLES_SWAPPED };

static const char *const fault_names[] = {
	"none", "the scale applied the wrong way (2^(127 - b))", "the limit a binade too high",
	"scale bytes from 1 on (subnormal inputs)", "signs on nonzero codes only (fnuz rule)",
	"e2m1 nibbles of a pair swapped"};

#define BEYOND 0x100u /* the model's result beyond the range */

/* the instruction on one positive input m with scale operand scale */
static uint32_t instruction(float m, float scale, fp8kv_dtype format, int flush)
{
	uint32_t mb = fp8kv_f32_bits(m);
	const int e = (int)(fp8kv_f32_bits(scale) >> 23) & 0xFF;
	if (flush && mb < 0x00800000u)
		mb = 0;
	/* exact in a double; rounding it to fp32 first changes it only below
	 * 2^-126, far below half the least subnormal of every format */
	const float q = oracle_f32_round(oracle_f32_exact(fp8kv_bits_f32(mb)) * ldexp(1.0, 127 - e));
	if (format == FP8KV_E2M1) {
		int overflowed = 0;
		const uint32_t c = oracle_e2m1_encode(q, &overflowed);
		return overflowed ? BEYOND : c & 0x7u;
	}
	const uint16_t r = oracle_encode_tabulated(fp8kv_f32_bits(q),
						   oracle_run(format, FP8KV_NONSATURATING));
	return r >> 8 ? BEYOND : r & 0x7Fu;
}

/* the contract's code of x under E8M0 byte b (section 8: y = x / 2^(b -
 * 127), one correct rounding, then 5 or 5b) */
static uint32_t contract(uint32_t u, uint32_t b, fp8kv_dtype format, fp8kv_overflow overflow)
{
	const float y = oracle_f32_round(oracle_f32_exact(fp8kv_bits_f32(u)) *
					 ldexp(1.0, 127 - (int)b));
	if (format == FP8KV_E2M1)
		return oracle_e2m1_encode(y, NULL) & 0xFu;
	return oracle_encode_tabulated(fp8kv_f32_bits(y), oracle_run(format, overflow)) & 0xFFu;
}

/* group_vec's gfx950 branch for eight inputs u of a group of byte b and
 * amax: 1 and the packed codes in out, 0 when the group does not take it */
static int plan(const uint32_t u[8], uint32_t b, float amax, fp8kv_dtype format, int flush,
		enum fault fault, uint32_t out[2])
{
	uint32_t limit = fp8kv_amd_mx_limit((int)format);
	if (fault == LIMIT_TOO_HIGH)
		limit += 1u << 23;
	int usable = fp8kv_amd_mx_usable(b, amax, limit);
	if (fault == MIN_BYTE_ONE && b >= 1u && b < FP8KV_AMD_MX_MIN_BYTE)
		usable = (fp8kv_f32_bits(amax * fp8kv_e8m0_value(254u - b)) & 0x7FFFFFFFu) <= limit;
	if (!usable)
		return 0;
	const float s = fp8kv_amd_mx_scale_operand(fault == SCALE_INVERTED ? 254u - b : b);
	uint32_t hw[2] = {0, 0}, beyond = 0;
	for (int k = 0; k < 8; k++) {
		const uint32_t c = instruction(fp8kv_amd_mx_input(u[k]), s, format, flush);
		beyond |= c == BEYOND;
		if (format == FP8KV_E2M1)
			hw[0] |= (c & 0xFu) << 4 * (fault == NIBBLES_SWAPPED ? k ^ 1 : k);
		else
			hw[k / 4] |= (c & 0xFFu) << 8 * (k % 4);
	}
	if (format == FP8KV_E2M1) {
		out[0] = fp8kv_amd_mx_signed_e2m1(u, hw[0]);
		out[1] = 0;
	} else if (fault == FNUZ_SIGNS) {
		const fp8kv_fp8_format fnuz = fp8kv_format_of(FP8KV_E4M3FNUZ);
		out[0] = fp8kv_amd_hw_signed4(u, hw[0], fnuz);
		out[1] = fp8kv_amd_hw_signed4(u + 4, hw[1], fnuz);
	} else {
		out[0] = fp8kv_amd_mx_signed4(u, hw[0]);
		out[1] = fp8kv_amd_mx_signed4(u + 4, hw[1]);
	}
	if (beyond) /* no code is the model's answer */
		out[0] = ~out[0];
	return 1;
}

typedef struct tally {
	long groups, used, bad;
	uint32_t first_u, first_b;
	uint32_t used_bytes[256];
} tally;

/* one vector of eight inputs of byte b, its amax theirs */
static void check_vector(const uint32_t u[8], uint32_t b, fp8kv_dtype format,
			 fp8kv_overflow overflow, int flush, enum fault fault, tally *t)
{
	float amax = 0.0f;
	for (int k = 0; k < 8; k++) {
		const float a = fp8kv_bits_f32(u[k] & 0x7FFFFFFFu);
		amax = a > amax ? a : amax;
	}
	uint32_t got[2];
	t->groups++;
	if (!plan(u, b, amax, format, flush, fault, got))
		return;
	t->used++;
	t->used_bytes[b]++;
	uint32_t want[2] = {0, 0};
	for (int k = 0; k < 8; k++) {
		const uint32_t c = contract(u[k], b, format, overflow);
		if (format == FP8KV_E2M1)
			want[0] |= c << 4 * k;
		else
			want[k / 4] |= c << 8 * (k % 4);
	}
	if ((got[0] != want[0] || got[1] != want[1]) && t->bad++ == 0) {
		t->first_u = u[0];
		t->first_b = b;
	}
}

/* the sweep of the file's comment for one format, overflow mode and model;
 * with a fault, bytes 0-20 and every fifth, stopping at the first mismatch */
static void sweep(fp8kv_dtype format, fp8kv_overflow overflow, int flush, enum fault fault,
		  tally *t)
{
	const uint32_t lows[] = {0u, 1u, 0x8000u, 0xFFFFu, 0u};
	for (uint32_t b = 0; b <= 254u; b++) {
		if (fault != NONE && b > 20u && b % 5u)
			continue;
		uint32_t u[8];
		int filled = 0;
		const int lo_e = (int)b - 30 < 1 ? 1 : (int)b - 30;
		const int hi_e = (int)b + 18 > 254 ? 254 : (int)b + 18;
		for (int e = 0; e <= hi_e; e = e == 0 ? lo_e : e + 1)
			for (uint32_t m = 0; m < 0x80u; m++)
				for (size_t i = 0; i < sizeof lows / sizeof lows[0]; i++) {
					const uint32_t low = i == 4 ? 1u + (uint32_t)rand() % 0xFFFFu
								    : lows[i];
					u[filled++] = ((uint32_t)e << 23 | m << 16 | low) ^
						      ((uint32_t)rand() & 1u) << 31;
					if (filled == 8) {
						filled = 0;
						check_vector(u, b, format, overflow, flush, fault, t);
						if (fault != NONE && t->bad)
							return;
					}
				}
	}
}

int main(void)
{
	static const fp8kv_dtype formats[] = {FP8KV_E4M3FN, FP8KV_E5M2, FP8KV_E2M1};
	char err[256];
	int failed = 0;
	srand(37);
	if (oracle_tabulate(1000, err, sizeof err) != 0) {
		printf("FAIL: the oracle's table: %s\n", err);
		return 1;
	}
	/* formats the instruction does not produce never reach it */
	if (fp8kv_amd_mx_limit(FP8KV_E4M3FNUZ) || fp8kv_amd_mx_limit(FP8KV_E5M2FNUZ) ||
	    fp8kv_amd_mx_limit(FP8KV_INT8)) {
		printf("FAIL: a limit for fnuz or int8\n");
		failed = 1;
	}
	for (size_t k = 0; k < sizeof formats / sizeof formats[0]; k++) {
		const fp8kv_dtype format = formats[k];
		for (int flush = 0; flush <= 1; flush++)
			for (int sat = 0; sat <= (format == FP8KV_E2M1 ? 0 : 1); sat++) {
				const fp8kv_overflow overflow = sat ? FP8KV_SATURATE : FP8KV_NONSATURATING;
				static tally t;
				t = (tally){0};
				sweep(format, overflow, flush, NONE, &t);
				uint32_t low_bytes = 0, missing = 0;
				for (uint32_t b = 0; b < 256; b++) {
					low_bytes += b < FP8KV_AMD_MX_MIN_BYTE && t.used_bytes[b];
					missing += b >= FP8KV_AMD_MX_MIN_BYTE && b <= 254u &&
						   !t.used_bytes[b];
				}
				printf("%-6s %-13s %s subnormal inputs: %ld vectors, %ld to the "
				       "instruction, %ld mismatches\n",
				       fp8kv_dtype_name(format), sat ? "saturating" : "nonsaturating",
				       flush ? "flushed" : "kept   ", t.groups, t.used, t.bad);
				if (t.bad) {
					printf("FAIL: first at fp32 bits 0x%08X, byte %u\n",
					       (unsigned)t.first_u, (unsigned)t.first_b);
					failed = 1;
				}
				/* the check is not vacuous: every usable byte reached it */
				if (low_bytes || missing || t.used < t.groups / 4) {
					printf("FAIL: %u bytes below %u used, %u usable bytes unused\n",
					       (unsigned)low_bytes, (unsigned)FP8KV_AMD_MX_MIN_BYTE,
					       (unsigned)missing);
					failed = 1;
				}
			}
		/* every planted fault that applies to this format is caught */
		for (int fault = SCALE_INVERTED; fault <= NIBBLES_SWAPPED; fault++) {
			if ((fault == FNUZ_SIGNS && format == FP8KV_E2M1) ||
			    (fault == NIBBLES_SWAPPED && format != FP8KV_E2M1))
				continue;
			long bad = 0;
			for (int flush = 0; flush <= 1; flush++) {
				static tally t;
				t = (tally){0};
				sweep(format, FP8KV_SATURATE, flush, (enum fault)fault, &t);
				bad += t.bad;
			}
			printf("%-6s planted: %-48s %s\n", fp8kv_dtype_name(format),
			       fault_names[fault], bad ? "caught" : "NOT CAUGHT");
			if (!bad)
				failed = 1;
		}
	}
	printf(failed ? "FAIL\n" : "PASS\n");
	return failed;
}
