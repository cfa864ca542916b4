# SPDX-License-Identifier: MIT
"""torch.ops.fp8kv.reshape_and_cache: the cache write as a torch operator that
mutates the caches (and the scale caches, counters and amax outputs), with a
fake implementation, so that torch.compile(fullgraph=True) traces a step that
calls it and CUDA graphs capture it.

The operator is defined from its schema with torch.library.Library and given
CPU and CUDA kernels, as the engines register theirs.  torch >= 2.4 gets its
fake through torch.library.register_fake; an older torch gets Meta kernels
(torch 1.13 runs it eagerly).  torch.library.custom_op is not used: its
Python ADInplaceOrView kernel indexes the mutated arguments by position and
fails (IndexError) when torch.ops calls it with optional arguments left at
their defaults.
"""

from ._types import torch

SCHEMA = ("(Tensor key, Tensor value, Tensor(a!) key_cache, Tensor(b!) value_cache, "
          "Tensor slot_mapping, Tensor? swa_mapping=None, str? scale=None, "
          "Tensor? k_scale=None, Tensor? v_scale=None, Tensor(c!)? k_scale_cache=None, "
          "Tensor(d!)? v_scale_cache=None, str overflow=\"saturate\", "
          "Tensor(e!)? overflow_count=None, Tensor(f!)? nan_count=None, "
          "Tensor(g!)? k_amax=None, Tensor(h!)? v_amax=None, str? format=None, "
          "str? layout=None) -> ()")

_keep = []  # the Library object, which unregisters the operator when freed


def _fake(key, value, key_cache, value_cache, slot_mapping, swa_mapping=None, scale=None,
          k_scale=None, v_scale=None, k_scale_cache=None, v_scale_cache=None,
          overflow="saturate", overflow_count=None, nan_count=None, k_amax=None,
          v_amax=None, format=None, layout=None):
    """Writes nothing and returns nothing: all the operator's effect is the
    mutation of its (a!)..(h!) arguments."""
    return None


def register(write):
    """Registers fp8kv::reshape_and_cache with `write` (the eager cache write,
    taking the schema's arguments in order) as its CPU and CUDA kernel and
    returns the operator, or None where torch cannot take it."""
    if torch is None or not hasattr(torch, "library"):
        return None
    try:  # registered already, by another copy of the package
        return torch.ops.fp8kv.reshape_and_cache
    except (AttributeError, RuntimeError):
        pass
    def kernel(key, value, key_cache, value_cache, slot_mapping, swa_mapping=None,
               scale=None, k_scale=None, v_scale=None, k_scale_cache=None,
               v_scale_cache=None, overflow="saturate", overflow_count=None,
               nan_count=None, k_amax=None, v_amax=None, format=None, layout=None):
        write(key, value, key_cache, value_cache, slot_mapping, swa_mapping, scale,
              k_scale, v_scale, k_scale_cache, v_scale_cache, overflow, overflow_count,
              nan_count, k_amax, v_amax, format, layout)

    lib = torch.library.Library("fp8kv", "DEF")
    lib.define("reshape_and_cache" + SCHEMA)
    for key in ("CPU", "CUDA"):
        lib.impl("reshape_and_cache", kernel, key)
    if hasattr(torch.library, "register_fake"):
        torch.library.register_fake("fp8kv::reshape_and_cache", _fake, lib=lib)
    else:
        # Meta tensors pass AutogradMeta first, which has no fallthrough in
        # torch 1.13; the fake serves both.
        for key in ("Meta", "AutogradMeta"):
            lib.impl("reshape_and_cache", _fake, key)
    _keep.append(lib)
    return torch.ops.fp8kv.reshape_and_cache
