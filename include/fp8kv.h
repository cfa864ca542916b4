/* SPDX-License-Identifier: MIT */
/*
 * fp8kv.h - the fused FP8 KV-cache write ("reshape and cache"), exact.
 *
 * fp8kv writes the key/value rows produced by an attention layer into a
 * paged KV cache, converting them to FP8 on the way, in one pass: what vLLM
 * and SGLang call reshape_and_cache_flash.  Every backend produces the same
 * bytes; the CPU backend is the golden reference the others are held to.
 *
 * This header is the manual.  Read it top to bottom:
 *   1. status codes and errors        5. the conversion contract
 *   2. data types                     6. scalar and bulk conversion
 *   3. backends                       7. the cache write
 *   4. buffers in a backend's memory  8. helpers (amax, scales, slots)
 *
 * Conventions: every function that can fail returns an fp8kv_status; on
 * failure fp8kv_last_error() gives a message naming the argument and the
 * value.  The library never prints, never aborts, and never touches a GPU
 * before fp8kv_backend_open() asks for one.  Sizes and strides are counted in
 * elements of the array they describe, never in bytes.
 */
#ifndef FP8KV_H
#define FP8KV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FP8KV_BUILDING) && defined(__GNUC__)
#define FP8KV_API __attribute__((visibility("default")))
#else
#define FP8KV_API
#endif

/* Release number of this header, and of the package (configure reads it
 * here).  The shared library's ABI is versioned separately, by its soname
 * and the symbol version FP8KV_1. */
#define FP8KV_VERSION_MAJOR 0
#define FP8KV_VERSION_MINOR 1
#define FP8KV_VERSION_PATCH 0
#define FP8KV_VERSION_STR_(x) #x
#define FP8KV_VERSION_STR(x) FP8KV_VERSION_STR_(x)
#define FP8KV_VERSION_STRING                                                    \
	FP8KV_VERSION_STR(FP8KV_VERSION_MAJOR) "." FP8KV_VERSION_STR(FP8KV_VERSION_MINOR) "." \
	FP8KV_VERSION_STR(FP8KV_VERSION_PATCH)
#define FP8KV_VERSION_NUMBER \
	(FP8KV_VERSION_MAJOR * 10000 + FP8KV_VERSION_MINOR * 100 + FP8KV_VERSION_PATCH)

/* The version of the library actually loaded, as "MAJOR.MINOR.PATCH". */
FP8KV_API const char *fp8kv_version(void);

/* ---------------------------------------------------------------- 1. errors */

typedef enum fp8kv_status {
	FP8KV_OK = 0,
	FP8KV_EINVAL = 1,   /* an argument is invalid (NULL, size, stride, alignment) */
	FP8KV_ENOTSUP = 2,  /* valid, but this combination is not supported */
	FP8KV_ERANGE = 3,   /* a slot was out of range; those tokens were skipped */
	FP8KV_ENODEV = 4,   /* the backend or its device is absent */
	FP8KV_EBACKEND = 5, /* the backend failed (driver, runtime, module ABI) */
	FP8KV_ENOMEM = 6    /* out of memory, host or device */
} fp8kv_status;

/* A fixed sentence for a status code; never NULL. */
FP8KV_API const char *fp8kv_strerror(fp8kv_status status);

/* The detailed message of the last failure in the calling thread ("" when
 * none).  Valid until the next fp8kv call in this thread. */
FP8KV_API const char *fp8kv_last_error(void);

/* ------------------------------------------------------------ 2. data types */

typedef enum fp8kv_dtype {
	FP8KV_F32 = 0,
	FP8KV_F16 = 1,
	FP8KV_BF16 = 2,
	FP8KV_E4M3FN = 3,   /* OCP e4m3: bias 7, max 448, NaN 0x7F/0xFF, no Inf */
	FP8KV_E4M3FNUZ = 4, /* bias 8, max 240, NaN 0x80, no Inf, no -0 */
	FP8KV_E5M2 = 5,     /* OCP e5m2: bias 15, max 57344, Inf 0x7C/0xFC */
	FP8KV_E5M2FNUZ = 6  /* bias 16, max 57344, NaN 0x80, no Inf, no -0 */
} fp8kv_dtype;

