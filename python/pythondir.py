# SPDX-License-Identifier: MIT
"""Where this interpreter installs pure-Python packages for a prefix: the
pythondir configure gives make install (I-PYTHONDIR).

    python3 python/pythondir.py PREFIX      prints the directory
    python3 python/pythondir.py --searched DIR
                                            exit status 0 when this
                                            interpreter imports from DIR

The interpreter's own install schemes decide, as a distribution's tools do.
Debian's python3 (and Ubuntu's) searches neither PREFIX/lib/python3.X/
site-packages under /usr nor under /usr/local: its packages go to
/usr/lib/python3/dist-packages (the scheme 'deb_system') and a local
install under /usr/local to /usr/local/lib/python3.X/dist-packages
('posix_local', whose base is /usr).  Any other prefix or interpreter gets
the standard scheme, PREFIX/lib/python3.X/site-packages.
"""

import os
import site
import sys
import sysconfig


def purelib(scheme, base):
    return sysconfig.get_path("purelib", scheme, vars={
        "base": base, "platbase": base, "installed_base": base, "installed_platbase": base})


def pythondir(prefix):
    prefix = os.path.normpath(prefix)
    schemes = sysconfig.get_scheme_names()
    system = os.path.normpath(sys.base_prefix)
    if "deb_system" in schemes and prefix == system:
        return purelib("deb_system", prefix)
    if "posix_local" in schemes and prefix == os.path.join(system, "local"):
        return purelib("posix_local", system)
    return purelib("posix_prefix", prefix)


def searched(directory):
    """Whether DIR is on this interpreter's path, or would be once it exists
    (site adds a site directory only when it is there)."""
    dirs = list(sys.path) + list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    want = os.path.realpath(directory)
    return any(os.path.realpath(p) == want for p in dirs if p)


def main(argv):
    if len(argv) == 2 and not argv[1].startswith("-"):
        print(pythondir(argv[1]))
        return 0
    if len(argv) == 3 and argv[1] == "--searched":
        return 0 if searched(argv[2]) else 1
    sys.stderr.write("usage: pythondir.py PREFIX | --searched DIR\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
