# SPDX-License-Identifier: MIT
"""fp8kv: fused, exact FP8 KV-cache writes, from Python and PyTorch.

The package calls libfp8kv through ctypes (no compiler at install time).  It
takes torch tensors (CPU, or CUDA/ROCm devices) and numpy arrays:

    import fp8kv
    fp8kv.reshape_and_cache(k, v, k_cache, v_cache, slots,
                            scale="tensor", k_scale=ks, v_scale=vs)

Every backend writes the bytes the conversion contract of include/fp8kv.h
fixes; the CPU backend is the golden reference (see fp8kv.golden).  Drop-ins
with the engines' own signatures are in fp8kv.compat.sglang and
fp8kv.compat.vllm; torch.ops.fp8kv.reshape_and_cache is the same write as a
torch operator (torch.compile, CUDA graphs).

The library is $FP8KV_LIBRARY when set, else the one the package was built
with (make check's and pip's copies), else libfp8kv.so.1 through the
loader's search path.

`import fp8kv` does not import torch (P-LAZY-TORCH).  The operator
torch.ops.fp8kv.reshape_and_cache is registered as soon as fp8kv meets
torch: at import when torch was imported first, on the first torch tensor
passed to fp8kv, or by fp8kv.register_torch_ops(), which a program that
imports fp8kv before torch calls before it uses torch.ops.fp8kv or
torch.compile.
"""

import struct

from . import _arrays, _capi, _signature, _torch
from ._backends import BackendInfo, backends, synchronize
from ._bulk import (SlotReport, amax, check_slots, dequantize, from_float, quantize,
                    suggest_scale, to_float)
from ._errors import (BackendError, Error, InvalidArgument, NoDevice, NotSupported,
                      OutOfMemory, RangeError)
from ._types import FormatInfo, formats, parse_format, scale_modes, typed
from . import _torch_op, _write

__all__ = [
    "reshape_and_cache", "synchronize", "quantize", "dequantize", "amax",
    "suggest_scale", "check_slots", "from_float", "to_float", "version", "backends",
    "formats", "scale_modes", "typed", "register_torch_ops", "Error", "InvalidArgument",
    "NotSupported", "RangeError", "NoDevice", "BackendError", "OutOfMemory", "SlotReport",
    "BackendInfo", "FormatInfo",
]


def version():
    """The version of the libfp8kv loaded, "MAJOR.MINOR.PATCH"."""
    return _capi.fn.version().decode()


# The package's own release number (I-METADATA); a source tree has no _paths.
try:
    from ._paths import VERSION as __version__
except ImportError:
    __version__ = version()

_op = None   # torch.ops.fp8kv.reshape_and_cache, once torch is adopted


def _register(torch):
    global _op
    _op = _torch_op.register(_write.hot("reshape_and_cache", "The CPU and CUDA kernel.",
                                        positional=len(_signature.PARAMS)))


def register_torch_ops():
    """Imports torch (if it is importable), registers the operator
    torch.ops.fp8kv.reshape_and_cache and returns it; None without torch.
    Needed only where fp8kv was imported before torch and no torch tensor
    has reached fp8kv yet: call it before using torch.ops.fp8kv or
    torch.compile."""
    _torch.load()
    return _op


def _traced(**args):
    """The call as torch.compile records it: the operator, which takes
    tensors and strings only."""
    torch = _torch.torch
    for name in ("k_scale", "v_scale"):
        if _arrays.is_number(args[name]):
            value = struct.unpack("=f", _arrays.float32_bits(args[name], name))
            args[name] = torch.tensor(value, dtype=torch.float32, device=args["key"].device)
    args["format"] = parse_format(args["format"])
    _op(**args)


_DOC = """Writes key and value rows into a paged KV cache, converting them to FP8.

For token t < len(slot_mapping) with slot = slot_mapping[t]: slot < 0 is
padding (skipped); with swa_mapping, slot = swa_mapping[slot] (negative:
padding); otherwise key[t, h, :] goes to block slot // block_size, offset
slot % block_size, head h of key_cache, and value[t] likewise.  The bytes
are those of include/fp8kv.h's conversion contract: x / s as one correctly
rounded fp32 division, rounded to nearest even, overflow decided after
rounding.

Arrays: torch tensors (CPU or CUDA/ROCm) or numpy arrays, all on one
device.  The backend follows the device (cpu, or hip:N for cuda:N; each
opened once and kept) and a GPU call runs on torch's current stream.
  key, value     [tokens, heads, head_dim] float32/float16/bfloat16 (one
                 dtype), the last dimension contiguous; head dims may
                 differ; rows past len(slot_mapping) are ignored.
  key_cache, value_cache
                 [blocks, block_size, heads, dim] (NHD) or [blocks, heads,
                 block_size, dim] (HND), any strides with a contiguous
                 last dimension.  Their dtype gives the format:
                 torch.float8_e4m3fn/e4m3fnuz/e5m2/e5m2fnuz, or uint8 with
                 format= ("e4m3fn", "e4m3fnuz", "e5m2", "e5m2fnuz"); a
                 cache of the input's dtype is a plain copy.
  slot_mapping, swa_mapping
                 1-D int64 or int32.
  layout         "NHD" or "HND"; None reads it from where key's head count
                 is in the cache's shape (stated when block_size == heads).
  scale          None: no scale, unless k_scale/v_scale ("tensor" for one
                 value, else "head") or k_scale_cache ("token_head") say
                 one; "tensor": k_scale, v_scale hold one float32 (or are
                 numbers); "head": one float32 per head; "token_head": a
                 scale per written row (token and head), amax /
                 max(format) floored at 2**-126, stored in
                 k_scale_cache/v_scale_cache, float32 [blocks, block_size,
                 heads] or [blocks, heads, block_size].  (The names are the
                 header's FP8KV_SCALE_*; "dynamic" is retired.)
  overflow       "saturate" (largest finite) or "nonsaturating" (NaN, or
                 Inf for e5m2).
  overflow_count, nan_count
                 optional uint64 (or int64) counters, one element each; the
                 overflows and NaN inputs of the written tokens are added.
  k_amax, v_amax optional float32 [heads], raised to max |x| per head.

Errors.  Arguments the package can judge raise ValueError or TypeError
naming the argument before the library is called: shapes, dtypes (and
non-native byte order), devices, strides, numbers that are no float32
(a scale is rounded to float32; a finite one beyond its range is refused),
and outputs that must not be written (read-only numpy arrays, torch
inference tensors outside torch.inference_mode(), tensors that require
grad while grad mode is on).  Sizes (A-ZERO-SIZE): a call with no tokens
writes nothing; heads, head dims, blocks, block_size and swa_mapping's
length must be at least 1.  The library's own rejections raise fp8kv.Error
subclasses (InvalidArgument, NotSupported, ...) with its message; nothing
is written then.  An out-of-range slot (>= blocks * block_size, or past
swa_mapping) skips that token; every other token is still written, and
fp8kv.RangeError naming the first such token is raised:
  - on the CPU, by this call;
  - on a GPU, by fp8kv.synchronize(device) or by the next fp8kv call on
    that device (the kernel runs after this call returns).

In a torch.compile'd function this call becomes the operator
torch.ops.fp8kv.reshape_and_cache (same arguments), which declares the
caches, scale caches, counters and amax outputs as mutated."""

# on cached plans (P-PLAN-CACHE): no call between this one and the library's
reshape_and_cache = _write.hot("reshape_and_cache", _DOC, traced=_traced, module=__name__)

_torch.on_adopt(_register)
_torch.adopt()
