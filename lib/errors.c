/* SPDX-License-Identifier: MIT */
/* errors.c - status strings and the per-thread message. */
#include "config.h"

#include <stdio.h>
#include <stdarg.h>
#include <string.h>

#include "internal.h"

static _Thread_local char last_message[512];

FP8KV_API const char *fp8kv_strerror(fp8kv_status status)
{
	switch (status) {
	case FP8KV_OK: return "success";
	case FP8KV_EINVAL: return "invalid argument";
	case FP8KV_ENOTSUP: return "unsupported combination";
	case FP8KV_ERANGE: return "slot out of range";
	case FP8KV_ENODEV: return "backend or device not available";
	case FP8KV_EBACKEND: return "backend failure";
	case FP8KV_ENOMEM: return "out of memory";
	}
	return "unknown status";
}

FP8KV_API const char *fp8kv_last_error(void)
{
	return last_message;
}

void fp8kv_clear_error(void)
{
	last_message[0] = '\0';
}

/* Formats into a local buffer first: an argument may be last_message itself
 * (a module wrapping another backend's message). */
static fp8kv_status set_error_v(fp8kv_status status, const char *fmt, va_list ap)
{
	char message[sizeof last_message];
	vsnprintf(message, sizeof message, fmt, ap);
	memcpy(last_message, message, sizeof message);
	return status;
}

fp8kv_status fp8kv_set_error(fp8kv_status status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	set_error_v(status, fmt, ap);
	va_end(ap);
	return status;
}
