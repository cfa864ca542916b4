/* SPDX-License-Identifier: MIT */
/*
 * cache_case_report.c - the differences of a comparison as text: one line
 * each, saying where the element is, which input was written there and
 * what the oracle makes of it.
 */
#include <stdio.h>
#include <string.h>

#include "cache_case_internal.h"
#include "float_bits.h"

static const char *status_name(uint64_t s)
{
	static const char *names[] = {"FP8KV_OK", "FP8KV_EINVAL", "FP8KV_ENOTSUP", "FP8KV_ERANGE",
				      "FP8KV_ENODEV", "FP8KV_EBACKEND", "FP8KV_ENOMEM"};
	return s < sizeof names / sizeof names[0] ? names[s] : "?";
}

int cache_diff_format_outcome(const cache_diff_entry *e, char *buf, size_t n)
{
	switch (e->what) {
	case CACHE_DIFF_SETUP:
		snprintf(buf, n, "setup failed: %s", e->note);
		return 1;
	case CACHE_DIFF_STATUS:
		snprintf(buf, n, "status: expected %s, got %s (%s)", status_name(e->expected),
			 status_name(e->got), e->note);
		return 1;
	case CACHE_DIFF_MESSAGE:
		snprintf(buf, n, "ERANGE message does not name \"token %lld\": \"%s\"",
			 (long long)e->token, e->note);
		return 1;
	default:
		return 0;
	}
}

void cache_diff_format(const cache_case *c, const cache_diff_entry *e, char *buf, size_t n)
{
	const int hexw = (int)(2 * fp8kv_dtype_size(c->cache_dtype));
	char where[160], input[160] = "";
	if (cache_diff_format_outcome(e, buf, n))
		return;
	switch (e->what) {
	case CACHE_DIFF_OVERFLOW_COUNT:
	case CACHE_DIFF_NAN_COUNT:
		snprintf(buf, n, "%s: expected %llu, got %llu (initial %llu)",
			 e->what == CACHE_DIFF_NAN_COUNT ? "nan_count" : "overflow_count",
			 (unsigned long long)e->expected, (unsigned long long)e->got,
			 (unsigned long long)(e->what == CACHE_DIFF_NAN_COUNT ? c->nan_init
									       : c->overflow_init));
		return;
	case CACHE_DIFF_K_AMAX:
	case CACHE_DIFF_V_AMAX:
		snprintf(buf, n, "%s[%lld]: expected %.9g (0x%08llx), got %.9g (0x%08llx)",
			 e->what == CACHE_DIFF_K_AMAX ? "k_amax" : "v_amax", (long long)e->head,
			 (double)float_of_bits((uint32_t)e->expected), (unsigned long long)e->expected,
			 (double)float_of_bits((uint32_t)e->got), (unsigned long long)e->got);
		return;
	default:
		break;
	}
	const int scale = e->what == CACHE_DIFF_KEY_SCALE || e->what == CACHE_DIFF_VALUE_SCALE;
	const char *what = e->what == CACHE_DIFF_KEY ? "key cache"
			 : e->what == CACHE_DIFF_VALUE ? "value cache"
			 : e->what == CACHE_DIFF_KEY_SCALE ? "key scale cache" : "value scale cache";
	if (e->token < 0)
		snprintf(where, sizeof where, "%s element %lld (written by no token: poison)", what,
			 (long long)e->index);
	else if (scale)
		snprintf(where, sizeof where, "%s element %lld (token %lld, head %lld, slot %lld)", what,
			 (long long)e->index, (long long)e->token, (long long)e->head, (long long)e->slot);
	else
		snprintf(where, sizeof where, "%s element %lld (token %lld, head %lld, d %lld, slot %lld)",
			 what, (long long)e->index, (long long)e->token, (long long)e->head,
			 (long long)e->element, (long long)e->slot);
	if (e->has_input)
		snprintf(input, sizeof input, ": input %s 0x%0*x (%.9g)%s", case_dtype_name(c->input_dtype),
			 (int)(2 * fp8kv_dtype_size(c->input_dtype)), (unsigned)e->input_bits,
			 (double)e->input, "");
	if (e->scaled && !scale) {
		size_t l = strlen(input);
		snprintf(input + l, sizeof input - l, " / scale %.9g (0x%08x)", (double)e->scale,
			 (unsigned)bits_of_float(e->scale));
	}
	if (scale && e->has_oracle)
		snprintf(buf, n, "%s: expected %.9g (0x%08llx), got %.9g (0x%08llx), oracle scale %.9g",
			 where, (double)float_of_bits((uint32_t)e->expected), (unsigned long long)e->expected,
			 (double)float_of_bits((uint32_t)e->got), (unsigned long long)e->got,
			 (double)float_of_bits(e->oracle));
	else if (scale)
		snprintf(buf, n, "%s: expected %.9g (0x%08llx), got %.9g (0x%08llx)", where,
			 (double)float_of_bits((uint32_t)e->expected), (unsigned long long)e->expected,
			 (double)float_of_bits((uint32_t)e->got), (unsigned long long)e->got);
	else if (e->has_oracle)
		snprintf(buf, n, "%s%s: expected 0x%0*llx, got 0x%0*llx, oracle 0x%0*x", where, input,
			 hexw, (unsigned long long)e->expected, hexw, (unsigned long long)e->got, hexw,
			 (unsigned)e->oracle);
	else
		snprintf(buf, n, "%s%s: expected 0x%0*llx, got 0x%0*llx", where, input, hexw,
			 (unsigned long long)e->expected, hexw, (unsigned long long)e->got);
}

void cache_diff_report(const cache_case *c, const cache_diff *d, int max_lines, char *buf, size_t n)
{
	size_t l;
	char line[512];
	if (!n)
		return;
	cache_case_describe(c, buf, n);
	l = strlen(buf);
	snprintf(buf + l, n - l, "\n  %llu differences, %llu of %llu bytes differ",
		 (unsigned long long)d->differences, (unsigned long long)d->bytes_differing,
		 (unsigned long long)d->bytes_compared);
	for (int i = 0; i < d->reported && i < max_lines; i++) {
		cache_diff_format(c, &d->e[i], line, sizeof line);
		l = strlen(buf);
		snprintf(buf + l, n - l, "\n  %s", line);
	}
}
