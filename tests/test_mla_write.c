/* SPDX-License-Identifier: MIT */
/*
 * test_mla_write.c - fp8kv_concat_and_cache_mla on the "cpu" backend, held
 * byte for byte to the oracle of section 9 (validate/oracle_group.h)
 * through validate/write_case.h: every byte of the poisoned cache (padding
 * between entries and blocks included), the counters and the status.
 *
 *   plain     every FP8 format and both policies, with and without a
 *             tensor scale, and the 16-bit copy, over input dtypes,
 *             dense and padded layouts, slot types, swa mappings,
 *             padding, out-of-range and duplicate tokens;
 *   DS        DeepSeek's 656-byte record: e4m3fn and e4m3fnuz, bf16 and
 *             f16, divisors 0 (the format's max), 224 (gfx942) and one past
 *             max, both policies; tiles made by hand: one huge element, all
 *             zeros, all NaN, an Inf, a subnormal amax, checked against the
 *             oracle and against literal bytes worked out here (the scales'
 *             little-endian fp32, the RoPE part's raw bytes).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "check_support.h"
#include "float_bits.h"
#include "fp8kv.h"
#include "oracle_group.h"
#include "write_case.h"
#include "write_case_internal.h"
#include "write_fixtures.h"

static const fp8kv_dtype inputs[3] = {FP8KV_BF16, FP8KV_F16, FP8KV_F32};
static const fp8kv_dtype fp8[4] = {FP8KV_E4M3FN, FP8KV_E4M3FNUZ, FP8KV_E5M2, FP8KV_E5M2FNUZ};

/* The slot options of case k. */
static void vary_slots(write_case *c, int k)
{
	c->block_size = (int64_t[]){4, 16, 1, 32}[k % 4];
	c->slot_type = k % 2 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
	c->use_swa = k % 4 == 1;
	c->swa_type = k % 3 ? FP8KV_INDEX_INT64 : FP8KV_INDEX_INT32;
	c->padding_fraction = 0.15;
	c->num_out_of_range = k % 4 == 2 ? 2 : 0;
	c->num_duplicates = k % 4 == 0 ? 2 : 0;
	c->want_overflow_count = c->want_nan_count = k % 2;
	c->layout = k % 2 ? WRITE_CASE_STRIDED : WRITE_CASE_NHD;
}

/* plain: input dtype x (4 FP8 formats x 2 policies x scaled or not, or the
 * copy) = 3 x 17 */
START_TEST(plain)
{
	const fp8kv_dtype in = inputs[_i / 17];
	const int n = _i % 17;
	for (int k = 0; k < 4; k++) {
		write_case c;
		write_case_init_mla(&c, WRITE_CASE_MLA_PLAIN, k % 2 ? 512 : 48, k % 2 ? 64 : 16);
		c.input_dtype = in;
		c.cache_dtype = n == 16 ? in : fp8[n / 4];
		c.overflow = n < 16 ? (fp8kv_overflow)(n % 2) : FP8KV_SATURATE;
		c.scaled = n < 16 && n / 2 % 2;
		c.scale = (float[]){0.0371f, 3.0f, 1.0f / 448, 1e-3f}[k];
		c.num_tokens = k == 3 ? 1 : 20 + 9 * k;
		vary_slots(&c, k + _i);
		c.seed = 100u * (uint64_t)_i + (uint64_t)k + 1;
		check_write(&c, NULL);
		write_case_free(&c);
	}
}
END_TEST

/* DS: format x input x policy x divisor (0, 224, 1000) = 2 x 2 x 2 x 3 */
START_TEST(ds)
{
	const int f = _i / 12, in = _i / 6 % 2, p = _i / 3 % 2, dv = _i % 3;
	for (int k = 0; k < 3; k++) {
		write_case c;
		write_case_init_mla(&c, WRITE_CASE_MLA_DS, 512, 64);
		c.cache_dtype = f ? FP8KV_E4M3FNUZ : FP8KV_E4M3FN;
		c.input_dtype = in ? FP8KV_F16 : FP8KV_BF16;
		c.overflow = (fp8kv_overflow)p;
		c.divisor = (float[]){0.0f, FP8KV_DIVISOR_GFX942, 1000.0f}[dv];
		c.num_tokens = 13 + 11 * k;
		vary_slots(&c, k + _i);
		c.seed = 500u + 10u * (uint64_t)_i + (uint64_t)k;
		check_write(&c, NULL);
		write_case_free(&c);
	}
}
END_TEST

