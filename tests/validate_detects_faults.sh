#!/bin/sh
# SPDX-License-Identifier: MIT
# fp8kv-validate must pass the real CPU backend and must catch a wrong one:
# the faulty module (tests/faulty_backend.c) drops scales or shifts slots,
# and the validator has to exit 1 and print the difference.
set -u
validate=${abs_top_builddir:-.}/tools/fp8kv-validate
out=${TMPDIR:-/tmp}/fp8kv-validate-$$.log
trap 'rm -f "$out"' EXIT
status=0

expect() { # expected-exit description command...
	want=$1 what=$2
	shift 2
	"$@" >"$out" 2>&1
	got=$?
	if [ "$got" -ne "$want" ]; then
		echo "FAIL: $what: exit $got, expected $want"
		tail -n 30 "$out"
		status=1
	else
		echo "ok: $what (exit $got)"
	fi
}

expect 0 "the cpu backend against the oracle" \
	"$validate" --backend cpu --format e4m3fn
expect 1 "a backend that drops the scale" \
	env FP8KV_FAULT=scale "$validate" --backend faulty --format e5m2
grep -q "DIFFER" "$out" && grep -q "expected 0x" "$out" ||
	{ echo "FAIL: the scale fault was not named"; status=1; }
expect 1 "a backend that writes slot + 1" \
	env FP8KV_FAULT=slot "$validate" --backend faulty --format e4m3fnuz --scale one
grep -q "reshape_and_cache.*DIFFER" "$out" ||
	{ echo "FAIL: the slot fault was not named"; status=1; }
expect 77 "an absent backend" "$validate" --backend no_such_backend
expect 2 "a usage error" "$validate" --level sometimes
exit $status
