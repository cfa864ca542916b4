#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""py_call_cost.py - what one eager cache write costs in Python, beside the
bare library call, on CPU tensors, numpy arrays or a GPU (#38 item 4).

    dev/py_call_cost.py [--device cpu|numpy|meta|cuda[:N]] [--tokens 1,64,256]
                        [--calls 2000] [--rounds 15] [--mode tensor]
                        [--clock wall|thread] [--reads]

Per call, at tokens x 8 heads x 128, bf16 -> e4m3fn (uint8 cache with
format= where torch has no float8), the min over --rounds rounds of the
mean over --calls calls:
  eager    fp8kv.reshape_and_cache(k, v, kc, vc, slots, scale=..., ...)
  wrapper  the same call's Python work, up to the library call: the
           package's own share (_write.prepare, the eager path without
           the call)
  C call   the bare library call with the descriptor the wrapper made
           (ctypes included), the floor the package cannot go under
  op       torch.ops.fp8kv.reshape_and_cache with the eager call's
           arguments (five positional, the rest by keyword)
  op.dflt  torch.ops.fp8kv.reshape_and_cache.default, all positional
           (the overload resolved, no keywords)
  op.nop   torch's own share of `op`: an operator of the same schema whose
           kernel does nothing, called as `op` is
  nop5     the same with the five required arguments alone: how torch's
           share grows with the schema's 18 arguments
  py       eager - C call: all the Python around the library call
