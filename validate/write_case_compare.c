/* SPDX-License-Identifier: MIT */
/*
 * write_case_compare.c - two results of a grouped or MLA case, byte for
 * byte: every byte of the arena (outputs, gaps and the poison around
 * them), the counters and amax asked for, the status and the ERANGE
 * message; and the differences as text, each byte traced to the token,
 * side, head and element or group that wrote it, with the inputs, the
 * oracle's scale and codes of its group.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_case_internal.h"
#include "float_bits.h"
#include "oracle.h"
#include "write_case_internal.h"

uint64_t write_case_compare(const write_case *c, const write_result *exp, const write_result *got,
			    cache_diff *d, int max_report)
{
	uint64_t diffs = 0;
	cache_diff_entry *e;
	d->cases++;
	diffs += cache_diff_outcome(d, max_report, exp->setup_error, got->setup_error, exp->status,
				    got->status, got->stage, got->message,
				    c->slots.first_out_of_range);

	if (exp->arena && got->arena) {
		d->bytes_compared += c->arena_bytes;
		const int same = memcmp(exp->arena, got->arena, c->arena_bytes) == 0;
		for (size_t i = 0; i < c->arena_bytes && !same; i++) {
			if (exp->arena[i] == got->arena[i])
				continue;
			d->bytes_differing++;
			diffs++;
			const int32_t r = c->owner_row ? c->owner_row[i] : -1;
			const int kv = r >= 0 ? c->rows[r].kv : 0;
			const int scale = r >= 0 && c->owner_scale[i];
			const cache_diff_what what = scale ? (kv ? CACHE_DIFF_VALUE_SCALE : CACHE_DIFF_KEY_SCALE)
							   : (kv ? CACHE_DIFF_VALUE : CACHE_DIFF_KEY);
			if (!(e = cache_diff_new_entry(d, max_report, what)))
				continue;
			e->index = (int64_t)i;
			e->expected = exp->arena[i];
			e->got = got->arena[i];
			if (r >= 0) {
				e->token = c->rows[r].token;
				e->head = c->rows[r].head;
				e->slot = c->rows[r].slot;
				e->element = c->owner_pos[i];
			}
		}
	}
	diffs += cache_diff_counters(d, max_report, c->want_overflow_count, c->want_nan_count,
				     exp->overflow_count, got->overflow_count, exp->nan_count,
				     got->nan_count);
	diffs += cache_diff_amax(d, max_report, c->num_heads, exp->k_amax, exp->v_amax, got->k_amax,
				 got->v_amax);
	d->differences += diffs;
	return diffs;
}

/* ---------------------------------------------------------------- report */

/* What the oracle says of the group holding element pos of row (t, h, kv):
 * its inputs around pos, its scale, the code. */
static void explain(const write_case *c, const cache_diff_entry *e, int kv, int scale, char *buf,
		    size_t n)
{
	const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
	uint32_t *row = calloc((size_t)D, sizeof *row);
	uint8_t *codes = calloc((size_t)D + 16, 1), *scales = calloc((size_t)(4 * D) + 16, 1);
	buf[0] = 0;
	if (!row || !codes || !scales) {
		free(row), free(codes), free(scales);
		return;
	}
	write_load_row(c, kv, e->token, e->head, row);
	const int isz = (int)fp8kv_dtype_size(c->input_dtype);
	const int grouped = c->kind == WRITE_CASE_GROUPED || (c->kind == WRITE_CASE_MLA_DS && kv == 0);
	if (grouped) {
		const int64_t G = c->kind == WRITE_CASE_GROUPED ? c->group_size : ORACLE_DS_MLA_TILE;
		const int64_t j = scale ? e->element : e->element / G;
		const oracle_group_params p = write_group_params(c, kv);
		oracle_group_scale sc;
		const float amax = oracle_group_amax(row + j * G, G, c->input_dtype);
		if (oracle_group_scale_of(&p, amax, &sc) == 0)
			snprintf(buf, n, "; group %lld (elements %lld-%lld): amax %.9g, oracle s %.9g "
					 "(0x%08x)%s",
				 (long long)j, (long long)(j * G), (long long)(j * G + G - 1),
				 (double)amax, (double)sc.s, (unsigned)bits_of_float(sc.s),
				 sc.zero ? ", a zero group" : "");
	} else if (c->kind == WRITE_CASE_MLA_PLAIN && c->scaled) {
		snprintf(buf, n, "; scale %.9g", (double)c->scale);
	}
	if (!scale && e->element >= 0 && e->element < D) {
		const size_t l = strlen(buf);
		const int64_t el = e->element;
		const int pair = c->cache_dtype == FP8KV_E2M1 && grouped;
		snprintf(buf + l, n - l, "; input%s 0x%0*x (%.9g)", pair ? "s" : "", 2 * isz,
			 (unsigned)row[el], (double)oracle_widen(row[el], c->input_dtype));
		if (pair && el + 1 < D) {
			const size_t m = strlen(buf);
			snprintf(buf + m, n - m, ", 0x%0*x (%.9g) (low, high nibble)", 2 * isz,
				 (unsigned)row[el + 1],
				 (double)oracle_widen(row[el + 1], c->input_dtype));
		}
	}
	free(row), free(codes), free(scales);
}

