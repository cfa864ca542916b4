# SPDX-License-Identifier: MIT
"""Cached plans: the hot path of a write (P-PLAN-CACHE).

A write's checks and its descriptor depend on what its arguments are --
each tensor's dtype, device, shape and strides, each string, each number
scale's fp32 bits -- and, for the outputs, on whether torch lets them be
written now.  Only the data pointers change from one decode step to the
next.  hot() builds, from a table of parameters (_signature.PARAMS, or a
later write's own), a function that reads exactly that from each argument,
looks the plan up by it, and packs the pointers between the plan's
constant bytes; on a miss, or for any argument it does not read itself
(numpy arrays, typed() wrappers, tensor subclasses, non-strided tensors,
numbers other than a float, strings of a str subclass), it calls the
write's full plan(), which checks everything and names what it refuses,
and caches the result.

What a cached plan may not skip stays per call: whether torch lets each
output be written now (P-ARRAYS: an inference tensor outside inference
mode, or an output that requires grad under grad mode, leaves the fast
path, and plan() refuses it), the pointers, the stream, and what the
library checks itself on every call (alignment, overlaps, slots).  A plan
that needed a temporary (a contiguous copy of a strided mapping, a scale
made during a CUDA-graph capture) is not cached.  A key holds no tensor:
dtypes, devices, shapes, strides, strings and bytes only.
"""

import ctypes
import struct

from . import _backends, _capi, _signature, _torch

MAX_PLANS = 256   # a full cache starts again: a prefill of many token counts


class _Miss(Exception):
    """An argument the fast path leaves to plan()."""


class Plan:
    """A checked call without its pointers: the device, its open backend,
    the descriptor's bytes between the pointer fields, and the pointers
    plan() chose (those of number scales: fp32 tensors that the scale cache
    of _arrays keeps for the process's life, P-SCALE-BITS)."""
    __slots__ = ("dev", "handle", "segments", "fixed")


class Descriptor:
    """A write's C descriptor as pointers and constant bytes: each tensor
    parameter of the table has a pointer field of its name, which takes
    that argument's data pointer; everything between them is constant
    within a plan.  One struct call lays out the whole descriptor from both.
    Raises ImportError unless pointer fields and tensor parameters match
    one for one: a pointer a plan kept from its first call would be stale
    on the next."""

    def __init__(self, structure, params):
        tensors = {p.name for p in params if p.type == "Tensor"}
        pointers = {name for name, ctype in structure._fields_
                    if issubclass(ctype, ctypes.c_void_p)}
        if pointers != tensors:
            raise ImportError("fp8kv: %s's pointer fields %s and the tensor parameters %s "
                              "differ" % (structure.__name__, sorted(pointers - tensors),
                                          sorted(tensors - pointers)))
        fmt, at, order = "=", 0, []
        self.spans, self.offsets = [], {}
        for name, ctype in structure._fields_:
            if name not in tensors:
                continue
            field = getattr(structure, name)
            if field.offset > at:
                fmt += "%ds" % (field.offset - at)
                order.append("s[%d]" % len(self.spans))
                self.spans.append((at, field.offset))
            fmt += {4: "I", 8: "Q"}[field.size]
            order.append("p_" + name)
            self.offsets[name] = field.offset
            at = field.offset + field.size
        size = ctypes.sizeof(structure)
        if at < size:
            fmt += "%ds" % (size - at)
            order.append("s[%d]" % len(self.spans))
            self.spans.append((at, size))
        self.pack = struct.Struct(fmt).pack
        self.pack_args = ", ".join(order)      # source text: pointers p_NAME, spans s[i]
        self._word = struct.Struct({4: "=I", 8: "=Q"}[ctypes.sizeof(ctypes.c_void_p)])

    def plan(self, dev, desc):
        """The Plan of a descriptor that plan() made for device key dev."""
        p = Plan()
        p.dev, p.handle = dev, _backends.handle(dev)
        p.segments = tuple(desc[a:b] for a, b in self.spans)
        p.fixed = {name: self._word.unpack_from(desc, off)[0]
                   for name, off in self.offsets.items()}
        return p


