#!/bin/sh
# SPDX-License-Identifier: MIT
# check_hip_symbols.sh - the ABI check of the HIP module (hip/.libs/fp8kv_hip.so):
# it exports fp8kv_module_entry and no symbol of its own besides.  A test of
# its own so that its skip (77, module not built) does not hide the library's
# verdict.  See check_symbols.sh.
here=$(dirname "$0")
exec "$here/check_symbols.sh" --module hip
