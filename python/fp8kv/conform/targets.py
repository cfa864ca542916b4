# SPDX-License-Identifier: MIT
"""Writers under test: how a TARGET is found, how each calling convention
is called, and the arrays (numpy, or torch on a device) they are given.

Conventions:
  reference  fn(key, value, key_cache, value_cache, slot_mapping, k_scale,
             v_scale, **options): caches [blocks, block_size, heads, dim]
             (NHD) or [blocks, heads, block_size, dim] (HND; block_size is
             never the head count, so the shape says which); k_scale and
             v_scale None (no scale) or float32 arrays of 1 or heads values.
             Keyword options are passed only when needed: format= (an FP8
             format name) when the cache is uint8, swa_mapping= with --swa,
             overflow="nonsaturating" in that mode.  numpy arrays carry bf16
             as uint16 bits.
  sglang     fn(key, value, key_cache, value_cache, slot_mapping,
             swa_slot_mapping, k_scale, v_scale): SGLang's
             launch_reshape_and_cache_flash; NHD, one-value scales or None.
  vllm       fn(key, value, key_cache, value_cache, slot_mapping,
             kv_cache_dtype, k_scale, v_scale): vLLM's reshape_and_cache_flash;
             caches NHD-shaped (HND memory as permuted strides),
             kv_cache_dtype "fp8" or "fp8_e5m2", scale tensors always.
  fp8kv      fp8kv.reshape_and_cache's own signature (every option).
The cache's dtype is the format where the arrays have float8 dtypes; on uint8
caches the sglang and vllm conventions state it through the target module's
set_fp8_format(), as fp8kv.compat's drop-ins take it.
"""

import importlib
import importlib.util
import os
import sys

import numpy as np

from .. import reshape_and_cache as fp8kv_reshape_and_cache
from .. import synchronize as fp8kv_synchronize
from .. import typed
from .._types import FP8_FORMATS, TORCH_FP8, torch

ALL = dict(formats=FP8_FORMATS, inputs=("f32", "f16", "bf16"),
           scales=("one", "tensor", "head", "dynamic"), layouts=("NHD", "HND"),
           overflows=("saturate", "nonsaturating"))


class Convention:
    """A calling convention: what it can express (supports) and what a
    writer of it is assumed to claim unless told (defaults)."""

    def __init__(self, name, signature, supports, defaults, swa, swa_default):
        self.name, self.signature = name, signature
        self.supports, self.defaults = supports, defaults
        self.swa, self.swa_default = swa, swa_default


def _conv(name, signature, scales, layouts, overflows, swa, default_scales=None,
          default_layouts=None, default_overflows=None, swa_default=None):
    supports = dict(ALL, scales=scales, layouts=layouts, overflows=overflows)
    defaults = dict(supports, scales=default_scales or scales,
                    layouts=default_layouts or layouts,
                    overflows=default_overflows or overflows)
    return Convention(name, signature, supports, defaults, swa,
                      swa if swa_default is None else swa_default)


CONVENTIONS = {c.name: c for c in (
    _conv("reference", "(key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale, "
          "**options)", ("one", "tensor", "head"), ("NHD", "HND"),
          ("saturate", "nonsaturating"), True, default_scales=("one", "tensor"),
          default_layouts=("NHD",), default_overflows=("saturate",), swa_default=False),
    _conv("sglang", "(key, value, key_cache, value_cache, slot_mapping, swa_slot_mapping, "
          "k_scale, v_scale)", ("one", "tensor"), ("NHD",), ("saturate",), True),
    _conv("vllm", "(key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype, "
          "k_scale, v_scale)", ("one", "tensor", "head"), ("NHD", "HND"), ("saturate",),
          False, default_scales=("one", "tensor")),
    _conv("fp8kv", "fp8kv.reshape_and_cache(key, value, key_cache, value_cache, "
          "slot_mapping, *, swa_mapping, scale, ...)", ALL["scales"], ALL["layouts"],
          ALL["overflows"], True),
)}


class UsageError(ValueError):
    """A target, convention or claim that cannot be run as given."""


# ---- finding a target ---------------------------------------------------------------

def _default_convention(fn):
    if fn is fp8kv_reshape_and_cache:
        return "fp8kv"
    name = getattr(fn, "__name__", "")
    return {"launch_reshape_and_cache_flash": "sglang",
            "reshape_and_cache_flash": "vllm"}.get(name, "reference")


def _import(module):
    if module.endswith(".py") or os.sep in module:
        if not os.path.exists(module):
            raise UsageError("target: no file %s" % module)
        name = "_fp8kv_conform_target_" + os.path.splitext(os.path.basename(module))[0]
        spec = importlib.util.spec_from_file_location(name, module)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod
    return importlib.import_module(module)


