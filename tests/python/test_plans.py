# SPDX-License-Identifier: MIT
"""Cached plans (P-PLAN-CACHE): a call like one checked before reuses its
plan, and nothing the checks read can be changed without a new plan.  Each
test warms the cache, then changes one thing the checks read -- in place
on the same tensor object where torch allows it -- and holds every byte of
the outputs to tests/python/reference.py, or the refusal to its message
with the outputs untouched.  Planted faults (a key without strides, a
number scale keyed by value) show that these tests see a stale plan."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fp8kv  # noqa: E402
import reference  # noqa: E402
from fp8kv import _arrays, _capi, _plans, _write  # noqa: E402
from helpers import POISON, assert_bytes_equal  # noqa: E402

T, H, D, B, S = 3, 2, 8, 4, 4


class Probe:
    """A write built by _plans.hot() exactly as fp8kv.reshape_and_cache is,
    with its own cache and a count of the full checks (misses)."""

    def __init__(self):
        self.misses, self.cache = 0, {}

        def plan(**args):
            self.misses += 1
            return _write.plan(**args)
        self.fn = _plans.hot("probe", "A probe.", plan, _write._DESCRIPTOR,
                             _capi.fn.reshape_and_cache, self.cache)


def poisoned(shape=(B, S, H, D), dtype=torch.uint8):
    t = torch.empty(shape, dtype=dtype)
    t.view(torch.uint8)[...] = POISON
    return t


def inputs(seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    key = (torch.randn((T, H, D), generator=g) * 40).to(dtype)
    value = (torch.randn((T, H, D), generator=g) * 40).to(dtype)
    return key, value, torch.tensor([5, -1, 9])


def expected(key, value, slots, scale=None, fmt="e4m3fn", saturate=True):
    """The reference's NHD caches for tensors key, value, slots."""
    kind = {torch.float32: "f32", torch.float16: "f16"}[key.dtype]
    kc = np.full((B, S, H, D), POISON, np.uint8)
    vc = np.full((B, S, H, D), POISON, np.uint8)
    kw = {}
    if scale is not None:
        s = np.array([scale], np.float32)
        kw = dict(scale="tensor", k_scale=s, v_scale=s)
    reference.cache_write(key.numpy(), value.numpy(), kc, vc, slots.numpy(), fmt=fmt,
                          in_dtype=kind, saturate=saturate, **kw)
    return kc, vc


def logical(t):
    """A cache's bytes in logical NHD order, whatever its strides."""
    return t.contiguous().numpy()


def test_a_repeated_call_is_served_from_its_plan_with_new_pointers():
    probe = Probe()
    ks = torch.tensor([0.5])
    for seed in (1, 2, 3):
        key, value, slots = inputs(seed)
        kc, vc = poisoned(), poisoned()
        probe.fn(key, value, kc, vc, slots, k_scale=ks, v_scale=ks, format="e4m3fn")
        ekc, evc = expected(key, value, slots, 0.5)
        assert_bytes_equal(logical(kc), ekc, "key_cache")
        assert_bytes_equal(logical(vc), evc, "value_cache")
    assert probe.misses == 1, "three calls alike took %d full checks" % probe.misses
    # the first call's caches are not written again (the pointers are the call's)
    first = poisoned()
    probe.fn(key, value, first, poisoned(), slots, k_scale=ks, v_scale=ks, format="e4m3fn")
    probe.fn(key, value, poisoned(), poisoned(), slots, k_scale=ks, v_scale=ks,
             format="e4m3fn")
    assert_bytes_equal(logical(first), expected(key, value, slots, 0.5)[0], "first cache")


def _strided_cache():
    """A cache of the usual shape [B, S, H, D] with HND memory."""
    return poisoned((B, H, S, D)).permute(0, 2, 1, 3)


def _f16_in_place(args):
    # the same tensor objects, now float16: torch's .data swaps in place
    args["key"].data = args["key"].data.half()
    args["value"].data = args["value"].data.half()


def _shorter_slots_in_place(args):
    args["slot_mapping"].resize_(T - 1)


CHANGES = {
    "cache strides": lambda args: args.update(key_cache=_strided_cache(),
                                              value_cache=_strided_cache()),
    "input dtype in place": _f16_in_place,
    "slot count in place": _shorter_slots_in_place,
    "scale -0.0": lambda args: args.update(k_scale=-0.0, v_scale=-0.0),
    "scale 4.0": lambda args: args.update(k_scale=4.0, v_scale=4.0),
    "overflow": lambda args: args.update(overflow="nonsaturating"),
}


def _warm_then_changed(fn, change):
    """Calls fn twice with a valid call, then once with it changed; returns
    the changed call's arguments."""
    key, value, slots = inputs()
    key[0, 0, 0] = 1e6     # an overflow, which saturates or not
    s = 0.0 if change == "scale -0.0" else 2.0
    args = dict(key=key, value=value, key_cache=poisoned(), value_cache=poisoned(),
                slot_mapping=slots, k_scale=s, v_scale=s, format="e4m3fn",
                overflow="saturate")
    for _ in range(2):
        fn(**args)
    args.update(key_cache=poisoned(), value_cache=poisoned())
    CHANGES[change](args)
    fn(**args)
    return args


