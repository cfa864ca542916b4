#!/bin/sh
# SPDX-License-Identifier: MIT
#
# consumer-check.sh - does the installed library work for a user?
#
#   1. make install DESTDIR=$tmp
#   2. builds tests/consumer/consumer.c with nothing but
#        PKG_CONFIG_SYSROOT_DIR=$tmp PKG_CONFIG_PATH=$tmp$libdir/pkgconfig \
#          pkg-config --cflags --libs fp8kv
#      (-std=c11 -Wall -Wextra -Wpedantic -Werror, so that the installed
#      header is clean for users), and compiles the header as C++ too when a
#      C++ compiler is configured;
#   3. runs it with LD_LIBRARY_PATH=$tmp$libdir and checks that it loaded
#      the library from the DESTDIR;
#   4. checks that no installed ELF file carries an RPATH or RUNPATH.
#
# Run it from the top build directory of a configured tree, after make:
#   sh /path/to/srcdir/.ci/consumer-check.sh
# Environment: MAKE (default make), KEEP=1 keeps the DESTDIR for a look.
# The prefix, libdir and includedir are the ones configure chose (so
# ./configure --prefix=/opt/x is checked under $tmp/opt/x).
set -eu

me=consumer-check
die() {
	echo "$me: $*" >&2
	exit 1
}

if [ ! -f Makefile ] || [ ! -f config.status ]; then
	die "run me from the top build directory of a configured tree"
fi
srcdir=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$srcdir/tests/consumer/consumer.c" ] || die "$srcdir/tests/consumer/consumer.c missing"
MAKE=${MAKE:-make}

# The directories configure chose.  Their values in the Makefile use ${...}
# only (autoconf's installation variables), which the shell expands too.
makevar() {
	sed -n "s/^$1 = //p" Makefile | head -n 1
}
prefix=$(makevar prefix)
exec_prefix=$(makevar exec_prefix)
eval "exec_prefix=\"$exec_prefix\""
libdir=$(makevar libdir)
eval "libdir=\"$libdir\""
includedir=$(makevar includedir)
eval "includedir=\"$includedir\""
CC=${CC:-$(makevar CC)}
CXX=${CXX:-$(makevar CXX)}
if [ -z "$prefix" ] || [ -z "$libdir" ]; then
	die "cannot read prefix/libdir from the Makefile"
fi
echo "$me: prefix=$prefix libdir=$libdir includedir=$includedir"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fp8kv-consumer.XXXXXX")
cleanup() {
	if [ "${KEEP:-0}" = 1 ]; then
		echo "$me: kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# 1. install
echo "$me: $MAKE install DESTDIR=$tmp/root"
$MAKE install DESTDIR="$tmp/root" >"$tmp/install.log" 2>&1 || {
	cat "$tmp/install.log"
	die "make install failed"
}
root=$tmp/root
[ -f "$root$includedir/fp8kv.h" ] || die "fp8kv.h not installed in $includedir"
[ -f "$root$libdir/pkgconfig/fp8kv.pc" ] || die "fp8kv.pc not installed in $libdir/pkgconfig"

# 2. build the consumer from what pkg-config says
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
flags=$(PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_PATH=$root$libdir/pkgconfig \
	$PKG_CONFIG --cflags --libs fp8kv) || die "pkg-config --cflags --libs fp8kv failed"
echo "$me: pkg-config: $flags"
case " $flags " in
*" -I$root"* | *" -L$root"*) ;;
*) die "pkg-config flags do not point into the DESTDIR: $flags" ;;
esac
# shellcheck disable=SC2086
$CC -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$tmp/consumer" \
	"$srcdir/tests/consumer/consumer.c" $flags || die "the consumer does not build"
if [ -n "$CXX" ] && command -v "${CXX%% *}" >/dev/null 2>&1; then
	printf '%s\n' '#include <fp8kv.h>' \
		'int main() { return fp8kv_dtype_size(FP8KV_F32) == 4 ? 0 : 1; }' \
		>"$tmp/cxx.cc"
	# shellcheck disable=SC2086
	$CXX -Wall -Wextra -Wpedantic -Werror -o "$tmp/cxx" "$tmp/cxx.cc" $flags ||
		die "fp8kv.h does not compile cleanly as C++"
	LD_LIBRARY_PATH=$root$libdir "$tmp/cxx" || die "the C++ consumer failed"
	echo "$me: C++ consumer: ok"
fi

# 3. run it against the DESTDIR's library
loaded=$(LD_LIBRARY_PATH=$root$libdir ldd "$tmp/consumer" 2>/dev/null |
	sed -n 's/^[[:space:]]*libfp8kv\.so[^ ]* => \([^ ]*\).*/\1/p')
case $loaded in
"$root"/*) echo "$me: loads $loaded" ;;
*) die "the consumer would load libfp8kv from '$loaded', not from $root$libdir" ;;
esac
out=$(LD_LIBRARY_PATH=$root$libdir "$tmp/consumer") || die "the consumer failed: $out"
case $out in
OK*) echo "$me: consumer: $out" ;;
*) die "the consumer printed '$out'" ;;
esac

# 4. no RPATH/RUNPATH in anything installed
command -v readelf >/dev/null 2>&1 || die "readelf not found (binutils)"
find "$root" -type f >"$tmp/files"
elves=0
bad=0
while IFS= read -r f; do
	magic=$(od -An -N4 -tx1 "$f" 2>/dev/null | tr -d ' \n')
	[ "$magic" = 7f454c46 ] || continue
	elves=$((elves + 1))
	paths=$(readelf -d "$f" 2>/dev/null | grep -E '\((RPATH|RUNPATH)\)' || true)
	if [ -n "$paths" ]; then
		echo "$me: ${f#"$root"} has a run path:"
		echo "$paths"
		bad=1
	fi
done <"$tmp/files"
[ $elves -gt 0 ] || die "no ELF file was installed"
[ $bad = 0 ] || die "installed files carry RPATH/RUNPATH"
echo "$me: $elves installed ELF files, none with RPATH/RUNPATH"
echo "$me: PASS"