def resolve(target, convention=None):
    """(callable, convention name, label) of a TARGET: "fp8kv" (fp8kv's own
    writer), "module:function" or "path/to/file.py:function", optionally
    followed by "@convention"; or a callable.  convention, when given, wins
    over the suffix."""
    if callable(target):
        fn = target
        label = "%s:%s" % (getattr(fn, "__module__", "?"),
                           getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn))))
    else:
        if not isinstance(target, str) or not target:
            raise UsageError("target: expected 'module:function' or 'fp8kv', got %r" % (target,))
        label = target
        target, _, suffix = target.partition("@")
        convention = convention or suffix or None
        if target == "fp8kv":
            fn = fp8kv_reshape_and_cache
        else:
            module, sep, attr = target.rpartition(":")
            if not sep or not module or not attr:
                raise UsageError("target: %r is not 'module:function' (or 'fp8kv')" % target)
            try:
                obj = _import(module)
            except UsageError:
                raise
            except Exception as e:
                raise UsageError("target: cannot import %s: %s: %s"
                                 % (module, type(e).__name__, e)) from e
            for part in attr.split("."):
                if not hasattr(obj, part):
                    raise UsageError("target: %s has no attribute %r" % (module, attr))
                obj = getattr(obj, part)
            if not callable(obj):
                raise UsageError("target: %s is not callable" % target)
            fn = obj
    convention = convention or _default_convention(fn)
    if convention not in CONVENTIONS:
        raise UsageError("convention: %r is not one of %s"
                         % (convention, ", ".join(CONVENTIONS)))
    return fn, convention, label.partition("@")[0]


# ---- arrays ----------------------------------------------------------------------

class NumpyArrays:
    """Host numpy arrays; caches are uint8 (numpy has no float8)."""

    name, float8, device = "numpy", False, "cpu"

    def from_host(self, a):
        return np.array(a, copy=True)

    def to_host(self, a):
        return np.asarray(a)

    def part(self, buf, start, shape, dtype=None):
        p = buf[start:start + int(np.prod(shape)) * (4 if dtype == "f32" else 1)]
        return (p.view(np.float32) if dtype == "f32" else p).reshape(shape)

    def fp8(self, a, fmt):
        return a

    def permute_hnd_as_nhd(self, a):
        return a.swapaxes(1, 2)

    def strided(self, raw, rng):
        """raw [T, H, D] inside a larger buffer: token and head strides padded."""
        T, H, D = raw.shape
        big = np.zeros((T, H + 2, D + 8), raw.dtype)
        big.view(np.uint8)[...] = rng.integers(0, 256, big.view(np.uint8).shape, np.uint8)
        big[:, 1:1 + H, 4:4 + D] = raw
        return self.from_host(big)[:, 1:1 + H, 4:4 + D]

    def inputs(self, raw):
        return self.from_host(raw)

    def synchronize(self):
        pass


class TorchArrays(NumpyArrays):
    """torch tensors on a device; caches are float8 where this torch has the
    format's dtype, else uint8."""

    name = "torch"

    def __init__(self, device):
        if torch is None:
            raise UsageError("arrays: torch is not importable here")
        self.device = str(torch.device(device))
        self.float8 = True
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UsageError("device: %s, but torch sees no CUDA device" % self.device)

    def from_host(self, a):
        a = np.ascontiguousarray(a)
        if a.dtype == np.uint16:
            t = torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
        else:
            t = torch.from_numpy(a.copy())
        return t.to(self.device)

    def to_host(self, a):
        """A host numpy copy; bf16 as uint16 bits, float8 as uint8 codes."""
        t = a.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(np.uint16)
        if t.element_size() == 1 and t.dtype != torch.uint8:
            return t.view(torch.uint8).numpy()
        return t.numpy()

    def part(self, buf, start, shape, dtype=None):
        n = int(np.prod(shape)) * (4 if dtype == "f32" else 1)
        p = buf[start:start + n]
        return (p.view(torch.float32) if dtype == "f32" else p).view(shape)

    def fp8(self, a, fmt):
        dt = TORCH_FP8.get(fmt)
        return a.view(dt) if dt is not None else a

    def has_float8(self, fmt):
        return fmt in TORCH_FP8

    def permute_hnd_as_nhd(self, a):
        return a.transpose(1, 2)

    def synchronize(self):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)


def arrays_for(arrays, device):
    if arrays is None:
        arrays = "torch" if torch is not None else "numpy"
    if arrays == "numpy":
        if device not in (None, "cpu"):
            raise UsageError("arrays: numpy arrays live on the cpu, not %s" % device)
        return NumpyArrays()
    if arrays == "torch":
        return TorchArrays(device or "cpu")
    raise UsageError("arrays: must be 'torch' or 'numpy', not %r" % (arrays,))


