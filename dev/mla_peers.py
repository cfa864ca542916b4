#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""mla_peers.py - vLLM's MLA cache writers against fp8kv's, in one run, on one GPU (#36).

    python3 dev/mla_peers.py --vllm FILE [--rounds 15] [--tokens 1,64,256,32768]
        [--json OUT] [--conform-module OUT.py] [--no-time] [--print-source]

FILE is vLLM's csrc/libtorch_stable/cache_kernels.cu (or csrc/cache_kernels.cu,
or an excerpt of it such as .peers/vllm/cache_kernels_mla_excerpt.cu), read at
run time and never kept in this tree.  From its text this script takes only
concat_and_cache_mla_kernel, concat_and_cache_ds_mla_kernel and the
kFp8ScaleDivisor definition: a kernel is found by the regular expression
`[template <...>] __global__ void NAME (` and runs to the brace matching its
body's first one (a scanner that skips comments and literals); the divisor's
line is taken with the #if/#else/#endif around it.  They are compiled with
torch.utils.cpp_extension.load_inline against this script's own shims for
what vLLM's headers give them (Fp8KVCacheDataType; fp8::scaled_convert as
vLLM's NVIDIA converter does it: fp32 division then cvt.rn.satfinite, see
docs/recipes.md 2.1; VLLM_SHFL_XOR_SYNC_WIDTH as __shfl_xor_sync) and a host
launcher written here with vLLM's launch geometry (96 threads for ds_mla,
min(kv_lora_rank, 512) otherwise; checked against FILE's host function when
FILE has it) and vLLM's dtype dispatch (bf16 as __nv_bfloat16, fp16 as
uint16_t, which keeps vLLM's fp16 ds_mla defect V-1 of docs/recipes.md).

For each kind (plain e4m3 with a tensor scale, entry 576 B; ds_mla, 656 B)
and token count (kv_lora_rank 512, pe_dim 64, bf16, block size 64), each
writer is first run once on the same inputs into zeroed caches and the
caches compared byte for byte ("same"); then each is captured as 64 calls in
one CUDA graph over 16 rotating copies of its buffers (B-ROTATE, B-GRAPH),
the graphs replayed in turns, one sample each per round (B-ROUNDS), with an
empty kernel's graph as the launch floor; the table gives medians per call,
ratios (vLLM / fp8kv) and GB/s of the bytes each write must move (16-bit
inputs read, cache bytes written, 8 B of slot per token).  fp8kv runs through
torch.ops.fp8kv.concat_and_cache_mla (the binaries of .carry/ unless
FP8KV_LIBRARY and FP8KV_MODULE_PATH name others).

--conform-module OUT.py writes a module that compiles the same kernels at
import and exposes concat_and_cache_mla(kv_c, k_pe, kv_cache, slot_mapping,
kv_cache_dtype, scale) with vLLM's signature, for
dev/conform_records_gpu.py --mla OUT.py:concat_and_cache_mla.
--print-source prints the CUDA source that would be compiled and exits (no
torch needed: how the extraction is checked off the GPU machine).
"""

import argparse
import hashlib
import json
import os
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = ("concat_and_cache_mla_kernel", "concat_and_cache_ds_mla_kernel")
CALLS, COPIES, RANK, PE, BS = 64, 16, 512, 64, 64
KINDS = {"fp8": 576, "ds_mla": 656}      # kind -> entry bytes


class SourceError(Exception):
    """FILE lacks what is needed, said in one line."""


# ---- extraction ---------------------------------------------------------------------

def _skip(text, i):
    """Index past a comment or literal starting at i, or i itself."""
    if text.startswith("//", i):
        j = text.find("\n", i)
        return len(text) if j < 0 else j
    if text.startswith("/*", i):
        j = text.find("*/", i + 2)
        return len(text) if j < 0 else j + 2
    if text[i] in "\"'":
        q, j = text[i], i + 1
        while j < len(text) and text[j] != q:
            j += 2 if text[j] == "\\" else 1
        return j + 1
    return i


def _matching(text, i, what):
    """Index past the bracket matching the opening one at text[i]."""
    open_, close = text[i], {"(": ")", "{": "}"}[text[i]]
    depth, j = 0, i
    while j < len(text):
        k = _skip(text, j)
        if k != j:
            j = k
            continue
        if text[j] == open_:
            depth += 1
        elif text[j] == close:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise SourceError("%s: unbalanced %r (the file is cut short?)" % (what, open_))


def extract_kernel(text, name, hint="give vLLM's cache_kernels.cu"):
    """The text of kernel NAME's definition: template header to closing brace."""
    return extract_def(text, r"__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?"
                       + re.escape(name), name,
                       "no kernel %s (no `__global__ void %s(`): %s" % (name, name, hint))


