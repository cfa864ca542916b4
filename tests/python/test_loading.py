# SPDX-License-Identifier: MIT
"""How the package finds libfp8kv (I-SONAME): $FP8KV_LIBRARY alone when set,
else the path a build wrote into _paths.py (make check's and pip's copies)
alone, else the soname through the loader, then make install's fallback
directory; how it loads it (RTLD_LOCAL, after which a backend module must
still open cleanly); the package's version and metadata (I-METADATA); and
the CPU backend's threads after torch (C-THREADS).  Each case imports a copy
of the package in a fresh interpreter.

Whether this machine has a libfp8kv installed must not matter: where a case
needs the loader to find none, the child's ctypes refuses the soname."""

import os
import shutil
import subprocess
import sys

import pytest

import fp8kv
from fp8kv import _capi

PACKAGE = os.path.dirname(os.path.abspath(fp8kv.__file__))
BUILDDIR = os.environ.get("abs_top_builddir")


@pytest.fixture(scope="module")
def library():
    path = _capi.LIBRARY_PATH
    if not os.path.isabs(path):
        pytest.skip("this process found the library through the loader")
    return path


@pytest.fixture
def library_copy(tmp_path, library):
    """The library under another path, to tell two candidates apart."""
    d = tmp_path / "copy"
    d.mkdir()
    dest = str(d / _capi.SONAME)
    shutil.copy(library, dest)
    return dest


def package_copy(tmp_path, built_in=None, fallback=None, version="0.0.0", paths=True,
                 metadata=None):
    """A copy of the package under tmp_path whose _paths.py names built_in
    and fallback (None: None), or that has no _paths.py (paths=False, a
    source tree); metadata: a METADATA file installed beside it as
    fp8kv-VERSION.dist-info."""
    root = tmp_path / "pkg"
    dest = root / "fp8kv"
    shutil.copytree(PACKAGE, str(dest), ignore=shutil.ignore_patterns("__pycache__", "_paths.py"))
    if paths:
        (dest / "_paths.py").write_text("LIBRARY = %r\nFALLBACK = %r\nVERSION = %r\n"
                                        % (built_in, fallback, version))
    if metadata is not None:
        info = root / ("fp8kv-%s.dist-info" % version)
        info.mkdir()
        shutil.copy(metadata, str(info / "METADATA"))
    return str(root)


# A child whose loader knows no libfp8kv.so.1, installed or not.
HIDE_SONAME = "\n".join([
    "import ctypes",
    "_init = ctypes.CDLL.__init__",
    "def _refuse(self, name, *args, **kwargs):",
    "    if name == %r:" % _capi.SONAME,
    "        raise OSError(name + ': cannot open shared object file (hidden by the test)')",
    "    _init(self, name, *args, **kwargs)",
    "ctypes.CDLL.__init__ = _refuse",
    ""])


def run(pythonpath, code, hide_soname=False, torch=False, **env):
    environ = {k: v for k, v in os.environ.items()
               if k not in ("FP8KV_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH", "FP8KV_NO_TORCH",
                            "FP8KV_NUM_THREADS", "OMP_NUM_THREADS")}
    environ.update(PYTHONPATH=pythonpath, **env)
    if not torch:
        environ["FP8KV_NO_TORCH"] = "1"
    if hide_soname:
        code = HIDE_SONAME + code
    return subprocess.run([sys.executable, "-B", "-c", code], env=environ,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)


SHOW = "import fp8kv._capi as c; print(c.LIBRARY_PATH)"


def loaded(r):
    assert r.returncode == 0, r.stdout
    return r.stdout.split()[-1]


def test_fp8kv_library_wins_over_the_built_in_path(tmp_path, library, library_copy):
    r = run(package_copy(tmp_path, built_in=library), SHOW, FP8KV_LIBRARY=library_copy)
    assert loaded(r) == library_copy


def test_fp8kv_library_wins_over_the_soname(tmp_path, library, library_copy):
    r = run(package_copy(tmp_path), SHOW, FP8KV_LIBRARY=library_copy,
            LD_LIBRARY_PATH=os.path.dirname(library))
    assert loaded(r) == library_copy


def test_a_wrong_fp8kv_library_is_an_error_not_another_library(tmp_path, library):
    r = run(package_copy(tmp_path, built_in=library), SHOW,
            FP8KV_LIBRARY="/nonexistent/either.so", LD_LIBRARY_PATH=os.path.dirname(library))
    assert r.returncode != 0 and "ImportError" in r.stdout, r.stdout
    assert "FP8KV_LIBRARY /nonexistent/either.so: no such file" in r.stdout, r.stdout
    assert library not in r.stdout and "loader search path" not in r.stdout, r.stdout


def test_the_built_in_path_of_a_build(tmp_path, library):
    r = run(package_copy(tmp_path, built_in=library), SHOW)
    assert loaded(r) == library


