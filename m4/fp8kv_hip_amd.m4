# SPDX-License-Identifier: MIT
#
# _FP8KV_CHECK_HIP_AMD: the HIP backend for AMD GPUs (FP8KV_CHECK_HIP,
# m4/fp8kv_hip.m4, calls it for --with-hip-platform=amd).
#
# HIPCC compiles the host code and the device code of the targets it
# accepts.  It may be hipcc, or a clang++ with HIP support: one that finds
# no ROCm device library for its code object version (clang 20 and later
# against Debian's ROCm 5.2) links device code with -nogpulib and
# hip/amd_device_compat.h instead, and emits code objects of version 5, the
# newest the ROCm 5 runtime the module links can load.
#
# Targets HIPCC rejects are tried with HIPCC_FALLBACK (default: hipcc, when
# HIPCC is another compiler): clang 22 no longer knows gfx940, Debian's
# hipcc (ROCm 5.2, clang 15) stops there.  The module then holds the code
# objects of both compilers in one bundle: hip/amd/hip-fatbin.sh compiles
# the device code of each target by its compiler and bundles them with a
# clang-offload-bundler that keeps every target's name (HIP_BUNDLER, found
# by a round trip), and HIPCC compiles the host code around that bundle.
#
# Sets: HIPCC, FP8KV_HIPCCFLAGS (everything HIPCC needs, its targets
# included), FP8KV_HIPCC_HOSTFLAGS (the host-only compile of a split
# build), HIPCC_FALLBACK and FP8KV_HIPCC_FALLBACK_FLAGS (its targets
# included), HIP_BUNDLER (also outside a split build, for the code-object
# checks; empty when none keeps the targets), HIP_LIBS, fp8kv_hip_targets,
# fp8kv_hip_main_targets, fp8kv_hip_fallback_targets, fp8kv_hip_split.

# _FP8KV_HIP_AMD_CONFTEST: conftest.hip, calling every device-library
# function hip/amd_device_compat.h stands in for, so that the device link
# proves them all
AC_DEFUN([_FP8KV_HIP_AMD_CONFTEST], [
  cat >conftest.hip <<_FP8KV_EOF
#include <hip/hip_runtime.h>
__global__ void fp8kv_probe(float *x, unsigned *u)
{
	const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
	x[[i]] = x[[i]] / 3.0f + __shfl_xor(x[[i]], 1);
	u[[i]] = __umulhi(u[[i]], gridDim.x);
	__threadfence();
	if (__syncthreads_or(u[[i]] != 0))
		u[[i]] = 0;
}
_FP8KV_EOF
])

