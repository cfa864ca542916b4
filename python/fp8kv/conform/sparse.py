# SPDX-License-Identifier: MIT
"""Sparse host memory for the caches of the big extras (V-CONFORM-SPARSE).

A cache whose slots pass 2^31 spans tens of gigabytes.  It is a memfd file
of that size, mapped shared: pages exist only where something was written
(the harness's canaries and poisoned blocks, and the writer's stores).
After the call the file's data extents (lseek SEEK_DATA / SEEK_HOLE; a
swapped-out page still counts as data) are every page anything touched, so
every byte outside them is known to be still zero without reading it.  A
writer that reads or copies the whole cache makes every page exist (and
may run out of memory): the child process running it then dies, and the
writer is reported as failed on that call.
"""

import mmap
import os

import numpy as np


def available():
    """True where sparse buffers work (Linux memfd with SEEK_DATA)."""
    if not (hasattr(os, "memfd_create") and hasattr(os, "SEEK_DATA")):
        return False
    try:
        b = SparseBytes(1 << 32)
        b.array[(1 << 31) + 5] = 1
        ok = list(b.extents(0, b.total)) not in ([], [(0, b.total)])
        b.close()
        return ok
    except OSError:
        return False


class SparseBytes:
    """`total` zero bytes of sparse memory; .array is a writable numpy view."""

    def __init__(self, total):
        self.total = int(total)
        self.fd = os.memfd_create("fp8kv-conform", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.ftruncate(self.fd, self.total)
            self.mm = mmap.mmap(self.fd, self.total)
        except Exception:
            os.close(self.fd)
            raise
        self.array = np.frombuffer(self.mm, np.uint8)

    def extents(self, lo, hi):
        """(start, end) of the data extents within [lo, hi)."""
        pos = lo
        while pos < hi:
            try:
                start = os.lseek(self.fd, pos, os.SEEK_DATA)
            except OSError:          # ENXIO: no data past pos
                return
            if start >= hi:
                return
            end = min(os.lseek(self.fd, start, os.SEEK_HOLE), hi)
            yield start, end
            pos = end

    def close(self):
        """Closes the file (the mapping lives as long as arrays over it)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def gaps(template):
    """The spans [start, end) of a Buffer outside its segments."""
    out, at = [], 0
    for s, d in template.segments:
        if s > at:
            out.append((at, s))
        at = max(at, s + len(d))
    if at < template.total:
        out.append((at, template.total))
    return out


def host_changes(arr, template, sparse=None):
    """(positions, bytes) where a host buffer differs from its template: the
    segments compared, the gaps scanned for non-zero bytes (where a sparse
    buffer has data only)."""
    pos, val = [], []
    for s, d in template.segments:
        i = np.flatnonzero(arr[s:s + len(d)] != d)
        pos.append(i + s)
        val.append(arr[s:s + len(d)][i])
    for a, b in gaps(template):
        spans = sparse.extents(a, b) if sparse is not None else [(a, b)]
        for x, y in spans:
            i = np.flatnonzero(arr[x:y])
            pos.append(i + x)
            val.append(arr[x:y][i])
    if not pos:
        return np.zeros(0, np.int64), np.zeros(0, np.uint8)
    p, v = np.concatenate(pos).astype(np.int64), np.concatenate(val).astype(np.uint8)
    order = np.argsort(p, kind="stable")
    return p[order], v[order]
