# SPDX-License-Identifier: MIT
"""fp8kv.reshape_and_cache_grouped and fp8kv.concat_and_cache_mla (include/
fp8kv.h sections 8 and 9) and their golden forms: every byte of poisoned
caches and scale arrays against contract_ref.py, the independent model of
the header (never the code under test); counters and amax; the errors that
name arguments, with nothing written."""

import inspect

import numpy as np
import pytest

import contract_ref as C
import fp8kv
from fp8kv import _grouped, _mla, golden

POISON = 0xA5


def _bits(x):
    """fp32 bits of a number, as contract_ref takes them."""
    return int(np.array([x], np.float32).view(np.uint32)[0])


def _inputs(rng, shape, dtype, scale=3.0):
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    flat = x.reshape(-1)
    flat[::37] = 0.0
    flat[5::41] = -0.0
    flat[7::53] = np.nan
    flat[11::59] = np.inf
    flat[13::61] = -1e30 if dtype == np.float32 else -60000.0
    flat[17::67] *= 1e-6
    return x.astype(dtype)


def _row_bits(x):
    return x.view(np.uint32 if x.dtype == np.float32 else np.uint16).tolist()


def _dt(x):
    return "f32" if x.dtype == np.float32 else "f16"


# (rule, format, group size, scale kind, extra keywords, contract keywords)
GROUPED = [
    ("f32", "e4m3fn", 16, np.float32, {}, {}),
    ("f32", "e5m2", 32, np.float32, {"divisor": 224.0}, {"divisor": _bits(224.0)}),
    ("f32", "int8", None, np.float32, {"rounding": "toward_zero", "scale_floor": 1e-6},
     {"rounding": "trunc", "floor": _bits(1e-6)}),
    ("e8m0_floor", "e4m3fn", 32, np.uint8, {}, {}),
    ("e8m0_rceil", "e2m1", 32, np.uint8, {}, {}),
    ("nvfp4", "e2m1", 16, np.uint8, {"k_global": 0.0123, "v_global": 0.5},
     {"g": (_bits(0.0123), _bits(0.5))}),
]


