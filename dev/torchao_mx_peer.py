#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""torchao_mx_peer.py - torchao's MX quantizer (to_mx) as a KV-cache writer
for fp8kv.conform's block-scaled referee (#37), on a GPU machine.

    TORCHAO_SRC=DIR python3 dev/conform_records_gpu.py \\
        --groups mxfp8=dev/torchao_mx_peer.py:mxfp8_floor \\
                 mxfp8=dev/torchao_mx_peer.py:mxfp8_rceil \\
                 mxfp4=dev/torchao_mx_peer.py:mxfp4_floor \\
                 mxfp4=dev/torchao_mx_peer.py:mxfp4_rceil

DIR holds torchao's Python sources (a checkout of github.com/pytorch/ao:
the torchao/ folder), read at run time, never kept in this tree.  Each
writer takes fp8kv.reshape_and_cache_grouped's keywords and quantizes
every token's key and value rows with torchao's own code, eagerly:
to_mx(rows, elem_dtype, block_size=group_size, scaling_mode=FLOOR or
RCEIL), which returns the E8M0 scale bytes and the element bytes (e4m3fn,
or e2m1 packed by torchao's pack_uint4).  This file only places them: the
rows of the tokens whose slot is not negative go to block slot //
block_size, offset slot % block_size, as they come out of to_mx.  So the
bytes conform referees (recipe, nibble order, NaN, saturation) are
torchao's."""

import os
import sys


def _to_mx():
    src = os.environ.get("TORCHAO_SRC")
    if src and src not in sys.path:
        sys.path.insert(0, src)
    os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
    from torchao.prototype.mx_formats.config import ScaleCalculationMode
    from torchao.prototype.mx_formats.mx_tensor import to_mx
    return to_mx, ScaleCalculationMode


def _writer(elem, mode_name):
    def write(*, key, value, key_cache, value_cache, slot_mapping, group_size,
              k_scales, v_scales, **_):
        import torch
        to_mx, mode = _to_mx()
        dt = {"e4m3fn": torch.float8_e4m3fn, "e2m1": torch.float4_e2m1fn_x2}[elem]
        keep = slot_mapping >= 0
        slots = slot_mapping[keep]
        bs = key_cache.shape[1]
        b, o = slots // bs, slots % bs
        for x, cache, scales in ((key, key_cache, k_scales), (value, value_cache, v_scales)):
            t, h, d = x.shape
            sc, data = to_mx(x.contiguous().reshape(t * h, d), dt, group_size,
                             scaling_mode=getattr(mode, mode_name))
            data = data.contiguous().view(torch.uint8).reshape(t, h, -1)
            sc = sc.contiguous().view(torch.uint8).reshape(t, h, -1)
            cache[b, o] = data[keep]
            scales[b, o] = sc[keep]
    write.__name__ = "torchao_to_mx_%s_%s" % (elem, mode_name.lower())
    return write


mxfp8_floor = _writer("e4m3fn", "FLOOR")
mxfp8_rceil = _writer("e4m3fn", "RCEIL")
mxfp4_floor = _writer("e2m1", "FLOOR")
mxfp4_rceil = _writer("e2m1", "RCEIL")
