# SPDX-License-Identifier: MIT
"""The engines' recipe models (recipes_ref.py): hand-worked vectors from the
cited sources and the specifications, the differences between engines that
docs/recipes.md records, and cross-checks between models that must agree."""

from fractions import Fraction

import numpy as np
import pytest

import recipes_exact as X
import recipes_ref as R

NAN, INF = float("nan"), float("inf")
FLT_MIN = X.F32_MIN_NORMAL


def f32(y):
    """fp32 bits of y: exact values, zeros, Inf, or the rounding of a double."""
    if y != y:
        return X.QNAN | (X.F32_SIGN if np.signbit(y) else 0)
    if y == 0 or abs(y) == INF:
        return X.f32_const(y)
    return X.f32_of_double(y)


def bf16(values):
    """bf16 bits of values (rounded to bf16 to nearest even first)."""
    out = []
    for y in values:
        u = f32(y)
        if X.is_finite(u):
            u = X.bits_of(bool(u & X.F32_SIGN), X.round_binary(X.magnitude(u), 8, -126))
        out.append(u >> 16)
    return np.array(out, dtype=np.uint16)


def random_bf16(rng, n, scale=1.0):
    x = (rng.standard_normal(n) * scale).astype(np.float32)
    return (x.view(np.uint32) >> 16).astype(np.uint16)      # truncation is fine here


def codes_of(fmt, values):
    return [X.fp8_contract(f32(v), fmt) for v in values]


# ---- MLA: fp8_ds_mla ---------------------------------------------------------

def ds_inputs():
    """Four tiles: 448s (scale 1); zeros with a -0; NaNs; finite with one Inf."""
    t0 = [448.0] * 128
    t1 = [0.0] * 127 + [-0.0]
    t2 = [NAN] * 64 + [-NAN] * 64
    t3 = [1.0] * 126 + [-2.0, INF]
    pe = np.arange(64, dtype=np.uint16) * 0x0101
    return bf16(t0 + t1 + t2 + t3), pe


def test_ds_mla_record_layout_vllm():
    kv, pe = ds_inputs()
    rec = R.mla_ds_vllm(kv, pe)
    codes, scales, rope = R.ds_mla_unpack(rec)
    assert rec.size == 656
    assert codes[:128] == [0x7E] * 128
    assert codes[128:256] == [0x00] * 127 + [0x80]
    assert codes[256:384] == [0x7F] * 128                  # satfinite drops the NaN sign
    assert codes[384:510] == [0x00] * 126 and codes[510] == 0x80   # x / Inf = +-0
    assert codes[511] == 0x7F                                # Inf / Inf
    assert scales == [0x3F800000, FLT_MIN, FLT_MIN, X.F32_INF]
    assert rope == pe.tolist()
    assert rec[512:516].tolist() == [0x00, 0x00, 0x80, 0x3F]   # little-endian fp32
    assert rec[528:532].tolist() == [0x00, 0x00, 0x01, 0x01]   # raw 16-bit, little-endian


def test_ds_mla_record_contract_nan_and_inf():
    kv, pe = ds_inputs()
    codes, scales, rope = R.ds_mla_unpack(R.mla_ds_fp8kv(kv, pe))
    assert codes[256:384] == [0x7F] * 64 + [0xFF] * 64        # NaN keeps its sign
    assert scales[3] == X.f32_div(f32(2.0), f32(448.0))       # Inf ignored by amax
    assert codes[511] == 0x7E                                 # +Inf saturates
    assert codes[510] == 0xFE and codes[384] == 0x76          # -2 -> -448, 1 -> 224
    assert scales[:3] == [0x3F800000, FLT_MIN, FLT_MIN] and rope == pe.tolist()


