// SPDX-License-Identifier: MIT
/*
 * context.h - the HIP backend's state for one device, and the host-side
 * helpers every call uses.
 */
#ifndef FP8KV_HIP_CONTEXT_H
#define FP8KV_HIP_CONTEXT_H

static const fp8kv_host_services *host;  // the library's, set by the entry

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
	return host->set_error(status, "hip: %s: %s", what, hipGetErrorString(e));
}

#endif /* FP8KV_HIP_CONTEXT_H */
