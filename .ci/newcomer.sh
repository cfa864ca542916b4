#!/bin/sh
# SPDX-License-Identifier: MIT
#
# newcomer.sh - a new user's whole path, as issue 33 walked it, on Debian 12
# as root with Debian's /usr/bin/python3 and python3-torch installed:
#
#   1. ./configure && make && make install && ldconfig; then, from a clean
#      PATH, /usr/bin/python3 imports fp8kv and writes a cache from numpy,
#      importlib.metadata knows the package, the tools run from PATH, and
#      fp8kv.backends() reports one OpenMP thread per processor even after
#      torch is imported;
#   2. ./configure --prefix=/usr and make install DESTDIR=...: the package
#      lands in Debian's /usr/lib/python3/dist-packages, and its _paths.py
#      names no library (the loader decides);
#   3. python3 -m venv --system-site-packages and pip install
#      --no-build-isolation of a git checkout (and of the make dist tarball
#      that an earlier distcheck left in SOURCE, when there is one): import,
#      write and metadata from the venv, the library and tools in the venv;
#   4. make uninstall and ldconfig: nothing of fp8kv is left in /usr/local,
#      and /usr/bin/python3 no longer imports it.
#
#   sh .ci/newcomer.sh [SOURCE]      (SOURCE: a git tree, default .)
#
# It clones SOURCE into a fresh directory and installs into /usr/local (step
# 4 removes it again, also when a step fails).  Needs root, git, the build
# tools of the README, python3-numpy, python3-pip, python3-venv,
# python3-setuptools, python3-wheel; python3-torch for the thread check
# (skipped without it).  Exit: 0 pass, 1 fail.
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
unset PYTHONPATH FP8KV_LIBRARY FP8KV_NUM_THREADS OMP_NUM_THREADS LD_LIBRARY_PATH || true
PY=/usr/bin/python3
me=newcomer
src=$(cd "${1:-.}" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/fp8kv-newcomer.XXXXXX")
tree=$work/fp8kv
jobs=-j$(nproc)
installed=no

die() {
	echo "$me: FAIL: $*" >&2
	exit 1
}
step() { echo "== $me: $*"; }

cleanup() {
	rc=$?
	if [ "$installed" = yes ]; then
		step "make uninstall (cleanup)"
		make -C "$tree/build/local" uninstall >/dev/null 2>&1 || rc=1
		ldconfig
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

[ "$(id -u)" = 0 ] || die "run me as root (make install into /usr/local, ldconfig)"
if [ -e /usr/local/lib/libfp8kv.so.1 ] || $PY -c 'import fp8kv' 2>/dev/null; then
	die "an fp8kv is already installed; this check needs a machine without one"
fi

# The write every step makes: numpy arrays, every written byte against
# fp8kv.from_float, every other byte still poisoned; then the package's
# version, its metadata, the library it loaded and the CPU backend.
cat >"$work/write.py" <<'EOF'
import importlib.metadata
import sys
import numpy as np
import fp8kv

rng = np.random.default_rng(33)
key = rng.standard_normal((6, 2, 16)).astype(np.float32) * 100
value = rng.standard_normal((6, 2, 16)).astype(np.float32)
k_cache = np.full((4, 4, 2, 16), 0xA5, np.uint8)
v_cache = k_cache.copy()
slots = np.array([3, 0, 15, -1, 7, 8], np.int64)
fp8kv.reshape_and_cache(key, value, k_cache, v_cache, slots, format="e4m3fn")
for cache, x in ((k_cache, key), (v_cache, value)):
    for s in range(16):
        row = cache[s // 4, s % 4]
        if s in slots:
            t = list(slots).index(s)
            want = [[fp8kv.from_float(float(e), "e4m3fn") for e in h] for h in x[t]]
            assert (row == np.array(want, np.uint8)).all(), (s, row, want)
        else:
            assert (row == 0xA5).all(), ("slot %d was written" % s, row)
print("write: ok")
meta = importlib.metadata.version("fp8kv")
assert meta == fp8kv.__version__, (meta, fp8kv.__version__)
print("version: %s (metadata %s), library %s from %s"
      % (fp8kv.__version__, meta, fp8kv.version(), fp8kv._capi.LIBRARY_PATH))
print("backends: %s" % (fp8kv.backends(),))
EOF

# torch sets libgomp's global count on import: the CPU backend keeps its own
cat >"$work/threads.py" <<'EOF'
import os
import torch
import fp8kv
procs = len(os.sched_getaffinity(0))
want = "host CPU, %d OpenMP thread%s" % (procs, "" if procs == 1 else "s")
got = [b.device for b in fp8kv.backends() if b.name == "cpu"][0]
print("threads: torch %s uses %d, fp8kv says %r"
      % (torch.__version__, torch.get_num_threads(), got))
assert got == want, (got, want)
EOF

step "fresh clone of $src"
git clone -q "$src" "$tree"
cd "$tree"
autoreconf -fi >/dev/null 2>&1 || die "autoreconf -fi"

step "1. ./configure && make && make install && ldconfig"
mkdir -p build/local
(cd build/local && ../../configure >"$work/configure.log" 2>&1) ||
	{ cat "$work/configure.log"; die "configure"; }
grep -E '^ +(OpenMP|Python)' "$work/configure.log" | sed 's/^ */    /'
make -C build/local "$jobs" >"$work/make.log" 2>&1 ||
	{ tail -30 "$work/make.log"; die "make"; }
installed=yes
make -C build/local install >"$work/install.log" 2>&1 ||
	{ tail -30 "$work/install.log"; die "make install"; }
ldconfig
short=$($PY -c 'import sys; print("%d.%d" % sys.version_info[:2])')
site=/usr/local/lib/python$short/dist-packages
[ -f "$site/fp8kv/__init__.py" ] || die "the package is not in $site"
ls -d "$site"/fp8kv-*.dist-info >/dev/null || die "no fp8kv-*.dist-info in $site"
echo "    package in $site"
(cd / && $PY -c 'import fp8kv') || die "/usr/bin/python3 -c 'import fp8kv'"
(cd / && $PY "$work/write.py") || die "the numpy write with /usr/bin/python3"
(cd / && $PY -c 'import fp8kv._capi as c, sys; sys.exit(c.LIBRARY_PATH != c.SONAME)') ||
	die "the installed package did not load libfp8kv.so.1 through the loader"
command -v fp8kv-validate >/dev/null || die "fp8kv-validate is not on PATH"
fp8kv-validate --version || die "fp8kv-validate does not run from PATH"
fp8kv-bench --version || die "fp8kv-bench does not run from PATH"
if $PY -c 'import torch' 2>/dev/null; then
	(cd / && $PY "$work/threads.py") || die "torch lowered the CPU backend's threads"
else
	echo "    skip: no torch for /usr/bin/python3: the thread check needs python3-torch"
fi

step "2. ./configure --prefix=/usr && make install DESTDIR"
mkdir -p build/usr
(cd build/usr && ../../configure --prefix=/usr >"$work/configure-usr.log" 2>&1) ||
	{ cat "$work/configure-usr.log"; die "configure --prefix=/usr"; }
make -C build/usr "$jobs" >"$work/make-usr.log" 2>&1 ||
	{ tail -30 "$work/make-usr.log"; die "make"; }
dest=$work/destdir
make -C build/usr install DESTDIR="$dest" >"$work/install-usr.log" 2>&1 ||
	{ tail -30 "$work/install-usr.log"; die "make install DESTDIR"; }
debsite=$dest/usr/lib/python3/dist-packages
[ -f "$debsite/fp8kv/__init__.py" ] || {
	find "$dest" -name __init__.py -path '*fp8kv*' | head -3
	die "the package is not under DESTDIR/usr/lib/python3/dist-packages"
}
ls -d "$debsite"/fp8kv-*.dist-info >/dev/null || die "no fp8kv-*.dist-info in $debsite"
grep -qx 'LIBRARY = None' "$debsite/fp8kv/_paths.py" &&
	grep -qx 'FALLBACK = None' "$debsite/fp8kv/_paths.py" ||
	{ cat "$debsite/fp8kv/_paths.py"; die "/usr's _paths.py names a library"; }
if grep -rq "$dest" "$debsite/fp8kv" "$dest/usr/lib/pkgconfig" 2>/dev/null; then
	die "installed files name the DESTDIR"
fi
echo "    package in DESTDIR/usr/lib/python3/dist-packages, _paths.py names no library"

step "3. python3 -m venv --system-site-packages; pip install --no-build-isolation"
venv=$work/venv
$PY -m venv --system-site-packages "$venv" || die "python3 -m venv"
# the tree as a newcomer has it: git's files, no build of its own
git clone -q "$src" "$work/pipsrc"
"$venv/bin/pip" install --no-build-isolation "$work/pipsrc" >"$work/pip.log" 2>&1 ||
	{ tail -40 "$work/pip.log"; die "pip install"; }
(cd / && "$venv/bin/python" "$work/write.py") || die "the numpy write from the venv"
(cd / && "$venv/bin/python" -c 'import fp8kv._capi as c, sys
sys.exit(not c.LIBRARY_PATH.startswith(sys.prefix + "/"))') ||
	die "the venv's package does not load the venv's library"
"$venv/bin/fp8kv-validate" --version || die "the venv's fp8kv-validate"
if "$venv/bin/python" -c 'import torch' 2>/dev/null; then
	(cd / && "$venv/bin/python" "$work/threads.py") || die "torch lowered the threads (venv)"
fi

# the make dist tarball that an earlier distcheck left in SOURCE, if any
tarball=$(ls -t "$src"/fp8kv-*.tar.gz 2>/dev/null | head -n 1 || true)
if [ -n "$tarball" ]; then
	step "3b. pip install --no-build-isolation $(basename "$tarball")"
	$PY -m venv --system-site-packages "$work/venv2" || die "python3 -m venv"
	"$work/venv2/bin/pip" install --no-build-isolation "$tarball" >"$work/pip2.log" 2>&1 ||
		{ tail -40 "$work/pip2.log"; die "pip install of the tarball"; }
	(cd / && "$work/venv2/bin/python" "$work/write.py") || die "the write from the tarball's venv"
else
	echo "    skip: no fp8kv-*.tar.gz in $src (make distcheck leaves one)"
fi

step "4. make uninstall && ldconfig: nothing left"
installed=no
make -C build/local uninstall >"$work/uninstall.log" 2>&1 ||
	{ tail "$work/uninstall.log"; die "make uninstall"; }
ldconfig
left=$(find /usr/local -path '*fp8kv*' 2>/dev/null | head -5)
[ -z "$left" ] || die "make uninstall left: $left"
if (cd / && $PY -c 'import fp8kv' 2>/dev/null); then
	die "/usr/bin/python3 still imports fp8kv after make uninstall"
fi
ldconfig -p | grep -q libfp8kv && die "ldconfig still knows libfp8kv"
echo "$me: PASS"
