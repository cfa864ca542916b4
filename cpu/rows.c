/* SPDX-License-Identifier: MIT */
/*
 * rows.c - rows of the CPU backend: fp8kv.h section 5 element by element,
 * in loops the compiler vectorises, and the same through lookup tables.
 */
#include "config.h"

#include <string.h>

#include "cpu.h"


/*
 * One row: dst[i] = fp8(src[i] / s).  Inlined with dtype, scaling and
 * counting as constants, so each combination becomes its own branch-free
 * loop.  The overflow count includes finite x whose quotient is already
 * infinite.
 */
static ALWAYS_INLINE void quantize_row_generic(uint8_t *restrict dst, const void *restrict src,
					       int64_t n, int dtype, enum scaling scaling,
					       int counting,
					       float s, fp8kv_fp8_format f, int saturate,
					       row_stats *stats)
{
	/* 32-bit counts per chunk: a 64-bit lane would halve the vector width */
	for (int64_t begin = 0; begin < n; begin += 1 << 20) {
		const int64_t end = n - begin < 1 << 20 ? n : begin + (1 << 20);
		uint32_t overflows = 0, nans = 0;
		for (int64_t i = begin; i < end; i++) {
			const uint32_t e = quantize_element(fp8kv_load_f32(src, i, dtype), scaling,
							    counting, s, f, saturate);
			dst[i] = (uint8_t)e;
			if (counting) {
				overflows += (e >> 8) & 1u;
				nans += e >> 9;
			}
		}
		stats->overflows += overflows;
		stats->nans += nans;
	}
}

/* Rows that lie back to back in both buffers are one long row: fewer,
 * longer inner loops.  in_size: bytes per input element. */
static void join_back_to_back(int64_t *rows, int64_t *n, int64_t src_stride, int64_t dst_stride,
			      size_t in_size)
{
	if (*rows > 1 && src_stride == *n * (int64_t)in_size && dst_stride == *n) {
		*n *= *rows;
		*rows = 1;
	}
}

/*
 * rows rows of n elements, row r at src + r * src_stride bytes and dst +
 * r * dst_stride, divided by scale[r * scale_stride] when scale is not NULL.
 * The loop over rows lives here, under the dispatch, so the format constants
 * are set up once per call and not once per short row.  stats == NULL:
 * nothing is counted, and the loop is lighter for it.
 */
VECTOR_CLONES
void cpu_quantize_rows(uint8_t *dst, int64_t dst_stride, const uint8_t *src,
		       int64_t src_stride, int64_t rows, int64_t n, int dtype,
		       const float *scale, int64_t scale_stride, fp8kv_fp8_format f,
		       int saturate, row_stats *stats)
{
	row_stats unused;
	if (!scale_stride) /* one scale for all */
		join_back_to_back(&rows, &n, src_stride, dst_stride, dtype == FP8KV_CV_F32 ? 4 : 2);
#define ROW_AS(DT, SCALING, CT, S)                                                       \
	quantize_row_generic(dst + r * dst_stride, src + r * src_stride, n, DT, SCALING, CT, \
			     S, f, saturate, CT ? stats : &unused)
#define ROW(DT, SC, CT)                                                                   \
	do {                                                                              \
		for (int64_t r = 0; r < rows; r++) {                                       \
			const float s = SC ? scale[r * scale_stride] : 1.0f;               \
			if (!(SC))                                                         \
				ROW_AS(DT, SCALE_NONE, CT, s);                             \
			else if (fp8kv_f32_bits(s) >> 31)                                  \
				ROW_AS(DT, SCALE_ANY, CT, s);                              \
			else                                                              \
				ROW_AS(DT, SCALE_SIGN_CLEAR, CT, s);                       \
		}                                                                         \
	} while (0)
#define ROWS(DT, SC)                                                                      \
	do {                                                                              \
		if (stats)                                                                \
			ROW(DT, SC, 1);                                                   \
		else                                                                      \
			ROW(DT, SC, 0);                                                   \
	} while (0)
	switch (dtype * 2 + (scale != NULL)) {
	case FP8KV_CV_F32 * 2: ROWS(FP8KV_CV_F32, 0); break;
	case FP8KV_CV_F32 * 2 + 1: ROWS(FP8KV_CV_F32, 1); break;
	case FP8KV_CV_F16 * 2: ROWS(FP8KV_CV_F16, 0); break;
	case FP8KV_CV_F16 * 2 + 1: ROWS(FP8KV_CV_F16, 1); break;
	case FP8KV_CV_BF16 * 2: ROWS(FP8KV_CV_BF16, 0); break;
	default: ROWS(FP8KV_CV_BF16, 1); break;
	}
#undef ROWS
#undef ROW
#undef ROW_AS
}

