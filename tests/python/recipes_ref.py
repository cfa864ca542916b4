# SPDX-License-Identifier: MIT
"""Independent models of the engines' KV-cache writers, one recipe each.

Each function quantizes one group, row or record to the bytes the engine's
kernel writes, element by element, from the rules docs/recipes.md records
with the repository, file and commit they were read at.  Arithmetic is
exact (recipes_exact.py): every fp32 operation a kernel performs is rounded
from the exact rational value, so a model gives the bytes of a GPU that
performs the same IEEE operations.  Where a kernel uses an approximate
instruction (rcp.approx, fast-math division), the model takes the
instruction as a parameter, correctly rounded by default, and the catalogue
says the recipe is not CPU-reproducible (RECIPES[name].exact).

These models are conform's recipe-identification ground truth; the
*_fp8kv recipes are fp8kv's own contract (include/fp8kv.h sections 5b-9),
contract_ref.py's model under the engines' signatures, which the C oracle
is held to.  They read no fp8kv code.  Inputs are 16- or 32-bit
bit patterns (numpy arrays or lists) with their dtype, "bf16", "f16" or
"f32"; scales and the fp32 values they are made of are fp32 bit patterns.
"""

from collections import namedtuple

import numpy as np

import contract_ref as C
import recipes_exact as X
from recipes_exact import E2M1, E4M3FN, E4M3FNUZ, E5M2

ONE = 0x3F800000
SIX = 0x40C00000

# ---- amax ---------------------------------------------------------------


def amax_finite(us):
    """max |x| over the finite elements (NaN and Inf ignored); +0 if none."""
    best = 0
    for u in us:
        if X.is_finite(u):
            best = max(best, u & 0x7FFFFFFF)
    return best


def amax_fmaxf(us, start_zero):
    """An fmaxf fold of |x| (CUDA fmaxf / __hmax: NaN loses to a number),
    from +0 when start_zero (FlashInfer), else from the first element, so
    that a group of NaNs only gives NaN (vLLM's ds_mla, TRT-LLM's __hmax)."""
    acc = 0 if start_zero else us[0] & 0x7FFFFFFF
    for u in us:
        acc = X.fmaxf(acc, u & 0x7FFFFFFF)
    return acc


def amax_propagate(us):
    """torch.amax(abs(x)): NaN when any element is NaN, Inf counts."""
    if any(X.is_nan(u) for u in us):
        return X.QNAN
    return max(u & 0x7FFFFFFF for u in us)


def f32_positive(u):
    """u > +0 for fp32 bits (false for NaN and for zeros)."""
    return not X.is_nan(u) and not u & X.F32_SIGN and u != 0


# ---- MLA: plain ------------------------------------------------------------

def _copy16(bits):
    return np.asarray(bits, dtype=np.uint16).astype("<u2").view(np.uint8)


def mla_plain_vllm(kv_c, k_pe, dtype, cache, scale):
    """vLLM concat_and_cache_mla, NVIDIA build (csrc cache_kernels.cu,
    concat_and_cache_mla_kernel with nvidia/quant_utils.cuh): the entry is
    kv_c ++ k_pe; "auto" copies the 16-bit values; "fp8"/"fp8_e4m3" and
    "fp8_e5m2" convert every element, RoPE part included, as
    cvt.rn.satfinite(RN(x / s)) with the per-tensor scale s."""
    if cache == "auto":
        return np.concatenate([_copy16(kv_c), _copy16(k_pe)])
    fmt = E5M2 if cache == "fp8_e5m2" else E4M3FN
    xs = X.widen(kv_c, dtype) + X.widen(k_pe, dtype)
    return np.array([X.fp8_satfinite_nv(X.f32_div(x, scale), fmt) for x in xs], dtype=np.uint8)


