/* SPDX-License-Identifier: MIT */
/*
 * plan_group.c - the checks of fp8kv_reshape_and_cache_grouped's group
 * scales (fp8kv.h section 8) and their lowering into the write plan: a
 * grouped write is section 7's plan whose sides carry a group recipe and
 * a scale map (A-GROUP-SCALES).  Section 7's checks of the descriptor are
 * plan.c's; each failure names the field and its value.
 */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "plan_common.h"
#include "group_convert.h"

/* The group sizes section 8 allows besides a whole row. */
static int listed_group_size(int64_t g)
{
	return g == 16 || g == 32 || g == 64 || g == 128;
}

/* Does rule take cache format f (section 8)? */
static int rule_takes(fp8kv_group_rule rule, fp8kv_dtype f)
{
	switch (rule) {
	case FP8KV_GROUP_F32: return 1; /* any FP8, e2m1 or int8 cache */
	case FP8KV_GROUP_E8M0_FLOOR:
	case FP8KV_GROUP_E8M0_RCEIL: return f != FP8KV_INT8;
	default: return f == FP8KV_E2M1; /* NVFP4 */
	}
}

static const char *rule_name(fp8kv_group_rule rule)
{
	static const char *const names[] = {"FP8KV_GROUP_F32", "FP8KV_GROUP_E8M0_FLOOR",
					    "FP8KV_GROUP_E8M0_RCEIL", "FP8KV_GROUP_NVFP4"};
	return names[rule];
}

static uint32_t bits_of(float x)
{
	uint32_t u;
	memcpy(&u, &x, sizeof u);
	return u;
}

/* The rule, group size, rounding, divisor and floor. */
static fp8kv_status check_recipe(const fp8kv_cache_write *d, const fp8kv_group_scales *g)
{
	if ((unsigned)g->rule > (unsigned)FP8KV_GROUP_NVFP4)
		FAIL(FP8KV_EINVAL, "groups->rule %d is not an fp8kv_group_rule", (int)g->rule);
	if (!rule_takes(g->rule, d->cache_dtype))
		FAIL(FP8KV_ENOTSUP, "groups->rule %s does not take cache_dtype %s", rule_name(g->rule),
		     fp8kv_dtype_name(d->cache_dtype));
	const int64_t G = g->group_size;
	const int whole_row = G == d->head_dim_k && G == d->head_dim_v;
	if (G < 1 || !(listed_group_size(G) || whole_row))
		FAIL(FP8KV_EINVAL,
		     "groups->group_size %" PRId64 " is not 16, 32, 64, 128, nor the head dim of "
		     "both sides (head_dim_k %" PRId64 ", head_dim_v %" PRId64 ")",
		     G, d->head_dim_k, d->head_dim_v);
	if (d->head_dim_k % G || d->head_dim_v % G)
		FAIL(FP8KV_EINVAL, "groups->group_size %" PRId64 " does not divide %s (%" PRId64 ")", G,
		     d->head_dim_k % G ? "head_dim_k" : "head_dim_v",
		     d->head_dim_k % G ? d->head_dim_k : d->head_dim_v);
	if (g->rule == FP8KV_GROUP_NVFP4 && G != 16)
		FAIL(FP8KV_ENOTSUP, "groups->group_size %" PRId64 ": FP8KV_GROUP_NVFP4 groups are 16",
		     G);
	if ((unsigned)g->rounding > (unsigned)FP8KV_ROUND_TOWARD_ZERO)
		FAIL(FP8KV_EINVAL, "groups->rounding %d is not an fp8kv_rounding", (int)g->rounding);
	if (g->rounding != FP8KV_ROUND_NEAREST_EVEN && d->cache_dtype != FP8KV_INT8)
		FAIL(FP8KV_ENOTSUP,
		     "groups->rounding FP8KV_ROUND_TOWARD_ZERO with cache_dtype %s: int8 caches "
		     "only",
		     fp8kv_dtype_name(d->cache_dtype));
	if (g->rule != FP8KV_GROUP_F32 && (g->divisor != 0.0f || g->scale_floor != 0.0f))
		FAIL(FP8KV_EINVAL, "groups->%s (%g) applies to FP8KV_GROUP_F32 only (rule is %s)",
		     g->divisor != 0.0f ? "divisor" : "scale_floor",
		     (double)(g->divisor != 0.0f ? g->divisor : g->scale_floor), rule_name(g->rule));
	/* 0 means the default; else D >= 1 keeps amax / D finite */
	if (g->divisor != 0.0f && !(plan_is_finite(g->divisor) && g->divisor >= 1.0f))
		FAIL(FP8KV_EINVAL,
		     "groups->divisor %g (0x%08" PRIx32 ") must be 0 (the format's max) or a finite "
		     "number >= 1",
		     (double)g->divisor, bits_of(g->divisor));
	/* a normal number at most 1: a subnormal floor would let x / s overflow */
	const uint32_t fb = bits_of(g->scale_floor);
	if (g->scale_floor != 0.0f && !(fb >= 0x00800000u && fb <= 0x3F800000u))
		FAIL(FP8KV_EINVAL,
		     "groups->scale_floor %g (0x%08" PRIx32 ") must be 0 (2^-126) or a normal "
		     "number in [2^-126, 1]",
		     (double)g->scale_floor, fb);
	return FP8KV_OK;
}

