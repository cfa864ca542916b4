# SPDX-License-Identifier: MIT
"""The value models: what a specific wrong writer writes for an element.

For a byte at a mapped row, from input x, scale s (when the call has one),
format f, and the contract's code e:
  format:F        the encoding of x / s in another format F;
  scale_ignored   the encoding of x (the scale-1 result);
  reciprocal      the encoding of fl(x * fl(1 / s));
  overflow_first  overflow decided before rounding: |x / s| > max overflows;
  saturation      the other overflow mode's encoding;
  negative_zero   a zero with the other sign (fnuz: 0x80, which is NaN);
  ftz_output      an FP8 subnormal result flushed to zero;
  ftz_input       fp32 subnormal inputs or scales flushed (DAZ);
  ties_away       ties rounded away from zero, not to even;
  truncation      every inexact value rounded toward zero;
  ties_odd        ties rounded to the odd code;
  nan, inf        any other code for a NaN or an infinite x / s;
  division        the encoding of a value within ULPS fp32 ulp of x / s
                  (a division not correctly rounded: bytes differ only where
                  x / s lies that close to a rounding midpoint).  Only in a
                  call with a scale: where nothing is divided, no division is
                  named (V-CONFORM-ROUNDING).
"""

import numpy as np

from .. import formats as fp8kv_formats
from .. import quantize
from .streams import FP8_FORMATS, ULPS, fp8_values

VALUE_MODELS = tuple("format:" + f for f in FP8_FORMATS) + (
    "scale_ignored", "reciprocal", "overflow_first", "saturation", "negative_zero",
    "ftz_output", "ftz_input", "ties_away", "truncation", "ties_odd", "nan", "inf",
    "division")
LOOSE = ("nan", "inf", "division")


def encode(y, fmt, overflow):
    """FP8 codes of fp32 values, by the CPU backend (steps 2-4 of the contract)."""
    y = np.ascontiguousarray(y, dtype=np.float32)
    out = np.empty(y.shape, np.uint8)
    if y.size:
        quantize(y, out, format=fmt, overflow=overflow)
    return out


def quotient(x, s):
    """x / s as the contract divides: IEEE fp32, NaN signed by x if x is NaN,
    else by sign(x) XOR sign(s)."""
    with np.errstate(all="ignore"):
        y = (x / s).astype(np.float32)
    nan = np.isnan(y)
    if nan.any():
        neg = np.where(np.isnan(x), np.signbit(x), np.signbit(x) ^ np.signbit(s))
        y[nan] = np.copysign(np.float32(np.nan), np.where(neg, -1.0, 1.0)[nan])
    return y


def _daz(v):
    v = np.asarray(v, dtype=np.float32)
    tiny = (v != 0) & (np.abs(v) < np.float32(2.0 ** -126))
    return np.where(tiny, np.copysign(np.float32(0), v), v).astype(np.float32)


def _zero_code(e, fmt):
    return e == 0 if fmt.endswith("fnuz") else (e & 0x7F) == 0


def _subnormal_code(e, fmt):
    mbits = 3 if fmt.startswith("e4m3") else 2
    return ((e & 0x7F) >> mbits == 0) & ((e & 0x7F) != 0)


_MAX = {}


def fp8_max(fmt):
    if fmt not in _MAX:
        _MAX.update((f.name, np.float32(f.max)) for f in fp8kv_formats())
    return _MAX[fmt]


