# SPDX-License-Identifier: MIT
"""The golden path: what the CPU backend, the reference every backend is held
to, writes for a call, computed on host copies and returned as arrays, so
that another writer's bytes can be diffed against it.

    ref = fp8kv.golden.reshape_and_cache(k, v, k_cache, v_cache, slots,
                                         scale="tensor", k_scale=ks, v_scale=vs)
    diff = fp8kv.golden.as_bytes(ref.key_cache) != fp8kv.golden.as_bytes(k_cache)

Arguments are those of fp8kv.reshape_and_cache, on any device; nothing passed
in is modified.  The caches are copied with their current bytes (poison,
canaries), so the result holds what the write leaves everywhere.
"""

import collections

from . import _write
from ._errors import RangeError
from ._types import Tensor, Typed, np

GoldenResult = collections.namedtuple(
    "GoldenResult", "key_cache value_cache k_scale_cache v_scale_cache overflow_count "
    "nan_count k_amax v_amax error")
GoldenResult.__doc__ = """The outputs of a golden write, as host arrays (numpy
arrays, or CPU tensors for torch arguments; None where not passed), and
error: the RangeError of an out-of-range slot (the other tokens written),
or None."""

_OUTPUTS = ("key_cache", "value_cache", "k_scale_cache", "v_scale_cache", "overflow_count",
            "nan_count", "k_amax", "v_amax")


def host_copy(x):
    """A host copy of an array (a CPU tensor for a tensor, numpy for numpy,
    Typed for Typed, with the element order kept); other values as they are."""
    if isinstance(x, Tensor):
        return x.detach().to("cpu", copy=True)
    if isinstance(x, Typed):
        return Typed(host_copy(x.array), x.dtype)
    if np is not None and isinstance(x, np.ndarray):
        return np.array(x, copy=True, order="K")
    return x


def as_bytes(x):
    """The bytes of an array's elements in logical order, as a numpy uint8
    array of its shape with the last dimension times the element size."""
    if isinstance(x, Typed):
        x = x.array
    if isinstance(x, Tensor):
        import torch
        x = x.detach().cpu().contiguous()
        return (x.view(torch.uint8) if x.dim() else x.reshape(1).view(torch.uint8)).numpy()
    x = np.ascontiguousarray(x)
    return x.reshape(x.shape or (1,)).view(np.uint8)


def reshape_and_cache(key, value, key_cache, value_cache, slot_mapping, *,
                      swa_mapping=None, scale=None, k_scale=None, v_scale=None,
                      k_scale_cache=None, v_scale_cache=None, overflow="saturate",
                      overflow_count=None, nan_count=None, k_amax=None, v_amax=None,
                      format=None, layout=None):
    """fp8kv.reshape_and_cache on the CPU backend, on host copies of every
    argument; returns a GoldenResult.  Argument errors raise as they would."""
    args = dict(key=key, value=value, key_cache=key_cache, value_cache=value_cache,
                slot_mapping=slot_mapping, swa_mapping=swa_mapping, scale=scale,
                k_scale=k_scale, v_scale=v_scale, k_scale_cache=k_scale_cache,
                v_scale_cache=v_scale_cache, overflow=overflow,
                overflow_count=overflow_count, nan_count=nan_count, k_amax=k_amax,
                v_amax=v_amax, format=format, layout=layout)
    host = {name: host_copy(x) for name, x in args.items()}
    error = None
    try:
        _write.write(*(host[name] for name in args))
    except RangeError as e:
        error = e
    return GoldenResult(*(host[name] for name in _OUTPUTS), error)
