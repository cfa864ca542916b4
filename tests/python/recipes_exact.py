# SPDX-License-Identifier: MIT
"""Exact arithmetic for the recipe models (recipes_ref.py).

Every value is an fp32 bit pattern (a Python int) or an exact rational
(fractions.Fraction).  IEEE binary32 operations and the small formats of the
KV caches (FP8, e2m1, E8M0, int8) are rounded here from the exact value with
integer arithmetic: no hardware cast, float division or float multiplication
is trusted.  numpy is used only to reinterpret bits.

Written from the formats' definitions (IEEE 754, OCP FP8 and MX v1.0, the
fnuz variants as include/fp8kv.h section 5 states them) and shares no code
with fp8kv.
"""

from fractions import Fraction

import numpy as np

# ---- binary32 -----------------------------------------------------------

F32_SIGN = 0x80000000
F32_INF = 0x7F800000
F32_MAX = 0x7F7FFFFF            # FLT_MAX
F32_MIN_NORMAL = 0x00800000     # FLT_MIN = 2^-126
GPU_NAN = 0x7FFFFFFF            # the NaN NVIDIA's fp32 arithmetic returns
QNAN = 0x7FC00000               # the default quiet NaN (x86, Arm, torch)

TWO = Fraction(2)


def pow2(k):
    """2^k, exactly."""
    return TWO ** k


def is_nan(u):
    return (u & 0x7FFFFFFF) > F32_INF


def is_inf(u):
    return (u & 0x7FFFFFFF) == F32_INF


def is_finite(u):
    return (u & 0x7FFFFFFF) < F32_INF


def sign_bit(u):
    return u >> 31


def magnitude(u):
    """The exact |value| of a finite fp32 bit pattern."""
    e = (u >> 23) & 0xFF
    m = u & 0x7FFFFF
    if e == 0:
        return Fraction(m) * pow2(-149)
    return Fraction(m | 0x800000) * pow2(e - 150)


def value(u):
    """The exact signed value of a finite fp32 bit pattern (-0 gives 0)."""
    v = magnitude(u)
    return -v if u & F32_SIGN else v


def floor_log2(v):
    """floor(log2 v) for a rational v > 0."""
    n, d = v.numerator, v.denominator
    e = n.bit_length() - d.bit_length()
    if (e >= 0 and n < (d << e)) or (e < 0 and (n << -e) < d):
        e -= 1
    return e


def round_half_even(v):
    """The integer nearest to the rational v >= 0, ties to even."""
    q, r = divmod(v.numerator, v.denominator)
    if 2 * r > v.denominator or (2 * r == v.denominator and q & 1):
        q += 1
    return q


def round_binary(v, p, emin):
    """v >= 0 rounded to nearest even on the grid of a binary format with p
    significant bits and smallest normal exponent emin (subnormal quantum
    2^(emin - p + 1)); the exponent is unbounded above."""
    if v == 0:
        return Fraction(0)
    q = max(floor_log2(v), emin) - (p - 1)
    return Fraction(round_half_even(v * pow2(-q))) * pow2(q)


def bits_of(negative, mag):
    """fp32 bits of a representable magnitude mag (or Inf when above FLT_MAX)."""
    s = F32_SIGN if negative else 0
    if mag == 0:
        return s
    if mag > magnitude(F32_MAX):
        return s | F32_INF
    e = floor_log2(mag)
    if e < -126:
        return s | int(mag * pow2(149))
    m = int(mag * pow2(23 - e)) - 0x800000
    return s | ((e + 127) << 23) | m


def rn_f32(v):
    """The fp32 bits of the rational v rounded to nearest even (overflow to
    Inf, subnormals kept).  A zero v gives +0."""
    return bits_of(v < 0, round_binary(abs(v), 24, -126))


def rn_f32_signed(negative, mag):
    """As rn_f32 for a magnitude with an explicit sign (so that -0 survives)."""
    return bits_of(negative, round_binary(mag, 24, -126))


def ftz(u):
    """A subnormal flushed to zero of the same sign (PTX .ftz)."""
    return u & F32_SIGN if (u & 0x7F800000) == 0 else u