/*
 * The largest magnitude among a row's finite elements, from the bits: the
 * magnitudes of finite values order as their bits do, and Inf and NaN
 * (bits >= inf) count as 0.  Integer lanes as narrow as the input, so that
 * the loop vectorises at its widest, and the 0 made by a mask: GCC turns a
 * select there and the max into one scalar chain of cmovs.
 */
static ALWAYS_INLINE uint16_t row_amax_bits16(const uint16_t *restrict p, int64_t n,
					      uint16_t inf)
{
	uint16_t m = 0;
	for (int64_t i = 0; i < n; i++) {
		uint16_t a = p[i] & 0x7FFFu;
		a &= (uint16_t) - (uint16_t)(a < inf);
		m = m > a ? m : a;
	}
	return m;
}

static ALWAYS_INLINE uint32_t row_amax_bits32(const uint32_t *restrict p, int64_t n)
{
	uint32_t m = 0;
	for (int64_t i = 0; i < n; i++) {
		uint32_t a = p[i] & 0x7FFFFFFFu;
		a &= -(uint32_t)(a < 0x7F800000u);
		m = m > a ? m : a;
	}
	return m;
}

VECTOR_CLONES
void cpu_rows_amax(float *amax, const uint8_t *src, int64_t src_stride, int64_t rows, int64_t n,
		   int dtype)
{
	for (int64_t r = 0; r < rows; r++) {
		const void *row = src + r * src_stride;
		switch (dtype) {
		case FP8KV_CV_BF16:
			amax[r] = fp8kv_bf16_to_f32(row_amax_bits16(row, n, 0x7F80u));
			break;
		case FP8KV_CV_F16:
			amax[r] = fp8kv_f16_to_f32(row_amax_bits16(row, n, 0x7C00u));
			break;
		default: amax[r] = fp8kv_bits_f32(row_amax_bits32(row, n)); break;
		}
	}
}

/* NaN inputs in a row, for copies, which count them too */
uint64_t cpu_row_nans(const void *src, int64_t n, int dtype)
{
	uint64_t nans = 0;
	for (int64_t i = 0; i < n; i++)
		nans += (fp8kv_f32_bits(fp8kv_load_f32(src, i, dtype)) & 0x7FFFFFFFu) > 0x7F800000u;
	return nans;
}

/* ---- lookup tables for 16-bit inputs ---- */

/*
 * A bf16 or fp16 input has 65,536 values, so for a long call with one scale
 * the conversion can be done once per value and then looked up: the table
 * is built with quantize_element(), the function the arithmetic loops use,
 * so it is memoisation and the bytes are the same by construction.  A
 * lookup costs a load where the arithmetic costs some thirty vector
 * operations, which makes the write memory-bound rather than compute-bound.
 * With counters the entries are 16 bits, the code and its
 * ELEMENT_OVERFLOW / ELEMENT_NAN flags; without, 8 bits, half the cache.
 */
/* Entries [begin, end) of a table for dtype (F16 or BF16), divided by *scale
 * unless it is NULL; 16-bit entries with flags when counting, else codes. */
static ALWAYS_INLINE void build_table_generic(void *table, int64_t begin, int64_t end, int dtype,
					      int scaled, int counting, float s,
					      fp8kv_fp8_format f, int saturate)
{
	uint16_t bits[256];
	for (int64_t b = begin; b < end; b += 256) {
		const int64_t len = end - b < 256 ? end - b : 256;
		for (int64_t j = 0; j < len; j++)
			bits[j] = (uint16_t)(b + j);
		for (int64_t j = 0; j < len; j++) {
			const uint32_t e = quantize_element(fp8kv_load_f32(bits, j, dtype),
							    scaled ? SCALE_ANY : SCALE_NONE,
							    counting, s, f, saturate);
			if (counting)
				((uint16_t *)table)[b + j] = (uint16_t)e;
			else
				((uint8_t *)table)[b + j] = (uint8_t)e;
		}
	}
}

