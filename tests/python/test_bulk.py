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


# ---- hostile arguments (issue #35 items 2, 4, 8, 9; #33 item 5) ----------------

def _no_library(monkeypatch):
    def called(*args):
        raise AssertionError("the library was called")
    for f in ("quantize", "dequantize", "amax", "check_slots", "from_float", "to_float",
              "suggest_scale"):
        monkeypatch.setattr(fp8kv._capi.fn, f, called)


def _read_only(a):
    a = a.copy()
    a.setflags(write=False)
    return a


@pytest.mark.parametrize("case", ["quantize_dst", "quantize_count", "dequantize_dst",
                                  "quantize_bytes_dst"])
def test_read_only_outputs_are_refused(monkeypatch, case):
    x = np.ones(8, np.float32)
    codes = np.full(8, 0x38, np.uint8)
    dst, count = poisoned(8), np.zeros(1, np.uint64)
    frozen = bytes(8)
    _no_library(monkeypatch)
    with pytest.raises(ValueError) as e:
        if case == "quantize_dst":
            dst = _read_only(dst)
            fp8kv.quantize(x, dst, format="e4m3fn")
        elif case == "quantize_bytes_dst":
            dst = np.frombuffer(frozen, np.uint8)
            fp8kv.quantize(x, dst, format="e4m3fn")
        elif case == "quantize_count":
            count = _read_only(count)
            fp8kv.quantize(x, dst, format="e4m3fn", overflow_count=count)
        else:
            dst = _read_only(poisoned(8, np.float32))
            fp8kv.dequantize(codes, dst, format="e4m3fn")
    name = "overflow_count" if case == "quantize_count" else "dst"
    assert str(e.value).startswith(name + ":") and "writ" in str(e.value), str(e.value)
    assert frozen == bytes(8) and (dst.view(np.uint8) == (0 if "bytes" in case else 0xA5)).all()
    assert int(count[0]) == 0


SWAP = ">" if np.little_endian else "<"


@pytest.mark.parametrize("case", ["quantize_src", "quantize_scale", "quantize_count",
                                  "dequantize_dst", "dequantize_scale", "amax", "check_slots"])
def test_non_native_byte_order_is_refused_by_the_bulk_calls(monkeypatch, case):
    x = np.ones(8, np.float32)
    codes = np.full(8, 0x38, np.uint8)
    big = x.astype(SWAP + "f4")
    _no_library(monkeypatch)
    with pytest.raises(TypeError) as e:
        if case == "quantize_src":
            name = "src"
            fp8kv.quantize(big, format="e4m3fn")
        elif case == "quantize_scale":
            name = "scale"
            fp8kv.quantize(x, format="e4m3fn", scale=big[:1])
        elif case == "quantize_count":
            name = "overflow_count"
            fp8kv.quantize(x, format="e4m3fn", overflow_count=np.zeros(1, SWAP + "u8"))
        elif case == "dequantize_dst":
            name = "dst"
            fp8kv.dequantize(codes, np.zeros(8, SWAP + "f4"), format="e4m3fn")
        elif case == "dequantize_scale":
            name = "scale"
            fp8kv.dequantize(codes, format="e4m3fn", scale=big[:1])
        elif case == "amax":
            name = "x"
            fp8kv.amax(big)
        else:
            name = "slot_mapping"
            fp8kv.check_slots(np.arange(4, dtype=SWAP + "i8"), 4)
    assert str(e.value).startswith(name + ":") and "byte order" in str(e.value), str(e.value)


def test_empty_arrays_are_calls_with_nothing_to_do():
    """A count of 0 is valid, as in the C API (the zero-size rule)."""
    for dtype in (np.float32, np.float16):
        empty = np.zeros(0, dtype)
        q = fp8kv.quantize(empty, format="e5m2")
        assert q.shape == (0,) and q.dtype == np.uint8
        assert fp8kv.quantize(empty, np.zeros(0, np.uint8), format="e5m2").shape == (0,)
        assert fp8kv.amax(empty) == 0.0
    assert fp8kv.quantize(np.zeros((3, 0), np.float32), format="e5m2").shape == (3, 0)
    d = fp8kv.dequantize(np.zeros(0, np.uint8), format="e4m3fn", dtype="f16")
    assert d.shape == (0,) and d.dtype == np.float16
    assert fp8kv.check_slots(np.zeros(0, np.int32), 0) == fp8kv.SlotReport(0, 0, 0, -1, -1, -1)
    count = np.full(1, 5, np.uint64)
    fp8kv.quantize(np.zeros(0, np.float32), np.zeros(0, np.uint8), format="e4m3fn",
                   overflow_count=count)
    assert int(count[0]) == 5


