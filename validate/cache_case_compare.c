/* SPDX-License-Identifier: MIT */
/*
 * cache_case_compare.c - two results of one case, byte for byte: both
 * caches and scale caches, the counters and amax requested, the status and
 * the ERANGE message.  Each difference found is traced back to the input
 * element written there last, with its scale and the oracle's code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_case_internal.h"
#include "float_bits.h"
#include "oracle.h"

void cache_diff_init(cache_diff *d)
{
	memset(d, 0, sizeof *d);
}

cache_diff_entry *cache_diff_new_entry(cache_diff *d, int max_report, cache_diff_what what)
{
	if (max_report > CACHE_DIFF_MAX_REPORT)
		max_report = CACHE_DIFF_MAX_REPORT;
	if (d->reported >= max_report)
		return NULL;
	cache_diff_entry *e = &d->e[d->reported++];
	memset(e, 0, sizeof *e);
	e->what = what;
	e->index = e->token = e->head = e->element = e->slot = -1;
	return e;
}

/* Which input element was written last at element idx of the key (kv = 0)
 * or value cache (or its scale cache, scale != 0).  0 if none. */
static int locate(const cache_case *c, int kv, int scale, int64_t idx, cache_diff_entry *e)
{
	const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
	for (int64_t t = c->num_tokens - 1; t >= 0; t--) {
		const int64_t slot = c->dest[t];
		if (slot < 0)
			continue;
		for (int64_t h = 0; h < c->num_heads; h++) {
			if (scale) {
				if (case_scale_index(c, slot, h) == idx) {
					e->token = t;
					e->head = h;
					e->slot = slot;
					return 1;
				}
				continue;
			}
			const int64_t rel = idx - case_cache_index(c, kv, slot, h, 0);
			if (rel >= 0 && rel < D) {
				e->token = t;
				e->head = h;
				e->element = rel;
				e->slot = slot;
				return 1;
			}
		}
	}
	return 0;
}

/* Fills in the input, scale and the oracle's code of a located entry. */
static void explain(const cache_case *c, int kv, cache_diff_entry *e)
{
	const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
	uint32_t *row = case_calloc((size_t)D, sizeof *row);
	if (!row)
		return;
	case_load_row(c, kv, e->token, e->head, row);
	e->scale = case_row_scale(c, kv, e->head, row, &e->scaled);
	if (e->element >= 0) {
		e->has_input = 1;
		e->input_bits = row[e->element];
		e->input = oracle_widen(e->input_bits, c->input_dtype);
		e->has_oracle = 1;
		if (c->cache_dtype == c->input_dtype)
			e->oracle = e->input_bits;
		else
			e->oracle = oracle_quantize(e->input_bits, c->input_dtype, e->scaled, e->scale,
						    c->cache_dtype, c->overflow, NULL);
	} else if (e->scaled) { /* a scale cache element: the oracle's scale */
		e->has_oracle = 1;
		e->oracle = bits_of_float(e->scale);
	}
	free(row);
}

static uint64_t compare_image(const cache_case *c, cache_diff_what what, int kv, int scale,
			      const uint8_t *exp, const uint8_t *got, size_t elems, size_t esz,
			      cache_diff *d, int max_report)
{
	uint64_t diffs = 0;
	if (!exp || !got)
		return 0;
	d->bytes_compared += elems * esz;
	if (memcmp(exp, got, elems * esz) == 0)
		return 0;
	for (size_t i = 0; i < elems; i++) {
		const uint8_t *a = exp + i * esz, *b = got + i * esz;
		if (memcmp(a, b, esz) == 0)
			continue;
		for (size_t k = 0; k < esz; k++)
			d->bytes_differing += a[k] != b[k];
		diffs++;
		cache_diff_entry *e = cache_diff_new_entry(d, max_report, what);
		if (!e)
			continue;
		e->index = (int64_t)i;
		uint32_t ea = 0, ga = 0;
		memcpy(&ea, a, esz); /* little-endian element bits */
		memcpy(&ga, b, esz);
		e->expected = ea;
		e->got = ga;
		if (locate(c, kv, scale, (int64_t)i, e))
			explain(c, kv, e);
	}
	return diffs;
}

/* "token N" in msg, N not followed by another digit. */
static int names_token(const char *msg, int64_t token)
{
	char want[40];
	int n = snprintf(want, sizeof want, "token %lld", (long long)token);
	for (const char *p = strstr(msg, want); p; p = strstr(p + 1, want))
		if (p[n] < '0' || p[n] > '9')
			return 1;
	return 0;
}

static void count_bytes(cache_diff *d, uint64_t a, uint64_t b, int n)
{
	for (int k = 0; k < n; k++)
		d->bytes_differing += ((a >> (8 * k)) & 0xFF) != ((b >> (8 * k)) & 0xFF);
}

