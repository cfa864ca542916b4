# SPDX-License-Identifier: MIT
#
# FP8KV_CHECK_HIP: the HIP backend (the module hip/fp8kv_hip.la, or linked
# into libfp8kv), off by default.
#
#   --with-hip[=DIR]          build it; DIR is a ROCm prefix (DIR/bin/hipcc)
#   --with-hip-platform=amd   hipcc for AMD GPUs (default), or
#                      nvidia nvcc compiles the same sources (-x cu) against
#                             the CUDA runtime (hip/hip_compat.h)
#   --with-hip-compiler=PROG  the compiler (HIPCC=PROG): for AMD, hipcc or a
#                             clang++ with HIP support (m4/fp8kv_hip_amd.m4)
#   --with-hip-arch=LIST      AMD targets to try (--offload-arch)
#   --enable-amd-hw-fp8       AMD: hardware FP8 conversions (hip/amd_hw_fp8.h,
#                             hip/amd_hw_mx.h)
#   --with-cuda=DIR           CUDA toolkit for the nvidia platform
#   --with-cuda-arch=LIST     NVIDIA targets to try (sm_NN)
#   --disable-hip-module      link the backend into libfp8kv instead
#   HIPCC, HIPCCFLAGS         the compiler and extra flags for it
#   HIPCC_FALLBACK, HIP_BUNDLER  AMD: a second compiler for the targets
#                             HIPCC rejects, and the bundler joining both
#
# Every requested target is probed with a tiny compile; those no compiler
# builds are dropped with a warning, and none left is an error.  Nothing
# here touches LIBS: only the module (and the benchmark's GPU part) links
# the GPU runtime, never libfp8kv.
#
# Substitutes: HIPCC, HIPCCFLAGS (user), FP8KV_HIPCCFLAGS (ours: targets,
# exactness, visibility, warnings), HIP_LIBS (runtime, with -L and -R when
# not in a system directory), and for AMD FP8KV_HIPCC_HOSTFLAGS,
# HIPCC_FALLBACK, FP8KV_HIPCC_FALLBACK_FLAGS, HIP_BUNDLER,
# FP8KV_HIP_MAIN_TARGETS and FP8KV_HIP_FALLBACK_TARGETS.  Sets the HAVE_HIP
# conditional (the backend is built), HIP_MODULE (as fp8kv_hip.so) or
# HIP_LINKED (into libfp8kv, and the FP8KV_HIP_LINKED define), HIP_AMD and
# HIP_SPLIT (AMD code objects from two compilers), the FP8KV_HIP_TARGETS
# define and the shell variable fp8kv_hip_summary.
AC_DEFUN([FP8KV_CHECK_HIP], [
AC_ARG_WITH([hip],
  [AS_HELP_STRING([--with-hip@<:@=DIR@:>@],
    [build the HIP backend, as the module fp8kv_hip.so unless
     --disable-hip-module (default: no).  hipcc is taken from DIR/bin when
     DIR is given, else from PATH, then /opt/rocm/bin])],
  [], [with_hip=no])
AC_ARG_WITH([hip-platform],
  [AS_HELP_STRING([--with-hip-platform=amd|nvidia],
    [GPUs the HIP backend is built for: amd (hipcc, default) or nvidia (nvcc
     compiles the same sources against the CUDA runtime)])],
  [], [with_hip_platform=amd])
AC_ARG_WITH([hip-compiler],
  [AS_HELP_STRING([--with-hip-compiler=PROG],
    [the HIP compiler, as HIPCC=PROG: for AMD, hipcc (default) or a clang++
     with HIP support, e.g. clang++-22 (targets it rejects go to
     HIPCC_FALLBACK); for nvidia, nvcc])],
  [AS_CASE([$withval], [yes | no | ""],
     [AC_MSG_ERROR([--with-hip-compiler needs a program, e.g. --with-hip-compiler=clang++-22])])
   HIPCC=$withval], [])
AC_ARG_WITH([hip-arch],
  [AS_HELP_STRING([--with-hip-arch=LIST],
    [AMD targets to build for, e.g. "gfx90a gfx942 gfx950" (default:
     "gfx90a gfx940 gfx942"); those neither HIPCC nor HIPCC_FALLBACK
     builds are skipped])],
  [], [with_hip_arch=])
AC_ARG_ENABLE([amd-hw-fp8],
  [AS_HELP_STRING([--enable-amd-hw-fp8],
    [AMD: convert through the hardware FP8 instructions of gfx942 and gfx950
     where hip/amd_hw_fp8.h holds them to the contract, and on gfx950 MX
     groups through its scaled conversions where hip/amd_hw_mx.h does
     (default: no; unproven until fp8kv-validate --backend hip passes on
     such a GPU)])],
  [AS_CASE([$enableval], [yes | no], [],
     [AC_MSG_ERROR([--enable-amd-hw-fp8 takes yes or no, not '$enableval'])])],
  [enable_amd_hw_fp8=no])
AC_ARG_WITH([cuda],
  [AS_HELP_STRING([--with-cuda=DIR],
    [CUDA toolkit for --with-hip-platform=nvidia (default: /usr/local/cuda,
     then nvcc from PATH)])],
  [], [with_cuda=])
AC_ARG_WITH([cuda-arch],
  [AS_HELP_STRING([--with-cuda-arch=LIST],
    [NVIDIA targets for --with-hip-platform=nvidia, e.g. "sm_80 sm_90"
     (default: "sm_80 sm_90"); those nvcc rejects are skipped.  PTX of the
     last one is embedded too, for newer GPUs])],
  [], [with_cuda_arch=])
AC_ARG_ENABLE([hip-module],
  [AS_HELP_STRING([--disable-hip-module],
    [with --with-hip: link the HIP backend into libfp8kv instead of building
     the module fp8kv_hip.so (libfp8kv then depends on the GPU runtime)])],
  [AS_CASE([$enableval], [yes | no], [],
     [AC_MSG_ERROR([--enable-hip-module takes yes or no, not '$enableval'])])],
  [enable_hip_module=yes])
AC_ARG_VAR([HIPCC], [compiler of the HIP module: hipcc, or nvcc with --with-hip-platform=nvidia])
AC_ARG_VAR([HIPCCFLAGS], [extra flags for HIPCC (e.g. -O2 -g)])
AC_ARG_VAR([HIPCC_FALLBACK],
  [AMD: compiler of the device code for the targets HIPCC rejects (default:
   hipcc, when HIPCC is another compiler)])
AC_ARG_VAR([HIP_BUNDLER],
  [AMD: the clang-offload-bundler that joins the code objects (default: the
   first found that keeps every target's name)])

fp8kv_hip_summary=no
FP8KV_HIPCCFLAGS=
FP8KV_HIPCC_HOSTFLAGS=
FP8KV_HIPCC_FALLBACK_FLAGS=
HIP_LIBS=
fp8kv_hip_targets=
fp8kv_hip_main_targets=
fp8kv_hip_fallback_targets=
fp8kv_hip_split=no

AS_CASE([$with_hip],
  [no], [],
  [AS_CASE([$with_hip_platform],
     [amd], [_FP8KV_CHECK_HIP_AMD],
     [nvidia], [_FP8KV_CHECK_HIP_NVIDIA],
     [AC_MSG_ERROR([--with-hip-platform must be amd or nvidia, not '$with_hip_platform'])])
   fp8kv_hip_summary="$with_hip_platform ($fp8kv_hip_targets)"
   AS_IF([test $fp8kv_hip_split = yes],
     [fp8kv_hip_summary="$with_hip_platform ($fp8kv_hip_main_targets by $HIPCC"
      fp8kv_hip_summary="$fp8kv_hip_summary; $fp8kv_hip_fallback_targets by $HIPCC_FALLBACK)"])
   AS_IF([test "x$enable_amd_hw_fp8" = xyes],
     [AS_IF([test "x$with_hip_platform" = xamd],
        [fp8kv_hip_summary="$fp8kv_hip_summary, hardware FP8 on gfx942/gfx950 (unproven)"
         AC_DEFINE([FP8KV_AMD_HW_FP8], [1],
           [Define to 1 to convert through the FP8 instructions of gfx942 and gfx950.])],
        [AC_MSG_WARN([--enable-amd-hw-fp8 has no effect on the $with_hip_platform platform])])])
   AC_DEFINE_UNQUOTED([FP8KV_HIP_TARGETS], ["$fp8kv_hip_targets"],
     [GPU targets the HIP backend is built for.])
   AS_IF([test "x$enable_hip_module" = xno],
     [fp8kv_hip_summary="$fp8kv_hip_summary, linked into libfp8kv"
      AC_DEFINE([FP8KV_HIP_LINKED], [1],
        [Define to 1 if the HIP backend is linked into libfp8kv, not a module.])],
     [fp8kv_hip_summary="$fp8kv_hip_summary, module fp8kv_hip.so"])])

AC_SUBST([FP8KV_HIPCCFLAGS])
AC_SUBST([FP8KV_HIPCC_HOSTFLAGS])
AC_SUBST([FP8KV_HIPCC_FALLBACK_FLAGS])
AC_SUBST([FP8KV_HIP_MAIN_TARGETS], [$fp8kv_hip_main_targets])
AC_SUBST([FP8KV_HIP_FALLBACK_TARGETS], [$fp8kv_hip_fallback_targets])
AC_SUBST([HIP_LIBS])
AC_SUBST([FP8KV_AMD_HW_FP8_ENABLED], [$enable_amd_hw_fp8])
AM_CONDITIONAL([HAVE_HIP], [test "x$fp8kv_hip_summary" != xno])
AM_CONDITIONAL([HIP_MODULE],
  [test "x$fp8kv_hip_summary" != xno && test "x$enable_hip_module" != xno])
AM_CONDITIONAL([HIP_LINKED],
  [test "x$fp8kv_hip_summary" != xno && test "x$enable_hip_module" = xno])
AM_CONDITIONAL([HIP_AMD],
  [test "x$fp8kv_hip_summary" != xno && test "x$with_hip_platform" = xamd])
AM_CONDITIONAL([HIP_SPLIT], [test "x$fp8kv_hip_split" = xyes])
])

# _FP8KV_HIP_TRY_CC(COMPILER, FLAGS, [ACTION-IF-OK], [ACTION-IF-NOT])
# Compiles conftest.hip (written by the caller) with COMPILER FLAGS.
AC_DEFUN([_FP8KV_HIP_TRY_CC], [
  AS_IF([$1 $HIPCCFLAGS $2 -c conftest.hip -o conftest.$OBJEXT >&AS_MESSAGE_LOG_FD 2>&1],
    [$3], [$4])
  rm -f conftest.$OBJEXT
])

# _FP8KV_HIP_TRY(FLAGS, [ACTION-IF-OK], [ACTION-IF-NOT]): with $HIPCC
AC_DEFUN([_FP8KV_HIP_TRY], [_FP8KV_HIP_TRY_CC([$HIPCC], [$1], [$2], [$3])])

# _FP8KV_HIP_LINK_TRY(LIBS, FUNCTION, [ACTION-IF-OK], [ACTION-IF-NOT])
# Whether the C compiler links a call to FUNCTION with LIBS; LIBS untouched.
AC_DEFUN([_FP8KV_HIP_LINK_TRY], [
  fp8kv_save_LIBS=$LIBS
  LIBS="$1 $LIBS"
  AC_LANG_PUSH([C])
  AC_LINK_IFELSE([AC_LANG_CALL([], [$2])], [fp8kv_hip_linked=yes], [fp8kv_hip_linked=no])
  AC_LANG_POP([C])
  LIBS=$fp8kv_save_LIBS
  AS_IF([test $fp8kv_hip_linked = yes], [$3], [$4])
])

# _FP8KV_HIP_LIBDIR(DIR): the link flags for a runtime library in DIR:
# none for a system directory, else -L (fp8kv_hip_ldirs) and a run path
# (libtool's -R, fp8kv_hip_rdirs)
AC_DEFUN([_FP8KV_HIP_LIBDIR], [
  AS_CASE([$1],
    [/lib | /lib64 | /usr/lib | /usr/lib64 | /usr/lib/*-linux-gnu | /lib/*-linux-gnu],
      [fp8kv_hip_ldirs=; fp8kv_hip_rdirs=],
    [fp8kv_hip_ldirs="-L$1"; fp8kv_hip_rdirs="-R$1"])
])

AC_DEFUN([_FP8KV_CHECK_HIP_NVIDIA], [
  AS_CASE([$with_cuda], [yes | no | ""], [fp8kv_cuda_dir=/usr/local/cuda],
    [fp8kv_cuda_dir=$with_cuda
     AS_IF([test ! -d "$fp8kv_cuda_dir"],
       [AC_MSG_ERROR([--with-cuda=$fp8kv_cuda_dir: no such directory])])])
  AS_IF([test -z "$HIPCC"],
    [AC_PATH_PROG([HIPCC], [nvcc], [], [$fp8kv_cuda_dir/bin:$PATH])])
  AS_IF([test -z "$HIPCC"],
    [AC_MSG_ERROR([--with-hip-platform=nvidia: nvcc not found (give --with-cuda=DIR or HIPCC=...)])])
  AS_IF([test ! -d "$fp8kv_cuda_dir/include"],
    [fp8kv_cuda_dir=`AS_DIRNAME(["$HIPCC"])`
     fp8kv_cuda_dir=`AS_DIRNAME(["$fp8kv_cuda_dir"])`])

  cat >conftest.hip <<_FP8KV_EOF
#include <cuda_runtime.h>
__global__ void fp8kv_probe(float *x) { x[[threadIdx.x]] = x[[threadIdx.x]] / 3.0f; }
_FP8KV_EOF

  # exactness: no FMA contraction, IEEE division and square root, no
  # flush to zero (the last three are nvcc's defaults, made explicit).
  # Host compiler flags are written -Xcompiler=FLAG: libtool takes the
  # two-word "-Xcompiler FLAG" for its own option and reorders the line.
  # -forward-unknown-to-host-compiler passes on the -fPIC -DPIC libtool
  # appends.
  fp8kv_hip_base="-x cu -std=c++17 -O3 --fmad=false -prec-div=true -prec-sqrt=true -ftz=false"
  fp8kv_hip_base="$fp8kv_hip_base -forward-unknown-to-host-compiler -Xcompiler=-fPIC"
  fp8kv_hip_base="$fp8kv_hip_base -Xcompiler=-fvisibility=hidden"
  AC_MSG_CHECKING([whether $HIPCC compiles CUDA code])
  _FP8KV_HIP_TRY([$fp8kv_hip_base], [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no])
     rm -f conftest.hip
     AC_MSG_ERROR([$HIPCC cannot compile a kernel with $fp8kv_hip_base (see config.log)])])

  AS_IF([test -z "$with_cuda_arch" || test "x$with_cuda_arch" = xyes],
    [with_cuda_arch="sm_80 sm_90"])
  fp8kv_hip_archflags=
  fp8kv_cuda_last=
  for fp8kv_arch in `echo "$with_cuda_arch" | tr ',' ' '`; do
    fp8kv_num=`echo "$fp8kv_arch" | sed 's/^sm_//; s/^compute_//'`
    AC_MSG_CHECKING([whether $HIPCC builds for sm_$fp8kv_num])
    _FP8KV_HIP_TRY([$fp8kv_hip_base -gencode arch=compute_$fp8kv_num,code=sm_$fp8kv_num],
      [fp8kv_hip_targets="$fp8kv_hip_targets sm_$fp8kv_num"
       fp8kv_hip_archflags="$fp8kv_hip_archflags -gencode arch=compute_$fp8kv_num,code=sm_$fp8kv_num"
       fp8kv_cuda_last=$fp8kv_num
       AC_MSG_RESULT([yes])],
      [AC_MSG_RESULT([no])
       AC_MSG_WARN([$HIPCC does not build for $fp8kv_arch: skipped])])
  done
  rm -f conftest.hip
  fp8kv_hip_targets=`echo $fp8kv_hip_targets`
  AS_IF([test -z "$fp8kv_hip_targets"],
    [AC_MSG_ERROR([$HIPCC builds for none of the targets "$with_cuda_arch" (--with-cuda-arch)])])
  # PTX of the newest target, for GPUs newer than any of them
  fp8kv_hip_archflags="$fp8kv_hip_archflags -gencode arch=compute_$fp8kv_cuda_last,code=compute_$fp8kv_cuda_last"

  AC_MSG_CHECKING([for the CUDA runtime (libcudart)])
  fp8kv_hip_found=no
  for fp8kv_dir in "$fp8kv_cuda_dir/lib64" "$fp8kv_cuda_dir/lib"; do
    AS_IF([test -d "$fp8kv_dir"], [_FP8KV_HIP_LIBDIR([$fp8kv_dir])], [continue])
    _FP8KV_HIP_LINK_TRY([$fp8kv_hip_ldirs -lcudart], [cudaGetDeviceCount],
      [fp8kv_hip_found=yes; break])
  done
  AS_IF([test $fp8kv_hip_found = no],
    [AC_MSG_RESULT([no])
     AC_MSG_ERROR([libcudart not found in $fp8kv_cuda_dir/lib64 (give --with-cuda=DIR)])])
  HIP_LIBS=`echo $fp8kv_hip_ldirs $fp8kv_hip_rdirs -lcudart`
  AC_MSG_RESULT([$HIP_LIBS])

  FP8KV_HIPCCFLAGS="$fp8kv_hip_base$fp8kv_hip_archflags"
  AS_IF([test "x$enable_warnings" = xyes],
    [FP8KV_HIPCCFLAGS="$FP8KV_HIPCCFLAGS -Xcompiler=-Wall,-Wextra"])
])
