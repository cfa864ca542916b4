# SPDX-License-Identifier: MIT
"""Element types, and what the package reads from an array: torch tensors
(CPU or CUDA/ROCm), numpy arrays, and raw-bit arrays tagged with typed().

Inside the package an element type is a short name ("kind"): the library's
dtype names ("f32", "f16", "bf16", "e4m3fn", "e4m3fnuz", "e5m2",
"e5m2fnuz") and "u8", "i32", "i64", "u64" for the rest.
"""

import collections

from . import _capi, _torch

try:
    import numpy as np
except ImportError:  # pragma: no cover - torch-only installs
    np = None

FP8_FORMATS = ("e4m3fn", "e4m3fnuz", "e5m2", "e5m2fnuz")
INPUT_DTYPES = ("f32", "f16", "bf16")
INDEX_DTYPES = ("i64", "i32")
COUNTER_DTYPES = ("u64", "i64")
CACHE_DTYPES = FP8_FORMATS + ("u8",) + INPUT_DTYPES
SCALE_MODES = ("one", "tensor", "head", "token_head")
OVERFLOW_MODES = ("saturate", "nonsaturating")
LAYOUTS = ("NHD", "HND")

CODES = {"f32": _capi.F32, "f16": _capi.F16, "bf16": _capi.BF16,
         "e4m3fn": _capi.E4M3FN, "e4m3fnuz": _capi.E4M3FNUZ,
         "e5m2": _capi.E5M2, "e5m2fnuz": _capi.E5M2FNUZ,
         "e2m1": _capi.E2M1, "int8": _capi.INT8}
# "e2m1": a byte of two e2m1 values (torch.float4_e2m1fn_x2); "i8": int8
# elements (torch.int8, numpy int8); "e8m0": torch.float8_e8m0fnu.
ITEMSIZE = {"f32": 4, "f16": 2, "bf16": 2, "e4m3fn": 1, "e4m3fnuz": 1, "e5m2": 1,
            "e5m2fnuz": 1, "u8": 1, "i32": 4, "i64": 8, "u64": 8, "i8": 1, "e2m1": 1,
            "e8m0": 1}
SCALE_CODES = {"one": _capi.SCALE_ONE, "tensor": _capi.SCALE_TENSOR,
               "head": _capi.SCALE_HEAD, "token_head": _capi.SCALE_TOKEN_HEAD}
OVERFLOW_CODES = {"saturate": _capi.SATURATE, "nonsaturating": _capi.NONSATURATING}
INDEX_CODES = {"i64": _capi.INDEX_INT64, "i32": _capi.INDEX_INT32}

# numpy dtypes by name ("bfloat16" and the float8 names are ml_dtypes').
NUMPY_KINDS = {"float32": "f32", "float16": "f16", "bfloat16": "bf16", "uint8": "u8",
               "int32": "i32", "int64": "i64", "uint64": "u64", "int8": "i8",
               "float8_e4m3fn": "e4m3fn", "float8_e4m3fnuz": "e4m3fnuz",
               "float8_e5m2": "e5m2", "float8_e5m2fnuz": "e5m2fnuz"}
# How messages name a kind: as numpy and torch name the dtype.
DTYPE_NAMES = {kind: name for name, kind in NUMPY_KINDS.items()}
DTYPE_NAMES.update({"e2m1": "float4_e2m1fn_x2", "e8m0": "float8_e8m0fnu"})


def dtype_name(kind):
    """A kind as messages name it ("float32"); a dtype fp8kv does not know
    is its kind already ("float64", the name describe() gives it)."""
    return DTYPE_NAMES.get(kind, kind)


def dtype_list(kinds):
    """"float32, float16 or bfloat16" for a tuple of kinds."""
    names = [dtype_name(k) for k in kinds]
    return names[0] if len(names) == 1 else "%s or %s" % (", ".join(names[:-1]), names[-1])


