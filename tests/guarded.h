/* SPDX-License-Identifier: MIT */
/*
 * guarded.h - buffers for hostile-input tests (test_group_hostile.c,
 * test_mla_hostile.c): each ends exactly at a PROT_NONE page, so that a
 * write one byte past it kills the test, and lies in pages poisoned from
 * their start, so that a write before it shows in a byte-for-byte compare.
 * Inputs can be made read-only (a write into them kills the test too).
 */
#ifndef FP8KV_TESTS_GUARDED_H
#define FP8KV_TESTS_GUARDED_H

#include <stddef.h>
#include <stdint.h>

#define GUARD_POISON 0xA5

/* bytes of memory (a multiple of 8) ending at a PROT_NONE page, the pages
 * before it filled with GUARD_POISON.  Never fails (the test aborts). */
void *guarded_alloc(size_t bytes);
/* Pages only reserved (PROT_NONE): any access kills the test. */
void *guarded_reserve(size_t bytes);
/* Makes buffer p (from guarded_alloc) read-only, or writable again. */
void guarded_protect(void *p, int read_only);
/* Nonzero when every byte of p's pages (from guarded_alloc) is the
 * poison: nothing was written there. */
int guarded_untouched(const void *p);
/* Refills p's pages with the poison. */
void guarded_repoison(void *p);
/* Unmaps every buffer. */
void guarded_free_all(void);

#endif /* FP8KV_TESTS_GUARDED_H */