def test_ds_mla_vllm_equals_contract_on_finite_bf16(rng):
    for k in range(6):
        kv = random_bf16(rng, 512, scale=10.0 ** rng.integers(-6, 6))
        kv[rng.integers(0, 512, 5)] = 0x8000                  # some -0
        pe = rng.integers(0, 2 ** 16, 64).astype(np.uint16)
        assert R.mla_ds_vllm(kv, pe).tolist() == R.mla_ds_fp8kv(kv, pe).tolist()


def test_ds_mla_tile_boundaries():
    """One large element per tile scales only its own tile."""
    vals = [1.0] * 512
    vals[127], vals[128] = 448.0 * 4, 448.0 * 2
    _, scales, _ = R.ds_mla_unpack(R.mla_ds_vllm(bf16(vals), np.zeros(64, np.uint16)))
    assert scales == [f32(4.0), f32(2.0), f32(1 / 448), f32(1 / 448)]


def test_ds_mla_vllm_fp16_reads_bits():
    """vLLM's fp16 path takes the tile amax over raw bit patterns: fp16 1.0 is
    0x3C00 = 15360, so s = RN(15360 / 448) and 1.0 becomes 1 / s."""
    kv = np.array([X.f16_bits(1.0)] * 512, dtype=np.uint16)
    codes, scales, _ = R.ds_mla_unpack(R.mla_ds_vllm(kv, np.zeros(64, np.uint16), dtype="f16"))
    s = X.f32_div(f32(15360.0), f32(448.0))
    assert scales == [s] * 4
    assert codes[0] == X.fp8_contract(X.f32_div(f32(1.0), s), X.E4M3FN)
    good = R.ds_mla_unpack(R.mla_ds_fp8kv(kv, np.zeros(64, np.uint16), dtype="f16"))
    assert good[0][0] == 0x7E and good[1][0] == X.f32_div(f32(1.0), f32(448.0))


def test_ds_mla_gfx942_divisor_224():
    vals = [224.0] * 128 + [240.0] * 128 + [-1.0] * 256
    codes, scales, _ = R.ds_mla_unpack(R.mla_ds_vllm(bf16(vals), np.zeros(64, np.uint16),
                                                     arch="gfx942"))
    assert scales[0] == 0x3F800000 and codes[0] == 0x7E          # 224 in e4m3fnuz
    assert scales[1] == X.f32_div(f32(240.0), f32(224.0))
    contract = R.ds_mla_unpack(R.mla_ds_fp8kv(bf16(vals), np.zeros(64, np.uint16),
                                              fmt=X.E4M3FNUZ, divisor=224.0))
    assert contract[0] == codes and contract[1] == scales
    default = R.ds_mla_unpack(R.mla_ds_fp8kv(bf16(vals), np.zeros(64, np.uint16), fmt=X.E4M3FNUZ))
    assert default[1][0] == X.f32_div(f32(224.0), f32(240.0))   # divisor 240 by default


def test_ds_mla_rejects_other_shapes():
    with pytest.raises(ValueError):
        R.mla_ds_vllm(np.zeros(256, np.uint16), np.zeros(64, np.uint16))
    with pytest.raises(ValueError):
        R.mla_ds_vllm(np.zeros(512, np.uint32), np.zeros(64, np.uint16), dtype="f32")


# ---- MLA: plain -------------------------------------------------------------

def test_mla_plain_vllm():
    kv, pe = bf16([1.0, -300.0, 2.0 ** -8, NAN]), bf16([3.0, -INF])
    got = R.mla_plain_vllm(kv, pe, "bf16", "fp8_e4m3", f32(0.5)).tolist()
    assert got == [0x40, 0xFE, 0x04, 0x7F, 0x4C, 0xFE]         # RoPE part quantized too
    assert R.mla_plain_vllm(kv, pe, "bf16", "fp8_e5m2", f32(0.5))[1] == 0xE1   # -600
    raw = R.mla_plain_vllm(kv, pe, "bf16", "auto", f32(0.5))
    assert raw.view("<u2").tolist() == kv.tolist() + pe.tolist()


