# SPDX-License-Identifier: MIT
"""Guarded caches and the bytes expected in them.

Every cache the writer gets lies inside a larger buffer: canary bytes
before and after it (two blocks each, so that a padding slot or an
out-of-range slot turned into an address lands in them), poison in every
slot of the cache.  All of it is random (seeded), and the poison of a
mapped slot differs from what the writer must write there, so a missed
write, a stray write and a write outside the cache all change some byte.

The expected bytes are the CPU backend's (fp8kv.golden) for the same call.
The harness also derives them from its own model of the mapping (each
token's row, encoded by the CPU backend, at its slot); the two must agree,
and the model is what names the token behind every byte.
"""

import math

import numpy as np

from .. import golden, typed
from .cases import DUPLICATE, OUT_OF_RANGE

ROW_BLOCKS = 2          # canary size, in cache blocks, on each side


class HarnessError(RuntimeError):
    """The CPU backend and the harness's model of a call disagree: a defect
    of fp8kv.conform or of the library, never of the writer under test."""


class Geometry:
    """Where a cache's rows lie in its guarded buffer: [before | cache |
    after].  A row is one head of one slot: dim elements, contiguous."""

    def __init__(self, blocks, block_size, heads, dim, layout, itemsize=1):
        self.blocks, self.block_size, self.heads, self.dim = blocks, block_size, heads, dim
        self.layout, self.itemsize = layout, itemsize
        self.row = dim * itemsize
        self.rows = blocks * block_size * heads
        self.size = self.rows * self.row
        self.before = self.after = ROW_BLOCKS * block_size * heads * self.row
        self.total = self.before + self.size + self.after

    @property
    def shape(self):
        """The cache's logical shape (NHD or HND), elements."""
        B, S, H, D = self.blocks, self.block_size, self.heads, self.dim
        shape = (B, S, H, D) if self.layout == "NHD" else (B, H, S, D)
        return shape if D > 1 or self.itemsize == 1 else shape[:3]

    def row_index(self, slot, head):
        b, o = np.divmod(slot, self.block_size)
        if self.layout == "NHD":
            return (b * self.block_size + o) * self.heads + head
        return (b * self.heads + head) * self.block_size + o

    def locate(self, row):
        """(slot, head) of cache rows (0 <= row < rows)."""
        if self.layout == "NHD":
            slot, head = np.divmod(row, self.heads)
            return slot, head
        bh, o = np.divmod(row, self.block_size)
        b, head = np.divmod(bh, self.heads)
        return b * self.block_size + o, head


def _golden_inputs(case):
    key, value = case.key, case.value
    if key.dtype == np.uint16:
        key, value = typed(key, "bf16"), typed(value, "bf16")
    return key, value


def _scale_args(case):
    spec = case.spec
    return dict(scale=spec.mode, k_scale=case.k_scale, v_scale=case.v_scale,
                overflow=spec.overflow, format=spec.fmt)


def token_rows(case):
    """Every token's rows as the CPU backend encodes them, whatever its slot:
    (key rows [T, H, D], value rows, key row scales [T, H], value's) with the
    scales None unless dynamic.  One golden call with token t at slot t."""
    T, H, D, S = len(case.slots), case.heads, case.head_dim, case.block_size
    blocks = math.ceil(T / S)
    kc = np.zeros((blocks, S, H, D), np.uint8)
    vc = np.zeros_like(kc)
    kw = _scale_args(case)
    if case.spec.mode == "dynamic":
        kw.update(k_scale_cache=np.zeros((blocks, S, H), np.float32),
                  v_scale_cache=np.zeros((blocks, S, H), np.float32))
    key, value = _golden_inputs(case)
    res = golden.reshape_and_cache(key, value, kc, vc, np.arange(T, dtype=np.int64),
                                   layout="NHD", **kw)
    rows = [np.asarray(r).reshape(-1, H, D)[:T] for r in (res.key_cache, res.value_cache)]
    scales = [None, None]
    if case.spec.mode == "dynamic":
        scales = [np.asarray(r).reshape(-1, H)[:T] for r in (res.k_scale_cache,
                                                            res.v_scale_cache)]
    return rows[0], rows[1], scales[0], scales[1]


class Expected:
    """One call's guarded buffers: what the writer gets (template), what it
    must leave (expected), and at duplicate slots the other token's bytes
    (alternative, equal to expected elsewhere).  Per cache name ("key",
    "value", and "k_scale_cache", "v_scale_cache" when dynamic)."""

    def __init__(self):
        self.geometry, self.template, self.expected, self.alternative = {}, {}, {}, {}


