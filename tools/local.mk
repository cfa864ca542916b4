# SPDX-License-Identifier: MIT
# Included from the top Makefile.am: the programs users run.

bin_PROGRAMS = tools/fp8kv-bench tools/fp8kv-validate
dist_man1_MANS = tools/fp8kv-validate.1 tools/fp8kv-bench.1

# The validator links the validation engine (validate/) statically, so that
# it needs nothing but the library where it is installed.
tools_fp8kv_validate_SOURCES = tools/fp8kv-validate.c tools/validate_tool.h \
	tools/validate_report.c tools/validate_quantize.c tools/validate_cache_write.c
tools_fp8kv_validate_CPPFLAGS = $(VALIDATE_CPPFLAGS) -I$(top_builddir)
tools_fp8kv_validate_CFLAGS = $(AM_CFLAGS) $(OPENMP_CFLAGS)
tools_fp8kv_validate_LDADD = $(VALIDATE_LIBS)
tools_fp8kv_validate_LDFLAGS = $(OPENMP_CFLAGS)

tools_fp8kv_bench_SOURCES = tools/fp8kv-bench.c tools/bench_device.h
tools_fp8kv_bench_CFLAGS = $(AM_CFLAGS) $(OPENMP_CFLAGS)
tools_fp8kv_bench_LDADD = lib/libfp8kv.la
tools_fp8kv_bench_LDFLAGS = $(OPENMP_CFLAGS)
if HAVE_HIP
# GPU timing (events, graphs) and the streaming ceiling kernel
tools_fp8kv_bench_LDADD += tools/bench_gpu.lo $(HIP_LIBS)
tools_fp8kv_bench_LINK = $(LIBTOOL) $(AM_V_lt) --tag=CXX $(AM_LIBTOOLFLAGS) \
	$(LIBTOOLFLAGS) --mode=link $(CXXLD) $(AM_CXXFLAGS) $(CXXFLAGS) \
	$(tools_fp8kv_bench_LDFLAGS) $(LDFLAGS) -o $@
EXTRA_tools_fp8kv_bench_DEPENDENCIES = tools/bench_gpu.lo
CLEANFILES += tools/bench_gpu.lo tools/bench_gpu.o tools/.libs/bench_gpu.o
else
tools_fp8kv_bench_SOURCES += tools/bench_gpu_none.c
tools_fp8kv_bench_LINK = $(LIBTOOL) $(AM_V_lt) --tag=CC $(AM_LIBTOOLFLAGS) \
	$(LIBTOOLFLAGS) --mode=link $(CCLD) $(tools_fp8kv_bench_CFLAGS) $(CFLAGS) \
	$(tools_fp8kv_bench_LDFLAGS) $(LDFLAGS) -o $@
endif
EXTRA_DIST += tools/bench_gpu.hip tools/bench_gpu_none.c
