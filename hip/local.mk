# SPDX-License-Identifier: MIT
# Included from the top Makefile.am: the HIP backend, as the module
# fp8kv_hip.so or (configure --disable-hip-module) linked into libfp8kv.
#
# .hip files are compiled through libtool, as UCX does, by HIPCC: hipcc for
# AMD GPUs, or nvcc for NVIDIA GPUs (m4/fp8kv_hip.m4 passes it -x cu and
# -forward-unknown-to-host-compiler, so the -fPIC -DPIC libtool adds reach
# the host compiler).  The module links with the C++ linker, against the
# GPU runtime only: it gets what it needs from libfp8kv through the
# services table fp8kv_module_entry receives, and exports nothing else.

SUFFIXES = .hip

# Automake defines CXXLD only for C++ sources, and .hip is not one to it;
# the module (and tools/fp8kv-bench with its GPU part) link with it.
CXXLD = $(CXX)

HIPCOMPILE = $(HIPCC) $(DEFS) $(DEFAULT_INCLUDES) $(INCLUDES) $(AM_CPPFLAGS) \
	-I$(top_srcdir)/hip $(CPPFLAGS) $(FP8KV_HIPCCFLAGS) $(HIPCCFLAGS)
LTHIPCOMPILE = $(LIBTOOL) $(AM_V_lt) --tag=CXX $(AM_LIBTOOLFLAGS) $(LIBTOOLFLAGS) \
	--mode=compile $(HIPCOMPILE)
AM_V_HIPCC = $(am__v_HIPCC_@AM_V@)
am__v_HIPCC_ = $(am__v_HIPCC_@AM_DEFAULT_V@)
am__v_HIPCC_0 = @echo "  HIPCC   " $@;
am__v_HIPCC_1 =

.hip.lo:
	@$(MKDIR_P) $(@D)
	$(AM_V_HIPCC)$(LTHIPCOMPILE) -c -o $@ $<

# modules go to $(pkglibdir) (= $(moduledir)); hip/local.mk is included
# first, so it starts the lists the other fragments may add to
pkglib_LTLIBRARIES =

if HIP_MODULE
pkglib_LTLIBRARIES += hip/fp8kv_hip.la
hip_fp8kv_hip_la_SOURCES = hip/fp8kv_hip.hip $(HIP_ROOMS)
hip_fp8kv_hip_la_LIBADD = $(HIP_LIBS)
hip_fp8kv_hip_la_LDFLAGS = -module -avoid-version -shared -no-undefined \
	-export-symbols-regex '^fp8kv_module_entry$$'
hip_fp8kv_hip_la_LINK = $(LIBTOOL) $(AM_V_lt) --tag=CXX $(AM_LIBTOOLFLAGS) \
	$(LIBTOOLFLAGS) --mode=link $(CXXLD) $(AM_CXXFLAGS) $(CXXFLAGS) \
	$(hip_fp8kv_hip_la_LDFLAGS) $(LDFLAGS) -o $@
endif

# Linked in, the same object joins libfp8kv (see the top Makefile.am).
if HIP_LINKED
CLEANFILES += hip/fp8kv_hip.lo hip/fp8kv_hip.o hip/.libs/fp8kv_hip.o
endif

# The headers fp8kv_hip.hip includes, one concept each (hip/README).
HIP_ROOMS = hip/hip_compat.h hip/device_common.h hip/device_convert.h hip/error_ring.h \
	hip/write_kernels.h hip/flat_kernels.h hip/context.h hip/launch_policy.h
EXTRA_DIST += $(HIP_ROOMS)

if HAVE_HIP
# The suffix rule knows no header dependencies: list them.
hip/fp8kv_hip.lo: $(top_srcdir)/hip/hip_compat.h $(top_srcdir)/hip/device_common.h \
	$(top_srcdir)/hip/device_convert.h $(top_srcdir)/hip/error_ring.h \
	$(top_srcdir)/hip/write_kernels.h $(top_srcdir)/hip/flat_kernels.h \
	$(top_srcdir)/hip/context.h $(top_srcdir)/hip/launch_policy.h \
	$(top_srcdir)/lib/fp8_convert.h $(top_srcdir)/lib/write_plan.h \
	$(top_srcdir)/lib/host_device.h $(top_srcdir)/lib/backend.h \
	$(top_srcdir)/include/fp8kv.h $(top_builddir)/config.h
endif
