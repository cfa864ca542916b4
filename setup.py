# SPDX-License-Identifier: MIT
"""pip install for fp8kv (I-PIP): builds libfp8kv with its own configure and
make, and installs it with the Python package.

    python3 -m venv --system-site-packages v
    v/bin/pip install --no-build-isolation /path/to/fp8kv

Debian's python3-pip, python3-setuptools, python3-wheel and python3-venv are
all it needs (no network); building needs what make does (gcc, make, and
autoconf, automake and libtool for a tree without configure).
FP8KV_CONFIGURE_FLAGS adds configure options, e.g. "--with-hip
--with-hip-platform=nvidia --with-cuda-arch=sm_90" for the GPU module.

configure's prefix is the interpreter's (sys.prefix, the venv): the
library, its modules, the tools and their man pages go there as data files
(lib/libfp8kv.so.1, lib/fp8kv/, bin/, share/), so that the module directory
compiled into the library is where the modules are.  The package's
_paths.py names that libfp8kv.so.1.  The build runs in a copy of the tree
under build/, so a tree already configured in place is left alone.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
SONAME = "libfp8kv.so.1"

# What a build in place leaves in the tree, never copied: configure's outputs
# and make's (a copy must configure from scratch, with its own prefix).
BUILD_OUTPUTS = {".git", "autom4te.cache", ".libs", ".deps", "__pycache__", "Makefile",
                 "config.status", "config.h", "config.log", "libtool", "stamp-h1",
                 "fp8kv.pc"}
BUILD_SUFFIXES = (".o", ".lo", ".la", ".so", ".log", ".trs", ".pyc", ".egg-info", ".tar.gz")
TOP_OUTPUTS = {"build", "dist", os.path.join("python", "check"),
               os.path.join("python", "dist-info")}


def release():
    """The release number, from include/fp8kv.h as configure takes it."""
    parts = {}
    with open(os.path.join(HERE, "include", "fp8kv.h")) as f:
        for line in f:
            m = re.match(r"#define FP8KV_VERSION_(MAJOR|MINOR|PATCH) (\d+)", line)
            if m:
                parts[m.group(1)] = m.group(2)
    return "%s.%s.%s" % (parts["MAJOR"], parts["MINOR"], parts["PATCH"])


def fail(message):
    sys.stderr.write("fp8kv setup.py: %s\n" % message)
    raise SystemExit(1)


def run(cmd, cwd):
    sys.stderr.write("fp8kv setup.py: %s\n" % " ".join(shlex.quote(c) for c in cmd))
    sys.stderr.flush()
    try:
        subprocess.check_call(cmd, cwd=cwd)
    except (OSError, subprocess.CalledProcessError) as e:
        fail("%s failed in %s: %s" % (cmd[0], cwd, e))


def copy_tree(dest):
    """The source tree without what a build in place left in it."""
    def ignore(directory, names):
        rel = os.path.relpath(directory, HERE)
        skip = set()
        for name in names:
            path = os.path.normpath(os.path.join(rel, name))
            if (name in BUILD_OUTPUTS or name.endswith(BUILD_SUFFIXES) or path in TOP_OUTPUTS
                    or (rel == "." and name.startswith("fp8kv-"))):
                skip.add(name)
        return skip
    if os.path.exists(dest):
        shutil.rmtree(dest)
    shutil.copytree(HERE, dest, symlinks=True, ignore=ignore)


def makefile_value(builddir, name):
    with open(os.path.join(builddir, "Makefile")) as f:
        for line in f:
            if line.startswith(name + " = "):
                return line[len(name) + 3:].strip()
    fail("no %s in %s/Makefile" % (name, builddir))


def build_library(workdir):
    """configure, make and make install DESTDIR in workdir; returns the
    staging root and the prefix."""
    src = os.path.join(workdir, "src")
    stage = os.path.join(workdir, "stage")
    copy_tree(src)
    if not os.path.exists(os.path.join(src, "configure")):
        run(["autoreconf", "-fi"], src)
    extra = shlex.split(os.environ.get("FP8KV_CONFIGURE_FLAGS", ""))
    for flag in extra:
        if re.match(r"--(prefix|exec-prefix|libdir|bindir|datarootdir|mandir)(=|$)", flag):
            fail("FP8KV_CONFIGURE_FLAGS may not set %s: pip installs under the "
                 "interpreter's prefix (%s)" % (flag.split("=")[0], sys.prefix))
    # The package is installed by setuptools, not by make.
    run(["./configure", "--prefix=" + sys.prefix, "--without-python"] + extra, src)
    jobs = "-j%d" % (os.cpu_count() or 1)
    make = os.environ.get("MAKE", "make")
    run([make, jobs], src)
    if os.path.exists(stage):
        shutil.rmtree(stage)
    run([make, "install", "DESTDIR=" + stage], src)
    prefix = makefile_value(src, "prefix")
    libdir = makefile_value(src, "libdir").replace("${exec_prefix}", prefix)
    if libdir != os.path.join(prefix, "lib"):
        fail("libdir %s is not %s/lib" % (libdir, prefix))
    return stage, prefix


def data_files(stage, prefix):
    """What make install staged, as setuptools data files relative to the
    prefix: the library under its soname only (a wheel has no symlinks), the
    modules, the tools and share/.  Headers, pkg-config and the development
    link are for C builds, which use make install."""
    root = stage + prefix
    lib = os.path.join(root, "lib")
    files = {}

    def add(directory, path):
        files.setdefault(directory, []).append(path)
    real = os.path.realpath(os.path.join(lib, SONAME))
    if not os.path.isfile(real):
        fail("make install staged no %s" % os.path.join(lib, SONAME))
    # the file under its soname's name
    soname_copy = os.path.join(stage, SONAME)
    shutil.copyfile(real, soname_copy)
    add("lib", soname_copy)
    for top in ("lib/fp8kv", "bin", "share"):
        for directory, _, names in os.walk(os.path.join(root, top)):
            for name in sorted(names):
                path = os.path.join(directory, name)
                if os.path.islink(path) or name.endswith(".la"):
                    continue
                add(os.path.relpath(directory, root), path)
    return sorted(files.items())


class BuildWithLibrary(build_py):
    """build_py, after libfp8kv is built and staged, and with the package's
    _paths.py naming it."""

    def run(self):
        workdir = os.path.join(os.path.abspath(self.get_finalized_command("build").build_base),
                               "fp8kv-native")
        stage, prefix = build_library(workdir)
        self.distribution.data_files = data_files(stage, prefix)
        super().run()
        with open(os.path.join(HERE, "python", "_paths.py.in")) as f:
            text = f.read()
        text = (text.replace("@LIBRARY@", repr(os.path.join(prefix, "lib", SONAME)))
                .replace("@FALLBACK@", "None").replace("@VERSION@", release()))
        out = os.path.join(self.build_lib, "fp8kv", "_paths.py")
        with open(out, "w") as f:
            f.write(text)


class BinaryDistribution(Distribution):
    """The wheel carries a compiled library: tag it for this platform."""

    def has_ext_modules(self):
        return True


def packages():
    found = []
    for directory, dirs, names in os.walk(os.path.join(HERE, "python", "fp8kv")):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        if "__init__.py" in names:
            found.append(os.path.relpath(directory, os.path.join(HERE, "python"))
                         .replace(os.sep, "."))
    return sorted(found)


setup(
    name="fp8kv",
    version=release(),
    description="Fused, exact FP8 KV-cache writes (reshape_and_cache) for LLM inference",
    url="https://github.com/fp8kv/fp8kv",
    license="MIT",
    python_requires=">=3.7",
    package_dir={"": "python"},
    packages=packages(),
    # make's _paths.py of a build in place names that build: never shipped
    exclude_package_data={"fp8kv": ["_paths.py"]},
    cmdclass={"build_py": BuildWithLibrary},
    distclass=BinaryDistribution,
    zip_safe=False,
)
