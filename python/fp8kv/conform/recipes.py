# SPDX-License-Identifier: MIT
"""conform's own models of the block-scaled recipes: what a writer that
follows one engine's recipe writes for a batch of groups (numpy, vectorised).

Each model takes the groups' inputs widened to fp32, x [n, G], and returns
(codes [n, G] uint8, one code per element, unpacked; scales [n], the scale
as stored: uint8 for E8M0 and e4m3 scales, fp32 bits as uint32 otherwise).
The rules are those docs/recipes.md records from the engines' sources; each
model names the source it follows.  fp8kv's own rules (include/fp8kv.h
section 8) are modelled too, so that a variant can be built from them, but
the referee takes fp8kv's bytes from the golden path (fp8kv.conform.groups).

Approximate reciprocals (rcp.approx, fast-math division) cannot be
reproduced on a CPU: every reciprocal and division a model performs goes
through _rcp/_div with a nudge of d ulp (d = 0: IEEE), and the referee names
"approximate reciprocal" when some nudges of at most one ulp give the bytes
and none of 0 does (python/README.md, conform).
"""

import numpy as np

from .models import encode, quotient

F32 = np.float32
SIGN = np.uint32(0x80000000)
FLT_MIN = F32(2.0 ** -126)
EMAX = {"e4m3fn": 8, "e4m3fnuz": 7, "e5m2": 15, "e5m2fnuz": 15, "e2m1": 2}
MAXV = {"e4m3fn": 448.0, "e4m3fnuz": 240.0, "e5m2": 57344.0, "e5m2fnuz": 57344.0,
        "e2m1": 6.0, "int8": 127.0}
MBITS = {"e4m3fn": 3, "e4m3fnuz": 3, "e5m2": 2, "e5m2fnuz": 2, "e2m1": 1}
E2M1_MAG = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], F32)
_E2M1_MID = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0], F32)


def bits(x):
    return np.ascontiguousarray(x, dtype=F32).view(np.uint32)


def from_bits(u):
    return np.ascontiguousarray(u, dtype=np.uint32).view(F32)


def nudge(v, d):
    """v's magnitude moved by d fp32 ulps (d an int or an array; larger for
    d > 0), as an approximate reciprocal or quotient errs; NaN, Inf and
    zero unchanged."""
    v = np.asarray(v, F32)
    if np.all(np.asarray(d) == 0):
        return v
    d = np.broadcast_to(np.asarray(d, np.int64), v.shape)
    u = bits(v).astype(np.int64)
    mag = u & 0x7FFFFFFF
    neg = (u >> 31) & 1
    out = np.clip(mag + d, 0, 0x7F7FFFFF)
    keep = ~np.isfinite(v) | (v == 0)
    res = np.where(keep, u, out | (neg << 31)).astype(np.uint32)
    return from_bits(res).reshape(v.shape)


def _rcp(v, d=0):
    """RN(1 / v), nudged by d ulp (an approximate reciprocal when d != 0)."""
    with np.errstate(all="ignore"):
        r = (F32(1) / np.asarray(v, F32)).astype(F32)
    return nudge(r, d)


def _mul(a, b):
    with np.errstate(all="ignore"):
        return (np.asarray(a, F32) * np.asarray(b, F32)).astype(F32)


def _div(a, b, d=0):
    with np.errstate(all="ignore"):
        return nudge((np.asarray(a, F32) / np.asarray(b, F32)).astype(F32), d)


# ---- element encoders -------------------------------------------------------

def e2m1(y, nan=0x0, ties="even"):
    """e2m1 codes of fp32 values (include/fp8kv.h 5b): nearest, ties to the
    even code (ties="away": away from zero), +-Inf and overflow to +-6, the
    sign kept on zeros; NaN gives `nan` (0x0 in fp8kv and FlashInfer, 0x7
    from cvt.rn.satfinite.e2m1x2: vLLM, TRT-LLM)."""
    y = np.asarray(y, F32)
    a = np.abs(y)
    code = np.zeros(y.shape, np.uint8)
    for i, m in enumerate(_E2M1_MID):
        up = (a > m) | ((a == m) & (((i + 1) % 2 == 0) if ties == "even" else True))
        code += up.astype(np.uint8)
    code |= np.where(np.signbit(y), 8, 0).astype(np.uint8)
    return np.where(np.isnan(y), np.uint8(nan), code).astype(np.uint8)


