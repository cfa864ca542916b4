/* SPDX-License-Identifier: MIT */
/*
 * bench_rounds.c - every case is timed in rounds (B-ROUNDS): the fused
 * call, the unfused path, the ceiling and, for launches replayed from a
 * graph, the launch floor, one sample each per round, so that all see the
 * same machine (a shared VM's bandwidth drifts between seconds); the
 * results are medians over the rounds.
 */
#include "config.h"

#include <stdio.h>

#include "bench.h"

int bench_rounds(const bench_device *dev, void *stream, const bench_timing *t, int samples,
		 bench_result *res)
{
	double fused_t[BENCH_MAX_SAMPLES], unfused_t[BENCH_MAX_SAMPLES];
	double ceiling_t[BENCH_MAX_SAMPLES], floor_t[BENCH_MAX_SAMPLES], ratio_t[BENCH_MAX_SAMPLES];
	/* the floor is what a decode call cannot beat: an empty kernel through
	 * the library's launch path, timed the same way (B-FLOOR) */
	const int with_floor = t->graph && dev->launch_floor;
	for (int k = 0; k < samples; k++) {
		if (dev->time(t->fused, t->arg, stream, t->per_sample, t->graph, &fused_t[k]) ||
		    (t->unfused && dev->time(t->unfused, t->arg, stream, t->per_sample, t->graph,
					     &unfused_t[k])) ||
		    dev->time(t->ceiling, t->arg, stream, t->per_sample, t->graph, &ceiling_t[k]) ||
		    (with_floor && dev->time(dev->launch_floor, NULL, stream, t->per_sample, t->graph,
					     &floor_t[k]))) {
			fprintf(stderr, "fp8kv-bench: timing failed: %s\n", fp8kv_last_error());
			return -1;
		}
		ratio_t[k] = (t->bytes / fused_t[k]) / (t->ceiling_bytes / ceiling_t[k]);
	}
	res->fused_s = bench_median(fused_t, samples);
	res->unfused_s = t->unfused ? bench_median(unfused_t, samples) : 0.0;
	res->ceiling_s = bench_median(ceiling_t, samples);
	res->floor_s = with_floor ? bench_median(floor_t, samples) : 0.0;
	res->ratio = bench_median(ratio_t, samples);
	res->bytes = t->bytes;
	res->ceiling_bytes = t->ceiling_bytes;
	res->graph = t->graph;
	return 0;
}
