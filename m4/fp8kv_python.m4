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
  AC_ARG_WITH([python-dir],
    [AS_HELP_STRING([--with-python-dir=DIR],
      [install the Python package in DIR (default: where the interpreter's own
       install scheme puts packages for the prefix, e.g. on Debian
       /usr/local/lib/python3.X/dist-packages for /usr/local and
       /usr/lib/python3/dist-packages for /usr)])],
    [], [with_python_dir=])
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
      FP8KV_PYTHON_DIR
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

# FP8KV_PYTHON_DIR
# pythondir from the interpreter (I-PYTHONDIR): python/pythondir.py asks its
# install schemes where packages go for $PYTHON_PREFIX (the prefix, unless
# --with-python-sys-prefix or --with-python_prefix said otherwise), and the
# answer is kept relative to ${prefix} so that make install prefix=... and
# distcheck move it.  --with-python-dir=DIR wins.  Warns when the interpreter
# would not import from the directory.
AC_DEFUN([FP8KV_PYTHON_DIR], [
  fp8kv_py_prefix=$prefix
  test "x$fp8kv_py_prefix" = xNONE && fp8kv_py_prefix=$ac_default_prefix
  AC_MSG_CHECKING([where $PYTHON installs packages])
  case $with_python_dir in
  ""|yes|no)
    case $PYTHON_PREFIX in
    '${prefix}') fp8kv_py_base=$fp8kv_py_prefix ;;
    *) fp8kv_py_base=$PYTHON_PREFIX ;;
    esac
    fp8kv_py_dir=`"$PYTHON" "$srcdir/python/pythondir.py" "$fp8kv_py_base"` ||
      AC_MSG_ERROR([$PYTHON $srcdir/python/pythondir.py $fp8kv_py_base failed; use --with-python-dir])
    case $PYTHON_PREFIX:$fp8kv_py_dir in
    '${prefix}:'"$fp8kv_py_prefix"/*)
      pythondir='${prefix}'${fp8kv_py_dir#"$fp8kv_py_prefix"} ;;
    *) pythondir=$fp8kv_py_dir ;;
    esac ;;
  *) pythondir=$with_python_dir ;;
  esac
  AC_MSG_RESULT([$pythondir])
  fp8kv_py_expanded=`prefix=$fp8kv_py_prefix; eval echo "$pythondir"`
  AS_IF([! "$PYTHON" "$srcdir/python/pythondir.py" --searched "$fp8kv_py_expanded"],
    [AC_MSG_WARN([$PYTHON does not import from $fp8kv_py_expanded: after make install, set PYTHONPATH, or choose the directory with --with-python-dir])])
])
