#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check_tools.sh - fp8kv-validate and fp8kv-bench as a careless or hostile
# user drives them: output that cannot be written, bad option values,
# malformed backend names, shapes whose sizes overflow, memory that cannot
# be had, the bench's GPU module absent, refused or where it must not be
# looked for, and the man pages.  Each case checks the exit status and
# that stderr names what was wrong.
#
# Run by make check, which sets abs_top_builddir and FP8KV_MODULE_PATH
# (tests/local.mk).  Exit: 0 pass, 1 fail.
set -u
LC_ALL=C
export LC_ALL
# A failed allocation must reach the tools as NULL, as it does outside
# AddressSanitizer, which otherwise ends the process first.
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1
export ASAN_OPTIONS

builddir=${abs_top_builddir:-.}
validate=$builddir/tools/fp8kv-validate
bench=$builddir/tools/fp8kv-bench
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fp8kv-tools.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT HUP INT TERM
status=0
# the smallest runs that still write every kind of output
quick_validate="--backend cpu --format e4m3fn --scale one --overflow saturate"
quick_bench="--backend cpu --shape 8x2x16 --samples 1 --scale one"
null=/dev/null

# check STATUS TEXT DESCRIPTION OUT COMMAND...: COMMAND, its stdout sent
# to the file OUT, exits with STATUS, and its stderr contains TEXT ("" for
# any).
check() {
	want=$1 text=$2 what=$3 out=$4
	shift 4
	"$@" <"$null" >"$out" 2>"$tmp/err"
	got=$?
	if [ "$got" -ne "$want" ]; then
		echo "FAIL: $what: exit $got, expected $want"
		sed 's/^/  stderr: /' "$tmp/err" | head -n 5
		status=1
	elif [ -n "$text" ] && ! grep -Fq -- "$text" "$tmp/err"; then
		echo "FAIL: $what: stderr does not say \"$text\":"
		sed 's/^/  stderr: /' "$tmp/err" | head -n 5
		status=1
	else
		echo "ok: $what (exit $got)"
	fi
}

# ---- output that cannot be written -----------------------------------------
if [ -w /dev/full ]; then
	for tool in validate bench; do
		eval "program=\$$tool quick=\$quick_$tool"
		# shellcheck disable=SC2154,SC2086 # set by eval; $quick: several words
		{
			check 3 "cannot write /dev/full: " "$tool --json /dev/full" $null \
				"$program" $quick --json /dev/full
			check 3 "cannot write standard output: " "$tool > /dev/full" /dev/full \
				"$program" $quick
		}
	done
	check 3 "cannot write standard output: " "validate --help > /dev/full" /dev/full \
		"$validate" --help
	check 3 "cannot write standard output: " "bench --version > /dev/full" /dev/full \
		"$bench" --version
else
	echo "skip: no writable /dev/full: write errors not checked"
fi
# shellcheck disable=SC2086
check 3 "cannot write $tmp/none/x.json: " "validate --json in a missing directory" $null \
	"$validate" $quick_validate --json "$tmp/none/x.json"

# ---- bad option values: named, then the hint, exit 2 -----------------------
while read -r tool args; do
	eval "program=\$$tool; set -- $args"
	check 2 "fp8kv-$tool: $1 '$2': " "$tool $args" $null "$program" "$@"
	grep -q "^Try 'fp8kv-$tool --help'" "$tmp/err" ||
		{ echo "FAIL: $tool $args: no usage hint"; status=1; }
