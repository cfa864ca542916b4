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
 *   1. status codes and errors        6. scalar and bulk conversion
 *   2. data types                     7. the cache write
 *   3. backends                       8. group scales: MX, NVFP4, INT8
 *   4. buffers in a backend's memory  9. MLA latent writes
 *   5. the conversion contract       10. helpers (amax, scales, slots)
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
	FP8KV_E5M2FNUZ = 6, /* bias 16, max 57344, NaN 0x80, no Inf, no -0 */
	FP8KV_E2M1 = 7,     /* FP4 e2m1, two per byte: max 6, no Inf, no NaN (5b) */
	FP8KV_INT8 = 8      /* two's complement, written in [-127, 127] (5c) */
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
	FP8KV_SCALE_TOKEN_HEAD = 3, /* dynamic, one per written row, computed */
	FP8KV_SCALE_GROUP = 4       /* dynamic, one per group of a row (section 8) */
} fp8kv_scale_mode;

/* Integer type of a slot mapping. */
typedef enum fp8kv_index_type {
	FP8KV_INDEX_INT64 = 0,
	FP8KV_INDEX_INT32 = 1
} fp8kv_index_type;

/* Size in bytes of one element (0 for an unknown dtype).  An element of an
 * e2m1 array is a byte holding two values (as torch.float4_e2m1fn_x2): 1. */
