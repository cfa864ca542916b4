# SPDX-License-Identifier: MIT
"""What the package reads from an argument, for every call that takes
arrays (the cache write and the bulk conversions): numpy arrays, torch
tensors (CPU or CUDA/ROCm) and typed() wrappers become (pointer, shape,
strides, kind, device), and Python numbers become fp32 scales.  Everything
that makes an array unusable is refused here, naming the argument, before
any library call (P-ARRAYS): unknown types, non-native byte order, negative
or ragged strides, sparse and meta tensors, and outputs that must not be
written (read-only numpy arrays, torch inference tensors outside inference
mode, tensors that require grad under grad mode).

A kind is a short element-type name (_types); a dtype fp8kv does not know
keeps its own name ("float64"), so that messages can say what was passed.
"""

import numbers
import struct

from . import _torch
from ._types import (COUNTER_DTYPES, ITEMSIZE, NUMPY_KINDS, Typed, device_name, dtype_list,
                     dtype_name, itemsize, np)

_ndarray = np.ndarray if np is not None else ()


def describe(x, name, out=False):
    """(pointer, shape, strides in elements, kind, device) of an array, where
    device is -1 for host memory and N for the GPU cuda:N; out=True for an
    array the call writes.  Raises TypeError or ValueError naming the
    argument for anything fp8kv cannot read, or write when out."""
    if type(x) is not _torch.Tensor:      # a tensor is the hot path of a tensor call
        if isinstance(x, _ndarray):
            dtype = x.dtype
            kind = _numpy_kinds.get(dtype)
            if kind is None:
                kind = _numpy_kind(dtype, name)
            size = dtype.itemsize
            strides = x.strides
            if any(s % size or s < 0 for s in strides):
                raise ValueError("%s: strides %s must be non-negative multiples of the "
                                 "element size %d" % (name, strides, size))
            if out and not x.flags.writeable:
                raise ValueError("%s: is read-only (not writeable); fp8kv writes it" % name)
            return x.ctypes.data, x.shape, tuple(s // size for s in strides), kind, -1
        if isinstance(x, Typed):
            ptr, shape, strides, kind, d = describe(x.array, name, out)
            if itemsize(x.array) != ITEMSIZE[x.dtype]:
                # checked at use (P-TYPED-AT-USE): the wrapper's array may not
                # be the one typed() checked
                raise TypeError("%s: typed(..., %r) over %s elements; %s needs %d-byte ones"
                                % (name, x.dtype, dtype_name(kind), x.dtype,
                                   ITEMSIZE[x.dtype]))
            return ptr, shape, strides, x.dtype, d
        if not _torch.is_tensor(x):
            raise TypeError("%s: expected a torch tensor or a numpy array, got %s"
                            % (name, type(x).__name__))
    if x.layout is not _STRIDED:
        raise TypeError("%s: a %s tensor; fp8kv takes dense (strided) tensors"
                        % (name, str(x.layout).replace("torch.", "")))
    d = x.get_device()
    if x.is_meta if d < 0 else not x.is_cuda:
        raise ValueError("%s: a tensor on %s; fp8kv takes cpu and cuda tensors"
                         % (name, x.device))
    if out:
        _writable_tensor(x, name)
    kind = _torch.KINDS.get(x.dtype)
    return x.data_ptr(), x.shape, x.stride(), kind or str(x.dtype)[6:], d


def _writable_tensor(x, name):
    """What torch itself refuses to write in place."""
    torch = _torch.torch
    if x.is_inference() and not torch.is_inference_mode_enabled():
        raise ValueError("%s: an inference tensor, which torch lets be written only "
                         "inside torch.inference_mode()" % name)
    if x.requires_grad and torch.is_grad_enabled():
        raise ValueError("%s: requires grad; autograd does not see fp8kv's writes "
                         "(write under torch.no_grad(), or pass a detached tensor)" % name)


# numpy dtype -> kind, filled as dtypes are met: dtype.name takes a
# microsecond, a dict lookup a few nanoseconds.  Only native byte order
# enters (a swapped dtype does not compare equal to the native one).
_numpy_kinds = {}


def _numpy_kind(dtype, name):
    if not dtype.isnative:
        raise TypeError("%s: byte order %r is not this machine's; fp8kv takes native-order "
                        "arrays (use .astype(%r))" % (name, dtype.str,
                                                      dtype.newbyteorder("=").name))
    kind = NUMPY_KINDS.get(dtype.name, dtype.name)
    if len(_numpy_kinds) < 64:
        _numpy_kinds[dtype] = kind
    return kind


def contiguous(shape, strides):
    """Whether the elements are dense in row-major order (an empty array
    is, whatever its strides)."""
    expected = 1
    for n, s in zip(reversed(shape), reversed(strides)):
        if n == 0:
            return True
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def same_device(d, dev, name):
    if d != dev:
        raise ValueError("%s: on %s, but key is on %s" % (name, device_name(d), device_name(dev)))


def wrong_dtype(name, kind, allowed, what="be"):
    """The TypeError of an array whose dtype is not one of `allowed`."""
    return TypeError("%s: must %s %s, not %s" % (name, what, dtype_list(allowed),
                                                 dtype_name(kind)))


def flat(x, name, out=False):
    """(pointer, count, kind, device) of a contiguous array."""
    ptr, shape, strides, kind, d = describe(x, name, out)
    if not contiguous(shape, strides):
        raise ValueError("%s: must be contiguous" % name)
    return ptr, numel(shape), kind, d


def made_contiguous(x):
    """A contiguous copy of a numpy array or tensor (the caller keeps it)."""
    if _torch.is_tensor(x):
        return x.contiguous()
    return np.ascontiguousarray(x)


# ---- Python numbers ---------------------------------------------------------------

_BOOLS = (bool, np.bool_) if np is not None else (bool,)


def is_number(x):
    """A real Python or numpy number, not a bool."""
    t = type(x)
    if t is float or t is int:
        return True
    return (t is not _torch.Tensor and not isinstance(x, _ndarray) and
            isinstance(x, numbers.Real) and not isinstance(x, _BOOLS))


def float32_bits(value, name):
    """The 4 bytes of a real number rounded to fp32 (to nearest).  Raises
    TypeError for what is no real number and ValueError for a finite value
    beyond fp32's range (Inf and NaN are kept, signs included)."""
    if not is_number(value):
        raise TypeError("%s: must be a real number or an array, not %s"
                        % (name, type(value).__name__))
    try:
        return struct.pack("=f", float(value))
    except OverflowError:
        raise ValueError("%s: %s is beyond float32's range"
                         % (name, "%.6g" % value if isinstance(value, float) else
                            "an integer of %d digits" % len(str(abs(int(value)))))) from None


def integer(value, name, low, high):
    """value as an int in [low, high]: TypeError for what is no integer
    (2.5 is not silently truncated), ValueError outside the range."""
    if isinstance(value, _BOOLS) or not isinstance(value, numbers.Integral):
        raise TypeError("%s: must be an integer, not %s" % (name, type(value).__name__))
    value = int(value)
    if not low <= value <= high:
        raise ValueError("%s: %d is outside [%d, %d]" % (name, value, low, high))
    return value


_scalar_scales = {}


def scalar_scale(value, name, dev, keep):
    """A number as one fp32 element on the device.  Cached by device and by
    the value's fp32 bits (P-SCALE-BITS: -0.0 and 0.0, or two NaNs, are
    different scales), never dropped (cached plans point at it), except
    while a CUDA graph is being captured, when it is made on the capturing
    stream, and past 256 values; those go to keep, for the call alone."""
    bits = float32_bits(value, name)
    key = (dev, bits)
    x = _scalar_scales.get(key)
    if x is not None:
        return x
    torch = _torch.torch
    if dev < 0:
        if np is not None:
            x = np.frombuffer(bits, np.float32).copy()
        else:
            x = torch.tensor(struct.unpack("=f", bits), dtype=torch.float32)
    else:
        x = torch.tensor(struct.unpack("=f", bits), dtype=torch.float32,
                         device="cuda:%d" % dev)
        if torch.cuda.is_current_stream_capturing():
            keep.append(x)
            return x
    if len(_scalar_scales) < 256:
        _scalar_scales[key] = x      # kept for the process's life: plans point at it
    else:
        keep.append(x)               # the call's alone: freed after it
    return x


# ---- the small arrays of a call ---------------------------------------------------

def f32(x, name, dev, count, keep, out=False):
    """Pointer to `count` contiguous fp32 values (a number becomes one)."""
    if type(x) is _torch.Tensor and not out:
        # the common case of a tensor call; anything else takes the general
        # path below, which names the fault
        if (x.dtype is _F32 and x.get_device() == dev and x.numel() == count and
                (x.is_cuda if dev >= 0 else not x.is_meta) and
                x.layout is _STRIDED and (count == 1 or x.is_contiguous())):
            return x.data_ptr()
    elif not isinstance(x, (_ndarray, Typed)) and not _torch.is_tensor(x):
        x = scalar_scale(x, name, dev, keep)
    ptr, shape, strides, kind, d = describe(x, name, out)
    n = numel(shape)
    if kind != "f32" or d != dev or n != count or count > 1 and not contiguous(shape, strides):
        if kind != "f32":
            raise wrong_dtype(name, kind, ("f32",))
        same_device(d, dev, name)
        if n != count:
            raise ValueError("%s: must hold %d value%s, has %d"
                             % (name, count, "" if count == 1 else "s", n))
        raise ValueError("%s: must be contiguous" % name)
    return ptr


def _adopted(torch):
    global _F32, _STRIDED
    _F32, _STRIDED = torch.float32, torch.strided


_F32 = _STRIDED = None     # torch's, once adopted
_torch.on_adopt(_adopted)


def counter(x, name, dev):
    """Pointer to a uint64 (or int64) counter of one element, written."""
    ptr, shape, _, kind, d = describe(x, name, True)
    if kind not in COUNTER_DTYPES:
        raise wrong_dtype(name, kind, COUNTER_DTYPES, "be a counter of")
    if numel(shape) != 1:
        raise ValueError("%s: must hold one counter, has shape %s" % (name, tuple(shape)))
    same_device(d, dev, name)
    return ptr
