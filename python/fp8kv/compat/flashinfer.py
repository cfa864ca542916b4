# SPDX-License-Identifier: MIT
"""Drop-ins for FlashInfer's NVFP4 append (flashinfer.page,
docs/recipes.md 3.1), same signatures, fp8kv's bytes:

    nvfp4_quantize_append_paged_kv_cache(append_key, append_value,
        batch_indices, positions, paged_kv_cache, kv_cache_sf, kv_indices,
        kv_indptr, kv_last_page_len, k_scale, v_scale, kv_layout="NHD")
    nvfp4_quantize_append_paged_kv_cache_with_slot_mapping(append_key,
        append_value, slot_mapping, paged_kv_cache, kv_cache_sf, k_scale,
        v_scale, kv_layout="NHD")

FlashInfer's conventions, kept: append_key/append_value [nnz, H, D]
float16 or bfloat16; paged_kv_cache a (k, v) tuple of uint8 [pages,
page_size, H, D/2] (NHD) or [pages, H, page_size, D/2] (HND), or one 5-D
tensor with K and V on dimension 1; kv_cache_sf likewise with D/16 block
scales (float8_e4m3fn, or uint8); any strides, no interleave; k_scale and
v_scale the decode-direction global scales (a value is e2m1 * block scale
* g), floats that must be positive and finite (ValueError, as FlashInfer),
or float32 tensors of one value (a CUDA-graph capture needs them).

The bytes are include/fp8kv.h's FP8KV_GROUP_NVFP4 (section 8): FlashInfer's
block scale, e4m3(RN(amax / RN(6 g))), in IEEE arithmetic.  Where they
differ from FlashInfer's:
  - the elements: fp8kv divides, x / RN(sf * g); FlashInfer multiplies by
    RN(1 / RN(sf * g)), and its page module is built with -use_fast_math
    (approximate division, subnormals flushed): codes may differ where a
    quotient lies within an ulp of an e2m1 midpoint, block scales where
    amax / 6g lies that close to an e4m3 midpoint, and for subnormal inputs;
  - an Inf element: fp8kv ignores it in amax and writes +-6; FlashInfer's
    amax becomes Inf (block scale 448, the other elements nearly all +-0);
  - a tensor scale that is not positive and finite: fp8kv writes block
    scale 0 and +-0 codes; FlashInfer's slot-mapping kernel traps;
  - an out-of-range slot: FlashInfer's slot-mapping kernel skips it
    silently; fp8kv skips it and reports it (fp8kv.RangeError).
"""

import math

from .. import _torch, reshape_and_cache_grouped
from .._arrays import describe, is_number
from .._types import dtype_list, np

_LAYOUTS = ("NHD", "HND")


def _pair(x, name):
    """(k, v) of a (k, v) tuple or a 5-D tensor/array with K/V on dim 1."""
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError("%s: a tuple of (k, v), got %d entries" % (name, len(x)))
        return x[0], x[1]
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 5 or shape[1] != 2:
        raise ValueError("%s: a (k, v) tuple or a 5-D tensor with K and V on dimension 1, "
                         "got %s" % (name, "shape %s" % (tuple(shape),) if shape is not None
                                     else type(x).__name__))
    return x[:, 0], x[:, 1]


def _global(x, name):
    """A global scale as FlashInfer takes it: a positive finite number
    (checked, as FlashInfer's ValueError), or a tensor left to the write."""
    if is_number(x):
        if not (math.isfinite(x) and x > 0):
            raise ValueError("%s: must be a positive finite decode-direction global scale, "
                             "not %r" % (name, x))
        return float(x)
    return x


# fp8kv's argument names in messages -> FlashInfer's
_NAMES = {"key": "append_key", "value": "append_value", "key_cache": "paged_kv_cache",
          "value_cache": "paged_kv_cache", "k_scales": "kv_cache_sf",
          "v_scales": "kv_cache_sf", "k_global": "k_scale", "v_global": "v_scale",
          "layout": "kv_layout"}
_INPUTS = ("f16", "bf16")


