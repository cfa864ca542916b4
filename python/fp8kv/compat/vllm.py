# SPDX-License-Identifier: MIT
"""Drop-ins for vLLM's reshape_and_cache_flash and concat_and_cache_mla
(vllm._custom_ops, the _C_cache_ops kernels) and its per-(token, head)
Triton writer triton_reshape_and_cache_flash_per_token_head_quant, same
signatures, same arguments, fp8kv's bytes.

vLLM's conventions, kept:
  - num_tokens = slot_mapping.shape[0]: key and value may have more rows
    (CUDA-graph padding), which are not written; slot < 0 is padding.
  - key_cache, value_cache [num_blocks, block_size, heads, head_dim], any
    strides with a contiguous last dimension (vLLM's HND caches are this
    shape with permuted strides).
  - kv_cache_dtype: "auto" copies (the cache has the input's dtype, scales
    are ignored); "fp8" and "fp8_e4m3" write e4m3; "fp8_e5m2" writes e5m2.
    Anything else is refused.
  - k_scale, v_scale: float32 tensors of one value or one per head (or
    floats); the cache holds fp8(x / scale), saturated.

The e4m3 format is e4m3fn on NVIDIA GPUs and gfx950, e4m3fnuz on gfx942;
vLLM decides from the GPU.  fp8kv does not guess: the cache tensor's float8
dtype says which, and a uint8 cache (what vLLM allocates) needs it stated
once with set_fp8_format().  A uint8 cache with "fp8_e5m2" is e5m2 (vLLM's
only e5m2) unless set_fp8_format() says e5m2fnuz.

Where fp8kv differs, it is stricter or defined where vLLM's is not: NaN
keeps its sign (NVIDIA's conversion drops it), and an out-of-range slot is
skipped and reported (fp8kv.RangeError) instead of written out of bounds.
"""

from .. import concat_and_cache_mla as _mla_write, reshape_and_cache, reshape_and_cache_grouped
from .. import _torch
from .._arrays import describe, float32_bits, is_number
from .._types import dtype_name, np
from . import _Uint8Format

_FAMILIES = {"fp8": ("e4m3fn", "e4m3fnuz"), "fp8_e4m3": ("e4m3fn", "e4m3fnuz"),
             "fp8_e5m2": ("e5m2", "e5m2fnuz")}

_uint8 = _Uint8Format()
_nvfp4_v_scales = ["swizzled"]


def set_nvfp4_v_scales(layout):
    """How reshape_and_cache_flash's "nvfp4" lays out V block scales, as
    vLLM decides from the GPU: "swizzled" (the default: sm_100/103, the
    trtllm-gen reader's 4-token interleave) or "linear" (sm_120/121, the
    FlashInfer FA2 reader; as the K scales)."""
    if layout not in ("swizzled", "linear"):
        raise ValueError("layout: must be 'swizzled' or 'linear', not %r" % (layout,))
    _nvfp4_v_scales[0] = layout


def set_fp8_format(format):
    """The FP8 format ("e4m3fn", "e4m3fnuz", "e5m2", "e5m2fnuz" or a torch
    float8 dtype) that uint8 caches passed to this module hold, as vLLM's
    current_platform.fp8_dtype() would say; None (the default) refuses uint8
    caches with "fp8" and "fp8_e4m3"."""
    _uint8.set(format)


