# SPDX-License-Identifier: MIT
"""python3 -m fp8kv.conform: the command line.

Needs nothing but Python until a run starts: --help always works, and a
missing numpy is one line (exit 2).  Every error the command line can meet
is one line on stderr and an exit status, never a traceback."""

import argparse
import contextlib
import json
import os
import re
import sys

from .conventions import CONVENTIONS
from .errors import HarnessError, UsageError
from .report import CLEAN, FAILED, Progress

EXIT_CLEAN, EXIT_DIFFERENCES, EXIT_USAGE, EXIT_FAILED, EXIT_HARNESS = 0, 1, 2, 3, 4
DEFAULT_TIMEOUT = 300.0

EPILOG = """\
TARGET is "fp8kv" (fp8kv's own writer), "module:function" or
"path/to/file.py:function", optionally followed by "@CONVENTION".

conventions:
%s

arrays (--arrays; the default is a choice, not whether torch is installed):
  torch   the default for the sglang and vllm conventions and on any
          --device but cpu: torch tensors on the device; bf16 inputs as
          torch.bfloat16; caches as torch's float8 dtype of the format
          (torch >= 2.1), else uint8, with the format given as format= (the
          reference convention) or set_fp8_format() in the target's module
          (sglang, vllm).
  numpy   the default otherwise (cpu only): numpy arrays; bf16 inputs as
          uint16 arrays of the bits; caches uint8, with format= (reference)
          or format=/typed() (fp8kv).

Each writer runs in a child process of its own (--no-isolate: in this
one), so that a writer that exits, crashes or hangs is seen; a call that
takes longer than --timeout seconds fails the writer, naming the call.

MLA and block-scaled writers (--mla KIND, --groups FAMILY; in this process):
  --mla ds_mla|fp8|fp8_e5m2   TARGET has vLLM's concat_and_cache_mla signature
                              (kv_c, k_pe, kv_cache, slot_mapping, kv_cache_dtype,
                              scale); its classes are listed in python/README.md
  --groups mxfp8|mxfp4|nvfp4|int8
                              TARGET takes fp8kv.reshape_and_cache_grouped's
                              keywords; conform names the recipe its bytes match
  numpy arrays by default (bf16 as uint16 bits); --arrays torch --device cuda
  passes tensors.

Exit status: 0 every byte of every writer matches the CPU backend and no
input was modified; 1 some differ; 2 usage error (an option, a target, a
claim, a device, or numpy missing); 3 a writer failed to run (raised on a
call without out-of-range slots, exited, died or timed out; if it cannot
take a claimed format or input, leave that out with --formats or --inputs),
or the report could not be written; 4 the harness disagreed with the CPU
backend (a bug of fp8kv.conform, please report it).
""" % "\n".join("  %-9s %s" % (c.name, c.signature) for c in CONVENTIONS.values())


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, "%s: error: %s\n" % (self.prog, message))