def extract_def(text, head, name, missing):
    """The text of the function whose declaration matches HEAD (a regular
    expression up to its name; an optional template header before it is
    included) from there to its body's closing brace."""
    m = re.search(r"(?:template\s*<[^;{}]*>\s*)?" + head + r"\s*\(", text)
    if not m:
        raise SourceError("the file has " + missing)
    params_end = _matching(text, m.end() - 1, name)
    brace = params_end
    while brace < len(text):            # past blanks and comments
        k = _skip(text, brace)
        if k == brace and not text[brace].isspace():
            break
        brace = k if k != brace else brace + 1
    if brace >= len(text) or text[brace] != "{":
        raise SourceError("%s: declared but not defined here (no body after its parameters)"
                          % name)
    return text[m.start():_matching(text, brace, name)]


def extract_divisor(text):
    """kFp8ScaleDivisor's definition with the preprocessor block around it."""
    lines = text.splitlines()
    at = [i for i, ln in enumerate(lines) if re.search(r"\bkFp8ScaleDivisor\s*=", ln)]
    if not at:
        raise SourceError("the file does not define kFp8ScaleDivisor, which "
                          "concat_and_cache_ds_mla_kernel uses")
    first = at[0]
    start = first
    while start > 0 and start > first - 8 and not lines[start].lstrip().startswith("#if"):
        start -= 1
    if not lines[start].lstrip().startswith("#if"):
        return lines[first] + "\n"
    end = first
    while end < len(lines) and not lines[end].lstrip().startswith("#endif"):
        end += 1
    if end == len(lines):
        raise SourceError("kFp8ScaleDivisor: its #if block has no #endif")
    return "\n".join(lines[start:end + 1]) + "\n"


def check_host(text):
    """A note on the launch geometry: read in FILE's host function, or assumed."""
    m = re.search(r"\bvoid\s+concat_and_cache_mla\s*\(", text)
    if not m:
        return "assumed (the file has no host concat_and_cache_mla): 96 / min(rank, 512)"
    body = text[m.start():m.start() + 6000]
    blocks = [re.sub(r"\s+", "", b) for b in re.findall(r"dim3\s+block\s*\(([^;]*)\)\s*;", body)]
    if blocks[:2] == ["96", "std::min(kv_lora_rank,512)"]:
        return "as in the file's host function: 96 / min(rank, 512)"
    sys.stderr.write("mla_peers: warning: the file's host concat_and_cache_mla launches "
                     "blocks of %s; this launcher uses 96 (ds_mla) and min(rank, 512)\n"
                     % (blocks,))
    return "DIFFERS from the file's host function (%s): 96 / min(rank, 512) used" % (blocks,)


# ---- the shims and launcher (this project's own code) --------------------------------