def _reads(p, numbers):
    """Source text that reads argument p into m_NAME (its part of the key)
    and p_NAME (its pointer), or raises _Miss."""
    n = p.name
    if p.type == "str":
        return ["if %s is not None and type(%s) is not str:" % (n, n), "    raise _Miss"]
    lines, tensor = [], "if type(%s) is _T and %s.layout is _S:" % (n, n)
    if p.default is not _signature.REQUIRED:
        lines += ["if %s is None:" % n, "    m_%s = None" % n, "    p_%s = 0" % n]
        tensor = "el" + tensor
    lines.append(tensor)
    if p.written:
        # what _arrays.describe() refuses to write, asked on every call;
        # inside inference mode (an engine's step) is_inference() is not
        lines += ["    if %s.requires_grad and _grad() or not _inference() and "
                  "%s.is_inference():" % (n, n), "        raise _Miss"]
    lines += ["    m_%s = (%s.dtype, %s.device, %s.shape, %s.stride())" % (n, n, n, n, n),
              "    p_%s = %s.data_ptr()" % (n, n)]
    if n in numbers:
        # a float's key is its fp32 bits (P-SCALE-BITS), its pointer the
        # plan's; OverflowError beyond fp32 leaves it to plan()
        lines += ["elif type(%s) is float:" % n, "    m_%s = _f32_bits(%s)" % (n, n),
                  "    p_%s = None" % n]
    return lines + ["else:", "    raise _Miss"]


def hot(name, doc, plan, descriptor, call, plans, *, positional=_signature.POSITIONAL,
        traced=None, prepare=False, module=__name__):
    """The write `name` with the table's parameters (the first `positional`
    positional), on cached plans: plan(**args) -> (device key, descriptor
    bytes, temporaries) is the full check, call(handle, descriptor,
    stream) -> status the library's function, plans the cache (a dict,
    shared by the functions of one write).  With traced, a call while
    torch.compile traces goes to traced(**args).  prepare=True makes the
    same function return (handle, descriptor, stream, what to keep) instead
    of calling: the Python work alone, for dev/py_call_cost.py."""
    params = _signature.PARAMS
    numbers = _signature.numbers(params)
    header, call_text = _signature.signature_text(name, positional)
    body = []
    if traced is not None:
        body += ["if _torch.compiling():", "    return _traced(%s)" % call_text]
    first = next(p.name for p in params if p.type == "Tensor")
    # numpy and typed() calls: straight to plan(), without raising _Miss
    body += ["if type(%s) is not _T:" % first, "    return _slow(None, %s)" % call_text,
             "k = plan = None", "try:"]
    for p in params:
        body += ["    " + line for line in _reads(p, numbers)]
    key = ", ".join("m_" + p.name if p.type == "Tensor" else p.name for p in params)
    body += ["    k = (%s)" % key, "    plan = _plans.get(k)",
             "except Exception:   # _Miss, or anything a read raised: plan() names it",
             "    pass",
             "if plan is None:",
             "    return _slow(k, %s)" % call_text]
    for n in numbers:
        body += ["if p_%s is None:" % n, "    p_%s = plan.fixed[%r]" % (n, n)]
    body += ["s = plan.segments", "desc = _pack(%s)" % descriptor.pack_args]
    if prepare:
        body += ["return plan.handle, desc, _stream(plan.dev), ()"]
    else:
        body += ["status = _call(plan.handle, desc, _stream(plan.dev))",
                 "if status:", "    _raise_for(status)"]

    def slow(k, **args):
        dev, desc, keep = plan(**args)
        if k is not None and not keep:
            if len(plans) >= MAX_PLANS:
                plans.clear()
            plans[k] = descriptor.plan(dev, desc)
        if prepare:
            return _backends.handle(dev), desc, _backends.stream(dev), keep
        _capi.raise_for(call(_backends.handle(dev), desc, _backends.stream(dev)))
        del keep

    source = header + "\n" + "".join("    %s\n" % line for line in body)
    namespace = dict(_defaults=_signature.defaults(), _traced=traced, _torch=_torch, _Miss=_Miss,
                     _f32_bits=struct.Struct("=f").pack, _plans=plans, _slow=slow,
                     _pack=descriptor.pack, _call=call, _stream=_backends.stream,
                     _raise_for=_capi.raise_for, _T=_torch.Tensor, _S=None, _grad=None,
                     _inference=None)

    def adopted(torch):
        namespace.update(_T=torch.Tensor, _S=torch.strided, _grad=torch.is_grad_enabled,
                         _inference=torch.is_inference_mode_enabled)

    exec(compile(source, "<fp8kv %s>" % name, "exec"), namespace)
    _torch.on_adopt(adopted)
    fn = namespace[name]
    fn.__doc__, fn.__module__ = doc, module
    return fn
