/* SPDX-License-Identifier: MIT */
/*
 * oracle.h - an independent model of the fp8kv conversion contract.
 *
 * Written without reference to lib/fp8_convert.h and by another method: a
 * value is encoded by searching all 256 codes of the format for the nearest
 * value in exact arithmetic, ties to the even code, and the overflow rule is
 * a comparison against an explicit threshold.  The tests and fp8kv-validate
 * hold the library to this model, never the library to itself.
 */
#ifndef FP8KV_ORACLE_H
#define FP8KV_ORACLE_H

#include <stddef.h>
#include <stdint.h>
#include "fp8kv.h"

/* The value of an FP8 code as a double (exact); NaN for NaN codes, +-Inf for
 * the e5m2 Inf codes. */
double oracle_decode(uint8_t code, fp8kv_dtype format);

/* The code for fp32 value y under the contract (steps 2-4).  *overflowed
 * (may be NULL) is set to 1 when y is finite and overflows. */
uint8_t oracle_encode(float y, fp8kv_dtype format, fp8kv_overflow overflow,
		      int *overflowed);

/* An input element of dtype f32/f16/bf16 given by its bits (low 16 bits for
 * the 16-bit types), widened exactly to fp32. */
float oracle_widen(uint32_t bits, fp8kv_dtype dtype);

/* x / s correctly rounded to fp32. */
float oracle_divide(float x, float s);

/* The whole quantization of one element: widen, divide when scaled
 * (scaled != 0), encode.  *overflowed is set to 1 when x is finite and is
 * clipped: its y overflows (step 3), or y = x / s is itself +-Inf in fp32.
 * NaN and +-Inf inputs never count. */
uint8_t oracle_quantize(uint32_t bits, fp8kv_dtype dtype, int scaled, float s,
			fp8kv_dtype format, fp8kv_overflow overflow, int *overflowed);

/* Dequantization: float(code) * s (s = 1 when !scaled) rounded to dtype
 * (f32, f16 or bf16), returned as bits. */
uint32_t oracle_dequantize(uint8_t code, fp8kv_dtype format, int scaled, float s,
			   fp8kv_dtype dtype);

/* Nonzero when x is a NaN (so tests need no isnan from libm). */
int oracle_is_nan(double x);

/* The dynamic scale of a row of n elements given by their bits (fp8kv.h
 * section 7, TOKEN_HEAD): amax over the finite elements, then
 * s = 1 if amax == 0 or none finite, else max(amax / fmax, 2^-126) in fp32.
 * *amax_out (may be NULL) receives amax. */
float oracle_row_scale(const uint32_t *bits, int64_t n, fp8kv_dtype dtype,
		       fp8kv_dtype format, float *amax_out);

/* ---- the same answers, tabulated, for bulk sweeps ----
 *
 * The 256-code search is too slow for billions of inputs.  Every decision
 * boundary of the rounding (a midpoint between neighbouring FP8 values, or
 * between the largest one and max + ulp(max)) is a bf16 value: an fp32 value
 * whose low 16 bits are 0.  So all fp32 values that share their high 16 bits
 * P and have nonzero low bits lie strictly between two neighbouring bf16
 * values and encode alike, and a table holding, for each P, the search's
 * answer for low bits 0 and for low bits 1 gives the search's answer for
 * every fp32 value.  oracle_tabulate() checks that fact, builds the table
 * from oracle_encode(), checks it against the search at low bits 0xFFFF
 * (rounding is monotone, so equal ends mean a constant interval) and on
 * `verify` random patterns per format and policy.  It returns 0, or -1 with
 * the reason in err.  Call it once, before any thread uses the table. */
int oracle_tabulate(uint64_t verify, char *err, size_t errlen);

/* oracle_encode() of fp32 bits y, as code | overflowed << 8, read from the
 * table; `run` is oracle_run(format, overflow). */
extern uint16_t (*oracle_table)[65536][2];
static inline int oracle_run(fp8kv_dtype format, fp8kv_overflow overflow)
{
	return ((int)format - (int)FP8KV_E4M3FN) * 2 + (int)overflow;
}
static inline uint16_t oracle_encode_tabulated(uint32_t y, int run)
{
	return oracle_table[run][y >> 16][(y & 0xFFFF) != 0];
}

/* oracle_quantize() through the table (which must be built). */
uint8_t oracle_quantize_tabulated(uint32_t bits, fp8kv_dtype dtype, int scaled, float s,
				  fp8kv_dtype format, fp8kv_overflow overflow, int *overflowed);

#endif /* FP8KV_ORACLE_H */
