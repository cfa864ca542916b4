// SPDX-License-Identifier: MIT
/*
 * context.h - the HIP backend's state for one device, and the host-side
 * helpers every call uses.
 */
#ifndef FP8KV_HIP_CONTEXT_H
#define FP8KV_HIP_CONTEXT_H

#include <pthread.h>
#include <stdint.h>

#include "backend.h"
#include "error_ring.h"
#include "hip_compat.h"


// The library's services, set by the entry on every open, from any thread:
// the same pointer each time, held as an integer because nvcc's front end
// cannot take __atomic builtins on pointers.
static uintptr_t host_services_bits;
static inline const fp8kv_host_services *host_services(void)
{
	return (const fp8kv_host_services *)__atomic_load_n(&host_services_bits, __ATOMIC_ACQUIRE);
}
#define HOST host_services()

typedef struct hip_context {
	int device;
	int sm_count;
	dev_state *dev;             // device memory
	host_report *report;        // mapped host memory, host address
	host_report *report_dev;    // its device address
	unsigned int eager_seq, graph_seq;
	int dependent_launch;       // fp8kv_dependent_launch_usable()
	pthread_mutex_t lock;       // report consumption
	char name[24];
	char description[320];
} hip_context;

// makes ctx's device current for the life of the object, then restores
class device_guard {
      public:
	explicit device_guard(int device) : previous_(-1)
	{
		if (hipGetDevice(&previous_) != hipSuccess) {
			(void)hipGetLastError();
			previous_ = -1;
		}
		if (previous_ != device)
			(void)hipSetDevice(device);
	}
	~device_guard()
	{
		int now = -1;
		if (previous_ >= 0 && hipGetDevice(&now) == hipSuccess && now != previous_)
			(void)hipSetDevice(previous_);
	}

      private:
	int previous_;
	device_guard(const device_guard &);
	device_guard &operator=(const device_guard &);
};

static fp8kv_status runtime_error(fp8kv_status status, const char *what, hipError_t e)
{
	(void)hipGetLastError();  // clear a non-sticky error
	return HOST->set_error(status, "hip: %s: %s", what, hipGetErrorString(e));
}

#endif /* FP8KV_HIP_CONTEXT_H */
