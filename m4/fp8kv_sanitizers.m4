# SPDX-License-Identifier: MIT
# FP8KV_ARG_SANITIZERS
# --------------------
# --enable-sanitizers: build everything (library, modules, tools, tests) with
# AddressSanitizer and UndefinedBehaviorSanitizer, any UB report fatal.  For
# testing only: never ship such a build.  Call it right after AC_PROG_CC, so
# that every later compile and link test (OpenMP, Check, ...) already sees the
# flags it will be built with.  Sets fp8kv_sanitizers_summary for the summary.
#
# The flags go into CFLAGS and LDFLAGS rather than an AM_ variable, so that
# libtool passes them to every link, shared objects included.  CXXFLAGS is
# left alone (setting it before AC_PROG_CXX would drop that macro's -g -O2);
# C++/HIP host code can get them with ./configure CXXFLAGS=... by hand.
# FP8KV_SANITIZERS (yes/no) is substituted for make rules (check-valgrind
# refuses such a build).  Run the result with, e.g.,
#   ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 make check
AC_DEFUN([FP8KV_ARG_SANITIZERS], [
  AC_REQUIRE([AC_PROG_CC])
  AC_ARG_ENABLE([sanitizers],
    [AS_HELP_STRING([--enable-sanitizers],
      [build with AddressSanitizer and UndefinedBehaviorSanitizer (testing only)])],
    [], [enable_sanitizers=no])
  fp8kv_sanitizers_summary=no
  AS_IF([test "x$enable_sanitizers" != xno], [
    fp8kv_sanitizer_flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
    AC_CACHE_CHECK([whether $CC can build and link with $fp8kv_sanitizer_flags],
      [fp8kv_cv_sanitizers], [
      fp8kv_save_CFLAGS=$CFLAGS
      fp8kv_save_LDFLAGS=$LDFLAGS
      CFLAGS="$CFLAGS $fp8kv_sanitizer_flags"
      LDFLAGS="$LDFLAGS $fp8kv_sanitizer_flags"
      AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <stdlib.h>]],
          [[char *p = malloc(4); if (!p) return 1; p[0] = 1; free(p);]])],
        [fp8kv_cv_sanitizers=yes], [fp8kv_cv_sanitizers=no])
      CFLAGS=$fp8kv_save_CFLAGS
      LDFLAGS=$fp8kv_save_LDFLAGS])
    AS_IF([test "x$fp8kv_cv_sanitizers" != xyes],
      [AC_MSG_ERROR([--enable-sanitizers: $CC cannot link with $fp8kv_sanitizer_flags (install libasan/libubsan, or use CC=clang with its compiler-rt)])])
    CFLAGS="$CFLAGS $fp8kv_sanitizer_flags"
    LDFLAGS="$LDFLAGS $fp8kv_sanitizer_flags"
    fp8kv_sanitizers_summary="ASan+UBSan"
  ])
  AC_SUBST([FP8KV_SANITIZERS], [$enable_sanitizers])
])