# ---- calling ------------------------------------------------------------------------

class Call:
    """The arguments of one call, in the target's arrays (see make_call)."""


def _set_uint8_format(fn, fmt):
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    setter = getattr(module, "set_fp8_format", None)
    if setter is None:
        raise UsageError("the %s convention needs float8 caches, which this torch lacks, or "
                         "a set_fp8_format() in the target's module (fp8kv.compat's "
                         "drop-ins have one)" % fn.__name__)
    setter(fmt)


def invoke(fn, convention, c):
    """Calls the writer as its convention says."""
    if convention == "reference":
        kw = {}
        if not c.float8:
            kw["format"] = c.fmt
        if c.swa is not None:
            kw["swa_mapping"] = c.swa
        if c.overflow != "saturate":
            kw["overflow"] = c.overflow
        fn(c.key, c.value, c.key_cache, c.value_cache, c.slots, c.k_scale, c.v_scale, **kw)
    elif convention == "sglang":
        if not c.float8:
            _set_uint8_format(fn, c.fmt)
        fn(c.key, c.value, c.key_cache, c.value_cache, c.slots, c.swa, c.k_scale, c.v_scale)
    elif convention == "vllm":
        if not c.float8:
            _set_uint8_format(fn, c.fmt)
        kv = "fp8_e5m2" if c.fmt.startswith("e5m2") else "fp8"
        ks = c.k_scale if c.k_scale is not None else c.arrays.from_host(np.ones(1, np.float32))
        vs = c.v_scale if c.v_scale is not None else c.arrays.from_host(np.ones(1, np.float32))
        kc, vc = c.key_cache, c.value_cache
        if c.layout == "HND":
            kc, vc = c.arrays.permute_hnd_as_nhd(kc), c.arrays.permute_hnd_as_nhd(vc)
        fn(c.key, c.value, kc, vc, c.slots, kv, ks, vs)
    else:
        key, value = c.key, c.value
        if c.arrays.name == "numpy" and key.dtype == np.uint16:
            key, value = typed(key, "bf16"), typed(value, "bf16")
        fn(key, value, c.key_cache, c.value_cache, c.slots, swa_mapping=c.swa, scale=c.mode,
           k_scale=c.k_scale, v_scale=c.v_scale, k_scale_cache=c.k_scale_cache,
           v_scale_cache=c.v_scale_cache, overflow=c.overflow,
           format=None if c.float8 else c.fmt, layout=c.layout)
    # A writer built on fp8kv (the drop-ins, say) reports an out-of-range
    # slot on a GPU from the next call: collect it here, so that it is
    # charged to the call that caused it.  A no-op for other writers.
    fp8kv_synchronize(None if c.arrays.device == "cpu" else c.arrays.device)
    c.arrays.synchronize()


def finish(fn, convention):
    """Undoes what invoke set on the target's module."""
    if convention in ("sglang", "vllm"):
        module = sys.modules.get(getattr(fn, "__module__", None) or "")
        setter = getattr(module, "set_fp8_format", None)
        if setter is not None:
            setter(None)


def make_call(case, exp, arrays, rng):
    """The target's arrays for a call: the guarded buffers (returned as
    `buffers`, by cache name) and views of the caches inside them."""
    spec = case.spec
    c = Call()
    c.arrays, c.fmt, c.overflow, c.layout, c.mode = arrays, spec.fmt, spec.overflow, \
        spec.layout, spec.mode
    c.float8 = arrays.name == "torch" and arrays.has_float8(spec.fmt)
    c.buffers = {name: arrays.from_host(t) for name, t in exp.template.items()}
    views = {}
    for name, buf in c.buffers.items():
        geo = exp.geometry[name]
        if geo.itemsize == 4:
            views[name] = arrays.part(buf, geo.before, geo.shape, "f32")
        else:
            views[name] = arrays.fp8(arrays.part(buf, geo.before, geo.shape), spec.fmt)
    c.key_cache, c.value_cache = views["key"], views["value"]
    c.k_scale_cache, c.v_scale_cache = views.get("k_scale_cache"), views.get("v_scale_cache")
    if spec.strided:
        c.key, c.value = arrays.strided(case.key, rng), arrays.strided(case.value, rng)
    else:
        c.key, c.value = arrays.inputs(case.key), arrays.inputs(case.value)
    c.slots = arrays.from_host(case.slots)
    c.swa_buffer = None if case.swa is None else arrays.from_host(case.swa_guarded)
    c.swa = None if case.swa is None else c.swa_buffer[1:1 + len(case.swa)]
    c.k_scale = None if case.k_scale is None else arrays.from_host(case.k_scale)
    c.v_scale = None if case.v_scale is None else arrays.from_host(case.v_scale)
    return c
