#!/bin/sh
# SPDX-License-Identifier: MIT
#
# hip-fatbin.sh - the device code of one HIP source, from several compilers,
# in one offload bundle (what clang's driver embeds in the host object).
#
#   hip-fatbin.sh -o OUT -b BUNDLER -t HOST-TRIPLE \
#       -c 'COMPILER FLAGS --offload-arch=T1 ...' [-c '...'] -- ARGS... SOURCE
#
# Each -c names a compiler, its flags and its targets.  Every target is
# compiled on its own (--cuda-device-only --no-gpu-bundle-output, ARGS
# and SOURCE appended), into one code object, and the code objects are
# bundled into OUT by BUNDLER, beside an empty host entry, as the driver
# does.  The compiles run in parallel.  configure picks the compilers, their
# targets and a bundler that keeps every target's name (m4/fp8kv_hip_amd.m4);
# hip/local.mk calls this before the host compile, which embeds OUT
# (-Xclang -fcuda-include-gpubinary).
#
# Words of a -c string are split at blanks: no flag there may hold one.
set -u

out='' bundler='' host='' specs=''
usage() {
	echo "usage: $0 -o OUT -b BUNDLER -t HOST-TRIPLE -c 'CC FLAGS...' [-c ...] -- ARGS..." >&2
	exit 2
}
while [ $# -gt 0 ]; do
	case $1 in
	-o) out=$2; shift 2 ;;
	-b) bundler=$2; shift 2 ;;
	-t) host=$2; shift 2 ;;
	-c) specs="$specs$2
"; shift 2 ;;
	--) shift; break ;;
	*) usage ;;
	esac
done
[ -n "$out" ] && [ -n "$bundler" ] && [ -n "$host" ] && [ -n "$specs" ] || usage

tmp=$out.tmp.$$
rm -rf "$tmp" && mkdir "$tmp" || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# start one compile per target, remembering its pid and its code object
pids='' ids='' inputs='' status=0
nl='
'
saved_ifs=$IFS
IFS=$nl
for spec in $specs; do
	IFS=$saved_ifs
	flags='' targets=''
	for word in $spec; do
		case $word in
		--offload-arch=*) targets="$targets ${word#--offload-arch=}" ;;
		*) flags="$flags $word" ;;
		esac
	done
	for t in $targets; do
		# shellcheck disable=SC2086 # flags are words
		$flags --offload-arch="$t" --cuda-device-only --no-gpu-bundle-output \
			-c -o "$tmp/$t.co" "$@" &
		pids="$pids $!"
		ids="$ids,hipv4-amdgcn-amd-amdhsa--$t"
		inputs="$inputs -input=$tmp/$t.co"
	done
	IFS=$nl
done
IFS=$saved_ifs
for pid in $pids; do
	wait "$pid" || status=1
done
[ $status -eq 0 ] || exit 1
[ -n "$ids" ] || { echo "$0: no target to build" >&2; exit 1; }

# shellcheck disable=SC2086 # inputs are words
"$bundler" -type=o -bundle-align=4096 -targets="host-$host$ids" \
	-input=/dev/null $inputs -output="$out"