def e2m1_value(code):
    code = np.asarray(code, np.uint8)
    v = E2M1_MAG[code & 7]
    return np.where(code & 8, -v, v).astype(F32)


def int8(y, rounding="nearest_even", ties="even"):
    """int8 codes (5c) as uint8 bytes: nearest even or toward zero, beyond
    +-127 and +-Inf to +-127, NaN to 0."""
    y = np.asarray(y, F32).astype(np.float64)
    with np.errstate(all="ignore"):
        if rounding == "toward_zero":
            r = np.trunc(y)
        elif ties == "away":
            r = np.sign(y) * np.floor(np.abs(y) + 0.5)
        else:
            r = np.rint(y)
        r = np.clip(np.nan_to_num(r, nan=0.0, posinf=127, neginf=-127), -127, 127)
    return r.astype(np.int8).view(np.uint8)


def fp8(y, fmt, overflow="saturate", nan=None):
    """FP8 codes by the CPU backend; nan=0x7F: NaN stored positive, as
    cvt.rn.satfinite (NVIDIA)."""
    out = encode(np.asarray(y, F32).reshape(-1), fmt, overflow).reshape(np.shape(y))
    if nan is not None:
        out = np.where(np.isnan(np.asarray(y, F32)), np.uint8(nan), out).astype(np.uint8)
    return out


def fp8_value(codes, fmt):
    from .. import dequantize
    c = np.ascontiguousarray(codes, np.uint8)
    out = np.empty(c.shape, F32)
    if c.size:
        dequantize(c.reshape(-1), out.reshape(-1), format=fmt)
    return out


def element(y, fmt, overflow="saturate", rounding="nearest_even", ties="even", nan=None):
    if fmt == "e2m1":
        return e2m1(y, 0x0 if nan is None else nan, ties)
    if fmt == "int8":
        return int8(y, rounding, ties)
    return fp8(y, fmt, overflow, nan)


# ---- amax -------------------------------------------------------------------

def amax_finite(x):
    """fp8kv: max |x| over finite elements, 0 when none is."""
    a = np.abs(np.where(np.isfinite(x), x, F32(0)))
    return a.max(axis=1).astype(F32)


def amax_fmaxf(x):
    """CUDA fmaxf / __hmax folds: NaN ignored, Inf counts (FlashInfer
    page.cuh nvfp4 append, TRT-LLM cvt_warp_fp16_to_fp4)."""
    a = np.abs(np.where(np.isnan(x), F32(0), x))
    return a.max(axis=1).astype(F32)


# ---- E8M0 (MXFP8, MXFP4) ----------------------------------------------------

def e8m0_floor(amax, fmt):
    """OCP MX v1.0 / torchao FLOOR: exponent field of amax minus emax, at
    least 0 (fp8kv FP8KV_GROUP_E8M0_FLOOR)."""
    e = (bits(amax) >> 23) & 0xFF
    return np.clip(e.astype(np.int64) - EMAX[fmt], 0, 254).astype(np.uint8)


def e8m0_rceil(amax, fmt, inf_byte=254):
    """The least k with max * 2^k >= amax, exactly, byte 127 + k within
    [0, 254] (fp8kv FP8KV_GROUP_E8M0_RCEIL; NVIDIA cvt.rp.satfinite.ue8m0x2,
    cuda_fp8.hpp host emulation; aiter RoundUp).  An Inf amax (only reached
    by an amax that counts Inf) gives inf_byte: 254 satfinite (NVIDIA),
    255 (torchao RCEIL, aiter)."""
    a = np.asarray(amax, np.float64)
    mx = MAXV[fmt]
    fin = np.isfinite(a) & (a > 0)
    with np.errstate(all="ignore"):
        k = np.where(fin, np.ceil(np.log2(np.where(fin, a, 1.0) / mx)), 0).astype(np.int64)
    for _ in range(2):   # log2 may be off by one near powers of two
        k = np.where(fin & (np.ldexp(mx, k - 1) >= a), k - 1, k)
        k = np.where(fin & (np.ldexp(mx, k) < a), k + 1, k)
    b = np.clip(127 + k, 0, 254)
    b = np.where(a == 0, 0, b)
    b = np.where(np.isinf(a), inf_byte, b)
    return b.astype(np.uint8)


