/* SPDX-License-Identifier: MIT */
/*
 * write_fixtures.c - see write_fixtures.h.
 */
#include <check.h>
#include <string.h>

#include "cache_case.h"
#include "check_support.h"
#include "write_case_internal.h"
#include "write_fixtures.h"

void generate_write(write_case *c)
{
	ck_assert_msg(write_case_generate(c) == 0, "generate: %s", write_case_error());
}

void finish_write(write_case *c, write_result *got)
{
	write_result exp, mine;
	cache_diff d;
	char report[8000];
	ck_assert_msg(write_case_expect(c, &exp) == 0, "expect: %s", write_case_error());
	write_case_fix_poison(c, &exp);
	ck_assert_msg(write_case_run(cpu, c, &mine) == 0, "run: %s", write_case_error());
	cache_diff_init(&d);
	if (write_case_compare(c, &exp, &mine, &d, 8) != 0) {
		write_diff_report(c, &d, 8, report, sizeof report);
		ck_abort_msg("CPU differs from the oracle: %s", report);
	}
	ck_assert_uint_ge(d.bytes_compared, c->arena_bytes);
	write_result_free(&exp);
	if (got)
		*got = mine;
	else
		write_result_free(&mine);
}

void check_write(write_case *c, write_result *got)
{
	generate_write(c);
	finish_write(c, got);
}

int64_t first_written_token(const write_case *c)
{
	for (int64_t t = 0; t < c->num_tokens; t++) {
		const int64_t s = c->slots.dest[t];
		int later = 0;
		for (int64_t u = t + 1; u < c->num_tokens && s >= 0; u++)
			later |= c->slots.dest[u] == s;
		if (s >= 0 && !later)
			return t;
	}
	ck_abort_msg("no token is written");
	return -1;
}

void set_input_row(write_case *c, int kv, int64_t t, int64_t h, const uint32_t *bits)
{
	const int64_t D = kv ? c->head_dim_v : c->head_dim_k;
	void *buf = kv ? c->value : c->key;
	const int64_t base = t * (kv ? c->value_stride_token : c->key_stride_token) +
			     h * (kv ? c->value_stride_head : c->key_stride_head);
	for (int64_t d = 0; d < D; d++)
		cache_case_set_bits(buf, c->input_dtype, (size_t)(base + d), bits[d]);
}

uint32_t stored_scale_of(const write_case *c, const write_result *got, int kv, int64_t t,
			 int64_t h, int64_t j)
{
	const int bytes = c->kind == WRITE_CASE_MLA_DS ? 4 : c->scale_bytes;
	const size_t at = write_scale_byte(c, kv, c->slots.dest[t], h, j);
	uint32_t v = 0;
	memcpy(&v, got->arena + at, (size_t)bytes); /* little-endian host */
	return v;
}

const uint8_t *codes_of(const write_case *c, const write_result *got, int kv, int64_t t,
			int64_t h)
{
	return got->arena + write_cache_byte(c, kv, c->slots.dest[t], h);
}
