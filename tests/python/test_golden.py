# SPDX-License-Identifier: MIT
"""fp8kv.golden on numpy arrays: the CPU backend's bytes for a call, on host
copies, with nothing passed in touched; the interface fp8kv.conform builds
on."""

import numpy as np

import fp8kv
import reference
from fp8kv import golden
from helpers import assert_bytes_equal, make_inputs, poisoned


def test_golden_returns_the_written_copies(rng):
    T, H, D, B, S = 6, 2, 8, 3, 4
    key = make_inputs(rng, (T, H, D), "bf16")
    slots = np.array([0, 5, -1, 7, 11, 2], np.int64)
    kc, vc = poisoned((B, H, S, D)), poisoned((B, H, S, D))
    ksc, vsc = poisoned((B, H, S), np.float32), poisoned((B, H, S), np.float32)
    before = [a.copy() for a in (key, kc, vc, ksc, vsc)]
    res = golden.reshape_and_cache(fp8kv.typed(key, "bf16"), fp8kv.typed(key, "bf16"), kc, vc,
                                   slots, scale="dynamic", k_scale_cache=ksc, v_scale_cache=vsc,
                                   format="e5m2")
    for a, b in zip((key, kc, vc, ksc, vsc), before):
        assert_bytes_equal(a, b, "an argument")
    ek, ev, eks, evs = kc.copy(), vc.copy(), ksc.copy(), vsc.copy()
    reference.cache_write(key, key, ek, ev, slots, fmt="e5m2", in_dtype="bf16", layout="HND",
                          scale="dynamic", k_sc=eks, v_sc=evs, sc_layout="HND")
    assert res.error is None
    assert_bytes_equal(golden.as_bytes(res.key_cache), ek)
    assert_bytes_equal(golden.as_bytes(res.value_cache), ev)
    assert_bytes_equal(golden.as_bytes(res.k_scale_cache), eks.view(np.uint8))
    assert_bytes_equal(golden.as_bytes(res.v_scale_cache), evs.view(np.uint8))
    assert res.overflow_count is None and res.k_amax is None


def test_as_bytes_orders_by_logical_element():
    a = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    b = golden.as_bytes(a.transpose(1, 0, 2))
    assert b.shape == (3, 2, 8)
    assert_bytes_equal(b, np.ascontiguousarray(a.transpose(1, 0, 2)).view(np.uint8))
    assert golden.as_bytes(np.float32(1.0)).tolist() == [0, 0, 128, 63]
