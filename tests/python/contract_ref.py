# SPDX-License-Identifier: MIT
"""fp8kv's own contract for e2m1, int8, group scales and MLA entries
(include/fp8kv.h sections 5b, 5c, 8 and 9), as an exact model.

Written from the header's text with recipes_exact.py's rational arithmetic:
every rounding is computed from the exact value by a formula (round to the
format's grid, compare with its max), never by searching codes; exponents
are read from fp32 bit fields or from floor(log2) of a rational.  The C
oracle (validate/oracle_group.c) computes the same answers by searching,
so the two are held to each other (test_oracle_cross.py).  recipes_ref.py's
*_fp8kv recipes are this model under the engines' signatures.

Values are fp32 bit patterns (ints); inputs are 16- or 32-bit patterns with
their dtype ("f32", "f16", "bf16"); formats are fp8kv's dtype names.
"""

from collections import namedtuple

import recipes_exact as X

ELEMENTS = {"e4m3fn": X.E4M3FN, "e4m3fnuz": X.E4M3FNUZ, "e5m2": X.E5M2,
            "e5m2fnuz": X.E5M2FNUZ, "e2m1": X.E2M1}
FP8 = ("e4m3fn", "e4m3fnuz", "e5m2", "e5m2fnuz")
RULES = ("f32", "e8m0_floor", "e8m0_rceil", "nvfp4")
INT8_MAX = X.Fraction(127)
SIX = 0x40C00000
ONE = 0x3F800000


def fmt_max(fmt):
    """The largest finite value of an element format (section 8's max)."""
    return INT8_MAX if fmt == "int8" else ELEMENTS[fmt].maxval


def fmt_emax(fmt):
    """The exponent of the format's largest power of two (section 8's emax)."""
    return X.floor_log2(fmt_max(fmt))


def _sign(u):
    return bool(u & X.F32_SIGN)


# ---- elements (5, 5b, 5c) ----------------------------------------------------

def fp8_code(y, fmt, saturate):
    """(code, overflowed) of fp32 y by section 5 steps 2-4."""
    f = ELEMENTS[fmt]
    over = X.is_finite(y) and f.round(X.magnitude(y)) > f.maxval
    return X.fp8_contract(y, f, saturate=saturate), over


def e2m1_code(y):
    """(code, overflowed) of fp32 y by 5b: the grid of e2m1 (2 significant
    bits, emin 0) to nearest even; a rounding past 6 overflows to +-6; NaN
    gives 0x0; the sign bit is y's, zeros included."""
    if X.is_nan(y):
        return 0x0, False
    sbit = 0x8 if _sign(y) else 0x0
    if X.is_inf(y):
        return 0x7 | sbit, False
    r = X.E2M1.round(X.magnitude(y))
    if r > X.E2M1.maxval:
        return 0x7 | sbit, True
    return X.E2M1.code_of(r) | sbit, False


def int8_code(y, rounding):
    """(byte, overflowed) of fp32 y by 5c: an integer to nearest even
    ("rne") or toward zero ("trunc"); beyond +-127 it is +-127 and
    overflows; +-Inf +-127; NaN 0."""
    if X.is_nan(y):
        return 0, False
    neg = _sign(y)
    if X.is_inf(y):
        return (-127 if neg else 127) & 0xFF, False
    mag = X.magnitude(y)
    n = X.round_half_even(mag) if rounding == "rne" else mag.numerator // mag.denominator
    over = n > 127
    n = min(n, 127)
    return (-n if neg else n) & 0xFF, over


def quotient(x, s):
    """y = x / s by section 5 step 1: correctly rounded; a NaN y signed as
    x when x is NaN, else sign(x) XOR sign(s)."""
    if X.is_nan(x):
        return X.QNAN | (x & X.F32_SIGN)
    y = X.f32_div(x, s)
    if X.is_nan(y):
        return X.QNAN | ((x ^ s) & X.F32_SIGN)
    return y


