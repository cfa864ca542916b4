# SPDX-License-Identifier: MIT
"""Flat conversions and the helpers of include/fp8kv.h sections 6 and 8:
quantize, dequantize, amax, check_slots, and the scalar functions."""

import collections
import ctypes

from . import _backends, _capi
from ._types import (CODES, FP8_FORMATS, INPUT_DTYPES, OVERFLOW_CODES, TORCH_FP8, Tensor,
                     Typed, cache_format, describe, np, parse_format, torch)
from ._write import _contiguous, _counter, _f32, _numel, _same_device

SlotReport = collections.namedtuple(
    "SlotReport", "padding out_of_range duplicates first_padding first_out_of_range "
    "first_duplicate")
SlotReport.__doc__ = """What check_slots found: counts of padding (slot < 0),
out-of-range and duplicate slots, and the first token of each (-1 if none)."""


def _flat(x, name):
    """(pointer, count, kind, device) of a contiguous array."""
    ptr, shape, strides, kind, d = describe(x, name)
    if not _contiguous(shape, strides):
        raise ValueError("%s: must be contiguous" % name)
    return ptr, _numel(shape), kind, d


def _empty_like(src, shape_of, dtype_kind, d):
    """A new array on src's device for the result, of torch or numpy kind."""
    base = src.array if isinstance(src, Typed) else src
    shape = tuple(shape_of)
    if isinstance(base, Tensor):
        dtype = TORCH_FP8.get(dtype_kind) or {"f32": torch.float32, "f16": torch.float16,
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
    return _capi.SCALE_TENSOR, _f32(scale, "scale", d, 1, keep)


def quantize(src, dst=None, *, format=None, scale=None, overflow="saturate",
             overflow_count=None):
    """dst = fp8(src / scale), elementwise, on src's device (torch's current
    stream for a GPU).  src: float32, float16 or bfloat16, contiguous.  dst:
    a contiguous FP8 array of as many elements (float8 dtype, or uint8 with
    format=); None allocates one (format= then required).  scale: None (no
    scale), a float, or one float32 element.  overflow_count: an optional
    uint64 counter to which the overflows are added.  Returns dst."""
    keep = []
    sp, count, skind, d = _flat(src, "src")
    if skind not in INPUT_DTYPES:
        raise TypeError("src: must be float32, float16 or bfloat16, not %s" % skind)
    if dst is None:
        _format_code(format)
        dst = _empty_like(src, describe(src, "src")[1], parse_format(format), d)
    dp, dcount, dkind, dd = _flat(dst, "dst")
    _same_device(dd, d, "dst")
    fmt = cache_format(dkind, format, "dst")
    if fmt not in FP8_FORMATS:
        raise TypeError("dst: must be an FP8 array (float8, or uint8 with format=)")
    if dcount != count:
        raise ValueError("dst: %d elements, src has %d" % (dcount, count))
    mode, s = _scale(scale, d, keep)
    ov = _overflow_code(overflow)
    oc = 0 if overflow_count is None else _counter(overflow_count, "overflow_count", d)
    _capi.raise_for(_capi.fn.quantize(_backends.handle(d), dp, CODES[fmt], sp, CODES[skind],
                                      count, mode, s, ov, oc, _backends.stream(d)))
    return dst


def dequantize(src, dst=None, *, format=None, scale=None, dtype="f32"):
    """dst = float(src) * scale, rounded to dst's dtype, on src's device.
    src: a contiguous FP8 array (float8, or uint8 with format=).  dst: a
    contiguous float32/float16/bfloat16 array; None allocates one of `dtype`
    ("f32", "f16" or "bf16"; numpy gets bfloat16 as uint16 bits).  Returns dst."""
    keep = []
    sp, count, skind, d = _flat(src, "src")
    fmt = cache_format(skind, format, "src")
    if fmt not in FP8_FORMATS:
        raise TypeError("src: must be an FP8 array (float8, or uint8 with format=)")
    if dst is None:
        if dtype not in INPUT_DTYPES:
            raise ValueError("dtype: must be 'f32', 'f16' or 'bf16', not %r" % (dtype,))
        dst = _empty_like(src, describe(src, "src")[1], dtype, d)
        dkind_override = dtype
    else:
        dkind_override = None
    dp, dcount, dkind, dd = _flat(dst, "dst")
    dkind = dkind_override or dkind
    _same_device(dd, d, "dst")
    if dkind not in INPUT_DTYPES:
        raise TypeError("dst: must be float32, float16 or bfloat16, not %s" % dkind)
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
        torch.cuda.current_stream(d).synchronize()


def amax(x):
    """max |x| over the finite elements of a contiguous float32/float16/
    bfloat16 array (NaN and Inf ignored; 0.0 when none).  Synchronous."""
    p, count, kind, d = _flat(x, "x")
    if kind not in INPUT_DTYPES:
        raise TypeError("x: must be float32, float16 or bfloat16, not %s" % kind)
    _wait_for_torch(d)
    out = ctypes.c_float()
    _capi.raise_for(_capi.fn.amax(_backends.handle(d), p, CODES[kind], count,
                                  ctypes.byref(out)))
    return out.value


def suggest_scale(amax, format):
    """A per-tensor scale for data of this amax: amax / the format's largest
    value, floored at 2**-126; 1.0 when amax is 0, negative, NaN or Inf."""
    return _capi.fn.suggest_scale(amax, _format_code(format))


def check_slots(slot_mapping, num_slots):
    """Counts padding, out-of-range and duplicate slots of a 1-D int64/int32
    slot mapping (a debugging aid; duplicates race on a GPU).  Returns a
    SlotReport.  Synchronous."""
    p, count, kind, d = _flat(slot_mapping, "slot_mapping")
    index = {"i64": _capi.INDEX_INT64, "i32": _capi.INDEX_INT32}.get(kind)
    if index is None:
        raise TypeError("slot_mapping: must hold int64 or int32, not %s" % kind)
    _wait_for_torch(d)
    report = _capi.SlotReport()
    _capi.raise_for(_capi.fn.check_slots(_backends.handle(d), p, count, index,
                                         int(num_slots), ctypes.byref(report)))
    return SlotReport(*(getattr(report, f) for f, _ in _capi.SlotReport._fields_))


def from_float(y, format, overflow="saturate"):
    """The FP8 code (an int) of the fp32 value y: the conversion contract's
    steps 2 to 4 (y is first rounded to fp32)."""
    return _capi.fn.from_float(y, _format_code(format), _overflow_code(overflow))


def to_float(code, format):
    """The exact value of an FP8 code (0..255) as a float."""
    if not 0 <= int(code) <= 255:
        raise ValueError("code: %r is not a byte" % (code,))
    return _capi.fn.to_float(int(code), _format_code(format))
