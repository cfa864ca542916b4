# SPDX-License-Identifier: MIT
"""Element types, and what the package reads from an array: torch tensors
(CPU or CUDA/ROCm), numpy arrays, and raw-bit arrays tagged with typed().

Inside the package an element type is a short name ("kind"): the library's
dtype names ("f32", "f16", "bf16", "e4m3fn", "e4m3fnuz", "e5m2",
"e5m2fnuz") and "u8", "i32", "i64", "u64" for the rest.
"""

import collections
import os

from . import _capi

try:
    import numpy as np
except ImportError:  # pragma: no cover - torch-only installs
    np = None

# FP8KV_NO_TORCH=1 leaves torch out (its import takes seconds).
torch = None
if not os.environ.get("FP8KV_NO_TORCH"):
    try:
        import torch
    except Exception:  # absent, or broken in this environment
        torch = None

FP8_FORMATS = ("e4m3fn", "e4m3fnuz", "e5m2", "e5m2fnuz")
INPUT_DTYPES = ("f32", "f16", "bf16")
SCALE_MODES = ("one", "tensor", "head", "dynamic")
OVERFLOW_MODES = ("saturate", "nonsaturating")
LAYOUTS = ("NHD", "HND")

CODES = {"f32": _capi.F32, "f16": _capi.F16, "bf16": _capi.BF16,
         "e4m3fn": _capi.E4M3FN, "e4m3fnuz": _capi.E4M3FNUZ,
         "e5m2": _capi.E5M2, "e5m2fnuz": _capi.E5M2FNUZ}
ITEMSIZE = {"f32": 4, "f16": 2, "bf16": 2, "e4m3fn": 1, "e4m3fnuz": 1, "e5m2": 1,
            "e5m2fnuz": 1, "u8": 1, "i32": 4, "i64": 8, "u64": 8}
SCALE_CODES = {None: _capi.SCALE_ONE, "one": _capi.SCALE_ONE,
               "tensor": _capi.SCALE_TENSOR, "head": _capi.SCALE_HEAD,
               "dynamic": _capi.SCALE_TOKEN_HEAD}
OVERFLOW_CODES = {"saturate": _capi.SATURATE, "nonsaturating": _capi.NONSATURATING}

# torch's float8 dtypes by format, where this torch has them.
TORCH_FP8 = {}
_TORCH_KINDS = {}
if torch is not None:
    for _kind, _name in (("f32", "float32"), ("f16", "float16"), ("bf16", "bfloat16"),
                         ("u8", "uint8"), ("i32", "int32"), ("i64", "int64"),
                         ("u64", "uint64"), ("e4m3fn", "float8_e4m3fn"),
                         ("e4m3fnuz", "float8_e4m3fnuz"), ("e5m2", "float8_e5m2"),
                         ("e5m2fnuz", "float8_e5m2fnuz")):
        if isinstance(getattr(torch, _name, None), torch.dtype):
            _TORCH_KINDS[getattr(torch, _name)] = _kind
            if _kind in FP8_FORMATS:
                TORCH_FP8[_kind] = getattr(torch, _name)
    Tensor = torch.Tensor
else:
    class Tensor:  # stands for torch.Tensor where torch is absent
        pass

# numpy dtypes by name ("bfloat16" and the float8 names are ml_dtypes').
_NUMPY_KINDS = {"float32": "f32", "float16": "f16", "bfloat16": "bf16", "uint8": "u8",
                "int32": "i32", "int64": "i64", "uint64": "u64",
                "float8_e4m3fn": "e4m3fn", "float8_e4m3fnuz": "e4m3fnuz",
                "float8_e5m2": "e5m2", "float8_e5m2fnuz": "e5m2fnuz"}

FormatInfo = collections.namedtuple("FormatInfo", "name max torch_dtype")
FormatInfo.__doc__ = """An FP8 format: its name, its largest finite value, and
torch's dtype for it (None where this torch has none)."""


def formats():
    """The FP8 formats, as FormatInfo tuples, in the library's order."""
    return tuple(FormatInfo(f, float(_capi.fn.fp8_max(CODES[f])), TORCH_FP8.get(f))
                 for f in FP8_FORMATS)


def scale_modes():
    """The scale modes reshape_and_cache takes: "one" (scale=None), "tensor",
    "head" and "dynamic"."""
    return SCALE_MODES


class Typed:
    """An array of raw bits with its element type stated: see typed()."""
    __slots__ = ("array", "dtype")

    def __init__(self, array, dtype):
        self.array, self.dtype = array, dtype

    def __repr__(self):
        return "fp8kv.typed(%r, %r)" % (self.array, self.dtype)