def test_mla_plain_aiter_multiplies_by_the_reciprocal():
    """aiter quantizes x * RN(1/s); vLLM divides.  A found case: s = fp32(1.7),
    x = bf16 0x3CCC: RN(x / s) rounds to code 8, RN(x * RN(1/s)) to 7."""
    s, kv = f32(1.7), np.array([0x3CCC], dtype=np.uint16)
    pe = bf16([1.0])
    assert R.mla_plain_vllm(kv, pe, "bf16", "fp8_e4m3", s)[0] == 8
    assert R.mla_plain_aiter(kv, pe, "bf16", s, "gfx950")[0] == 7
    assert R.mla_plain_aiter(bf16([300.0]), pe, "bf16", f32(1.0), "gfx942")[0] == 0x7F  # 240
    with pytest.raises(ValueError):
        R.mla_plain_aiter(bf16([NAN]), pe, "bf16", s, "gfx942")


# ---- NVFP4 --------------------------------------------------------------------

BLOCK = [6.0, 3.0, 1.5, 0.75, -0.25, -1.25, 5.0, 0.5, 0.0, -0.0, 1.0, -4.0, 2.5, 3.5, -6.0, 2.0]
BLOCK_CODES = [0x7, 0x5, 0x3, 0x2, 0x8, 0xA, 0x6, 0x1, 0x0, 0x8, 0x2, 0xE, 0x4, 0x6, 0xF, 0x4]


def test_nvfp4_hand_block_all_engines():
    """amax 6 with global scale 1: block scale 1.0 (e4m3 0x38) and the e2m1
    codes of the values themselves, ties to even, -0 kept."""
    x = bf16(BLOCK)
    want = X.pack_e2m1(BLOCK_CODES).tolist()
    for data, sf in (R.nvfp4_flashinfer(x, "bf16", f32(1.0)), R.nvfp4_trtllm(x, "bf16", f32(1.0)),
                     R.nvfp4_vllm(x, "bf16", f32(1.0)), R.nvfp4_fp8kv(x, "bf16", f32(1.0))):
        assert sf == 0x38 and data.tolist() == want


def test_nvfp4_global_scale_direction():
    """FlashInfer and vLLM take the decode-direction scale, TensorRT-LLM the
    encode-direction one: g = 4 for FlashInfer is g_enc = 1/4 for TRT-LLM."""
    x = bf16([v * 4 for v in BLOCK])
    fi = R.nvfp4_flashinfer(x, "bf16", f32(4.0))
    assert fi[1] == 0x38 and fi[0].tolist() == X.pack_e2m1(BLOCK_CODES).tolist()
    vl = R.nvfp4_vllm(x, "bf16", f32(4.0))
    assert vl[1] == fi[1] and vl[0].tolist() == fi[0].tolist()
    trt = R.nvfp4_trtllm(x, "bf16", f32(0.25))
    assert trt[1] == fi[1] and trt[0].tolist() == fi[0].tolist()
    wrong = R.nvfp4_trtllm(x, "bf16", f32(4.0))                # the direction confused
    assert wrong[1] != fi[1]


def test_nvfp4_underflowed_block_scale():
    """amax 2^-14 with g = 1: amax / 6 is below half the smallest e4m3
    subnormal (2^-10), so the block scale is 0.  FlashInfer and vLLM then
    write +-0; TRT-LLM's os = rcp(0) = Inf: +-6, and its zeros NaN, code 7."""
    x = bf16([2.0 ** -14, -2.0 ** -15, 0.0] + [0.0] * 13)
    for fn in (R.nvfp4_flashinfer, R.nvfp4_vllm, R.nvfp4_fp8kv):
        data, sf = fn(x, "bf16", f32(1.0))
        assert sf == 0 and X.unpack_e2m1(data)[:3] == [0x0, 0x8, 0x0]
    data, sf = R.nvfp4_trtllm(x, "bf16", f32(1.0))
    assert sf == 0 and X.unpack_e2m1(data)[:3] == [0x7, 0xF, 0x7]