def e8m0_even(amax, fmt):
    """aiter's "even" (Quark; aiter Triton _mxfp4_quant_op, C++ Even): the
    floor rule after adding 2^(22 - mbits) to amax's bits (docs/recipes.md
    4.1)."""
    u = bits(amax).astype(np.int64) + (1 << (22 - MBITS[fmt]))
    e = (u >> 23) & 0xFF
    return np.clip(e - EMAX[fmt], 0, 254).astype(np.uint8)


def e8m0_value(b):
    b = np.asarray(b, np.int64)
    return np.ldexp(np.float64(1), b - 127).astype(F32)


def mx_recipe(rule):
    def model(x, fmt, overflow="saturate", delta=(), nan=None, ties="even", **_):
        amax = amax_finite(x)
        b = {"floor": e8m0_floor, "rceil": e8m0_rceil, "even": e8m0_even}[rule](amax, fmt)
        s = e8m0_value(b)[:, None]
        codes = element(quotient(x, s), fmt, overflow, nan=nan, ties=ties)
        return codes, b
    return model


# ---- NVFP4 ------------------------------------------------------------------

def _e4m3(v, sat=True):
    c = fp8(np.asarray(v, F32), "e4m3fn", "saturate" if sat else "nonsaturating")
    return c, fp8_value(c, "e4m3fn")


def _zero_codes(x, nan):
    return np.where(np.isnan(x), np.uint8(nan),
                    np.where(np.signbit(x), 8, 0)).astype(np.uint8)


def nvfp4_fp8kv(x, g, delta=(0, 0), sat=True, nan=0x0, ties="even", **_):
    """fp8kv FP8KV_GROUP_NVFP4 (include/fp8kv.h section 8): decode g,
    sf = e4m3(RN(amax / RN(6 g))), s = RN(sf g), codes e2m1(x / s)."""
    g = F32(g)
    amax = amax_finite(x)
    ok = np.bool_(np.isfinite(g) and g > 0)
    d = _mul(F32(6), g)
    sfc, sf = _e4m3(_div(amax, d, delta[0] if delta else 0), sat)
    s = _mul(sf, g)
    codes = e2m1(_div(x, s[:, None], delta[1] if len(delta) > 1 else 0), nan, ties)
    dead = (~ok) | (sf == 0) | (s == 0)
    codes = np.where(dead[:, None], _zero_codes(x, 0x0 if nan == 0x0 else nan), codes)
    sfc = np.where(ok, sfc, 0).astype(np.uint8)
    return codes.astype(np.uint8), sfc


def nvfp4_flashinfer(x, g, delta=(0, 0, 0), sat=True, nan=0x0, ties="even", **_):
    """FlashInfer nvfp4_quantize_append_paged_kv_cache (page.cuh 312-342):
    amax an fmaxf fold from 0 (Inf counts), sf = e4m3 satfinite(amax / (6 g))
    when amax > 0, os = 1 / (sf g) when sf > 0, codes = e2m1(x * os), NaN
    0x0.  Built with -use_fast_math: its divisions are approximate."""
    g = F32(g)
    amax = amax_fmaxf(x)
    sfv = _div(amax, _mul(F32(6), g), delta[0] if delta else 0)
    sfc, sf = _e4m3(np.where(amax > 0, sfv, F32(0)), sat)
    os_ = np.where((amax > 0) & (sf > 0), _rcp(_mul(sf, g), delta[1] if len(delta) > 1 else 0),
                   F32(0)).astype(F32)
    codes = e2m1(_mul(x, os_[:, None]), nan, ties)
    return codes, sfc


def _nvfp4_trt(x, g_enc, delta, sat, nan, ties, zero_test):
    d = tuple(delta) + (0, 0, 0, 0)
    amax = amax_fmaxf(x)
    sfv = _mul(g_enc, _mul(amax, _rcp(F32(6), d[0])))
    sfc, sf = _e4m3(sfv, sat)
    live = (amax != 0) if zero_test == "amax" else (sf != 0)
    os_ = np.where(live, _rcp(_mul(sf, _rcp(g_enc, d[1])), d[2]), F32(0)).astype(F32)
    codes = e2m1(_mul(x, os_[:, None]), nan, ties)
    return codes, sfc


