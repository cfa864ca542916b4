#!/bin/sh
# SPDX-License-Identifier: MIT
# fp8kv-validate must pass the real CPU backend and must catch a wrong one:
# the faulty module (tests/faulty_backend.c) drops scales, shifts slots,
# rounds e2m1 ties away, swaps nibbles, writes rceil for floor or reverses
# the bytes of DeepSeek's tile scales, and the validator has to exit 1 and
# print the difference.
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
expect 0 "the cpu backend's grouped and MLA writes against the oracle" \
	"$validate" --backend cpu --write grouped,mla
expect 1 "a backend that drops the scale" \
	env FP8KV_FAULT=scale "$validate" --backend faulty --format e5m2
grep -q "DIFFER" "$out" && grep -q "expected 0x" "$out" ||
	{ echo "FAIL: the scale fault was not named"; status=1; }
expect 1 "a backend that writes slot + 1" \
	env FP8KV_FAULT=slot "$validate" --backend faulty --format e4m3fnuz --scale one
grep -q "reshape_and_cache.*DIFFER" "$out" ||
	{ echo "FAIL: the slot fault was not named"; status=1; }
# grouped and MLA writes (fp8kv.h sections 8, 9): each fault is caught, in
# the groups it can touch, and named by the byte it spoils
expect 1 "grouped e2m1 rows whose ties round away from zero" \
	env FP8KV_FAULT=ties "$validate" --backend faulty --write grouped --format e2m1
grep -q "grouped nvfp4 .*DIFFER" "$out" && grep -q "(low, high nibble)" "$out" ||
	{ echo "FAIL: the e2m1 tie fault was not named"; status=1; }
expect 1 "grouped e2m1 rows with their nibbles swapped" \
	env FP8KV_FAULT=nibbles "$validate" --backend faulty --write grouped --rule nvfp4
grep -q "grouped nvfp4 .*e2m1 .*DIFFER" "$out" ||
	{ echo "FAIL: the nibble fault was not named"; status=1; }
expect 1 "the E8M0 floor rule written by rceil" \
	env FP8KV_FAULT=rceil "$validate" --backend faulty --write grouped --rule e8m0_floor,e8m0_rceil \
	--format e4m3fn
grep -q "grouped e8m0_floor .*DIFFER" "$out" && grep -q "key code of token" "$out" &&
	! grep -q "grouped e8m0_rceil .*DIFFER" "$out" ||
	{ echo "FAIL: the rceil-for-floor fault was not named, or spilled"; status=1; }
expect 1 "DeepSeek records with their tile scales' bytes reversed" \
	env FP8KV_FAULT=ds_order "$validate" --backend faulty --write mla --format e4m3fnuz
grep -q "concat_mla ds .*DIFFER" "$out" && grep -q "kv_c scale of token" "$out" &&
	! grep -q "concat_mla plain .*DIFFER" "$out" ||
	{ echo "FAIL: the DS byte-order fault was not named, or spilled"; status=1; }
expect 0 "a module without grouped and MLA writes: refused, not validated" \
	env FP8KV_FAULT=old_table "$validate" --backend faulty --write grouped,mla --format int8
grep -q "not supported" "$out" && grep -q "not yet on this backend" "$out" ||
	{ echo "FAIL: the older module's missing writes were not reported"; status=1; }
expect 77 "an absent backend" "$validate" --backend no_such_backend
expect 2 "a usage error" "$validate" --level sometimes
exit $status
