#!/bin/bash
# SPDX-License-Identifier: MIT
# Developer tool, run on the GPU machine from the repository root after
# dev/device-stage.sh filled .carry/ (as dev/device-run.sh): the grouped
# and MLA writes (fp8kv.h sections 8 and 9) in one call.  Steps:
#   check     test_backends' group and mla cases (every byte against the
#             CPU), then fp8kv-validate --backend hip --write grouped,mla
#             --level full
#   sanitize  compute-sanitizer memcheck over the quick validation of them
#   bench     fp8kv-bench --write group,mla_plain,mla_ds, with the MHA
#             tensor-mode writes they are held to (decode: the same bytes),
#             and the targets of #36/#37 checked from the JSON
# default: check bench.  Logs and JSON go to $OUT (or /tmp); each step is
# cut off after $STEP_LIMIT seconds (default 300).
set -u
STEP_LIMIT=${STEP_LIMIT:-300}
. "$(dirname "$0")/device-common.sh"
steps=${*:-check bench}

for s in $steps; do
	case $s in
	check)
		for c in group mla; do
			CK_RUN_CASE=$c step "test_backends_$c" "$bin/test_backends"
			grep -E "^\[|Checks|differ" "$out/test_backends_$c.log" | head -20
		done
		step validate_groups "$bin/fp8kv-validate" --backend hip --write grouped,mla \
			--level full --json "$out/validate_groups.json"
		tail -n 3 "$out/validate_groups.log"
		;;
	sanitize)
		step memcheck_groups compute-sanitizer --tool memcheck --error-exitcode 9 \
			"$bin/fp8kv-validate" --backend hip --write grouped,mla --level quick
		tail -n 4 "$out/memcheck_groups.log"
		;;
	bench)
		step bench_groups "$bin/fp8kv-bench" --backend hip --write group,mla_plain,mla_ds \
			--json "$out/bench_groups.json"
		cat "$out/bench_groups.log"
		# the yardsticks: the FP8 tensor-mode write of 64x8x128 and
		# 32768x8x128, and of MLA's byte count (64 and 32768 tokens of
		# 576 elements: 288 per side of one head)
		step bench_mha_ref "$bin/fp8kv-bench" --backend hip --write mha --scale tensor \
			--shape 64x8x128 --shape 32768x8x128 --shape 64x1x288/64 \
			--shape 32768x1x288/64 --json "$out/bench_mha_ref.json"
		cat "$out/bench_mha_ref.log"
		python3 - "$out/bench_groups.json" "$out/bench_mha_ref.json" <<'EOF'
import json, sys
g = json.load(open(sys.argv[1]))["results"]
m = json.load(open(sys.argv[2]))["results"]
def mha(t, h, d):
    return next(r for r in m if (r["tokens"], r["heads"], r["dim"]) == (t, h, d))
def row(w, t):
    return next(r for r in g if r["write"] == w and r["tokens"] == t)
print("\ntargets (#36, #37):")
for w, t, need in (("mla_plain", 32768, .90), ("mla_ds", 32768, .90), ("mxfp8", 32768, .90),
                   ("nvfp4", 32768, .85), ("mxfp4", 32768, .85), ("int8", 32768, .90)):
    r = row(w, t)
    print("  %-10s %6d tokens  ratio %5.1f%%  (>= %d%%) %s"
          % (w, t, 100 * r["ratio"], 100 * need, "ok" if r["ratio"] >= need else "MISSED"))
for w, ref, need in (("mla_plain", (64, 1, 288), .3), ("mla_ds", (64, 1, 288), .3),
                     ("mxfp8", (64, 8, 128), .4), ("mxfp4", (64, 8, 128), .4),
                     ("nvfp4", (64, 8, 128), .4), ("int8", (64, 8, 128), .4)):
    r, b = row(w, 64), mha(*ref)
    d = (r["fused_s"] - b["fused_s"]) * 1e6
    print("  %-10s     64 tokens  %6.2f us vs tensor %6.2f us: %+5.2f us (<= %.1f) %s"
          % (w, r["fused_s"] * 1e6, b["fused_s"] * 1e6, d, need, "ok" if d <= need else "MISSED"))
EOF
		;;
	esac
done
exit $rc
