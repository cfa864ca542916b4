# SPDX-License-Identifier: MIT
# Included from the top Makefile.am: the CPU backend, linked into
# libfp8kv, with flags of its own (vectorisation, OpenMP).
noinst_LTLIBRARIES += cpu/libcpu.la
# named once: the fuzz target (tests/hardening.mk) compiles the same files
FP8KV_CPU_C = cpu/rows.c cpu/group_rows.c cpu/cache_write.c cpu/flat.c cpu/backend.c
cpu_libcpu_la_SOURCES = cpu/cpu.h $(FP8KV_CPU_C)
cpu_libcpu_la_CPPFLAGS = $(AM_CPPFLAGS) -DFP8KV_BUILDING
cpu_libcpu_la_CFLAGS = $(AM_CFLAGS) $(FP8KV_VISIBILITY_CFLAGS) $(OPENMP_CFLAGS) \
	$(FP8KV_CPU_CFLAGS)