def f32_div(a, b, nan=GPU_NAN):
    """IEEE binary32 a / b, correctly rounded; a NaN result is `nan`."""
    if is_nan(a) or is_nan(b):
        return nan
    neg = bool((a ^ b) & F32_SIGN)
    if is_inf(a):
        return nan if is_inf(b) else (F32_SIGN if neg else 0) | F32_INF
    if is_inf(b):
        return F32_SIGN if neg else 0
    if magnitude(b) == 0:
        return nan if magnitude(a) == 0 else (F32_SIGN if neg else 0) | F32_INF
    return rn_f32_signed(neg, magnitude(a) / magnitude(b))


def f32_mul(a, b, nan=GPU_NAN):
    """IEEE binary32 a * b, correctly rounded; a NaN result is `nan`."""
    if is_nan(a) or is_nan(b):
        return nan
    neg = bool((a ^ b) & F32_SIGN)
    if is_inf(a) or is_inf(b):
        zero = magnitude(b) == 0 if is_inf(a) else magnitude(a) == 0
        return nan if zero else (F32_SIGN if neg else 0) | F32_INF
    return rn_f32_signed(neg, magnitude(a) * magnitude(b))


def f32_rcp(a, flush=False):
    """The correctly rounded reciprocal 1 / a.  With flush, subnormal input
    and output are flushed to zero first (the .ftz of rcp.approx.ftz)."""
    one = 0x3F800000
    if flush:
        return ftz(f32_div(one, ftz(a)))
    return f32_div(one, a)


def fmaxf(a, b):
    """C fmaxf / CUDA fmaxf: a NaN operand loses to the other; two NaNs give
    NaN.  (-0 and +0 compare equal; which one comes back does not matter
    here, only magnitudes are compared.)"""
    if is_nan(a):
        return b
    if is_nan(b):
        return a
    return a if value(a) >= value(b) else b


def f32_const(x):
    """The fp32 bits of a Python float that is exactly an fp32 value."""
    u = int(np.array([x], dtype=np.float32).view(np.uint32)[0])
    if is_finite(u) and value(u) != Fraction(x):
        raise ValueError(f"{x!r} is not an fp32 value")
    return u


def f32_of_double(x):
    """The fp32 rounding of a Python float (a double), as a compiler rounds a
    double literal such as 1e-6 into an fp32 constant."""
    return rn_f32(Fraction(x))


# ---- 16-bit inputs ----------------------------------------------------------

def widen(bits, dtype):
    """fp32 bit patterns (ints) of 16- or 32-bit input bits, exactly."""
    out = []
    for h in np.asarray(bits).reshape(-1).tolist():
        h = int(h)
        if dtype == "f32":
            out.append(h & 0xFFFFFFFF)
        elif dtype == "bf16":
            out.append((h & 0xFFFF) << 16)
        elif dtype == "f16":
            s, e, m = h >> 15 & 1, h >> 10 & 0x1F, h & 0x3FF
            if e == 0x1F:
                out.append((s << 31) | F32_INF | (m << 13))
            else:
                mag = Fraction(m) * pow2(-24) if e == 0 else Fraction(m | 0x400) * pow2(e - 25)
                out.append(bits_of(bool(s), mag))
        else:
            raise ValueError(f"dtype {dtype!r}")
    return out


def f16_bits(x):
    """fp16 bits of an fp16-representable Python float (for hand vectors)."""
    return int(np.array([x], dtype=np.float16).view(np.uint16)[0])


def bf16_bits(x):
    """bf16 bits of a bf16-representable Python float."""
    u = f32_const(x)
    if u & 0xFFFF:
        raise ValueError(f"{x!r} is not a bf16 value")
    return u >> 16


# ---- small floating-point formats ---------------------------------------

