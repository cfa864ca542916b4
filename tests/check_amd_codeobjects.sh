#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check_amd_codeobjects.sh - the exactness of the AMD build, read from its
# code objects, target by target (no GPU needed).  For every code object in
# the module's bundle:
#
#   denormals     every kernel descriptor's FLOAT_DENORM_MODE_32 is 3 (f32
#                 denormals neither flushed on input nor on output), read
#                 from COMPUTE_PGM_RSRC1 (bits 17:16) by this script, and
#                 compared with llvm-objdump's .amdhsa_float_denorm_mode_32
#                 where that disassembler decodes descriptors
#   division      each write_specialized_kernel with a scale (tensor, head,
#                 dynamic)
#                 holds a v_div_scale/v_div_fmas/v_div_fixup sequence for
#                 every element it converts (2 sides x VPL vectors x 8 or 4),
#                 and no v_rcp_f32 outside one (a lone reciprocal is an
#                 approximate division)
#   contraction   the scale-one specialized kernels, whose source has no fmaf and
#                 no division, hold no FP multiply-add at all; the scaled
#                 ones no more than their divisions' own (as many per
#                 division as the probe's one division has)
#   the kernel set is the same in every code object, whichever compiler
#   built it, and the bundle holds exactly the configured targets.
#
# Then hip/amd/contract_probe.hip is compiled for each target with the
# module's flags (all three checks pass), with the compiler's defaults
# (shown, not judged: they differ by target and compiler version), and
# with each fault planted, which its check must catch: -ffp-contract=fast,
# -fgpu-flush-denormals-to-zero and -fapprox-func (x * v_rcp_f32(s));
# -fno-hip-fp32-correctly-rounded-divide-sqrt is shown too: clang 22 then
# divides approximately, clang 15 (hipcc 5.2) still correctly while f32
# denormals are kept.
#
# The probe built with -DFP8KV_AMD_HW_FP8 must use the hardware conversion
# on gfx942 and gfx950 (and nowhere else) and keep all three properties;
# the module holds hardware conversions only with --enable-amd-hw-fp8, and
# gfx950's scaled conversions (v_cvt_scalef32_pk_*) only then, only on
# gfx950 and only in the grouped kernel.
#
# Each code object is disassembled by an llvm-objdump that knows its
# target (LLVM 22 no longer knows gfx940, LLVM 15 not yet gfx942).  Skips
# (77) without an AMD build, a bundler or a disassembler for some target.
set -u

builddir=${abs_top_builddir:-.}
env=$builddir/hip/amd-check.env
if [ ! -r "$env" ]; then
	echo "SKIP: no AMD HIP build (configure --with-hip)"
	exit 77
fi
# shellcheck disable=SC1090 # written by make (hip/local.mk)
. "$env"

module=
for m in "$builddir/hip/.libs/fp8kv_hip.so" "$builddir/lib/.libs/libfp8kv.so"; do
	if [ -r "$m" ]; then module=$m; break; fi
done
[ -n "$module" ] || { echo "SKIP: neither fp8kv_hip.so nor a libfp8kv with the backend"; exit 77; }
[ -n "$HIP_BUNDLER" ] || { echo "SKIP: configure found no clang-offload-bundler keeping every target"; exit 77; }
echo "module: $module"
echo "bundler: $HIP_BUNDLER"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fp8kv-amd.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
failures=0
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

# ---------------------------------------------------------------- tools

# llvm-objdump candidates: beside the compilers, then on PATH, newest first
objdumps=
for cc in $HIPCC $HIPCC_FALLBACK; do
	p=$(command -v "$cc" 2>/dev/null) || continue
	p=$(readlink -f "$p" 2>/dev/null || echo "$p")
	# beside it, or in ROCm's llvm/bin beside its bin
	for d in "${p%/*}/llvm-objdump" "${p%/*}/../llvm/bin/llvm-objdump"; do
		[ -x "$d" ] && objdumps="$objdumps $d"
	done
done
save_ifs=$IFS
IFS=:
for d in $PATH; do
	for p in "$d"/llvm-objdump "$d"/llvm-objdump-[0-9]*; do
		[ -x "$p" ] && echo "$p"
	done
