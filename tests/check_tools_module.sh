#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check_tools_module.sh - fp8kv-bench needs no GPU runtime, and its GPU
# part, the module fp8kv_bench_hip.so, is a module as the backends are:
#   - fp8kv-bench does not need libamdhip64 or libcudart (DT_NEEDED);
#   - fp8kv_bench_hip.so exports fp8kv_bench_device_entry and nothing else
#     of its own (__hip_cuid_* is the HIP compiler's), and needs no symbol
#     of libfp8kv, nor libfp8kv itself.
# Skipped (77) where the HIP backend is not built (no --with-hip).
#
# Run by make check, which sets abs_top_builddir and NM.  Exit: 0 pass,
# 1 fail, 77 skip, 99 a tool missing.
set -u
LC_ALL=C
export LC_ALL

builddir=${abs_top_builddir:-.}
NM=${NM:-nm}
READELF=${READELF:-readelf}
module=$builddir/tools/.libs/fp8kv_bench_hip.so
bench=$builddir/tools/.libs/fp8kv-bench
[ -f "$bench" ] || bench=$builddir/tools/fp8kv-bench # linked without libtool's wrapper
if ! grep -q '^#define FP8KV_HIP_TARGETS ' "$builddir/config.h"; then
	echo "SKIP: no HIP backend in this build (configure --with-hip)"
	exit 77
fi
if [ ! -f "$module" ]; then
	echo "FAIL: the HIP backend is built, but not $module"
	exit 1
fi
if ! "$READELF" --version >/dev/null 2>&1; then
	echo "ERROR: $READELF not found (binutils)"
	exit 99
fi
fail=0

needed() {
	"$READELF" -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'
}

runtime=$(needed "$bench" | grep -E '^lib(amdhip64|cudart|hiprtc|cuda)\.')
if [ -n "$runtime" ]; then
	echo "FAIL: fp8kv-bench needs the GPU runtime: $runtime"
	fail=1
else
	echo "ok: fp8kv-bench needs $(needed "$bench" | tr '\n' ' ')"
fi

# shellcheck disable=SC2086 # $NM may be "nm -B"
stray=$($NM -D --defined-only "$module" | awk '{ print $NF }' | sed 's/@.*//' |
	grep -Ev '^(fp8kv_bench_device_entry|__hip_cuid_[0-9a-f]+|_init|_fini|_edata|_end|__bss_start)$')
if [ -n "$stray" ]; then
	echo "FAIL: fp8kv_bench_hip.so exports more than fp8kv_bench_device_entry:"
	echo "$stray" | sed 's/^/  /'
	fail=1
fi
# shellcheck disable=SC2086
if ! $NM -D --defined-only "$module" | grep -q ' T fp8kv_bench_device_entry$'; then
	echo "FAIL: fp8kv_bench_hip.so does not export the function fp8kv_bench_device_entry"
	fail=1
fi
# shellcheck disable=SC2086
libfp8kv=$( { $NM -D --undefined-only "$module" | grep ' fp8kv_'; needed "$module" | grep '^libfp8kv'; })
if [ -n "$libfp8kv" ]; then
	echo "FAIL: fp8kv_bench_hip.so needs libfp8kv:"
	echo "$libfp8kv" | sed 's/^/  /'
	fail=1
fi
[ $fail = 0 ] && echo "PASS: fp8kv_bench_hip.so exports fp8kv_bench_device_entry only, needs no libfp8kv"
exit $fail
