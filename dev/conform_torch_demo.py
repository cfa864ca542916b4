# SPDX-License-Identifier: MIT
"""DEMONSTRATION TARGET for fp8kv.conform, not fp8kv's writer and not any
engine's code: a KV-cache writer written the obvious unfused way in PyTorch,

    cache[block, offset] = (key.float() / k_scale).to(torch.float8_e4m3fn)

so that the harness has a real writer to report on:

    python3 -m fp8kv.conform dev/conform_torch_demo.py:write_kv --device cuda \\
        --scales one,tensor,head --layouts NHD,HND --overflow nonsaturating

It takes the reference convention on torch tensors with float8 caches
(torch >= 2.1).  torch's .to(float8) does not saturate: with the default
claim (saturate) the harness reports it.  Padding (slot < 0) and
out-of-range slots are skipped; there is no SWA mapping.
"""

import torch


def write_kv(key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale,
             overflow="saturate"):
    """The reference convention: caches [blocks, block_size, heads, dim] (NHD)
    or [blocks, heads, block_size, dim] (HND); scales None, one value or one
    per head.  `overflow` is accepted and ignored: the cast never saturates."""
    heads = key.shape[1]
    nhd = key_cache.shape[2] == heads
    block_size = key_cache.shape[1] if nhd else key_cache.shape[2]
    slots = slot_mapping.long()
    write = (slots >= 0) & (slots < key_cache.shape[0] * block_size)
    tokens = torch.nonzero(write).flatten()
    block, offset = slots[tokens] // block_size, slots[tokens] % block_size
    for src, cache, scale in ((key, key_cache, k_scale), (value, value_cache, v_scale)):
        x = src[tokens].float()
        if scale is not None:
            x = x / (scale.view(1, -1, 1) if scale.numel() > 1 else scale)
        q = x.to(cache.dtype).view(torch.uint8)
        raw = cache.view(torch.uint8)
        if nhd:
            raw[block, offset] = q
        else:
            raw[block, :, offset] = q
