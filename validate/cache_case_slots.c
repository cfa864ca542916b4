/* SPDX-License-Identifier: MIT */
/*
 * cache_case_slots.c - a case's slot mapping, drawn from its seed: distinct
 * slots for the valid tokens, padding, out-of-range and duplicate tokens,
 * and through an optional swa_mapping table; then each token's fate under
 * fp8kv.h section 7 (dest[]).
 */
#include <stdlib.h>

#include "cache_case_internal.h"

/* A negative value (padding) that fits the index type. */
static int64_t pad_value(rng *r, fp8kv_index_type t)
{
	static const int64_t v64[] = {-1, -1, -2, -1000, INT64_MIN, INT32_MIN, -7};
	static const int64_t v32[] = {-1, -1, -2, -1000, INT32_MIN, -7};
	if (t == FP8KV_INDEX_INT32)
		return v32[rng_below(r, sizeof v32 / sizeof v32[0])];
	return v64[rng_below(r, sizeof v64 / sizeof v64[0])];
}

/* A value >= limit that fits the index type. */
static int64_t oor_value(rng *r, fp8kv_index_type t, int64_t limit)
{
	switch (rng_below(r, 5)) {
	case 0: return limit;
	case 1: return limit + 1;
	case 2: return limit + (int64_t)rng_below(r, 100);
	case 3: return t == FP8KV_INDEX_INT32 ? INT32_MAX : INT64_MAX;
	default: return INT32_MAX;
	}
}

static void shuffle(rng *r, int64_t *a, int64_t n)
{
	for (int64_t i = n - 1; i > 0; i--) {
		int64_t j = (int64_t)rng_below(r, (uint64_t)i + 1);
		int64_t t = a[i];
		a[i] = a[j];
		a[j] = t;
	}
}

/* The fate of token t under the contract of fp8kv.h section 7. */
static int64_t token_dest(const cache_case *c, int64_t t)
{
	int64_t s = c->slots[t];
	if (s < 0)
		return CACHE_CASE_PADDING;
	if (c->use_swa) {
		if (s >= c->swa_len)
			return CACHE_CASE_OUT_OF_RANGE;
		s = c->swa[s];
		if (s < 0)
			return CACHE_CASE_PADDING;
	}
	if (s >= c->num_slots)
		return CACHE_CASE_OUT_OF_RANGE;
	return s;
}

