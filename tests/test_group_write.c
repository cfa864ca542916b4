/* SPDX-License-Identifier: MIT */
/*
 * test_group_write.c - fp8kv_reshape_and_cache_grouped on the "cpu"
 * backend, held byte for byte to the oracle of sections 5b, 5c and 8
 * (validate/oracle_group.h) through validate/write_case.h: every byte of
 * the poisoned arena that holds the caches and scale arrays (the gaps
 * around them included), the counters, k_amax/v_amax and the status.
 *
 *   elements  fp8kv_from_float/fp8kv_to_float for e2m1 and int8 against
 *             the oracle, on every bf16 pattern with four low halves;
 *   matrix    every rule x element format x group size (16, 32, 64, 128,
 *             a whole row) x rounding (int8) x overflow policy, each over
 *             input dtypes, layouts (NHD, HND, padded strides, vLLM's
 *             NVFP4 page with scales in the caches' buffer), interleaved
 *             scales, slot types, swa mappings, padding, out-of-range and
 *             duplicate tokens, with adversarial patterns in half the
 *             groups (write_case_values.c);
 *   dedicated the header's edge cases with hand-made groups, checked
 *             against the oracle and against literal bytes worked out
 *             here: a group of zeros, NaN and Inf in a group, nothing
 *             finite, a subnormal amax, saturation, ties, -0, NVFP4's sf
 *             underflow and global scales that are not positive and
 *             finite; K linear and V interleaved scales; duplicates in
 *             token order on many threads; no tokens.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_support.h"
#include "float_bits.h"
#include "fp8kv.h"
#include "oracle.h"
#include "oracle_group.h"
#include "write_case.h"
#include "write_fixtures.h"

enum { F_0 = 0x00000000, F_M0 = 0x80000000, F_INF = 0x7F800000, F_MINF = 0xFF800000,
       F_NAN = 0x7FC00000, F_ONE = 0x3F800000 };

/* ------------------------------------------------------------ elements */

START_TEST(e2m1_scalar_conversions)
{
	static const uint32_t lows[4] = {0, 1, 0x8000, 0xFFFF};
	for (uint32_t hi = 0; hi < 65536; hi++)
		for (int l = 0; l < 4; l++) {
			const float y = float_of_bits(hi << 16 | lows[l]);
			const uint8_t want = oracle_e2m1_encode(y, NULL);
			const uint8_t got = fp8kv_from_float(y, FP8KV_E2M1, FP8KV_SATURATE);
			ck_assert_msg(got == want, "e2m1 of 0x%08x: 0x%x, oracle 0x%x",
				      (unsigned)(hi << 16 | lows[l]), got, want);
			/* the policy does not apply: e2m1 saturates */
			ck_assert_uint_eq(fp8kv_from_float(y, FP8KV_E2M1, FP8KV_NONSATURATING), want);
		}
	for (int code = 0; code < 256; code++) {
		const double want = oracle_e2m1_decode((uint8_t)(code & 0xF));
		const float got = fp8kv_to_float((uint8_t)code, FP8KV_E2M1);
		/* exact, -0 for 0x8, the high nibble ignored */
		ck_assert_msg((double)got == want && (bits_of_float(got) >> 31) == (uint32_t)((code >> 3) & 1),
			      "to_float(0x%02x, e2m1) = %a", code, (double)got);
	}
}
END_TEST

START_TEST(int8_scalar_conversions)
{
	static const uint32_t lows[4] = {0, 1, 0x8000, 0xFFFF};
	for (uint32_t hi = 0; hi < 65536; hi++)
		for (int l = 0; l < 4; l++) {
			const float y = float_of_bits(hi << 16 | lows[l]);
			const uint8_t want = oracle_int8_encode(y, FP8KV_ROUND_NEAREST_EVEN, NULL);
			const uint8_t got = fp8kv_from_float(y, FP8KV_INT8, FP8KV_SATURATE);
			ck_assert_msg(got == want, "int8 of 0x%08x: %d, oracle %d",
				      (unsigned)(hi << 16 | lows[l]), (int8_t)got, (int8_t)want);
		}
	for (int code = 0; code < 256; code++)
		ck_assert(fp8kv_to_float((uint8_t)code, FP8KV_INT8) == (float)(int8_t)code);
	/* no FP8 format, no code */
	ck_assert_uint_eq(fp8kv_from_float(1.0f, FP8KV_BF16, FP8KV_SATURATE), 0);
}
END_TEST

