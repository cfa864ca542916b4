# SPDX-License-Identifier: MIT
"""The MLA latent write (include/fp8kv.h section 9): one entry per token,
kv_c then k_pe, into cache[blocks][block_size][entry]: "plain" (each
element converted, or copied when the cache is of the input's dtype) or
"ds_mla" (DeepSeek's 656-byte fp8_ds_mla record).

PARAMS is the write's one table (P-ONE-SIGNATURE); plan() checks the
arguments and packs one fp8kv_mla_write; hot() reuses plans
(P-PLAN-CACHE)."""

from . import _capi, _plans
from ._arrays import describe, f32, float32_bits, same_device, wrong_dtype
from ._signature import COUNTERS, FORMAT, MAPPINGS, REQUIRED, Param, function, positional_count
from ._types import CODES, FP8_FORMATS, INPUT_DTYPES, cache_format, dtype_name
from ._write import counter_args, index_mapping, run_with, swa_mapping_arg

PARAMS = (
    Param("kv_c", "Tensor", REQUIRED, False, INPUT_DTYPES),
    Param("k_pe", "Tensor", REQUIRED, False, INPUT_DTYPES),
    Param("kv_cache", "Tensor", REQUIRED, True, None),
) + MAPPINGS + (
    Param("kind", "str", "plain", False, None),
    Param("scale", "str", None, False, None),
    Param("k_scale", "Tensor", None, False, ("f32",)),
    Param("divisor", "float", None, False, None),
) + COUNTERS + (FORMAT,)
POSITIONAL = positional_count(PARAMS)
OUTPUTS = tuple(p.name for p in PARAMS if p.written)

KINDS = {"plain": _capi.MLA_PLAIN, "ds_mla": _capi.MLA_DS}
DS_RANK, DS_PE, DS_BYTES = 512, 64, 656
DS_FORMATS = ("e4m3fn", "e4m3fnuz")


def _rows(x, name):
    """(pointer, shape, strides, kind, device) of a 2-D [tokens, dim] input
    whose last dimension is contiguous."""
    ptr, shape, strides, kind, d = describe(x, name)
    if len(shape) != 2:
        raise ValueError("%s: must be 2-D [tokens, dim], got shape %s" % (name, tuple(shape)))
    if kind not in INPUT_DTYPES:
        raise wrong_dtype(name, kind, INPUT_DTYPES)
    if shape[1] < 1:
        raise ValueError("%s: shape %s; its dim must be at least 1 (A-ZERO-SIZE)"
                         % (name, tuple(shape)))
    if strides[1] != 1 and shape[1] > 1 and shape[0]:
        raise ValueError("%s: the last dimension must be contiguous (stride 1), got strides %s"
                         % (name, tuple(strides)))
    return ptr, shape, strides, kind, d


