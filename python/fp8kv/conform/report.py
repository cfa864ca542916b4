# SPDX-License-Identifier: MIT
"""A writer's result: its verdict, its differences by class (and by call),
and the text and JSON forms of both.  Needs no numpy."""

import sys

from .classes import TITLES

CLEAN, DIFFERENCES, FAILED = "clean", "differences", "failed"


def limits(claims):
    """Classes a writer's claims leave unobservable, and why."""
    out = []
    if "nonsaturating" not in claims.overflows:
        out.append(("overflow_first", "only the saturating mode is claimed, in which "
                    "deciding overflow before rounding gives the contract's bytes"))
    if not set(claims.scales) - {"one"}:
        out.append(("reciprocal", "no scale mode with a scale is claimed"))
        out.append(("scale_ignored", "no scale mode with a scale is claimed"))
    if not claims.swa:
        out.append(("swa_padding_read", "no SWA mapping is claimed"))
    if not claims.out_of_range:
        out.append(("out_of_bounds", "out-of-range slots were left out (the canaries "
                    "still catch other writes outside the cache)"))
    if "f32" not in claims.inputs or not set(claims.scales) & {"tensor", "head"}:
        out.append(("division", "fp32 inputs with a tensor or head scale are not claimed, "
                    "and the midpoint search needs them (bf16 and fp16 patterns still "
                    "catch some)"))
    if "inputs" not in claims.strides:
        out.append(("input_head_stride", "strided inputs are not claimed"))
    if "caches" not in claims.strides:
        out.append(("cache_inner_strides", "padded caches are not claimed"))
    return out


class ClassResult:
    """One cause: its id (cls), plain-words title, the bytes it explains,
    the first example (a dict), the classes every one of its bytes also
    fits (it cannot be told apart from those here), its bytes by model, and
    its bytes by call ({call index: bytes})."""

    def __init__(self, cls, count, first, also, models, calls=None):
        self.cls, self.title, self.bytes = cls, TITLES[cls], count
        self.first, self.also, self.models = first, also, models
        self.calls = calls or {}

    def as_dict(self):
        return {"class": self.cls, "title": self.title, "bytes": self.bytes,
                "first": self.first, "also_fits": list(self.also), "models": self.models,
                "calls": {str(k): v for k, v in self.calls.items()}}


