# SPDX-License-Identifier: MIT
"""Writers under test: how a TARGET is found, how each calling convention
is called, and the arrays (numpy, or torch on a device) they are given.

Conventions:
  reference  fn(key, value, key_cache, value_cache, slot_mapping, k_scale,
             v_scale, **options): caches [blocks, block_size, heads, dim]
             (NHD) or [blocks, heads, block_size, dim] (HND; the layout
             says where the heads are; block_size == heads happens only in
             NHD calls); k_scale and v_scale None (no scale) or float32
             arrays of 1 or heads values.  Keyword options are passed only
             when needed: format= (an FP8 format name) when the cache is
             uint8, swa_mapping= with --swa, overflow="nonsaturating" in
             that mode.
  sglang     fn(key, value, key_cache, value_cache, slot_mapping,
             swa_slot_mapping, k_scale, v_scale): SGLang's
             launch_reshape_and_cache_flash; NHD, one-value scales or None.
  vllm       fn(key, value, key_cache, value_cache, slot_mapping,
             kv_cache_dtype, k_scale, v_scale): vLLM's reshape_and_cache_flash;
             caches NHD-shaped (HND memory as permuted strides),
             kv_cache_dtype "fp8" or "fp8_e5m2", scale tensors always.
  fp8kv      fp8kv.reshape_and_cache's own signature (every option).
Arrays (V-CONFORM-ARRAYS): "numpy" passes numpy arrays, bf16 as uint16
bits and caches as uint8 with format=; "torch" passes torch tensors on the
device, bf16 as torch.bfloat16, caches as torch's float8 dtype of the format
where this torch has it, else uint8 (the reference convention then passes
format=; sglang and vllm state it through the target module's
set_fp8_format(), as fp8kv.compat's drop-ins take it).  The default is
torch for the sglang and vllm conventions and for any device but the CPU,
numpy otherwise: a documented choice, not whether torch is installed.
Inputs may be views into larger buffers, caches views with padding.
"""

import importlib
import importlib.util
import os
import sys

import numpy as np

from .. import formats as fp8kv_formats
from .. import reshape_and_cache as fp8kv_reshape_and_cache
from .. import synchronize as fp8kv_synchronize
from .. import typed
from .conventions import CONVENTIONS
from .errors import UsageError
from .guard import FP8KV_MODE
from .sparse import SparseBytes, gaps, host_changes



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


def parse(target, convention=None):
    """(target without suffix, convention or None) of a TARGET string; no
    import."""
    if not isinstance(target, str) or not target:
        raise UsageError("target: expected 'module:function' or 'fp8kv', got %r" % (target,))
    target, _, suffix = target.partition("@")
    convention = convention or suffix or None
    if target != "fp8kv":
        module, sep, attr = target.rpartition(":")
        if not sep or not module or not attr:
            raise UsageError("target: %r is not 'module:function' (or 'fp8kv')" % target)
    if convention is not None and convention not in CONVENTIONS:
        raise UsageError("convention: %r is not one of %s"
                         % (convention, ", ".join(CONVENTIONS)))
    return target, convention


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
        label = target.partition("@")[0] if isinstance(target, str) else target
        target, convention = parse(target, convention)
        if target == "fp8kv":
            fn = fp8kv_reshape_and_cache
        else:
            module, _, attr = target.rpartition(":")
            try:
                obj = _import(module)
            except UsageError:
                raise
            except BaseException as e:    # a target that exits while importing, too
                raise UsageError("target: cannot import %s: %s: %s"
                                 % (module, type(e).__name__, e)) from None
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
    return fn, convention, label


# ---- arrays ----------------------------------------------------------------------

def _torch():
    # conform's own children with numpy arrays set this: torch costs seconds
    if os.environ.get("FP8KV_CONFORM_NO_TORCH"):
        return None
    try:
        import torch
        return torch
    except Exception:
        return None


