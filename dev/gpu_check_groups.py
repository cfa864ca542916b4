# SPDX-License-Identifier: MIT
"""gpu_check_groups.py - the grouped and MLA writes on a GPU, held to the CPU
backend: the checks dev/gpu_check.py runs for them (it imports this module;
one run checks both).  Each returns a detail string or raises.

  - grouped writes on CUDA tensors: every rule, FP8/e2m1/int8, NHD and HND,
    interleaved V scales, against fp8kv.golden (the CPU backend);
  - MLA writes: plain (FP8 with a tensor scale, a bf16 copy) and ds_mla
    (e4m3fn, and e4m3fnuz with vLLM's gfx942 divisor 224);
  - the drop-ins (vLLM concat_and_cache_mla incl. fp8_ds_mla, its nvfp4
    page and per-(token, head) writer; FlashInfer's NVFP4 append, both
    forms): each on CUDA tensors and on CPU copies of the same tensors,
    compared byte for byte;
  - CUDA-graph capture and replay, and torch.compile(fullgraph=True) in
    both modes, of a step calling both writes.

It uses gpu_check's helpers (inputs, poisoned, compare_all) through `g`,
set by gpu_check before the checks run.
"""

import torch

import fp8kv
from fp8kv import golden
from fp8kv.compat import flashinfer, vllm

g = None   # dev/gpu_check, set by it


# (rule, format, group size, scale dtype, keywords)
RULES = [("f32", "e4m3fn", 32, torch.float32, {}),
         ("f32", "e4m3fnuz", 16, torch.float32, {"divisor": 224.0}),
         ("f32", "int8", None, torch.float32, {"rounding": "toward_zero", "scale_floor": 1e-6}),
         ("f32", "e2m1", 32, torch.float32, {}),
         ("e8m0_floor", "e5m2", 32, torch.uint8, {}),
         ("e8m0_rceil", "e4m3fn", 32, torch.uint8, {}),
         ("e8m0_rceil", "e2m1", 32, torch.uint8, {}),
         ("nvfp4", "e2m1", 16, torch.uint8, {"k_global": 0.0173, "v_global": 0.5})]


