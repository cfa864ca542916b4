# SPDX-License-Identifier: MIT
"""fp8kv.conform's parts: the value models held to the independent numpy
model of the contract (reference.py), the choice of causes over a run, the
case matrix's coverage, the guarded buffers, the layout models' geometry and
sparse memory."""

import numpy as np
import pytest

import faulty_writers as fw
import reference
from fp8kv.conform import build, cases, classify, guard, layout, models, sparse, streams
from fp8kv.conform.cases import Claims

FORMATS = reference.FP8


def values(rng, n=4000):
    """fp32 values of every kind: normal, huge, tiny, zeros, Inf, NaN."""
    x = (rng.standard_normal(n) * np.exp2(rng.integers(-30, 30, n))).astype(np.float32)
    x[:12] = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-40, -1e-40, 3e38, -3e38,
              464.0, -61440.0]
    return x


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("sat", [True, False])
def test_value_models_predict_what_the_model_writers_write(rng, fmt, sat):
    x = values(rng)
    s = np.float32(0.37) * np.where(rng.integers(0, 2, x.size) == 0, 1, -1).astype(np.float32)
    ov = "saturate" if sat else "nonsaturating"
    e = np.array([reference.quantize(xi, fmt, si, sat)[0][()] for xi, si in zip(x, s)],
                 np.uint8)
    y, p = models.predictions(x, s, True, fmt, ov, e)
    assert np.array_equal(models.encode(y, fmt, ov), e)
    for other in FORMATS:
        if other != fmt:
            assert np.array_equal(p["format:" + other],
                                  reference.encode(reference.divide(x, s), other, sat)[0])
    assert np.array_equal(p["scale_ignored"], reference.encode(x, fmt, sat)[0])
    with np.errstate(all="ignore"):
        recip = (x * (np.float32(1) / s).astype(np.float32)).astype(np.float32)
    assert np.array_equal(p["reciprocal"], reference.encode(recip, fmt, sat)[0])
    assert np.array_equal(p["saturation"], reference.encode(y, fmt, not sat)[0])
    over = np.isfinite(y) & (np.abs(y) > reference.fmax(fmt))
    assert (p["overflow_first"][~over] == e[~over]).all()
    big = reference.encode(np.copysign(np.float32(3e38), y), fmt, sat)[0]
    assert np.array_equal(p["overflow_first"][over], big[over])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("mode", ["ties_away", "truncation", "ties_odd"])
def test_rounding_models_agree_with_the_zoos_rounding(rng, fmt, mode):
    """The harness's rounding models and the zoo's writers, each from its own
    tables, on random values, every midpoint (ties) and its neighbours."""
    v = streams.fp8_values(fmt)
    mids = ((v[:-1] + v[1:]) / 2).astype(np.float32)
    x = np.concatenate([values(rng), mids, -mids, np.nextafter(mids, np.float32(0)),
                        v.astype(np.float32)])
    for sat in (True, False):
        ov = "saturate" if sat else "nonsaturating"
        e = reference.encode(x, fmt, sat)[0]
        got = models.rounding(x, fmt, ov, e)[mode]
        assert np.array_equal(got, fw._round_other(x, fmt, sat, mode))
        assert (got != e).any()


def test_the_quotient_follows_the_contract(rng):
    x = values(rng)
    s = np.float32(-2.5)
    got, want = models.quotient(x, s), reference.divide(x, s)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got.view(np.uint32)[~nan], want.view(np.uint32)[~nan])
    assert np.array_equal(np.signbit(got), np.signbit(want))


def test_value_masks_name_the_planted_model(rng):
    x = values(rng)
    s = np.full(x.size, np.float32(1 / 3), np.float32)
    e = np.array([reference.quantize(xi, "e4m3fn", si)[0][()] for xi, si in zip(x, s)], np.uint8)
    fnuz = reference.encode(reference.divide(x, s), "e4m3fnuz", True)[0]
    y, masks, confirmed, contradicted = models.value_masks(x, s, True, "e4m3fn", "saturate",
                                                           e, fnuz, classify.BIT)
    differs = fnuz != e
    assert (masks[~differs] == 0).all()
    assert (masks[differs] & classify.BIT["format:e4m3fnuz"]).all()
    assert confirmed["format:e4m3fnuz"] == differs.sum()
    assert contradicted["format:e4m3fnuz"] == 0
    assert contradicted["scale_ignored"] > 0


def test_no_division_is_named_without_a_scale(rng):
    x = values(rng)
    e = reference.encode(x, "e4m3fn", True)[0]
    g = e ^ np.uint8(1)
    _, masks, _, _ = models.value_masks(x, np.ones(x.size, np.float32), False, "e4m3fn",
                                        "saturate", e, g, classify.BIT)
    assert not (masks & classify.BIT["division"]).any()


