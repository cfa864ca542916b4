# SPDX-License-Identifier: MIT
# tests/hardening.mk - included from the top Makefile.am after tests/local.mk
# (it appends to check_PROGRAMS, TESTS, EXTRA_DIST, CLEANFILES and
# AM_TESTS_ENVIRONMENT).  What is here:
#
#   make check             + tests/test_threads (one handle, many threads)
#                          + tests/check_symbols.sh (libfp8kv.so exports
#                            exactly tests/fp8kv.sym, nothing else)
#                          + tests/check_hip_symbols.sh (the HIP module
#                            exports fp8kv_module_entry only and needs no
#                            fp8kv_ symbol; skipped when it is not built)
#                          + tests/test_rtld_local (the HIP module loads
#                            under a libfp8kv opened RTLD_LOCAL)
#                          + tests/test_hardening (overlapping arguments,
#                            a mapping changed during the call, device
#                            names, modules that refuse or fail silently)
#                          + tests/check_setuid.sh (a setuid program
#                            ignores FP8KV_MODULE_PATH and FP8KV_BACKEND;
#                            skipped unless root)
#   make check-valgrind    the check programs under valgrind (memcheck)
#   make check-consumer    DESTDIR install, pkg-config consumer, no RPATH
#                          (.ci/consumer-check.sh)
#   make fuzz              builds the libFuzzer target with clang and runs it
#                          FUZZ_SECONDS (30) seconds on a copy of the corpus
#
# None of the last three is part of make check.

# ---- thread safety -------------------------------------------------------
if HAVE_CHECK
check_PROGRAMS += tests/test_threads
TESTS += tests/test_threads
endif
tests_test_threads_SOURCES = tests/test_threads.c
tests_test_threads_CFLAGS = $(TEST_CFLAGS) -pthread
tests_test_threads_LDADD = $(TEST_LIBS) $(PTHREAD_LIBS)
tests_test_threads_LDFLAGS = -pthread

# ---- hostile and careless callers ------------------------------------------
if HAVE_CHECK
check_PROGRAMS += tests/test_hardening
TESTS += tests/test_hardening
endif
tests_test_hardening_SOURCES = tests/test_hardening.c tests/test_hardening.h \
	tests/test_hardening_group.c
tests_test_hardening_CFLAGS = $(TEST_CFLAGS)
tests_test_hardening_LDADD = $(TEST_LIBS)

# A module that refuses, fails without a word, and leaves a mark when loaded.
check_LTLIBRARIES += tests/fp8kv_planted.la
tests_fp8kv_planted_la_SOURCES = tests/planted_module.c
tests_fp8kv_planted_la_CFLAGS = $(AM_CFLAGS) $(FP8KV_VISIBILITY_CFLAGS)
tests_fp8kv_planted_la_LDFLAGS = -module -avoid-version -shared -no-undefined \
	-rpath '$(abs_builddir)/tests'

# A setuid program must not follow FP8KV_MODULE_PATH or FP8KV_BACKEND.  The
# probe carries the library's objects: under AT_SECURE the loader would not
# follow LD_LIBRARY_PATH to an uninstalled libfp8kv either.
check_PROGRAMS += tests/setuid_probe
tests_setuid_probe_SOURCES = tests/setuid_probe.c
tests_setuid_probe_LDADD = lib/libfp8kv_core.la
tests_setuid_probe_LDFLAGS = $(OPENMP_CFLAGS)
if HIP_LINKED
# --disable-hip-module: the library's objects include the HIP backend's
tests_setuid_probe_LDADD += hip/fp8kv_hip.lo $(HIP_LIBS)
tests_setuid_probe_LINK = $(LIBTOOL) $(AM_V_lt) --tag=CXX $(AM_LIBTOOLFLAGS) \
	$(LIBTOOLFLAGS) --mode=link $(CXXLD) $(AM_CXXFLAGS) $(CXXFLAGS) \
	$(tests_setuid_probe_LDFLAGS) $(LDFLAGS) -o $@
else
# (defined in both branches: automake leaves a one-branch _LINK empty)
tests_setuid_probe_LINK = $(LIBTOOL) $(AM_V_lt) --tag=CC $(AM_LIBTOOLFLAGS) \
	$(LIBTOOLFLAGS) --mode=link $(CCLD) $(AM_CFLAGS) $(CFLAGS) \
	$(tests_setuid_probe_LDFLAGS) $(LDFLAGS) -o $@
