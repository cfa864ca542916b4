// SPDX-License-Identifier: MIT
/*
 * fp8kv_hip.hip - the HIP backend: fp8kv's calls as GPU kernels, for AMD
 * GPUs (hipcc, clang) and NVIDIA GPUs (nvcc, through hip_compat.h).
 *
 * The bytes are those of the CPU backend: every conversion goes through
 * lib/fp8_convert.h and every slot through lib/write_plan.h, divisions are
 * IEEE fp32 divisions (the build keeps correctly rounded division,
 * denormals and no contraction), and the row-level decisions follow
 * cpu/cache_write.c.  Only the order in which two tokens mapped to one slot
 * land is left to the hardware.  Nothing on the launch path allocates,
 * synchronizes or copies.
 *
 * One translation unit, in rooms (hip/README maps them), each of which
 * includes what it uses (make check compiles each alone):
 *   device_common.h   launch constants, index arithmetic, team reductions
 *   device_convert.h  the conversion and division on the device
 *   amd_hw_fp8.h      gfx942/gfx950 FP8 instructions, off by default
 *   amd_hw_mx.h       gfx950's scaled (MX) conversions, same switch
 *   error_ring.h      out-of-range tokens reported without a round trip
 *   write_params.h    what a cache write kernel receives
 *   write_kernels.h   the cache write's general kernel
 *   write_specialized.h  and its hot path, specialized at compile time
 *   flat_kernels.h    quantize, dequantize, amax, check_slots
 *   context.h         the per-device state
 *   launch_policy.h   which write kernel, with which grid
 *   group_rows.h      rows of group scales, element by element
 *   side_kernels.h    the general kernel of plans whose sides differ
 *   group_fast.h      the fast grouped kernel (MX, NVFP4, int8, MLA_DS)
 *   group_policy.h    which of those, with which team (plain C)
 *   group_launch.h    and its launch
 *   this file         the backend's calls, buffers and the module entry
 * The module takes everything it needs from the library through the
 * services its entry receives, never by symbol (lib/backend.h).
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "context.h"
#include "error_ring.h"
#include "flat_kernels.h"
#include "fp8_convert.h"
#include "group_launch.h"
#include "hip_compat.h"
#include "launch_policy.h"
#include "write_kernels.h"
#include "write_params.h"
#include "write_plan.h"

#ifndef FP8KV_HIP_TARGETS
#define FP8KV_HIP_TARGETS "?"
#endif

static fp8kv_status report_error(const pending_report *r)
{
	return fp8kv_range_error(HOST->set_error, (int64_t)r->token, (int64_t)r->slot,
				 (int64_t)r->limit, r->swa);
}

static fp8kv_status hip_open(int device, void **out)
{
	int count = 0;
	hipError_t e = hipGetDeviceCount(&count);
	if (e != hipSuccess) {
		(void)hipGetLastError();
		return HOST->set_error(FP8KV_ENODEV, "hip: no usable GPU (hipGetDeviceCount: %s)",
				       hipGetErrorString(e));
	}
	if (count <= 0)
		return HOST->set_error(FP8KV_ENODEV, "hip: no GPU found");
	if (device < 0)
		device = 0;
	if (device >= count)
		return HOST->set_error(FP8KV_ENODEV, "hip: device %d requested, %d present", device,
				       count);

	hip_context *c = (hip_context *)calloc(1, sizeof *c);
	if (!c)
		return HOST->set_error(FP8KV_ENOMEM, "hip: no memory for the backend");
	c->device = device;
	device_guard guard(device);
	fp8kv_status st = FP8KV_OK;

	hipDeviceProp_t prop;
	memset(&prop, 0, sizeof prop);
	if ((e = hipGetDeviceProperties(&prop, device)) != hipSuccess) {
		st = runtime_error(FP8KV_ENODEV, "hipGetDeviceProperties", e);
		goto fail;
	}
	c->sm_count = prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 1;
	{
		char arch[64];
#if defined(__NVCC__)
		snprintf(arch, sizeof arch, "sm_%d%d", prop.major, prop.minor);
#else
		snprintf(arch, sizeof arch, "%.63s", prop.gcnArchName);
		arch[strcspn(arch, ":")] = '\0';  // "gfx90a:sramecc+:xnack-"
#endif
		snprintf(c->name, sizeof c->name, "hip:%d", device);
		snprintf(c->description, sizeof c->description, "%.200s (%.60s)", prop.name, arch);

		// the module must hold code for this device
		hipFuncAttributes attr;
		if ((e = hipFuncGetAttributes(
			     &attr, (const void *)write_general_kernel<FP8KV_CV_BF16, true>)) !=
		    hipSuccess) {
			(void)hipGetLastError();
			st = HOST->set_error(FP8KV_ENODEV,
					     "hip: %s: fp8kv_hip.so has no code for %s (built for %s): %s",
					     c->name, arch, FP8KV_HIP_TARGETS, hipGetErrorString(e));
			goto fail;
		}
	}
	c->dependent_launch =
		fp8kv_dependent_launch_usable(write_general_kernel<FP8KV_CV_BF16, true>);

	if ((e = hipMalloc((void **)&c->dev, sizeof(dev_state))) != hipSuccess) {
		st = runtime_error(FP8KV_ENOMEM, "hipMalloc (error state)", e);
		goto fail;
	}
	{
		dev_state init;
		memset(&init, 0, sizeof init);
		for (int i = 0; i < RING; i++)
			init.ring[i].token = NO_TOKEN;
		if ((e = hipMemcpy(c->dev, &init, sizeof init, hipMemcpyHostToDevice)) != hipSuccess) {
			st = runtime_error(FP8KV_EBACKEND, "hipMemcpy (error state)", e);
			goto fail;
		}
	}
	if ((e = hipHostMalloc((void **)&c->report, sizeof(host_report),
			       hipHostMallocMapped | hipHostMallocCoherent)) != hipSuccess) {
		c->report = NULL;
		st = runtime_error(FP8KV_ENOMEM, "hipHostMalloc (error report)", e);
		goto fail;
	}
	memset(c->report, 0, sizeof *c->report);
	if ((e = hipHostGetDevicePointer((void **)&c->report_dev, c->report, 0)) != hipSuccess) {
		st = runtime_error(FP8KV_EBACKEND, "hipHostGetDevicePointer", e);
		goto fail;
	}
	if ((e = hipDeviceSynchronize()) != hipSuccess) {
		st = runtime_error(FP8KV_EBACKEND, "hipDeviceSynchronize", e);
		goto fail;
	}
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		st = HOST->set_error(FP8KV_EBACKEND, "hip: cannot create a mutex");
		goto fail;
	}
	*out = c;
	return FP8KV_OK;

fail:
	if (c->report)
		(void)hipHostFree(c->report);
	if (c->dev)
		(void)hipFree(c->dev);
	(void)hipGetLastError();
	free(c);
	return st;
}

static void hip_close(void *ctx)
{
	hip_context *c = (hip_context *)ctx;
	{
		device_guard guard(c->device);
		(void)hipDeviceSynchronize();
		(void)hipFree(c->dev);
		(void)hipHostFree(c->report);
		(void)hipGetLastError();
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static const char *hip_name(void *ctx)
{
	return ((hip_context *)ctx)->name;
}

static const char *hip_device(void *ctx)
{
	return ((hip_context *)ctx)->description;
}

static fp8kv_status hip_synchronize(void *ctx, void *stream)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	const hipError_t e = hipStreamSynchronize((hipStream_t)stream);
	if (e != hipSuccess)
		return runtime_error(FP8KV_EBACKEND, "hipStreamSynchronize", e);
	pending_report r = {0, 0, 0, 0};
	if (take_report(c->report, &c->lock, &r))
		return report_error(&r);
	return FP8KV_OK;
}

/* ---- buffers: synchronous, on the default stream ---- */