/* -------------------------------------------------------------- matrix */

typedef struct combo {
	fp8kv_group_rule rule;
	fp8kv_dtype format;
	fp8kv_rounding rounding;
	fp8kv_overflow overflow;
	int64_t group_size; /* 0: the whole row */
} combo;

#define MAX_COMBOS 200
static combo combos[MAX_COMBOS];
static int ncombos;

static void build_combos(void)
{
	static const fp8kv_dtype formats[6] = {FP8KV_E4M3FN, FP8KV_E4M3FNUZ, FP8KV_E5M2,
					       FP8KV_E5M2FNUZ, FP8KV_E2M1, FP8KV_INT8};
	static const int64_t sizes[5] = {16, 32, 64, 128, 0};
	ncombos = 0;
	for (int r = FP8KV_GROUP_F32; r <= FP8KV_GROUP_NVFP4; r++)
		for (int f = 0; f < 6; f++)
			for (int rd = 0; rd < 2; rd++)
				for (int p = 0; p < 2; p++)
					for (int g = 0; g < 5; g++) {
						const fp8kv_dtype fmt = formats[f];
						const int fp8 = fmt != FP8KV_E2M1 && fmt != FP8KV_INT8;
						if ((r == FP8KV_GROUP_NVFP4 && (fmt != FP8KV_E2M1 || g)) ||
						    (r != FP8KV_GROUP_F32 && fmt == FP8KV_INT8) ||
						    (rd && fmt != FP8KV_INT8) || (p && !fp8))
							continue;
						combos[ncombos++] = (combo){(fp8kv_group_rule)r, fmt,
									    (fp8kv_rounding)rd,
									    (fp8kv_overflow)p, sizes[g]};
					}
}

/* The cases of combination i: four, each with another input dtype,
 * layout, shape, slot options and seed. */
static void matrix_case(write_case *c, int i, int k)
{
	static const fp8kv_dtype inputs[3] = {FP8KV_BF16, FP8KV_F16, FP8KV_F32};
	const combo *cb = &combos[i];
	write_case_init(c);
	c->rule = cb->rule;
	c->cache_dtype = cb->format;
	c->rounding = cb->rounding;
	c->overflow = cb->overflow;
	c->input_dtype = inputs[(i + k) % 3];
	c->layout = (write_case_layout)((i + k) % 4);
	const int64_t G = cb->group_size;
	if (G == 0) { /* a whole row: a length no listed size divides */
		c->head_dim_k = c->head_dim_v = k % 2 ? 48 : 40;
		c->group_size = c->head_dim_k;
	} else {
		c->group_size = G;
		c->head_dim_k = G >= 128 ? 128 * (1 + k % 2) : 2 * G;
		c->head_dim_v = G >= 64 ? 128 : G * (1 + k % 3);
	}
	c->num_heads = 1 + (i + k) % 4;
	c->num_tokens = k == 3 ? 1 : 9 + 7 * k;
	c->block_size = (int64_t[]){4, 16, 1, 8}[k];
	c->slot_type = k % 2 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
	c->use_swa = k == 1;
	c->swa_type = i % 2 ? FP8KV_INDEX_INT32 : FP8KV_INDEX_INT64;
	c->padding_fraction = k == 3 ? 0 : 0.15;
	c->num_out_of_range = k == 2 ? 2 : 0;
	c->num_duplicates = k == 0 ? 2 : 0;
	c->want_overflow_count = c->want_nan_count = c->want_amax = (i + k) % 2;
	c->k_interleave = c->layout != WRITE_CASE_NHD && k % 2 ? 4 : 0;
	c->v_interleave = c->layout != WRITE_CASE_NHD && (i % 2) ? 4 : 0;
	static const float globals[] = {1.0f, 0.37f, 3e-3f, 4096.0f};
	c->k_global = globals[k];
	c->v_global = globals[(k + 1) % 4];
	if (cb->rule == FP8KV_GROUP_F32 && k == 2) { /* vLLM's int8, and the gfx942 divisor */
		c->divisor = cb->format == FP8KV_E4M3FNUZ ? FP8KV_DIVISOR_GFX942 : 0.0f;
		c->scale_floor = 1e-6f;
	}
	c->seed = 1000u * (uint64_t)i + (uint64_t)k + 1;
}

