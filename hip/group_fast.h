// SPDX-License-Identifier: MIT
/*
 * group_fast.h - the fast grouped kernel, write_group_kernel: the common
 * shapes of fp8kv.h sections 8 and 9 (group_policy.h says which): 16-bit
 * inputs in 16-byte vectors (8 values), rows of at most 2 * MAX_TEAM
 * vectors, a team of lanes per (token, head) pair, lane l holding vectors
 * l, l + team (VPL 2).  A group of G values is G / 8 consecutive vectors,
 * and so G / 8 consecutive lanes of the team (the team is at least that
 * wide): its amax is a max over those lanes by shuffles, every lane of the
 * group works out the same scale (fp8kv_group_scale_of, lib/
 * group_convert.h), the group's first lane stores it, and each lane
 * converts its 8 values: 8 FP8 or int8 codes, or 4 bytes of e2m1 pairs
 * (element 2i in the low nibble).  Side 1 is grouped as side 0, or (MLA_DS)
 * a 16-bit copy.
 *
 * The quotients are the IEEE ones, by cheaper ways where that is proven
 * (K-GROUP-DIV): for the E8M0 rules the scale is 2^k and 1 / s = 2^-k
 * exactly, so x * (1 / s) is the correctly rounded x / s, subnormal
 * results included (denormals are kept, A-FLAGS); for FP8KV_GROUP_F32 and
 * NVFP4 the scale is any fp32, and a group whose scale has recip_ok and
 * whose quotients stay below 2^100 takes divide_recip's one corrected step
 * (K-DIV: every 16-bit input, every scale significand), else the
 * division.  A vector holding NaN or Inf, and every vector of a kernel
 * that counts (OPTIONS), take group_rows.h's group_code, element by
 * element; the others the group_convert.h encoders on finite quotients,
 * or, for e4m3fn and e5m2 on sm_89 and later, the hardware's codes
 * (device_convert.h, K-HWCVT: cvt.rn.satfinite is the saturating
 * contract, so a saturating call takes it for any finite quotient).
 * On gfx950 with --enable-amd-hw-fp8, an E8M0 group of e4m3fn, e5m2 or
 * e2m1 elements whose quotients stay in range takes the scaled
 * conversions (amd_hw_mx.h, K-AMD-HW-MX): |x| and the scale's byte in,
 * x's signs put back.
 */
#ifndef FP8KV_HIP_GROUP_FAST_H
#define FP8KV_HIP_GROUP_FAST_H

#include <stdint.h>

#include "amd_hw_mx.h"
#include "device_common.h"
#include "device_convert.h"
#include "error_ring.h"
#include "fp8_convert.h"
#include "group_convert.h"
#include "group_policy.h"
#include "group_rows.h"
#include "hip_compat.h"
#include "write_params.h"
#include "write_plan.h"

#define GROUP_MIN_BLOCKS 4  // resident blocks of 256: at most 64 registers

// The compiler may take c as given (the fast path's quotients are finite).
#if defined(__NVCC__) || defined(__clang__)
#define GROUP_ASSUME(c) __builtin_assume(c)
#else
#define GROUP_ASSUME(c) ((void)0)
#endif

// The largest magnitude among the finite values of a 16-bit vector, and
// whether all eight are finite.
template <int DT>
static __device__ __forceinline__ float group_vec_amax(const uint4 v, bool &finite)
{
	const uint32_t inf = DT == FP8KV_CV_BF16 ? 0x7F80u : 0x7C00u;
	const uint32_t m = vec16_max_magnitude_bits(v);
	finite = m < inf;
	if (finite)  // the largest bits are the largest magnitude
		return widen16<DT>(m);
	return vec_amax<DT>(v);  // NaN and Inf skipped
}

// The eight values of a 16-bit vector whose values are finite: the
// hardware's f16 widening where there is one (K-F16-WIDEN).
template <int DT>
static __device__ __forceinline__ void group_unpack_finite(const uint4 v, float x[8])
{
#ifdef HAVE_HW_FP8
	unpack_hw<DT>(v, x);
#else
	unpack<DT>(v, x);
#endif
}