def tally(*entries, contradicted=()):
    t = classify.Tally()
    for models_, count in entries:
        mask = 0
        for m in models_:
            mask |= classify.BIT[m]
            t.note(("e4m3fn", "f32"), {m: count}, {})
        t.add(mask, count, {"call": 0, "cache": "key"}, call=0)
    for m in contradicted:
        t.note(("e4m3fn", "f32"), {m: 1}, {m: 10})
    return t


def chosen(t):
    return {c[0]: (c[1], c[3]) for c in classify.resolve(t)}


def test_a_model_some_byte_fits_alone_takes_the_shared_bytes():
    assert chosen(tally((["division"], 5), (["reciprocal", "division"], 3))) == {
        "division": (8, [])}


def test_ties_go_to_exact_models_and_say_what_else_fits():
    assert chosen(tally((["reciprocal", "division"], 4))) == {"reciprocal": (4, ["division"])}


def test_a_model_the_correct_bytes_contradict_loses_a_tie():
    got = chosen(tally((["saturation", "inf"], 4), contradicted=["saturation"]))
    assert got == {"inf": (4, [])}


def test_bytes_no_model_fits_are_unexplained():
    assert chosen(tally(([], 7), (["stray_writes"], 2))) == {
        "stray_writes": (2, []), "unexplained": (7, [])}


def test_a_fault_in_some_contexts_only_is_not_contradicted_by_the_others():
    t = classify.Tally()
    t.note(("e5m2fnuz", "f32"), {"negative_zero": 40}, {"negative_zero": 0})
    t.note(("e4m3fn", "f32"), {}, {"negative_zero": 500})
    assert not t.is_contradicted("negative_zero")
    t.note(("e5m2fnuz", "f32"), {}, {"negative_zero": 11})
    assert t.is_contradicted("negative_zero")


def test_layout_models_resolve_as_value_models_do():
    """A call where two layout models place every row alike: the run's other
    calls decide."""
    got = chosen(tally((["layout_swapped", "cache_inner_strides"], 6),
                       (["layout_swapped"], 9)))
    assert got == {"layout_swapped": (15, [])}


# ---- the matrix ----------------------------------------------------------------

ALL = Claims(FORMATS, ("f32", "f16", "bf16"), ("one", "tensor", "head", "token_head"),
             ("NHD", "HND"), ("saturate", "nonsaturating"), True, True, ("i64", "i32"))


@pytest.mark.parametrize("level", ["quick", "full"])
def test_the_plan_covers_every_claim(level):
    specs = cases.plan(ALL, level, cases.BIG)
    assert [s.index for s in specs] == list(range(len(specs)))
    for field, want in (("fmt", FORMATS), ("overflow", ALL.overflows), ("mode", ALL.scales),
                        ("layout", ALL.layouts), ("in_dtype", ALL.inputs),
                        ("index_type", ALL.index_types),
                        ("values", ("patterns", "midpoints", "specials", "random"))):
        assert {getattr(s, field) for s in specs} == set(want), field
    for flag in ("swa", "out_of_range", "duplicates"):
        assert {getattr(s, flag) for s in specs} == {True, False}, flag
    assert {s.strided for s in specs} == {None, "tokens", "heads"}
    assert {s.padded for s in specs} == {None, "blocks", "rows"}
    assert not any(s.strided and s.padded for s in specs)     # one layout variation a call
    scales = cases.QUICK_SCALES if level == "quick" else cases.FULL_SCALES
    for fmt in FORMATS:
        covered = {v for s in specs if s.fmt == fmt and s.values == "midpoints"
                   for v in s.k_scales + s.v_scales}
        assert covered == set(scales)
    assert any(x < 0 for x in scales) and min(map(abs, scales)) < 1e-37
    assert max(scales) > 1e4 and 1 / 3 in scales


def test_every_claim_reaches_the_writer_without_out_of_range_slots():
    """#35 item 10: a writer may refuse calls with out-of-range slots, so
    every claimed value (and format and input pair) needs a call without."""
    for level in ("quick", "full"):
        specs = [s for s in cases.plan(ALL, level) if getattr(s, "extra", None) is None]
        for key in (lambda s: (s.fmt, s.in_dtype), lambda s: s.mode, lambda s: s.layout,
                    lambda s: s.overflow):
            for k in {key(s) for s in specs}:
                assert any(key(s) == k and not s.out_of_range for s in specs), (level, k)


