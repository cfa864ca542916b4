# SPDX-License-Identifier: MIT
"""Drop-ins for the inference engines' own KV-cache writers, with their exact
signatures:

    fp8kv.compat.sglang.launch_reshape_and_cache_flash(key, value, key_cache,
        value_cache, slot_mapping, swa_slot_mapping=None, k_scale=None,
        v_scale=None)
    fp8kv.compat.vllm.reshape_and_cache_flash(key, value, key_cache,
        value_cache, slot_mapping, kv_cache_dtype, k_scale, v_scale)
    fp8kv.compat.vllm.concat_and_cache_mla(kv_c, k_pe, kv_cache,
        slot_mapping, kv_cache_dtype, scale)
    fp8kv.compat.vllm.triton_reshape_and_cache_flash_per_token_head_quant(
        key, value, key_cache, value_cache, k_scale_cache, v_scale_cache,
        slot_mapping, kv_quant_mode=None)
    fp8kv.compat.flashinfer.nvfp4_quantize_append_paged_kv_cache(...)
    fp8kv.compat.flashinfer.nvfp4_quantize_append_paged_kv_cache_with_slot_mapping(
        append_key, append_value, slot_mapping, paged_kv_cache, kv_cache_sf,
        k_scale, v_scale, kv_layout="NHD")

aiter's concat_and_cache_mla has vLLM's signature (docs/recipes.md 2.3)
and takes a subset of its kv_cache_dtype strings, but multiplies by a
reciprocal where vLLM (and fp8kv) divide: fp8kv writes vLLM's bytes, not
aiter's, so there is no aiter module; call the vLLM drop-in.

They write the bytes of fp8kv's conversion contract (a correctly rounded
x / scale, saturating, as both engines' FP8 paths saturate), and never
guess between fn and fnuz: the format follows the cache tensor's float8
dtype.  A uint8 cache (vLLM allocates its FP8 caches as uint8) needs the
format stated once with set_fp8_format().
"""

from .._arrays import describe
from .._types import FP8_FORMATS, parse_format


class _Uint8Format:
    """The FP8 format a drop-in's uint8 caches hold, set by the caller."""

    def __init__(self):
        self.format = None

    def set(self, format):
        self.format = parse_format(format)

    def resolve(self, cache, allowed, why, uint8_default=None, name="key_cache"):
        """The format of a cache tensor (the argument `name`): its float8
        dtype's, or for a uint8 one the format set (else uint8_default);
        allowed limits either (vLLM's kv_cache_dtype string names a
        family).  None for a cache of another dtype."""
        kind = describe(cache, name)[3]
        fmt = (kind if kind in FP8_FORMATS else
               (self.format or uint8_default) if kind == "u8" else None)
        if fmt is None:
            if kind == "u8":
                raise TypeError("%s: a uint8 cache holds %s; state which with "
                                "set_fp8_format() (fp8kv never guesses fn or fnuz)"
                                % (name, " or ".join(allowed)))
            return None
        if fmt not in allowed:
            raise ValueError("%s: holds %s%s, but %s" % (
                name, fmt, "" if kind in FP8_FORMATS else " (set_fp8_format)", why))
        return fmt