/* The strides of one side's scale array. */
typedef struct side_strides {
	int64_t block, slot, head, group, interleave, stride_interleave;
} side_strides;

/* The key side's strides, or the value side's (v_own_layout: its own). */
static side_strides strides_of(const fp8kv_group_scales *g, int value)
{
	if (value && g->v_own_layout)
		return (side_strides){g->v_stride_block, g->v_stride_slot, g->v_stride_head,
				      g->v_stride_group, g->v_interleave, g->v_stride_interleave};
	return (side_strides){g->stride_block, g->stride_slot, g->stride_head, g->stride_group,
			      g->interleave, g->stride_interleave};
}

/* The layout of one side's scale array (head_dim / G groups per row):
 * [block][slot][head][group], or with the interleave I [block][slot / I]
 * [slot % I][head][group] (a superset of the addresses when I does not
 * divide block_size). */
static void scale_layout(const fp8kv_cache_write *d, const fp8kv_group_scales *g,
			 const side_strides *st, int64_t head_dim, fp8kv_layout *l)
{
	const int64_t groups = head_dim / g->group_size;
	memset(l, 0, sizeof *l);
	if (st->interleave > 0) {
		const int64_t I = st->interleave;
		*l = (fp8kv_layout){5,
				    {d->num_blocks, (d->block_size + I - 1) / I,
				     I < d->block_size ? I : d->block_size, d->num_heads, groups},
				    {st->block, st->slot, st->stride_interleave, st->head, st->group},
				    {"block", "slot", "interleave", "head", "group"}};
	} else {
		*l = (fp8kv_layout){4,
				    {d->num_blocks, d->block_size, d->num_heads, groups},
				    {st->block, st->slot, st->head, st->group},
				    {"block", "slot", "head", "group"}};
	}
}

/* The interleave of one side's strides; prefix names its fields. */
static fp8kv_status check_interleave(const side_strides *st, const char *prefix)
{
	if (st->interleave < 0)
		FAIL(FP8KV_EINVAL, "groups->%sinterleave must be >= 0 (got %" PRId64 ")", prefix,
		     st->interleave);
	if (st->interleave == 0 && st->stride_interleave != 0)
		FAIL(FP8KV_EINVAL,
		     "groups->%sstride_interleave (%" PRId64 ") without an interleave "
		     "(%sinterleave 0)",
		     prefix, st->stride_interleave, prefix);
	return FP8KV_OK;
}

fp8kv_status fp8kv_check_groups(const fp8kv_cache_write *d, const fp8kv_group_scales *g,
				fp8kv_region *r, int *n)
{
	fp8kv_status st;
	if ((st = check_recipe(d, g)) != FP8KV_OK)
		return st;
	const size_t scale_bytes = g->rule == FP8KV_GROUP_F32 ? 4 : 1;
	if (!g->k_scales || !g->v_scales)
		FAIL(FP8KV_EINVAL, "groups->%s is NULL", g->k_scales ? "v_scales" : "k_scales");
	if (plan_misaligned(g->k_scales, scale_bytes) || plan_misaligned(g->v_scales, scale_bytes))
		FAIL(FP8KV_EINVAL, "groups->%s (%p) is not aligned to %zu bytes (fp32 scales)",
		     plan_misaligned(g->k_scales, scale_bytes) ? "k_scales" : "v_scales",
		     plan_misaligned(g->k_scales, scale_bytes) ? g->k_scales : g->v_scales,
		     scale_bytes);
	const int nvfp4 = g->rule == FP8KV_GROUP_NVFP4;
	if (nvfp4 && (!g->k_global || !g->v_global))
		FAIL(FP8KV_EINVAL, "groups->%s is NULL: FP8KV_GROUP_NVFP4 needs its global scales",
		     g->k_global ? "v_global" : "k_global");
	if (nvfp4 && (plan_misaligned(g->k_global, 4) || plan_misaligned(g->v_global, 4)))
		FAIL(FP8KV_EINVAL, "groups->%s (%p) is not aligned to 4 bytes",
		     plan_misaligned(g->k_global, 4) ? "k_global" : "v_global",
		     (const void *)(plan_misaligned(g->k_global, 4) ? g->k_global : g->v_global));
	if (g->v_own_layout != 0 && g->v_own_layout != 1)
		FAIL(FP8KV_EINVAL, "groups->v_own_layout must be 0 or 1 (got %" PRId32 ")",
		     g->v_own_layout);
	if (!g->v_own_layout && (g->v_stride_block || g->v_stride_slot || g->v_stride_head ||
				 g->v_stride_group || g->v_interleave || g->v_stride_interleave))
		FAIL(FP8KV_EINVAL, "groups->v_stride_*/v_interleave are set, but v_own_layout is 0 "
				   "(the value scales take the key scales' strides)");
	const side_strides ks = strides_of(g, 0), vs = strides_of(g, 1);
	if ((st = check_interleave(&ks, "")) != FP8KV_OK ||
	    (st = check_interleave(&vs, g->v_own_layout ? "v_" : "")) != FP8KV_OK)
		return st;

	fp8kv_layout kl, vl;
	scale_layout(d, g, &ks, d->head_dim_k, &kl);
	scale_layout(d, g, &vs, d->head_dim_v, &vl);
	if ((st = fp8kv_layout_check(&kl, scale_bytes, "groups->k_scales", 1)) != FP8KV_OK ||
	    (st = fp8kv_layout_check(&vl, scale_bytes, "groups->v_scales", 1)) != FP8KV_OK)
		return st;
	fp8kv_region_strided(&r[(*n)++], "groups->k_scales", 1, g->k_scales, &kl, scale_bytes);
	fp8kv_region_strided(&r[(*n)++], "groups->v_scales", 1, g->v_scales, &vl, scale_bytes);
	if (nvfp4) {
		fp8kv_region_flat(&r[(*n)++], "groups->k_global", 0, g->k_global, 4);
		fp8kv_region_flat(&r[(*n)++], "groups->v_global", 0, g->v_global, 4);
	}
	return FP8KV_OK;
}