SHIM = r"""
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <algorithm>
#include <cfloat>
#include <cstdint>

#define VLLM_SHFL_XOR_SYNC_WIDTH(var, lane_mask, width) \
  __shfl_xor_sync(uint32_t(-1), (var), (lane_mask), (width))

namespace vllm {
enum class Fp8KVCacheDataType { kAuto = 0, kFp8E4M3 = 1, kFp8E5M2 = 2 };
namespace fp8 {
__device__ __forceinline__ float shim_float(const __nv_bfloat16 &x) { return __bfloat162float(x); }
__device__ __forceinline__ float shim_float(const uint16_t &x) {
  __half_raw r;
  r.x = x;
  return __half2float(__half(r));
}
/* vLLM's NVIDIA scaled_convert for a 16-bit input and an fp8 output: an IEEE
   fp32 division (nvcc's default -prec-div=true) then the saturating
   round-to-nearest conversion. */
template <typename Tout, typename Tin, Fp8KVCacheDataType kv_dt>
__device__ __forceinline__ Tout scaled_convert(const Tin &x, const float scale) {
  static_assert(sizeof(Tout) == 1, "shim: fp8 outputs only");
  return (Tout)__nv_cvt_float_to_fp8(shim_float(x) / scale, __NV_SATFINITE,
      kv_dt == Fp8KVCacheDataType::kFp8E5M2 ? __NV_E5M2 : __NV_E4M3);
}
}  // namespace fp8
}  // namespace vllm
"""

LAUNCHER = r"""
__global__ void peer_empty_kernel() {}

template <typename T, typename C, vllm::Fp8KVCacheDataType D>
static void peer_launch(bool ds, torch::Tensor &kv_c, torch::Tensor &k_pe,
                        torch::Tensor &kv_cache, torch::Tensor &slot_mapping,
                        torch::Tensor &scale) {
  int num_tokens = slot_mapping.size(0);
  if (num_tokens == 0) return;
  int kv_lora_rank = kv_c.size(1), pe_dim = k_pe.size(1), block_size = kv_cache.size(1);
  int kv_c_stride = kv_c.stride(0), k_pe_stride = k_pe.stride(0);
  int block_stride = kv_cache.stride(0), entry_stride = kv_cache.stride(1);
  const at::cuda::OptionalCUDAGuard guard(kv_c.device());
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  dim3 grid(num_tokens);
  const T *c = reinterpret_cast<const T *>(kv_c.data_ptr());
  const T *p = reinterpret_cast<const T *>(k_pe.data_ptr());
  C *out = reinterpret_cast<C *>(kv_cache.data_ptr());
  const int64_t *slots = slot_mapping.data_ptr<int64_t>();
  const float *s = reinterpret_cast<const float *>(scale.data_ptr());
  if (ds)
    vllm::concat_and_cache_ds_mla_kernel<T, C, D><<<grid, dim3(96), 0, stream>>>(
        c, p, out, slots, block_stride, entry_stride, kv_c_stride, k_pe_stride,
        kv_lora_rank, pe_dim, block_size, s);
  else
    vllm::concat_and_cache_mla_kernel<T, C, D><<<grid, dim3(std::min(kv_lora_rank, 512)), 0,
                                                 stream>>>(
        c, p, out, slots, block_stride, entry_stride, kv_c_stride, k_pe_stride,
        kv_lora_rank, pe_dim, block_size, s);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
static void peer_dispatch(torch::Tensor &kv_c, torch::Tensor &k_pe, torch::Tensor &kv_cache,
                          torch::Tensor &slot_mapping, const std::string &dt,
                          torch::Tensor &scale) {
  using K = vllm::Fp8KVCacheDataType;
  if (dt == "fp8_ds_mla")
    peer_launch<T, uint8_t, K::kFp8E4M3>(true, kv_c, k_pe, kv_cache, slot_mapping, scale);
  else if (dt == "fp8" || dt == "fp8_e4m3")
    peer_launch<T, uint8_t, K::kFp8E4M3>(false, kv_c, k_pe, kv_cache, slot_mapping, scale);
  else if (dt == "fp8_e5m2")
    peer_launch<T, uint8_t, K::kFp8E5M2>(false, kv_c, k_pe, kv_cache, slot_mapping, scale);
  else if (dt == "auto")
    peer_launch<T, T, K::kAuto>(false, kv_c, k_pe, kv_cache, slot_mapping, scale);
  else
    TORCH_CHECK(false, "kv_cache_dtype: unsupported here: ", dt);
}

void vllm_mla(torch::Tensor kv_c, torch::Tensor k_pe, torch::Tensor kv_cache,
              torch::Tensor slot_mapping, std::string kv_cache_dtype, torch::Tensor scale) {
  int kv_lora_rank = kv_c.size(1), pe_dim = k_pe.size(1);
  if (kv_cache_dtype == "fp8_ds_mla") {   /* vLLM's host checks */
    TORCH_CHECK(kv_lora_rank == 512, "kv_lora_rank must be 512 for fp8_ds_mla");
    TORCH_CHECK(pe_dim == 64, "pe_dim must be 64 for fp8_ds_mla");
    TORCH_CHECK(kv_cache.size(2) == 656 / kv_cache.element_size(),
                "kv_cache.size(2) must be 656 bytes for fp8_ds_mla");
    TORCH_CHECK(kv_c.element_size() == 2 && k_pe.element_size() == 2,
                "kv_c and k_pe must be 16-bit for fp8_ds_mla");
  } else {
    TORCH_CHECK(kv_cache.size(2) == kv_lora_rank + pe_dim, "kv_cache.size(2)");
  }
  TORCH_CHECK(slot_mapping.scalar_type() == at::kLong, "slot_mapping: int64");
  if (kv_c.scalar_type() == at::kBFloat16)
    peer_dispatch<__nv_bfloat16>(kv_c, k_pe, kv_cache, slot_mapping, kv_cache_dtype, scale);
  else if (kv_c.scalar_type() == at::kHalf)
    peer_dispatch<uint16_t>(kv_c, k_pe, kv_cache, slot_mapping, kv_cache_dtype, scale);
  else
    TORCH_CHECK(false, "kv_c: bf16 or fp16 only in this peer build");
}

void empty_launch() {
  peer_empty_kernel<<<1, 1, 0, at::cuda::getCurrentCUDAStream()>>>();
}
"""

