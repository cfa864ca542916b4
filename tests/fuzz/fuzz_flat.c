/* SPDX-License-Identifier: MIT */
/*
 * fuzz_flat.c - the fuzz target's flat operations: quantize, dequantize, amax,
 * check_slots, the scalar conversions and names, fp8kv_cache_write_init
 * (fuzz.h maps the files of the fuzz target).
 */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fp8kv.h"
#include "fuzz.h"

/* ------------------------------------------------------- flat conversions */

void fuzz_quantize(fz *f, int dequantize)
{
	current_op = dequantize ? "fp8kv_dequantize" : "fp8kv_quantize";
	const fp8kv_dtype wide = pick_dtype(f, 1), narrow = pick_dtype(f, 0);
	const fp8kv_dtype dst_t = dequantize ? wide : narrow, src_t = dequantize ? narrow : wide;
	fp8kv_scale_mode mode = (fp8kv_scale_mode)(rare(f, 32) ? pick_enum(f, 4) : u8(f) % 2);
	const fp8kv_overflow ovf = (fp8kv_overflow)pick_enum(f, 2);
	size_t count = u16(f) % MAX_FLAT;
	if (rare(f, 8))
		count = (size_t)edge(f);
	const float s = interesting_f32(f);
	const uint8_t nulls = rare(f, 24) ? u8(f) : 0, shifts = rare(f, 16) ? u8(f) : 0;
	const int want_counter = u8(f) & 1;
	const uint64_t counter0 = rare(f, 64) ? u64(f) : 0;
	const uint64_t seed = u64(f);
	const int style = u8(f) % 3;
	const size_t ss = fp8kv_dtype_size(src_t) ? fp8kv_dtype_size(src_t) : 1;
	const size_t ds = fp8kv_dtype_size(dst_t) ? fp8kv_dtype_size(dst_t) : 1;
	const size_t n_alloc = count <= MAX_FLAT ? count : MAX_FLAT;

	buf src = {0}, dst = {0}, scale = {0}, counter = {0};
	buf_alloc(&src, n_alloc * ss, shifts & 1 ? 1 + (shifts >> 4) % 3 : 0, 0);
	buf_alloc(&dst, n_alloc * ds, shifts & 2 ? 1 + (shifts >> 4) % 3 : 0, POISON);
	buf_alloc(&scale, 4, shifts & 4 ? 2 : 0, 0);
	buf_alloc(&counter, 8, shifts & 8 ? 4 : 0, 0);
	fill_elements(src.mem + src.shift, src.size, src_t, seed, style);
	memcpy(scale.mem + scale.shift, &s, 4);
	memcpy(counter.mem + counter.shift, &counter0, 8);

	void *dp = nulls & 1 ? NULL : buf_ptr(&dst);
	const void *sp = nulls & 2 ? NULL : buf_ptr(&src);
	const float *scp = nulls & 4 ? NULL : (const float *)buf_ptr(&scale);
	uint64_t *cp = want_counter ? (uint64_t *)buf_ptr(&counter) : NULL;

	/* a rejection the header promises: types, then pointers */
	int definite = !is_known(dst_t) || !is_known(src_t) || !fp8kv_dtype_is_fp8(narrow) ||
		       !is_wide(wide) ||
		       (mode != FP8KV_SCALE_ONE && mode != FP8KV_SCALE_TENSOR) ||
		       (!dequantize && (unsigned)ovf > FP8KV_NONSATURATING);
	if (count > 0)
		definite |= !dp || !sp || (mode == FP8KV_SCALE_TENSOR && !scp) ||
			    misaligned(dp, ds) || misaligned(sp, ss) ||
			    (mode == FP8KV_SCALE_TENSOR && misaligned(scp, 4)) ||
			    (!dequantize && cp && misaligned(cp, 8));
	if (count > MAX_FLAT && !definite) {
		count = n_alloc;
	}
	buf_snapshot(&src);
	buf_snapshot(&dst);
	buf_snapshot(&counter);

	const fp8kv_status st =
		dequantize ? fp8kv_dequantize(cpu, dp, dst_t, sp, src_t, count, mode, scp, NULL)
			   : fp8kv_quantize(cpu, dp, dst_t, sp, src_t, count, mode, scp, ovf, cp,
					    NULL);
	check_status(st, current_op);
	REQUIRE(buf_unchanged(&src), "the source changed");
	if (st != FP8KV_OK) {
		REQUIRE(st == FP8KV_EINVAL || st == FP8KV_ENOTSUP || st == FP8KV_ENOMEM,
			"rejected with status %d", (int)st);
		REQUIRE(buf_unchanged(&dst) && buf_unchanged(&counter),
			"rejected, but the output changed");
	} else {
		REQUIRE(!definite, "accepted arguments the header rejects");
		const float sc = mode == FP8KV_SCALE_TENSOR ? s : 1.0f;
		const fmt fm = fmt_of(narrow);
		uint64_t overflows = 0;
		for (size_t i = 0; i < count; i++) {
			if (!dequantize) {
				const float x = load_elem(src.mem + src.shift, (int64_t)i, src_t);
				int over;
				const float y = mode == FP8KV_SCALE_TENSOR ? ref_div(x, sc) : x;
				const int want = ref_encode(y, fm, ovf == FP8KV_SATURATE, &over);
				overflows += over && isfinite(x);
				REQUIRE(dst.mem[dst.shift + i] == want,
					"element %zu: x = %a (bits %08X), scale %a: code 0x%02X, "
					"expected 0x%02X",
					i, (double)x, f32_bits(x), (double)sc, dst.mem[dst.shift + i],
					want);
				continue;
			}
			int is_nan;
			const uint8_t code = src.mem[src.shift + i];
			const float x = (float)ref_decode(code, fm, &is_nan);
			const float y = mode == FP8KV_SCALE_TENSOR ? ref_mul(x, sc) : x;
			const uint8_t *out = dst.mem + dst.shift + i * ds;
			if (dst_t == FP8KV_F32) {
				float got;
				memcpy(&got, out, 4);
				REQUIRE(isnan(y) ? isnan(got) && (fm.fnuz || signbit(got) == signbit(y))
						 : f32_bits(got) == f32_bits(y),
					"element %zu: code 0x%02X * %a gave %a, expected %a", i, code,
					(double)sc, (double)got, (double)y);
			} else {
				uint16_t got;
				memcpy(&got, out, 2);
				const uint16_t want = dst_t == FP8KV_BF16 ? round_bf16(y) : round_f16(y);
				REQUIRE(isnan(y) ? is_nan16(got, dst_t) &&
							   (fm.fnuz || (got >> 15) == (signbit(y) != 0))
						 : got == want,
					"element %zu: code 0x%02X * %a = %a gave 0x%04X, expected "
					"0x%04X",
					i, code, (double)sc, (double)y, got, want);
			}
		}
		for (size_t i = count * ds; i < dst.size; i++)
			REQUIRE(dst.mem[dst.shift + i] == POISON, "wrote past count (byte %zu)", i);
		if (cp) {
			uint64_t got;
			memcpy(&got, counter.mem + counter.shift, 8);
			REQUIRE(got == counter0 + (dequantize ? 0 : overflows),
				"overflow_count %llu, expected %llu + %llu", (unsigned long long)got,
				(unsigned long long)counter0, (unsigned long long)overflows);
		}
	}
	buf_free(&src);
	buf_free(&dst);
	buf_free(&scale);
	buf_free(&counter);
}

