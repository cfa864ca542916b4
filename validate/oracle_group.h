/* SPDX-License-Identifier: MIT */
/*
 * oracle_group.h - an independent model of fp8kv.h sections 5b, 5c, 8 and
 * 9: e2m1 and int8 elements, group scales, grouped rows, scale addresses
 * and MLA latent entries.
 *
 * Written from the header alone, in the manner of oracle.h (whose FP8
 * encoder it uses for FP8 elements): every element is encoded by searching
 * all codes of its format for the nearest value in exact arithmetic, every
 * E8M0 exponent by searching the powers of two, and no library or backend
 * code is included.  The tests hold the library to this model.
 *
 * Inputs are bit patterns, as in oracle.h: fp32 in 32 bits, f16 and bf16
 * in the low 16 bits of a uint32_t.  Functions that can be given arguments
 * the header refuses return -1 for them (a model of bytes, not a
 * validator: it only refuses what it cannot model).
 */
#ifndef FP8KV_ORACLE_GROUP_H
#define FP8KV_ORACLE_GROUP_H

#include <stddef.h>
#include <stdint.h>

#include "fp8kv.h"

/* ------------------------------------------------------- exact helpers */

/* The exact value of an fp32, read from its bit fields. */
double oracle_f32_exact(float f);

/* v (a double holding an exact value) rounded to fp32, to nearest even,
 * subnormals kept, overflow to +-Inf, -0 kept. */
float oracle_f32_round(double v);

/* ------------------------------------------------------------ elements */

/* The exact value of an e2m1 code (its low nibble); -0.0 for 0x8. */
double oracle_e2m1_decode(uint8_t code);

/* fp8kv.h 5b: the e2m1 code of fp32 y, in the low nibble.  *overflowed
 * (may be NULL) is 1 when y is finite and |y| >= 7 (rounds past 6). */
uint8_t oracle_e2m1_encode(float y, int *overflowed);

/* fp8kv.h 5c: the int8 code of fp32 y as a byte (two's complement).
 * *overflowed (may be NULL) is 1 when y is finite and its rounding lies
 * beyond +-127. */
uint8_t oracle_int8_encode(float y, fp8kv_rounding rounding, int *overflowed);

/* The largest finite value of an element format (FP8, e2m1 6, int8 127),
 * found by decoding its codes; 0 for other dtypes. */
double oracle_format_max(fp8kv_dtype format);

/* emax of section 8: the exponent of the format's largest power of two
 * (8, 7, 15, 15, 2), from oracle_format_max; -1000 for int8 and others. */
int oracle_format_emax(fp8kv_dtype format);

/* One element of a group: widen bits (dtype f32/f16/bf16), y = x / s as one
 * correctly rounded division, then section 5, 5b or 5c by format.
 * *overflowed is set as section 5 counts: a finite x whose y overflows or
 * is itself +-Inf. */
uint8_t oracle_group_element(uint32_t bits, fp8kv_dtype dtype, float s, fp8kv_dtype format,
			     fp8kv_overflow overflow, fp8kv_rounding rounding,
			     int *overflowed);

/* -------------------------------------------------------- group scales */

typedef struct oracle_group_params {
	fp8kv_group_rule rule;
	fp8kv_dtype format;       /* the cache: FP8, e2m1 or int8 */
	fp8kv_overflow overflow;  /* FP8 caches; e2m1 and int8 saturate */
	fp8kv_rounding rounding;  /* int8 caches */
	float divisor;            /* FP8KV_GROUP_F32: 0 = the format's max */
	float scale_floor;        /* FP8KV_GROUP_F32: 0 = 2^-126 */
	float global;             /* FP8KV_GROUP_NVFP4: g, as read from memory */
} oracle_group_params;

/* The scale of one group. */
typedef struct oracle_group_scale {
	float s;             /* the elements' divisor (unused when zero) */
	int zero;            /* NVFP4 only: sf is 0, s is 0, or g is not
			        positive and finite, so the codes are +-0 by
			        sign */
	uint8_t stored[4];   /* the stored scale, little-endian */
	int stored_bytes;    /* 4 (fp32) or 1 (E8M0 byte, e4m3fn code) */
} oracle_group_scale;