/* What happens to a value too large for the FP8 format. */
typedef enum fp8kv_overflow {
	FP8KV_SATURATE = 0,   /* finite overflow and +-Inf become +-max finite */
	FP8KV_NONSATURATING = 1 /* they become NaN, or +-Inf for e5m2 */
} fp8kv_overflow;

/* Where the divisor of the conversion comes from (section 5 and 7).  Every
 * scale lives in the backend's memory, as fp32. */
typedef enum fp8kv_scale_mode {
	FP8KV_SCALE_ONE = 0,        /* no scale: q = fp8(x) */
	FP8KV_SCALE_TENSOR = 1,     /* one scale s[0] for the whole tensor */
	FP8KV_SCALE_HEAD = 2,       /* static, one per head: s[h] */
	FP8KV_SCALE_TOKEN_HEAD = 3  /* dynamic, one per written row, computed */
} fp8kv_scale_mode;

/* Integer type of a slot mapping. */
typedef enum fp8kv_index_type {
	FP8KV_INDEX_INT64 = 0,
	FP8KV_INDEX_INT32 = 1
} fp8kv_index_type;

/* Size in bytes of one element (0 for an unknown dtype). */
FP8KV_API size_t fp8kv_dtype_size(fp8kv_dtype dtype);
/* "f32", "f16", "bf16", "e4m3fn", "e4m3fnuz", "e5m2", "e5m2fnuz"; NULL if unknown. */
FP8KV_API const char *fp8kv_dtype_name(fp8kv_dtype dtype);
/* The inverse of fp8kv_dtype_name. */
FP8KV_API fp8kv_status fp8kv_dtype_from_name(const char *name, fp8kv_dtype *dtype);
/* Nonzero for the four FP8 formats. */
FP8KV_API int fp8kv_dtype_is_fp8(fp8kv_dtype dtype);
/* The largest finite value of an FP8 format (448, 240, 57344, 57344); 0 if
 * dtype is not FP8. */
FP8KV_API float fp8kv_fp8_max(fp8kv_dtype format);
/* "one", "tensor", "head", "token_head": the one spelling of each scale mode
 * (tools, Python and reports use it); NULL if unknown.  Symbol version
 * FP8KV_1.1, as the next function. */
FP8KV_API const char *fp8kv_scale_mode_name(fp8kv_scale_mode mode);
/* The inverse of fp8kv_scale_mode_name. */
FP8KV_API fp8kv_status fp8kv_scale_mode_from_name(const char *name, fp8kv_scale_mode *mode);

/* -------------------------------------------------------------- 3. backends */

typedef struct fp8kv_backend fp8kv_backend;

/*
 * Opens a backend by name:
 *   "cpu"       the OpenMP golden reference, always present;
 *   "hip"       the HIP module, device 0; "hip:N" device N;
 *   "auto"/NULL "hip" if it loads and has a device, else "cpu".  With NULL or
 *               "auto", the environment variable FP8KV_BACKEND, when set,
 *               names the backend instead.
 * Any other name NAME loads the module fp8kv_NAME.so.  Modules are searched
 * in the absolute directories of FP8KV_MODULE_PATH (colon-separated;
 * relative ones are ignored), then in the install directory.  A module that
 * is absent, or has no device, gives FP8KV_ENODEV; one built for another
 * module ABI gives FP8KV_EBACKEND.  This is the only call that may
 * initialise a GPU runtime.
 *
 * Loading a module runs its constructors, so FP8KV_MODULE_PATH is a trust
 * boundary, as LD_LIBRARY_PATH is; "auto" loads the hip module before it
 * knows whether a GPU is there.  Setuid and setgid programs ignore
 * FP8KV_MODULE_PATH and FP8KV_BACKEND.
 *
 * "cpu" fixes its own thread count when it is opened: FP8KV_NUM_THREADS
 * (1 to 4096; any other value fails the open with FP8KV_EINVAL), else the
 * first value of OMP_NUM_THREADS, else the processors this process may run
 * on (omp_get_num_procs()).  omp_set_num_threads() by the program or another
 * library (torch sets it) does not change it.  fp8kv_backend_device() says
 * the count ("host CPU, 8 OpenMP threads").
 */