def test_the_shapes_vary():
    """#35 item 12: heads, head dims (key and value dims that differ), block
    sizes, slots past 2^16 and 2^31 and byte offsets past 2^32, tokens past
    4096, scales across magnitudes."""
    specs = cases.plan(ALL, "quick", cases.BIG)
    shapes = {s.shape for s in specs}
    assert {sh.block_size for sh in shapes} >= {1, 16, 64, 128, 256}
    assert {sh.dk for sh in shapes} >= {64, 80, 96, 128, 192, 256}
    assert any(sh.dk != sh.dv for sh in shapes)
    assert {sh.heads for sh in shapes} >= {1, 2, 4, 8, 16}
    assert {s.extra for s in specs} == {None, "long", "wide", "huge", "offset"}
    scales = {abs(v) for s in specs for v in s.k_scales + s.v_scales}
    assert {0.013, 0.05, 0.2} <= scales
    for s in specs:
        if s.extra:
            case = build.build(s, 0)
            top = case.final.max()
            row = s.shape.heads * s.shape.dk
            want = {"long": lambda: len(case.slots) > 4096, "wide": lambda: top >= 2 ** 16,
                    "huge": lambda: top >= 2 ** 31 and case.slots.dtype == np.int64,
                    "offset": lambda: top * row >= 2 ** 32 and top < 2 ** 31}[s.extra]
            assert want(), s.extra
    narrow = Claims(("e5m2",), ("bf16",), ("tensor",), ("NHD",), ("saturate",), False, False,
                    strides=(), kv_dims_differ=False)
    specs = cases.plan(narrow, "quick")
    assert all(s.shape.dk == s.shape.dv and not s.strided and not s.padded for s in specs)
    assert "huge" not in {s.extra for s in specs}       # not without the memory for it


def test_claims_narrow_the_plan():
    narrow = Claims(("e5m2",), ("bf16",), ("tensor",), ("NHD",), ("saturate",), False, False)
    specs = cases.plan(narrow, "quick")
    assert specs and all(s.fmt == "e5m2" and s.in_dtype == "bf16" and s.mode == "tensor" and
                         not s.swa and not s.out_of_range for s in specs)


@pytest.mark.parametrize("in_dtype", ["bf16", "f16"])
def test_a_patterns_call_holds_every_bit_pattern(in_dtype):
    spec = next(s for s in cases.plan(ALL, "quick") if s.values == "patterns" and
                s.in_dtype == in_dtype)
    case = build.build(spec, 3)
    valid = case.status == cases.VALID
    for raw in (case.key, case.value):
        bits = raw[valid].view(np.uint16).reshape(-1)
        assert np.unique(bits).size == 65536


@pytest.mark.parametrize("fmt", FORMATS)
def test_midpoints_surround_every_rounding_midpoint(fmt):
    v = streams.fp8_values(fmt)
    mids = np.concatenate([(v[:-1] + v[1:]) / 2, [v[-1] + (v[-1] - v[-2]) / 2]])
    for s in (0.37, -2.5, 1.5e-38):
        x = streams.midpoints(fmt, s)
        assert x.dtype == np.float32
        target = (mids * np.float64(np.float32(s))).astype(np.float32)
        target = target[np.isfinite(target)]
        assert np.isin(target, x).all() and np.isin(-target, x).all()
        up = np.nextafter(target, np.float32(np.inf))
        for _ in range(streams.ULPS - 1):
            up = np.nextafter(up, np.float32(np.inf))
        assert np.isin(up, x).all()


def test_a_call_has_padding_swa_out_of_range_and_duplicate_tokens():
    spec = next(s for s in cases.plan(ALL, "quick") if s.swa and s.out_of_range and
                s.duplicates)
    case = build.build(spec, 0)
    for st in (cases.PAD, cases.SWA_PAD, cases.OUT_OF_RANGE, cases.DUPLICATE):
        assert (case.status == st).any()
    assert case.swa[-1] == case.bait and case.swa_guarded[0] == case.bait
    assert case.bait not in case.final and case.num_slots - 1 not in case.final


def test_strided_inputs_hold_the_values_in_a_larger_buffer():
    for how in ("tokens", "heads"):
        spec = next(s for s in cases.plan(ALL, "quick") if s.strided == how)
        case = build.build(spec, 0)
        for name in ("key", "value"):
            ib, raw = case.inputs[name], getattr(case, name)
            T, H, D = raw.shape
            assert len(ib.flat) > raw.size and ib.strides[0] > H * D
            assert (ib.strides[1] > D) == (how == "heads")
            t, h, d = np.ix_(np.arange(T), np.arange(H), np.arange(D))
            assert np.array_equal(ib.flat[ib.index(t, h, d)].view(np.uint8),
                                  raw.view(np.uint8))