def mla_plain_aiter(kv_c, k_pe, dtype, scale, arch):
    """aiter concat_and_cache_mla (csrc/kernels/cache_kernels.cu,
    aiter_opus_plus.h fp32_to_fp8_scaled_x2): y = RN(x * RN(1 / s)), clamped
    by v_med3_f32 to the format's max (240 on gfx942's e4m3fnuz, 448 on
    gfx950's e4m3fn), then v_cvt_pk_fp8_f32, taken to round to nearest even.
    Finite inputs only: the NaN behaviour of v_med3 and v_cvt is unverified."""
    fmt = E4M3FNUZ if arch == "gfx942" else E4M3FN
    r = X.f32_div(ONE, scale)
    out = []
    for x in X.widen(kv_c, dtype) + X.widen(k_pe, dtype):
        if not X.is_finite(x):
            raise ValueError("mla_plain_aiter models finite inputs only")
        y = X.f32_mul(x, r)
        if X.is_finite(y) and X.magnitude(y) > fmt.maxval:
            y = (y & X.F32_SIGN) | X.bits_of(False, fmt.maxval)
        out.append(X.fp8_contract(y, fmt, saturate=True))
    return np.array(out, dtype=np.uint8)


# ---- MLA: DeepSeek fp8_ds_mla (656 bytes) --------------------------------

DS_MLA_RANK, DS_MLA_PE, DS_MLA_TILE = 512, 64, 128
DS_MLA_BYTES = 656      # 512 e4m3 codes, 4 fp32 scales, 64 x 16-bit RoPE


def _ds_record(codes, scales, k_pe):
    scale_bytes = np.array(scales, dtype="<u4").view(np.uint8)
    rec = np.concatenate([np.array(codes, dtype=np.uint8), scale_bytes, _copy16(k_pe)])
    assert rec.size == DS_MLA_BYTES
    return rec


def _hip_fnuz_satfinite(u):
    """HIP's saturating conversion to e4m3fnuz as vLLM's gfx942 path calls it:
    NaN to 0x80; Inf to 0x80 (docs/amd.md: AMD's saturating API leaves Inf to
    the instruction, which gives NaN; unverified on hardware)."""
    if not X.is_finite(u):
        return 0x80
    return X.fp8_contract(u, E4M3FNUZ, saturate=True)


def mla_ds_vllm(kv_c, k_pe, dtype="bf16", arch="nvidia"):
    """vLLM concat_and_cache_ds_mla (csrc cache_kernels.cu,
    concat_and_cache_ds_mla_kernel): per 128-element tile, amax is an fmaxf
    fold of fabsf from the first element (NaN ignored unless the tile is all
    NaN), s = fmaxf(RN(amax / D), FLT_MIN) with D = 448 (224 on gfx942, where
    the codes are e4m3fnuz), codes cvt.rn.satfinite(RN(x / s)); then the four
    fp32 scales little-endian and k_pe's 16-bit values.

    For fp16 inputs the kernel's element type is uint16_t, so its fabsf
    reads the raw bit pattern as an integer: the tile amax is the largest
    bit pattern (sign included) as a number, while the codes use the real
    fp16 values.  The model reproduces that (docs/recipes.md, V-1)."""
    if len(kv_c) != DS_MLA_RANK or len(k_pe) != DS_MLA_PE:
        raise ValueError("fp8_ds_mla needs kv_lora_rank 512 and pe_dim 64")
    if dtype == "f32":
        raise ValueError("fp8_ds_mla takes 16-bit inputs (vLLM checks element_size 2)")
    gfx942 = arch == "gfx942"
    divisor = X.f32_const(224.0 if gfx942 else 448.0)
    xs = X.widen(kv_c, dtype)
    raw = np.asarray(kv_c).reshape(-1).tolist()
    codes, scales = [], []
    for t in range(4):
        tile = xs[t * DS_MLA_TILE:(t + 1) * DS_MLA_TILE]
        if dtype == "f16":
            amax = X.rn_f32(X.Fraction(max(int(h) & 0xFFFF for h in raw[t * 128:(t + 1) * 128])))
        else:
            amax = amax_fmaxf(tile, start_zero=False)
        s = X.fmaxf(X.f32_div(amax, divisor), X.F32_MIN_NORMAL)
        scales.append(s)
        for x in tile:
            y = X.f32_div(x, s)
            codes.append(_hip_fnuz_satfinite(y) if gfx942 else X.fp8_satfinite_nv(y))
    return _ds_record(codes, scales, k_pe)