def reshape_and_cache_flash(key, value, key_cache, value_cache, slot_mapping,
                            kv_cache_dtype, k_scale, v_scale):
    """Drop-in for vLLM's reshape_and_cache_flash: writes the first
    slot_mapping.shape[0] rows of key and value [tokens, heads, head_dim]
    into the caches [num_blocks, block_size, heads, head_dim] at their slots,
    converted as kv_cache_dtype says ("nvfp4": see _nvfp4_flash's text).
    Errors are those of fp8kv.reshape_and_cache, including the RangeError
    for an out-of-range slot (from this call on the CPU, from
    fp8kv.synchronize() or the next call on a GPU)."""
    if not isinstance(kv_cache_dtype, str):
        raise TypeError("kv_cache_dtype: must be a string ('auto', 'fp8', 'fp8_e4m3', "
                        "'fp8_e5m2', 'nvfp4'), not %s" % type(kv_cache_dtype).__name__)
    if kv_cache_dtype == "nvfp4":
        _nvfp4_flash(key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale)
        return
    if kv_cache_dtype == "auto":
        reshape_and_cache(key, value, key_cache, value_cache, slot_mapping, layout="NHD")
        return
    family = _FAMILIES.get(kv_cache_dtype)
    if family is None:
        raise ValueError("kv_cache_dtype: %r is not one fp8kv writes ('auto', 'fp8', "
                         "'fp8_e4m3', 'fp8_e5m2', 'nvfp4')" % (kv_cache_dtype,))
    fmt = _uint8.resolve(key_cache, family, "kv_cache_dtype is %r" % kv_cache_dtype,
                         "e5m2" if kv_cache_dtype == "fp8_e5m2" else None)
    if fmt is None:
        raise TypeError("key_cache: kv_cache_dtype %r needs a float8 or uint8 cache, not %s"
                        % (kv_cache_dtype, dtype_name(describe(key_cache, "key_cache")[3])))
    reshape_and_cache(key, value, key_cache, value_cache, slot_mapping, k_scale=k_scale,
                      v_scale=v_scale, format=fmt, layout="NHD")


_MLA_COPIES = ("auto", "bfloat16", "float16")
_DS_DIVISOR = {"e4m3fn": None, "e4m3fnuz": 224.0}   # vLLM's kFp8ScaleDivisor by build


def concat_and_cache_mla(kv_c, k_pe, kv_cache, slot_mapping, kv_cache_dtype, scale):
    """Drop-in for vLLM's concat_and_cache_mla: writes the first
    slot_mapping.shape[0] rows of kv_c [tokens, kv_lora_rank] and k_pe
    [tokens, pe_dim] as one entry per token into kv_cache [num_blocks,
    block_size, entry] (any block and entry strides, the entry contiguous).

    kv_cache_dtype:
      "auto", "bfloat16", "float16"  a copy (the cache has the input's dtype);
      "fp8", "fp8_e4m3", "fp8_e5m2"  every element, RoPE part included,
          fp8(x / scale), saturated; scale: a float32 tensor of one value
          (or a float);
      "fp8_ds_mla"  DeepSeek's 656-byte record (vLLM's
          concat_and_cache_ds_mla): kv_lora_rank 512, pe_dim 64, 16-bit
          inputs, a uint8 (or float8 e4m3) cache of 656 bytes an entry;
          scale is not read.  The tile divisor follows the format as
          vLLM's build does: 448 for e4m3fn, 224 for e4m3fnuz (gfx942).
    The e4m3 format follows the cache's float8 dtype, or set_fp8_format()
    for a uint8 cache (as reshape_and_cache_flash).

    Where fp8kv's bytes differ from vLLM's (docs/recipes.md section 2), it
    follows include/fp8kv.h sections 5 and 9:
      - NaN keeps its sign (vLLM's NVIDIA conversion writes 0x7F);
      - fp8_ds_mla: amax ignores NaN and Inf; vLLM's tile with an Inf gets
        the scale Inf (its finite codes +-0), an all-NaN tile FLT_MIN and
        0x7F codes; here those tiles are scaled by their finite elements
        and NaN/Inf convert by section 5;
      - fp8_ds_mla with float16 inputs: vLLM's kernel reads the fp16 bit
        patterns as integers for its amax (docs/recipes.md V-1); fp8kv uses
        the values, so its fp16 records are DeepSeek's, not vLLM's;
      - ROCm builds of vLLM divide fp16 inputs in fp16 (a double
        rounding); fp8kv divides in fp32, as vLLM's NVIDIA build;
      - an out-of-range slot is skipped and reported (fp8kv.RangeError),
        not written out of bounds.
    For finite bf16 (and, plain, finite fp16/fp32 on NVIDIA) inputs the
    bytes are vLLM's."""
    if not isinstance(kv_cache_dtype, str):
        raise TypeError("kv_cache_dtype: must be a string ('auto', 'bfloat16', 'float16', "
                        "'fp8', 'fp8_e4m3', 'fp8_e5m2', 'fp8_ds_mla'), not %s"
                        % type(kv_cache_dtype).__name__)
    if kv_cache_dtype in _MLA_COPIES:
        _mla_write(kv_c, k_pe, kv_cache, slot_mapping)
        return
    if kv_cache_dtype == "fp8_ds_mla":
        fmt = _uint8.resolve(kv_cache, _FAMILIES["fp8"], "kv_cache_dtype is 'fp8_ds_mla'",
                             name="kv_cache")
        if fmt is None:
            raise TypeError("kv_cache: 'fp8_ds_mla' needs a uint8 (or float8 e4m3) cache, "
                            "not %s" % dtype_name(describe(kv_cache, "kv_cache")[3]))
        _mla_write(kv_c, k_pe, kv_cache, slot_mapping, kind="ds_mla", format=fmt,
                   divisor=_DS_DIVISOR[fmt])
        return
    family = _FAMILIES.get(kv_cache_dtype)
    if family is None:
        raise ValueError("kv_cache_dtype: %r is not one fp8kv writes ('auto', 'bfloat16', "
                         "'float16', 'fp8', 'fp8_e4m3', 'fp8_e5m2', 'fp8_ds_mla')"
                         % (kv_cache_dtype,))
    fmt = _uint8.resolve(kv_cache, family, "kv_cache_dtype is %r" % kv_cache_dtype,
                         "e5m2" if kv_cache_dtype == "fp8_e5m2" else None, name="kv_cache")
    if fmt is None:
        raise TypeError("kv_cache: kv_cache_dtype %r needs a float8 or uint8 cache, not %s"
                        % (kv_cache_dtype, dtype_name(describe(kv_cache, "kv_cache")[3])))
    if scale is None:
        raise ValueError("scale: kv_cache_dtype %r needs a scale (a float32 tensor of one "
                         "value, or a float)" % (kv_cache_dtype,))
    _mla_write(kv_c, k_pe, kv_cache, slot_mapping, scale="tensor", k_scale=scale, format=fmt)


