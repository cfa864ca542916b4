/* SPDX-License-Identifier: MIT */
/*
 * oracle_group_driver.c - the C oracle of validate/oracle_group.h on a
 * pipe, for tests/python/test_oracle_cross.py, which holds it to the
 * Python contract model written apart (tests/python/contract_ref.py).
 *
 * One case per line on stdin, one answer per line on stdout; numbers in
 * hexadecimal (fp32 values as bits, inputs as their 16- or 32-bit
 * patterns), byte strings as hex pairs, "ERR" for what the oracle refuses:
 *
 *   e2m1 Y                                  -> CODE OVF
 *   int8 Y ROUNDING                         -> CODE OVF
 *   scale RULE FMT OVERFLOW ROUNDING DIV FLOOR G AMAX
 *                                           -> S ZERO STORED
 *   row RULE FMT DTYPE OVERFLOW ROUNDING DIV FLOOR G GSIZE N x...
 *                                           -> CODES SCALES OVFS NANS AMAX
 *   addr SBLOCK SSLOT SHEAD SGROUP I SI BLOCK OFFSET H J
 *                                           -> INDEX (decimal)
 *   plain DTYPE CACHE OVERFLOW SCALED S RANK PE x...   -> ENTRY OVFS NANS
 *   ds DTYPE FMT OVERFLOW DIV x[512] pe[64]            -> RECORD OVFS NANS
 *
 * RULE: f32, e8m0_floor, e8m0_rceil, nvfp4; FMT, DTYPE, CACHE: fp8kv's
 * dtype names; OVERFLOW: saturate, nonsaturating; ROUNDING: rne, trunc.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "float_bits.h"
#include "fp8kv.h"
#include "oracle_group.h"

#define MAX_ELEMS 4096

static char *next_tok(char **save)
{
	return strtok_r(NULL, " \t\r\n", save);
}

static int hex(char **save, unsigned long long *v)
{
	char *t = next_tok(save), *end;
	if (!t)
		return -1;
	*v = strtoull(t, &end, 16);
	return *end ? -1 : 0;
}

static int hex32(char **save, uint32_t *v)
{
	unsigned long long u;
	if (hex(save, &u) || u > 0xFFFFFFFFull)
		return -1;
	*v = (uint32_t)u;
	return 0;
}

static int f32(char **save, float *f)
{
	uint32_t b;
	if (hex32(save, &b))
		return -1;
	*f = float_of_bits(b);
	return 0;
}

static int pick(char **save, const char *const *names, int n)
{
	const char *t = next_tok(save);
	for (int i = 0; t && i < n; i++)
		if (names[i] && !strcmp(t, names[i]))
			return i;
	return -1;
}

static const char *const dtypes[] = {"f32", "f16", "bf16", "e4m3fn", "e4m3fnuz",
				     "e5m2", "e5m2fnuz", "e2m1", "int8"};
static const char *const rules[] = {"f32", "e8m0_floor", "e8m0_rceil", "nvfp4"};
static const char *const overflows[] = {"saturate", "nonsaturating"};
static const char *const roundings[] = {"rne", "trunc"};

static int dtype(char **save, fp8kv_dtype *d)
{
	const int i = pick(save, dtypes, 9);
	*d = (fp8kv_dtype)i;
	return i < 0 ? -1 : 0;
}

static void put_bytes(const uint8_t *b, int64_t n)
{
	if (!n)
		fputs("-", stdout);
	for (int64_t i = 0; i < n; i++)
		printf("%02x", b[i]);
}

static int params(char **save, oracle_group_params *p)
{
	const int r = pick(save, rules, 4);
	fp8kv_dtype f;
	if (r < 0 || dtype(save, &f))
		return -1;
	const int o = pick(save, overflows, 2), rd = pick(save, roundings, 2);
	if (o < 0 || rd < 0)
		return -1;
	p->rule = (fp8kv_group_rule)r;
	p->format = f;
	p->overflow = (fp8kv_overflow)o;
	p->rounding = (fp8kv_rounding)rd;
	return f32(save, &p->divisor) || f32(save, &p->scale_floor) || f32(save, &p->global) ? -1 : 0;
}

static int elems(char **save, uint32_t *x, int64_t n)
{
	if (n < 0 || n > MAX_ELEMS)
		return -1;
	for (int64_t i = 0; i < n; i++)
		if (hex32(save, &x[i]))
			return -1;
	return 0;
}

static uint32_t x[MAX_ELEMS], pe[MAX_ELEMS];
static uint8_t out[4 * MAX_ELEMS + 16], scales[4 * MAX_ELEMS];

static int one_case(char *line)
{
	char *save;
	const char *cmd = strtok_r(line, " \t\r\n", &save);
	oracle_counts c;
	uint32_t y;
	int o;
	if (!cmd)
		return -1;
	if (!strcmp(cmd, "e2m1")) {
		if (hex32(&save, &y))
			return -1;
		const uint8_t code = oracle_e2m1_encode(float_of_bits(y), &o);
		printf("%x %d\n", code, o);
	} else if (!strcmp(cmd, "int8")) {
		int r;
		if (hex32(&save, &y) || (r = pick(&save, roundings, 2)) < 0)
			return -1;
		const uint8_t code = oracle_int8_encode(float_of_bits(y), (fp8kv_rounding)r, &o);
		printf("%x %d\n", code, o);
	} else if (!strcmp(cmd, "scale")) {
		oracle_group_params p;
		oracle_group_scale s;
		float amax;
		if (params(&save, &p) || f32(&save, &amax) || oracle_group_scale_of(&p, amax, &s))
			return -1;
		printf("%x %d ", (unsigned)bits_of_float(s.s), s.zero);
		put_bytes(s.stored, s.stored_bytes);
		putchar('\n');
	} else if (!strcmp(cmd, "row")) {
		oracle_group_params p;
		fp8kv_dtype in;
		unsigned long long g, n;
		float amax;
		if (params(&save, &p) || dtype(&save, &in) || hex(&save, &g) || hex(&save, &n) ||
		    g < 1 || elems(&save, x, (int64_t)n))
			return -1;
		if (oracle_group_row(&p, (int64_t)g, x, (int64_t)n, in, out, scales, &c, &amax))
			return -1;
		put_bytes(out, p.format == FP8KV_E2M1 ? (int64_t)n / 2 : (int64_t)n);
		putchar(' ');
		put_bytes(scales, (int64_t)(n / g) * oracle_group_scale_bytes(p.rule));
		printf(" %llx %llx %x\n", (unsigned long long)c.overflows,
		       (unsigned long long)c.nans, (unsigned)bits_of_float(amax));
	} else if (!strcmp(cmd, "addr")) {
		unsigned long long v[10];
		for (int i = 0; i < 10; i++)
			if (hex(&save, &v[i]))
				return -1;
		const oracle_scale_layout l = {(int64_t)v[0], (int64_t)v[1], (int64_t)v[2],
					       (int64_t)v[3], (int64_t)v[4], (int64_t)v[5]};
		printf("%lld\n", (long long)oracle_group_scale_index(&l, (int64_t)v[6], (int64_t)v[7],
								       (int64_t)v[8], (int64_t)v[9]));
	} else if (!strcmp(cmd, "plain")) {
		fp8kv_dtype in, cache;
		unsigned long long scaled, rank, npe;
		float s;
		if (dtype(&save, &in) || dtype(&save, &cache) || (o = pick(&save, overflows, 2)) < 0 ||
		    hex(&save, &scaled) || f32(&save, &s) || hex(&save, &rank) || hex(&save, &npe) ||
		    elems(&save, x, (int64_t)rank) || elems(&save, pe, (int64_t)npe))
			return -1;
		const int64_t bytes = oracle_mla_plain_entry(x, (int64_t)rank, pe, (int64_t)npe, in,
							     cache, scaled != 0, s, (fp8kv_overflow)o,
							     out, &c);
		if (bytes < 0)
			return -1;
		put_bytes(out, bytes);
		printf(" %llx %llx\n", (unsigned long long)c.overflows, (unsigned long long)c.nans);
	} else if (!strcmp(cmd, "ds")) {
		fp8kv_dtype in, f;
		float div;
		if (dtype(&save, &in) || dtype(&save, &f) || (o = pick(&save, overflows, 2)) < 0 ||
		    f32(&save, &div) || elems(&save, x, ORACLE_DS_MLA_RANK) ||
		    elems(&save, pe, ORACLE_DS_MLA_PE))
			return -1;
		if (oracle_mla_ds_record(x, pe, in, f, div, (fp8kv_overflow)o, out, &c))
			return -1;
		put_bytes(out, ORACLE_DS_MLA_BYTES);
		printf(" %llx %llx\n", (unsigned long long)c.overflows, (unsigned long long)c.nans);
	} else {
		return -1;
	}
	return 0;
}

int main(void)
{
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, stdin) > 0)
		if (one_case(line))
			puts("ERR");
	free(line);
	return fflush(stdout) ? EXIT_FAILURE : EXIT_SUCCESS;
}