static void plan_side_groups(fp8kv_plan_side *sd, const fp8kv_cache_write *d,
			     const fp8kv_group_scales *g, int value)
{
	fp8kv_group_recipe *gr = &sd->recipe.group;
	const float floor_normal = 0x1p-126f;
	const side_strides st = strides_of(g, value);
	gr->rule = (int32_t)g->rule;
	gr->size = (int32_t)g->group_size; /* at most the head dim, validated */
	gr->rounding = (int32_t)g->rounding;
	gr->scale_bytes = g->rule == FP8KV_GROUP_F32 ? 4 : 1;
	if (g->rule == FP8KV_GROUP_F32) {
		gr->divisor = g->divisor != 0.0f ? g->divisor : fp8kv_element_max(d->cache_dtype);
		gr->scale_floor = g->scale_floor != 0.0f ? g->scale_floor : floor_normal;
	}
	sd->groups.scales = (unsigned char *)(value ? g->v_scales : g->k_scales);
	sd->groups.global = g->rule == FP8KV_GROUP_NVFP4 ? (value ? g->v_global : g->k_global)
							: NULL;
	sd->groups.stride_block = st.block;
	sd->groups.stride_slot = st.slot;
	sd->groups.stride_head = st.head;
	sd->groups.stride_group = st.group;
	sd->groups.interleave = st.interleave;
	sd->groups.stride_interleave = st.stride_interleave;
}

static const plan_field group_fields[] = {
	PLAN_FIELD(fp8kv_group_scales, size),
	PLAN_FIELD(fp8kv_group_scales, rule),
	PLAN_FIELD(fp8kv_group_scales, group_size),
	PLAN_FIELD(fp8kv_group_scales, rounding),
	PLAN_FIELD(fp8kv_group_scales, divisor),
	PLAN_FIELD(fp8kv_group_scales, scale_floor),
	PLAN_FIELD(fp8kv_group_scales, k_global),
	PLAN_FIELD(fp8kv_group_scales, v_global),
	PLAN_FIELD(fp8kv_group_scales, k_scales),
	PLAN_FIELD(fp8kv_group_scales, v_scales),
	PLAN_FIELD(fp8kv_group_scales, stride_block),
	PLAN_FIELD(fp8kv_group_scales, stride_slot),
	PLAN_FIELD(fp8kv_group_scales, stride_head),
	PLAN_FIELD(fp8kv_group_scales, stride_group),
	PLAN_FIELD(fp8kv_group_scales, interleave),
	PLAN_FIELD(fp8kv_group_scales, stride_interleave),
	PLAN_FIELD(fp8kv_group_scales, v_own_layout),
	PLAN_FIELD(fp8kv_group_scales, v_stride_block),
	PLAN_FIELD(fp8kv_group_scales, v_stride_slot),
	PLAN_FIELD(fp8kv_group_scales, v_stride_head),
	PLAN_FIELD(fp8kv_group_scales, v_stride_group),
	PLAN_FIELD(fp8kv_group_scales, v_interleave),
	PLAN_FIELD(fp8kv_group_scales, v_stride_interleave),
};

fp8kv_status fp8kv_read_groups(const fp8kv_group_scales *groups, fp8kv_group_scales *out)
{
	if (!groups)
		FAIL(FP8KV_EINVAL, "groups is NULL");
	return fp8kv_read_sized(out, sizeof *out, groups, "groups", "fp8kv_group_scales_init",
				group_fields, (int)(sizeof group_fields / sizeof group_fields[0]));
}

void fp8kv_plan_groups(const fp8kv_cache_write *d, const fp8kv_group_scales *g,
		       fp8kv_write_plan *p)
{
	plan_side_groups(&p->side[FP8KV_SIDE_KEY], d, g, 0);
	plan_side_groups(&p->side[FP8KV_SIDE_VALUE], d, g, 1);
}
