# SPDX-License-Identifier: MIT
# FP8KV_CHECK_HIP: placeholder until the HIP backend lands; HIP is off.
AC_DEFUN([FP8KV_CHECK_HIP], [
  AM_CONDITIONAL([HAVE_HIP], [false])
  fp8kv_hip_summary=no
])
