/* SPDX-License-Identifier: MIT */
/*
 * cpu.h - the CPU backend's private layer: the golden reference of
 * fp8kv.h, on the host, with OpenMP across rows.
 *
 *   rows.c         the conversion of rows (arithmetic and lookup tables)
 *   group_rows.c   rows scaled by groups: FP8, e2m1 and int8 (section 8)
 *   cache_write.c  the cache write
 *   flat.c         quantize, dequantize, amax, check_slots
 *   backend.c      lifetime, buffers, the table and its entry
 */
#ifndef FP8KV_CPU_H
#define FP8KV_CPU_H

#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "backend.h"
#include "fp8_convert.h"
#include "group_convert.h"
#include "write_plan.h"

#ifdef _OPENMP
#define THREAD_COUNT() omp_get_num_threads()
#define THREAD_INDEX() omp_get_thread_num()
#else
#define THREAD_COUNT() 1
#define THREAD_INDEX() 0
#endif

/* An open CPU backend.  threads is its own team size, fixed at open from
 * FP8KV_NUM_THREADS, else OMP_NUM_THREADS, else the processors this process
 * may run on; every parallel region names it (num_threads), so that a
 * library that lowers libgomp's global count (torch) cannot lower fp8kv's
 * (C-THREADS). */
typedef struct cpu_context {
	int threads;
	char description[64];
} cpu_context;
#define CPU_THREADS(ctx) (((const cpu_context *)(ctx))->threads)
/* The most threads FP8KV_NUM_THREADS may ask for. */
#define CPU_MAX_THREADS 4096

/* Below this many elements a call runs on one thread: waking a team costs
 * more than the conversion. */
