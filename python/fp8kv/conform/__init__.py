# SPDX-License-Identifier: MIT
"""fp8kv.conform: holds any engine's KV-cache writer to fp8kv's CPU golden path.

    python3 -m fp8kv.conform TARGET [TARGET...] [--convention C] [--level quick|full]
    report = fp8kv.conform.run(writer, convention="sglang", level="quick")

It runs the writer over a matrix of calls (every bf16 and fp16 pattern;
fp32 values near every FP8 rounding midpoint times scales across
magnitudes; zeros, subnormals, Inf and NaNs; padding, SWA mappings,
out-of-range and duplicate slots; heads, head dims and block sizes that
vary, padded inputs and caches, slots past 2^16 and 2^31; NHD and HND
caches; the formats, scale modes and overflow modes the writer claims),
gives it caches poisoned and surrounded by canaries, diffs every byte
against the CPU backend (fp8kv.golden) and every input against what it was,
and names the cause of every difference: see fp8kv.conform.classify for the
classes and how they are told apart.

A TARGET is "fp8kv" (fp8kv's own writer, which must come out clean),
"module:function" or "path/file.py:function", optionally "@convention";
the conventions are in fp8kv.conform.targets.

MLA writers (vLLM's concat_and_cache_mla signature) and block-scaled
writers (fp8kv.reshape_and_cache_grouped's keywords) are refereed by
fp8kv.conform.mla.run(writer, kind) and fp8kv.conform.groups.run(writer,
family), or --mla KIND / --groups FAMILY on the command line: the latter
says which engine recipe a writer's bytes match (fp8kv.conform.catalogue).

Importing this package needs nothing but Python: numpy (which running
needs) is imported when a run starts, so that `--help` always works.
"""

from .report import CLEAN, DIFFERENCES, FAILED  # noqa: F401  (no numpy)

__all__ = ["run", "Claims", "WriterReport", "UsageError", "CONVENTIONS", "CLEAN",
           "DIFFERENCES", "FAILED", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 300.0


def __getattr__(name):
    """The names that need numpy, imported on first use."""
    if name in ("run", "claims_for"):
        from . import runner
        return getattr(runner, name)
    if name == "Claims":
        from .cases import Claims
        return Claims
    if name == "WriterReport":
        from .report import WriterReport
        return WriterReport
    if name in ("UsageError", "CONVENTIONS"):
        from . import targets
        return getattr(targets, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