def test_guarded_buffers():
    for spec in [s for s in cases.plan(ALL, "quick") if s.duplicates][:6]:
        case = build.build(spec, 1)
        exp = guard.expect(case, np.random.default_rng(0))
        for name in ("key", "value"):
            e = exp[name]
            geo, t = e.geometry, e.template
            assert geo.before >= 2 * geo.sb and t.dense and t.total == geo.total
            # every byte of every mapped row differs from its poison, and only those
            rows = geo.row_start(np.repeat(case.mapped, case.heads),
                                 np.tile(np.arange(case.heads), len(case.mapped)))
            pos = np.sort((rows[:, None] + np.arange(geo.row)).reshape(-1))
            assert np.array_equal(pos, e.pos)
            assert (t.data[e.pos] != e.exp).all() and (t.data[e.pos] != e.alt).all()


@pytest.mark.parametrize("layout_", ["NHD", "HND"])
@pytest.mark.parametrize("padded", [None, "rows", "blocks"])
def test_geometry_locates_what_it_places(layout_, padded):
    geo = guard.Geometry(3, 4, 5, 16, layout_, 1, padded)
    slots = np.repeat(np.arange(12), 5)
    heads = np.tile(np.arange(5), 12)
    starts = geo.row_start(slots, heads)
    assert len(np.unique(starts)) == len(starts)
    for d in (0, 7, 15):
        region, s, h, e = geo.locate(starts + d)
        assert (region == geo.ROW).all() and np.array_equal(s, slots)
        assert np.array_equal(h, heads) and (e == d).all()
    inside = np.zeros(geo.total, bool)
    inside[(starts[:, None] + np.arange(16)).reshape(-1)] = True
    region, _, _, _ = geo.locate(np.arange(geo.total))
    assert np.array_equal(region == geo.ROW, inside)
    assert (region[:geo.before] == geo.BEFORE).all() and (region[-geo.after:] == geo.AFTER).all()
    assert ((region == geo.PADDING).sum() > 0) == (padded is not None)


def test_every_place_model_moves_rows():
    geo = guard.Geometry(2 ** 20, 16, 4, 64, "NHD", 1, "rows")
    slots = np.array([5, 1500, 70000, 2 ** 20 * 16 - 3])
    heads = np.array([0, 1, 2, 3])
    right = geo.row_start(slots, heads)
    seen = set()
    for cls, detail, place in layout.places(geo):
        assert (place(slots, heads) != right).any(), (cls, detail)
        seen.add(cls)
    assert seen == set(layout.PLACES)


def test_sparse_memory_finds_every_write():
    if not sparse.available():
        pytest.skip("no sparse memory here")
    t = guard.Buffer(1 << 33, [(0, np.full(10, 7, np.uint8)), ((1 << 32) + 3, np.ones(5,
                                                                                  np.uint8))])
    mem = sparse.SparseBytes(t.total)
    for s, d in t.segments:
        mem.array[s:s + len(d)] = d
    mem.array[(1 << 32) + 4] = 9         # in a segment
    mem.array[(1 << 31) + 12345] = 1     # in a hole, gigabytes from any segment
    mem.array[(1 << 33) - 1] = 2         # the last byte
    pos, val = sparse.host_changes(mem.array, t, mem)
    assert pos.tolist() == [(1 << 31) + 12345, (1 << 32) + 4, (1 << 33) - 1]
    assert val.tolist() == [1, 9, 2]


def test_a_device_buffer_is_made_and_diffed_as_a_host_one():
    """The device path of the big extras (zeros, then the segments; the
    changed bytes found on the device), run on CPU tensors."""
    torch = pytest.importorskip("torch")
    from fp8kv.conform import targets
    rng = np.random.default_rng(5)
    t = guard.Buffer(1 << 20, [(100, rng.integers(0, 256, 300, dtype=np.uint8)),
                               (70000, rng.integers(0, 256, 4096, dtype=np.uint8))])
    buf = targets.device_alloc(torch, t, "cpu")
    assert np.array_equal(buf.numpy(), t.materialise())
    for at, v in ((150, 1), (5000, 9), (70001, 3), ((1 << 20) - 1, 4)):
        buf[at] = v
    buf[150] = int(t.at([150])[0])          # written with the byte it had: no change
    pos, val = targets.device_changes(torch, buf, t)
    want = sparse.host_changes(buf.numpy(), t)
    assert np.array_equal(pos, want[0]) and np.array_equal(val, want[1])
    assert set(pos.tolist()) <= {5000, 70001, (1 << 20) - 1} and 5000 in pos
