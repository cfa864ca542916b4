# SPDX-License-Identifier: MIT
"""Bad arguments to fp8kv.reshape_and_cache: each raises ValueError or
TypeError naming the argument, before the library is called (the library's
entry point is replaced by one that fails the test), and leaves the poisoned
caches as they were.  What only the library can judge (alignment, overlap)
raises fp8kv.InvalidArgument with its message, also writing nothing."""

import numpy as np
import pytest

import fp8kv
from fp8kv import _capi
from helpers import POISON, make_inputs, poisoned

T, H, D, B, S = 5, 3, 8, 4, 4


def valid(rng):
    key = make_inputs(rng, (T, H, D), "f32", specials=False)
    return dict(key=key, value=key.copy(), key_cache=poisoned((B, S, H, D)),
                value_cache=poisoned((B, S, H, D)), slot_mapping=np.arange(T, dtype=np.int64),
                format="e4m3fn")


def _with(kw, **changes):
    kw = dict(kw)
    kw.update(changes)
    return kw


# (id, change to the valid arguments, exception, argument named)
CASES = [
    ("key_list", lambda k: _with(k, key=[[[1.0]]]), TypeError, "key"),
    ("key_2d", lambda k: _with(k, key=k["key"][:, 0]), ValueError, "key"),
    ("key_int", lambda k: _with(k, key=k["key"].astype(np.int32)), TypeError, "key"),
    ("value_dtype", lambda k: _with(k, value=k["value"].astype(np.float16)), TypeError, "value"),
    ("value_heads", lambda k: _with(k, value=k["value"][:, :2]), ValueError, "value"),
    ("key_last_dim_strided", lambda k: _with(k, key=np.repeat(k["key"], 2, axis=2)[:, :, ::2]),
     ValueError, "key"),
    ("key_negative_stride", lambda k: _with(k, key=k["key"][::-1]), ValueError, "key"),
    ("key_few_rows", lambda k: _with(k, key=k["key"][:3]), ValueError, "key"),
    ("slots_float", lambda k: _with(k, slot_mapping=np.arange(T, dtype=np.float32)),
     TypeError, "slot_mapping"),
    ("slots_2d", lambda k: _with(k, slot_mapping=np.zeros((T, 1), np.int64)), ValueError,
     "slot_mapping"),
    ("slots_uint8", lambda k: _with(k, slot_mapping=np.zeros(T, np.uint8)), TypeError,
     "slot_mapping"),
    ("cache_3d", lambda k: _with(k, key_cache=poisoned((B, S, H * D))), ValueError, "key_cache"),
    ("value_cache_dtype", lambda k: _with(k, value_cache=poisoned((B, S, H, D), np.int8)),
     TypeError, "value_cache"),
    ("uint8_without_format", lambda k: _with(k, format=None), TypeError, "key_cache"),
    ("format_unknown", lambda k: _with(k, format="e4m3"), ValueError, "format"),
    ("format_on_wide_cache", lambda k: _with(k, key_cache=poisoned((B, S, H, D), np.float32),
                                             value_cache=poisoned((B, S, H, D), np.float32)),
     ValueError, "format"),
    ("wide_cache_other_dtype", lambda k: _with(k, format=None,
                                               key_cache=poisoned((B, S, H, D), np.float16),
                                               value_cache=poisoned((B, S, H, D), np.float16)),
     TypeError, "key_cache"),
    ("cache_heads", lambda k: _with(k, key_cache=poisoned((B, S, H + 2, D))), ValueError,
     "key_cache"),
    ("cache_head_dim", lambda k: _with(k, value_cache=poisoned((B, S, H, D + 1))), ValueError,
     "value_cache"),
    ("cache_blocks", lambda k: _with(k, value_cache=poisoned((B + 1, S, H, D))), ValueError,
     "value_cache"),
    ("cache_last_dim_strided", lambda k: _with(k, key_cache=poisoned((B, S, H, 2 * D))[..., ::2]),
     ValueError, "key_cache"),
    ("layout_unknown", lambda k: _with(k, layout="NDH"), ValueError, "layout"),
    ("layout_wrong", lambda k: _with(k, layout="HND"), ValueError, "key_cache"),
    ("scale_unknown", lambda k: _with(k, scale="token"), ValueError, "scale"),
    ("scale_without_v", lambda k: _with(k, scale="tensor", k_scale=np.ones(1, np.float32)),
     ValueError, "v_scale"),
    ("scale_f64", lambda k: _with(k, k_scale=np.ones(1), v_scale=np.ones(1, np.float32)),
     TypeError, "k_scale"),
    ("head_scale_count", lambda k: _with(k, scale="head", k_scale=np.ones(H, np.float32),
                                         v_scale=np.ones(H + 1, np.float32)), ValueError,
     "v_scale"),
    ("scale_on_wide_cache", lambda k: _with(k, format=None, scale="tensor", k_scale=1.0,
                                            v_scale=1.0,
                                            key_cache=poisoned((B, S, H, D), np.float32),
                                            value_cache=poisoned((B, S, H, D), np.float32)),
     ValueError, "scale"),
    ("one_with_k_scale", lambda k: _with(k, scale="one", k_scale=1.0), ValueError, "k_scale"),
    ("token_head_without_caches", lambda k: _with(k, scale="token_head"), ValueError, "k_scale_cache"),
    ("token_head_with_k_scale", lambda k: _with(k, k_scale=1.0,
                                             k_scale_cache=poisoned((B, S, H), np.float32),
                                             v_scale_cache=poisoned((B, S, H), np.float32),
                                             scale="token_head"), ValueError, "k_scale"),
    ("scale_cache_shape", lambda k: _with(k, k_scale_cache=poisoned((B, S, H + 1), np.float32),
                                          v_scale_cache=poisoned((B, S, H + 1), np.float32)),
     ValueError, "k_scale_cache"),
    ("scale_cache_strides", lambda k: _with(
        k, k_scale_cache=poisoned((B, S, H), np.float32),
        v_scale_cache=poisoned((B, H, S), np.float32).transpose(0, 2, 1)), ValueError,
     "v_scale_cache"),
    ("scale_cache_f16", lambda k: _with(k, k_scale_cache=poisoned((B, S, H), np.float16),
                                        v_scale_cache=poisoned((B, S, H), np.float16)),
     TypeError, "k_scale_cache"),
    ("scale_cache_without_token_head", lambda k: _with(k, scale="tensor", k_scale=1.0, v_scale=1.0,
                                                    v_scale_cache=poisoned((B, S, H),
                                                                           np.float32)),
     ValueError, "v_scale_cache"),
    ("overflow_unknown", lambda k: _with(k, overflow="clamp"), ValueError, "overflow"),
    ("overflow_count_float", lambda k: _with(k, overflow_count=np.zeros(1, np.float32)),
     TypeError, "overflow_count"),
    ("nan_count_two", lambda k: _with(k, nan_count=np.zeros(2, np.uint64)), ValueError,
     "nan_count"),
    ("k_amax_length", lambda k: _with(k, k_amax=np.zeros(H + 1, np.float32)), ValueError,
     "k_amax"),
    ("swa_float", lambda k: _with(k, swa_mapping=np.zeros(8, np.float64)), TypeError,
     "swa_mapping"),
]