done <<EOF
validate --seed -1
validate --seed +1
validate --seed 18446744073709551616
validate --seed 12abc
validate --seed ''
validate --level sometimes
validate --format e4m3
validate --scale tensors
validate --overflow clamp
validate --scale implicit
validate --scale dynamic
validate --scale one,
validate --shard 0/3
validate --shard 4/3
validate --shard 1/0
validate --shard 1/1001
validate --shard 1
validate --shard 1/
validate --shard /3
validate --shard 1/3x
validate --format bf16
validate --format fp4
validate --write grouped,
validate --write nvfp4
validate --write ''
validate --rule floor
validate --rule f32,,nvfp4
validate --rule e8m0
bench --samples 0
bench --samples 257
bench --samples 1x
bench --input e4m3fn
bench --format bf16
bench --scale one,,tensor,head,token_head,one
bench --scale dynamic
bench --scale one,one
bench --scale none
bench --write bogus
bench --write mha,mha
bench --write group,
bench --group mxfp6
bench --group nvfp4,nvfp4
bench --input f32 --write mla_ds
EOF
check 2 "unknown option '--bogus'" "validate --bogus" $null "$validate" --bogus
check 2 "--json needs a value" "validate --json at the end" $null "$validate" --json
# --format all after another format: the four formats again
check 0 "" "validate --format e5m2 --format all" "$tmp/out" \
	"$validate" --backend cpu --format e5m2 --format all --scale one --overflow saturate
[ "$(grep -c '^cpu  *quantize bf16 ' "$tmp/out")" = 4 ] ||
	{ echo "FAIL: --format all after --format e5m2 did not check the four formats"; status=1; }

# the bench's grouped and MLA writes: a row each, named in the JSON
check 0 "" "bench --write group,mla_plain,mla_ds" "$tmp/out" \
	"$bench" --backend cpu --write group,mla_plain,mla_ds --shape 8x2x64 --samples 1 \
	--json "$tmp/bench.json"
for w in mxfp8 mxfp4 nvfp4 int8 mla_plain mla_ds; do
	grep -q "^8 x [12] x [0-9]*/16  *$w " "$tmp/out" && grep -q "\"write\": \"$w\"" "$tmp/bench.json" ||
		{ echo "FAIL: bench --write group,mla_plain,mla_ds: no row or JSON of $w"; status=1; }
done

# --format e2m1: the grouped writes of e2m1 only (no FP8 group), named in
# the JSON with the writes and rules chosen
check 0 "" "validate --format e2m1 --write grouped,mla" "$tmp/out" \
	"$validate" --backend cpu --format e2m1 --write grouped,mla --rule nvfp4,e8m0_rceil \
	--json "$tmp/e2m1.json"
[ "$(grep -c '^cpu  *grouped .* e2m1 ' "$tmp/out")" = 2 ] &&
	! grep -q '^cpu  *\(quantize\|reshape\)' "$tmp/out" &&
	grep -q '"writes": \["grouped", "mla"\]' "$tmp/e2m1.json" &&
	grep -q '"rules": \["e8m0_rceil", "nvfp4"\]' "$tmp/e2m1.json" &&
	grep -q '"formats": \["e2m1"\]' "$tmp/e2m1.json" ||
	{ echo "FAIL: --format e2m1 --write grouped,mla --rule nvfp4,e8m0_rceil"; status=1; }

# ---- --shard K/N: the parts of a run add up to the whole -------------------
# every group of the whole run in exactly one part, with the same result
shard_run="--backend cpu --format e5m2 --overflow saturate --scale one,head --write mha,grouped,mla"
# shellcheck disable=SC2086
check 0 "" "validate (the whole of the sharded run)" "$tmp/whole" "$validate" $shard_run
for k in 1 2 3; do
	# shellcheck disable=SC2086
	check 0 "" "validate --shard $k/3" "$tmp/part$k" "$validate" $shard_run --shard $k/3
	grep -q "shard $k/3" "$tmp/part$k" ||
		{ echo "FAIL: --shard $k/3: the header does not name the shard"; status=1; }
	[ "$(grep -c '^cpu ' "$tmp/part$k")" -gt 0 ] ||
		{ echo "FAIL: --shard $k/3 ran no group"; status=1; }
done
# a group line without its timing-free columns changed: backend .. verdict
grep '^cpu ' "$tmp/whole" | sort >"$tmp/whole.groups"
cat "$tmp/part1" "$tmp/part2" "$tmp/part3" | grep '^cpu ' | sort >"$tmp/parts.groups"
if ! cmp -s "$tmp/whole.groups" "$tmp/parts.groups"; then
	echo "FAIL: the three shards' groups are not the whole run's:"
	diff "$tmp/whole.groups" "$tmp/parts.groups" | head -n 10
	status=1
