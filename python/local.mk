# SPDX-License-Identifier: MIT
# Included from the top Makefile.am: the Python package fp8kv (python/fp8kv),
# pure Python over ctypes, installed into $(pythondir), and its tests.
#
# The package finds libfp8kv through a generated module, _paths.py, made
# from python/_paths.py.in: the installed copy names $(libdir), and the copy
# make check stages in python/check/ names the build tree's lib/.libs, so
# that the tests run against the library just built, never an installed one.

FP8KV_PY_PACKAGE = python/fp8kv/__init__.py python/fp8kv/_backends.py \
	python/fp8kv/_arrays.py python/fp8kv/_bulk.py python/fp8kv/_capi.py python/fp8kv/_errors.py \
	python/fp8kv/_plans.py \
	python/fp8kv/_signature.py python/fp8kv/_torch.py python/fp8kv/_torch_op.py \
	python/fp8kv/_types.py python/fp8kv/_write.py \
	python/fp8kv/golden.py
FP8KV_PY_COMPAT = python/fp8kv/compat/__init__.py python/fp8kv/compat/sglang.py \
	python/fp8kv/compat/vllm.py
FP8KV_PY_CONFORM = python/fp8kv/conform/__init__.py python/fp8kv/conform/__main__.py \
	python/fp8kv/conform/build.py python/fp8kv/conform/cases.py \
	python/fp8kv/conform/classes.py python/fp8kv/conform/classify.py \
	python/fp8kv/conform/cli.py python/fp8kv/conform/conventions.py \
	python/fp8kv/conform/errors.py python/fp8kv/conform/executor.py \
	python/fp8kv/conform/guard.py python/fp8kv/conform/layout.py \
	python/fp8kv/conform/models.py python/fp8kv/conform/report.py \
	python/fp8kv/conform/runner.py python/fp8kv/conform/sparse.py \
	python/fp8kv/conform/streams.py python/fp8kv/conform/targets.py
FP8KV_PY_TESTS = tests/python/conftest.py tests/python/helpers.py tests/python/reference.py \
	tests/python/test_capi.py tests/python/test_reference.py \
	tests/python/test_write.py tests/python/test_write_errors.py \
	tests/python/test_bulk.py tests/python/test_compat.py tests/python/test_torch.py \
	tests/python/test_loading.py tests/python/test_golden.py \
	tests/python/faulty_writers.py tests/python/test_conform.py \
	tests/python/test_conform_classify.py \
	tests/python/test_conform_cli.py \
	tests/python/test_install.py \
	tests/python/recipes_exact.py \
	tests/python/recipes_ref.py \
	tests/python/test_recipes_exact.py \
	tests/python/test_recipes_ref.py \
	tests/python/contract_ref.py \
	tests/python/test_oracle_cross.py \
	tests/python/test_write_hostile.py \
	tests/python/test_import.py \
	tests/python/test_signature.py \
	tests/python/test_plans.py
EXTRA_DIST += $(FP8KV_PY_PACKAGE) $(FP8KV_PY_COMPAT) $(FP8KV_PY_CONFORM) python/_paths.py.in \
	python/pythondir.py python/METADATA.in \
	dev/gpu_check.py dev/conform_gpu.py dev/conform_torch_demo.py \
	dev/conform_triton_demo.py dev/py_call_cost.py tests/python/run_pytest.sh \
	$(FP8KV_PY_TESTS) tests/python/struct_layout.c

# Fills python/_paths.py.in (I-SONAME): LIBRARY and FALLBACK from the shell
# variables $$library and $$fallback (a path, or empty for None), the file
# names from libtool's lib/libfp8kv.la (dlname, the soname's file).
FP8KV_PY_PATHS = dlname=`sed -n "s/^dlname='\(.*\)'/\1/p" lib/libfp8kv.la` && \
	test -n "$$dlname" && \
	lib=None && if test -n "$$library"; then lib="\"$$library/$$dlname\""; fi && \
	fb=None && if test -n "$$fallback"; then fb="\"$$fallback/$$dlname\""; fi && \
	sed -e "s|[@]LIBRARY[@]|$$lib|" -e "s|[@]FALLBACK[@]|$$fb|" -e "s|[@]VERSION[@]|$(PACKAGE_VERSION)|" \
	  $(srcdir)/python/_paths.py.in