/* --------------------------------------------------- amax and check_slots */

void fuzz_amax(fz *f)
{
	current_op = "fp8kv_amax";
	const fp8kv_dtype t = pick_dtype(f, rare(f, 32) ? 0 : 1);
	size_t count = u16(f) % MAX_FLAT;
	if (rare(f, 8))
		count = (size_t)edge(f);
	const int style = u8(f) % 3, null_src = rare(f, 16), null_out = rare(f, 8);
	const size_t shift = rare(f, 16) ? 1 : 0;
	const uint64_t seed = u64(f);
	const size_t es = fp8kv_dtype_size(t) ? fp8kv_dtype_size(t) : 1;
	const size_t n_alloc = count <= MAX_FLAT ? count : MAX_FLAT;
	buf src = {0};
	buf_alloc(&src, n_alloc * es, shift, 0);
	fill_elements(src.mem + shift, src.size, t, seed, style);
	const void *sp = null_src ? NULL : buf_ptr(&src);
	const int definite = null_out || !is_wide(t) ||
			     (count > 0 && (!sp || misaligned(sp, es)));
	if (count > MAX_FLAT && !definite)
		count = n_alloc;
	float amax = -7.0f;
	buf_snapshot(&src);
	const fp8kv_status st = fp8kv_amax(cpu, sp, t, count, null_out ? NULL : &amax);
	check_status(st, "fp8kv_amax");
	REQUIRE(buf_unchanged(&src), "the source changed");
	if (st == FP8KV_OK) {
		REQUIRE(!definite, "accepted arguments the header rejects");
		float want = 0.0f;
		for (size_t i = 0; i < count; i++)
			want = fmaxf(want, finite_abs(load_elem(src.mem + shift, (int64_t)i, t)));
		REQUIRE(f32_bits(amax) == f32_bits(want), "amax %a, expected %a over %zu elements",
			(double)amax, (double)want, count);
	} else {
		REQUIRE(st == FP8KV_EINVAL || st == FP8KV_ENOTSUP, "status %d", (int)st);
	}
	buf_free(&src);
}

