/* SPDX-License-Identifier: MIT */
/*
 * layout.h - strided arrays as the front end checks them: a byte extent
 * that fits 64 bits, and (for outputs) no two elements at one address.
 */
#ifndef FP8KV_LAYOUT_H
#define FP8KV_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "fp8kv.h"

#define FP8KV_LAYOUT_MAX_RANK 5

/* extent[i] elements along dimension i, stride[i] elements apart. */
typedef struct fp8kv_layout {
	int rank;
	int64_t extent[FP8KV_LAYOUT_MAX_RANK];
	int64_t stride[FP8KV_LAYOUT_MAX_RANK];
	const char *name[FP8KV_LAYOUT_MAX_RANK];
} fp8kv_layout;

/* Rejects (FP8KV_EINVAL, message naming `what`) negative strides and byte
 * extents past 64 bits, and, with must_not_overlap, strides under which two
 * elements could share an address. */
fp8kv_status fp8kv_layout_check(const fp8kv_layout *l, size_t elem_size, const char *what,
				int must_not_overlap);

#endif /* FP8KV_LAYOUT_H */
