# SPDX-License-Identifier: MIT
# Included from the top Makefile.am.  Tests find uninstalled modules through
# FP8KV_MODULE_PATH, never the installed ones.
AM_TESTS_ENVIRONMENT = \
	FP8KV_MODULE_PATH='$(abs_top_builddir)/hip/.libs:$(abs_top_builddir)/tests/.libs'; \
	abs_top_builddir='$(abs_top_builddir)'; FP8KV_SANITIZERS='$(FP8KV_SANITIZERS)'; \
	export FP8KV_MODULE_PATH abs_top_builddir FP8KV_SANITIZERS; \
	unset FP8KV_BACKEND;

# The tests see the public header and the validation engine, never the
# library's internals.
TEST_CPPFLAGS = $(VALIDATE_CPPFLAGS) -I$(top_srcdir)/tests
TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
TEST_LIBS = lib/libfp8kv.la $(CHECK_LIBS)
# tests that use the oracle or the cache case engine, and the helpers below
TEST_VALIDATE_LIBS = tests/libtest_support.la $(VALIDATE_LIBS) $(CHECK_LIBS)

# What the Check programs share, written once: the CPU backend as a
# fixture and the suite runner (check_support), the cache write matrix of
# test_cache_write and test_backends (cache_matrix).
if HAVE_CHECK
check_LTLIBRARIES += tests/libtest_support.la
endif
tests_libtest_support_la_SOURCES = tests/check_support.c tests/check_support.h \
	tests/case_fixtures.c tests/case_fixtures.h tests/write_fixtures.c tests/write_fixtures.h
tests_libtest_support_la_CPPFLAGS = $(TEST_CPPFLAGS)
tests_libtest_support_la_CFLAGS = $(TEST_CFLAGS)

if HAVE_CHECK
check_PROGRAMS += tests/test_convert tests/test_cache_write tests/test_errors \
	tests/test_check_slots tests/test_backends
TESTS += tests/test_convert tests/test_cache_write tests/test_errors tests/test_check_slots \
	tests/test_backends
endif

# The oracle of sections 5b, 5c, 8 and 9 on hand-worked vectors; its
# driver answers tests/python/test_oracle_cross.py.
if HAVE_CHECK
check_PROGRAMS += tests/test_oracle_group
TESTS += tests/test_oracle_group
endif
check_PROGRAMS += tests/oracle_group_driver
tests_test_oracle_group_SOURCES = tests/test_oracle_group.c
tests_test_oracle_group_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_oracle_group_CFLAGS = $(TEST_CFLAGS)
tests_test_oracle_group_LDADD = $(TEST_VALIDATE_LIBS)
tests_oracle_group_driver_SOURCES = tests/oracle_group_driver.c
tests_oracle_group_driver_CPPFLAGS = $(VALIDATE_CPPFLAGS)
tests_oracle_group_driver_LDADD = $(VALIDATE_LIBS)
TESTS += tests/validate_detects_faults.sh
EXTRA_DIST += tests/validate_detects_faults.sh

# Grouped and MLA writes (fp8kv.h sections 8 and 9) on the CPU, held to
# the oracle of sections 5b-9 through validate/write_case.h.
if HAVE_CHECK
check_PROGRAMS += tests/test_group_write tests/test_mla_write
TESTS += tests/test_group_write tests/test_mla_write
endif
tests_test_group_write_SOURCES = tests/test_group_write.c
tests_test_group_write_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_group_write_CFLAGS = $(TEST_CFLAGS)
tests_test_group_write_LDADD = $(TEST_VALIDATE_LIBS)
tests_test_mla_write_SOURCES = tests/test_mla_write.c
tests_test_mla_write_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_mla_write_CFLAGS = $(TEST_CFLAGS)
tests_test_mla_write_LDADD = $(TEST_VALIDATE_LIBS)

tests_test_backends_SOURCES = tests/test_backends.c tests/test_backends.h \
	tests/test_backends_cache.c tests/test_backends_flat.c tests/test_backends_io.c \
	tests/test_backends_group.c tests/test_backends_mla.c
tests_test_backends_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_backends_CFLAGS = $(TEST_CFLAGS)
tests_test_backends_LDADD = $(TEST_VALIDATE_LIBS)

tests_test_convert_SOURCES = tests/test_convert.c tests/test_convert.h \
	tests/test_convert_codes.c tests/test_convert_fp32.c tests/test_convert_bulk.c
tests_test_convert_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_convert_CFLAGS = $(TEST_CFLAGS)
tests_test_convert_LDADD = $(TEST_VALIDATE_LIBS)

tests_test_cache_write_SOURCES = tests/test_cache_write.c tests/test_cache_write.h \
	tests/test_cache_write_scales.c tests/test_cache_write_slots.c tests/test_cache_write_long.c
tests_test_cache_write_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_cache_write_CFLAGS = $(TEST_CFLAGS)
tests_test_cache_write_LDADD = $(TEST_VALIDATE_LIBS)

tests_test_check_slots_SOURCES = tests/test_check_slots.c
tests_test_check_slots_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_check_slots_CFLAGS = $(TEST_CFLAGS)
tests_test_check_slots_LDADD = tests/libtest_support.la $(TEST_LIBS)

