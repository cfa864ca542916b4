#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""gpu_check.py - the Python package on a GPU, held to the CPU backend.

A developer tool for a machine with a CUDA (or ROCm) GPU and torch:

    LD_LIBRARY_PATH=.carry/lib FP8KV_MODULE_PATH=.carry/modules \\
    FP8KV_LIBRARY=.carry/lib/libfp8kv.so.1 python3 dev/gpu_check.py

It checks, byte for byte against fp8kv.golden (the CPU backend on host
copies): CUDA tensors for every format, input dtype, scale mode and layout;
the float8 dtypes; strided tensors; SWA mappings and padding; the RangeError
of an out-of-range slot; a non-default stream; CUDA-graph capture and
replay; torch.compile(fullgraph=True); the SGLang and vLLM drop-ins; and the
RTLD_LOCAL path (a library loaded as Python loads it reaching the hip
backend).  Then it times eager calls (and the wrapper's own share) and graph
replay, and runs fp8kv-bench for the same shapes when it finds it
($FP8KV_BENCH, .carry/bin, or PATH).

Every check prints PASS or FAIL and the run goes on; the exit status is 1
if any failed.
"""

import os
import shutil
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))     # the package of this tree
# Defaults for binaries staged by dev/device-stage.sh, when not set.
_CARRY = os.path.join(HERE, "..", ".carry")
if not os.environ.get("FP8KV_LIBRARY") and os.path.exists(
        os.path.join(_CARRY, "lib", "libfp8kv.so.1")):
    os.environ["FP8KV_LIBRARY"] = os.path.abspath(os.path.join(_CARRY, "lib", "libfp8kv.so.1"))
if not os.environ.get("FP8KV_MODULE_PATH") and os.path.isdir(os.path.join(_CARRY, "modules")):
    os.environ["FP8KV_MODULE_PATH"] = os.path.abspath(os.path.join(_CARRY, "modules"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import fp8kv  # noqa: E402
from fp8kv import _capi, _write, golden  # noqa: E402
from fp8kv.compat import sglang, vllm  # noqa: E402

# FP8KV_GPU_CHECK_DEVICE=cpu runs the checks that need no GPU on CPU tensors:
# a dry run of this script itself, anywhere.
DEV = os.environ.get("FP8KV_GPU_CHECK_DEVICE", "cuda:0")
FORMATS = ("e4m3fn", "e4m3fnuz", "e5m2", "e5m2fnuz")
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
FLOAT8 = {f: getattr(torch, "float8_" + f) for f in FORMATS if hasattr(torch, "float8_" + f)}
results = []
bytes_compared = [0]


def report(name, ok, detail=""):
    results.append((name, ok))
    print("%s  %s%s" % ("PASS" if ok else "FAIL", name, ("  " + detail) if detail else ""),
          flush=True)


def check(fn):
    """Runs one check; an exception is a FAIL with its traceback's tail."""
    name = fn.__name__.replace("check_", "").replace("_", " ")
    try:
        detail = fn()
        report(name, True, detail or "")
    except Exception as e:  # keep going: one shot on the GPU
        tail = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-4:])
        report(name, False, "%s: %s\n%s" % (type(e).__name__, e, tail))
    return fn


# ---- inputs, poisoned buffers, comparisons -------------------------------------

SPECIALS = [0.0, -0.0, 1e-45, -3e-39, 2.0 ** -126, 448.0, 464.0, -464.5, 240.0, 248.0,
            57344.0, 61440.0, 1e30, float("inf"), -float("inf"), float("nan"),
            -float("nan"), 1.0625, 1.1875, 6e-8]


def inputs(gen, shape, dtype, specials=True):
    x = torch.randn(shape, generator=gen) * torch.exp2(
        torch.randint(-12, 12, shape, generator=gen).float())
    if specials:
        flat = x.view(-1)
        idx = torch.randperm(flat.numel(), generator=gen)[:len(SPECIALS)]
        flat[idx] = torch.tensor(SPECIALS[:len(idx)])
    return x.to(DTYPES[dtype]).to(DEV)