START_TEST(matrix)
{
	for (int k = 0; k < 4; k++) {
		write_case c;
		matrix_case(&c, _i, k);
		check_write(&c, NULL);
		write_case_free(&c);
	}
}
END_TEST

/* ----------------------------------------------------------- dedicated */

/* A small deterministic case of rule and format, bf16 inputs, no
 * duplicates, whose first written token's key row 0 is then set by hand. */
static int64_t hand_case(write_case *c, fp8kv_group_rule rule, fp8kv_dtype format, int64_t G,
			 int64_t D)
{
	write_case_init(c);
	c->rule = rule;
	c->cache_dtype = format;
	c->group_size = G;
	c->head_dim_k = c->head_dim_v = D;
	c->num_tokens = 3;
	c->num_heads = 1;
	c->special = 0;
	generate_write(c);
	return first_written_token(c);
}

/* bf16 bits of v (exactly representable here). */
static uint32_t bf(double v)
{
	return cache_case_round_bits(v, FP8KV_BF16);
}

/* A group of zeros (signed), and one with nothing finite: FP8KV_GROUP_F32
 * stores its floor, E8M0 the byte 0 (2^-127), NVFP4 sf 0; the codes are
 * +-0 by sign, NaN as its format says. */
START_TEST(zeros_and_nothing_finite)
{
	static const struct {
		fp8kv_group_rule rule;
		fp8kv_dtype format;
		float floor;
		uint32_t stored;
	} runs[] = {
		{FP8KV_GROUP_F32, FP8KV_E4M3FN, 0.0f, 0x00800000u}, /* 2^-126 */
		{FP8KV_GROUP_F32, FP8KV_INT8, 1e-6f, 0x358637BDu},  /* vLLM's floor */
		{FP8KV_GROUP_E8M0_FLOOR, FP8KV_E2M1, 0.0f, 0x00},
		{FP8KV_GROUP_E8M0_RCEIL, FP8KV_E5M2, 0.0f, 0x00},
		{FP8KV_GROUP_NVFP4, FP8KV_E2M1, 0.0f, 0x00},
	};
	for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
		write_case c;
		write_result got;
		const int64_t G = runs[r].rule == FP8KV_GROUP_NVFP4 ? 16 : 32;
		const int64_t t = hand_case(&c, runs[r].rule, runs[r].format, G, 2 * G);
		c.scale_floor = runs[r].floor;
		uint32_t row[64];
		for (int i = 0; i < G; i++) /* group 0: zeros; group 1: NaN and Inf */
			row[i] = i % 3 ? 0x8000 : 0, row[G + i] = (uint32_t[]){0x7FC0, 0xFF80, 0x7F80, 0xFFC1}[i % 4];
		set_input_row(&c, 0, t, 0, row);
		finish_write(&c, &got);
		for (int j = 0; j < 2; j++)
			ck_assert_msg(stored_scale_of(&c, &got, 0, t, 0, j) == runs[r].stored,
				      "run %zu group %d: stored 0x%08x", r, j,
				      (unsigned)stored_scale_of(&c, &got, 0, t, 0, j));
		const uint8_t *q = codes_of(&c, &got, 0, t, 0);
		if (runs[r].format == FP8KV_E2M1) /* +0, -0 | -0, +0: -0 is 0x8 in its nibble */
			ck_assert(q[0] == 0x80 && q[1] == 0x08);
		else if (runs[r].format == FP8KV_INT8) /* no -0 */
			ck_assert(q[0] == 0 && q[1] == 0 && q[2] == 0);
		else
			ck_assert(q[0] == 0x00 && q[1] == 0x80 && q[2] == 0x80);
		write_result_free(&got);
		write_case_free(&c);
	}
}
END_TEST

