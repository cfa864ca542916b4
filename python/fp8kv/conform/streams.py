# SPDX-License-Identifier: MIT
"""The values fp8kv.conform feeds a writer, in streams, each with the scale
it is divided by:
  patterns   every bf16 or every fp16 bit pattern;
  midpoints  fp32 values within a few ulp of m * s for every rounding
             midpoint m of the format (the overflow threshold included),
             both signs, for every scale s of the level;
  specials   +-0, fp32 subnormals, +-Inf, NaNs of both signs and payloads,
             FP8 subnormals, maxima and thresholds times s;
  random     normal values across magnitudes (the token_head scale mode, and
             the filler of every row no stream takes).
"""

import numpy as np

from .. import to_float

FP8_FORMATS = ("e4m3fn", "e4m3fnuz", "e5m2", "e5m2fnuz")
ULPS = 4                # the midpoint search: x0 and 4 fp32 neighbours each way

_POSITIVE = {}


def fp8_values(fmt):
    """The finite non-negative values of a format, ascending (float64); the
    value at index i is the one of code i."""
    v = _POSITIVE.get(fmt)
    if v is None:
        v = np.array([to_float(c, fmt) for c in range(0x80)], dtype=np.float64)
        v = _POSITIVE[fmt] = np.unique(v[np.isfinite(v)])
    return v


def f32(values):
    with np.errstate(all="ignore"):
        return np.asarray(values, dtype=np.float64).astype(np.float32)


def _neighbours(x0, ulps=ULPS):
    out, up, down = [x0], x0, x0
    inf = np.float32(np.inf)
    for _ in range(ulps):
        up, down = np.nextafter(up, inf), np.nextafter(down, -inf)
        out += [up, down]
    return np.concatenate(out)


def midpoints(fmt, s):
    """fp32 x within ULPS ulp of m * s for each rounding midpoint m of fmt and
    the overflow threshold, both signs."""
    v = fp8_values(fmt)
    m = np.concatenate([(v[:-1] + v[1:]) / 2, [v[-1] + (v[-1] - v[-2]) / 2]])
    x0 = f32(np.concatenate([m, -m]) * float(np.float32(s)))
    return _neighbours(x0[np.isfinite(x0)])


def _nan(bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


def specials(fmt, s):
    """Zeros, fp32 subnormals, Inf, NaNs, and the format's edges times s."""
    v = fp8_values(fmt)
    sub, top = v[1], v[-1]
    normal = v[2 ** (3 if fmt.startswith("e4m3") else 2)]     # after the subnormals
    thr = top + (top - v[-2]) / 2
    edges = np.array([sub, sub / 2, sub * 0.75, sub * 1.5, sub * 2.5, sub * 0.5000001, normal,
                      normal - sub / 2, top, thr, thr * (1 - 2.0 ** -20),
                      thr * (1 + 2.0 ** -20), 2 * top, 1.0]) * float(np.float32(s))
    plain = np.array([0.0, 1e-45, 1e-40, 2.0 ** -126, 1.1754942e-38, np.inf, 3.4e38, 1e30,
                      1.0])
    fixed = np.concatenate([plain, -plain, edges, -edges])
    nans = _nan([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF, 0xFFFFFFFF,
                 0x7FA00000, 0xFFA00000])
    return np.concatenate([f32(fixed), nans])


def patterns(in_dtype, rng):
    """Every bit pattern of a 16-bit input type, shuffled: float16 values or
    bf16 bits (uint16)."""
    bits = rng.permutation(65536).astype(np.uint16)
    return bits.view(np.float16) if in_dtype == "f16" else bits


def random_values(rng, n):
    return (rng.standard_normal(n) * np.exp2(rng.integers(-12, 12, n))).astype(np.float32)


def raw_of(x32, in_dtype):
    """fp32 values in an input type's raw form: float32, float16, bf16 bits."""
    x32 = np.asarray(x32, dtype=np.float32)
    if in_dtype == "f32":
        return x32
    if in_dtype == "f16":
        with np.errstate(all="ignore"):
            return x32.astype(np.float16)
    return (x32.view(np.uint32) >> 16).astype(np.uint16)


def widen(raw):
    """Raw input values (float32, float16, or bf16 bits as uint16) as fp32."""
    if raw.dtype == np.uint16:
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32)


RAW_DTYPES = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16}