def poisoned(shape, dtype=torch.uint8, device=DEV):
    """A tensor of shape and dtype whose every byte is 0xA5."""
    size = torch.empty(0, dtype=dtype).element_size()
    raw = torch.full(tuple(shape[:-1]) + (shape[-1] * size,), 0xA5, dtype=torch.uint8,
                     device=device)
    return raw.view(dtype)


def differing(got, expected):
    g, e = golden.as_bytes(got).reshape(-1), golden.as_bytes(expected).reshape(-1)
    bytes_compared[0] += g.size
    if g.shape != e.shape:
        return "%d bytes, expected %d" % (g.size, e.size)
    bad = np.flatnonzero(g != e)
    if bad.size:
        return "%d of %d bytes differ, first at %d: %#04x expected %#04x" % (
            bad.size, g.size, bad[0], g[bad[0]], e[bad[0]])
    return None


def compare_all(pairs):
    """pairs: (what, GPU array, golden array); raises on any difference."""
    for what, got, exp in pairs:
        if got is None:
            continue
        bad = differing(got, exp)
        if bad:
            raise AssertionError("%s: %s" % (what, bad))


def write_case(gen, fmt, dtype, scale, layout, *, T=37, H=4, D=64, Dv=32, B=16, S=8,
               float8=False, strided=False, swa=False, overflow="saturate"):
    """One GPU write against the golden path.  The caches may sit inside
    larger poisoned buffers (strided), whose every byte is compared."""
    if strided:
        qkv = inputs(gen, (T, 3 * H, D), dtype)
        key, value = qkv[:, H:2 * H], qkv[:, 2 * H:, :Dv]
    else:
        key, value = inputs(gen, (T, H, D), dtype), inputs(gen, (T, H, Dv), dtype)
    cache_dtype = FLOAT8[fmt] if float8 else torch.uint8

    def cache(d):
        shape = (B, S, H, d) if layout == "NHD" else (B, H, S, d)
        if not strided:
            buf = poisoned(shape, cache_dtype)
            return buf, buf
        buf = poisoned((B + 1, shape[1] + 1, shape[2], d + 16), cache_dtype)
        return buf, buf[1:, :shape[1], :, 8:8 + d]

    kbuf, kc = cache(D)
    vbuf, vc = cache(Dv)
    perm = torch.randperm(B * S, generator=gen)
    if swa:
        table = torch.full((2 * B * S,), -1, dtype=torch.int64)
        table[torch.randperm(2 * B * S, generator=gen)[:B * S]] = perm
        slots = torch.randperm(2 * B * S, generator=gen)[:T]
        kw = dict(swa_mapping=table.to(DEV))
    else:
        slots, kw = perm[:T].clone(), {}
    slots[T // 3] = -1
    index = torch.int32 if torch.randint(2, (1,), generator=gen).item() else torch.int64
    slots = slots.to(index).to(DEV)
    kw.update(layout=layout, overflow=overflow)
    if not float8:
        kw["format"] = fmt
    if scale in ("tensor", "head"):
        n = 1 if scale == "tensor" else H
        kw.update(scale=scale,
                  k_scale=(torch.rand(n, generator=gen) * 3 + 0.01).to(DEV),
                  v_scale=torch.tensor([1 / 3] * n).to(DEV))
    elif scale == "token_head":
        sshape = (B, S, H) if layout == "NHD" else (B, H, S)
        kw.update(scale="token_head", k_scale_cache=poisoned(sshape, torch.float32),
                  v_scale_cache=poisoned(sshape, torch.float32))
    kw.update(overflow_count=torch.zeros(1, dtype=torch.int64, device=DEV),
              nan_count=torch.full((1,), 3, dtype=torch.int64, device=DEV),
              k_amax=torch.zeros(H, device=DEV), v_amax=torch.full((H,), 0.5, device=DEV))
    ref = golden.reshape_and_cache(key, value, kc, vc, slots, **kw)
    kexp, vexp = kbuf.cpu(), vbuf.cpu()
    if strided:
        kexp.view(torch.uint8)[1:, :kc.shape[1], :, 8:8 + D].copy_(
            ref.key_cache.view(torch.uint8))
        vexp.view(torch.uint8)[1:, :vc.shape[1], :, 8:8 + Dv].copy_(
            ref.value_cache.view(torch.uint8))
    else:
        kexp, vexp = ref.key_cache, ref.value_cache
    fp8kv.reshape_and_cache(key, value, kc, vc, slots, **kw)
    fp8kv.synchronize(DEV)
    compare_all([("key cache", kbuf, kexp), ("value cache", vbuf, vexp),
                 ("k_scale_cache", kw.get("k_scale_cache"), ref.k_scale_cache),
                 ("v_scale_cache", kw.get("v_scale_cache"), ref.v_scale_cache),
                 ("overflow_count", kw["overflow_count"], ref.overflow_count),
                 ("nan_count", kw["nan_count"], ref.nan_count),
                 ("k_amax", kw["k_amax"], ref.k_amax), ("v_amax", kw["v_amax"], ref.v_amax)])


# ---- the checks ------------------------------------------------------------------

def check_environment():
    return "torch %s, %s; fp8kv %s from %s; backends %s" % (
        torch.__version__, torch.cuda.get_device_name(0) if DEV != "cpu" else "cpu",
        fp8kv.version(),
        _capi.LIBRARY_PATH, [b.name + " (" + b.device + ")" for b in fp8kv.backends()])


def check_rtld_local():
    """A library loaded as Python loads it (RTLD_LOCAL) opens the hip
    backend: in a fresh interpreter, without the package."""
    code = "\n".join([
        "import ctypes",
        "lib = ctypes.CDLL(%r)" % _capi.LIBRARY_PATH,
        "lib.fp8kv_backend_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]",
        "lib.fp8kv_last_error.restype = ctypes.c_char_p",
        "lib.fp8kv_backend_name.restype = ctypes.c_char_p",
        "lib.fp8kv_backend_name.argtypes = [ctypes.c_void_p]",
        "b = ctypes.c_void_p()",
        "st = lib.fp8kv_backend_open(b'hip', ctypes.byref(b))",
        "print(st, lib.fp8kv_backend_name(b).decode() if st == 0 else lib.fp8kv_last_error())",
        "print('global' if hasattr(ctypes.CDLL(None), 'fp8kv_version') else 'local')",
    ])
    r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    lines = r.stdout.strip().splitlines()
    if r.returncode or len(lines) < 2 or not lines[0].startswith("0 hip") or lines[1] != "local":
        raise AssertionError("fp8kv_backend_open('hip') after RTLD_LOCAL: %r" % r.stdout)
    return lines[0]


def check_cuda_tensors():
    gen = torch.Generator().manual_seed(1)
    n = 0
    for fmt in FORMATS:
        for dtype in DTYPES:
            for scale in ("one", "tensor", "head", "token_head"):
                for layout in ("NHD", "HND"):
                    try:
                        write_case(gen, fmt, dtype, scale, layout)
                    except Exception as e:
                        raise AssertionError("%s %s %s %s: %s" % (fmt, dtype, scale, layout, e))
                    n += 1
        write_case(gen, fmt, "f32", "tensor", "NHD", overflow="nonsaturating")
        n += 1
    return "%d cases, all bytes equal" % n


def check_float8_dtypes():
    if not FLOAT8:
        raise AssertionError("this torch has no float8 dtypes")
    gen = torch.Generator().manual_seed(2)
    for fmt in FLOAT8:
        for scale in ("one", "tensor", "token_head"):
            write_case(gen, fmt, "bf16", scale, "NHD", float8=True)
            write_case(gen, fmt, "f16", scale, "HND", float8=True)
    return "caches of %s" % ", ".join(str(d) for d in FLOAT8.values())


def check_strided_and_swa():
    gen = torch.Generator().manual_seed(3)
    for fmt in FORMATS:
        for layout in ("NHD", "HND"):
            write_case(gen, fmt, "bf16", "head", layout, strided=True)
            write_case(gen, fmt, "f16", "token_head", layout, swa=True)
            write_case(gen, fmt, "f32", "tensor", layout, strided=True, swa=True)


def check_out_of_range_on_gpu():
    """The call returns; fp8kv.synchronize raises RangeError (the call itself
    may already have); every other token is written.  Then a bad call
    followed by a good one: the next call or synchronize reports it."""
    gen = torch.Generator().manual_seed(4)
    T, H, D, B, S = 9, 2, 64, 4, 4
    key = inputs(gen, (T, H, D), "bf16")
    slots = torch.arange(T, dtype=torch.int64, device=DEV)
    slots[5] = B * S + 2
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
    ref = golden.reshape_and_cache(key, key, kc, vc, slots, format="e4m3fn")
    if ref.error is None:
        raise AssertionError("golden did not report the slot")

    def raised_by(*steps):
        for what, step in steps:
            try:
                step()
            except fp8kv.RangeError as e:
                return what, str(e)
        return None, None

    bad = lambda: fp8kv.reshape_and_cache(key, key, kc, vc, slots, format="e4m3fn")  # noqa
    good = lambda: fp8kv.reshape_and_cache(key[:1], key[:1], kc, vc, slots[:1],  # noqa
                                           format="e4m3fn")
    sync = lambda: fp8kv.synchronize(DEV)  # noqa
    first, message = raised_by(("the call", bad), ("fp8kv.synchronize", sync))
    if first is None:
        raise AssertionError("no RangeError from the call or fp8kv.synchronize")
    compare_all([("key cache", kc, ref.key_cache), ("value cache", vc, ref.value_cache)])
    second, _ = raised_by(("the call", bad), ("the next call", good),
                          ("fp8kv.synchronize", sync))
    if second is None:
        raise AssertionError("the second bad call was never reported")
    sync()
    return "reported by %s, then by %s: %s" % (first, second, message)


def check_non_default_stream():
    """The write runs on torch's current stream: its inputs are produced on
    a side stream behind a long matmul, and must be read after it."""
    gen = torch.Generator().manual_seed(5)
    T, H, D, B, S = 64, 8, 128, 64, 16
    key = inputs(gen, (T, H, D), "bf16")
    slots = torch.randperm(B * S, generator=gen)[:T].to(DEV)
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
    ref = golden.reshape_and_cache(key, key, kc, vc, slots, format="e5m2", k_scale=0.37,
                                   v_scale=0.37)
    staged = torch.zeros_like(key)
    big = torch.randn(4096, 4096, device=DEV)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(8):
            big = big @ big / 64
        staged.copy_(key)
        fp8kv.reshape_and_cache(staged, staged, kc, vc, slots, format="e5m2", k_scale=0.37,
                                v_scale=0.37)
    side.synchronize()
    fp8kv.synchronize(DEV)
    compare_all([("key cache", kc, ref.key_cache), ("value cache", vc, ref.value_cache)])


def check_cuda_graph_capture_and_replay():
    gen = torch.Generator().manual_seed(6)
    T, H, D, B, S = 48, 8, 128, 32, 16
    key, value = inputs(gen, (T, H, D), "bf16"), inputs(gen, (T, H, D), "bf16")
    slots = torch.randperm(B * S, generator=gen)[:T].to(DEV)
    ks, vs = torch.tensor([0.37], device=DEV), torch.tensor([1 / 3], device=DEV)
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
    ksc, vsc = poisoned((B, S, H), torch.float32), poisoned((B, S, H), torch.float32)
    vllm.set_fp8_format("e4m3fn")
    kc2, vc2 = poisoned((B, S, H, D)), poisoned((B, S, H, D))

    def step():
        fp8kv.reshape_and_cache(key, value, kc, vc, slots, scale="token_head", k_scale_cache=ksc,
                                v_scale_cache=vsc, format="e4m3fnuz")
        vllm.reshape_and_cache_flash(key, value, kc2, vc2, slots, "fp8", ks, vs)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()                                   # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    for it in range(3):
        key.copy_(inputs(gen, (T, H, D), "bf16"))
        value.copy_(inputs(gen, (T, H, D), "bf16"))
        slots.copy_(torch.randperm(B * S, generator=gen)[:T].to(DEV))
        for c in (kc, vc, ksc, vsc, kc2, vc2):
            c.view(torch.uint8).fill_(0xA5)
        ref = golden.reshape_and_cache(key, value, kc, vc, slots, scale="token_head",
                                       k_scale_cache=ksc, v_scale_cache=vsc, format="e4m3fnuz")
        ref2 = golden.reshape_and_cache(key, value, kc2, vc2, slots, k_scale=ks, v_scale=vs,
                                        format="e4m3fn", layout="NHD")
        graph.replay()
        torch.cuda.synchronize()
        fp8kv.synchronize(DEV)
        compare_all([("key cache", kc, ref.key_cache), ("value cache", vc, ref.value_cache),
                     ("k_scale_cache", ksc, ref.k_scale_cache),
                     ("v_scale_cache", vsc, ref.v_scale_cache),
                     ("vllm key cache", kc2, ref2.key_cache),
                     ("vllm value cache", vc2, ref2.value_cache)])
    vllm.set_fp8_format(None)
    return "3 replays with new inputs"


def check_torch_compile_fullgraph():
    gen = torch.Generator().manual_seed(7)
    T, H, D, B, S, E = 32, 8, 128, 32, 16, 512
    x = torch.randn(T, E, generator=gen).to(DEV, torch.bfloat16)
    wk = (torch.randn(E, H * D, generator=gen) / 16).to(DEV, torch.bfloat16)
    wv = (torch.randn(E, H * D, generator=gen) / 16).to(DEV, torch.bfloat16)
    ks, vs = torch.tensor([0.37], device=DEV), torch.tensor([1 / 3], device=DEV)
    kc8 = FLOAT8.get("e4m3fn", torch.uint8)

    def step(x, kc, vc, kc2, vc2, slots):
        k = (x @ wk).view(-1, H, D)
        v = (x @ wv).view(-1, H, D)
        fp8kv.reshape_and_cache(k, v, kc, vc, slots, k_scale=ks, v_scale=vs, format="e4m3fn"
                                if kc.dtype == torch.uint8 else None)
        sglang.launch_reshape_and_cache_flash(k, v, kc2, vc2, slots, None, ks, vs)
        return k, v

    details = []
    for mode in ("default", "reduce-overhead"):
        torch._dynamo.reset()
        compiled = torch.compile(step, fullgraph=True, mode=mode)
        for it in range(3):
            slots = torch.randperm(B * S, generator=gen)[:T].to(DEV)
            kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
            kc2, vc2 = poisoned((B, S, H, D), kc8), poisoned((B, S, H, D), kc8)
            if kc8 is torch.uint8:
                sglang.set_fp8_format("e4m3fn")
            before = [c.clone() for c in (kc, vc, kc2, vc2)]
            k, v = compiled(x, kc, vc, kc2, vc2, slots)
            torch.cuda.synchronize()
            fp8kv.synchronize(DEV)
            ref = golden.reshape_and_cache(k, v, before[0], before[1], slots, k_scale=ks,
                                           v_scale=vs, format="e4m3fn")
            compare_all([("key cache", kc, ref.key_cache), ("value cache", vc, ref.value_cache),
                         ("sglang key cache", kc2, ref.key_cache),
                         ("sglang value cache", vc2, ref.value_cache)])
            x = x.roll(1, 0)
        details.append(mode)
    sglang.set_fp8_format(None)
    return "modes %s, 3 steps each" % ", ".join(details)


def check_drop_ins():
    """vLLM's drop-in on uint8 caches (NHD, and HND memory under the NHD
    shape), per-head scales; SGLang's on float8 caches with an SWA table."""
    gen = torch.Generator().manual_seed(8)
    T, H, D, B, S = 40, 4, 128, 16, 8
    key, value = inputs(gen, (T + 8, H, D), "bf16"), inputs(gen, (T + 8, H, D), "f32")
    value = value.to(torch.bfloat16)
    slots = torch.randperm(B * S, generator=gen)[:T].to(DEV)
    slots[3] = -1
    ks = torch.tensor([0.37, 2.0, 1e-3, 5.0], device=DEV)
    vs = torch.tensor([1 / 3, 1.0, 3e-2, 0.5], device=DEV)
    vllm.set_fp8_format("e4m3fn")
    try:
        for layout in ("NHD", "HND"):
            shape = (B, S, H, D) if layout == "NHD" else (B, H, S, D)
            kbuf, vbuf = poisoned(shape), poisoned(shape)
            kc, vc = (kbuf, vbuf) if layout == "NHD" else (kbuf.transpose(1, 2),
                                                           vbuf.transpose(1, 2))
            ref = golden.reshape_and_cache(key, value, kc, vc, slots, scale="head", k_scale=ks,
                                           v_scale=vs, format="e4m3fn", layout="NHD")
            vllm.reshape_and_cache_flash(key, value, kc, vc, slots, "fp8", ks, vs)
            fp8kv.synchronize(DEV)
            compare_all([("vllm %s key cache" % layout, kc, ref.key_cache),
                         ("vllm %s value cache" % layout, vc, ref.value_cache)])
    finally:
        vllm.set_fp8_format(None)
    table = torch.full((2 * B * S,), -1, dtype=torch.int64)
    table[torch.randperm(2 * B * S, generator=gen)[:B * S]] = torch.randperm(B * S,
                                                                            generator=gen)
    table = table.to(DEV)
    swa_slots = torch.randperm(2 * B * S, generator=gen)[:T + 8].to(DEV)
    for fmt in FLOAT8:
        kc, vc = poisoned((B, S, H, D), FLOAT8[fmt]), poisoned((B, S, H, D), FLOAT8[fmt])
        ref = golden.reshape_and_cache(key, value, kc, vc, swa_slots, swa_mapping=table,
                                       k_scale=ks[:1], v_scale=vs[:1], layout="NHD")
        sglang.launch_reshape_and_cache_flash(key, value, kc, vc, swa_slots, table, ks[:1],
                                              vs[:1])
        fp8kv.synchronize(DEV)
        compare_all([("sglang %s key cache" % fmt, kc, ref.key_cache),
                     ("sglang %s value cache" % fmt, vc, ref.value_cache)])


# ---- timing ----------------------------------------------------------------------

def timed(fn, n):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n * 1e6


def check_timing():
    """Per-call times at decode shapes: the eager call, the wrapper's own
    share (the Python work before the library call, on a cached plan:
    _write.prepare), the bare library call,
    the torch operator, and graph replay (one call per replay, and 100 calls
    captured in one graph)."""
    gen = torch.Generator().manual_seed(9)
    H, D, S = 8, 128, 16
    print("      %-12s %9s %9s %9s %9s %10s %10s" % ("shape", "eager", "wrapper", "C call",
                                                   "torch.ops", "replay x1", "replay/100"))
    worst = 0.0
    for T in (1, 64, 256):
        B = max(64, 4 * T // S)
        key, value = inputs(gen, (T, H, D), "bf16", False), inputs(gen, (T, H, D), "bf16", False)
        slots = torch.randperm(B * S, generator=gen)[:T].to(DEV)
        ks = torch.tensor([0.37], device=DEV)
        cache_dtype = FLOAT8.get("e4m3fn", torch.uint8)
        kc, vc = poisoned((B, S, H, D), cache_dtype), poisoned((B, S, H, D), cache_dtype)
        fmt = "e4m3fn" if kc.dtype == torch.uint8 else None
        args = dict(key=key, value=value, key_cache=kc, value_cache=vc, slot_mapping=slots,
                    swa_mapping=None, scale="tensor", k_scale=ks, v_scale=ks,
                    k_scale_cache=None, v_scale_cache=None, overflow="saturate",
                    overflow_count=None, nan_count=None, k_amax=None, v_amax=None,
                    format=fmt, layout=None)

        def eager():
            fp8kv.reshape_and_cache(key, value, kc, vc, slots, scale="tensor", k_scale=ks,
                                    v_scale=ks, format=fmt)

        def wrapper():
            _write.prepare(**args)      # the eager call's own path, without its call

        h, desc, stream, _keep = _write.prepare(**args)   # _keep: for the calls

        def c_call():
            _capi.fn.reshape_and_cache(h, desc, stream)

        def op():
            torch.ops.fp8kv.reshape_and_cache(**args)

        n = 2000
        for f in (eager, wrapper, c_call, op):
            timed(f, 50)
        t_eager, t_wrap, t_c, t_op = (min(timed(f, n) for _ in range(3))
                                      for f in (eager, wrapper, c_call, op))
        worst = max(worst, t_wrap)
        g1, g100 = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            eager()
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(g1):
            eager()
        with torch.cuda.graph(g100):
            for _ in range(100):
                eager()
        t_g1 = min(timed(g1.replay, 500) for _ in range(3))
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        g100.replay()
        start.record()
        for _ in range(20):
            g100.replay()
        end.record()
        torch.cuda.synchronize()
        t_g100 = start.elapsed_time(end) * 1e3 / 2000
        fp8kv.synchronize(DEV)
        print("      %-12s %8.2fus %8.2fus %8.2fus %8.2fus %9.2fus %9.3fus" % (
            "%dx%dx%d" % (T, H, D), t_eager, t_wrap, t_c, t_op, t_g1, t_g100), flush=True)
    if worst >= 10.0:
        raise AssertionError("the wrapper's own time per eager call is %.2f us (>= 10 us)"
                             % worst)
    return "wrapper share under 10 us (worst %.2f us)" % worst


def find_bench():
    for path in (os.environ.get("FP8KV_BENCH"),
                 os.path.join(HERE, "..", ".carry", "bin", "fp8kv-bench"),
                 shutil.which("fp8kv-bench")):
        if path and os.path.exists(path):
            return path
    return None


def check_fp8kv_bench_same_shapes():
    bench = find_bench()
    if bench is None:
        return "fp8kv-bench not found (set FP8KV_BENCH): skipped"
    cmd = [bench, "--backend", "hip", "--input", "bf16", "--format", "e4m3fn", "--scale",
           "tensor", "--shape", "1x8x128", "--shape", "64x8x128", "--shape", "256x8x128",
           "--samples", "11"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=400)
    for line in r.stdout.splitlines():
        print("      " + line)
    if r.returncode:
        raise AssertionError("%s exited %d" % (" ".join(cmd), r.returncode))


def main():
    if DEV != "cpu" and not torch.cuda.is_available():
        print("FAIL  no CUDA device visible to torch")
        return 1
    gpu_only = (check_rtld_local, check_non_default_stream, check_cuda_graph_capture_and_replay,
                check_torch_compile_fullgraph, check_timing, check_fp8kv_bench_same_shapes)
    for fn in (check_environment, check_rtld_local, check_cuda_tensors, check_float8_dtypes,
               check_strided_and_swa, check_out_of_range_on_gpu, check_non_default_stream,
               check_cuda_graph_capture_and_replay, check_torch_compile_fullgraph,
               check_drop_ins, check_timing, check_fp8kv_bench_same_shapes):
        if DEV == "cpu" and (fn in gpu_only or fn is check_float8_dtypes and not FLOAT8):
            print("SKIP  %s (no GPU in a dry run)" % fn.__name__, flush=True)
            continue
        check(fn)
    failed = [name for name, ok in results if not ok]
    print("%s  %d checks, %d failed%s; %d bytes compared" % (
        "FAIL" if failed else "PASS", len(results), len(failed),
        (": " + ", ".join(failed)) if failed else "", bytes_compared[0]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