def rounding(y, fmt, overflow, e):
    """The codes of the other rounding modes (ties away from zero, toward
    zero, ties to odd) for fp32 values y whose contract code is e; e where
    a mode agrees or does not apply (NaN, Inf, |y| >= max)."""
    v = fp8_values(fmt)
    with np.errstate(invalid="ignore"):
        a = np.abs(y.astype(np.float64))
    ok = np.isfinite(a) & (a < v[-1])
    a = np.where(ok, a, 0.0)
    lo = np.clip(np.searchsorted(v, a, side="right") - 1, 0, len(v) - 2)
    inexact = ok & (v[lo] != a)
    tie = inexact & (2 * a == v[lo] + v[lo + 1])
    zero = encode(np.copysign(np.float32(0), y), fmt, overflow)
    neg = np.signbit(y)

    def signed(mag):
        code = np.where(neg, mag | 0x80, mag).astype(np.uint8)
        return np.where(mag == 0, zero, code).astype(np.uint8)
    up = signed(lo + 1)
    return {"ties_away": np.where(tie, up, e).astype(np.uint8),
            "truncation": np.where(inexact, signed(lo), e).astype(np.uint8),
            "ties_odd": np.where(tie, np.where(lo % 2 == 1, signed(lo), up), e)
            .astype(np.uint8)}


def predictions(x, s, scaled, fmt, overflow, e):
    """(y, {exact model: the bytes it predicts}) (arrays like e)."""
    y = quotient(x, s) if scaled else x
    other = "saturate" if overflow == "nonsaturating" else "nonsaturating"
    p = {}
    for f in FP8_FORMATS:
        if f != fmt:
            p["format:" + f] = encode(y, f, overflow)
    if scaled:
        p["scale_ignored"] = encode(x, fmt, overflow)
        with np.errstate(all="ignore"):
            r = (np.float32(1) / s).astype(np.float32)
            p["reciprocal"] = encode((x * r).astype(np.float32), fmt, overflow)
    fmax = np.float32(np.nextafter(np.float32(np.inf), np.float32(0)))
    over_code = encode(np.copysign(fmax, y), fmt, overflow)
    top = fp8_max(fmt)
    with np.errstate(invalid="ignore"):
        p["overflow_first"] = np.where(np.isfinite(y) & (np.abs(y) > top), over_code, e)
    p["saturation"] = encode(y, fmt, other)
    # a zero of the other sign; fnuz has none, so there the fault is 0x80 (a
    # NaN) for a negative zero
    flip = _zero_code(e, fmt) & ~np.isnan(y)
    if fmt.endswith("fnuz"):
        flip &= np.signbit(y)
    p["negative_zero"] = np.where(flip, e ^ np.uint8(0x80), e)
    zero = encode(np.copysign(np.float32(0), y), fmt, overflow)
    p["ftz_output"] = np.where(_subnormal_code(e, fmt), zero, e)
    yd = quotient(_daz(x), _daz(s)) if scaled else _daz(x)
    p["ftz_input"] = encode(yd, fmt, overflow)
    p.update(rounding(y, fmt, overflow, e))
    return y, {k: v.astype(np.uint8) for k, v in p.items()}


def value_masks(x, s, scaled, fmt, overflow, e, g, bit):
    """(y, masks, confirmed, contradicted): the contract's x / s, the bitmask
    (bits from `bit`, by model) of the models each byte g fits (0 where
    g == e), and per model the bytes where its predicted difference was
    written and those where the contract's byte was written instead."""
    y, pred = predictions(x, s, scaled, fmt, overflow, e)
    differs = g != e
    masks = np.zeros(e.shape, np.int64)
    confirmed, contradicted = {}, {}
    for name, p in pred.items():
        predicts = p != e
        hit = predicts & (p == g)
        masks |= np.where(hit, bit[name], 0)
        confirmed[name] = int(hit.sum())
        contradicted[name] = int((predicts & ~differs).sum())
    masks |= np.where(differs & np.isnan(y), bit["nan"], 0)
    masks |= np.where(differs & np.isinf(y), bit["inf"], 0)
    if scaled:
        near = np.zeros(e.shape, bool)
        i = np.flatnonzero(differs & np.isfinite(y))
        if len(i):
            up = down = y[i]
            inf = np.float32(np.inf)
            for _ in range(ULPS):
                up, down = np.nextafter(up, inf), np.nextafter(down, -inf)
                near[i] |= (encode(up, fmt, overflow) == g[i]) | \
                    (encode(down, fmt, overflow) == g[i])
        masks |= np.where(near, bit["division"], 0)
    masks = np.where(differs, masks, 0)
    return y, masks, confirmed, contradicted
