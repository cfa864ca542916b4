/* SPDX-License-Identifier: MIT */
/*
 * case_fixtures.c - see case_fixtures.h.
 */
#include <math.h>
#include <string.h>

#include "case_fixtures.h"

const fp8kv_dtype input_dtypes[3] = {FP8KV_F32, FP8KV_F16, FP8KV_BF16};
const fp8kv_dtype fp8_formats[4] = {FP8KV_E4M3FN, FP8KV_E4M3FNUZ, FP8KV_E5M2, FP8KV_E5M2FNUZ};
const fp8kv_overflow overflow_policies[2] = {FP8KV_SATURATE, FP8KV_NONSATURATING};

void conversion_case(cache_case *c, fp8kv_dtype in, fp8kv_dtype cache, fp8kv_overflow overflow)
{
	cache_case_init(c);
	c->input_dtype = in;
	c->cache_dtype = cache;
	c->overflow = overflow;
}

void fp8_conversion_case(cache_case *c, int n)
{
	conversion_case(c, input_dtypes[n / 8], fp8_formats[n / 2 % 4], overflow_policies[n % 2]);
}

void one_and_tensor_one(cache_case *a, cache_case *b)
{
	*b = *a;
	a->scale_mode = FP8KV_SCALE_ONE;
	b->scale_mode = FP8KV_SCALE_TENSOR;
	b->k_scale = b->v_scale = 1.0f;
}

void erange_case(cache_case *c, int k, const cache_case_shape *shape)
{
	conversion_case(c, input_dtypes[k % 3], fp8_formats[k % 4], FP8KV_SATURATE);
	c->scale_mode = (fp8kv_scale_mode)(k % 4);
	c->k_scale = 3.0f;
	c->v_scale = 0.25f;
	cache_case_set_shape(c, shape);
	c->use_swa = k % 2;
	c->slot_type = k & 2 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
	c->swa_type = k & 4 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
	c->padding_fraction = 0.2;
}

int matrix_combos(matrix_combo out[MATRIX_MAX_COMBOS])
{
	int n = 0;
	for (int i = 0; i < 3; i++)
		for (int k = -1; k < 4; k++)
			for (int m = 0; m < 4; m++) {
				if (k < 0 && m > 0)
					continue;
				for (int p = 0; p < 2; p++) {
					matrix_combo *cb = &out[n++];
					cb->in = input_dtypes[i];
					cb->cache = k < 0 ? input_dtypes[i] : fp8_formats[k];
					cb->mode = (fp8kv_scale_mode)m;
					cb->overflow = overflow_policies[p];
				}
			}
	return n;
}

void covering_array_build(covering_array *a, const int levels[MATRIX_FACTORS])
{
	enum { NF = MATRIX_FACTORS, NL = MATRIX_MAX_LEVELS };
	unsigned char covered[NF][NL][NF][NL];
	memset(covered, 0, sizeof covered);
	int left = 0, total = 1;
	memcpy(a->levels, levels, sizeof a->levels);
	for (int f = 0; f < NF; f++) {
		total *= levels[f];
		for (int g = f + 1; g < NF; g++)
			left += levels[f] * levels[g];
	}
	a->nrows = 0;
	while (left > 0 && a->nrows < MATRIX_MAX_ROWS) {
		int best[NF] = {0}, best_gain = -1, cand[NF];
		for (int k = 0; k < total; k++) {
			int x = k, gain = 0;
			for (int f = 0; f < NF; f++) {
				cand[f] = x % levels[f];
				x /= levels[f];
			}
			for (int f = 0; f < NF; f++)
				for (int g = f + 1; g < NF; g++)
					gain += !covered[f][cand[f]][g][cand[g]];
			if (gain > best_gain) {
				best_gain = gain;
				memcpy(best, cand, sizeof best);
			}
		}
		for (int f = 0; f < NF; f++)
			for (int g = f + 1; g < NF; g++)
				if (!covered[f][best[f]][g][best[g]]) {
					covered[f][best[f]][g][best[g]] = 1;
					left--;
				}
		memcpy(a->rows[a->nrows++], best, sizeof best);
	}
}

void matrix_levels(const covering_array *a, int r, int i, int p, int lv[MATRIX_FACTORS])
{
	for (int f = 0; f < MATRIX_FACTORS; f++)
		lv[f] = (a->rows[r][f] + i * (f + 1 + p)) % a->levels[f];
}

static const float tensor_scales[] = {1.0f, 3.0f, 1.0f / 448, 1e-3f, 0.5f, 0x1p-140f,
				      7.0f, 0x1p-126f, 1e30f, 0.1f, 1.0f / 240, 4096.0f,
				      -3.0f, 0.0f, INFINITY, NAN};
#define N_TENSOR_SCALES (sizeof tensor_scales / sizeof tensor_scales[0])

void matrix_case(cache_case *c, const matrix_combo *cb, const matrix_structure *st,
		 const int lv[MATRIX_FACTORS], int i, int r, uint64_t seed)
{
	cache_case_init(c);
	c->seed = seed;
	c->input_dtype = cb->in;
	c->cache_dtype = cb->cache;
	c->scale_mode = cb->mode;
	c->overflow = cb->overflow;
	c->layout = (cache_case_layout)lv[MATRIX_LAYOUT];
	c->head_dim_k = st->head_dims[lv[MATRIX_HEAD_DIMS]][0];
	c->head_dim_v = st->head_dims[lv[MATRIX_HEAD_DIMS]][1];
	c->block_size = st->block_sizes[lv[MATRIX_BLOCK]];
	c->num_tokens = st->token_counts[lv[MATRIX_TOKENS]];
	c->use_swa = lv[MATRIX_SWA];
	c->slot_type = lv[MATRIX_SLOT] ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
	c->swa_type = (r + i) % 3 == 0 ? FP8KV_INDEX_INT32 : c->slot_type;
	c->padding_fraction = r % 2 ? 0.25 : 0.0;
	c->num_out_of_range = r % 4 == 3 ? 1 + (int64_t)(seed % 3) : 0;
	c->special_rows = (r + i) % 2 == 0;
	c->scale_layout = (cache_case_scale_layout)((r + i / 2) % 2);
	c->k_scale = tensor_scales[(size_t)(i + r) % N_TENSOR_SCALES];
	c->v_scale = tensor_scales[(size_t)(i + 3 * r + 5) % N_TENSOR_SCALES];
	c->want_overflow_count = c->want_nan_count = c->want_amax = r % 5 != 4;
	if (r % 3 == 2) /* plenty of spare blocks that must stay untouched */
		c->num_blocks = (c->num_tokens + 2 * c->block_size) / c->block_size + 1;
}
