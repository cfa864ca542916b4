/* SPDX-License-Identifier: MIT */
/*
 * write_fixtures.h - what test_group_write and test_mla_write share: a
 * grouped or MLA case (validate/write_case.h) run on the CPU backend and
 * held to the oracle, every arena byte, counter and amax compared, and
 * the hooks of the dedicated tests that set a row's inputs by hand.
 */
#ifndef FP8KV_TESTS_WRITE_FIXTURES_H
#define FP8KV_TESTS_WRITE_FIXTURES_H

#include <stdint.h>

#include "fp8kv.h"
#include "write_case.h"

/* prepare, run on the CPU backend, compare with the oracle: the test fails
 * with the report on any difference.  got (may be NULL) keeps the
 * backend's result for literal checks (the caller frees it). */
void check_write(write_case *c, write_result *got);

/* The same in two steps, for tests that edit inputs in between:
 * generate_write, then set_input_row..., then finish_write. */
void generate_write(write_case *c);
void finish_write(write_case *c, write_result *got);

/* The first token written to a slot no later token writes (the case's
 * tokens are not all padding). */
int64_t first_written_token(const write_case *c);

/* Row (t, h) of side kv gets the bits of n = its length elements. */
void set_input_row(write_case *c, int kv, int64_t t, int64_t h, const uint32_t *bits);

/* The backend's stored scale of group j of row (t, h, kv), little-endian
 * (fp32 bits, or a byte), and the row's codes (cache bytes), from got. */
uint32_t stored_scale_of(const write_case *c, const write_result *got, int kv, int64_t t,
			 int64_t h, int64_t j);
const uint8_t *codes_of(const write_case *c, const write_result *got, int kv, int64_t t,
			int64_t h);

#endif /* FP8KV_TESTS_WRITE_FIXTURES_H */
