/* SPDX-License-Identifier: MIT */
/*
 * float_bits.h - floats and doubles to and from their bit patterns.
 *
 * Through memcpy, never through a conversion, so that no FPU mode (flush to
 * zero, NaN quieting) can touch the bits.  Shared by the oracle, the cache
 * case engine and the tests; nothing here belongs to the library.
 */
#ifndef FP8KV_FLOAT_BITS_H
#define FP8KV_FLOAT_BITS_H

#include <stdint.h>
#include <string.h>

static inline uint32_t bits_of_float(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }
static inline float float_of_bits(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
static inline uint64_t bits_of_double(double d) { uint64_t b; memcpy(&b, &d, 8); return b; }
static inline double double_of_bits(uint64_t b) { double d; memcpy(&d, &b, 8); return d; }

/* 2^k, exactly, from the exponent field: -1022 <= k <= 1023. */
static inline double pow2(int k)
{
	return double_of_bits((uint64_t)(k + 1023) << 52);
}

#endif /* FP8KV_FLOAT_BITS_H */
