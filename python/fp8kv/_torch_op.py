# SPDX-License-Identifier: MIT
"""torch.ops.fp8kv.reshape_and_cache: the cache write as a torch operator that
mutates the caches (and the scale caches, counters and amax outputs), with a
fake implementation, so that torch.compile(fullgraph=True) traces a step that
calls it and CUDA graphs capture it; torch.ops.fp8kv.reshape_and_cache_grouped
and torch.ops.fp8kv.concat_and_cache_mla likewise for the grouped and MLA
writes.

Each operator's schema, kernel and fake are built from its write's table
(_signature.PARAMS, _grouped.PARAMS, _mla.PARAMS: P-ONE-SIGNATURE).  The
operator is defined with torch.library.Library and
given CPU and CUDA kernels, as the engines register theirs.  torch >= 2.4
gets its fake through torch.library.register_fake; an older torch gets Meta
kernels (torch 1.13 runs it eagerly).  torch.library.custom_op is not used:
its Python ADInplaceOrView kernel indexes the mutated arguments by position
and fails (IndexError) when torch.ops calls it with optional arguments left
at their defaults.

Registration happens when torch is adopted (P-LAZY-TORCH): at `import fp8kv`
if torch was imported first, on the first torch tensor fp8kv meets, or by
fp8kv.register_torch_ops().
"""

from . import _signature, _torch

_keep = []  # the Library object, which unregisters the operator when freed


def _devices_checked(params):
    """The fake's one check: every tensor on the first one's device.  torch
    1.13 sends a call with one meta tensor among CPU ones to the Meta
    kernel, which must not return as if it had written."""
    first = params[0].name
    tensors = tuple(p.name for p in params if p.type == "Tensor")

    def check(**args):
        dev = args[first].device
        for name in tensors:
            x = args[name]
            if x is not None and x.device != dev:
                raise ValueError("%s: on %s, but %s is on %s" % (name, x.device, first, dev))
    return check


_FAKE_DOC = """Writes nothing and returns nothing: all the operator's effect is the
mutation of its (a!)..(h!) arguments.  Refuses tensors on different devices."""


def register(kernel, name="reshape_and_cache", params=None):
    """Registers fp8kv::NAME (reshape_and_cache by default) with `kernel`
    (the write, taking its table's arguments in their order, as torch
    passes them; params, _signature.PARAMS by default) as its CPU and CUDA
    kernel and returns the operator, or None where torch cannot take it."""
    torch = _torch.torch
    if torch is None or not hasattr(torch, "library"):
        return None
    try:  # registered already, by another copy of the package
        return getattr(torch.ops.fp8kv, name)
    except (AttributeError, RuntimeError):
        pass
    params = _signature.PARAMS if params is None else params
    every = len(params)      # torch passes them all by position
    fake = _signature.function(name, _FAKE_DOC, _devices_checked(params), positional=every,
                               params=params)
    # one Library for the namespace: torch 1.13 has no "FRAGMENT" kind
    lib = _keep[0] if _keep else torch.library.Library("fp8kv", "DEF")
    lib.define(name + _signature.schema(params))
    for key in ("CPU", "CUDA"):
        lib.impl(name, kernel, key)
    if hasattr(torch.library, "register_fake"):
        torch.library.register_fake("fp8kv::" + name, fake, lib=lib)
    else:
        # Meta tensors pass AutogradMeta first, which has no fallthrough in
        # torch 1.13; the fake serves both.
        for key in ("Meta", "AutogradMeta"):
            lib.impl(name, fake, key)
    if not _keep:
        _keep.append(lib)
    return getattr(torch.ops.fp8kv, name)
