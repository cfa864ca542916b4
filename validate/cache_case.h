/* SPDX-License-Identifier: MIT */
/*
 * cache_case.h - one fp8kv_reshape_and_cache case, end to end.
 *
 * A cache_case describes one call (dtypes, scale mode, layout, sizes, slot
 * mapping, seed...).  The engine then
 *
 *   cache_case_generate()  builds the host inputs from the seed: values, slot
 *                          mapping (distinct slots, padding, optional swa
 *                          table, deliberate out-of-range and duplicate
 *                          tokens), scales, and random poison for the caches;
 *   cache_case_expect()    computes the expected images with the oracle
 *                          (oracle.h), element by element, following
 *                          fp8kv.h sections 5 and 7 -- never the library;
 *   cache_case_run()       runs the call on a backend on poisoned caches and
 *                          downloads every byte the call may have touched;
 *   cache_case_compare()   compares two results byte for byte (expected vs
 *                          backend, or backend A vs backend B) and reports
 *                          the first differences in full.
 *
 * Typical use:
 *
 *     cache_case c;
 *     cache_result exp, got;
 *     cache_diff diff;
 *     cache_case_init(&c);
 *     c.input_dtype = FP8KV_BF16; c.cache_dtype = FP8KV_E4M3FN; ...
 *     cache_case_prepare(&c, &exp);          (generate + expect + poison fix)
 *     cache_case_run(backend, &c, &got);
 *     cache_diff_init(&diff);
 *     if (cache_case_compare(&c, &exp, &got, &diff, 4) != 0) ...
 *     cache_result_free(&got); cache_result_free(&exp); cache_case_free(&c);
 *
 * The engine does not depend on Check; the tests and fp8kv-validate share it.
 * It never prints.  Functions returning int return 0 on success, -1 on a
 * host allocation failure (or an invalid case, with a reason in
 * cache_case_error()).
 */
#ifndef FP8KV_CACHE_CASE_H
#define FP8KV_CACHE_CASE_H

#include <stddef.h>
#include <stdint.h>

#include "fp8kv.h"

/* How inputs and caches are laid out in memory. */
typedef enum cache_case_layout {
	/* contiguous inputs [T][H][D]; caches [blocks][block_size][heads][D] */
	CACHE_CASE_NHD = 0,
	/* contiguous inputs [T][H][D]; caches [blocks][heads][block_size][D] */
	CACHE_CASE_HND = 1,
	/* padded strides everywhere: key input head-major [H][T+1][Dk+3],
	 * value input [T][H][Dv+5] with 7 spare elements per token; key cache
	 * HND and value cache NHD, each with gaps after every row, slot/head
	 * and block; scale caches with gaps.  Input gaps hold NaN/Inf/huge
	 * garbage that must never be read; cache gaps must keep the poison. */
	CACHE_CASE_STRIDED = 2
} cache_case_layout;

/* Layout of the TOKEN_HEAD scale caches. */
typedef enum cache_case_scale_layout {
	CACHE_CASE_SCALES_BHS = 0, /* [blocks][heads][block_size] */
	CACHE_CASE_SCALES_BSH = 1  /* [blocks][block_size][heads] */
} cache_case_scale_layout;

/* Where HEAD-mode scales come from. */
typedef enum cache_case_head_scales {
	/* per head, drawn from a list of adversarial values (1/448, 3, 1e-3,
	 * 2^-126, a subnormal, 1e30, ...) by the seed */
	CACHE_CASE_HEAD_SCALES_RANDOM = 0,
	/* k_scale / v_scale in every head (equals TENSOR with that value) */
	CACHE_CASE_HEAD_SCALES_UNIFORM = 1,
	/* the arrays head_k_scales / head_v_scales, num_heads entries each */
	CACHE_CASE_HEAD_SCALES_GIVEN = 2
} cache_case_head_scales;

/* dest[] values of tokens that write nothing. */
#define CACHE_CASE_PADDING (-1)
#define CACHE_CASE_OUT_OF_RANGE (-2)