done | sed 's/^\(.*-\([0-9]*\)\)$/\2 \1/; s/^\([^0-9]\)/0 \1/' | sort -rn -k1,1 -s |
	sed 's/^[0-9]* //' >"$tmp/objdumps"
IFS=$save_ifs
objdumps="$objdumps $(cat "$tmp/objdumps")"

# disassemble CO into OUT with the first llvm-objdump that knows its target
# (no error, functions found, no <unknown> instruction); echoes its path
disassemble() {
	for d in $objdumps; do
		if "$d" -d "$1" >"$2" 2>/dev/null && grep -q '>:$' "$2" && ! grep -q '<unknown>' "$2"; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

# "KERNEL DENORM32 ROUND32" for every kernel descriptor (SYMBOL.kd) of CO,
# from COMPUTE_PGM_RSRC1 at byte 48 of the descriptor
descriptor_modes() {
	readelf -SW "$1" | sed -n 's/^ *\[ *\([0-9]*\)\] *\.rodata *[A-Z]* *\([0-9a-f]*\) *\([0-9a-f]*\) *\([0-9a-f]*\).*/\1 \2 \3 \4/p' >"$tmp/rodata"
	read -r sec addr off size <"$tmp/rodata" || return 1
	od -A n -t u4 -v -j $((0x$off)) -N $((0x$size)) "$1" | tr -s ' ' '\n' | sed '/^$/d' >"$tmp/words"
	readelf -sW "$1" | awk -v sec="$sec" '$4 == "OBJECT" && $7 == sec && $8 ~ /\.kd$/ { print $2, $8 }' |
		sort -u | awk -v addr="$addr" -v words="$tmp/words" '
		function hex(s,   i, n) { n = 0; for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return n }
		BEGIN { n = 0; while ((getline w < words) > 0) word[n++] = w }
		{
			r = word[(hex($1) - hex(addr) + 48) / 4]
			name = $2; sub(/\.kd$/, "", name)
			print name, int(r / 65536) % 4, int(r / 4096) % 4
		}'
}

# "FUNCTION FUSED MAD DIV_SCALE DIV_FMAS DIV_FIXUP RCP" from a disassembly:
# fused multiply-adds (v_fma*, v_fmac*, v_pk_fma*, ...), unfused ones (v_mad*,
# v_mac*: a product rounded and its denormals flushed, which LLVM forms only
# where f32 denormals are flushed), and the division sequence's parts
instruction_counts() {
	awk '
	/^[0-9a-f]+ <[^>]*>:$/ { f = $2; gsub(/[<>:]/, "", f); seen[f] = 1; next }
	/^[ \t]+v_/ {
		m = $1
		if (m ~ /^v_(pk_)?(fma|fmac|fmaak|fmamk)(_legacy)?_(f16|f32|f64|bf16)/ || m ~ /^v_fma_mix/)
			fused[f]++
		else if (m ~ /^v_(mac|mad|madak|madmk)(_legacy)?_(f16|f32|f64)/ || m ~ /^v_mad_mix/)
			mad[f]++
		else if (m ~ /^v_div_scale_f32/) scale[f]++
		else if (m ~ /^v_div_fmas_f32/) fmas[f]++
		else if (m ~ /^v_div_fixup_f32/) fixup[f]++
		else if (m ~ /^v_rcp_f32/) rcp[f]++
	}
	END {
		for (f in seen)
			print f, fused[f] + 0, mad[f] + 0, scale[f] + 0, fmas[f] + 0, fixup[f] + 0, rcp[f] + 0
	}' "$1" | sort
}

# ---------------------------------------------------------------- bundle

if objcopy --dump-section .hip_fatbin="$tmp/fatbin" "$module" "$tmp/stripped" 2>/dev/null ||
	llvm-objcopy --dump-section=.hip_fatbin="$tmp/fatbin" "$module" 2>/dev/null; then :; else
	fail "no .hip_fatbin section in $module"
	exit 1
fi
"$HIP_BUNDLER" -list -type=o -input="$tmp/fatbin" | grep '^hipv4-' |
	sed 's/^hipv4-amdgcn-amd-amdhsa--//' | sort >"$tmp/listed"
echo "$MAIN_TARGETS $FALLBACK_TARGETS" | tr ' ' '\n' | sed '/^$/d' | sort >"$tmp/wanted"
echo "bundle: $(tr '\n' ' ' <"$tmp/listed")"
cmp -s "$tmp/listed" "$tmp/wanted" ||
	fail "the bundle holds '$(tr '\n' ' ' <"$tmp/listed")', configured '$(tr '\n' ' ' <"$tmp/wanted")'"

# ---------------------------------------------------------------- probes

# the compiler and flags (targets removed) that built TARGET
compiler_for() {
	case " $MAIN_TARGETS " in
	*" $1 "*) cc=$HIPCC; flags=$FP8KV_HIPCCFLAGS ;;
	*) cc=$HIPCC_FALLBACK; flags=$FP8KV_HIPCC_FALLBACK_FLAGS ;;
	esac
	flags=$(echo " $flags " | sed 's/ --offload-arch=[^ ]*//g')
}