/* A subnormal amax: F32 takes its floor, the E8M0 rules the byte 0, NVFP4
 * underflows its sf (g = 1). */
START_TEST(subnormal_amax)
{
	static const fp8kv_group_rule rules[4] = {FP8KV_GROUP_F32, FP8KV_GROUP_E8M0_FLOOR,
						  FP8KV_GROUP_E8M0_RCEIL, FP8KV_GROUP_NVFP4};
	static const uint32_t stored[4] = {0x00800000u, 0x00, 0x00, 0x00};
	for (int r = 0; r < 4; r++) {
		write_case c;
		write_result got;
		const int64_t t = hand_case(&c, rules[r], FP8KV_E2M1, 16, 16);
		uint32_t row[16];
		for (int i = 0; i < 16; i++) /* bf16 subnormals, both signs */
			row[i] = (uint32_t)((i % 2) << 15 | (i * 5 + 1));
		set_input_row(&c, 0, t, 0, row);
		finish_write(&c, &got);
		ck_assert_uint_eq(stored_scale_of(&c, &got, 0, t, 0, 0), stored[r]);
		write_result_free(&got);
		write_case_free(&c);
	}
}
END_TEST

/* E8M0 floor: amax 1.9375 * 2^3 gives b = 127 + 3 - 8, s = 2^-5, and
 * amax / s = 496 > 464: past e4m3fn's max, saturated (0x7E) or NaN (0x7F)
 * by the policy, counted; rceil picks s = 2^-4 and nothing overflows. */
START_TEST(floor_saturates_rceil_does_not)
{
	for (int p = 0; p < 3; p++) {
		write_case c;
		write_result got;
		const fp8kv_group_rule rule = p < 2 ? FP8KV_GROUP_E8M0_FLOOR : FP8KV_GROUP_E8M0_RCEIL;
		const int64_t t = hand_case(&c, rule, FP8KV_E4M3FN, 32, 32);
		c.overflow = p == 1 ? FP8KV_NONSATURATING : FP8KV_SATURATE;
		uint32_t row[32];
		for (int i = 0; i < 32; i++)
			row[i] = bf((i % 2 ? -1 : 1) * (1.0 + i / 64.0));
		row[0] = bf(15.5);  /* 1.9375 * 2^3 */
		row[1] = bf(-15.0); /* 480 after the floor's s */
		set_input_row(&c, 0, t, 0, row);
		finish_write(&c, &got);
		const uint8_t *q = codes_of(&c, &got, 0, t, 0);
		ck_assert_uint_eq(stored_scale_of(&c, &got, 0, t, 0, 0), p < 2 ? 122u : 123u);
		if (p == 0)
			ck_assert(q[0] == 0x7E && q[1] == 0xFE);
		else if (p == 1)
			ck_assert(q[0] == 0x7F && q[1] == 0xFF);
		else /* 15.5 / 2^-4 = 248, -15 / 2^-4 = -240 */
			ck_assert(q[0] == 0x78 && q[1] == 0xF7); /* 248 ties to 256 */
		write_result_free(&got);
		write_case_free(&c);
	}
}
END_TEST

/* Ties after the scale: e2m1 (rceil, amax 6: s = 1) to the even code, and
 * int8 (F32 with amax 127: s = 1) to even or toward zero. */
