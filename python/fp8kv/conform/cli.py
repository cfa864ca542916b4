# SPDX-License-Identifier: MIT
"""python3 -m fp8kv.conform: the command line."""

import argparse
import json
import sys

from . import claims_for, run
from .guard import HarnessError
from .report import CLEAN, FAILED, Progress
from .targets import CONVENTIONS, UsageError, arrays_for, resolve

EXIT_CLEAN, EXIT_DIFFERENCES, EXIT_USAGE, EXIT_FAILED, EXIT_HARNESS = 0, 1, 2, 3, 4

EPILOG = """\
TARGET is "fp8kv" (fp8kv's own writer), "module:function" or
"path/to/file.py:function", optionally followed by "@CONVENTION".

conventions:
%s

Exit status: 0 every byte of every writer matches the CPU backend; 1 some
differ; 2 usage error; 3 a writer failed to run (raised on a call without
out-of-range slots); 4 the harness disagreed with the CPU backend (a bug of
fp8kv.conform, please report it).
""" % "\n".join("  %-9s %s" % (c.name, c.signature) for c in CONVENTIONS.values())


def _parser():
    p = argparse.ArgumentParser(
        prog="python3 -m fp8kv.conform", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Holds KV-cache writers (reshape_and_cache) to fp8kv's CPU golden path, "
        "byte for byte, and names the cause of every difference.", epilog=EPILOG)
    p.add_argument("targets", nargs="+", metavar="TARGET")
    p.add_argument("--convention", choices=sorted(CONVENTIONS),
                   help="calling convention of every TARGET without an @suffix (default: "
                   "by function name: launch_reshape_and_cache_flash is sglang, "
                   "reshape_and_cache_flash vllm, else reference)")
    p.add_argument("--level", choices=("quick", "full"), default="quick",
                   help="quick: seconds; full: more scales, modes and layouts (minutes)")
    p.add_argument("--seed", type=int, default=0, help="the same seed makes the same calls")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (torch arrays)")
    p.add_argument("--arrays", choices=("torch", "numpy"),
                   help="array type given to the writer (default: torch where importable)")
    p.add_argument("--formats", help="comma-separated FP8 formats the writer claims")
    p.add_argument("--inputs", help="input dtypes claimed: f32,f16,bf16")
    p.add_argument("--scales", help="scale modes claimed: one,tensor,head,dynamic")
    p.add_argument("--layouts", help="cache layouts claimed: NHD,HND")
    p.add_argument("--overflow", choices=("saturate", "nonsaturating", "both"),
                   help="overflow modes claimed")
    p.add_argument("--swa", dest="swa", action="store_const", const=True,
                   help="the writer takes a second (SWA) mapping")
    p.add_argument("--no-swa", dest="swa", action="store_const", const=False)
    p.add_argument("--no-out-of-range", dest="out_of_range", action="store_false",
                   help="leave out-of-range slots out (for writers known to crash on them)")
    p.add_argument("--json", action="store_true", help="write the report as JSON")
    p.add_argument("--json-out", metavar="FILE",
                   help="also write the JSON report to FILE (with the text on stdout)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is drawn only when stderr is a TTY)")
    return p


def _claims_kwargs(args):
    return dict(formats=args.formats, inputs=args.inputs, scales=args.scales,
                layouts=args.layouts, overflow=args.overflow, swa=args.swa,
                out_of_range=args.out_of_range)


def main(argv=None, stdout=None, stderr=None):
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    try:   # every target and claim checked before any runs
        for t in args.targets:
            _, conv, _ = resolve(t, args.convention)
            claims_for(conv, **_claims_kwargs(args))
        arrays_for(args.arrays, args.device)
    except UsageError as e:
        stderr.write("fp8kv.conform: %s\n" % e)
        return EXIT_USAGE
    progress = None if args.no_progress else Progress(stderr)
    reports = []
    for t in args.targets:
        try:
            reports.append(run(t, convention=args.convention, level=args.level, seed=args.seed,
                               device=args.device, arrays=args.arrays, progress=progress,
                               **_claims_kwargs(args)))
        except UsageError as e:
            stderr.write("fp8kv.conform: %s\n" % e)
            return EXIT_USAGE
        except HarnessError as e:
            stderr.write("fp8kv.conform: internal error: %s\n" % e)
            return EXIT_HARNESS
    status = (EXIT_FAILED if any(r.verdict == FAILED for r in reports) else
              EXIT_CLEAN if all(r.verdict == CLEAN for r in reports) else EXIT_DIFFERENCES)
    doc = {"tool": "fp8kv.conform", "level": args.level, "seed": args.seed,
           "device": args.device, "exit_status": status,
           "writers": [r.as_dict() for r in reports]}
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
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
    return status
