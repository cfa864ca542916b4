#!/bin/bash
# SPDX-License-Identifier: MIT
# Developer tool, run on the GPU machine from the repository root after
# dev/device-stage.sh filled .carry/.  Steps: check (comparison suite and
# full validation), exhaustive, sanitize, bench; default: all but
# exhaustive.  Logs go to $OUT (or /tmp); each step is cut off after
# $STEP_LIMIT seconds (default 400).  SHARD=K/N runs only that part of the
# full validation (fp8kv-validate --shard): run K = 1..N in calls of their
# own, and every part must pass.
set -u
STEP_LIMIT=${STEP_LIMIT:-400}
. "$(dirname "$0")/device-common.sh"
steps=${*:-check sanitize bench}

for s in $steps; do
	case $s in
	check)
		step test_backends "$bin/test_backends"
		grep -E "^\[|Checks" "$out/test_backends.log"
		step validate_full "$bin/fp8kv-validate" --backend hip --level full \
			${SHARD:+--shard "$SHARD"} --json "$out/validate_full.json"
		tail -n 3 "$out/validate_full.log"
		grep -c " equal$" "$out/validate_full.log" | sed 's/^/groups equal: /'
		;;
	exhaustive)
		step validate_exhaustive "$bin/fp8kv-validate" --backend hip --level exhaustive \
			--json "$out/validate_exhaustive.json"
		grep "f32 all\|summary\|verdict" "$out/validate_exhaustive.log"
		;;
	sanitize)
		step memcheck compute-sanitizer --tool memcheck --error-exitcode 9 \
			"$bin/fp8kv-validate" --backend hip --level quick
		tail -n 4 "$out/memcheck.log"
		step racecheck compute-sanitizer --tool racecheck --error-exitcode 9 \
			"$bin/fp8kv-validate" --backend hip --format e4m3fn --scale all
		tail -n 4 "$out/racecheck.log"
		step memcheck_tests compute-sanitizer --tool memcheck --error-exitcode 9 \
			"$bin/test_backends"
		tail -n 4 "$out/memcheck_tests.log"
		;;
	bench)
		step bench "$bin/fp8kv-bench" --backend hip --scale all --json "$out/bench.json"
		cat "$out/bench.log"
		;;
	esac
done
exit $rc