def nvfp4_trtllm(x, g, delta=(), sat=True, nan=0x7, ties="even", **_):
    """TensorRT-LLM quantizeAndWriteFP4KVCache / cvt_warp_fp16_to_fp4
    (quantization.cuh): g read as an ENCODE-direction global scale,
    SF = RN(g RN(amax rcp(6))), os = rcp(RN(sf rcp(g))) unless amax == 0
    (an underflowed sf gives os = Inf: +-6, zeros NaN 0x7), codes by
    cvt.rn.satfinite.e2m1x2 (NaN 0x7).  rcp is rcp.approx.ftz."""
    return _nvfp4_trt(x, F32(g), delta, sat, nan, ties, "amax")


def nvfp4_vllm(x, g, delta=(), sat=True, nan=0x7, ties="even", **_):
    """vLLM reshape_and_cache_flash "nvfp4" (nvfp4_kv_cache_kernels.cu,
    nvfp4_utils.cuh): decode g, g_enc = RN(1 / g), then TRT-LLM's
    arithmetic, but the zero test is on the rounded sf (an underflowed
    block writes +-0)."""
    d = tuple(delta) + (0, 0, 0, 0)
    return _nvfp4_trt(x, _rcp(F32(g), d[3]), d[:3], sat, nan, ties, "sf")


# ---- fp32 scales: int8 per (token, head), FP8 tiles -------------------------

def f32_recipe(amax_fn, recip, rounding, floor_override=None):
    def model(x, fmt, divisor=0.0, scale_floor=0.0, overflow="saturate", delta=(),
              nan=None, ties="even", **_):
        d = tuple(delta) + (0, 0)
        D = F32(divisor or MAXV[fmt])
        floor = F32(floor_override if floor_override is not None else
                    (scale_floor or 2.0 ** -126))
        s = np.fmax(_div(amax_fn(x), D, d[0]), floor).astype(F32)
        y = _mul(x, _rcp(s, d[1])[:, None]) if recip else \
            nudge(quotient(x, s[:, None]), d[1])
        return element(y, fmt, overflow, rounding, ties, nan), bits(s)
    return model


def int8_vllm_amax(x):
    """tl.max(|x|) in vLLM's Triton per-token-head writer: Inf counts (NaN
    modelled as ignored, docs/recipes.md 5)."""
    return amax_fmaxf(x)


# ---- engine MX variants (MXFP8) --------------------------------------------

def _fp8_gpu(y, fmt, overflow):
    """FP8 codes where a NaN is the GPU's positive NaN (code 0x7F)."""
    return fp8(y, fmt, overflow, nan=0x7F)


def _torchao_e2m1(y):
    """torchao's f32_to_f4_unpacked (custom_fp_utils.py
    _f32_to_floatx_unpacked, ebits 2, mbits 1) restated in numpy: the sign
    bit set aside; |y| >= 6 (Inf too) gives 7; |y| < 1 is rounded by an fp32
    add of 2^22 (ties to even); else the fp32 bits are rebiased and rounded
    to one mantissa bit by an integer add.  A NaN fails both range tests and
    takes the integer path: the GPU's NaN 0x7FFFFFFF gives code 4 (the value
    2), which is what torchao writes for a group holding a NaN or an Inf."""
    u = bits(y).astype(np.int64)
    sign = u & 0x80000000
    a = u ^ sign
    af = from_bits(a.astype(np.uint32))
    with np.errstate(invalid="ignore"):
        sat = af >= F32(6)
        den = ~sat & (af < F32(1))
    with np.errstate(all="ignore"):
        dx = bits((af + F32(2.0 ** 22)).astype(F32)).astype(np.int64) - (149 << 23)
    nx = (a + ((1 - 127) << 23) + (1 << 21) - 1 + ((a >> 22) & 1)) & 0xFFFFFFFF
    code = np.where(sat, 7, np.where(den, dx & 0xFF, (nx >> 22) & 0xFF))
    return ((code | (sign >> 28)) & 0xFF).astype(np.uint8)