def _write(append_key, append_value, slot_mapping, paged_kv_cache, kv_cache_sf, k_scale,
           v_scale, kv_layout):
    if kv_layout not in _LAYOUTS:
        raise ValueError("kv_layout: must be 'NHD' or 'HND', not %r" % (kv_layout,))
    for name, x in (("append_key", append_key), ("append_value", append_value)):
        kind = describe(x, name)[3]
        if kind not in _INPUTS:
            raise TypeError("%s: must be %s, not %s" % (name, dtype_list(_INPUTS), kind))
    k_cache, v_cache = _pair(paged_kv_cache, "paged_kv_cache")
    k_sf, v_sf = _pair(kv_cache_sf, "kv_cache_sf")
    kg, vg = _global(k_scale, "k_scale"), _global(v_scale, "v_scale")
    try:
        reshape_and_cache_grouped(append_key, append_value, k_cache, v_cache, slot_mapping,
                                  rule="nvfp4", group_size=16, k_scales=k_sf, v_scales=v_sf,
                                  k_global=kg, v_global=vg, format="e2m1", layout=kv_layout)
    except (TypeError, ValueError) as e:
        # the package names its own arguments; say FlashInfer's
        name, sep, rest = str(e).partition(": ")
        if sep and name in _NAMES:
            raise type(e)("%s (fp8kv's %s): %s" % (_NAMES[name], name, rest)) from None
        raise


def nvfp4_quantize_append_paged_kv_cache_with_slot_mapping(
        append_key, append_value, slot_mapping, paged_kv_cache, kv_cache_sf, k_scale, v_scale,
        kv_layout="NHD"):
    """Drop-in for FlashInfer's: row i of append_key/append_value goes to
    slot slot_mapping[i] (int32 or int64; < 0 skipped), as NVFP4 codes and
    block scales.  See the module's text for where the bytes differ."""
    _write(append_key, append_value, slot_mapping, paged_kv_cache, kv_cache_sf, k_scale,
           v_scale, kv_layout)


def slots_of(batch_indices, positions, kv_indices, kv_indptr, page_size):
    """FlashInfer's append slots: row i, of request b = batch_indices[i] at
    position p = positions[i], goes to page kv_indices[kv_indptr[b] + p //
    page_size], offset p % page_size; returned as int64 slots, page *
    page_size + offset (a tensor on the inputs' device, or numpy)."""
    if _torch.is_tensor(positions):
        torch = _torch.torch
        pos = positions.to(torch.int64)
        page = kv_indices.to(torch.int64)[kv_indptr.to(torch.int64)[batch_indices.to(
            torch.int64)] + pos // page_size]
        return page * page_size + pos % page_size
    pos = np.asarray(positions).astype(np.int64)
    page = np.asarray(kv_indices).astype(np.int64)[
        np.asarray(kv_indptr).astype(np.int64)[np.asarray(batch_indices).astype(np.int64)] +
        pos // page_size]
    return page * page_size + pos % page_size


def nvfp4_quantize_append_paged_kv_cache(
        append_key, append_value, batch_indices, positions, paged_kv_cache, kv_cache_sf,
        kv_indices, kv_indptr, kv_last_page_len, k_scale, v_scale, kv_layout="NHD"):
    """Drop-in for FlashInfer's: row i goes to the slot slots_of() gives
    from batch_indices, positions, kv_indices and kv_indptr (docs/
    recipes.md 2.4's formula); kv_last_page_len is taken and not read.
    See the module's text for where the bytes differ."""
    k_cache = _pair(paged_kv_cache, "paged_kv_cache")[0]
    if kv_layout not in _LAYOUTS:
        raise ValueError("kv_layout: must be 'NHD' or 'HND', not %r" % (kv_layout,))
    page_size = k_cache.shape[1 if kv_layout == "NHD" else 2]
    slots = slots_of(batch_indices, positions, kv_indices, kv_indptr, page_size)
    _write(append_key, append_value, slots, paged_kv_cache, kv_cache_sf, k_scale, v_scale,
           kv_layout)
