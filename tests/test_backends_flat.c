/* SPDX-License-Identifier: MIT */
/*
 * test_backends_flat.c - the flat calls on each backend against the CPU
 * backend: calls queued on one stream, fp8kv_quantize, fp8kv_dequantize,
 * fp8kv_amax and fp8kv_check_slots (see test_backends.c).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_case.h"
#include "case_fixtures.h"
#include "fp8kv.h"
#include "oracle.h"
#include "test_backends.h"

/* -------------------------------------------------- quantize/dequantize */

typedef struct flat_run {
	fp8kv_status status;
	char message[256];
	uint64_t counter;
} flat_run;

static void *dev_copy(fp8kv_backend *b, const void *host, size_t bytes)
{
	void *p = NULL;
	ck_assert_int_eq(fp8kv_buffer_alloc(b, bytes ? bytes : 1, &p), FP8KV_OK);
	if (bytes)
		ck_assert_int_eq(fp8kv_buffer_upload(b, p, host, bytes), FP8KV_OK);
	return p;
}

static void dev_fetch(fp8kv_backend *b, void *host, void *dev, size_t bytes)
{
	ck_assert_int_eq(fp8kv_buffer_download(b, host, dev, bytes), FP8KV_OK);
	fp8kv_buffer_free(b, dev);
}

static void record(flat_run *r, fp8kv_status st)
{
	if (st != FP8KV_OK && r->status == FP8KV_OK) {
		r->status = st;
		snprintf(r->message, sizeof r->message, "%s", fp8kv_last_error());
	}
}

static void quantize_on(fp8kv_backend *b, const void *src, fp8kv_dtype sdt, size_t count,
			fp8kv_dtype fmt, fp8kv_scale_mode mode, float scale, fp8kv_overflow ov,
			uint8_t *dst, flat_run *r)
{
	const size_t ssz = fp8kv_dtype_size(sdt);
	const uint64_t counter0 = 0x200000000ull + 17;
	memset(r, 0, sizeof *r);
	memset(dst, 0xA5, count);
	void *dsrc = dev_copy(b, src, count * ssz);
	void *ddst = dev_copy(b, dst, count);
	void *dscale = dev_copy(b, &scale, sizeof scale);
	void *dctr = dev_copy(b, &counter0, sizeof counter0);
	record(r, fp8kv_quantize(b, ddst, fmt, dsrc, sdt, count, mode, dscale, ov, dctr, NULL));
	record(r, fp8kv_backend_synchronize(b, NULL));
	dev_fetch(b, dst, ddst, count);
	dev_fetch(b, &r->counter, dctr, sizeof r->counter);
	fp8kv_buffer_free(b, dsrc);
	fp8kv_buffer_free(b, dscale);
}

/* including the divisors whose quotients fp8kv.h section 5 pins down
 * because hardware differs: negative, +-0, +-Inf, NaN */
static const float flat_scales[] = {1.0f, 3.0f, 1.0f / 448, 1e-3f, 0x1p-140f, 0x1p-126f,
				    1e30f, 0.1f, 1.0f / 57344, 65504.0f, -3.0f, 0.0f, -0.0f,
				    INFINITY, -INFINITY, NAN, -NAN};
#define N_FLAT_SCALES (sizeof flat_scales / sizeof flat_scales[0])

static uint64_t count_diff(const uint8_t *a, const uint8_t *b, size_t n, size_t *first)
{
	uint64_t k = 0;
	*first = n;
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i]) {
			if (!k)
				*first = i;
			k++;
		}
	return k;
}

/* ------------------------------------------------------- stream order */

/*
 * Calls queued on one stream see what the calls before them wrote.  Six
 * calls, each reading the buffer the one before it filled, are queued
 * without a synchronize: a write, a dequantization of its cache, a write
 * from that, and so on.  Every output starts as poison; a kernel that read
 * its input before the previous kernel's writes were visible (a GPU that
 * starts kernels early, as dependent launches do, and lets them read too
 * soon) would carry poison or stale codes into the bytes compared here.
 * The rows fill the cache exactly (NHD), so a cache read flat is the rows
 * of the next write, in slot order.
 */
enum { SO_TOKENS = 16384, SO_HEADS = 8, SO_DIM = 128, SO_BS = 16, SO_STAGES = 6 };
#define SO_ELEMS ((size_t)2 * SO_TOKENS * SO_HEADS * SO_DIM) /* keys, then values */