def _check(args):
    ekc, evc = expected(args["key"], args["value"], args["slot_mapping"], args["k_scale"],
                        saturate=args["overflow"] == "saturate")
    assert_bytes_equal(logical(args["key_cache"]), ekc, "key_cache")
    assert_bytes_equal(logical(args["value_cache"]), evc, "value_cache")


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_what_the_checks_read_is_in_the_key(change):
    probe = Probe()
    _check(_warm_then_changed(probe.fn, change))
    assert probe.misses >= 2


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_public_write_sees_every_change(change):
    _check(_warm_then_changed(fp8kv.reshape_and_cache, change))


def _without_strides(p, numbers):
    return [line.replace(", %s.stride())" % p.name, ")")
            for line in _REAL_READS(p, numbers)]


def _scale_by_value(p, numbers):
    return [line.replace("_f32_bits(%s)" % p.name, p.name) for line in _REAL_READS(p, numbers)]


_REAL_READS = _plans._reads


@pytest.mark.parametrize("fault,change", [(_without_strides, "cache strides"),
                                          (_scale_by_value, "scale -0.0")])
def test_planted_stale_keys_are_caught(monkeypatch, fault, change):
    """A key that forgets strides, or keys a number scale by its value (0.0
    == -0.0), reuses a stale plan: the byte check above must fail on it."""
    monkeypatch.setattr(_plans, "_reads", fault)
    probe = Probe()
    args = _warm_then_changed(probe.fn, change)
    with pytest.raises(AssertionError, match="bytes differ"):
        _check(args)


def _library_not_called(monkeypatch):
    def called(*args):
        raise AssertionError("the library was called")
    monkeypatch.setattr(_capi.fn, "reshape_and_cache", called)


@pytest.mark.parametrize("fn", ["probe", "public"])
def test_writability_is_asked_on_every_call(fn):
    """P-ARRAYS on a warm plan: an inference tensor outside inference mode,
    and a cache that requires grad under grad mode, are refused by name with
    every byte as it was; inside inference mode and under no_grad they are
    written."""
    write = Probe().fn if fn == "probe" else fp8kv.reshape_and_cache
    key, value, slots = inputs()
    for _ in range(2):
        write(key, value, poisoned(), poisoned(), slots, format="e4m3fn")
    with torch.inference_mode():
        kc = poisoned()
    vc = poisoned()
    with pytest.raises(ValueError, match="^key_cache: an inference tensor"):
        write(key, value, kc, vc, slots, format="e4m3fn")
    assert (kc.view(torch.uint8) == POISON).all() and (vc == POISON).all()
    with torch.inference_mode():
        write(key, value, kc, vc, slots, format="e4m3fn")
    assert_bytes_equal(logical(kc), expected(key, value, slots)[0], "key_cache")

    # a copy cache (the input's dtype) can require grad
    for _ in range(2):
        write(key, value, poisoned(dtype=torch.float32), poisoned(dtype=torch.float32), slots)
    vc = poisoned(dtype=torch.float32).requires_grad_()
    kc = poisoned(dtype=torch.float32)
    with pytest.raises(ValueError, match="^value_cache: requires grad"):
        write(key, value, kc, vc, slots)
    assert (kc.view(torch.uint8) == POISON).all()
    assert (vc.detach().view(torch.uint8) == POISON).all()
    with torch.no_grad():
        write(key, value, kc, vc, slots)
    # slots 5 and 9: block 1 and 2, offset 1
    assert (vc.detach()[1, 1] == value[0]).all() and (vc.detach()[2, 1] == value[2]).all()


def test_a_meta_tensor_after_a_cpu_plan_is_refused(monkeypatch):
    key, value, slots = inputs()
    for _ in range(2):
        fp8kv.reshape_and_cache(key, value, poisoned(), poisoned(), slots, format="e4m3fn")
    _library_not_called(monkeypatch)
    with pytest.raises(ValueError, match="^key: a tensor on meta"):
        fp8kv.reshape_and_cache(key.to("meta"), value, poisoned(), poisoned(), slots,
                                format="e4m3fn")


def test_plans_with_temporaries_are_not_cached():
    """A strided slot mapping is copied for each call (the copy is the
    call's): every call takes the full checks, and writes the right bytes."""
    probe = Probe()
    key, value, _ = inputs()
    for i in range(3):
        wide = torch.tensor([5, 0, -1, 0, 9, 0])
        kc, vc = poisoned(), poisoned()
        probe.fn(key, value, kc, vc, wide[::2], format="e4m3fn")
        assert_bytes_equal(logical(kc), expected(key, value, wide[::2])[0], "key_cache")
        assert probe.misses == i + 1
    assert not probe.cache