def _cache(fmt, shape_nhd, layout):
    b, bs, h, d = shape_nhd
    per = 2 if fmt == "e2m1" else 1
    shape = (b, bs, h, d // per) if layout == "NHD" else (b, h, bs, d // per)
    return np.full(shape, POISON, np.int8 if fmt == "int8" else np.uint8).view(
        np.int8 if fmt == "int8" else np.uint8)


def _at(a, layout, block, off, h):
    return a[block, off, h] if layout == "NHD" else a[block, h, off]


@pytest.mark.parametrize("layout", ["NHD", "HND"])
@pytest.mark.parametrize("case", GROUPED, ids=[c[0] + "-" + c[1] for c in GROUPED])
def test_grouped_every_byte_against_the_contract(case, layout):
    rule, fmt, g, skind, extra, model = case
    rng = np.random.default_rng(hash((rule, fmt, layout)) & 0xFFFF)
    T, H, D, B, BS = 5, 2, 64, 3, 4
    dtype = np.float16 if rule == "e8m0_floor" else np.float32
    k, v = _inputs(rng, (T, H, D), dtype), _inputs(rng, (T, H, D), dtype)
    slots = np.array([6, -1, 0, 11, 3], np.int64)
    kc, vc = _cache(fmt, (B, BS, H, D), layout), _cache(fmt, (B, BS, H, D), layout)
    G = g or D
    groups = D // G
    sshape = (B, BS, H, groups) if layout == "NHD" else (B, H, BS, groups)
    ks = np.full(sshape, np.uint32(0xA5A5A5A5).view(np.float32), np.float32) \
        if skind == np.float32 else np.full(sshape, POISON, np.uint8)
    vs = ks.copy()
    oc, nc = np.zeros(1, np.uint64), np.zeros(1, np.uint64)
    ka, va = np.zeros(H, np.float32), np.zeros(H, np.float32)
    kw = dict(rule=rule, group_size=g, k_scales=ks, v_scales=vs, overflow_count=oc,
              nan_count=nc, k_amax=ka, v_amax=va, layout=layout, **extra)
    if kc.dtype == np.uint8:
        kw["format"] = fmt
    before = [a.copy() for a in (kc, vc, ks, vs)]
    ref = golden.reshape_and_cache_grouped(k, v, kc, vc, slots, **kw)
    for a, b in zip((kc, vc, ks, vs), before):      # golden modifies nothing
        assert a.tobytes() == b.tobytes()
    fp8kv.reshape_and_cache_grouped(k, v, kc, vc, slots, **kw)

    exp = [b.copy() for b in before]
    overflows = nans = 0
    amax = [np.zeros(H, np.uint32), np.zeros(H, np.uint32)]
    for t, slot in enumerate(slots):
        if slot < 0:
            continue
        block, off = divmod(int(slot), BS)
        for side, (x, ec, es) in enumerate(((k, exp[0], exp[2]), (v, exp[1], exp[3]))):
            mk = dict(model)
            gl = mk.pop("g", None)
            if gl is not None:
                mk["g"] = gl[side]
            for h in range(H):
                r = C.group_row(rule, fmt, _row_bits(x[t, h]), _dt(x), G, **mk)
                _at(ec, layout, block, off, h)[...] = np.array(r.codes, np.uint8).view(ec.dtype)
                _at(es, layout, block, off, h)[...] = np.array(r.scales, np.uint8).view(es.dtype)
                overflows += r.overflows
                nans += r.nans
                amax[side][h] = max(amax[side][h], r.amax)
    for got, want, name in zip((kc, vc, ks, vs), exp, ("key_cache", "value_cache", "k_scales",
                                                       "v_scales")):
        assert got.tobytes() == want.tobytes(), name
    assert int(oc[0]) == overflows and int(nc[0]) == nans
    assert ka.view(np.uint32).tolist() == amax[0].tolist()
    assert va.view(np.uint32).tolist() == amax[1].tolist()
    # the golden result holds the same bytes
    for got, name in ((kc, "key_cache"), (vc, "value_cache"), (ks, "k_scales"),
                      (vs, "v_scales"), (oc, "overflow_count"), (nc, "nan_count"),
                      (ka, "k_amax"), (va, "v_amax")):
        assert getattr(ref, name).tobytes() == got.tobytes(), name
    assert ref.error is None


def test_nvfp4_interleaved_v_scales():
    """vLLM's sm100 NVFP4 page: K scales linear, V scales interleaved by 4
    tokens (5-D [blocks, block_size / 4, heads, groups, 4]): each scale at
    section 8's address, every other byte untouched."""
    rng = np.random.default_rng(7)
    T, H, D, B, BS, I = 6, 1, 32, 2, 8, 4
    k, v = _inputs(rng, (T, H, D), np.float32), _inputs(rng, (T, H, D), np.float32)
    slots = np.array([0, 5, 9, 15, 3, -1], np.int64)
    kc, vc = _cache("e2m1", (B, BS, H, D), "NHD"), _cache("e2m1", (B, BS, H, D), "NHD")
    ks = np.full((B, BS, H, 2), POISON, np.uint8)
    vs = np.full((B, BS // I, H, 2, I), POISON, np.uint8)
    exp_vs = vs.copy()
    fp8kv.reshape_and_cache_grouped(k, v, kc, vc, slots, rule="nvfp4", k_scales=ks,
                                    v_scales=vs, k_global=1.0, v_global=0.25, format="e2m1")
    flat = exp_vs.reshape(-1)
    for t, slot in enumerate(slots):
        if slot < 0:
            continue
        block, off = divmod(int(slot), BS)
        r = C.group_row("nvfp4", "e2m1", _row_bits(v[t, 0]), "f32", 16, g=_bits(0.25))
        for j in range(2):
            flat[C.scale_index(block, off, 0, j, BS // I * 2 * I, 2 * I, 2 * I, I,
                               interleave=I, stride_interleave=1)] = r.scales[j]
    assert vs.tobytes() == exp_vs.tobytes()


MLA_PLAIN = [("e4m3fn", np.float16, None), ("e5m2", np.float32, 0.75),
             ("copy", np.float16, None)]


@pytest.mark.parametrize("fmt, dtype, scale", MLA_PLAIN, ids=[c[0] for c in MLA_PLAIN])
def test_mla_plain_every_byte(fmt, dtype, scale):
    rng = np.random.default_rng(3)
    T, R, P, B, BS = 4, 32, 8, 2, 4
    kv_c, k_pe = _inputs(rng, (T, R), dtype), _inputs(rng, (T, P), dtype)
    slots = np.array([7, -1, 0, 2], np.int32)
    copy = fmt == "copy"
    width = np.dtype(dtype).itemsize if copy else 1
    cache = np.full((B, BS, (R + P) * width), POISON, np.uint8)
    cache = cache.view(dtype) if copy else cache
    exp = cache.copy().view(np.uint8).reshape(B, BS, -1)
    oc, nc = np.zeros(1, np.uint64), np.zeros(1, np.uint64)
    kw = dict(overflow_count=oc, nan_count=nc)
    if not copy:
        kw["format"] = fmt
    if scale is not None:
        kw.update(scale="tensor", k_scale=scale)
    fp8kv.concat_and_cache_mla(kv_c, k_pe, cache, slots, **kw)
    overflows = nans = 0
    for t, slot in enumerate(slots):
        if slot < 0:
            continue
        e = C.mla_plain_entry(_row_bits(kv_c[t]), _row_bits(k_pe[t]), _dt(kv_c),
                              _dt(kv_c) if copy else fmt,
                              None if scale is None else _bits(scale))
        exp[divmod(int(slot), BS)] = e.data
        overflows += e.overflows
        nans += e.nans
    assert cache.view(np.uint8).tobytes() == exp.tobytes()
    assert (int(oc[0]), int(nc[0])) == (overflows, nans)


@pytest.mark.parametrize("fmt, divisor", [("e4m3fn", None), ("e4m3fnuz", 224.0)])
def test_mla_ds_records_every_byte(fmt, divisor):
    rng = np.random.default_rng(4)
    T, B, BS = 3, 2, 2
    kv_c, k_pe = _inputs(rng, (T, 512), np.float16), _inputs(rng, (T, 64), np.float16)
    slots = np.array([3, 0, -1], np.int64)
    cache = np.full((B, BS, 656), POISON, np.uint8)
    exp = cache.copy()
    nc = np.zeros(1, np.uint64)
    ref = golden.concat_and_cache_mla(kv_c, k_pe, cache, slots, kind="ds_mla", format=fmt,
                                      divisor=divisor, nan_count=nc)
    assert (cache == POISON).all() and nc[0] == 0          # golden modifies nothing
    fp8kv.concat_and_cache_mla(kv_c, k_pe, cache, slots, kind="ds_mla", format=fmt,
                               divisor=divisor, nan_count=nc)
    nans = 0
    for t, slot in enumerate(slots):
        if slot < 0:
            continue
        e = C.mla_ds_record(_row_bits(kv_c[t]), _row_bits(k_pe[t]), "f16", fmt,
                            divisor=0 if divisor is None else _bits(divisor))
        exp[divmod(int(slot), BS)] = e.data
        nans += e.nans
    assert cache.tobytes() == exp.tobytes() and int(nc[0]) == nans
    assert ref.kv_cache.tobytes() == cache.tobytes() and ref.nan_count.tobytes() == nc.tobytes()


def _grouped_args():
    k = np.ones((2, 1, 32), np.float32)
    return dict(key=k, value=k.copy(), key_cache=np.full((1, 4, 1, 32), POISON, np.uint8),
                value_cache=np.full((1, 4, 1, 32), POISON, np.uint8),
                slot_mapping=np.array([0, 1]), format="e4m3fn", rule="e8m0_rceil",
                group_size=32, k_scales=np.full((1, 4, 1, 1), POISON, np.uint8),
                v_scales=np.full((1, 4, 1, 1), POISON, np.uint8))


GROUPED_FAULTS = [
    ("rule", "mx", ValueError, "rule"),
    ("group_size", 24, ValueError, "group_size"),
    ("k_scales", np.zeros((1, 4, 1, 1), np.float32), TypeError, "k_scales"),
    ("v_scales", np.zeros((1, 4, 1, 2), np.uint8), ValueError, "v_scales"),
    ("v_scales", None, ValueError, "v_scales"),
    ("k_global", 1.0, ValueError, "k_global"),
    ("divisor", 224.0, ValueError, "divisor"),
    ("rounding", "toward_zero", ValueError, "rounding"),
    ("format", "e3m4", ValueError, "format"),
    ("key_cache", np.full((1, 4, 1, 16), POISON, np.uint8), ValueError, "key_cache"),
    ("slot_mapping", np.array([0.0, 1.0]), TypeError, "slot_mapping"),
    ("key", np.ones((2, 1, 32), ">f4"), TypeError, "key"),
]


@pytest.mark.parametrize("name, bad, error, named", GROUPED_FAULTS,
                         ids=["%s-%d" % (f[0], i) for i, f in enumerate(GROUPED_FAULTS)])
@pytest.mark.parametrize("fn", [fp8kv.reshape_and_cache_grouped,
                                golden.reshape_and_cache_grouped], ids=["fp8kv", "golden"])
def test_grouped_errors_name_the_argument_and_write_nothing(fn, name, bad, error, named):
    args = _grouped_args()
    args[name] = bad
    with pytest.raises(error) as e:
        fn(**args)
    assert str(e.value).startswith(named + ":"), str(e.value)
    for out in ("key_cache", "value_cache", "k_scales", "v_scales"):
        if out != name:
            assert (args[out].view(np.uint8) == POISON).all(), out


def test_grouped_library_refusal_writes_nothing():
    """A rule the format does not take (nvfp4 on e4m3fn) is the library's
    to refuse: fp8kv.Error, nothing written."""
    args = _grouped_args()
    args.update(rule="nvfp4", group_size=16, k_global=1.0, v_global=1.0,
                k_scales=np.full((1, 4, 1, 2), POISON, np.uint8),
                v_scales=np.full((1, 4, 1, 2), POISON, np.uint8))
    with pytest.raises(fp8kv.Error):
        fp8kv.reshape_and_cache_grouped(**args)
    for out in ("key_cache", "value_cache", "k_scales", "v_scales"):
        assert (args[out] == POISON).all(), out


def test_grouped_read_only_outputs_are_refused():
    args = _grouped_args()
    args["v_scales"].flags.writeable = False
    with pytest.raises(ValueError, match="^v_scales: is read-only"):
        fp8kv.reshape_and_cache_grouped(**args)
    assert (args["key_cache"] == POISON).all()


def _mla_args():
    return dict(kv_c=np.ones((2, 512), np.float16), k_pe=np.ones((2, 64), np.float16),
                kv_cache=np.full((1, 4, 656), POISON, np.uint8), slot_mapping=np.array([0, 1]),
                kind="ds_mla", format="e4m3fn")


MLA_FAULTS = [
    ("kind", "ds", ValueError, "kind"),
    ("kv_c", np.ones((2, 256), np.float16), ValueError, "kv_c"),
    ("k_pe", np.ones((2, 64), np.float32), TypeError, "k_pe"),
    ("kv_cache", np.full((1, 4, 576), POISON, np.uint8), ValueError, "kv_cache"),
    ("format", "e5m2", ValueError, "format"),
    ("k_scale", 2.0, ValueError, "scale"),
    ("slot_mapping", np.array([[0, 1]]), ValueError, "slot_mapping"),
]


@pytest.mark.parametrize("name, bad, error, named", MLA_FAULTS,
                         ids=["%s-%d" % (f[0], i) for i, f in enumerate(MLA_FAULTS)])
@pytest.mark.parametrize("fn", [fp8kv.concat_and_cache_mla, golden.concat_and_cache_mla],
                         ids=["fp8kv", "golden"])
def test_mla_errors_name_the_argument_and_write_nothing(fn, name, bad, error, named):
    args = _mla_args()
    args[name] = bad
    with pytest.raises(error) as e:
        fn(**args)
    assert str(e.value).startswith(named + ":"), str(e.value)
    assert (args["kv_cache"] == POISON).all()


def test_zero_tokens_write_nothing():
    args = _mla_args()
    args.update(kv_c=np.ones((0, 512), np.float16), k_pe=np.ones((0, 64), np.float16),
                slot_mapping=np.zeros(0, np.int64))
    fp8kv.concat_and_cache_mla(**args)
    assert (args["kv_cache"] == POISON).all()
    g = _grouped_args()
    g.update(key=np.ones((0, 1, 32), np.float32), value=np.ones((0, 1, 32), np.float32),
             slot_mapping=np.zeros(0, np.int64))
    fp8kv.reshape_and_cache_grouped(**g)
    assert (g["key_cache"] == POISON).all() and (g["k_scales"] == POISON).all()


def test_out_of_range_slot_raises_and_writes_the_rest():
    args = _mla_args()
    args["slot_mapping"] = np.array([9, 2])
    with pytest.raises(fp8kv.RangeError):
        fp8kv.concat_and_cache_mla(**args)
    assert (args["kv_cache"][0, 2] != POISON).any() and (args["kv_cache"][0, 0] == POISON).all()
    assert golden.concat_and_cache_mla(**_mla_args() | {"slot_mapping": np.array([9, 2])}
                                       ).error is not None


@pytest.mark.parametrize("public, gold, table", [
    (fp8kv.reshape_and_cache_grouped, golden.reshape_and_cache_grouped, _grouped.PARAMS),
    (fp8kv.concat_and_cache_mla, golden.concat_and_cache_mla, _mla.PARAMS)])
def test_signatures_come_from_one_table(public, gold, table):
    for fn in (public, gold):
        params = list(inspect.signature(fn).parameters.values())
        assert [p.name for p in params] == [row.name for row in table]
        required = sum(row.default is _grouped.REQUIRED for row in table)
        assert all(p.kind == p.POSITIONAL_OR_KEYWORD for p in params[:required])
        assert all(p.kind == p.KEYWORD_ONLY for p in params[required:])
