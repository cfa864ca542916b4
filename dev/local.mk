# SPDX-License-Identifier: MIT
# Included from the top Makefile.am: developer checks, not run by make check.

# make check-division: the proof that the HIP backend's one-step division by
# a reciprocal (divide_recip, K-DIV) is the IEEE quotient for every bf16 and
# f16 significand against every fp32 scale significand, and that the check
# catches the uncorrected product (0 steps must miss).  About a minute on
# two cores.
# dev/device-*.sh drive the project's own GPU machines: kept out of the tarball.
EXTRA_DIST += dev/check-division.c
CLEANFILES += dev/check-division$(EXEEXT)

dev/check-division$(EXEEXT): $(top_srcdir)/dev/check-division.c $(top_srcdir)/lib/fp8_convert.h
	@$(MKDIR_P) dev
	$(AM_V_CC)$(CC) $(CPPFLAGS) -I$(top_srcdir)/include -I$(top_srcdir)/lib $(CFLAGS) \
		$(OPENMP_CFLAGS) -ffp-contract=off $(top_srcdir)/dev/check-division.c \
		$(LDFLAGS) -o $@ -lm

check-division: dev/check-division$(EXEEXT)
	dev/check-division$(EXEEXT) 7
	dev/check-division$(EXEEXT) 10
	@if dev/check-division$(EXEEXT) 7 0; then \
		echo "check-division: 0 steps gave no miss: the check cannot see a wrong quotient"; \
		exit 1; \
	else \
		echo "check-division: 0 steps misses, as it must: the check sees wrong quotients"; \
	fi
.PHONY: check-division
