#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""On a GPU machine: fp8kv.conform's MLA and block-scaled referees over
torch writers on CUDA tensors, one JSON report per mode, and a summary.

    python3 dev/conform_records_gpu.py [--mla TARGET ...] [--groups FAMILY=TARGET ...]
        [--device cuda] [--out DIR]

A TARGET is "module:function" or "path/file.py:function" (a peer's writer
written from its public source at run time, never committed: vLLM's
concat_and_cache_mla / concat_and_cache_ds_mla structure with vLLM's
signature for --mla; fp8kv.reshape_and_cache_grouped's keywords for
--groups), or "fp8kv" (fp8kv's own write on the device).  Each MLA target
runs for ds_mla and fp8.  Not part of make check: needs torch with CUDA."""

import argparse
import json
import os
import sys



def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mla", nargs="*", default=["fp8kv"], metavar="TARGET")
    p.add_argument("--groups", nargs="*", default=[], metavar="FAMILY=TARGET")
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default=".")
    args = p.parse_args()
    from fp8kv.conform import groups, mla, records
    summary, docs = [], {"mla": [], "groups": []}
    for target in args.mla:
        fn, label = records.load(target, "mla")
        for kind in ("ds_mla", "fp8"):
            rep = mla.run(fn, kind, target=label, arrays="torch", device=args.device)
            docs["mla"].append(rep.as_dict())
            summary.append(rep.verdict_line())
            summary += rep.table()
    for item in args.groups:
        family, _, target = item.partition("=")
        fn, label = records.load(target, "groups")
        rep = groups.run(fn, family, target=label, arrays="torch", device=args.device)
        docs["groups"].append(rep.as_dict())
        summary.append(rep.verdict_line())
        summary += rep.table()
    with open(os.path.join(args.out, "conform_records.json"), "w") as f:
        json.dump(docs, f, indent=2)
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