typedef struct cache_case {
	/* ---- parameters: cache_case_init() sets a small valid case ---- */
	fp8kv_dtype input_dtype;       /* f32, f16, bf16 */
	fp8kv_dtype cache_dtype;       /* input_dtype (copy) or an FP8 format */
	fp8kv_scale_mode scale_mode;   /* modes other than ONE need an FP8 cache */
	fp8kv_overflow overflow;
	cache_case_layout layout;
	cache_case_scale_layout scale_layout;
	int64_t num_tokens;            /* may be 0 */
	int64_t num_heads;
	int64_t head_dim_k, head_dim_v;
	int64_t block_size;
	int64_t num_blocks;            /* 0: enough for every token, plus spare slots */
	fp8kv_index_type slot_type;
	double padding_fraction;       /* fraction of tokens made padding (negative) */
	int use_swa;                   /* route slots through a swa_mapping table */
	fp8kv_index_type swa_type;
	int64_t num_out_of_range;      /* tokens given an out-of-range slot (with swa:
					* an index >= swa_len or an entry >= slots) */
	int64_t num_duplicates;        /* tokens that reuse another token's slot:
					* deterministic on the CPU only (token order) */
	int want_overflow_count;       /* pass the optional outputs */
	int want_nan_count;
	int want_amax;
	int special_rows;              /* replace about a quarter of the rows by
					* zeros, NaN/Inf only, subnormal amax, max
					* amax, a single value, a constant */
	uint64_t seed;
	float k_scale, v_scale;        /* TENSOR (and HEAD with UNIFORM) */
	cache_case_head_scales head_scales;
	const float *head_k_scales;    /* HEAD with GIVEN: copied by generate */
	const float *head_v_scales;

	/* ---- filled by cache_case_generate(); owned by the case.  Tests may
	 * edit the data (not the sizes) before cache_case_expect/run. ---- */
	/* strides in elements, as in fp8kv_cache_write */
	int64_t key_stride_token, key_stride_head;
	int64_t value_stride_token, value_stride_head;
	int64_t kc_stride_block, kc_stride_slot, kc_stride_head;
	int64_t vc_stride_block, vc_stride_slot, vc_stride_head;
	int64_t sc_stride_block, sc_stride_slot, sc_stride_head;
	size_t key_elems, value_elems;  /* host/backend input buffer sizes */
	size_t kc_elems, vc_elems;      /* cache sizes in elements of cache_dtype */
	size_t sc_elems;                /* each scale cache, floats (0 unless TOKEN_HEAD) */
	void *key, *value;              /* input_dtype elements */
	int64_t *slots;                 /* num_tokens entries (uploaded as slot_type) */
	int64_t *swa;                   /* swa_len entries (uploaded as swa_type) */
	int64_t swa_len;
	float *k_scales, *v_scales;     /* num_scales entries: TENSOR 1, HEAD num_heads */
	int64_t num_scales;
	uint8_t *kc_init, *vc_init;     /* the poison the caches start from */
	float *ksc_init, *vsc_init;     /* the poison of the scale caches */
	uint64_t overflow_init, nan_init; /* nonzero starting counters */
	float *k_amax_init, *v_amax_init; /* nonzero starting amax, num_heads */
	int64_t *dest;                  /* per token: final slot, or PADDING/OUT_OF_RANGE */
	int64_t first_out_of_range;     /* the first out-of-range token, or -1 */
	int64_t num_slots;              /* num_blocks * block_size */
} cache_case;

/* The sizes of a case, for tables of cases. */
typedef struct cache_case_shape {
	int64_t num_tokens, num_heads, head_dim_k, head_dim_v, block_size;
} cache_case_shape;

/* What one call produced (or, from cache_case_expect, must produce). */
typedef struct cache_result {
	fp8kv_status status;       /* the first status that was not FP8KV_OK */
	fp8kv_status call_status;  /* fp8kv_reshape_and_cache */
	fp8kv_status sync_status;  /* the fp8kv_backend_synchronize after it */
	char stage[32];            /* which call gave status ("" when OK) */
	char message[256];         /* fp8kv_last_error() after that call */
	char setup_error[256];     /* allocation/transfer failure; "" when none */
	uint8_t *kc, *vc;          /* kc_elems / vc_elems elements of cache_dtype */
	float *ksc, *vsc;          /* sc_elems floats each, or NULL */
	uint64_t overflow_count, nan_count;
	float *k_amax, *v_amax;    /* num_heads each, or NULL */
} cache_result;

/* One difference found by cache_case_compare. */
typedef enum cache_diff_what {
	CACHE_DIFF_SETUP = 0,   /* a result has a setup_error */
	CACHE_DIFF_STATUS,      /* expected/got: status codes */
	CACHE_DIFF_MESSAGE,     /* the ERANGE message does not name the token */
	CACHE_DIFF_KEY,         /* key cache element */
	CACHE_DIFF_VALUE,       /* value cache element */
	CACHE_DIFF_KEY_SCALE,   /* key scale cache element (fp32 bits) */
	CACHE_DIFF_VALUE_SCALE,
	CACHE_DIFF_OVERFLOW_COUNT,
	CACHE_DIFF_NAN_COUNT,
	CACHE_DIFF_K_AMAX,      /* index: the head; expected/got: fp32 bits */
	CACHE_DIFF_V_AMAX
} cache_diff_what;

typedef struct cache_diff_entry {
	cache_diff_what what;
	int64_t index;          /* element index in the image (head for amax) */
	/* for cache and scale cache elements: the input element that was
	 * written there last, or token = -1 for an element no token writes
	 * (it must still hold the poison) */
	int64_t token, head, element, slot;
	int has_input;
	uint32_t input_bits;    /* input element bits (input_dtype) */
	float input;            /* its value widened to fp32 */
	int scaled;             /* a scale divides it */
	float scale;
	int has_oracle;
	uint32_t oracle;        /* the oracle's code (or copied bits) for it */
	uint64_t expected, got; /* element bits / counter / status */
	char note[320];         /* CACHE_DIFF_MESSAGE/SETUP/STATUS: the text */
} cache_diff_entry;