def test_a_build_never_loads_another_library(tmp_path, library):
    """make check's copy must test the library just built, never an
    installed one: a missing built-in path is an error, not the soname."""
    r = run(package_copy(tmp_path, built_in="/nonexistent/libfp8kv.so.1"), SHOW,
            LD_LIBRARY_PATH=os.path.dirname(library))
    assert r.returncode != 0 and "ImportError" in r.stdout, r.stdout
    assert "built-in path /nonexistent/libfp8kv.so.1: no such file" in r.stdout, r.stdout
    assert "loader search path" not in r.stdout, r.stdout


@pytest.mark.parametrize("paths", [True, False], ids=["installed", "source-tree"])
def test_the_soname_without_a_built_in_path(tmp_path, library, library_copy, paths):
    """make install's copy (LIBRARY None, a fallback) and a source tree (no
    _paths.py) ask the loader first."""
    r = run(package_copy(tmp_path, fallback=library_copy, paths=paths), SHOW,
            LD_LIBRARY_PATH=os.path.dirname(library))
    assert loaded(r) == _capi.SONAME


def test_the_fallback_when_the_loader_has_no_library(tmp_path, library_copy):
    r = run(package_copy(tmp_path, fallback=library_copy), SHOW, hide_soname=True)
    assert loaded(r) == library_copy


def test_no_library_is_a_clear_import_error(tmp_path):
    r = run(package_copy(tmp_path, fallback="/nonexistent/libfp8kv.so.1"), SHOW,
            hide_soname=True)
    assert r.returncode != 0 and "ImportError" in r.stdout, r.stdout
    assert "loader search path %s: %s" % (_capi.SONAME, _capi.SONAME) in r.stdout, r.stdout
    assert "install directory /nonexistent/libfp8kv.so.1: no such file" in r.stdout, r.stdout
    assert "FP8KV_LIBRARY" in r.stdout and "ldconfig" in r.stdout, r.stdout


def test_the_staged_package_uses_the_build_tree():
    """make check's copy of the package names the library just built."""
    try:
        from fp8kv import _paths
    except ImportError:
        pytest.skip("this copy of the package has no _paths.py (a source tree)")
    assert _capi.LIBRARY_PATH == _paths.LIBRARY
    if BUILDDIR:
        assert _paths.LIBRARY.startswith(os.path.join(BUILDDIR, "lib"))


def installed_file(*parts):
    path = os.path.join(BUILDDIR or "", *parts)
    if not BUILDDIR or not os.path.exists(path):
        pytest.skip("no %s in the build tree" % os.path.join(*parts))
    return path


def test_the_installed_copy_names_no_library():
    """make install's _paths.py leaves the library to the loader: nothing
    architecture-specific in LIBRARY; the fallback, if any, is the soname in
    an absolute directory."""
    values = {}
    with open(installed_file("python", "fp8kv", "_paths.py")) as f:
        exec(f.read(), values)
    assert values["LIBRARY"] is None
    assert values["FALLBACK"] is None or (
        os.path.isabs(values["FALLBACK"]) and
        os.path.basename(values["FALLBACK"]) == _capi.SONAME)
    assert values["VERSION"] == fp8kv.version()


def test_the_version_is_the_packages(tmp_path, library):
    r = run(package_copy(tmp_path, built_in=library, version="9.8.7"),
            "import fp8kv; print(fp8kv.__version__, fp8kv.version())")
    assert r.returncode == 0, r.stdout
    assert r.stdout.split()[-2:] == ["9.8.7", fp8kv.version()]


def test_the_installed_metadata_gives_the_version(tmp_path, library):
    """The METADATA make install puts in fp8kv-VERSION.dist-info."""
    metadata = installed_file("python", "dist-info", "METADATA")
    r = run(package_copy(tmp_path, built_in=library, version=fp8kv.version(),
                         metadata=metadata),
            "import importlib.metadata as m, fp8kv; "
            "print(m.version('fp8kv'), fp8kv.__version__, m.metadata('fp8kv')['License'])")
    assert r.returncode == 0, r.stdout
    assert r.stdout.split()[-3:] == [fp8kv.version(), fp8kv.version(), "MIT"]


def test_torch_does_not_lower_the_cpu_backends_threads(tmp_path, library):
    """torch sets libgomp's global thread count on import; the CPU backend
    keeps one thread per processor this process may run on."""
    pytest.importorskip("torch")
    code = "\n".join([
        "import os, torch, fp8kv",
        "print(len(os.sched_getaffinity(0)), torch.get_num_threads())",
        "print([b.device for b in fp8kv.backends() if b.name == 'cpu'][0])",
    ])
    r = run(package_copy(tmp_path, built_in=library), code, torch=True)
    assert r.returncode == 0, r.stdout
    procs = int(r.stdout.splitlines()[-2].split()[0])
    want = "host CPU, %d OpenMP thread%s" % (procs, "" if procs == 1 else "s")
    device = r.stdout.splitlines()[-1]
    if "no OpenMP" in device:
        pytest.skip("a build without OpenMP")
    assert device == want, r.stdout


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
    r = run(package_copy(tmp_path, built_in=library), code)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines[0] == "LOCAL", r.stdout
    assert lines[1] == "OPENED" or lines[1].startswith("NoDevice |"), r.stdout
    assert "undefined symbol" not in r.stdout