def element(x, s, fmt, saturate=True, rounding="rne", scaled=True):
    """(code, overflowed) of the widened input x (fp32 bits): y = x / s
    (y = x when not scaled), then section 5, 5b or 5c by fmt.  Overflowed as
    section 5 counts: a finite x whose y overflows or is itself +-Inf."""
    y = quotient(x, s) if scaled else x
    if fmt == "e2m1":
        code, over = e2m1_code(y)
    elif fmt == "int8":
        code, over = int8_code(y, rounding)
    else:
        code, over = fp8_code(y, fmt, saturate)
    return code, over or (X.is_finite(x) and X.is_inf(y))


# ---- group scales (8) ----------------------------------------------------------

Scale = namedtuple("Scale", "s stored zero")   # s: fp32 bits; stored: bytes


def amax_finite(xs):
    """max |x| over the finite fp32 values xs (+0 when none)."""
    return max((u & 0x7FFFFFFF for u in xs if X.is_finite(u)), default=0)


def _pow2_bits(k):
    return X.bits_of(False, X.pow2(k))


def _le32(u):
    return [(u >> (8 * i)) & 0xFF for i in range(4)]


def group_scale(rule, fmt, amax, divisor=0, floor=0, g=0):
    """The scale of a group of amax (fp32 bits, finite, >= 0) under rule,
    divisor and floor as fp32 bits (0: the defaults), g NVFP4's global."""
    if rule == "f32":
        d = divisor if divisor & 0x7FFFFFFF else X.bits_of(False, fmt_max(fmt))   # 0: max
        fl = floor if floor & 0x7FFFFFFF else X.F32_MIN_NORMAL
        q = X.f32_div(amax, d)
        s = q if X.is_inf(q) or X.magnitude(q) >= X.magnitude(fl) else fl
        return Scale(s, _le32(s), False)
    if rule == "e8m0_floor":
        field = (amax >> 23) & 0xFF           # 0 for zero and subnormals
        b = max(0, field - fmt_emax(fmt))
        return Scale(_pow2_bits(b - 127), [b], False)
    if rule == "e8m0_rceil":
        b = 0
        if X.magnitude(amax):
            q = X.magnitude(amax) / fmt_max(fmt)
            k = X.floor_log2(q)
            k += X.pow2(k) != q               # ceil(log2 q)
            b = min(254, max(0, 127 + k))
        return Scale(_pow2_bits(b - 127), [b], False)
    if rule == "nvfp4":
        if not X.is_finite(g) or _sign(g) or X.magnitude(g) == 0:
            return Scale(0, [0], True)
        sf = X.fp8_contract(X.f32_div(amax, X.f32_mul(SIX, g)), X.E4M3FN, saturate=True)
        if sf == 0:
            return Scale(0, [0], True)
        sf_value = X.bits_of(False, X.E4M3FN.decode(sf)[1])
        s = X.f32_mul(sf_value, g)
        return Scale(s, [sf], X.magnitude(s) == 0)    # s of 0: +-0, sf stored
    raise ValueError(f"rule {rule!r}")


def _check_rule(rule, fmt, saturate, rounding, group_size, divisor=0, floor=0):
    if rule == "f32" and any(not X.is_finite(u) or u & X.F32_SIGN and u & 0x7FFFFFFF
                             for u in (divisor, floor)):
        raise ValueError("a divisor or floor that is negative or not finite")
    takes = {"f32": FP8 + ("e2m1", "int8"), "e8m0_floor": FP8 + ("e2m1",),
             "e8m0_rceil": FP8 + ("e2m1",), "nvfp4": ("e2m1",)}
    if fmt not in takes.get(rule, ()):
        raise ValueError(f"rule {rule} does not take {fmt}")
    if rounding != "rne" and fmt != "int8":
        raise ValueError("rounding applies to int8 only")
    if not saturate and fmt not in FP8:
        raise ValueError("e2m1 and int8 saturate")
    if rule == "nvfp4" and group_size != 16:
        raise ValueError("NVFP4 groups are 16")


Row = namedtuple("Row", "codes scales overflows nans amax")