def _owners(case):
    """The token whose bytes a slot must hold (the last one, in token order)
    and, at a slot two tokens share, the other one; -1 where none."""
    owner = np.full(case.num_slots, -1, np.int64)
    other = np.full(case.num_slots, -1, np.int64)
    for t in np.flatnonzero(case.final >= 0):
        s = case.final[t]
        if owner[s] >= 0:
            other[s] = owner[s]
        owner[s] = t
    other = np.where(other >= 0, other, owner)
    return owner, other


def _fill(geo, rng, slots, heads, rows_expected, rows_other):
    """Template, expected and alternative buffers of one cache."""
    template = rng.integers(0, 256, geo.total, dtype=np.uint8)
    cache = template[geo.before:geo.before + geo.size].reshape(geo.rows, geo.row)
    at = geo.row_index(slots, heads)
    poison = cache[at]
    for _ in range(8):       # the poison of a mapped row differs from its bytes
        same = (poison == rows_expected) | (poison == rows_other)
        if not same.any():
            break
        poison[same] += np.uint8(97)
    cache[at] = poison
    expected, alternative = template.copy(), template.copy()
    for buf, rows in ((expected, rows_expected), (alternative, rows_other)):
        buf[geo.before:geo.before + geo.size].reshape(geo.rows, geo.row)[at] = rows
    return template, expected, alternative


def expect(case, rng):
    """The guarded buffers of a call, checked against the CPU backend."""
    spec = case.spec
    H, D, S = case.heads, case.head_dim, case.block_size
    owner, other = _owners(case)
    tk, tv, sk, sv = token_rows(case)
    case.token_rows = {"key": tk, "value": tv}
    case.row_scales = {"key": sk, "value": sv}
    case.owner, case.other_owner = owner, other
    mapped = np.flatnonzero(owner >= 0)
    slots = np.repeat(mapped, H)
    heads = np.tile(np.arange(H), len(mapped))
    t_exp, t_alt = owner[slots], other[slots]
    out = Expected()
    caches = [("key", D, 1, tk), ("value", D, 1, tv)]
    if spec.mode == "dynamic":
        caches += [("k_scale_cache", 1, 4, sk), ("v_scale_cache", 1, 4, sv)]
    for name, dim, size, rows in caches:
        geo = Geometry(case.blocks, S, H, dim, spec.layout, size)
        if size == 4:
            rows = np.ascontiguousarray(rows, np.float32).view(np.uint8).reshape(-1, H, 4)
        out.geometry[name] = geo
        out.template[name], out.expected[name], out.alternative[name] = _fill(
            geo, rng, slots, heads, rows[t_exp, heads], rows[t_alt, heads])
    _check_against_golden(case, out)
    return out


def cache_view(buf, geo):
    """The cache part of a host buffer, in its logical shape (uint8, or
    float32 for a scale cache)."""
    part = buf[geo.before:geo.before + geo.size]
    if geo.itemsize == 4:
        part = part.view(np.float32)
    return part.reshape(geo.shape)


def _check_against_golden(case, out):
    """The CPU backend's result for the call itself must equal the model's."""
    spec = case.spec
    views = {name: cache_view(out.template[name].copy(), geo)
             for name, geo in out.geometry.items()}
    kw = _scale_args(case)
    if spec.mode == "dynamic":
        kw.update(k_scale_cache=views["k_scale_cache"], v_scale_cache=views["v_scale_cache"])
    key, value = _golden_inputs(case)
    res = golden.reshape_and_cache(key, value, views["key"], views["value"], case.slots,
                                   swa_mapping=case.swa, layout=spec.layout, **kw)
    got = {"key": res.key_cache, "value": res.value_cache,
           "k_scale_cache": res.k_scale_cache, "v_scale_cache": res.v_scale_cache}
    for name, geo in out.geometry.items():
        exp = out.expected[name][geo.before:geo.before + geo.size]
        if not np.array_equal(golden.as_bytes(got[name]).reshape(-1), exp):
            raise HarnessError("%s: the CPU backend's %s differs from the harness's model "
                               "of the call" % (case.describe(), name))
    oor = bool((case.status == OUT_OF_RANGE).any())
    if oor != (res.error is not None):
        raise HarnessError("%s: the CPU backend %s an out-of-range slot" % (
            case.describe(), "reported" if res.error is not None else "did not report"))
    case.duplicate_tokens = int((case.status == DUPLICATE).sum())
