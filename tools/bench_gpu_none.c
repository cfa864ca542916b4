/* SPDX-License-Identifier: MIT */
/* bench_gpu_none.c - fp8kv-bench without the HIP backend: host timing only. */
#include "bench_device.h"

const bench_device *bench_gpu_device(void)
{
	return NULL;
}
