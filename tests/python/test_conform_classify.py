# SPDX-License-Identifier: MIT
"""fp8kv.conform's parts: the value models held to the independent numpy
model of the contract (reference.py), the choice of causes over a run, the
case matrix's coverage, and the guarded buffers."""

import numpy as np
import pytest

import reference
from fp8kv.conform import cases, classify, guard
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
    y, p = classify.predictions(x, s, True, fmt, ov, e)
    assert np.array_equal(classify.encode(y, fmt, ov), e)
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


def test_the_quotient_follows_the_contract(rng):
    x = values(rng)
    s = np.float32(-2.5)
    got, want = classify.quotient(x, s), reference.divide(x, s)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got.view(np.uint32)[~nan], want.view(np.uint32)[~nan])
    assert np.array_equal(np.signbit(got), np.signbit(want))


def test_value_masks_name_the_planted_model(rng):
    x = values(rng)
    s = np.full(x.size, np.float32(1 / 3), np.float32)
    e = np.array([reference.quantize(xi, "e4m3fn", si)[0][()] for xi, si in zip(x, s)], np.uint8)
    fnuz = reference.encode(reference.divide(x, s), "e4m3fnuz", True)[0]
    y, masks, confirmed, contradicted = classify.value_masks(x, s, True, "e4m3fn", "saturate",
                                                            e, fnuz)
    differs = fnuz != e
    assert (masks[~differs] == 0).all()
    assert (masks[differs] & classify.BIT["format:e4m3fnuz"]).all()
    assert confirmed["format:e4m3fnuz"] == differs.sum()
    assert contradicted["format:e4m3fnuz"] == 0
    assert contradicted["scale_ignored"] > 0


def tally(*entries, contradicted=()):
    t = classify.Tally()
    for models, count in entries:
        mask = 0
        for m in models:
            mask |= classify.BIT[m]
        t.add(mask, count, {"call": 0, "cache": "key"})
    for m in contradicted:
        t.contradicted[m] = 10
    return t


def classes(t):
    return {c[0]: (c[1], c[3]) for c in classify.resolve(t)}


def test_a_model_some_byte_fits_alone_takes_the_shared_bytes():
    assert classes(tally((["division"], 5), (["reciprocal", "division"], 3))) == {
        "division": (8, [])}


def test_ties_go_to_exact_models_and_say_what_else_fits():
    assert classes(tally((["reciprocal", "division"], 4))) == {"reciprocal": (4, ["division"])}


def test_a_model_the_correct_bytes_contradict_loses_a_tie():
    got = classes(tally((["saturation", "inf"], 4), contradicted=["saturation"]))
    assert got == {"inf": (4, [])}


def test_bytes_no_model_fits_are_unexplained():
    assert classes(tally(([], 7), (["stray_writes"], 2))) == {
        "stray_writes": (2, []), "unexplained": (7, [])}


# ---- the matrix ----------------------------------------------------------------

ALL = Claims(FORMATS, ("f32", "f16", "bf16"), ("one", "tensor", "head", "dynamic"),
             ("NHD", "HND"), ("saturate", "nonsaturating"), True, True, ("i64", "i32"))


@pytest.mark.parametrize("level", ["quick", "full"])
def test_the_plan_covers_every_claim(level):
    specs = cases.plan(ALL, level)
    assert [s.index for s in specs] == list(range(len(specs)))
    for field, want in (("fmt", FORMATS), ("overflow", ALL.overflows), ("mode", ALL.scales),
                        ("layout", ALL.layouts), ("in_dtype", ALL.inputs),
                        ("index_type", ALL.index_types),
                        ("values", ("patterns", "midpoints", "specials", "random"))):
        assert {getattr(s, field) for s in specs} == set(want), field
    for flag in ("swa", "strided", "out_of_range", "duplicates"):
        assert {getattr(s, flag) for s in specs} == {True, False}, flag
    scales = cases.QUICK_SCALES if level == "quick" else cases.FULL_SCALES
    for fmt in FORMATS:
        covered = {v for s in specs if s.fmt == fmt and s.values == "midpoints"
                   for v in s.k_scales + s.v_scales}
        assert covered == set(scales)
    assert any(x < 0 for x in scales) and min(map(abs, scales)) < 1e-37
    assert max(scales) > 1e4 and 1 / 3 in scales


def test_claims_narrow_the_plan():
    narrow = Claims(("e5m2",), ("bf16",), ("tensor",), ("NHD",), ("saturate",), False, False)
    specs = cases.plan(narrow, "quick")
    assert specs and all(s.fmt == "e5m2" and s.in_dtype == "bf16" and s.mode == "tensor" and
                         not s.swa and not s.out_of_range for s in specs)


@pytest.mark.parametrize("in_dtype", ["bf16", "f16"])
def test_a_patterns_call_holds_every_bit_pattern(in_dtype):
    spec = next(s for s in cases.plan(ALL, "quick") if s.values == "patterns" and
                s.in_dtype == in_dtype)
    case = cases.build(spec, 3)
    valid = case.status == cases.VALID
    for raw in (case.key, case.value):
        bits = raw[valid].view(np.uint16).reshape(-1)
        assert np.unique(bits).size == 65536


@pytest.mark.parametrize("fmt", FORMATS)
def test_midpoints_surround_every_rounding_midpoint(fmt):
    v = cases.fp8_values(fmt)
    mids = np.concatenate([(v[:-1] + v[1:]) / 2, [v[-1] + (v[-1] - v[-2]) / 2]])
    for s in (0.37, -2.5, 1.5e-38):
        x = cases.midpoints(fmt, s)
        assert x.dtype == np.float32
        target = (mids * np.float64(np.float32(s))).astype(np.float32)
        target = target[np.isfinite(target)]
        assert np.isin(target, x).all() and np.isin(-target, x).all()
        up = np.nextafter(target, np.float32(np.inf))
        for _ in range(cases.ULPS - 1):
            up = np.nextafter(up, np.float32(np.inf))
        assert np.isin(up, x).all()


def test_a_call_has_padding_swa_out_of_range_and_duplicate_tokens():
    spec = next(s for s in cases.plan(ALL, "quick") if s.swa and s.out_of_range and
                s.duplicates)
    case = cases.build(spec, 0)
    for st in (cases.PAD, cases.SWA_PAD, cases.OUT_OF_RANGE, cases.DUPLICATE):
        assert (case.status == st).any()
    assert case.swa[-1] == case.bait and case.swa_guarded[0] == case.bait
    assert case.bait not in case.final and case.num_slots - 1 not in case.final


def test_guarded_buffers():
    spec = next(s for s in cases.plan(ALL, "quick") if s.duplicates)
    case = cases.build(spec, 1)
    exp = guard.expect(case, np.random.default_rng(0))
    for name in ("key", "value"):
        geo = exp.geometry[name]
        assert geo.before >= 2 * geo.block_size * geo.heads * geo.row
        t, e = exp.template[name], exp.expected[name]
        assert t.size == geo.total
        assert np.array_equal(t[:geo.before], e[:geo.before])
        assert np.array_equal(t[-geo.after:], e[-geo.after:])
        mapped = (t != e)
        # every byte of every mapped row differs from its poison
        rows = geo.row_index(np.flatnonzero(case.owner >= 0).repeat(case.heads),
                             np.tile(np.arange(case.heads), int((case.owner >= 0).sum())))
        inside = mapped[geo.before:geo.before + geo.size].reshape(geo.rows, geo.row)
        assert inside[rows].all() and inside.sum() == rows.size * geo.row
