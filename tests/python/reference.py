# SPDX-License-Identifier: MIT
"""An independent numpy model of fp8kv's conversion contract and cache write
(include/fp8kv.h sections 5 and 7), written from the contract's text: it
shares no code with the library or the package, and computes in float64
(every fp32 value and every FP8 value is exact there) and numpy's IEEE fp32
division.  The tests hold the package's results to it byte for byte.
"""

import numpy as np

# format: exponent bits, mantissa bits, bias, fnuz (NaN 0x80, no -0), Inf (e5m2)
FORMATS = {
    "e4m3fn": (4, 3, 7, False),
    "e4m3fnuz": (4, 3, 8, True),
    "e5m2": (5, 2, 15, False),
    "e5m2fnuz": (5, 2, 16, True),
}
FP8 = tuple(FORMATS)


def decode(code, fmt):
    """The value of an FP8 code (float64; NaN for NaN codes, +-Inf for e5m2's)."""
    ebits, mbits, bias, fnuz = FORMATS[fmt]
    code = int(code)
    if fnuz and code == 0x80:
        return float("nan")
    sign = -1.0 if code & 0x80 else 1.0
    e = (code >> mbits) & ((1 << ebits) - 1)
    m = code & ((1 << mbits) - 1)
    if fmt == "e4m3fn" and (code & 0x7F) == 0x7F:
        return float("nan")
    if fmt == "e5m2" and e == 31:
        return sign * float("inf") if m == 0 else float("nan")
    if e == 0:
        return sign * m * 2.0 ** (1 - bias - mbits)
    return sign * (1 + m / 2.0 ** mbits) * 2.0 ** (e - bias)


def _positive_table(fmt):
    """Codes 0..max_code and their values, ascending."""
    codes = []
    for c in range(0x80):
        v = decode(c, fmt)
        if np.isfinite(v):
            codes.append((v, c))
    codes.sort()
    return np.array([v for v, _ in codes]), np.array([c for _, c in codes])


_TABLES = {f: _positive_table(f) for f in FORMATS}


def fmax(fmt):
    return _TABLES[fmt][0][-1]


def _special_codes(fmt):
    """(NaN code without sign, overflow code saturating, non-saturating);
    the OCP NaN and overflow codes take the sign bit, fnuz's 0x80 does not."""
    max_code = int(_TABLES[fmt][1][-1])
    if fmt == "e4m3fn":
        return 0x7F, max_code, 0x7F
    if fmt == "e5m2":
        return 0x7F, max_code, 0x7C
    return 0x80, max_code, 0x80


def encode(y, fmt, saturate=True):
    """FP8 codes (uint8) of fp32 values y (steps 2 to 4 of the contract), and a
    bool array: where y overflowed (finite y only; Inf is not an overflow)."""
    with np.errstate(all="ignore"):
        y = np.asarray(y, dtype=np.float32).astype(np.float64)
    values, codes = _TABLES[fmt]
    fnuz = FORMATS[fmt][3]
    nan_code, sat_code, nonsat_code = _special_codes(fmt)
    neg = np.signbit(y)
    sign = np.where(neg, 0x80, 0).astype(np.int64)
    a = np.abs(y)
    finite = np.isfinite(a)
    af = np.where(finite, a, 0.0)
    # nearest of the finite values, ties to the even code
    hi = np.clip(np.searchsorted(values, af), 1, len(values) - 1)
    lo = hi - 1
    dlo, dhi = af - values[lo], values[hi] - af
    take_hi = (dhi < dlo) | ((dhi == dlo) & (codes[hi] % 2 == 0))
    q = np.where(take_hi, codes[hi], codes[lo]).astype(np.int64)
    q = np.where(af <= values[0], codes[0], q)
    # past the largest value: the overflow threshold is the midpoint to the
    # next (virtual) code, whose parity decides a tie
    top = values[-1]
    half_ulp = (values[-1] - values[-2]) / 2
    max_even = codes[-1] % 2 == 0
    over = finite & ((af > top + half_ulp) | ((af == top + half_ulp) & (not max_even)))
    q = np.where(finite & (af > top) & ~over, codes[-1], q)
    out = q | sign
    if fnuz:
        out = np.where(q == 0, 0, out)          # no negative zero
    over_code = sat_code | sign if saturate else (
        np.full_like(sign, nonsat_code) if fnuz else nonsat_code | sign)
    inf_mask = np.isinf(a)
    out = np.where(over | inf_mask, over_code, out)
    nan_mask = np.isnan(a)
    out = np.where(nan_mask, nan_code if fnuz else nan_code | sign, out)
    return out.astype(np.uint8), over


def divide(x, s):
    """y = x / s in fp32 (numpy's division is IEEE), the sign of a NaN y fixed
    by the contract: x's when x is NaN, else sign(x) XOR sign(s)."""
    x = np.asarray(x, dtype=np.float32)
    s = np.asarray(s, dtype=np.float32)
    with np.errstate(all="ignore"):
        y = (x / s).astype(np.float32)
    sign = np.where(np.isnan(x), np.signbit(x), np.signbit(x) ^ np.signbit(s))
    nan = np.isnan(y)
    return np.where(nan, np.where(sign, -np.float32("nan"), np.float32("nan")),
                    y).astype(np.float32)


