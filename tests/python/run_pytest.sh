#!/bin/sh
# SPDX-License-Identifier: MIT
# make check: runs the Python package's tests (tests/python) with the
# interpreter configure chose, against the copy of the package staged in
# python/check/ (its _paths.py names the build tree's lib/.libs).  Skips
# (exit 77) when that interpreter lacks pytest or numpy.
: "${PYTHON:=python3}"
: "${srcdir:=.}"
: "${abs_top_builddir:=$(pwd)}"
if [ "${FP8KV_SANITIZERS:-no}" = yes ]; then
	# The interpreter is not built with ASan, whose runtime must be the
	# first library of the process: preload the one libfp8kv links (its
	# subprocesses inherit it).  The interpreter's own allocations are
	# never freed at exit, so no leak report; the library's errors stay
	# fatal (its UBSan is built not to recover).
	asan=$(ldd "$abs_top_builddir/lib/.libs/libfp8kv.so" 2>/dev/null |
		sed -n 's/^[[:space:]]*libasan[^ ]* => \([^ ]*\) .*/\1/p')
	if [ -z "$asan" ] || [ ! -f "$asan" ]; then
		# clang links its ASan runtime into executables only
		echo "run_pytest.sh: a sanitizer build whose libfp8kv links no libasan" \
			"(clang's static runtime?): nothing to preload; skipped"
		exit 77
	fi
	# ASan finds the C++ runtime's __cxa_throw when it starts, and aborts
	# at the first C++ exception (torch's) if it was not loaded by then
	cxx=$("$PYTHON" -c 'import ctypes.util; print(ctypes.util.find_library("stdc++") or "")' \
		2>/dev/null)
	LD_PRELOAD=$asan${cxx:+:$cxx}${LD_PRELOAD:+:$LD_PRELOAD}
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}
	export LD_PRELOAD ASAN_OPTIONS
fi
if ! "$PYTHON" -c 'import numpy, pytest' 2>/dev/null; then
	echo "run_pytest.sh: $PYTHON lacks numpy or pytest; skipped"
	exit 77
fi
PYTHONPATH=$abs_top_builddir/python/check${PYTHONPATH:+:$PYTHONPATH}
FP8KV_STRUCT_LAYOUT=$abs_top_builddir/tests/python/struct_layout
# The staged package's own path decides, as an installed one's does.
unset FP8KV_LIBRARY
export PYTHONPATH FP8KV_STRUCT_LAYOUT
# No bytecode and no .pytest_cache: the source tree may be read-only.
exec "$PYTHON" -B -m pytest -p no:cacheprovider -q -rs "$srcdir/tests/python"
