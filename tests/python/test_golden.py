# SPDX-License-Identifier: MIT
"""fp8kv.golden on numpy arrays: the CPU backend's bytes for a call, on host
copies, with nothing passed in touched; the interface fp8kv.conform builds
on."""

import re

import numpy as np
import pytest

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
                                   slots, scale="token_head", k_scale_cache=ksc, v_scale_cache=vsc,
                                   format="e5m2")
    for a, b in zip((key, kc, vc, ksc, vsc), before):
        assert_bytes_equal(a, b, "an argument")
    ek, ev, eks, evs = kc.copy(), vc.copy(), ksc.copy(), vsc.copy()
    reference.cache_write(key, key, ek, ev, slots, fmt="e5m2", in_dtype="bf16", layout="HND",
                          scale="token_head", k_sc=eks, v_sc=evs, sc_layout="HND")
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


def _golden_case(rng, case):
    """Arguments the real write rejects (InvalidArgument, or ValueError/TypeError
    from the package), and the arrays that must keep their bytes."""
    T, H, D, B, S = 4, 2, 8, 3, 4
    key = make_inputs(rng, (T, H, D), "f32", specials=False)
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
    args = dict(key=key, value=key.copy(), key_cache=kc, value_cache=vc,
                slot_mapping=np.arange(T, dtype=np.int64), format="e4m3fn")
    if case == "same_cache":
        args["value_cache"] = kc
    elif case == "cache_over_key":
        # the key cache's bytes are the key's own (T*H*D*4 bytes)
        args["key_cache"] = key.view(np.uint8).reshape(B + 1, 4, H, D)[:B]
    elif case == "cache_over_value_cache":
        big = poisoned((B + 1, S, H, D))
        args["key_cache"], args["value_cache"] = big[:B], big[1:]
    elif case == "misaligned_key":
        raw = np.zeros(key.nbytes + 1, np.uint8)
        k = raw[1:].view(np.float32).reshape(key.shape)
        k[...] = key
        args["key"] = k
    elif case == "read_only_cache":
        kc.setflags(write=False)
    return args


@pytest.mark.parametrize("case", ["same_cache", "cache_over_key", "cache_over_value_cache",
                                  "misaligned_key", "read_only_cache"])
def test_golden_rejects_what_the_write_rejects(rng, case):
    """Its docstring's promise: argument errors raise as they would."""
    args = _golden_case(rng, case)
    before = {n: a.copy() for n, a in args.items() if isinstance(a, np.ndarray)}
    positional = [args[n] for n in ("key", "value", "key_cache", "value_cache", "slot_mapping")]
    with pytest.raises((ValueError, TypeError)) as real:
        fp8kv.reshape_and_cache(*positional, format="e4m3fn")
    with pytest.raises(type(real.value)) as gold:
        golden.reshape_and_cache(*positional, format="e4m3fn")
    assert isinstance(gold.value, fp8kv.Error) == isinstance(real.value, fp8kv.Error)
    def masked(e):
        return re.sub("0x[0-9a-f]+", "ADDRESS", str(e))
    assert masked(gold.value) == masked(real.value)
    for n, b in before.items():
        assert_bytes_equal(args[n], b, n)


def test_golden_keeps_inputs_that_share_memory(rng):
    """Inputs may share memory (key and value as views of one qkv array):
    golden accepts that as the write does, with the same bytes."""
    T, H, D, B, S = 4, 2, 8, 3, 4
    qkv = make_inputs(rng, (T, 2 * H, D), "f32")
    key, value = qkv[:, :H], qkv[:, H:]
    slots = np.array([3, 0, -1, 9], np.int64)
    res = golden.reshape_and_cache(key, value, poisoned((B, S, H, D)), poisoned((B, S, H, D)),
                                   slots, format="e5m2", k_scale=0.5, v_scale=2.0)
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
    fp8kv.reshape_and_cache(key, value, kc, vc, slots, format="e5m2", k_scale=0.5,
                            v_scale=2.0)
    assert res.error is None
    assert_bytes_equal(golden.as_bytes(res.key_cache), kc)
    assert_bytes_equal(golden.as_bytes(res.value_cache), vc)
