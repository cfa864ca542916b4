/* SPDX-License-Identifier: MIT */
/*
 * plan_common.h - what the front end's checks share (plan.c: the cache
 * write and flat conversions; plan_group.c: group scales; plan_mla.c: MLA
 * writes): small predicates, the failure macros, and the reading of the
 * extensible descriptors (A-EXTENSIBLE-DESC).  Every failure names the
 * argument and its value.
 */
#ifndef FP8KV_PLAN_COMMON_H
#define FP8KV_PLAN_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "layout.h"
#include "overlap.h"

#define FAIL(status, ...) return fp8kv_set_error((status), __VA_ARGS__)

static inline int plan_is_input_dtype(fp8kv_dtype t)
{
	return t == FP8KV_F32 || t == FP8KV_F16 || t == FP8KV_BF16;
}

/* Any fp8kv_dtype of this release. */
static inline int plan_is_known_dtype(fp8kv_dtype t)
{
	return (unsigned)t <= (unsigned)FP8KV_INT8;
}

/* An element format a grouped write quantizes to: FP8, e2m1, int8. */
static inline int plan_is_element_format(fp8kv_dtype t)
{
	return fp8kv_dtype_is_fp8(t) || t == FP8KV_E2M1 || t == FP8KV_INT8;
}

static inline size_t plan_index_size(fp8kv_index_type t)
{
	return t == FP8KV_INDEX_INT32 ? 4 : 8;
}

static inline int plan_misaligned(const void *p, size_t align)
{
	return ((uintptr_t)p & (align - 1)) != 0;
}

/* A finite fp32 (not NaN, not +-Inf). */
static inline int plan_is_finite(float x)
{
	uint32_t u;
	__builtin_memcpy(&u, &x, sizeof u);
	return (u & 0x7F800000u) != 0x7F800000u;
}

#define REQUIRE_POSITIVE(field)                                                  \
	do {                                                                     \
		if (d->field < 1)                                                \
			FAIL(FP8KV_EINVAL, #field " must be >= 1 (got %" PRId64 ")", \
			     d->field);                                          \
	} while (0)

#define REQUIRE_PTR(field)                                                       \
	do {                                                                     \
		if (!d->field)                                                   \
			FAIL(FP8KV_EINVAL, #field " is NULL");                   \
	} while (0)

#define REQUIRE_ALIGNED(field, align)                                            \
	do {                                                                     \
		if (d->field && plan_misaligned(d->field, (align)))              \
			FAIL(FP8KV_EINVAL, #field " (%p) is not aligned to %zu bytes", \
			     (const void *)d->field, (size_t)(align));           \
	} while (0)

/* ---- extensible descriptors (A-EXTENSIBLE-DESC) ---- */

/* A field of a descriptor: where it starts and ends, for the check that a
 * caller's size does not end inside one. */
typedef struct plan_field {
	const char *name;
	size_t begin, end;
} plan_field;

#define PLAN_FIELD(type, f) {#f, offsetof(type, f), offsetof(type, f) + sizeof(((type *)0)->f)}

/*
 * Copies the caller's descriptor src, whose first field is its size in
 * bytes, into ours (ours_size bytes): the fields the caller's header had,
 * and zeros (the defaults the init functions give) for later ones.  A size
 * that is too small to hold the first two fields, implausibly large (an
 * uninitialised descriptor), or ends inside a field is FP8KV_EINVAL; a
 * larger size with a nonzero byte past ours is FP8KV_ENOTSUP naming its
 * offset: a field this library does not know was set.  what names the
 * argument, init the function that fills it.
 */
fp8kv_status fp8kv_read_sized(void *ours, size_t ours_size, const void *src, const char *what,
			      const char *init, const plan_field *fields, int nfields);

/* ---- the checks every write descriptor shares (plan.c) ---- */

/* That both dtypes are fp8kv_dtypes, the input one f32, f16 or bf16, and
 * overflow and scale_mode are in range, in that order (the first failure
 * names its field). */
fp8kv_status fp8kv_check_enums(fp8kv_dtype input_dtype, fp8kv_dtype cache_dtype,
			       fp8kv_overflow overflow, fp8kv_scale_mode scale_mode);

/* That slot_type, and swa_type where swa_mapping is set, are
 * fp8kv_index_types. */
fp8kv_status fp8kv_check_index_types(fp8kv_index_type slot_type, const void *swa_mapping,
				     fp8kv_index_type swa_type);

/* ---- the cache write's checks, shared with the grouped write ---- */

/* The checks of section 7 for desc, as plain (groups NULL) or grouped
 * write, then of the groups (plan_group.c), then of shared memory over
 * all the call's arguments. */
fp8kv_status fp8kv_validate_cache_write(const fp8kv_cache_write *d, const fp8kv_group_scales *g);

/* Section 8's checks of g for desc d (whose section 7 checks passed), and
 * the regions of its scale arrays (outputs) and global scales (inputs),
 * appended to r[*n] (at most 4). */
fp8kv_status fp8kv_check_groups(const fp8kv_cache_write *d, const fp8kv_group_scales *g,
				fp8kv_region *r, int *n);

/* The plan's group recipe and scale map of both sides, from a validated
 * g; the rest of the plan is the cache write's. */
void fp8kv_plan_groups(const fp8kv_cache_write *d, const fp8kv_group_scales *g,
		       fp8kv_write_plan *p);

#endif /* FP8KV_PLAN_COMMON_H */
