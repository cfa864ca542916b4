#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""conform_gpu.py - fp8kv.conform on an NVIDIA (or ROCm) GPU, in one shot.

A developer tool for a machine with a GPU, torch >= 2.1 and Triton, run from
the repository root after dev/device-stage.sh filled .carry/ (or with
FP8KV_LIBRARY, FP8KV_MODULE_PATH and LD_LIBRARY_PATH naming the binaries):

    python3 dev/conform_gpu.py [--device cuda:0] [--budget 420] [--out DIR]
                               [--sglang FILE] [--only NAME,...] [--levels quick,full]

It runs python3 -m fp8kv.conform (each writer in a child process of its
own) against:
  fp8kv           fp8kv's own writer on CUDA tensors (the hip backend):
                  must be clean;
  sglang, vllm    fp8kv.compat's drop-ins on CUDA tensors: must be clean;
  triton demo     dev/conform_triton_demo.py, a Triton writer written the
                  obvious way (x / s, .to(float8), no bounds checks): a
                  demonstration target, expected to differ;
  torch unfused   dev/conform_torch_demo.py, torch's (x / s).to(float8): in
                  the nonsaturating mode it implements, and claimed
                  saturating (where the harness must say it does not);
  sglang triton   with --sglang FILE: SGLang's Triton
                  launch_reshape_and_cache_flash, taken from FILE (a source
                  file of an SGLang checkout, read at run time and never
                  kept: the function, the kernels and helpers it calls, and
                  the imports of torch and triton among them are written to
                  a module in a temporary directory), in the formats Triton
                  has on the GPU (e4m3fn, e5m2).