// Code c of value k (0-7) of a vector into its packed place: FP8 or int8
// bytes in lo (values 0-3) and hi (4-7), e2m1 nibbles in lo (A-E2M1).
template <int ELEM>
static __device__ __forceinline__ void place_code(uint32_t &lo, uint32_t &hi, const int k,
						  const uint32_t c)
{
	if (ELEM == GROUP_ELEM_E2M1)
		lo |= c << (4 * k);
	else if (k < 4)
		lo |= c << (8 * k);
	else
		hi |= c << (8 * (k - 4));
}

// The codes of eight finite quotients y (x's signs), packed: FP8 or int8
// bytes in lo (values 0-3) and hi (4-7), or e2m1 nibbles in lo.  The
// encoders are group_convert.h's and fp8_convert.h's; NaN and overflow
// flags, which nothing reads here, fall away.
template <int ELEM, bool TZ>
static __device__ __forceinline__ uint2 group_pack_codes(const float y[8],
							 const fp8kv_fp8_format f, int saturate)
{
	uint32_t lo = 0, hi = 0;
#pragma unroll
	for (int k = 0; k < 8; k++) {
		const uint32_t yb = fp8kv_f32_bits(y[k]);
		GROUP_ASSUME((yb & 0x7FFFFFFFu) <= 0x7F800000u);
		uint32_t c;
		if (ELEM == GROUP_ELEM_E2M1)
			c = fp8kv_e2m1_encode_bits(yb) & 0xFu;
		else if (ELEM == GROUP_ELEM_INT8)
			c = fp8kv_int8_encode_bits(yb, TZ) & 0xFFu;
		else
			c = FP8KV_DEVICE_ENCODE(y[k], f, saturate) & 0xFFu;
		place_code<ELEM>(lo, hi, k, c);
	}
	return make_uint2(lo, hi);
}

// Stores a vector's codes: 8 bytes, or 4 of e2m1 pairs.
template <int ELEM>
static __device__ __forceinline__ void group_store(unsigned char *dst, const uint2 codes)
{
	if (ELEM == GROUP_ELEM_E2M1)
		*(uint32_t *)dst = codes.x;
	else
		*(uint2 *)dst = codes;
}

// One vector v of a group of scale sc, element by element and exact: the
// IEEE quotient, group_code (counters when COUNT).
template <int DT, int ELEM, bool COUNT>
static __device__ __noinline__ uint2 group_vec_exact(unsigned char *dst, const uint4 v,
						     const fp8kv_group_scale sc,
						     const fp8kv_fp8_format f, int saturate,
						     int toward_zero)
{
	float x[8];
	unpack<DT>(v, x);
	unsigned int overflows = 0, nans = 0;
	uint32_t lo = 0, hi = 0;
#pragma unroll
	for (int k = 0; k < 8; k++) {
		const uint32_t c = group_code<ELEM, COUNT>(x[k], group_quotient(x[k], sc.s), sc.zero, f,
							   saturate, toward_zero, overflows, nans);
		place_code<ELEM>(lo, hi, k, c);
	}
	group_store<ELEM>(dst, make_uint2(lo, hi));
	return make_uint2(overflows, nans);
}

// The quotients of a vector's eight finite values x by a group's scale s
// (rs: its exact reciprocal for the E8M0 rules, else RN(1 / s); recip:
// the group may divide by divide_recip), with x's signs.
template <int RULE>
static __device__ __forceinline__ void group_quotients(const float x[8], float s, float rs,
						       bool recip, float y[8])
{
	constexpr bool E8M0 = RULE == FP8KV_CV_GROUP_E8M0_FLOOR || RULE == FP8KV_CV_GROUP_E8M0_RCEIL;
#ifndef HAVE_HW_FP8
	(void)recip;
#endif
#pragma unroll
	for (int k = 0; k < 8; k++) {
		float q;
		if (E8M0) {
			q = x[k] * rs;  // exact (K-GROUP-DIV)
		} else {
#ifdef HAVE_HW_FP8
			q = recip ? divide_recip<1, false>(x[k], s, rs) : x[k] / s;
#else
			q = x[k] / s;
#endif
		}
		// the sign of x: the steps leave it unset below 2^-18 (K-DIV)
		y[k] = fp8kv_bits_f32((fp8kv_f32_bits(q) & 0x7FFFFFFFu) |
				      (fp8kv_f32_bits(x[k]) & 0x80000000u));
	}
}

