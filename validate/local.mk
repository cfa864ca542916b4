# SPDX-License-Identifier: MIT
# Included from the top Makefile.am: the validation engine, built once as a
# convenience library and linked into tools/fp8kv-validate, the Check tests
# and tests/exhaustive.
#
#   oracle.[ch]        an independent model of the conversion contract
#   oracle_group.h     ... of sections 5b, 5c, 8 and 9 (e2m1, int8, group
#                      scales, MLA entries): oracle_elem.c, oracle_group.c
#   cache_case.h       one fp8kv_reshape_and_cache case, end to end:
#                      generate, expect (from the oracle), run, compare;
#                      cache_case_internal.h maps its files
#   write_case.h       one fp8kv_reshape_and_cache_grouped or
#                      fp8kv_concat_and_cache_mla case, end to end, the same
#                      way (outputs in one arena: every byte compared);
#                      write_case_internal.h maps its files
#   float_bits.h       floats to and from their bits, for all of them
#
# The tester stays apart from the implementation under test: the engine
# sees the public header only (no -I for lib/), so it cannot include the
# library's conversion by accident.  The oracle tabulates its answers with
# OpenMP: libtool passes -fopenmp on to every program that links the engine.

VALIDATE_CPPFLAGS = -I$(top_srcdir)/include -I$(top_srcdir)/validate

noinst_LTLIBRARIES += validate/libfp8kv_validate.la
validate_libfp8kv_validate_la_SOURCES = \
	validate/float_bits.h \
	validate/oracle.c validate/oracle.h \
	validate/oracle_group.h validate/oracle_elem.c validate/oracle_group.c \
	validate/cache_case.h validate/cache_case_internal.h \
	validate/cache_case.c validate/cache_case_slots.c validate/cache_case_generate.c \
	validate/cache_case_expect.c validate/cache_case_run.c validate/cache_case_compare.c \
	validate/cache_case_report.c \
	validate/write_case.h validate/write_case_internal.h validate/write_case.c \
	validate/write_case_values.c validate/write_case_expect.c validate/write_case_run.c \
	validate/write_case_compare.c
validate_libfp8kv_validate_la_CPPFLAGS = $(VALIDATE_CPPFLAGS)
validate_libfp8kv_validate_la_CFLAGS = $(AM_CFLAGS) $(OPENMP_CFLAGS)
validate_libfp8kv_validate_la_LIBADD = $(PTHREAD_LIBS)
validate_libfp8kv_validate_la_LDFLAGS = $(OPENMP_CFLAGS)

# What a program that links the engine adds to its LDADD.
VALIDATE_LIBS = validate/libfp8kv_validate.la lib/libfp8kv.la