class NumpyArrays:
    """Host numpy arrays; caches are uint8 (numpy has no float8)."""

    name, device = "numpy", "cpu"
    can_sparse = True

    def has_float8(self, fmt):
        return False

    def from_host(self, a):
        return np.array(a, copy=True)

    def to_host(self, a):
        return np.asarray(a)

    def alloc(self, template, sparse):
        """A buffer holding a template (a guard.Buffer): (array, sparse memory
        or None)."""
        if sparse:
            mem = SparseBytes(template.total)
            for s, d in template.segments:
                mem.array[s:s + len(d)] = d
            return self.wrap(mem.array), mem
        return self.wrap(template.materialise()), None

    def wrap(self, host_bytes):
        return host_bytes

    def bytes_of(self, buf):
        return buf

    def view(self, buf, offset, shape, strides, itemsize, fp8=None):
        """A view into a uint8 buffer: shape and byte strides from offset;
        float32 where itemsize is 4, the format's float8 dtype where fp8
        names one this array type has."""
        base = buf[offset:]
        if itemsize == 4:
            base = base.view(np.float32)
        return np.lib.stride_tricks.as_strided(base, shape, strides)

    def changes(self, buf, template, mem):
        return host_changes(self.bytes_of(buf), template, mem)

    def input(self, ib):
        """An input: a view into the device copy of its buffer (returned too)."""
        flat = self.from_host(ib.flat)
        size = flat.itemsize
        view = np.lib.stride_tricks.as_strided(flat[ib.offset:], ib.shape,
                                               tuple(s * size for s in ib.strides))
        return flat, view

    def permute_hnd_as_nhd(self, a):
        return a.swapaxes(1, 2)

    def synchronize(self):
        pass