On --device meta only the operator runs (its fake, on meta tensors).
--reads then times each read the fast path makes of a tensor, in ns
(the "(nothing)" row is the timing loop's own cost, to subtract).
Clocks: wall time (time.perf_counter), with the GPU synchronized before
and after each round; --clock thread takes this thread's CPU time instead
(time.thread_time: a loaded machine's waits left out; CPU and numpy runs
only, with OMP_NUM_THREADS=1).  The CPU backend's write is itself part of
the C call there.  The package is this tree's (python/), the library
$FP8KV_LIBRARY, else lib/.libs of this tree or .carry/ staged for a device.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
for _lib in (os.path.join(HERE, "..", ".carry", "lib", "libfp8kv.so.1"),
             os.path.join(HERE, "..", "lib", ".libs", "libfp8kv.so.1")):
    if not os.environ.get("FP8KV_LIBRARY") and os.path.exists(_lib):
        os.environ["FP8KV_LIBRARY"] = os.path.abspath(_lib)
_modules = os.path.join(HERE, "..", ".carry", "modules")
if not os.environ.get("FP8KV_MODULE_PATH") and os.path.isdir(_modules):
    os.environ["FP8KV_MODULE_PATH"] = os.path.abspath(_modules)

import numpy as np  # noqa: E402

H, D, S = 8, 128, 16


def arguments(device, tokens, mode):
    """The call's arguments as the table's keywords, for torch tensors on
    `device` ("cpu", "cuda:N", "meta") or numpy arrays ("numpy")."""
    rng = np.random.default_rng(9)
    blocks = max(64, 4 * tokens // S)
    k = rng.standard_normal((tokens, H, D), dtype=np.float32)
    v = rng.standard_normal((tokens, H, D), dtype=np.float32)
    slots = rng.permutation(blocks * S)[:tokens].astype(np.int64)
    scale = np.full(1 if mode == "tensor" else H, 0.37, np.float32)
    if device == "numpy":
        import fp8kv
        bits = lambda a: fp8kv.typed((a.view(np.uint32) >> 16).astype(np.uint16), "bf16")  # noqa
        cache = lambda: np.zeros((blocks, S, H, D), np.uint8)  # noqa: E731
        key, value, kc, vc, fmt = bits(k), bits(v), cache(), cache(), "e4m3fn"
        ks = vs = scale
    else:
        import torch
        dev = torch.device(device)
        f8 = getattr(torch, "float8_e4m3fn", None)
        key = torch.from_numpy(k).to(dev, torch.bfloat16)
        value = torch.from_numpy(v).to(dev, torch.bfloat16)
        kc = torch.zeros((blocks, S, H, D), dtype=f8 or torch.uint8, device=dev)
        vc = torch.zeros_like(kc)
        slots = torch.from_numpy(slots).to(dev)
        ks = vs = torch.from_numpy(scale).to(dev)
        fmt = None if f8 is not None else "e4m3fn"
    args = dict(key=key, value=value, key_cache=kc, value_cache=vc, slot_mapping=slots,
                swa_mapping=None, scale=None, k_scale=None, v_scale=None, k_scale_cache=None,
                v_scale_cache=None, overflow="saturate", overflow_count=None, nan_count=None,
                k_amax=None, v_amax=None, format=fmt, layout=None)
    if mode in ("tensor", "head"):
        args.update(scale=mode, k_scale=ks, v_scale=vs)
    return args


_probe = []


def probe_operator(device):
    """fp8kv_probe::reshape_and_cache: the write's schema, a kernel that does
    nothing, registered for the device's dispatch key as fp8kv's is."""
    import torch
    from fp8kv import _signature
    if not _probe:
        lib = torch.library.Library("fp8kv_probe", "DEF")
        lib.define("reshape_and_cache" + _signature.SCHEMA)
        lib.define("five(Tensor key, Tensor value, Tensor(a!) key_cache, "
                   "Tensor(b!) value_cache, Tensor slot_mapping) -> ()")
        # torch 1.13 sends meta tensors through AutogradMeta, which has no
        # fallthrough there (as fp8kv's own registration says)
        for key in ("CPU", "CUDA", "Meta", "AutogradMeta"):
            for name in ("reshape_and_cache", "five"):
                lib.impl(name, lambda *args: None, key)
        _probe.append(lib)
    return torch.ops.fp8kv_probe.reshape_and_cache, torch.ops.fp8kv_probe.five


def timer(device, calls, rounds, clock):
    sync = lambda: None  # noqa: E731
    now = time.thread_time if clock == "thread" else time.perf_counter
    if device.startswith("cuda"):
        import torch
        sync = torch.cuda.synchronize

    def best(fn):
        for _ in range(min(200, calls)):
            fn()
        times = []
        for _ in range(rounds):
            sync()
            t0 = now()
            for _ in range(calls):
                fn()
            sync()
            times.append((now() - t0) / calls * 1e6)
        return min(times)
    return best


def reads(best, args):
    """What the hot path reads of one tensor (the key cache), one read at a
    time, ns per read: the floor of a call is about seven tensors' worth."""
    import torch
    x = args["key_cache"]
    t = torch.Tensor
    parts = (("type(x) is Tensor", lambda: type(x) is t), ("x.layout", lambda: x.layout),
             ("x.dtype", lambda: x.dtype), ("x.device", lambda: x.device),
             ("x.shape", lambda: x.shape), ("x.stride()", lambda: x.stride()),
             ("x.data_ptr()", lambda: x.data_ptr()),
             ("x.requires_grad", lambda: x.requires_grad),
             ("x.is_inference()", lambda: x.is_inference()),
             ("torch.is_grad_enabled()", torch.is_grad_enabled),
             ("hash(x.device)", lambda: hash(x.device)), ("(nothing)", lambda: None))
    print("%-26s %8s" % ("read", "ns"))
    for name, fn in parts:
        print("%-26s %8.0f" % (name, best(fn) * 1e3))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tokens", default="1,64,256")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--clock", default="wall", choices=("wall", "thread"))
    ap.add_argument("--mode", default="tensor", choices=("one", "tensor", "head"))
    ap.add_argument("--reads", action="store_true",
                    help="also time each read the hot path makes of a tensor")
    opt = ap.parse_args()
    if opt.device != "numpy":
        import torch  # noqa: F401  (before fp8kv: the operator is registered at import)
    import fp8kv
    from fp8kv import _capi, _signature, _write
    best = timer(opt.device, opt.calls, opt.rounds, opt.clock)
    cols = ("eager", "wrapper", "C call", "py", "op", "op.dflt", "op.nop", "nop5")
    print("# fp8kv %s, %s, scale %s, %s; min of %d rounds x %d calls, us per call (%s)"
          % (fp8kv.version(), opt.device, opt.mode, "torch " + sys.modules["torch"].__version__
             if "torch" in sys.modules else "numpy " + np.__version__, opt.rounds, opt.calls,
             "wall clock" if opt.clock == "wall" else "this thread's CPU time"))
    print("%-12s" % "shape" + "".join("%9s" % c for c in cols))
    for tokens in (int(t) for t in opt.tokens.split(",")):
        args = arguments(opt.device, tokens, opt.mode)
        pos = [args[n] for n in ("key", "value", "key_cache", "value_cache", "slot_mapping")]
        rest = {n: a for n, a in args.items() if n not in
                ("key", "value", "key_cache", "value_cache", "slot_mapping") and a is not None
                and not (n == "overflow" and a == "saturate")}
        got = {}
        if opt.device != "meta":
            def eager():
                fp8kv.reshape_and_cache(*pos, **rest)

            def wrapper():
                _write.prepare(**args)

            handle, desc, stream, keep = _write.prepare(**args)
            c_fn = _capi.fn.reshape_and_cache

            def c_call():
                c_fn(handle, desc, stream)
            got["eager"], got["wrapper"], got["C call"] = (best(f) for f in
                                                           (eager, wrapper, c_call))
            got["py"] = got["eager"] - got["C call"]
            del keep
        if "torch" in sys.modules:
            import torch
            op = torch.ops.fp8kv.reshape_and_cache
            every = [args[p.name] for p in _signature.PARAMS]     # torch's order

            def op_call():
                op(*pos, **rest)

            def op_default():
                op.default(*every)
            nop, five = probe_operator(opt.device)

            def nop_call():
                nop(*pos, **rest)

            def five_call():
                five(*pos)
            got["op"], got["op.dflt"], got["op.nop"], got["nop5"] = (
                best(f) for f in (op_call, op_default, nop_call, five_call))
        print("%-12s" % ("%dx%dx%d" % (tokens, H, D)) +
              "".join("%9.2f" % got[c] if c in got else "%9s" % "-" for c in cols), flush=True)
    if opt.reads and opt.device not in ("numpy", "meta"):
        reads(best, arguments(opt.device, 1, opt.mode))
    if opt.device not in ("numpy", "meta"):
        fp8kv.synchronize(opt.device)


if __name__ == "__main__":
    main()