/* The record's offsets, from its first byte. */
enum { SCALES_AT = 512, ROPE_AT = 528 };

static const uint8_t *record_of(const write_case *c, const write_result *got, int64_t t)
{
	return got->arena + write_cache_byte(c, 0, c->slots.dest[t], 0);
}

static uint32_t scale_bits(const uint8_t *record, int tile)
{
	const uint8_t *b = record + SCALES_AT + 4 * tile;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Tiles by hand: 0 one huge element (bf16 max) among small ones, 1 all
 * zeros, 2 all NaN, 3 an Inf among finite values; the RoPE part raw. */
START_TEST(ds_special_tiles)
{
	for (int f = 0; f < 2; f++) {
		write_case c;
		write_result got;
		write_case_init_mla(&c, WRITE_CASE_MLA_DS, 512, 64);
		c.cache_dtype = f ? FP8KV_E4M3FNUZ : FP8KV_E4M3FN;
		c.divisor = f ? FP8KV_DIVISOR_GFX942 : 0.0f;
		c.num_tokens = 3, c.special = 0;
		generate_write(&c);
		const int64_t t = first_written_token(&c);
		uint32_t kv_c[512], k_pe[64];
		for (int i = 0; i < 128; i++) {
			kv_c[i] = i == 5 ? 0x7F7F : 0x3F80 | (uint32_t)(i % 2) << 15; /* +-1 */
			kv_c[128 + i] = i % 2 ? 0x8000 : 0;
			kv_c[256 + i] = 0x7FC0 | (uint32_t)(i % 2) << 15;
			kv_c[384 + i] = i == 9 ? 0xFF80 : 0x4000; /* -Inf, 2 */
		}
		for (int i = 0; i < 64; i++)
			k_pe[i] = (uint32_t)(0x1234 + 0x0101 * i) & 0xFFFF;
		k_pe[7] = 0x7FC1, k_pe[8] = 0xFF80; /* NaN and -Inf copied as they are */
		set_input_row(&c, 0, t, 0, kv_c);
		set_input_row(&c, 1, t, 0, k_pe);
		finish_write(&c, &got);
		const uint8_t *r = record_of(&c, &got, t);
		/* the zero tile: s = 2^-126, codes +-0 (fnuz: no -0) */
		ck_assert_uint_eq(scale_bits(r, 1), 0x00800000u);
		ck_assert(r[128] == 0x00 && r[129] == (f ? 0x00 : 0x80));
		/* the NaN tile: nothing finite, s = 2^-126; NaN codes (section 5) */
		ck_assert_uint_eq(scale_bits(r, 2), 0x00800000u);
		ck_assert(r[256] == (f ? 0x80 : 0x7F) && r[257] == (f ? 0x80 : 0xFF));
		/* the Inf tile: amax 2 (Inf ignored), s = RN(2 / D) */
		ck_assert_uint_eq(scale_bits(r, 3), bits_of_float(2.0f / (f ? 224.0f : 448.0f)));
		/* the huge tile: s = RN(bf16 max / D), the huge element at max */
		ck_assert_uint_eq(scale_bits(r, 0),
				  bits_of_float(float_of_bits(0x7F7F0000u) / (f ? 224.0f : 448.0f)));
		ck_assert_uint_eq(r[5], 0x7E); /* 448 on e4m3fn, 224 on e4m3fnuz (240 is 0x7F) */
		for (int i = 0; i < 64; i++) /* the RoPE part, raw little-endian */
			ck_assert(r[ROPE_AT + 2 * i] == (k_pe[i] & 0xFF) &&
				  r[ROPE_AT + 2 * i + 1] == k_pe[i] >> 8);
		write_result_free(&got);
		write_case_free(&c);
	}
}
END_TEST

/* A subnormal amax (bf16 subnormals): s = 2^-126, the codes of x / 2^-126. */
START_TEST(ds_subnormal_amax)
{
	write_case c;
	write_result got;
	write_case_init_mla(&c, WRITE_CASE_MLA_DS, 512, 64);
	c.num_tokens = 2, c.special = 0;
	generate_write(&c);
	const int64_t t = first_written_token(&c);
	uint32_t kv_c[512];
	for (int i = 0; i < 512; i++)
		kv_c[i] = (uint32_t)(i % 2) << 15 | (uint32_t)(1 + i % 127);
	set_input_row(&c, 0, t, 0, kv_c);
	finish_write(&c, &got);
	const uint8_t *r = record_of(&c, &got, t);
	for (int j = 0; j < 4; j++)
		ck_assert_uint_eq(scale_bits(r, j), 0x00800000u);
	/* x = 2^-133 (bf16 0x0001): y = 2^-7, e4m3fn 0x08 (normal 2^-6 is 0x08;
	 * 2^-7 is the subnormal 0x04) */
	ck_assert_uint_eq(r[0], 0x04);
	write_result_free(&got);
	write_case_free(&c);
}
END_TEST

/* The 16-bit copy keeps every input byte, NaN payloads included. */
START_TEST(plain_copy_is_raw)
{
	write_case c;
	write_result got;
	write_case_init_mla(&c, WRITE_CASE_MLA_PLAIN, 32, 16);
	c.input_dtype = c.cache_dtype = FP8KV_F16;
	c.num_tokens = 4, c.layout = WRITE_CASE_STRIDED;
	generate_write(&c);
	const int64_t t = first_written_token(&c);
	uint32_t kv_c[32], k_pe[16];
	for (int i = 0; i < 32; i++)
		kv_c[i] = (uint32_t)(0x7C01 + 37 * i) & 0xFFFF;
	for (int i = 0; i < 16; i++)
		k_pe[i] = (uint32_t)(0xFC00 + i);
	set_input_row(&c, 0, t, 0, kv_c);
	set_input_row(&c, 1, t, 0, k_pe);
	finish_write(&c, &got);
	const uint8_t *e = record_of(&c, &got, t);
	for (int i = 0; i < 48; i++) {
		const uint32_t x = i < 32 ? kv_c[i] : k_pe[i - 32];
		ck_assert(e[2 * i] == (x & 0xFF) && e[2 * i + 1] == x >> 8);
	}
	write_result_free(&got);
	write_case_free(&c);
}
END_TEST

/* DeepSeek's shapes on every thread: 600 tokens of 512 + 64. */
START_TEST(long_calls)
{
	for (int k = 0; k < 2; k++) {
		write_case c;
		write_case_init_mla(&c, k ? WRITE_CASE_MLA_DS : WRITE_CASE_MLA_PLAIN, 512, 64);
		c.scaled = !k, c.scale = 0.02f;
		c.num_tokens = 600, c.block_size = 64, c.num_duplicates = 50;
		c.padding_fraction = 0.05, c.num_out_of_range = 2;
		c.seed = 9000 + (uint64_t)k;
		check_write(&c, NULL);
		write_case_free(&c);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mla_write");
	TCase *tc = cpu_tcase(s, "plain", 120);
	tcase_add_loop_test(tc, plain, 0, 3 * 17);
	tcase_add_test(tc, plain_copy_is_raw);
	tc = cpu_tcase(s, "ds", 120);
	tcase_add_loop_test(tc, ds, 0, 24);
	tcase_add_test(tc, ds_special_tiles);
	tcase_add_test(tc, ds_subnormal_amax);
	tcase_add_test(tc, long_calls);
	return run_suite(s);
}
