/* SPDX-License-Identifier: MIT */
/* flat.c - the CPU backend's flat calls: quantize, dequantize, amax and
 * check_slots. */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>

#include "cpu.h"

#define CHUNK 4096

fp8kv_status cpu_quantize(void *ctx, const fp8kv_convert_plan *a, void *stream)
{
	(void)ctx;
	(void)stream;
	const int64_t n = a->count;
	const float s = a->scale ? a->scale[0] : 1.0f;
	const fp8kv_fp8_format f = fp8kv_format_of(a->dst_dtype);
	const int64_t in_size = a->src_size;
	uint64_t overflows = 0;

#pragma omp parallel for schedule(static) reduction(+ : overflows) num_threads(CPU_THREADS(ctx)) \
	if (n >= PARALLEL_MIN_ELEMENTS)
	for (int64_t c = 0; c < (n + CHUNK - 1) / CHUNK; c++) {
		const int64_t begin = c * CHUNK, len = n - begin < CHUNK ? n - begin : CHUNK;
		row_stats st = {0, 0};
		cpu_quantize_rows((uint8_t *)a->dst + begin, 0,
				  (const uint8_t *)a->src + begin * in_size, 0, 1, len, a->src_dtype,
				  a->scale ? &s : NULL, 0, f, a->saturate,
				  a->overflow_count ? &st : NULL);
		overflows += st.overflows;
	}
	if (a->overflow_count)
		*a->overflow_count += overflows;
	return FP8KV_OK;
}

fp8kv_status cpu_dequantize(void *ctx, const fp8kv_convert_plan *a, void *stream)
{
	(void)ctx;
	(void)stream;
	const int64_t n = a->count;
	const int scaled = a->scale != NULL;
	const float s = scaled ? a->scale[0] : 1.0f;
	const fp8kv_fp8_format f = fp8kv_format_of(a->src_dtype);
	const uint8_t *src = a->src;

#pragma omp parallel for schedule(static) num_threads(CPU_THREADS(ctx)) \
	if (n >= PARALLEL_MIN_ELEMENTS)
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

fp8kv_status cpu_amax(void *ctx, const void *src, fp8kv_dtype dtype, size_t count,
			     float *out)
{
	(void)ctx;
	const int64_t n = (int64_t)count;
	float amax = 0.0f;
#pragma omp parallel for schedule(static) reduction(max : amax) num_threads(CPU_THREADS(ctx)) \
	if (n >= PARALLEL_MIN_ELEMENTS)
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
		return CPU_ERROR(FP8KV_ENOMEM, "cpu: no memory to sort %" PRId64 " slots",
				       count);
	size_t n = 0;
	for (int64_t t = 0; t < count; t++) {
		const int64_t s = fp8kv_load_index(slots, t, (int32_t)type);
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

fp8kv_status cpu_check_slots(void *ctx, const void *slots, int64_t count,
				    fp8kv_index_type type, int64_t num_slots,
				    fp8kv_slot_report *r)
{
	(void)ctx;
	for (int64_t t = 0; t < count; t++) {
		const int64_t s = fp8kv_load_index(slots, t, (int32_t)type);
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
		return CPU_ERROR(FP8KV_ENOMEM, "cpu: no memory for a %" PRId64 "-slot bitmap",
				       num_slots);
	for (int64_t t = 0; t < count; t++) {
		const int64_t s = fp8kv_load_index(slots, t, (int32_t)type);
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