_PTH_FLOOR = 1e-6     # vLLM's floor of a per-(token, head) scale
_PTH_MODES = ("INT8_PER_TOKEN_HEAD", "FP8_PER_TOKEN_HEAD")


def _expanded(x, name):
    """A [blocks, block_size, heads] scale cache as [..., 1]: one group."""
    if x is None:
        raise ValueError("%s: the per-(token, head) write needs its scale cache" % name)
    ptr, shape, strides, kind, d = describe(x, name)
    if len(shape) != 3:
        raise ValueError("%s: must be 3-D [num_blocks, block_size, num_kv_heads], got shape %s"
                         % (name, tuple(shape)))
    return x.unsqueeze(-1) if hasattr(x, "unsqueeze") else x[..., None]


def triton_reshape_and_cache_flash_per_token_head_quant(key, value, key_cache, value_cache,
                                                        k_scale_cache, v_scale_cache,
                                                        slot_mapping, kv_quant_mode=None):
    """Drop-in for vLLM's per-(token, head) writer (vllm/v1/attention/ops/
    triton_reshape_and_cache_flash.py, docs/recipes.md 5): each written row
    (token, head) gets s = max(amax / QUANT_MAX, 1e-6), stored in
    k_scale_cache/v_scale_cache [num_blocks, block_size, num_kv_heads]
    float32, and its elements x / s in key_cache/value_cache [num_blocks,
    block_size, num_kv_heads, head_size]: an int8 cache (QUANT_MAX 127,
    rounded toward zero as vLLM's truncating store) or a float8 one
    (QUANT_MAX the format's max, rounded to nearest even).
    kv_quant_mode: None (from the cache's dtype), or vLLM's KVQuantMode
    INT8_PER_TOKEN_HEAD or FP8_PER_TOKEN_HEAD (its name, or a string of
    it); INT4_PER_TOKEN_HEAD is refused (fp8kv writes no int4).  key and
    value need one head size (fp8kv's group is the row).

    Where fp8kv's bytes differ (include/fp8kv.h sections 5c and 8): x / s
    is one correctly rounded division, vLLM's x * (1.0 / s) two roundings
    and Triton's approximate division (issue 37: about 12% of the 1/s
    differ); NaN and Inf are ignored by amax (an Inf makes vLLM's s Inf and
    its codes 0) and convert by section 5c (+-Inf to +-127); an out-of-range
    slot is reported (fp8kv.RangeError)."""
    mode = getattr(kv_quant_mode, "name", kv_quant_mode)
    if mode is not None and mode not in _PTH_MODES:
        raise ValueError("kv_quant_mode: %r is not one fp8kv writes (None, %s)"
                         % (kv_quant_mode, ", ".join(_PTH_MODES)))
    kind = describe(key_cache, "key_cache")[3]
    if kind == "i8":
        if mode not in (None, "INT8_PER_TOKEN_HEAD"):
            raise ValueError("kv_quant_mode: %s with an int8 cache" % mode)
        extra = dict(format="int8", rounding="toward_zero")
    else:
        if mode not in (None, "FP8_PER_TOKEN_HEAD"):
            raise ValueError("kv_quant_mode: %s with a %s cache" % (mode, dtype_name(kind)))
        fmt = _uint8.resolve(key_cache, _FAMILIES["fp8"] + _FAMILIES["fp8_e5m2"],
                             "the per-(token, head) write takes int8 or FP8")
        if fmt is None:
            raise TypeError("key_cache: an int8 or float8 cache, not %s" % dtype_name(kind))
        extra = dict(format=fmt)
    head_size = describe(key, "key")[1][2]
    reshape_and_cache_grouped(key, value, key_cache, value_cache, slot_mapping, rule="f32",
                              group_size=head_size, scale_floor=_PTH_FLOOR,
                              k_scales=_expanded(k_scale_cache, "k_scale_cache"),
                              v_scales=_expanded(v_scale_cache, "v_scale_cache"),
                              layout="NHD", **extra)