endif
TESTS += tests/check_setuid.sh
EXTRA_DIST += tests/check_setuid.sh

# ---- the HIP module without a global libfp8kv (Python's ctypes) ----------
check_PROGRAMS += tests/test_rtld_local
TESTS += tests/test_rtld_local
tests_test_rtld_local_SOURCES = tests/test_rtld_local.c

# ---- ABI: the exported symbols -------------------------------------------
# The scripts run directly (they are executable), like every script in TESTS.
TESTS += tests/check_symbols.sh tests/check_hip_symbols.sh
EXTRA_DIST += tests/check_symbols.sh tests/check_hip_symbols.sh tests/fp8kv.sym
AM_TESTS_ENVIRONMENT += \
	abs_top_builddir='$(abs_top_builddir)'; abs_top_srcdir='$(abs_top_srcdir)'; \
	NM='$(NM)'; export abs_top_builddir abs_top_srcdir NM;

# ---- valgrind --------------------------------------------------------------
# The compiled tests of TESTS (not the scripts) under memcheck, through the
# test driver: logs in tests/*.log, summary in test-suite-valgrind.log.  Check
# runs in-process (CK_FORK=no) so that valgrind sees the tests themselves.
VALGRIND = valgrind
VALGRIND_FLAGS = --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
	--show-leak-kinds=definite --track-origins=yes --num-callers=30
check-valgrind: all
	@if test "x$(FP8KV_SANITIZERS)" = xyes; then \
	  echo "check-valgrind: not in a --enable-sanitizers build (ASan and valgrind exclude each other)"; \
	  exit 1; \
	fi
	@if ! $(VALGRIND) --version >/dev/null 2>&1; then \
	  echo "check-valgrind: '$(VALGRIND)' not found (apt-get install valgrind)"; exit 1; \
	fi
	@tests=; for t in $(TESTS); do \
	  case $$t in *.sh) ;; *) tests="$$tests $$t" ;; esac; \
	done; \
	$(MAKE) $(AM_MAKEFLAGS) check TESTS="$$tests" \
	  LOG_COMPILER='$(LIBTOOL) --mode=execute $(VALGRIND) $(VALGRIND_FLAGS)' \
	  TESTS_ENVIRONMENT='CK_FORK=no; CK_DEFAULT_TIMEOUT=1200; OMP_NUM_THREADS=2; export CK_FORK CK_DEFAULT_TIMEOUT OMP_NUM_THREADS;' \
	  TEST_SUITE_LOG=test-suite-valgrind.log
CLEANFILES += test-suite-valgrind.log

# ---- the installed library, as a user sees it -------------------------------
check-consumer: all
	$(SHELL) $(srcdir)/.ci/consumer-check.sh
EXTRA_DIST += .ci/consumer-check.sh tests/consumer/consumer.c

# ---- fuzzing -----------------------------------------------------------------
# The target and the library's sources compiled together with clang's
# libFuzzer, ASan and UBSan, whatever CC configure chose; without OpenMP.
#   make fuzz FUZZ_SECONDS=60
#   make fuzz FUZZ_ARGS='-jobs=2 -workers=2'      (more libFuzzer options)
#   make fuzz FUZZ_TOLERATE=key,...               (known, open findings to step
#                                                  over; keys in fuzz_cache_write.c)
#   make fuzz FUZZ_CC=clang-14 FUZZ_EXTRA=-DX     (compiler, extra flags)
# The seeds in tests/fuzz/corpus are copied to $(FUZZ_WORKDIR)/corpus, which
# the run grows; crashes land in $(FUZZ_WORKDIR)/artifacts, and each replays
# with ./tests/fuzz/fuzz_cache_write FILE.
FUZZ_CC = clang
FUZZ_SECONDS = 30
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer
FUZZ_EXTRA =
FUZZ_ARGS =
FUZZ_TOLERATE =
FUZZ_WORKDIR = tests/fuzz/work
# the library's and the CPU backend's sources (lib/local.mk, cpu/local.mk)
FUZZ_SRCS = $(srcdir)/tests/fuzz/fuzz_harness.c $(srcdir)/tests/fuzz/fuzz_reference.c \
	$(srcdir)/tests/fuzz/fuzz_cache_write.c $(srcdir)/tests/fuzz/fuzz_flat.c \
	$(srcdir)/lib/fp8kv.c $(srcdir)/lib/plan.c $(srcdir)/lib/layout.c $(srcdir)/lib/overlap.c \
	$(srcdir)/lib/dtypes.c $(srcdir)/lib/errors.c $(srcdir)/lib/modules.c \
	$(srcdir)/cpu/rows.c $(srcdir)/cpu/cache_write.c $(srcdir)/cpu/flat.c \
	$(srcdir)/cpu/backend.c