def plan(*, kv_c, k_pe, kv_cache, slot_mapping, swa_mapping, kind, scale, k_scale, divisor,
         overflow, overflow_count, nan_count, format, num_tokens=None):
    """Checks the arguments and returns (device key, descriptor bytes,
    keep), as _write.plan does for the MHA write."""
    keep = []
    cp, cshape, cstr, ckind, dev = _rows(kv_c, "kv_c")
    pp, pshape, pstr, pkind, pd = _rows(k_pe, "k_pe")
    xp, xshape, xstr, xkind, xd = describe(kv_cache, "kv_cache", True)
    same_device(pd, dev, "k_pe")
    same_device(xd, dev, "kv_cache")
    if pkind != ckind:
        raise TypeError("k_pe: dtype %s differs from kv_c's %s"
                        % (dtype_name(pkind), dtype_name(ckind)))
    mla = KINDS.get(kind) if isinstance(kind, str) else None
    if mla is None:
        raise ValueError("kind: must be 'plain' or 'ds_mla', not %r" % (kind,))

    sp, n_slots, slot_type = index_mapping(slot_mapping, "slot_mapping", dev, keep)
    if num_tokens is None:
        num_tokens = n_slots
    elif n_slots < num_tokens:
        raise ValueError("slot_mapping: %d entries for %d tokens" % (n_slots, num_tokens))
    for name, shape in (("kv_c", cshape), ("k_pe", pshape)):
        if shape[0] < num_tokens:
            raise ValueError("%s: %d rows for %d tokens (slot_mapping's length)"
                             % (name, shape[0], num_tokens))
    rank, pe = cshape[1], pshape[1]

    if len(xshape) != 3:
        raise ValueError("kv_cache: must be 3-D [blocks, block_size, entry], got shape %s"
                         % (tuple(xshape),))
    blocks, block_size, entry = xshape
    if blocks < 1 or block_size < 1:
        raise ValueError("kv_cache: %d blocks of %d slots; blocks and block_size must be at "
                         "least 1 (A-ZERO-SIZE)" % (blocks, block_size))
    if xstr[2] != 1 and entry > 1:
        raise ValueError("kv_cache: the entry must be contiguous (stride 1), got strides %s"
                         % (tuple(xstr),))
    if mla == _capi.MLA_DS:
        if xkind not in ("u8",) + DS_FORMATS:
            raise TypeError("kv_cache: an fp8_ds_mla cache holds bytes (uint8, or "
                            "float8_e4m3fn/e4m3fnuz), not %s" % dtype_name(xkind))
        cache = cache_format(xkind, format, "kv_cache")
        if cache not in DS_FORMATS:
            raise ValueError("format: fp8_ds_mla records are e4m3fn or e4m3fnuz, not %r"
                             % (cache,))
        if (rank, pe) != (DS_RANK, DS_PE) or ckind not in ("f16", "bf16"):
            raise ValueError("kv_c: kind='ds_mla' takes kv_c [tokens, 512] and k_pe [tokens, "
                             "64] of float16 or bfloat16; got %s [tokens, %d] and [tokens, %d]"
                             % (dtype_name(ckind), rank, pe))
        if entry != DS_BYTES:
            raise ValueError("kv_cache: entries of %d bytes; an fp8_ds_mla record has %d"
                             % (entry, DS_BYTES))
    else:
        cache = cache_format(xkind, format, "kv_cache")
        if cache != ckind and cache not in FP8_FORMATS:
            raise TypeError("kv_cache: a %s cache for %s input; a cache is FP8 or of the "
                            "input's dtype" % (dtype_name(cache), dtype_name(ckind)))
        if entry != rank + pe:
            raise ValueError("kv_cache: entries of %d elements; kv_c's %d and k_pe's %d make %d"
                             % (entry, rank, pe, rank + pe))

    swa, swa_len, swa_type = swa_mapping_arg(swa_mapping, dev, keep)

    if scale is None:
        scale = "tensor" if k_scale is not None else "one"
    if scale not in ("one", "tensor") if isinstance(scale, str) else True:
        raise ValueError("scale: must be None, 'one' or 'tensor', not %r" % (scale,))
    mode, sc = _capi.SCALE_ONE, 0
    if scale == "tensor":
        if mla == _capi.MLA_DS:
            raise ValueError("scale: 'tensor' with kind='ds_mla', whose tiles scale themselves")
        if cache not in FP8_FORMATS:
            raise ValueError("scale: 'tensor' needs an FP8 cache; kv_cache is %s"
                             % dtype_name(cache))
        if k_scale is None:
            raise ValueError("k_scale: scale='tensor' needs k_scale")
        mode, sc = _capi.SCALE_TENSOR, f32(k_scale, "k_scale", dev, 1, keep)
    elif k_scale is not None:
        raise ValueError("k_scale: given with scale='one'")
    if divisor is not None and mla != _capi.MLA_DS:
        raise ValueError("divisor: given with kind=%r; only 'ds_mla' takes it" % (kind,))
    div = 0.0
    if divisor is not None:
        float32_bits(divisor, "divisor")
        div = float(divisor)

    ov, oc, nc = counter_args(overflow, overflow_count, nan_count, dev)

    desc = _capi.MLA_WRITE_PACKER.pack(
        _MLA_WRITE_SIZE, mla, cp, pp, CODES[ckind], num_tokens, rank, pe, cstr[0], pstr[0],
        xp, CODES[cache], blocks, block_size, xstr[0], xstr[1],
        sp, slot_type, swa, swa_type, swa_len, mode, sc, div, ov, oc, nc)
    return dev, desc, keep


_MLA_WRITE_SIZE = _capi.MLA_WRITE_PACKER.size


def call(handle, desc, stream):
    """fp8kv_concat_and_cache_mla on an MlaWrite's bytes."""
    return _capi.fn.concat_and_cache_mla(handle, desc, stream)


def run(planned):
    """The call of a plan() result on the device's backend and stream."""
    run_with(call, planned)


write = function("write", """plan(), then run(): the whole MLA write, by keyword.""",
                 plan, positional=0, then=run, module=__name__, params=PARAMS)

_DESCRIPTOR = _plans.Descriptor(_capi.MlaWrite, PARAMS,
                                fields={"kv_c": "kv_c", "cache": "kv_cache",
                                        "scale": "k_scale"})
_cache = {}


def hot(name, doc, positional=POSITIONAL, traced=None, prepare=False, module=__name__):
    """The MLA write on cached plans (see _plans.hot)."""
    return _plans.hot(name, doc, plan, _DESCRIPTOR, call, _cache, positional=positional,
                      traced=traced, prepare=prepare, module=module, params=PARAMS)
