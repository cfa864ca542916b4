# SPDX-License-Identifier: MIT
"""The engines' drop-ins, fp8kv.compat.sglang and fp8kv.compat.vllm: their
signatures, their argument handling (vLLM's kv_cache_dtype strings, uint8
caches, per-tensor and per-head scales, SGLang's SWA table and token count),
and their bytes against the numpy model, on numpy arrays."""

import inspect

import numpy as np
import pytest

import fp8kv
import reference
from fp8kv.compat import sglang, vllm
from helpers import assert_bytes_equal, make_inputs, poisoned

T, H, D, B, S = 7, 2, 16, 3, 4


@pytest.fixture(autouse=True)
def no_uint8_format():
    yield
    sglang.set_fp8_format(None)
    vllm.set_fp8_format(None)


def inputs(rng, dtype="f32", rows=T):
    return make_inputs(rng, (rows, H, D), dtype), make_inputs(rng, (rows, H, D), dtype)


def expected(key, value, slots, fmt, in_dtype="f32", cache_shape=(B, S, H, D), **kw):
    dtype = key.dtype if fmt == in_dtype else np.uint8
    kc, vc = poisoned(cache_shape, dtype), poisoned(cache_shape, dtype)
    reference.cache_write(key, value, kc, vc, slots, fmt=fmt, in_dtype=in_dtype, **kw)
    return kc, vc


def test_signatures_are_the_engines():
    assert str(inspect.signature(sglang.launch_reshape_and_cache_flash)) == (
        "(key, value, key_cache, value_cache, slot_mapping, swa_slot_mapping=None, "
        "k_scale=None, v_scale=None)")
    assert str(inspect.signature(vllm.reshape_and_cache_flash)) == (
        "(key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype, k_scale, "
        "v_scale)")


# ---- SGLang -------------------------------------------------------------------

def test_sglang_refuses_uint8_until_the_format_is_stated(rng):
    key, value = inputs(rng)
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
    slots = np.arange(T, dtype=np.int64)
    with pytest.raises(TypeError, match="^key_cache:.*set_fp8_format"):
        sglang.launch_reshape_and_cache_flash(key, value, kc, vc, slots)
    assert (kc == 0xA5).all()
    for fmt in reference.FP8:
        sglang.set_fp8_format(fmt)
        kc[...] = vc[...] = 0xA5
        sglang.launch_reshape_and_cache_flash(key, value, kc, vc, slots)
        ek, ev = expected(key, value, slots, fmt)
        assert_bytes_equal(kc, ek, fmt)
        assert_bytes_equal(vc, ev, fmt)


@pytest.mark.parametrize("scales", ["tensors", "floats"])
def test_sglang_scales_swa_and_padding(rng, scales):
    sglang.set_fp8_format("e4m3fn")
    key, value = inputs(rng)
    swa = np.array([3, -1, 0, 7, 11, 2, -1, 5, 1, 9], np.int64)
    slots = np.array([0, 1, -1, 3, 4, 6, 9], np.int64)
    ks, vs = (np.array([0.37], np.float32), np.array([1 / 3], np.float32)) \
        if scales == "tensors" else (0.37, 1 / 3)
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
    sglang.launch_reshape_and_cache_flash(key, value, kc, vc, slots, swa, ks, vs)
    ek, ev = expected(key, value, slots, "e4m3fn", swa=swa, scale="tensor",
                      k_scale=np.array([0.37], np.float32),
                      v_scale=np.array([1 / 3], np.float32))
    assert_bytes_equal(kc, ek)
    assert_bytes_equal(vc, ev)


def test_sglang_counts_tokens_by_key_rows(rng):
    key, value = inputs(rng, "f16")
    slots = np.array([5, 2, 0, 1, 3, 4, 7, 8, 9], np.int32)      # longer than key
    kc, vc = poisoned((B, S, H, D), np.float16), poisoned((B, S, H, D), np.float16)
    sglang.launch_reshape_and_cache_flash(key, value, kc, vc, slots)      # a copy
    ek, ev = expected(key, value, slots[:T], "f16", "f16")
    assert_bytes_equal(kc, ek)
    assert_bytes_equal(vc, ev)
    with pytest.raises(ValueError, match="^slot_mapping:"):
        sglang.launch_reshape_and_cache_flash(key, value, kc, vc, slots[:T - 1])


@pytest.mark.parametrize("k_scale,v_scale,argument", [
    (np.ones(1, np.float32), None, "v_scale"), (None, 1.0, "k_scale"),
    (np.ones(H, np.float32), np.ones(H, np.float32), "k_scale")])