def _decode_global(scale, name):
    """vLLM's NVFP4 global scale as fp8kv's decode-direction g: vLLM
    multiplies by g_enc = RN(1 / k_scale) and decodes with 1 / g_enc, so
    g = RN(1 / RN(1 / k_scale)), in fp32 (a tensor stays on its device)."""
    if _torch.is_tensor(scale):
        s = scale.to(_torch.torch.float32).reshape(-1)
        if s.numel() != 1:
            raise ValueError("%s: must hold one value, has %d" % (name, s.numel()))
        return 1.0 / (1.0 / s)
    if not is_number(scale):
        raise TypeError("%s: a float32 tensor of one value or a number, not %s"
                        % (name, type(scale).__name__))
    float32_bits(scale, name)            # names what is no float32
    one = np.float32(1.0)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return float(one / (one / np.float32(scale)))


def _nvfp4_flash(key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale):
    """kv_cache_dtype "nvfp4" (vLLM's nvfp4_kv_cache_kernels.cu, docs/
    recipes.md 3.3): key_cache and value_cache are kv_cache[:, 0] and
    kv_cache[:, 1], uint8 [num_blocks, block_size, heads, D/2 + D/16] whose
    strides say HND (stride(2) > stride(1)) or NHD; each side of a page
    holds all its e2m1 data, HND [heads][block_size][D/2] (NHD [block_size]
    [heads][D/2]), then all its e4m3 block scales [heads][block_size][D/16]
    (NHD [block_size][heads][D/16]); K scales linear, V scales in the 4-token
    swizzle of the sm_100 reader (set_nvfp4_v_scales("linear") for sm_120),
    which fp8kv writes for HND caches (in NHD with more than one head it is
    no strided layout).  k_scale, v_scale: vLLM's decode-direction
    checkpoint scales; g = RN(1 / RN(1 / k_scale)) (_decode_global).

    The bytes are include/fp8kv.h's FP8KV_GROUP_NVFP4.  Where they differ
    from vLLM's (docs/recipes.md 3.3, 3.5): vLLM's block scale is RN(g_enc *
    RN(amax * rcp(6))) and its elements x * rcp(RN(sf * rcp(g_enc))), with
    rcp.approx (within an ulp); fp8kv's are e4m3(RN(amax / RN(6 g))) and
    x / RN(sf * g); a NaN element is 0x7 in vLLM, 0x0 here; an Inf element
    makes vLLM's block scale 448, here it is ignored by amax and written
    +-6."""
    torch = _torch.torch
    for name, x in (("key_cache", key_cache), ("value_cache", value_cache)):
        if not _torch.is_tensor(x) or x.dtype != torch.uint8 or x.dim() != 4:
            raise TypeError("%s: 'nvfp4' takes vLLM's uint8 4-D [num_blocks, block_size, "
                            "heads, D/2 + D/16] view of kv_cache[:, %d], not %s"
                            % (name, name == "value_cache", _shape_of(x)))
    heads, head_size = key.shape[1], key.shape[2]
    if head_size % 16:
        raise ValueError("key: head_size %d; NVFP4 needs a multiple of 16" % head_size)
    data_dim, scale_dim = head_size // 2, head_size // 16
    blocks, block_size, _, full = key_cache.shape
    if full != data_dim + scale_dim:
        raise ValueError("key_cache: last dimension %d; head_size %d needs %d + %d"
                         % (full, head_size, data_dim, scale_dim))
    if tuple(value_cache.shape) != tuple(key_cache.shape) or \
            value_cache.stride() != key_cache.stride():
        raise ValueError("value_cache: shape %s and strides %s must equal key_cache's"
                         % (tuple(value_cache.shape), value_cache.stride()))
    hnd = key_cache.stride(2) > key_cache.stride(1)
    swizzled = _nvfp4_v_scales[0] == "swizzled"
    if swizzled and block_size % 4:
        raise ValueError("key_cache: block_size %d; the swizzled V scales need a multiple "
                         "of 4" % block_size)
    if swizzled and not hnd and heads > 1:
        raise ValueError("key_cache: an NHD page with %d heads; vLLM's swizzled V scales "
                         "are no strided layout there (fp8kv writes them for HND caches)"
                         % heads)
    page = key_cache.stride(0)
    region = heads * block_size * data_dim
    if hnd:
        dstr, sstr = (block_size * data_dim, data_dim), (block_size * scale_dim, scale_dim)
    else:
        dstr, sstr = (data_dim, heads * data_dim), (scale_dim, heads * scale_dim)

    def at(x, offset, size, stride):
        return x.as_strided(size, stride, x.storage_offset() + offset)

    def side(x):
        data = at(x, 0, (blocks, block_size, heads, data_dim), (page, dstr[1], dstr[0], 1))
        scales = at(x, region, (blocks, block_size, heads, scale_dim),
                    (page, sstr[1], sstr[0], 1))
        return data, scales

    k_data, k_sf = side(key_cache)
    v_data, v_sf = side(value_cache)
    layout = "HND" if hnd else "NHD"
    if swizzled:
        # vLLM's swizzle: scale s of token t at ((t/4)*4 + s/(S/4)) * S +
        # (s % (S/4)) * 4 + t % 4 within the head: 4 s + t % 4 past
        # (t/4) * 4S, the interleave of section 8 with I = 4
        if hnd:
            v_sf = at(value_cache, region, (blocks, heads, block_size // 4, scale_dim, 4),
                      (page, block_size * scale_dim, 4 * scale_dim, 4, 1))
        else:
            v_sf = at(value_cache, region, (blocks, block_size // 4, heads, scale_dim, 4),
                      (page, 4 * scale_dim, scale_dim, 4, 1))
    if hnd:
        k_data, v_data = k_data.permute(0, 2, 1, 3), v_data.permute(0, 2, 1, 3)
        k_sf = k_sf.permute(0, 2, 1, 3)
        if not swizzled:
            v_sf = v_sf.permute(0, 2, 1, 3)
    reshape_and_cache_grouped(key, value, k_data, v_data, slot_mapping, rule="nvfp4",
                              group_size=16, k_scales=k_sf, v_scales=v_sf,
                              k_global=_decode_global(k_scale, "k_scale"),
                              v_global=_decode_global(v_scale, "v_scale"),
                              format="e2m1", layout=layout)


def _shape_of(x):
    shape = getattr(x, "shape", None)
    return "%s %s" % (getattr(x, "dtype", type(x).__name__), tuple(shape) if shape is not None
                      else "")