static fp8kv_status hip_alloc(void *ctx, size_t bytes, void **ptr)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	void *p = NULL;
	const hipError_t e = hipMalloc(&p, bytes);
	if (e != hipSuccess) {
		(void)hipGetLastError();
		return HOST->set_error(FP8KV_ENOMEM, "hip: cannot allocate %zu bytes on %s: %s",
				       bytes, c->name, hipGetErrorString(e));
	}
	*ptr = p;
	return FP8KV_OK;
}

static void hip_free(void *ctx, void *ptr)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	if (hipFree(ptr) != hipSuccess)
		(void)hipGetLastError();
}

static fp8kv_status hip_upload(void *ctx, void *dst, const void *src, size_t bytes)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	hipError_t e = hipMemcpy(dst, src, bytes, hipMemcpyHostToDevice);
	if (e == hipSuccess)
		e = hipStreamSynchronize(0);  // a pageable copy may return before the DMA ends
	return e == hipSuccess ? FP8KV_OK : runtime_error(FP8KV_EBACKEND, "upload (hipMemcpy)", e);
}

static fp8kv_status hip_download(void *ctx, void *dst, const void *src, size_t bytes)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	const hipError_t e = hipMemcpy(dst, src, bytes, hipMemcpyDeviceToHost);
	return e == hipSuccess ? FP8KV_OK
			       : runtime_error(FP8KV_EBACKEND, "download (hipMemcpy)", e);
}

