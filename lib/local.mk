# SPDX-License-Identifier: MIT
# Included from the top Makefile.am: the library, its front end and the
# backends linked into it.  Dependencies run one way: fp8kv.c (the API)
# -> plan.c (validation) -> layout.c, dtypes.c, errors.c; modules.c loads
# backends; every backend sees only lib/backend.h and lib/write_plan.h
# (which includes the conversion rules, fp8_convert.h and group_convert.h).
# plan.c checks the cache write, plan_group.c its group scales,
# plan_mla.c the MLA write; plan_common.h is what they share.

include_HEADERS = include/fp8kv.h
lib_LTLIBRARIES = lib/libfp8kv.la
# The library's objects, also linked statically into test programs that
# must not depend on the loader's search path (tests/setuid_probe).
noinst_LTLIBRARIES += lib/libfp8kv_core.la
# named once: the fuzz target (tests/hardening.mk) compiles the same files
FP8KV_LIB_C = lib/fp8kv.c lib/plan.c lib/plan_group.c lib/plan_mla.c lib/layout.c \
	lib/overlap.c lib/dtypes.c lib/errors.c lib/modules.c
FP8KV_LIB_H = lib/internal.h lib/plan_common.h lib/layout.h lib/overlap.h lib/backend.h \
	lib/write_plan.h lib/fp8_convert.h lib/group_convert.h lib/host_device.h
lib_libfp8kv_core_la_SOURCES = $(FP8KV_LIB_C) $(FP8KV_LIB_H)
lib_libfp8kv_core_la_CPPFLAGS = $(AM_CPPFLAGS) -DFP8KV_BUILDING \
	-DFP8KV_MODULE_DIR='"$(moduledir)"'
lib_libfp8kv_core_la_CFLAGS = $(AM_CFLAGS) $(FP8KV_VISIBILITY_CFLAGS)
lib_libfp8kv_core_la_LIBADD = cpu/libcpu.la
lib_libfp8kv_la_SOURCES =
lib_libfp8kv_la_LIBADD = lib/libfp8kv_core.la
# Only the API leaves the library, versioned FP8KV_1 (lib/fp8kv.map).
lib_libfp8kv_la_LDFLAGS = -version-info $(FP8KV_LT_VERSION) -no-undefined $(OPENMP_CFLAGS) \
	-Wl,--version-script=$(srcdir)/lib/fp8kv.map
EXTRA_lib_libfp8kv_la_DEPENDENCIES = $(srcdir)/lib/fp8kv.map
if HIP_LINKED
# configure --disable-hip-module: the HIP backend's object joins the
# library, which then links the GPU runtime and, being part C++, links
# with the C++ compiler.
lib_libfp8kv_la_LIBADD += hip/fp8kv_hip.lo $(HIP_LIBS)
EXTRA_lib_libfp8kv_la_DEPENDENCIES += hip/fp8kv_hip.lo
lib_libfp8kv_la_LINK = $(LIBTOOL) $(AM_V_lt) --tag=CXX $(AM_LIBTOOLFLAGS) \
	$(LIBTOOLFLAGS) --mode=link $(CXXLD) $(AM_CXXFLAGS) $(CXXFLAGS) \
	$(lib_libfp8kv_la_LDFLAGS) $(LDFLAGS) -o $@
else
lib_libfp8kv_la_LINK = $(LIBTOOL) $(AM_V_lt) --tag=CC $(AM_LIBTOOLFLAGS) \
	$(LIBTOOLFLAGS) --mode=link $(CCLD) $(AM_CFLAGS) $(CFLAGS) \
	$(lib_libfp8kv_la_LDFLAGS) $(LDFLAGS) -o $@
endif
EXTRA_DIST += lib/fp8kv.map

pkgconfigdir = $(libdir)/pkgconfig
pkgconfig_DATA = fp8kv.pc
