#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check_headers.sh - every header includes what it uses, and the module's
# dependency list is whole.
#
#   alone     each C header of lib/, include/ and cpu/ compiles alone with
#             the C compiler (after config.h, as every file of the tree
#             includes it first); with a HIP build, each header of hip/
#             compiles alone with the HIP compiler and the module's flags
#             (nvcc: its front end, -fdevice-syntax-only; clang: the
#             syntax only), so that no room depends on the order in which
#             fp8kv_hip.hip includes them;
#   planted   a header that uses a name only another header defines must
#             fail to compile alone (for each compiler the check uses), so
#             that a pass means something;
#   deps      the headers fp8kv_hip.hip includes from the source tree, as
#             the C++ preprocessor finds them (-MM -MG: a GPU runtime's
#             headers need not be there), are exactly hip/local.mk's
#             HIP_ROOMS and HIP_LIB_DEPS, the prerequisites of the
#             module's object: a header added to the module but not to the
#             list would leave the object stale.
#
# Reads hip/headers-check.env (written by make check).  Exit: 0 pass,
# 1 fail, 77 skip (no such file).
set -u
LC_ALL=C
export LC_ALL

builddir=${abs_top_builddir:-.}
env=$builddir/hip/headers-check.env
if [ ! -r "$env" ]; then
	echo "SKIP: $env not found (run through make check)"
	exit 77
fi
CC= CXX= C_FLAGS= C_HEADERS= HIPCC= HIP_FLAGS= HIP_PLATFORM= HIP_ROOMS= HIP_LIB_DEPS=
TOP_SRCDIR= TOP_BUILDDIR=
# shellcheck disable=SC1090
. "$env"
src=$TOP_SRCDIR
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fp8kv-headers.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT HUP INT TERM
status=0
inc="-I$TOP_BUILDDIR -I$src/include -I$src/lib -I$src/hip -I$src/cpu"

# alone_c HEADER: compiles $tmp/alone.c, config.h then HEADER only
alone_c() {
	printf '#include "config.h"\n#include "%s"\n' "$1" >"$tmp/alone.c"
	# shellcheck disable=SC2086 # flags are several words
	$CC $C_FLAGS $inc -fsyntax-only "$tmp/alone.c" >"$tmp/log" 2>&1
}

# alone_hip HEADER: the same with the HIP compiler
alone_hip() {
	printf '#include "config.h"\n#include "%s"\n' "$1" >"$tmp/alone.hip"
	if [ "$HIP_PLATFORM" = nvidia ]; then
		# shellcheck disable=SC2086
		$HIPCC $HIP_FLAGS $inc -fdevice-syntax-only -c -o "$tmp/alone.o" \
			"$tmp/alone.hip" >"$tmp/log" 2>&1
	else
		# shellcheck disable=SC2086
		$HIPCC $HIP_FLAGS $inc -fsyntax-only "$tmp/alone.hip" >"$tmp/log" 2>&1
	fi
}

# judge KIND HEADER: runs alone_KIND HEADER and reports
judge() {
	if "alone_$1" "$2"; then
		echo "ok: $2 compiles alone ($1)"
	else
		echo "FAIL: $2 does not compile alone ($1):"
		sed 's/^/  /' "$tmp/log" | head -n 8
		status=1
	fi
}

# planted KIND: a header that needs another's definitions must not pass
planted() {
	mkdir -p "$tmp/planted"
	printf '#ifndef PLANTED_H\n#define PLANTED_H\nstatic inline int planted(const fp8kv_write_plan *p) { return p->side[0].recipe.scale_mode; }\n#endif\n' \
		>"$tmp/planted/planted.h"
	saved=$inc
	inc="$inc -I$tmp/planted"
	if "alone_$1" planted.h; then
		echo "FAIL: a header that uses write_plan.h without including it compiled alone ($1)"
		status=1
	else
		echo "ok: the planted header that includes too little fails ($1)"
	fi
	inc=$saved
}

# ---- C headers ----
if [ -n "$CC" ]; then
	planted c
	for h in $C_HEADERS; do
		judge c "$(basename "$h")"
	done
fi

# ---- hip/ headers ----
if [ -n "$HIPCC" ]; then
	planted hip
	for h in $HIP_ROOMS; do
		judge hip "$(basename "$h")"
	done
else
	echo "note: no HIP build: hip/ headers not compiled alone"
fi

# ---- the module's dependency list ----
if [ -n "$CXX" ]; then
	# as nvcc would see it, whose runtime's headers -MG lets be absent
	# (a ROCm's, if present, insists on its own platform macros)
	# shellcheck disable=SC2086
	if $CXX -x c++ -DHAVE_CONFIG_H -D__NVCC__ $inc -MM -MG "$src/hip/fp8kv_hip.hip" \
		>"$tmp/deps" 2>"$tmp/log"; then
		# the prerequisites inside the source tree, relative to it (config.h,
		# a build product, is in the source tree of an in-tree build)
		tr ' \\' '\n\n' <"$tmp/deps" | grep "^$src/" | sed "s|^$src/||" |
			grep -v -e '^hip/fp8kv_hip.hip$' -e '^config.h$' | sort -u >"$tmp/found"
		for h in $HIP_ROOMS $HIP_LIB_DEPS; do echo "$h"; done | sort -u >"$tmp/listed"
		if [ ! -s "$tmp/found" ]; then
			echo "FAIL: the preprocessor found no header of fp8kv_hip.hip"
			status=1
		elif ! diff -u "$tmp/listed" "$tmp/found" >"$tmp/diff"; then
			echo "FAIL: hip/local.mk's header lists (-) and fp8kv_hip.hip's includes (+) differ:"
			sed 's/^/  /' "$tmp/diff"
			status=1
		else
			echo "ok: the module's $(wc -l <"$tmp/found") headers are hip/local.mk's lists"
		fi
	else
		echo "FAIL: $CXX -MM on hip/fp8kv_hip.hip:"
		sed 's/^/  /' "$tmp/log" | head -n 8
		status=1
	fi
fi
exit $status