# the probe for TARGET with FLAGS into OUT.co and OUT.s (disassembly)
build_probe() {
	# shellcheck disable=SC2086 # flags are words
	$cc $HIPCCFLAGS $2 --offload-arch="$1" --cuda-device-only --no-gpu-bundle-output \
		-I"$TOP_SRCDIR/lib" -I"$TOP_SRCDIR/hip" -c "$TOP_SRCDIR/hip/amd/contract_probe.hip" -o "$3.co" \
		>"$3.log" 2>&1 && disassemble "$3.co" "$3.s" >/dev/null
}

# verdicts on a probe OUT: sets p_denorm, p_div, p_contract (ok or bad) and
# p_fma_per_div
judge_probe() {
	descriptor_modes "$1.co" >"$1.modes"
	instruction_counts "$1.s" >"$1.counts"
	p_denorm=ok
	awk '$2 != 3 { bad = 1 } END { exit !bad }' "$1.modes" && p_denorm=bad
	[ "$(wc -l <"$1.modes")" -eq 4 ] || p_denorm=bad
	p_contract=$(awk '$1 == "probe_encode" || $1 == "probe_dequantize" || $1 == "probe_contract" {
		fused += $2; mad += $3 }
		END { print fused ? "fused" : mad ? "mad" : "none" }' "$1.counts")
	# probe_quantize: FUSED MAD SCALE FMAS FIXUP RCP
	# shellcheck disable=SC2046 # six numbers
	set -- $(awk '$1 == "probe_quantize" { print $2, $3, $4, $5, $6, $7 }' "$1.counts")
	p_div=approx
	[ $# -eq 6 ] && [ "$5" -ge 1 ] && [ "$4" -ge 1 ] && [ "$3" -ge 2 ] && [ "$6" -le "$5" ] &&
		[ "$2" -eq 0 ] && p_div=rounded
	p_fma_per_div=${1:-0}
}

printf '%-7s %-11s %-44s %-9s %-8s %s\n' target compiler flags denorm32 division multiply-add
for t in $(cat "$tmp/wanted"); do
	compiler_for "$t"
	defaults=$(echo " $flags " | sed 's/ -ffp-contract=off / /; s/ -fno-gpu-flush-denormals-to-zero / /;
		s/ -fhip-fp32-correctly-rounded-divide-sqrt / /')
	variants="module defaults -ffp-contract=fast -fgpu-flush-denormals-to-zero
		-fno-hip-fp32-correctly-rounded-divide-sqrt -fapprox-func -DFP8KV_AMD_HW_FP8"
	# the target's probes, built in parallel, then judged in turn
	pids=''
	for planted in $variants; do
		case $planted in
		module) f=$flags ;;
		defaults) f=$defaults ;;
		*) f="$flags $planted" ;;
		esac
		build_probe "$t" "$f" "$tmp/probe-$t$planted" &
		pids="$pids $!"
	done
	set -- $pids
	for planted in $variants; do
		out=$tmp/probe-$t$planted
		pid=$1
		shift
		if ! wait "$pid"; then
			fail "$t: the probe does not build with $planted ($(tail -1 "$out.log"))"
			continue
		fi
		judge_probe "$out"
		printf '%-7s %-11s %-44s %-9s %-8s %s\n' "$t" "${cc##*/}" "$planted" \
			"$(awk '{ print $2 }' "$out.modes" | sort -u | tr '\n' ' ')" "$p_div" "$p_contract"
		case $planted in
		module)
			[ $p_denorm = ok ] || fail "$t: the module's flags flush f32 denormals"
			[ $p_div = rounded ] || fail "$t: the module's flags give no correctly rounded division"
			[ "$p_contract" = none ] || fail "$t: the module's flags contract a * b + c"
			eval "fma_per_div_$t=$p_fma_per_div"
			;;
		-ffp-contract=fast)
			[ "$p_contract" != none ] || fail "$t: $planted planted, not caught" ;;
		-fgpu-flush-denormals-to-zero)
			[ $p_denorm = bad ] || fail "$t: $planted planted, not caught" ;;
		-fapprox-func)
			[ $p_div = approx ] || fail "$t: $planted planted, not caught" ;;
		-DFP8KV_AMD_HW_FP8)
			# the hardware encoder on gfx942/gfx950 only, and exact as the rest
			hw=$(grep -c 'v_cvt_pk_[fb][pf]8_f32' "$out.s")
			case $t in
			gfx942 | gfx950) [ "$hw" -gt 0 ] || fail "$t: $planted: no hardware conversion" ;;
			*) [ "$hw" -eq 0 ] || fail "$t: $planted: a hardware conversion on $t" ;;
			esac
			[ $p_denorm = ok ] && [ $p_div = rounded ] && [ "$p_contract" = none ] ||
				fail "$t: the hardware encoder loses denormals, division or contraction"
			;;
		esac
	done
