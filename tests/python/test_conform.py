# SPDX-License-Identifier: MIT
"""fp8kv.conform held to planted faults: every writer of the zoo
(faulty_writers.py) must be reported under its own class and no other, with
a first example whose bytes are the writer's own; the correct writer, fp8kv
itself and its drop-ins must come out clean; writers that cannot run are
failed.  The command line is in test_conform_cli.py."""

import numpy as np
import pytest

import faulty_writers as fw
import fp8kv.conform as conform
import reference
from fp8kv.conform import build, cases, classes, sparse

ZOO = dict(arrays="numpy", scales="one,tensor,head", layouts="NHD,HND", swa=True,
           formats="e5m2fnuz")
NEEDS_NONSATURATING = ("overflow_first", "always_saturate")
VALUE_CLASSES = ("reciprocal", "division", "overflow_first", "format_confusion", "nan", "ftz",
                 "scale_ignored", "negative_zero", "saturation", "inf", "ties_away",
                 "truncation", "ties_odd")


def has_torch():
    try:
        import torch  # noqa: F401
        return True
    except Exception:
        return False


# one format per run keeps the zoo fast; these faults show in another one
FORMAT_OF = {"nan_sign_dropped": "e4m3fn", "sglang_like": "e4m3fn"}


def zoo_claims(fault):
    return dict(ZOO, overflow="nonsaturating" if fault in NEEDS_NONSATURATING else "saturate",
                formats=FORMAT_OF.get(fault, ZOO["formats"]))


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
                                                  ex["format"], sat,
                                                  ex["input_dtype"]).reshape(-1)[0])
    assert ex["expected"] != ex["written"]


PLACEMENT_WHERE = {
    "padding_written": ("token_status", ("padding", "SWA padding")),
    "swa_padding_read": ("token_status", ("padding",)),
    "out_of_bounds": ("token_status", ("out of range",)),
}
INPUT_OF = {"touches_input": "key", "corrupts_slot_mapping": "slot_mapping",
            "corrupts_scale": "k_scale", "corrupts_swa_mapping": "swa_mapping"}


SHAPE_NEEDED = {   # what every call charged with a shape-blind writer's class has
    "slot_low_bits": lambda spec, case: case.final.max() >= 1024,
    "block_size_16": lambda spec, case: spec.shape.block_size != 16,
    "head_dim_64": lambda spec, case: max(spec.shape.dk, spec.shape.dv) > 64,
    "first_512_tokens": lambda spec, case: len(case.slots) > 512,
    "scale_band_ignored": lambda spec, case: any(0.01 <= abs(v) <= 0.3 for v in
                                                 spec.k_scales + spec.v_scales),
    "offset_uint32": lambda spec, case: case.num_slots * spec.shape.heads *
    spec.shape.dk > 2 ** 32,
}


@pytest.mark.parametrize("fault", sorted(fw.CLASS))
def test_each_planted_fault_is_reported_under_its_own_class(fault):
    if fault == "offset_uint32" and not sparse.available():
        pytest.skip("the call past 2^32 bytes needs sparse memory, not available here")
    rep = conform.run(getattr(fw, fault), **zoo_claims(fault))
    assert rep.verdict == conform.DIFFERENCES
    assert list(rep.class_bytes()) == [fw.CLASS[fault]], "\n".join(rep.table())
    cls = rep.classes[0]
    assert cls.bytes == rep.bytes_differing > 0
    assert rep.bytes_compared > 1000000
    assert sum(cls.calls.values()) == cls.bytes        # every byte charged to its call
    assert [c["call"] for c in rep.per_call()] == sorted(cls.calls)
    if fault in SHAPE_NEEDED:         # caught where the shape varies (#35 item 12)
        specs = cases.plan(rep.claims, "quick", cases.BIG)
        for call in cls.calls:
            assert SHAPE_NEEDED[fault](specs[call], build.build(specs[call], 0)), \
                rep.call_descriptions[call]
    ex = cls.first
    if cls.cls in VALUE_CLASSES:
        check_value_example(fault, ex)
        return
    assert "where" in ex and ex["expected"] != ex["written"]
    if cls.cls in classes.READS:
        assert "holds the row the CPU backend writes for the input" in ex["where"]
    elif cls.cls in classes.PLACES:
        assert "its row written at" in ex["where"]
    elif cls.cls == "input_modified":
        assert ex["where"].startswith("the %s input was modified" % INPUT_OF[fault])
    elif cls.cls == "not_written":
        assert "not written (still the poison)" in ex["where"]
    if cls.cls in PLACEMENT_WHERE:
        key, allowed = PLACEMENT_WHERE[cls.cls]
        assert ex[key] in allowed
    if cls.cls == "out_of_bounds":
        assert "past the end of the cache" in ex["where"]
    if cls.cls == "swa_padding_read":
        assert "mapped to no token" in ex["where"]


