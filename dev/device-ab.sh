#!/bin/bash
# SPDX-License-Identifier: MIT
# Developer tool, run on the GPU machine from the repository root: an A/B of
# builds staged side by side with
#   dev/device-stage.sh BUILD_DIR .carry/NAME
# Each round runs fp8kv-bench once per build, in turn, so that every build
# sees the same machine state; the table gives, per shape and scale mode,
# the min-max over rounds of each build's ratio to the same-run ceiling
# (and of its time, for the launches fp8kv-bench times by graph replay).
#
#   dev/device-ab.sh [-r ROUNDS] [-s SCALES] [-x "SHAPE ..."] [-a "BENCH ARGS"] [-t TAG] NAME...
#
# Logs and JSON go to $OUT (or /tmp).
set -u
rounds=3 scales=all shapes= args= tag=ab
while getopts r:s:x:a:t: o; do
	case $o in
	r) rounds=$OPTARG ;;
	s) scales=$OPTARG ;;
	x) shapes=$OPTARG ;;
	a) args=$OPTARG ;;
	t) tag=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-r N] [-s SCALES] [-x SHAPES] NAME..." >&2; exit 2; }
out=${OUT:-/tmp}
shape_args=
for s in $shapes; do shape_args="$shape_args --shape $s"; done

for r in $(seq 1 "$rounds"); do
	for name in "$@"; do
		carry=$(pwd)/.carry/$name
		LD_LIBRARY_PATH=$carry/lib FP8KV_MODULE_PATH=$carry/modules \
			"$carry/bin/fp8kv-bench" --backend hip --scale "$scales" --samples 11 \
			$shape_args $args --json "$out/$tag-$name-$r.json" >"$out/$tag-$name-$r.log" 2>&1 ||
			echo "== $name round $r: fp8kv-bench failed (see $tag-$name-$r.log)"
	done
done

python3 - "$out" "$rounds" "$tag" "$@" <<'EOF'
import json, sys, os
out, rounds, tag, names = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
table = {}
for name in names:
    for r in range(1, rounds + 1):
        path = os.path.join(out, f"{tag}-{name}-{r}.json")
        if not os.path.exists(path):
            continue
        for res in json.load(open(path))["results"]:
            # builds before the scale modes' one spelling called
            # token_head "dynamic"
            scale = {"dynamic": "token_head"}.get(res["scale"], res["scale"])
            key = (res["tokens"], res["heads"], res["dim"], res["block_size"], scale)
            table.setdefault(key, {}).setdefault(name, []).append(
                (res["ratio"], res["fused_s"] * 1e6))
def span(v, i, fmt):
    lo, hi = min(x[i] for x in v), max(x[i] for x in v)
    return fmt % lo if fmt % lo == fmt % hi else (fmt % lo) + "-" + (fmt % hi)
print("shape scale | " + " | ".join(f"{n}: ratio, us" for n in names))
for key in sorted(table):
    t, h, d, bs, sc = key
    cells = []
    for n in names:
        v = table[key].get(n)
        cells.append("-" if not v else span(v, 0, "%.3f") + ", " +
                     span(v, 1, "%.2f"))
    print(f"{t}x{h}x{d}/{bs} {sc} | " + " | ".join(cells))
EOF
