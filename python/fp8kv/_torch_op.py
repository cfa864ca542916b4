# SPDX-License-Identifier: MIT
"""torch.ops.fp8kv.reshape_and_cache: the cache write as a torch operator that
mutates the caches (and the scale caches, counters and amax outputs), with a
fake implementation, so that torch.compile(fullgraph=True) traces a step that
calls it and CUDA graphs capture it.

torch >= 2.4 gets torch.library.custom_op and register_fake.  An older torch
gets a torch.library.Library definition with CPU, CUDA and Meta kernels (the
Meta one serves as the fake); torch 1.13 runs it eagerly.
"""

from typing import Optional

from ._types import torch

# The arguments the operator writes.
MUTATED = ("key_cache", "value_cache", "k_scale_cache", "v_scale_cache",
           "overflow_count", "nan_count", "k_amax", "v_amax")

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
    Tensor = torch.Tensor

    def kernel(key, value, key_cache, value_cache, slot_mapping, swa_mapping=None,
               scale=None, k_scale=None, v_scale=None, k_scale_cache=None,
               v_scale_cache=None, overflow="saturate", overflow_count=None,
               nan_count=None, k_amax=None, v_amax=None, format=None, layout=None):
        write(key, value, key_cache, value_cache, slot_mapping, swa_mapping, scale,
              k_scale, v_scale, k_scale_cache, v_scale_cache, overflow, overflow_count,
              nan_count, k_amax, v_amax, format, layout)

    if hasattr(torch.library, "custom_op") and hasattr(torch.library, "register_fake"):
        def reshape_and_cache(
                key: Tensor, value: Tensor, key_cache: Tensor, value_cache: Tensor,
                slot_mapping: Tensor, swa_mapping: Optional[Tensor] = None,
                scale: Optional[str] = None, k_scale: Optional[Tensor] = None,
                v_scale: Optional[Tensor] = None, k_scale_cache: Optional[Tensor] = None,
                v_scale_cache: Optional[Tensor] = None, overflow: str = "saturate",
                overflow_count: Optional[Tensor] = None, nan_count: Optional[Tensor] = None,
                k_amax: Optional[Tensor] = None, v_amax: Optional[Tensor] = None,
                format: Optional[str] = None, layout: Optional[str] = None) -> None:
            kernel(key, value, key_cache, value_cache, slot_mapping, swa_mapping, scale,
                   k_scale, v_scale, k_scale_cache, v_scale_cache, overflow,
                   overflow_count, nan_count, k_amax, v_amax, format, layout)

        op = torch.library.custom_op("fp8kv::reshape_and_cache", reshape_and_cache,
                                     mutates_args=MUTATED)
        op.register_fake(_fake)
        _keep.append(op)
    else:
        lib = torch.library.Library("fp8kv", "DEF")
        lib.define("reshape_and_cache" + SCHEMA)
        for key in ("CPU", "CUDA"):
            lib.impl("reshape_and_cache", kernel, key)
        # Meta tensors pass AutogradMeta first, which has no fallthrough in
        # torch 1.13; the fake serves both.
        for key in ("Meta", "AutogradMeta"):
            lib.impl("reshape_and_cache", _fake, key)
        _keep.append(lib)
    return torch.ops.fp8kv.reshape_and_cache