START_TEST(ties)
{
	write_case c;
	write_result got;
	int64_t t = hand_case(&c, FP8KV_GROUP_E8M0_RCEIL, FP8KV_E2M1, 16, 16);
	static const double y[16] = {6, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5,
				     -0.25, -0.75, -1.25, -1.75, -2.5, -3.5, -5, -6};
	static const uint8_t want_e2m1[8] = {0x07, 0x22, 0x44, 0x66, 0xA8, 0xCA, 0xEC, 0xFE};
	uint32_t row[16];
	for (int i = 0; i < 16; i++)
		row[i] = bf(y[i]);
	set_input_row(&c, 0, t, 0, row);
	finish_write(&c, &got);
	ck_assert_uint_eq(stored_scale_of(&c, &got, 0, t, 0, 0), 127u);
	ck_assert(!memcmp(codes_of(&c, &got, 0, t, 0), want_e2m1, 8));
	write_result_free(&got);
	write_case_free(&c);

	static const double z[16] = {127, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5,
				     -126.5, 3.75, -3.75, 0.25, 0, -0.0, 64, -127};
	static const int8_t rne[16] = {127, 0, 2, 2, 0, -2, -2, 126, -126, 4, -4, 0, 0, 0, 64, -127};
	static const int8_t rz[16] = {127, 0, 1, 2, 0, -1, -2, 126, -126, 3, -3, 0, 0, 0, 64, -127};
	for (int rd = 0; rd < 2; rd++) {
		t = hand_case(&c, FP8KV_GROUP_F32, FP8KV_INT8, 16, 16);
		c.rounding = (fp8kv_rounding)rd;
		for (int i = 0; i < 16; i++)
			row[i] = bf(z[i]);
		set_input_row(&c, 0, t, 0, row);
		finish_write(&c, &got);
		ck_assert_uint_eq(stored_scale_of(&c, &got, 0, t, 0, 0), F_ONE);
		ck_assert(!memcmp(codes_of(&c, &got, 0, t, 0), rd ? rz : rne, 16));
		write_result_free(&got);
		write_case_free(&c);
	}
}
END_TEST

/* NVFP4 with global scales that are not positive and finite (sf 0x00, codes
 * +-0), that underflow s (sf stored, codes +-0), or whose 6 g overflows;
 * and a group whose amax / 6g is the tie to sf 0. */
START_TEST(nvfp4_global_scales)
{
	static const uint32_t globals[] = {F_0, F_M0, 0xBF800000u, F_NAN, F_INF, F_MINF,
					   0x7F7FFFFFu, 0x00000001u, 0x00800000u};
	for (size_t k = 0; k < sizeof globals / sizeof globals[0]; k++) {
		write_case c;
		write_result got;
		write_case_init(&c);
		c.rule = FP8KV_GROUP_NVFP4, c.cache_dtype = FP8KV_E2M1, c.group_size = 16;
		c.input_dtype = k % 2 ? FP8KV_F32 : FP8KV_BF16;
		c.k_global = float_of_bits(globals[k]);
		c.v_global = 1.0f;
		c.num_tokens = 6, c.num_duplicates = 0;
		generate_write(&c);
		const int64_t t = first_written_token(&c);
		finish_write(&c, &got);
		if (k <= 5) /* not positive and finite: every sf 0x00, codes +-0 */
			for (int j = 0; j < 4; j++) {
				ck_assert_uint_eq(stored_scale_of(&c, &got, 0, t, 0, j), 0);
				for (int b = 0; b < 8; b++)
					ck_assert_uint_eq(codes_of(&c, &got, 0, t, 0)[8 * j + b] & 0x77, 0);
			}
		write_result_free(&got);
		write_case_free(&c);
	}
	/* amax / 6g = 2^-10, the tie between 0 and e4m3fn's 2^-9: sf 0 */
	write_case c;
	write_result got;
	const int64_t t = hand_case(&c, FP8KV_GROUP_NVFP4, FP8KV_E2M1, 16, 16);
	uint32_t row[16] = {0};
	row[3] = bf(6.0 / 1024), row[4] = bf(-3.0 / 1024);
	set_input_row(&c, 0, t, 0, row);
	finish_write(&c, &got);
	ck_assert_uint_eq(stored_scale_of(&c, &got, 0, t, 0, 0), 0);
	ck_assert(codes_of(&c, &got, 0, t, 0)[1] == 0x00 && codes_of(&c, &got, 0, t, 0)[2] == 0x08);
	write_result_free(&got);
	write_case_free(&c);
}
END_TEST

