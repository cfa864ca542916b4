# SPDX-License-Identifier: MIT
"""The golden path: what the CPU backend, the reference every backend is held
to, writes for a call, computed on a host image of the call's memory and
returned as arrays, so that another writer's bytes can be diffed against it.

    ref = fp8kv.golden.reshape_and_cache(k, v, k_cache, v_cache, slots,
                                         scale="tensor", k_scale=ks, v_scale=vs)
    diff = fp8kv.golden.as_bytes(ref.key_cache) != fp8kv.golden.as_bytes(k_cache)

Arguments are those of fp8kv.reshape_and_cache, on any device; nothing passed
in is modified.  The caches are copied with their current bytes (poison,
canaries), so the result holds what the write leaves everywhere.

Argument errors raise as the write would raise them (P-GOLDEN-IMAGE): the
package's checks run on the arguments as given, and the library's on an
image that keeps what they judge.  Arrays that share memory share it in the
image too, at the same distances, and every array keeps its address modulo
256 (its alignment), so that a cache over the key's memory, one array
passed twice, or a misaligned key is refused here as in the real write.
"""

import collections

from . import _grouped, _mla, _signature, _torch, _write
from ._arrays import describe, numel
from ._errors import RangeError
from ._types import ITEMSIZE, Typed, np

GoldenResult = collections.namedtuple(
    "GoldenResult", "key_cache value_cache k_scale_cache v_scale_cache overflow_count "
    "nan_count k_amax v_amax error")
GoldenResult.__doc__ = """The outputs of a golden write, as host arrays (numpy
arrays, or CPU tensors for torch arguments; None where not passed), and
error: the RangeError of an out-of-range slot (the other tokens written),
or None.  An output is a view into the call's host image, with the strides
of the array passed."""

_ALIGN = 256    # the image keeps each address modulo this
_UINT = {1: "uint8", 2: "uint16", 4: "uint32", 8: "uint64"}
_TORCH_INT = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}   # same sizes in torch


def host_copy(x):
    """A host copy of an array (a CPU tensor for a tensor, numpy for numpy,
    Typed for Typed, with the element order kept); other values as they are."""
    if _torch.is_tensor(x):
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
    if _torch.is_tensor(x):
        torch = _torch.torch
        x = x.detach().cpu().contiguous()
        return (x.view(torch.uint8) if x.dim() else x.reshape(1).view(torch.uint8)).numpy()
    x = np.ascontiguousarray(x)
    return x.reshape(x.shape or (1,)).view(np.uint8)


def _raw(x):
    """The element bits of a numpy array or tensor as a host numpy array of
    unsigned integers of the element's size, in the array's shape."""
    if _torch.is_tensor(x):
        torch = _torch.torch
        t = x.detach().cpu()
        t = t.view(getattr(torch, _TORCH_INT[t.element_size()]))
        return t.numpy().view(_UINT[t.element_size()])
    return x.view(_UINT[x.itemsize])


def _image(args):
    """A host image of the arrays in args: {name: host array}, arrays that
    overlap placed in one buffer at their distances, every address kept
    modulo _ALIGN."""
    spans, host = [], {}
    for name, x in args.items():
        if not (isinstance(x, Typed) or _torch.is_tensor(x) or
                np is not None and isinstance(x, np.ndarray)):
            continue
        ptr, shape, strides, kind, dev = describe(x, name)
        size = ITEMSIZE[kind]
        array = x.array if isinstance(x, Typed) else x
        if not numel(shape):
            host[name] = _dressed(np.zeros(tuple(shape), _UINT[size]), array, x)
            continue
        end = ptr + sum((n - 1) * s for n, s in zip(shape, strides)) * size + size
        spans.append((dev, ptr, end, name, x, array, tuple(shape), tuple(strides), size))
    spans.sort(key=lambda s: (s[0], s[1]))
    group = []
    for span in spans:
        if group and (span[0] != group[0][0] or span[1] >= max(g[2] for g in group)):
            _place(group, host)
            group = []
        group.append(span)
    if group:
        _place(group, host)
    return host


def _place(group, host):
    """One buffer for a group of overlapping spans, each array copied into
    its place: overlapping arrays read the same bytes, so any order gives
    the same image.  A misaligned original stays misaligned (numpy reads it;
    the library refuses it, as it refuses the original)."""
    lo = min(g[1] for g in group)
    hi = max(g[2] for g in group)
    buf = np.zeros(hi - lo + _ALIGN, np.uint8)
    start = (lo - buf.ctypes.data) % _ALIGN
    for _, ptr, _, name, x, array, shape, strides, size in group:
        view = np.ndarray(shape, _UINT[size], buffer=buf, offset=start + ptr - lo,
                          strides=tuple(s * size for s in strides))
        view[...] = _raw(array)
        host[name] = _dressed(view, array, x)


def _dressed(view, array, x):
    """view (unsigned bits) with the dtype of the argument it stands for."""
    if _torch.is_tensor(array):
        torch = _torch.torch
        t = torch.from_numpy(view.view(_TORCH_INT[view.itemsize])).view(array.dtype)
    else:
        t = view.view(array.dtype)
    return Typed(t, x.dtype) if isinstance(x, Typed) else t


def _golden_of(write, outputs, result):
    """The golden form of a write module's plan() and write(): outputs
    are its written parameters, result the namedtuple of them and error."""

    def golden(**args):
        # the package's checks on the arguments as they are (devices,
        # dtypes, writability...); then the library's, and the write, on
        # the image
        write.plan(**args)
        host = dict(args)
        host.update(_image(args))
        error = None
        try:
            write.write(**host)
        except RangeError as e:
            error = e
        return result(*(host[name] if args[name] is not None else None
                        for name in outputs), error)
    return golden


reshape_and_cache = _signature.function(
    "reshape_and_cache",
    """fp8kv.reshape_and_cache on the CPU backend, on a host image of every
    argument; returns a GoldenResult.  Argument errors raise as they would.""",
    _golden_of(_write, _signature.OUTPUTS, GoldenResult), module=__name__)

GroupedResult = collections.namedtuple(
    "GroupedResult", _grouped.OUTPUTS + ("error",))
GroupedResult.__doc__ = """The outputs of a golden grouped write (key_cache,
value_cache, k_scales, v_scales, overflow_count, nan_count, k_amax,
v_amax), as GoldenResult's: host arrays, None where not passed; error the
RangeError of an out-of-range slot, or None."""

reshape_and_cache_grouped = _signature.function(
    "reshape_and_cache_grouped",
    """fp8kv.reshape_and_cache_grouped on the CPU backend, on a host image of
    every argument; returns a GroupedResult (nothing passed in is modified:
    the written caches and scales are the result's).  Argument errors raise
    as they would.""",
    _golden_of(_grouped, _grouped.OUTPUTS, GroupedResult), module=__name__,
    positional=_grouped.POSITIONAL, params=_grouped.PARAMS)

MlaResult = collections.namedtuple("MlaResult", _mla.OUTPUTS + ("error",))
MlaResult.__doc__ = """The outputs of a golden MLA write (kv_cache,
overflow_count, nan_count), as GoldenResult's, and error."""

concat_and_cache_mla = _signature.function(
    "concat_and_cache_mla",
    """fp8kv.concat_and_cache_mla on the CPU backend, on a host image of
    every argument; returns an MlaResult (nothing passed in is modified).
    Argument errors raise as they would.""",
    _golden_of(_mla, _mla.OUTPUTS, MlaResult), module=__name__,
    positional=_mla.POSITIONAL, params=_mla.PARAMS)