# _FP8KV_HIP_AMD_FLAGS(COMPILER, PREFIX): the flags COMPILER needs, as
# PREFIX_common (host and device), PREFIX_device (device code only) and
# PREFIX_include (the compat header, spelt for the Makefile); PREFIX_probe
# is all three as configure's probes spell them.
AC_DEFUN([_FP8KV_HIP_AMD_FLAGS], [
  # exactness: no contraction, IEEE division, denormals kept (fp8kv.h section 5)
  $2_common="-O3 -ffp-contract=off -fvisibility=hidden"
  $2_device=
  $2_include=
  $2_probe_include=
  AC_MSG_CHECKING([whether $1 compiles HIP code])
  _FP8KV_HIP_TRY_CC([$1], [$$2_common], [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no])
     $2_probe_include="-include $fp8kv_abs_srcdir/hip/amd_device_compat.h"
     AC_MSG_CHECKING([whether $1 compiles HIP code without ROCm's device library])
     _FP8KV_HIP_TRY_CC([$1], [$$2_common -nogpulib $$2_probe_include],
       [AC_MSG_RESULT([yes, with hip/amd_device_compat.h])
        $2_device=-nogpulib
        $2_include='-include $(top_srcdir)/hip/amd_device_compat.h'],
       [AC_MSG_RESULT([no])
        rm -f conftest.hip
        AC_MSG_ERROR([$1 cannot compile a HIP kernel with $$2_common (see config.log)])])])
  AC_MSG_CHECKING([whether $1 accepts -std=c++17])
  _FP8KV_HIP_TRY_CC([$1], [$$2_common $$2_device $$2_probe_include -std=c++17 -Werror],
    [$2_common="$$2_common -std=c++17"; AC_MSG_RESULT([yes])], [AC_MSG_RESULT([no])])
  fp8kv_flags="-fno-gpu-flush-denormals-to-zero -fhip-fp32-correctly-rounded-divide-sqrt"
  # the module links ROCm 5's runtime, which loads code objects up to v5
  AS_IF([test -n "$$2_include"], [fp8kv_flags="$fp8kv_flags -mcode-object-version=5"])
  for fp8kv_flag in $fp8kv_flags; do
    AC_MSG_CHECKING([whether $1 accepts $fp8kv_flag])
    _FP8KV_HIP_TRY_CC([$1],
      [$$2_common $$2_device $$2_probe_include $fp8kv_flag -Werror],
      [$2_device="$$2_device $fp8kv_flag"; AC_MSG_RESULT([yes])],
      [AC_MSG_RESULT([no])])
  done
  $2_probe="$$2_common $$2_device $$2_probe_include"
])

# _FP8KV_HIP_AMD_CODE_OBJECT(COMPILER, FLAGS, TARGET): conftest-TARGET.co,
# the device code of conftest.hip for TARGET alone; fp8kv_ok=no if it fails
AC_DEFUN([_FP8KV_HIP_AMD_CODE_OBJECT], [
  AS_IF([$1 $HIPCCFLAGS $2 --offload-arch=$3 --cuda-device-only --no-gpu-bundle-output \
      -c conftest.hip -o conftest-$3.co >&AS_MESSAGE_LOG_FD 2>&1], [], [fp8kv_ok=no])
])

