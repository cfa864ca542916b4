#!/bin/sh
# SPDX-License-Identifier: MIT
# check_setuid.sh - FP8KV_MODULE_PATH and FP8KV_BACKEND choose code to
# load, so a setuid program ignores them, as the loader ignores
# LD_LIBRARY_PATH.  tests/setuid_probe runs twice with both variables
# naming the planted module (tests/planted_module.c), whose constructor
# leaves a marker file:
#   - plainly: the module must load (the marker appears), which shows the
#     test can see a load;
#   - as a setuid program owned by another user (AT_SECURE): the marker
#     must not appear.
# Needs root (to give the probe to another user); skips (77) without it,
# without such a user, or where the file system ignores the setuid bit.
set -u
builddir=${abs_top_builddir:-.}
probe=$builddir/tests/setuid_probe
modules=$builddir/tests/.libs

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: not root: cannot make a setuid program of another user"
	exit 77
fi
owner=nobody
if ! id "$owner" >/dev/null 2>&1; then
	echo "SKIP: no user '$owner'"
	exit 77
fi
if [ "${FP8KV_SANITIZERS:-no}" = yes ]; then
	# a setuid process is not dumpable, and LeakSanitizer ends it at
	# start whatever ASAN_OPTIONS says; the other builds run this test
	echo "SKIP: an --enable-sanitizers build"
	exit 77
fi
[ -x "$probe" ] || { echo "ERROR: $probe not built"; exit 99; }
[ -f "$modules/fp8kv_planted.so" ] || { echo "ERROR: $modules/fp8kv_planted.so not built"; exit 99; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fp8kv-setuid.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT HUP INT TERM
chmod 755 "$tmp"
mkdir "$tmp/markers" && chmod 777 "$tmp/markers"

run() { # mode marker
	FP8KV_MODULE_PATH=$modules FP8KV_BACKEND=planted FP8KV_PLANTED_MARKER=$2 \
		"$3" "$1"
}

# 1. plainly: the module is loaded
run plain "$tmp/markers/plain" "$probe" || { echo "FAIL: the probe failed"; exit 1; }
if [ ! -e "$tmp/markers/plain" ]; then
	echo "FAIL: without setuid the planted module was not loaded: the test sees nothing"
	exit 1
fi

# 2. setuid: the variables are ignored
cp "$probe" "$tmp/probe"
chown "$owner" "$tmp/probe" && chmod 4755 "$tmp/probe" || {
	echo "SKIP: cannot make $tmp/probe setuid"
	exit 77
}
run secure "$tmp/markers/secure" "$tmp/probe" >"$tmp/secure.out"
st=$?
cat "$tmp/secure.out"
if [ $st = 77 ]; then
	echo "SKIP: the setuid bit did not take (file system mounted nosuid?)"
	exit 77
fi
[ $st = 0 ] || { echo "FAIL: the setuid probe failed ($st)"; exit 1; }
if [ -e "$tmp/markers/secure" ]; then
	echo "FAIL: a setuid program loaded a module from FP8KV_MODULE_PATH"
	exit 1
fi
# FP8KV_BACKEND=planted, honoured, would make "auto" fail (no such module
# outside FP8KV_MODULE_PATH); ignored, "auto" opens a backend
if ! grep -q '^open("auto"): success' "$tmp/secure.out"; then
	echo "FAIL: a setuid program followed FP8KV_BACKEND"
	exit 1
fi
echo "PASS: FP8KV_MODULE_PATH and FP8KV_BACKEND are ignored under AT_SECURE"
exit 0
