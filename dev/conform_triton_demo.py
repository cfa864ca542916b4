# SPDX-License-Identifier: MIT
"""DEMONSTRATION TARGET for fp8kv.conform, not fp8kv's writer and not any
engine's code: a fused KV-cache writer written the obvious way in Triton,
one program per token and head, dividing with "/" and storing with
.to(cache dtype), without bounds checks, so that the harness has a real
GPU kernel to report on:

    python3 -m fp8kv.conform dev/conform_triton_demo.py:write_kv --device cuda \\
        --formats e4m3fn,e5m2 --scales one,tensor,head --layouts NHD,HND --swa

It takes the reference convention on CUDA tensors with float8_e4m3fn or
float8_e5m2 caches; importing it needs Triton.
"""

import triton
import triton.language as tl

SCALE_NONE, SCALE_TENSOR, SCALE_HEAD = 0, 1, 2


@triton.jit
def _write_kernel(key_ptr, value_ptr, kc_ptr, vc_ptr, slot_ptr, swa_ptr, ks_ptr, vs_ptr,
                  stride_kt, stride_kh, stride_vt, stride_vh,
                  stride_cb, stride_cs, stride_ch, block_size,
                  HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
                  SCALE: tl.constexpr, HAS_SWA: tl.constexpr):
    t = tl.program_id(0)
    h = tl.program_id(1)
    slot = tl.load(slot_ptr + t).to(tl.int64)
    valid = slot >= 0
    if HAS_SWA:
        slot = tl.load(swa_ptr + slot, mask=valid, other=-1).to(tl.int64)
        valid = slot >= 0
    block = slot // block_size
    offset = slot % block_size
    d = tl.arange(0, BLOCK_D)
    mask = (d < HEAD_DIM) & valid
    k = tl.load(key_ptr + t * stride_kt + h * stride_kh + d, mask=mask, other=0.0).to(tl.float32)
    v = tl.load(value_ptr + t * stride_vt + h * stride_vh + d, mask=mask, other=0.0).to(tl.float32)
    if SCALE == 1:
        k = k / tl.load(ks_ptr)
        v = v / tl.load(vs_ptr)
    if SCALE == 2:
        k = k / tl.load(ks_ptr + h)
        v = v / tl.load(vs_ptr + h)
    at = block * stride_cb + offset * stride_cs + h * stride_ch + d
    tl.store(kc_ptr + at, k.to(kc_ptr.dtype.element_ty), mask=mask)
    tl.store(vc_ptr + at, v.to(vc_ptr.dtype.element_ty), mask=mask)


def write_kv(key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale,
             swa_mapping=None):
    """The reference convention: caches [blocks, block_size, heads, dim] (NHD)
    or [blocks, heads, block_size, dim] (HND), float8; scales None, one
    value, or one per head; an optional SWA table."""
    T, heads, dim = slot_mapping.shape[0], key.shape[1], key.shape[2]
    nhd = key_cache.shape[2] == heads
    block_size = key_cache.shape[1] if nhd else key_cache.shape[2]
    sb = key_cache.stride(0)
    ss, sh = (key_cache.stride(1), key_cache.stride(2)) if nhd else \
        (key_cache.stride(2), key_cache.stride(1))
    scale = SCALE_NONE if k_scale is None else SCALE_TENSOR if k_scale.numel() == 1 \
        else SCALE_HEAD
    if T == 0:
        return
    _write_kernel[(T, heads)](
        key, value, key_cache, value_cache, slot_mapping,
        swa_mapping if swa_mapping is not None else slot_mapping,
        k_scale if k_scale is not None else key, v_scale if v_scale is not None else value,
        key.stride(0), key.stride(1), value.stride(0), value.stride(1),
        sb, ss, sh, block_size,
        HEAD_DIM=dim, BLOCK_D=triton.next_power_of_2(dim), SCALE=scale,
        HAS_SWA=swa_mapping is not None)
