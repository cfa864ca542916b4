#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""nvfp4_peers.py - vLLM's NVFP4 KV-cache writer against fp8kv's, in one run, on one GPU (#37).

    python3 dev/nvfp4_peers.py --kernels FILE --utils FILE [--rounds 15]
        [--tokens 1,64,256,32768] [--json OUT] [--print-source]

--kernels is vLLM's csrc/libtorch_stable/nvfp4_kv_cache_kernels.cu and
--utils its csrc/libtorch_stable/quantization/fp4/nvfp4_utils.cuh (or the
excerpts in .peers/vllm/), read at run time, never kept in this tree.  Taken
from their text (mla_peers.py's extractor: a regular expression for the
declaration, then the matching brace): reshape_and_cache_nvfp4_kernel and
swizzle_scale_offset; u32x2, fp4_packed_t, reciprocal_approximate_ftz and
cvt_warp_fp16_to_fp4.  This script's own shims stand for the rest:
CVT_FP4_ELTS_PER_THREAD 16 and CVT_FP4_PACK16 1 as macros (vLLM's build
with NVFP4_ENABLE_ELTS16 on CUDA >= 12.9: one thread a group of 16),
CUDATypeConverter, PackedTypeConverter, PackedVec and cast_to_float2 for
bf16, and pack_fp4 through CUDA's __nv_cvt_float2_to_fp4x2 (round to
nearest, element 2i low): vLLM's pack_fp4 is PTX cvt.rn.satfinite.e2m1x2.f32,
which sm_90 lacks, so on H100/H200 this is vLLM's structure with CUDA's
software e2m1 in place of one instruction, not vLLM's binary.

