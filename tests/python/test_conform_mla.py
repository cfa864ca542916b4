# SPDX-License-Identifier: MIT
"""fp8kv.conform for MLA writers (vLLM's concat_and_cache_mla signature,
plain and fp8_ds_mla), held to the MLA zoo of faulty_group_writers.py:
exact writers are CLEAN, every planted fault is named as its class (the
largest class of its bytes, nothing unexplained), none is ever CLEAN."""

import numpy as np
import pytest

from fp8kv.conform import mla
from fp8kv.conform.report import CLEAN, DIFFERENCES, FAILED

import faulty_group_writers as Z

_RUNS = {}


def _run(name):
    if name not in _RUNS:
        kind, w, _ = Z.MLA_ZOO[name]
        _RUNS[name] = mla.run(w, kind, target=name, calls=4)
    return _RUNS[name]


@pytest.mark.parametrize("name", sorted(Z.MLA_ZOO))
def test_mla_zoo_named(name):
    _, _, want = Z.MLA_ZOO[name]
    rep = _run(name)
    assert rep.golden == "fp8kv.golden"      # fp8kv's records from the golden path
    if want == "CLEAN":
        assert rep.verdict == CLEAN, rep.verdict_line()
        assert rep.bytes_differing == 0 and not rep.classes and rep.bytes_compared > 70000
        return
    assert rep.verdict == DIFFERENCES, rep.verdict_line()
    assert rep.bytes_differing > 0
    assert want in rep.classes, rep.table()
    assert max(rep.classes, key=rep.classes.get) == want, rep.classes
    assert "unexplained" not in rep.classes, rep.classes


def test_no_planted_mla_fault_is_clean():
    for name, (_, _, want) in Z.MLA_ZOO.items():
        if want != "CLEAN":
            assert _run(name).verdict != CLEAN, name


def test_every_mla_class_planted():
    planted = {want for _, _, want in Z.MLA_ZOO.values()}
    for cls in mla.CLASSES:
        if cls in ("unexplained", "out_of_bounds", "input_modified"):
            continue
        assert cls in planted, cls


@pytest.mark.parametrize("name,detail", [("divisor240_ds", "240"), ("divisor224_ds", "224"),
                                         ("tiles64_ds", "64"), ("tiles512_ds", "512")])
def test_variant_named(name, detail):
    rep = _run(name)
    cls = Z.MLA_ZOO[name][2]
    assert rep.details[cls] == {detail}
    assert ": " + detail in "\n".join(rep.table())


def test_ds_record_decoded():
    rep = _run("scale_big_endian_ds")
    assert rep.first and "writer scales [" in rep.first and "fp8kv scales [" in rep.first
    text = "\n".join([rep.verdict_line()] + rep.table())
    assert "big-endian" in text
    assert rep.as_dict()["classes"] == {"scale_byte_order": rep.classes["scale_byte_order"]}


def test_stray_out_of_bounds_inputs_and_failures():
    exact = Z.MLA_ZOO["exact_ds"][1]

    def strays(kv_c, k_pe, kv_cache, slot_mapping, kv_cache_dtype, scale):
        exact(kv_c, k_pe, kv_cache, slot_mapping, kv_cache_dtype, scale)
        base = kv_cache.base
        while base.base is not None:
            base = base.base
        base[3] ^= 0xFF                # a canary before the cache
        kv_c[0, 0] ^= 1                # an input
    rep = mla.run(strays, "ds_mla", calls=1)
    assert rep.verdict == DIFFERENCES
    assert rep.classes.get("out_of_bounds") == 1 and rep.classes.get("input_modified") == 1

    def raises(**kw):
        raise ValueError("nope")
    rep = mla.run(raises, "fp8", calls=1)
    assert rep.verdict == FAILED and "ValueError: nope" in rep.error
    with pytest.raises(ValueError):
        mla.run(raises, "fp8_ds")


def test_ds_record_model_layout():
    """The model's record by hand: one tile of 448s and three of zeros."""
    kv = np.zeros(512, np.float32)
    kv[:128] = 448.0 * 3
    pe = np.arange(64, dtype=np.uint16)
    rec = mla.ds_record(kv, pe)
    assert rec.size == 656
    assert np.all(rec[:128] == 0x7E) and np.all(rec[128:512] == 0)
    assert rec[512:528].view("<f4").tolist() == [3.0, 2.0 ** -126, 2.0 ** -126, 2.0 ** -126]
    assert rec[528:].view("<u2").tolist() == list(range(64))


@pytest.mark.parametrize("kind", sorted(mla.DTYPES))
def test_fp8kv_itself_is_clean(kind):
    import fp8kv

    def writer(kv_c, k_pe, kv_cache, slot_mapping, kv_cache_dtype, scale):
        kw = dict(kv_c=fp8kv.typed(kv_c, "bf16"), k_pe=fp8kv.typed(k_pe, "bf16"),
                  kv_cache=kv_cache, slot_mapping=slot_mapping)
        if kv_cache_dtype == "fp8_ds_mla":
            kw.update(kind="ds_mla", format="e4m3fn")
        else:
            kw.update(kind="plain", scale="tensor", k_scale=scale,
                      format="e5m2" if kv_cache_dtype == "fp8_e5m2" else "e4m3fn")
        fp8kv.concat_and_cache_mla(**kw)
    rep = mla.run(writer, kind, calls=2)
    assert rep.verdict == CLEAN, rep.verdict_line()


def test_torch_arrays():
    torch = pytest.importorskip("torch")
    vllm_ds = Z.MLA_ZOO["vllm_ds"][1]

    def tensors(kv_c, k_pe, kv_cache, slot_mapping, kv_cache_dtype, scale):
        assert kv_c.dtype == torch.bfloat16 and kv_cache.dtype == torch.uint8
        assert kv_cache.stride(2) == 1 and scale.dtype == torch.float32
        host = kv_cache.numpy()         # a CPU tensor's view: written in place
        vllm_ds(kv_c.view(torch.int16).numpy().view(np.uint16),
                k_pe.view(torch.int16).numpy().view(np.uint16), host,
                slot_mapping.numpy(), kv_cache_dtype, scale.numpy())
    rep = mla.run(tensors, "ds_mla", calls=2, arrays="torch")
    assert rep.verdict == DIFFERENCES and "vllm_nan_inf" in rep.classes, rep.verdict_line()
    rep = mla.run(fp8kv_writer(), "ds_mla", calls=2, arrays="torch")
    assert rep.verdict == CLEAN, rep.verdict_line()


def fp8kv_writer():
    from fp8kv.conform.records import fp8kv_mla
    return fp8kv_mla


def test_cli(capsys):
    from fp8kv.conform import cli
    import json
    rc = cli.main(["--mla", "ds_mla", "fp8kv", "faulty_group_writers:scale_big_endian_ds",
                   "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["mode"] == "mla"
    assert [w["verdict"] for w in out["writers"]] == [CLEAN, DIFFERENCES]
    assert list(out["writers"][1]["classes"]) == ["scale_byte_order"]
    rc = cli.main(["--groups", "int8", "faulty_group_writers:vllm_int8"])
    text = capsys.readouterr().out
    assert rc == 1 and "recipe: int8_vllm" in text
    rc = cli.main(["--groups", "int8", "fp8kv"])
    assert rc == 0 and "CLEAN" in capsys.readouterr().out
    rc = cli.main(["--groups", "int8", "nosuchmodule_xyz:f"])
    assert rc == 2 and "cannot import" in capsys.readouterr().err
    rc = cli.main(["--groups", "int8", "--mla", "fp8", "fp8kv"])
    assert rc == 2
