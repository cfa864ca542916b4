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
	-I$(top_srcdir)/hip $(CPPFLAGS) $(HIP_COMPILE_FLAGS) $(HIPCCFLAGS)
LTHIPCOMPILE = $(LIBTOOL) $(AM_V_lt) --tag=CXX $(AM_LIBTOOLFLAGS) $(LIBTOOLFLAGS) \
	--mode=compile $(HIPCOMPILE)
AM_V_HIPCC = $(am__v_HIPCC_@AM_V@)
am__v_HIPCC_ = $(am__v_HIPCC_@AM_DEFAULT_V@)
am__v_HIPCC_0 = @echo "  HIPCC   " $@;
am__v_HIPCC_1 =

.hip.lo:
	@$(MKDIR_P) $(@D)
	$(HIP_DEVICE_STEP)
	$(AM_V_HIPCC)$(LTHIPCOMPILE) -c -o $@ $<

# ---- AMD: code objects from two compilers (configure: HIPCC_FALLBACK) ----
# The device code of each target is built by the compiler configure found
# for it and bundled into X.hipfb (hip/amd/hip-fatbin.sh); HIPCC then
# compiles the host code around that bundle.  Otherwise HIPCC does both in
# one go, and HIP_DEVICE_STEP does nothing.
if HIP_SPLIT
HIP_COMPILE_FLAGS = $(FP8KV_HIPCC_HOSTFLAGS) --cuda-host-only \
	-Xclang -fcuda-include-gpubinary -Xclang $(@:.lo=.hipfb)
HIP_DEVICE_STEP = $(AM_V_HIPFB)$(SHELL) $(top_srcdir)/hip/amd/hip-fatbin.sh \
	-o $(@:.lo=.hipfb) -b '$(HIP_BUNDLER)' -t '$(host_triplet)' \
	-c '$(HIPCC) $(FP8KV_HIPCCFLAGS)' -c '$(HIPCC_FALLBACK) $(FP8KV_HIPCC_FALLBACK_FLAGS)' \
	-- $(DEFS) $(DEFAULT_INCLUDES) $(INCLUDES) $(AM_CPPFLAGS) -I$(top_srcdir)/hip \
	$(CPPFLAGS) $(HIPCCFLAGS) $<
CLEANFILES += hip/fp8kv_hip.hipfb tools/bench_gpu.hipfb
else
HIP_COMPILE_FLAGS = $(FP8KV_HIPCCFLAGS)
HIP_DEVICE_STEP = @:
endif
AM_V_HIPFB = $(am__v_HIPFB_@AM_V@)
am__v_HIPFB_ = $(am__v_HIPFB_@AM_DEFAULT_V@)
am__v_HIPFB_0 = @echo "  HIPFB   " $(@:.lo=.hipfb);
am__v_HIPFB_1 =
EXTRA_DIST += hip/amd/hip-fatbin.sh hip/amd_device_compat.h

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

# The headers fp8kv_hip.hip includes, one concept each (hip/README), each
# including what it uses, and the library's headers they include: the
# module's object depends on exactly these (tests/check_headers.sh holds
# the lists to what the preprocessor finds, and compiles each header alone).
HIP_ROOMS = hip/hip_compat.h hip/device_common.h hip/device_convert.h hip/amd_hw_fp8.h hip/amd_hw_mx.h \
	hip/error_ring.h hip/write_params.h hip/write_kernels.h hip/write_specialized.h \
	hip/flat_kernels.h hip/context.h hip/launch_policy.h hip/group_policy.h \
	hip/group_rows.h hip/side_kernels.h hip/group_fast.h hip/group_launch.h
HIP_LIB_DEPS = include/fp8kv.h lib/backend.h lib/fp8_convert.h lib/group_convert.h \
	lib/host_device.h lib/write_plan.h
EXTRA_DIST += $(HIP_ROOMS)

if HAVE_HIP
# The suffix rule knows no header dependencies: the lists above.
hip/fp8kv_hip.lo: $(HIP_ROOMS) $(HIP_LIB_DEPS) config.h
endif

# ---- every header alone, and the lists above (tests/check_headers.sh) ----
# C headers of the library and the CPU backend, compiled alone by CC.
HEADERS_ALONE_C = include/fp8kv.h lib/backend.h lib/fp8_convert.h lib/group_convert.h \
	lib/host_device.h lib/internal.h lib/layout.h lib/overlap.h lib/plan_common.h \
	lib/write_plan.h cpu/cpu.h
