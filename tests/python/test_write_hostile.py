# SPDX-License-Identifier: MIT
"""fp8kv.reshape_and_cache under hostile numpy arguments (issue #35, items 1
to 5, 8 and 9): read-only outputs, a read-only mmap'd cache, scales that a
value-keyed cache would merge, non-native byte order, a typed() wrapper
changed after the fact, numbers that do not fit, and empty arrays.  Each
must raise TypeError or ValueError naming the argument, before the library
is called, with every byte of every output as it was; or, where the call is
valid, write exactly the contract's bytes."""

import copy
import mmap
import pickle
import subprocess
import sys

import numpy as np
import pytest

import fp8kv
from fp8kv import _capi
from helpers import POISON, poisoned

T, H, D, B, S = 3, 2, 8, 4, 4


def valid(**changes):
    """A valid call's arguments (token_head scales, every optional output)."""
    key = np.linspace(-2, 2, T * H * D, dtype=np.float32).reshape(T, H, D)
    kw = dict(key=key, value=key.copy(), key_cache=poisoned((B, S, H, D)),
              value_cache=poisoned((B, S, H, D)), slot_mapping=np.arange(T, dtype=np.int64),
              format="e4m3fn", k_scale_cache=poisoned((B, S, H), np.float32),
              v_scale_cache=poisoned((B, S, H), np.float32),
              overflow_count=np.zeros(1, np.uint64), nan_count=np.zeros(1, np.uint64),
              k_amax=np.zeros(H, np.float32), v_amax=np.zeros(H, np.float32))
    kw.update(changes)
    return kw


OUTPUTS = ("key_cache", "value_cache", "k_scale_cache", "v_scale_cache", "overflow_count",
           "nan_count", "k_amax", "v_amax")


def call(kw):
    args = [kw.pop(n) for n in ("key", "value", "key_cache", "value_cache", "slot_mapping")]
    fp8kv.reshape_and_cache(*args, **kw)


def rejected(monkeypatch, kw, error, argument):
    """The call raises `error` naming `argument`, never reaching the library,
    and leaves every output's bytes as they were."""
    def library_called(*args):
        raise AssertionError("the library was called")

    monkeypatch.setattr(_capi.fn, "reshape_and_cache", library_called)
    outputs = [kw[n] for n in OUTPUTS if isinstance(kw.get(n), np.ndarray)]
    before = [o.copy() for o in outputs]
    with pytest.raises(error) as e:
        call(dict(kw))
    assert not isinstance(e.value, fp8kv.Error)
    assert str(e.value).startswith(argument + ":"), str(e.value)
    for o, b in zip(outputs, before):
        assert (o.view(np.uint8) == b.view(np.uint8)).all()
    return str(e.value)


# ---- item 2: every output must be writable ------------------------------------

@pytest.mark.parametrize("name", OUTPUTS)
def test_a_read_only_output_is_refused(monkeypatch, name):
    kw = valid()
    kw[name] = kw[name].copy()
    kw[name].setflags(write=False)
    assert "writ" in rejected(monkeypatch, kw, ValueError, name)


@pytest.mark.parametrize("name", ["key_cache", "k_amax", "overflow_count"])
def test_an_output_over_an_immutable_bytes_object_is_refused(monkeypatch, name):
    kw = valid()
    a = kw[name]
    frozen = bytes(a.view(np.uint8).reshape(-1))
    kw[name] = np.frombuffer(frozen, a.dtype).reshape(a.shape)
    rejected(monkeypatch, kw, ValueError, name)
    assert frozen == bytes(a.view(np.uint8).reshape(-1))


def test_read_only_inputs_are_fine():
    kw = valid()
    for name in ("key", "value", "slot_mapping"):
        kw[name].setflags(write=False)
    kc = kw["key_cache"]
    call(kw)
    assert (kc[0, :T] != POISON).any()


# ---- item 1: a read-only mmap'd cache must not crash the process ----------------

