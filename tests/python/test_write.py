# SPDX-License-Identifier: MIT
"""fp8kv.reshape_and_cache on numpy arrays (the CPU backend) against the
independent model in reference.py: every format and input dtype, every scale
mode, NHD and HND, strided inputs and caches, SWA mappings, padding,
duplicates, out-of-range slots, counters and amax.  Caches, scale caches and
the buffers around strided views are poisoned first and compared byte for
byte, so stray writes show as well as wrong ones."""

import numpy as np
import pytest

import fp8kv
import reference
from helpers import (INPUT_DTYPES, as_arg, assert_bytes_equal, make_inputs, poisoned)

RAW = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16}
K_SCALES = {"tensor": [0.37], "head": [0.37, 1 / 3, -1e-3, 2.0 ** -130]}
V_SCALES = {"tensor": [1 / 3], "head": [-0.5, 3.0, 7.1e-5, 1e30]}


def cache_view(rng, layout, B, S, H, D, dtype, strided, hnd_scale=False):
    """(buffer, view): a poisoned cache of logical shape NHD [B, S, H, D] or
    HND [B, H, S, D]; strided puts it inside a larger poisoned buffer."""
    shape = (B, S, H, D) if layout == "NHD" else (B, H, S, D)
    if not strided:
        buf = poisoned(shape, dtype)
        return buf, buf
    big = poisoned(tuple(n + 1 for n in shape[:3]) + (D + 5,), dtype)
    return big, big[1:, :shape[1], 1:, 3:3 + D]


def input_view(rng, T, H, D, dtype, strided):
    if not strided:
        return make_inputs(rng, (T, H, D), dtype)
    return make_inputs(rng, (T + 1, H + 2, D + 3), dtype)[1:, 2:, 1:1 + D]


def make_slots(rng, T, num_slots, index=np.int64, padding=2):
    slots = rng.permutation(num_slots)[:T].astype(index)
    slots[rng.choice(T, size=padding, replace=False)] = -1
    return slots


def check_write(rng, fmt, dtype, scale="one", layout="NHD", *, T=9, H=3, D=16, Dv=8, B=4, S=4,
                saturate=True, strided=False, slots=None, swa=None, sc_layout=None,
                counters=True, expect_range_error=False, index=np.int64):
    """One call of fp8kv.reshape_and_cache against reference.cache_write;
    fmt is an FP8 format or "copy" (a cache of the input's dtype)."""
    key = input_view(rng, T, H, D, dtype, strided)
    value = input_view(rng, T, H, Dv, dtype, strided)
    cache_dtype = np.uint8 if fmt != "copy" else RAW[dtype]
    kbuf, kc = cache_view(rng, layout, B, S, H, D, cache_dtype, strided)
    vbuf, vc = cache_view(rng, layout, B, S, H, Dv, cache_dtype, strided)
    if slots is None:
        slots = make_slots(rng, T, B * S, index)
    kwargs = dict(layout=layout if rng.integers(2) else None,
                  overflow="saturate" if saturate else "nonsaturating")
    if fmt != "copy":
        kwargs["format"] = fmt
    ref = dict(fmt=dtype if fmt == "copy" else fmt, in_dtype=dtype, layout=layout,
               scale=scale, saturate=saturate, swa=swa)
    if swa is not None:
        kwargs["swa_mapping"] = swa
    if scale in ("tensor", "head"):
        n = 1 if scale == "tensor" else H
        ks = np.array(K_SCALES[scale][:n], np.float32)
        vs = np.array(V_SCALES[scale][:n], np.float32)
        kwargs.update(scale=scale, k_scale=ks, v_scale=vs)
        ref.update(k_scale=ks, v_scale=vs)
    sc_bufs = None
    if scale == "token_head":
        sc_layout = sc_layout or layout
        sshape = (B, S, H) if sc_layout == "NHD" else (B, H, S)
        k_sc, v_sc = poisoned(sshape, np.float32), poisoned(sshape, np.float32)
        kwargs.update(scale="token_head", k_scale_cache=k_sc, v_scale_cache=v_sc)
        sc_bufs = (k_sc, v_sc, k_sc.copy(), v_sc.copy())
        ref.update(k_sc=sc_bufs[2], v_sc=sc_bufs[3], sc_layout=sc_layout)
    if counters:
        oc, nc = np.array([5], np.uint64), np.array([7], np.uint64)
        ka = np.full(H, 0.25, np.float32)
        va = np.full(H, 0.5, np.float32)
        va[0] = 1e30
        kwargs.update(overflow_count=oc, nan_count=nc, k_amax=ka, v_amax=va)
        ka_exp, va_exp = ka.copy(), va.copy()
        ref.update(k_amax=ka_exp, v_amax=va_exp)

    kbuf_exp, vbuf_exp = kbuf.copy(), vbuf.copy()
    kc_exp = kbuf_exp if kc is kbuf else kbuf_exp[1:, :kc.shape[1], 1:, 3:3 + D]
    vc_exp = vbuf_exp if vc is vbuf else vbuf_exp[1:, :vc.shape[1], 1:, 3:3 + Dv]
    overflows, nans, first_oor = reference.cache_write(key, value, kc_exp, vc_exp, slots, **ref)

    if expect_range_error or first_oor is not None:
        assert first_oor is not None, "the case has no out-of-range slot"
        with pytest.raises(fp8kv.RangeError) as err:
            fp8kv.reshape_and_cache(as_arg(key, dtype), as_arg(value, dtype), kc, vc,
                                    slots, **kwargs)
        assert err.value.status == 3 and "token %d" % first_oor in str(err.value)
    else:
        fp8kv.reshape_and_cache(as_arg(key, dtype), as_arg(value, dtype),
                                fp8kv.typed(kc, "bf16") if cache_dtype is np.uint16 else kc,
                                fp8kv.typed(vc, "bf16") if cache_dtype is np.uint16 else vc,
                                slots, **kwargs)
    assert_bytes_equal(kbuf, kbuf_exp, "key cache")
    assert_bytes_equal(vbuf, vbuf_exp, "value cache")
    if sc_bufs:
        assert_bytes_equal(sc_bufs[0], sc_bufs[2], "k_scale_cache")
        assert_bytes_equal(sc_bufs[1], sc_bufs[3], "v_scale_cache")
    if counters:
        assert int(oc[0]) == 5 + overflows
        assert int(nc[0]) == 7 + nans
        assert_bytes_equal(ka, ka_exp, "k_amax")
        assert_bytes_equal(va, va_exp, "v_amax")
    return overflows, nans