def mla_ds_fp8kv(kv_c, k_pe, dtype="bf16", fmt=E4M3FN, divisor=None, saturate=True):
    """The record of fp8kv.h section 9 (FP8KV_MLA_DS): amax over the tile's
    finite elements, s = max(RN(amax / D), 2^-126) (2^-126 for a tile of
    zeros, NaN and Inf), D the format's max unless given (224: vLLM's and
    SGLang's gfx942 rule), codes by section 5 with the call's overflow
    policy: a NaN keeps its sign, +-Inf becomes +-max (saturating).  Equal
    to mla_ds_vllm for finite bf16."""
    if len(kv_c) != DS_MLA_RANK or len(k_pe) != DS_MLA_PE:
        raise ValueError("fp8_ds_mla needs kv_lora_rank 512 and pe_dim 64")
    d = 0 if divisor is None else X.f32_const(divisor)
    rec = C.mla_ds_record(kv_c, k_pe, dtype, fmt.name, divisor=d, saturate=saturate)
    return np.array(rec.data, dtype=np.uint8)


def ds_mla_unpack(rec):
    """(codes[512], scale bits[4], k_pe 16-bit[64]) of a 656-byte record."""
    rec = np.asarray(rec, dtype=np.uint8)
    return (rec[:512].tolist(), rec[512:528].view("<u4").tolist(),
            rec[528:656].view("<u2").tolist())


# ---- NVFP4 ------------------------------------------------------------------

def rcp_model(u):
    """The stand-in for rcp.approx.ftz.f32: the correctly rounded reciprocal,
    subnormals flushed.  rcp.approx is specified to 1 ulp, not bit for bit;
    where it differs from this, the engine's bytes differ from the model's."""
    return X.f32_rcp(u, flush=True)


def _nvfp4_e4m3(sf_value):
    sf = X.fp8_satfinite_nv(sf_value)
    dec = E4M3FN.decode(sf)
    return sf, (X.GPU_NAN if dec is None else X.bits_of(False, dec[1]))


def nvfp4_flashinfer(x, dtype, g):
    """FlashInfer nvfp4_quantize_append_paged_kv_cache (include/flashinfer/
    page.cuh, nvfp4_append_quantize_block), with IEEE arithmetic: g is the
    decode-direction global scale (value = e2m1 * block scale * g);
    amax = fmaxf fold from 0 (NaN ignored, Inf counts);
    sf = e4m3 satfinite of RN(amax / RN(6 g)) (0 when amax is 0);
    os = RN(1 / RN(sf * g)), 0 when sf is 0; codes = the comparison chain of
    RN(x * os) (a NaN product: the GPU's positive NaN, code 0).  FlashInfer
    builds this with -use_fast_math, so its division and reciprocal are
    approximate: exact only where they round as IEEE does."""
    xs = X.widen(x, dtype)
    if len(xs) != 16:
        raise ValueError("an NVFP4 block has 16 elements")
    amax = amax_fmaxf(xs, start_zero=True)
    go = f32_positive(g)
    sf_value = X.f32_div(amax, X.f32_mul(SIX, g)) if f32_positive(amax) and go else 0
    sf, sf_r = _nvfp4_e4m3(sf_value)
    os = X.f32_div(ONE, X.f32_mul(sf_r, g)) if f32_positive(amax) and f32_positive(sf_r) and go else 0
    codes = [X.e2m1_flashinfer(X.f32_mul(u, os)) for u in xs]
    return X.pack_e2m1(codes), sf