def group_row(rule, fmt, bits, dtype, group_size, saturate=True, rounding="rne",
              divisor=0, floor=0, g=0):
    """One row of a grouped write: codes (bytes; e2m1 packed, element 2i
    low), the stored scales (bytes, group after group), the overflow and
    NaN-input counts and the row's amax (fp32 bits)."""
    _check_rule(rule, fmt, saturate, rounding, group_size, divisor, floor)
    xs = X.widen(bits, dtype)
    if len(xs) % group_size or (fmt == "e2m1" and len(xs) % 2):
        raise ValueError("the group size must divide the row")
    codes, scales, overflows = [], [], 0
    for j in range(0, len(xs), group_size):
        grp = xs[j:j + group_size]
        sc = group_scale(rule, fmt, amax_finite(grp), divisor, floor, g)
        scales += sc.stored
        for x in grp:
            if sc.zero:                       # NVFP4: +-0 by sign, NaN 0x0
                code, over = (0x0 if X.is_nan(x) else 0x8 if _sign(x) else 0x0), False
            else:
                code, over = element(x, sc.s, fmt, saturate, rounding)
            codes.append(code)
            overflows += over
    data = list(X.pack_e2m1(codes)) if fmt == "e2m1" else codes
    nans = sum(1 for x in xs if X.is_nan(x))
    return Row([int(b) for b in data], scales, overflows, nans, amax_finite(xs))


def scale_index(block, offset, h, j, stride_block, stride_slot, stride_head, stride_group,
                interleave=0, stride_interleave=0):
    """The element of a group's scale (section 8's address)."""
    if interleave > 0:
        slot_term = (offset // interleave) * stride_slot + (offset % interleave) * stride_interleave
    else:
        slot_term = offset * stride_slot
    return block * stride_block + slot_term + h * stride_head + j * stride_group


# ---- MLA (9) -------------------------------------------------------------------

Entry = namedtuple("Entry", "data overflows nans")
DS_RANK, DS_PE, DS_TILE, DS_BYTES = 512, 64, 128, 656
WIDTH = {"f32": 4, "f16": 2, "bf16": 2}


def _le(bits, width):
    return [(int(b) >> (8 * i)) & 0xFF for b in bits for i in range(width)]


def mla_plain_entry(kv_c, k_pe, dtype, cache, scale=None, saturate=True):
    """FP8KV_MLA_PLAIN: kv_c then k_pe, each converted by section 5 (scale
    None: FP8KV_SCALE_ONE), or their bytes when cache is dtype."""
    kv, pe = list(kv_c), list(k_pe)
    xs = X.widen(kv + pe, dtype)
    nans = sum(1 for x in xs if X.is_nan(x))
    if cache == dtype:
        return Entry(_le(kv + pe, WIDTH[dtype]), 0, nans)
    if cache not in FP8:
        raise ValueError(f"cache {cache} for {dtype} inputs")
    out = [element(x, scale, cache, saturate, scaled=scale is not None) for x in xs]
    return Entry([c for c, _ in out], sum(o for _, o in out), nans)


def mla_ds_record(kv_c, k_pe, dtype, fmt="e4m3fn", divisor=0, saturate=True):
    """FP8KV_MLA_DS: four F32 tiles of 128 (floor 2^-126, D = divisor or
    the format's max), their fp32 scales little-endian, k_pe's 16-bit
    values unchanged; NaN inputs of both parts counted."""
    kv, pe = list(kv_c), list(k_pe)
    if len(kv) != DS_RANK or len(pe) != DS_PE or dtype not in ("bf16", "f16"):
        raise ValueError("fp8_ds_mla takes 512 + 64 16-bit values")
    if fmt not in ("e4m3fn", "e4m3fnuz"):
        raise ValueError("fp8_ds_mla records are e4m3")
    r = group_row("f32", fmt, kv, dtype, DS_TILE, saturate=saturate, divisor=divisor)
    pe_nans = sum(1 for x in X.widen(pe, dtype) if X.is_nan(x))
    return Entry(r.codes + r.scales + _le(pe, 2), r.overflows, r.nans + pe_nans)
