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
from . import _grouped, _mla, _torch_op, _write

__all__ = [
    "reshape_and_cache", "reshape_and_cache_grouped", "concat_and_cache_mla", "synchronize", "quantize", "dequantize", "amax",
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

_GROUPED_DOC = """Writes key and value rows into a paged KV cache with a scale per group
of group_size elements of each row (include/fp8kv.h section 8), computed
here, stored in k_scales/v_scales, and the elements converted to FP8,
e2m1 (FP4, two values a byte, element 2i in the low nibble) or int8.

Arguments as fp8kv.reshape_and_cache's where they share a name (key,
value, caches, slot_mapping, swa_mapping, overflow, overflow_count,
nan_count, k_amax, v_amax, format, layout), and:
  key_cache, value_cache
                 [blocks, block_size, heads, dim] (NHD) or [blocks, heads,
                 block_size, dim] (HND); dim is the head dim, or half of it
                 for e2m1.  dtype: a float8 dtype, torch.float4_e2m1fn_x2,
                 int8 (torch or numpy), or uint8 with format= ("e4m3fn",
                 "e4m3fnuz", "e5m2", "e5m2fnuz", "e2m1", "int8").
  rule           "f32" (s = max(amax / divisor, scale_floor), fp32; any
                 cache), "e8m0_floor" (OCP MX), "e8m0_rceil" (NVIDIA's
                 cvt.rp; E8M0 bytes; FP8 or e2m1), "nvfp4" (an e4m3fn block
                 scale under the global k_global/v_global; e2m1, group 16).
  group_size     16, 32, 64 or 128 dividing both head dims, or the head dim
                 when both are equal; None: 16 for nvfp4, 32 for the e8m0
                 rules, the head dim for f32.
  k_scales, v_scales
                 where the scales go: float32 (f32) or uint8 (e8m0:
                 also torch.float8_e8m0fnu; nvfp4: also float8_e4m3fn),
                 [blocks, block_size, heads, groups] (NHD) or [blocks, heads,
                 block_size, groups] (HND), in the cache's order, any
                 strides; 5-D to interleave I tokens (vLLM's NVFP4 V
                 scales): [blocks, block_size / I, heads, groups, I] (NHD)
                 or [blocks, heads, block_size / I, groups, I] (HND), slot s
                 at (s // I, ..., s % I).  The two may have different
                 strides (vLLM's sm100 page: K linear, V interleaved).
  k_global, v_global
                 nvfp4 only: the decode-direction global scale g (a value
                 is e2m1 * sf * g), a float32 of one value or a number.
  divisor, scale_floor
                 f32 only: D (at least 1; None: the format's max) and the
                 floor (a normal number at most 1; None: 2**-126).
  rounding       "nearest_even" or "toward_zero" (int8 caches only: vLLM's
                 int8 KV cache truncates).

Errors as fp8kv.reshape_and_cache's; the library refuses what section 8
does not take (a rule the format does not take, a group size not allowed,
NONSATURATING on e2m1 or int8...) with fp8kv.InvalidArgument or
NotSupported, before anything is written."""

_MLA_DOC = """Writes MLA latent rows (DeepSeek V2/V3/R1, Kimi K2) into a paged cache of
one entry per token (include/fp8kv.h section 9).

  kv_c, k_pe     [tokens, kv_lora_rank] and [tokens, pe_dim], float32,
                 float16 or bfloat16 (one dtype), last dimension contiguous.
  kv_cache       [blocks, block_size, entry], entry contiguous, any other
                 strides.  kind="plain": entry = kv_lora_rank + pe_dim
                 elements of a float8 dtype (or uint8 with format=), or of
                 the input's dtype (a copy).  kind="ds_mla": vLLM's
                 fp8_ds_mla record, 656 bytes (uint8 with format="e4m3fn"
                 or "e4m3fnuz", or a float8 e4m3 dtype): kv_c (512) in four
                 tiles of 128, each scaled by max(amax / D, 2**-126), the
                 four fp32 scales, then k_pe (64, float16/bfloat16) as is.
  slot_mapping, swa_mapping
                 as fp8kv.reshape_and_cache's.
  scale          None ("tensor" when k_scale is given, else "one"), "one"
                 or "tensor" (plain FP8 caches: every element, RoPE part
                 included, divided by k_scale, one float32 or a number).
  divisor        ds_mla only: D, a number of at least 1 (None: the
                 format's max; 224.0 is vLLM's and SGLang's gfx942 e4m3fnuz).
  overflow, overflow_count, nan_count
                 as fp8kv.reshape_and_cache's; nan_count counts every NaN
                 input, the copied k_pe included.
  format         the element format of a uint8 cache.

For finite inputs "ds_mla" writes vLLM's bytes; on NaN and Inf vLLM
differs (section 9)."""

reshape_and_cache_grouped = _grouped.hot("reshape_and_cache_grouped", _GROUPED_DOC,
                                         module=__name__)
concat_and_cache_mla = _mla.hot("concat_and_cache_mla", _MLA_DOC, module=__name__)