Every report is printed, whatever the others did, and for each writer that
differs a table of its bytes by class with each class's share (the
"unexplained" share is the harness's own measure of how well it names a
writer's faults).  The full level runs while the time budget lasts.  --out
DIR also keeps each report as JSON.  The exit status is 1 when a writer
that must be clean is not, or a run failed.  --device cpu is a dry run of
the script itself on CPU tensors (the GPU-only writers then fail to run,
and say so).
"""

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
CARRY = os.path.join(ROOT, ".carry")
SGLANG_FUNCTION = "launch_reshape_and_cache_flash"
IMPORTS_KEPT = ("torch", "triton", "math", "typing", "functools")


def environment():
    """The subprocesses' environment: the package from this tree, and the
    binaries of .carry/ where the variables do not name others."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    pkg = os.path.abspath(os.path.join(ROOT, "python"))
    env["PYTHONPATH"] = pkg + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    lib = os.path.join(CARRY, "lib")
    if not env.get("FP8KV_LIBRARY") and os.path.exists(os.path.join(lib, "libfp8kv.so.1")):
        env["FP8KV_LIBRARY"] = os.path.abspath(os.path.join(lib, "libfp8kv.so.1"))
        env["LD_LIBRARY_PATH"] = os.path.abspath(lib) + (
            os.pathsep + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    if not env.get("FP8KV_MODULE_PATH") and os.path.isdir(os.path.join(CARRY, "modules")):
        env["FP8KV_MODULE_PATH"] = os.path.abspath(os.path.join(CARRY, "modules"))
    return env


def _names(node):
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
        {n.value.id for n in ast.walk(node) if isinstance(n, ast.Attribute) and
         isinstance(n.value, ast.Name)}


def extract_sglang(path, outdir):
    """Writes SGLang's launch_reshape_and_cache_flash, with the top-level
    definitions it needs (transitively) and the imports among them of
    IMPORTS_KEPT, into outdir/sglang_triton_writer.py; returns its path."""
    with open(path) as f:
        source = f.read()
    tree = ast.parse(source, path)
    defs, imports = {}, []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            for t in node.targets:
                defs[t.id] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            if mod and mod.split(".")[0] in IMPORTS_KEPT:
                imports.append(node)
    if SGLANG_FUNCTION not in defs:
        raise SystemExit("conform_gpu: %s has no top-level %s()" % (path, SGLANG_FUNCTION))
    want, todo = [], [SGLANG_FUNCTION]
    while todo:
        name = todo.pop()
        node = defs.get(name)
        if node is None or node in want:
            continue
        want.append(node)
        todo.extend(_names(node) & set(defs))
    body = [n for n in tree.body if n in want]          # in the file's order
    module = ast.Module(body=imports + body, type_ignores=[])
    out = os.path.join(outdir, "sglang_triton_writer.py")
    with open(out, "w") as f:
        f.write("# extracted at run time from %s; not part of fp8kv\n" % path)
        f.write("import torch\nimport triton\nimport triton.language as tl\n\n")
        f.write(ast.unparse(module) + "\n")
    return out


def runs(device, sglang_module):
    """(name, must be clean, fp8kv.conform arguments)."""
    both = ["--scales", "one,tensor,head", "--layouts", "NHD,HND"]
    plan = [
        ("fp8kv", True, ["fp8kv"]),
        ("sglang-drop-in", True, ["fp8kv.compat.sglang:launch_reshape_and_cache_flash"]),
        ("vllm-drop-in", True, ["fp8kv.compat.vllm:reshape_and_cache_flash"] + both),
        ("triton-demo", False, [os.path.join(HERE, "conform_triton_demo.py") + ":write_kv",
                                "--formats", "e4m3fn,e5m2", "--swa", "--same-dims"] + both),
        ("torch-nonsaturating", False, [os.path.join(HERE, "conform_torch_demo.py") +
                                        ":write_kv", "--overflow", "nonsaturating"] + both),
        ("torch-saturating", False, [os.path.join(HERE, "conform_torch_demo.py") +
                                     ":write_kv", "--overflow", "saturate"] + both),
    ]
    if sglang_module:
        plan.append(("sglang-triton", False, [sglang_module + ":" + SGLANG_FUNCTION + "@sglang",
                                              "--formats", "e4m3fn,e5m2"]))
    return [(name, clean, args + ["--device", device, "--no-progress"])
            for name, clean, args in plan]


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


def class_table(path):
    """Each writer's bytes by class, with shares, from a JSON report."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except ValueError:
        return                  # no report: the run ended before one (said above)
    for w in doc["writers"]:
        n = w["bytes_differing"]
        if not n:
            continue
        print("%s: %s of %s bytes differ" % (w["target"], format(n, ","),
                                            format(w["bytes_compared"], ",")))
        for c in w["classes"]:
            print("  %11s  %6.2f%%  %s" % (format(c["bytes"], ","), 100.0 * c["bytes"] / n,
                                          c["class"]))
        un = sum(c["bytes"] for c in w["classes"] if c["class"] == "unexplained")
        print("  unexplained: %.2f%% of the differing bytes" % (100.0 * un / n))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--budget", type=float, default=420.0,
                   help="seconds for everything; a run that would start later is skipped")
    p.add_argument("--out", help="a directory for the JSON reports")
    p.add_argument("--sglang", metavar="FILE",
                   help="an SGLang source file holding %s (read at run time)" % SGLANG_FUNCTION)
    p.add_argument("--only", help="comma-separated run names (fp8kv, sglang-drop-in, "
                   "vllm-drop-in, triton-demo, torch-nonsaturating, torch-saturating, "
                   "sglang-triton)")
    p.add_argument("--levels", default="quick,full")
    args = p.parse_args()
    env = environment()
    start = time.time()
    try:
        describe_machine(env)
    except Exception as e:     # keep going: every run reports for itself
        print("could not describe the machine: %s" % e, flush=True)
    tmp = tempfile.mkdtemp(prefix="conform-gpu-")
    out = args.out or tmp
    os.makedirs(out, exist_ok=True)
    sglang_module = extract_sglang(args.sglang, tmp) if args.sglang else None
    only = set(args.only.split(",")) if args.only else None
    summary = []
    plan = [(level, r) for level in args.levels.split(",")
            for r in runs(args.device, sglang_module)]
    for i, (level, (name, must_be_clean, cargs)) in enumerate(plan):
        if only and name not in only:
            continue
        left = args.budget - (time.time() - start)
        label = "%s [%s]" % (name, level)
        if left < (20 if level == "quick" else 60):
            summary.append((label, "skipped: the time budget is spent", must_be_clean and
                            level == "quick"))
            continue
        report = os.path.join(out, "conform-%02d-%s-%s.json" % (i, name, level))
        cmd = [sys.executable, "-m", "fp8kv.conform"] + cargs + ["--level", level,
                                                                 "--json-out", report]
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
        if os.path.exists(report):
            class_table(report)
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
