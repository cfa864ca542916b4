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
	# The interpreter is not built with ASan, whose runtime must come first:
	# a sanitised libfp8kv cannot load in it.  The C tests cover that build.
	echo "run_pytest.sh: an --enable-sanitizers build; skipped"
	exit 77
fi
if ! "$PYTHON" -c 'import numpy, pytest' 2>/dev/null; then
	echo "run_pytest.sh: $PYTHON lacks numpy or pytest; skipped"
	exit 77
fi
PYTHONPATH=$abs_top_builddir/python/check${PYTHONPATH:+:$PYTHONPATH}
FP8KV_STRUCT_LAYOUT=$abs_top_builddir/tests/python/struct_layout
# The staged package's own path decides, as an installed one's does.
unset FP8KV_LIBRARY FP8KV_NO_TORCH
export PYTHONPATH FP8KV_STRUCT_LAYOUT
# No bytecode and no .pytest_cache: the source tree may be read-only.
exec "$PYTHON" -B -m pytest -p no:cacheprovider -q -rs "$srcdir/tests/python"
