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

static cache_diff_entry *new_entry(cache_diff *d, int max_report, cache_diff_what what)
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

/* "token N" in msg, N not followed by another digit. */
static int names_token(const char *msg, int64_t token)
{
	char want[40];
	const int n = snprintf(want, sizeof want, "token %lld", (long long)token);
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

uint64_t write_case_compare(const write_case *c, const write_result *exp, const write_result *got,
			    cache_diff *d, int max_report)
{
	uint64_t diffs = 0;
	cache_diff_entry *e;
	d->cases++;
	const write_result *rs[2] = {exp, got};
	for (int i = 0; i < 2; i++)
		if (rs[i]->setup_error[0]) {
			diffs++;
			if ((e = new_entry(d, max_report, CACHE_DIFF_SETUP)))
				snprintf(e->note, sizeof e->note, "%s: %s", i ? "got" : "expected",
					 rs[i]->setup_error);
		}
	if (exp->status != got->status) {
		diffs++;
		if ((e = new_entry(d, max_report, CACHE_DIFF_STATUS))) {
			e->expected = (uint64_t)exp->status;
			e->got = (uint64_t)got->status;
			snprintf(e->note, sizeof e->note, "%s%s%s", got->stage,
				 got->stage[0] ? ": " : "", got->message);
		}
	} else if (got->status == FP8KV_ERANGE && c->slots.first_out_of_range >= 0 &&
		   !names_token(got->message, c->slots.first_out_of_range)) {
		diffs++;
		if ((e = new_entry(d, max_report, CACHE_DIFF_MESSAGE))) {
			e->token = c->slots.first_out_of_range;
			snprintf(e->note, sizeof e->note, "%s", got->message);
		}
	}

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
			if (!(e = new_entry(d, max_report, what)))
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
	const struct {
		int want;
		cache_diff_what what;
		uint64_t a, b;
	} counters[2] = {
		{c->want_overflow_count, CACHE_DIFF_OVERFLOW_COUNT, exp->overflow_count,
		 got->overflow_count},
		{c->want_nan_count, CACHE_DIFF_NAN_COUNT, exp->nan_count, got->nan_count},
	};
	for (int i = 0; i < 2; i++) {
		if (!counters[i].want)
			continue;
		d->bytes_compared += 8;
		if (counters[i].a == counters[i].b)
			continue;
		diffs++;
		count_bytes(d, counters[i].a, counters[i].b, 8);
		if ((e = new_entry(d, max_report, counters[i].what))) {
			e->expected = counters[i].a;
			e->got = counters[i].b;
		}
	}
	for (int kv = 0; kv < 2 && exp->k_amax && got->k_amax; kv++) {
		const float *a = kv ? exp->v_amax : exp->k_amax, *b = kv ? got->v_amax : got->k_amax;
		for (int64_t h = 0; h < c->num_heads; h++) {
			d->bytes_compared += 4;
			const uint32_t x = bits_of_float(a[h]), y = bits_of_float(b[h]);
			if (x == y)
				continue;
			diffs++;
			count_bytes(d, x, y, 4);
			if ((e = new_entry(d, max_report, kv ? CACHE_DIFF_V_AMAX : CACHE_DIFF_K_AMAX))) {
				e->index = e->head = h;
				e->expected = x;
				e->got = y;
			}
		}
	}
	d->differences += diffs;
	return diffs;
}

/* ---------------------------------------------------------------- report */

static const char *status_name(uint64_t s)
{
	static const char *names[] = {"FP8KV_OK", "FP8KV_EINVAL", "FP8KV_ENOTSUP", "FP8KV_ERANGE",
				      "FP8KV_ENODEV", "FP8KV_EBACKEND", "FP8KV_ENOMEM"};
	return s < sizeof names / sizeof names[0] ? names[s] : "?";
}

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
	switch (e->what) {
	case CACHE_DIFF_SETUP: snprintf(buf, n, "setup failed: %s", e->note); return;
	case CACHE_DIFF_STATUS:
		snprintf(buf, n, "status: expected %s, got %s (%s)", status_name(e->expected),
			 status_name(e->got), e->note);
		return;
	case CACHE_DIFF_MESSAGE:
		snprintf(buf, n, "ERANGE message does not name \"token %lld\": \"%s\"",
			 (long long)e->token, e->note);
		return;
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