def test_nvfp4_nan_and_inf_elements():
    x = bf16([NAN, 1.0, -6.0] + [0.5] * 13)
    assert X.unpack_e2m1(R.nvfp4_flashinfer(x, "bf16", f32(1.0))[0])[:3] == [0x0, 0x2, 0xF]
    assert X.unpack_e2m1(R.nvfp4_trtllm(x, "bf16", f32(1.0))[0])[:3] == [0x7, 0x2, 0xF]
    assert X.unpack_e2m1(R.nvfp4_vllm(x, "bf16", f32(1.0))[0])[:3] == [0x7, 0x2, 0xF]
    assert X.unpack_e2m1(R.nvfp4_fp8kv(x, "bf16", f32(1.0))[0])[:3] == [0x0, 0x2, 0xF]
    y = bf16([INF, 1.0, -6.0] + [0.5] * 13)
    data, sf = R.nvfp4_flashinfer(y, "bf16", f32(1.0))       # Inf takes the amax
    assert sf == 0x7E and X.unpack_e2m1(data)[:3] == [0x7, 0x0, 0x8]
    data, sf = R.nvfp4_fp8kv(y, "bf16", f32(1.0))            # Inf ignored, saturates
    assert sf == 0x38 and X.unpack_e2m1(data)[:3] == [0x7, 0x2, 0xF]


def test_nvfp4_flashinfer_equals_contract_on_finite(rng):
    for k in range(60):
        x = random_bf16(rng, 16, scale=10.0 ** rng.integers(-3, 4))
        g = f32(float(rng.uniform(0.01, 100)))
        assert R.nvfp4_flashinfer(x, "bf16", g)[0].tolist() == R.nvfp4_fp8kv(x, "bf16", g)[0].tolist()
        assert R.nvfp4_flashinfer(x, "bf16", g)[1] == R.nvfp4_fp8kv(x, "bf16", g)[1]


def test_nvfp4_block_scale_saturates():
    """An amax far above 6 g saturates the e4m3 block scale at 448."""
    x = bf16([1e6] + [1.0] * 15)
    assert R.nvfp4_flashinfer(x, "bf16", f32(1.0))[1] == 0x7E


# ---- E8M0 scale rules ------------------------------------------------------------

def test_e8m0_ocp_floor_examples():
    # MXFP4 (emax 2): amax 6 -> 2^0; 7 -> 2^0 (7/1 saturates to 6); 8 -> 2^1
    assert [R.e8m0_floor_ocp(f32(a), 2) for a in (6.0, 7.0, 8.0, 0.75)] == [127, 127, 128, 124]
    # MXFP8 e4m3 (emax 8): 448 -> 2^0, 512 -> 2^1
    assert [R.e8m0_floor_ocp(f32(a), 8) for a in (448.0, 449.0, 512.0)] == [127, 127, 128]
    assert R.e8m0_floor_ocp(0, 2) == 0 and R.e8m0_floor_ocp(0x00000400, 2) == 0
    assert R.e8m0_floor_ocp(X.F32_INF, 8) == 255 and R.e8m0_floor_ocp(X.QNAN, 8) == 255
    assert R.e8m0_floor_ocp(X.F32_MAX, 2) == 252


def test_e8m0_rceil_exact_examples():
    assert [R.e8m0_rceil_exact(f32(a), 6) for a in (6.0, 7.0, 12.0, 12.5, 1.5)] == [
        127, 128, 128, 129, 125]
    assert R.e8m0_rceil_exact(f32(448.0), 448) == 127 and R.e8m0_rceil_exact(f32(449.0), 448) == 128
    assert R.e8m0_rceil_exact(0, 6) == 0 and R.e8m0_rceil_exact(X.F32_INF, 6) == 255


@pytest.mark.parametrize("maxv,emax,sig", [(6, 2, Fraction(3, 2)), (448, 8, Fraction(7, 4)),
                                           (57344, 15, Fraction(7, 4))])