static void format_entry(const write_case *c, const cache_diff_entry *e, char *buf, size_t n)
{
	char more[400];
	if (cache_diff_format_outcome(e, buf, n))
		return;
	switch (e->what) {
	case CACHE_DIFF_OVERFLOW_COUNT:
	case CACHE_DIFF_NAN_COUNT:
		snprintf(buf, n, "%s: expected %llu, got %llu",
			 e->what == CACHE_DIFF_NAN_COUNT ? "nan_count" : "overflow_count",
			 (unsigned long long)e->expected, (unsigned long long)e->got);
		return;
	case CACHE_DIFF_K_AMAX:
	case CACHE_DIFF_V_AMAX:
		snprintf(buf, n, "%s[%lld]: expected %.9g, got %.9g",
			 e->what == CACHE_DIFF_K_AMAX ? "k_amax" : "v_amax", (long long)e->head,
			 (double)float_of_bits((uint32_t)e->expected),
			 (double)float_of_bits((uint32_t)e->got));
		return;
	default: break;
	}
	if (e->token < 0) {
		snprintf(buf, n, "arena byte %lld (written by no token: poison or a gap): expected "
				 "0x%02llx, got 0x%02llx",
			 (long long)e->index, (unsigned long long)e->expected,
			 (unsigned long long)e->got);
		return;
	}
	const int kv = e->what == CACHE_DIFF_VALUE || e->what == CACHE_DIFF_VALUE_SCALE;
	const int scale = e->what == CACHE_DIFF_KEY_SCALE || e->what == CACHE_DIFF_VALUE_SCALE;
	const char *side = c->kind == WRITE_CASE_GROUPED ? (kv ? "value" : "key")
							  : (kv ? "k_pe" : "kv_c");
	explain(c, e, kv, scale, more, sizeof more);
	snprintf(buf, n, "arena byte %lld: %s %s of token %lld, head %lld, slot %lld, %s %lld: "
			 "expected 0x%02llx, got 0x%02llx%s",
		 (long long)e->index, side, scale ? "scale" : "code", (long long)e->token,
		 (long long)e->head, (long long)e->slot, scale ? "group" : "element",
		 (long long)e->element, (unsigned long long)e->expected, (unsigned long long)e->got,
		 more);
}

void write_diff_report(const write_case *c, const cache_diff *d, int max_lines, char *buf, size_t n)
{
	char line[900];
	if (!n)
		return;
	write_case_describe(c, buf, n);
	size_t l = strlen(buf);
	snprintf(buf + l, n - l, "\n  %llu differences, %llu of %llu bytes differ",
		 (unsigned long long)d->differences, (unsigned long long)d->bytes_differing,
		 (unsigned long long)d->bytes_compared);
	for (int i = 0; i < d->reported && i < max_lines; i++) {
		format_entry(c, &d->e[i], line, sizeof line);
		l = strlen(buf);
		snprintf(buf + l, n - l, "\n  %s", line);
	}
}
