#!/bin/sh
# SPDX-License-Identifier: MIT
# Developer tool: copies a built tree's binaries into .carry/ so that the
# GPU machine (which has no libtool and no Check) can run them with
# dev/device-run.sh.  Run from a build directory configured with
#   --with-hip --with-hip-platform=nvidia --with-cuda-arch=sm_90
set -eu
build=${1:-.}
dest=${2:-$(dirname "$0")/../.carry}
rm -rf "$dest"
mkdir -p "$dest/bin" "$dest/lib" "$dest/modules"
cp -a "$build"/lib/.libs/libfp8kv.so* "$dest/lib/"
cp -a "$build"/hip/.libs/fp8kv_hip.so "$dest/modules/"
# fp8kv-bench's GPU part (timer, streams, ceiling kernel), found beside it
cp -a "$build"/tools/.libs/fp8kv_bench_hip.so "$dest/modules/"
cp -a "$build"/tests/.libs/fp8kv_faulty.so "$dest/modules/" 2>/dev/null || true
for p in tests/test_backends tests/test_cache_write tests/test_convert tests/test_errors tests/exhaustive \
	 tools/fp8kv-validate tools/fp8kv-bench; do
	if [ -x "$build/$(dirname $p)/.libs/$(basename $p)" ]; then
		cp "$build/$(dirname $p)/.libs/$(basename $p)" "$dest/bin/"
	elif [ -x "$build/$p" ]; then
		cp "$build/$p" "$dest/bin/"
	fi
done
# Check's run-time dependency, absent on the GPU machine
for l in $(ldd "$dest/bin/test_backends" | awk '/subunit/ {print $3}'); do cp -L "$l" "$dest/lib/"; done
ls -R "$dest" | head -40
