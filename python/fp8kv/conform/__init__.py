# SPDX-License-Identifier: MIT
"""fp8kv.conform: holds any engine's KV-cache writer to fp8kv's CPU golden path.

    python3 -m fp8kv.conform TARGET [TARGET...] [--convention C] [--level quick|full]
    report = fp8kv.conform.run(writer, convention="sglang", level="quick")

It runs the writer over a matrix of calls (every bf16 and fp16 pattern;
fp32 values near every FP8 rounding midpoint times many scales; zeros,
subnormals, Inf and NaNs; padding, SWA mappings, out-of-range and duplicate
slots; strided inputs; NHD and HND caches; the formats, scale modes and
overflow modes the writer claims), gives it caches poisoned and surrounded
by canaries, diffs every byte against the CPU backend (fp8kv.golden), and
names the cause of every difference: see fp8kv.conform.classify for the
classes and how they are told apart.

A TARGET is "fp8kv" (fp8kv's own writer, which must come out clean),
"module:function" or "path/file.py:function", optionally "@convention";
the conventions are in fp8kv.conform.targets.
"""

import functools

import numpy as np

from . import cases, classify, guard, report, targets
from .cases import OUT_OF_RANGE, Claims
from .report import CLEAN, DIFFERENCES, FAILED, WriterReport
from .targets import CONVENTIONS, UsageError

__all__ = ["run", "Claims", "WriterReport", "UsageError", "CONVENTIONS", "CLEAN",
           "DIFFERENCES", "FAILED"]


def _choose(name, given, supported, default):
    if given is None:
        return tuple(default)
    if isinstance(given, str):
        given = [g for g in given.split(",") if g]
    given = tuple(given)
    bad = [g for g in given if g not in supported]
    if bad or not given:
        raise UsageError("%s: %s not supported by this convention (it takes %s)"
                         % (name, ", ".join(map(repr, bad)) or "nothing given",
                            ", ".join(supported)))
    return given


def claims_for(convention, formats=None, inputs=None, scales=None, layouts=None,
               overflow=None, swa=None, out_of_range=True):
    """The Claims of a writer of a convention: its defaults, narrowed or
    widened (within what the convention can express) by the arguments."""
    conv = CONVENTIONS[convention]
    sup, dft = conv.supports, conv.defaults
    if overflow == "both":
        overflow = ("saturate", "nonsaturating")
    if swa and not conv.swa:
        raise UsageError("swa: the %s convention has no SWA mapping" % convention)
    return Claims(_choose("formats", formats, sup["formats"], dft["formats"]),
                  _choose("inputs", inputs, sup["inputs"], dft["inputs"]),
                  _choose("scales", scales, sup["scales"], dft["scales"]),
                  _choose("layouts", layouts, sup["layouts"], dft["layouts"]),
                  _choose("overflow", overflow, sup["overflows"], dft["overflows"]),
                  conv.swa_default if swa is None else swa, out_of_range,
                  index_types=("i64", "i32") if convention == "fp8kv" else ("i64",))


def _check_formats(fn, convention, arrays, claims):
    if convention not in ("sglang", "vllm") or arrays.name != "torch":
        if convention in ("sglang", "vllm"):
            raise UsageError("arrays: the %s convention takes torch tensors" % convention)
        return
    missing = [f for f in claims.formats if not arrays.has_float8(f)]
    if missing and not hasattr(targets.sys.modules.get(fn.__module__), "set_fp8_format"):
        raise UsageError("formats: this torch has no float8 dtype for %s, and the target's "
                         "module has no set_fp8_format() to state the format of a uint8 "
                         "cache; narrow --formats" % ", ".join(missing))


