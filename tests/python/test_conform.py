# SPDX-License-Identifier: MIT
"""fp8kv.conform held to planted faults: every writer of the zoo
(faulty_writers.py) must be reported under its own class and no other, with
a first example whose bytes are the writer's own; the correct writer, fp8kv
itself and its drop-ins must come out clean; the command line's exit
statuses, text and JSON."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import faulty_writers as fw
import fp8kv.conform as conform
import reference
from fp8kv.conform import cli

HERE = os.path.dirname(os.path.abspath(__file__))
ZOO = dict(arrays="numpy", scales="one,tensor,head", layouts="NHD,HND", swa=True)
NEEDS_NONSATURATING = ("overflow_first", "always_saturate")
VALUE_CLASSES = ("reciprocal", "division", "overflow_first", "format_confusion", "nan", "ftz",
                 "scale_ignored", "negative_zero", "saturation", "inf")


def has_torch():
    try:
        import torch  # noqa: F401
        return True
    except Exception:
        return False


def zoo_claims(fault):
    return dict(ZOO, overflow="nonsaturating" if fault in NEEDS_NONSATURATING else "saturate")


def _element(ex):
    """(x, s or None) of a value example, from its text: fp32 values."""
    bits, dtype = int(ex["input_bits"], 16), ex["input_dtype"]
    raw = np.array([bits], np.uint32 if dtype == "f32" else np.uint16)
    raw = raw.view({"f32": np.float32, "f16": np.float16, "bf16": np.uint16}[dtype])
    x = reference.widen(raw, dtype)
    s = None if ex["scale"] is None else np.float32(float(ex["scale"]))
    return x, s


def check_value_example(fault, ex):
    """The example's expected byte is the contract's (by the independent
    model) and its written byte is what the faulty writer writes for it."""
    x, s = _element(ex)
    sat = ex["overflow"] == "saturate"
    codes, _ = reference.quantize(x, ex["format"], s, sat)
    assert int(ex["expected"], 16) == int(codes[0])
    w = fw.Writer(fault)
    assert int(ex["written"], 16) == int(w.encode(w.quotient(x.reshape(1, 1, 1), s),
                                                  ex["format"], sat).reshape(-1)[0])
    assert ex["expected"] != ex["written"]


PLACEMENT_WHERE = {
    "padding_written": ("token_status", ("padding", "SWA padding")),
    "swa_padding_read": ("token_status", ("padding",)),
    "out_of_bounds": ("token_status", ("out of range",)),
}


@pytest.mark.parametrize("fault", sorted(fw.CLASS))
def test_each_planted_fault_is_reported_under_its_own_class(fault):
    rep = conform.run(getattr(fw, fault), **zoo_claims(fault))
    assert rep.verdict == conform.DIFFERENCES
    assert list(rep.class_bytes()) == [fw.CLASS[fault]], "\n".join(rep.table())
    cls = rep.classes[0]
    assert cls.bytes == rep.bytes_differing > 0
    assert rep.bytes_compared > 1000000
    ex = cls.first
    if cls.cls in VALUE_CLASSES:
        check_value_example(fault, ex)
    else:
        assert "where" in ex and ex["expected"] != ex["written"]
        if cls.cls in PLACEMENT_WHERE:
            key, allowed = PLACEMENT_WHERE[cls.cls]
            assert ex[key] in allowed
        if cls.cls == "out_of_bounds":
            assert "past the end of the cache" in ex["where"]
        if cls.cls == "swa_padding_read":
            assert "mapped to no token" in ex["where"]
        if fault == "touches_input":
            assert ex["where"].startswith("the key input was modified")


def test_a_model_that_cannot_be_told_apart_says_so():
    """x * (1/s) is one of the divisions not correctly rounded: every byte
    of the reciprocal writer fits both, and the report says so."""
    rep = conform.run(fw.reciprocal, **zoo_claims("reciprocal"))
    assert rep.classes[0].cls == "reciprocal"
    assert rep.classes[0].also == ["division"]
    assert "not told apart here" in "\n".join(rep.table())
    # the approximate division has bytes only it explains: nothing to say
    rep = conform.run(fw.approx_division, **zoo_claims("approx_division"))
    assert rep.classes[0].also == []


def test_the_correct_writer_is_clean():
    rep = conform.run(fw.correct, **dict(ZOO, overflow="both"))
    assert rep.verdict == conform.CLEAN and rep.clean, "\n".join(rep.table())
    assert rep.calls == rep.planned == 64 and rep.bytes_differing == 0
    assert rep.duplicate_tokens > 0       # duplicates are reported, never failed


def test_fp8kv_itself_is_clean():
    rep = conform.run("fp8kv", arrays="numpy")
    assert rep.verdict == conform.CLEAN, "\n".join(rep.table())
    assert set(rep.claims.scales) == {"one", "tensor", "head", "dynamic"}
    assert set(rep.claims.overflows) == {"saturate", "nonsaturating"}
    assert rep.raised_on_out_of_range > 0 and rep.refused == 0


def test_the_same_seed_makes_the_same_report():
    a = conform.run(fw.reciprocal, arrays="numpy", seed=7, formats="e4m3fn")
    b = conform.run(fw.reciprocal, arrays="numpy", seed=7, formats="e4m3fn")
    assert a.as_dict() == b.as_dict()


@pytest.mark.skipif(not has_torch(), reason="torch is not importable")
def test_fp8kv_and_its_drop_ins_are_clean_on_torch_tensors():
    for target, kw in (("fp8kv", {}), ("fp8kv.compat.sglang:launch_reshape_and_cache_flash", {}),
                       ("fp8kv.compat.vllm:reshape_and_cache_flash",
                        dict(scales="one,tensor,head", layouts="NHD,HND"))):
        rep = conform.run(target, arrays="torch", **kw)
        assert rep.verdict == conform.CLEAN, "\n".join(rep.table())


@pytest.mark.skipif(not has_torch(), reason="torch is not importable")
@pytest.mark.parametrize("fault", [None, "reciprocal", "scale_ignored", "padding_written",
                                   "write_past_cache"])
def test_torch_writers(fault):
    """Writers on torch tensors (bf16 tensors, strided views, uint8 caches or
    float8 ones), the division done by torch."""
    rep = conform.run(fw.torch_writer(fault), **dict(zoo_claims(fault), arrays="torch"))
    assert list(rep.class_bytes()) == ([fw.CLASS[fault]] if fault else []), \
        "\n".join(rep.table())


def test_claims_a_convention_cannot_express_are_usage_errors():
    with pytest.raises(conform.UsageError, match="layouts"):
        conform.run("fp8kv.compat.sglang:launch_reshape_and_cache_flash", layouts="HND")
    with pytest.raises(conform.UsageError, match="swa"):
        conform.run("fp8kv.compat.vllm:reshape_and_cache_flash", swa=True)
    with pytest.raises(conform.UsageError, match="formats"):
        conform.run(fw.correct, arrays="numpy", formats="e4m3")
    with pytest.raises(conform.UsageError, match="level"):
        conform.run(fw.correct, arrays="numpy", level="exhaustive")


# ---- the command line ----------------------------------------------------------

def main(*argv):
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(list(argv) + ["--arrays", "numpy"], out, err)
    return status, out.getvalue(), err.getvalue()


def test_exit_0_when_every_byte_matches():
    status, out, err = main("faulty_writers:correct", "--formats", "e5m2")
    assert status == 0, out + err
    assert "CLEAN    faulty_writers:correct" in out
    assert err == ""              # no progress bar: stderr is not a TTY


def test_exit_1_and_the_json_report(tmp_path):
    path = str(tmp_path / "report.json")
    status, out, _ = main("faulty_writers:nan_sign_dropped", "--formats", "e4m3fn", "--json",
                          "--json-out", path)
    assert status == 1
    doc = json.loads(out)
    with open(path) as f:
        assert json.load(f) == doc
    assert doc["exit_status"] == 1 and doc["level"] == "quick"
    (w,) = doc["writers"]
    assert w["verdict"] == "differences" and w["target"] == "faulty_writers:nan_sign_dropped"
    assert w["bytes_differing"] == sum(c["bytes"] for c in w["classes"]) > 0
    (c,) = w["classes"]
    assert c["class"] == "nan" and c["first"]["format"] == "e4m3fn"
    assert int(c["first"]["expected"], 16) & 0x7F == 0x7F     # a NaN code...
    assert int(c["first"]["written"], 16) == 0x7F              # ...written without its sign
    assert w["claims"]["formats"] == ["e4m3fn"]
    assert any(n["class"] == "overflow_first" for n in w["not_observable"])


def test_text_report_has_a_verdict_line_per_writer_then_the_table():
    status, out, _ = main("faulty_writers:correct", "faulty_writers:scale_ignored",
                          "--formats", "e4m3fnuz", "--inputs", "f32")
    assert status == 1
    lines = out.splitlines()
    assert lines[1].startswith("CLEAN    faulty_writers:correct")
    assert lines[2].startswith("DIFFERS  faulty_writers:scale_ignored")
    assert "scale ignored" in lines[2]
    assert "faulty_writers:scale_ignored: differences by class" in out
    assert "first: call" in out


@pytest.mark.parametrize("argv,message", [
    (["nosuchmodule:f"], "cannot import nosuchmodule"),
    (["faulty_writers"], "is not 'module:function'"),
    (["faulty_writers:nope"], "has no attribute"),
    (["faulty_writers:correct@nosuch"], "convention"),
    (["faulty_writers:correct", "--scales", "dynamic"], "scales"),
    (["faulty_writers:correct", "--level", "huge"], ""),
    ([], ""),
])
def test_exit_2_on_usage_errors(argv, message):
    status, out, err = main(*argv)
    assert status == 2 and out == ""
    assert message in err


def test_exit_3_when_a_writer_fails_to_run():
    status, out, _ = main("faulty_writers:raises", "faulty_writers:reciprocal", "--formats",
                          "e4m3fn")
    assert status == 3
    assert "FAILED   faulty_writers:raises" in out and "kernel launch failed" in out
    assert "DIFFERS  faulty_writers:reciprocal" in out


def test_the_module_runs_as_a_program():
    env = dict(os.environ, FP8KV_NO_TORCH="1",
               PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "fp8kv.conform", "faulty_writers:ftz",
                        "--arrays", "numpy", "--formats", "e5m2", "--inputs", "bf16"],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "subnormals flushed" in r.stdout


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_is_drawn_on_a_terminal_only():
    tty, pipe = FakeTerminal(), io.StringIO()
    for stream in (tty, pipe):
        rep = conform.run(fw.correct, arrays="numpy", formats="e4m3fn,e5m2", inputs="bf16",
                          progress=conform.report.Progress(stream))
    assert rep.planned == 2
    assert "] 1/2 faulty_writers:correct" in tty.getvalue()
    assert "[" + "#" * 30 + "] 2/2" in tty.getvalue()
    assert pipe.getvalue() == ""