def quantize(x, fmt, s=None, saturate=True):
    """(codes, overflow count) of fp32 inputs x divided by s (None: no scale)."""
    x = np.asarray(x, dtype=np.float32)
    y = x if s is None else divide(x, s)
    codes, over = encode(y, fmt, saturate)
    infinite_y = np.isfinite(x) & np.isinf(y)
    return codes, int(np.count_nonzero((over | infinite_y) & np.isfinite(x)))


def bf16_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint32) << 16).view(np.float32)


def f32_to_bf16(x):
    """Round fp32 to bf16 bits, to nearest even; NaN stays a quiet NaN."""
    b = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.int64)
    rounded = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    nan = np.isnan(np.asarray(x, dtype=np.float32))
    return np.where(nan, (b >> 16) | 0x40, rounded).astype(np.uint16)


def widen(x, dtype):
    """Inputs as fp32: dtype "f32", "f16" (numpy float16) or "bf16" (uint16 bits)."""
    if dtype == "bf16":
        return bf16_to_f32(x)
    with np.errstate(all="ignore"):
        return np.asarray(x).astype(np.float32)


def row_scale(x, fmt):
    """The token_head mode's scale of one row of fp32 values (the header's
    TOKEN_HEAD: amax / fmax, floored at 2**-126; 1 without finite values)."""
    fin = np.isfinite(x)
    amax = np.float32(np.max(np.abs(x[fin]))) if fin.any() else np.float32(0)
    if amax == 0:
        return np.float32(1)
    s = np.float32(amax) / np.float32(fmax(fmt))
    return np.float32(max(s, np.float32(2.0 ** -126)))


def dequantize(codes, fmt, s=None, out="f32"):
    """float(q) * s in fp32 (a NaN product signed as x / s is), rounded to out:
    fp32 values, float16 values, or bf16 bits."""
    v = np.array([decode(c, fmt) for c in range(256)])
    sign_of_nan = np.array([bool(c & 0x80) and not FORMATS[fmt][3] for c in range(256)])
    x = v[np.asarray(codes, dtype=np.int64)].astype(np.float32)
    xsign = sign_of_nan[np.asarray(codes, dtype=np.int64)]
    if s is not None:
        with np.errstate(all="ignore"):
            p = (x * np.float32(s)).astype(np.float32)
        sign = np.where(np.isnan(x), xsign, np.signbit(x) ^ np.signbit(np.float32(s)))
    else:
        p, sign = x, xsign
    p = np.where(np.isnan(p), np.where(sign, -np.float32("nan"), np.float32("nan")), p)
    p = p.astype(np.float32)
    if out == "f32":
        return p
    if out == "f16":
        with np.errstate(all="ignore"):
            return p.astype(np.float16)
    return f32_to_bf16(p)


def cache_write(key, value, kc, vc, slots, *, fmt, in_dtype, layout="NHD", swa=None,
                scale="one", k_scale=None, v_scale=None, k_sc=None, v_sc=None,
                sc_layout="NHD", saturate=True, k_amax=None, v_amax=None):
    """The cache write of section 7 on numpy arrays, in place: kc and vc are
    uint8 code arrays (FP8) or raw-bit arrays (a copy) of logical shape NHD or
    HND; key and value are the raw inputs (float32, float16 or bf16 bits).
    Returns (overflows, nans, first out-of-range token or None)."""
    T = len(slots)
    blocks = kc.shape[0]
    bs = kc.shape[1] if layout == "NHD" else kc.shape[2]
    H = key.shape[1]
    overflows = nans = 0
    first_oor = None
    copy = fmt == in_dtype
    for t in range(T):
        slot = int(slots[t])
        if slot < 0:
            continue
        if swa is not None:
            if slot >= len(swa):
                first_oor = t if first_oor is None else first_oor
                continue
            slot = int(swa[slot])
            if slot < 0:
                continue
        if slot >= blocks * bs:
            first_oor = t if first_oor is None else first_oor
            continue
        b, o = divmod(slot, bs)
        for h in range(H):
            for src, cache, s, sc, amax in ((key, kc, k_scale, k_sc, k_amax),
                                            (value, vc, v_scale, v_sc, v_amax)):
                row = src[t, h]
                dst = (b, o, h) if layout == "NHD" else (b, h, o)
                x = widen(row, in_dtype)
                nans += int(np.count_nonzero(np.isnan(x)))
                if amax is not None:
                    fin = np.isfinite(x)
                    if fin.any():
                        amax[h] = max(amax[h], np.float32(np.max(np.abs(x[fin]))))
                if copy:
                    cache[dst] = row
                    continue
                if scale == "one":
                    div = None
                elif scale == "tensor":
                    div = s[0]
                elif scale == "head":
                    div = s[h]
                else:
                    div = row_scale(x, fmt)
                    sc[(b, o, h) if sc_layout == "NHD" else (b, h, o)] = div
                codes, over = quantize(x, fmt, div, saturate)
                overflows += over
                cache[dst] = codes
    return overflows, nans, first_oor
