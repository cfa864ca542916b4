/* SPDX-License-Identifier: MIT */
/*
 * write_case_internal.h - what the files of the write case engine share;
 * the public face is write_case.h.
 *
 *   write_case.c          parameters, description, layout, generation
 *   write_case_values.c   the inputs: adversarial patterns per group/tile
 *   write_case_expect.c   the expected arena, from the oracle
 *   write_case_run.c      one call on a backend
 *   write_case_compare.c  two results, byte for byte, and the report
 */
#ifndef FP8KV_WRITE_CASE_INTERNAL_H
#define FP8KV_WRITE_CASE_INTERNAL_H

#include <stdint.h>

#include "oracle_group.h"
#include "write_case.h"

/* Records the reason for write_case_error() and returns -1. */
int write_fail(const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 1, 2)))
#endif
	;

/* Cache elements of one row of side kv (e2m1: bytes of two values). */
int64_t write_row_width(const write_case *c, int kv);

/* Fills c->key and c->value (garbage in the gaps, then every row). */
int write_case_values(write_case *c);

/* The input bits of row (t, h) of side kv (MLA: 0 kv_c, 1 k_pe). */
void write_load_row(const write_case *c, int kv, int64_t t, int64_t h, uint32_t *row);

/* The oracle's parameters of side kv's groups (grouped cases; MLA DS:
 * its tiles, on side 0). */
oracle_group_params write_group_params(const write_case *c, int kv);

/* Elements per group of side kv for the patterns (grouped: G; DS: 128 on
 * side 0; else 16, or the row when shorter). */
int64_t write_pattern_group(const write_case *c, int kv);

/* Byte offset in the arena of element (block, offset, h, 0) of side kv's
 * cache (MLA: of the entry). */
size_t write_cache_byte(const write_case *c, int kv, int64_t slot, int64_t h);

/* Byte offset in the arena of the scale of group j of row (slot, h). */
size_t write_scale_byte(const write_case *c, int kv, int64_t slot, int64_t h, int64_t j);

#endif /* FP8KV_WRITE_CASE_INTERNAL_H */