void fuzz_check_slots(fz *f)
{
	current_op = "fp8kv_check_slots";
	const fp8kv_index_type t = (fp8kv_index_type)pick_enum(f, 2);
	int64_t count = u16(f) % (MAX_TOKENS + 1);
	if (rare(f, 8))
		count = edge(f);
	int64_t num_slots = u16(f) % 300;
	if (rare(f, 32))
		num_slots = bend(f, num_slots);
	/* a bitmap of num_slots bits is allocated; past this, a fuzzer
	 * allocation limit, not a finding (see the report) */
	if (num_slots > MAX_CHECK_SLOTS)
		num_slots = (int64_t)((uint64_t)num_slots % MAX_CHECK_SLOTS);
	const int null_slots = rare(f, 16), null_report = rare(f, 8);
	const size_t shift = rare(f, 16) ? 2 : 0;
	const uint64_t seed = u64(f);
	const int style = u8(f);
	const int64_t n_alloc = count >= 0 && count <= MAX_TOKENS ? count : MAX_TOKENS;
	buf slots = {0};
	buf_alloc(&slots, (size_t)n_alloc * index_bytes(t), shift, 0);
	uint64_t s = seed;
	for (int64_t i = 0; i < n_alloc; i++) {
		const uint64_t r = splitmix(&s);
		int64_t v;
		switch ((style + (int)(r & 3)) % 6) {
		case 0: v = -1 - (int64_t)(r >> 50); break;
		case 1: v = num_slots + (int64_t)(r >> 60); break;
		case 2: v = edge_i64[(r >> 8) % num_edge_i64]; break;
		default: v = num_slots > 0 ? (int64_t)((r >> 8) % (uint64_t)num_slots) : 0; break;
		}
		store_index(slots.mem + shift, i, t, v);
	}
	const void *sp = null_slots ? NULL : buf_ptr(&slots);
	const int definite = null_report || (unsigned)t > FP8KV_INDEX_INT32 || count < 0 ||
			     num_slots < 0 || (count > 0 && (!sp || misaligned(sp, index_bytes(t))));
	if (count > MAX_TOKENS && !definite)
		count = n_alloc;
	fp8kv_slot_report r;
	memset(&r, 0x5A, sizeof r);
	buf_snapshot(&slots);
	const fp8kv_status st =
		fp8kv_check_slots(cpu, sp, count, t, num_slots, null_report ? NULL : &r);
	check_status(st, "fp8kv_check_slots");
	REQUIRE(buf_unchanged(&slots), "the slot mapping changed");
	if (st == FP8KV_OK) {
		REQUIRE(!definite, "accepted arguments the header rejects");
		fp8kv_slot_report w = {0, 0, 0, -1, -1, -1};
		uint8_t *seen = calloc((size_t)num_slots / 8 + 1, 1);
		if (!seen)
			abort();
		for (int64_t i = 0; i < count; i++) {
			const int64_t v = load_index(slots.mem + shift, i, t);
			if (v < 0) {
				if (w.padding++ == 0)
					w.first_padding = i;
			} else if (v >= num_slots) {
				if (w.out_of_range++ == 0)
					w.first_out_of_range = i;
			} else if (seen[v / 8] & (1 << (v % 8))) {
				if (w.duplicates++ == 0)
					w.first_duplicate = i;
			} else {
				seen[v / 8] |= (uint8_t)(1 << (v % 8));
			}
		}
		free(seen);
		REQUIRE(!memcmp(&r, &w, sizeof r),
			"report %lld/%lld/%lld first %lld/%lld/%lld, expected "
			"%lld/%lld/%lld first %lld/%lld/%lld",
			(long long)r.padding, (long long)r.out_of_range, (long long)r.duplicates,
			(long long)r.first_padding, (long long)r.first_out_of_range,
			(long long)r.first_duplicate, (long long)w.padding,
			(long long)w.out_of_range, (long long)w.duplicates,
			(long long)w.first_padding, (long long)w.first_out_of_range,
			(long long)w.first_duplicate);
	} else {
		REQUIRE(st == FP8KV_EINVAL || st == FP8KV_ENOMEM, "status %d", (int)st);
	}
	buf_free(&slots);
}