def _trtllm_block(xs, g_enc, rcp, zero_test):
    """cvt_warp_fp16_to_fp4 (TensorRT-LLM quantization.cuh; vLLM's copy in
    nvfp4_utils.cuh): SF = RN(g * RN(amax * rcp(6))), e4m3 satfinite;
    os = rcp(RN(SF_r * rcp(g))) unless the zero test holds, then 0;
    codes = cvt.rn.satfinite.e2m1x2(RN(x * os))."""
    amax = amax_fmaxf(xs, start_zero=False)           # __hmax: NaN loses
    sf_value = X.f32_mul(g_enc, X.f32_mul(amax, rcp(SIX)))
    sf, sf_r = _nvfp4_e4m3(sf_value)
    zero = (amax & 0x7FFFFFFF) == 0 if zero_test == "amax" else (sf_r & 0x7FFFFFFF) == 0
    os = 0 if zero else rcp(X.f32_mul(sf_r, rcp(g_enc)))
    return X.pack_e2m1([X.e2m1_cvt_satfinite(X.f32_mul(u, os)) for u in xs]), sf


def nvfp4_trtllm(x, dtype, g_enc, rcp=rcp_model):
    """TensorRT-LLM quantizeAndWriteFP4KVCache (unfusedAttentionKernels_2_
    template.h) through cvt_warp_fp16_to_fp4: g_enc is the encode-direction
    second-level scale (qkv_scale_orig_quant, 448 * 6 / amax_tensor); the
    zero test is on amax, so a block scale that underflows to 0 gives
    os = rcp(0) = Inf: nonzero elements become +-6, zeros NaN, code 7."""
    xs = X.widen(x, dtype)
    return _trtllm_block(xs, g_enc, rcp, zero_test="amax")


def nvfp4_vllm(x, dtype, k_scale, rcp=rcp_model):
    """vLLM reshape_and_cache_flash with kv_cache_dtype "nvfp4"
    (csrc/libtorch_stable/nvfp4_kv_cache_kernels.cu, nvfp4_utils.cuh):
    g = RN(1 / k_scale) from the decode-direction checkpoint scale, then
    TensorRT-LLM's block arithmetic, except that the zero test is on the
    rounded block scale: an underflowed block writes +-0."""
    xs = X.widen(x, dtype)
    return _trtllm_block(xs, X.f32_div(ONE, k_scale), rcp, zero_test="sf")


def nvfp4_fp8kv(x, dtype, g):
    """fp8kv.h section 8's FP8KV_GROUP_NVFP4: amax over finite elements,
    sf = e4m3fn(RN(amax / RN(6 g))) (saturating), s = RN(sf * g), elements
    x / s by 5b (NaN 0x0, +-Inf +-6); a zero sf or a g that is not positive
    and finite gives +-0 by sign.  FlashInfer's formula with IEEE operations
    but for the elements, which FlashInfer forms as RN(x * RN(1 / s)): the
    two differ only where a quotient lies within an ulp of an e2m1 midpoint."""
    xs = X.widen(x, dtype)
    if len(xs) != 16:
        raise ValueError("an NVFP4 block has 16 elements")
    row = C.group_row("nvfp4", "e2m1", xs, "f32", 16, g=g)
    return np.array(row.codes, dtype=np.uint8), row.scales[0]


# ---- E8M0 scale rules ----------------------------------------------------------

def e8m0_floor_ocp(amax, emax_elem):
    """OCP MX v1.0 / torchao FLOOR: byte = exponent field of amax - emax_elem,
    clamped to [0, 255) (a subnormal or zero amax gives 0); a NaN or Inf
    amax gives 255 (torchao's choice: the NaN byte)."""
    if not X.is_finite(amax):
        return 255
    field = (amax >> 23) & 0xFF
    return max(0, min(255, field - emax_elem))


def e8m0_rceil_exact(amax, max_elem):
    """2^ceil(log2(amax / max_elem)) exactly, clamped to [2^-127, 2^127]:
    the smallest k with max_elem * 2^k >= amax; NaN or Inf gives 255."""
    if not X.is_finite(amax):
        return 255
    q = X.magnitude(amax) / X.Fraction(max_elem)
    if q == 0:
        return 0
    k = X.floor_log2(q)
    if X.pow2(k) != q:
        k += 1
    return max(0, min(254, k + 127))