# _FP8KV_HIP_AMD_BUNDLER: HIP_BUNDLER, a clang-offload-bundler whose
# bundle of every target's code object lists each target by its name
# (a bundler whose LLVM no longer knows a target drops the name)
AC_DEFUN([_FP8KV_HIP_AMD_BUNDLER], [
  AC_MSG_CHECKING([for a clang-offload-bundler that keeps $fp8kv_hip_targets])
  fp8kv_ok=yes
  fp8kv_ids=
  fp8kv_inputs=
  for fp8kv_arch in $fp8kv_hip_main_targets; do
    _FP8KV_HIP_AMD_CODE_OBJECT([$HIPCC], [$fp8kv_hip_probe], [$fp8kv_arch])
    fp8kv_ids="$fp8kv_ids,hipv4-amdgcn-amd-amdhsa--$fp8kv_arch"
    fp8kv_inputs="$fp8kv_inputs -input=conftest-$fp8kv_arch.co"
  done
  for fp8kv_arch in $fp8kv_hip_fallback_targets; do
    _FP8KV_HIP_AMD_CODE_OBJECT([$HIPCC_FALLBACK], [$fp8kv_hipfb_probe], [$fp8kv_arch])
    fp8kv_ids="$fp8kv_ids,hipv4-amdgcn-amd-amdhsa--$fp8kv_arch"
    fp8kv_inputs="$fp8kv_inputs -input=conftest-$fp8kv_arch.co"
  done
  echo "$fp8kv_ids" | tr ',' '\n' | sed '/^$/d' | sort >conftest.want
  fp8kv_candidates=$HIP_BUNDLER
  AS_IF([test -z "$fp8kv_candidates"], [
    for fp8kv_cc in "$HIPCC" "$HIPCC_FALLBACK"; do
      fp8kv_cc=`command -v "$fp8kv_cc" 2>/dev/null` || continue
      fp8kv_cc=`readlink -f "$fp8kv_cc" 2>/dev/null || echo "$fp8kv_cc"`
      fp8kv_dir=`AS_DIRNAME(["$fp8kv_cc"])`
      # beside it, or in ROCm's llvm/bin beside its bin
      fp8kv_candidates="$fp8kv_candidates $fp8kv_dir/clang-offload-bundler"
      fp8kv_candidates="$fp8kv_candidates $fp8kv_dir/../llvm/bin/clang-offload-bundler"
    done
    # then those on PATH, the newest LLVM first
    fp8kv_save_IFS=$IFS; IFS=$PATH_SEPARATOR
    for fp8kv_dir in $PATH; do
      IFS=$fp8kv_save_IFS
      for fp8kv_b in "$fp8kv_dir"/clang-offload-bundler "$fp8kv_dir"/clang-offload-bundler-[[0-9]]*; do
        test -x "$fp8kv_b" && echo "$fp8kv_b"
      done
    done | sed 's/^\(.*-\([[0-9]]*\)\)$/\2 \1/; s/^\([[^0-9]]\)/0 \1/' | sort -rn -k1,1 -s |
      sed 's/^[[0-9]]* //' >conftest.cand
    IFS=$fp8kv_save_IFS
    fp8kv_candidates="$fp8kv_candidates `cat conftest.cand`"])
  HIP_BUNDLER=
  AS_IF([test $fp8kv_ok = yes], [
    for fp8kv_b in $fp8kv_candidates; do
      test -x "$fp8kv_b" || fp8kv_b=`command -v "$fp8kv_b" 2>/dev/null` || continue
      rm -f conftest.hipfb
      "$fp8kv_b" -type=o -bundle-align=4096 -targets="host-$host$fp8kv_ids" \
        -input=/dev/null $fp8kv_inputs -output=conftest.hipfb >&AS_MESSAGE_LOG_FD 2>&1 &&
      "$fp8kv_b" -list -type=o -input=conftest.hipfb 2>&AS_MESSAGE_LOG_FD |
        grep '^hipv4-' | sort >conftest.got &&
      cmp -s conftest.want conftest.got && { HIP_BUNDLER=$fp8kv_b; break; }
    done])
  AC_MSG_RESULT([${HIP_BUNDLER:-none}])
  rm -f conftest.cand conftest.want conftest.got
])