def test_a_scale_past_the_scale_cache_is_kept_for_its_call(monkeypatch):
    """Past 256 cached number scales, the call's own fp32 tensor is in keep
    (it was freed before the library read it) and its plan is not cached."""
    full = {(-1, i.to_bytes(4, "little")): None for i in range(256)}
    monkeypatch.setattr(_arrays, "_scalar_scales", full)
    key, value, slots = inputs()
    args = dict(key=key, value=value, key_cache=poisoned(), value_cache=poisoned(),
                slot_mapping=slots, swa_mapping=None, scale=None, k_scale=3.0, v_scale=3.0,
                k_scale_cache=None, v_scale_cache=None, overflow="saturate",
                overflow_count=None, nan_count=None, k_amax=None, v_amax=None,
                format="e4m3fn", layout=None)
    dev, desc, keep = _write.plan(**args)
    fields = _capi.CacheWrite.from_buffer_copy(desc)
    held = {_arrays.describe(x, "kept")[0] for x in keep}
    assert fields.k_scale in held and fields.v_scale in held
    probe = Probe()
    for i in range(2):
        kc, vc = poisoned(), poisoned()
        probe.fn(**dict(args, key_cache=kc, value_cache=vc))
        assert_bytes_equal(logical(vc), expected(key, value, slots, 3.0)[1], "value_cache")
        assert probe.misses == i + 1


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(_plans, "MAX_PLANS", 4)
    probe = Probe()
    for tokens in range(1, 11):
        key = torch.zeros((tokens, H, D))
        probe.fn(key, key, poisoned(), poisoned(), torch.arange(tokens), format="e4m3fn")
        assert len(probe.cache) <= 4
    assert probe.misses == 10


def test_other_arguments_take_the_full_checks():
    """numpy arrays, typed() wrappers and tensor subclasses are never looked
    up: each call is checked whole (P-ARRAYS, P-TYPED-AT-USE)."""
    probe = Probe()
    key, value, slots = inputs()
    ekc = expected(key, value, slots)[0]
    for k, kc in ((key.numpy(), np.full((B, S, H, D), POISON, np.uint8)),
                  (fp8kv.typed(key, "f32"), poisoned()),
                  (torch.nn.Parameter(key, requires_grad=False), poisoned())):
        for _ in range(2):
            kc[...] = POISON
            probe.fn(k, value, kc, poisoned(), slots, format="e4m3fn")
            assert_bytes_equal(np.asarray(logical(kc) if torch.is_tensor(kc) else kc), ekc)
    assert probe.misses == 6 and not probe.cache
    ro = np.full((B, S, H, D), POISON, np.uint8)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="^key_cache: is read-only"):
        probe.fn(key, value, ro, poisoned(), slots, format="e4m3fn")


def test_prepare_is_the_eager_path_without_its_call():
    """dev/py_call_cost.py times _write.prepare as the wrapper's share: its
    descriptor, given to the library, writes what the eager call writes."""
    key, value, slots = inputs()
    args = dict(key=key, value=value, key_cache=poisoned(), value_cache=poisoned(),
                slot_mapping=slots, k_scale=torch.tensor([0.5]), v_scale=torch.tensor([0.5]),
                format="e4m3fn")
    for _ in range(2):
        handle, desc, stream, keep = _write.prepare(**args)
        assert (args["key_cache"] == POISON).all()
        _capi.raise_for(_capi.fn.reshape_and_cache(handle, desc, stream))
        del keep
        assert_bytes_equal(logical(args["key_cache"]), expected(key, value, slots, 0.5)[0])
        args["key_cache"][...] = POISON


def test_the_operator_kernel_is_on_cached_plans():
    fp8kv.register_torch_ops()
    key, value, slots = inputs()
    for _ in range(3):
        kc, vc = poisoned(), poisoned()
        torch.ops.fp8kv.reshape_and_cache(key, value, kc, vc, slots, format="e4m3fn")
        ekc, evc = expected(key, value, slots)
        assert_bytes_equal(logical(kc), ekc, "key_cache")
        assert_bytes_equal(logical(vc), evc, "value_cache")


def _without_writability(p, numbers):
    lines = _REAL_READS(p, numbers)
    at = [i for i, line in enumerate(lines) if ".requires_grad and _grad()" in line]
    for i in reversed(at):
        del lines[i:i + 2]
    return lines


def test_a_planted_fast_path_that_skips_writability_is_caught(monkeypatch):
    monkeypatch.setattr(_plans, "_reads", _without_writability)
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        test_writability_is_asked_on_every_call("probe")


def test_a_descriptor_must_carry_every_tensor_and_no_other_pointer():
    """A tensor parameter without a pointer field (or a pointer field of no
    parameter) would leave a plan with its first call's pointer."""
    import ctypes
    from fp8kv import _signature
    fields = list(_capi.CacheWrite._fields_)
    _plans.Descriptor(_capi.CacheWrite, _signature.PARAMS)       # the real one matches
    renamed = [("kscale" if n == "k_scale" else n, t) for n, t in fields]
    extra = fields + [("spare", ctypes.c_void_p)]
    for layout in (renamed, extra):
        structure = type("Probe", (ctypes.Structure,), {"_fields_": layout})
        with pytest.raises(ImportError, match="pointer fields"):
            _plans.Descriptor(structure, _signature.PARAMS)
