# SPDX-License-Identifier: MIT
"""torch.ops.fp8kv.reshape_and_cache: the cache write as a torch operator that
mutates the caches (and the scale caches, counters and amax outputs), with a
fake implementation, so that torch.compile(fullgraph=True) traces a step that
calls it and CUDA graphs capture it.

The schema, the kernel and the fake are built from _signature.PARAMS
(P-ONE-SIGNATURE).  The operator is defined with torch.library.Library and
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


def _check_devices(**args):
    """The fake's one check: every tensor on key's device.  torch 1.13 sends
    a call with one meta tensor among CPU ones to the Meta kernel, which
    must not return as if it had written."""
    dev = args["key"].device
    for p in _signature.PARAMS:
        x = args[p.name]
        if p.type == "Tensor" and x is not None and x.device != dev:
            raise ValueError("%s: on %s, but key is on %s" % (p.name, x.device, dev))


_FAKE_DOC = """Writes nothing and returns nothing: all the operator's effect is the
mutation of its (a!)..(h!) arguments.  Refuses tensors on different devices."""


def register(kernel):
    """Registers fp8kv::reshape_and_cache with `kernel` (the cache write,
    taking the table's arguments in its order, as torch passes them) as its
    CPU and CUDA kernel and returns the operator, or None where torch cannot
    take it."""
    torch = _torch.torch
    if torch is None or not hasattr(torch, "library"):
        return None
    try:  # registered already, by another copy of the package
        return torch.ops.fp8kv.reshape_and_cache
    except (AttributeError, RuntimeError):
        pass
    every = len(_signature.PARAMS)      # torch passes them all by position
    fake = _signature.function("reshape_and_cache", _FAKE_DOC, _check_devices,
                               positional=every)
    lib = torch.library.Library("fp8kv", "DEF")
    lib.define("reshape_and_cache" + _signature.SCHEMA)
    for key in ("CPU", "CUDA"):
        lib.impl("reshape_and_cache", kernel, key)
    if hasattr(torch.library, "register_fake"):
        torch.library.register_fake("fp8kv::reshape_and_cache", fake, lib=lib)
    else:
        # Meta tensors pass AutogradMeta first, which has no fallthrough in
        # torch 1.13; the fake serves both.
        for key in ("Meta", "AutogradMeta"):
            lib.impl("reshape_and_cache", fake, key)
    _keep.append(lib)
    return torch.ops.fp8kv.reshape_and_cache