def _parser():
    p = _Parser(
        prog="python3 -m fp8kv.conform", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Holds KV-cache writers (reshape_and_cache) to fp8kv's CPU golden path, "
        "byte for byte, and names the cause of every difference.", epilog=EPILOG)
    p.add_argument("targets", nargs="+", metavar="TARGET")
    p.add_argument("--mla", choices=("ds_mla", "fp8", "fp8_e5m2"),
                   help="referee MLA writers (vLLM's concat_and_cache_mla signature)")
    p.add_argument("--groups", choices=("mxfp8", "mxfp4", "nvfp4", "int8"),
                   help="referee block-scaled writers: which recipe their bytes match")
    p.add_argument("--convention", choices=sorted(CONVENTIONS),
                   help="calling convention of every TARGET without an @suffix (default: "
                   "by function name: launch_reshape_and_cache_flash is sglang, "
                   "reshape_and_cache_flash vllm, else reference)")
    p.add_argument("--level", choices=("quick", "full"), default="quick",
                   help="quick: seconds; full: more scales, modes and layouts (minutes)")
    p.add_argument("--seed", default="0", help="an integer >= 0; the same seed makes the "
                   "same calls (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (torch arrays)")
    p.add_argument("--arrays", choices=("torch", "numpy"),
                   help="array type given to the writer (default: see arrays below)")
    p.add_argument("--formats", help="comma-separated FP8 formats the writer claims")
    p.add_argument("--inputs", help="input dtypes claimed: f32,f16,bf16")
    p.add_argument("--scales", help="scale modes claimed: one,tensor,head,token_head")
    p.add_argument("--layouts", help="cache layouts claimed: NHD,HND")
    p.add_argument("--overflow", choices=("saturate", "nonsaturating", "both"),
                   help="overflow modes claimed")
    p.add_argument("--strides", help="strided arrays claimed: inputs (views into larger "
                   "buffers), caches (padded between blocks or rows), both (the default: "
                   "inputs,caches), or none")
    p.add_argument("--same-dims", dest="kv_dims_differ", action="store_const", const=False,
                   help="key and value have the same head dim (default for sglang, vllm)")
    p.add_argument("--differing-dims", dest="kv_dims_differ", action="store_const",
                   const=True, help="key and value head dims may differ (default for "
                   "reference, fp8kv)")
    p.add_argument("--swa", dest="swa", action="store_const", const=True,
                   help="the writer takes a second (SWA) mapping")
    p.add_argument("--no-swa", dest="swa", action="store_const", const=False)
    p.add_argument("--no-out-of-range", dest="out_of_range", action="store_false",
                   help="leave out-of-range slots out (for writers known to crash on them)")
    p.add_argument("--timeout", default=str(DEFAULT_TIMEOUT), metavar="SECONDS",
                   help="per call; a writer slower than this fails (default %g)"
                   % DEFAULT_TIMEOUT)
    p.add_argument("--no-isolate", dest="isolate", action="store_false",
                   help="run writers in this process (their exit ends the run; the timeout "
                   "interrupts Python code only)")
    p.add_argument("--json", action="store_true", help="write the report as JSON")
    p.add_argument("--json-out", metavar="FILE",
                   help="also write the JSON report to FILE (with the text on stdout)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is drawn only when stderr is a TTY)")
    return p


def _claims_kwargs(args):
    return dict(formats=args.formats, inputs=args.inputs, scales=args.scales,
                layouts=args.layouts, overflow=args.overflow, swa=args.swa,
                out_of_range=args.out_of_range, strides=args.strides,
                kv_dims_differ=args.kv_dims_differ)


def _options(args):
    """Checks the options that need no import; UsageError."""
    if not re.fullmatch(r"[0-9]+", args.seed.strip()) or int(args.seed) >= 2 ** 63:
        raise UsageError("seed: must be an integer from 0 to 2^63 - 1, not %r" % args.seed)
    args.seed = int(args.seed)
    try:
        args.timeout = float(args.timeout)
    except ValueError:
        args.timeout = float("nan")
    if not args.timeout > 0 or args.timeout == float("inf"):
        raise UsageError("timeout: must be a positive number of seconds")
    if not re.fullmatch(r"cpu|cuda(:[0-9]+)?", args.device):
        raise UsageError("device: %r is not cpu or cuda[:N]" % args.device)


def _check_json_out(path):
    """A file the report can be written to, checked before the run and left
    as it was (a run that ends in a usage error writes no report)."""
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory")
        if os.path.exists(path):
            if not os.access(path, os.W_OK):
                raise PermissionError(13, "Permission denied")
        else:
            open(path, "w").close()
            os.unlink(path)
    except OSError as e:
        raise UsageError("json-out: cannot write %s: %s" % (path, e.strerror or e)) from None


def _write_report(args, reports, status, stdout, json_out):
    doc = {"tool": "fp8kv.conform", "level": args.level, "seed": args.seed,
           "device": args.device, "exit_status": status,
           "writers": [r.as_dict() for r in reports]}
    if json_out is not None:
        try:
            with open(json_out, "w") as f:
                json.dump(doc, f, indent=2)
                f.write("\n")
        except OSError as e:
            e.filename = json_out
            raise
    if args.json:
        json.dump(doc, stdout, indent=2)
        stdout.write("\n")
    else:
        stdout.write("fp8kv.conform: level %s, seed %d, device %s\n"
                     % (args.level, args.seed, args.device))
        for r in reports:
            stdout.write(r.verdict_line() + "\n")
        for r in reports:
            lines = r.table()
            if lines:
                stdout.write("\n" + "\n".join(lines) + "\n")
    stdout.flush()