def e8m0_rp(u, satfinite):
    """NVIDIA cvt.rp[.satfinite].ue8m0x2.f32 of |u|, as the CUDA 13.0
    cuda_fp8.hpp host emulation defines it: the exponent field, plus one when
    the value is finite, above 2^-127 and not a power of two; NaN gives 255,
    Inf 255, or 254 with satfinite, as does a finite value that rounds past
    2^127.  Equal to torchao's _f32_to_e8m0_rceil without satfinite."""
    a = u & 0x7FFFFFFF
    if a > X.F32_INF:
        return 255
    field, mant = a >> 23, a & 0x7FFFFF
    up = (mant > 0x400000) if field == 0 else (mant != 0 and field < 255)
    res = field + (1 if up else 0)
    if satfinite and res == 255:
        return 254
    return min(res, 255)


def e8m0_rceil_aiter(descale):
    """aiter fp_f32_to_e8m0_scale<RoundUp> (csrc/include/mx_quant_utils.h):
    the exponent field of descale, plus one whenever the field is below 255
    and any mantissa bit is set, subnormals included (so 2^-130 gives 1)."""
    field, mant = (descale >> 23) & 0xFF, descale & 0x7FFFFF
    return field + 1 if field < 255 and mant else field


def e8m0_even_aiter_cpp(amax, target_max_pow2, mbits):
    """aiter fp_f32_to_e8m0_scale<Even>: add 2^(22 - mbits) to amax's bits,
    keep sign and exponent, subtract target_max_pow2 from the field (0 when
    below).  Inf, and a NaN whose add does not carry out of bit 31 (the quiet
    NaN 0x7FC00000), keep field 255 and give 255 - target_max_pow2; the NaN
    0x7FFFFFFF carries into the sign and gives 0.  In 32-bit arithmetic."""
    rounded = (amax + (1 << (22 - mbits))) & 0xFF800000
    raw = (rounded >> 23) & 0xFF
    return raw - target_max_pow2 if raw >= target_max_pow2 else 0


def e8m0_even_aiter_triton(amax):
    """aiter Triton _mxfp4_quant_op: amax's bits + 2^21, mantissa cleared,
    floor(log2(.)) - 2 clamped to [-127, 127], + 127: as the C++ rule for
    finite amax (log2 of a power of two taken as exact), but log2(Inf) = Inf
    clamps to 127, so Inf and the quiet NaN give 254; log2(+-0) = -Inf
    gives 0 (the NaN 0x7FFFFFFF carries into the sign: -0)."""
    rounded = (amax + (1 << 21)) & 0xFF800000
    if rounded == X.F32_INF:
        return 254
    if rounded & 0x7FFFFFFF == 0:
        return 0
    if rounded & X.F32_SIGN:
        raise ValueError("log2 of a negative amax: not modelled")
    return max(0, min(254, ((rounded >> 23) - 127) - 2 + 127))


def e8m0_aiter_triton_mxfp8(amax):
    """aiter's Triton _mxfp8_quant_op (same quant.py): the MXFP4 constant
    2^21 with the e4m3 offset 8, so amax moves up a binade from significand
    1.75: the exact rceil for 448 except at amax = 448 * 2^k, one higher."""
    rounded = (amax + (1 << 21)) & 0xFF800000
    if rounded == X.F32_INF:
        return 254
    if rounded & 0x7FFFFFFF == 0:
        return 0
    if rounded & X.F32_SIGN:
        raise ValueError("log2 of a negative amax: not modelled")
    return max(0, min(254, (rounded >> 23) - 8))


# ---- MX groups ----------------------------------------------------------------

MX_ELEM = {"e4m3fn": (E4M3FN, 8), "e5m2": (E5M2, 15), "e2m1": (E2M1, 2)}


