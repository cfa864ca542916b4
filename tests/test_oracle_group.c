/* SPDX-License-Identifier: MIT */
/*
 * test_oracle_group.c - the oracle of sections 5b, 5c, 8 and 9
 * (validate/oracle_group.h) held to vectors worked by hand from fp8kv.h's
 * text: every e2m1 tie and threshold, int8 ties both ways and +-127.5, the
 * E8M0 rules around powers of two and max * 2^k, F32 and NVFP4 scales at
 * their edges, grouped rows, the interleaved scale address of vLLM's V
 * layout, and MLA entries and records with special tiles.  The expected
 * values are literals; the oracle's outputs are poisoned first and every
 * byte past what it must write is checked.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "check_support.h"
#include "float_bits.h"
#include "fp8kv.h"
#include "oracle_group.h"

#define POISON 0xA5

enum {
	F_0 = 0x00000000, F_M0 = 0x80000000, F_INF = 0x7F800000, F_MINF = 0xFF800000,
	F_NAN = 0x7FC00000, F_MNAN = 0xFFC00000, F_SNAN = 0x7F800001, F_MAX = 0x7F7FFFFF,
	F_ONE = 0x3F800000, F_MIN = 0x00800000, F_TRUE_MIN = 0x00000001
};

static float f(uint32_t b)
{
	return float_of_bits(b);
}

/* ---------------------------------------------------------------- e2m1 */

typedef struct e2m1_vec {
	uint32_t y;
	uint8_t code;
	int overflow;
} e2m1_vec;

static const e2m1_vec e2m1_vecs[] = {
	{F_0, 0x0, 0}, {F_M0, 0x8, 0},                   /* the sign of zero kept */
	{0x3F000000, 0x1, 0}, {F_ONE, 0x2, 0}, {0x3FC00000, 0x3, 0}, /* 0.5 1 1.5 */
	{0x40000000, 0x4, 0}, {0x40400000, 0x5, 0}, {0x40800000, 0x6, 0}, /* 2 3 4 */
	{0x40C00000, 0x7, 0}, {0xC0C00000, 0xF, 0},      /* +-6 */
	/* the ties of 5b step 1, and one ulp either side */
	{0x3E800000, 0x0, 0}, {0x3E7FFFFF, 0x0, 0}, {0x3E800001, 0x1, 0}, /* 0.25 */
	{0xBE800000, 0x8, 0},                            /* -0.25 -> -0 */
	{0x3F400000, 0x2, 0}, {0x3F3FFFFF, 0x1, 0}, {0x3F400001, 0x2, 0}, /* 0.75 */
	{0x3FA00000, 0x2, 0}, {0x3F9FFFFF, 0x2, 0}, {0x3FA00001, 0x3, 0}, /* 1.25 */
	{0x3FE00000, 0x4, 0}, {0x3FDFFFFF, 0x3, 0}, {0xBFE00000, 0xC, 0}, /* 1.75 */
	{0x40200000, 0x4, 0}, {0x40200001, 0x5, 0}, {0xC0200000, 0xC, 0}, /* 2.5 */
	{0x40600000, 0x6, 0}, {0x405FFFFF, 0x5, 0},      /* 3.5 */
	{0x40A00000, 0x6, 0}, {0x40A00001, 0x7, 0}, {0x409FFFFF, 0x6, 0}, /* 5 */
	/* 7 is the tie past 6 and overflows; 7 - ulp does not */
	{0x40DFFFFF, 0x7, 0}, {0x40E00000, 0x7, 1}, {0xC0E00000, 0xF, 1},
	{0x40E00001, 0x7, 1}, {0x41000000, 0x7, 1}, {F_MAX, 0x7, 1}, {0xFF7FFFFF, 0xF, 1},
	/* Inf saturates, not counted here (the input's finiteness decides) */
	{F_INF, 0x7, 0}, {F_MINF, 0xF, 0},
	/* NaN gives 0x0, whatever its sign or payload */
	{F_NAN, 0x0, 0}, {F_MNAN, 0x0, 0}, {F_SNAN, 0x0, 0}, {0xFFFFFFFF, 0x0, 0},
	/* fp32 subnormals and small values keep their sign */
	{F_TRUE_MIN, 0x0, 0}, {0x80000001, 0x8, 0}, {0x807FFFFF, 0x8, 0},
	{0xBDCCCCCD, 0x8, 0}, /* -0.1 */
	{0x3E99999A, 0x1, 0}, /* 0.3 */
};

START_TEST(e2m1_codes)
{
	for (size_t i = 0; i < sizeof e2m1_vecs / sizeof *e2m1_vecs; i++) {
		const e2m1_vec *v = &e2m1_vecs[i];
		int o = -1;
		const uint8_t c = oracle_e2m1_encode(f(v->y), &o);
		ck_assert_msg(c == v->code && o == v->overflow,
			      "e2m1 of 0x%08x: got 0x%x overflow %d, want 0x%x overflow %d",
			      (unsigned)v->y, c, o, v->code, v->overflow);
	}
}
END_TEST