class WriterReport:
    """The result of fp8kv.conform.run() for one writer.

    verdict        "clean" (every byte as the CPU backend writes it, every
                   input untouched), "differences", or "failed" (the writer
                   raised on a call without out-of-range slots, exited, died
                   or timed out; error says how);
    classes        [ClassResult], in table order;
    calls, bytes_compared, bytes_differing, duplicate_tokens,
    raised_on_out_of_range (calls with out-of-range slots where the writer
    raised: allowed; the bytes were compared unless it wrote nothing, which
    refused counts), limits, not_run (calls the arrays could not hold, and
    why), call_descriptions ({call index: description})."""

    def __init__(self, target, convention, arrays, claims, level, seed):
        self.target, self.convention, self.arrays = target, convention, arrays
        self.claims, self.level, self.seed = claims, level, seed
        self.calls = self.planned = 0
        self.bytes_compared = self.bytes_differing = 0
        self.duplicate_tokens = self.duplicate_calls = 0
        self.raised_on_out_of_range, self.refused, self.first_raise = 0, 0, None
        self.classes, self.error = [], None
        self.limits = limits(claims)
        self.not_run, self.call_descriptions = [], {}
        self.isolated, self.timeout = False, None

    @property
    def verdict(self):
        if self.error is not None:
            return FAILED
        return DIFFERENCES if self.bytes_differing else CLEAN

    @property
    def clean(self):
        return self.verdict == CLEAN

    def class_bytes(self):
        """{class id: bytes}."""
        return {c.cls: c.bytes for c in self.classes}

    def per_call(self):
        """[{call, description, bytes, classes: {class: bytes}}] of the calls
        with differences, in call order."""
        calls = {}
        for c in self.classes:
            for i, n in c.calls.items():
                entry = calls.setdefault(i, {"call": i, "description":
                                             self.call_descriptions.get(i, ""),
                                             "bytes": 0, "classes": {}})
                entry["bytes"] += n
                entry["classes"][c.cls] = n
        return [calls[i] for i in sorted(calls)]

    def as_dict(self):
        return {"target": self.target, "convention": self.convention,
                "arrays": self.arrays, "verdict": self.verdict, "level": self.level,
                "seed": self.seed, "claims": self.claims.as_dict(), "calls": self.calls,
                "calls_planned": self.planned, "bytes_compared": self.bytes_compared,
                "bytes_differing": self.bytes_differing,
                "isolated": self.isolated, "timeout_s": self.timeout,
                "duplicates": {"tokens": self.duplicate_tokens, "calls": self.duplicate_calls},
                "raised_on_out_of_range": {"calls": self.raised_on_out_of_range,
                                           "wrote_nothing": self.refused,
                                           "first": self.first_raise},
                "classes": [c.as_dict() for c in self.classes],
                "calls_with_differences": self.per_call(),
                "not_observable": [{"class": c, "title": TITLES[c], "why": why}
                                   for c, why in self.limits],
                "not_run": self.not_run,
                "error": self.error}

    def verdict_line(self):
        head = "%-8s %s (%s convention, %s)" % (
            {CLEAN: "CLEAN", DIFFERENCES: "DIFFERS", FAILED: "FAILED"}[self.verdict],
            self.target, self.convention, self.arrays)
        if self.verdict == FAILED:
            return "%s: failed to run: %s" % (head, self.error["message"].splitlines()[0])
        if self.verdict == CLEAN:
            return "%s: %d calls, all %s bytes as the CPU backend writes them" % (
                head, self.calls, format(self.bytes_compared, ","))
        return "%s: %d calls, %s of %s bytes differ (%s)" % (
            head, self.calls, format(self.bytes_differing, ","),
            format(self.bytes_compared, ","), ", ".join(c.title.split(" (")[0]
                                                       for c in self.classes))

    def table(self):
        """The differences by class, one row each with its first example and
        the calls it came from."""
        lines = []
        if self.classes:
            lines.append("%s: differences by class" % self.target)
            lines.append("  %9s  %s" % ("bytes", "class"))
            for c in self.classes:
                lines.append("  %9s  %s" % (format(c.bytes, ","), c.title))
                lines.append("             first: %s" % example_text(c.first))
                if c.also:
                    lines.append("             every one also fits: %s (not told apart here)"
                                 % "; ".join(TITLES[a] for a in c.also))
                calls = sorted(c.calls)
                if calls:
                    lines.append("             in calls: %s%s" % (
                        ", ".join(map(str, calls[:12])),
                        " and %d more" % (len(calls) - 12) if len(calls) > 12 else ""))
        if self.error is not None:
            lines.append("%s: failed to run on %s" % (self.target, self.error["call"]))
            lines.extend("  " + line for line in self.error["message"].splitlines())
        if self.raised_on_out_of_range:
            lines.append("%s: raised on %d call(s) with out-of-range slots, allowed (%d wrote "
                         "nothing and were not compared; the others' bytes were): %s"
                         % (self.target, self.raised_on_out_of_range, self.refused,
                            self.first_raise))
        if self.duplicate_tokens:
            lines.append("%s: %d tokens shared their slot with another token in %d calls; "
                         "either token's bytes were accepted there (not a failure)"
                         % (self.target, self.duplicate_tokens, self.duplicate_calls))
        for what in self.not_run:
            lines.append("%s: not run: %s" % (self.target, what))
        if self.limits and not self.clean:
            lines.append("%s: not observable with these claims: %s" % (
                self.target, "; ".join("%s (%s)" % (TITLES[c].split(" (")[0], why)
                                       for c, why in self.limits)))
        return lines


def example_text(ex):
    """One example as a line of text."""
    if "input" in ex:
        where = "%s: %s token %d head %d dim %d (slot %d)" % (
            ex["call_description"], ex["cache"], ex["token"], ex["head"], ex["dim"],
            ex["slot"])
    else:
        where = "%s, %s%s" % (ex["call_description"], ex["cache"],
                              "" if ex["cache"].endswith(" input") else " cache")
    if "input" in ex:
        scale = " / s = %s = %s" % (ex["scale"], ex["quotient"]) if ex["scale"] else ""
        return "%s: x = %s [%s %s]%s: expected %s, wrote %s" % (
            where, ex["input"], ex["input_dtype"], ex["input_bits"], scale, ex["expected"],
            ex["written"])
    text = "%s: %s" % (where, ex["where"])
    if "token" in ex:
        text += "; holds the %s row of token %d (%s, slot_mapping %d)" % (
            ex["row_of"], ex["token"], ex["token_status"], ex["token_slot"])
    if "expected" in ex:
        text += "; expected %s, wrote %s" % (ex["expected"], ex["written"])
    return text


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a TTY."""

    def __init__(self, stream=None, width=30):
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, done, total, label):
        if not self.enabled or not total:
            return
        n = self.width * done // total
        self.stream.write("\r[%s%s] %d/%d %s" % ("#" * n, "." * (self.width - n), done, total,
                                                  label[:40].ljust(40)))
        if done == total:
            self.stream.write("\r" + " " * (self.width + 56) + "\r")
        self.stream.flush()