DECLS = ("void vllm_mla(torch::Tensor kv_c, torch::Tensor k_pe, torch::Tensor kv_cache, "
         "torch::Tensor slot_mapping, std::string kv_cache_dtype, torch::Tensor scale);\n"
         "void empty_launch();\n")

# torch's extension flags hide the 16-bit types' conversions; vLLM's kernels
# use them (fabsf on an __nv_bfloat16), as vLLM's own build allows.
NVCC_FLAGS = ["-O3", "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
              "-U__CUDA_NO_BFLOAT16_CONVERSIONS__", "-U__CUDA_NO_HALF2_OPERATORS__",
              "-U__CUDA_NO_BFLOAT16_OPERATORS__"]


def cuda_source(path):
    """(source to compile, note on the launch geometry) from vLLM's FILE."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise SourceError("--vllm: cannot read %s: %s" % (path, e.strerror or e)) from None
    kernels = [extract_kernel(text, n) for n in KERNELS]
    src = (SHIM + "\n// ---- from %s ----\n" % os.path.basename(path) + extract_divisor(text)
           + "namespace vllm {\n" + "\n\n".join(kernels) + "\n}  // namespace vllm\n"
           + "// ---- end of the extracted text ----\n" + LAUNCHER)
    return src, check_host(text)


def load_vllm(path, verbose=False):
    """The compiled module (vllm_mla, empty_launch) and the geometry note."""
    src, note = cuda_source(path)
    from torch.utils.cpp_extension import load_inline
    name = "vllm_mla_peer_" + hashlib.sha1(src.encode()).hexdigest()[:12]
    try:
        mod = load_inline(name=name, cpp_sources=DECLS, cuda_sources=src,
                          functions=["vllm_mla", "empty_launch"],
                          extra_cuda_cflags=NVCC_FLAGS, verbose=verbose)
    except Exception as e:     # nvcc's errors are in its output above
        raise SourceError("compiling the kernels taken from %s failed (%s: %s); they may "
                          "need a name these shims lack: see nvcc's messages above, or "
                          "--print-source" % (path, type(e).__name__, str(e)[-300:])) from None
    return mod, note


def writer(mod):
    """vLLM's concat_and_cache_mla signature over the compiled kernels."""
    def concat_and_cache_mla(kv_c, k_pe, kv_cache, slot_mapping, kv_cache_dtype, scale):
        mod.vllm_mla(kv_c, k_pe, kv_cache, slot_mapping, kv_cache_dtype, scale)
    return concat_and_cache_mla


