/* SPDX-License-Identifier: MIT */
/*
 * write_case_values.c - the inputs of a grouped or MLA case, group by group
 * (tile by tile): values around the magnitude the group's scale will
 * bring into the element format, and, in about half the groups of a
 * "special" case, an adversarial pattern: all zeros, nothing finite, NaN
 * and Inf among finite values, a subnormal amax, one huge element, a single
 * element, a constant, negative zeros and tiny negatives, an amax on the
 * E8M0 and NVFP4 boundaries, values past the floor rule's max (saturation),
 * and elements whose quotient by the group's scale is a tie of the element
 * format.  The scale a group will get is the oracle's, computed here from
 * the group as drawn; the expectation recomputes everything from the final
 * inputs, so a pattern only steers where the values fall.
 */
#include <stdlib.h>
#include <string.h>

#include "cache_case_internal.h"
#include "float_bits.h"
#include "oracle.h"
#include "write_case_internal.h"

/* ------------------------------------------------------------- helpers */

static double unit_of(uint64_t x)
{
	return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

static int cmp_double(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The nonnegative finite values of an element format, ascending, then the
 * tie points: midpoints of neighbours and the overflow threshold. */
typedef struct grid {
	double v[300];
	int n;
	double ties[300];
	int nties;
} grid;

static void grid_of(fp8kv_dtype f, grid *g)
{
	memset(g, 0, sizeof *g);
	if (fp8kv_dtype_is_fp8(f)) {
		for (int code = 0; code < 256; code++) {
			const double v = oracle_decode((uint8_t)code, f);
			if (v != v || v < 0 || v - v != 0)
				continue;
			int dup = 0;
			for (int i = 0; i < g->n; i++)
				dup |= g->v[i] == v;
			if (!dup)
				g->v[g->n++] = v;
		}
		qsort(g->v, (size_t)g->n, sizeof g->v[0], cmp_double);
	} else if (f == FP8KV_E2M1) {
		for (int code = 0; code < 8; code++)
			g->v[g->n++] = oracle_e2m1_decode((uint8_t)code);
	} else if (f == FP8KV_INT8) {
		for (int k = 0; k <= 127; k++)
			g->v[g->n++] = k;
	}
	for (int i = 0; i + 1 < g->n; i++)
		g->ties[g->nties++] = (g->v[i] + g->v[i + 1]) / 2;
	if (g->n > 1) /* max + ulp(max) / 2: the overflow threshold */
		g->ties[g->nties++] = g->v[g->n - 1] + (g->v[g->n - 1] - g->v[g->n - 2]) / 2;
}

typedef struct gen {
	dtype_bits b;
	fp8kv_dtype dtype;
	int lo, hi;          /* exponents of the random magnitudes */
	grid grid;
} gen;

static uint32_t bits_of_value(const gen *g, double v)
{
	return case_round_format(v, g->b.ebits, g->b.mbits);
}

static double magnitude_of(const gen *g, uint32_t bits)
{
	const double x = (double)oracle_widen(bits, g->dtype);
	return x < 0 ? -x : x;
}

/* The divisor of side kv's groups of n elements g, as the oracle computes
 * it; 0 when the group has none worth aiming at (a copy, a zero group). */
static double group_divisor(const write_case *c, int kv, const uint32_t *grp, int64_t n,
			    fp8kv_dtype dtype)
{
	if (c->kind == WRITE_CASE_MLA_PLAIN)
		return c->cache_dtype == c->input_dtype ? 0 : c->scaled ? (double)c->scale : 1.0;
	if (c->kind == WRITE_CASE_MLA_DS && kv == 1)
		return 0;
	const oracle_group_params p = write_group_params(c, kv);
	oracle_group_scale sc;
	if (oracle_group_scale_of(&p, oracle_group_amax(grp, n, dtype), &sc) || sc.zero)
		return 0;
	return (double)sc.s;
}

/* The exponent the values of side kv are drawn around. */
static int center_exponent(const write_case *c, int kv, rng *r, const gen *g)
{
	double base = 0;
	if (c->kind == WRITE_CASE_GROUPED && c->rule == FP8KV_GROUP_NVFP4) {
		const float gg = kv ? c->v_global : c->k_global;
		if (gg > 0x1p-126f && gg < 1e30f)
			base = 6.0 * (double)gg;
	} else if (c->kind == WRITE_CASE_MLA_PLAIN && c->scaled && c->scale > 0x1p-126f &&
		   c->scale < 1e30f) {
		base = (double)c->scale;
	}
	if (base > 0) {
		int e = 0;
		while (base >= 2)
			base /= 2, e++;
		while (base < 1)
			base *= 2, e--;
		const int k = e - 11 + (int)rng_below(r, 22);
		return k < g->lo ? g->lo : k > g->hi ? g->hi : k;
	}
	return g->lo + (int)rng_below(r, (uint64_t)(g->hi - g->lo + 1));
}

enum pattern {
	P_RANDOM, P_ZEROS, P_NONFINITE, P_SOME_NONFINITE, P_SUBNORMAL, P_HUGE, P_SINGLE,
	P_CONSTANT, P_NEG_TINY, P_BOUNDARY, P_SATURATE, P_TIES, NUM_PATTERNS
};

static uint32_t nonfinite(rng *r, const dtype_bits *b)
{
	const uint64_t x = rng_next(r);
	const uint32_t sign = (x & 1) ? b->sign : 0;
	if (x & 2)
		return sign | b->inf;
	return sign | b->inf | ((uint32_t)(x >> 8) & ((1u << b->mbits) - 1)) | 1u;
}

/* A random finite value of magnitude about 2^k, down to 2^(k - spread). */
static uint32_t around(rng *r, const gen *g, int k, int spread)
{
	const uint64_t x = rng_next(r);
	const uint32_t sign = (x & 1) ? g->b.sign : 0;
	const int e = k - (int)((x >> 1) % (uint64_t)(spread + 1));
	return sign | bits_of_value(g, (1.0 + unit_of(x)) * pow2(e < -1000 ? -1000 : e));
}

/* The amax of the element format that the boundary pattern aims at. */
static double boundary_amax(const write_case *c, int kv, const gen *g, int k, uint64_t x)
{
	const double fmax = g->grid.n ? g->grid.v[g->grid.n - 1] : 1.0;
	if (c->kind == WRITE_CASE_GROUPED && c->rule == FP8KV_GROUP_NVFP4) {
		/* amax / 6g on an e4m3 value or a midpoint: sf's rounding */
		static const double sfs[] = {0x1p-10, 0x1p-9, 0x1.8p-10, 1.0, 1.125, 1.0625, 448, 464};
		return 6.0 * (double)(kv ? c->v_global : c->k_global) *
		       sfs[x % (sizeof sfs / sizeof sfs[0])];
	}
	if (c->kind == WRITE_CASE_GROUPED && c->rule == FP8KV_GROUP_F32 && c->divisor != 0)
		return (double)c->divisor * pow2(k); /* amax / D exact */
	return fmax * pow2(k); /* rceil's max * 2^k, floor's exponent edge */
}

/* One group (tile) of n elements of side kv, pattern p. */
static void gen_group(const write_case *c, int kv, rng *r, const gen *g, enum pattern p,
		      uint32_t *grp, int64_t n)
{
	const dtype_bits *b = &g->b;
	const int k = center_exponent(c, kv, r, g);
	const int64_t pos = (int64_t)rng_below(r, (uint64_t)n);
	for (int64_t i = 0; i < n; i++) {
		const uint64_t x = rng_next(r);
		const uint32_t sign = (x & 1) ? b->sign : 0;
		uint32_t v;
		switch (p) {
		case P_ZEROS: v = sign; break;
		case P_NONFINITE: v = nonfinite(r, b); break;
		case P_SOME_NONFINITE: v = (x >> 4) % 5 == 0 ? nonfinite(r, b) : around(r, g, k, 8); break;
		case P_SUBNORMAL: /* input subnormals, or fp32-subnormal magnitudes */
			v = sign | (uint32_t)((x >> 8) & ((1u << b->mbits) - 1));
			if (g->dtype == FP8KV_F32 && (x & 2))
				v = sign | (uint32_t)((x >> 8) & 0x7FFFFFu);
			break;
		case P_HUGE: v = i == pos ? sign | b->max_finite : around(r, g, k, 10); break;
		case P_SINGLE: v = i == pos ? around(r, g, k, 0) : (x & 2 ? sign : 0); break;
		case P_CONSTANT: v = sign | (i ? grp[0] & ~b->sign : around(r, g, k, 0)); break;
		case P_NEG_TINY:
			v = x & 2 ? b->sign : b->sign | bits_of_value(g, unit_of(x) * pow2(g->lo - 4));
			break;
		case P_BOUNDARY:
			v = i == pos ? sign | bits_of_value(g, boundary_amax(c, kv, g, k, x >> 8))
				     : around(r, g, k - 1, 6);
			if (i == pos && (x & 6) == 2) /* one ulp either side */
				v += (x & 8) && (v & ~b->sign) ? (uint32_t)-1 : 1u;
			break;
		case P_SATURATE: /* near (2 - eps) 2^k: past the floor rule's max */
			v = sign | bits_of_value(g, (2.0 - unit_of(x) * 0.2) * pow2(k));
			break;
		default: v = around(r, g, k, 10); break;
		}
		grp[i] = v & b->mask;
	}
	/* ties: elements whose quotient by the group's scale falls on a tie
	 * (or a value) of the element format, below the group's amax */
	if ((p == P_TIES || (p == P_RANDOM && rng_below(r, 3) == 0)) && g->grid.nties) {
		const double s = group_divisor(c, kv, grp, n, g->dtype);
		const double amax = (double)oracle_group_amax(grp, n, g->dtype);
		for (int64_t i = 0; s > 0 && i < n; i++) {
			const uint64_t x = rng_next(r);
			if (p != P_TIES && (x & 3))
				continue;
			const double t = (x & 4) ? g->grid.ties[(x >> 8) % (uint64_t)g->grid.nties]
						 : g->grid.v[(x >> 8) % (uint64_t)g->grid.n];
			const uint32_t v = ((x & 1) ? b->sign : 0) | bits_of_value(g, t * s);
			if (magnitude_of(g, v) <= amax && (v & ~b->sign) < b->inf)
				grp[i] = v;
		}
	}
}

/* ------------------------------------------------------------ the inputs */

void write_load_row(const write_case *c, int kv, int64_t t, int64_t h, uint32_t *row)
{
	const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
	const void *buf = kv ? c->value : c->key;
	const int64_t base = t * (kv ? c->value_stride_token : c->key_stride_token) +
			     h * (kv ? c->value_stride_head : c->key_stride_head);
	for (int64_t d = 0; d < D; d++)
		row[d] = cache_case_get_bits(buf, c->input_dtype, (size_t)(base + d));
}

oracle_group_params write_group_params(const write_case *c, int kv)
{
	if (c->kind == WRITE_CASE_MLA_DS)
		return (oracle_group_params){FP8KV_GROUP_F32, c->cache_dtype, c->overflow,
					     FP8KV_ROUND_NEAREST_EVEN, c->divisor, 0.0f, 0.0f};
	return (oracle_group_params){c->rule, c->cache_dtype, c->overflow, c->rounding,
				     c->divisor, c->scale_floor, kv ? c->v_global : c->k_global};
}

int64_t write_pattern_group(const write_case *c, int kv)
{
	const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
	if (c->kind == WRITE_CASE_GROUPED)
		return c->group_size;
	if (c->kind == WRITE_CASE_MLA_DS && kv == 0)
		return ORACLE_DS_MLA_TILE;
	return D < 16 ? D : 16;
}

int write_case_values(write_case *c)
{
	gen g;
	const fp8kv_dtype in = c->input_dtype;
	case_dtype_bits(in, &g.b);
	g.dtype = in;
	g.lo = in == FP8KV_F16 ? -12 : -30;
	g.hi = in == FP8KV_F16 ? 13 : 30;
	grid_of(c->cache_dtype, &g.grid);

	case_fill_garbage(&g.b, in, c->key, c->key_elems, c->value, c->value_elems);

	const int64_t Dmax = c->head_dim_k > c->head_dim_v ? c->head_dim_k : c->head_dim_v;
	uint32_t *row = calloc((size_t)Dmax, sizeof *row);
	if (!row)
		return write_fail("out of memory");
	rng rv;
	rng_seed(&rv, c->seed, STREAM_VALUES);
	for (int64_t t = 0; t < c->num_tokens; t++)
		for (int64_t h = 0; h < c->num_heads; h++)
			for (int kv = 0; kv < 2; kv++) {
				const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
				const int64_t G = write_pattern_group(c, kv);
				for (int64_t j = 0; j < D; j += G) {
					const uint64_t x = rng_next(&rv);
					enum pattern p = P_RANDOM;
					if (c->special && (x & 1))
						p = (enum pattern)(1 + (x >> 8) % (NUM_PATTERNS - 1));
					gen_group(c, kv, &rv, &g, p, row + j, G < D - j ? G : D - j);
				}
				void *buf = kv ? c->value : c->key;
				const int64_t base =
					t * (kv ? c->value_stride_token : c->key_stride_token) +
					h * (kv ? c->value_stride_head : c->key_stride_head);
				for (int64_t d = 0; d < D; d++)
					cache_case_set_bits(buf, in, (size_t)(base + d), row[d]);
			}
	free(row);
	return 0;
}
