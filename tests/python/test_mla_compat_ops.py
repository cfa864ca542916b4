# SPDX-License-Identifier: MIT
"""fp8kv.compat.vllm.concat_and_cache_mla against recipes_ref.py's models of
vLLM's kernels (docs/recipes.md section 2: finite inputs, where the bytes
are vLLM's) and contract_ref.py (NaN and Inf, where fp8kv follows its
header); the torch operators of the grouped and MLA writes: kernels
against golden, fakes, the traced path."""

import inspect

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import contract_ref as C   # noqa: E402
import recipes_ref as R    # noqa: E402
import fp8kv               # noqa: E402
import fp8kv.golden        # noqa: E402
from fp8kv import _grouped, _mla, _torch   # noqa: E402
from fp8kv.compat import vllm   # noqa: E402

POISON = 0xA5


@pytest.fixture(autouse=True)
def _no_stated_format():
    vllm.set_fp8_format(None)
    yield
    vllm.set_fp8_format(None)


def _bits16(t):
    return t.contiguous().view(torch.int16).numpy().view(np.uint16)


def _finite(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 4
    x[..., ::9] *= 1e-5
    x[..., 3::31] = -0.0
    return x.to(dtype)


def test_signature_is_vllm_s():
    assert list(inspect.signature(vllm.concat_and_cache_mla).parameters) == [
        "kv_c", "k_pe", "kv_cache", "slot_mapping", "kv_cache_dtype", "scale"]


@pytest.mark.parametrize("string, fmt, dtype", [
    ("fp8", "e4m3fn", torch.bfloat16), ("fp8_e4m3", "e4m3fn", torch.float16),
    ("fp8_e5m2", "e5m2", torch.bfloat16)])
def test_plain_fp8_is_vllm_s_bytes_on_finite_inputs(string, fmt, dtype):
    T, R_, P, B, BS = 3, 64, 16, 2, 4
    kv_c, k_pe = _finite((T + 1, R_), dtype, 1), _finite((T + 1, P), dtype, 2)
    slots = torch.tensor([5, -1, 2])                 # T rows of T + 1 written
    cache = torch.full((B, BS, R_ + P), POISON, dtype=torch.uint8)
    exp = cache.clone().numpy()
    if string != "fp8_e5m2":
        vllm.set_fp8_format(fmt)
    scale = torch.tensor([0.37], dtype=torch.float32)
    vllm.concat_and_cache_mla(kv_c, k_pe, cache, slots, string, scale)
    sbits = int(scale.numpy().view(np.uint32)[0])
    d = "bf16" if dtype == torch.bfloat16 else "f16"
    for t, slot in enumerate(slots.tolist()):
        if slot >= 0:
            exp[divmod(slot, BS)] = R.mla_plain_vllm(_bits16(kv_c[t]).tolist(),
                                                     _bits16(k_pe[t]).tolist(), d, string,
                                                     sbits)
    assert cache.numpy().tobytes() == exp.tobytes()


@pytest.mark.parametrize("fmt, arch", [("e4m3fn", "nvidia"), ("e4m3fnuz", "gfx942")])
def test_ds_mla_is_vllm_s_record_on_finite_bf16(fmt, arch):
    T, B, BS = 3, 2, 2
    kv_c, k_pe = _finite((T, 512), torch.bfloat16, 3), _finite((T, 64), torch.bfloat16, 4)
    kv_c[1, :128] = 0.0                                 # a tile of zeros: FLT_MIN
    slots = torch.tensor([3, 0, -1])
    cache = torch.full((B, BS, 656), POISON, dtype=torch.uint8)
    exp = cache.clone().numpy()
    vllm.set_fp8_format(fmt)
    vllm.concat_and_cache_mla(kv_c, k_pe, cache, slots, "fp8_ds_mla", torch.ones(1))
    for t, slot in enumerate(slots.tolist()):
        if slot >= 0:
            exp[divmod(slot, BS)] = R.mla_ds_vllm(_bits16(kv_c[t]).tolist(),
                                                  _bits16(k_pe[t]).tolist(), "bf16", arch)
    assert cache.numpy().tobytes() == exp.tobytes()


def test_ds_mla_nan_and_inf_follow_the_header_not_vllm():
    """Where vLLM differs (docs/recipes.md 2.2): a NaN keeps its sign and
    an Inf does not make its tile's scale Inf.  Expected from contract_ref,
    and shown to differ from the vLLM model."""
    kv_c, k_pe = _finite((1, 512), torch.bfloat16, 5), _finite((1, 64), torch.bfloat16, 6)
    kv_c[0, 7] = float("-nan")
    kv_c[0, 200] = float("inf")
    cache = torch.full((1, 1, 656), POISON, dtype=torch.uint8)
    vllm.set_fp8_format("e4m3fn")
    vllm.concat_and_cache_mla(kv_c, k_pe, cache, torch.tensor([0]), "fp8_ds_mla", None)
    kb, pb = _bits16(kv_c[0]).tolist(), _bits16(k_pe[0]).tolist()
    want = C.mla_ds_record(kb, pb, "bf16", "e4m3fn").data
    assert cache[0, 0].tolist() == want
    assert R.mla_ds_vllm(kb, pb, "bf16").tolist() != want


def test_copies_and_ignores_the_scale():
    kv_c, k_pe = _finite((2, 8), torch.float16, 7), _finite((2, 4), torch.float16, 8)
    cache = torch.full((1, 4, 12), -1.0, dtype=torch.float16)
    vllm.concat_and_cache_mla(kv_c, k_pe, cache, torch.tensor([3, 1]), "auto", torch.ones(1))
    assert torch.equal(cache[0, 3], torch.cat([kv_c[0], k_pe[0]]))
    assert torch.equal(cache[0, 1], torch.cat([kv_c[1], k_pe[1]]))
    assert (cache[0, 0] == -1).all() and (cache[0, 2] == -1).all()


@pytest.mark.parametrize("string, scale, error, named", [
    ("fp8_inc", torch.ones(1), ValueError, "kv_cache_dtype"),
    (None, torch.ones(1), TypeError, "kv_cache_dtype"),
    ("fp8", torch.ones(1), TypeError, "kv_cache"),          # uint8, format not stated
    ("fp8_ds_mla", None, TypeError, "kv_cache"),
    ("fp8_e5m2", None, ValueError, "scale")])
def test_errors_name_the_argument_and_write_nothing(string, scale, error, named):
    kv_c, k_pe = _finite((1, 512), torch.bfloat16, 9), _finite((1, 64), torch.bfloat16, 10)
    cache = torch.full((1, 2, 576 if string != "fp8_ds_mla" else 656), POISON,
                       dtype=torch.uint8)
    with pytest.raises(error) as e:
        vllm.concat_and_cache_mla(kv_c, k_pe, cache, torch.tensor([0]), string, scale)
    assert str(e.value).startswith(named + ":"), str(e.value)
    assert (cache == POISON).all()


# ---- the torch operators --------------------------------------------------------

def _grouped_args():
    k = _finite((3, 2, 32), torch.float32, 11)
    return dict(key=k, value=k * 2, key_cache=torch.full((2, 4, 2, 16), POISON, dtype=torch.uint8),
                value_cache=torch.full((2, 4, 2, 16), POISON, dtype=torch.uint8),
                slot_mapping=torch.tensor([0, 7, -1]), rule="nvfp4", group_size=16,
                k_scales=torch.full((2, 4, 2, 2), POISON, dtype=torch.uint8),
                v_scales=torch.full((2, 4, 2, 2), POISON, dtype=torch.uint8),
                k_global=torch.tensor([0.02]), v_global=torch.tensor([0.03]),
                nan_count=torch.zeros(1, dtype=torch.int64), format="e2m1")


def _mla_args():
    return dict(kv_c=_finite((2, 512), torch.bfloat16, 12),
                k_pe=_finite((2, 64), torch.bfloat16, 13),
                kv_cache=torch.full((1, 4, 656), POISON, dtype=torch.uint8),
                slot_mapping=torch.tensor([2, 1]), kind="ds_mla", format="e4m3fn",
                divisor=224.0)


@pytest.mark.parametrize("name, write, make", [
    ("reshape_and_cache_grouped", _grouped, _grouped_args),
    ("concat_and_cache_mla", _mla, _mla_args)])
def test_operator_kernel_writes_golden_s_bytes(name, write, make):
    fp8kv.register_torch_ops()
    op = getattr(torch.ops.fp8kv, name)
    args = make()
    ref = getattr(fp8kv.golden, name)(**args)
    full = {p.name: args.get(p.name, p.default) for p in write.PARAMS}
    op(*[full[p.name] for p in write.PARAMS])            # torch's positional call
    for out in write.OUTPUTS:
        if args.get(out) is not None:
            assert torch.equal(args[out], getattr(ref, out)), out
    assert not (args[write.OUTPUTS[0]] == POISON).all()


@pytest.mark.parametrize("name, write, make", [
    ("reshape_and_cache_grouped", _grouped, _grouped_args),
    ("concat_and_cache_mla", _mla, _mla_args)])
def test_operator_schema_and_fake(name, write, make):
    fp8kv.register_torch_ops()
    op = getattr(torch.ops.fp8kv, name)
    schema = str(op.default._schema)
    assert [a.name for a in op.default._schema.arguments] == [p.name for p in write.PARAMS]
    for p in write.PARAMS:
        assert ("!" in schema.split(p.name)[0].split(", ")[-1]) == p.written, p.name
    args = make()
    full = {p.name: args.get(p.name, p.default) for p in write.PARAMS}
    meta = {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in full.items()}
    op(*[meta[p.name] for p in write.PARAMS])           # the fake: no error, no data
    first = write.PARAMS[0].name
    meta[first] = full[first]                            # one CPU tensor among meta ones
    with pytest.raises((ValueError, RuntimeError, NotImplementedError)):
        op(*[meta[p.name] for p in write.PARAMS])


@pytest.mark.parametrize("name, make, number", [
    ("reshape_and_cache_grouped", _grouped_args, "k_global"),
    ("concat_and_cache_mla", _mla_args, None)])
def test_the_traced_path_calls_the_operator(monkeypatch, name, make, number):
    """While torch.compile traces, the public function calls the operator,
    numbers turned into float32 tensors: the same bytes as the eager call."""
    fp8kv.register_torch_ops()
    eager, traced = make(), make()
    if number:
        eager[number] = traced[number] = 0.02
    getattr(fp8kv, name)(**eager)
    monkeypatch.setattr(_torch, "compiling", lambda: True)
    called = []
    op = getattr(torch.ops.fp8kv, name)
    monkeypatch.setattr(fp8kv, "_ops", dict(fp8kv._ops, **{
        name: lambda **kw: (called.append(kw), op(**kw))}))
    getattr(fp8kv, name)(**traced)
    assert called and all(not isinstance(v, float) or k in ("divisor", "scale_floor")
                          for k, v in called[0].items())
    for k, v in eager.items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, traced[k]), k