def test_floor_and_rceil_coincide_below_the_max_significand(maxv, emax, sig):
    """For normal amax = m * 2^k, OCP floor gives 2^(k - emax) and exact rceil
    2^ceil(log2(amax / max)): equal when m <= max's significand, rceil one
    higher above it.  Every positive normal bf16 amax away from the clamps."""
    for h in range(0x0D00, 0x7300):
        a = h << 16
        m = X.magnitude(a) / X.pow2(X.floor_log2(X.magnitude(a)))
        fl, rc = R.e8m0_floor_ocp(a, emax), R.e8m0_rceil_exact(a, maxv)
        assert rc == (fl if m <= sig else fl + 1), hex(a)


@pytest.mark.parametrize("maxv", [6, 448, 240, 57344])
def test_product_rceil_equals_exact_rceil(maxv):
    """Engines form amax * RN(1 / max) and round it up to a power of two; for
    a normal quotient that is the exact rceil.  Checked on every bf16 amax
    and, in fp32, at the only places it could fail: a few ulps either side of
    max * 2^k, for every k with a normal quotient."""
    r = X.f32_of_double(1.0 / maxv)
    cases = [h << 16 for h in range(0x0100, 0x7F00)]
    base = X.f32_const(float(maxv))
    for k in range(-120, 110):
        c = X.f32_mul(base, X.f32_const(2.0 ** k))
        if X.is_finite(c + 3):
            cases += [c + d for d in range(-3, 4)]
    for a in cases:
        p = X.f32_mul(a, r)
        if X.magnitude(p) < X.magnitude(FLT_MIN):
            continue
        assert R.e8m0_rp(p, satfinite=False) == R.e8m0_rceil_exact(a, maxv), hex(a)


def test_rceil_edges_nvidia_torchao_aiter():
    """Subnormal quotients: NVIDIA (and torchao) round up only above 2^-127,
    aiter for any mantissa.  Inf: 254 with satfinite, else 255."""
    for u, nv, aiter in ((0x00400000, 0, 1), (0x00400001, 1, 1), (0x00080000, 0, 1),
                         (0, 0, 0), (0x00800000, 1, 1), (0x00800001, 2, 2)):
        assert R.e8m0_rp(u, satfinite=False) == nv and R.e8m0_rp(u, satfinite=True) == nv
        assert R.e8m0_rceil_aiter(u) == aiter
    assert R.e8m0_rp(X.F32_INF, True) == 254 and R.e8m0_rp(X.F32_INF, False) == 255
    assert R.e8m0_rp(X.QNAN, True) == 255 and R.e8m0_rceil_aiter(X.F32_INF) == 255
    assert R.e8m0_rp(0x7F000001, True) == 254 and R.e8m0_rp(0x7F000001, False) == 255
    assert R.e8m0_rp(0x7F000000, False) == 254


def test_even_rule():
    """aiter's "even" (Quark, torchao EVEN): amax rounded at mantissa bit
    22 - mbits before the floor.  MXFP4: significand >= 1.75 moves up a
    binade.  C++ and Triton agree on finite amax, not on Inf."""
    assert [R.e8m0_even_aiter_triton(f32(a)) for a in (6.0, 7.0, 6.99, 8.0, 0.0)] == [
        127, 128, 127, 128, 0]
    for h in range(0x0100, 0x7F60):
        a = h << 16
        tri = R.e8m0_even_aiter_triton(a)
        assert tri == R.e8m0_even_aiter_cpp(a, 2, 1), hex(a)
        m = X.magnitude(a) / X.pow2(X.floor_log2(X.magnitude(a)))
        assert tri == R.e8m0_floor_ocp(a, 2) + (1 if m >= Fraction(7, 4) else 0), hex(a)
    top = X.f32_const(1.75 * 2.0 ** 127)                         # rounds to 2^128
    assert R.e8m0_even_aiter_triton(top) == 254 and R.e8m0_even_aiter_cpp(top, 2, 1) == 253
    assert R.e8m0_even_aiter_triton(X.F32_INF) == 254 and R.e8m0_even_aiter_cpp(X.F32_INF, 2, 1) == 253
    assert R.e8m0_even_aiter_cpp(X.QNAN, 8, 3) == 247 and R.e8m0_even_aiter_cpp(X.GPU_NAN, 2, 1) == 0
    assert R.e8m0_even_aiter_triton(X.QNAN) == 254


