#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check_symbols.sh - the ABI check: what the shared objects export.
#
#   check_symbols.sh            libfp8kv.so exports exactly the names in
#                               tests/fp8kv.sym, each under its version
#                               node of lib/fp8kv.map (FP8KV_1 unless a
#                               later node names it), and those are the
#                               FP8KV_API declarations of include/fp8kv.h;
#   check_symbols.sh --module NAME
#                               fp8kv_NAME.so exports fp8kv_module_entry and
#                               nothing else but the C++/HIP toolchain
#                               symbols listed below, and leaves no fp8kv_
#                               symbol undefined (it must load whether
#                               libfp8kv was opened RTLD_GLOBAL or
#                               RTLD_LOCAL); skipped (77) when the module
#                               was not built.
#
# Run by make check (tests/hardening.mk), which sets abs_top_builddir,
# abs_top_srcdir and NM.  Exit: 0 pass, 1 fail, 77 skip.
set -u

LC_ALL=C
export LC_ALL

builddir=${abs_top_builddir:-.}
srcdir=${abs_top_srcdir:-${srcdir:-.}}
NM=${NM:-nm}
symlist=$srcdir/tests/fp8kv.sym
header=$srcdir/include/fp8kv.h

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fp8kv-sym.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT HUP INT TERM

fail=0
bad() {
	echo "FAIL: $*"
	fail=1
}

# Linker-defined symbols that older binutils put in .dynsym: not the
# library's, allowed everywhere.
is_linker_symbol() {
	case $1 in
	_init | _fini | _edata | _end | __bss_start) return 0 ;;
	esac
	return 1
}

# nm -D --defined-only, as "TYPE NAME" lines.  $NM may be "nm -B".
dynamic_symbols() {
	# shellcheck disable=SC2086
	$NM -D --defined-only "$1" >"$tmp/nm.out" 2>"$tmp/nm.err" || {
		echo "ERROR: $NM -D --defined-only $1 failed:"
		cat "$tmp/nm.err"
		exit 99
	}
	# value (absent for some absolute symbols), type, name[@version]
	awk 'NF >= 2 { name = $NF; sub(/@.*/, "", name); print $(NF - 1), name }' \
		"$tmp/nm.out"
}

check_library() {
	so=$builddir/lib/.libs/libfp8kv.so
	if [ ! -f "$so" ]; then
		echo "SKIP: $so not built (static-only build?)"
		exit 77
	fi
	if [ ! -f "$symlist" ] || [ ! -f "$header" ]; then
		echo "ERROR: $symlist or $header missing"
		exit 99
	fi
	echo "library: $so"

	# "name [NODE]": the node when it is not FP8KV_1
	grep -v '^#' "$symlist" | grep -v '^[[:space:]]*$' >"$tmp/entries"
	awk '{ print $1 }' "$tmp/entries" >"$tmp/list"
	awk '{ print $1 "@@" (NF > 1 ? $2 : "FP8KV_1") }' "$tmp/entries" | sort >"$tmp/versions"
	sort -c "$tmp/list" 2>/dev/null || bad "tests/fp8kv.sym is not sorted (LC_ALL=C sort)"
	if [ -n "$(uniq -d "$tmp/list")" ]; then
		bad "tests/fp8kv.sym has duplicates: $(uniq -d "$tmp/list" | tr '\n' ' ')"
	fi

	# 1. the header's FP8KV_API declarations against the list
	sed -n 's/^FP8KV_API .*[^a-z0-9_]\(fp8kv_[a-z0-9_]*\)(.*/\1/p' "$header" |
		sort -u >"$tmp/header"
	if ! diff -u "$tmp/list" "$tmp/header" >"$tmp/diff.header"; then
		bad "include/fp8kv.h (+) and tests/fp8kv.sym (-) disagree:"
		cat "$tmp/diff.header"
		echo "  (an API added or removed: update tests/fp8kv.sym and FP8KV_LT_VERSION)"
	fi

	# 2. the exported functions (text symbols) against the list
	dynamic_symbols "$so" >"$tmp/all"
	awk '$1 == "T" || $1 == "i" { print $2 }' "$tmp/all" | sort -u >"$tmp/text"
	if ! diff -u "$tmp/list" "$tmp/text" >"$tmp/diff.text"; then
		bad "exported text symbols (+) differ from tests/fp8kv.sym (-):"
		cat "$tmp/diff.text"
	fi

	# 3. nothing but fp8kv_* is exported, of any type (data, common,
	#    weak, TLS): a leak here is ABI the library never meant to have
	: >"$tmp/stray"
	while read -r type name; do
		case $name in
		fp8kv_*) [ "$type" = T ] || [ "$type" = i ] ||
			echo "$type $name (an fp8kv_ symbol that is not a function)" >>"$tmp/stray" ;;
		FP8KV_[0-9]*) [ "$type" = A ] || echo "$type $name" >>"$tmp/stray" ;; # version nodes
		*) is_linker_symbol "$name" || echo "$type $name" >>"$tmp/stray" ;;
		esac
	done <"$tmp/all"
	if [ -s "$tmp/stray" ]; then
		bad "libfp8kv.so exports symbols outside the API:"
		sed 's/^/  /' "$tmp/stray"
		echo "  (hide them: -fvisibility=hidden misses compiler-made symbols such as"
		echo "   OpenMP's .gomp_critical_user_* locks; a version script does not,"
		echo "   e.g. libtool's -export-symbols-regex '^fp8kv_')"
	fi
	# 4. every API symbol carries the version node tests/fp8kv.sym gives
	#    it (lib/fp8kv.map makes them: FP8KV_1, or a later node that names
	#    the symbol)
	$NM -D --defined-only "$so" 2>/dev/null | awk '{ print $NF }' | grep '^fp8kv_' |
		sort >"$tmp/versioned"
	if ! diff -u "$tmp/versions" "$tmp/versioned" >"$tmp/diff.versions"; then
		bad "exported symbols' version nodes (+) differ from tests/fp8kv.sym (-):"
		cat "$tmp/diff.versions"
	fi
	[ $fail = 0 ] && echo "PASS: $(wc -l <"$tmp/list") symbols and their version nodes, as listed in tests/fp8kv.sym"
	exit $fail
}

