/* SPDX-License-Identifier: MIT */
/*
 * test_threads.c - one backend handle shared by several threads (fp8kv.h
 * section 3: "A handle may be shared by threads; the calls on it are
 * thread-safe.  Each thread sees its own fp8kv_last_error().").
 *
 * A table of jobs - cache writes with varied dtypes, layouts, strides, scale
 * modes, slot types and sliding-window maps, flat quantize/dequantize, amax,
 * the slot checker and calls that fail - is first run on the main thread.
 * Then NTHREADS threads run every job ROUNDS times, each in its own order
 * and on its own buffers, through the one shared "cpu" handle, and every
 * byte they get back (caches, scale caches, counters, amax, reports, status
 * codes and messages) must equal the single-threaded run.  Jobs large enough
 * to start the backend's OpenMP team are included, so teams are started from
 * several threads at once.  Finally the threads fail in different ways at
 * the same moment, meet at a barrier, and each must still read its own
 * message.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp8kv.h"

#define NTHREADS 8
#define ROUNDS 3
#define POISON 0xA5

static fp8kv_backend *shared; /* the one handle every thread uses */

/* ---- results: every byte a job produced, compared whole ---- */

typedef struct blob {
	uint8_t *data;
	size_t len, cap;
	int oom;
} blob;

static void blob_add(blob *b, const void *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *d = realloc(b->data, cap);
		if (!d) {
			b->oom = 1;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

/* a status and the message that came with it */
static void blob_status(blob *b, fp8kv_status st)
{
	const int32_t code = (int32_t)st;
	const char *msg = fp8kv_last_error();
	blob_add(b, &code, sizeof code);
	blob_add(b, msg, strlen(msg) + 1);
}

/* ---- deterministic data ---- */

static uint64_t next(uint64_t *s) /* splitmix64 */
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* fp32 bits spread over [2^-24, 2^24) in magnitude, with a few specials */
static uint32_t some_f32_bits(uint64_t *s)
{
	const uint64_t r = next(s);
	if (r % 97 == 0)
		return 0x7FC00000u | (uint32_t)(r >> 40 & 0x80000000u);	/* NaN */
	if (r % 89 == 0)
		return 0x7F800000u | (uint32_t)(r >> 40 & 0x80000000u); /* Inf */
	if (r % 83 == 0)
		return (uint32_t)(r >> 40 & 0x80000000u); /* +-0 */
	const uint32_t exp = 127u - 24u + (uint32_t)(r >> 8) % 48u;
	return (uint32_t)(r >> 40 & 0x80000000u) | exp << 23 | ((uint32_t)(r >> 16) & 0x7FFFFFu);
}

static void fill_input(void *dst, fp8kv_dtype t, int64_t n, uint64_t *s)
{
	for (int64_t i = 0; i < n; i++) {
		const uint32_t bits = some_f32_bits(s);
		if (t == FP8KV_F32)
			memcpy((uint8_t *)dst + 4 * i, &bits, 4);
		else if (t == FP8KV_BF16)
			((uint16_t *)dst)[i] = (uint16_t)(bits >> 16);
		else /* any f16 pattern: subnormals, NaN and Inf included */
			((uint16_t *)dst)[i] = (uint16_t)next(s);
	}
}

/* ---- the jobs ---- */

typedef struct job {
	const char *name;
	fp8kv_dtype input, cache;
	fp8kv_cache_layout layout;
	fp8kv_scale_mode mode;
	fp8kv_overflow overflow;
	fp8kv_index_type slot_type;
	int swa;        /* map slots through a sliding-window table */
	int pad;        /* pad input token and cache block strides */
	int bad_slot;   /* one token out of range: FP8KV_ERANGE */
	int64_t T, H, DK, DV, NB, BS;
} job;

#define I64 FP8KV_INDEX_INT64
#define I32 FP8KV_INDEX_INT32
#define NHD FP8KV_LAYOUT_NHD
#define HND FP8KV_LAYOUT_HND
#define SAT FP8KV_SATURATE
#define NONSAT FP8KV_NONSATURATING

static const job jobs[] = {
	{"bf16 e4m3fn nhd", FP8KV_BF16, FP8KV_E4M3FN, NHD, FP8KV_SCALE_ONE, SAT, I64, 0, 0, 0,
	 9, 2, 16, 16, 4, 4},
	{"f16 e5m2 hnd tensor", FP8KV_F16, FP8KV_E5M2, HND, FP8KV_SCALE_TENSOR, NONSAT, I32, 0, 1, 0,
	 12, 3, 8, 24, 3, 8},
	{"f32 e4m3fnuz head", FP8KV_F32, FP8KV_E4M3FNUZ, NHD, FP8KV_SCALE_HEAD, SAT, I64, 1, 0, 0,
	 7, 4, 32, 8, 2, 16},
	{"bf16 e5m2fnuz token-head", FP8KV_BF16, FP8KV_E5M2FNUZ, HND, FP8KV_SCALE_TOKEN_HEAD, NONSAT,
	 I32, 0, 1, 1, 11, 2, 64, 64, 4, 4},
	{"f16 copy", FP8KV_F16, FP8KV_F16, NHD, FP8KV_SCALE_ONE, SAT, I64, 0, 1, 0, 5, 3, 8, 8, 2, 4},
	{"f32 copy swa", FP8KV_F32, FP8KV_F32, HND, FP8KV_SCALE_ONE, SAT, I32, 1, 0, 1,
	 6, 1, 4, 12, 3, 3},
	{"bf16 e4m3fn token-head nhd swa", FP8KV_BF16, FP8KV_E4M3FN, NHD, FP8KV_SCALE_TOKEN_HEAD, SAT,
	 I64, 1, 1, 0, 13, 2, 16, 32, 2, 8},
	/* past the CPU backend's 32768-element threshold: an OpenMP team */
	{"big bf16 e4m3fn (OpenMP)", FP8KV_BF16, FP8KV_E4M3FN, NHD, FP8KV_SCALE_TENSOR, SAT, I64, 0,
	 0, 0, 32, 4, 256, 128, 4, 8},
	{"big f16 e5m2 head hnd (OpenMP)", FP8KV_F16, FP8KV_E5M2, HND, FP8KV_SCALE_HEAD, NONSAT, I32,
	 0, 1, 1, 40, 2, 256, 256, 5, 8},
};

#define NJOBS (int)(sizeof jobs / sizeof jobs[0])

typedef struct job_buffers {
	void *key, *value, *key_cache, *value_cache, *slots, *swa;
	void *k_scale, *v_scale, *k_scale_cache, *v_scale_cache, *counters, *amax, *flat;
} job_buffers;

#define NBUF (int)(sizeof(job_buffers) / sizeof(void *))

static void free_buffers(job_buffers *b)
{
	void **p = (void **)b;
	for (int i = 0; i < NBUF; i++)
		fp8kv_buffer_free(shared, p[i]);
	memset(b, 0, sizeof *b);
}

/* Allocates and uploads n bytes from host (or fills them with POISON). */
static int put(void **dst, const void *host, size_t n, blob *out)
{
	fp8kv_status st = fp8kv_buffer_alloc(shared, n, dst);
	if (st == FP8KV_OK)
		st = host ? fp8kv_buffer_upload(shared, *dst, host, n)
			  : fp8kv_buffer_fill(shared, *dst, POISON, n);
	if (st != FP8KV_OK)
		blob_status(out, st);
	return st == FP8KV_OK;
}

static void get(blob *out, const void *src, size_t n)
{
	uint8_t *host = malloc(n);
	if (!host) {
		out->oom = 1;
		return;
	}
	blob_status(out, fp8kv_buffer_download(shared, host, src, n));
	blob_add(out, host, n);
	free(host);
}

static size_t isize(fp8kv_index_type t)
{
	return t == FP8KV_INDEX_INT32 ? 4 : 8;
}

static void put_index(void *arr, fp8kv_index_type t, int64_t i, int64_t v)
{
	if (t == FP8KV_INDEX_INT32)
		((int32_t *)arr)[i] = (int32_t)v;
	else
		((int64_t *)arr)[i] = v;
}

/* Runs job j on fresh buffers and appends everything it produced to out. */
static void run_job(int j, blob *out)
{
	const job *jb = &jobs[j];
	const int64_t T = jb->T, H = jb->H, NB = jb->NB, BS = jb->BS, slots_n = NB * BS;
	const size_t in_size = fp8kv_dtype_size(jb->input);
	const size_t cache_size = fp8kv_dtype_size(jb->cache);
	const int fp8 = fp8kv_dtype_is_fp8(jb->cache);
	uint64_t seed = 0x5EED0000u + (uint64_t)j;
	job_buffers b = {0};
	fp8kv_cache_write d;

	fp8kv_cache_write_init(&d, T, H, jb->DK, jb->DV, NB, BS, jb->layout);
	d.input_dtype = jb->input;
	d.cache_dtype = jb->cache;
	d.scale_mode = jb->mode;
	d.overflow = jb->overflow;
	d.slot_type = jb->slot_type;
	if (jb->pad) { /* rows apart in the input, blocks apart in the caches */
		d.key_stride_token += 3;
		d.value_stride_token += 5;
		d.key_cache_stride_block += 2 * jb->DK;
		d.value_cache_stride_block += 3 * jb->DV;
		d.scale_cache_stride_block += 7;
	}

	/* inputs */
	const size_t key_n = (size_t)((T - 1) * d.key_stride_token + H * jb->DK);
	const size_t value_n = (size_t)((T - 1) * d.value_stride_token + H * jb->DV);
	void *host = malloc((key_n > value_n ? key_n : value_n) * 4 + 1024);
	if (!host) {
		out->oom = 1;
		return;
	}
	fill_input(host, jb->input, (int64_t)key_n, &seed);
	if (!put(&b.key, host, key_n * in_size, out))
		goto done;
	fill_input(host, jb->input, (int64_t)value_n, &seed);
	if (!put(&b.value, host, value_n * in_size, out))
		goto done;

	/* slots: a shuffled subset, some padding, one duplicate, maybe one bad */
	int64_t *perm = malloc((size_t)slots_n * sizeof *perm);
	if (!perm) {
		out->oom = 1;
		goto done;
	}
	for (int64_t i = 0; i < slots_n; i++)
		perm[i] = i;
	for (int64_t i = slots_n - 1; i > 0; i--) {
		const int64_t k = (int64_t)(next(&seed) % (uint64_t)(i + 1)), t = perm[i];
		perm[i] = perm[k];
		perm[k] = t;
	}
	uint8_t idx[4096];
	const int64_t swa_len = slots_n + 3;
	for (int64_t t = 0; t < T; t++)
		put_index(idx, jb->slot_type, t,
			  t % 5 == 4 ? -1 : t == 6 ? perm[2] : perm[t % slots_n]);
	if (jb->bad_slot)
		put_index(idx, jb->slot_type, T / 2, jb->swa ? swa_len + 4 : slots_n + 1);
	d.slot_mapping = NULL;
	if (!put(&b.slots, idx, (size_t)T * isize(jb->slot_type), out))
		goto free_perm;
	d.slot_mapping = b.slots;
	if (jb->swa) { /* slot s -> perm[s], the last three entries padding */
		for (int64_t s = 0; s < swa_len; s++)
			put_index(idx, jb->slot_type, s, s < slots_n ? perm[slots_n - 1 - s] : -1);
		d.swa_type = jb->slot_type;
		d.swa_mapping_len = swa_len;
		if (!put(&b.swa, idx, (size_t)swa_len * isize(jb->slot_type), out))
			goto free_perm;
		d.swa_mapping = b.swa;
	}

	/* scales and optional outputs */
	float scales[2 * 16];
	for (int i = 0; i < 32; i++)
		scales[i] = 0.25f * (float)(1 + (i * 7 + j) % 13);
	if (jb->mode == FP8KV_SCALE_TENSOR || jb->mode == FP8KV_SCALE_HEAD) {
		if (!put(&b.k_scale, scales, 16 * sizeof(float), out) ||
		    !put(&b.v_scale, scales + 16, 16 * sizeof(float), out))
			goto free_perm;
		d.k_scale = b.k_scale;
		d.v_scale = b.v_scale;
	}
	const size_t scache_n = (size_t)((NB - 1) * d.scale_cache_stride_block +
					 (BS - 1) * d.scale_cache_stride_slot +
					 (H - 1) * d.scale_cache_stride_head + 1);
	if (jb->mode == FP8KV_SCALE_TOKEN_HEAD) {
		if (!put(&b.k_scale_cache, NULL, scache_n * 4, out) ||
		    !put(&b.v_scale_cache, NULL, scache_n * 4, out))
			goto free_perm;
		d.k_scale_cache = b.k_scale_cache;
		d.v_scale_cache = b.v_scale_cache;
	}
	const uint64_t zero_counters[2] = {0, 7};
	const float amax_init[32] = {0};
	if (!put(&b.counters, zero_counters, sizeof zero_counters, out) ||
	    !put(&b.amax, amax_init, sizeof amax_init, out))
		goto free_perm;
	if (fp8) {
		d.overflow_count = b.counters;
		d.nan_count = (uint64_t *)b.counters + 1;
	}
	d.k_amax = b.amax;
	d.v_amax = (float *)b.amax + 16;

	/* the caches */
	const size_t kc_n = (size_t)((NB - 1) * d.key_cache_stride_block +
				     (BS - 1) * d.key_cache_stride_slot +
				     (H - 1) * d.key_cache_stride_head + jb->DK);
	const size_t vc_n = (size_t)((NB - 1) * d.value_cache_stride_block +
				     (BS - 1) * d.value_cache_stride_slot +
				     (H - 1) * d.value_cache_stride_head + jb->DV);
	if (!put(&b.key_cache, NULL, kc_n * cache_size, out) ||
	    !put(&b.value_cache, NULL, vc_n * cache_size, out))
		goto free_perm;
	d.key = b.key;
	d.value = b.value;
	d.key_cache = b.key_cache;
	d.value_cache = b.value_cache;

	/* the write, then everything it changed */
	blob_status(out, fp8kv_reshape_and_cache(shared, &d, NULL));
	blob_status(out, fp8kv_backend_synchronize(shared, NULL));
	get(out, b.key_cache, kc_n * cache_size);
	get(out, b.value_cache, vc_n * cache_size);
	if (b.k_scale_cache) {
		get(out, b.k_scale_cache, scache_n * 4);
		get(out, b.v_scale_cache, scache_n * 4);
	}
	get(out, b.counters, sizeof zero_counters);
	get(out, b.amax, sizeof amax_init);

	/* a second write on top, plain scale, into the same caches */
	if (fp8 && jb->mode != FP8KV_SCALE_TOKEN_HEAD) {
		d.scale_mode = FP8KV_SCALE_ONE;
		d.num_tokens = T / 2;
		blob_status(out, fp8kv_reshape_and_cache(shared, &d, NULL));
		get(out, b.key_cache, kc_n * cache_size);
		d.scale_mode = jb->mode;
		d.num_tokens = T;
	}

	/* flat conversions of the key input, and back: codes at 0, f32 at f32_at,
	 * the input dtype after them */
	const fp8kv_dtype fmt = fp8 ? jb->cache : FP8KV_E4M3FN;
	const size_t f32_at = (key_n + 15) & ~(size_t)15, wide_at = f32_at + 4 * key_n;
	if (!put(&b.flat, NULL, wide_at + in_size * key_n, out))
		goto free_perm;
	blob_status(out, fp8kv_quantize(shared, b.flat, fmt, b.key, jb->input, key_n,
					b.k_scale ? FP8KV_SCALE_TENSOR : FP8KV_SCALE_ONE,
					b.k_scale, jb->overflow, b.counters, NULL));
	get(out, b.flat, key_n);
	get(out, b.counters, sizeof zero_counters);
	blob_status(out, fp8kv_dequantize(shared, (uint8_t *)b.flat + f32_at, FP8KV_F32, b.flat,
					  fmt, key_n, FP8KV_SCALE_TENSOR, b.amax, NULL));
	blob_status(out, fp8kv_dequantize(shared, (uint8_t *)b.flat + wide_at, jb->input, b.flat,
					  fmt, key_n, FP8KV_SCALE_ONE, NULL, NULL));
	get(out, (uint8_t *)b.flat + f32_at, (4 + in_size) * key_n);

	/* helpers */
	float amax = -1.0f;
	blob_status(out, fp8kv_amax(shared, b.value, jb->input, value_n, &amax));
	blob_add(out, &amax, sizeof amax);
	fp8kv_slot_report report;
	blob_status(out, fp8kv_check_slots(shared, b.slots, T, jb->slot_type, slots_n, &report));
	blob_add(out, &report, sizeof report);

	/* calls that fail, with messages free of addresses */
	d.num_blocks = 0;
	blob_status(out, fp8kv_reshape_and_cache(shared, &d, NULL));
	d.num_blocks = NB;
	d.key_cache_stride_head = jb->DK - 1 - (int64_t)j % 2;
	blob_status(out, fp8kv_reshape_and_cache(shared, &d, NULL));
	blob_status(out, fp8kv_quantize(shared, b.flat, FP8KV_BF16, b.key, jb->input, 4,
					FP8KV_SCALE_ONE, NULL, SAT, NULL, NULL));
	blob_status(out, fp8kv_amax(shared, b.key, FP8KV_E5M2, 4, &amax));
	blob_status(out, fp8kv_check_slots(shared, b.slots, -(int64_t)j - 1, jb->slot_type, 4,
					   &report));
	get(out, b.key_cache, kc_n * cache_size); /* untouched by the failures */

free_perm:
	free(perm);
done:
	free(host);
	free_buffers(&b);
}

static blob reference[NJOBS];

static void compute_reference(void)
{
	for (int j = 0; j < NJOBS; j++) {
		free(reference[j].data);
		memset(&reference[j], 0, sizeof reference[j]);
		run_job(j, &reference[j]);
	}
}

static void setup(void)
{
	ck_assert_int_eq(fp8kv_backend_open("cpu", &shared), FP8KV_OK);
	compute_reference();
}

static void teardown(void)
{
	fp8kv_backend_close(shared);
	shared = NULL;
	for (int j = 0; j < NJOBS; j++) {
		free(reference[j].data);
		memset(&reference[j], 0, sizeof reference[j]);
	}
}

/* ---- the threads ---- */

typedef struct worker {
	pthread_t thread;
	int id;
	int failures;
	char first_failure[256];
} worker;

static pthread_barrier_t barrier;

__attribute__((format(printf, 2, 3)))
static void failed(worker *w, const char *fmt, ...)
{
	if (w->failures++ == 0) {
		va_list ap;
		int n = snprintf(w->first_failure, sizeof w->first_failure, "thread %d: ", w->id);
		va_start(ap, fmt);
		vsnprintf(w->first_failure + n, sizeof w->first_failure - (size_t)n, fmt, ap);
		va_end(ap);
	}
}

static void compare_with_reference(worker *w, int j, const blob *got)
{
	const blob *ref = &reference[j];
	if (got->oom) {
		failed(w, "job '%s': out of memory", jobs[j].name);
		return;
	}
	if (got->len != ref->len) {
		failed(w, "job '%s': %zu result bytes, the single-threaded run had %zu", jobs[j].name,
		       got->len, ref->len);
		return;
	}
	for (size_t i = 0; i < got->len; i++)
		if (got->data[i] != ref->data[i]) {
			failed(w, "job '%s': result byte %zu (of %zu) differs from the single-threaded run",
			       jobs[j].name, i, got->len);
			return;
		}
}

static void *run_jobs(void *arg)
{
	worker *w = arg;
	for (int round = 0; round < ROUNDS; round++)
		for (int k = 0; k < NJOBS; k++) {
			/* each thread its own order: neighbours run different jobs */
			const int j = (k * (round % 2 ? NJOBS - 1 : 1) + w->id + round) % NJOBS;
			blob got = {0};
			run_job(j, &got);
			compare_with_reference(w, j, &got);
			free(got.data);
		}
	return NULL;
}

/* Every thread fails with its own value; after a barrier, each must read
 * its own message.  Then half of them succeed: their message is cleared and
 * the others' are not. */
static void *own_errors(void *arg)
{
	worker *w = arg;
	char want[64];
	fp8kv_cache_write d;

	for (int round = 0; round < 50; round++) {
		const int64_t bad = -(int64_t)(1000 * round + w->id + 1);
		fp8kv_cache_write_init(&d, 1, bad, 8, 8, 1, 1, FP8KV_LAYOUT_NHD);
		snprintf(want, sizeof want, "num_heads must be >= 1 (got %" PRId64 ")", bad);
		if (fp8kv_reshape_and_cache(shared, &d, NULL) != FP8KV_EINVAL)
			failed(w, "num_heads %" PRId64 " was not FP8KV_EINVAL", bad);
		pthread_barrier_wait(&barrier);
		if (strcmp(fp8kv_last_error(), want) != 0)
			failed(w, "after the barrier fp8kv_last_error() is '%s', not its own '%s'",
			       fp8kv_last_error(), want);
		pthread_barrier_wait(&barrier);
		if (w->id % 2) {
			fp8kv_dtype t;
			if (fp8kv_dtype_from_name("bf16", &t) != FP8KV_OK)
				failed(w, "fp8kv_dtype_from_name(\"bf16\") failed");
		}
		pthread_barrier_wait(&barrier);
		if (strcmp(fp8kv_last_error(), w->id % 2 ? "" : want) != 0)
			failed(w, "another thread's call changed its message to '%s'",
			       fp8kv_last_error());
		pthread_barrier_wait(&barrier);
	}
	return NULL;
}

/* Handles opened and closed by every thread while the others work. */
static void *open_close(void *arg)
{
	worker *w = arg;
	for (int i = 0; i < 20; i++) {
		fp8kv_backend *b = NULL;
		void *p = NULL;
		if (fp8kv_backend_open("cpu", &b) != FP8KV_OK ||
		    fp8kv_buffer_alloc(b, 4096 + 64 * (size_t)i, &p) != FP8KV_OK ||
		    fp8kv_buffer_fill(b, p, (uint8_t)i, 4096) != FP8KV_OK ||
		    strcmp(fp8kv_backend_name(b), "cpu") != 0)
			failed(w, "open/alloc/fill on a private handle failed: %s", fp8kv_last_error());
		fp8kv_buffer_free(b, p);
		fp8kv_backend_close(b);
	}
	return run_jobs(arg);
}

static void run_workers(void *(*fn)(void *))
{
	worker w[NTHREADS];
	memset(w, 0, sizeof w);
	ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, NTHREADS), 0);
	for (int i = 0; i < NTHREADS; i++) {
		w[i].id = i;
		ck_assert_int_eq(pthread_create(&w[i].thread, NULL, fn, &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_join(w[i].thread, NULL), 0);
	pthread_barrier_destroy(&barrier);
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_msg(w[i].failures == 0, "%d failure(s), the first: %s", w[i].failures,
			      w[i].first_failure);
}

START_TEST(reference_is_reproducible)
{
	/* the jobs are deterministic on one thread, or nothing below means much */
	for (int j = 0; j < NJOBS; j++) {
		blob again = {0};
		run_job(j, &again);
		ck_assert_msg(!again.oom && again.len == reference[j].len &&
				      memcmp(again.data, reference[j].data, again.len) == 0,
			      "job '%s' gave other bytes on a second run", jobs[j].name);
		free(again.data);
	}
}
END_TEST

START_TEST(the_jobs_make_sense)
{
	/* each job wrote something and reported what it should */
	for (int j = 0; j < NJOBS; j++) {
		int32_t code;
		ck_assert_uint_gt(reference[j].len, 8);
		memcpy(&code, reference[j].data, sizeof code);
		ck_assert_msg(code == (jobs[j].bad_slot ? FP8KV_ERANGE : FP8KV_OK),
			      "job '%s': the write returned %d (%s)", jobs[j].name, (int)code,
			      (const char *)reference[j].data + 4);
	}
}
END_TEST

START_TEST(shared_handle_gives_single_threaded_bytes)
{
	run_workers(run_jobs);
}
END_TEST

START_TEST(private_handles_come_and_go)
{
	run_workers(open_close);
}
END_TEST

START_TEST(last_error_is_per_thread)
{
	run_workers(own_errors);
}
END_TEST

static Suite *threads_suite(void)
{
	Suite *s = suite_create("threads");
	TCase *tc = tcase_create("shared handle");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, reference_is_reproducible);
	tcase_add_test(tc, the_jobs_make_sense);
	tcase_add_test(tc, shared_handle_gives_single_threaded_bytes);
	tcase_add_test(tc, private_handles_come_and_go);
	tcase_add_test(tc, last_error_is_per_thread);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(threads_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed_tests = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed_tests ? EXIT_FAILURE : EXIT_SUCCESS;
}