// The scale of a vector's group and what its elements divide by.
typedef struct group_divisor {
	fp8kv_group_scale sc;
	float rs;    // 1 / s: exact (E8M0) or RN (the others)
	bool recip;  // divide_recip gives the IEEE quotients of the group
	bool mx;     // gfx950's scaled conversions give the group's codes
} group_divisor;

template <int DT, int RULE>
static __device__ __forceinline__ group_divisor group_divisor_of(int format, float divisor,
								 float scale_floor, float g,
								 float amax)
{
	group_divisor d;
	d.sc = fp8kv_group_scale_of(RULE, format, divisor, scale_floor, g, amax);
	d.mx = false;
	if (RULE == FP8KV_CV_GROUP_E8M0_FLOOR || RULE == FP8KV_CV_GROUP_E8M0_RCEIL) {
		d.rs = fp8kv_e8m0_value(254u - d.sc.stored);  // 2^(127 - b) = 1 / 2^(b - 127)
		d.recip = false;
#if FP8KV_AMD_HAVE_HW_MX
		d.mx = fp8kv_amd_mx_usable(d.sc.stored, amax, fp8kv_amd_mx_limit(format));
#endif
	} else {
		d.rs = 1.0f / d.sc.s;
#ifdef HAVE_HW_FP8
		// recip_ok: the proof's range of s; below 2^100 the steps
		// neither overflow nor lose the remainder (K-GROUP-DIV)
		d.recip = recip_ok<DT>(d.sc.s) && amax * d.rs < 0x1p100f;
#else
		d.recip = false;
#endif
	}
	return d;
}

// One vector of a group, fast where it may be: see the file's comment.
template <int DT, int RULE, int ELEM, bool TZ, bool COUNT>
static __device__ __forceinline__ void group_vec(unsigned char *dst, const uint4 v, bool finite,
						 const group_divisor &d, const fp8kv_fp8_format f,
						 int saturate, unsigned int &overflows,
						 unsigned int &nans)
{
	if (COUNT || !finite || d.sc.zero) {
		const uint2 n = group_vec_exact<DT, ELEM, COUNT>(dst, v, d.sc, f, saturate, TZ);
		overflows += n.x;
		nans += n.y;
		return;
	}
	float x[8], y[8];
	group_unpack_finite<DT>(v, x);
#if FP8KV_AMD_HAVE_HW_MX
	if ((RULE == FP8KV_CV_GROUP_E8M0_FLOOR || RULE == FP8KV_CV_GROUP_E8M0_RCEIL) &&
	    ELEM != GROUP_ELEM_INT8 && d.mx) {
		// the scaled conversions: |x| and the byte in, x's signs back
		group_store<ELEM>(dst, fp8kv_amd_mx_codes<ELEM == GROUP_ELEM_E2M1>(
					       x, d.sc.stored, f.mant_bits == 2));
		return;
	}
#endif
	group_quotients<RULE>(x, d.sc.s, d.rs, d.recip, y);
#ifdef HAVE_HW_FP8
	if (ELEM == GROUP_ELEM_FP8 && !f.fnuz) {
		// cvt.rn.satfinite: the contract's codes for quotients up to the
		// last that rounds to max, and, saturating, for any finite one
		uint32_t m = 0;
#pragma unroll
		for (int k = 0; k < 8; k++)
			m = max(m, fp8kv_f32_bits(y[k]) & 0x7FFFFFFFu);
		if (saturate || m <= last_to_max(f)) {
			uint32_t lo = cvt_pair(y[0], y[1], f) | cvt_pair(y[2], y[3], f) << 16;
			uint32_t hi = cvt_pair(y[4], y[5], f) | cvt_pair(y[6], y[7], f) << 16;
			// satfinite keeps a sign; the inputs' signs are the codes' (s > 0)
			group_store<ELEM>(dst, make_uint2(codes_signed_as(lo, v.x, v.y),
							  codes_signed_as(hi, v.z, v.w)));
			return;
		}
	}
#endif
	group_store<ELEM>(dst, group_pack_codes<ELEM, TZ>(y, f, saturate));
}