#define PARALLEL_MIN_ELEMENTS 32768

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* The row loops are compiled for AVX2 and AVX-512 too, picked at load time;
 * the result is the same on every path (integer code and IEEE division).
 * FP8KV_NO_TARGET_CLONES: for a build by a compiler other than configure's
 * (make fuzz's clang). */
#if defined(HAVE_TARGET_CLONES) && defined(__x86_64__) && !defined(FP8KV_NO_TARGET_CLONES)
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define VECTOR_CLONES
#endif

/* The library's services (backend.c), set by the entry. */
extern const fp8kv_host_services *fp8kv_cpu_host;
#define CPU_HOST() __atomic_load_n(&fp8kv_cpu_host, __ATOMIC_ACQUIRE)
#define CPU_ERROR(status, ...) CPU_HOST()->set_error((status), __VA_ARGS__)

/*
 * How an element is scaled: not at all, by any s, or by an s whose sign bit
 * is clear.  For the last, the contract's sign of x / s is the sign of x,
 * NaN quotient or not (fp8kv_fix_nan_sign), and the encoders read only that
 * sign and the magnitude, so x's sign bit set on the raw quotient stands in
 * for the NaN fix-up at a fraction of its vector operations.
 */
enum scaling { SCALE_NONE, SCALE_ANY, SCALE_SIGN_CLEAR };

static ALWAYS_INLINE float scaled_value(float x, enum scaling scaling, float s)
{
	if (scaling == SCALE_NONE)
		return x;
	if (scaling == SCALE_ANY)
		return fp8kv_divide(x, s);
	return fp8kv_bits_f32((fp8kv_f32_bits(x / s) & 0x7FFFFFFFu) |
			      (fp8kv_f32_bits(x) & 0x80000000u));
}

/*
 * One element: the FP8 code of x / s (of x when not scaled), with, when
 * counting, ELEMENT_OVERFLOW for a finite x that is clipped (its quotient
 * overflows, or is already infinite) and ELEMENT_NAN for a NaN x.  The one
 * definition used by the arithmetic loops, the lookup tables and the
 * grouped rows, so that they cannot disagree.
 */
#define ELEMENT_OVERFLOW 0x100u
#define ELEMENT_NAN 0x200u

static ALWAYS_INLINE uint32_t quantize_element(float x, enum scaling scaling, int counting,
					       float s, fp8kv_fp8_format f, int saturate)
{
	const float y = scaled_value(x, scaling, s);
	const uint32_t q = fp8kv_encode(y, f, saturate);
	if (!counting)
		return q & 0xFFu;
	const uint32_t xmag = fp8kv_f32_bits(x) & 0x7FFFFFFFu;
	const uint32_t ymag = fp8kv_f32_bits(y) & 0x7FFFFFFFu;
	const uint32_t ovf = (q >> 8) | ((xmag < 0x7F800000u ? 1u : 0u) &
					 (ymag == 0x7F800000u ? 1u : 0u));
	const uint32_t nan = xmag > 0x7F800000u ? 1u : 0u;
	return (q & 0xFFu) | (ovf << 8) | (nan << 9);
}

typedef struct row_stats {
	uint64_t overflows;
	uint64_t nans;
} row_stats;

/*
 * rows rows of n elements, row r at src + r * src_stride bytes and dst +
 * r * dst_stride, divided by scale[r * scale_stride] when scale is not NULL.
 * stats == NULL: nothing is counted, and the loop is lighter for it.
 */
void cpu_quantize_rows(uint8_t *dst, int64_t dst_stride, const uint8_t *src,
		       int64_t src_stride, int64_t rows, int64_t n, int dtype,
		       const float *scale, int64_t scale_stride, fp8kv_fp8_format f,
		       int saturate, row_stats *stats);

/* amax[r] = max |x| over the finite elements of row r (NaN and +-Inf
 * ignored; 0 when none), for rows rows of n elements src_stride bytes
 * apart. */
void cpu_rows_amax(float *amax, const uint8_t *src, int64_t src_stride, int64_t rows, int64_t n,
		   int dtype);

/* NaN inputs in a row, for copies, which count them too */
uint64_t cpu_row_nans(const void *src, int64_t n, int dtype);

/* Lookup tables for 16-bit inputs: TABLE_SIZE entries, 8-bit codes, or with
 * counters 16-bit codes with flags. */
#define TABLE_SIZE 65536
/* Calls below this many elements convert arithmetically: a table costs
 * TABLE_SIZE conversions to build. */
#define TABLE_MIN_ELEMENTS (1 << 20)

/* Entries [begin, end) of a table for dtype (F16 or BF16), divided by
 * *scale unless it is NULL. */
void cpu_build_table(void *table, int64_t begin, int64_t end, int dtype, const float *scale,
		     fp8kv_fp8_format f, int saturate, int counting);

/* rows rows as in cpu_quantize_rows, through a table; stats != NULL: the
 * table has 16-bit entries, and flags are counted */
void cpu_lookup_rows(uint8_t *dst, int64_t dst_stride, const uint8_t *src, int64_t src_stride,
		     int64_t rows, int64_t n, const void *table, row_stats *stats);

/*
 * One row of a side whose groups carry their own scales (fp8kv.h section
 * 8): sd->head_dim elements of input dtype at src, their codes to dst (an
 * e2m1 row packs two per byte), each group's stored scale to sd's scale
 * array at (block, offset, h).  *amax receives the row's largest finite
 * magnitude; stats (NULL: not counted) the overflows and NaN inputs.
 */
void cpu_group_row(const fp8kv_plan_side *sd, int dtype, const uint8_t *src, uint8_t *dst,
		   int64_t block, int64_t offset, int64_t h, int saturate, row_stats *stats,
		   float *amax);

/* The operations of the table (cache_write.c, flat.c). */
fp8kv_status cpu_reshape_and_cache(void *ctx, const fp8kv_write_plan *plan, void *stream);
/* The same function takes every plan, plain, grouped or MLA (cache_write.c):
 * the sides' recipes say how each row is written (A-RECIPE). */
fp8kv_status cpu_quantize(void *ctx, const fp8kv_convert_plan *plan, void *stream);
fp8kv_status cpu_dequantize(void *ctx, const fp8kv_convert_plan *plan, void *stream);
fp8kv_status cpu_amax(void *ctx, const void *src, fp8kv_dtype dtype, size_t count, float *amax);
fp8kv_status cpu_check_slots(void *ctx, const void *slots, int64_t count, fp8kv_index_type type,
			     int64_t num_slots, fp8kv_slot_report *report);

#endif /* FP8KV_CPU_H */
