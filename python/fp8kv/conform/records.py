# SPDX-License-Identifier: MIT
"""What the MLA and grouped runs share: loading a TARGET, fp8kv's own
writers under those conventions, and torch arrays on a device for writers
that take tensors (--arrays torch), copied back into the run's host buffers
after each call."""

import numpy as np

from .errors import UsageError
from .targets import _import

MLA_SIGNATURE = "(kv_c, k_pe, kv_cache, slot_mapping, kv_cache_dtype, scale)"
GROUPED_SIGNATURE = ("fp8kv.reshape_and_cache_grouped's keywords (key, value, key_cache, "
                     "value_cache, slot_mapping, rule, group_size, k_scales, v_scales, "
                     "k_global, v_global, format)")


def fp8kv_mla(kv_c, k_pe, kv_cache, slot_mapping, kv_cache_dtype, scale):
    """fp8kv.concat_and_cache_mla under vLLM's signature (numpy, bf16 bits)."""
    import fp8kv
    if isinstance(kv_c, np.ndarray):     # numpy has no bfloat16: tag the bits
        kv_c, k_pe = fp8kv.typed(kv_c, "bf16"), fp8kv.typed(k_pe, "bf16")
    kw = dict(kv_c=kv_c, k_pe=k_pe, kv_cache=kv_cache, slot_mapping=slot_mapping)
    if kv_cache_dtype == "fp8_ds_mla":
        kw.update(kind="ds_mla", format="e4m3fn")
    else:
        kw.update(kind="plain", scale="tensor", k_scale=scale,
                  format="e5m2" if kv_cache_dtype == "fp8_e5m2" else "e4m3fn")
    fp8kv.concat_and_cache_mla(**kw)


def load(target, kind):
    """(callable, label) of a TARGET for an MLA or grouped run: "fp8kv",
    "module:function" or "path/file.py:function"."""
    if callable(target):
        return target, getattr(target, "__name__", repr(target))
    if not isinstance(target, str) or not target:
        raise UsageError("target: expected 'module:function' or 'fp8kv', got %r" % (target,))
    target = target.partition("@")[0]
    if target == "fp8kv":
        if kind == "mla":
            return fp8kv_mla, "fp8kv"
        import fp8kv
        return fp8kv.reshape_and_cache_grouped, "fp8kv"
    module, sep, attr = target.rpartition(":")
    if not sep or not module or not attr:
        raise UsageError("target: %r is not 'module:function' (or 'fp8kv')" % target)
    try:
        obj = _import(module)
    except UsageError:
        raise
    except BaseException as e:
        raise UsageError("target: cannot import %s: %s: %s" % (module, type(e).__name__, e)) \
            from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError("target: %s has no attribute %r" % (module, attr))
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError("target: %s is not callable" % target)
    return obj, target


class TorchCall:
    """The keywords of a call as torch tensors on a device: arrays that are
    views into one of the host buffers become views (same offset and
    strides) into a device copy of that buffer; uint16 inputs are bf16.
    back() copies every device buffer and input into the host arrays."""

    def __init__(self, kwargs, buffers, device):
        try:
            import torch
        except Exception as e:
            raise UsageError("arrays: torch cannot be imported (%s)" % e) from None
        self.torch, self.pairs, self.kwargs = torch, [], {}
        dev = {}
        for name, v in kwargs.items():
            if not isinstance(v, np.ndarray):
                self.kwargs[name] = v
                continue
            host = next((b for b in buffers if np.shares_memory(v, b)), None)
            if host is not None:
                if id(host) not in dev:
                    dev[id(host)] = torch.from_numpy(host.copy()).to(device)
                    self.pairs.append((host, dev[id(host)]))
                base = dev[id(host)]
                off = v.__array_interface__["data"][0] - host.__array_interface__["data"][0]
                item = v.itemsize
                t = torch.as_strided(base, v.shape, tuple(s // 1 for s in v.strides), off) \
                    if item == 1 else torch.as_strided(
                        base.view(_torch_dtype(torch, v.dtype)), v.shape,
                        tuple(s // item for s in v.strides), off // item)
                self.kwargs[name] = t
            else:
                a = np.ascontiguousarray(v)
                if a.dtype == np.uint16:
                    t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
                else:
                    t = torch.from_numpy(a.copy())
                t = t.to(device)
                self.pairs.append((v, t))
                self.kwargs[name] = t

    def back(self):
        torch = self.torch
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        for host, t in self.pairs:
            c = t.detach().cpu().contiguous()
            if c.dtype == torch.bfloat16:
                c = c.view(torch.int16)
            host[...] = c.numpy().view(host.dtype).reshape(host.shape)


def _torch_dtype(torch, dtype):
    return {np.dtype(np.float32): torch.float32, np.dtype(np.uint8): torch.uint8,
            np.dtype(np.int64): torch.int64}[np.dtype(dtype)]


def invoke(writer, kwargs, buffers, arrays="numpy", device="cpu"):
    """Calls writer(**kwargs) with numpy arrays, or with torch tensors on
    device whose results are copied back into the host arrays."""
    if arrays == "numpy":
        writer(**kwargs)
        return
    call = TorchCall(kwargs, buffers, device)
    try:
        writer(**call.kwargs)
    finally:
        call.back()