elif [ "$(uniq -d "$tmp/parts.groups" | wc -l)" -ne 0 ] ||
	[ "$(wc -l <"$tmp/whole.groups")" -lt 6 ]; then
	echo "FAIL: the sharded run repeats a group, or has too few to split"
	status=1
else
	echo "ok: 3 shards add up to the whole run ($(wc -l <"$tmp/whole.groups") groups)"
fi
check 2 "unknown option '--bogus'" "bench --bogus" $null "$bench" --bogus

# ---- --shape: every field bounded, no product that overflows ---------------
for shape in 9223372036854775807x64x1024 1x1x1/9223372036854775807 1x65x128 0x8x128 \
	1x8x0 1x8x128/0 -1x8x128 1x8 1x8x128/ 2147483648x1x1 2147483647x64x2147483647 \
	"1x8x128 " 1x8x128x2; do
	check 2 "fp8kv-bench: --shape '$shape': " "bench --shape '$shape'" $null \
		"$bench" --backend cpu --shape "$shape"
done
# counted, but more than any machine has: a message, not a silent exit 3
check 3 "shape 2147483647 x 64 x 1024/16: cannot allocate " \
	"bench on a shape no memory holds" $null \
	"$bench" --backend cpu --shape 2147483647x64x1024 --scale one
"$bench" --help >"$tmp/help"
grep -q "heads at most 64" "$tmp/help" ||
	{ echo "FAIL: fp8kv-bench --help does not state the 64-head limit"; status=1; }

# ---- backend names: malformed is usage (2), absent is 77 -------------------
for name in "" "../x" "cpu:x" "cpu:-0" "cpu:+0" "cpu: 0" "x/y"; do
	check 2 "fp8kv-validate: --backend '$name': " "validate --backend '$name'" $null \
		"$validate" --backend "$name"
	check 2 "fp8kv-bench: --backend '$name': " "bench --backend '$name'" $null \
		"$bench" --backend "$name"
done
# a malformed name after a good one is still found before any check runs
check 2 "fp8kv-validate: --backend 'cpu:x': " "validate --backend cpu --backend cpu:x" \
	"$tmp/out" "$validate" --backend cpu --backend cpu:x
[ ! -s "$tmp/out" ] || { echo "FAIL: validate ran checks before rejecting cpu:x"; status=1; }
check 77 "no_such_backend" "validate --backend no_such_backend" $null \
	"$validate" --backend no_such_backend
check 77 "no_such_backend" "bench --backend no_such_backend" $null \
	"$bench" --backend no_such_backend

# ---- the bench's device module (tools/bench_module.c) ----------------------
# "faulty" is a host backend (tests/faulty_backend.c); its bench module,
# fp8kv_bench_faulty.so (tests/check_tools_module.c), times on the host.
# Each is copied to a directory of its own, so that FP8KV_MODULE_PATH can
# offer one without the other.
libs=$builddir/tests/.libs
if [ -f "$libs/fp8kv_faulty.so" ] && [ -f "$libs/fp8kv_bench_faulty.so" ]; then
	mkdir "$tmp/backend" "$tmp/bench"
	cp "$libs/fp8kv_faulty.so" "$tmp/backend/"
	cp "$libs/fp8kv_bench_faulty.so" "$tmp/bench/"
	check 3 "no timing for backend faulty: fp8kv_bench_faulty.so, fp8kv-bench's part" \
		"bench without its module" $null \
		env FP8KV_MODULE_PATH="$tmp/backend" "$bench" --backend faulty
	check 0 "" "bench with its module" "$tmp/out" \
		env FP8KV_MODULE_PATH="$tmp/backend:$tmp/bench" \
		"$bench" --backend faulty --shape 8x2x16 --samples 1 --scale one --json "$tmp/json"
	grep -q "^8 x 2 x 16/16 " "$tmp/out" ||
		{ echo "FAIL: bench with its module: no result line"; status=1; }
	# a small shape is timed in a graph: its line ends with the launch
	# floor and the excess over it, numbers, and the JSON has the floor
	grep -Eq "^8 x 2 x 16/16 .* [0-9]+\.[0-9]{2} +-?[0-9]+\.[0-9]{2}\$" "$tmp/out" ||
		{ echo "FAIL: bench with its module: no floor and excess:"; cat "$tmp/out"; status=1; }
	grep -q '"graph": true, "floor_s": [0-9]' "$tmp/json" ||
		{ echo "FAIL: bench with its module: no floor_s in the JSON:"; cat "$tmp/json"; status=1; }
	check 3 "fp8kv_bench_faulty.so is a module of another fp8kv-bench" \
		"bench with a module of another ABI" $null \
		env FP8KV_TEST_BENCH_ABI=999 FP8KV_MODULE_PATH="$tmp/backend:$tmp/bench" \
		"$bench" --backend faulty
	# relative directories follow the current directory: never searched
	check 3 "is not in FP8KV_MODULE_PATH" "bench ignores a relative module directory" $null \
		sh -c 'cd "$1" && FP8KV_MODULE_PATH="$1/backend:bench:./bench" exec "$2" --backend faulty' \
		sh "$tmp" "$bench"