def _grouped_case(gen, rule, fmt, G, sdtype, extra, layout, dtype, interleave=False,
                  T=37, H=4, D=128, B=16, S=8):
    key, value = g.inputs(gen, (T, H, D), dtype), g.inputs(gen, (T, H, D), dtype)
    slots = torch.randperm(B * S, generator=gen)[:T]
    slots[::7] = -1
    slots = slots.to(g.DEV)
    dd = D // 2 if fmt == "e2m1" else D
    groups = D // (G or D)
    shape = (B, S, H, dd) if layout == "NHD" else (B, H, S, dd)
    sshape = (B, S, H, groups) if layout == "NHD" else (B, H, S, groups)
    cdtype = torch.int8 if fmt == "int8" else torch.uint8
    kw = dict(rule=rule, group_size=G, layout=layout, k_scales=g.poisoned(sshape, sdtype),
              overflow_count=torch.zeros(1, dtype=torch.int64, device=g.DEV),
              nan_count=torch.zeros(1, dtype=torch.int64, device=g.DEV),
              k_amax=torch.zeros(H, device=g.DEV), v_amax=torch.zeros(H, device=g.DEV),
              **extra)
    if interleave:
        vs = (B, S // 4, H, groups, 4) if layout == "NHD" else (B, H, S // 4, groups, 4)
        kw["v_scales"] = g.poisoned(vs, sdtype)
    else:
        kw["v_scales"] = g.poisoned(sshape, sdtype)
    if cdtype == torch.uint8:
        kw["format"] = fmt
    return key, value, g.poisoned(shape, cdtype), g.poisoned(shape, cdtype), slots, kw


def _outputs(names, got, ref):
    return [(n, got[n], getattr(ref, n)) for n in names if got.get(n) is not None]


def check_grouped_writes():
    gen = torch.Generator().manual_seed(21)
    n = 0
    for rule, fmt, G, sdtype, extra in RULES:
        for layout in ("NHD", "HND"):
            for dtype in ("bf16", "f16", "f32"):
                inter = rule == "nvfp4" and layout == "HND"
                key, value, kc, vc, slots, kw = _grouped_case(gen, rule, fmt, G, sdtype, extra,
                                                              layout, dtype, inter)
                ref = golden.reshape_and_cache_grouped(key, value, kc, vc, slots, **kw)
                fp8kv.reshape_and_cache_grouped(key, value, kc, vc, slots, **kw)
                fp8kv.synchronize(g.DEV)
                got = dict(kw, key_cache=kc, value_cache=vc)
                g.compare_all([("%s/%s/%s/%s %s" % (rule, fmt, layout, dtype, w), a, b)
                               for w, a, b in _outputs(fp8kv._grouped.OUTPUTS, got, ref)])
                n += 1
    return "%d cases" % n


def _mla_case(gen, dtype, R=512, P=64, T=29, B=8, S=16, ds=False):
    kv_c, k_pe = g.inputs(gen, (T, R), dtype), g.inputs(gen, (T, P), dtype)
    slots = torch.randperm(B * S, generator=gen)[:T]
    slots[::5] = -1
    return kv_c, k_pe, slots.to(g.DEV)


def check_mla_writes():
    gen = torch.Generator().manual_seed(22)
    cases = [("plain e4m3fn tensor scale", "bf16", dict(scale="tensor", format="e4m3fn",
                                                        k_scale=torch.tensor([0.37])), 576),
             ("plain e5m2", "f32", dict(format="e5m2"), 576),
             ("plain copy", "bf16", {}, None),
             ("ds_mla e4m3fn", "bf16", dict(kind="ds_mla", format="e4m3fn"), 656),
             ("ds_mla e4m3fnuz 224", "f16", dict(kind="ds_mla", format="e4m3fnuz",
                                                 divisor=224.0), 656)]
    for what, dtype, kw, entry in cases:
        kv_c, k_pe, slots = _mla_case(gen, dtype)
        kw = {k: v.to(g.DEV) if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
        cache = (g.poisoned((8, 16, entry)) if entry else
                 g.poisoned((8, 16, 576), torch.bfloat16))
        counts = dict(overflow_count=torch.zeros(1, dtype=torch.int64, device=g.DEV),
                      nan_count=torch.zeros(1, dtype=torch.int64, device=g.DEV))
        ref = golden.concat_and_cache_mla(kv_c, k_pe, cache, slots, **kw, **counts)
        fp8kv.concat_and_cache_mla(kv_c, k_pe, cache, slots, **kw, **counts)
        fp8kv.synchronize(g.DEV)
        g.compare_all([(what + " cache", cache, ref.kv_cache),
                       (what + " overflows", counts["overflow_count"], ref.overflow_count),
                       (what + " NaNs", counts["nan_count"], ref.nan_count)])
    return "%d cases" % len(cases)


def _twice(fn, args):
    """fn on the device's tensors and on CPU copies: (device outputs, CPU
    outputs) of the written arguments (indices into args)."""
    cpu = [a.cpu() if isinstance(a, torch.Tensor) else
           tuple(x.cpu() for x in a) if isinstance(a, tuple) else a for a in args]
    fn(*args)
    fn(*cpu)
    fp8kv.synchronize(g.DEV)
    return args, cpu


def _same(what, dev_args, cpu_args, written):
    pairs = []
    for i in written:
        d, c = dev_args[i], cpu_args[i]
        for j, (x, y) in enumerate(zip(d, c) if isinstance(d, tuple) else [(d, c)]):
            pairs.append(("%s arg %d.%d" % (what, i, j), x, y))
    g.compare_all(pairs)


def check_group_drop_ins():
    gen = torch.Generator().manual_seed(23)
    D = g.DEV
    vllm.set_fp8_format("e4m3fn")
    try:
        kv_c, k_pe, slots = _mla_case(gen, "bf16")
        for string, entry in (("fp8_ds_mla", 656), ("fp8", 576)):
            args = [kv_c, k_pe, g.poisoned((8, 16, entry)), slots, string,
                    torch.tensor([0.5], device=D)]
            _same("vllm mla " + string, *_twice(vllm.concat_and_cache_mla, args), [2])
        T, H, Dh, B, S = 33, 4, 128, 16, 8
        key, value = g.inputs(gen, (T, H, Dh), "bf16"), g.inputs(gen, (T, H, Dh), "bf16")
        slots = torch.randperm(B * S, generator=gen)[:T].to(D)
        args = [key, value, g.poisoned((B, S, H, Dh), torch.int8),
                g.poisoned((B, S, H, Dh), torch.int8), g.poisoned((B, S, H), torch.float32),
                g.poisoned((B, S, H), torch.float32), slots, None]
        _same("vllm int8 per token head",
              *_twice(vllm.triton_reshape_and_cache_flash_per_token_head_quant, args),
              [2, 3, 4, 5])
        phys = g.poisoned((B, 2, H, S, Dh // 2 + Dh // 16))     # an HND page

        def nvfp4(k, v, p, s, ks, vs):
            kvp = p.permute(0, 1, 3, 2, 4)
            vllm.reshape_and_cache_flash(k, v, kvp[:, 0], kvp[:, 1], s, "nvfp4", ks, vs)
        args = [key, value, phys, slots, torch.tensor([0.02], device=D), 0.03]
        _same("vllm nvfp4 page", *_twice(nvfp4, args), [2])
        for layout in ("NHD", "HND"):
            inner = (S, H) if layout == "NHD" else (H, S)
            args = [key, value, slots, g.poisoned((B, 2) + inner + (Dh // 2,)),
                    g.poisoned((B, 2) + inner + (Dh // 16,)), 0.02,
                    torch.tensor([0.04], device=D), layout]
            _same("flashinfer " + layout, *_twice(
                flashinfer.nvfp4_quantize_append_paged_kv_cache_with_slot_mapping, args), [3, 4])
    finally:
        vllm.set_fp8_format(None)
    return "vLLM MLA x2, int8, nvfp4; FlashInfer NHD, HND"


def _step_args(gen):
    key, value, kc, vc, slots, kw = _grouped_case(gen, "nvfp4", "e2m1", 16, torch.uint8,
                                                  {"k_global": 0.0173, "v_global": 0.5},
                                                  "HND", "bf16", True)
    kv_c, k_pe, mslots = _mla_case(gen, "bf16")
    return key, value, kc, vc, slots, kw, kv_c, k_pe, g.poisoned((8, 16, 656)), mslots


def check_groups_cuda_graph():
    gen = torch.Generator().manual_seed(24)
    key, value, kc, vc, slots, kw, kv_c, k_pe, cache, mslots = _step_args(gen)

    def step():
        fp8kv.reshape_and_cache_grouped(key, value, kc, vc, slots, **kw)
        fp8kv.concat_and_cache_mla(kv_c, k_pe, cache, mslots, kind="ds_mla", format="e4m3fn")

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    outs = [kc, vc, kw["k_scales"], kw["v_scales"], cache]
    for it in range(3):
        key.copy_(g.inputs(gen, tuple(key.shape), "bf16"))
        kv_c.copy_(g.inputs(gen, tuple(kv_c.shape), "bf16"))
        for c in outs:
            c.view(torch.uint8).fill_(0xA5)
        for c in (kw["overflow_count"], kw["nan_count"], kw["k_amax"], kw["v_amax"]):
            c.zero_()
        ref = golden.reshape_and_cache_grouped(key, value, kc, vc, slots, **kw)
        mref = golden.concat_and_cache_mla(kv_c, k_pe, cache, mslots, kind="ds_mla",
                                           format="e4m3fn")
        graph.replay()
        torch.cuda.synchronize()
        fp8kv.synchronize(g.DEV)
        got = dict(kw, key_cache=kc, value_cache=vc)
        g.compare_all(_outputs(fp8kv._grouped.OUTPUTS, got, ref) +
                      [("mla cache", cache, mref.kv_cache)])
    return "3 replays with new inputs"


def check_groups_torch_compile_fullgraph():
    gen = torch.Generator().manual_seed(25)
    details = []
    for mode in ("default", "reduce-overhead"):
        torch._dynamo.reset()

        def step(key, value, kc, vc, slots, ks, vs, kv_c, k_pe, cache, mslots):
            fp8kv.reshape_and_cache_grouped(key * 2, value, kc, vc, slots, rule="nvfp4",
                                            k_scales=ks, v_scales=vs, k_global=0.0173,
                                            v_global=0.5, format="e2m1", layout="HND")
            fp8kv.concat_and_cache_mla(kv_c, k_pe, cache, mslots, kind="ds_mla",
                                       format="e4m3fn", divisor=224)
        compiled = torch.compile(step, fullgraph=True, mode=mode)
        for it in range(3):
            key, value, kc, vc, slots, kw, kv_c, k_pe, cache, mslots = _step_args(gen)
            before = [x.clone() for x in (kc, vc, kw["k_scales"], kw["v_scales"], cache)]
            compiled(key, value, kc, vc, slots, kw["k_scales"], kw["v_scales"], kv_c, k_pe,
                     cache, mslots)
            torch.cuda.synchronize()
            fp8kv.synchronize(g.DEV)
            ref = golden.reshape_and_cache_grouped(
                key * 2, value, before[0], before[1], slots, rule="nvfp4", k_scales=before[2],
                v_scales=before[3], k_global=0.0173, v_global=0.5, format="e2m1",
                layout="HND")
            mref = golden.concat_and_cache_mla(kv_c, k_pe, before[4], mslots, kind="ds_mla",
                                               format="e4m3fn", divisor=224.0)
            g.compare_all([("key cache", kc, ref.key_cache), ("value cache", vc,
                                                               ref.value_cache),
                           ("k scales", kw["k_scales"], ref.k_scales),
                           ("v scales", kw["v_scales"], ref.v_scales),
                           ("mla cache", cache, mref.kv_cache)])
        details.append(mode)
    return "modes %s, 3 steps each" % ", ".join(details)


CHECKS = (check_grouped_writes, check_mla_writes, check_group_drop_ins)
GPU_ONLY = (check_groups_cuda_graph, check_groups_torch_compile_fullgraph)