/* vLLM's NVFP4 page (sm_100): K scales linear, V scales in the 4-token
 * interleave, all in one buffer with the codes; block sizes that 4 divides
 * and one it does not; TensorRT-LLM's K-and-V interleave. */
START_TEST(page_with_interleaved_scales)
{
	for (int k = 0; k < 4; k++) {
		write_case c;
		write_case_init(&c);
		c.rule = k == 3 ? FP8KV_GROUP_E8M0_RCEIL : FP8KV_GROUP_NVFP4;
		c.cache_dtype = FP8KV_E2M1, c.group_size = k == 3 ? 32 : 16;
		c.layout = WRITE_CASE_PAGE;
		c.head_dim_k = c.head_dim_v = 128;
		c.num_heads = 2, c.num_tokens = 40, c.block_size = k == 1 ? 6 : 16;
		c.k_interleave = k >= 2 ? 4 : 0;
		c.v_interleave = 4;
		c.k_global = 0.5f, c.v_global = 0.0078125f;
		c.seed = 77 + (uint64_t)k;
		check_write(&c, NULL);
		write_case_free(&c);
	}
}
END_TEST

/* A call long enough for every thread (600k elements): duplicate slots
 * still end with the last token's row and scales. */
START_TEST(duplicates_on_many_threads)
{
	static const fp8kv_group_rule rules[3] = {FP8KV_GROUP_NVFP4, FP8KV_GROUP_E8M0_FLOOR,
						  FP8KV_GROUP_F32};
	static const fp8kv_dtype formats[3] = {FP8KV_E2M1, FP8KV_E4M3FN, FP8KV_INT8};
	for (int k = 0; k < 3; k++) {
		write_case c;
		write_case_init(&c);
		c.rule = rules[k], c.cache_dtype = formats[k];
		c.group_size = k == 0 ? 16 : k == 1 ? 32 : 128;
		c.head_dim_k = c.head_dim_v = 128;
		c.num_heads = 8, c.num_tokens = 300, c.block_size = 16;
		c.num_duplicates = 60, c.padding_fraction = 0.05, c.num_out_of_range = 3;
		c.seed = 4242 + (uint64_t)k;
		check_write(&c, NULL);
		write_case_free(&c);
	}
}
END_TEST

/* No tokens: FP8KV_OK, and the arena keeps its poison (no input needed). */
START_TEST(no_tokens)
{
	write_case c;
	write_case_init(&c);
	c.num_tokens = 0, c.num_blocks = 2;
	check_write(&c, NULL);
	write_case_free(&c);
}
END_TEST

int main(void)
{
	build_combos();
	Suite *s = suite_create("group_write");
	TCase *tc = cpu_tcase(s, "elements", 60);
	tcase_add_test(tc, e2m1_scalar_conversions);
	tcase_add_test(tc, int8_scalar_conversions);
	tc = cpu_tcase(s, "matrix", 120);
	tcase_add_loop_test(tc, matrix, 0, ncombos);
	tc = cpu_tcase(s, "dedicated", 120);
	tcase_add_test(tc, zeros_and_nothing_finite);
	tcase_add_test(tc, subnormal_amax);
	tcase_add_test(tc, floor_saturates_rceil_does_not);
	tcase_add_test(tc, ties);
	tcase_add_test(tc, nvfp4_global_scales);
	tcase_add_test(tc, page_with_interleaved_scales);
	tcase_add_test(tc, duplicates_on_many_threads);
	tcase_add_test(tc, no_tokens);
	return run_suite(s);
}