FP8KV_API size_t fp8kv_dtype_size(fp8kv_dtype dtype);
/* "f32", "f16", "bf16", "e4m3fn", "e4m3fnuz", "e5m2", "e5m2fnuz", "e2m1",
 * "int8"; NULL if unknown. */
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
 *
 * 5b. e2m1 (FP4: 1 sign, 2 exponent bits of bias 1, 1 mantissa bit; the
 * magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6 are the codes 0-7, the sign is 0x8).
 * y, as in step 1, becomes the code q:
 *  1. |y| is rounded to the nearest magnitude, a tie going to the even code:
 *     0.25 -> 0, 0.75 -> 1, 1.25 -> 1, 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4.
 *  2. |y| >= 7 (the midpoint past 6, a tie going to the even, overflowing,
 *     side) and +-Inf overflow: they become +-6 (e2m1 has no other code; a
 *     write refuses FP8KV_NONSATURATING for e2m1, fp8kv_from_float ignores
 *     it), and a finite x counts as one overflow.
 *  3. The sign bit is y's, zero included: -0 and -0.1 give 0x8.
 *  4. A NaN y gives 0x0 (e2m1 has no NaN); a NaN x counts as a NaN input
 *     (a NaN y from another x, 0/0 or Inf/Inf, does not).
 * In memory two values share a byte: element 2i of a row is the low nibble
 * (bits 3-0) of byte i, element 2i + 1 the high nibble (vLLM, FlashInfer,
 * TensorRT-LLM, torch.float4_e2m1fn_x2).  Rows of e2m1 have an even length.
 *
 * 5c. int8.  y, as in step 1, is rounded to an integer, to nearest even
 * (FP8KV_ROUND_NEAREST_EVEN) or toward zero (FP8KV_ROUND_TOWARD_ZERO,
 * vLLM's int8 KV cache), then: a result beyond +-127, and +-Inf, become
 * +-127 (a finite x counting as one overflow); a NaN y gives 0 (a NaN x
 * counting as a NaN input).  -128 is never written.
 */

/* ---------------------------------------------- 6. scalar and bulk conversion */

/* The code of fp32 value y in format (steps 2-4; 5b for e2m1, in the low
 * nibble; 5c for int8, rounded to nearest even).  Returns 0 when format is
 * none of these. */
FP8KV_API uint8_t fp8kv_from_float(float y, fp8kv_dtype format, fp8kv_overflow overflow);
/* The exact value of code in format (e2m1: its low nibble; int8: code as a
 * signed byte); NaN when format is none of these. */
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
 * The scale modes other than ONE need an FP8 cache.  FP8KV_SCALE_GROUP, and
 * e2m1 and int8 caches, are written by fp8kv_reshape_and_cache_grouped
 * (section 8); fp8kv_reshape_and_cache refuses them (FP8KV_EINVAL,
 * FP8KV_ENOTSUP).
 *
 * Optional outputs, in backend memory, NULL when not wanted:
 *   overflow_count  uint64: the number of overflows (section 5) is ADDED;
 *   nan_count       uint64: the number of NaN inputs is ADDED;
 *   k_amax, v_amax  fp32[num_heads]: raised to max |x| over the finite
 *                   inputs of each head written by this call (calibration;
 *                   +0 for a head with none, in a call with tokens), where
 *                   "raised" compares the fp32 bits as signed integers: a
 *                   +NaN or +Inf there stays, anything with the sign bit
 *                   set (-0, -NaN) gives way.
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

/* ------------------------------------------------------- 8. group scales
 *
 * fp8kv_reshape_and_cache_grouped writes as fp8kv_reshape_and_cache does
 * (section 7: the same descriptor, slots, strides, outputs and errors), with
 * desc->scale_mode = FP8KV_SCALE_GROUP: each written row (t, h) is cut into
 * groups of G = group_size consecutive elements (d = jG .. jG + G - 1), and
 * each group gets its own dynamic scale, computed by the backend from
 *   amax = max |x| over the group's finite elements (NaN and +-Inf ignored;
 *          0 when none is finite),
 * written through strides, and used to convert the group's elements as
 * section 5 says (y = x / s, one correctly rounded fp32 division; 5b for an
 * e2m1 cache, 5c for int8).  G is 16, 32, 64 or 128 and divides both head
 * dims, or G is the head dim when both are equal.  The rules, named after the engines they
 * reproduce; max is the element format's largest finite value (448, 240,
 * 57344, 57344, 6 for e2m1, 127 for int8), emax the exponent of its largest
 * power of two (8, 7, 15, 15, 2):
 *
 *   FP8KV_GROUP_F32          s = max(RN(amax / D), floor), stored as fp32.
 *       DeepSeek's tiles (vLLM fp8_ds_mla), vLLM's int8 per (token, head)
 *       (G = the row, floor 1e-6, rounding toward zero).  D = divisor (at
 *       least 1), or max when divisor is 0; floor = scale_floor (a normal
 *       number at most 1), or 2^-126 when 0.  A group of zeros, or with
 *       nothing finite, gets s = floor; a group whose amax / D overflows
 *       gets s = +Inf, and section 5 applies as written (finite x give +-0,
 *       +-Inf give NaN).  Any FP8, e2m1 or int8 cache.
 *   FP8KV_GROUP_E8M0_FLOOR   OCP MX v1.0: b = e(amax) - emax, at least 0,
 *       where e(amax) is amax's biased fp32 exponent field (0 for 0 and
 *       subnormals); s = 2^(b - 127), stored as the byte b (E8M0).  Values
 *       of a group past max overflow (the call's policy; e2m1 saturates).
 *       torchao's default.  FP8 or e2m1 caches.
 *   FP8KV_GROUP_E8M0_RCEIL   b = 127 + the least integer k with
 *       max * 2^k >= amax (exactly, no rounded product), within [0, 254];
 *       b = 0 for amax 0.  s and storage as FLOOR; no finite value of the
 *       group overflows.  NVIDIA's cvt.rp.ue8m0 on amax / max (cuBLAS,
 *       TensorRT-LLM), aiter's default.  FP8 or e2m1 caches.
 *   FP8KV_GROUP_NVFP4        an e4m3 block scale under a decode-direction
 *       global scale g (k_global[0] / v_global[0], fp32, in backend memory;
 *       a value is e2m1 * sf * g): sf = e4m3fn(RN(amax / RN(6 * g))),
 *       rounded to nearest even and saturating at 448, stored as its
 *       e4m3fn code; then s = RN(sf * g).  When g is not positive and
 *       finite, sf is stored as 0x00; when sf is 0, or s is 0 (a subnormal
 *       g), or g is not positive and finite, the group's codes are +-0 by
 *       sign (0x0 for a NaN), and nothing in it counts as an overflow.  FlashInfer's append path in IEEE
 *       arithmetic, but for the elements: x / s here, x * RN(1 / s) there.
 *       e2m1 caches, G = 16.
 *
 * Ties round to even everywhere, -0 keeps its sign wherever the element
 * format has one, and NaN and +-Inf elements convert as section 5 (or 5b,
 * 5c) says.  E8M0 scales are powers of two, so their x / s is exact but
 * for subnormal results.  Counters and k_amax/v_amax are as in section 7.
 *
 * The scale of group j of row (t, h), written to (block, offset), is stored
 * at element
 *     block * stride_block + slot_term + h * stride_head + j * stride_group
 * of k_scales (keys) or v_scales (values), counted in elements of its
 * stored type (fp32, or bytes for E8M0 and e4m3), where slot_term is
 * offset * stride_slot, or, with interleave = I > 0,
 *     (offset / I) * stride_slot + (offset % I) * stride_interleave
 * (vLLM's and TensorRT-LLM's NVFP4 V scales, 4 tokens interleaved: I = 4,
 * stride_slot = 4 * G', stride_interleave = 1, stride_group = 4, with G'
 * groups per row).  v_scales is addressed by the same strides, unless
 * v_own_layout is nonzero: then by the v_ fields, in the same formula
 * (vLLM's NVFP4 page on sm_100, whose K scales are linear and V scales
 * interleaved).  A scale cache may lie in the caches' own buffer (vLLM's
 * NVFP4 page: K codes, K scales, V codes, V scales), provided no address is
 * written twice (section 7's rule on shared memory).  Not expressible: a
 * cache reached through a table of block pointers (TensorRT-LLM's pool).
 */
typedef enum fp8kv_group_rule {
	FP8KV_GROUP_F32 = 0,
	FP8KV_GROUP_E8M0_FLOOR = 1,
	FP8KV_GROUP_E8M0_RCEIL = 2,
	FP8KV_GROUP_NVFP4 = 3
} fp8kv_group_rule;

/* How int8 elements round (5c); the other formats round to nearest even. */
typedef enum fp8kv_rounding {
	FP8KV_ROUND_NEAREST_EVEN = 0,
	FP8KV_ROUND_TOWARD_ZERO = 1
} fp8kv_rounding;

/* The divisor vLLM and SGLang use for e4m3fnuz scales on gfx942, 224
 * rather than the format's 240: FP8KV_GROUP_F32's divisor (and MLA's). */
#define FP8KV_DIVISOR_GFX942 224.0f

/*
 * The group scales of a grouped write.  size is set by the init function:
 * a library reads the fields a caller's header had, and gives later ones
 * their defaults, so fill it with fp8kv_group_scales_init() first.
 */
typedef struct fp8kv_group_scales {
	uint32_t size;                 /* sizeof(fp8kv_group_scales) */
	fp8kv_group_rule rule;
	int64_t group_size;            /* G */
	fp8kv_rounding rounding;       /* int8 caches only */
	float divisor;                 /* FP8KV_GROUP_F32: 0 = the format's max */
	float scale_floor;             /* FP8KV_GROUP_F32: 0 = 2^-126 */
	const float *k_global;         /* FP8KV_GROUP_NVFP4: g of the keys */
	const float *v_global;         /* ... and of the values */
	void *k_scales;                /* where the groups' scales go */
	void *v_scales;
	int64_t stride_block, stride_slot, stride_head, stride_group;
	int64_t interleave, stride_interleave;   /* 0, 0: none */
	/* 0: v_scales as k_scales; 1: v_scales by the v_ strides below (all 0
	 * unless it is 1) */
	int32_t v_own_layout;
	int64_t v_stride_block, v_stride_slot, v_stride_head, v_stride_group;
	int64_t v_interleave, v_stride_interleave;
} fp8kv_group_scales;

/*
 * Zeroes groups, sets size, rule and group_size, rounding to nearest even,
 * and contiguous strides for scale arrays [num_blocks][block_size]
 * [num_heads][head_dim / group_size] (FP8KV_LAYOUT_NHD) or [num_blocks]
 * [num_heads][block_size][head_dim / group_size] (HND); head_dim is the
 * larger of the two sides'.  The caller sets the pointers.
 */
FP8KV_API void fp8kv_group_scales_init(fp8kv_group_scales *groups, fp8kv_group_rule rule,
				       int64_t group_size, int64_t num_heads, int64_t head_dim,
				       int64_t block_size, fp8kv_cache_layout layout);

/* The write of section 7 with group scales: desc->scale_mode must be
 * FP8KV_SCALE_GROUP; desc->k_scale, v_scale and the scale caches are
 * unused.  Validation as section 7, and of groups: an unknown rule, a group
 * size that is not allowed or does not divide a head dim, a rule the cache
 * format does not take, rounding on a cache that is not int8, the overflow
 * policy FP8KV_NONSATURATING on e2m1 or int8 (FP8KV_ENOTSUP), a divisor
 * or floor out of its range, NVFP4 without its global scales, and scale
 * arrays that overlap what else the call writes. */
FP8KV_API fp8kv_status fp8kv_reshape_and_cache_grouped(fp8kv_backend *backend,
						       const fp8kv_cache_write *desc,
						       const fp8kv_group_scales *groups,
						       void *stream);

/* ---------------------------------------------------- 9. MLA latent writes
 *
 * Multi-head latent attention (DeepSeek V2/V3/R1, Kimi K2) caches one entry
 * per token: kv_c (kv_lora_rank elements) followed by k_pe (pe_dim
 * elements, the RoPE part), one head, in cache[num_blocks][block_size]
 * [entry].  For each token t with a resolved slot (section 7's slot rules:
 * padding, swa_mapping, FP8KV_ERANGE), the entry at block * stride_block +
 * offset * stride_slot (elements of cache_dtype) receives:
 *
 *   FP8KV_MLA_PLAIN  kv_c[t] then k_pe[t], kv_lora_rank + pe_dim elements
 *       of cache_dtype, each converted by section 5 with FP8KV_SCALE_ONE or
 *       FP8KV_SCALE_TENSOR (scale[0]) and the call's overflow policy, the
 *       RoPE part too; a plain copy when cache_dtype is input_dtype.
 *       vLLM's and aiter's concat_and_cache_mla.
 *   FP8KV_MLA_DS     DeepSeek's fp8_ds_mla record (vLLM's
 *       concat_and_cache_ds_mla), kv_lora_rank 512, pe_dim 64, 16-bit
 *       inputs, a cache_dtype of e4m3fn (or e4m3fnuz) counted in bytes, 656
 *       of them per entry:
 *         bytes   0-511  kv_c's codes: four tiles of 128 elements, each an
 *                        FP8KV_GROUP_F32 group (section 8: s = max(RN(amax
 *                        / D), 2^-126), D = divisor or the format's max),
 *                        converted with the call's overflow policy;
 *         bytes 512-527  the four tiles' s, fp32, little-endian;
 *         bytes 528-655  k_pe's 64 values, unchanged.
 *       For finite inputs these are vLLM's bytes (and with divisor
 *       FP8KV_DIVISOR_GFX942 on e4m3fnuz, vLLM's and SGLang's gfx942 ones).
 *       vLLM differs on NaN and Inf: its NaN codes drop the sign (0x7F), an
 *       Inf in a tile makes that tile's scale Inf and its finite codes +-0,
 *       and with fp16 inputs its amax reads bit patterns; here NaN and Inf
 *       are ignored by amax and converted by section 5, as everywhere.
 * nan_count counts every NaN input element, the copied parts included.
 *
 * Validation as section 7 (before anything is written): sizes, strides
 * (an entry must fit in stride_slot, entries in stride_block), alignment,
 * shared memory, dtype pairs, a divisor that is neither 0 nor a finite
 * number of at least 1; FP8KV_MLA_DS needs 512 + 64, 16-bit inputs, an
 * e4m3 cache aligned to 4 bytes, and stride_slot >= 656, it and
 * stride_block multiples of 4 (the record's fp32 scales stay aligned;
 * 656 is one).  Fill the descriptor with
 * fp8kv_mla_write_init() first: it sets size, as in section 8.
 */
typedef enum fp8kv_mla_kind {
	FP8KV_MLA_PLAIN = 0,
	FP8KV_MLA_DS = 1
} fp8kv_mla_kind;

typedef struct fp8kv_mla_write {
	uint32_t size;                 /* sizeof(fp8kv_mla_write) */
	fp8kv_mla_kind kind;
	/* new latent rows: kv_c[num_tokens][kv_lora_rank], k_pe[num_tokens][pe_dim] */
	const void *kv_c;
	const void *k_pe;
	fp8kv_dtype input_dtype;
	int64_t num_tokens, kv_lora_rank, pe_dim;
	int64_t kv_c_stride_token, k_pe_stride_token;  /* elements */

	/* the cache: [num_blocks][block_size][entry], the entry contiguous */
	void *cache;
	fp8kv_dtype cache_dtype;
	int64_t num_blocks, block_size;
	int64_t stride_block, stride_slot;             /* elements of cache_dtype */

	/* where each token goes (section 7) */
	const void *slot_mapping;
	fp8kv_index_type slot_type;
	const void *swa_mapping;
	fp8kv_index_type swa_type;
	int64_t swa_mapping_len;

	/* conversion */
	fp8kv_scale_mode scale_mode;   /* PLAIN: ONE or TENSOR; DS: ONE (unused) */
	const float *scale;            /* PLAIN, TENSOR: 1 entry */
	float divisor;                 /* DS: 0 = the format's max */
	fp8kv_overflow overflow;

	/* optional outputs, as in section 7 */
	uint64_t *overflow_count;
	uint64_t *nan_count;
} fp8kv_mla_write;

/* Zeroes desc, then sets size, kind, the sizes, contiguous strides (entries
 * of kv_lora_rank + pe_dim elements, or 656 bytes for FP8KV_MLA_DS), int64
 * slots, FP8KV_SCALE_ONE and FP8KV_SATURATE.  The caller sets the pointers
 * and dtypes. */
FP8KV_API void fp8kv_mla_write_init(fp8kv_mla_write *desc, fp8kv_mla_kind kind,
				    int64_t num_tokens, int64_t kv_lora_rank, int64_t pe_dim,
				    int64_t num_blocks, int64_t block_size);

/* Performs the MLA write, asynchronously on stream, as section 7's write. */
FP8KV_API fp8kv_status fp8kv_concat_and_cache_mla(fp8kv_backend *backend,
						  const fp8kv_mla_write *desc, void *stream);

/* ------------------------------------------------------------ 10. helpers */

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
