# SPDX-License-Identifier: MIT
"""Shared helpers of the Python tests: inputs rich in special values, poisoned
caches, and a byte comparison that names the first difference."""

import numpy as np

import reference

POISON = 0xA5
INPUT_DTYPES = ("f32", "f16", "bf16")


def special_values():
    """fp32 values every conversion must get right: zeros, subnormals (fp32,
    fp16 and FP8 ones), the FP8 maxima and their overflow thresholds, ties,
    Inf and NaN of both signs."""
    v = [0.0, -0.0, 1.0, -1.0, 1e-45, -1e-45, 2.0 ** -126, 2.0 ** -149 * 3, 6e-8, 2.0 ** -9,
         2.0 ** -10, 2.0 ** -17, 2.0 ** -16 * 1.5, 448.0, 464.0, 464.0001, -464.0, 480.0,
         240.0, 248.0, 247.99, 57344.0, 61440.0, 61439.0, -61440.0, 65504.0, 1e30, -3e38,
         1.0625, 1.125, 1.1875, 0.0068359375, float("inf"), float("-inf"), float("nan"),
         -float("nan"), 3.0e-39, -7.0e-39]
    return np.array(v, dtype=np.float32)


def make_inputs(rng, shape, dtype, specials=True):
    """Raw inputs of an input dtype: float32, float16, or bf16 as uint16 bits;
    normal values across magnitudes, with the special values mixed in."""
    x = (rng.standard_normal(shape) * np.exp2(rng.integers(-12, 12, shape))).astype(np.float32)
    if specials:
        flat = x.reshape(-1)
        sv = special_values()
        idx = rng.choice(flat.size, size=min(flat.size, len(sv)), replace=False)
        flat[idx] = sv[:len(idx)]
    if dtype == "f32":
        return x
    if dtype == "f16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16)
    return reference.f32_to_bf16(x)


def as_arg(x, dtype):
    """The package's argument for a raw input array."""
    import fp8kv
    return fp8kv.typed(x, "bf16") if dtype == "bf16" else x


def poisoned(shape, dtype=np.uint8, byte=POISON):
    a = np.empty(shape, dtype=dtype)
    a.view(np.uint8)[...] = byte
    return a


def assert_bytes_equal(got, expected, what="array"):
    """Every byte equal; on failure, the count and the first differing index."""
    g = np.ascontiguousarray(got).view(np.uint8).reshape(-1)
    e = np.ascontiguousarray(expected).view(np.uint8).reshape(-1)
    assert g.shape == e.shape, "%s: %d bytes, expected %d" % (what, g.size, e.size)
    bad = np.flatnonzero(g != e)
    assert bad.size == 0, "%s: %d of %d bytes differ, first at byte %d: %#04x, expected %#04x" % (
        what, bad.size, g.size, bad[0], g[bad[0]], e[bad[0]])