FP8KV_API fp8kv_status fp8kv_backend_open(const char *name, fp8kv_backend **backend);
/* Waits for outstanding work and releases the backend; NULL is ignored. */
FP8KV_API void fp8kv_backend_close(fp8kv_backend *backend);
/* The canonical name, e.g. "cpu" or "hip:0". */
FP8KV_API const char *fp8kv_backend_name(const fp8kv_backend *backend);
/* A short description of the device ("NVIDIA H100 80GB HBM3, sm_90"...). */
FP8KV_API const char *fp8kv_backend_device(const fp8kv_backend *backend);
/*
 * Waits until all work queued on stream (NULL: the default stream) has
 * finished, then reports any error the device recorded since the last
 * report: FP8KV_ERANGE with the first out-of-range token, for instance.
 * Asynchronous backends report such errors here or on the next call; the
 * CPU backend reports them from the call itself.
 */
FP8KV_API fp8kv_status fp8kv_backend_synchronize(fp8kv_backend *backend, void *stream);

/* A handle may be shared by threads; the calls on it are thread-safe.  Each
 * thread sees its own fp8kv_last_error(). */

/* ------------------------------------------------------------- 4. buffers */

/* Memory in the backend's address space (host memory for "cpu", device
 * memory for "hip").  These calls are synchronous: the copy or fill has
 * completed when they return.  Alignment is at least 256 bytes. */
FP8KV_API fp8kv_status fp8kv_buffer_alloc(fp8kv_backend *backend, size_t bytes, void **ptr);
FP8KV_API void fp8kv_buffer_free(fp8kv_backend *backend, void *ptr);
FP8KV_API fp8kv_status fp8kv_buffer_upload(fp8kv_backend *backend, void *dst,
					   const void *host_src, size_t bytes);
FP8KV_API fp8kv_status fp8kv_buffer_download(fp8kv_backend *backend, void *host_dst,
					     const void *src, size_t bytes);
FP8KV_API fp8kv_status fp8kv_buffer_fill(fp8kv_backend *backend, void *dst,
					 uint8_t byte, size_t bytes);

/* ------------------------------------------------- 5. the conversion contract
 *
 * Every backend converts element x of an input to FP8 code q as follows, bit
 * for bit:
 *
 *  1. x (bf16, fp16 or fp32) is widened to fp32 exactly.  With a scale s,
 *     y = x / s as one IEEE fp32 division, correctly rounded (never a
 *     multiplication by 1/s).  With FP8KV_SCALE_ONE, y = x; a scale holding
 *     exactly 1.0 gives the same bytes, since x / 1 == x.  When y is NaN its
 *     sign is that of x if x is NaN, else sign(x) XOR sign(s) (0/0, Inf/Inf,
 *     a NaN scale): fixed here because hardware differs.
 *  2. y is rounded to the FP8 format to nearest, ties to even, subnormals
 *     included (fp32 subnormal y are honoured, never flushed), with the carry
 *     into the next binade.
 *  3. Overflow is decided after rounding: for e4m3fn, 464 rounds to 448 and
 *     anything above 464 overflows; the thresholds are the midpoints
 *     max + ulp(max)/2 (464, 248, 61440, 61440), a tie going to even, which
 *     is the overflowing side except for e4m3fn.
 *  4. Specials:
 *
 *     | y                   | e4m3fn     | e4m3fnuz | e5m2       | e5m2fnuz |
 *     |---------------------|------------|----------|------------|----------|
 *     | NaN                 | 0x7F|sign  | 0x80     | 0x7F|sign  | 0x80     |
 *     | overflow, saturate  | 0x7E|sign  | 0x7F|sign| 0x7B|sign  | 0x7F|sign|
 *     | +-Inf, saturate     | 0x7E|sign  | 0x7F|sign| 0x7B|sign  | 0x7F|sign|
 *     | overflow, nonsat    | 0x7F|sign  | 0x80     | 0x7C|sign  | 0x80     |
 *     | +-Inf, nonsat       | 0x7F|sign  | 0x80     | 0x7C|sign  | 0x80     |
 *     | -0, or rounds to -0 | 0x80       | 0x00     | 0x80       | 0x00     |
 *
 *     (sign = 0x80 for negative y.)  The fnuz formats have no negative zero.
 *  5. FP8 to fp32 is exact; NaN codes give a quiet NaN: 0x7FC00000 with the
 *     code's sign for OCP, the positive 0x7FC00000 for fnuz 0x80.
 *
 * This equals PyTorch's and ml_dtypes' float8 casts in the non-saturating
 * mode, and NVIDIA's cvt.rn.satfinite in the saturating mode (which drops
 * the sign of NaN).  Dequantization is x = float(q) * s, one fp32
 * multiplication (a NaN product signed as in step 1), then rounding to the
 * output dtype to nearest even.
 *
 * A finite x counts as one overflow wherever a call takes an overflow
 * counter when its y overflows (step 3) or when y = x / s is itself +-Inf;
 * +-Inf and NaN inputs do not count.
 */