static const char *const so_names[SO_STAGES] = {"write 1", "dequantize 1", "write 2",
						 "dequantize 2", "write 3", "quantize"};

/* The chain on b from the bf16 rows x and the slots; out[k] receives stage
 * k's output (SO_ELEMS codes or bf16 values).  Nonzero on an error. */
static int stream_chain(fp8kv_backend *b, const uint16_t *x, const int64_t *slots, float scale,
			uint8_t *out[SO_STAGES], char *why, size_t n)
{
	const size_t bf = SO_ELEMS * 2, codes = SO_ELEMS;
	const size_t bytes[SO_STAGES] = {codes, bf, codes, bf, codes, codes};
	void *buf[SO_STAGES] = {NULL}, *dx = dev_copy(b, x, bf);
	void *dslots = dev_copy(b, slots, SO_TOKENS * sizeof *slots);
	void *dscale = dev_copy(b, &scale, sizeof scale);
	for (int k = 0; k < SO_STAGES; k++) {
		ck_assert_int_eq(fp8kv_buffer_alloc(b, bytes[k], &buf[k]), FP8KV_OK);
		ck_assert_int_eq(fp8kv_buffer_fill(b, buf[k], bytes[k] == bf ? 0xFF : 0xA5, bytes[k]),
				 FP8KV_OK);
	}
	const size_t half = SO_ELEMS / 2;
	fp8kv_status st[SO_STAGES];
	const void *rows[3] = {dx, buf[1], buf[3]};
	for (int w = 0; w < 3; w++) {
		fp8kv_cache_write d;
		fp8kv_cache_write_init(&d, SO_TOKENS, SO_HEADS, SO_DIM, SO_DIM, SO_TOKENS / SO_BS,
				       SO_BS, FP8KV_LAYOUT_NHD);
		d.key = rows[w];
		d.value = (const uint16_t *)rows[w] + half;
		d.input_dtype = FP8KV_BF16;
		d.key_cache = buf[2 * w];
		d.value_cache = (uint8_t *)buf[2 * w] + half;
		d.cache_dtype = FP8KV_E4M3FN;
		d.slot_mapping = dslots;
		d.scale_mode = FP8KV_SCALE_TENSOR;
		d.k_scale = d.v_scale = dscale;
		st[2 * w] = fp8kv_reshape_and_cache(b, &d, NULL);
		if (w < 2)
			st[2 * w + 1] = fp8kv_dequantize(b, buf[2 * w + 1], FP8KV_BF16, buf[2 * w],
							 FP8KV_E4M3FN, SO_ELEMS, FP8KV_SCALE_TENSOR,
							 dscale, NULL);
	}
	st[5] = fp8kv_quantize(b, buf[5], FP8KV_E5M2, buf[3], FP8KV_BF16, SO_ELEMS,
			       FP8KV_SCALE_TENSOR, dscale, FP8KV_SATURATE, NULL, NULL);
	const fp8kv_status sync = fp8kv_backend_synchronize(b, NULL);
	int failed = sync != FP8KV_OK;
	if (failed)
		snprintf(why, n, "synchronize: %s", fp8kv_last_error());
	for (int k = 0; k < SO_STAGES; k++) {
		if (st[k] != FP8KV_OK && !failed) {
			snprintf(why, n, "%s: %s", so_names[k], fp8kv_strerror(st[k]));
			failed = 1;
		}
		dev_fetch(b, out[k], buf[k], bytes[k]);
	}
	fp8kv_buffer_free(b, dx);
	fp8kv_buffer_free(b, dslots);
	fp8kv_buffer_free(b, dscale);
	return failed;
}