def typed(array, dtype):
    """Tags an array of raw bits with the element type it holds, for arrays
    whose dtype cannot say it: numpy has no bfloat16 and no float8, and an
    older torch no float8.  dtype is "bf16" or "f16" for a 2-byte integer
    array, or an FP8 format name for a 1-byte one.

        fp8kv.reshape_and_cache(fp8kv.typed(k_bits, "bf16"), ...)
    """
    if dtype not in ITEMSIZE or dtype in ("u8", "i32", "i64", "u64"):
        raise ValueError("typed: dtype must be one of %s, not %r"
                         % (", ".join(INPUT_DTYPES + FP8_FORMATS), dtype))
    if isinstance(array, Typed):
        array = array.array
    size = _itemsize(array)
    if size != ITEMSIZE[dtype]:
        raise TypeError("typed: %s needs %d-byte elements, the array has %s-byte ones"
                        % (dtype, ITEMSIZE[dtype], size))
    return Typed(array, dtype)


def _itemsize(array):
    if isinstance(array, Tensor):
        return array.element_size()
    if np is not None and isinstance(array, np.ndarray):
        return array.itemsize
    return None


def kind_of(x):
    """The element kind of a tensor, array or Typed, or None if unknown."""
    if isinstance(x, Tensor):
        return _TORCH_KINDS.get(x.dtype)
    if isinstance(x, Typed):
        return x.dtype
    if np is not None and isinstance(x, np.ndarray):
        return _NUMPY_KINDS.get(x.dtype.name)
    return None


def describe(x, name):
    """(pointer, shape, strides in elements, kind, device) of an array, where
    device is -1 for host memory and N for the GPU cuda:N.  Raises TypeError
    naming the argument for anything else, and ValueError for tensors on
    other devices and numpy arrays with negative strides."""
    if isinstance(x, Tensor):
        d = x.get_device()
        if x.is_meta if d < 0 else not x.is_cuda:
            raise ValueError("%s: a tensor on %s; fp8kv takes cpu and cuda tensors"
                             % (name, x.device))
        return x.data_ptr(), x.shape, x.stride(), _TORCH_KINDS.get(x.dtype), d
    if isinstance(x, Typed):
        ptr, shape, strides, _, d = describe(x.array, name)
        return ptr, shape, strides, x.dtype, d
    if np is not None and isinstance(x, np.ndarray):
        size = x.itemsize
        strides = tuple(s // size for s in x.strides)
        if any(s % size or s < 0 for s in x.strides):
            raise ValueError("%s: strides %s must be non-negative multiples of the element "
                             "size %d" % (name, x.strides, size))
        return x.ctypes.data, x.shape, strides, _NUMPY_KINDS.get(x.dtype.name), -1
    raise TypeError("%s: expected a torch tensor or a numpy array, got %s"
                    % (name, type(x).__name__))


def device_name(d):
    """The device of describe() as text."""
    return "cpu" if d < 0 else "cuda:%d" % d


def parse_format(format, name="format"):
    """An FP8 format name from a name or a torch float8 dtype; None stays None."""
    if format is None or format in FP8_FORMATS:
        return format
    if torch is not None and isinstance(format, torch.dtype):
        kind = _TORCH_KINDS.get(format)
        if kind in FP8_FORMATS:
            return kind
    raise ValueError("%s: %r is not an FP8 format (%s)"
                     % (name, format, ", ".join(FP8_FORMATS)))


def cache_format(kind, format, name):
    """The cache element type from the cache's kind and an optional format=:
    a float8 dtype gives its format, uint8 needs format=, a wide cache is
    a plain copy.  The fn/fnuz choice is never guessed."""
    format = parse_format(format)
    if kind in FP8_FORMATS:
        if format is not None and format != kind:
            raise ValueError("format: %r contradicts %s's dtype (%s)" % (format, name, kind))
        return kind
    if kind == "u8":
        if format is None:
            raise TypeError("%s: a uint8 cache needs format= (one of %s); fp8kv does not "
                            "guess between fn and fnuz" % (name, ", ".join(FP8_FORMATS)))
        return format
    if kind in INPUT_DTYPES:
        if format is not None:
            raise ValueError("format: %r given, but %s is a %s cache, not uint8"
                             % (format, name, kind))
        return kind
    raise TypeError("%s: unsupported cache element type %s" % (name, kind))
