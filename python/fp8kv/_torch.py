# SPDX-License-Identifier: MIT
"""torch, taken only when the caller has it (P-LAZY-TORCH): fp8kv never
imports torch by itself, since that takes seconds and halves the OpenMP
threads of the CPU backend.  torch is adopted -- its dtype tables built and
the operator registered -- the first time fp8kv meets a torch tensor (torch
is then imported already), at `import fp8kv` when torch was imported
first, or when load() is asked for (fp8kv.register_torch_ops()).

The attributes below are read through the module (_torch.torch,
_torch.Tensor), never imported by name, since adoption rebinds them.
"""

import sys


class _NoTensor:
    """Stands for torch.Tensor until torch is adopted: nothing is one."""
    __slots__ = ()


torch = None          # the module, once adopted
Tensor = _NoTensor    # torch.Tensor, once adopted
KINDS = {}            # torch dtype -> fp8kv kind
FP8 = {}              # FP8 format -> torch's float8 dtype, where torch has it
_on_adopt = []        # called with the module once it is adopted


def _never():
    return False


def _not_adopted():
    """compiling() before adoption: a compiled step has torch imported, so
    adopt it when it is there, and ask again."""
    if "torch" not in sys.modules:
        return False
    adopt()
    return compiling is not _not_adopted and compiling()


# torch.compiler.is_compiling once adopted: Dynamo folds it to True while it
# traces, so an eager call pays one cheap call and a traced one records the
# operator.
compiling = _not_adopted


def on_adopt(hook):
    """Calls hook(torch) when torch is adopted (now, if it is already)."""
    _on_adopt.append(hook)
    if torch is not None:
        hook(torch)


def adopt():
    """Adopts torch if it is imported already; returns the module or None."""
    global torch, Tensor, compiling
    if torch is not None:
        return torch
    t = sys.modules.get("torch")
    if t is None or not isinstance(getattr(t, "Tensor", None), type):
        return None      # absent, or its import still running
    for kind, name in (("f32", "float32"), ("f16", "float16"), ("bf16", "bfloat16"),
                       ("u8", "uint8"), ("i32", "int32"), ("i64", "int64"), ("u64", "uint64"),
                       ("e4m3fn", "float8_e4m3fn"), ("e4m3fnuz", "float8_e4m3fnuz"),
                       ("e5m2", "float8_e5m2"), ("e5m2fnuz", "float8_e5m2fnuz"),
                       ("i8", "int8"), ("e2m1", "float4_e2m1fn_x2"),
                       ("e8m0", "float8_e8m0fnu")):
        dtype = getattr(t, name, None)
        if isinstance(dtype, t.dtype):
            KINDS[dtype] = kind
            if name.startswith("float8_") and kind != "e8m0":
                FP8[kind] = dtype
    check = getattr(getattr(t, "compiler", None), "is_compiling", None)
    if check is None:
        check = getattr(getattr(t, "_dynamo", None), "is_compiling", _never)
    torch, Tensor, compiling = t, t.Tensor, check
    for hook in _on_adopt:
        hook(t)
    return t


def load():
    """Imports torch if it is importable, then adopts it; None if not."""
    if torch is None and "torch" not in sys.modules:
        try:
            __import__("torch")
        except Exception:  # absent, or broken in this environment
            return None
    return adopt()


def is_tensor(x):
    """Whether x is a torch tensor, without importing torch: a tensor can
    exist only where torch's module is loaded, which adopts it."""
    if torch is not None:
        return isinstance(x, Tensor)
    t = sys.modules.get("torch")
    return t is not None and isinstance(x, getattr(t, "Tensor", ())) and adopt() is not None