def _mx_torchao(rule):
    """torchao to_mx (torchao/prototype/mx_formats/mx_tensor.py), eager, as
    run with torch 2.11 (docs/decisions.md V-CONFORM-TORCHAO):
    amax = torch.amax(|x|), NaN propagating and Inf counting.
    FLOOR: the exponent field of amax minus emax, byte 255 for a NaN or Inf
    amax.  RCEIL (_to_mx_rceil): descale = RN(amax * fp32(1 / max)), byte
    by _f32_to_e8m0_rceil (cvt.rp.ue8m0 without satfinite: NaN and Inf 255,
    a subnormal rounds up only above 2^-127).
    Elements x times the E8M0 value's reciprocal (_e8m0_scale_to_reciprocal
    _fp32: NaN for byte 255, 2^-127 for byte 254); a NaN product is the
    GPU's positive NaN 0x7FFFFFFF.  e4m3: FLOOR clamps to +-max before
    torch's cast (torch < 2.13; from 2.13 the cast saturates: the same
    bytes); RCEIL does not clamp, and torch's cast is
    non-saturating before 2.13, saturating from 2.13: RCEIL's products stay
    below 448 (1 + 2^-22), short of the first value that tells the two
    apart, so the model holds for either.  e2m1: _torchao_e2m1, packed by
    pack_uint4 (element 2i in the low nibble: fp8kv's order)."""
    def model(x, fmt, **_):
        x = np.asarray(x, F32)
        a = np.abs(x)
        amax = np.where(np.isnan(x).any(axis=1), F32(np.nan), a.max(axis=1)).astype(F32)
        fin = np.isfinite(amax)
        if rule == "floor":
            b = np.where(fin, e8m0_floor(np.where(fin, amax, F32(0)), fmt), 255)
        else:
            descale = _mul(amax, F32(1.0 / MAXV[fmt]))
            b = _e8m0_rp(descale, satfinite=False)
        b = b.astype(np.int64)
        rb = (254 - b) & 0xFF
        inv = np.where(rb == 255, F32(np.nan), e8m0_value(np.where(rb == 255, 0, rb)))
        y = _mul(x, inv.astype(F32)[:, None])
        y = np.where(np.isnan(y), from_bits(np.uint32(0x7FFFFFFF)), y).astype(F32)
        if fmt == "e2m1":
            return _torchao_e2m1(y), b.astype(np.uint8)
        if rule == "floor":
            mx = F32(MAXV[fmt])
            y = np.where(np.isfinite(y) & (np.abs(y) > mx), np.copysign(mx, y), y).astype(F32)
        return _fp8_gpu(y, fmt, "nonsaturating"), b.astype(np.uint8)
    return model


mx_floor_torchao = _mx_torchao("floor")
mx_rceil_torchao = _mx_torchao("rceil")


def _e8m0_rp(u, satfinite=True):
    a = bits(u) & np.uint32(0x7FFFFFFF)
    field, mant = (a >> 23).astype(np.int64), (a & 0x7FFFFF).astype(np.int64)
    up = np.where(field == 0, mant > 0x400000, (mant != 0) & (field < 255))
    res = field + up
    res = np.where(a > 0x7F800000, 255, res)
    if satfinite:
        res = np.where((res == 255) & (a <= 0x7F800000), 254, res)
    return np.minimum(res, 255)


def _ftz(v):
    v = np.asarray(v, F32)
    return np.where(np.abs(v) < F32(2.0 ** -126), np.copysign(F32(0), v), v).astype(F32)


def mx_rceil_nvidia(x, fmt, delta=(), **_):
    """TensorRT-LLM cvt_warp_fp16_to_mxfp8 (quantization.cuh): amax by
    __hmax (NaN ignored unless all are, Inf counts), descale = RN(amax *
    rcp(max)), byte by cvt.rp.satfinite.ue8m0x2 (Inf 254, NaN 255), os =
    rcp.approx.ftz(2^(byte - 127)) (0 for byte 254, Inf for byte 0; 0 when
    amax is 0), codes cvt.rn.satfinite (NaN 0x7F)."""
    d = tuple(delta) + (0, 0)
    allnan = np.isnan(x).all(axis=1)
    amax = np.where(allnan, F32(np.nan), amax_fmaxf(x)).astype(F32)
    descale = _mul(amax, _rcp(F32(MAXV[fmt]), d[0]))
    b = _e8m0_rp(descale)
    sv = np.where(b == 255, F32(np.nan), e8m0_value(np.minimum(b, 254)))
    with np.errstate(all="ignore"):
        os_ = _ftz(nudge((F32(1) / _ftz(sv)).astype(F32), d[1]))
    os_ = np.where(amax == 0, F32(0), os_).astype(F32)
    return _fp8_gpu(_mul(x, os_[:, None]), fmt, "saturate"), b.astype(np.uint8)