# C++/HIP toolchain symbols a module may export besides its entry point:
#  - __hip_cuid_<hex>: a one-byte global clang emits in every HIP
#    translation unit, with default visibility, to pair host and device
#    code (it is in .dynsym of every hipcc-built shared object);
#  - weak (W, V) and GNU-unique (u) symbols of namespace std / __gnu_cxx
#    (mangled _ZSt, _ZNSt, _ZNKSt, _ZN9__gnu_cxx, and their typeinfo/vtable/
#    guard variables _ZTI/_ZTS/_ZTV/_ZGV): libstdc++ declares its namespaces
#    visibility("default"), so template instances and inline statics the
#    module instantiates stay global whatever -fvisibility says; vague
#    linkage must stay global so that one copy exists process-wide.
# Anything else (the module's own functions, kernels' host stubs, HIP
# runtime wrappers) is a leak.
is_allowed_module_symbol() {
	case $2 in
	fp8kv_module_entry) [ "$1" = T ] && return 0 ;;
	__hip_cuid_*) return 0 ;;
	esac
	case $1 in
	W | V | u)
		case $2 in
		_ZSt* | _ZNSt* | _ZNKSt* | _ZN9__gnu_cxx* | _ZNK9__gnu_cxx* | \
			_ZTISt* | _ZTSSt* | _ZTVSt* | _ZTINSt* | _ZTSNSt* | _ZTVNSt* | \
			_ZGVZNSt* | _ZGVNSt* | _ZZNSt* | _ZZNKSt*)
			return 0 ;;
		esac ;;
	esac
	is_linker_symbol "$2"
}

check_module() {
	module=$1
	so=$builddir/$module/.libs/fp8kv_$module.so
	if [ ! -f "$so" ]; then
		echo "SKIP: module $so not built"
		exit 77
	fi
	echo "module: $so"
	dynamic_symbols "$so" >"$tmp/all"
	grep -q '^T fp8kv_module_entry$' "$tmp/all" ||
		bad "fp8kv_$module.so does not export the function fp8kv_module_entry"
	: >"$tmp/stray"
	: >"$tmp/toolchain"
	while read -r type sym; do
		if is_allowed_module_symbol "$type" "$sym"; then
			[ "$sym" = fp8kv_module_entry ] || echo "$type $sym" >>"$tmp/toolchain"
		else
			echo "$type $sym" >>"$tmp/stray"
		fi
	done <"$tmp/all"
	if [ -s "$tmp/toolchain" ]; then
		echo "note: toolchain symbols exported (allowed):"
		sed 's/^/  /' "$tmp/toolchain"
	fi
	if [ -s "$tmp/stray" ]; then
		bad "fp8kv_$module.so exports more than fp8kv_module_entry:"
		sed 's/^/  /' "$tmp/stray"
	fi
	# what it needs of libfp8kv comes through the services of its entry
	# (lib/backend.h), never from a symbol that only a global libfp8kv
	# would resolve
	# shellcheck disable=SC2086
	$NM -D --undefined-only "$so" >"$tmp/undefined" 2>"$tmp/nm.err" || {
		echo "ERROR: $NM -D --undefined-only $so failed:"
		cat "$tmp/nm.err"
		exit 99
	}
	if grep -q ' fp8kv_' "$tmp/undefined"; then
		bad "fp8kv_$module.so needs symbols of libfp8kv:"
		grep ' fp8kv_' "$tmp/undefined" | sed 's/^/  /'
	fi
	[ $fail = 0 ] && echo "PASS: fp8kv_$module.so exports fp8kv_module_entry only, needs no fp8kv_ symbol"
	exit $fail
}

case ${1:-} in
"") check_library ;;
--module) check_module "${2:?--module needs a name}" ;;
*)
	echo "usage: $0 [--module NAME]" >&2
	exit 99 ;;
esac