START_TEST(e2m1_decode_and_round_trip)
{
	static const double mag[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
	for (int c = 0; c < 16; c++) {
		const double v = oracle_e2m1_decode((uint8_t)c);
		ck_assert(v == (c & 8 ? -mag[c & 7] : mag[c & 7]));
		ck_assert_int_eq((int)(bits_of_double(v) >> 63), c >> 3); /* -0 for 0x8 */
		ck_assert_int_eq(oracle_e2m1_encode(oracle_f32_round(v), NULL), c);
	}
	ck_assert(oracle_format_max(FP8KV_E2M1) == 6 && oracle_format_emax(FP8KV_E2M1) == 2);
}
END_TEST

/* ---------------------------------------------------------------- int8 */

typedef struct int8_vec {
	uint32_t y;
	int8_t rne, trunc;
	int ovf_rne, ovf_trunc;
} int8_vec;

static const int8_vec int8_vecs[] = {
	{F_0, 0, 0, 0, 0}, {F_M0, 0, 0, 0, 0},           /* no negative zero */
	{0x3F000000, 0, 0, 0, 0}, {0xBF000000, 0, 0, 0, 0}, /* +-0.5 */
	{0x3F000001, 1, 0, 0, 0}, {0x3EFFFFFF, 0, 0, 0, 0},
	{0x3FC00000, 2, 1, 0, 0}, {0xBFC00000, -2, -1, 0, 0}, /* +-1.5 */
	{0x40200000, 2, 2, 0, 0}, {0xC0200000, -2, -2, 0, 0}, /* +-2.5 */
	{0x40300000, 3, 2, 0, 0}, {0xC0300000, -3, -2, 0, 0}, /* +-2.75 */
	{0xBF333333, -1, 0, 0, 0},                       /* -0.7 */
	{0x42FD0000, 126, 126, 0, 0},                    /* 126.5: tie to 126 */
	{0x42FE0000, 127, 127, 0, 0}, {0xC2FE0000, -127, -127, 0, 0},
	{0x42FEFFFF, 127, 127, 0, 0},                    /* 127.49999 */
	/* 127.5 ties to 128 (even): beyond 127; truncation gives 127 */
	{0x42FF0000, 127, 127, 1, 0}, {0xC2FF0000, -127, -127, 1, 0},
	{0x42FFFFFF, 127, 127, 1, 0},                    /* 127.99999 */
	{0x43000000, 127, 127, 1, 1}, {0xC3000000, -127, -127, 1, 1}, /* +-128 */
	{0x501502F9, 127, 127, 1, 1}, {F_MAX, 127, 127, 1, 1}, {0xFF7FFFFF, -127, -127, 1, 1},
	{F_INF, 127, 127, 0, 0}, {F_MINF, -127, -127, 0, 0},
	{F_NAN, 0, 0, 0, 0}, {F_MNAN, 0, 0, 0, 0}, {F_SNAN, 0, 0, 0, 0},
	{F_TRUE_MIN, 0, 0, 0, 0}, {0x80000001, 0, 0, 0, 0},
};

START_TEST(int8_codes)
{
	for (size_t i = 0; i < sizeof int8_vecs / sizeof *int8_vecs; i++) {
		const int8_vec *v = &int8_vecs[i];
		int o1 = -1, o2 = -1;
		const uint8_t a = oracle_int8_encode(f(v->y), FP8KV_ROUND_NEAREST_EVEN, &o1);
		const uint8_t b = oracle_int8_encode(f(v->y), FP8KV_ROUND_TOWARD_ZERO, &o2);
		ck_assert_msg(a == (uint8_t)v->rne && o1 == v->ovf_rne,
			      "int8 rne of 0x%08x: got %d overflow %d, want %d overflow %d",
			      (unsigned)v->y, (int8_t)a, o1, v->rne, v->ovf_rne);
		ck_assert_msg(b == (uint8_t)v->trunc && o2 == v->ovf_trunc,
			      "int8 trunc of 0x%08x: got %d overflow %d, want %d overflow %d",
			      (unsigned)v->y, (int8_t)b, o2, v->trunc, v->ovf_trunc);
		ck_assert(a != 0x80 && b != 0x80); /* -128 is never written */
	}
	ck_assert(oracle_format_max(FP8KV_INT8) == 127);
}
END_TEST

/* ------------------------------------------------------------ E8M0 rules */

typedef struct e8m0_vec {
	fp8kv_dtype format;
	uint32_t amax;
	uint8_t floor, rceil;
} e8m0_vec;

static const e8m0_vec e8m0_vecs[] = {
	/* e4m3fn: max 448 = 1.75 * 2^8, emax 8 */
	{FP8KV_E4M3FN, 0x43E00000, 127, 127},   /* 448 */
	{FP8KV_E4M3FN, 0x43E00001, 127, 128},   /* 448 + ulp: rceil moves up */
	{FP8KV_E4M3FN, 0x43FFFFFF, 127, 128},   /* 512 - ulp */
	{FP8KV_E4M3FN, 0x44000000, 128, 128},   /* 512 */
	{FP8KV_E4M3FN, 0x44600000, 128, 128},   /* 896 = 448 * 2 */
	{FP8KV_E4M3FN, 0x44600001, 128, 129},
	{FP8KV_E4M3FN, 0x43800000, 127, 127},   /* 256 */
	{FP8KV_E4M3FN, 0x437FFFFF, 126, 127},   /* 256 - ulp */
	{FP8KV_E4M3FN, 0x43600000, 126, 126},   /* 224 = 448 / 2 */
	{FP8KV_E4M3FN, 0x43600001, 126, 127},
	{FP8KV_E4M3FN, F_ONE, 119, 119},        /* 1: 448 * 2^-8 >= 1 */
	{FP8KV_E4M3FN, F_0, 0, 0},
	{FP8KV_E4M3FN, F_TRUE_MIN, 0, 0},
	{FP8KV_E4M3FN, 0x007FFFFF, 0, 0},       /* largest subnormal */
	{FP8KV_E4M3FN, F_MIN, 0, 0},            /* field 1 - 8: at least 0 */
	{FP8KV_E4M3FN, 0x04800000, 1, 1},       /* 2^-118: field 9; 448 * 2^-126 >= it */
	{FP8KV_E4M3FN, F_MAX, 246, 247},        /* 448 * 2^120 is the first >= FLT_MAX */
	/* e4m3fnuz: max 240 = 1.875 * 2^7, emax 7 */
	{FP8KV_E4M3FNUZ, 0x43700000, 127, 127}, /* 240 */
	{FP8KV_E4M3FNUZ, 0x43700001, 127, 128},
	{FP8KV_E4M3FNUZ, 0x43800000, 128, 128}, /* 256 */
	/* e5m2 and e5m2fnuz: max 57344 = 1.75 * 2^15, emax 15 */
	{FP8KV_E5M2, 0x47600000, 127, 127},
	{FP8KV_E5M2, 0x47600001, 127, 128},
	{FP8KV_E5M2FNUZ, 0x47800000, 128, 128}, /* 65536 */
	/* e2m1: max 6 = 1.5 * 2^2, emax 2 */
	{FP8KV_E2M1, 0x40C00000, 127, 127},     /* 6 */
	{FP8KV_E2M1, 0x40C00001, 127, 128},
	{FP8KV_E2M1, 0x40E00000, 127, 128},     /* 7 */
	{FP8KV_E2M1, 0x41000000, 128, 128},     /* 8 */
	{FP8KV_E2M1, 0x41400000, 128, 128},     /* 12 = 6 * 2 */
	{FP8KV_E2M1, 0x41480000, 128, 129},     /* 12.5 */
	{FP8KV_E2M1, 0x3FC00000, 125, 125},     /* 1.5 = 6 * 2^-2 */
	{FP8KV_E2M1, 0x3F400000, 124, 124},     /* 0.75 = 6 * 2^-3 */
	{FP8KV_E2M1, 0x01C00000, 1, 1},         /* 6 * 2^-126: field 3 */
	{FP8KV_E2M1, 0x01400000, 0, 0},         /* 6 * 2^-127: field 2 */
	{FP8KV_E2M1, 0x01400001, 0, 1},
	{FP8KV_E2M1, 0x00C00000, 0, 0},         /* 6 * 2^-128: rceil clamps at 0 */
	{FP8KV_E2M1, 0x00600000, 0, 0},         /* 6 * 2^-129, subnormal */
	{FP8KV_E2M1, F_MAX, 252, 253},          /* 6 * 2^126 is the first >= FLT_MAX */
};

START_TEST(e8m0_rules)
{
	for (size_t i = 0; i < sizeof e8m0_vecs / sizeof *e8m0_vecs; i++) {
		const e8m0_vec *v = &e8m0_vecs[i];
		for (int r = 0; r < 2; r++) {
			oracle_group_params p = {r ? FP8KV_GROUP_E8M0_RCEIL : FP8KV_GROUP_E8M0_FLOOR,
						 v->format, FP8KV_SATURATE, FP8KV_ROUND_NEAREST_EVEN,
						 0, 0, 0};
			oracle_group_scale s;
			memset(&s, POISON, sizeof s);
			ck_assert_int_eq(oracle_group_scale_of(&p, f(v->amax), &s), 0);
			const uint8_t want = r ? v->rceil : v->floor;
			ck_assert_msg(s.stored_bytes == 1 && s.stored[0] == want && !s.zero,
				      "%s, format %d, amax 0x%08x: byte %d, want %d",
				      r ? "rceil" : "floor", v->format, (unsigned)v->amax,
				      s.stored[0], want);
			/* s = 2^(b - 127), built here from the fp32 fields */
			const uint32_t sb = want ? (uint32_t)want << 23 : 0x00400000u;
			ck_assert_uint_eq(bits_of_float(s.s), sb);
		}
	}
}
END_TEST

START_TEST(e8m0_rules_refuse_int8)
{
	oracle_group_scale s;
	for (int r = FP8KV_GROUP_E8M0_FLOOR; r <= FP8KV_GROUP_NVFP4; r++) {
		oracle_group_params p = {(fp8kv_group_rule)r, FP8KV_INT8, FP8KV_SATURATE,
					 FP8KV_ROUND_NEAREST_EVEN, 0, 0, F_ONE};
		ck_assert_int_eq(oracle_group_scale_of(&p, 1.0f, &s), -1);
	}
	oracle_group_params p = {FP8KV_GROUP_NVFP4, FP8KV_E4M3FN, FP8KV_SATURATE,
				 FP8KV_ROUND_NEAREST_EVEN, 0, 0, 1.0f};
	ck_assert_int_eq(oracle_group_scale_of(&p, 1.0f, &s), -1); /* NVFP4 is e2m1 only */
	p = (oracle_group_params){FP8KV_GROUP_F32, FP8KV_E2M1, FP8KV_NONSATURATING,
				  FP8KV_ROUND_NEAREST_EVEN, 0, 0, 0};
	ck_assert_int_eq(oracle_group_scale_of(&p, 1.0f, &s), -1); /* e2m1 saturates */
	p = (oracle_group_params){FP8KV_GROUP_F32, FP8KV_E4M3FN, FP8KV_SATURATE,
				  FP8KV_ROUND_TOWARD_ZERO, 0, 0, 0};
	ck_assert_int_eq(oracle_group_scale_of(&p, 1.0f, &s), -1); /* rounding: int8 only */
	p = (oracle_group_params){FP8KV_GROUP_F32, FP8KV_E4M3FN, FP8KV_SATURATE,
				  FP8KV_ROUND_NEAREST_EVEN, -1.0f, 0, 0};
	ck_assert_int_eq(oracle_group_scale_of(&p, 1.0f, &s), -1); /* negative divisor */
}
END_TEST

/* ------------------------------------------------------------ F32 scales */

typedef struct f32_vec {
	fp8kv_dtype format;
	uint32_t divisor, floor, amax, s;
} f32_vec;

static const f32_vec f32_vecs[] = {
	{FP8KV_E4M3FN, 0, 0, 0x43E00000, F_ONE},             /* 448 / 448 */
	{FP8KV_E4M3FN, 0, 0, F_ONE, 0x3B124925},             /* RN(1 / 448) */
	{FP8KV_E4M3FN, 0, 0, F_0, F_MIN},                    /* zeros: the floor */
	{FP8KV_E4M3FN, 0, 0, F_TRUE_MIN, F_MIN},             /* subnormal amax */
	{FP8KV_E4M3FN, 0, 0, 0x007FFFFF, F_MIN},
	{FP8KV_E4M3FN, 0, 0, 0x04E00000, F_MIN},             /* 448 * 2^-126: exactly */
	{FP8KV_E4M3FN, 0, 0, 0x04E00001, 0x00800001},        /* just above the floor */
	{FP8KV_E4M3FNUZ, 0, 0, 0x43700000, F_ONE},           /* 240 / 240 */
	{FP8KV_E4M3FNUZ, 0x43600000, 0, 0x43600000, F_ONE},  /* gfx942: 224 / 224 */
	{FP8KV_E4M3FNUZ, 0x43600000, 0, 0x43700000, 0x3F892492}, /* RN(240 / 224) */
	{FP8KV_E5M2, 0, 0, 0x47600000, F_ONE},
	{FP8KV_E2M1, 0, 0, 0x40C00000, F_ONE},               /* 6 / 6 */
	{FP8KV_E2M1, 0, 0, 0x41400000, 0x40000000},          /* 12 / 6 */
	{FP8KV_INT8, 0, 0, 0x42FE0000, F_ONE},               /* 127 / 127 */
	{FP8KV_INT8, 0, 0x358637BD, F_0, 0x358637BD},        /* vLLM: floor fp32(1e-6) */
	{FP8KV_INT8, 0, 0x358637BD, 0x3F000000, 0x3B810204}, /* RN(0.5 / 127) */
	{FP8KV_E4M3FN, 0, F_ONE, 0x43E00000, F_ONE},         /* floor 1 */
	{FP8KV_E4M3FN, 0, F_ONE, 0x43E00001, 0x3F800001},
	/* a tiny divisor makes s = +Inf: the rule's literal reading */
	{FP8KV_E4M3FN, F_TRUE_MIN, 0, F_ONE, F_INF},
};

START_TEST(f32_scales)
{
	for (size_t i = 0; i < sizeof f32_vecs / sizeof *f32_vecs; i++) {
		const f32_vec *v = &f32_vecs[i];
		oracle_group_params p = {FP8KV_GROUP_F32, v->format, FP8KV_SATURATE,
					 FP8KV_ROUND_NEAREST_EVEN, f(v->divisor), f(v->floor), 0};
		oracle_group_scale s;
		memset(&s, POISON, sizeof s);
		ck_assert_int_eq(oracle_group_scale_of(&p, f(v->amax), &s), 0);
		ck_assert_msg(bits_of_float(s.s) == v->s && !s.zero && s.stored_bytes == 4,
			      "F32, format %d, amax 0x%08x: s 0x%08x, want 0x%08x", v->format,
			      (unsigned)v->amax, (unsigned)bits_of_float(s.s), (unsigned)v->s);
		for (int k = 0; k < 4; k++) /* little-endian */
			ck_assert_int_eq(s.stored[k], (uint8_t)(v->s >> (8 * k)));
	}
}
END_TEST

/* ----------------------------------------------------------- NVFP4 scales */

typedef struct nvfp4_vec {
	uint32_t g, amax;
	uint8_t sf;
	int zero;
	uint32_t s;
} nvfp4_vec;

static const nvfp4_vec nvfp4_vecs[] = {
	{F_ONE, 0x40C00000, 0x38, 0, F_ONE},            /* amax 6, g 1: sf 1 */
	{0x40800000, 0x41C00000, 0x38, 0, 0x40800000},  /* g 4, amax 24: sf 1, s 4 */
	{F_ONE, 0x41400000, 0x40, 0, 0x40000000},       /* amax 12: sf 2 */
	{F_ONE, 0x40E00000, 0x39, 0, 0x3F900000},       /* amax 7: 7/6 -> 1.125 */
	{F_ONE, 0x49742400, 0x7E, 0, 0x43E00000},       /* amax 1e6: sf saturates */
	{F_ONE, F_0, 0x00, 1, 0},                       /* amax 0 */
	{F_ONE, 0x38800000, 0x00, 1, 0},                /* 2^-14: sf underflows */
	{F_ONE, 0x3BC00000, 0x00, 1, 0},                /* 6 * 2^-10: the tie to 0 */
	{F_ONE, 0x3BC00001, 0x01, 0, 0x3B000000},       /* just above: 2^-9 */
	{F_ONE, 0x3C400000, 0x01, 0, 0x3B000000},       /* 6 * 2^-9 */
	/* g not positive and finite: every group is zero */
	{F_0, 0x40C00000, 0x00, 1, 0}, {F_M0, 0x40C00000, 0x00, 1, 0},
	{0xBF800000, 0x40C00000, 0x00, 1, 0}, {F_INF, 0x40C00000, 0x00, 1, 0},
	{F_NAN, 0x40C00000, 0x00, 1, 0}, {F_MINF, 0x40C00000, 0x00, 1, 0},
	/* RN(6 g) overflows: amax / Inf = 0, sf 0 */
	{F_MAX, 0x40C00000, 0x00, 1, 0},
	/* s = RN(sf * g) underflows to +0 while sf is not 0: the codes are +-0
	 * (fp8kv.h section 8), sf is stored */
	{F_TRUE_MIN, F_TRUE_MIN, 0x23, 1, F_0},
	{0x00000003, F_TRUE_MIN, 0x16, 1, F_0},         /* q 1/18: sf 1.75 * 2^-5, s 0 */
	{0x00800000, F_TRUE_MIN, 0x00, 1, 0},           /* g normal: sf underflows first */
};

START_TEST(nvfp4_scales)
{
	for (size_t i = 0; i < sizeof nvfp4_vecs / sizeof *nvfp4_vecs; i++) {
		const nvfp4_vec *v = &nvfp4_vecs[i];
		oracle_group_params p = {FP8KV_GROUP_NVFP4, FP8KV_E2M1, FP8KV_SATURATE,
					 FP8KV_ROUND_NEAREST_EVEN, 0, 0, f(v->g)};
		oracle_group_scale s;
		memset(&s, POISON, sizeof s);
		ck_assert_int_eq(oracle_group_scale_of(&p, f(v->amax), &s), 0);
		ck_assert_msg(s.stored_bytes == 1 && s.stored[0] == v->sf && s.zero == v->zero,
			      "NVFP4 g 0x%08x amax 0x%08x: sf 0x%02x zero %d, want 0x%02x %d",
			      (unsigned)v->g, (unsigned)v->amax, s.stored[0], s.zero, v->sf,
			      v->zero);
		if (!v->zero)
			ck_assert_uint_eq(bits_of_float(s.s), v->s);
	}
}
END_TEST

/* ------------------------------------------------------------------ rows */

/* Runs a row into poisoned buffers and checks the bytes past its outputs. */
static void row(const oracle_group_params *p, int64_t G, const uint32_t *x, int64_t n,
		fp8kv_dtype dtype, uint8_t *codes, uint8_t *scales, oracle_counts *c)
{
	const int64_t ncodes = p->format == FP8KV_E2M1 ? n / 2 : n;
	const int64_t nscales = n / G * oracle_group_scale_bytes(p->rule);
	memset(codes, POISON, 600);
	memset(scales, POISON, 64);
	ck_assert_int_eq(oracle_group_row(p, G, x, n, dtype, codes, scales, c, NULL), 0);
	for (int64_t i = ncodes; i < 600; i++)
		ck_assert_int_eq(codes[i], POISON);
	for (int64_t i = nscales; i < 64; i++)
		ck_assert_int_eq(scales[i], POISON);
}

START_TEST(rows_mx_e2m1)
{
	uint32_t x[32] = {0x40E00000, F_ONE, 0x3E99999A, 0xC0200000}; /* 7 1 0.3 -2.5, zeros */
	uint8_t codes[600], scales[64];
	oracle_counts c;
	oracle_group_params p = {FP8KV_GROUP_E8M0_FLOOR, FP8KV_E2M1, FP8KV_SATURATE,
				 FP8KV_ROUND_NEAREST_EVEN, 0, 0, 0};
	/* floor: b 127, s 1; 7 overflows to 6 and counts; element 0 low */
	row(&p, 32, x, 32, FP8KV_F32, codes, scales, &c);
	ck_assert_int_eq(codes[0], 0x27);
	ck_assert_int_eq(codes[1], 0xC1);
	for (int i = 2; i < 16; i++)
		ck_assert_int_eq(codes[i], 0x00);
	ck_assert_int_eq(scales[0], 127);
	ck_assert(c.overflows == 1 && c.nans == 0);
	/* rceil: b 128, s 2: 3.5 -> 4, 0.5, 0.15 -> 0, -1.25 -> -1 */
	p.rule = FP8KV_GROUP_E8M0_RCEIL;
	row(&p, 32, x, 32, FP8KV_F32, codes, scales, &c);
	ck_assert_int_eq(codes[0], 0x16);
	ck_assert_int_eq(codes[1], 0xA0);
	ck_assert_int_eq(scales[0], 128);
	ck_assert(c.overflows == 0);
	/* two groups of 16: each its own byte */
	p.rule = FP8KV_GROUP_E8M0_FLOOR;
	x[16] = 0x41000000; /* 8 in the second group: b 128, s 2 */
	x[17] = 0x40400000; /* 3 -> 1.5 */
	row(&p, 16, x, 32, FP8KV_F32, codes, scales, &c);
	ck_assert(scales[0] == 127 && scales[1] == 128);
	ck_assert_int_eq(codes[8], 0x36); /* 8 / 2 = 4 (0x6), 3 / 2 = 1.5 (0x3) */
}
END_TEST

START_TEST(rows_fp8_specials)
{
	/* NaN, -NaN, Inf, -Inf, 2, -0, 0, 1, then zeros: amax 2 ignores the
	 * specials, s = RN(2 / 448); section 5 converts them */
	const uint32_t x[16] = {F_NAN, F_MNAN, F_INF, F_MINF, 0x40000000, F_M0, F_0, F_ONE};
	static const uint8_t sat[8] = {0x7F, 0xFF, 0x7E, 0xFE, 0x7E, 0x80, 0x00, 0x76};
	static const uint8_t nonsat[8] = {0x7F, 0xFF, 0x7F, 0xFF, 0x7E, 0x80, 0x00, 0x76};
	uint8_t codes[600], scales[64];
	oracle_counts c;
	oracle_group_params p = {FP8KV_GROUP_F32, FP8KV_E4M3FN, FP8KV_SATURATE,
				 FP8KV_ROUND_NEAREST_EVEN, 0, 0, 0};
	for (int o = 0; o < 2; o++) {
		p.overflow = (fp8kv_overflow)o;
		row(&p, 16, x, 16, FP8KV_F32, codes, scales, &c);
		ck_assert(!memcmp(codes, o ? nonsat : sat, 8));
		for (int i = 8; i < 16; i++)
			ck_assert_int_eq(codes[i], 0x00);
		ck_assert(scales[0] == 0x25 && scales[1] == 0x49 && scales[2] == 0x92 &&
			  scales[3] == 0x3B);
		ck_assert(c.overflows == 0 && c.nans == 2); /* Inf inputs never count */
	}
	/* a group of NaNs only: the floor 2^-126 */
	const uint32_t nans[16] = {F_NAN, F_NAN, F_NAN, F_NAN, F_NAN, F_NAN, F_NAN, F_NAN,
				   F_NAN, F_NAN, F_NAN, F_NAN, F_NAN, F_NAN, F_NAN, F_MNAN};
	row(&p, 16, nans, 16, FP8KV_F32, codes, scales, &c);
	ck_assert(scales[0] == 0 && scales[1] == 0 && scales[2] == 0x80 && scales[3] == 0);
	ck_assert(c.nans == 16 && codes[15] == 0xFF);
	/* E8M0 floor: 500 overflows by the policy; the specials as section 5 */
	const uint32_t y[32] = {0x43FA0000, 0xC3FA0000, F_ONE, F_NAN, F_INF, F_MINF};
	p.rule = FP8KV_GROUP_E8M0_FLOOR;
	for (int o = 0; o < 2; o++) {
		p.overflow = (fp8kv_overflow)o;
		row(&p, 32, y, 32, FP8KV_F32, codes, scales, &c);
		ck_assert_int_eq(scales[0], 127);
		ck_assert_int_eq(codes[0], o ? 0x7F : 0x7E);
		ck_assert_int_eq(codes[1], o ? 0xFF : 0xFE);
		ck_assert_int_eq(codes[2], 0x38);
		ck_assert_int_eq(codes[3], 0x7F);
		ck_assert_int_eq(codes[4], o ? 0x7F : 0x7E);
		ck_assert_int_eq(codes[5], o ? 0xFF : 0xFE);
		ck_assert(c.overflows == 2 && c.nans == 1);
	}
	/* without the 500s, amax 1: b = 127 - 8, s = 2^-8, 1 -> 256 (0x78) */
	const uint32_t z[32] = {F_NAN, F_INF, F_ONE};
	p.overflow = FP8KV_SATURATE;
	row(&p, 32, z, 32, FP8KV_F32, codes, scales, &c);
	ck_assert(scales[0] == 119 && codes[0] == 0x7F && codes[1] == 0x7E && codes[2] == 0x78);
	/* a tiny divisor: s = +Inf, finite x / Inf = +-0, Inf / Inf = NaN (its
	 * sign sign(x) ^ sign(s)): the literal reading (see the report) */
	const uint32_t w[16] = {F_ONE, 0xBF800000, F_INF, F_MINF};
	p.rule = FP8KV_GROUP_F32;
	p.divisor = f(F_TRUE_MIN);
	row(&p, 16, w, 16, FP8KV_F32, codes, scales, &c);
	ck_assert(codes[0] == 0x00 && codes[1] == 0x80 && codes[2] == 0x7F && codes[3] == 0xFF);
	ck_assert(scales[3] == 0x7F && scales[2] == 0x80 && c.overflows == 0 && c.nans == 0);
}
END_TEST

START_TEST(rows_int8)
{
	/* bf16 127, 2.5, 2.75, -2.75, -0.5, 0.5, 1.5, -127: s = 1 */
	const uint32_t x[8] = {0x42FE, 0x4020, 0x4030, 0xC030, 0xBF00, 0x3F00, 0x3FC0, 0xC2FE};
	static const uint8_t rne[8] = {0x7F, 2, 3, 0xFD, 0, 0, 2, 0x81};
	static const uint8_t trunc[8] = {0x7F, 2, 2, 0xFE, 0, 0, 1, 0x81};
	uint8_t codes[600], scales[64];
	oracle_counts c;
	/* vLLM's int8 per (token, head): G = the row, floor fp32(1e-6) */
	oracle_group_params p = {FP8KV_GROUP_F32, FP8KV_INT8, FP8KV_SATURATE,
				 FP8KV_ROUND_TOWARD_ZERO, 0, f(0x358637BD), 0};
	row(&p, 8, x, 8, FP8KV_BF16, codes, scales, &c);
	ck_assert(!memcmp(codes, trunc, 8) && c.overflows == 0);
	ck_assert(scales[0] == 0 && scales[1] == 0 && scales[2] == 0x80 && scales[3] == 0x3F);
	p.rounding = FP8KV_ROUND_NEAREST_EVEN;
	row(&p, 8, x, 8, FP8KV_BF16, codes, scales, &c);
	ck_assert(!memcmp(codes, rne, 8));
	/* zeros: s = the floor */
	const uint32_t zeros[8] = {0, 0x8000};
	row(&p, 8, zeros, 8, FP8KV_BF16, codes, scales, &c);
	ck_assert(scales[0] == 0xBD && scales[1] == 0x37 && scales[2] == 0x86 && scales[3] == 0x35);
	ck_assert(codes[0] == 0 && codes[1] == 0);
	/* NaN 0, +-Inf +-127 (uncounted), the rest by s = 127 / 127 */
	const uint32_t sp[8] = {0x7FC0, 0x7F80, 0xFF80, 0x42FE, 0x3F80};
	row(&p, 8, sp, 8, FP8KV_BF16, codes, scales, &c);
	ck_assert(codes[0] == 0 && codes[1] == 0x7F && codes[2] == 0x81 && codes[3] == 0x7F &&
		  codes[4] == 1 && c.overflows == 0 && c.nans == 1);
	/* divisor 254: s = 1, so 254 and -254 go past 127 and count; 127.5:
	 * 128 to nearest even (counted), 127 toward zero */
	const uint32_t big[8] = {0x437E, 0xC37E, 0x42FF};
	p.divisor = f(0x437E0000);
	for (int r = 0; r < 2; r++) {
		p.rounding = (fp8kv_rounding)r;
		row(&p, 8, big, 8, FP8KV_BF16, codes, scales, &c);
		ck_assert(scales[3] == 0x3F && scales[2] == 0x80); /* s = 254 / 254 */
		ck_assert(codes[0] == 0x7F && codes[1] == 0x81 && codes[2] == 0x7F);
		ck_assert_uint_eq(c.overflows, r ? 2u : 3u);
	}
}
END_TEST

START_TEST(rows_nvfp4)
{
	/* FlashInfer's block at g = 1: sf 1.0, the values' own codes */
	const uint32_t x[16] = {0x40C00000, 0x40400000, 0x3FC00000, 0x3F400000, 0xBE800000,
				0xBFA00000, 0x40A00000, 0x3F000000, F_0, F_M0, F_ONE, 0xC0800000,
				0x40200000, 0x40600000, 0xC0C00000, 0x40000000};
	static const uint8_t want[8] = {0x57, 0x23, 0xA8, 0x16, 0x80, 0xE2, 0x64, 0x4F};
	uint8_t codes[600], scales[64];
	oracle_counts c;
	oracle_group_params p = {FP8KV_GROUP_NVFP4, FP8KV_E2M1, FP8KV_SATURATE,
				 FP8KV_ROUND_NEAREST_EVEN, 0, 0, f(F_ONE)};
	row(&p, 16, x, 16, FP8KV_F32, codes, scales, &c);
	ck_assert(!memcmp(codes, want, 8) && scales[0] == 0x38 && c.overflows == 0);
	/* two blocks of 16, g = 4: the second block's amax 24 -> sf 1, s 4 */
	uint32_t two[32];
	for (int i = 0; i < 16; i++) {
		two[i] = x[i];
		two[16 + i] = x[i] == F_0 || x[i] == F_M0 ? x[i] : x[i] + (2u << 23); /* x * 4 */
	}
	p.global = f(0x40800000);
	row(&p, 16, two, 32, FP8KV_F32, codes, scales, &c);
	ck_assert(!memcmp(codes + 8, want, 8) && scales[1] == 0x38);
	ck_assert_int_eq(scales[0], 0x28); /* 6 / 24 = 0.25 -> e4m3 0x28, s = 1 */
	ck_assert(!memcmp(codes, want, 8));
	/* g = 0: every code +-0 by sign, NaN 0x0, sf 0x00 */
	const uint32_t y[16] = {F_ONE, 0xBF800000, F_NAN, F_MNAN, F_MINF, F_M0, F_0, F_INF};
	static const uint8_t zero[8] = {0x80, 0x00, 0x88, 0x00};
	p.global = f(F_0);
	row(&p, 16, y, 16, FP8KV_F32, codes, scales, &c);
	ck_assert(!memcmp(codes, zero, 8) && scales[0] == 0 && c.overflows == 0 && c.nans == 2);
	/* sf underflows (amax 2^-14): the same +-0 */
	const uint32_t tiny[16] = {0x38800000, 0xB8000000};
	p.global = f(F_ONE);
	row(&p, 16, tiny, 16, FP8KV_F32, codes, scales, &c);
	ck_assert(codes[0] == 0x80 && scales[0] == 0);
	/* s = RN(sf * g) = +0 with sf 0x23: the codes are +-0 by sign, nothing
	 * counts as an overflow, and sf is stored (fp8kv.h section 8) */
	const uint32_t sub[16] = {F_TRUE_MIN, F_0, F_M0, 0x80000001};
	p.global = f(F_TRUE_MIN);
	row(&p, 16, sub, 16, FP8KV_F32, codes, scales, &c);
	ck_assert(codes[0] == 0x00 && codes[1] == 0x88 && scales[0] == 0x23 && c.overflows == 0);
}
END_TEST

START_TEST(rows_refuse_bad_shapes)
{
	uint32_t x[32] = {0};
	uint8_t codes[64], scales[64];
	oracle_group_params p = {FP8KV_GROUP_NVFP4, FP8KV_E2M1, FP8KV_SATURATE,
				 FP8KV_ROUND_NEAREST_EVEN, 0, 0, 1.0f};
	ck_assert_int_eq(oracle_group_row(&p, 32, x, 32, FP8KV_F32, codes, scales, NULL, NULL), -1);
	p.rule = FP8KV_GROUP_F32;
	ck_assert_int_eq(oracle_group_row(&p, 16, x, 24, FP8KV_F32, codes, scales, NULL, NULL), -1);
	ck_assert_int_eq(oracle_group_row(&p, 3, x, 3, FP8KV_F32, codes, scales, NULL, NULL), -1);
	ck_assert_int_eq(oracle_group_row(&p, 16, x, 16, FP8KV_E4M3FN, codes, scales, NULL, NULL),
			 -1);
}
END_TEST

/* ------------------------------------------------------- scale addresses */

START_TEST(scale_addresses)
{
	const oracle_scale_layout plain = {1000, 100, 10, 1, 0, 0};
	ck_assert_int_eq(oracle_group_scale_index(&plain, 2, 3, 1, 5), 2315);
	/* vLLM's NVFP4 V scales, head_dim 128: G' = 8 groups, 4 tokens
	 * interleaved; a (block, head) tile of 16 tokens x 8 scales */
	const int64_t S = 8, H = 4, page = 16;
	const oracle_scale_layout v = {H * page * S, 4 * S, page * S, 4, 4, 1};
	ck_assert_int_eq(oracle_group_scale_index(&v, 0, 5, 0, 3), 45);
	ck_assert_int_eq(oracle_group_scale_index(&v, 2, 5, 1, 3), 2 * 512 + 128 + 45);
	int seen[128] = {0};
	for (int64_t t = 0; t < page; t++)
		for (int64_t j = 0; j < S; j++) {
			/* vLLM's swizzle_scale_offset, as its source states it */
			const int64_t sg = S / 4;
			const int64_t want = ((t / 4) * 4 + j / sg) * S + (j % sg) * 4 + t % 4;
			const int64_t got = oracle_group_scale_index(&v, 0, t, 0, j);
			ck_assert_int_eq(got, want);
			seen[got]++;
		}
	for (int i = 0; i < 128; i++)
		ck_assert_int_eq(seen[i], 1); /* a permutation of the tile */
}
END_TEST

/* ------------------------------------------------------------------- MLA */

START_TEST(mla_plain)
{
	/* bf16 1, -300, 2^-8, NaN; RoPE 3, -Inf; tensor scale 0.5 */
	const uint32_t kv[4] = {0x3F80, 0xC396, 0x3B80, 0x7FC0}, pe[2] = {0x4040, 0xFF80};
	static const uint8_t sat[6] = {0x40, 0xFE, 0x04, 0x7F, 0x4C, 0xFE};
	static const uint8_t nonsat[6] = {0x40, 0xFF, 0x04, 0x7F, 0x4C, 0xFF};
	uint8_t e[32];
	oracle_counts c;
	for (int o = 0; o < 2; o++) {
		memset(e, POISON, sizeof e);
		ck_assert_int_eq(oracle_mla_plain_entry(kv, 4, pe, 2, FP8KV_BF16, FP8KV_E4M3FN, 1,
							0.5f, (fp8kv_overflow)o, e, &c), 6);
		ck_assert(!memcmp(e, o ? nonsat : sat, 6) && e[6] == POISON);
		ck_assert(c.overflows == 1 && c.nans == 1); /* -600; the NaN */
	}
	/* unscaled e5m2: 1 -> 0x3C */
	ck_assert_int_eq(oracle_mla_plain_entry(kv, 1, pe, 0, FP8KV_BF16, FP8KV_E5M2, 0, 0.0f,
						FP8KV_SATURATE, e, &c), 1);
	ck_assert_int_eq(e[0], 0x3C);
	/* a 16-bit copy, little-endian; its NaN counted */
	memset(e, POISON, sizeof e);
	ck_assert_int_eq(oracle_mla_plain_entry(kv, 4, pe, 2, FP8KV_BF16, FP8KV_BF16, 0, 0.0f,
						FP8KV_SATURATE, e, &c), 12);
	ck_assert(e[0] == 0x80 && e[1] == 0x3F && e[6] == 0xC0 && e[7] == 0x7F && e[10] == 0x80 &&
		  e[11] == 0xFF && e[12] == POISON && c.nans == 1 && c.overflows == 0);
	/* another pair is refused */
	ck_assert_int_eq(oracle_mla_plain_entry(kv, 4, pe, 2, FP8KV_BF16, FP8KV_F16, 0, 0.0f,
						FP8KV_SATURATE, e, &c), -1);
}
END_TEST

/* The four tiles of DeepSeek's record: a huge element, zeros with a -0,
 * NaNs of both signs, and 1s with -2 and Inf. */
static void ds_inputs(uint32_t *kv, uint32_t *pe)
{
	for (int i = 0; i < 128; i++) {
		kv[i] = 0x3F80;                          /* 1 */
		kv[128 + i] = 0x0000;
		kv[256 + i] = i < 64 ? 0x7FC0 : 0xFFC0;  /* NaN, -NaN */
		kv[384 + i] = 0x3F80;
	}
	kv[127] = 0x44E0;  /* 1792 = 448 * 4 */
	kv[255] = 0x8000;  /* -0 */
	kv[510] = 0xC000;  /* -2 */
	kv[511] = 0x7F80;  /* Inf */
	for (int i = 0; i < 64; i++)
		pe[i] = (uint32_t)i * 0x0101;
	pe[63] = 0xFFC1;   /* a NaN in the RoPE part: copied, and counted */
}

START_TEST(mla_ds_records)
{
	uint32_t kv[512], pe[64];
	uint8_t r[ORACLE_DS_MLA_BYTES + 16];
	oracle_counts c;
	ds_inputs(kv, pe);
	for (int o = 0; o < 2; o++) {
		memset(r, POISON, sizeof r);
		ck_assert_int_eq(oracle_mla_ds_record(kv, pe, FP8KV_BF16, FP8KV_E4M3FN, 0.0f,
						      (fp8kv_overflow)o, r, &c), 0);
		for (int i = 0; i < 127; i++)
			ck_assert_int_eq(r[i], 0x28); /* 1 / 4 */
		ck_assert_int_eq(r[127], 0x7E);
		for (int i = 128; i < 255; i++)
			ck_assert_int_eq(r[i], 0x00);
		ck_assert_int_eq(r[255], 0x80);
		for (int i = 256; i < 384; i++)
			ck_assert_int_eq(r[i], i < 320 ? 0x7F : 0xFF); /* NaN keeps its sign */
		for (int i = 384; i < 510; i++)
			ck_assert_int_eq(r[i], 0x76); /* 1 / RN(2 / 448) -> 224 */
		ck_assert_int_eq(r[510], 0xFE);
		ck_assert_int_eq(r[511], o ? 0x7F : 0x7E); /* Inf ignored by amax */
		static const uint8_t scales[16] = {0x00, 0x00, 0x80, 0x40, 0x00, 0x00, 0x80, 0x00,
						   0x00, 0x00, 0x80, 0x00, 0x25, 0x49, 0x92, 0x3B};
		ck_assert(!memcmp(r + 512, scales, 16));
		for (int i = 0; i < 63; i++)
			ck_assert(r[528 + 2 * i] == i && r[529 + 2 * i] == i);
		ck_assert(r[654] == 0xC1 && r[655] == 0xFF);
		for (int i = ORACLE_DS_MLA_BYTES; i < ORACLE_DS_MLA_BYTES + 16; i++)
			ck_assert_int_eq(r[i], POISON);
		ck_assert(c.overflows == 0 && c.nans == 129);
	}
	/* e4m3fnuz with vLLM's gfx942 divisor 224: one NaN code, no -0 */
	ck_assert_int_eq(oracle_mla_ds_record(kv, pe, FP8KV_BF16, FP8KV_E4M3FNUZ, 224.0f,
					      FP8KV_SATURATE, r, &c), 0);
	ck_assert(r[127] == 0x7E && r[0] == 0x28 && r[255] == 0x00 && r[256] == 0x80 &&
		  r[383] == 0x80);
	ck_assert(r[512] == 0x00 && r[513] == 0x00 && r[514] == 0x00 && r[515] == 0x41); /* 8 */
}
END_TEST

START_TEST(mla_ds_edges)
{
	uint32_t kv[512] = {0}, pe[64] = {0};
	uint8_t r[ORACLE_DS_MLA_BYTES];
	oracle_counts c;
	/* a subnormal amax: s = 2^-126, 2^-133 / 2^-126 = 2^-7 */
	kv[0] = 0x0001;
	/* the largest bf16 with ones: RN(max / 448); 1 / s -> 0 */
	kv[128] = 0x7F7F;
	for (int i = 129; i < 256; i++)
		kv[i] = 0x3F80;
	ck_assert_int_eq(oracle_mla_ds_record(kv, pe, FP8KV_BF16, FP8KV_E4M3FN, 0.0f,
					      FP8KV_SATURATE, r, &c), 0);
	ck_assert(r[0] == 0x04 && r[1] == 0x00 && r[512] == 0 && r[514] == 0x80);
	ck_assert(r[128] == 0x7E && r[129] == 0x00);
	ck_assert(r[516] == 0xDB && r[517] == 0xB6 && r[518] == 0x11 && r[519] == 0x7B);
	ck_assert_int_eq(oracle_mla_ds_record(kv, pe, FP8KV_BF16, FP8KV_E4M3FNUZ, 0.0f,
					      FP8KV_SATURATE, r, &c), 0);
	ck_assert_int_eq(r[0], 0x08); /* 2^-7 is e4m3fnuz's smallest normal */
	/* f16: amax from the values (vLLM reads bit patterns) */
	for (int i = 0; i < 512; i++)
		kv[i] = 0x3C00;
	ck_assert_int_eq(oracle_mla_ds_record(kv, pe, FP8KV_F16, FP8KV_E4M3FN, 0.0f,
					      FP8KV_SATURATE, r, &c), 0);
	ck_assert(r[0] == 0x7E && r[512] == 0x25 && r[513] == 0x49 && r[514] == 0x12 &&
		  r[515] == 0x3B);
	/* f32 inputs and e5m2 records are refused */
	ck_assert_int_eq(oracle_mla_ds_record(kv, pe, FP8KV_F32, FP8KV_E4M3FN, 0.0f,
					      FP8KV_SATURATE, r, &c), -1);
	ck_assert_int_eq(oracle_mla_ds_record(kv, pe, FP8KV_BF16, FP8KV_E5M2, 0.0f,
					      FP8KV_SATURATE, r, &c), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("oracle_group");
	TCase *tc = tcase_create("oracle_group");
	tcase_add_test(tc, e2m1_codes);
	tcase_add_test(tc, e2m1_decode_and_round_trip);
	tcase_add_test(tc, int8_codes);
	tcase_add_test(tc, e8m0_rules);
	tcase_add_test(tc, e8m0_rules_refuse_int8);
	tcase_add_test(tc, f32_scales);
	tcase_add_test(tc, nvfp4_scales);
	tcase_add_test(tc, rows_mx_e2m1);
	tcase_add_test(tc, rows_fp8_specials);
	tcase_add_test(tc, rows_int8);
	tcase_add_test(tc, rows_nvfp4);
	tcase_add_test(tc, rows_refuse_bad_shapes);
	tcase_add_test(tc, scale_addresses);
	tcase_add_test(tc, mla_plain);
	tcase_add_test(tc, mla_ds_records);
	tcase_add_test(tc, mla_ds_edges);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