done

# ---------------------------------------------------------------- module

first_kernels=
for t in $(cat "$tmp/wanted"); do
	co=$tmp/module-$t.co
	if ! "$HIP_BUNDLER" -unbundle -type=o -input="$tmp/fatbin" \
		-targets="hipv4-amdgcn-amd-amdhsa--$t" -output="$co" 2>"$tmp/err"; then
		fail "$t: cannot unbundle ($(cat "$tmp/err"))"
		continue
	fi
	if ! dis=$(disassemble "$co" "$co.s"); then
		echo "SKIP: no llvm-objdump disassembles $t (install llvm of the compiler that built it)"
		exit 77
	fi
	descriptor_modes "$co" >"$co.modes"
	instruction_counts "$co.s" >"$co.counts"
	kernels=$(wc -l <"$co.modes")
	echo "$t: $kernels kernels, disassembled by $dis"

	# the same kernels everywhere
	awk '{ print $1 }' "$co.modes" >"$co.names"
	if [ -z "$first_kernels" ]; then
		first_kernels=$co.names
	elif ! cmp -s "$first_kernels" "$co.names"; then
		fail "$t: its kernels differ from those of the first target"
	fi

	# hardware conversions only where configured (--enable-amd-hw-fp8)
	hw=$(grep -c 'v_cvt_pk_[fb][pf]8_f32' "$co.s")
	case $AMD_HW_FP8-$t in
	yes-gfx942 | yes-gfx950) [ "$hw" -gt 0 ] || fail "$t: --enable-amd-hw-fp8, but no hardware conversion" ;;
	*) [ "$hw" -eq 0 ] || fail "$t: $hw hardware conversions, not configured" ;;
	esac
	echo "$t: $hw hardware FP8 conversion instructions"
	# gfx950's scaled (MX) conversions in the grouped kernel: only there,
	# and only when configured (hip/amd_hw_mx.h, K-AMD-HW-MX)
	mx=$(grep -c 'v_cvt_scalef32_pk_\(fp8\|bf8\|fp4\)_f32' "$co.s")
	mx_group=$(awk '/^[0-9a-f]+ <.*>:$/ { k = $2 } /v_cvt_scalef32_pk_/ && k !~ /write_group_kernel/ { n++ }
		END { print n + 0 }' "$co.s")
	case $AMD_HW_FP8-$t in
	yes-gfx950) [ "$mx" -gt 0 ] || fail "$t: --enable-amd-hw-fp8, but no scaled conversion" ;;
	*) [ "$mx" -eq 0 ] || fail "$t: $mx scaled conversions, not configured" ;;
	esac
	[ "$mx_group" -eq 0 ] || fail "$t: $mx_group scaled conversions outside write_group_kernel"
	echo "$t: $mx scaled (MX) conversion instructions, all in write_group_kernel"

	# denormals: this script's reading, then the disassembler's
	awk '$2 != 3 { print "  " $1 ": float_denorm_mode_32 " $2 }' "$co.modes" >"$tmp/bad"
	[ -s "$tmp/bad" ] && fail "$t: f32 denormals flushed in $(wc -l <"$tmp/bad") kernels" && head -5 "$tmp/bad"
	awk '$3 != 0 { print }' "$co.modes" | grep -q . && fail "$t: a kernel rounds f32 other than to nearest even"
	if "$dis" -d -j .rodata "$co" 2>/dev/null | awk '
		/^[0-9a-f]+ <.*\.kd>:$/ { k = $2; gsub(/[<>:]/, "", k); sub(/\.kd$/, "", k) }
		/\.amdhsa_float_denorm_mode_32/ { print k, $2 }' | sort >"$co.objdump-modes" &&
		[ -s "$co.objdump-modes" ]; then
		if awk '{ print $1, $2 }' "$co.modes" | sort | cmp -s - "$co.objdump-modes"; then
			echo "$t: every kernel keeps f32 denormals (as $dis reads them too)"
		else
			fail "$t: the descriptors read here and by $dis disagree"
		fi
	fi

	# the specialized kernels: divisions and multiply-adds
	eval "per_div=\${fma_per_div_$t:-}"
	[ -n "$per_div" ] || { fail "$t: no probe division to measure"; continue; }
	# write_specialized_kernel<DT, FMT (-1: read at run time), SCALE, OPTIONS, VPL, ...>
	sed -n 's/^\(_ZL24write_specialized_kernelILi\([0-9]\)ELin\{0,1\}[0-9]ELi\([0-3]\)ELb[01]ELi\([12]\)E[^ ]*\) \(.*\)/\1 \2 \3 \4 \5/p' \
		"$co.counts" >"$co.fast"
	[ -s "$co.fast" ] || { fail "$t: no write_specialized_kernel found"; continue; }
	awk -v t="$t" -v per_div="$per_div" '
	{
		name = $1; dt = $2; scaled = $3 != 0; vpl = $4
		fused = $5; mad = $6; scale = $7; fmas = $8; fixup = $9; rcp = $10
		ve = dt == 0 ? 4 : 8
		if (mad || (!scaled && (fused || fixup || rcp))) {
			printf "FAIL: %s: %s: %d fused and %d unfused multiply-adds, %d divisions\n",
				t, name, fused, mad, fixup
			bad++
		}
		if (scaled && (fixup < 2 * vpl * ve || fmas < fixup || scale < 2 * fixup || rcp > fixup)) {
			printf "FAIL: %s: %s: %d elements, %d v_div_fixup, %d v_div_fmas, %d v_div_scale, %d v_rcp\n",
				t, name, 2 * vpl * ve, fixup, fmas, scale, rcp
			bad++
		}
		if (scaled && fused > per_div * fixup) {
			printf "FAIL: %s: %s: %d fused multiply-adds, %d divisions of %d each\n",
				t, name, fused, fixup, per_div
			bad++
		}
		n++
	}
	END {
		printf "%s: %d specialized kernels: no multiply-add at scale one, every scaled element correctly divided\n", t, n
		exit bad > 0
	}' "$co.fast" || failures=$((failures + 1))
done

if [ $failures -ne 0 ]; then
	echo "$failures check(s) failed"
	exit 1
fi
echo "PASS: every AMD code object keeps denormals, divides correctly rounded, and does not contract"
