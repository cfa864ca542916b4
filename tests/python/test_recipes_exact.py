# SPDX-License-Identifier: MIT
"""The exact arithmetic of the recipe models (recipes_exact.py), held to
hand-worked values from the formats' definitions and to casts and IEEE
operations that are correct by their own specification (numpy's fp32
division and multiplication, its fp32->fp16 cast, torch's fp32->bf16 cast
and round/trunc): the rounding primitives are proven before any recipe
model uses them."""

import bisect
from fractions import Fraction

import numpy as np
import pytest

import recipes_exact as X

NAN, INF = float("nan"), float("inf")


def bits(x):
    return X.f32_const(x)


def fp32_sample(rng, n):
    """fp32 bit patterns across the whole range: normals of every binade,
    subnormals, zeros, the largest values."""
    u = rng.integers(0, 2 ** 32, n, dtype=np.uint64).astype(np.uint32)
    u[: n // 8] &= 0x807FFFFF            # subnormals and zeros
    u[n // 8: n // 4] |= 0x7F000000      # near the top
    u[n // 8: n // 4] &= 0xFF7FFFFF
    return u


# ---- binary32 against the hardware's IEEE operations --------------------

@pytest.mark.parametrize("op", ["div", "mul"])
def test_f32_ops_equal_ieee_hardware(rng, op):
    a, b = fp32_sample(rng, 3000), fp32_sample(rng, 3000)[::-1].copy()
    fa, fb = a.view(np.float32), b.view(np.float32)
    with np.errstate(all="ignore"):
        ref = (fa / fb if op == "div" else fa * fb).view(np.uint32)
    fn = X.f32_div if op == "div" else X.f32_mul
    for x, y, r in zip(a.tolist(), b.tolist(), ref.tolist()):
        got = fn(x, y)
        if X.is_nan(r):
            assert X.is_nan(got) and got == X.GPU_NAN
        else:
            assert got == r, (hex(x), hex(y), hex(got), hex(r))


def test_f32_ops_hand_values():
    assert X.f32_div(bits(1.0), bits(3.0)) == 0x3EAAAAAB          # RN(1/3)
    assert X.f32_div(bits(1.0), bits(6.0)) == 0x3E2AAAAB          # RN(1/6)
    assert X.f32_div(bits(1.0), bits(448.0)) == 0x3B124925
    assert X.f32_div(bits(-0.0), bits(5.0)) == 0x80000000
    assert X.f32_div(bits(1.0), bits(0.0)) == X.F32_INF
    assert X.f32_div(bits(-1.0), bits(INF)) == 0x80000000
    assert X.f32_div(bits(0.0), bits(0.0)) == X.GPU_NAN
    assert X.f32_div(bits(INF), bits(INF), nan=X.QNAN) == X.QNAN
    assert X.f32_mul(bits(INF), bits(0.0)) == X.GPU_NAN
    assert X.f32_mul(X.f32_of_double(3.0e38), bits(10.0)) == X.F32_INF       # overflow
    assert X.f32_mul(0x00000001, bits(0.5)) == 0                  # 2^-150: tie to even 0
    assert X.f32_mul(0x00000003, bits(0.5)) == 0x00000002         # 1.5 quanta: to 2
    assert X.f32_rcp(0x00400000, flush=True) == X.F32_INF         # subnormal in: flushed
    assert X.f32_rcp(bits(2.0 ** 127), flush=True) == 0            # subnormal out
    assert X.f32_rcp(bits(2.0 ** 127)) == 0x00400000
    assert X.f32_of_double(1e-6) == 0x358637BD


def test_fmaxf_ignores_one_nan():
    assert X.fmaxf(X.QNAN, bits(2.0)) == bits(2.0)
    assert X.fmaxf(bits(2.0), X.QNAN) == bits(2.0)
    assert X.is_nan(X.fmaxf(X.QNAN, X.GPU_NAN))
    assert X.fmaxf(bits(INF), bits(3.0)) == X.F32_INF


# ---- round_binary at other precisions, against the casts ------------------

def test_round_binary_equals_fp16_cast(rng):
    u = fp32_sample(rng, 4000)
    u = u[(u & 0x7F800000) != 0x7F800000]
    with np.errstate(over="ignore"):
        ref = u.view(np.float32).astype(np.float16)
    for x, h in zip(u.tolist(), ref.tolist()):
        r = X.round_binary(X.magnitude(x), 11, -14)
        want = INF if r > 65504 else float(r)
        assert abs(float(h)) == want, hex(x)


def test_round_binary_equals_torch_bf16_cast(rng):
    torch = pytest.importorskip("torch")
    u = fp32_sample(rng, 4000)
    u = u[(u & 0x7F800000) != 0x7F800000]
    ref = torch.from_numpy(u.view(np.float32).copy()).to(torch.bfloat16).float().numpy()
    for x, h in zip(u.tolist(), ref.tolist()):
        r = X.round_binary(X.magnitude(x), 8, -126)
        want = INF if r > X.magnitude(0x7F7F0000) else float(r)
        assert abs(h) == want, hex(x)


def test_int8_rounding_equals_torch(rng):
    torch = pytest.importorskip("torch")
    q = (rng.standard_normal(3000) * 60).astype(np.float32)
    q[:40] = np.arange(-20, 20) + 0.5                         # every tie
    t = torch.from_numpy(q)
    rne, trunc = torch.round(t).numpy(), torch.trunc(t).numpy()
    for x, a, b in zip(q.tolist(), rne.tolist(), trunc.tolist()):
        v = X.value(bits(x))
        assert X.int8_of(v, "rne", -1000, 1000) == int(a)
        assert X.int8_of(v, "trunc", -1000, 1000) == int(b)
    assert X.int8_of(Fraction(300), "rne") == 127
    assert X.int8_of(Fraction(-300), "trunc", lo=-128) == -128


def test_widen_exact():
    assert X.widen([0x3F80, 0xFF80, 0x7FC0], "bf16") == [0x3F800000, 0xFF800000, 0x7FC00000]
    assert X.widen([0x3C00, 0x0001, 0x8400, 0x7C00, 0xFE00], "f16") == [
        0x3F800000, 0x33800000, 0xB8800000, 0x7F800000, 0xFFC00000]
    assert X.widen([X.f16_bits(65504.0)], "f16") == [bits(65504.0)]


# ---- FP8: the contract's table and a nearest-value search -------------

# (format, y, saturating code, non-saturating code): include/fp8kv.h section 5
HAND_FP8 = [
    ("e4m3fn", 1.0, 0x38, 0x38), ("e4m3fn", 448.0, 0x7E, 0x7E),
    ("e4m3fn", 464.0, 0x7E, 0x7E), ("e4m3fn", 464.5, 0x7E, 0x7F),
    ("e4m3fn", -INF, 0xFE, 0xFF), ("e4m3fn", NAN, 0x7F, 0x7F), ("e4m3fn", -NAN, 0xFF, 0xFF),
    ("e4m3fn", -0.0, 0x80, 0x80), ("e4m3fn", -2.0 ** -11, 0x80, 0x80),
    ("e4m3fn", 2.0 ** -9, 0x01, 0x01), ("e4m3fn", 3 * 2.0 ** -11, 0x01, 0x01),
    ("e4m3fn", 1.0625, 0x38, 0x38), ("e4m3fn", 1.1875, 0x3A, 0x3A),
    ("e4m3fnuz", 240.0, 0x7F, 0x7F), ("e4m3fnuz", 248.0, 0x7F, 0x80),
    ("e4m3fnuz", -0.0, 0x00, 0x00), ("e4m3fnuz", -NAN, 0x80, 0x80),
    ("e4m3fnuz", -INF, 0xFF, 0x80), ("e4m3fnuz", 224.0, 0x7E, 0x7E),
    ("e5m2", 57344.0, 0x7B, 0x7B), ("e5m2", 61440.0, 0x7B, 0x7C), ("e5m2", -INF, 0xFB, 0xFC),
    ("e5m2fnuz", 61440.0, 0x7F, 0x80), ("e5m2fnuz", 1.0, 0x40, 0x40),
]


@pytest.mark.parametrize("fmt,y,sat,nonsat", HAND_FP8)
def test_fp8_contract_hand(fmt, y, sat, nonsat):
    if y != y:
        u = X.QNAN | (X.F32_SIGN if np.signbit(y) else 0)
    else:
        u = bits(y)
    assert X.fp8_contract(u, X.FP8[fmt], saturate=True) == sat
    assert X.fp8_contract(u, X.FP8[fmt], saturate=False) == nonsat


def code_table(fmt):
    """(magnitude, code) of the format's finite non-negative codes, sorted."""
    return sorted((fmt.decode(c)[1], c) for c in range(1 << (fmt.ebits + fmt.mbits))
                  if fmt.decode(c) is not None and fmt.decode(c)[1] is not None)


def nearest_code(table, values, mag):
    """The code nearest to mag >= 0 among the finite codes, ties to the even
    code; None above the overflow midpoint (a search, not a rounding)."""
    i = bisect.bisect_left(values, mag)
    if i == len(values):
        top, c = table[-1]
        ulp = top - table[-2][0]
        over = mag - top
        return None if over > ulp / 2 or (over == ulp / 2 and c & 1) else c
    if values[i] == mag or i == 0:
        return table[i][1]
    lo, hi = table[i - 1], table[i]
    dl, dh = mag - lo[0], hi[0] - mag
    if dl != dh:
        return lo[1] if dl < dh else hi[1]
    return lo[1] if lo[1] % 2 == 0 else hi[1]


@pytest.mark.parametrize("fmt", list(X.FP8.values()) + [X.E2M1], ids=lambda f: f.name)
def test_rounding_equals_nearest_search(fmt):
    """Every bf16 magnitude (2^15 patterns, as fp32): the encoder's rounding
    against an exact search of the format's codes."""
    table = code_table(fmt)
    values = [v for v, _ in table]
    for h in range(0, 0x7F80, 3):
        mag = X.magnitude(h << 16)
        r = fmt.round(mag)
        want = nearest_code(table, values, mag)
        if want is None:
            assert r > fmt.maxval
        else:
            assert r <= fmt.maxval and fmt.code_of(r) == want, hex(h)


def test_satfinite_nv_drops_nan_sign():
    assert X.fp8_satfinite_nv(X.QNAN | X.F32_SIGN) == 0x7F
    assert X.fp8_satfinite_nv(bits(-INF)) == 0xFE
    assert X.fp8_satfinite_nv(bits(-INF), X.E5M2) == 0xFB


# ---- e2m1 --------------------------------------------------------------------

def test_e2m1_code_table():
    """OCP MX v1.0's FP4 E2M1: bias 1, no Inf or NaN, magnitudes
    0, 0.5, 1, 1.5, 2, 3, 4, 6; code 8 is -0."""
    mags = [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    for c in range(16):
        sign, mag = X.E2M1.decode(c)
        assert sign == c >> 3 and mag == Fraction(mags[c & 7])
    assert X.E2M1.max_code == 7


TIES = [(0.25, 0x0), (0.75, 0x2), (1.25, 0x2), (1.75, 0x4), (2.5, 0x4), (3.5, 0x6),
        (5.0, 0x6), (5.0001, 0x7), (6.0, 0x7), (1e30, 0x7), (0.2, 0x0), (0.26, 0x1),
        (-0.0, 0x8), (-0.2, 0x8), (-2.5, 0xC), (-7.0, 0xF), (INF, 0x7), (-INF, 0xF)]


@pytest.mark.parametrize("y,code", TIES)
@pytest.mark.parametrize("enc", [X.e2m1_cvt_satfinite, X.e2m1_flashinfer, X.e2m1_bit_trick])
def test_e2m1_ties_and_saturation(enc, y, code):
    assert enc(X.f32_of_double(y) if y != 0 and abs(y) != INF else bits(y)) == code


def test_e2m1_encoders_agree_on_every_bf16():
    """The three engine encoders round every non-NaN bf16 value alike."""
    for h in range(0x10000):
        u = h << 16
        if X.is_nan(u):
            continue
        a = X.e2m1_cvt_satfinite(u)
        assert X.e2m1_flashinfer(u) == a and X.e2m1_bit_trick(u) == a, hex(h)


def test_e2m1_nan_is_where_they_differ():
    assert X.e2m1_cvt_satfinite(X.QNAN | X.F32_SIGN) == 0x7      # +6
    assert X.e2m1_flashinfer(X.QNAN) == 0x0
    assert X.e2m1_flashinfer(X.QNAN | X.F32_SIGN) == 0x8
    assert X.e2m1_bit_trick(X.QNAN) == 0x3                       # leftover bits
    assert X.e2m1_bit_trick(X.QNAN | X.F32_SIGN) == 0xB
    assert X.e2m1_bit_trick(X.GPU_NAN) == 0x4


def test_e2m1_nibble_order():
    """Element 2i in the low nibble: [1.0, -6.0] -> 0xF2; as the CUDA 13.0
    __nv_cvt_float2_to_fp4x2 (x.x low) and torchao's pack_uint4 store it."""
    assert X.pack_e2m1([0x2, 0xF]).tolist() == [0xF2]
    assert X.unpack_e2m1([0xF2, 0x01]) == [0x2, 0xF, 0x1, 0x0]
    with pytest.raises(ValueError):
        X.pack_e2m1([1, 2, 3])


def test_e8m0_values():
    assert X.e8m0_value(127) == 1 and X.e8m0_value(0) == Fraction(1, 2 ** 127)
    assert X.e8m0_value(255) is None
    assert X.e8m0_fp32_bits(0) == 0x00400000 and X.e8m0_fp32_bits(254) == 0x7F000000
