#!/bin/sh
# SPDX-License-Identifier: MIT
# Developer tool: the HIP backend module built for the host CPU with
# HIP-CPU (github.com/ROCm/HIP-CPU, a header-only HIP runtime that runs
# kernels as fibers, lanes and shuffles included), so that the AMD-side
# device code (no NVIDIA inline PTX: hardware FP8 conversion, divide_recip
# and max.u16x2 stay out) can be held to the CPU backend without a GPU:
#
#   dev/hipcpu-module.sh HIP_CPU_DIR BUILD_DIR [OUT_DIR]
#   FP8KV_MODULE_PATH=OUT_DIR FP8KV_TEST_BACKENDS=hip BUILD_DIR/tests/test_backends
#
# HIP_CPU_DIR is a HIP-CPU checkout (read at build time, never part of
# this tree); BUILD_DIR a configured build of this tree (its config.h);
# OUT_DIR (default /tmp/fp8kv-hipcpu) receives fp8kv_hip.so.  Needs
# clang++ (GCC 12 fails on the module with an internal error) and TBB
# (Debian: libtbb-dev).  The sources are copied and adapted, not changed:
# kernel<<<...>>>(args) becomes hipLaunchKernelGGL, and a shim adds what
# HIP-CPU lacks (__syncthreads_or, __umulhi, stream capture queries).
# Timings mean nothing here; bytes do.
set -eu
hipcpu=${1:?usage: $0 HIP_CPU_DIR BUILD_DIR [OUT_DIR]}
build=${2:?usage: $0 HIP_CPU_DIR BUILD_DIR [OUT_DIR]}
out=${3:-/tmp/fp8kv-hipcpu}
top=$(cd "$(dirname "$0")/.." && pwd)
cxx=${CXX_HIPCPU:-clang++}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fp8kv-hipcpu.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out" "$tmp/src"
cp "$top"/hip/*.h "$top"/hip/*.hip "$tmp/src/"
sed -i 's/\([A-Za-z_0-9][A-Za-z_0-9<>:]*\)<<<\([^>]*\)>>>(/hipLaunchKernelGGL(\1, \2, /' \
	"$tmp"/src/*.h "$tmp"/src/*.hip
# HIP-CPU's device properties have no gcnArchName; its host allocations
# take one kind at a time
sed -i 's/prop\.gcnArchName/"hip-cpu"/; s/hipHostMallocMapped | hipHostMallocCoherent/hipHostMallocMapped/' \
	"$tmp/src/fp8kv_hip.hip"
cat >"$tmp/shim.h" <<'EOF'
#include <hip/hip_runtime.h>
#include <algorithm>
using std::max;
using std::min;
#define __noinline__ __attribute__((noinline))
/* the block's OR of p: __shared__ is thread_local in HIP-CPU, and the
 * fibers of a block share one thread */
static inline int __syncthreads_or(int p)
{
	static thread_local int acc;
	__syncthreads();
	if (threadIdx.x == 0)
		acc = 0;
	__syncthreads();
	if (p)
		acc = 1;
	__syncthreads();
	const int r = acc;
	__syncthreads();
	return r;
}
static inline unsigned int __umulhi(unsigned int a, unsigned int b)
{
	return (unsigned int)(((unsigned long long)a * b) >> 32);
}
typedef enum {
	hipStreamCaptureStatusNone = 0,
	hipStreamCaptureStatusActive = 1
} hipStreamCaptureStatus;
static inline hipError_t hipStreamIsCapturing(hipStream_t, hipStreamCaptureStatus *s)
{
	*s = hipStreamCaptureStatusNone;
	return hipSuccess;
}
EOF
"$cxx" -std=c++17 -O1 -fPIC -shared -ffp-contract=off -fvisibility=hidden \
	-include "$tmp/shim.h" -I"$hipcpu/include" -I"$build" -I"$top/include" -I"$top/lib" \
	-I"$tmp/src" -x c++ "$tmp/src/fp8kv_hip.hip" -o "$out/fp8kv_hip.so" -ltbb -lpthread
echo "$out/fp8kv_hip.so"