AC_DEFUN([_FP8KV_CHECK_HIP_AMD], [
  AS_CASE([$with_hip], [yes], [fp8kv_hip_prefix=], [fp8kv_hip_prefix=$with_hip])
  AS_IF([test -n "$fp8kv_hip_prefix" && test ! -d "$fp8kv_hip_prefix"],
    [AC_MSG_ERROR([--with-hip=$fp8kv_hip_prefix: no such directory])])
  fp8kv_hip_path=$PATH:/opt/rocm/bin
  AS_IF([test -n "$fp8kv_hip_prefix"], [fp8kv_hip_path=$fp8kv_hip_prefix/bin:$fp8kv_hip_path])
  AS_IF([test -z "$HIPCC"], [AC_PATH_PROG([HIPCC], [hipcc], [], [$fp8kv_hip_path])])
  AS_IF([test -z "$HIPCC"],
    [AC_MSG_ERROR([--with-hip: hipcc not found (give --with-hip=DIR, --with-hip-compiler=PROG or HIPCC=...)])])
  fp8kv_abs_srcdir=`cd "$srcdir" && pwd`

  _FP8KV_HIP_AMD_CONFTEST
  _FP8KV_HIP_AMD_FLAGS([$HIPCC], [fp8kv_hip])

  AS_IF([test -z "$with_hip_arch" || test "x$with_hip_arch" = xyes],
    [with_hip_arch="gfx90a gfx940 gfx942"])
  fp8kv_hip_main_targets=
  fp8kv_hip_rejected=
  for fp8kv_arch in `echo "$with_hip_arch" | tr ',' ' '`; do
    AC_MSG_CHECKING([whether $HIPCC builds for $fp8kv_arch])
    _FP8KV_HIP_TRY_CC([$HIPCC], [$fp8kv_hip_probe --offload-arch=$fp8kv_arch],
      [fp8kv_hip_main_targets="$fp8kv_hip_main_targets $fp8kv_arch"; AC_MSG_RESULT([yes])],
      [fp8kv_hip_rejected="$fp8kv_hip_rejected $fp8kv_arch"; AC_MSG_RESULT([no])])
  done

  # the targets HIPCC rejects, by a second compiler
  fp8kv_hip_fallback_targets=
  AS_IF([test -n "$fp8kv_hip_rejected" && test -z "$HIPCC_FALLBACK"], [
    AC_PATH_PROG([fp8kv_hip_hipcc], [hipcc], [], [$fp8kv_hip_path])
    fp8kv_a=`command -v "$HIPCC" 2>/dev/null`
    fp8kv_a=`readlink -f "$fp8kv_a" 2>/dev/null || echo "$fp8kv_a"`
    fp8kv_b=`readlink -f "$fp8kv_hip_hipcc" 2>/dev/null || echo "$fp8kv_hip_hipcc"`
    AS_IF([test -n "$fp8kv_hip_hipcc" && test "x$fp8kv_a" != "x$fp8kv_b"],
      [HIPCC_FALLBACK=$fp8kv_hip_hipcc])])
  AS_IF([test -n "$fp8kv_hip_rejected" && test -n "$HIPCC_FALLBACK"], [
    _FP8KV_HIP_AMD_FLAGS([$HIPCC_FALLBACK], [fp8kv_hipfb])
    for fp8kv_arch in $fp8kv_hip_rejected; do
      AC_MSG_CHECKING([whether $HIPCC_FALLBACK builds for $fp8kv_arch])
      _FP8KV_HIP_TRY_CC([$HIPCC_FALLBACK], [$fp8kv_hipfb_probe --offload-arch=$fp8kv_arch],
        [fp8kv_hip_fallback_targets="$fp8kv_hip_fallback_targets $fp8kv_arch"
         AC_MSG_RESULT([yes])],
        [AC_MSG_RESULT([no])])
    done])
  for fp8kv_arch in $fp8kv_hip_rejected; do
    AS_CASE([" $fp8kv_hip_fallback_targets "], [*" $fp8kv_arch "*], [],
      [AC_MSG_WARN([no HIP compiler builds for $fp8kv_arch: skipped])])
  done
  fp8kv_hip_main_targets=`echo $fp8kv_hip_main_targets`
  fp8kv_hip_fallback_targets=`echo $fp8kv_hip_fallback_targets`
  fp8kv_hip_targets=
  for fp8kv_arch in `echo "$with_hip_arch" | tr ',' ' '`; do
    AS_CASE([" $fp8kv_hip_main_targets $fp8kv_hip_fallback_targets "], [*" $fp8kv_arch "*],
      [fp8kv_hip_targets="$fp8kv_hip_targets $fp8kv_arch"])
  done
  fp8kv_hip_targets=`echo $fp8kv_hip_targets`
  AS_IF([test -z "$fp8kv_hip_targets"],
    [rm -f conftest.hip
     AC_MSG_ERROR([no HIP compiler builds for any of the targets "$with_hip_arch" (--with-hip-arch)])])
  fp8kv_hip_split=no
  AS_IF([test -n "$fp8kv_hip_fallback_targets"], [fp8kv_hip_split=yes])

  _FP8KV_HIP_AMD_BUNDLER
  AS_IF([test $fp8kv_hip_split = yes], [
    AS_IF([test -z "$HIP_BUNDLER"],
      [AC_MSG_ERROR([no clang-offload-bundler keeps "$fp8kv_hip_targets" in one bundle (set HIP_BUNDLER)])])
    AC_MSG_CHECKING([whether $HIPCC compiles host code around a prebuilt device bundle])
    AS_IF([$HIPCC $HIPCCFLAGS $fp8kv_hip_common $fp8kv_hip_probe_include --cuda-host-only \
           -Xclang -fcuda-include-gpubinary -Xclang conftest.hipfb \
           -c conftest.hip -o conftest.$OBJEXT >&AS_MESSAGE_LOG_FD 2>&1 &&
           grep __CLANG_OFFLOAD_BUNDLE__ conftest.$OBJEXT >/dev/null 2>&1],
      [AC_MSG_RESULT([yes])],
      [AC_MSG_RESULT([no])
       AC_MSG_ERROR([$HIPCC cannot embed the code objects of $HIPCC_FALLBACK (see config.log)])])])
  rm -f conftest.hip conftest.hipfb conftest.$OBJEXT conftest-*.co

  # the runtime: where the compiler lives first (DIR/lib for DIR/bin/hipcc),
  # then the linker's default paths, then DIR and /opt/rocm; a directory
  # only if it holds the library (HIPCC may be a bare name, or a clang
  # whose lib/ has none)
  fp8kv_hip_root=`command -v "$HIPCC" 2>/dev/null || echo "$HIPCC"`
  fp8kv_hip_root=`AS_DIRNAME(["$fp8kv_hip_root"])`
  fp8kv_hip_root=`AS_DIRNAME(["$fp8kv_hip_root"])`
  AC_MSG_CHECKING([for the HIP runtime (libamdhip64)])
  fp8kv_hip_found=no
  for fp8kv_dir in "$fp8kv_hip_root/lib" default \
      ${fp8kv_hip_prefix:+"$fp8kv_hip_prefix/lib"} /opt/rocm/lib; do
    AS_IF([test "x$fp8kv_dir" = xdefault], [fp8kv_hip_ldirs=; fp8kv_hip_rdirs=],
      [ls "$fp8kv_dir"/libamdhip64.* >/dev/null 2>&1], [_FP8KV_HIP_LIBDIR([$fp8kv_dir])],
      [continue])
    _FP8KV_HIP_LINK_TRY([$fp8kv_hip_ldirs -lamdhip64], [hipGetDeviceCount],
      [fp8kv_hip_found=yes; break])
  done
  AS_IF([test $fp8kv_hip_found = no],
    [AC_MSG_RESULT([no])
     AC_MSG_ERROR([libamdhip64 not found next to $HIPCC, in the default paths or /opt/rocm/lib])])
  HIP_LIBS=`echo $fp8kv_hip_ldirs $fp8kv_hip_rdirs -lamdhip64`
  AC_MSG_RESULT([$HIP_LIBS])

  fp8kv_warn=
  AS_IF([test "x$enable_warnings" = xyes], [fp8kv_warn=" -Wall -Wextra"])
  fp8kv_archflags=
  for fp8kv_arch in $fp8kv_hip_main_targets; do
    fp8kv_archflags="$fp8kv_archflags --offload-arch=$fp8kv_arch"
  done
  FP8KV_HIPCCFLAGS=`echo $fp8kv_hip_common $fp8kv_hip_device $fp8kv_hip_include$fp8kv_archflags$fp8kv_warn`
  FP8KV_HIPCC_HOSTFLAGS=`echo $fp8kv_hip_common $fp8kv_hip_include$fp8kv_warn`
  AS_IF([test $fp8kv_hip_split = yes], [
    fp8kv_archflags=
    for fp8kv_arch in $fp8kv_hip_fallback_targets; do
      fp8kv_archflags="$fp8kv_archflags --offload-arch=$fp8kv_arch"
    done
    FP8KV_HIPCC_FALLBACK_FLAGS=`echo $fp8kv_hipfb_common $fp8kv_hipfb_device $fp8kv_hipfb_include$fp8kv_archflags$fp8kv_warn`])
])
