/* SPDX-License-Identifier: MIT */
/* layout.c - the checks of one strided array (layout.h). */
#include "config.h"

#include <inttypes.h>

#include "internal.h"
#include "layout.h"

/*
 * Largest element offset, with overflow of int64 (and of the byte count)
 * reported as failure.  Checked arithmetic rather than a bound on the
 * inputs, since any single size may be huge when the others are 1.
 */
static int layout_span(const fp8kv_layout *l, size_t elem_size, int64_t *max_offset)
{
	int64_t off = 0, term, bytes;
	for (int i = 0; i < l->rank; i++) {
		if (__builtin_mul_overflow(l->extent[i] - 1, l->stride[i], &term) ||
		    __builtin_add_overflow(off, term, &off))
			return -1;
	}
	if (__builtin_add_overflow(off, 1, &bytes) ||
	    __builtin_mul_overflow(bytes, (int64_t)elem_size, &bytes))
		return -1;
	*max_offset = off;
	return 0;
}

/*
 * Distinct indices map to distinct offsets when, visiting the dimensions of
 * extent > 1 from the smallest stride up, each stride is at least the span
 * of the dimensions before it.  That covers every dense layout and its
 * paddings and permutations; a layout outside it is rejected as possibly
 * overlapping rather than searched for a collision.
 */
static fp8kv_status check_no_overlap(const fp8kv_layout *l, const char *what)
{
	int order[FP8KV_LAYOUT_MAX_RANK], n = 0;
	for (int i = 0; i < l->rank; i++)
		if (l->extent[i] > 1)
			order[n++] = i;
	for (int i = 1; i < n; i++) /* insertion sort by stride */
		for (int j = i; j > 0 && l->stride[order[j]] < l->stride[order[j - 1]]; j--) {
			int t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	int64_t span = 1; /* elements covered by the dimensions visited so far */
	for (int k = 0; k < n; k++) {
		const int i = order[k];
		if (l->stride[i] < span)
			return fp8kv_set_error(FP8KV_EINVAL,
					       "%s: stride %" PRId64 " of dimension '%s' makes "
					       "elements overlap (the smaller dimensions span %" PRId64
					       " elements)",
					       what, l->stride[i], l->name[i], span);
		/* the span so far plus this dimension's reach: within the byte
		 * extent layout_span checked, so no overflow */
		span += (l->extent[i] - 1) * l->stride[i];
	}
	return FP8KV_OK;
}

fp8kv_status fp8kv_layout_check(const fp8kv_layout *l, size_t elem_size, const char *what,
				int must_not_overlap)
{
	int64_t max_offset;
	for (int i = 0; i < l->rank; i++)
		if (l->stride[i] < 0)
			return fp8kv_set_error(FP8KV_EINVAL, "%s: stride of '%s' is negative (%" PRId64 ")",
					       what, l->name[i], l->stride[i]);
	if (layout_span(l, elem_size, &max_offset))
		return fp8kv_set_error(FP8KV_EINVAL,
				       "%s: sizes and strides overflow 64-bit byte offsets", what);
	return must_not_overlap ? check_no_overlap(l, what) : FP8KV_OK;
}
