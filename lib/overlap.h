/* SPDX-License-Identifier: MIT */
/*
 * overlap.h - which arguments of one call may share memory.
 *
 * A call's buffers are regions of the address space.  Outputs must not
 * share an element with any other buffer of the call, and inputs must not
 * lie in an output's memory; inputs may share memory with each other.  Two
 * regions whose byte spans meet are still apart when both are made of
 * blocks at one stride, each block within its stride, and no block of one
 * meets a block of the other: K and V caches interleaved per page in one
 * tensor (FlashInfer's [pages, 2, page_size, heads, dim]).  Any other
 * meeting of spans is rejected, as possibly sharing an element, rather than
 * searched for one (as layout.c does within one array).
 */
#ifndef FP8KV_OVERLAP_H
#define FP8KV_OVERLAP_H

#include <stddef.h>
#include <stdint.h>

#include "fp8kv.h"
#include "layout.h"

typedef struct fp8kv_region {
	const char *name;      /* the argument, for messages */
	int output;            /* written by the call */
	uintptr_t base;        /* first byte */
	uint64_t bytes;        /* bytes from base to the end of the last element */
	uint64_t block_stride; /* bytes between blocks; 0: one block */
	uint64_t block_bytes;  /* bytes one block spans (<= block_stride) */
	int64_t blocks;
} fp8kv_region;

/* A contiguous region of bytes (a counter, a slot mapping...). */
void fp8kv_region_flat(fp8kv_region *r, const char *name, int output, const void *base,
		       uint64_t bytes);

/* The region of a strided array that fp8kv_layout_check() accepted; its
 * largest-stride dimension is the block. */
void fp8kv_region_strided(fp8kv_region *r, const char *name, int output, const void *base,
			  const fp8kv_layout *l, size_t elem_size);

/* FP8KV_EINVAL naming both arguments when two of the n regions may share
 * memory against the rules above; regions with base 0 are absent. */
fp8kv_status fp8kv_regions_apart(const fp8kv_region *regions, int n);

#endif /* FP8KV_OVERLAP_H */