static fp8kv_status hip_fill(void *ctx, void *dst, uint8_t byte, size_t bytes)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	hipError_t e = hipMemsetAsync(dst, byte, bytes, 0);
	if (e == hipSuccess)
		e = hipStreamSynchronize(0);
	return e == hipSuccess ? FP8KV_OK : runtime_error(FP8KV_EBACKEND, "fill (hipMemset)", e);
}

/* ---- the cache write ---- */

// The kernels of a write: launch_cache_write (section 7) or
// launch_sides_write (sections 8 and 9, whose sides may differ).
typedef hipError_t (*write_launcher)(const hip_context *c, write_params &p, hipStream_t stream);

static fp8kv_status hip_write(void *ctx, const fp8kv_write_plan *plan, void *stream,
			      write_launcher launch, const char *what)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	const hipStream_t s = (hipStream_t)stream;

	// an error an earlier launch published is this call's to report
	pending_report earlier = {0, 0, 0, 0};
	const int have_earlier = take_report(c->report, &c->lock, &earlier);

	write_params p;
	memset(&p, 0, sizeof p);
	p.plan = *plan;

	// a ring entry: graph replays keep theirs, so eager launches never share it
	hipStreamCaptureStatus capture = hipStreamCaptureStatusNone;
	if (hipStreamIsCapturing(s, &capture) != hipSuccess) {
		(void)hipGetLastError();
		capture = hipStreamCaptureStatusNone;
	}
	const unsigned int entry =
		capture == hipStreamCaptureStatusActive
			? RING_EAGER + __atomic_fetch_add(&c->graph_seq, 1u, __ATOMIC_RELAXED) % RING_GRAPH
			: __atomic_fetch_add(&c->eager_seq, 1u, __ATOMIC_RELAXED) % RING_EAGER;
	p.errors.entry = (err_entry *)((char *)c->dev + offsetof(dev_state, ring) +
				       entry * sizeof(err_entry));
	p.errors.claim = (unsigned long long *)((char *)c->dev + offsetof(dev_state, claim));
	p.errors.report = c->report_dev;

	const hipError_t e = launch(c, p, s);
	if (e != hipSuccess)
		return runtime_error(FP8KV_EBACKEND, what, e);
	return have_earlier ? report_error(&earlier) : FP8KV_OK;
}

static fp8kv_status hip_reshape_and_cache(void *ctx, const fp8kv_write_plan *plan, void *stream)
{
	return hip_write(ctx, plan, stream, launch_cache_write, "reshape_and_cache launch");
}

/* Grouped writes (fp8kv.h section 8): both sides grouped alike. */
static fp8kv_status hip_reshape_and_cache_grouped(void *ctx, const fp8kv_write_plan *plan,
						  void *stream)
{
	return hip_write(ctx, plan, stream, launch_sides_write,
			 "reshape_and_cache_grouped launch");
}

/* MLA writes (section 9): one head, the latent side and the RoPE side of
 * one record, by one recipe (FP8KV_MLA_PLAIN) or two (FP8KV_MLA_DS). */
static fp8kv_status hip_concat_and_cache_mla(void *ctx, const fp8kv_write_plan *plan, void *stream)
{
	return hip_write(ctx, plan, stream, launch_sides_write, "concat_and_cache_mla launch");
}

/* ---- flat conversions ---- */

static fp8kv_status hip_quantize(void *ctx, const fp8kv_convert_plan *a, void *stream)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	const hipStream_t s = (hipStream_t)stream;
	const int64_t ve = 16 / a->src_size;
	flat_params p;
	memset(&p, 0, sizeof p);
	p.plan = *a;
	p.vec = (uintptr_t)a->src % 16 == 0 && (uintptr_t)a->dst % (uintptr_t)ve == 0;
	const unsigned int grid = grid_for(c, p.vec ? (a->count + ve - 1) / ve : a->count, BLOCK);
	hipError_t e;