/* ---------------------------------------------- 6. scalar and bulk conversion */

/* The code of fp32 value y in format (steps 2-4).  Returns 0 when format is
 * not an FP8 format. */
FP8KV_API uint8_t fp8kv_from_float(float y, fp8kv_dtype format, fp8kv_overflow overflow);
/* The exact value of code in format; NaN when format is not FP8. */
FP8KV_API float fp8kv_to_float(uint8_t code, fp8kv_dtype format);

/*
 * dst[i] = fp8(src[i] / s) for i < count, on the backend, asynchronously on
 * stream.  dst may not share memory with src, scale or overflow_count (no
 * conversion in place): FP8KV_EINVAL.  src_dtype: f32, f16 or bf16; format: an FP8 format.  scale_mode is
 * FP8KV_SCALE_ONE (scale ignored, may be NULL) or FP8KV_SCALE_TENSOR (scale
 * points to one float in backend memory).  overflow_count, when not NULL, is
 * a uint64 in backend memory to which the number of overflows is added.
 */
FP8KV_API fp8kv_status fp8kv_quantize(fp8kv_backend *backend,
				      void *dst, fp8kv_dtype format,
				      const void *src, fp8kv_dtype src_dtype,
				      size_t count, fp8kv_scale_mode scale_mode,
				      const float *scale, fp8kv_overflow overflow,
				      uint64_t *overflow_count, void *stream);

/* dst[i] = float(src[i]) * s, rounded to dst_dtype (f32, f16 or bf16). */
FP8KV_API fp8kv_status fp8kv_dequantize(fp8kv_backend *backend,
					void *dst, fp8kv_dtype dst_dtype,
					const void *src, fp8kv_dtype format,
					size_t count, fp8kv_scale_mode scale_mode,
					const float *scale, void *stream);

