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
