/* SPDX-License-Identifier: MIT */
/*
 * test_backends_io.c - one call on the CPU and on another backend over the
 * same buffers, every byte of every output compared (test_backends.h,
 * tb_compare_run).  The groups of grouped and MLA writes describe their
 * calls as a set of buffers and a function; this file owns the poison:
 *
 *   1. the CPU runs the call twice, on poison P and on P ^ 0xFF: a byte
 *      with one value after both runs was written, any other was not (the
 *      two poisons differ in every byte, and a write never reads a cache);
 *   2. the backend runs on a poison that differs from the CPU's value in
 *      every written byte and is P elsewhere, so that a byte the backend
 *      fails to write, or writes where the CPU does not, never passes by
 *      luck;
 *   3. every byte of every output must be the CPU's value where it wrote,
 *      the poison elsewhere; accumulators (counters, amax) start from the
 *      same values and must end equal; the statuses of the call and of the
 *      synchronize after it, and an error's message, must be the CPU's.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp8kv.h"
#include "test_backends.h"

/* What one run left behind. */
typedef struct tb_run {
	fp8kv_status call, sync;
	char message[320];
	uint8_t *out[TB_MAX_BUFS]; /* outputs and accumulators, downloaded */
} tb_run;

static void run_free(tb_run *r, int n)
{
	for (int i = 0; i < n; i++)
		free(r->out[i]);
	memset(r, 0, sizeof *r);
}

/* Runs call on backend b over s, the outputs starting from poison[i]
 * (NULL: the buffer's host bytes); 0, or -1 when a buffer operation
 * failed (message in r->message). */
static int run_on(fp8kv_backend *b, const tb_set *s, uint8_t *const *poison, tb_call_fn call,
		  const void *ctx, tb_run *r)
{
	void *dev[TB_MAX_BUFS] = {0};
	int rc = -1;
	memset(r, 0, sizeof *r);
	for (int i = 0; i < s->n; i++) {
		const tb_buf *bf = &s->b[i];
		const uint8_t *start = bf->kind == TB_OUTPUT && poison ? poison[i] : bf->host;
		if (fp8kv_buffer_alloc(b, bf->bytes ? bf->bytes : 1, &dev[i]) != FP8KV_OK ||
		    (bf->bytes && fp8kv_buffer_upload(b, dev[i], start, bf->bytes) != FP8KV_OK)) {
			snprintf(r->message, sizeof r->message, "buffer %s: %s", bf->name,
				 fp8kv_last_error());
			goto out;
		}
	}
	r->call = call(b, dev, ctx);
	if (r->call != FP8KV_OK)
		snprintf(r->message, sizeof r->message, "%s", fp8kv_last_error());
	r->sync = fp8kv_backend_synchronize(b, NULL);
	if (r->sync != FP8KV_OK && r->call == FP8KV_OK)
		snprintf(r->message, sizeof r->message, "%s", fp8kv_last_error());
	for (int i = 0; i < s->n; i++) {
		const tb_buf *bf = &s->b[i];
		if (bf->kind == TB_INPUT)
			continue;
		r->out[i] = malloc(bf->bytes ? bf->bytes : 1);
		if (!r->out[i] ||
		    (bf->bytes && fp8kv_buffer_download(b, r->out[i], dev[i], bf->bytes) != FP8KV_OK)) {
			snprintf(r->message, sizeof r->message, "download %s: %s", bf->name,
				 fp8kv_last_error());
			goto out;
		}
	}
	rc = 0;
out:
	for (int i = 0; i < s->n; i++)
		if (dev[i])
			fp8kv_buffer_free(b, dev[i]);
	return rc;
}

/* The first status that is not FP8KV_OK. */
static fp8kv_status first_status(const tb_run *r)
{
	return r->call != FP8KV_OK ? r->call : r->sync;
}

uint64_t tb_compare_run(int bi, const tb_set *s, tb_call_fn call, const void *ctx,
			uint64_t seed, tb_result *res)
{
	return tb_compare_on(backends[bi], backend_names[bi], s, call, ctx, seed, res);
}