START_TEST(stream_order)
{
	if (skip_on_cpu(_i, "stream order", "the CPU backend's calls are synchronous"))
		return;
	const size_t bf = SO_ELEMS * 2;
	const size_t bytes[SO_STAGES] = {SO_ELEMS, bf, SO_ELEMS, bf, SO_ELEMS, SO_ELEMS};
	uint16_t *x = malloc(bf);
	int64_t *slots = malloc(SO_TOKENS * sizeof *slots);
	int64_t *perm = malloc((SO_TOKENS / SO_BS) * sizeof *perm);
	uint8_t *want[SO_STAGES], *got[SO_STAGES];
	ck_assert(x && slots && perm);
	for (int k = 0; k < SO_STAGES; k++) {
		want[k] = malloc(bytes[k]);
		got[k] = malloc(bytes[k]);
		ck_assert(want[k] && got[k]);
	}
	/* calm rows (|x| / s in [2^-12, 400)) and the blocks in a random order */
	const float scale = 0.75f;
	uint64_t r = 0x5EED0DE2ull;
	for (size_t i = 0; i < SO_ELEMS; i++) {
		const uint64_t u = next_random(&r);
		const double v = calm_value(u, log2(400.0), scale);
		cache_case_set_bits(x, FP8KV_BF16, i, cache_case_round_bits((u & 1) ? -v : v, FP8KV_BF16));
	}
	for (int64_t i = 0; i < SO_TOKENS / SO_BS; i++)
		perm[i] = i;
	for (int64_t i = SO_TOKENS / SO_BS - 1; i > 0; i--) {
		const int64_t j = (int64_t)(next_random(&r) % (uint64_t)(i + 1)), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (int64_t t = 0; t < SO_TOKENS; t++)
		slots[t] = perm[t / SO_BS] * SO_BS + t % SO_BS;

	char why[300] = "";
	ck_assert_msg(stream_chain(ref, x, slots, scale, want, why, sizeof why) == 0, "cpu: %s", why);
	ck_assert_msg(stream_chain(backends[_i], x, slots, scale, got, why, sizeof why) == 0, "%s: %s",
		      backend_names[_i], why);
	uint64_t compared = 0, differing = 0;
	char first[200] = "";
	for (int k = 0; k < SO_STAGES; k++) {
		size_t at;
		const uint64_t dk = count_diff(want[k], got[k], bytes[k], &at);
		if (dk && !differing)
			snprintf(first, sizeof first, "%s: byte %zu: cpu 0x%02x, %s 0x%02x",
				 so_names[k], at, want[k][at], backend_names[_i], got[k][at]);
		differing += dk;
		compared += bytes[k];
	}
	/* the chain means something only if no stage kept its poison (the
	 * bf16 stages: 0xA5 is also a code) */
	for (int k = 1; k <= 3; k += 2)
		for (size_t i = 0; i < bf; i += 2)
			ck_assert_msg(!(want[k][i] == 0xFF && want[k][i + 1] == 0xFF),
				      "cpu: %s left poison at %zu", so_names[k], i);
	summary(_i, "stream order", SO_STAGES, compared, differing);
	for (int k = 0; k < SO_STAGES; k++) {
		free(want[k]);
		free(got[k]);
	}
	free(x);
	free(slots);
	free(perm);
	ck_assert_msg(differing == 0, "%llu bytes differ; the first: %s", (unsigned long long)differing,
		      first);
}
END_TEST

START_TEST(quantize_all)
{
	enum { N16 = 65536, N32 = 1 << 20 };
	uint16_t *src16 = malloc(N16 * sizeof *src16);
	uint32_t *src32 = malloc(N32 * sizeof *src32);
	uint8_t *want = malloc(N32), *got = malloc(N32);
	ck_assert(src16 && src32 && want && got);
	for (uint32_t i = 0; i < N16; i++)
		src16[i] = (uint16_t)i;
	uint64_t x = 0x12345678ull;
	for (uint32_t i = 0; i < N32; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		src32[i] = (uint32_t)(x >> 32);
		if (i < 4096) /* every fp32 exponent with a few mantissas, both signs */
			src32[i] = (i & 1u) << 31 | (i >> 4 & 0xFFu) << 23 | (uint32_t)(x >> 41);
	}
	uint64_t cases = 0, bytes = 0, differing = 0;
	int failures = 0;
	char first[512] = "";
	const fp8kv_dtype sdts[3] = {FP8KV_F16, FP8KV_BF16, FP8KV_F32};
	for (int s = 0; s < 3; s++)
		for (int f = 0; f < 4; f++)
			for (int p = 0; p < 2; p++)
				for (size_t k = 0; k <= N_FLAT_SCALES; k++) {
					/* k == N_FLAT_SCALES: ONE (with a stray scale of 1e-3 to ignore) */
					const fp8kv_scale_mode mode = k < N_FLAT_SCALES ? FP8KV_SCALE_TENSOR
											: FP8KV_SCALE_ONE;
					const float scale = k < N_FLAT_SCALES ? flat_scales[k] : 1e-3f;
					const size_t n = s < 2 ? N16 : N32;
					const void *src = s < 2 ? (const void *)src16 : (const void *)src32;
					flat_run rw, rg;
					quantize_on(ref, src, sdts[s], n, fp8_formats[f], mode, scale,
						    overflow_policies[p], want, &rw);
					quantize_on(backends[_i], src, sdts[s], n, fp8_formats[f], mode, scale,
						    overflow_policies[p], got, &rg);
					ck_assert_msg(rw.status == FP8KV_OK, "cpu quantize: %s", rw.message);
					size_t at;
					uint64_t dd = count_diff(want, got, n, &at);
					cases++;
					bytes += n + 8;
					differing += dd + (rw.counter != rg.counter);
					if (dd || rw.counter != rg.counter || rg.status != rw.status) {
						if (!failures++)
							snprintf(first, sizeof first,
								 "%s->%s %s %s scale %a: status %d (%s); %llu codes differ,"
								 " first input 0x%x: cpu 0x%02x, got 0x%02x; overflow_count cpu %llu got %llu",
								 fp8kv_dtype_name(sdts[s]), fp8kv_dtype_name(fp8_formats[f]),
								 mode == FP8KV_SCALE_ONE ? "ONE" : "TENSOR",
								 p ? "nonsat" : "sat", (double)scale, (int)rg.status,
								 rg.message, (unsigned long long)dd,
								 at < n ? (unsigned)(s < 2 ? src16[at] : src32[at]) : 0u,
								 at < n ? want[at] : 0, at < n ? got[at] : 0,
								 (unsigned long long)rw.counter,
								 (unsigned long long)rg.counter);
					}
				}
	summary(_i, "quantize", cases, bytes, differing);
	free(src16);
	free(src32);
	free(want);
	free(got);
	ck_assert_msg(failures == 0, "%d quantize runs differ; the first: %s", failures, first);
}
END_TEST

START_TEST(dequantize_all)
{
	uint8_t codes[256];
	uint8_t want[256 * 4], got[256 * 4];
	for (int i = 0; i < 256; i++)
		codes[i] = (uint8_t)i;
	uint64_t cases = 0, bytes = 0, differing = 0;
	int failures = 0;
	char first[512] = "";
	for (int f = 0; f < 4; f++)
		for (int o = 0; o < 3; o++)
			for (size_t k = 0; k <= N_FLAT_SCALES; k++) {
				const fp8kv_scale_mode mode = k < N_FLAT_SCALES ? FP8KV_SCALE_TENSOR : FP8KV_SCALE_ONE;
				const float scale = k < N_FLAT_SCALES ? flat_scales[k] : 7.0f;
				const size_t osz = fp8kv_dtype_size(input_dtypes[o]);
				fp8kv_backend *bs[2] = {ref, backends[_i]};
				uint8_t *outs[2] = {want, got};
				fp8kv_status st[2];
				for (int w = 0; w < 2; w++) {
					flat_run r;
					memset(&r, 0, sizeof r);
					memset(outs[w], 0x5A, sizeof want);
					void *dsrc = dev_copy(bs[w], codes, sizeof codes);
					void *ddst = dev_copy(bs[w], outs[w], 256 * osz);
					void *dscale = dev_copy(bs[w], &scale, sizeof scale);
					record(&r, fp8kv_dequantize(bs[w], ddst, input_dtypes[o], dsrc, fp8_formats[f], 256,
								    mode, dscale, NULL));
					record(&r, fp8kv_backend_synchronize(bs[w], NULL));
					dev_fetch(bs[w], outs[w], ddst, 256 * osz);
					fp8kv_buffer_free(bs[w], dsrc);
					fp8kv_buffer_free(bs[w], dscale);
					st[w] = r.status;
				}
				ck_assert_int_eq(st[0], FP8KV_OK);
				size_t at;
				uint64_t dd = count_diff(want, got, 256 * osz, &at);
				cases++;
				bytes += 256 * osz;
				differing += dd;
				if (dd || st[1] != FP8KV_OK) {
					if (!failures++)
						snprintf(first, sizeof first,
							 "%s->%s scale %a: status %d; %llu bytes differ, first at code 0x%02zx",
							 fp8kv_dtype_name(fp8_formats[f]), fp8kv_dtype_name(input_dtypes[o]),
							 (double)scale, (int)st[1], (unsigned long long)dd,
							 at < 256 * osz ? at / osz : 0);
				}
			}
	summary(_i, "dequantize", cases, bytes, differing);
	ck_assert_msg(failures == 0, "%d dequantize runs differ; the first: %s", failures, first);
}
END_TEST

/* ------------------------------------------------------------ amax */

static float host_amax(const void *src, fp8kv_dtype dt, size_t n)
{
	float m = 0.0f;
	for (size_t i = 0; i < n; i++) {
		float x = oracle_widen(cache_case_get_bits(src, dt, i), dt);
		uint32_t b;
		memcpy(&b, &x, 4);
		if ((b & 0x7F800000u) == 0x7F800000u)
			continue;
		b &= 0x7FFFFFFFu;
		memcpy(&x, &b, 4);
		if (x > m)
			m = x;
	}
	return m;
}

START_TEST(amax)
{
	static const size_t sizes[] = {1, 7, 1000, 65536 + 3, (1u << 20) + 5};
	uint64_t cases = 0, bytes = 0, differing = 0;
	uint32_t *buf = malloc(((1u << 20) + 5) * 4);
	ck_assert_ptr_nonnull(buf);
	uint64_t x = 99;
	for (int dt = 0; dt < 3; dt++)
		for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
			for (int kind = 0; kind < 4; kind++) {
				const fp8kv_dtype d = input_dtypes[dt];
				const size_t n = sizes[si], esz = fp8kv_dtype_size(d);
				const uint32_t inf = d == FP8KV_F32 ? 0x7F800000u : d == FP8KV_F16 ? 0x7C00u : 0x7F80u;
				for (size_t i = 0; i < n; i++) {
					x = x * 6364136223846793005ull + 1442695040888963407ull;
					uint32_t v = (uint32_t)(x >> 32);
					if (esz == 2)
						v &= 0xFFFF;
					if (kind == 1 && (x >> 20) % 4 == 0) /* many NaN and Inf */
						v = inf | ((x >> 8) & 1 ? 1u : 0u) | (v & (esz == 2 ? 0x8000u : 0x80000000u));
					if (kind == 2) /* nothing finite: amax 0 */
						v = inf | (uint32_t)(i & 1);
					if (kind == 3) /* tiny: subnormals only */
						v &= esz == 2 ? 0x807Fu : 0x807FFFFFu;
					cache_case_set_bits(buf, d, i, v);
				}
				float got[2] = {-1, -1};
				fp8kv_backend *bs[2] = {ref, backends[_i]};
				for (int w = 0; w < 2; w++) {
					void *dev = dev_copy(bs[w], buf, n * esz);
					ck_assert_int_eq(fp8kv_amax(bs[w], dev, d, n, &got[w]), FP8KV_OK);
					fp8kv_buffer_free(bs[w], dev);
				}
				const float want = host_amax(buf, d, n);
				cases++;
				bytes += 4;
				differing += memcmp(&got[0], &got[1], 4) != 0;
				ck_assert_msg(memcmp(&got[0], &want, 4) == 0,
					      "cpu amax %a, host %a (%s, n=%zu, kind %d)", (double)got[0],
					      (double)want, fp8kv_dtype_name(d), n, kind);
				ck_assert_msg(memcmp(&got[1], &want, 4) == 0,
					      "%s amax %a, want %a (%s, n=%zu, kind %d)", backend_names[_i],
					      (double)got[1], (double)want, fp8kv_dtype_name(d), n, kind);
			}
	free(buf);
	summary(_i, "amax", cases, bytes, differing);
}
END_TEST

/* ------------------------------------------------------- check_slots */

static void host_slot_report(const int64_t *s, int64_t n, int64_t num_slots, fp8kv_slot_report *r)
{
	unsigned char *seen = calloc((size_t)num_slots, 1);
	ck_assert_ptr_nonnull(seen);
	memset(r, 0, sizeof *r);
	r->first_padding = r->first_out_of_range = r->first_duplicate = -1;
	for (int64_t t = 0; t < n; t++) {
		if (s[t] < 0) {
			if (!r->padding++)
				r->first_padding = t;
		} else if (s[t] >= num_slots) {
			if (!r->out_of_range++)
				r->first_out_of_range = t;
		} else if (seen[s[t]]) {
			if (!r->duplicates++)
				r->first_duplicate = t;
		} else {
			seen[s[t]] = 1;
		}
	}
	free(seen);
}

static void slots_on(fp8kv_backend *b, const int64_t *s, int64_t n, fp8kv_index_type ty,
		     int64_t num_slots, fp8kv_slot_report *r)
{
	void *host;
	size_t bytes;
	if (ty == FP8KV_INDEX_INT32) {
		int32_t *a = malloc((size_t)(n ? n : 1) * 4);
		ck_assert_ptr_nonnull(a);
		for (int64_t i = 0; i < n; i++)
			a[i] = (int32_t)s[i];
		host = a;
		bytes = (size_t)n * 4;
	} else {
		host = (void *)s;
		bytes = (size_t)n * 8;
	}
	void *dev = dev_copy(b, host, bytes);
	memset(r, 0x77, sizeof *r);
	fp8kv_status st = fp8kv_check_slots(b, dev, n, ty, num_slots, r);
	ck_assert_msg(st == FP8KV_OK, "check_slots on %s: %s", fp8kv_backend_name(b), fp8kv_last_error());
	fp8kv_buffer_free(b, dev);
	if (host != (void *)s)
		free(host);
}

#define ASSERT_REPORT_EQ(a, b, what)                                                          \
	ck_assert_msg(memcmp(&(a), &(b), sizeof(a)) == 0,                                     \
		      "%s: padding %lld/%lld oor %lld/%lld dup %lld/%lld first %lld/%lld %lld/%lld" \
		      " %lld/%lld",                                                             \
		      what, (long long)(a).padding, (long long)(b).padding,                   \
		      (long long)(a).out_of_range, (long long)(b).out_of_range,               \
		      (long long)(a).duplicates, (long long)(b).duplicates,                   \
		      (long long)(a).first_padding, (long long)(b).first_padding,             \
		      (long long)(a).first_out_of_range, (long long)(b).first_out_of_range,   \
		      (long long)(a).first_duplicate, (long long)(b).first_duplicate)

START_TEST(check_slots)
{
	enum { N = 100000 };
	int64_t *s = malloc(N * sizeof *s);
	ck_assert_ptr_nonnull(s);
	uint64_t cases = 0;
	uint64_t x = 5;
	for (int variant = 0; variant < 8; variant++) {
		const fp8kv_index_type ty = variant & 1 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
		const int64_t num_slots = variant & 2 ? 4096 : 3 * N;
		const int64_t n = variant & 4 ? N : 1000 + variant;
		/* distinct negative padding values and distinct out-of-range
		 * values, so that only in-range repeats are duplicates; and
		 * one run with plain -1 padding compared with the CPU only */
		for (int64_t t = 0; t < n; t++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			const unsigned k = (unsigned)(x >> 58);
			if (k < 6)
				s[t] = -1 - t;
			else if (k < 9)
				s[t] = num_slots + t;
			else
				s[t] = (int64_t)((x >> 20) % (uint64_t)num_slots);
		}
		fp8kv_slot_report want, cpu, got;
		host_slot_report(s, n, num_slots, &want);
		slots_on(ref, s, n, ty, num_slots, &cpu);
		slots_on(backends[_i], s, n, ty, num_slots, &got);
		ASSERT_REPORT_EQ(cpu, want, "cpu vs host");
		ASSERT_REPORT_EQ(got, want, "backend vs host");
		ck_assert_int_gt(want.padding, 0);
		ck_assert_int_gt(want.out_of_range, 0);
		cases++;
		/* the usual -1 padding and a repeated out-of-range value */
		for (int64_t t = 0; t < n; t++)
			if (s[t] < 0)
				s[t] = -1;
			else if (s[t] >= num_slots)
				s[t] = num_slots;
		slots_on(ref, s, n, ty, num_slots, &cpu);
		slots_on(backends[_i], s, n, ty, num_slots, &got);
		ASSERT_REPORT_EQ(got, cpu, "backend vs cpu, -1 padding");
		cases++;
	}
	/* a permutation: no duplicates at all */
	for (int64_t t = 0; t < N; t++)
		s[t] = (t * 7919) % N;
	fp8kv_slot_report want, got;
	host_slot_report(s, N, N, &want);
	ck_assert_int_eq(want.duplicates, 0);
	slots_on(backends[_i], s, N, FP8KV_INDEX_INT64, N, &got);
	ASSERT_REPORT_EQ(got, want, "permutation");
	cases++;
	free(s);
	summary(_i, "check_slots", cases, cases * sizeof(fp8kv_slot_report), 0);
}
END_TEST

void add_flat_groups(TCase *tc, int nbackends)
{
	tcase_add_loop_test(tc, stream_order, 0, nbackends);
	tcase_add_loop_test(tc, quantize_all, 0, nbackends);
	tcase_add_loop_test(tc, dequantize_all, 0, nbackends);
	tcase_add_loop_test(tc, amax, 0, nbackends);
	tcase_add_loop_test(tc, check_slots, 0, nbackends);
}
