# SPDX-License-Identifier: MIT
"""A drop-in for SGLang's launch_reshape_and_cache_flash (the Triton writer
of python/sglang/srt/layers/attention/triton_ops), same signature, same
arguments, fp8kv's bytes.

SGLang's conventions, kept:
  - key, value [num_tokens, heads, head_dim]; every key row is a token
    (num_tokens = key.shape[0]); slot_mapping has at least as many entries.
  - key_cache, value_cache [num_blocks, block_size, heads, head_dim] (NHD),
    any strides with a contiguous last dimension.
  - swa_slot_mapping, when given, maps slot_mapping's entries once more
    (sliding-window pools); a negative result is padding.
  - k_scale, v_scale: None (no scale) or one float32 value each (a tensor,
    or a float); the cache holds fp8(x / scale), saturated.
  - The cache's float8 dtype is the format (e4m3fn, e4m3fnuz, e5m2,
    e5m2fnuz); a cache of the input's dtype is a plain copy.

Where fp8kv differs, it is stricter or defined where SGLang's is not:
  - x / scale is one correctly rounded fp32 division (Triton's "/" is not),
    and a NaN keeps its sign;
  - a negative slot_mapping entry is padding before the SWA table is read
    (SGLang would read swa_slot_mapping[-1]);
  - an out-of-range slot is skipped and reported (fp8kv.RangeError) instead
    of written out of bounds;
  - a uint8 cache, a scale without its pair, a scale of several values and
    a scale on a non-FP8 cache are errors, not guesses.
"""

from .. import reshape_and_cache
from .._arrays import describe
from .._errors import Error
from .._types import FP8_FORMATS
from . import _Uint8Format

_uint8 = _Uint8Format()


def set_fp8_format(format):
    """The FP8 format ("e4m3fn", "e4m3fnuz", "e5m2", "e5m2fnuz" or a torch
    float8 dtype) that uint8 caches passed to this module hold; None (the
    default) refuses uint8 caches."""
    _uint8.set(format)


def launch_reshape_and_cache_flash(key, value, key_cache, value_cache, slot_mapping,
                                   swa_slot_mapping=None, k_scale=None, v_scale=None):
    """Drop-in for SGLang's launch_reshape_and_cache_flash: writes key and
    value [num_tokens, heads, head_dim] into the NHD caches at slot_mapping's
    slots (through swa_slot_mapping when given), dividing by k_scale/v_scale
    when given.  Errors are those of fp8kv.reshape_and_cache, including the
    RangeError for an out-of-range slot (from this call on the CPU, from
    fp8kv.synchronize() or the next call on a GPU)."""
    if (k_scale is None) != (v_scale is None):
        raise ValueError("%s: k_scale and v_scale are given together or not at all"
                         % ("v_scale" if v_scale is None else "k_scale"))
    # what the write does not see as passed: key's rows count the tokens,
    # and slot_mapping is cut to them
    kshape = describe(key, "key")[1]
    sshape = describe(slot_mapping, "slot_mapping")[1]
    if len(kshape) != 3 or len(sshape) != 1:
        raise ValueError("%s: must be %s, got shape %s" % (
            ("key", "3-D [tokens, heads, head_dim]", tuple(kshape)) if len(kshape) != 3 else
            ("slot_mapping", "1-D", tuple(sshape))))
    fmt = _uint8.resolve(key_cache, FP8_FORMATS, "")
    num_tokens = kshape[0]
    if sshape[0] != num_tokens:
        if sshape[0] < num_tokens:
            raise ValueError("slot_mapping: %d entries for the %d tokens of key"
                             % (sshape[0], num_tokens))
        slot_mapping = slot_mapping[:num_tokens]
    try:
        reshape_and_cache(key, value, key_cache, value_cache, slot_mapping,
                          swa_mapping=swa_slot_mapping,
                          scale=None if k_scale is None else "tensor",
                          k_scale=k_scale, v_scale=v_scale, format=fmt, layout="NHD")
    except (TypeError, ValueError) as e:
        # the write names its own parameter; this one's is swa_slot_mapping
        if isinstance(e, Error) or not str(e).startswith("swa_mapping:"):
            raise
        raise type(e)("swa_slot_mapping:" + str(e)[len("swa_mapping:"):]) from None