class TorchArrays(NumpyArrays):
    """torch tensors on a device; caches are float8 where this torch has the
    format's dtype, else uint8."""

    name = "torch"

    def __init__(self, device):
        torch = self.torch = _torch()
        if torch is None:
            raise UsageError("arrays: torch arrays, but torch is not importable here")
        try:
            dev = torch.device(device)
        except Exception:
            raise UsageError("device: %r is not a device (cpu, or cuda[:N])" % (device,)) \
                from None
        if dev.type not in ("cpu", "cuda"):
            raise UsageError("device: %r: fp8kv.conform runs writers on cpu or cuda[:N] "
                             "devices" % (device,))
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise UsageError("device: %s, but torch sees no CUDA device" % device)
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                raise UsageError("device: %s, but torch sees %d CUDA device(s)"
                                 % (device, torch.cuda.device_count()))
        self.device = str(dev)
        self.can_sparse = dev.type == "cpu"
        self.fp8 = {f.name: getattr(torch, "float8_" + f.name) for f in fp8kv_formats()
                    if isinstance(getattr(torch, "float8_" + f.name, None), torch.dtype)}

    def has_float8(self, fmt):
        return fmt in self.fp8

    def from_host(self, a):
        torch = self.torch
        a = np.ascontiguousarray(a)
        if a.dtype == np.uint16:
            t = torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
        else:
            t = torch.from_numpy(a.copy())
        return t.to(self.device)

    def to_host(self, a):
        """A host numpy copy; bf16 as uint16 bits, float8 as uint8 codes."""
        torch = self.torch
        t = a.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(np.uint16)
        if t.element_size() == 1 and t.dtype != torch.uint8:
            return t.view(torch.uint8).numpy()
        return t.numpy()

    def wrap(self, host_bytes):
        t = self.torch.from_numpy(host_bytes)
        return t if self.device == "cpu" else t.to(self.device)

    def alloc(self, template, sparse):
        if sparse or self.device == "cpu" or template.dense:
            return NumpyArrays.alloc(self, template, sparse)
        return device_alloc(self.torch, template, self.device), None

    def bytes_of(self, buf):
        return buf.numpy()

    def view(self, buf, offset, shape, strides, itemsize, fp8=None):
        torch = self.torch
        if itemsize == 4:
            base = buf.view(torch.float32)
            return base.as_strided(shape, tuple(s // 4 for s in strides), offset // 4)
        v = buf.as_strided(shape, strides, offset)
        return v.view(self.fp8[fp8]) if fp8 in self.fp8 else v

    def changes(self, buf, template, mem):
        if self.device == "cpu":
            return host_changes(buf.numpy(), template, mem)
        return device_changes(self.torch, buf, template)

    def input(self, ib):
        flat = self.from_host(ib.flat)
        return flat, flat.as_strided(ib.shape, ib.strides, ib.offset)

    def permute_hnd_as_nhd(self, a):
        return a.transpose(1, 2)

    def synchronize(self):
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize(self.device)


def device_alloc(torch, template, device):
    """A buffer holding a template on a device: zeros, then the segments
    (a big extra's cache, where the device has room for it)."""
    buf = torch.zeros(template.total, dtype=torch.uint8, device=device)
    for s, d in template.segments:
        buf[s:s + len(d)] = torch.from_numpy(d).to(device)
    return buf


def device_changes(torch, buf, template):
    """(positions, bytes) where a device buffer differs from its template,
    found on the device: the segments compared, the gaps scanned for
    non-zero bytes; only those bytes come to the host."""
    pos, val = [], []
    spans = [(s, s + len(d), torch.from_numpy(d).to(buf.device)) for s, d in template.segments]
    spans += [(a, b, None) for a, b in gaps(template)]
    for a, b, d in spans:
        part = buf[a:b]
        i = torch.nonzero(part != d if d is not None else part).flatten()
        if i.numel():
            pos.append(i.cpu().numpy().astype(np.int64) + a)
            val.append(part[i].cpu().numpy())
    if not pos:
        return np.zeros(0, np.int64), np.zeros(0, np.uint8)
    p, v = np.concatenate(pos), np.concatenate(val)
    order = np.argsort(p, kind="stable")
    return p[order], v[order]


def default_arrays(convention, device):
    """The documented default (V-CONFORM-ARRAYS)."""
    if CONVENTIONS[convention].arrays == "torch" or (device or "cpu") != "cpu":
        return "torch"
    return "numpy"


def arrays_for(arrays, device, convention="reference"):
    if arrays is None:
        arrays = default_arrays(convention, device)
    if arrays == "numpy":
        if device not in (None, "cpu"):
            raise UsageError("arrays: numpy arrays live on the cpu, not %s" % device)
        if convention in ("sglang", "vllm"):
            raise UsageError("arrays: the %s convention takes torch tensors" % convention)
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
                         "drop-ins have one)" % getattr(fn, "__name__", "target"))
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
        fn(key, value, c.key_cache, c.value_cache, c.slots, swa_mapping=c.swa,
           scale=FP8KV_MODE[c.mode], k_scale=c.k_scale, v_scale=c.v_scale,
           k_scale_cache=c.k_scale_cache, v_scale_cache=c.v_scale_cache, overflow=c.overflow,
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


def make_call(req, arrays):
    """The target's arrays for a call request (executor.Request): the cache
    buffers (by name, with their sparse memory), the input buffers, and the
    views the writer gets."""
    c = Call()
    c.arrays, c.fmt, c.overflow, c.layout, c.mode = arrays, req.fmt, req.overflow, \
        req.layout, req.mode
    c.float8 = arrays.has_float8(req.fmt)
    c.buffers, c.memory, views = {}, {}, {}
    for name, (geo, template) in req.caches.items():
        buf, mem = arrays.alloc(template, req.sparse)
        c.buffers[name], c.memory[name] = buf, mem
        shape, strides = geo.shape_strides()
        views[name] = arrays.view(buf, geo.before, shape, strides, geo.itemsize,
                                  None if geo.itemsize == 4 else req.fmt)
    c.key_cache, c.value_cache = views["key"], views["value"]
    c.k_scale_cache, c.v_scale_cache = views.get("k_scale_cache"), views.get("v_scale_cache")
    c.inputs = {}
    for name, ib in req.inputs.items():
        flat, view = arrays.input(ib)
        c.inputs[name] = flat
        setattr(c, name, view)
    c.inputs["slot_mapping"] = c.slots = arrays.from_host(req.slots)
    c.swa = None
    if req.swa_guarded is not None:
        c.inputs["swa_mapping"] = buf = arrays.from_host(req.swa_guarded)
        c.swa = buf[1:1 + req.swa_length]
    c.k_scale = c.v_scale = None
    if req.k_scale is not None:
        c.inputs["k_scale"] = c.k_scale = arrays.from_host(req.k_scale)
        c.inputs["v_scale"] = c.v_scale = arrays.from_host(req.v_scale)
    return c