def run(writer, *, convention=None, level="quick", seed=0, device="cpu", arrays=None,
        formats=None, inputs=None, scales=None, layouts=None, overflow=None, swa=None,
        out_of_range=True, progress=None):
    """Runs a writer over the matrix of a level and returns a WriterReport.

    writer        a callable, "fp8kv", or "module:function[@convention]";
    convention    "reference", "sglang", "vllm" or "fp8kv" (default: from
                  the suffix or the function's name, else "reference");
    level         "quick" (seconds) or "full" (minutes);
    seed          the same seed gives the same calls;
    device, arrays  "cpu" or "cuda[:N]"; "torch" or "numpy" (default torch
                  where importable);
    formats, inputs, scales, layouts, overflow ("saturate",
    "nonsaturating" or "both"), swa, out_of_range
                  what the writer claims (lists or comma-separated strings);
                  None takes the convention's defaults;
    progress      None, or a callable(done, total, label).
    Raises UsageError for targets, conventions and claims that cannot run."""
    if level not in ("quick", "full"):
        raise UsageError("level: must be 'quick' or 'full', not %r" % (level,))
    fn, conv, label = targets.resolve(writer, convention)
    claims = claims_for(conv, formats, inputs, scales, layouts, overflow, swa, out_of_range)
    arr = targets.arrays_for(arrays, device)
    _check_formats(fn, conv, arr, claims)
    specs = cases.plan(claims, level)
    rep = WriterReport(label, conv, "%s arrays on %s" % (arr.name, arr.device), claims,
                       level, seed)
    rep.planned = len(specs)
    tally = classify.Tally()
    try:
        for spec in specs:
            if not _one_call(fn, conv, arr, spec, seed, tally, rep):
                break
            if progress is not None:
                progress(spec.index + 1, len(specs), label)
    finally:
        targets.finish(fn, conv)
    rep.bytes_compared, rep.bytes_differing = tally.bytes_compared, tally.bytes_differing
    rep.classes = [report.ClassResult(*c) for c in classify.resolve(tally)]
    return rep


@functools.lru_cache(maxsize=128)
def _prepared(spec, seed):
    """A call's data and expected buffers (under 1.5 MB), kept for the next
    writer run over the same call in this process: they depend on nothing
    else, and nothing changes them."""
    case = cases.build(spec, seed)
    return case, guard.expect(case, np.random.default_rng([seed, spec.index, 1]))


def _trace(e):
    import traceback
    return "".join(traceback.format_exception(type(e), e, e.__traceback__)[-3:]).rstrip()


def _hint(e, conv):
    if conv == "reference" and isinstance(e, TypeError) and "keyword" in str(e):
        return (" (the reference convention passes format= for uint8 caches, swa_mapping= "
                "with --swa and overflow= in the nonsaturating mode: take them, or narrow "
                "the claims, or give float8 caches: torch >= 2.1 arrays)")
    return ""


def _one_call(fn, conv, arr, spec, seed, tally, rep):
    """One call of the matrix; False when the writer failed to run."""
    case, exp = _prepared(spec, seed)
    call = targets.make_call(case, exp, arr, np.random.default_rng([seed, spec.index, 2]))
    try:
        targets.invoke(fn, conv, call)
    except Exception as e:          # the writer's own failure, reported
        message = "%s: %s" % (type(e).__name__, e)
        if not (case.status == OUT_OF_RANGE).any():
            rep.error = {"call": case.describe(), "type": type(e).__name__,
                         "message": message + _hint(e, conv) + "\n" + _trace(e)}
            return False
        rep.raised_on_out_of_range += 1
        rep.first_raise = rep.first_raise or message.splitlines()[0]
        if all(np.array_equal(arr.to_host(buf).reshape(-1), exp.template[name])
               for name, buf in call.buffers.items()):
            rep.refused += 1          # refused the call: nothing written, nothing to compare
            return True
    rep.calls += 1
    if case.duplicate_tokens:
        rep.duplicate_tokens += case.duplicate_tokens
        rep.duplicate_calls += 1
    analysis = classify.CallAnalysis(case, exp, tally)
    for name, buf in call.buffers.items():
        analysis.cache(name, arr.to_host(buf).reshape(-1))
    for name in ("key", "value"):
        before = getattr(case, name)
        after = np.ascontiguousarray(arr.to_host(getattr(call, name))).view(np.uint8)
        if not np.array_equal(after, before.view(np.uint8)):
            analysis.inputs_changed(name, before.view(np.uint8).reshape(-1), after.reshape(-1))
    return True