/* ------------------------------------------------------ scalars and names */

/* fp8kv.h 5b and 5c, modelled apart from lib/group_convert.h: the nearest
 * of the grid in exact double arithmetic, ties to the even index. */
static uint8_t ref_small_code(float y, fp8kv_dtype t)
{
	static const double e2m1[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
	if (isnan(y))
		return 0;
	const double a = fabs((double)y);
	if (t == FP8KV_INT8) {
		double r = a >= 128.0 ? 127.0 : nearbyint(a); /* FE_TONEAREST: ties to even */
		if (r > 127.0)
			r = 127.0;
		const int v = signbit(y) ? -(int)r : (int)r;
		return (uint8_t)(int8_t)v;
	}
	int best = 7;
	if (a < 6.0) {
		best = 0;
		for (int i = 1; i < 8; i++) {
			const double d = fabs(a - e2m1[i]), db = fabs(a - e2m1[best]);
			if (d < db || (d == db && i % 2 == 0))
				best = i;
		}
	}
	return (uint8_t)((signbit(y) ? 8 : 0) | best);
}

static float ref_small_value(uint8_t code, fp8kv_dtype t)
{
	static const float e2m1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
	if (t == FP8KV_INT8)
		return (float)(int8_t)code;
	return code & 8 ? -e2m1[code & 7] : e2m1[code & 7];
}

void fuzz_scalars(fz *f)
{
	current_op = "fp8kv_from_float/to_float";
	for (int i = 0; i < 8; i++) {
		const float y = interesting_f32(f);
		const int k = u8(f);
		const fp8kv_dtype t = k < 240 ? (fp8kv_dtype)(k % 10) : (fp8kv_dtype)(int8_t)u8(f);
		const fp8kv_overflow ovf = (fp8kv_overflow)(rare(f, 16) ? (int)(int8_t)u8(f) : k & 1);
		const uint8_t code = fp8kv_from_float(y, t, ovf);
		const fmt fm = fmt_of(t);
		if (t == FP8KV_E2M1 || t == FP8KV_INT8) { /* 5b, 5c: any policy */
			const uint8_t want = ref_small_code(y, t);
			REQUIRE(code == want, "from_float(%a, %s) = 0x%02X, expected 0x%02X", (double)y,
				fp8kv_dtype_name(t), code, want);
			const uint8_t c2 = u8(f);
			const float got = fp8kv_to_float(c2, t), v = ref_small_value(c2, t);
			REQUIRE(f32_bits(got) == f32_bits(v), "to_float(0x%02X, %s) = %a, expected %a",
				c2, fp8kv_dtype_name(t), (double)got, (double)v);
			REQUIRE(fp8kv_fp8_max(t) == 0.0f, "fp8_max(%s) is not 0", fp8kv_dtype_name(t));
			REQUIRE(fp8kv_suggest_scale(y, t) == 1.0f, "suggest_scale in %s",
				fp8kv_dtype_name(t));
			continue;
		}
		if (!fm.valid) {
			REQUIRE(code == 0, "from_float(%a) in non-FP8 dtype %d gave 0x%02X", (double)y,
				(int)t, code);
			REQUIRE(isnan(fp8kv_to_float(code, t)), "to_float in non-FP8 dtype %d is not NaN",
				(int)t);
			REQUIRE(fp8kv_fp8_max(t) == 0.0f, "fp8_max(%d) is not 0", (int)t);
			REQUIRE(fp8kv_suggest_scale(y, t) == 1.0f, "suggest_scale in non-FP8 dtype %d",
				(int)t);
			continue;
		}
		int over;
		const int want = ref_encode(y, fm, ovf == FP8KV_SATURATE, &over);
		REQUIRE(code == want, "from_float(%a = bits %08X, %s, %s) = 0x%02X, expected 0x%02X",
			(double)y, f32_bits(y), fp8kv_dtype_name(t),
			ovf == FP8KV_SATURATE ? "saturate" : "nonsaturating", code, want);
		const uint8_t c2 = u8(f);
		int is_nan;
		const double v = ref_decode(c2, fm, &is_nan);
		const float got = fp8kv_to_float(c2, t);
		if (is_nan) {
			REQUIRE(isnan(got), "to_float(0x%02X, %s) is not NaN", c2, fp8kv_dtype_name(t));
			REQUIRE(fm.fnuz || (signbit(got) != 0) == (c2 >> 7),
				"to_float(0x%02X, %s): NaN lost its sign", c2, fp8kv_dtype_name(t));
		} else {
			REQUIRE(f32_bits(got) == f32_bits((float)v),
				"to_float(0x%02X, %s) = %a, expected %a", c2, fp8kv_dtype_name(t),
				(double)got, v);
		}
		REQUIRE(fp8kv_fp8_max(t) == fmt_max(fm), "fp8_max(%s)", fp8kv_dtype_name(t));

		current_op = "fp8kv_suggest_scale";
		const float amax = interesting_f32(f);
		const float sug = fp8kv_suggest_scale(amax, t);
		float want_s = 1.0f;
		if (amax > 0.0f && isfinite(amax)) {
			const float q = amax / fmt_max(fm);
			want_s = q < 0x1p-126f ? 0x1p-126f : q;
		}
		REQUIRE(f32_bits(sug) == f32_bits(want_s), "suggest_scale(%a, %s) = %a, expected %a",
			(double)amax, fp8kv_dtype_name(t), (double)sug, (double)want_s);
		current_op = "fp8kv_from_float/to_float";
	}

	current_op = "dtype helpers";
	const int k = (int)(int32_t)u32(f);
	const fp8kv_dtype t = (fp8kv_dtype)(rare(f, 128) ? k : k % 11 - 1);
	const char *name = fp8kv_dtype_name(t);
	REQUIRE((name != NULL) == is_known(t), "dtype_name(%d)", (int)t);
	REQUIRE((fp8kv_dtype_size(t) != 0) == is_known(t), "dtype_size(%d)", (int)t);
	REQUIRE(!fp8kv_dtype_is_fp8(t) == !fmt_of(t).valid, "dtype_is_fp8(%d)", (int)t);
	if (name) {
		fp8kv_dtype back = (fp8kv_dtype)-5;
		check_status(fp8kv_dtype_from_name(name, &back), "fp8kv_dtype_from_name");
		REQUIRE(back == t, "dtype_from_name(dtype_name(%d))", (int)t);
	}
	REQUIRE(fp8kv_strerror((fp8kv_status)k) != NULL, "strerror(%d) is NULL", k);

	/* names from the bytes: dtype names and backend names */
	char text[80];
	const size_t n = u8(f) % sizeof text;
	for (size_t i = 0; i < n; i++)
		text[i] = (char)u8(f);
	text[n] = '\0';
	fp8kv_dtype parsed = (fp8kv_dtype)-5;
	const fp8kv_status st = fp8kv_dtype_from_name(text, &parsed);
	check_status(st, "fp8kv_dtype_from_name");
	if (st == FP8KV_OK)
		REQUIRE(fp8kv_dtype_name(parsed) && !strcmp(fp8kv_dtype_name(parsed), text),
			"dtype_from_name('%s') = %d", text, (int)parsed);
	check_status(fp8kv_dtype_from_name(NULL, &parsed), "fp8kv_dtype_from_name(NULL)");

	current_op = "fp8kv_backend_open";
	fp8kv_backend *b = (fp8kv_backend *)&b;
	const fp8kv_status ost = fp8kv_backend_open(n && text[0] == '@' ? NULL : text, &b);
	check_status(ost, "fp8kv_backend_open");
	if (ost == FP8KV_OK) {
		REQUIRE(b != NULL, "opened a NULL backend");
		REQUIRE(fp8kv_backend_name(b) && fp8kv_backend_device(b), "nameless backend");
		fp8kv_backend_close(b);
	} else {
		REQUIRE(b == NULL, "a failed open left *backend set");
	}
	fp8kv_cache_write d;
	int64_t v[6];
	for (int i = 0; i < 6; i++)
		v[i] = (i > 0) + u8(f);
	fp8kv_cache_write_init(&d, v[0], v[1], v[2], v[3], v[4], v[5],
			       (fp8kv_cache_layout)(u8(f) % 3));
	fp8kv_cache_write_init(NULL, 1, 1, 1, 1, 1, 1, FP8KV_LAYOUT_NHD);
}

/* the raw sizes given to fp8kv_cache_write_init (see the report: products of
 * sizes overflow int64 inside it) */
void fuzz_init_sizes(fz *f)
{
	current_op = "fp8kv_cache_write_init";
	fp8kv_cache_write d;
	int64_t v[6];
	for (int i = 0; i < 6; i++)
		v[i] = rare(f, 128) ? bend(f, 1 + u8(f)) : 1 + u8(f);
	fp8kv_cache_write_init(&d, v[0], v[1], v[2], v[3], v[4], v[5],
			       (fp8kv_cache_layout)(u8(f) & 1));
	REQUIRE(d.num_heads == v[1] && d.block_size == v[5], "init lost a size");
}