def _torchao_elements(xs, byte, elem, nan_bits, clamp):
    """torchao to_mx after the scale: data * 2^(127 - byte) (the reciprocal of
    the E8M0 value, NaN for byte 255), then e4m3/e5m2 by torch's cast after a
    clamp to +-max (FLOOR only; fp8kv.h section 5, non-saturating, equals
    torch's cast) or e2m1 by the integer encoder, packed element 2i low."""
    fmt, _ = MX_ELEM[elem]
    rb = (254 - byte) & 0xFF
    inv = 0x00400000 if rb == 0 else (0x7F800001 if rb == 255 else rb << 23)
    codes = []
    for u in xs:
        y = X.f32_mul(u, inv, nan=nan_bits)
        if elem == "e2m1":
            codes.append(X.e2m1_bit_trick(y))
            continue
        if clamp and X.is_finite(y) and X.magnitude(y) > fmt.maxval:
            y = (y & X.F32_SIGN) | X.bits_of(False, fmt.maxval)
        codes.append(X.fp8_contract(y, fmt, saturate=False))
    return X.pack_e2m1(codes) if elem == "e2m1" else np.array(codes, dtype=np.uint8)


def mx_floor_ocp(x, dtype, elem, nan_bits=X.GPU_NAN):
    """torchao to_mx(scaling_mode=FLOOR) (torchao/prototype/mx_formats/
    mx_tensor.py): amax = torch.amax(|x|) (NaN propagates), the OCP floor
    scale, elements as _torchao_elements.  nan_bits: the NaN a multiplication
    by the NaN reciprocal returns (the GPU's 0x7FFFFFFF by default); it shows
    in e2m1's leftover bits."""
    xs = X.widen(x, dtype)
    byte = e8m0_floor_ocp(amax_propagate(xs), MX_ELEM[elem][1])
    return _torchao_elements(xs, byte, elem, nan_bits, clamp=True), byte


def mx_rceil_torchao(x, dtype, elem, nan_bits=X.GPU_NAN):
    """torchao to_mx(scaling_mode=RCEIL), _to_mx_rceil: descale =
    RN(amax * RN(1 / max_elem)) (the double 1/max rounded to fp32), the
    byte by cvt.rp.ue8m0x2 semantics without satfinite, elements as FLOOR's."""
    xs = X.widen(x, dtype)
    fmt, _ = MX_ELEM[elem]
    descale = X.f32_mul(amax_propagate(xs), X.f32_of_double(1.0 / float(fmt.maxval)))
    byte = e8m0_rp(descale, satfinite=False)
    return _torchao_elements(xs, byte, elem, nan_bits, clamp=False), byte


def mx_rceil_nvidia(x, dtype, elem, rcp=rcp_model):
    """TensorRT-LLM cvt_warp_fp16_to_mxfp8 (elem "e4m3fn") and the UE8M0 path
    of cvt_warp_fp16_to_fp4 (elem "e2m1") in quantization.cuh: amax by __hmax
    (NaN ignored), descale = RN(amax * rcp(max_elem)), the byte by
    cvt.rp.satfinite.ue8m0x2 (Inf: 254).  MXFP8: os = rcp(2^(byte-127))
    (flushed: byte 254 gives 0, byte 0 Inf), codes cvt.rn.satfinite.e4m3.
    MXFP4: os = 2^(127 - byte), 1 for byte 0, codes cvt.rn.satfinite.e2m1.
    os is 0 when amax (MXFP8) or descale (MXFP4) is 0."""
    xs = X.widen(x, dtype)
    fmt, _ = MX_ELEM[elem]
    amax = amax_fmaxf(xs, start_zero=False)
    descale = X.f32_mul(amax, rcp(X.bits_of(False, fmt.maxval)))
    byte = e8m0_rp(descale, satfinite=True)
    if elem == "e4m3fn":
        os = 0 if (amax & 0x7FFFFFFF) == 0 else rcp(X.e8m0_fp32_bits(byte))
        return np.array([X.fp8_satfinite_nv(X.f32_mul(u, os)) for u in xs], dtype=np.uint8), byte
    if elem != "e2m1":
        raise ValueError("TensorRT-LLM's MX paths are e4m3fn and e2m1")
    if (descale & 0x7FFFFFFF) == 0:
        os = 0
    elif byte == 0:
        os = ONE
    else:
        os = X.rn_f32(X.pow2(127 - byte))
    return X.pack_e2m1([X.e2m1_cvt_satfinite(X.f32_mul(u, os)) for u in xs]), byte


