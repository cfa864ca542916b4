# SPDX-License-Identifier: MIT
"""The numpy model (reference.py) against values written out by hand from the
contract's table, and the byte comparison against planted differences: the
oracle and the checker are tested before they judge the package."""

import numpy as np
import pytest

import reference
from helpers import assert_bytes_equal

NAN = float("nan")
INF = float("inf")

# (format, y, saturating code, non-saturating code), from include/fp8kv.h
# section 5 and the OCP/fnuz encodings.
HAND = [
    ("e4m3fn", 1.0, 0x38, 0x38), ("e4m3fn", -2.0, 0xC0, 0xC0),
    ("e4m3fn", 448.0, 0x7E, 0x7E), ("e4m3fn", 464.0, 0x7E, 0x7E),
    ("e4m3fn", 464.5, 0x7E, 0x7F), ("e4m3fn", -500.0, 0xFE, 0xFF),
    ("e4m3fn", 2.0 ** -9, 0x01, 0x01), ("e4m3fn", 2.0 ** -10, 0x00, 0x00),
    ("e4m3fn", 3 * 2.0 ** -10, 0x02, 0x02), ("e4m3fn", 3 * 2.0 ** -11, 0x01, 0x01), ("e4m3fn", -0.0, 0x80, 0x80),
    ("e4m3fn", -2.0 ** -11, 0x80, 0x80), ("e4m3fn", INF, 0x7E, 0x7F),
    ("e4m3fn", -INF, 0xFE, 0xFF), ("e4m3fn", NAN, 0x7F, 0x7F), ("e4m3fn", -NAN, 0xFF, 0xFF),
    ("e4m3fn", 1.0625, 0x38, 0x38), ("e4m3fn", 1.1875, 0x3A, 0x3A),
    ("e4m3fnuz", 1.0, 0x40, 0x40), ("e4m3fnuz", 240.0, 0x7F, 0x7F),
    ("e4m3fnuz", 247.9, 0x7F, 0x7F), ("e4m3fnuz", 248.0, 0x7F, 0x80),
    ("e4m3fnuz", -248.0, 0xFF, 0x80), ("e4m3fnuz", -0.0, 0x00, 0x00),
    ("e4m3fnuz", NAN, 0x80, 0x80), ("e4m3fnuz", -NAN, 0x80, 0x80),
    ("e4m3fnuz", -INF, 0xFF, 0x80), ("e4m3fnuz", 2.0 ** -10, 0x01, 0x01),
    ("e5m2", 1.0, 0x3C, 0x3C), ("e5m2", 57344.0, 0x7B, 0x7B), ("e5m2", 61439.0, 0x7B, 0x7B),
    ("e5m2", 61440.0, 0x7B, 0x7C), ("e5m2", -1e9, 0xFB, 0xFC), ("e5m2", INF, 0x7B, 0x7C),
    ("e5m2", NAN, 0x7F, 0x7F), ("e5m2", -NAN, 0xFF, 0xFF), ("e5m2", -0.0, 0x80, 0x80),
    ("e5m2", 2.0 ** -16, 0x01, 0x01), ("e5m2", 1.125, 0x3C, 0x3C), ("e5m2", 1.375, 0x3E, 0x3E),
    ("e5m2fnuz", 1.0, 0x40, 0x40), ("e5m2fnuz", 61440.0, 0x7F, 0x80),
    ("e5m2fnuz", -0.0, 0x00, 0x00), ("e5m2fnuz", -NAN, 0x80, 0x80),
    ("e5m2fnuz", 2.0 ** -17, 0x01, 0x01),
]


@pytest.mark.parametrize("fmt,y,sat,nonsat", HAND)
def test_encode_by_hand(fmt, y, sat, nonsat):
    y32 = np.array([y], dtype=np.float32)
    assert reference.encode(y32, fmt, True)[0][0] == sat
    assert reference.encode(y32, fmt, False)[0][0] == nonsat


def test_decode_by_hand():
    assert reference.decode(0x7E, "e4m3fn") == 448.0
    assert reference.decode(0x7F, "e4m3fnuz") == 240.0
    assert reference.decode(0x7B, "e5m2") == 57344.0
    assert reference.decode(0x7F, "e5m2fnuz") == 57344.0
    assert reference.decode(0x01, "e4m3fn") == 2.0 ** -9
    assert reference.decode(0x01, "e4m3fnuz") == 2.0 ** -10
    assert reference.decode(0xFC, "e5m2") == -INF
    assert np.isnan(reference.decode(0x80, "e5m2fnuz"))
    assert reference.decode(0x80, "e4m3fn") == 0.0 and np.signbit(reference.decode(0x80, "e4m3fn"))


def test_round_trip_of_every_code():
    for fmt in reference.FP8:
        for c in range(256):
            v = reference.decode(c, fmt)
            if np.isfinite(v):
                got = reference.encode(np.array([v], np.float32), fmt)[0][0]
                assert got == c or (v == 0 and got in (0x00, 0x80)), (fmt, hex(c))


def test_division_nan_signs():
    y = reference.divide(np.array([1.0, -1.0, 0.0, NAN], np.float32),
                         np.array([0.0, 0.0, -0.0, -1.0], np.float32))
    assert y[0] == INF and y[1] == -INF
    assert np.isnan(y[2]) and np.signbit(y[2])              # 0 / -0: sign 0 xor 1
    assert np.isnan(y[3]) and not np.signbit(y[3])          # NaN keeps x's sign


def test_bf16_rounding():
    assert reference.f32_to_bf16(np.float32(1.0)) == 0x3F80
    halfway = np.array([0x3F808000], np.uint32).view(np.float32)     # tie to even: down
    assert reference.f32_to_bf16(halfway)[0] == 0x3F80
    above = np.array([0x3F818000], np.uint32).view(np.float32)       # tie to even: up
    assert reference.f32_to_bf16(above)[0] == 0x3F82


def test_checker_catches_planted_differences():
    a = np.arange(64, dtype=np.uint8)
    assert_bytes_equal(a, a.copy())
    for where in (0, 17, 63):
        b = a.copy()
        b[where] ^= 1
        with pytest.raises(AssertionError, match="first at byte %d" % where):
            assert_bytes_equal(b, a)
    with pytest.raises(AssertionError):
        assert_bytes_equal(a[:63], a)
