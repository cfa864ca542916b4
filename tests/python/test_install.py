# SPDX-License-Identifier: MIT
"""Where make install puts the package (I-PYTHONDIR): python/pythondir.py,
which configure runs, answers from the interpreter's own install schemes,
and on Debian gives the directories its python3 imports from."""

import os
import subprocess
import sys
import sysconfig

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                      "python", "pythondir.py")
SHORT = "python%d.%d" % sys.version_info[:2]


def pythondir(*args):
    r = subprocess.run([sys.executable, SCRIPT] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    return r.returncode, r.stdout.strip()


def searched(directory):
    return pythondir("--searched", directory)[0] == 0


debian = pytest.mark.skipif(
    "deb_system" not in sysconfig.get_scheme_names() or sys.prefix != sys.base_prefix
    or os.path.normpath(sys.base_prefix) != "/usr",
    reason="not Debian's /usr/bin/python3 (no deb_system scheme)")


@debian
def test_debian_prefix_usr_is_the_system_layout():
    assert pythondir("/usr") == (0, "/usr/lib/python3/dist-packages")
    assert searched("/usr/lib/python3/dist-packages")


@debian
def test_debian_prefix_usr_local_is_dist_packages():
    want = "/usr/local/lib/%s/dist-packages" % SHORT
    assert pythondir("/usr/local") == (0, want)
    assert pythondir("/usr/local/") == (0, want)
    assert searched(want)


@debian
def test_debian_never_searches_automakes_default():
    """What AM_PATH_PYTHON alone gave: the check configure warns with must
    see that Debian's python3 never looks there."""
    assert not searched("/usr/local/lib/%s/site-packages" % SHORT)
    assert not searched("/usr/lib/%s/site-packages" % SHORT)


def test_another_prefix_is_the_standard_layout(tmp_path):
    prefix = str(tmp_path / "opt")
    assert pythondir(prefix) == (0, os.path.join(prefix, "lib", SHORT, "site-packages"))
    assert not searched(os.path.join(prefix, "lib", SHORT, "site-packages"))


def test_usage():
    assert pythondir()[0] == 2
    assert pythondir("--searched")[0] == 2