if FP8KV_PYTHON
fp8kvdir = $(pythondir)/fp8kv
fp8kv_PYTHON = $(FP8KV_PY_PACKAGE)
nodist_fp8kv_PYTHON = python/fp8kv/_paths.py
fp8kv_compatdir = $(pythondir)/fp8kv/compat
fp8kv_compat_PYTHON = $(FP8KV_PY_COMPAT)
fp8kv_conformdir = $(pythondir)/fp8kv/conform
fp8kv_conform_PYTHON = $(FP8KV_PY_CONFORM)

# The installed copy loads the soname; outside /usr the install directory is
# its fallback (I-SONAME).
python/fp8kv/_paths.py: $(srcdir)/python/_paths.py.in lib/libfp8kv.la Makefile
	$(AM_V_GEN)$(MKDIR_P) python/fp8kv && library= && \
	  fallback='$(libdir)' && if test '$(prefix)' = /usr; then fallback=; fi && \
	  $(FP8KV_PY_PATHS) >$@-t && mv $@-t $@
CLEANFILES += python/fp8kv/_paths.py

# The package's metadata (I-METADATA), so that importlib.metadata and pip
# see it: a .dist-info without RECORD, as distributions install them, which
# pip lists but leaves to make uninstall.
fp8kv_distinfodir = $(pythondir)/fp8kv-$(PACKAGE_VERSION).dist-info
nodist_fp8kv_distinfo_DATA = python/dist-info/METADATA python/dist-info/INSTALLER
python/dist-info/METADATA: $(srcdir)/python/METADATA.in Makefile
	$(AM_V_GEN)$(MKDIR_P) python/dist-info && \
	  sed -e 's|[@]PACKAGE_VERSION[@]|$(PACKAGE_VERSION)|' -e 's|[@]PACKAGE_URL[@]|$(PACKAGE_URL)|' \
	    $(srcdir)/python/METADATA.in >$@-t && mv $@-t $@
python/dist-info/INSTALLER: Makefile
	$(AM_V_GEN)$(MKDIR_P) python/dist-info && echo make >$@
CLEANFILES += python/dist-info/METADATA python/dist-info/INSTALLER

# make check: the package staged in the build tree with its own _paths.py.
python/check/fp8kv/_paths.py: $(FP8KV_PY_PACKAGE) $(FP8KV_PY_COMPAT) $(FP8KV_PY_CONFORM) \
		$(srcdir)/python/_paths.py.in lib/libfp8kv.la Makefile
	$(AM_V_GEN)rm -rf python/check && \
	  $(MKDIR_P) python/check/fp8kv/compat python/check/fp8kv/conform && \
	  for f in $(FP8KV_PY_PACKAGE); do cp $(srcdir)/$$f python/check/fp8kv/ || exit 1; done && \
	  for f in $(FP8KV_PY_COMPAT); do cp $(srcdir)/$$f python/check/fp8kv/compat/ || exit 1; done && \
	  for f in $(FP8KV_PY_CONFORM); do cp $(srcdir)/$$f python/check/fp8kv/conform/ || exit 1; done && \
	  chmod -R u+w python/check && \
	  library='$(abs_top_builddir)/lib/.libs' && fallback= && $(FP8KV_PY_PATHS) >$@
# and the copy make install installs, which tests/python/test_loading.py reads
check_DATA += python/check/fp8kv/_paths.py python/fp8kv/_paths.py

# The C layout of the descriptor, which the ctypes mirror is held to.
check_PROGRAMS += tests/python/struct_layout
tests_python_struct_layout_SOURCES = tests/python/struct_layout.c

TESTS += tests/python/run_pytest.sh
AM_TESTS_ENVIRONMENT += PYTHON='$(PYTHON)'; export PYTHON;
endif

# automake removes files, not directories: an empty fp8kv/ left behind would
# import as a namespace package, and an empty .dist-info confuse pip.
# (Makefile.am's uninstall-hook runs this; nothing to do without the package)
fp8kv-python-uninstall:
	-test -z '$(fp8kvdir)' || rmdir '$(DESTDIR)$(fp8kv_distinfodir)' '$(DESTDIR)$(fp8kv_compatdir)/__pycache__' \
	  '$(DESTDIR)$(fp8kv_conformdir)/__pycache__' '$(DESTDIR)$(fp8kvdir)/__pycache__' \
	  '$(DESTDIR)$(fp8kv_compatdir)' '$(DESTDIR)$(fp8kv_conformdir)' '$(DESTDIR)$(fp8kvdir)' \
	  2>/dev/null
.PHONY: fp8kv-python-uninstall

clean-local: fp8kv-python-clean
fp8kv-python-clean:
	rm -rf python/check python/dist-info
.PHONY: fp8kv-python-clean
