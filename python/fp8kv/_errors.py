# SPDX-License-Identifier: MIT
"""The exceptions fp8kv raises for the library's status codes."""


class Error(Exception):
    """A call into libfp8kv failed.

    ``status`` is the library's fp8kv_status code and ``message`` is
    fp8kv_last_error()'s text for that call (it names the argument and the
    value).  Arguments the package can judge itself are rejected earlier,
    with ValueError or TypeError, before the library is called.
    """

    status = None

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InvalidArgument(Error, ValueError):
    """FP8KV_EINVAL: an argument is invalid (size, stride, alignment, overlap)."""
    status = 1


class NotSupported(Error):
    """FP8KV_ENOTSUP: valid, but the combination is not supported."""
    status = 2


class RangeError(Error):
    """FP8KV_ERANGE: a slot was out of range; those tokens were skipped and
    every other token was written."""
    status = 3


class NoDevice(Error):
    """FP8KV_ENODEV: the backend or its device is absent."""
    status = 4


class BackendError(Error):
    """FP8KV_EBACKEND: the backend failed (driver, runtime, module ABI)."""
    status = 5


class OutOfMemory(Error, MemoryError):
    """FP8KV_ENOMEM: out of memory, host or device."""
    status = 6


ERROR_CLASSES = {cls.status: cls for cls in
                 (InvalidArgument, NotSupported, RangeError, NoDevice,
                  BackendError, OutOfMemory)}