def test_sglang_scale_errors(rng, k_scale, v_scale, argument):
    sglang.set_fp8_format("e5m2")
    key, value = inputs(rng)
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
    with pytest.raises(ValueError, match="^" + argument):
        sglang.launch_reshape_and_cache_flash(key, value, kc, vc, np.arange(T), None,
                                              k_scale, v_scale)
    assert (kc == 0xA5).all() and (vc == 0xA5).all()


def test_sglang_scale_on_a_wide_cache_is_refused(rng):
    key, value = inputs(rng)
    kc, vc = poisoned((B, S, H, D), np.float32), poisoned((B, S, H, D), np.float32)
    with pytest.raises(ValueError, match="^scale:"):
        sglang.launch_reshape_and_cache_flash(key, value, kc, vc, np.arange(T), None, 2.0, 2.0)


# ---- vLLM ---------------------------------------------------------------------

def test_vllm_auto_copies_and_ignores_scales(rng):
    key, value = inputs(rng, "f16", rows=T + 3)            # padded rows, as vLLM's
    slots = np.array([4, -1, 2, 0, 9, 10, 11], np.int64)
    kc, vc = poisoned((B, S, H, D), np.float16), poisoned((B, S, H, D), np.float16)
    vllm.reshape_and_cache_flash(key, value, kc, vc, slots, "auto",
                                 np.array([2.0], np.float32), np.array([4.0], np.float32))
    ek, ev = expected(key[:T], value[:T], slots, "f16", "f16")
    assert_bytes_equal(kc, ek)
    assert_bytes_equal(vc, ev)
    with pytest.raises(TypeError, match="^key_cache:"):
        vllm.reshape_and_cache_flash(key, value, poisoned((B, S, H, D)),
                                     poisoned((B, S, H, D)), slots, "auto", 1.0, 1.0)


@pytest.mark.parametrize("string", ["fp8", "fp8_e4m3"])
def test_vllm_e4m3_needs_the_format_for_uint8(rng, string):
    key, value = inputs(rng)
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
    slots = np.arange(T, dtype=np.int64)
    ks, vs = np.array([0.37], np.float32), np.array([1 / 3], np.float32)
    with pytest.raises(TypeError, match="^key_cache:.*e4m3fn or e4m3fnuz"):
        vllm.reshape_and_cache_flash(key, value, kc, vc, slots, string, ks, vs)
    assert (kc == 0xA5).all()
    vllm.set_fp8_format("e5m2")
    with pytest.raises(ValueError, match="^key_cache: holds e5m2"):
        vllm.reshape_and_cache_flash(key, value, kc, vc, slots, string, ks, vs)
    for fmt in ("e4m3fn", "e4m3fnuz"):
        vllm.set_fp8_format(fmt)
        kc[...] = vc[...] = 0xA5
        vllm.reshape_and_cache_flash(key, value, kc, vc, slots, string, ks, vs)
        ek, ev = expected(key, value, slots, fmt, scale="tensor", k_scale=ks, v_scale=vs)
        assert_bytes_equal(kc, ek, fmt)
        assert_bytes_equal(vc, ev, fmt)


def test_vllm_e5m2_is_vllm_s_e5m2_unless_stated(rng):
    key, value = inputs(rng, "bf16")
    slots = np.arange(T, dtype=np.int64)
    for stated, fmt in ((None, "e5m2"), ("e5m2fnuz", "e5m2fnuz")):
        vllm.set_fp8_format(stated)
        kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
        vllm.reshape_and_cache_flash(fp8kv.typed(key, "bf16"), fp8kv.typed(value, "bf16"), kc,
                                     vc, slots, "fp8_e5m2", 1.0, 2.0)
        ek, ev = expected(key, value, slots, fmt, "bf16", scale="tensor",
                          k_scale=np.ones(1, np.float32), v_scale=np.full(1, 2, np.float32))
        assert_bytes_equal(kc, ek, fmt)
        assert_bytes_equal(vc, ev, fmt)


def test_vllm_per_head_scales_and_hnd_strides(rng):
    """vLLM's HND cache: the [blocks, block_size, heads, dim] shape over
    [blocks, heads, block_size, dim] memory."""
    vllm.set_fp8_format("e4m3fn")
    key, value = inputs(rng)
    slots = rng.permutation(B * S)[:T].astype(np.int64)
    kbuf, vbuf = poisoned((B, H, S, D)), poisoned((B, H, S, D))
    ks, vs = np.array([0.37, 2.5], np.float32), np.array([-1.0, 1e-3], np.float32)
    vllm.reshape_and_cache_flash(key, value, kbuf.transpose(0, 2, 1, 3),
                                 vbuf.transpose(0, 2, 1, 3), slots, "fp8", ks, vs)
    ek, ev = expected(key, value, slots, "e4m3fn", cache_shape=(B, H, S, D), layout="HND",
                      scale="head", k_scale=ks, v_scale=vs)
    assert_bytes_equal(kbuf, ek)
    assert_bytes_equal(vbuf, ev)
    with pytest.raises(ValueError, match="^v_scale:"):
        vllm.reshape_and_cache_flash(key, value, kbuf.transpose(0, 2, 1, 3),
                                     vbuf.transpose(0, 2, 1, 3), slots, "fp8", ks, vs[:1])