def mx_even_aiter_triton(x, dtype):
    """aiter's Triton _mxfp4_quant_op (aiter/ops/triton/_triton_kernels/quant/
    quant.py): the "even" byte, qx = x * 2^(127 - byte) (exp2 of an integer
    taken as exact), codes by the integer e2m1 encoder, element 2i low.
    amax is tl.max(tl.abs(x)), taken to ignore NaN (unverified); a NaN
    element keeps its sign and payload, quieted, through the product (AMD)."""
    xs = X.widen(x, dtype)
    amax = amax_fmaxf(xs, start_zero=False)
    byte = e8m0_even_aiter_triton(amax)
    qs = X.rn_f32(X.pow2(127 - byte))
    codes = []
    for u in xs:
        y = (u | 0x00400000) if X.is_nan(u) else X.f32_mul(u, qs)
        codes.append(X.e2m1_bit_trick(y))
    return X.pack_e2m1(codes), byte


# ---- INT8 -----------------------------------------------------------------------

INT8_VLLM_FLOOR = X.f32_of_double(1e-6)
I127 = 0x42FE0000


def int8_rne(x, dtype, floor=X.F32_MIN_NORMAL, rounding="rne"):
    """fp8kv's per-(token, head) INT8 row: section 8's FP8KV_GROUP_F32 with
    G = the row on an int8 cache (5c): amax over finite elements,
    s = max(RN(amax / 127), floor) (IEEE division), q = RN(x / s) rounded to
    nearest even (or toward zero with rounding="trunc"), beyond +-127 it is
    +-127; NaN gives 0, +-Inf +-127."""
    xs = X.widen(x, dtype)
    row = C.group_row("f32", "int8", xs, "f32", len(xs), rounding=rounding, floor=floor)
    return np.array(row.codes, dtype=np.uint8).view(np.int8), int.from_bytes(bytes(row.scales), "little")


def mx_fp8kv(x, dtype, elem, rule):
    """fp8kv.h section 8's E8M0 rules, rule "floor" (OCP MX v1.0: the
    exponent field of amax less emax, at least 0) or "rceil" (the least
    power of two with max * 2^k >= amax, exact): amax over finite elements,
    elements x / 2^(b - 127) by section 5 (saturating) or 5b."""
    fmt = {"e4m3fn": "e4m3fn", "e5m2": "e5m2", "e2m1": "e2m1"}[elem]
    xs = X.widen(x, dtype)
    row = C.group_row("e8m0_" + rule, fmt, xs, "f32", len(xs))
    return np.array(row.codes, dtype=np.uint8), row.scales[0]


def mx_floor_fp8kv(x, dtype, elem):
    """mx_fp8kv with the OCP floor rule (FP8KV_GROUP_E8M0_FLOOR)."""
    return mx_fp8kv(x, dtype, elem, "floor")


def mx_rceil_fp8kv(x, dtype, elem):
    """mx_fp8kv with the exact rceil rule (FP8KV_GROUP_E8M0_RCEIL)."""
    return mx_fp8kv(x, dtype, elem, "rceil")


def int8_vllm_trunc(x, dtype):
    """vLLM int8_per_token_head (vllm/v1/attention/ops/
    triton_reshape_and_cache_flash.py, _reshape_cache_per_token_head):
    s = max(amax / 127, 1e-6) with amax = tl.max(|x|) (Inf counts; NaN taken
    as ignored, unverified); q = x * (1.0 / s), clamped to [-128, 127], stored
    through a truncating convert (NaN gives 0).  Triton's fp32 division is
    approximate; the model divides correctly (RECIPES notes it)."""
    xs = X.widen(x, dtype)
    amax = amax_fmaxf(xs, start_zero=False)
    s = X.fmaxf(X.f32_div(amax, I127), INT8_VLLM_FLOOR)
    r = X.f32_div(ONE, s)
    out = []
    for u in xs:
        q = X.f32_mul(u, r)
        if X.is_nan(q):
            out.append(0)
        elif X.is_inf(q):
            out.append(-128 if q & X.F32_SIGN else 127)
        else:
            out.append(X.int8_of(X.value(q), "trunc", lo=-128, hi=127))
    return np.array(out, dtype=np.int8), s