CONFORM_MODULE = '''# Generated by dev/mla_peers.py: vLLM's MLA writers, compiled at import
# from %(file)r (read at run time, never kept in fp8kv's tree).
import sys
sys.path.insert(0, %(dev)r)
import mla_peers as _peers

_mod, _note = _peers.load_vllm(%(file)r)
concat_and_cache_mla = _peers.writer(_mod)
'''


# ---- timing --------------------------------------------------------------------------

def buffers(torch, tokens, entry, gen):
    blocks = max(64, 4 * tokens // BS)
    out = []
    for _ in range(COPIES):
        kv_c = torch.randn((tokens, RANK), generator=gen, device="cuda").to(torch.bfloat16)
        k_pe = torch.randn((tokens, PE), generator=gen, device="cuda").to(torch.bfloat16)
        cache = torch.zeros((blocks, BS, entry), dtype=torch.uint8, device="cuda")
        slots = torch.randperm(blocks * BS, generator=gen, device="cuda")[:tokens]
        out.append((kv_c, k_pe, cache, slots))
    return out


def graph_of(torch, call, bufs):
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for b in bufs:
            call(*b)
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(CALLS):
            call(*bufs[i % COPIES])
    return g


def sample(torch, g):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    g.replay()
    start.record()
    g.replay()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e3 / CALLS     # us per call


def medians(torch, calls, bufs, rounds):
    """Each call's median time (us) over rounds of its graph over bufs, the
    graphs replayed in turns, so that all see the same machine state."""
    graphs = {n: graph_of(torch, f, bufs) for n, f in calls}
    times = {n: [] for n in graphs}
    for _ in range(rounds):
        for n, g in graphs.items():
            times[n].append(sample(torch, g))
    return {n: statistics.median(v) for n, v in times.items()}


def tokens_and_rounds(ap, a):
    """--tokens and --rounds, checked (ap.error on a bad value)."""
    try:
        tokens = [int(t) for t in a.tokens.split(",")]
        if not tokens or min(tokens) < 1:
            raise ValueError
    except ValueError:
        ap.error("--tokens: positive integers separated by commas, not %r" % a.tokens)
    if a.rounds < 1:
        ap.error("--rounds: at least 1")
    return tokens


def bench(torch, vllm, ours, empty, tokens_list, rounds):
    gen = torch.Generator(device="cuda").manual_seed(7)
    scale = torch.tensor([0.037], device="cuda")
    rows = []
    print("%-6s %-7s %8s %9s %9s %9s %9s %7s %8s %8s %5s" % (
        "tokens", "kind", "floor", "fp8kv", "vllm", "fp8kv-fl", "vllm-fl", "ratio",
        "fp8kvGB/s", "vllmGB/s", "same"))
    for kind, entry in KINDS.items():
        dt = "fp8_ds_mla" if kind == "ds_mla" else "fp8"
        for tokens in tokens_list:
            bufs = buffers(torch, tokens, entry, gen)

            def theirs(kv_c, k_pe, cache, slots, dt=dt):
                vllm(kv_c, k_pe, cache, slots, dt, scale)

            def mine(kv_c, k_pe, cache, slots, kind=kind):
                ours(kind, kv_c, k_pe, cache, slots, scale)

            def floor(kv_c, k_pe, cache, slots):
                empty()

            kv_c, k_pe, cache, slots = bufs[0]
            a, b = torch.zeros_like(cache), torch.zeros_like(cache)
            theirs(kv_c, k_pe, a, slots)
            mine(kv_c, k_pe, b, slots)
            torch.cuda.synchronize()
            diff = int((a != b).sum().item())
            del a, b
            m = medians(torch, (("floor", floor), ("fp8kv", mine), ("vllm", theirs)), bufs,
                        rounds)
            moved = tokens * ((RANK + PE) * 2 + entry + 8)     # bytes per call
            row = dict(tokens=tokens, kind=kind, rank=RANK, pe=PE, block_size=BS,
                       bytes=moved, differing_bytes=diff, **m)
            rows.append(row)
            print("%-6d %-7s %8.2f %9.2f %9.2f %9.2f %9.2f %6.2fx %8.0f %8.0f %5s" % (
                tokens, kind, m["floor"], m["fp8kv"], m["vllm"], m["fp8kv"] - m["floor"],
                m["vllm"] - m["floor"], m["vllm"] / m["fp8kv"], moved / m["fp8kv"] / 1e3,
                moved / m["vllm"] / 1e3, "yes" if diff == 0 else "%dB" % diff))
            del bufs
            torch.cuda.empty_cache()
    return rows


def fp8kv_module():
    """This tree's package, with the staged library (.carry/, unless
    FP8KV_LIBRARY and FP8KV_MODULE_PATH say otherwise) and its torch ops."""
    carry = os.path.join(HERE, "..", ".carry")
    sys.path.insert(0, os.path.join(HERE, "..", "python"))
    os.environ.setdefault("FP8KV_LIBRARY",
                          os.path.abspath(os.path.join(carry, "lib", "libfp8kv.so.1")))
    os.environ.setdefault("FP8KV_MODULE_PATH", os.path.abspath(os.path.join(carry, "modules")))
    import fp8kv
    fp8kv.register_torch_ops()
    return fp8kv


def fp8kv_writer(torch):
    fp8kv = fp8kv_module()
    op = torch.ops.fp8kv.concat_and_cache_mla

    def ours(kind, kv_c, k_pe, cache, slots, scale):
        plain = kind != "ds_mla"
        op(kv_c=kv_c, k_pe=k_pe, kv_cache=cache, slot_mapping=slots, swa_mapping=None,
           kind="plain" if plain else "ds_mla", scale="tensor" if plain else None,
           k_scale=scale if plain else None, divisor=None, overflow="saturate",
           overflow_count=None, nan_count=None, format="e4m3fn")
    return ours, fp8kv.version()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vllm", required=True, metavar="FILE",
                    help="vLLM's cache_kernels.cu (or an excerpt holding the two kernels)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--tokens", default="1,64,256,32768",
                    help="token counts, comma-separated (default 1,64,256,32768)")
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--conform-module", metavar="OUT.py",
                    help="write a module exposing the kernels with vLLM's signature")
    ap.add_argument("--no-time", action="store_true", help="compile (and write the module) only")
    ap.add_argument("--print-source", action="store_true",
                    help="print the CUDA source to compile and exit (no torch needed)")
    ap.add_argument("--verbose", action="store_true", help="show the compiler's commands")
    a = ap.parse_args()
    tokens = tokens_and_rounds(ap, a)
    try:
        if a.print_source:
            src, note = cuda_source(a.vllm)
            sys.stdout.write(src)
            sys.stderr.write("mla_peers: launch geometry %s\n" % note)
            return 0
        import torch
        if not torch.cuda.is_available():
            raise SourceError("torch sees no CUDA device: run this on the GPU machine")
        mod, note = load_vllm(a.vllm, a.verbose)
    except SourceError as e:
        sys.stderr.write("mla_peers: error: %s\n" % e)
        return 2
    if a.conform_module:
        with open(a.conform_module, "w") as f:
            f.write(CONFORM_MODULE % dict(file=os.path.abspath(a.vllm), dev=HERE))
        print("wrote %s: python3 dev/conform_records_gpu.py --mla fp8kv %s:concat_and_cache_mla"
              % (a.conform_module, a.conform_module))
    if a.no_time:
        return 0
    ours, version = fp8kv_writer(torch)
    print("%s, torch %s, fp8kv %s, vLLM kernels from %s; launch geometry %s" % (
        torch.cuda.get_device_name(), torch.__version__, version, a.vllm, note))
    rows = bench(torch, writer(mod), ours, mod.empty_launch, tokens, a.rounds)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
