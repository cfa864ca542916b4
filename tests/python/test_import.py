# SPDX-License-Identifier: MIT
"""What `import fp8kv` costs and loads (issue #33 item 4): torch is imported
only when a torch tensor arrives or the operator is asked for, and
torch.ops.fp8kv.reshape_and_cache is there for a PyTorch user who imports
torch first, who passes a tensor, or who calls fp8kv.register_torch_ops().
Each case runs in a fresh interpreter, since this one has imported both."""

import os
import subprocess
import sys

import pytest

HAS_TORCH = subprocess.run([sys.executable, "-c", "import torch"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not importable")


def run(code):
    env = dict(os.environ)
    env.pop("FP8KV_NO_TORCH", None)
    out = subprocess.run([sys.executable, "-B", "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stdout
    return out.stdout.split()


WRITE = """
import numpy as np
k = np.ones((1, 1, 8), np.float32)
kc = np.zeros((2, 4, 1, 8), np.uint8)
fp8kv.reshape_and_cache(k, k, kc, kc.copy(), np.zeros(1, np.int64), format="e4m3fn")
assert (kc[0, 0] == 0x38).all() and (kc[1:] == 0).all()
fp8kv.quantize(k.reshape(-1), format="e5m2")
"""


def test_import_and_numpy_calls_leave_torch_alone():
    assert run("import sys, fp8kv\n" + WRITE + "fp8kv.backends(); fp8kv.formats()\n"
               "print('torch' in sys.modules)") == ["False"]


@needs_torch
def test_torch_imported_first_gives_the_operator_at_import():
    assert run("import torch, fp8kv\nprint(hasattr(torch.ops.fp8kv, 'reshape_and_cache'))"
               ) == ["True"]


@needs_torch
def test_the_first_tensor_registers_the_operator():
    code = """
import fp8kv, torch
k = torch.ones(1, 1, 8)
kc = torch.zeros(2, 4, 1, 8, dtype=torch.uint8)
fp8kv.reshape_and_cache(k, k, kc, kc.clone(), torch.zeros(1, dtype=torch.int64),
                        format="e4m3fn")
print(int(kc[0, 0, 0, 0]), hasattr(torch.ops.fp8kv, "reshape_and_cache"))
"""
    assert run(code) == ["56", "True"]


@needs_torch
def test_register_torch_ops_imports_torch_and_returns_the_operator():
    code = """
import sys, fp8kv
op = fp8kv.register_torch_ops()
import torch
print('torch' in sys.modules, op is fp8kv.register_torch_ops(),
      str(op) == str(torch.ops.fp8kv.reshape_and_cache))
"""
    assert run(code) == ["True", "True", "True"]


def test_fp8kv_no_torch_is_retired():
    """The lazy import makes the opt-out pointless: no code reads it."""
    import fp8kv
    here = os.path.dirname(fp8kv.__file__)
    for root, _, files in os.walk(here):
        for f in files:
            if f.endswith(".py"):
                with open(os.path.join(root, f)) as fh:
                    assert "FP8KV_NO_TORCH" not in fh.read(), f