int case_generate_slots(cache_case *c)
{
	rng r;
	const int64_t T = c->num_tokens;
	rng_seed(&r, c->seed, STREAM_SLOTS);

	int64_t n_oor = c->num_out_of_range < T ? c->num_out_of_range : T;
	int64_t n_pad = (int64_t)(c->padding_fraction * (double)T + 0.5);
	if (n_pad > T - n_oor)
		n_pad = T - n_oor;
	int64_t n_dup = c->num_duplicates;
	if (n_dup > T - n_oor - n_pad - 1)
		n_dup = T - n_oor - n_pad - 1;
	if (n_dup < 0)
		n_dup = 0;
	int64_t n_valid = T - n_oor - n_pad - n_dup;

	if (c->num_blocks == 0) {
		int64_t need = n_valid + (n_valid / 4 > 2 ? n_valid / 4 : 2);
		c->num_blocks = (need + c->block_size - 1) / c->block_size;
	}
	c->num_slots = c->num_blocks * c->block_size;
	if (n_valid > c->num_slots)
		return case_fail("%lld valid tokens do not fit %lld slots", (long long)n_valid,
			    (long long)c->num_slots);

	enum { K_VALID, K_PAD, K_OOR, K_DUP };
	int64_t *kind = case_calloc((size_t)T, sizeof *kind);
	int64_t *perm = NULL;
	c->slots = case_calloc((size_t)T, sizeof *c->slots);
	c->dest = case_calloc((size_t)T, sizeof *c->dest);
	/* a partial Fisher-Yates: n_valid distinct slots */
	int64_t np = c->num_slots;
	perm = case_calloc((size_t)np, sizeof *perm);
	if (!kind || !c->slots || !c->dest || !perm) {
		free(kind);
		free(perm);
		return case_fail("out of memory");
	}
	for (int64_t i = 0; i < np; i++)
		perm[i] = i;
	for (int64_t i = 0; i < n_valid; i++) {
		int64_t j = i + (int64_t)rng_below(&r, (uint64_t)(np - i));
		int64_t t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (int64_t t = 0; t < T; t++)
		kind[t] = t < n_valid ? K_VALID : t < n_valid + n_pad ? K_PAD
			: t < n_valid + n_pad + n_oor ? K_OOR : K_DUP;
	shuffle(&r, kind, T);

	int64_t *swa_idx = NULL;
	if (c->use_swa) {
		c->swa_len = T + 3 + (int64_t)rng_below(&r, 8);
		c->swa = case_calloc((size_t)c->swa_len, sizeof *c->swa);
		swa_idx = case_calloc((size_t)c->swa_len, sizeof *swa_idx);
		if (!c->swa || !swa_idx) {
			free(kind);
			free(perm);
			free(swa_idx);
			return case_fail("out of memory");
		}
		/* unused entries hold junk nobody may read: padding, valid and
		 * out-of-range slots */
		for (int64_t i = 0; i < c->swa_len; i++) {
			swa_idx[i] = i;
			switch (rng_below(&r, 3)) {
			case 0: c->swa[i] = pad_value(&r, c->swa_type); break;
			case 1: c->swa[i] = (int64_t)rng_below(&r, (uint64_t)c->num_slots); break;
			default: c->swa[i] = oor_value(&r, c->swa_type, c->num_slots); break;
			}
		}
		shuffle(&r, swa_idx, c->swa_len);
	}

	int64_t next_slot = 0, next_idx = 0;
	int64_t *valid_tokens = case_calloc((size_t)T, sizeof *valid_tokens);
	int64_t n_valid_seen = 0;
	if (!valid_tokens) {
		free(kind);
		free(perm);
		free(swa_idx);
		return case_fail("out of memory");
	}
	for (int64_t t = 0; t < T; t++) {
		if (kind[t] != K_VALID)
			continue;
		int64_t slot = perm[next_slot++];
		valid_tokens[n_valid_seen++] = t;
		if (c->use_swa) {
			int64_t p = swa_idx[next_idx++];
			c->swa[p] = slot;
			c->slots[t] = p;
		} else {
			c->slots[t] = slot;
		}
	}
	for (int64_t t = 0; t < T; t++) {
		int64_t p;
		switch (kind[t]) {
		case K_PAD:
			if (c->use_swa && (rng_next(&r) & 1)) {
				p = swa_idx[next_idx++];
				c->swa[p] = pad_value(&r, c->swa_type);
				c->slots[t] = p;
			} else {
				c->slots[t] = pad_value(&r, c->slot_type);
			}
			break;
		case K_OOR:
			if (c->use_swa && (rng_next(&r) & 1)) {
				p = swa_idx[next_idx++];
				c->swa[p] = oor_value(&r, c->swa_type, c->num_slots);
				c->slots[t] = p;
			} else {
				c->slots[t] = oor_value(&r, c->slot_type,
							c->use_swa ? c->swa_len : c->num_slots);
			}
			break;
		case K_DUP: {
			int64_t v = valid_tokens[rng_below(&r, (uint64_t)n_valid_seen)];
			if (c->use_swa && (rng_next(&r) & 1)) {
				p = swa_idx[next_idx++];
				c->swa[p] = c->swa[c->slots[v]];
				c->slots[t] = p;
			} else {
				c->slots[t] = c->slots[v];
			}
			break;
		}
		default:
			break;
		}
	}
	free(valid_tokens);
	free(kind);
	free(perm);
	free(swa_idx);
	cache_case_update_dest(c);
	return 0;
}

void cache_case_update_dest(cache_case *c)
{
	c->first_out_of_range = -1;
	for (int64_t t = 0; t < c->num_tokens; t++) {
		c->dest[t] = token_dest(c, t);
		if (c->dest[t] == CACHE_CASE_OUT_OF_RANGE && c->first_out_of_range < 0)
			c->first_out_of_range = t;
	}
}
