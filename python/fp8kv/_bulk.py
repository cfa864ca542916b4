# SPDX-License-Identifier: MIT
"""Flat conversions and the helpers of include/fp8kv.h sections 6 and 8:
quantize, dequantize, amax, check_slots, and the scalar functions.

Arrays of any size are taken, empty ones included: a count of 0 is a call
with nothing to do, as in the C API (A-ZERO-SIZE)."""

import collections
import ctypes
import struct

from . import _backends, _capi, _torch
from ._arrays import (counter, describe, f32, flat, float32_bits, integer, same_device,
                      wrong_dtype)
from ._types import (CODES, FP8_FORMATS, INDEX_CODES, INDEX_DTYPES, INPUT_DTYPES,
                     OVERFLOW_CODES, Typed, cache_format, np, parse_format)

SlotReport = collections.namedtuple(
    "SlotReport", "padding out_of_range duplicates first_padding first_out_of_range "
    "first_duplicate")
SlotReport.__doc__ = """What check_slots found: counts of padding (slot < 0),
out-of-range and duplicate slots, and the first token of each (-1 if none)."""

_INT64_MAX = (1 << 63) - 1


def _empty_like(src, shape, dtype_kind):
    """A new array on src's device for the result, of torch or numpy kind."""
    base = src.array if isinstance(src, Typed) else src
    shape = tuple(shape)
    if _torch.is_tensor(base):
        torch = _torch.torch
        dtype = _torch.FP8.get(dtype_kind) or {"f32": torch.float32, "f16": torch.float16,
                                               "bf16": torch.bfloat16}.get(dtype_kind,
                                                                           torch.uint8)
        return torch.empty(shape, dtype=dtype, device=base.device)
    dtype = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16}.get(dtype_kind, np.uint8)
    return np.empty(shape, dtype)


def _format_code(format):
    fmt = parse_format(format)
    if fmt is None:
        raise ValueError("format: an FP8 format is needed (%s)" % ", ".join(FP8_FORMATS))
    return CODES[fmt]


def _overflow_code(overflow):
    ov = OVERFLOW_CODES.get(overflow) if isinstance(overflow, str) else None
    if ov is None:
        raise ValueError("overflow: must be 'saturate' or 'nonsaturating', not %r" % (overflow,))
    return ov


def _scale(scale, d, keep):
    if scale is None:
        return _capi.SCALE_ONE, 0
    return _capi.SCALE_TENSOR, f32(scale, "scale", d, 1, keep)


def _float32(value, name):
    """A real number rounded to fp32, as a Python float (errors named)."""
    return struct.unpack("=f", float32_bits(value, name))[0]


def quantize(src, dst=None, *, format=None, scale=None, overflow="saturate",
             overflow_count=None):
    """dst = fp8(src / scale), elementwise, on src's device (torch's current
    stream for a GPU).  src: float32, float16 or bfloat16, contiguous.  dst:
    a contiguous, writable FP8 array of as many elements (float8 dtype, or
    uint8 with format=); None allocates one (format= then required).  scale:
    None (no scale), a number (rounded to float32), or one float32 element.
    overflow_count: an optional uint64 counter to which the overflows are
    added.  Returns dst."""
    keep = []
    sp, count, skind, d = flat(src, "src")
    if skind not in INPUT_DTYPES:
        raise wrong_dtype("src", skind, INPUT_DTYPES)
    if dst is None:
        _format_code(format)
        dst = _empty_like(src, describe(src, "src")[1], parse_format(format))
    dp, dcount, dkind, dd = flat(dst, "dst", True)
    same_device(dd, d, "dst")
    fmt = cache_format(dkind, format, "dst")
    if fmt not in FP8_FORMATS:
        raise TypeError("dst: must be an FP8 array (float8, or uint8 with format=), not %s"
                        % fmt)
    if dcount != count:
        raise ValueError("dst: %d elements, src has %d" % (dcount, count))
    mode, s = _scale(scale, d, keep)
    ov = _overflow_code(overflow)
    oc = 0 if overflow_count is None else counter(overflow_count, "overflow_count", d)
    _capi.raise_for(_capi.fn.quantize(_backends.handle(d), dp, CODES[fmt], sp, CODES[skind],
                                      count, mode, s, ov, oc, _backends.stream(d)))
    return dst