def _mla_plain_args():
    return dict(kv_c=_finite((3, 32), torch.float16, 14), k_pe=_finite((3, 8), torch.float16, 15),
                kv_cache=torch.full((2, 4, 40), POISON, dtype=torch.uint8),
                slot_mapping=torch.tensor([5, -1, 0]), format="e5m2", k_scale=0.25,
                nan_count=torch.zeros(1, dtype=torch.int64))


@pytest.mark.parametrize("name, write, make, number", [
    ("reshape_and_cache_grouped", _grouped, _grouped_args, "k_global"),
    ("concat_and_cache_mla", _mla, _mla_plain_args, "k_scale")])
def test_cached_plans_take_each_call_s_pointers(name, write, make, number):
    """P-PLAN-CACHE on the new descriptors: calls like an earlier one reuse
    its plan (the cache does not grow) and still write their own tensors,
    with a number scale (the plan's pointer) or a tensor (the call's)."""
    write._cache.clear()
    sizes = []
    for i, scale in enumerate((0.02, 0.02, torch.tensor([0.02]), 0.02)):
        args = make()
        args[number] = scale
        ref = getattr(fp8kv.golden, name)(**args)
        getattr(fp8kv, name)(**args)
        sizes.append(len(write._cache))
        for out in write.OUTPUTS:
            if args.get(out) is not None:
                assert torch.equal(args[out], getattr(ref, out)), (i, out)
        assert not (args[write.OUTPUTS[0]] == POISON).all()
    assert sizes == [1, 1, 2, 2]