FUZZ_INCLUDES = $(srcdir)/tests/fuzz/fuzz.h $(srcdir)/include/fp8kv.h $(srcdir)/lib/backend.h $(srcdir)/lib/internal.h \
	$(srcdir)/lib/layout.h $(srcdir)/lib/overlap.h $(srcdir)/lib/write_plan.h $(srcdir)/lib/fp8_convert.h \
	$(srcdir)/lib/host_device.h $(srcdir)/cpu/cpu.h

tests/fuzz/fuzz_cache_write$(EXEEXT): $(FUZZ_SRCS) $(FUZZ_INCLUDES) $(top_builddir)/config.h
	@$(MKDIR_P) tests/fuzz
	$(AM_V_CCLD)$(FUZZ_CC) $(FUZZ_FLAGS) -ffp-contract=off -DFP8KV_BUILDING \
	  -DFP8KV_NO_TARGET_CLONES \
	  -DFP8KV_MODULE_DIR='"/nonexistent"' -I$(top_srcdir)/include -I$(top_srcdir)/lib -I$(top_srcdir)/cpu \
	  -I$(top_srcdir)/tests/fuzz \
	  -I$(top_builddir) $(FUZZ_EXTRA) -o $@ $(FUZZ_SRCS) $(LIBS) -lm

fuzz: tests/fuzz/fuzz_cache_write$(EXEEXT)
	@rm -rf $(FUZZ_WORKDIR)
	@$(MKDIR_P) $(FUZZ_WORKDIR)/corpus $(FUZZ_WORKDIR)/artifacts
	@cp $(srcdir)/tests/fuzz/corpus/* $(FUZZ_WORKDIR)/corpus/
	@echo "fuzz: $(FUZZ_SECONDS) s on $(FUZZ_WORKDIR)/corpus, full log in $(FUZZ_WORKDIR)/fuzz.log"
	@{ FP8KV_FUZZ_TOLERATE='$(FUZZ_TOLERATE)' ./tests/fuzz/fuzz_cache_write$(EXEEXT) \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_WORKDIR)/artifacts/ $(FUZZ_ARGS) $(FUZZ_WORKDIR)/corpus; \
	  echo $$? >$(FUZZ_WORKDIR)/status; } 2>&1 | tee $(FUZZ_WORKDIR)/fuzz.log | \
	  sed -e '/^#[0-9]*[ 	]*\(NEW\|REDUCE\)/d' -e '/NEW_FUNC/d'
	@runs=`sed -n 's/^stat::number_of_executed_units: *//p' $(FUZZ_WORKDIR)/fuzz.log`; \
	rate=`sed -n 's/^stat::average_exec_per_sec: *//p' $(FUZZ_WORKDIR)/fuzz.log`; \
	status=`cat $(FUZZ_WORKDIR)/status`; \
	echo "fuzz: $${runs:-?} executions ($${rate:-?}/s) in at most $(FUZZ_SECONDS) s, exit status $$status"; \
	if test "$$status" != 0; then \
	  echo "fuzz: FAILED; reproducers:"; ls $(FUZZ_WORKDIR)/artifacts; \
	  echo "fuzz: replay one with ./tests/fuzz/fuzz_cache_write$(EXEEXT) FILE"; exit 1; \
	fi

fuzz-clean:
	rm -rf $(FUZZ_WORKDIR) tests/fuzz/fuzz_cache_write$(EXEEXT)

CLEANFILES += tests/fuzz/fuzz_cache_write$(EXEEXT)
EXTRA_DIST += tests/fuzz/fuzz.h tests/fuzz/fuzz_harness.c tests/fuzz/fuzz_reference.c \
	tests/fuzz/fuzz_cache_write.c tests/fuzz/fuzz_flat.c tests/fuzz/corpus tests/fuzz/README

.PHONY: check-valgrind check-consumer fuzz fuzz-clean