def test_aiter_triton_mxfp8_is_rceil_but_at_448_times_powers_of_two():
    for h in range(0x0500, 0x7F00):
        a = h << 16
        m = X.magnitude(a) / X.pow2(X.floor_log2(X.magnitude(a)))
        want = R.e8m0_rceil_exact(a, 448) + (1 if m == Fraction(7, 4) else 0)
        assert R.e8m0_aiter_triton_mxfp8(a) == want, hex(a)
    assert R.e8m0_aiter_triton_mxfp8(f32(448.0)) == 128 and R.e8m0_rceil_exact(f32(448.0), 448) == 127


# ---- MX groups --------------------------------------------------------------

MXFP4_VALUES = [7.0, 1.0, 0.3, -2.5] + [0.0] * 28


def test_mxfp4_floor_rceil_even():
    x = bf16(MXFP4_VALUES)
    data, byte = R.mx_floor_ocp(x, "bf16", "e2m1")            # scale 1: 7 saturates to 6
    assert byte == 127 and X.unpack_e2m1(data)[:4] == [0x7, 0x2, 0x1, 0xC]
    for data, byte in (R.mx_rceil_torchao(x, "bf16", "e2m1"), R.mx_even_aiter_triton(x, "bf16"),
                       R.mx_rceil_nvidia(x, "bf16", "e2m1")):
        # scale 2: 3.5 ties to 4, 0.5, 0.15 to 0, -1.25 ties to -1
        assert byte == 128 and X.unpack_e2m1(data)[:4] == [0x6, 0x1, 0x0, 0xA]


def test_mxfp8_rules():
    vals = [448.0, -1.0, 3.0, 0.0] + [0.5] * 28
    x = bf16(vals)
    for data, byte in (R.mx_floor_ocp(x, "bf16", "e4m3fn"), R.mx_rceil_torchao(x, "bf16", "e4m3fn"),
                       R.mx_rceil_nvidia(x, "bf16", "e4m3fn")):
        assert byte == 127 and data[:4].tolist() == [0x7E, 0xB8, 0x44, 0x00]
    big = bf16([500.0] + [1.0] * 31)                        # 500 = 1.95 * 2^8
    fl, rc = R.mx_floor_ocp(big, "bf16", "e4m3fn"), R.mx_rceil_torchao(big, "bf16", "e4m3fn")
    assert fl[1] == 127 and fl[0][0] == 0x7E                 # floor clips 500 to 448
    assert rc[1] == 128 and rc[0][0] == 0x78                 # rceil: 250 -> 256