tests_test_errors_SOURCES = tests/test_errors.c tests/test_errors.h tests/test_errors_group.c
tests_test_errors_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_errors_CFLAGS = $(TEST_CFLAGS)
tests_test_errors_LDADD = $(TEST_LIBS)

# All 2^32 fp32 inputs: minutes, so not part of make check.
EXTRA_PROGRAMS = tests/exhaustive
tests_exhaustive_SOURCES = tests/exhaustive.c
tests_exhaustive_CPPFLAGS = $(VALIDATE_CPPFLAGS)
tests_exhaustive_CFLAGS = $(AM_CFLAGS) $(OPENMP_CFLAGS)
tests_exhaustive_LDADD = $(VALIDATE_LIBS)
tests_exhaustive_LDFLAGS = $(OPENMP_CFLAGS)
CLEANFILES += tests/exhaustive

check-exhaustive: tests/exhaustive$(EXEEXT)
	$(AM_V_at)$(AM_TESTS_ENVIRONMENT) time -p ./tests/exhaustive$(EXEEXT)
.PHONY: check-exhaustive

# A deliberately wrong backend module, so that the validator's verdict is
# itself tested.  -rpath makes libtool build a shared module that is never
# installed.
check_LTLIBRARIES += tests/fp8kv_faulty.la
tests_fp8kv_faulty_la_SOURCES = tests/faulty_backend.c
tests_fp8kv_faulty_la_CPPFLAGS = $(AM_CPPFLAGS)
tests_fp8kv_faulty_la_CFLAGS = $(AM_CFLAGS) $(FP8KV_VISIBILITY_CFLAGS)
tests_fp8kv_faulty_la_LIBADD = lib/libfp8kv.la
tests_fp8kv_faulty_la_LDFLAGS = -module -avoid-version -shared -no-undefined \
	-rpath '$(abs_builddir)/tests'

# ---- the tools: write errors, option values, backend names, shapes, the
# bench's device module and the man pages (tests/check_tools.sh); what
# fp8kv-bench and its GPU module link and export (tests/check_tools_module.sh,
# skipped without --with-hip).  The bench module of the faulty backend
# times on the host, so that the bench loads a module without a GPU.
TESTS += tests/check_tools.sh tests/check_tools_module.sh
EXTRA_DIST += tests/check_tools.sh tests/check_tools_module.sh
check_LTLIBRARIES += tests/fp8kv_bench_faulty.la
tests_fp8kv_bench_faulty_la_SOURCES = tests/check_tools_module.c tools/bench_device.h
tests_fp8kv_bench_faulty_la_CPPFLAGS = -I$(top_srcdir)/tools
tests_fp8kv_bench_faulty_la_CFLAGS = $(AM_CFLAGS) $(FP8KV_VISIBILITY_CFLAGS)
tests_fp8kv_bench_faulty_la_LDFLAGS = -module -avoid-version -shared -no-undefined \
	-rpath '$(abs_builddir)/tests'

# ---- the CPU backend's own thread count (C-THREADS): OpenMP in the test
# itself, to lower libgomp's global count as torch does
if HAVE_CHECK
check_PROGRAMS += tests/test_cpu_threads
TESTS += tests/test_cpu_threads
endif
tests_test_cpu_threads_SOURCES = tests/test_cpu_threads.c
tests_test_cpu_threads_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_cpu_threads_CFLAGS = $(TEST_CFLAGS) $(OPENMP_CFLAGS)
tests_test_cpu_threads_LDADD = $(TEST_LIBS)
tests_test_cpu_threads_LDFLAGS = $(OPENMP_CFLAGS)

# Hostile descriptors for the grouped and MLA writes, every output ending
# at a PROT_NONE page (tests/guarded.c), every input read-only.
if HAVE_CHECK
check_PROGRAMS += tests/test_group_hostile tests/test_mla_hostile tests/test_hostile_sizes
TESTS += tests/test_group_hostile tests/test_mla_hostile tests/test_hostile_sizes
endif
tests_test_group_hostile_SOURCES = tests/test_group_hostile.c tests/guarded.c tests/guarded.h
tests_test_group_hostile_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_group_hostile_CFLAGS = $(TEST_CFLAGS)
tests_test_group_hostile_LDADD = tests/libtest_support.la $(TEST_LIBS)
tests_test_mla_hostile_SOURCES = tests/test_mla_hostile.c tests/guarded.c tests/guarded.h
tests_test_mla_hostile_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_mla_hostile_CFLAGS = $(TEST_CFLAGS)
tests_test_mla_hostile_LDADD = tests/libtest_support.la $(TEST_LIBS)
tests_test_hostile_sizes_SOURCES = tests/test_hostile_sizes.c tests/guarded.c tests/guarded.h
tests_test_hostile_sizes_CPPFLAGS = $(TEST_CPPFLAGS)
tests_test_hostile_sizes_CFLAGS = $(TEST_CFLAGS)
tests_test_hostile_sizes_LDADD = tests/libtest_support.la $(TEST_LIBS)