def test_a_writer_modelled_on_sglangs_triton_kernel_is_named_layout_first():
    """Head stride ignored on the input, slot and head strides ignored in the
    cache, the SWA table read before the padding check: each in its own
    class, from the calls that vary that layout, nothing unexplained."""
    rep = conform.run(fw.sglang_like, **dict(ZOO, layouts="NHD", scales="one,tensor"))
    got = rep.class_bytes()
    assert set(got) == set(fw.CLASSES["sglang_like"]), "\n".join(rep.table())
    for cls in rep.classes:
        for call in cls.calls:
            d = rep.call_descriptions[call]
            if cls.cls == "input_head_stride":
                assert "inputs padded between heads and tokens" in d
            if cls.cls == "cache_inner_strides":
                assert "cache padded between rows" in d
    assert rep.as_dict()["calls_with_differences"]


@pytest.mark.parametrize("fault", ["ties_away", "truncation", "ties_odd"])
def test_rounding_without_a_scale_is_never_blamed_on_division(fault):
    """#33: a rounding mode is its own class; where nothing is divided,
    division is not even an alternative."""
    rep = conform.run(getattr(fw, fault), **dict(ZOO, scales="one"))
    assert list(rep.class_bytes()) == [fault], "\n".join(rep.table())
    assert rep.classes[0].also == []
    assert rep.classes[0].first["scale"] is None
    assert not any("division" in line for line in rep.table() if "not observable" not in line)


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
    rep = conform.run(fw.correct, **dict(ZOO, overflow="both", formats=None))
    assert rep.verdict == conform.CLEAN and rep.clean, "\n".join(rep.table())
    assert rep.calls == rep.planned == 84 and rep.bytes_differing == 0
    assert rep.duplicate_tokens > 0       # duplicates are reported, never failed


def test_fp8kv_itself_is_clean():
    rep = conform.run("fp8kv", arrays="numpy")
    assert rep.verdict == conform.CLEAN, "\n".join(rep.table())
    assert set(rep.claims.scales) == {"one", "tensor", "head", "token_head"}
    assert set(rep.claims.overflows) == {"saturate", "nonsaturating"}
    assert rep.raised_on_out_of_range > 0 and rep.refused == 0


def test_the_same_seed_makes_the_same_report():
    a = conform.run(fw.reciprocal, arrays="numpy", seed=7, formats="e4m3fn")
    b = conform.run(fw.reciprocal, arrays="numpy", seed=7, formats="e4m3fn")
    assert a.as_dict() == b.as_dict()


# ---- writers that cannot run a claimed class -------------------------------------

def test_a_writer_refusing_16_bit_inputs_fails():
    """#35 item 10: bf16 and fp16 reach the writer in calls without
    out-of-range slots, where raising is no longer allowed."""
    rep = conform.run(fw.refuses_16bit, arrays="numpy")
    assert rep.verdict == conform.FAILED
    assert "16-bit inputs are not supported" in rep.error["message"]
    assert "out-of-range" not in rep.error["call"]
    assert " bf16 " in rep.error["call"] or " f16 " in rep.error["call"]