def test_mx_special_groups():
    zeros = bf16([0.0] * 31 + [-0.0])
    data, byte = R.mx_floor_ocp(zeros, "bf16", "e2m1")
    assert byte == 0 and X.unpack_e2m1(data)[-1] == 0x8
    data, byte = R.mx_rceil_nvidia(zeros, "bf16", "e4m3fn")
    assert byte == 0 and data[-1] == 0x80
    nan = bf16([NAN] + [1.0] * 31)
    data, byte = R.mx_floor_ocp(nan, "bf16", "e2m1")           # the whole group NaN
    assert byte == 255 and X.unpack_e2m1(data) == [0x4] * 32  # GPU NaN's leftover bits
    data, byte = R.mx_floor_ocp(nan, "bf16", "e2m1", nan_bits=X.QNAN)
    assert X.unpack_e2m1(data) == [0x3] * 32
    data, byte = R.mx_floor_ocp(nan, "bf16", "e4m3fn")
    assert byte == 255 and data.tolist() == [0x7F] * 32
    data, byte = R.mx_rceil_nvidia(nan, "bf16", "e4m3fn")      # NaN ignored by __hmax
    assert byte == 119 and data[0] == 0x7F and data[1] == 0x78     # 1 / 2^-8 = 256
    data, byte = R.mx_even_aiter_triton(nan, "bf16")
    assert byte == 125 and X.unpack_e2m1(data)[:2] == [0x3, 0x6]
    inf = bf16([INF] + [1.0] * 31)
    data, byte = R.mx_rceil_nvidia(inf, "bf16", "e4m3fn")      # 254, os flushed to 0
    assert byte == 254 and data[0] == 0x7F and data[1] == 0x00
    assert R.mx_floor_ocp(inf, "bf16", "e4m3fn")[1] == 255
    assert R.mx_rceil_torchao(inf, "bf16", "e4m3fn")[1] == 255
    assert R.mx_even_aiter_triton(inf, "bf16")[1] == 254


def test_mx_floor_equals_rceil_when_significands_allow(rng):
    """Groups whose amax significand is at most 1.75 (MXFP8) or 1.5 (MXFP4):
    floor and rceil give the same bytes, scale and elements."""
    for elem, sig in (("e4m3fn", 1.75), ("e2m1", 1.5)):
        n = 0
        while n < 20:
            x = random_bf16(rng, 32, scale=10.0 ** rng.integers(-4, 4))
            xs = X.widen(x, "bf16")
            a = X.magnitude(R.amax_finite(xs))
            if a == 0 or a / X.pow2(X.floor_log2(a)) > Fraction(sig):
                continue
            n += 1
            fl, rc = R.mx_floor_ocp(x, "bf16", elem), R.mx_rceil_torchao(x, "bf16", elem)
            assert fl[1] == rc[1] and fl[0].tolist() == rc[0].tolist()


# ---- INT8 --------------------------------------------------------------------

def test_int8_rounding_rules():
    x = bf16([127.0, 2.5, 2.75, -2.75, -0.5, 0.5, 1.5, -127.0])
    q, s = R.int8_rne(x, "bf16")
    assert s == 0x3F800000 and q.tolist() == [127, 2, 3, -3, 0, 0, 2, -127]
    q, s = R.int8_vllm_trunc(x, "bf16")
    assert s == 0x3F800000 and q.tolist() == [127, 2, 2, -2, 0, 0, 1, -127]
    q, s = R.int8_rne(x, "bf16", rounding="trunc")
    assert q.tolist() == [127, 2, 2, -2, 0, 0, 1, -127]


def test_int8_specials_and_floor():
    q, s = R.int8_rne(bf16([0.0] * 8), "bf16")
    assert s == FLT_MIN and q.tolist() == [0] * 8
    q, s = R.int8_vllm_trunc(bf16([0.0] * 8), "bf16")
    assert s == R.INT8_VLLM_FLOOR == 0x358637BD
    x = bf16([NAN, INF, -INF, 127.0, 1.0])
    q, s = R.int8_rne(x, "bf16")
    assert s == 0x3F800000 and q.tolist() == [0, 127, -127, 127, 1]
    q, s = R.int8_vllm_trunc(x, "bf16")                        # Inf takes the scale
    assert s == X.F32_INF and q.tolist() == [0, 0, 0, 0, 0]


def test_int8_rne_and_trunc_agree_on_integers(rng):
    """With truncation and round-to-nearest, a row of integer multiples of
    the scale gives the same codes; elsewhere they differ, never by more
    than one."""
    for k in range(20):
        x = random_bf16(rng, 64, scale=float(rng.uniform(0.1, 100)))
        a, _ = R.int8_rne(x, "bf16")
        b, _ = R.int8_vllm_trunc(x, "bf16")
        assert np.all(np.abs(a.astype(int) - b.astype(int)) <= 1)