/* ---------------------------------------------------------- 7. the cache write
 *
 * For each token t < num_tokens with slot = slot_mapping[t]:
 *   - slot < 0: padding, skipped;
 *   - with swa_mapping: slot = swa_mapping[slot] (a slot >= swa_mapping_len is
 *     out of range; a mapped slot < 0 is skipped as padding);
 *   - slot >= num_blocks * block_size: out of range.  The token is skipped
 *     and FP8KV_ERANGE is reported with the first such token; all other
 *     tokens are still written.
 *   - otherwise, with block = slot / block_size, offset = slot % block_size,
 *     for every head h and element d:
 *        key_cache[block*kcs_block + offset*kcs_slot + h*kcs_head + d]
 *          = convert(key[t*key_stride_token + h*key_stride_head + d])
 *     and likewise for value with head_dim_v and the value strides.
 * convert is a plain copy when cache_dtype == input_dtype, and the contract
 * of section 5 when cache_dtype is an FP8 format.  Two tokens mapped to one
 * slot: the CPU backend writes them in token order; GPU backends make no
 * promise.
 *
 * Scale modes (s is always fp32, in the backend's memory):
 *   ONE         q = fp8(x); k_scale/v_scale are ignored.
 *   TENSOR      q = fp8(x / k_scale[0]) for keys, v_scale[0] for values.
 *   HEAD        q = fp8(x / k_scale[h]), k_scale has num_heads entries.
 *               A HEAD array holding one value everywhere gives the bytes of
 *               TENSOR with that value.
 *   TOKEN_HEAD  dynamic: for each written row (t, h) the backend computes
 *                 amax = max |x| over the row's finite elements (NaN and
 *                 +-Inf ignored);
 *                 s = 1                      if amax == 0 or no element is finite,
 *                 s = max(amax / fmax, 2^-126) otherwise,
 *               with fmax = fp8kv_fp8_max(cache_dtype) and the division in
 *               correctly rounded fp32.  (The 2^-126 floor keeps s normal: a
 *               subnormal s loses precision and would let amax / s overflow.)
 *               s is stored in k_scale_cache/v_scale_cache at
 *               block*scs_block + offset*scs_slot + h*scs_head (strides in
 *               floats; [blocks, heads, block_size] and [blocks, block_size,
 *               heads] are both expressible), and the row is converted as
 *               fp8(x / s).
 * The scale modes other than ONE need an FP8 cache.
 *
 * Optional outputs, in backend memory, NULL when not wanted:
 *   overflow_count  uint64: the number of overflows (section 5) is ADDED;
 *   nan_count       uint64: the number of NaN inputs is ADDED;
 *   k_amax, v_amax  fp32[num_heads]: raised to max |x| over the finite
 *                   inputs of each head written by this call (calibration).
 * These count only the tokens actually written.
 *
 * Validation happens before anything is written: NULL pointers, sizes < 1
 * (see "Zero sizes" below), negative strides, cache strides under which two
 * elements share an address, sizes whose byte extent overflows 64 bits,
 * misaligned pointers, unsupported dtype pairs, and arguments that share
 * memory all return an error and leave every byte untouched.  Shared
 * memory: an output (the caches, scale caches, counters, amax arrays) may
 * share no memory with any other buffer of the call, and an input (key,
 * value, the mappings, the scales) may not lie in an output; memory is a
 * buffer's span from its first to its last element, except that two
 * arrays of blocks at one block stride are apart when no block of one
 * meets a block of the other (K and V interleaved per page in one tensor).
 * The slot mapping is read once per token, by the pass that writes.
 *
 * Zero sizes, one rule for every call: a count of work may be 0 (num_tokens
 * here; count in fp8kv_quantize, fp8kv_dequantize, fp8kv_amax and
 * fp8kv_check_slots), and the call then returns FP8KV_OK without touching
 * any array (*amax is 0, the slot report empty); a dimension of an array
 * may not (num_heads, head_dim_k, head_dim_v, num_blocks, block_size, and
 * swa_mapping_len with a swa_mapping are at least 1, else FP8KV_EINVAL).
 *
 * What no C API can check is the size of the buffers themselves: key and
 * value must hold the rows the strides reach, slot_mapping num_tokens
 * entries, swa_mapping swa_mapping_len, HEAD scales and k_amax/v_amax
 * num_heads, the caches num_blocks blocks.
 *
 * Fill the descriptor with fp8kv_cache_write_init() first, so that fields
 * added in later releases get their defaults.
 */
typedef struct fp8kv_cache_write {
	/* new rows: key[num_tokens][num_heads][head_dim_k] by default */
	const void *key;
	const void *value;
	fp8kv_dtype input_dtype;
	int64_t num_tokens;
	int64_t num_heads;
	int64_t head_dim_k;
	int64_t head_dim_v;
	int64_t key_stride_token, key_stride_head;     /* elements */
	int64_t value_stride_token, value_stride_head; /* elements */

	/* the paged cache; the last dimension is always contiguous */
	void *key_cache;
	void *value_cache;
	fp8kv_dtype cache_dtype;
	int64_t num_blocks;
	int64_t block_size;
	int64_t key_cache_stride_block, key_cache_stride_slot, key_cache_stride_head;
	int64_t value_cache_stride_block, value_cache_stride_slot, value_cache_stride_head;

	/* where each token goes */
	const void *slot_mapping;      /* num_tokens entries */
	fp8kv_index_type slot_type;
	const void *swa_mapping;       /* optional second mapping */
	fp8kv_index_type swa_type;
	int64_t swa_mapping_len;

	/* conversion */
	fp8kv_scale_mode scale_mode;
	const float *k_scale;          /* TENSOR: 1 entry; HEAD: num_heads */
	const float *v_scale;
	fp8kv_overflow overflow;

	/* TOKEN_HEAD: where the computed scales go */
	float *k_scale_cache;
	float *v_scale_cache;
	int64_t scale_cache_stride_block, scale_cache_stride_slot, scale_cache_stride_head;

	/* optional outputs */
	uint64_t *overflow_count;
	uint64_t *nan_count;
	float *k_amax;
	float *v_amax;
} fp8kv_cache_write;

