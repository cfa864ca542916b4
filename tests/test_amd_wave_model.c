/* SPDX-License-Identifier: MIT */
/*
 * test_amd_wave_model.c - the HIP backend's team reduction, modelled lane
 * by lane on the CPU, on a 64-lane wavefront (AMD gfx9) and a 32-lane warp
 * (NVIDIA).
 *
 * The kernels (hip/fp8kv_hip.hip) give each (token, head) pair a team of
 * 1 to MAX_TEAM = 32 lanes: lane = tid & (team - 1), team = tid >> log2;
 * team_max() then runs, on every lane in lockstep,
 *     for (m = team / 2; m > 0; m /= 2) v = max(v, SHFL_XOR(v, m));
 * where SHFL_XOR is __shfl_xor_sync(~0u, v, m) (nvcc: width 32) or HIP's
 * __shfl_xor(v, m) (width warpSize).  The shuffles are modelled here as
 * their headers define them:
 *   - ROCm (amd_warp_functions.h): index = self ^ m, replaced by self when
 *     it reaches the next multiple of width; the value is read with
 *     ds_bpermute, whose lane index is taken modulo the wavefront size;
 *   - CUDA: within each segment of width lanes, lane self ^ m.
 * The test checks, for both wave sizes, every team width and both shuffle
 * models, that every lane ends with its own team's maximum, and that a
 * block of 256 threads never splits a team across two waves.  Planted
 * faults (a team one lane off its alignment, a first mask as wide as the
 * team, teams of 64 under CUDA's width) must be caught.
 *
 * The kernel's team_max() is device code in SIMT form (one lane's view,
 * the shuffle a collective); the model runs all lanes of each step
 * together, so it restates the loop rather than including it: sharing it
 * would need the kernel's loop rewritten around a step function of the
 * partner's value, which the kernels do not need.
 */
#include <stdio.h>
#include <stdlib.h>

#define MAX_WAVE 64
#define BLOCK 256

enum shuffle { ROCM, CUDA };
enum fault { NONE, MISALIGNED, MASK_TOO_WIDE };

/* the value lane `self` reads from SHFL_XOR(v, mask) */
static float shfl_xor(const float v[], int wave, enum shuffle s, int self, int mask, int width)
{
	int index;
	if (s == ROCM) {
		index = self ^ mask;
		if (index >= ((self + width) & ~(width - 1)))
			index = self;
		index %= wave; /* ds_bpermute: byte address (index << 2), modulo the wave */
	} else {
		index = (self & ~(width - 1)) | ((self & (width - 1)) ^ mask);
		if (index >= wave)
			index = self;
	}
	return v[index];
}

static float max_nonneg(float a, float b)
{
	return b > a ? b : a;
}

/* team_max() on a whole wave in lockstep; team lanes start at `offset` */
static void team_max_wave(float v[], int wave, enum shuffle s, int width, int team,
			  enum fault fault)
{
	float in[MAX_WAVE];
	for (int m = fault == MASK_TOO_WIDE ? team : team >> 1; m > 0; m >>= 1) {
		for (int l = 0; l < wave; l++)
			in[l] = v[l];
		for (int l = 0; l < wave; l++) {
			/* a misaligned team: its lanes numbered from one lane on */
			const int self = fault == MISALIGNED ? (l + 1) % wave : l;
			v[l] = max_nonneg(in[l], shfl_xor(in, wave, s, self, m, width));
		}
	}
}

/* 0 when every lane of a wave of `wave` lanes holds its team's maximum */
static int check(int wave, enum shuffle s, int width, int team, enum fault fault)
{
	float v[MAX_WAVE], want[MAX_WAVE];
	for (int trial = 0; trial < 200; trial++) {
		for (int l = 0; l < wave; l++)
			v[l] = (float)(rand() % 1000) / 8.0f;
		for (int l = 0; l < wave; l++) {
			const int base = l & ~(team - 1);
			want[l] = 0.0f;
			for (int k = base; k < base + team && k < wave; k++)
				want[l] = max_nonneg(want[l], v[k]);
		}
		team_max_wave(v, wave, s, width, team, fault);
		for (int l = 0; l < wave; l++)
			if (v[l] != want[l])
				return 1;
	}
	return 0;
}

int main(void)
{
	int failed = 0;
	srand(64);

	/* a block's teams never straddle two waves: team <= 32 divides 64 and 32 */
	for (int wave = 32; wave <= 64; wave *= 2)
		for (int log2 = 0; (1 << log2) <= 32; log2++)
			for (int tid = 0; tid < BLOCK; tid++) {
				const int team_first = (tid >> log2) << log2;
				const int team_last = team_first + (1 << log2) - 1;
				if (team_first / wave != team_last / wave) {
					printf("FAIL: wave %d, team %d: thread %d's team spans two waves\n",
					       wave, 1 << log2, tid);
					failed = 1;
				}
			}

	/* every team width the kernels use, both wave sizes, both shuffles */
	for (int wave = 32; wave <= 64; wave *= 2)
		for (int s = ROCM; s <= CUDA; s++) {
			/* nvcc: width 32; HIP: width warpSize (the wave) */
			const int width = s == CUDA ? 32 : wave;
			if (s == CUDA && wave == 64)
				continue; /* no 64-lane NVIDIA warp */
			for (int team = 1; team <= 32; team *= 2) {
				const int bad = check(wave, (enum shuffle)s, width, team, NONE);
				printf("%s wave %d, width %d, team %2d: %s\n", s == ROCM ? "rocm" : "cuda",
				       wave, width, team, bad ? "FAIL" : "ok");
				failed |= bad;
			}
		}

	/* a ROCm build whose warpSize were 32 on a 64-lane wave still reduces
	 * teams of up to 32 correctly (their lanes share a 32-lane half) */
	for (int team = 1; team <= 32; team *= 2)
		failed |= check(64, ROCM, 32, team, NONE);

	/* planted faults must be caught */
	for (int team = 2; team <= 32; team *= 2) {
		if (!check(64, ROCM, 64, team, MISALIGNED)) {
			printf("FAIL: a misaligned team of %d not caught\n", team);
			failed = 1;
		}
		if (!check(64, ROCM, 64, team, MASK_TOO_WIDE)) {
			printf("FAIL: a first mask of %d (the team's width) not caught\n", team);
			failed = 1;
		}
	}
	/* a team of 64 is whole on a 64-lane wave with HIP's width, but split
	 * by a 32-lane width: why MAX_TEAM is 32 on both platforms */
	if (check(64, ROCM, 64, 64, NONE) || !check(64, ROCM, 32, 64, NONE)) {
		printf("FAIL: teams of 64 behave otherwise than modelled\n");
		failed = 1;
	}
	printf("%s\n", failed ? "FAIL" : "PASS: team_max is wave64-correct for teams of 1 to 32");
	return failed;
}