uint64_t tb_compare_on(fp8kv_backend *backend, const char *name, const tb_set *s,
		       tb_call_fn call, const void *ctx, uint64_t seed, tb_result *res)
{
	tb_run a, b2, got;
	uint8_t *poison[TB_MAX_BUFS] = {0}, *flipped[TB_MAX_BUFS] = {0}, *mine[TB_MAX_BUFS] = {0};
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x5851F42D4C957F2Dull, differing = 0;
	int noted = 0;
	char *rep = res->report;
	const size_t cap = sizeof res->report;
	size_t used = strlen(rep);
#define NOTE(...)                                                                         \
	do {                                                                              \
		if (noted++ < 6 && used < cap)                                            \
			used += (size_t)snprintf(rep + used, cap - used, __VA_ARGS__);    \
	} while (0)

	ck_assert_int_le(s->n, TB_MAX_BUFS);
	for (int i = 0; i < s->n; i++) {
		const tb_buf *bf = &s->b[i];
		if (bf->kind != TB_OUTPUT)
			continue;
		poison[i] = malloc(bf->bytes + 1);
		flipped[i] = malloc(bf->bytes + 1);
		mine[i] = malloc(bf->bytes + 1);
		ck_assert(poison[i] && flipped[i] && mine[i]);
		for (size_t k = 0; k < bf->bytes; k++) {
			poison[i][k] = (uint8_t)(next_random(&x) >> 56);
			flipped[i][k] = poison[i][k] ^ 0xFF;
		}
	}
	ck_assert_msg(run_on(ref, s, poison, call, ctx, &a) == 0, "cpu: %s", a.message);
	ck_assert_msg(run_on(ref, s, flipped, call, ctx, &b2) == 0, "cpu: %s", b2.message);
	/* a call the CPU refuses would compare nothing: a mistake of the group */
	ck_assert_msg(first_status(&a) == FP8KV_OK || first_status(&a) == FP8KV_ERANGE,
		      "cpu: status %d: %s (%s)", (int)first_status(&a), a.message, rep);
	/* the backend's poison: off the CPU's value where it wrote */
	for (int i = 0; i < s->n; i++) {
		if (s->b[i].kind != TB_OUTPUT)
			continue;
		for (size_t k = 0; k < s->b[i].bytes; k++)
			mine[i][k] = a.out[i][k] == b2.out[i][k]
					     ? (uint8_t)(a.out[i][k] ^ (1u + (next_random(&x) >> 57)))
					     : poison[i][k];
	}
	ck_assert_msg(run_on(backend, s, mine, call, ctx, &got) == 0, "%s: %s", name,
		      got.message);

	res->cases++;
	if (first_status(&got) != first_status(&a) ||
	    (first_status(&a) != FP8KV_OK && strcmp(got.message, a.message))) {
		differing++;
		NOTE("  status: cpu %d (%s), %s %d (%s)\n", (int)first_status(&a), a.message, name,
		     (int)first_status(&got), got.message);
	}
	for (int i = 0; i < s->n; i++) {
		const tb_buf *bf = &s->b[i];
		if (bf->kind == TB_INPUT)
			continue;
		res->bytes += bf->bytes;
		if (bf->kind == TB_ACCUM) {
			/* the CPU's own two runs agree: they start from one value */
			ck_assert_msg(!memcmp(a.out[i], b2.out[i], bf->bytes),
				      "%s: the cpu's two runs differ", bf->name);
			for (size_t k = 0; k < bf->bytes; k++)
				if (got.out[i][k] != a.out[i][k]) {
					differing++;
					NOTE("  %s byte %zu: cpu 0x%02x, got 0x%02x\n", bf->name, k,
					     a.out[i][k], got.out[i][k]);
				}
			continue;
		}
		for (size_t k = 0; k < bf->bytes; k++) {
			const int written = a.out[i][k] == b2.out[i][k];
			const uint8_t want = written ? a.out[i][k] : mine[i][k];
			if (got.out[i][k] != want) {
				differing++;
				NOTE("  %s byte %zu (%s): want 0x%02x, got 0x%02x\n", bf->name, k,
				     written ? "written" : "untouched", want, got.out[i][k]);
			}
		}
	}
	res->differing += differing;
	run_free(&a, s->n);
	run_free(&b2, s->n);
	run_free(&got, s->n);
	for (int i = 0; i < s->n; i++) {
		free(poison[i]);
		free(flipped[i]);
		free(mine[i]);
	}
	return differing;
#undef NOTE
}

int tb_add(tb_set *s, const char *name, tb_kind kind, size_t bytes)
{
	ck_assert_int_lt(s->n, TB_MAX_BUFS);
	tb_buf *bf = &s->b[s->n];
	bf->name = name;
	bf->kind = kind;
	bf->bytes = bytes;
	bf->host = calloc(bytes + 1, 1);
	ck_assert_ptr_nonnull(bf->host);
	return s->n++;
}

void tb_set_free(tb_set *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->b[i].host);
	s->n = 0;
}
