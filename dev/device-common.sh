# SPDX-License-Identifier: MIT
# Sourced by dev/device-run.sh and dev/device-groups.sh on the GPU machine:
# the staged binaries of $CARRY (default .carry, dev/device-stage.sh) on the
# loader's and the module's paths, the card's name and clocks, and step(),
# which runs one command into $out/NAME.log under $STEP_LIMIT seconds and
# prints its exit status and time (a failure sets rc=1).
out=${OUT:-/tmp}
carry=${CARRY:-$(pwd)/.carry}
export LD_LIBRARY_PATH=$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export FP8KV_MODULE_PATH=$carry/modules
bin=$carry/bin
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader
rc=0

step() { # name command...
	local name=$1
	shift
	local t0=$(date +%s.%N)
	timeout "$STEP_LIMIT" "$@" >"$out/$name.log" 2>&1
	local st=$?
	printf '== %-22s exit %3d  %7.1f s\n' "$name" "$st" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')"
	[ "$st" -eq 0 ] || rc=1
	return $st
}