@pytest.mark.parametrize("layout", ["NHD", "HND"])
@pytest.mark.parametrize("scale", ["one", "tensor", "head", "token_head"])
@pytest.mark.parametrize("dtype", INPUT_DTYPES)
@pytest.mark.parametrize("fmt", reference.FP8)
def test_every_format_dtype_scale_layout(rng, fmt, dtype, scale, layout):
    check_write(rng, fmt, dtype, scale, layout)


@pytest.mark.parametrize("layout", ["NHD", "HND"])
@pytest.mark.parametrize("dtype", INPUT_DTYPES)
def test_copy_cache(rng, dtype, layout):
    check_write(rng, "copy", dtype, "one", layout)


@pytest.mark.parametrize("fmt", reference.FP8)
def test_nonsaturating(rng, fmt):
    overflows, _ = check_write(rng, fmt, "f32", "tensor", saturate=False)
    assert overflows > 0


@pytest.mark.parametrize("scale", ["one", "head", "token_head"])
@pytest.mark.parametrize("layout", ["NHD", "HND"])
def test_strided_inputs_and_caches(rng, layout, scale):
    for dtype in INPUT_DTYPES:
        check_write(rng, "e4m3fn", dtype, scale, layout, strided=True)
    check_write(rng, "copy", "f16", "one", layout, strided=True)


@pytest.mark.parametrize("cache_layout,sc_layout", [("NHD", "HND"), ("HND", "NHD")])
def test_scale_cache_in_the_other_order(rng, cache_layout, sc_layout):
    check_write(rng, "e5m2", "bf16", "token_head", cache_layout, sc_layout=sc_layout)


@pytest.mark.parametrize("index", [np.int64, np.int32])
def test_swa_mapping_with_padding(rng, index):
    B, S, T = 4, 4, 9
    # the SWA table maps "full" slots 0..23 to cache slots, some to padding
    swa = rng.permutation(B * S).astype(index)
    swa = np.concatenate([swa, np.full(8, -1, index)])
    rng.shuffle(swa)
    slots = rng.permutation(len(swa))[:T].astype(index)
    slots[3] = -1
    check_write(rng, "e4m3fnuz", "f16", "tensor", slots=slots, swa=swa, index=index)


