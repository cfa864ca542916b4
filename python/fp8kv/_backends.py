# SPDX-License-Identifier: MIT
"""Backends, opened once per device and kept: "cpu" for host memory, "hip:N"
for the GPU torch calls cuda:N (CUDA or ROCm).  Device keys are -1 for the
host and N for cuda:N, as _arrays.describe() gives them."""

import collections
import ctypes
import threading

from . import _capi, _torch

_handles = {}
_lock = threading.Lock()

BackendInfo = collections.namedtuple("BackendInfo", "name device")
BackendInfo.__doc__ = "A backend that opens here: its name and its device's description."

_raw_stream = None


def _adopted(torch):
    global _raw_stream
    _raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)


_torch.on_adopt(_adopted)


def backend_name(d):
    return "cpu" if d < 0 else "hip:%d" % d


def handle(d):
    """The open backend of device key d (opening it on first use)."""
    h = _handles.get(d)
    if h is None:
        with _lock:
            h = _handles.get(d)
            if h is None:
                out = ctypes.c_void_p()
                _capi.raise_for(_capi.fn.backend_open(backend_name(d).encode(),
                                                      ctypes.byref(out)))
                h = _handles[d] = out.value
    return h


def stream(d):
    """torch's current stream on cuda:d as a pointer-sized int (0 is the
    default stream); None for the host."""
    if d < 0:
        return None
    if _raw_stream is not None:
        return _raw_stream(d)
    return _torch.torch.cuda.current_stream(d).cuda_stream


def device_key(device):
    """A device key from None, an int (cuda:N), "cpu", "cuda", "cuda:N",
    "hip:N" or a torch.device."""
    if isinstance(device, int) and not isinstance(device, bool):
        return device
    torch = _torch.adopt()
    if torch is not None and isinstance(device, torch.device):
        device = str(device)
    if isinstance(device, str):
        kind, _, index = device.partition(":")
        if kind == "cpu" and not index:
            return -1
        if kind in ("cuda", "hip"):
            if not index:
                return torch.cuda.current_device() if torch is not None else 0
            if index.isdigit():
                return int(index)
    raise ValueError("device: %r is not cpu, cuda[:N] or hip[:N]" % (device,))


def synchronize(device=None):
    """Waits for the fp8kv work queued on torch's current stream of a device
    and raises what the device recorded since the last report: a RangeError
    for an out-of-range slot of an earlier reshape_and_cache on a GPU, for
    instance.  device: "cuda:N", a torch.device, an int, "cpu" or None (every
    backend opened so far).  A backend never used has nothing to report."""
    keys = list(_handles) if device is None else [device_key(device)]
    for d in keys:
        h = _handles.get(d)
        if h is not None:
            _capi.raise_for(_capi.fn.backend_synchronize(h, stream(d)))


def backends():
    """The backends that open here, as BackendInfo(name, device) tuples:
    "cpu" always, then "hip:N" for each GPU the HIP module reaches.  Opening
    a GPU backend initialises the GPU runtime."""
    found = []
    d = -1
    while True:
        try:
            h = handle(d)
        except _capi.Error:
            break
        found.append(BackendInfo(_capi.fn.backend_name(h).decode(),
                                 _capi.fn.backend_device(h).decode()))
        d += 1
        torch = _torch.torch
        if torch is not None and torch.cuda.is_available() and d >= torch.cuda.device_count():
            break
    return found
