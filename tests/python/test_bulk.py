# SPDX-License-Identifier: MIT
"""quantize, dequantize, from_float, to_float, amax, suggest_scale and
check_slots against the numpy model: every bf16 and every fp16 bit pattern,
every FP8 code."""

import numpy as np
import pytest

import fp8kv
import reference
from helpers import assert_bytes_equal, poisoned, special_values

ALL_BF16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
ALL_F16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)


@pytest.mark.parametrize("scale", [None, 0.37, 1 / 3, -2.0 ** -20])
@pytest.mark.parametrize("overflow", ["saturate", "nonsaturating"])
@pytest.mark.parametrize("fmt", reference.FP8)
def test_quantize_every_bf16_and_f16(fmt, overflow, scale):
    for src, dtype in ((ALL_BF16, "bf16"), (ALL_F16, "f16")):
        arg = fp8kv.typed(src, "bf16") if dtype == "bf16" else src
        dst = poisoned(src.shape)
        count = np.array([3], np.uint64)
        fp8kv.quantize(arg, dst, format=fmt, scale=scale, overflow=overflow,
                       overflow_count=count)
        expected, overflows = reference.quantize(reference.widen(src, dtype), fmt, scale,
                                                 overflow == "saturate")
        assert_bytes_equal(dst, expected, "%s from %s" % (fmt, dtype))
        assert int(count[0]) == 3 + overflows


@pytest.mark.parametrize("fmt", reference.FP8)
def test_quantize_f32_specials_and_allocation(rng, fmt):
    x = np.concatenate([special_values(), special_values() * np.float32(0.999),
                        rng.standard_normal(1000).astype(np.float32) * 300])
    got = fp8kv.quantize(x, format=fmt, scale=np.array([0.37], np.float32))
    assert got.dtype == np.uint8 and got.shape == x.shape
    assert_bytes_equal(got, reference.quantize(x, fmt, np.float32(0.37))[0])


@pytest.mark.parametrize("out", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("scale", [None, 0.37, -2.0, float("inf"), 0.0])
@pytest.mark.parametrize("fmt", reference.FP8)
def test_dequantize_every_code(fmt, scale, out):
    codes = np.arange(256, dtype=np.uint8)
    got = fp8kv.dequantize(codes, format=fmt, scale=scale, dtype=out)
    assert_bytes_equal(got, reference.dequantize(codes, fmt, scale, out), fmt)


def test_dequantize_into_a_given_array():
    codes = np.arange(256, dtype=np.uint8)
    dst = poisoned(256, np.float32)
    assert fp8kv.dequantize(codes, dst, format="e5m2") is dst
    assert_bytes_equal(dst, reference.dequantize(codes, "e5m2"))


@pytest.mark.parametrize("fmt", reference.FP8)
def test_scalar_conversions(fmt):
    values = special_values()
    for overflow in ("saturate", "nonsaturating"):
        expected = reference.encode(values, fmt, overflow == "saturate")[0]
        got = [fp8kv.from_float(float(v), fmt, overflow) for v in values]
        assert got == [int(c) for c in expected]
    for code in range(256):
        want = reference.decode(code, fmt)
        got = fp8kv.to_float(code, fmt)
        assert (np.isnan(want) and np.isnan(got)) or got == want, (fmt, code)


def test_amax_and_suggest_scale(rng):
    x = rng.standard_normal(1000).astype(np.float32)
    x[7], x[8], x[9] = np.inf, -np.nan, -1e3
    assert fp8kv.amax(x) == 1e3
    assert fp8kv.amax(np.array([np.nan, -np.inf], np.float32)) == 0.0
    assert fp8kv.amax(fp8kv.typed(reference.f32_to_bf16(np.float32(-3.5)).reshape(1),
                                  "bf16")) == 3.5
    for fmt in reference.FP8:
        fmax = np.float32(reference.fmax(fmt))
        for a in (1e3, 1.0, 1e-40, 3e38):
            want = max(np.float32(a) / fmax, np.float32(2.0 ** -126))
            assert np.float32(fp8kv.suggest_scale(a, fmt)) == want
        for a in (0.0, -1.0, float("nan"), float("inf")):
            assert fp8kv.suggest_scale(a, fmt) == 1.0


@pytest.mark.parametrize("index", [np.int64, np.int32])
def test_check_slots(index):
    slots = np.array([3, -1, 5, 3, 99, -1, 5, 100, 0], index)
    r = fp8kv.check_slots(slots, 64)
    assert (r.padding, r.out_of_range, r.duplicates) == (2, 2, 2)
    assert (r.first_padding, r.first_out_of_range, r.first_duplicate) == (1, 4, 3)
    clean = fp8kv.check_slots(np.arange(10, dtype=index), 10)
    assert clean == fp8kv.SlotReport(0, 0, 0, -1, -1, -1)


def test_bulk_argument_errors():
    x = np.ones(8, np.float32)
    with pytest.raises(ValueError, match="^format:"):
        fp8kv.quantize(x)
    with pytest.raises(ValueError, match="^src:"):
        fp8kv.quantize(np.ones(16, np.float32)[::2], format="e4m3fn")
    with pytest.raises(ValueError, match="^dst:"):
        fp8kv.quantize(x, np.zeros(7, np.uint8), format="e4m3fn")
    with pytest.raises(TypeError, match="^dst:"):
        fp8kv.quantize(x, np.zeros(8, np.uint8))
    with pytest.raises(TypeError, match="^src:"):
        fp8kv.quantize(np.ones(8, np.int32), format="e4m3fn")
    with pytest.raises(TypeError, match="^src:"):
        fp8kv.dequantize(np.zeros(8, np.uint8))
    with pytest.raises(ValueError, match="^dtype:"):
        fp8kv.dequantize(np.zeros(8, np.uint8), format="e5m2", dtype="f64")
    with pytest.raises(ValueError, match="^code:"):
        fp8kv.to_float(256, "e5m2")
    with pytest.raises(ValueError, match="^format:"):
        fp8kv.from_float(1.0, "fp8")
    with pytest.raises(TypeError, match="^slot_mapping:"):
        fp8kv.check_slots(np.zeros(3, np.float32), 4)
