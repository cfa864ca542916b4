/* SPDX-License-Identifier: MIT */
/* backend.c - the CPU backend's lifetime, buffers, table and entry. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

/* "123" as 123, or -1 unless s is 1 to 9 digits, with nothing after them
 * but the characters of tail */
static long parse_count(const char *s, const char *tail)
{
	long n = 0;
	int digits = 0;
	while (*s >= '0' && *s <= '9' && digits < 9) {
		n = 10 * n + (*s++ - '0');
		digits++;
	}
	if (!digits || (*s && !strchr(tail, *s)))
		return -1;
	return n;
}

/* The backend's team size (C-THREADS): FP8KV_NUM_THREADS (a bad value is
 * an error naming it, in every build), else OpenMP's own variable (its first
 * value; libgomp judges a bad one), else omp_get_num_procs(), the processors
 * of this process's affinity mask, which is libgomp's own default.  Never
 * omp_get_max_threads(): omp_set_num_threads() by any library in the
 * process changes it. */
static fp8kv_status cpu_thread_count(int *threads)
{
	*threads = 1;
	const char *env = getenv("FP8KV_NUM_THREADS");
	if (env) {
		const long n = parse_count(env, "");
		if (n < 1 || n > CPU_MAX_THREADS)
			return CPU_ERROR(FP8KV_EINVAL,
					 "cpu: FP8KV_NUM_THREADS='%.40s' is not a thread count from 1 "
					 "to %d",
					 env, CPU_MAX_THREADS);
#ifdef _OPENMP
		*threads = (int)n;
#endif
		return FP8KV_OK;
	}
#ifdef _OPENMP
	env = getenv("OMP_NUM_THREADS");
	if (env) {
		while (*env == ' ' || *env == '\t')
			env++;
		const long n = parse_count(env, ", \t");
		if (n >= 1 && n <= CPU_MAX_THREADS) {
			*threads = (int)n;
			return FP8KV_OK;
		}
	}
	const int procs = omp_get_num_procs();
	*threads = procs < 1 ? 1 : procs > CPU_MAX_THREADS ? CPU_MAX_THREADS : procs;
#endif
	return FP8KV_OK;
}

static fp8kv_status cpu_open(int device, void **ctx)
{
	if (device > 0)
		return CPU_ERROR(FP8KV_ENODEV, "backend 'cpu' has only device 0");
	int threads;
	const fp8kv_status st = cpu_thread_count(&threads);
	if (st != FP8KV_OK)
		return st;
	cpu_context *c = malloc(sizeof *c);
	if (!c)
		return CPU_ERROR(FP8KV_ENOMEM, "cpu: no memory for the backend");
	c->threads = threads;
#ifdef _OPENMP
	snprintf(c->description, sizeof c->description, "host CPU, %d OpenMP thread%s", threads,
		 threads == 1 ? "" : "s");
#else
	snprintf(c->description, sizeof c->description, "host CPU, 1 thread (no OpenMP)");
#endif
	*ctx = c;
	return FP8KV_OK;
}

static void cpu_close(void *ctx) { free(ctx); }
static const char *cpu_name(void *ctx) { (void)ctx; return "cpu"; }
static const char *cpu_device(void *ctx) { return ((cpu_context *)ctx)->description; }
static fp8kv_status cpu_synchronize(void *ctx, void *stream)
{
	(void)ctx;
	(void)stream;
	return FP8KV_OK;
}

static fp8kv_status cpu_alloc(void *ctx, size_t bytes, void **ptr)
{
	(void)ctx;
	const size_t rounded = (bytes + 255) & ~(size_t)255;
	if (rounded < bytes || !(*ptr = aligned_alloc(256, rounded)))
		return CPU_ERROR(FP8KV_ENOMEM, "cpu: cannot allocate %zu bytes", bytes);
	return FP8KV_OK;
}

static void cpu_free(void *ctx, void *ptr) { (void)ctx; free(ptr); }

static fp8kv_status cpu_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
	(void)ctx;
	memmove(dst, src, bytes);
	return FP8KV_OK;
}

static fp8kv_status cpu_fill(void *ctx, void *dst, uint8_t byte, size_t bytes)
{
	(void)ctx;
	memset(dst, byte, bytes);
	return FP8KV_OK;
}

static const fp8kv_backend_ops cpu_backend = {
	.abi = FP8KV_MODULE_ABI,
	.name = "cpu",
	.open = cpu_open,
	.close = cpu_close,
	.canonical_name = cpu_name,
	.device = cpu_device,
	.synchronize = cpu_synchronize,
	.alloc = cpu_alloc,
	.free = cpu_free,
	.upload = cpu_copy,
	.download = cpu_copy,
	.fill = cpu_fill,
	.reshape_and_cache = cpu_reshape_and_cache,
	.quantize = cpu_quantize,
	.dequantize = cpu_dequantize,
	.amax = cpu_amax,
	.check_slots = cpu_check_slots,
	/* one writer for every plan: the sides' recipes say how (A-RECIPE) */
	.reshape_and_cache_grouped = cpu_reshape_and_cache,
	.concat_and_cache_mla = cpu_reshape_and_cache,
};

const fp8kv_host_services *fp8kv_cpu_host;

const fp8kv_backend_ops *fp8kv_cpu_entry(const fp8kv_host_services *host)
{
	if (!host || !host->set_error)
		return NULL;
	/* every open calls the entry, from any thread: the same pointer each
	 * time, stored atomically */
	__atomic_store_n(&fp8kv_cpu_host, host, __ATOMIC_RELEASE);
	return &cpu_backend;
}
