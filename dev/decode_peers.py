#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""decode_peers.py - fp8kv's decode write against SGLang's Triton writer, in
one run, on one GPU (#38 item 3).

    python3 dev/decode_peers.py --sglang FILE [--rounds 15] [--json OUT]

FILE is a source file of an SGLang checkout holding
launch_reshape_and_cache_flash (read at run time, never kept in this tree).
For each decode shape (1, 64 and 256 tokens x 8 heads x 128, block size
16, bf16 -> e4m3fn) and scale mode (one, tensor), each writer is captured
as 64 calls in one CUDA graph over 16 rotating copies of its buffers
(B-ROTATE, B-GRAPH), and the graphs are replayed in turns, one sample each
per round (B-ROUNDS), with an empty Triton kernel's graph as the launch
floor; the table gives medians per call.  fp8kv runs through
torch.ops.fp8kv.reshape_and_cache (the binaries of .carry/ unless
FP8KV_LIBRARY and FP8KV_MODULE_PATH name others).
"""

import argparse
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CARRY = os.path.join(HERE, "..", ".carry")
sys.path.insert(0, os.path.join(HERE, "..", "python"))
if not os.environ.get("FP8KV_LIBRARY"):
    os.environ["FP8KV_LIBRARY"] = os.path.abspath(os.path.join(CARRY, "lib", "libfp8kv.so.1"))
if not os.environ.get("FP8KV_MODULE_PATH"):
    os.environ["FP8KV_MODULE_PATH"] = os.path.abspath(os.path.join(CARRY, "modules"))

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

import fp8kv  # noqa: E402

sys.path.insert(0, HERE)
import mla_peers as P  # noqa: E402  (graphs over rotating copies, B-ROUNDS)

COPIES, H, D, BS = P.COPIES, 8, 128, 16


@triton.jit
def _empty(x_ptr):
    pass


def load_sglang(path):
    spec = importlib.util.spec_from_file_location("sglang_writer", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.launch_reshape_and_cache_flash


def buffers(tokens, gen):
    blocks = max(64, 4 * tokens // BS)
    out = []
    for _ in range(COPIES):
        key = torch.randn((tokens, H, D), generator=gen).to(torch.bfloat16).cuda()
        value = torch.randn((tokens, H, D), generator=gen).to(torch.bfloat16).cuda()
        kc = torch.zeros((blocks, BS, H, D), dtype=torch.float8_e4m3fn, device="cuda")
        vc = torch.zeros_like(kc)
        slots = torch.randperm(blocks * BS, generator=gen)[:tokens].cuda()
        out.append((key, value, kc, vc, slots))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sglang", required=True)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json")
    a = ap.parse_args()
    sglang = load_sglang(a.sglang)
    fp8kv.register_torch_ops()
    op = torch.ops.fp8kv.reshape_and_cache
    gen = torch.Generator().manual_seed(5)
    scale = torch.tensor([0.037], device="cuda")
    print("%s, torch %s, triton %s, fp8kv %s" % (torch.cuda.get_device_name(), torch.__version__,
                                                 triton.__version__, fp8kv.version()))
    print("%-12s %-7s %9s %9s %9s %10s %10s %8s" % ("shape", "scale", "floor", "fp8kv", "sglang",
                                                   "fp8kv-fl", "sglang-fl", "ratio"))
    rows = []
    for tokens in (1, 64, 256):
        bufs = buffers(tokens, gen)
        for mode in ("one", "tensor"):
            s = scale if mode == "tensor" else None

            def ours(key, value, kc, vc, slots, s=s, mode=mode):
                op(key=key, value=value, key_cache=kc, value_cache=vc, slot_mapping=slots,
                   swa_mapping=None, scale=mode, k_scale=s, v_scale=s, k_scale_cache=None,
                   v_scale_cache=None, overflow="saturate", overflow_count=None,
                   nan_count=None, k_amax=None, v_amax=None, format=None, layout=None)

            def theirs(key, value, kc, vc, slots, s=s):
                sglang(key, value, kc, vc, slots, None, s, s)

            def empty(key, value, kc, vc, slots):
                _empty[(1,)](key)

            m = P.medians(torch, (("floor", empty), ("fp8kv", ours), ("sglang", theirs)), bufs,
                          a.rounds)
            row = dict(tokens=tokens, heads=H, dim=D, block_size=BS, scale=mode, **m)
            rows.append(row)
            print("%-12s %-7s %9.2f %9.2f %9.2f %10.2f %10.2f %7.2fx" % (
                "%dx%dx%d" % (tokens, H, D), mode, m["floor"], m["fp8kv"], m["sglang"],
                m["fp8kv"] - m["floor"], m["sglang"] - m["floor"], m["sglang"] / m["fp8kv"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
