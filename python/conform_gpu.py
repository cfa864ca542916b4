#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""conform_gpu.py - fp8kv.conform on an NVIDIA (or ROCm) GPU, in one shot.

A developer tool for a machine with a GPU, torch >= 2.1 and Triton, run from
the repository root after dev/device-stage.sh filled .carry/ (or with
FP8KV_LIBRARY, FP8KV_MODULE_PATH and LD_LIBRARY_PATH naming the binaries):

    python3 python/conform_gpu.py [--device cuda:0] [--budget 420] [--out DIR]

It runs python3 -m fp8kv.conform, each writer in its own process (a writer
that crashes the CUDA context cannot take the others down), against:
  fp8kv           fp8kv's own writer on CUDA tensors (the hip backend):
                  must be clean, at level quick and full;
  sglang, vllm    fp8kv.compat's drop-ins on CUDA tensors: must be clean;
  triton demo     fp8kv.conform.triton_demo, a Triton writer written the
                  obvious way (x / s, .to(float8), no bounds checks): a
                  demonstration target, expected to differ;
  torch unfused   fp8kv.conform.torch_demo, torch's (x / s).to(float8): in
                  the nonsaturating mode it implements, and claimed
                  saturating (where the harness must say it does not).
Every report is printed, whatever the others did; the full level runs while
the time budget lasts.  --out DIR also keeps each report as JSON.  The exit
status is 1 when a writer that must be clean is not, or a run failed.
--device cpu is a dry run of the script itself on CPU tensors (the Triton
and torch demonstrations then fail to run, and say so).
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CARRY = os.path.join(HERE, "..", ".carry")


def environment():
    """The subprocesses' environment: the package from this tree, and the
    binaries of .carry/ where the variables do not name others."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = HERE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    lib = os.path.join(CARRY, "lib")
    if not env.get("FP8KV_LIBRARY") and os.path.exists(os.path.join(lib, "libfp8kv.so.1")):
        env["FP8KV_LIBRARY"] = os.path.abspath(os.path.join(lib, "libfp8kv.so.1"))
        env["LD_LIBRARY_PATH"] = os.path.abspath(lib) + (
            os.pathsep + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    if not env.get("FP8KV_MODULE_PATH") and os.path.isdir(os.path.join(CARRY, "modules")):
        env["FP8KV_MODULE_PATH"] = os.path.abspath(os.path.join(CARRY, "modules"))
    return env


def runs(device):
    """(name, must be clean, level, fp8kv.conform arguments)."""
    both = ["--scales", "one,tensor,head", "--layouts", "NHD,HND"]
    plan = [
        ("fp8kv (hip backend)", True, ["fp8kv"]),
        ("fp8kv.compat.sglang drop-in", True,
         ["fp8kv.compat.sglang:launch_reshape_and_cache_flash"]),
        ("fp8kv.compat.vllm drop-in", True,
         ["fp8kv.compat.vllm:reshape_and_cache_flash"] + both),
        ("Triton demonstration writer", False,
         ["fp8kv.conform.triton_demo:write_kv", "--formats", "e4m3fn,e5m2", "--swa"] + both),
        ("torch unfused .to(float8), nonsaturating claim", False,
         ["fp8kv.conform.torch_demo:write_kv", "--overflow", "nonsaturating"] + both),
        ("torch unfused .to(float8), saturating claim", False,
         ["fp8kv.conform.torch_demo:write_kv", "--overflow", "saturate"] + both),
    ]
    out = []
    for level in ("quick", "full"):
        for name, clean, args in plan:
            out.append((name, clean, level, args + ["--level", level, "--device", device,
                                                    "--no-progress"]))
    return out


def describe_machine(env):
    code = ("import torch, sys; print('python', sys.version.split()[0], '| torch', "
            "torch.__version__, '| cuda', torch.version.cuda, '| hip', "
            "getattr(torch.version, 'hip', None));"
            "print('device', torch.cuda.get_device_name(0) if torch.cuda.is_available() "
            "else 'none');\n"
            "try:\n import triton; print('triton', triton.__version__)\n"
            "except Exception as e: print('triton: not importable:', e)\n"
            "import fp8kv; print('fp8kv', fp8kv.version(), [b.name for b in fp8kv.backends()])")
    r = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    print(r.stdout.rstrip(), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--budget", type=float, default=420.0,
                   help="seconds for everything; a run that would start later is skipped")
    p.add_argument("--out", help="a directory for the JSON reports")
    args = p.parse_args()
    env = environment()
    start = time.time()
    try:
        describe_machine(env)
    except Exception as e:     # keep going: every run reports for itself
        print("could not describe the machine: %s" % e, flush=True)
    summary = []
    for i, (name, must_be_clean, level, cargs) in enumerate(runs(args.device)):
        left = args.budget - (time.time() - start)
        label = "%s [%s]" % (name, level)
        if left < (20 if level == "quick" else 60):
            summary.append((label, "skipped: the time budget is spent", must_be_clean and
                            level == "quick"))
            continue
        cmd = [sys.executable, "-m", "fp8kv.conform"] + cargs
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            cmd += ["--json-out", os.path.join(args.out, "conform-%02d-%s.json" % (i, level))]
        print("\n==== %s\n$ %s" % (label, " ".join(cmd[1:])), flush=True)
        t0 = time.time()
        try:
            r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True, timeout=max(left, 1))
            print(r.stdout.rstrip(), flush=True)
            code = r.returncode
        except subprocess.TimeoutExpired as e:
            print((e.output or "").rstrip() if isinstance(e.output, str) else "", flush=True)
            code = "timeout"
        except Exception as e:
            print("could not run: %s: %s" % (type(e).__name__, e), flush=True)
            code = "error"
        meaning = {0: "clean", 1: "differences", 2: "usage error", 3: "writer failed to run",
                   4: "harness error"}.get(code, str(code))
        bad = (must_be_clean and code != 0) or code not in (0, 1)
        summary.append((label, "exit %s (%s), %.0f s" % (code, meaning, time.time() - t0), bad))
    print("\n==== summary")
    for label, what, bad in summary:
        print("%s  %-60s %s" % ("FAIL" if bad else "ok  ", label, what))
    return 1 if any(bad for _, _, bad in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
