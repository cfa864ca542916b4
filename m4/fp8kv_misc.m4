# SPDX-License-Identifier: MIT
# AX_FP8KV_CFLAG_IF(FLAG, ACTION-IF-ACCEPTED)
# Runs ACTION when the C compiler accepts FLAG (warnings made errors).
AC_DEFUN([AX_FP8KV_CFLAG_IF], [
  AS_VAR_PUSHDEF([cache], [fp8kv_cv_cflag_$1])
  AC_CACHE_CHECK([whether $CC accepts $1], [cache], [
    fp8kv_save_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS -Werror $1"
    AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
      [AS_VAR_SET([cache], [yes])], [AS_VAR_SET([cache], [no])])
    CFLAGS=$fp8kv_save_CFLAGS])
  AS_VAR_IF([cache], [yes], [$2])
  AS_VAR_POPDEF([cache])
])

# AX_PTHREAD_SIMPLE: PTHREAD_LIBS for the per-thread error state and pthread_once.
AC_DEFUN([AX_PTHREAD_SIMPLE], [
  PTHREAD_LIBS=
  AC_SEARCH_LIBS([pthread_once], [pthread], [], [AC_MSG_ERROR([pthreads are required])])
  AC_SUBST([PTHREAD_LIBS])
])