def test_refusing_out_of_range_calls_hides_no_bf16_fault():
    rep = conform.run(fw.refuses_out_of_range, **ZOO)
    assert rep.verdict == conform.DIFFERENCES
    assert list(rep.class_bytes()) == ["ftz"]
    assert rep.refused > 0
    assert all(" bf16 " in rep.call_descriptions[c] for c in rep.classes[0].calls)


def test_a_writer_that_cannot_take_a_format_is_told_to_leave_it_out():
    def no_fnuz(key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale,
                format=None, **options):
        if format.endswith("fnuz"):
            raise NotImplementedError("no fnuz type on this GPU")
        fw.correct(key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale,
                   format=format, **options)
    rep = conform.run(no_fnuz, arrays="numpy", formats="e4m3fn,e4m3fnuz,e5m2")
    assert rep.verdict == conform.FAILED
    assert "first call with format e4m3fnuz" in rep.error["message"]
    assert "leave it out with --formats e4m3fn,e5m2" in rep.error["message"]


def test_a_writer_that_calls_sys_exit_fails_in_this_process_too():
    rep = conform.run(fw.calls_sys_exit, arrays="numpy", formats="e5m2")
    assert rep.verdict == conform.FAILED
    assert "sys.exit(0)" in rep.error["message"] and "during call 0" in rep.error["message"]


def test_a_writer_that_hangs_is_failed_after_the_timeout():
    rep = conform.run(fw.hangs, arrays="numpy", formats="e5m2", timeout=0.5)
    assert rep.verdict == conform.FAILED
    assert "call 0 did not return within 0.5 s" in rep.error["message"]


def test_an_isolated_writer_that_ends_its_process_fails():
    rep = conform.run(fw.calls_os_exit, arrays="numpy", formats="e5m2", isolate=True)
    assert rep.verdict == conform.FAILED
    assert "exited with status 0 during call 0" in rep.error["message"]
    assert rep.isolated


def test_a_writer_a_child_cannot_load_is_a_usage_error():
    import __main__

    def local_writer(*args, **options):
        fw.correct(*args, **options)
    # a function of the harness's __main__: pickled by a name the child lacks
    local_writer.__module__, local_writer.__qualname__ = "__main__", "local_writer"
    __main__.local_writer = local_writer
    try:
        with pytest.raises(conform.UsageError, match="child process"):
            conform.run(__main__.local_writer, arrays="numpy", isolate=True)
    finally:
        del __main__.local_writer


def test_an_isolated_writer_runs_as_in_this_process():
    a = conform.run(fw.nan_sign_dropped, arrays="numpy", formats="e4m3fn", inputs="bf16",
                    isolate=True)
    b = conform.run(fw.nan_sign_dropped, arrays="numpy", formats="e4m3fn", inputs="bf16")
    da, db = a.as_dict(), b.as_dict()
    assert da.pop("isolated") and not db.pop("isolated")
    assert da == db


# ---- torch -------------------------------------------------------------------------

@pytest.mark.skipif(not has_torch(), reason="torch is not importable")
def test_fp8kv_and_its_drop_ins_are_clean_on_torch_tensors():
    for target, kw in (("fp8kv", {}), ("fp8kv.compat.sglang:launch_reshape_and_cache_flash", {}),
                       ("fp8kv.compat.vllm:reshape_and_cache_flash",
                        dict(scales="one,tensor,head", layouts="NHD,HND"))):
        rep = conform.run(target, arrays="torch", formats="e4m3fn,e5m2fnuz", **kw)
        assert rep.verdict == conform.CLEAN, "\n".join(rep.table())


@pytest.mark.skipif(not has_torch(), reason="torch is not importable")
@pytest.mark.parametrize("fault", [None, "reciprocal", "scale_ignored", "padding_written",
                                   "write_past_cache", "input_head_stride"])
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
    with pytest.raises(conform.UsageError, match="seed"):
        conform.run(fw.correct, arrays="numpy", seed=-1)
    with pytest.raises(conform.UsageError, match="scales"):
        conform.run(fw.correct, arrays="numpy", scales="dynamic")
