/* SPDX-License-Identifier: MIT */
/*
 * cpu_backend.c - the golden reference: the contract of fp8kv.h on the host,
 * with OpenMP across rows.
 *
 * Duplicate slots are written in token order even with several threads:
 * work is dealt out by slot group, so every write to one cache slot falls to
 * one thread, which walks the tokens in order.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "backend.h"
#include "fp8_convert.h"

#ifdef _OPENMP
#define THREAD_COUNT() omp_get_num_threads()
#define THREAD_INDEX() omp_get_thread_num()
#define MAX_THREADS() omp_get_max_threads()
#else
#define THREAD_COUNT() 1
#define THREAD_INDEX() 0
#define MAX_THREADS() 1
#endif

/* Below this many elements a call runs on one thread: waking a team costs
 * more than the conversion. */
#define PARALLEL_MIN_ELEMENTS 32768

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* The row loops are compiled for AVX2 and AVX-512 too, picked at load time;
 * the result is the same on every path (integer code and IEEE division). */
#if defined(HAVE_TARGET_CLONES) && defined(__x86_64__)
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define VECTOR_CLONES
#endif

typedef struct row_stats {
	uint64_t overflows;
	uint64_t nans;
} row_stats;

/*
 * One element: the code of x / s (of x when not scaled), with, when counting,
 * ELEMENT_OVERFLOW for a finite x that is clipped (its quotient overflows,
 * or is already infinite) and ELEMENT_NAN for a NaN x.  The one definition
 * used by the arithmetic loops and by the lookup tables, so the two cannot
 * disagree.
 */
#define ELEMENT_OVERFLOW 0x100u
#define ELEMENT_NAN 0x200u

/*
 * How an element is scaled: not at all, by any s, or by an s whose sign bit
 * is clear.  For the last, the contract's sign of x / s is the sign of x,
 * NaN quotient or not (fp8kv_fix_nan_sign), and the encoder reads only that
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
static void quantize_rows(uint8_t *dst, int64_t dst_stride, const uint8_t *src,
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

/* max |x| over the finite elements of a row */
static float row_amax(const void *src, int64_t n, int dtype)
{
	float amax = 0.0f;
	for (int64_t i = 0; i < n; i++) {
		const float a = fp8kv_finite_abs(fp8kv_load_f32(src, i, dtype));
		amax = a > amax ? a : amax;
	}
	return amax;
}

/* NaN inputs in a row, for copies, which count them too */
static uint64_t row_nans(const void *src, int64_t n, int dtype)
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
#define TABLE_SIZE 65536
/* Calls below this many elements convert arithmetically: a table costs
 * TABLE_SIZE conversions to build. */