#define QUANTIZE(DT, COUNT) \
	e = fp8kv_launch(quantize_kernel<DT, COUNT>, grid, BLOCK, s, c->dependent_launch, p)
	switch (a->src_dtype * 2 + (a->overflow_count != NULL)) {
	case FP8KV_F32 * 2: QUANTIZE(FP8KV_CV_F32, false); break;
	case FP8KV_F32 * 2 + 1: QUANTIZE(FP8KV_CV_F32, true); break;
	case FP8KV_F16 * 2: QUANTIZE(FP8KV_CV_F16, false); break;
	case FP8KV_F16 * 2 + 1: QUANTIZE(FP8KV_CV_F16, true); break;
	case FP8KV_BF16 * 2: QUANTIZE(FP8KV_CV_BF16, false); break;
	default: QUANTIZE(FP8KV_CV_BF16, true); break;
	}
#undef QUANTIZE
	return e == hipSuccess ? FP8KV_OK : runtime_error(FP8KV_EBACKEND, "quantize launch", e);
}

static fp8kv_status hip_dequantize(void *ctx, const fp8kv_convert_plan *a, void *stream)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	const hipStream_t s = (hipStream_t)stream;
	flat_params p;
	memset(&p, 0, sizeof p);
	p.plan = *a;
	const unsigned int grid = grid_for(c, a->count, BLOCK);
	hipError_t e;
#define DEQUANTIZE(DT) \
	e = fp8kv_launch(dequantize_kernel<DT>, grid, BLOCK, s, c->dependent_launch, p)
	switch (a->dst_dtype) {
	case FP8KV_F32: DEQUANTIZE(FP8KV_CV_F32); break;
	case FP8KV_F16: DEQUANTIZE(FP8KV_CV_F16); break;
	default: DEQUANTIZE(FP8KV_CV_BF16); break;
	}
#undef DEQUANTIZE
	return e == hipSuccess ? FP8KV_OK : runtime_error(FP8KV_EBACKEND, "dequantize launch", e);
}

/* ---- synchronous helpers ---- */

static fp8kv_status hip_amax(void *ctx, const void *src, fp8kv_dtype dtype, size_t count,
			     float *amax)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	unsigned int *d_out = NULL, bits = 0;
	hipError_t e = hipMalloc((void **)&d_out, sizeof *d_out);
	if (e != hipSuccess)
		return runtime_error(FP8KV_ENOMEM, "amax: hipMalloc", e);
	const int64_t n = (int64_t)count;
	const unsigned int grid = grid_for(c, n, BLOCK);
	e = hipMemsetAsync(d_out, 0, sizeof *d_out, 0);
	if (e == hipSuccess) {
		switch (dtype) {
		case FP8KV_F32: amax_kernel<FP8KV_CV_F32><<<grid, BLOCK, 0, 0>>>(src, n, d_out); break;
		case FP8KV_F16: amax_kernel<FP8KV_CV_F16><<<grid, BLOCK, 0, 0>>>(src, n, d_out); break;
		default: amax_kernel<FP8KV_CV_BF16><<<grid, BLOCK, 0, 0>>>(src, n, d_out); break;
		}
		e = hipGetLastError();
	}
	if (e == hipSuccess)
		e = hipMemcpy(&bits, d_out, sizeof bits, hipMemcpyDeviceToHost);
	const hipError_t freed = hipFree(d_out);
	if (e == hipSuccess)
		e = freed;
	if (e != hipSuccess)
		return runtime_error(FP8KV_EBACKEND, "amax", e);
	*amax = fp8kv_bits_f32(bits);
	return FP8KV_OK;
}