else
	echo "skip: tests/.libs has no fp8kv_faulty.so or fp8kv_bench_faulty.so (static build?)"
fi

# ---- the man pages: release, ISO date, --help and --version ----------------
version=$("$validate" --version | sed -n 's/^fp8kv-validate //p')
for page in fp8kv-validate fp8kv-bench; do
	man=$builddir/tools/$page.1
	upper=$(echo "$page" | tr a-z A-Z)
	grep -Eq "^\.TH $upper 1 \"?[0-9]{4}-[0-9]{2}-[0-9]{2}\"? \"fp8kv $version\"" "$man" ||
		{ echo "FAIL: $man: .TH has no ISO date and release $version:"; grep '^\.TH' "$man"; status=1; }
	for opt in help version; do
		grep -q "^\.B \\\\-\\\\-$opt\$" "$man" ||
			{ echo "FAIL: $man does not document --$opt"; status=1; }
	done
	# whatis(1) shows the NAME line on one line: under 80 characters
	name=$(sed -n '/^\.SH NAME/{n;s/\\-/-/;p;}' "$man")
	[ -n "$name" ] && [ ${#name} -lt 80 ] ||
		{ echo "FAIL: $man: NAME line of ${#name} characters: $name"; status=1; }
	# rendered, no words run together (".BR FILES ), and shapes ..." made
	# "FILES),andshapes..."): no word is longer than 32 characters
	if command -v groff >/dev/null 2>&1; then
		groff -man -Tascii -P-c -P-b -P-u "$man" 2>/dev/null | tr -s ' \t' '\n\n' |
			awk 'length > 32' >"$tmp/words"
		if [ -s "$tmp/words" ]; then
			echo "FAIL: $man renders words run together:"
			cat "$tmp/words"
			status=1
		else
			echo "ok: $page.1 renders no run-together words"
		fi
	else
		echo "skip: no groff: $man not rendered"
	fi
	if command -v mandoc >/dev/null 2>&1; then
		if mandoc -Tlint -Wwarning "$man" >"$tmp/lint" 2>&1; then
			echo "ok: mandoc -Tlint -Wwarning $page.1"
		else
			echo "FAIL: mandoc -Tlint $man:"
			cat "$tmp/lint"
			status=1
		fi
	else
		echo "skip: no mandoc: $man not linted"
	fi
done
# ---- fp8kv-validate's table: every row's verdict under the header's ---------
"$validate" --backend cpu --format e4m3fn --overflow saturate --scale tensor \
	>"$tmp/table" 2>"$tmp/err"
if awk '/^backend / { col = index($0, "verdict") }
	col && NF >= 9 && $NF ~ /^(equal|DIFFER|ERROR)$/ { rows++; if (index($0, $NF) != col) { print; bad = 1 } }
	END { exit bad || !col || rows < 10 }' "$tmp/table" >"$tmp/misaligned"; then
	echo "ok: fp8kv-validate's rows align with its header"
else
	echo "FAIL: fp8kv-validate's table is misaligned (or has no rows):"
	head -n 5 "$tmp/misaligned"
	status=1
fi

grep -q "heads at most 64" "$builddir/tools/fp8kv-bench.1" ||
	{ echo "FAIL: fp8kv-bench.1 does not state the 64-head limit"; status=1; }
exit $status