CHILD = r"""
import mmap, sys
import numpy as np
import fp8kv
mm = mmap.mmap(-1, 4 * 4 * 2 * 8, prot=mmap.PROT_READ)
kc = np.frombuffer(mm, np.uint8).reshape(4, 4, 2, 8)
key = np.ones((3, 2, 8), np.float32)
try:
    fp8kv.reshape_and_cache(key, key, kc, np.zeros((4, 4, 2, 8), np.uint8),
                            np.arange(3, dtype=np.int64), format="e4m3fn")
except Exception as e:
    print("%s %s" % (type(e).__name__, e))
else:
    print("written")
"""


@pytest.mark.skipif(not hasattr(mmap, "PROT_READ"), reason="no mmap protections here")
def test_a_read_only_mmap_cache_is_refused_not_a_crash():
    """In a child process, so that a crash shows as a failure, not as the end
    of the test run."""
    out = subprocess.run([sys.executable, "-B", "-c", CHILD], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    assert out.returncode == 0, "the child died (%d):\n%s" % (out.returncode, out.stdout)
    assert out.stdout.startswith("ValueError key_cache:"), out.stdout


# ---- item 3: -0.0 and +0.0 are different scales ---------------------------------

def test_negative_zero_scale_is_not_positive_zero():
    """x / +0 = +Inf and x / -0 = -Inf: saturated, 0x7E and 0xFE (e4m3fn),
    in either order, however often; quantize likewise."""
    key = np.ones((1, 1, 8), np.float32)
    slots = np.zeros(1, np.int64)
    for ks, vs in ((0.0, -0.0), (-0.0, 0.0), (0.0, 0.0), (-0.0, -0.0)) * 2:
        kc, vc = poisoned((1, 1, 1, 8)), poisoned((1, 1, 1, 8))
        fp8kv.reshape_and_cache(key, key, kc, vc, slots, k_scale=ks, v_scale=vs,
                                format="e4m3fn", layout="NHD")
        assert (kc == (0xFE if np.signbit(ks) else 0x7E)).all(), (ks, vs, kc)
        assert (vc == (0xFE if np.signbit(vs) else 0x7E)).all(), (ks, vs, vc)
    for s in (0.0, -0.0, 0.0):
        q = fp8kv.quantize(np.ones(4, np.float32), format="e4m3fn", scale=s)
        assert (q == (0xFE if np.signbit(s) else 0x7E)).all(), (s, q)


def test_nan_scales_of_either_sign_are_kept_apart():
    """x / NaN is NaN with sign(x) XOR sign(s) (header step 1): 0x7F and 0xFF."""
    key = np.ones((1, 1, 8), np.float32)
    nan, neg_nan = float("nan"), -float("nan")
    for s in (nan, neg_nan, nan, neg_nan):
        kc, vc = poisoned((1, 1, 1, 8)), poisoned((1, 1, 1, 8))
        fp8kv.reshape_and_cache(key, key, kc, vc, np.zeros(1, np.int64), k_scale=s,
                                v_scale=s, format="e4m3fn", layout="NHD")
        assert (kc == (0xFF if np.signbit(s) else 0x7F)).all(), (s, kc)


# ---- item 4: non-native byte order ------------------------------------------------

SWAPPED = "<" if sys.byteorder == "big" else ">"


def swapped(a):
    """The same values in the other byte order."""
    return a.astype(a.dtype.newbyteorder(SWAPPED))


@pytest.mark.parametrize("name", ["key", "value", "slot_mapping", "swa_mapping", "k_scale",
                                  "v_scale", "k_scale_cache", "overflow_count", "nan_count",
                                  "k_amax", "v_amax"])
def test_non_native_byte_order_is_refused(monkeypatch, name):
    if name in ("k_scale", "v_scale"):
        kw = valid(k_scale_cache=None, v_scale_cache=None, k_scale=np.full(1, 2.0, np.float32),
                   v_scale=np.full(1, 2.0, np.float32))
    else:
        kw = valid(swa_mapping=np.arange(B * S, dtype=np.int64))
    kw[name] = swapped(kw[name])
    message = rejected(monkeypatch, kw, TypeError, name)
    assert "byte order" in message


def test_a_non_native_copy_cache_is_refused(monkeypatch):
    key = np.ones((T, H, D), np.float16)
    kw = dict(key=key, value=key, key_cache=swapped(poisoned((B, S, H, D), np.float16)),
              value_cache=poisoned((B, S, H, D), np.float16),
              slot_mapping=np.arange(T, dtype=np.int64))
    rejected(monkeypatch, kw, TypeError, "key_cache")


def test_the_issue_s_big_endian_cases_are_refused():
    """The three reproducers: a key of 1.0 wrote 0x00, a scale of 2.0 wrote
    0x7E, a slot of 1 was read as 2**56."""
    key = np.ones((1, 1, 8), np.float32)
    for kw, name in ((dict(key=swapped(key)), "key"),
                     (dict(k_scale=swapped(np.full(1, 2.0, np.float32)), v_scale=2.0), "k_scale"),
                     (dict(slot_mapping=swapped(np.ones(1, np.int64))), "slot_mapping")):
        args = dict(key=key, value=key, key_cache=poisoned((2, 1, 1, 8)),
                    value_cache=poisoned((2, 1, 1, 8)), slot_mapping=np.ones(1, np.int64),
                    format="e4m3fn", layout="NHD")
        args.update(kw)
        kc = args["key_cache"]
        with pytest.raises(TypeError, match="^%s:" % name):
            call(args)
        assert (kc == POISON).all()


# ---- item 5: typed() cannot be made to write out of bounds --------------------------

def test_typed_cannot_be_reassigned():
    t = fp8kv.typed(np.zeros(4, np.uint16), "f16")
    with pytest.raises(AttributeError):
        t.array = np.zeros(4, np.uint8)
    with pytest.raises(AttributeError):
        t.dtype = "e4m3fn"
    assert t.array.dtype == np.uint16 and t.dtype == "f16"
    for c in (copy.copy(t), copy.deepcopy(t), pickle.loads(pickle.dumps(t))):
        assert c.dtype == "f16" and c.array.dtype == np.uint16 and c.array.shape == (4,)


def test_typed_element_size_is_checked_at_use(monkeypatch):
    """Even a wrapper whose array was swapped behind its back: a 1-byte
    array as an f16 cache would be written 2 bytes per element."""
    buf = poisoned(2 * B * S * H * D)
    small = buf[:B * S * H * D].reshape(B, S, H, D)           # canary after it
    t = fp8kv.typed(np.zeros((B, S, H, D), np.uint16), "f16")
    for slot in t.__class__.__slots__:
        if "array" in slot:
            object.__setattr__(t, slot, small)
    assert t.array is small
    key = np.ones((T, H, D), np.float16)
    kw = dict(key=key, value=key, key_cache=t, value_cache=poisoned((B, S, H, D), np.float16),
              slot_mapping=np.arange(T, dtype=np.int64))
    monkeypatch.setattr(_capi.fn, "reshape_and_cache",
                        lambda *a: (_ for _ in ()).throw(AssertionError("library called")))
    with pytest.raises(TypeError, match="^key_cache:"):
        call(kw)
    assert (buf == POISON).all()


# ---- item 8: numbers that do not fit, named ------------------------------------------

@pytest.mark.parametrize("scale,error", [(10 ** 400, ValueError), (-10 ** 400, ValueError),
                                         (1e300, ValueError), (True, TypeError),
                                         ("2.0", TypeError), (2j, TypeError)],
                         ids=["1e400", "-1e400", "1e300", "True", "str", "complex"])
@pytest.mark.parametrize("name", ["k_scale", "v_scale"])
def test_a_scale_that_is_no_float32_is_named(monkeypatch, name, scale, error):
    kw = valid(k_scale_cache=None, v_scale_cache=None, k_scale=2.0, v_scale=2.0)
    kw[name] = scale
    rejected(monkeypatch, kw, error, name)


def test_python_and_numpy_numbers_are_scales():
    key = np.full((1, 1, 8), 3.0, np.float32)
    for s in (2, 2.0, np.float32(2.0), np.float64(2.0), np.int64(2)):
        kc, vc = poisoned((1, 1, 1, 8)), poisoned((1, 1, 1, 8))
        fp8kv.reshape_and_cache(key, key, kc, vc, np.zeros(1, np.int64), k_scale=s,
                                v_scale=s, format="e4m3fn", layout="NHD")
        assert (kc == 0x3C).all() and (vc == 0x3C).all(), s       # 1.5 in e4m3fn


# ---- item 9 and #33 item 5: zero sizes, dtype messages --------------------------------

@pytest.mark.parametrize("name,change", [
    ("key_cache", lambda kw: dict(key_cache=poisoned((0, S, H, D)),
                                  value_cache=poisoned((0, S, H, D)))),
    ("key_cache", lambda kw: dict(key_cache=poisoned((B, 0, H, D)),
                                  value_cache=poisoned((B, 0, H, D)), layout="NHD")),
    ("key", lambda kw: dict(key=np.ones((T, 0, D), np.float32),
                            value=np.ones((T, 0, D), np.float32))),
    ("key", lambda kw: dict(key=np.ones((T, H, 0), np.float32),
                            key_cache=poisoned((B, S, H, 0)))),
    ("swa_mapping", lambda kw: dict(swa_mapping=np.zeros(0, np.int64))),
])
def test_an_empty_dimension_is_named(monkeypatch, name, change):
    """The rule (README, include/fp8kv.h section 7): a count of work may be 0,
    a dimension of an array may not."""
    kw = valid(k_scale_cache=None, v_scale_cache=None)
    kw.update(change(kw))
    assert "at least 1" in rejected(monkeypatch, kw, ValueError, name)


def test_no_tokens_is_a_call_that_writes_nothing():
    kw = valid(key=np.ones((0, H, D), np.float32), value=np.ones((0, H, D), np.float32),
               slot_mapping=np.zeros(0, np.int64))
    outputs = {n: kw[n].copy() for n in OUTPUTS}
    views = {n: kw[n] for n in OUTPUTS}
    call(kw)
    for n in OUTPUTS:
        assert (views[n].view(np.uint8) == outputs[n].view(np.uint8)).all(), n


@pytest.mark.parametrize("name,bad", [
    ("key", np.ones((T, H, D), np.float64)),
    ("value", np.ones((T, H, D), np.float16)),
    ("key_cache", poisoned((B, S, H, D), np.int8)),
    ("slot_mapping", np.arange(T, dtype=np.float32)),
    ("swa_mapping", np.arange(T, dtype=np.uint32)),
    ("k_scale_cache", poisoned((B, S, H), np.float64)),
    ("overflow_count", np.zeros(1, np.float32)),
    ("nan_count", np.zeros(1, np.int16)),
    ("k_amax", np.zeros(H, np.float64)),
])
def test_a_wrong_dtype_is_named_in_the_message(monkeypatch, name, bad):
    kw = valid()
    kw[name] = bad
    message = rejected(monkeypatch, kw, TypeError, name)
    assert str(bad.dtype) in message and "None" not in message, message


def test_a_wrong_scale_dtype_is_named_in_the_message(monkeypatch):
    kw = valid(k_scale_cache=None, v_scale_cache=None, k_scale=np.ones(1, np.float64),
               v_scale=np.ones(1, np.float32))
    message = rejected(monkeypatch, kw, TypeError, "k_scale")
    assert "float64" in message and "None" not in message


def test_the_valid_call_writes():
    """rejected() above is not vacuous: the same arguments, valid, write."""
    kw = valid()
    kc = kw["key_cache"]
    call(dict(kw))
    assert (kc != POISON).any()