def _silence_stdout(stdout):
    """After a failed write to the real stdout, point its descriptor at
    /dev/null, so that the interpreter's last flush fails silently."""
    if stdout is sys.stdout:
        try:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, sys.stdout.fileno())
            os.close(fd)
        except Exception:
            pass


def main(argv=None, stdout=None, stderr=None):
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = _parser().parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    try:
        import numpy  # noqa: F401  (a clear line now, not a traceback later)
    except Exception as e:
        stderr.write("fp8kv.conform: needs numpy, which this interpreter cannot import "
                     "(%s); install it (Debian: python3-numpy)\n" % e)
        return EXIT_USAGE
    if args.mla or args.groups:
        return _records_main(args, stdout, stderr)
    from . import runner
    json_out = None
    try:   # every option, target and claim checked before any runs
        _options(args)
        for t in args.targets:
            conv = runner.convention_of(t, args.convention)
            runner.claims_for(conv, **_claims_kwargs(args))
        if args.json_out:
            _check_json_out(args.json_out)
            json_out = args.json_out
    except UsageError as e:
        stderr.write("fp8kv.conform: %s\n" % e)
        return EXIT_USAGE
    progress = None if args.no_progress else Progress(stderr)
    reports = []
    for t in args.targets:
        try:
            reports.append(runner.run(
                t, convention=args.convention, level=args.level, seed=args.seed,
                device=args.device, arrays=args.arrays, progress=progress,
                isolate=args.isolate, timeout=args.timeout, **_claims_kwargs(args)))
        except UsageError as e:
            stderr.write("fp8kv.conform: %s\n" % e)
            return EXIT_USAGE
        except HarnessError as e:
            stderr.write("fp8kv.conform: internal error: %s\n" % e)
            return EXIT_HARNESS
    status = (EXIT_FAILED if any(r.verdict == FAILED for r in reports) else
              EXIT_CLEAN if all(r.verdict == CLEAN for r in reports) else EXIT_DIFFERENCES)
    try:
        _write_report(args, reports, status, stdout, json_out)
    except OSError as e:
        where = getattr(e, "filename", None) or "stdout"
        stderr.write("fp8kv.conform: cannot write the report to %s: %s\n"
                     % (where, e.strerror or e))
        if where == "stdout":
            _silence_stdout(stdout)
        return EXIT_FAILED
    return status


def _records_main(args, stdout, stderr):
    """--mla and --groups: each TARGET in this process, one report each."""
    from . import groups, mla, records
    if args.mla and args.groups:
        stderr.write("fp8kv.conform: --mla and --groups: give one\n")
        return EXIT_USAGE
    reports = []
    try:
        _options(args)
        if args.json_out:
            _check_json_out(args.json_out)
        loaded = [records.load(t, "mla" if args.mla else "groups") for t in args.targets]
        for fn, label in loaded:
            if args.mla:
                reports.append(mla.run(fn, args.mla, seed=args.seed, target=label,
                                       arrays=args.arrays or "numpy", device=args.device))
            else:
                reports.append(groups.run(fn, args.groups, seed=args.seed, target=label,
                                          arrays=args.arrays or "numpy", device=args.device))
    except UsageError as e:
        stderr.write("fp8kv.conform: %s\n" % e)
        return EXIT_USAGE
    except HarnessError as e:
        stderr.write("fp8kv.conform: internal error: %s\n" % e)
        return EXIT_HARNESS
    status = (EXIT_FAILED if any(r.verdict == FAILED for r in reports) else
              EXIT_CLEAN if all(r.verdict == CLEAN for r in reports) else EXIT_DIFFERENCES)
    doc = {"tool": "fp8kv.conform", "mode": "mla" if args.mla else "groups",
           "kind": args.mla or args.groups, "seed": args.seed, "device": args.device,
           "exit_status": status, "writers": [r.as_dict() for r in reports]}
    try:
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump(doc, f, indent=2)
                f.write("\n")
        if args.json:
            json.dump(doc, stdout, indent=2)
            stdout.write("\n")
        else:
            for r in reports:
                stdout.write(r.verdict_line() + "\n")
            for r in reports:
                lines = r.table()
                if lines:
                    stdout.write("\n" + "\n".join(lines) + "\n")
        stdout.flush()
    except OSError as e:
        stderr.write("fp8kv.conform: cannot write the report: %s\n" % (e.strerror or e))
        return EXIT_FAILED
    return status
