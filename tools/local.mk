# SPDX-License-Identifier: MIT
# Included from the top Makefile.am (after hip/local.mk, whose HIPCC rules
# build the bench's GPU module): the programs users run.

bin_PROGRAMS = tools/fp8kv-bench tools/fp8kv-validate
# configure writes the release number and date into them (AC_CONFIG_FILES)
nodist_man1_MANS = tools/fp8kv-validate.1 tools/fp8kv-bench.1
EXTRA_DIST += tools/fp8kv-validate.1.in tools/fp8kv-bench.1.in

# What both tools share: option values, exit statuses, output checks.
TOOL_CLI = tools/tool_cli.c tools/tool_cli.h

# The validator links the validation engine (validate/) statically, so that
# it needs nothing but the library where it is installed.
tools_fp8kv_validate_SOURCES = tools/fp8kv-validate.c tools/validate_tool.h \
	tools/validate_report.c tools/validate_quantize.c tools/validate_cache_write.c \
	tools/validate_group_write.c \
	$(TOOL_CLI)
tools_fp8kv_validate_CPPFLAGS = $(VALIDATE_CPPFLAGS) -I$(top_builddir)
tools_fp8kv_validate_CFLAGS = $(AM_CFLAGS) $(OPENMP_CFLAGS)
tools_fp8kv_validate_LDADD = $(VALIDATE_LIBS)
tools_fp8kv_validate_LDFLAGS = $(OPENMP_CFLAGS)

# The bench links the library only.  A GPU's timer, streams and ceiling
# kernel are the module fp8kv_bench_NAME.so of the backend NAME, loaded
# with dlopen (bench_module.c), so that a tools package needs no GPU
# runtime.
tools_fp8kv_bench_SOURCES = tools/fp8kv-bench.c tools/bench.h tools/bench_cli.c \
	tools/bench_host.c tools/bench_rounds.c tools/bench_write.c tools/bench_group.c \
	tools/bench_report.c \
	tools/bench_device.h tools/bench_module.c $(TOOL_CLI)
tools_fp8kv_bench_CPPFLAGS = $(AM_CPPFLAGS) -DFP8KV_BENCH_MODULE_DIR='"$(moduledir)"'
tools_fp8kv_bench_CFLAGS = $(AM_CFLAGS) $(OPENMP_CFLAGS)
tools_fp8kv_bench_LDADD = lib/libfp8kv.la
tools_fp8kv_bench_LDFLAGS = $(OPENMP_CFLAGS)

# fp8kv_bench_hip.so: events, graphs and the streaming ceiling kernel, for
# the hip backend.  Built as hip/fp8kv_hip.so is (the .hip.lo rule of
# hip/local.mk), against the GPU runtime only; it exports its entry only.
if HAVE_HIP
pkglib_LTLIBRARIES += tools/fp8kv_bench_hip.la
# The suffix rule knows no header dependencies: list them.
tools/bench_gpu.lo: $(top_srcdir)/tools/bench_device.h $(top_srcdir)/hip/hip_compat.h \
	$(top_builddir)/config.h
endif
tools_fp8kv_bench_hip_la_SOURCES = tools/bench_gpu.hip tools/bench_device.h
tools_fp8kv_bench_hip_la_LIBADD = $(HIP_LIBS)
tools_fp8kv_bench_hip_la_LDFLAGS = -module -avoid-version -shared -no-undefined \
	-export-symbols-regex '^fp8kv_bench_device_entry$$'
tools_fp8kv_bench_hip_la_LINK = $(LIBTOOL) $(AM_V_lt) --tag=CXX $(AM_LIBTOOLFLAGS) \
	$(LIBTOOLFLAGS) --mode=link $(CXXLD) $(AM_CXXFLAGS) $(CXXFLAGS) \
	$(tools_fp8kv_bench_hip_la_LDFLAGS) $(LDFLAGS) -o $@
EXTRA_DIST += tools/bench_gpu.hip