/* Bytes of one stored scale under rule: 4, 1, or 0 for an unknown rule. */
int oracle_group_scale_bytes(fp8kv_group_rule rule);

/* max |x| over the finite elements of bits[0..n) (0 when none). */
float oracle_group_amax(const uint32_t *bits, int64_t n, fp8kv_dtype dtype);

/* The scale of a group whose amax (finite, >= 0) is given, by p's rule.
 * Returns 0, or -1 when the rule does not take p->format, or the overflow
 * policy or rounding does not apply to it. */
int oracle_group_scale_of(const oracle_group_params *p, float amax, oracle_group_scale *out);

/* Counters of one row or entry, as section 7 adds them. */
typedef struct oracle_counts {
	uint64_t overflows;
	uint64_t nans;      /* NaN inputs */
} oracle_counts;

/*
 * One row (t, h) of n elements of a grouped write, G = group_size:
 * codes receives n bytes (n / 2 for e2m1, element 2i in the low nibble of
 * byte i), scales n / G stored scales (group j at j * stored_bytes), counts
 * (may be NULL) the overflows and NaN inputs, *amax (may be NULL) max |x|
 * over the row's finite inputs (k_amax/v_amax).  Returns 0, or -1 as
 * oracle_group_scale_of, or when G does not divide n, an NVFP4 group is
 * not 16, or an e2m1 row is odd.
 */
int oracle_group_row(const oracle_group_params *p, int64_t group_size, const uint32_t *bits,
		     int64_t n, fp8kv_dtype dtype, uint8_t *codes, uint8_t *scales,
		     oracle_counts *counts, float *amax);

/* ------------------------------------------------------ scale addresses */

/* The strides of fp8kv_group_scales (section 8), in stored elements. */
typedef struct oracle_scale_layout {
	int64_t stride_block, stride_slot, stride_head, stride_group;
	int64_t interleave, stride_interleave; /* 0, 0: none */
} oracle_scale_layout;

/* The element index of the scale of group j of head h written to (block,
 * offset), by section 8's formula. */
int64_t oracle_group_scale_index(const oracle_scale_layout *l, int64_t block, int64_t offset,
				 int64_t h, int64_t j);

/* ---------------------------------------------------------------- MLA */

#define ORACLE_DS_MLA_RANK 512
#define ORACLE_DS_MLA_PE 64
#define ORACLE_DS_MLA_TILE 128
#define ORACLE_DS_MLA_BYTES 656

/*
 * FP8KV_MLA_PLAIN: the entry of one token, kv_c (rank elements) then k_pe
 * (pe elements): (rank + pe) codes when cache_dtype is FP8, scaled by s when
 * scaled (FP8KV_SCALE_TENSOR); or, when cache_dtype == dtype, the inputs'
 * bytes, little-endian.  counts (may be NULL) gets the overflows and the NaN
 * inputs.  Returns the entry's size in bytes, or -1 for another pair.
 */
int64_t oracle_mla_plain_entry(const uint32_t *kv_c, int64_t rank, const uint32_t *k_pe,
			       int64_t pe, fp8kv_dtype dtype, fp8kv_dtype cache_dtype, int scaled,
			       float s, fp8kv_overflow overflow, uint8_t *entry,
			       oracle_counts *counts);

/*
 * FP8KV_MLA_DS: DeepSeek's 656-byte record of one token from kv_c[512] and
 * k_pe[64] (bf16 or f16 bits), the codes in format (e4m3fn or e4m3fnuz),
 * divisor 0 meaning the format's max.  counts (may be NULL): overflows of
 * kv_c, NaN inputs of kv_c and k_pe.  Returns 0, or -1 for another dtype or
 * format.
 */
int oracle_mla_ds_record(const uint32_t *kv_c, const uint32_t *k_pe, fp8kv_dtype dtype,
			 fp8kv_dtype format, float divisor, fp8kv_overflow overflow,
			 uint8_t record[ORACLE_DS_MLA_BYTES], oracle_counts *counts);

#endif /* FP8KV_ORACLE_GROUP_H */
