/* SPDX-License-Identifier: MIT */
/*
 * fuzz_reference.c - the fuzz target's reference FP8 encoder and decoder and its
 * 16-bit floats, written from the format definitions of fp8kv.h, not from
 * the library's fp8_convert.h
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

/* --------------------------------------------- reference FP8 (independent) */


fmt fmt_of(int t)
{
	fmt f = {0, 0, 0, 0, 0, 0};
	switch (t) {
	case FP8KV_E4M3FN: f = (fmt){1, 3, 7, 0, 0, 0x7E}; break;
	case FP8KV_E4M3FNUZ: f = (fmt){1, 3, 8, 1, 0, 0x7F}; break;
	case FP8KV_E5M2: f = (fmt){1, 2, 15, 0, 1, 0x7B}; break;
	case FP8KV_E5M2FNUZ: f = (fmt){1, 2, 16, 1, 0, 0x7F}; break;
	}
	return f;
}

/* the value of a finite magnitude code, exactly */
double mag_value(fmt f, int c)
{
	const int e = c >> f.mbits, m = c & ((1 << f.mbits) - 1);
	if (e == 0)
		return ldexp((double)m, 1 - f.bias - f.mbits);
	return ldexp((double)((1 << f.mbits) + m), e - f.bias - f.mbits);
}

int nan_code(fmt f, int neg)
{
	return f.fnuz ? 0x80 : 0x7F | (neg ? 0x80 : 0);
}

/* the code of y (contract steps 2-4); *overflow: y was past the range
 * (finite and rounded past max, or infinite) */
int ref_encode(float y, fmt f, int saturate, int *overflow)
{
	const int neg = signbit(y) != 0;
	*overflow = 0;
	if (isnan(y))
		return nan_code(f, neg);
	const double a = fabs((double)y);
	int over = isinf(y), c = 0;
	if (!over) {
		/* largest code at or below a */
		int lo = 0, hi = f.max_code;
		while (lo < hi) {
			const int mid = (lo + hi + 1) / 2;
			if (mag_value(f, mid) <= a)
				lo = mid;
			else
				hi = mid - 1;
		}
		c = lo;
		const double v = mag_value(f, c);
		if (a > v) {
			/* the next code up; past max, the virtual one an ulp above */
			const double next = c < f.max_code
						    ? mag_value(f, c + 1)
						    : v + ldexp(1.0, (c >> f.mbits) - f.bias - f.mbits);
			const double midpoint = (v + next) / 2; /* exact in double */
			if (a > midpoint || (a == midpoint && (c & 1)))
				c++;
		}
		over = c > f.max_code;
	}
	if (over) {
		*overflow = 1;
		if (saturate)
			return f.max_code | (neg ? 0x80 : 0);
		if (f.fnuz)
			return 0x80;
		return (f.e5m2 ? 0x7C : 0x7F) | (neg ? 0x80 : 0);
	}
	if (c == 0)
		return f.fnuz ? 0x00 : (neg ? 0x80 : 0x00);
	return c | (neg ? 0x80 : 0);
}

/*
 * x / s and x * s as the contract has them (fp8kv.h section 5, step 1): one
 * IEEE operation, but a NaN result carries the sign of x when x is NaN,
 * else sign(x) XOR sign(s), whatever the hardware did.
 */
float nan_signed(float x, float s, float r)
{
	if (!isnan(r))
		return r;
	const int neg = isnan(x) ? signbit(x) != 0 : (signbit(x) != 0) != (signbit(s) != 0);
	return neg ? -NAN : NAN;
}

float ref_div(float x, float s)
{
	return nan_signed(x, s, x / s);
}

float ref_mul(float x, float s)
{
	return nan_signed(x, s, x * s);
}

/* decoded value; *is_nan for NaN codes, which keep the code's sign bit
 * (fp8kv.h: "sign kept for OCP"; for the fnuz NaN 0x80 the header names no
 * sign, and the checks below do not look at it) */
double ref_decode(int code, fmt f, int *is_nan)
{
	const int neg = code >> 7, mag = code & 0x7F;
	*is_nan = 0;
	if (f.fnuz && code == 0x80) {
		*is_nan = 1;
		return -NAN;
	}
	if (f.e5m2 && mag == 0x7C)
		return neg ? -INFINITY : INFINITY;
	if (mag > f.max_code) {
		*is_nan = 1;
		return neg ? -NAN : NAN;
	}
	const double v = mag_value(f, mag);
	return neg ? -v : v;
}

float fmt_max(fmt f)
{
	return (float)mag_value(f, f.max_code);
}

/* ------------------------------------------------- 16-bit floats, by hand */

float load_f16(uint16_t h)
{
	const int s = h >> 15, e = (h >> 10) & 0x1F, m = h & 0x3FF;
	float v;
	if (e == 0x1F)
		v = m ? NAN : INFINITY;
	else if (e == 0)
		v = ldexpf((float)m, -24);
	else
		v = ldexpf((float)(1024 + m), e - 25);
	return s ? -v : v;
}

float load_elem(const uint8_t *base, int64_t i, fp8kv_dtype t)
{
	if (t == FP8KV_F32) {
		float x;
		memcpy(&x, base + 4 * i, 4);
		return x;
	}
	uint16_t h;
	memcpy(&h, base + 2 * i, 2);
	return t == FP8KV_BF16 ? bits_f32((uint32_t)h << 16) : load_f16(h);
}

/* |x| when finite, else 0 */
float finite_abs(float x)
{
	return isfinite(x) ? fabsf(x) : 0.0f;
}

/* x rounded to bf16 or f16 bits, nearest even; NaN: any NaN accepted */
uint16_t round_bf16(float x)
{
	const uint32_t u = f32_bits(x);
	return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

uint16_t round_f16(float x)
{
	const uint16_t sign = signbit(x) ? 0x8000 : 0;
	const double a = fabs((double)x);
	if (isnan(x))
		return sign | 0x7E00;
	if (isinf(x) || a >= 65520.0)
		return sign | 0x7C00;
	if (a < 0x1p-14) /* subnormal, or rounds up to the smallest normal */
		return sign | (uint16_t)nearbyint(a * 0x1p24);
	int e;
	const double m = frexp(a, &e); /* a = m * 2^e, m in [0.5, 1) */
	double mant = nearbyint((m * 2 - 1) * 1024);
	int ex = e - 1;
	if (mant == 1024) {
		mant = 0;
		ex++;
	}
	if (ex + 15 >= 31)
		return sign | 0x7C00;
	return sign | (uint16_t)((ex + 15) << 10 | (int)mant);
}

int is_nan16(uint16_t h, fp8kv_dtype t)
{
	return t == FP8KV_BF16 ? (h & 0x7FFF) > 0x7F80 : (h & 0x7FFF) > 0x7C00;
}