class MiniFloat:
    """A binary format: mbits of mantissa, exponent bias, largest finite
    magnitude maxval; fnuz formats have no -0 and one NaN, 0x80."""

    def __init__(self, name, ebits, mbits, bias, maxval, fnuz=False):
        self.name, self.ebits, self.mbits, self.bias = name, ebits, mbits, bias
        self.maxval = Fraction(maxval)
        self.fnuz = fnuz
        self.p = mbits + 1
        self.emin = 1 - bias
        self.max_code = self.code_of(self.maxval)

    def round(self, mag):
        """mag >= 0 rounded to nearest even on the format's grid (no top)."""
        return round_binary(mag, self.p, self.emin)

    def code_of(self, mag):
        """The magnitude code of a representable magnitude <= maxval."""
        if mag == 0:
            return 0
        e = floor_log2(mag)
        if e < self.emin:
            return int(mag * pow2(self.mbits - self.emin))
        return ((e + self.bias) << self.mbits) | (int(mag * pow2(self.mbits - e)) - (1 << self.mbits))

    def decode(self, code):
        """(sign, magnitude) of a code, or None for a NaN code; e5m2's Inf is
        (sign, None)."""
        sign = code >> (self.ebits + self.mbits) & 1
        mag_code = code & ((1 << (self.ebits + self.mbits)) - 1)
        if self.fnuz and code == 1 << (self.ebits + self.mbits):
            return None
        e = mag_code >> self.mbits
        m = mag_code & ((1 << self.mbits) - 1)
        if self.name == "e4m3fn" and mag_code == 0x7F:
            return None
        if self.name == "e5m2" and e == 31:
            return (sign, None) if m == 0 else None
        if e == 0:
            return sign, Fraction(m) * pow2(self.emin - self.mbits)
        return sign, Fraction((1 << self.mbits) | m) * pow2(e - self.bias - self.mbits)

    def sign_mask(self):
        return 1 << (self.ebits + self.mbits)


E4M3FN = MiniFloat("e4m3fn", 4, 3, 7, 448)
E4M3FNUZ = MiniFloat("e4m3fnuz", 4, 3, 8, 240, fnuz=True)
E5M2 = MiniFloat("e5m2", 5, 2, 15, 57344)
E5M2FNUZ = MiniFloat("e5m2fnuz", 5, 2, 16, 57344, fnuz=True)
E2M1 = MiniFloat("e2m1", 2, 1, 1, 6)
FP8 = {f.name: f for f in (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ)}


def fp8_contract(u, fmt, saturate=True):
    """fp8kv.h section 5, steps 2-4, for the fp32 bits u: round to nearest
    even, overflow decided after rounding, the table of specials (OCP codes
    carry the sign, NaN's included; fnuz have one NaN 0x80 and no -0)."""
    neg = bool(u & F32_SIGN)
    sbit = 0x80 if neg else 0
    if is_nan(u):
        return 0x80 if fmt.fnuz else 0x7F | sbit
    if is_inf(u):
        r = None
    else:
        r = fmt.round(magnitude(u))
    if r is None or r > fmt.maxval:
        if saturate:
            return fmt.max_code | sbit
        if fmt.fnuz:
            return 0x80
        return (0x7C if fmt.name == "e5m2" else 0x7F) | sbit
    code = fmt.code_of(r)
    if fmt.fnuz and code == 0:
        return 0
    return code | sbit


def fp8_satfinite_nv(u, fmt=E4M3FN):
    """NVIDIA cvt.rn.satfinite.{e4m3,e5m2}x2.f32: round to nearest even,
    finite overflow and Inf to +-max, NaN to the positive NaN code 0x7F (the
    sign dropped; fp8kv.h section 5).  OCP formats only."""
    if is_nan(u):
        return 0x7F
    return fp8_contract(u, fmt, saturate=True)


def e2m1_cvt_satfinite(u):
    """NVIDIA cvt.rn.satfinite.e2m1x2.f32 (as the CUDA 13.0 cuda_fp4.hpp host
    emulation states it): round to nearest even, overflow and Inf to +-6
    (code 7 with the sign), NaN to +6 (0x7), underflow keeps the sign."""
    if is_nan(u):
        return 0x7
    sbit = 0x8 if u & F32_SIGN else 0
    if is_inf(u):
        return 0x7 | sbit
    r = E2M1.round(magnitude(u))
    return (0x7 if r > E2M1.maxval else E2M1.code_of(r)) | sbit