def __getattr__(name):
    """torch, TORCH_FP8 and Tensor as the package had them before torch was
    imported lazily (fp8kv.conform reads them): asking loads torch."""
    if name in ("torch", "TORCH_FP8", "Tensor"):
        t = _torch.load()
        return {"torch": t, "TORCH_FP8": _torch.FP8,
                "Tensor": _torch.Tensor}[name]
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


FormatInfo = collections.namedtuple("FormatInfo", "name max torch_dtype")
FormatInfo.__doc__ = """An FP8 format: its name, its largest finite value, and
torch's dtype for it (None where this torch has none)."""


def formats():
    """The FP8 formats, as FormatInfo tuples, in the library's order (torch's
    dtypes where torch is imported: this does not import it)."""
    _torch.adopt()
    return tuple(FormatInfo(f, float(_capi.fn.fp8_max(CODES[f])), _torch.FP8.get(f))
                 for f in FP8_FORMATS)


def scale_modes():
    """The scale modes reshape_and_cache takes: "one" (scale=None), "tensor",
    "head" and "token_head" (the header's FP8KV_SCALE_ONE, TENSOR, HEAD and
    TOKEN_HEAD)."""
    return SCALE_MODES


class Typed:
    """An array of raw bits with its element type stated: see typed().
    Immutable, and its element size is checked again wherever it is used
    (P-TYPED-AT-USE)."""
    __slots__ = ("_array", "_dtype")

    def __init__(self, array, dtype):
        object.__setattr__(self, "_array", array)
        object.__setattr__(self, "_dtype", dtype)

    array = property(lambda self: self._array, doc="The array of raw bits.")
    dtype = property(lambda self: self._dtype, doc="The element type it holds.")

    def __setattr__(self, name, value):
        raise AttributeError("fp8kv.typed() wrappers are immutable; make a new one")

    def __reduce__(self):     # copy and pickle without setting attributes
        return Typed, (self._array, self._dtype)

    def __repr__(self):
        return "fp8kv.typed(%r, %r)" % (self._array, self._dtype)


_TYPED_DTYPES = INPUT_DTYPES + FP8_FORMATS


def typed(array, dtype):
    """Tags an array of raw bits with the element type it holds, for arrays
    whose dtype cannot say it: numpy has no bfloat16 and no float8, and an
    older torch no float8.  dtype is "bf16" or "f16" for a 2-byte integer
    array, or an FP8 format name for a 1-byte one.

        fp8kv.reshape_and_cache(fp8kv.typed(k_bits, "bf16"), ...)
    """
    if not isinstance(dtype, str) or dtype not in _TYPED_DTYPES:
        raise ValueError("typed: dtype must be one of %s, not %r"
                         % (", ".join(_TYPED_DTYPES), dtype))
    if isinstance(array, Typed):
        array = array.array
    size = itemsize(array)
    if size != ITEMSIZE[dtype]:
        raise TypeError("typed: %s needs %d-byte elements, the array has %s"
                        % (dtype, ITEMSIZE[dtype], "%d-byte ones" % size if size else
                           "none (%s is no numpy array or torch tensor)"
                           % type(array).__name__))
    return Typed(array, dtype)


def itemsize(array):
    """The element size of a numpy array or torch tensor, else None."""
    if np is not None and isinstance(array, np.ndarray):
        return array.itemsize
    if _torch.is_tensor(array):
        return array.element_size()
    return None


def device_name(d):
    """The device of describe() as text."""
    return "cpu" if d < 0 else "cuda:%d" % d


def parse_format(format, name="format"):
    """An FP8 format name from a name or a torch float8 dtype; None stays None."""
    if format is None or isinstance(format, str) and format in FP8_FORMATS:
        return format
    if _torch.adopt() is not None and isinstance(format, _torch.torch.dtype):
        kind = _torch.KINDS.get(format)
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
    raise TypeError("%s: a cache holds an FP8 format (a float8 dtype, or uint8 with "
                    "format=) or the input's dtype, not %s" % (name, dtype_name(kind)))
