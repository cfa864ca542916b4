/* SPDX-License-Identifier: MIT */
/* overlap.c - arguments that share memory (overlap.h). */
#include "config.h"

#include "internal.h"
#include "overlap.h"

void fp8kv_region_flat(fp8kv_region *r, const char *name, int output, const void *base,
		       uint64_t bytes)
{
	r->name = name;
	r->output = output;
	r->base = (uintptr_t)base;
	r->bytes = bytes;
	r->block_stride = 0;
	r->block_bytes = bytes;
	r->blocks = 1;
}

void fp8kv_region_strided(fp8kv_region *r, const char *name, int output, const void *base,
			  const fp8kv_layout *l, size_t elem_size)
{
	int64_t last = 0; /* offset of the last element, in elements */
	int outer = -1;
	for (int i = 0; i < l->rank; i++) {
		last += (l->extent[i] - 1) * l->stride[i];
		if (l->extent[i] > 1 && (outer < 0 || l->stride[i] > l->stride[outer]))
			outer = i;
	}
	fp8kv_region_flat(r, name, output, base, (uint64_t)(last + 1) * elem_size);
	if (outer < 0)
		return;
	const uint64_t block_bytes =
		(uint64_t)(last - (l->extent[outer] - 1) * l->stride[outer] + 1) * elem_size;
	const uint64_t block_stride = (uint64_t)l->stride[outer] * elem_size;
	if (block_bytes <= block_stride) {
		r->block_stride = block_stride;
		r->block_bytes = block_bytes;
		r->blocks = l->extent[outer];
	}
}

/* Do a and b, blocks at one stride, have blocks that meet?  Block i of a
 * meets block j of b when d + (i - j) * stride, with d = a.base - b.base,
 * lies in (-a.block_bytes, b.block_bytes): an interval shorter than two
 * strides, so two values of i - j at most to try. */
static int blocks_meet(const fp8kv_region *a, const fp8kv_region *b)
{
	const __int128 d = (__int128)a->base - (__int128)b->base;
	const __int128 s = (__int128)a->block_stride;
	/* the smallest m with d + m * s > -a.block_bytes */
	const __int128 num = -(__int128)a->block_bytes - d;
	__int128 m = num >= 0 ? num / s + 1 : -((-num) / s);
	if (num < 0 && (-num) % s == 0)
		m += 1;
	for (int k = 0; k < 2; k++, m++) {
		if (m < -(__int128)(b->blocks - 1) || m > (__int128)(a->blocks - 1))
			continue;
		const __int128 gap = d + m * s;
		if (gap > -(__int128)a->block_bytes && gap < (__int128)b->block_bytes)
			return 1;
	}
	return 0;
}

static int regions_meet(const fp8kv_region *a, const fp8kv_region *b)
{
	if ((unsigned __int128)a->base + a->bytes <= b->base ||
	    (unsigned __int128)b->base + b->bytes <= a->base)
		return 0;
	if (a->block_stride && a->block_stride == b->block_stride)
		return blocks_meet(a, b);
	return 1;
}

fp8kv_status fp8kv_regions_apart(const fp8kv_region *r, int n)
{
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++) {
			if (!r[i].base || !r[j].base || !(r[i].output || r[j].output))
				continue;
			if (regions_meet(&r[i], &r[j]))
				return fp8kv_set_error(FP8KV_EINVAL,
						       "%s and %s share memory (%s %p, %" PRIu64
						       " bytes; %s %p, %" PRIu64 " bytes)",
						       r[i].name, r[j].name, r[i].name,
						       (void *)r[i].base, r[i].bytes, r[j].name,
						       (void *)r[j].base, r[j].bytes);
		}
	return FP8KV_OK;
}