def test_int32_slots_and_all_padding(rng):
    check_write(rng, "e5m2fnuz", "f32", "head", slots=np.arange(9, dtype=np.int32))
    overflows, nans = check_write(rng, "e4m3fn", "f32", "one",
                                  slots=np.full(9, -1, np.int64))
    assert (overflows, nans) == (0, 0)


def test_duplicate_slots_are_written_in_token_order(rng):
    slots = np.array([5, 2, 5, 5, 2, 7, 0, 1, 5], np.int64)
    check_write(rng, "e4m3fn", "bf16", "token_head", slots=slots)


@pytest.mark.parametrize("bad", ["past_cache", "past_swa"])
def test_out_of_range_skips_the_token_and_writes_the_rest(rng, bad):
    B, S, T = 4, 4, 9
    slots = make_slots(rng, T, B * S)
    swa = None
    if bad == "past_cache":
        slots[4] = B * S
        slots[6] = 10 ** 12
    else:
        swa = np.arange(B * S, dtype=np.int64)
        slots[5] = B * S                     # past the SWA table
    check_write(rng, "e5m2", "f32", "tensor", slots=slots, swa=swa, expect_range_error=True)


def test_no_tokens_writes_nothing(rng):
    check_write(rng, "e4m3fn", "f32", "tensor", T=0, slots=np.zeros(0, np.int64))


def test_rows_past_the_slot_mapping_are_ignored(rng):
    """Like vLLM's CUDA-graph padding: key has more rows than slots."""
    T, H, D, B, S = 6, 2, 8, 3, 4
    key = make_inputs(rng, (T + 3, H, D), "f32")
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
    kc_exp, vc_exp = kc.copy(), vc.copy()
    slots = np.arange(T, dtype=np.int64)
    reference.cache_write(key[:T], key[:T], kc_exp, vc_exp, slots, fmt="e4m3fn", in_dtype="f32")
    fp8kv.reshape_and_cache(key, key, kc, vc, slots, format="e4m3fn")
    assert_bytes_equal(kc, kc_exp)
    assert_bytes_equal(vc, vc_exp)


def test_layout_is_stated_when_block_size_equals_heads(rng):
    T, H, D, B = 5, 4, 8, 3
    key = make_inputs(rng, (T, H, D), "f32")
    kc = poisoned((B, H, H, D))
    vc = kc.copy()
    slots = np.arange(T, dtype=np.int64)
    with pytest.raises(ValueError, match="layout"):
        fp8kv.reshape_and_cache(key, key, kc, vc, slots, format="e5m2")
    assert (kc == 0xA5).all()
    for layout in ("NHD", "HND"):
        kc[...] = 0xA5
        vc[...] = 0xA5
        exp = kc.copy()
        reference.cache_write(key, key, exp, exp.copy(), slots, fmt="e5m2", in_dtype="f32",
                              layout=layout)
        fp8kv.reshape_and_cache(key, key, kc, vc, slots, format="e5m2", layout=layout)
        assert_bytes_equal(kc, exp, layout)


@pytest.mark.parametrize("fmt", reference.FP8)
def test_special_scales(rng, fmt, monkeypatch):
    """Scales that make x / s NaN or infinite (0/0, Inf/Inf, NaN scales of
    either sign), subnormal and huge scales: the NaN's sign and the overflow
    count follow the contract."""
    specials = [0.0, -0.0, float("inf"), -float("inf"), float("nan"), -float("nan"), 1e-45,
                -3e38, 2.0 ** -149, 0.37]
    for i in range(0, len(specials), 2):
        monkeypatch.setitem(K_SCALES, "head", specials[i:i + 2] + [0.5, 1.0])
        monkeypatch.setitem(V_SCALES, "head", specials[i + 1:i + 2] + specials[i:i + 1] +
                            [-1.0, 2.0])
        for dtype in INPUT_DTYPES:
            check_write(rng, fmt, dtype, "head", H=4, S=5)
    for s in specials:
        monkeypatch.setitem(K_SCALES, "tensor", [s])
        monkeypatch.setitem(V_SCALES, "tensor", [-s])
        check_write(rng, fmt, "f32", "tensor", saturate=bool(rng.integers(2)))
