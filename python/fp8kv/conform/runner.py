# SPDX-License-Identifier: MIT
"""fp8kv.conform.run(): a writer over the matrix of a level, into a report."""

import functools
import math

import numpy as np

from . import build, cases, classify, guard, report, targets
from .cases import BIG, EXTRAS, OUT_OF_RANGE, Claims
from .errors import HarnessError, UsageError
from .executor import DEFAULT_TIMEOUT, ChildExecutor, LocalExecutor, Request
from .report import WriterReport
from .targets import CONVENTIONS

CLAIM_FIELDS = (("formats", "fmt", "--formats"), ("inputs", "in_dtype", "--inputs"),
                ("scales", "mode", "--scales"), ("layouts", "layout", "--layouts"),
                ("overflows", "overflow", "--overflow"))


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
               overflow=None, swa=None, out_of_range=True, strides=None,
               kv_dims_differ=None):
    """The Claims of a writer of a convention: its defaults, narrowed or
    widened (within what the convention can express) by the arguments."""
    conv = CONVENTIONS[convention]
    sup, dft = conv.supports, conv.defaults
    if overflow == "both":
        overflow = ("saturate", "nonsaturating")
    if swa and not conv.swa:
        raise UsageError("swa: the %s convention has no SWA mapping" % convention)
    if strides in ("none", ()):
        strides = ()
    else:
        strides = _choose("strides", strides, sup["strides"], dft["strides"])
    return Claims(_choose("formats", formats, sup["formats"], dft["formats"]),
                  _choose("inputs", inputs, sup["inputs"], dft["inputs"]),
                  _choose("scales", scales, sup["scales"], dft["scales"]),
                  _choose("layouts", layouts, sup["layouts"], dft["layouts"]),
                  _choose("overflow", overflow, sup["overflows"], dft["overflows"]),
                  conv.swa_default if swa is None else swa, out_of_range,
                  index_types=("i64", "i32") if convention == "fp8kv" else ("i64",),
                  strides=strides,
                  kv_dims_differ=conv.kv_dims_differ if kv_dims_differ is None
                  else kv_dims_differ)


def convention_of(writer, convention):
    """The convention a writer runs under, without importing it."""
    if callable(writer):
        return targets.resolve(writer, convention)[1]
    target, conv = targets.parse(writer, convention)
    if conv:
        return conv
    if target == "fp8kv":
        return "fp8kv"
    return {"launch_reshape_and_cache_flash": "sglang",
            "reshape_and_cache_flash": "vllm"}.get(target.rpartition(":")[2].split(".")[-1],
                                                   "reference")


def _check_formats(conv, info, claims):
    if conv not in ("sglang", "vllm"):
        return
    missing = [f for f in claims.formats if not info["float8"][f]]
    if missing and not info["has_setter"]:
        raise UsageError("formats: this torch has no float8 dtype for %s, and the target's "
                         "module has no set_fp8_format() to state the format of a uint8 "
                         "cache; narrow --formats" % ", ".join(missing))


def _big_calls(info, claims):
    """(the BIG kinds the arrays can hold, [why each other is not run])."""
    ok, why = [], []
    for kind, shape, _ in EXTRAS:
        if kind not in BIG:
            continue
        need = 2 * build.extra_bytes(kind, shape)
        what = {"huge": "the call with slots past 2^31",
                "offset": "the call with byte offsets past 2^32"}[kind]
        if info["sparse"] or need <= info["dense_limit"]:
            ok.append(kind)
        else:
            why.append("%s (its caches take %.1f GiB, and %s)" % (
                what, need / 2 ** 30, "this device has less free memory" if
                info["device"] != "cpu" else "sparse memory is not available here"))
    return ok, why