# ---- layouts -------------------------------------------------------------------

def v_scale_swizzle_offset(t, s, scale_dim):
    """vLLM's swizzle_scale_offset (nvfp4_kv_cache_kernels.cu) for the V
    block scales of one (page, head): the offset within the
    [page_size, scale_dim] tile of the scale of token t, group s."""
    sg = scale_dim // 4
    return ((t // 4) * 4 + s // sg) * scale_dim + (s % sg) * 4 + t % 4


def two_level_offset(t, s, t_split, t_hi, t_lo, s_split, s_hi, s_lo):
    """docs/contract-proposal.md's scale address within a (block, head):
    (t / t_split) * t_hi + (t % t_split) * t_lo + (s / s_split) * s_hi
    + (s % s_split) * s_lo."""
    return (t // t_split) * t_hi + (t % t_split) * t_lo + (s // s_split) * s_hi + (s % s_split) * s_lo


# ---- the catalogue ---------------------------------------------------------------

Recipe = namedtuple("Recipe", "fn family exact source")

RECIPES = {
    "mla_plain_vllm": Recipe(mla_plain_vllm, "mla", "yes", "vLLM concat_and_cache_mla"),
    "mla_plain_aiter": Recipe(mla_plain_aiter, "mla", "finite inputs, if v_cvt rounds to even",
                              "aiter concat_and_cache_mla"),
    "mla_ds_vllm": Recipe(mla_ds_vllm, "mla", "yes (NVIDIA build)", "vLLM concat_and_cache_ds_mla"),
    "mla_ds_fp8kv": Recipe(mla_ds_fp8kv, "mla", "yes", "fp8kv.h section 9 (FP8KV_MLA_DS)"),
    "nvfp4_flashinfer": Recipe(nvfp4_flashinfer, "nvfp4",
                               "no: built with -use_fast_math (approximate / and 1/x)",
                               "FlashInfer nvfp4_quantize_append_paged_kv_cache"),
    "nvfp4_trtllm": Recipe(nvfp4_trtllm, "nvfp4", "no: rcp.approx.ftz",
                           "TensorRT-LLM quantizeAndWriteFP4KVCache"),
    "nvfp4_vllm": Recipe(nvfp4_vllm, "nvfp4", "no: rcp.approx.ftz",
                         "vLLM reshape_and_cache_flash nvfp4"),
    "nvfp4_fp8kv": Recipe(nvfp4_fp8kv, "nvfp4", "yes", "fp8kv.h section 8 (FP8KV_GROUP_NVFP4)"),
    "mx_floor_ocp": Recipe(mx_floor_ocp, "mx", "yes", "OCP MX v1.0, torchao FLOOR"),
    "mx_rceil_torchao": Recipe(mx_rceil_torchao, "mx", "yes", "torchao RCEIL"),
    "mx_rceil_nvidia": Recipe(mx_rceil_nvidia, "mx", "no: rcp.approx.ftz",
                              "TensorRT-LLM MXFP8/MXFP4 (cvt.rp.satfinite.ue8m0x2)"),
    "mx_even_aiter_triton": Recipe(mx_even_aiter_triton, "mx", "if exp2/log2 are exact on powers of two",
                                   "aiter Triton _mxfp4_quant_op"),
    "mx_floor_fp8kv": Recipe(mx_floor_fp8kv, "mx", "yes", "fp8kv.h section 8 (FP8KV_GROUP_E8M0_FLOOR)"),
    "mx_rceil_fp8kv": Recipe(mx_rceil_fp8kv, "mx", "yes", "fp8kv.h section 8 (FP8KV_GROUP_E8M0_RCEIL)"),
    "int8_rne": Recipe(int8_rne, "int8", "yes", "fp8kv.h sections 5c and 8 (FP8KV_GROUP_F32, int8)"),
    "int8_vllm_trunc": Recipe(int8_vllm_trunc, "int8", "no: Triton's approximate fp32 division",
                              "vLLM int8_per_token_head"),
}