@pytest.mark.parametrize("string", ["fp8_inc", "fp8_ds_mla", "int8", "FP8", ""])
def test_vllm_unknown_kv_cache_dtype(rng, string):
    key, value = inputs(rng)
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
    with pytest.raises(ValueError, match="^kv_cache_dtype:"):
        vllm.reshape_and_cache_flash(key, value, kc, vc, np.arange(T), string, 1.0, 1.0)
    assert (kc == 0xA5).all()


def test_vllm_out_of_range_is_reported_after_writing_the_rest(rng):
    vllm.set_fp8_format("e4m3fnuz")
    key, value = inputs(rng)
    slots = np.array([0, 1, B * S, 3, 4, 5, 6], np.int64)
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
    with pytest.raises(fp8kv.RangeError, match="token 2"):
        vllm.reshape_and_cache_flash(key, value, kc, vc, slots, "fp8", 1.0, 1.0)
    ek, ev = expected(key, value, slots, "e4m3fnuz", scale="tensor",
                      k_scale=np.ones(1, np.float32), v_scale=np.ones(1, np.float32))
    assert_bytes_equal(kc, ek)
    assert_bytes_equal(vc, ev)


# ---- hostile arguments (issue #35 item 8) ---------------------------------------

def _sglang_args(rng):
    key, value = inputs(rng)
    sglang.set_fp8_format("e4m3fn")
    return dict(key=key, value=value, key_cache=poisoned((B, S, H, D)),
                value_cache=poisoned((B, S, H, D)), slot_mapping=np.arange(T, dtype=np.int64))


@pytest.mark.parametrize("name,bad,error", [
    ("key", None, TypeError),
    ("key", [[[1.0]]], TypeError),
    ("value", None, TypeError),
    ("key_cache", None, TypeError),
    ("slot_mapping", list(range(T)), TypeError),
    ("slot_mapping", np.array(3, np.int64), ValueError),
    ("slot_mapping", np.zeros((T, 1), np.int64), ValueError),
    ("swa_slot_mapping", [0, 1], TypeError),
    ("k_scale", "1.0", TypeError),
], ids=["key_none", "key_list", "value_none", "key_cache_none", "slots_list", "slots_0d",
        "slots_2d", "swa_list", "k_scale_str"])
def test_sglang_names_every_wrong_argument(rng, name, bad, error):
    kw = _sglang_args(rng)
    kw[name] = bad
    if name == "k_scale":
        kw["v_scale"] = 1.0
    kc = kw["key_cache"] if isinstance(kw["key_cache"], np.ndarray) else kw["value_cache"]
    with pytest.raises(error) as e:
        sglang.launch_reshape_and_cache_flash(**kw)
    assert not isinstance(e.value, fp8kv.Error)
    assert str(e.value).startswith(name + ":"), str(e.value)
    assert (kc == 0xA5).all()


@pytest.mark.parametrize("name,bad,error", [
    ("kv_cache_dtype", ["fp8"], TypeError),
    ("kv_cache_dtype", None, TypeError),
    ("key", None, TypeError),
    ("key_cache", None, TypeError),
    ("slot_mapping", list(range(T)), TypeError),
    ("slot_mapping", np.array(3, np.int64), ValueError),
    ("k_scale", None, ValueError),
], ids=["dtype_list", "dtype_none", "key_none", "key_cache_none", "slots_list", "slots_0d",
        "k_scale_none"])
def test_vllm_names_every_wrong_argument(rng, name, bad, error):
    key, value = inputs(rng)
    vllm.set_fp8_format("e4m3fn")
    kw = dict(key=key, value=value, key_cache=poisoned((B, S, H, D)),
              value_cache=poisoned((B, S, H, D)), slot_mapping=np.arange(T, dtype=np.int64),
              kv_cache_dtype="fp8", k_scale=1.0, v_scale=1.0)
    kw[name] = bad
    vc = kw["value_cache"]
    with pytest.raises(error) as e:
        vllm.reshape_and_cache_flash(**kw)
    assert not isinstance(e.value, fp8kv.Error)
    assert str(e.value).startswith(name + ":"), str(e.value)
    assert (vc == 0xA5).all()