def run(writer, *, convention=None, level="quick", seed=0, device="cpu", arrays=None,
        formats=None, inputs=None, scales=None, layouts=None, overflow=None, swa=None,
        out_of_range=True, strides=None, kv_dims_differ=None, isolate=False,
        timeout=DEFAULT_TIMEOUT, progress=None):
    """Runs a writer over the matrix of a level and returns a WriterReport.

    writer        a callable, "fp8kv", or "module:function[@convention]";
    convention    "reference", "sglang", "vllm" or "fp8kv" (default: from
                  the suffix or the function's name, else "reference");
    level         "quick" (seconds) or "full" (minutes);
    seed          an int >= 0; the same seed gives the same calls;
    device        "cpu" or "cuda[:N]";
    arrays        "torch" or "numpy"; default: torch for the sglang and vllm
                  conventions and on a GPU, numpy otherwise;
    formats, inputs, scales, layouts, overflow ("saturate",
    "nonsaturating" or "both"), swa, out_of_range, strides ("inputs",
    "caches", or "none"), kv_dims_differ
                  what the writer claims (lists or comma-separated strings);
                  None takes the convention's defaults;
    isolate       run the writer in a child process, where its exit, crash
                  or hang is seen (python3 -m fp8kv.conform always does);
    timeout       seconds per call before the writer is failed (in this
                  process: Python code only, see fp8kv.conform.executor);
    progress      None, or a callable(done, total, label).
    Raises UsageError for targets, conventions, claims and options that
    cannot run, HarnessError for a disagreement of the harness with the CPU
    backend."""
    if level not in ("quick", "full"):
        raise UsageError("level: must be 'quick' or 'full', not %r" % (level,))
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 63:
        raise UsageError("seed: must be an integer from 0 to 2^63 - 1, not %r" % (seed,))
    if not isinstance(timeout, (int, float)) or not timeout > 0 or math.isinf(timeout):
        raise UsageError("timeout: must be a positive number of seconds, not %r" % (timeout,))
    conv = convention_of(writer, convention)
    claims = claims_for(conv, formats, inputs, scales, layouts, overflow, swa, out_of_range,
                        strides, kv_dims_differ)
    ex = (ChildExecutor if isolate else LocalExecutor)(writer, conv, arrays, device)
    try:
        # a target's import may take long (torch, Triton): the start has
        # the default timeout at least
        info = ex.start(max(timeout, DEFAULT_TIMEOUT)) if isolate else ex.start()
        _check_formats(conv, info, claims)
        big, not_run = _big_calls(info, claims)
        specs = cases.plan(claims, level, big)
        rep = WriterReport(info["label"], conv, "%s arrays on %s" % (info["arrays"],
                                                                      info["device"]),
                           claims, level, seed)
        rep.planned, rep.not_run = len(specs), not_run
        rep.isolated, rep.timeout = bool(isolate), float(timeout)
        tally = classify.Tally()
        for spec in specs:
            if not _one_call(ex, info, specs, spec, seed, tally, rep, timeout):
                break
            if progress is not None:
                progress(spec.index + 1, len(specs), rep.target)
    finally:
        ex.close()
    rep.bytes_compared, rep.bytes_differing = tally.bytes_compared, tally.bytes_differing
    rep.classes = [report.ClassResult(*c) for c in classify.resolve(tally)]
    rep.call_descriptions = dict(tally.descriptions)
    return rep


@functools.lru_cache(maxsize=64)
def _prepared(spec, seed):
    """A call's data and expected buffers, kept for the next writer run over
    the same call in this process: they depend on nothing else, and nothing
    changes them."""
    case = build.build(spec, seed)
    return case, guard.expect(case, np.random.default_rng([seed, spec.index, 1]))


def _hint(e, conv, specs, spec):
    """Why a call a writer failed on may be one it cannot take, and the
    option that leaves it out: the claims whose values this call is the
    first to take, when calls before it ran."""
    out = []
    if conv == "reference" and e.get("type") == "TypeError" and "keyword" in e["message"]:
        out.append("the reference convention passes format= for uint8 caches, swa_mapping= "
                   "with --swa and overflow= in the nonsaturating mode: take them, or narrow "
                   "the claims, or give float8 caches (torch >= 2.1 arrays)")
    for claim, field, option in CLAIM_FIELDS if spec.index else ():    # past call 0
        value = getattr(spec, field)
        first = next(s for s in specs if getattr(s, field) == value)
        values = sorted({getattr(s, field) for s in specs})
        if first.index == spec.index and len(values) > 1:
            out.append("this is the first call with %s %s: if the writer does not take it, "
                       "leave it out with %s %s" % (claim.rstrip("s"), value, option,
                                                    ",".join(v for v in values if v != value)))
    return "".join("\n(%s)" % h for h in out)


def _fail(rep, case, error, message):
    rep.error = {"call": case.describe(), "type": error.get("type", "error"),
                 "message": message + ("\n" + error["trace"] if error.get("trace") else "")}
    return False


def _one_call(ex, info, specs, spec, seed, tally, rep, timeout):
    """One call of the matrix; False when the writer failed to run."""
    case, exp = _prepared(spec, seed)
    sparse = spec.extra in BIG and info["sparse"]
    res = ex.call(Request(case, exp, sparse), timeout)
    if res.status == "timeout":
        return _fail(rep, case, {"type": "timeout"}, "call %d did not return within %g s (the "
                     "per-call timeout; --timeout sets it)" % (spec.index, timeout))
    if res.status in ("died", "exit"):
        return _fail(rep, case, res.error, "%s during call %d" % (res.error["message"],
                                                                  spec.index))
    if res.status == "harness":
        raise HarnessError("%s: %s" % (case.describe(), res.error["message"]))
    if res.status == "raised":
        oor = bool((case.status == OUT_OF_RANGE).any())
        if not oor or res.changes is None:
            return _fail(rep, case, res.error, res.error["message"] +
                         _hint(res.error, rep.convention, specs, spec))
        rep.raised_on_out_of_range += 1
        rep.first_raise = rep.first_raise or res.error["message"].splitlines()[0]
        if not any(len(p) for p, _ in res.changes.values()):
            rep.refused += 1     # refused the call: nothing written, nothing to compare
            return True
    rep.calls += 1
    if case.duplicate_tokens:
        rep.duplicate_tokens += case.duplicate_tokens
        rep.duplicate_calls += 1
    analysis = classify.CallAnalysis(case, exp, tally)
    for name, changes in res.changes.items():
        analysis.cache(name, changes)
    if res.modified:
        analysis.inputs_modified(res.modified)
    return True