TESTS += tests/check_headers.sh
EXTRA_DIST += tests/check_headers.sh
check_DATA += hip/headers-check.env
CLEANFILES += hip/headers-check.env
if HAVE_HIP
HEADERS_CHECK_HIPCC = $(HIPCC)
if HIP_AMD
HEADERS_CHECK_PLATFORM = amd
else
HEADERS_CHECK_PLATFORM = nvidia
endif
endif
hip/headers-check.env: Makefile
	$(AM_V_GEN)$(MKDIR_P) hip && { \
	echo "CC='$(CC)'"; \
	echo "CXX='$(CXX)'"; \
	echo "C_FLAGS='$(DEFS) $(CPPFLAGS) $(AM_CFLAGS) $(CFLAGS) $(OPENMP_CFLAGS)'"; \
	echo "C_HEADERS='$(HEADERS_ALONE_C)'"; \
	echo "HIPCC='$(HEADERS_CHECK_HIPCC)'"; \
	echo "HIP_FLAGS='$(DEFS) $(CPPFLAGS) $(FP8KV_HIPCCFLAGS) $(HIPCCFLAGS)'"; \
	echo "HIP_PLATFORM='$(HEADERS_CHECK_PLATFORM)'"; \
	echo "HIP_ROOMS='$(HIP_ROOMS)'"; \
	echo "HIP_LIB_DEPS='$(HIP_LIB_DEPS)'"; \
	echo "TOP_SRCDIR='$(abs_top_srcdir)'"; \
	echo "TOP_BUILDDIR='$(abs_top_builddir)'"; \
	} >$@-t && mv $@-t $@

# ---- AMD: the code-object checks (tests/check_amd_codeobjects.sh) ----
# The test reads the build's compilers, flags, targets and bundler from
# hip/amd-check.env; it skips (77) where there is none (no AMD build).
TESTS += tests/check_amd_codeobjects.sh
EXTRA_DIST += tests/check_amd_codeobjects.sh hip/amd/contract_probe.hip
if HIP_AMD
check_DATA += hip/amd-check.env
CLEANFILES += hip/amd-check.env
hip/amd-check.env: Makefile
	$(AM_V_GEN){ \
	echo "HIPCC='$(HIPCC)'"; \
	echo "HIPCCFLAGS='$(HIPCCFLAGS)'"; \
	echo "FP8KV_HIPCCFLAGS='$(FP8KV_HIPCCFLAGS)'"; \
	echo "HIPCC_FALLBACK='$(HIPCC_FALLBACK)'"; \
	echo "FP8KV_HIPCC_FALLBACK_FLAGS='$(FP8KV_HIPCC_FALLBACK_FLAGS)'"; \
	echo "HIP_BUNDLER='$(HIP_BUNDLER)'"; \
	echo "MAIN_TARGETS='$(FP8KV_HIP_MAIN_TARGETS)'"; \
	echo "FALLBACK_TARGETS='$(FP8KV_HIP_FALLBACK_TARGETS)'"; \
	echo "TOP_SRCDIR='$(abs_top_srcdir)'"; \
	echo "AMD_HW_FP8='$(FP8KV_AMD_HW_FP8_ENABLED)'"; \
	} >$@-t && mv $@-t $@
endif

# ---- AMD: CPU models (every build): the team reduction on a 64-lane
# wavefront, and hip/amd_hw_fp8.h's wrapper against the oracle ----
check_PROGRAMS += tests/test_amd_wave_model tests/test_amd_hw_fp8_model
TESTS += tests/test_amd_wave_model tests/test_amd_hw_fp8_model
tests_test_amd_wave_model_SOURCES = tests/test_amd_wave_model.c
tests_test_amd_hw_fp8_model_SOURCES = tests/test_amd_hw_fp8_model.c hip/amd_hw_fp8.h
tests_test_amd_hw_fp8_model_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/hip -I$(top_srcdir)/validate
tests_test_amd_hw_fp8_model_LDADD = validate/libfp8kv_validate.la lib/libfp8kv.la
tests_test_amd_hw_fp8_model_LDFLAGS = $(OPENMP_CFLAGS)

# hip/amd_hw_mx.h's plan (gfx950's scaled conversions) against the oracle
check_PROGRAMS += tests/test_amd_hw_mx_model
TESTS += tests/test_amd_hw_mx_model
tests_test_amd_hw_mx_model_SOURCES = tests/test_amd_hw_mx_model.c hip/amd_hw_mx.h hip/amd_hw_fp8.h
tests_test_amd_hw_mx_model_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/hip -I$(top_srcdir)/validate
tests_test_amd_hw_mx_model_LDADD = validate/libfp8kv_validate.la lib/libfp8kv.la -lm
tests_test_amd_hw_mx_model_LDFLAGS = $(OPENMP_CFLAGS)

# ---- the grouped and MLA writes' choice of kernel (hip/group_policy.h,
# plain C), every build: K-GROUP-KERNELS ----
check_PROGRAMS += tests/test_group_policy
TESTS += tests/test_group_policy
tests_test_group_policy_SOURCES = tests/test_group_policy.c hip/group_policy.h
tests_test_group_policy_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/hip
