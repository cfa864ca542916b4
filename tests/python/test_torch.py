# SPDX-License-Identifier: MIT
"""The torch path on CPU tensors: torch dtypes (bfloat16 natively, float8
where this torch has them, uint8 with format= where not), strided tensors,
the fp8kv::reshape_and_cache operator (eager, Meta/fake, its mutation
schema, torch.compile tracing where torch has it), the drop-ins and the
golden path.  Skipped where torch is absent."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fp8kv  # noqa: E402
import reference  # noqa: E402
from fp8kv import golden  # noqa: E402
from fp8kv.compat import sglang, vllm  # noqa: E402
from helpers import assert_bytes_equal, make_inputs  # noqa: E402
from helpers import poisoned as np_poisoned  # noqa: E402

T, H, D, Dv, B, S = 7, 3, 16, 8, 4, 4
TORCH = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
FLOAT8 = {f: getattr(torch, "float8_" + f) for f in reference.FP8
          if hasattr(torch, "float8_" + f)}


def to_torch(raw, dtype):
    """A tensor of torch's dtype from reference.py's raw array."""
    if dtype == "bf16":
        return torch.from_numpy(raw.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(raw.copy())


def raw_bytes(t):
    return golden.as_bytes(t)


def poisoned(shape, dtype=torch.uint8):
    t = torch.empty(shape, dtype=dtype)
    t.view(torch.uint8)[...] = 0xA5
    return t


def case(rng, dtype, D=D, Dv=Dv):
    k, v = make_inputs(rng, (T, H, D), dtype), make_inputs(rng, (T, H, Dv), dtype)
    slots = rng.permutation(B * S)[:T].astype(np.int64)
    slots[2] = -1
    return k, v, slots


def expected(k, v, slots, fmt, dtype, layout="NHD", **kw):
    shape = (B, S, H) if layout == "NHD" else (B, H, S)
    kc = np.full(shape + (k.shape[2],), 0xA5, np.uint8)
    vc = np.full(shape + (v.shape[2],), 0xA5, np.uint8)
    reference.cache_write(k, v, kc, vc, slots, fmt=fmt, in_dtype=dtype, layout=layout, **kw)
    return kc, vc


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("fmt", reference.FP8)
def test_uint8_caches_with_format(rng, fmt, dtype):
    k, v, slots = case(rng, dtype)
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, Dv))
    ks = torch.tensor([0.37])
    fp8kv.reshape_and_cache(to_torch(k, dtype), to_torch(v, dtype), kc, vc,
                            torch.from_numpy(slots), k_scale=ks, v_scale=1 / 3, format=fmt)
    ek, ev = expected(k, v, slots, fmt, dtype, scale="tensor",
                      k_scale=np.float32([0.37]), v_scale=np.float32([1 / 3]))
    assert_bytes_equal(raw_bytes(kc), ek)
    assert_bytes_equal(raw_bytes(vc), ev)


@pytest.mark.skipif(not FLOAT8, reason="this torch has no float8 dtypes")
@pytest.mark.parametrize("fmt", sorted(FLOAT8))
def test_float8_caches_give_the_format(rng, fmt):
    k, v, slots = case(rng, "bf16")
    kc = poisoned((B, H, S, D)).view(FLOAT8[fmt])
    vc = poisoned((B, H, S, Dv)).view(FLOAT8[fmt])
    fp8kv.reshape_and_cache(to_torch(k, "bf16"), to_torch(v, "bf16"), kc, vc,
                            torch.from_numpy(slots))
    ek, ev = expected(k, v, slots, fmt, "bf16", layout="HND")
    assert_bytes_equal(raw_bytes(kc), ek)
    assert_bytes_equal(raw_bytes(vc), ev)
    other = "e5m2" if fmt != "e5m2" else "e4m3fn"
    with pytest.raises(ValueError, match="^format:"):
        fp8kv.reshape_and_cache(to_torch(k, "bf16"), to_torch(v, "bf16"), kc, vc,
                                torch.from_numpy(slots), format=other)


def test_strided_tensors_token_head_scales_and_counters(rng):
    """key and value as views of a packed qkv tensor; a strided slot mapping;
    int64 counters (torch 1.13 has no uint64)."""
    raw = make_inputs(rng, (T, 3 * H, D), "bf16")
    qkv = to_torch(raw, "bf16")
    k, v = qkv[:, H:2 * H], qkv[:, 2 * H:]
    slots = torch.arange(2 * T, dtype=torch.int32)[::2]
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
    ksc, vsc = poisoned((B, S, H), torch.float32), poisoned((B, S, H), torch.float32)
    oc, nc = torch.zeros(1, dtype=torch.int64), torch.zeros(1, dtype=torch.int64)
    ka = torch.zeros(H)
    fp8kv.reshape_and_cache(k, v, kc, vc, slots, scale="token_head", k_scale_cache=ksc,
                            v_scale_cache=vsc, overflow_count=oc, nan_count=nc, k_amax=ka,
                            format="e4m3fnuz")
    eksc, evsc = np_poisoned((B, S, H), np.float32), np_poisoned((B, S, H), np.float32)
    ka_exp = np.zeros(H, np.float32)
    ekc, evc = np.full((B, S, H, D), 0xA5, np.uint8), np.full((B, S, H, D), 0xA5, np.uint8)
    overflows, nans, _ = reference.cache_write(
        raw[:, H:2 * H], raw[:, 2 * H:], ekc, evc, np.arange(0, 2 * T, 2), fmt="e4m3fnuz",
        in_dtype="bf16", scale="token_head", k_sc=eksc, v_sc=evsc, k_amax=ka_exp)
    assert_bytes_equal(raw_bytes(kc), ekc)
    assert_bytes_equal(raw_bytes(vc), evc)
    assert_bytes_equal(raw_bytes(ksc), eksc.view(np.uint8))
    assert_bytes_equal(raw_bytes(vsc), evsc.view(np.uint8))
    assert (int(oc), int(nc)) == (overflows, nans) and nans > 0
    assert_bytes_equal(raw_bytes(ka), ka_exp.view(np.uint8))


def test_operator_eager_meta_and_schema(rng):
    op = torch.ops.fp8kv.reshape_and_cache
    schema = str(op.default._schema)
    for mutated in ("key_cache", "value_cache", "k_scale_cache", "v_scale_cache",
                    "overflow_count", "nan_count", "k_amax", "v_amax"):
        assert "!" in schema.split(mutated)[0].rsplit(",", 1)[-1], (mutated, schema)
    k, v, slots = case(rng, "f16")
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, Dv))
    op(to_torch(k, "f16"), to_torch(v, "f16"), kc, vc, torch.from_numpy(slots),
       format="e5m2", layout="NHD")
    ek, ev = expected(k, v, slots, "e5m2", "f16")
    assert_bytes_equal(raw_bytes(kc), ek)
    assert_bytes_equal(raw_bytes(vc), ev)
    meta = dict(device="meta")
    op(torch.empty(T, H, D, **meta), torch.empty(T, H, Dv, **meta),
       torch.empty(B, S, H, D, dtype=torch.uint8, **meta),
       torch.empty(B, S, H, Dv, dtype=torch.uint8, **meta),
       torch.empty(T, dtype=torch.int64, **meta), format="e5m2")


def test_meta_tensors_are_refused_by_the_eager_path(rng):
    k, v, slots = case(rng, "f32")
    with pytest.raises(ValueError, match="^key_cache:"):
        fp8kv.reshape_and_cache(to_torch(k, "f32"), to_torch(v, "f32"),
                                torch.empty(B, S, H, D, dtype=torch.uint8, device="meta"),
                                poisoned((B, S, H, Dv)), torch.from_numpy(slots),
                                format="e4m3fn")


@pytest.mark.skipif(not hasattr(torch, "compile"), reason="this torch has no torch.compile")
def test_compile_traces_a_step_in_one_graph(rng):
    """fullgraph=True: the step is one graph with the operator in it (the
    eager and aot_eager backends need no compiler)."""
    k, v, slots = case(rng, "bf16")
    kt, vt, st = to_torch(k, "bf16"), to_torch(v, "bf16"), torch.from_numpy(slots)
    ks = torch.tensor([0.37])

    def step(key, value, kc, vc, slot_mapping, k_scale):
        fp8kv.reshape_and_cache(key * 1, value, kc, vc, slot_mapping, scale="tensor",
                                k_scale=k_scale, v_scale=k_scale, format="e4m3fn")
        return key.sum()

    ek, ev = expected(k, v, slots, "e4m3fn", "bf16", scale="tensor",
                      k_scale=np.float32([0.37]), v_scale=np.float32([0.37]))
    for backend in ("eager", "aot_eager"):
        torch._dynamo.reset()
        kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, Dv))
        torch.compile(step, backend=backend, fullgraph=True)(kt, vt, kc, vc, st, ks)
        assert_bytes_equal(raw_bytes(kc), ek, backend)
        assert_bytes_equal(raw_bytes(vc), ev, backend)


def test_drop_ins_on_tensors(rng):
    k, v, slots = case(rng, "bf16", D=D, Dv=D)
    vllm.set_fp8_format("e4m3fnuz")
    try:
        kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, D))
        vllm.reshape_and_cache_flash(to_torch(k, "bf16"), to_torch(v, "bf16"), kc, vc,
                                     torch.from_numpy(slots), "fp8",
                                     torch.tensor([2.0]), torch.tensor([0.5]))
    finally:
        vllm.set_fp8_format(None)
    ek, ev = expected(k, v, slots, "e4m3fnuz", "bf16", scale="tensor",
                      k_scale=np.float32([2.0]), v_scale=np.float32([0.5]))
    assert_bytes_equal(raw_bytes(kc), ek)
    assert_bytes_equal(raw_bytes(vc), ev)
    kc, vc = poisoned((B, S, H, D), torch.bfloat16), poisoned((B, S, H, D), torch.bfloat16)
    sglang.launch_reshape_and_cache_flash(to_torch(k, "bf16"), to_torch(v, "bf16"), kc, vc,
                                          torch.from_numpy(slots))
    ekc = np.full((B, S, H, D), 0xA5A5, np.uint16)
    evc = ekc.copy()
    reference.cache_write(k, v, ekc, evc, slots, fmt="bf16", in_dtype="bf16")
    assert_bytes_equal(raw_bytes(kc), ekc.view(np.uint8))
    assert_bytes_equal(raw_bytes(vc), evc.view(np.uint8))


def test_golden_leaves_the_arguments_alone(rng):
    k, v, slots = case(rng, "f32")
    slots[4] = B * S + 3                                   # out of range
    kt, vt = to_torch(k, "f32"), to_torch(v, "f32")
    kc, vc = poisoned((B, S, H, D)), poisoned((B, S, H, Dv))
    oc = torch.zeros(1, dtype=torch.int64)
    res = golden.reshape_and_cache(kt, vt, kc, vc, torch.from_numpy(slots), k_scale=0.37,
                                   v_scale=torch.tensor([3.0]), format="e5m2fnuz",
                                   overflow_count=oc)
    assert isinstance(res.error, fp8kv.RangeError) and "token 4" in str(res.error)
    assert (raw_bytes(kc) == 0xA5).all() and (raw_bytes(vc) == 0xA5).all() and int(oc) == 0
    ek, ev = expected(k, v, slots, "e5m2fnuz", "f32", scale="tensor",
                      k_scale=np.float32([0.37]), v_scale=np.float32([3.0]))
    assert_bytes_equal(raw_bytes(res.key_cache), ek)
    assert_bytes_equal(raw_bytes(res.value_cache), ev)
    assert res.k_scale_cache is None and int(res.overflow_count) >= 0


# ---- hostile tensors (issue #35 items 2, 7, 8; #33 item 5) ------------------------

def _valid_tensors(rng):
    k, v, slots = case(rng, "f32", D=D, Dv=D)
    return dict(key=to_torch(k, "f32"), value=to_torch(v, "f32"),
                key_cache=poisoned((B, S, H, D)), value_cache=poisoned((B, S, H, D)),
                slot_mapping=torch.from_numpy(slots), format="e4m3fn")


def _call(fn, kw):
    kw = dict(kw)
    args = [kw.pop(n) for n in ("key", "value", "key_cache", "value_cache", "slot_mapping")]
    return fn(*args, **kw)


@pytest.mark.parametrize("meta", ["key_cache", "value_cache", "key", "slot_mapping"])
def test_operator_refuses_a_meta_tensor_among_cpu_ones(rng, meta):
    """torch 1.13 dispatches such a call to the Meta kernel, which must not
    return as if it had written."""
    kw = _valid_tensors(rng)
    kw[meta] = torch.empty(kw[meta].shape, dtype=kw[meta].dtype, device="meta")
    with pytest.raises((ValueError, TypeError, RuntimeError)) as e:
        _call(torch.ops.fp8kv.reshape_and_cache, kw)
    named = "value" if meta == "key" else meta     # the first tensor not on key's device
    assert str(e.value).startswith(named + ":"), str(e.value)
    for c in ("key_cache", "value_cache"):
        if kw[c].device.type == "cpu":
            assert (raw_bytes(kw[c]) == 0xA5).all(), c


@pytest.mark.parametrize("name", ["key_cache", "value_cache", "k_amax", "overflow_count"])
def test_an_inference_tensor_is_written_only_in_inference_mode(rng, name):
    kw = _valid_tensors(rng)
    kw.update(k_amax=torch.zeros(H), overflow_count=torch.zeros(1, dtype=torch.int64))
    with torch.inference_mode():
        kw[name] = kw[name].clone()
    before = raw_bytes(kw[name]).copy()
    with pytest.raises(ValueError, match="^%s:.*inference" % name):
        _call(fp8kv.reshape_and_cache, kw)
    assert_bytes_equal(raw_bytes(kw[name]), before)
    with torch.inference_mode():
        _call(fp8kv.reshape_and_cache, kw)


def test_an_output_that_requires_grad_is_refused_under_grad_mode(rng):
    kw = _valid_tensors(rng)
    kw["k_amax"] = torch.zeros(H, requires_grad=True)
    with pytest.raises(ValueError, match="^k_amax:.*grad"):
        _call(fp8kv.reshape_and_cache, kw)
    assert (kw["k_amax"].detach() == 0).all()
    with torch.no_grad():
        _call(fp8kv.reshape_and_cache, kw)
    assert (kw["k_amax"].detach() > 0).all()


@pytest.mark.parametrize("name", ["key", "key_cache", "slot_mapping"])
def test_a_sparse_tensor_is_named(rng, name):
    kw = _valid_tensors(rng)
    kw[name] = kw[name].to_sparse()
    with pytest.raises((TypeError, ValueError), match="^%s:.*sparse" % name):
        _call(fp8kv.reshape_and_cache, kw)


@pytest.mark.parametrize("name,dtype", [("key", torch.float64), ("key_cache", torch.int8),
                                        ("slot_mapping", torch.int16),
                                        ("k_scale", torch.float64)])
def test_a_wrong_tensor_dtype_is_named_in_the_message(rng, name, dtype):
    kw = _valid_tensors(rng)
    if name == "k_scale":
        kw.update(k_scale=torch.ones(1), v_scale=torch.ones(1))
    kw[name] = kw[name].to(dtype)
    with pytest.raises(TypeError, match="^%s:" % name) as e:
        _call(fp8kv.reshape_and_cache, kw)
    assert str(dtype).replace("torch.", "") in str(e.value), str(e.value)
    assert "None" not in str(e.value)


def test_bulk_calls_refuse_inference_and_sparse_tensors():
    with torch.inference_mode():
        dst = torch.zeros(4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="^dst:.*inference"):
        fp8kv.quantize(torch.ones(4), dst, format="e4m3fn")
    assert (dst == 0).all()
    with pytest.raises((TypeError, ValueError), match="^src:.*sparse"):
        fp8kv.quantize(torch.ones(4).to_sparse(), format="e4m3fn")
    empty = fp8kv.quantize(torch.ones(0), format="e4m3fn")
    assert empty.shape == (0,) and fp8kv.amax(torch.ones(0)) == 0.0
