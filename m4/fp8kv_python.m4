# SPDX-License-Identifier: MIT
# FP8KV_CHECK_PYTHON
# The Python package (python/fp8kv, pure Python over ctypes).  Sets PYTHON,
# pythondir (AM_PATH_PYTHON), the conditional FP8KV_PYTHON, and
# fp8kv_python_summary for configure's summary.
#
# The interpreter: $PYTHON when given; else the first of /usr/bin/python3
# and the PATH's python3 that imports numpy and pytest (Debian's packages
# serve /usr/bin/python3, and a python3 earlier on PATH, pyenv's say, may
# lack them); else whatever AM_PATH_PYTHON finds, which installs the package
# but whose tests then skip.  --without-python leaves the package out;
# --with-python makes a missing interpreter an error.
AC_DEFUN([FP8KV_CHECK_PYTHON], [
  AC_ARG_WITH([python],
    [AS_HELP_STRING([--without-python],
      [do not install the Python package fp8kv (default: install it when a
       python3 >= 3.7 is found)])],
    [], [with_python=auto])
  fp8kv_python_summary="no (--without-python)"
  AS_IF([test "x$with_python" != xno], [
    AS_IF([test -z "$PYTHON"], [
      AC_MSG_CHECKING([for a python3 that has numpy and pytest])
      for fp8kv_py in /usr/bin/python3 python3; do
        fp8kv_py_path=`command -v $fp8kv_py 2>/dev/null`
        AS_IF([test -n "$fp8kv_py_path" &&
               "$fp8kv_py_path" -c 'import numpy, pytest' >/dev/null 2>&1],
          [PYTHON=$fp8kv_py_path; break])
      done
      AC_MSG_RESULT([${PYTHON:-none}])
    ])
    AM_PATH_PYTHON([3.7], [], [PYTHON=:])
    AS_IF([test "x$PYTHON" = x:], [
      AS_IF([test "x$with_python" = xyes],
        [AC_MSG_ERROR([--with-python: no python3 >= 3.7 found; set PYTHON])])
      AC_MSG_WARN([no python3 >= 3.7 found: the Python package is not installed])
      fp8kv_python_summary="no (no python3 >= 3.7 found)"
    ], [
      AS_IF(["$PYTHON" -c 'import numpy, pytest' >/dev/null 2>&1],
        [fp8kv_python_tests="numpy and pytest: yes"],
        [fp8kv_python_tests="numpy and pytest: no, the Python tests skip"])
      fp8kv_python_torch=`"$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null`
      fp8kv_python_summary="$PYTHON $PYTHON_VERSION ($fp8kv_python_tests; torch: ${fp8kv_python_torch:-no})"
    ])
  ])
  AM_CONDITIONAL([FP8KV_PYTHON], [test "x$with_python" != xno && test "x$PYTHON" != x: &&
                                  test -n "$PYTHON"])
])
