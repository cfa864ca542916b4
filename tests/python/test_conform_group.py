# SPDX-License-Identifier: MIT
"""fp8kv.conform as the referee of block-scaled recipes, held to the zoo of
tests/python/faulty_group_writers.py: an exact writer is CLEAN, every
engine recipe and planted fault is named, and none is ever CLEAN."""

import pytest

from fp8kv.conform import groups
from fp8kv.conform.catalogue import FAMILIES, PLACEMENT, VARIATIONS
from fp8kv.conform.report import CLEAN, DIFFERENCES, FAILED

import faulty_group_writers as Z

_RUNS = {}


def _run(name):
    if name not in _RUNS:
        fam, w, _ = Z.ZOO[name]
        _RUNS[name] = groups.run(w, fam, target=name, calls=4)
    return _RUNS[name]


@pytest.mark.parametrize("name", sorted(Z.ZOO))
def test_zoo_named(name):
    fam, _, want = Z.ZOO[name]
    rep = _run(name)
    assert rep.golden == "fp8kv.golden"      # fp8kv's bytes from the golden path
    if want == "CLEAN":
        assert rep.verdict == CLEAN, rep.verdict_line()
        assert rep.bytes_differing == 0 and not rep.placement and rep.recipe is None
        assert rep.groups > 100
        return
    # a planted fault or another recipe is never CLEAN
    assert rep.verdict == DIFFERENCES, rep.verdict_line()
    assert rep.bytes_differing > 0
    if want in PLACEMENT:
        assert want in rep.placement, rep.table()
    elif want == "none":
        assert rep.recipe is None
        assert rep.first and "writer: scale e8m0" in rep.first and "closest recipe" in rep.first
        c = rep.closest
        assert c["groups_matched"] < c["groups"] == rep.groups
    else:
        assert rep.recipe == want, (rep.recipe, rep.also)
        assert not set(rep.placement) - {"input_modified"}, rep.placement


def test_no_planted_fault_is_clean():
    for name, (_, _, want) in Z.ZOO.items():
        if want != "CLEAN":
            assert _run(name).verdict != CLEAN, name


def test_every_recipe_and_variation_in_the_zoo():
    named = {want.split(" + ")[0] for _, _, want in Z.ZOO.values()}
    variations = {want.split(" + ")[1] for _, _, want in Z.ZOO.values() if " + " in want}
    for fam in FAMILIES.values():
        for r in fam["recipes"]:
            assert r.name in named or r.fp8kv, r.name
    assert variations == set(VARIATIONS)


def test_input_modified_and_raising_writer():
    def modifies(**kw):
        Z.ZOO["exact_mxfp8"][1](**kw)
        kw["key"][0, 0, 0] = 1234.0
    rep = groups.run(modifies, "mxfp8", calls=1)
    assert rep.verdict == DIFFERENCES and rep.placement.get("input_modified") == 4

    def modifies_global(**kw):
        Z.ZOO["exact_nvfp4"][1](**kw)
        kw["v_global"][0] = 2.0
    rep = groups.run(modifies_global, "nvfp4", calls=1)
    assert rep.verdict == DIFFERENCES and list(rep.placement) == ["input_modified"]

    def raises(**kw):
        raise RuntimeError("no")
    rep = groups.run(raises, "nvfp4", calls=1)
    assert rep.verdict == FAILED and "RuntimeError: no" in rep.error


def test_report_forms():
    rep = _run("trtllm_nvfp4")
    d = rep.as_dict()
    assert d["recipe"] == "nvfp4_trtllm" and d["verdict"] == DIFFERENCES
    text = "\n".join([rep.verdict_line()] + rep.table())
    assert "ENCODE-direction" in text and "nvfp4_trtllm" in text
    with pytest.raises(ValueError):
        groups.run(lambda **kw: None, "mxfp9")


def test_nothing_written_is_not_clean():
    rep = groups.run(lambda **kw: None, "int8", calls=1)
    assert rep.verdict == DIFFERENCES and rep.placement.get("not_written", 0) > 0


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fp8kv_itself_is_clean(family):
    import fp8kv
    rep = groups.run(fp8kv.reshape_and_cache_grouped, family, calls=2)
    assert rep.verdict == CLEAN, rep.verdict_line()


def _torchao_edge_groups():
    """Groups where torchao's recipes turn: amax at max * 2^j and one ulp
    either side (RCEIL's RN(amax * fp32(1/max)) against the exact ceil),
    descales around 2^-127 (byte 0 or 1), NaN, +-Inf, -0, e2m1 midpoints."""
    import numpy as np
    F32 = np.float32
    rng = np.random.default_rng(37)
    rows = []
    for i in range(240):
        x = (rng.standard_normal(32) * F32(2.0) ** rng.integers(-140, 110)).astype(F32)
        k, j = i % 6, i // 6
        if k == 0:
            m = F32((448.0, 6.0)[j % 2] * 2.0 ** int(rng.integers(-135, 100)))
            x[0] = np.nextafter(m, F32((np.inf, 0)[j // 2 % 2]), dtype=F32) if j % 3 else m
            x[1:] = np.clip(x[1:], -abs(x[0]), abs(x[0]))
        elif k == 1:
            x[int(rng.integers(32))] = (np.nan, -np.inf, np.inf)[j % 3]
        elif k == 2:
            x = (rng.integers(-24, 25, 32) * F32(0.25)).astype(F32)
            x[5] = -0.0
        elif k == 3:
            x = (rng.standard_normal(32) * F32(2.0 ** (-118, -122, -126)[j % 3])).astype(F32)
        elif k == 4:    # amax between max * 2^-127 and max * 2^-126: byte 1
            x = (x / np.abs(x).max() * F32((448.0, 6.0)[j % 2] * 2.0 ** -126.5)).astype(F32)
        rows.append(x)
    # one ulp above max * 2^-127: torchao's RCEIL byte 0 (descale rounds to
    # 2^-127), the exact ceil's 1; elements max (1 + 2^-23)
    for mx in (448.0, 6.0):
        x = np.full(32, F32(mx * 2.0 ** -128), F32)
        x[7] = -np.nextafter(F32(mx * 2.0 ** -127), F32(1), dtype=F32)
        rows.append(x)
    return np.array(rows, F32)


@pytest.mark.parametrize("fmt", ["e4m3fn", "e2m1"])
def test_torchao_models_agree(fmt):
    """conform's models of torchao's to_mx (FLOOR, RCEIL) give the bytes of
    the tests' exact models (recipes_ref.py) on groups where they turn."""
    import numpy as np
    import recipes_ref as RR
    from fp8kv.conform import recipes as R
    xs = _torchao_edge_groups()
    for mine, theirs in ((R.mx_floor_torchao, RR.mx_floor_ocp),
                         (R.mx_rceil_torchao, RR.mx_rceil_torchao)):
        codes, b = mine(xs, fmt)
        packed = groups._pack(codes, fmt)
        for i, x in enumerate(xs):
            tc, tb = theirs([int(u) for u in x.view(np.uint32)], "f32", fmt)
            assert (tb, list(np.asarray(tc, np.uint8))) == (b[i], list(packed[i])), (fmt, x)
    # the groups reach the cases that tell torchao from the OCP rules
    _, b = R.mx_rceil_torchao(xs, fmt)
    assert (b == 255).sum() >= 30 and (b == 0).any() and (b == 1).any()