// What one pair brings: token, head, raw slot and the lane's vectors.
template <int VPL>
struct group_pair {
	uint32_t t, h;
	int64_t raw;
	uint4 x[2][VPL];
};

/*
 * RULE: fp8kv_group_rule; ELEM: GROUP_ELEM_*; TZ: int8 rounds toward zero;
 * VPL: vectors per lane; OPTIONS: counters, k_amax/v_amax or a
 * swa_mapping (the pointers say which); SIDE1: GROUP_SIDE1_*.
 */
template <int DT, int RULE, int ELEM, bool TZ, int VPL, bool OPTIONS, int SIDE1>
static __global__ void __launch_bounds__(BLOCK, GROUP_MIN_BLOCKS)
write_group_kernel(const write_params p)
{
	constexpr int VE = 8;  // 16-bit values per vector
	constexpr int OUT = ELEM == GROUP_ELEM_E2M1 ? 4 : 8;  // cache bytes per vector
	fp8kv_begin_after_prior_grid();
	const uint32_t team = 1u << p.team_log2;
	const uint32_t lane = threadIdx.x & (team - 1);
	const uint32_t teams_per_block = BLOCK >> p.team_log2;
	const uint32_t my_team = threadIdx.x >> p.team_log2;
	const uint32_t glanes = 1u << p.group_lanes_log2;
	const uint64_t pairs = (uint64_t)(p.plan.num_tokens * p.plan.num_heads);
	const uint64_t stride = (uint64_t)gridDim.x * teams_per_block;
	const fp8kv_row_recipe &r = plan_recipe(p.plan);
	const uint32_t nvec[2] = {(uint32_t)(p.plan.side[0].head_dim / VE),
				  (uint32_t)(p.plan.side[1].head_dim / VE)};
	const fp8kv_fp8_format f = fp8kv_format_of(r.cache_dtype);
	constexpr int GROUPED_SIDES = SIDE1 == GROUP_SIDE1_GROUPS ? 2 : 1;
	float g[2] = {0.0f, 0.0f};  // NVFP4's global scales, loaded once
	if (RULE == FP8KV_CV_GROUP_NVFP4)
		for (int i = 0; i < GROUPED_SIDES; i++)
			g[i] = p.plan.side[i].groups.global[0];
	int error = 0;
	unsigned int overflows = 0, nans = 0;  // OPTIONS
	__shared__ unsigned long long block_counts[2];
	if (OPTIONS) {
		if (threadIdx.x == 0)
			block_counts[0] = block_counts[1] = 0;
		raise_amax_to_zero(p.plan.side[0].amax, p.plan.side[1].amax, p.plan.num_heads);
		__syncthreads();
	}

	unsigned long long counted = 0;  // count_block's result, read after the stores
	for (uint64_t base = (uint64_t)blockIdx.x * teams_per_block; base < pairs; base += stride) {
		const uint64_t pair = base + my_team;
		group_pair<VPL> in;
		in.raw = -1;
		in.t = in.h = 0;
		if (pair < pairs) {
			const uint32_t t = p.index32 ? (uint32_t)div_magic((int64_t)pair, p.heads_magic,
									   p.heads_shift)
						     : (uint32_t)div_nonneg((int64_t)pair,
									    p.plan.num_heads);
			in.t = t;
			in.h = (uint32_t)(pair - (uint64_t)t * (uint64_t)p.plan.num_heads);
			in.raw = fp8kv_raw_slot(&p.plan.slots, t);
#pragma unroll
			for (int i = 0; i < 2; i++) {
				const fp8kv_plan_side &sd = p.plan.side[i];
				const unsigned char *src = sd.input + fp8kv_input_row(&sd, t, in.h) * 2;
#pragma unroll
				for (int j = 0; j < VPL; j++)
					if (lane + j * team < nvec[i])
						in.x[i][j] = load16(src + (int64_t)(lane + j * team) * 16);
			}
		}
		const bool last = base + stride >= pairs;  // the block's last pair
		// each vector's amax, then its group's: every lane shuffles, with
		// 0 for vectors past the row (whole groups: nvec is a multiple
		// of G / 8)
		float a[2][VPL];
		bool finite[2][VPL];
#pragma unroll
		for (int i = 0; i < 2; i++)
#pragma unroll
			for (int j = 0; j < VPL; j++) {
				a[i][j] = 0.0f;
				finite[i][j] = true;
				const bool mine = in.raw >= 0 && lane + j * team < nvec[i];
				if (mine && (i < GROUPED_SIDES || (OPTIONS && p.plan.side[i].amax)))
					a[i][j] = group_vec_amax<DT>(in.x[i][j], finite[i][j]);
			}
#pragma unroll
		for (int i = 0; i < GROUPED_SIDES; i++)
#pragma unroll
			for (int j = 0; j < VPL; j++)
				for (uint32_t m = 1; m < glanes; m <<= 1)
					a[i][j] = max_nonneg(a[i][j], SHFL_XOR(a[i][j], (int)m));
		// the rows' amax for k_amax/v_amax (uniform: the pointers)
		float top[2] = {0.0f, 0.0f};
		if (OPTIONS)
#pragma unroll
			for (int i = 0; i < 2; i++)
				if (p.plan.side[i].amax) {
#pragma unroll
					for (int j = 0; j < VPL; j++)
						if (fp8kv_amax_raises(top[i], a[i][j]))
							top[i] = a[i][j];
					top[i] = team_max(top[i], (int)team);
				}

		int64_t slot = 0;
		const int kind = resolve_team_slot(p.errors, p.plan.slots, in.raw, in.t, in.h, lane,
						   OPTIONS && p.plan.slots.swa_mapping, last, error,
						   counted, slot);
		if (kind != FP8KV_SLOT_WRITE)
			continue;
		const int64_t block = div_nonneg(slot, p.plan.block_size);
		const int64_t offset = slot - block * p.plan.block_size;
#pragma unroll
		for (int i = 0; i < 2; i++) {
			const fp8kv_plan_side &sd = p.plan.side[i];
			if (OPTIONS && sd.amax && lane == 0)
				raise_float(sd.amax + in.h, top[i]);
			if (i == 1 && SIDE1 == GROUP_SIDE1_COPY) {
				unsigned char *row = sd.cache + fp8kv_cache_row(&sd, block, offset, in.h) * 2;
#pragma unroll
				for (int j = 0; j < VPL; j++)
					if (lane + j * team < nvec[i]) {
						*(uint4 *)(row + (int64_t)(lane + j * team) * 16) = in.x[i][j];
						if (OPTIONS && p.plan.nan_count)
							nans += vec_nans<DT>(in.x[i][j]);
					}
				continue;
			}
			unsigned char *row = sd.cache + fp8kv_cache_row(&sd, block, offset, in.h);
#pragma unroll
			for (int j = 0; j < VPL; j++) {
				const uint32_t v = lane + j * team;
				if (v >= nvec[i])
					continue;
				const group_divisor d = group_divisor_of<DT, RULE>(
					r.cache_dtype, r.group.divisor, r.group.scale_floor, g[i], a[i][j]);
				if ((lane & (glanes - 1)) == 0)
					fp8kv_store_group_scale(
						&sd,
						fp8kv_group_scale_index(&sd, block, offset, in.h,
									v >> p.group_lanes_log2),
						d.sc.stored);
				group_vec<DT, RULE, ELEM, TZ, OPTIONS>(row + (int64_t)v * OUT, in.x[i][j],
									finite[i][j], d, f, p.plan.saturate,
									overflows, nans);
			}
		}
	}
	if (OPTIONS) {
		gather_block_counts(block_counts, overflows, nans, p.plan.overflow_count,
				    p.plan.nan_count);
		publish_block_counts(block_counts, p.plan.overflow_count, p.plan.nan_count);
	}
	if (threadIdx.x == 0)
		finish_launch(p.errors, p.plan.slots, error, counted);
}

#endif /* FP8KV_HIP_GROUP_FAST_H */