static fp8kv_status hip_check_slots(void *ctx, const void *slots, int64_t count,
				    fp8kv_index_type type, int64_t num_slots,
				    fp8kv_slot_report *r)
{
	hip_context *c = (hip_context *)ctx;
	device_guard guard(c->device);
	const size_t words = (size_t)(num_slots / 64 + 1);
	if (words > (SIZE_MAX - sizeof(slot_totals)) / 8)
		return HOST->set_error(FP8KV_ENOMEM, "hip: no memory for a %" PRId64 "-slot bitmap",
				       num_slots);
	const size_t bytes = sizeof(slot_totals) + words * 8;
	unsigned char *mem = NULL;
	hipError_t e = hipMalloc((void **)&mem, bytes);
	if (e != hipSuccess) {
		(void)hipGetLastError();
		return HOST->set_error(FP8KV_ENOMEM,
				       "hip: no memory for a %" PRId64 "-slot bitmap: %s", num_slots,
				       hipGetErrorString(e));
	}
	slot_totals *d_tot = (slot_totals *)mem;
	unsigned long long *bitmap = (unsigned long long *)(mem + sizeof(slot_totals));
	slot_totals tot;
	memset(&tot, 0, sizeof tot);
	tot.first_padding = tot.first_out_of_range = NO_TOKEN;
	const unsigned int grid = grid_for(c, count, BLOCK);
	const int itype = (int)type;

	e = hipMemcpy(d_tot, &tot, sizeof tot, hipMemcpyHostToDevice);
	if (e == hipSuccess)
		e = hipMemsetAsync(bitmap, 0, words * 8, 0);
	if (e == hipSuccess) {
		check_slots_kernel<<<grid, BLOCK, 0, 0>>>(slots, itype, count, num_slots, bitmap,
							  d_tot);
		e = hipGetLastError();
	}
	if (e == hipSuccess)
		e = hipMemcpy(&tot, d_tot, sizeof tot, hipMemcpyDeviceToHost);

	// The first duplicate is the smallest T - 1 such that tokens [0, T) hold
	// two equal slots: a binary search on T, each probe a fresh bitmap.
	int64_t first_duplicate = -1;
	if (e == hipSuccess && tot.duplicates > 0) {
		int64_t lo = 1, hi = count;  // [0, lo) has no duplicate, [0, hi) has one
		clear_bits_kernel<<<grid, BLOCK, 0, 0>>>(slots, itype, count, num_slots, bitmap);
		e = hipGetLastError();
		while (e == hipSuccess && hi - lo > 1) {
			const int64_t mid = lo + (hi - lo) / 2;
			const unsigned int g = grid_for(c, mid, BLOCK);
			unsigned long long found = 0;
			e = hipMemsetAsync(&d_tot->found, 0, sizeof found, 0);
			if (e == hipSuccess) {
				check_dup_prefix_kernel<<<g, BLOCK, 0, 0>>>(slots, itype, mid,
									    num_slots, bitmap, d_tot);
				clear_bits_kernel<<<g, BLOCK, 0, 0>>>(slots, itype, mid, num_slots,
								      bitmap);
				e = hipGetLastError();
			}
			if (e == hipSuccess)
				e = hipMemcpy(&found, &d_tot->found, sizeof found,
					      hipMemcpyDeviceToHost);
			if (found)
				hi = mid;
			else
				lo = mid;
		}
		first_duplicate = hi - 1;
	}
	const hipError_t freed = hipFree(mem);
	if (e == hipSuccess)
		e = freed;
	if (e != hipSuccess)
		return runtime_error(FP8KV_EBACKEND, "check_slots", e);

	r->padding = (int64_t)tot.padding;
	r->out_of_range = (int64_t)tot.out_of_range;
	r->duplicates = (int64_t)tot.duplicates;
	r->first_padding = tot.padding ? (int64_t)tot.first_padding : -1;
	r->first_out_of_range = tot.out_of_range ? (int64_t)tot.first_out_of_range : -1;
	r->first_duplicate = first_duplicate;
	return FP8KV_OK;
}

/* ---- the entry point: the module's one export, or, linked into the
 * library (FP8KV_HIP_LINKED), a hidden function lib/fp8kv.c calls ---- */

static const fp8kv_backend_ops hip_backend = {
	FP8KV_MODULE_ABI,
	"hip",
	hip_open,
	hip_close,
	hip_name,
	hip_device,
	hip_synchronize,
	hip_alloc,
	hip_free,
	hip_upload,
	hip_download,
	hip_fill,
	hip_reshape_and_cache,
	hip_quantize,
	hip_dequantize,
	hip_amax,
	hip_check_slots,
	hip_reshape_and_cache_grouped,
	hip_concat_and_cache_mla,
};

#if FP8KV_HIP_LINKED
#define HIP_ENTRY fp8kv_hip_entry
#define HIP_ENTRY_VISIBILITY "hidden"
#else
#define HIP_ENTRY fp8kv_module_entry
#define HIP_ENTRY_VISIBILITY "default"
#endif

extern "C" __attribute__((visibility(HIP_ENTRY_VISIBILITY))) const fp8kv_backend_ops *
HIP_ENTRY(const fp8kv_host_services *services)
{
	if (!services || !services->set_error)
		return NULL;
	__atomic_store_n(&host_services_bits, (uintptr_t)services, __ATOMIC_RELEASE);
	return &hip_backend;
}