/* The layouts the init function can fill in. */
typedef enum fp8kv_cache_layout {
	FP8KV_LAYOUT_NHD = 0, /* cache [num_blocks][block_size][num_heads][head_dim] */
	FP8KV_LAYOUT_HND = 1  /* cache [num_blocks][num_heads][block_size][head_dim] */
} fp8kv_cache_layout;

/*
 * Zeroes desc, then sets the sizes and contiguous strides: inputs
 * [num_tokens][num_heads][head_dim], caches and (for TOKEN_HEAD) scale caches
 * in the given layout, int64 slots, FP8KV_SCALE_ONE, FP8KV_SATURATE.  The
 * caller then sets the pointers and dtypes, and any stride that differs.
 */
FP8KV_API void fp8kv_cache_write_init(fp8kv_cache_write *desc, int64_t num_tokens,
				      int64_t num_heads, int64_t head_dim_k,
				      int64_t head_dim_v, int64_t num_blocks,
				      int64_t block_size, fp8kv_cache_layout layout);

/* Performs the write, asynchronously on stream (a hipStream_t/cudaStream_t
 * for GPU backends, NULL for the default stream; ignored by "cpu").  Stream
 * order holds: the write reads and writes nothing before the work queued
 * ahead of it has finished.  (On NVIDIA GPUs from sm_90, with a module
 * built for them, the "hip" backend launches this kernel and those of
 * fp8kv_quantize and fp8kv_dequantize as programmatic dependent launches,
 * which may be scheduled early to hide launch latency but wait for that
 * work before touching memory; FP8KV_HIP_DEPENDENT_LAUNCH=0 makes them
 * ordinary launches.) */
FP8KV_API fp8kv_status fp8kv_reshape_and_cache(fp8kv_backend *backend,
					       const fp8kv_cache_write *desc,
					       void *stream);

/* ------------------------------------------------------------- 8. helpers */

/* *amax = max |src[i]| over the finite elements of src (NaN and +-Inf
 * ignored; 0 when none).  Synchronous; amax is a host pointer. */
FP8KV_API fp8kv_status fp8kv_amax(fp8kv_backend *backend, const void *src,
				  fp8kv_dtype dtype, size_t count, float *amax);

/* A per-tensor scale for data whose amax is known: amax / fp8kv_fp8_max(format)
 * floored at 2^-126, or 1 when amax is 0, negative, NaN or Inf, or format is
 * not FP8.  With it no finite input overflows. */
FP8KV_API float fp8kv_suggest_scale(float amax, fp8kv_dtype format);

/* What fp8kv_check_slots found. */
typedef struct fp8kv_slot_report {
	int64_t padding;         /* tokens with slot < 0 */
	int64_t out_of_range;    /* tokens with slot >= num_slots */
	int64_t duplicates;      /* tokens whose slot an earlier token already took */
	int64_t first_padding;   /* the first such token, or -1 */
	int64_t first_out_of_range;
	int64_t first_duplicate;
} fp8kv_slot_report;

/*
 * A debugging aid, not part of the write: counts padding, out-of-range and
 * duplicate slots in a slot mapping in backend memory.  Two tokens writing
 * one slot race on a GPU.  Synchronous; report is a host pointer.
 */
FP8KV_API fp8kv_status fp8kv_check_slots(fp8kv_backend *backend, const void *slot_mapping,
					 int64_t count, fp8kv_index_type type,
					 int64_t num_slots, fp8kv_slot_report *report);

#ifdef __cplusplus
}
#endif

#endif /* FP8KV_H */