E2M1_MIDPOINTS = (Fraction(1, 4), Fraction(3, 4), Fraction(5, 4), Fraction(7, 4),
                  Fraction(5, 2), Fraction(7, 2), Fraction(5))


def e2m1_flashinfer(u):
    """FlashInfer's nvfp4 append (include/flashinfer/page.cuh): a chain of
    comparisons against the midpoints, with the tie of each going to the even
    code, so round to nearest even; above 5 (Inf too) code 7; the sign from
    the sign bit, a NaN's included; a NaN fails every comparison: code 0."""
    sbit = 0x8 if u & F32_SIGN else 0
    if is_nan(u):
        return sbit
    if is_inf(u):
        return 0x7 | sbit
    mag = magnitude(u)
    code = 0
    for i, mid in enumerate(E2M1_MIDPOINTS):
        # codes 0, 2, 4, 6 are the even ones: a tie goes to the lower code
        # when the lower code is even (midpoints 1/4, 5/4, 5/2, 5), else up.
        lower_even = i in (0, 2, 4, 6)
        if mag > mid or (mag == mid and not lower_even):
            code = i + 1
    return code | sbit


def e2m1_bit_trick(u):
    """The integer e2m1 encoder of torchao's _f32_to_floatx_unpacked and aiter's
    Triton _mxfp4_quant_op, restated: |x| >= 6 (Inf too) saturates to 7;
    |x| < 1 is rounded by adding 2^22 in fp32 (ties to even); otherwise the
    fp32 bits are rebiased and rounded to one mantissa bit by an integer add.
    NaN fails both range tests and takes the integer path: its bits, shifted,
    truncated to 8 bits (0x3 for the quiet NaN 0x7FC00000), then the sign.
    The result is a byte, possibly above 0xF for other NaN payloads."""
    s = u & F32_SIGN
    a = u ^ s
    sbit = 0x8 if s else 0
    if is_nan(a):
        odd = (a >> 22) & 1
        x = (a + (((1 - 127) << 23) & 0xFFFFFFFF) + (1 << 21) - 1 + odd) & 0xFFFFFFFF
        return ((x >> 22) & 0xFF) | sbit
    if is_inf(a) or magnitude(a) >= 6:
        return 0x7 | sbit
    mag = magnitude(a)
    if mag < 1:
        return (round_half_even(mag * 2)) | sbit       # the 2^22 magic add
    odd = (a >> 22) & 1
    x = (a + (((1 - 127) << 23) & 0xFFFFFFFF) + (1 << 21) - 1 + odd) & 0xFFFFFFFF
    return ((x >> 22) & 0xFF) | sbit


def pack_e2m1(codes):
    """Bytes of e2m1 codes: element 2i in the low nibble, 2i + 1 in the high
    one (byte = even | odd << 4, computed in 8 bits)."""
    codes = list(codes)
    if len(codes) % 2:
        raise ValueError("an odd number of e2m1 codes")
    return np.array([(codes[i] | (codes[i + 1] << 4)) & 0xFF for i in range(0, len(codes), 2)],
                    dtype=np.uint8)


def unpack_e2m1(data):
    """The codes of packed e2m1 bytes (inverse of pack_e2m1 for nibbles)."""
    out = []
    for b in np.asarray(data, dtype=np.uint8).tolist():
        out += [b & 0xF, b >> 4]
    return out


# ---- E8M0 ----------------------------------------------------------------

def e8m0_value(code):
    """2^(code - 127); None for the NaN code 255."""
    return None if code == 255 else pow2(code - 127)


def e8m0_fp32_bits(code):
    """fp32 bits of an E8M0 value (255: the quiet NaN); code 0 is the
    subnormal 2^-127."""
    if code == 255:
        return QNAN
    return 0x00400000 if code == 0 else code << 23


# ---- integers ------------------------------------------------------------

def int8_of(q, rounding, lo=-127, hi=127):
    """A rational quotient q to int8: round to nearest even ("rne") or toward
    zero ("trunc"), then clamped to [lo, hi]."""
    mag = abs(q)
    n = round_half_even(mag) if rounding == "rne" else mag.numerator // mag.denominator
    n = -n if q < 0 else n
    return max(lo, min(hi, n))