uint64_t cache_diff_outcome(cache_diff *d, int max_report, const char *exp_setup,
			    const char *got_setup, fp8kv_status exp_status, fp8kv_status got_status,
			    const char *got_stage, const char *got_message,
			    int64_t first_out_of_range)
{
	uint64_t diffs = 0;
	cache_diff_entry *e;
	const char *setup[2] = {exp_setup, got_setup};
	for (int i = 0; i < 2; i++) {
		if (setup[i][0]) {
			diffs++;
			if ((e = cache_diff_new_entry(d, max_report, CACHE_DIFF_SETUP)))
				snprintf(e->note, sizeof e->note, "%s: %s", i ? "got" : "expected",
					 setup[i]);
		}
	}
	if (exp_status != got_status) {
		diffs++;
		if ((e = cache_diff_new_entry(d, max_report, CACHE_DIFF_STATUS))) {
			e->expected = (uint64_t)exp_status;
			e->got = (uint64_t)got_status;
			snprintf(e->note, sizeof e->note, "%s%s%s", got_stage, got_stage[0] ? ": " : "",
				 got_message);
		}
	} else if (got_status == FP8KV_ERANGE && first_out_of_range >= 0 &&
		   !names_token(got_message, first_out_of_range)) {
		diffs++;
		if ((e = cache_diff_new_entry(d, max_report, CACHE_DIFF_MESSAGE))) {
			e->token = first_out_of_range;
			snprintf(e->note, sizeof e->note, "%s", got_message);
		}
	}
	return diffs;
}

uint64_t cache_diff_counters(cache_diff *d, int max_report, int want_overflow, int want_nan,
			     uint64_t exp_overflow, uint64_t got_overflow, uint64_t exp_nan,
			     uint64_t got_nan)
{
	uint64_t diffs = 0;
	cache_diff_entry *e;
	const struct {
		int want;
		cache_diff_what what;
		uint64_t a, b;
	} counters[2] = {
		{want_overflow, CACHE_DIFF_OVERFLOW_COUNT, exp_overflow, got_overflow},
		{want_nan, CACHE_DIFF_NAN_COUNT, exp_nan, got_nan},
	};
	for (int i = 0; i < 2; i++) {
		if (!counters[i].want)
			continue;
		d->bytes_compared += 8;
		if (counters[i].a == counters[i].b)
			continue;
		diffs++;
		count_bytes(d, counters[i].a, counters[i].b, 8);
		if ((e = cache_diff_new_entry(d, max_report, counters[i].what))) {
			e->expected = counters[i].a;
			e->got = counters[i].b;
		}
	}
	return diffs;
}

uint64_t cache_diff_amax(cache_diff *d, int max_report, int64_t num_heads, const float *exp_k,
			 const float *exp_v, const float *got_k, const float *got_v)
{
	uint64_t diffs = 0;
	cache_diff_entry *e;
	for (int kv = 0; kv < 2 && exp_k && got_k; kv++) {
		const float *a = kv ? exp_v : exp_k, *b = kv ? got_v : got_k;
		for (int64_t h = 0; h < num_heads; h++) {
			d->bytes_compared += 4;
			const uint32_t x = bits_of_float(a[h]), y = bits_of_float(b[h]);
			if (x == y)
				continue;
			diffs++;
			count_bytes(d, x, y, 4);
			if ((e = cache_diff_new_entry(d, max_report,
						      kv ? CACHE_DIFF_V_AMAX : CACHE_DIFF_K_AMAX))) {
				e->index = e->head = h;
				e->expected = x;
				e->got = y;
			}
		}
	}
	return diffs;
}

uint64_t cache_case_compare(const cache_case *c, const cache_result *exp, const cache_result *got,
			    cache_diff *d, int max_report)
{
	uint64_t diffs = 0;
	d->cases++;

	diffs += cache_diff_outcome(d, max_report, exp->setup_error, got->setup_error, exp->status,
				    got->status, got->stage, got->message, c->first_out_of_range);

	const size_t csz = fp8kv_dtype_size(c->cache_dtype);
	diffs += compare_image(c, CACHE_DIFF_KEY, 0, 0, exp->kc, got->kc, c->kc_elems, csz, d,
			       max_report);
	diffs += compare_image(c, CACHE_DIFF_VALUE, 1, 0, exp->vc, got->vc, c->vc_elems, csz, d,
			       max_report);
	if (c->sc_elems) {
		diffs += compare_image(c, CACHE_DIFF_KEY_SCALE, 0, 1, (const uint8_t *)exp->ksc,
				       (const uint8_t *)got->ksc, c->sc_elems, 4, d, max_report);
		diffs += compare_image(c, CACHE_DIFF_VALUE_SCALE, 1, 1, (const uint8_t *)exp->vsc,
				       (const uint8_t *)got->vsc, c->sc_elems, 4, d, max_report);
	}
	diffs += cache_diff_counters(d, max_report, c->want_overflow_count, c->want_nan_count,
				     exp->overflow_count, got->overflow_count, exp->nan_count,
				     got->nan_count);
	if (c->want_amax)
		diffs += cache_diff_amax(d, max_report, c->num_heads, exp->k_amax, exp->v_amax,
					 got->k_amax, got->v_amax);
	d->differences += diffs;
	return diffs;
}
