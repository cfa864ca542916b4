/* SPDX-License-Identifier: MIT */
/* guarded.c - buffers that end at a PROT_NONE page (guarded.h). */
#define _DEFAULT_SOURCE
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guarded.h"

#define MAX_GUARDED 1024

static struct {
	uint8_t *map;   /* the mapping: data pages, then the guard page */
	size_t data;    /* bytes of data pages */
	size_t total;
	uint8_t *user;  /* what the caller got */
} bufs[MAX_GUARDED];
static int nbufs;

static size_t page(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static int find(const void *p)
{
	for (int i = 0; i < nbufs; i++)
		if (bufs[i].user == p)
			return i;
	ck_abort_msg("guarded: %p is not a guarded buffer", p);
	return -1;
}

void *guarded_alloc(size_t bytes)
{
	ck_assert_msg(nbufs < MAX_GUARDED && bytes % 8 == 0, "guarded_alloc(%zu)", bytes);
	const size_t pg = page();
	const size_t data = ((bytes + pg - 1) / pg + (bytes == 0)) * pg;
	uint8_t *m = mmap(NULL, data + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	ck_assert_msg(m != MAP_FAILED, "mmap of %zu bytes", data + pg);
	ck_assert_int_eq(mprotect(m + data, pg, PROT_NONE), 0);
	memset(m, GUARD_POISON, data);
	bufs[nbufs].map = m, bufs[nbufs].data = data, bufs[nbufs].total = data + pg;
	bufs[nbufs].user = m + data - bytes;
	return bufs[nbufs++].user;
}

void *guarded_reserve(size_t bytes)
{
	ck_assert(nbufs < MAX_GUARDED);
	uint8_t *m = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			  -1, 0);
	ck_assert_msg(m != MAP_FAILED, "reserving %zu bytes", bytes);
	bufs[nbufs].map = m, bufs[nbufs].data = 0, bufs[nbufs].total = bytes;
	bufs[nbufs].user = m;
	return bufs[nbufs++].user;
}

void guarded_protect(void *p, int read_only)
{
	const int i = find(p);
	ck_assert_int_eq(mprotect(bufs[i].map, bufs[i].data,
				  read_only ? PROT_READ : PROT_READ | PROT_WRITE), 0);
}

int guarded_untouched(const void *p)
{
	const int i = find(p);
	for (size_t k = 0; k < bufs[i].data; k++)
		if (bufs[i].map[k] != GUARD_POISON)
			return 0;
	return 1;
}

void guarded_repoison(void *p)
{
	const int i = find(p);
	memset(bufs[i].map, GUARD_POISON, bufs[i].data);
}

void guarded_free_all(void)
{
	for (int i = 0; i < nbufs; i++)
		munmap(bufs[i].map, bufs[i].total);
	nbufs = 0;
}