VECTOR_CLONES
void cpu_build_table(void *table, int64_t begin, int64_t end, int dtype, const float *scale,
		     fp8kv_fp8_format f, int saturate, int counting)
{
	const float s = scale ? *scale : 1.0f;
#define BUILD(DT, SC, CT) build_table_generic(table, begin, end, DT, SC, CT, s, f, saturate)
	switch ((dtype == FP8KV_CV_BF16) * 4 + (scale != NULL) * 2 + (counting != 0)) {
	case 0: BUILD(FP8KV_CV_F16, 0, 0); break;
	case 1: BUILD(FP8KV_CV_F16, 0, 1); break;
	case 2: BUILD(FP8KV_CV_F16, 1, 0); break;
	case 3: BUILD(FP8KV_CV_F16, 1, 1); break;
	case 4: BUILD(FP8KV_CV_BF16, 0, 0); break;
	case 5: BUILD(FP8KV_CV_BF16, 0, 1); break;
	case 6: BUILD(FP8KV_CV_BF16, 1, 0); break;
	default: BUILD(FP8KV_CV_BF16, 1, 1); break;
	}
#undef BUILD
}

/* One row through an 8-bit table: eight lookups per step, packed into one
 * 64-bit store.  Loading the inputs one by one measured faster than
 * splitting 64-bit words (the loads have ports to spare, the shifts not). */
static ALWAYS_INLINE void lookup_row8(uint8_t *restrict dst, const uint16_t *restrict src,
				      int64_t n, const uint8_t *restrict t)
{
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		const uint64_t out = (uint64_t)t[src[i]] | (uint64_t)t[src[i + 1]] << 8 |
				     (uint64_t)t[src[i + 2]] << 16 | (uint64_t)t[src[i + 3]] << 24 |
				     (uint64_t)t[src[i + 4]] << 32 | (uint64_t)t[src[i + 5]] << 40 |
				     (uint64_t)t[src[i + 6]] << 48 | (uint64_t)t[src[i + 7]] << 56;
		memcpy(dst + i, &out, 8); /* dst has no alignment */
	}
	for (; i < n; i++)
		dst[i] = t[src[i]];
}

/* The same through a 16-bit table with flags, which are counted. */
static ALWAYS_INLINE void lookup_row16(uint8_t *restrict dst, const uint16_t *restrict src,
				       int64_t n, const uint16_t *restrict t, row_stats *stats)
{
	uint64_t overflows = 0, nans = 0;
	int64_t i = 0;
	for (; i + 4 <= n; i += 4) {
		const uint32_t e0 = t[src[i]], e1 = t[src[i + 1]], e2 = t[src[i + 2]],
			       e3 = t[src[i + 3]];
		const uint32_t out = (e0 & 0xFFu) | (e1 & 0xFFu) << 8 | (e2 & 0xFFu) << 16 |
				     (e3 & 0xFFu) << 24;
		memcpy(dst + i, &out, 4);
		if ((e0 | e1 | e2 | e3) >> 8) { /* rare: few inputs overflow or are NaN */
			overflows += ((e0 >> 8) & 1u) + ((e1 >> 8) & 1u) + ((e2 >> 8) & 1u) +
				     ((e3 >> 8) & 1u);
			nans += (e0 >> 9) + (e1 >> 9) + (e2 >> 9) + (e3 >> 9);
		}
	}
	for (; i < n; i++) {
		const uint32_t e = t[src[i]];
		dst[i] = (uint8_t)e;
		overflows += (e >> 8) & 1u;
		nans += e >> 9;
	}
	stats->overflows += overflows;
	stats->nans += nans;
}

/* rows rows as in quantize_rows, through a table; stats != NULL: the table
 * has 16-bit entries, and flags are counted */
void cpu_lookup_rows(uint8_t *dst, int64_t dst_stride, const uint8_t *src, int64_t src_stride,
		     int64_t rows, int64_t n, const void *table, row_stats *stats)
{
	join_back_to_back(&rows, &n, src_stride, dst_stride, 2);
	for (int64_t r = 0; r < rows; r++) {
		const uint16_t *row = (const uint16_t *)(src + r * src_stride);
		if (stats)
			lookup_row16(dst + r * dst_stride, row, n, table, stats);
		else
			lookup_row8(dst + r * dst_stride, row, n, table);
	}
}