#define CACHE_DIFF_MAX_REPORT 16

typedef struct cache_diff {
	uint64_t cases;            /* comparisons accumulated */
	uint64_t bytes_compared;
	uint64_t bytes_differing;
	uint64_t differences;      /* differing items (elements, counters...) */
	int reported;              /* entries filled in e[] */
	cache_diff_entry e[CACHE_DIFF_MAX_REPORT];
} cache_diff;

/* Defaults: bf16 -> e4m3fn, ONE, saturate, NHD, 5 tokens, 2 heads, 16/16,
 * block size 4, int64 slots, every optional output requested, seed 1,
 * scales 1.0. */
void cache_case_init(cache_case *c);

/* Sets c's sizes (tokens, heads, head dims, block size) from s. */
void cache_case_set_shape(cache_case *c, const cache_case_shape *s);

/* Builds everything below the parameters from the parameters and the seed
 * (frees what an earlier call built).  Slots and poison depend on the seed
 * and sizes only.  Input values are drawn around the divisor in use (1 for
 * ONE, the scale for TENSOR/HEAD, a random row magnitude for TOKEN_HEAD)
 * with random streams that do not depend on the mode, so cases with the
 * same divisors (ONE and TENSOR 1.0; HEAD uniform s and TENSOR s) get
 * identical inputs.  The layout changes where the values are stored, not
 * the values.  -1 on an invalid case (cache_case_error() says why) or out
 * of memory. */
int cache_case_generate(cache_case *c);

/* Recomputes dest[] and first_out_of_range after a test edited slots[] or
 * swa[] (same lengths, values fitting slot_type / swa_type). */
void cache_case_update_dest(cache_case *c);

/* Frees what cache_case_generate built (the parameters stay). */
void cache_case_free(cache_case *c);

/* The reason for the last -1 in this thread. */
const char *cache_case_error(void);

/* A one-line description of the parameters ("bf16->e4m3fn HEAD sat ..."). */
void cache_case_describe(const cache_case *c, char *buf, size_t n);

/* The expected result, computed with the oracle: the poison, then every
 * token with a valid slot in token order (later tokens win), counters and
 * amax from their initial values, status FP8KV_ERANGE with message
 * "token N" iff some token is out of range. */
int cache_case_expect(const cache_case *c, cache_result *expected);

/* Changes the poison under every byte the expected result writes so that
 * it differs from the written byte (an unwritten element then never passes
 * by luck), in the case and in *expected alike. */
void cache_case_fix_poison(cache_case *c, cache_result *expected);

/* generate + expect + fix_poison. */
int cache_case_prepare(cache_case *c, cache_result *expected);

/* Runs the case on backend: allocates its buffers, uploads inputs, poison,
 * scales and initial counters/amax, calls fp8kv_reshape_and_cache and
 * fp8kv_backend_synchronize, downloads caches, scale caches, counters and
 * amax, frees the buffers.  Library failures are recorded in *out (status,
 * stage, message); -1 only when the engine itself could not allocate host
 * memory.  A buffer failure is recorded in out->setup_error. */
int cache_case_run(fp8kv_backend *backend, const cache_case *c, cache_result *out);

void cache_result_free(cache_result *r);

void cache_diff_init(cache_diff *d);

/* Compares got with expected for case c: every element of both caches and
 * scale caches, the counters and amax that were requested, the status, and
 * for FP8KV_ERANGE that got's message names "token N" with N the first
 * out-of-range token.  expected may itself be a backend's result (A vs B).
 * Adds to d's counts and records up to max_report (capped at
 * CACHE_DIFF_MAX_REPORT) entries overall.  Returns the number of
 * differences found by this call. */
uint64_t cache_case_compare(const cache_case *c, const cache_result *expected,
			    const cache_result *got, cache_diff *d, int max_report);

/* One difference as a human line (no newline). */
void cache_diff_format(const cache_case *c, const cache_diff_entry *e, char *buf, size_t n);

/* The first max_lines differences recorded in d, one per line, after the
 * case description. */
void cache_diff_report(const cache_case *c, const cache_diff *d, int max_lines,
		       char *buf, size_t n);

/* Small helpers shared by the tests. */
const char *cache_case_layout_name(cache_case_layout layout);
const char *cache_case_scale_mode_name(fp8kv_scale_mode mode);
/* Rounds a double to input dtype bits (f32, f16, bf16), to nearest even. */
uint32_t cache_case_round_bits(double v, fp8kv_dtype dtype);
/* The bits of input element i of buf (input_dtype). */
uint32_t cache_case_get_bits(const void *buf, fp8kv_dtype dtype, size_t i);
void cache_case_set_bits(void *buf, fp8kv_dtype dtype, size_t i, uint32_t bits);

#endif /* FP8KV_CACHE_CASE_H */