@pytest.mark.parametrize("change,error,argument", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_argument_is_named_before_the_library_is_called(rng, monkeypatch, change, error,
                                                            argument):
    def library_called(*args):
        raise AssertionError("the library was called")

    monkeypatch.setattr(_capi.fn, "reshape_and_cache", library_called)
    kw = change(valid(rng))
    caches = [kw[c] for c in ("key_cache", "value_cache") if isinstance(kw[c], np.ndarray)]
    before = [c.copy() for c in caches]
    args = [kw.pop(n) for n in ("key", "value", "key_cache", "value_cache", "slot_mapping")]
    with pytest.raises(error) as e:
        fp8kv.reshape_and_cache(*args, **kw)
    assert not isinstance(e.value, fp8kv.Error)
    assert str(e.value).startswith(argument + ":"), str(e.value)
    for c, b in zip(caches, before):
        assert (c.view(np.uint8) == b.view(np.uint8)).all()


def test_the_valid_arguments_write(rng):
    kw = valid(rng)
    args = [kw.pop(n) for n in ("key", "value", "key_cache", "value_cache", "slot_mapping")]
    fp8kv.reshape_and_cache(*args, **kw)
    assert (args[2][:1, :T] != POISON).any()


def test_misaligned_input_is_the_library_s_invalid_argument(rng):
    kw = valid(rng)
    raw = np.zeros(T * H * D * 4 + 1, np.uint8)
    key = raw[1:].view(np.float32).reshape(T, H, D)       # misaligned by one byte
    key[...] = kw["key"]
    kc, vc = kw["key_cache"], kw["value_cache"]
    with pytest.raises(fp8kv.InvalidArgument) as e:
        fp8kv.reshape_and_cache(key, kw["value"], kc, vc, kw["slot_mapping"], format="e4m3fn")
    assert e.value.status == 1 and "align" in e.value.message
    assert (kc == POISON).all() and (vc == POISON).all()


def test_overlapping_cache_is_the_library_s_invalid_argument(rng):
    kw = valid(rng)
    buf = poisoned(B * H * D)
    kc = np.lib.stride_tricks.as_strided(buf, (B, S, H, D), (H * D, 0, D, 1))
    vc = kw["value_cache"]
    with pytest.raises(fp8kv.InvalidArgument) as e:
        fp8kv.reshape_and_cache(kw["key"], kw["value"], kc, vc, kw["slot_mapping"],
                                format="e4m3fn")
    assert "key_cache" in e.value.message or "overlap" in e.value.message
    assert (buf == POISON).all() and (vc == POISON).all()


def test_typed_checks_its_arguments():
    with pytest.raises(TypeError, match="typed"):
        fp8kv.typed(np.zeros(4, np.float32), "bf16")
    with pytest.raises(ValueError, match="typed"):
        fp8kv.typed(np.zeros(4, np.uint16), "i64")


@pytest.mark.parametrize("status,cls", [(1, fp8kv.InvalidArgument), (2, fp8kv.NotSupported),
                                        (3, fp8kv.RangeError), (4, fp8kv.NoDevice),
                                        (5, fp8kv.BackendError), (6, fp8kv.OutOfMemory)])
def test_every_status_has_its_error(status, cls):
    with pytest.raises(cls) as e:
        _capi.raise_for(status)
    assert e.value.status == status and e.value.message and isinstance(e.value, fp8kv.Error)