# ---- layouts -------------------------------------------------------------------

@pytest.mark.parametrize("scale_dim", [4, 8, 16])
def test_v_scale_swizzle_is_two_level_strides(scale_dim):
    """vLLM's (and TRT-LLM's, FlashInfer's) 4-token V-scale interleave is a
    sum of per-index terms with tokens split by 4 and groups by scale_dim / 4:
    strides (4 S, 1) for the token halves and (S, 4) for the group halves;
    and a permutation of the tile."""
    page = 16
    seen = set()
    for t in range(page):
        for s in range(scale_dim):
            o = R.v_scale_swizzle_offset(t, s, scale_dim)
            assert o == R.two_level_offset(t, s, 4, 4 * scale_dim, 1, scale_dim // 4, scale_dim, 4)
            assert o == (t // 4) * 4 * scale_dim + s * 4 + t % 4      # FlashInfer's statement
            seen.add(o)
    assert seen == set(range(page * scale_dim))


def test_catalogue_is_complete():
    names = {"nvfp4_flashinfer", "nvfp4_trtllm", "mx_floor_ocp", "mx_rceil_nvidia",
             "mx_even_aiter_triton", "int8_vllm_trunc", "int8_rne", "mla_ds_vllm", "mla_plain_vllm"}
    assert names <= set(R.RECIPES)
    for name, rec in R.RECIPES.items():
        assert callable(rec.fn) and rec.exact and rec.source, name


# ---- identification: a few probes tell every recipe of a family apart ----

def _nvfp4_probes():
    return [bf16(BLOCK), bf16([NAN, 1.0, -6.0] + [0.5] * 13), bf16([INF] + [1.0] * 15),
            bf16([2.0 ** -14, -2.0 ** -15] + [0.0] * 14)]


def _mx_probes():
    return [bf16(MXFP4_VALUES), bf16([1.6] + [0.5] * 31), bf16([INF] + [1.0] * 31),
            bf16([NAN] + [1.0] * 31)]


FAMILIES = {
    "nvfp4": (["nvfp4_flashinfer", "nvfp4_trtllm", "nvfp4_vllm", "nvfp4_fp8kv"],
              lambda name, x: R.RECIPES[name].fn(x, "bf16", f32(1.0)), _nvfp4_probes),
    "mx": (["mx_floor_ocp", "mx_rceil_torchao", "mx_rceil_nvidia", "mx_even_aiter_triton"],
           lambda name, x: (R.RECIPES[name].fn(x, "bf16") if name == "mx_even_aiter_triton"
                            else R.RECIPES[name].fn(x, "bf16", "e2m1")), _mx_probes),
    "int8": (["int8_rne", "int8_vllm_trunc"], lambda name, x: R.RECIPES[name].fn(x, "bf16"),
             lambda: [bf16([127.0, 2.75, -2.75, 0.5])]),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_probes_tell_recipes_apart(family):
    """conform's identification needs inputs on which every two recipes of a
    family write different bytes: these probes are enough."""
    names, run, probes = FAMILIES[family]
    out = {n: [repr(tuple(np.asarray(part).tolist() if hasattr(part, "tolist") else part
                          for part in run(n, p))) for p in probes()] for n in names}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert out[a] != out[b], (a, b)


def test_mla_probes_tell_recipes_apart():
    kv, pe = ds_inputs()
    assert R.mla_ds_vllm(kv, pe).tolist() != R.mla_ds_fp8kv(kv, pe).tolist()
    s, x = f32(1.7), np.array([0x3CCC], dtype=np.uint16)
    assert (R.mla_plain_vllm(x, x, "bf16", "fp8_e4m3", s).tolist()
            != R.mla_plain_aiter(x, x, "bf16", s, "gfx950").tolist())