#define TABLE_MIN_ELEMENTS (1 << 20)

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
static void build_table(void *table, int64_t begin, int64_t end, int dtype, const float *scale,
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
static void lookup_rows(uint8_t *dst, int64_t dst_stride, const uint8_t *src, int64_t src_stride,
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

/* ---- the cache write ---- */

/* SLOT_PAST_SWA: the slot indexes past the end of the swa_mapping */
enum slot_kind { SLOT_WRITE, SLOT_PADDING, SLOT_OUT_OF_RANGE, SLOT_PAST_SWA };

static int64_t load_index(const void *base, int64_t i, fp8kv_index_type type)
{
	return type == FP8KV_INDEX_INT32 ? ((const int32_t *)base)[i]
					 : ((const int64_t *)base)[i];
}

static enum slot_kind resolve_slot(const fp8kv_cache_write *d, int64_t t, int64_t num_slots,
				   int64_t *slot)
{
	int64_t s = load_index(d->slot_mapping, t, d->slot_type);
	if (s < 0)
		return SLOT_PADDING;
	if (d->swa_mapping) {
		if (s >= d->swa_mapping_len) {
			*slot = s;
			return SLOT_PAST_SWA;
		}
		s = load_index(d->swa_mapping, s, d->swa_type);
		if (s < 0)
			return SLOT_PADDING;
	}
	*slot = s;
	return s < num_slots ? SLOT_WRITE : SLOT_OUT_OF_RANGE;
}

typedef struct side {
	const uint8_t *input;
	uint8_t *cache;
	int64_t head_dim, stride_token, stride_head;
	int64_t cache_block, cache_slot, cache_head;
	const float *scale;
	float *scale_cache;
	float *amax; /* this thread's per-head amax, or NULL */
	const void *table; /* the lookup table of this side's conversion, or NULL */
} side;

/* Every head of token t on one side, to block/offset. */
static void write_token(const fp8kv_cache_write *d, const side *sd, int64_t t, int64_t block,
			int64_t offset, row_stats *stats)
{
	const size_t in_size = d->input_dtype == FP8KV_F32 ? 4 : 2;
	const size_t cache_size = fp8kv_dtype_is_fp8(d->cache_dtype) ? 1 : in_size;
	const uint8_t *src = sd->input + (size_t)(t * sd->stride_token) * in_size;
	uint8_t *dst = sd->cache + (size_t)(block * sd->cache_block + offset * sd->cache_slot) *
					   cache_size;
	const int64_t H = d->num_heads, n = sd->head_dim;
	/* with one head the head strides are never used, and validation does
	 * not bound them */
	const int64_t src_stride = H > 1 ? sd->stride_head * (int64_t)in_size : 0;
	const int64_t dst_stride = H > 1 ? sd->cache_head * (int64_t)cache_size : 0;

	if (sd->amax)
		for (int64_t h = 0; h < H; h++) {
			const float a = row_amax(src + h * src_stride, n, d->input_dtype);
			sd->amax[h] = a > sd->amax[h] ? a : sd->amax[h];
		}
	if (!fp8kv_dtype_is_fp8(d->cache_dtype)) {
		for (int64_t h = 0; h < H; h++) {
			memcpy(dst + h * dst_stride, src + h * src_stride, (size_t)n * in_size);
			if (stats)
				stats->nans += row_nans(src + h * src_stride, n, d->input_dtype);
		}
		return;
	}

	if (sd->table) {
		lookup_rows(dst, dst_stride, src, src_stride, H, n, sd->table, stats);
		return;
	}
	const fp8kv_fp8_format f = fp8kv_format_of(d->cache_dtype);
	const int saturate = d->overflow == FP8KV_SATURATE;
	switch (d->scale_mode) {
	case FP8KV_SCALE_ONE:
		quantize_rows(dst, dst_stride, src, src_stride, H, n, d->input_dtype, NULL, 0, f,
			      saturate, stats);
		break;
	case FP8KV_SCALE_TENSOR:
	case FP8KV_SCALE_HEAD:
		quantize_rows(dst, dst_stride, src, src_stride, H, n, d->input_dtype, sd->scale,
			      d->scale_mode == FP8KV_SCALE_HEAD, f, saturate, stats);
		break;
	case FP8KV_SCALE_TOKEN_HEAD: {
		const float fmax = fp8kv_format_max(f);
		for (int64_t h = 0; h < H; h++) {
			const float s =
				fp8kv_dynamic_scale(row_amax(src + h * src_stride, n, d->input_dtype),
						    fmax);
			sd->scale_cache[block * d->scale_cache_stride_block +
					offset * d->scale_cache_stride_slot +
					h * d->scale_cache_stride_head] = s;
			quantize_rows(dst + h * dst_stride, 0, src + h * src_stride, 0, 1, n,
				      d->input_dtype, &s, 0, f, saturate, stats);
		}
		break;
	}
	}
}

static fp8kv_status cpu_reshape_and_cache(void *ctx, const fp8kv_cache_write *d, void *stream)
{
	(void)ctx;
	(void)stream;
	const int64_t num_slots = d->num_blocks * d->block_size;
	const int64_t H = d->num_heads;
	int64_t first_bad = -1, bad_slot = 0, slot;
	enum slot_kind bad_kind = SLOT_OUT_OF_RANGE;

	for (int64_t t = 0; t < d->num_tokens && first_bad < 0; t++) {
		const enum slot_kind kind = resolve_slot(d, t, num_slots, &slot);
		if (kind == SLOT_OUT_OF_RANGE || kind == SLOT_PAST_SWA) {
			first_bad = t;
			bad_slot = slot;
			bad_kind = kind;
		}
	}

	const int want_amax = d->k_amax || d->v_amax;
	/* in floating point: the product of valid sizes may exceed 64 bits
	 * (broadcast inputs with zero strides) */
	const double work = (double)d->num_tokens * (double)H *
			    ((double)d->head_dim_k + (double)d->head_dim_v);
	const int threads = work >= PARALLEL_MIN_ELEMENTS ? MAX_THREADS() : 1;
	float *amax_scratch = NULL;
	if (want_amax) {
		amax_scratch = calloc((size_t)threads * 2 * (size_t)H, sizeof(float));
		if (!amax_scratch)
			return fp8kv_set_error(FP8KV_ENOMEM, "cpu: no memory for amax scratch");
	}
	row_stats total = {0, 0};

	/* Lookup tables for a long call with 16-bit inputs and one scale per
	 * side: one table when both sides divide by the same scale, else two.
	 * Without memory for them the call converts arithmetically, to the same
	 * bytes. */
	const int counting = d->overflow_count || d->nan_count;
	const size_t table_bytes = TABLE_SIZE * (counting ? 2 : 1);
	const int tensor = d->scale_mode == FP8KV_SCALE_TENSOR;
	int num_tables = 0;
	uint8_t *tables = NULL;
	if (d->input_dtype != FP8KV_F32 && fp8kv_dtype_is_fp8(d->cache_dtype) &&
	    (d->scale_mode == FP8KV_SCALE_ONE || tensor) && work >= TABLE_MIN_ELEMENTS) {
		num_tables = tensor && fp8kv_f32_bits(d->k_scale[0]) != fp8kv_f32_bits(d->v_scale[0])
				     ? 2
				     : 1;
		tables = aligned_alloc(64, (size_t)num_tables * table_bytes);
		if (!tables)
			num_tables = 0;
	}

#pragma omp parallel num_threads(threads) if (threads > 1)
	{
		const int nthreads = THREAD_COUNT(), me = THREAD_INDEX();
		/* each thread builds its share of every table, and all wait for
		 * the whole before looking anything up */
		for (int i = 0; i < num_tables; i++)
			build_table(tables + (size_t)i * table_bytes, TABLE_SIZE * me / nthreads,
				    TABLE_SIZE * (me + 1) / nthreads, d->input_dtype,
				    tensor ? (i ? d->v_scale : d->k_scale) : NULL,
				    fp8kv_format_of(d->cache_dtype), d->overflow == FP8KV_SATURATE,
				    counting);
		if (num_tables) {
#pragma omp barrier
		}
		float *my_amax = want_amax ? amax_scratch + (size_t)me * 2 * (size_t)H : NULL;
		const side k = {d->key, d->key_cache, d->head_dim_k, d->key_stride_token,
				d->key_stride_head, d->key_cache_stride_block,
				d->key_cache_stride_slot, d->key_cache_stride_head, d->k_scale,
				d->k_scale_cache, my_amax, tables};
		const side v = {d->value, d->value_cache, d->head_dim_v, d->value_stride_token,
				d->value_stride_head, d->value_cache_stride_block,
				d->value_cache_stride_slot, d->value_cache_stride_head, d->v_scale,
				d->v_scale_cache, my_amax ? my_amax + H : NULL,
				num_tables == 2 ? tables + table_bytes : tables};
		row_stats mine = {0, 0};
		row_stats *stats = counting ? &mine : NULL;
		int64_t s;

		for (int64_t t = 0; t < d->num_tokens; t++) {
			if (resolve_slot(d, t, num_slots, &s) != SLOT_WRITE)
				continue;
			/* groups of 16 slots keep neighbouring small rows on one thread */
			if ((s >> 4) % nthreads != me)
				continue;
			const int64_t block = s / d->block_size, offset = s % d->block_size;
			write_token(d, &k, t, block, offset, stats);
			write_token(d, &v, t, block, offset, stats);
		}
#pragma omp critical(fp8kv_cpu_stats)
		{
			total.overflows += mine.overflows;
			total.nans += mine.nans;
		}
	}

	if (d->overflow_count)
		*d->overflow_count += total.overflows;
	if (d->nan_count)
		*d->nan_count += total.nans;
	if (want_amax) {
		for (int i = 0; i < threads; i++)
			for (int64_t h = 0; h < H; h++) {
				const float *a = amax_scratch + (size_t)i * 2 * (size_t)H;
				if (d->k_amax && a[h] > d->k_amax[h])
					d->k_amax[h] = a[h];
				if (d->v_amax && a[H + h] > d->v_amax[h])
					d->v_amax[h] = a[H + h];
			}
		free(amax_scratch);
	}
	free(tables);
	if (first_bad >= 0)
		return fp8kv_range_error(fp8kv_set_error, first_bad, bad_slot,
					 bad_kind == SLOT_PAST_SWA ? d->swa_mapping_len : num_slots,
					 bad_kind == SLOT_PAST_SWA);
	return FP8KV_OK;
}

/* ---- flat conversions ---- */

#define CHUNK 4096

static fp8kv_status cpu_quantize(void *ctx, const fp8kv_convert_args *a, void *stream)
{
	(void)ctx;
	(void)stream;
	const int64_t n = (int64_t)a->count;
	const int scaled = a->scale_mode == FP8KV_SCALE_TENSOR;
	const float s = scaled ? a->scale[0] : 1.0f;
	const fp8kv_fp8_format f = fp8kv_format_of(a->dst_dtype);
	const size_t in_size = fp8kv_dtype_size(a->src_dtype);
	uint64_t overflows = 0;

#pragma omp parallel for schedule(static) reduction(+ : overflows) if (n >= PARALLEL_MIN_ELEMENTS)
	for (int64_t c = 0; c < (n + CHUNK - 1) / CHUNK; c++) {
		const int64_t begin = c * CHUNK, len = n - begin < CHUNK ? n - begin : CHUNK;
		row_stats st = {0, 0};
		quantize_rows((uint8_t *)a->dst + begin, 0, (const uint8_t *)a->src + begin * in_size,
			      0, 1, len, a->src_dtype, scaled ? &s : NULL, 0, f,
			      a->overflow == FP8KV_SATURATE, a->overflow_count ? &st : NULL);
		overflows += st.overflows;
	}
	if (a->overflow_count)
		*a->overflow_count += overflows;
	return FP8KV_OK;
}

static fp8kv_status cpu_dequantize(void *ctx, const fp8kv_convert_args *a, void *stream)
{
	(void)ctx;
	(void)stream;
	const int64_t n = (int64_t)a->count;
	const int scaled = a->scale_mode == FP8KV_SCALE_TENSOR;
	const float s = scaled ? a->scale[0] : 1.0f;
	const fp8kv_fp8_format f = fp8kv_format_of(a->src_dtype);
	const uint8_t *src = a->src;

#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
	for (int64_t i = 0; i < n; i++) {
		const float x = fp8kv_bits_f32(fp8kv_decode_bits(src[i], f));
		const float y = scaled ? fp8kv_multiply(x, s) : x;
		switch (a->dst_dtype) {
		case FP8KV_F32: ((float *)a->dst)[i] = y; break;
		case FP8KV_F16: ((uint16_t *)a->dst)[i] = fp8kv_f32_to_f16(y); break;
		default: ((uint16_t *)a->dst)[i] = fp8kv_f32_to_bf16(y); break;
		}
	}
	return FP8KV_OK;
}

static fp8kv_status cpu_amax(void *ctx, const void *src, fp8kv_dtype dtype, size_t count,
			     float *out)
{
	(void)ctx;
	const int64_t n = (int64_t)count;
	float amax = 0.0f;
#pragma omp parallel for schedule(static) reduction(max : amax) if (n >= PARALLEL_MIN_ELEMENTS)
	for (int64_t i = 0; i < n; i++) {
		const float a = fp8kv_finite_abs(fp8kv_load_f32(src, i, dtype));
		amax = a > amax ? a : amax;
	}
	*out = amax;
	return FP8KV_OK;
}

/* (slot, token) pairs, ordered by slot then token */
typedef struct slot_token {
	int64_t slot, token;
} slot_token;

static int slot_token_cmp(const void *a, const void *b)
{
	const slot_token *x = a, *y = b;
	if (x->slot != y->slot)
		return x->slot < y->slot ? -1 : 1;
	return x->token < y->token ? -1 : x->token > y->token;
}

/* Duplicates without a bitmap, for a slot space far larger than the
 * mapping: sort the in-range pairs; in each run of one slot every token
 * after the first is a duplicate, as in a scan in token order. */
static fp8kv_status duplicates_by_sorting(const void *slots, int64_t count,
					  fp8kv_index_type type, int64_t num_slots,
					  fp8kv_slot_report *r)
{
	slot_token *pairs = malloc((size_t)count * sizeof *pairs);
	if (!pairs)
		return fp8kv_set_error(FP8KV_ENOMEM, "cpu: no memory to sort %" PRId64 " slots",
				       count);
	size_t n = 0;
	for (int64_t t = 0; t < count; t++) {
		const int64_t s = load_index(slots, t, type);
		if (s >= 0 && s < num_slots)
			pairs[n++] = (slot_token){s, t};
	}
	qsort(pairs, n, sizeof *pairs, slot_token_cmp);
	for (size_t i = 1; i < n; i++)
		if (pairs[i].slot == pairs[i - 1].slot) {
			if (r->duplicates++ == 0 || pairs[i].token < r->first_duplicate)
				r->first_duplicate = pairs[i].token;
		}
	free(pairs);
	return FP8KV_OK;
}

static fp8kv_status cpu_check_slots(void *ctx, const void *slots, int64_t count,
				    fp8kv_index_type type, int64_t num_slots,
				    fp8kv_slot_report *r)
{
	(void)ctx;
	for (int64_t t = 0; t < count; t++) {
		const int64_t s = load_index(slots, t, type);
		if (s < 0) {
			if (r->padding++ == 0)
				r->first_padding = t;
		} else if (s >= num_slots) {
			if (r->out_of_range++ == 0)
				r->first_out_of_range = t;
		}
	}
	/* a bitmap while it is no larger than the pairs a sort would need */
	if (num_slots / 8 > count * (int64_t)sizeof(slot_token) + 4096)
		return duplicates_by_sorting(slots, count, type, num_slots, r);
	uint64_t *seen = calloc((size_t)(num_slots / 64 + 1), sizeof *seen);
	if (!seen)
		return fp8kv_set_error(FP8KV_ENOMEM, "cpu: no memory for a %" PRId64 "-slot bitmap",
				       num_slots);
	for (int64_t t = 0; t < count; t++) {
		const int64_t s = load_index(slots, t, type);
		if (s < 0 || s >= num_slots)
			continue;
		if (seen[s / 64] & (1ull << (s % 64))) {
			if (r->duplicates++ == 0)
				r->first_duplicate = t;
		} else {
			seen[s / 64] |= 1ull << (s % 64);
		}
	}
	free(seen);
	return FP8KV_OK;
}

/* ---- lifetime and buffers ---- */

typedef struct cpu_context {
	char description[64];
} cpu_context;

static fp8kv_status cpu_open(int device, void **ctx)
{
	if (device > 0)
		return fp8kv_set_error(FP8KV_ENODEV, "backend 'cpu' has only device 0");
	cpu_context *c = malloc(sizeof *c);
	if (!c)
		return fp8kv_set_error(FP8KV_ENOMEM, "cpu: no memory for the backend");
	snprintf(c->description, sizeof c->description, "host CPU, %d OpenMP thread%s",
		 MAX_THREADS(), MAX_THREADS() == 1 ? "" : "s");
	*ctx = c;
	return FP8KV_OK;
}

static void cpu_close(void *ctx) { free(ctx); }
static const char *cpu_name(void *ctx) { (void)ctx; return "cpu"; }
static const char *cpu_device(void *ctx) { return ((cpu_context *)ctx)->description; }
static fp8kv_status cpu_synchronize(void *ctx, void *stream)
{
	(void)ctx;
	(void)stream;
	return FP8KV_OK;
}

static fp8kv_status cpu_alloc(void *ctx, size_t bytes, void **ptr)
{
	(void)ctx;
	const size_t rounded = (bytes + 255) & ~(size_t)255;
	if (rounded < bytes || !(*ptr = aligned_alloc(256, rounded)))
		return fp8kv_set_error(FP8KV_ENOMEM, "cpu: cannot allocate %zu bytes", bytes);
	return FP8KV_OK;
}

static void cpu_free(void *ctx, void *ptr) { (void)ctx; free(ptr); }

static fp8kv_status cpu_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
	(void)ctx;
	memmove(dst, src, bytes);
	return FP8KV_OK;
}

static fp8kv_status cpu_fill(void *ctx, void *dst, uint8_t byte, size_t bytes)
{
	(void)ctx;
	memset(dst, byte, bytes);
	return FP8KV_OK;
}

const fp8kv_backend_ops fp8kv_cpu_backend = {
	.abi = FP8KV_MODULE_ABI,
	.name = "cpu",
	.open = cpu_open,
	.close = cpu_close,
	.canonical_name = cpu_name,
	.device = cpu_device,
	.synchronize = cpu_synchronize,
	.alloc = cpu_alloc,
	.free = cpu_free,
	.upload = cpu_copy,
	.download = cpu_copy,
	.fill = cpu_fill,
	.reshape_and_cache = cpu_reshape_and_cache,
	.quantize = cpu_quantize,
	.dequantize = cpu_dequantize,
	.amax = cpu_amax,
	.check_slots = cpu_check_slots,
};
