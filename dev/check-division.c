/* SPDX-License-Identifier: MIT */
/*
 * check-division.c - the proof behind the HIP backend's one-step division
 * for 16-bit inputs (divide_recip in hip/device_convert.h, K-DIV).
 *
 * With rs = RN(1/s), q0 = RN(x * rs) and one correction
 * q1 = RN(q0 + RN(x - s * q0) * rs) (both fused multiply-adds), is q1 the
 * IEEE quotient RN(x / s)?  Every step commutes with multiplying x or s by
 * a power of two (away from overflow and underflow, which the backend's
 * range check on s and its small-quotient rule keep off), so the answer
 * depends only on the significands.  This program tries every x
 * significand of BITS fraction bits (7: bf16, 10: f16) against all 2^23
 * significands of s and counts the pairs where q1 differs from x / s.
 * STEPS 0 (q0 alone) shows that the check does detect wrong quotients.
 *
 *   cc -O2 -fopenmp -ffp-contract=off -Iinclude -Ilib dev/check-division.c \
 *      -o check-division -lm
 *   ./check-division 7 && ./check-division 10     (both print 0 misses)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fp8_convert.h" /* fp8kv_bits_f32, fp8kv_f32_bits */

int main(int argc, char **argv)
{
	const int bits = argc > 1 ? atoi(argv[1]) : 10;
	const int steps = argc > 2 ? atoi(argv[2]) : 1;
	if (bits < 0 || bits > 23 || steps < 0 || steps > 2) {
		fprintf(stderr, "usage: %s [BITS 0..23] [STEPS 0..2]\n", argv[0]);
		return 2;
	}
	unsigned long long misses = 0;
#pragma omp parallel for reduction(+ : misses) schedule(dynamic, 1)
	for (uint32_t xm = 0; xm < (1u << bits); xm++) {
		const float x = fp8kv_bits_f32(0x3F800000u | xm << (23 - bits));
		for (uint32_t sm = 0; sm < (1u << 23); sm++) {
			const float s = fp8kv_bits_f32(0x3F800000u | sm);
			const float rs = 1.0f / s;
			float q = x * rs;
			for (int i = 0; i < steps; i++)
				q = fmaf(fmaf(-s, q, x), rs, q);
			misses += fp8kv_f32_bits(q) != fp8kv_f32_bits(x / s);
		}
	}
	printf("%d fraction bits, %d step(s): %llu pairs, %llu misses\n", bits, steps,
	       (1ull << bits) << 23, misses);
	return misses != 0;
}
