# SPDX-License-Identifier: MIT
"""How the package finds libfp8kv: its built-in path first, then
$FP8KV_LIBRARY, then the soname through the loader's search path; and how it
loads it: RTLD_LOCAL, as Python loads every library, after which a backend
module must still open cleanly.  Each case imports a copy of the package in
a fresh interpreter."""

import os
import shutil
import subprocess
import sys

import pytest

import fp8kv
from fp8kv import _capi

PACKAGE = os.path.dirname(os.path.abspath(fp8kv.__file__))


@pytest.fixture(scope="module")
def library():
    path = _capi.LIBRARY_PATH
    if not os.path.isabs(path):
        pytest.skip("this process found the library through the loader")
    return path


def package_copy(tmp_path, built_in=None):
    """A copy of the package under tmp_path whose _paths.py names built_in
    (None: no _paths.py, as in a source tree)."""
    dest = tmp_path / "pkg" / "fp8kv"
    shutil.copytree(PACKAGE, str(dest), ignore=shutil.ignore_patterns("__pycache__", "_paths.py"))
    if built_in is not None:
        (dest / "_paths.py").write_text("LIBRARY = %r\n" % built_in)
    return str(tmp_path / "pkg")


def run(pythonpath, code, **env):
    environ = {k: v for k, v in os.environ.items()
               if k not in ("FP8KV_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH")}
    environ.update(PYTHONPATH=pythonpath, FP8KV_NO_TORCH="1", **env)
    return subprocess.run([sys.executable, "-B", "-c", code], env=environ,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)


SHOW = "import fp8kv._capi as c; print(c.LIBRARY_PATH)"


def test_the_built_in_path_comes_first(tmp_path, library):
    r = run(package_copy(tmp_path, library), SHOW, FP8KV_LIBRARY="/nonexistent/libfp8kv.so.1")
    assert r.returncode == 0 and r.stdout.split()[-1] == library, r.stdout


def test_fp8kv_library_when_the_built_in_path_is_gone(tmp_path, library):
    r = run(package_copy(tmp_path, "/nonexistent/libfp8kv.so.1"), SHOW, FP8KV_LIBRARY=library)
    assert r.returncode == 0 and r.stdout.split()[-1] == library, r.stdout


def test_the_loader_search_path_last(tmp_path, library):
    r = run(package_copy(tmp_path), SHOW, LD_LIBRARY_PATH=os.path.dirname(library))
    assert r.returncode == 0 and r.stdout.split()[-1] == _capi.SONAME, r.stdout


def test_no_library_is_a_clear_import_error(tmp_path):
    r = run(package_copy(tmp_path, "/nonexistent/libfp8kv.so.1"), SHOW,
            FP8KV_LIBRARY="/nonexistent/either.so", LD_LIBRARY_PATH="/nonexistent")
    assert r.returncode != 0
    assert "ImportError" in r.stdout and "FP8KV_LIBRARY" in r.stdout
    assert "/nonexistent/either.so" in r.stdout and "/nonexistent/libfp8kv.so.1" in r.stdout


def test_the_staged_package_uses_the_build_tree():
    """make check's copy of the package names the library just built."""
    try:
        from fp8kv import _paths
    except ImportError:
        pytest.skip("this copy of the package has no _paths.py (a source tree)")
    assert _capi.LIBRARY_PATH == _paths.LIBRARY
    if os.environ.get("abs_top_builddir"):
        assert _paths.LIBRARY.startswith(os.path.join(os.environ["abs_top_builddir"], "lib"))


def test_loaded_rtld_local_and_a_gpu_backend_still_opens_cleanly(tmp_path, library):
    """The symbols stay local to the library (ctypes' default), and opening
    "hip" then either works or says no device: never a module load error."""
    code = "\n".join([
        "import ctypes, fp8kv",
        "from fp8kv import _backends",
        "try:",
        "    ctypes.CDLL(None).fp8kv_version",
        "    print('GLOBAL')",
        "except AttributeError:",
        "    print('LOCAL')",
        "try:",
        "    _backends.handle(0)",
        "    print('OPENED')",
        "except fp8kv.Error as e:",
        "    print(type(e).__name__, '|', e)",
    ])
    r = run(package_copy(tmp_path, library), code)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines[0] == "LOCAL", r.stdout
    assert lines[1] == "OPENED" or lines[1].startswith("NoDevice |"), r.stdout
    assert "undefined symbol" not in r.stdout