def dequantize(src, dst=None, *, format=None, scale=None, dtype="f32"):
    """dst = float(src) * scale, rounded to dst's dtype, on src's device.
    src: a contiguous FP8 array (float8, or uint8 with format=).  dst: a
    contiguous, writable float32/float16/bfloat16 array; None allocates one
    of `dtype` ("f32", "f16" or "bf16"; numpy gets bfloat16 as uint16 bits).
    Returns dst."""
    keep = []
    sp, count, skind, d = flat(src, "src")
    fmt = cache_format(skind, format, "src")
    if fmt not in FP8_FORMATS:
        raise TypeError("src: must be an FP8 array (float8, or uint8 with format=), not %s"
                        % fmt)
    if dst is None:
        if not isinstance(dtype, str) or dtype not in INPUT_DTYPES:
            raise ValueError("dtype: must be 'f32', 'f16' or 'bf16', not %r" % (dtype,))
        dst = _empty_like(src, describe(src, "src")[1], dtype)
        dkind_override = dtype
    else:
        dkind_override = None
    dp, dcount, dkind, dd = flat(dst, "dst", True)
    dkind = dkind_override or dkind
    same_device(dd, d, "dst")
    if dkind not in INPUT_DTYPES:
        raise wrong_dtype("dst", dkind, INPUT_DTYPES)
    if dcount != count:
        raise ValueError("dst: %d elements, src has %d" % (dcount, count))
    mode, s = _scale(scale, d, keep)
    _capi.raise_for(_capi.fn.dequantize(_backends.handle(d), dp, CODES[dkind], sp,
                                        CODES[fmt], count, mode, s, _backends.stream(d)))
    return dst


def _wait_for_torch(d):
    # amax and check_slots take no stream: let torch's current stream finish
    # writing their input first.
    if d >= 0:
        _torch.torch.cuda.current_stream(d).synchronize()


def amax(x):
    """max |x| over the finite elements of a contiguous float32/float16/
    bfloat16 array (NaN and Inf ignored; 0.0 when none, or when x is
    empty).  Synchronous."""
    p, count, kind, d = flat(x, "x")
    if kind not in INPUT_DTYPES:
        raise wrong_dtype("x", kind, INPUT_DTYPES)
    _wait_for_torch(d)
    out = ctypes.c_float()
    _capi.raise_for(_capi.fn.amax(_backends.handle(d), p, CODES[kind], count,
                                  ctypes.byref(out)))
    return out.value


def suggest_scale(amax, format):
    """A per-tensor scale for data of this amax: amax / the format's largest
    value, floored at 2**-126; 1.0 when amax is 0, negative, NaN or Inf."""
    return _capi.fn.suggest_scale(_float32(amax, "amax"), _format_code(format))


def check_slots(slot_mapping, num_slots):
    """Counts padding, out-of-range and duplicate slots of a 1-D int64/int32
    slot mapping (a debugging aid; duplicates race on a GPU) against
    num_slots, an integer from 0 to 2**63 - 1.  Returns a SlotReport.
    Synchronous."""
    n = integer(num_slots, "num_slots", 0, _INT64_MAX)
    shape = describe(slot_mapping, "slot_mapping")[1]
    if len(shape) != 1:
        raise ValueError("slot_mapping: must be 1-D, got shape %s" % (tuple(shape),))
    p, count, kind, d = flat(slot_mapping, "slot_mapping")
    index = INDEX_CODES.get(kind)
    if index is None:
        raise wrong_dtype("slot_mapping", kind, INDEX_DTYPES, "hold")
    _wait_for_torch(d)
    report = _capi.SlotReport()
    _capi.raise_for(_capi.fn.check_slots(_backends.handle(d), p, count, index, n,
                                         ctypes.byref(report)))
    return SlotReport(*(getattr(report, f) for f, _ in _capi.SlotReport._fields_))


def from_float(y, format, overflow="saturate"):
    """The FP8 code (an int) of the number y: the conversion contract's steps
    2 to 4, y first rounded to fp32 (a finite y beyond fp32's range is
    refused, as it is no fp32 value)."""
    return _capi.fn.from_float(_float32(y, "y"), _format_code(format),
                               _overflow_code(overflow))


def to_float(code, format):
    """The exact value of an FP8 code (an integer, 0..255) as a float."""
    return _capi.fn.to_float(integer(code, "code", 0, 255), _format_code(format))