@pytest.mark.parametrize("call,name,error", [
    (lambda: fp8kv.from_float("x", "e4m3fn"), "y", TypeError),
    (lambda: fp8kv.from_float(None, "e4m3fn"), "y", TypeError),
    (lambda: fp8kv.from_float(1e300, "e4m3fn"), "y", ValueError),
    (lambda: fp8kv.from_float(10 ** 400, "e4m3fn"), "y", ValueError),
    (lambda: fp8kv.from_float(1.0, ["e4m3fn"]), "format", ValueError),
    (lambda: fp8kv.from_float(1.0, "e4m3fn", ["saturate"]), "overflow", ValueError),
    (lambda: fp8kv.to_float(1.5, "e4m3fn"), "code", TypeError),
    (lambda: fp8kv.to_float("1", "e4m3fn"), "code", TypeError),
    (lambda: fp8kv.to_float(True, "e4m3fn"), "code", TypeError),
    (lambda: fp8kv.to_float(-1, "e4m3fn"), "code", ValueError),
    (lambda: fp8kv.suggest_scale("x", "e4m3fn"), "amax", TypeError),
    (lambda: fp8kv.check_slots(np.arange(4), 2 ** 64), "num_slots", ValueError),
    (lambda: fp8kv.check_slots(np.arange(4), 2 ** 63), "num_slots", ValueError),
    (lambda: fp8kv.check_slots(np.arange(4), -1), "num_slots", ValueError),
    (lambda: fp8kv.check_slots(np.arange(4), 2.5), "num_slots", TypeError),
    (lambda: fp8kv.check_slots(np.arange(4), "4"), "num_slots", TypeError),
    (lambda: fp8kv.check_slots(np.array(3, np.int64), 4), "slot_mapping", ValueError),
    (lambda: fp8kv.check_slots(np.zeros((2, 2), np.int64), 4), "slot_mapping", ValueError),
    (lambda: fp8kv.quantize(np.ones(4, np.float32), format="e4m3fn", scale=10 ** 400),
     "scale", ValueError),
    (lambda: fp8kv.dequantize(np.zeros(4, np.uint8), format="e4m3fn", dtype=["f32"]),
     "dtype", ValueError),
    (lambda: fp8kv.typed(np.zeros(4, np.uint16), ["bf16"]), "typed", ValueError),
], ids=["from_float_str", "from_float_none", "from_float_huge", "from_float_int_huge",
        "from_float_format_list", "from_float_overflow_list", "to_float_fraction",
        "to_float_str", "to_float_bool", "to_float_negative", "suggest_scale_str",
        "num_slots_2_64", "num_slots_2_63", "num_slots_negative", "num_slots_fraction",
        "num_slots_str", "slots_0d", "slots_2d", "quantize_scale_huge", "dtype_list",
        "typed_dtype_list"])
def test_scalar_arguments_are_checked_and_named(monkeypatch, call, name, error):
    _no_library(monkeypatch)
    with pytest.raises(error) as e:
        call()
    assert not isinstance(e.value, fp8kv.Error)
    assert str(e.value).startswith(name + ":"), str(e.value)


def test_integral_numbers_are_codes_and_counts():
    """What the checks above must not refuse: numpy integers and floats."""
    assert fp8kv.to_float(np.uint8(0x38), "e4m3fn") == 1.0
    assert fp8kv.from_float(np.float32(1.0), "e4m3fn") == 0x38
    assert fp8kv.from_float(1, "e4m3fn") == 0x38
    assert fp8kv.check_slots(np.arange(4), np.int64(2)).out_of_range == 2


@pytest.mark.parametrize("call,dtype", [
    (lambda: fp8kv.quantize(np.ones(4, np.float64), format="e4m3fn"), "float64"),
    (lambda: fp8kv.quantize(np.ones(4, np.float32), np.zeros(4, np.int8), format="e4m3fn"),
     "int8"),
    (lambda: fp8kv.quantize(np.ones(4, np.float32), format="e4m3fn",
                            scale=np.ones(1, np.float64)), "float64"),
    (lambda: fp8kv.quantize(np.ones(4, np.float32), np.zeros(4, np.uint8), format="e4m3fn",
                            overflow_count=np.zeros(1, np.int16)), "int16"),
    (lambda: fp8kv.dequantize(np.zeros(4, np.int16), format="e4m3fn"), "int16"),
    (lambda: fp8kv.dequantize(np.zeros(4, np.uint8), np.zeros(4, np.int32), format="e4m3fn"),
     "int32"),
    (lambda: fp8kv.amax(np.ones(4, np.float64)), "float64"),
    (lambda: fp8kv.check_slots(np.ones(4, np.float32), 4), "float32"),
], ids=["quantize_src", "quantize_dst", "quantize_scale", "quantize_count", "dequantize_src",
        "dequantize_dst", "amax", "check_slots"])
def test_wrong_dtype_messages_name_the_dtype_passed(monkeypatch, call, dtype):
    _no_library(monkeypatch)
    with pytest.raises(TypeError) as e:
        call()
    assert dtype in str(e.value) and "None" not in str(e.value), str(e.value)