The launcher (this script's) follows vLLM's reshape_and_cache_nvfp4_dispatch
for the sm100 page [K_data | K_scale | V_data | V_scale] in HND order, V
scales in the 4-token swizzle, threads = min(heads * head/16, 512) rounded up
to 32, one block a token.  fp8kv writes the same page through
torch.ops.fp8kv.reshape_and_cache_grouped (rule "nvfp4", format "e2m1",
layout "HND", k_global = v_global = vLLM's k_scale: the decode-direction
global scale; V scales as the 5-D interleaved view).  Each writer first runs
once into zeroed pages and the differing bytes are counted (vLLM's scale uses
rcp.approx.ftz where fp8kv divides exactly: some differences are expected;
the count is information, conform is the referee); then graphs over 16
rotating copies and B-ROUNDS as in mla_peers.py, 8 heads x 128, block 16,
bf16.  Not for conform yet (no --conform-module).
"""

import argparse
import hashlib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mla_peers as P  # noqa: E402

H, D, BS, G = 8, 128, 16, 16

SHIM_HEAD = r"""
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_fp4.h>
#include <algorithm>
#include <cstdint>
#include <type_traits>

#define CVT_FP4_ELTS_PER_THREAD 16
#define CVT_FP4_PACK16 1
#define CVT_FP4_SF_VEC_SIZE 16

namespace vllm {
template <typename T> struct CUDATypeConverter { using Type = T; };
template <typename T> struct PackedTypeConverter;
template <> struct PackedTypeConverter<__nv_bfloat16> { using Type = __nv_bfloat162; };
template <> struct PackedTypeConverter<__half> { using Type = __half2; };
template <typename T, bool PACK16> struct PackedVec {
  typename PackedTypeConverter<T>::Type elts[PACK16 ? 8 : 4];
};
__device__ __forceinline__ float2 cast_to_float2(const __nv_bfloat162 &v) {
  return __bfloat1622float2(v);
}
__device__ __forceinline__ float2 cast_to_float2(const __half2 &v) { return __half22float2(v); }
"""

# after u32x2: vLLM's pack_fp4 for 16 values, with CUDA's e2m1 conversion
SHIM_PACK = r"""
__device__ __forceinline__ u32x2 pack_fp4(float2 (&v)[8]) {
  uint32_t w[2] = {0u, 0u};
#pragma unroll
  for (int i = 0; i < 8; i++)
    w[i / 4] |= uint32_t(__nv_cvt_float2_to_fp4x2(v[i], __NV_E2M1, cudaRoundNearest))
                << (8 * (i % 4));
  return u32x2{w[0], w[1]};
}
"""

LAUNCHER = r"""
__global__ void peer_empty_kernel() {}

void vllm_nvfp4(torch::Tensor key, torch::Tensor value, torch::Tensor pages,
                torch::Tensor slot_mapping, torch::Tensor k_scale, torch::Tensor v_scale,
                int64_t block_size) {
  int num_tokens = slot_mapping.size(0);
  if (num_tokens == 0) return;
  TORCH_CHECK(key.scalar_type() == at::kBFloat16, "key: bf16 only in this peer build");
  TORCH_CHECK(pages.scalar_type() == at::kByte && pages.dim() == 2, "pages: uint8 [blocks, page]");
  int num_heads = key.size(1), head_size = key.size(2);
  TORCH_CHECK(head_size % 16 == 0 && block_size % 4 == 0, "head_size % 16, block_size % 4");
  int64_t data_dim = head_size / 2, scale_dim = head_size / 16;
  int64_t data_per_kv = (int64_t)num_heads * block_size * data_dim;
  int64_t side = (int64_t)num_heads * block_size * (data_dim + scale_dim);
  TORCH_CHECK(pages.size(1) == 2 * side && pages.stride(1) == 1, "pages: [blocks, 2 * side]");
  int64_t page = pages.stride(0);
  uint8_t *base = pages.data_ptr<uint8_t>();
  int total_groups = num_heads * (head_size / CVT_FP4_SF_VEC_SIZE);
  int threads = std::min(total_groups * (CVT_FP4_SF_VEC_SIZE / CVT_FP4_ELTS_PER_THREAD), 512);
  threads = ((threads + 31) / 32) * 32;
  const at::cuda::OptionalCUDAGuard guard(key.device());
  vllm::reshape_and_cache_nvfp4_kernel<__nv_bfloat16>
      <<<dim3(num_tokens), dim3(threads), 0, at::cuda::getCurrentCUDAStream()>>>(
          reinterpret_cast<const __nv_bfloat16 *>(key.data_ptr()),
          reinterpret_cast<const __nv_bfloat16 *>(value.data_ptr()), base, base + side,
          base + data_per_kv, base + side + data_per_kv, slot_mapping.data_ptr<int64_t>(),
          k_scale.data_ptr<float>(), v_scale.data_ptr<float>(), key.stride(0), value.stride(0),
          num_heads, head_size, (int)block_size, page, block_size * data_dim, data_dim, page,
          block_size * scale_dim, scale_dim, true);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void empty_launch() {
  peer_empty_kernel<<<1, 1, 0, at::cuda::getCurrentCUDAStream()>>>();
}
"""

DECLS = ("void vllm_nvfp4(torch::Tensor key, torch::Tensor value, torch::Tensor pages, "
         "torch::Tensor slot_mapping, torch::Tensor k_scale, torch::Tensor v_scale, "
         "int64_t block_size);\nvoid empty_launch();\n")


def _read(path, flag):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        raise P.SourceError("%s: cannot read %s: %s" % (flag, path, e.strerror or e)) from None


def _struct(text, name, flag):
    m = re.search(r"struct\s+%s\s*\{" % re.escape(name), text)
    if not m:
        raise P.SourceError("%s: the file has no struct %s" % (flag, name))
    end = P._matching(text, m.end() - 1, name)
    return text[m.start():end] + ";"


def cuda_source(kernels_path, utils_path):
    kt, ut = _read(kernels_path, "--kernels"), _read(utils_path, "--utils")
    m = re.search(r"using\s+fp4_packed_t\s*=[^;]*;", ut)
    if not m:
        raise P.SourceError("--utils: the file has no `using fp4_packed_t = ...;`")
    utils = [_struct(ut, "u32x2", "--utils"), m.group(0), SHIM_PACK]
    for name in ("reciprocal_approximate_ftz", "cvt_warp_fp16_to_fp4"):
        utils.append(P.extract_def(ut, r"__device__[^;{}()]*\b" + name, name,
                                   "no function %s: give vLLM's nvfp4_utils.cuh (--utils)"
                                   % name))
    swz = P.extract_def(kt, r"__device__[^;{}()]*\bswizzle_scale_offset", "swizzle_scale_offset",
                        "no function swizzle_scale_offset: give vLLM's "
                        "nvfp4_kv_cache_kernels.cu (--kernels)")
    kern = P.extract_kernel(kt, "reshape_and_cache_nvfp4_kernel",
                            "give vLLM's nvfp4_kv_cache_kernels.cu (--kernels)")
    return (SHIM_HEAD + "// ---- from %s ----\n" % os.path.basename(utils_path)
            + "\n\n".join(utils) + "\n// ---- from %s ----\n" % os.path.basename(kernels_path)
            + swz + "\n\n" + kern + "\n}  // namespace vllm\n// ---- end of the extracted text "
            "----\n" + LAUNCHER)


def load(kernels_path, utils_path, verbose=False):
    src = cuda_source(kernels_path, utils_path)
    from torch.utils.cpp_extension import load_inline
    name = "vllm_nvfp4_peer_" + hashlib.sha1(src.encode()).hexdigest()[:12]
    try:
        return load_inline(name=name, cpp_sources=DECLS, cuda_sources=src,
                           functions=["vllm_nvfp4", "empty_launch"],
                           extra_cuda_cflags=P.NVCC_FLAGS, verbose=verbose)
    except Exception as e:
        raise P.SourceError("compiling the NVFP4 kernel taken from %s failed (%s: %s); see "
                            "nvcc's messages above, or --print-source"
                            % (kernels_path, type(e).__name__, str(e)[-300:])) from None


def views(torch, pages):
    """fp8kv's keywords for vLLM's sm100 HND page held in PAGES [blocks, 2 * side]."""
    dd, sd, groups = D // 2, D // 16, D // G
    side, dkv, page = H * BS * (dd + sd), H * BS * dd, pages.stride(0)
    blocks = pages.shape[0]
    st = torch.as_strided
    return dict(
        key_cache=st(pages, (blocks, H, BS, dd), (page, BS * dd, dd, 1), 0),
        value_cache=st(pages, (blocks, H, BS, dd), (page, BS * dd, dd, 1), side),
        k_scales=st(pages, (blocks, H, BS, groups), (page, BS * sd, sd, 1), dkv),
        v_scales=st(pages, (blocks, H, BS // 4, groups, 4), (page, BS * sd, 4 * sd, 4, 1),
                    side + dkv))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", required=True, metavar="FILE",
                    help="vLLM's nvfp4_kv_cache_kernels.cu (or an excerpt)")
    ap.add_argument("--utils", required=True, metavar="FILE",
                    help="vLLM's nvfp4_utils.cuh (or an excerpt)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--tokens", default="1,64,256,32768")
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--print-source", action="store_true",
                    help="print the CUDA source to compile and exit (no torch needed)")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    tokens = P.tokens_and_rounds(ap, a)
    try:
        if a.print_source:
            sys.stdout.write(cuda_source(a.kernels, a.utils))
            return 0
        import torch
        if not torch.cuda.is_available():
            raise P.SourceError("torch sees no CUDA device: run this on the GPU machine")
        mod = load(a.kernels, a.utils, a.verbose)
    except P.SourceError as e:
        sys.stderr.write("nvfp4_peers: error: %s\n" % e)
        return 2
    fp8kv = P.fp8kv_module()
    op = torch.ops.fp8kv.reshape_and_cache_grouped
    g = torch.tensor([0.002], device="cuda")     # decode-direction global scale
    side = H * BS * (D // 2 + D // 16)

    def ours(key, value, pages, slots):
        op(key=key, value=value, slot_mapping=slots, swa_mapping=None, rule="nvfp4",
           group_size=G, k_global=g, v_global=g, divisor=None, scale_floor=None,
           rounding="nearest_even", overflow="saturate", overflow_count=None, nan_count=None,
           k_amax=None, v_amax=None, format="e2m1", layout="HND", **views(torch, pages))

    def theirs(key, value, pages, slots):
        mod.vllm_nvfp4(key, value, pages, slots, g, g, BS)

    def floor(key, value, pages, slots):
        mod.empty_launch()

    print("%s, torch %s, fp8kv %s, vLLM NVFP4 kernel from %s (CUDA's e2m1 for the PTX)" % (
        torch.cuda.get_device_name(), torch.__version__, fp8kv.version(), a.kernels))
    print("%-14s %8s %9s %9s %9s %9s %7s %9s %9s %8s" % (
        "shape", "floor", "fp8kv", "vllm", "fp8kv-fl", "vllm-fl", "ratio", "fp8kvGB/s",
        "vllmGB/s", "diffB"))
    gen, rows = torch.Generator(device="cuda").manual_seed(11), []
    for n in tokens:
        blocks = max(64, 4 * n // BS)
        bufs = []
        for _ in range(P.COPIES):
            key = torch.randn((n, H, D), generator=gen, device="cuda").to(torch.bfloat16)
            value = torch.randn((n, H, D), generator=gen, device="cuda").to(torch.bfloat16)
            pages = torch.zeros((blocks, 2 * side), dtype=torch.uint8, device="cuda")
            slots = torch.randperm(blocks * BS, generator=gen, device="cuda")[:n]
            bufs.append((key, value, pages, slots))
        key, value, pages, slots = bufs[0]
        pa, pb = torch.zeros_like(pages), torch.zeros_like(pages)
        theirs(key, value, pa, slots)
        ours(key, value, pb, slots)
        torch.cuda.synchronize()
        diff = int((pa != pb).sum().item())
        del pa, pb
        m = P.medians(torch, (("floor", floor), ("fp8kv", ours), ("vllm", theirs)), bufs,
                      a.rounds)
        moved = n * (2 * H * D * 2 + 2 * H * (D // 2 + D // 16) + 8)
        rows.append(dict(tokens=n, heads=H, dim=D, block_size=BS, bytes=moved,
                         differing_bytes=diff, **m))
        print("%-14s %8.2f %9.2f %9.2f %9.2f %9.2f %6.2fx %9.0f %9.0f %8d" % (
            "%dx%dx%d" % (n, H, D), m["floor"], m["fp8kv"], m["vllm"], m["fp8kv"] - m["floor"],
            m["vllm"] - m["floor"], m["vllm"] / m["fp8kv"], moved / m["fp8kv"] / 1e3,
            moved / m["vllm"] / 1e3, diff))
        del bufs
        torch.cuda.empty_cache()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
