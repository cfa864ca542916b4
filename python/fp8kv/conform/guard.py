# SPDX-License-Identifier: MIT
"""Guarded caches and the bytes expected in them.

Every cache the writer gets lies inside a larger buffer: canary bytes
before and after it (two blocks each, so that a padding slot or an
out-of-range slot turned into an address lands in them), poison in every
slot of the cache and in the padding between its blocks or rows.  All of it
is random (seeded), and the poison of a mapped slot differs from what the
writer must write there, so a missed write, a stray write and a write
outside the cache all change some byte.

A buffer is described by its size and its materialised segments (a
Buffer); everything else in it is zero.  A call's buffers are one segment
each, except those of the big extras, whose caches span gigabytes: there
only the canaries and the blocks of the mapped slots (and of the bait and
the last slot) are materialised, and the rest is left to sparse memory
(V-CONFORM-SPARSE).

The expected bytes are the CPU backend's (fp8kv.golden) for the same call.
The harness also derives them from its own model of the mapping (each
token's row, encoded by the CPU backend, at its slot); the two must agree,
and the model is what names the token behind every byte.  (For the big
extras the CPU backend is run on each token's rows only, not on the
gigabyte caches.)
"""

import math

import numpy as np

from .. import golden, scale_modes, typed
from .cases import BIG, DUPLICATE, OUT_OF_RANGE, SCALE_MODES
from .errors import HarnessError  # noqa: F401

PAD_ROWS = 32           # bytes between rows of a cache padded between rows
# fp8kv's names of the scale modes, in the header's order.
FP8KV_MODE = dict(zip(SCALE_MODES, scale_modes()))


class Geometry:
    """Where a cache's rows lie in its guarded buffer: [before | cache |
    after].  A row is one head of one slot: dim elements, contiguous; the
    strides (bytes) place blocks, slots and heads, with padding between
    blocks ("blocks", as in vLLM's interleaved K/V blocks) or rows ("rows")
    when the call pads them."""

    # region codes of locate()
    ROW, PADDING, BEFORE, AFTER = range(4)

    def __init__(self, blocks, block_size, heads, dim, layout, itemsize=1, padded=None):
        self.blocks, self.block_size, self.heads, self.dim = blocks, block_size, heads, dim
        self.layout, self.itemsize, self.padded = layout, itemsize, padded
        self.row = dim * itemsize
        gap = PAD_ROWS if padded == "rows" else 0
        inner = self.row + gap
        if layout == "NHD":
            self.sh = inner
            self.ss = heads * self.sh + gap
            self.sb = block_size * self.ss
        else:
            self.ss = inner
            self.sh = block_size * self.ss + gap
            self.sb = heads * self.sh
        if padded == "blocks":
            self.sb *= 2
        self.span = blocks * self.sb
        self.rows = blocks * block_size * heads
        self.before = self.after = 2 * self.sb
        self.total = self.before + self.span + self.after

    def shape_strides(self):
        """(logical shape, byte strides) of the cache view (NHD or HND)."""
        B, S, H, D = self.blocks, self.block_size, self.heads, self.dim
        if self.layout == "NHD":
            shape, strides = (B, S, H, D), (self.sb, self.ss, self.sh, self.itemsize)
        else:
            shape, strides = (B, H, S, D), (self.sb, self.sh, self.ss, self.itemsize)
        if D == 1 and self.itemsize != 1:
            return shape[:3], strides[:3]
        return shape, strides

    def row_start(self, slot, head, block_size=None, strides=None):
        """Byte positions in the buffer of rows (slot, head); block_size and
        strides (sb, ss, sh) as a writer might assume them instead."""
        S = block_size or self.block_size
        sb, ss, sh = strides or (self.sb, self.ss, self.sh)
        b, o = np.divmod(np.asarray(slot, np.int64), S)
        return self.before + b * sb + o * ss + np.asarray(head, np.int64) * sh

    def locate(self, pos):
        """(region, slot, head, element) of byte positions; outside the cache
        the slot and head of the row the position would have (slot < 0
        before it, >= blocks * block_size after it)."""
        pos = np.asarray(pos, np.int64)
        rel = pos - self.before
        region = np.full(pos.shape, self.ROW, np.int8)
        b, r = np.divmod(rel, self.sb)
        if self.layout == "NHD":
            o, r = np.divmod(r, self.ss)
            h, d = np.divmod(r, self.sh)
        else:
            h, r = np.divmod(r, self.sh)
            o, d = np.divmod(r, self.ss)
        pad = (o >= self.block_size) | (h >= self.heads) | (d >= self.row)
        region[pad] = self.PADDING
        region[rel < 0] = self.BEFORE
        region[rel >= self.span] = self.AFTER
        return region, b * self.block_size + o, h, d // self.itemsize


class Buffer:
    """A buffer of `total` bytes: materialised segments (sorted, disjoint),
    zero elsewhere."""

    def __init__(self, total, segments):
        self.total = int(total)
        self.segments = sorted((int(s), np.ascontiguousarray(d, np.uint8))
                               for s, d in segments)
        self.starts = np.array([s for s, _ in self.segments], np.int64)
        self.lens = np.array([len(d) for _, d in self.segments], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lens)[:-1]]).astype(np.int64)
        self.data = np.concatenate([d for _, d in self.segments]) if self.segments else \
            np.zeros(0, np.uint8)
        # the segments as views of data, which poke() changes
        self.segments = [(s, self.data[o:o + n]) for (s, _), o, n in
                         zip(self.segments, self.offsets, self.lens)]

    @property
    def dense(self):
        return len(self.segments) == 1 and self.segments[0][0] == 0 and \
            self.lens[0] == self.total

    @property
    def materialised(self):
        return int(self.lens.sum())

    def at(self, pos):
        """The bytes at positions pos (zero outside the segments)."""
        pos = np.asarray(pos, np.int64)
        if self.dense:
            return self.data[pos]
        i = np.searchsorted(self.starts, pos, side="right") - 1
        ok = i >= 0
        ic = np.where(ok, i, 0)
        ok &= (pos - self.starts[ic]) < self.lens[ic]
        return np.where(ok, self.data[np.where(ok, self.offsets[ic] + pos - self.starts[ic],
                                               0)], 0).astype(np.uint8)

    def poke(self, pos, values):
        """Sets materialised bytes (pos must lie in the segments)."""
        pos = np.asarray(pos, np.int64)
        if self.dense:
            self.data[pos] = values
            return
        i = np.searchsorted(self.starts, pos, side="right") - 1
        self.data[self.offsets[i] + pos - self.starts[i]] = values

    def materialise(self):
        """The whole buffer as one array (for buffers of a few megabytes)."""
        if self.dense:
            return self.data.copy()
        out = np.zeros(self.total, np.uint8)
        for s, d in self.segments:
            out[s:s + len(d)] = d
        return out


def _golden_inputs(case, key=None, value=None):
    key = case.key if key is None else key
    value = case.value if value is None else value
    if key.dtype == np.uint16:
        key, value = typed(key, "bf16"), typed(value, "bf16")
    return key, value


def _scale_args(case):
    spec = case.spec
    return dict(scale=FP8KV_MODE[spec.mode], k_scale=case.k_scale, v_scale=case.v_scale,
                overflow=spec.overflow, format=spec.fmt)


def token_rows(case, key=None, value=None):
    """Every token's rows as the CPU backend encodes them, whatever its slot:
    {"key": [T, H, Dk], "value": [T, H, Dv]} and the row scales ({"key":
    [T, H], ...}, None unless token_head), for the case's inputs or for
    other raw inputs of the same shapes.  One golden call, token t at slot t."""
    T, H, S = len(case.slots), case.heads, case.block_size
    blocks = max(1, math.ceil(T / S))
    kc = np.zeros((blocks, S, H, case.dims["key"]), np.uint8)
    vc = np.zeros((blocks, S, H, case.dims["value"]), np.uint8)
    kw = _scale_args(case)
    if case.spec.mode == "token_head":
        kw.update(k_scale_cache=np.zeros((blocks, S, H), np.float32),
                  v_scale_cache=np.zeros((blocks, S, H), np.float32))
    k, v = _golden_inputs(case, key, value)
    res = golden.reshape_and_cache(k, v, kc, vc, np.arange(T, dtype=np.int64), layout="NHD",
                                   **kw)
    rows = {n: np.asarray(r).reshape(blocks * S, H, -1)[:T]
            for n, r in (("key", res.key_cache), ("value", res.value_cache))}
    scales = {"key": None, "value": None}
    if case.spec.mode == "token_head":
        scales = {n: np.asarray(r).reshape(-1, H)[:T]
                  for n, r in (("key", res.k_scale_cache), ("value", res.v_scale_cache))}
    return rows, scales


class Expected:
    """One buffer's bytes: geometry, the template the writer gets (a
    Buffer), and the mapped rows' positions (sorted) with the bytes due
    there (exp) and at a slot two tokens share the other token's (alt,
    equal to exp elsewhere).  Everything else must stay as the template."""

    def __init__(self, geometry, template, pos, exp, alt):
        self.geometry, self.template = geometry, template
        self.pos, self.exp, self.alt = pos, exp, alt



def _member(sorted_values, x):
    """Which x are in the sorted array, and where."""
    if not len(sorted_values):
        return np.zeros(np.shape(x), bool), np.zeros(np.shape(x), np.int64)
    i = np.minimum(np.searchsorted(sorted_values, x), len(sorted_values) - 1)
    return sorted_values[i] == x, i


class Written:
    """What a writer left in a buffer, against what it had to: the Expected
    and the changed bytes (positions, values) an executor reported.  Dense
    buffers are materialised (a few megabytes), big ones looked up."""

    def __init__(self, e, changes):
        self.e, self.geometry = e, e.geometry
        self.cpos, self.cval = changes
        t = e.template
        self.dense = t.dense
        if self.dense:
            self._t = t.data
            self._g = t.data.copy()
            self._g[self.cpos] = self.cval
            self._e, self._a = t.data.copy(), t.data.copy()
            self._e[e.pos], self._a[e.pos] = e.exp, e.alt
            self._m = np.zeros(t.total, bool)
            self._m[e.pos] = True

    def _clip(self, pos):
        return np.clip(np.asarray(pos, np.int64), 0, self.geometry.total - 1)

    def diff(self):
        """The positions (ascending) where the buffer differs from the
        contract (at a shared slot, from both tokens' bytes)."""
        if self.dense:
            return np.flatnonzero((self._g != self._e) & (self._g != self._a)).astype(np.int64)
        e = self.e
        ge = self.got(e.pos)
        bad = (ge != e.exp) & (ge != e.alt)
        extra = ~_member(e.pos, self.cpos)[0]
        return np.sort(np.concatenate([e.pos[bad], self.cpos[extra]]))

    def got(self, pos):
        pos = self._clip(pos)
        if self.dense:
            return self._g[pos]
        hit, i = _member(self.cpos, pos)
        return np.where(hit, self.cval[i] if len(self.cval) else 0,
                        self.e.template.at(pos)).astype(np.uint8)

    def template(self, pos):
        pos = self._clip(pos)
        return self._t[pos] if self.dense else self.e.template.at(pos)

    def expected(self, pos):
        """(the contract's bytes, the other token's) at positions pos."""
        pos = self._clip(pos)
        if self.dense:
            return self._e[pos], self._a[pos]
        e = self.e
        hit, i = _member(e.pos, pos)
        base = e.template.at(pos)
        return (np.where(hit, e.exp[i], base).astype(np.uint8),
                np.where(hit, e.alt[i], base).astype(np.uint8))

    def mapped(self, pos):
        """Which positions lie in the mapped rows."""
        pos = np.asarray(pos, np.int64)
        if self.dense:
            ok = (pos >= 0) & (pos < self.geometry.total)
            return ok & self._m[self._clip(pos)]
        return _member(self.e.pos, pos)[0]


def owners(case):
    """(mapped slots ascending, the token whose bytes each must hold (the last
    one, in token order), the other token where two share it, else the same)."""
    t = np.flatnonzero(case.final >= 0)
    slots = case.final[t]
    order = np.lexsort((t, slots))
    slots, t = slots[order], t[order]
    uniq, first, counts = np.unique(slots, return_index=True, return_counts=True)
    last = first + counts - 1
    return uniq, t[last], t[np.where(counts > 1, last - 1, last)]


def owner_of(case, slots):
    """The owning token of each slot, -1 where none."""
    slots = np.asarray(slots, np.int64)
    m = case.mapped
    if not len(m):
        return np.full(slots.shape, -1, np.int64)
    i = np.minimum(np.searchsorted(m, slots), len(m) - 1)
    return np.where(m[i] == slots, case.owner[i], -1)


def _template(geo, rng, big, case):
    """The template Buffer of a cache: random bytes everywhere; for the big
    extras, random bytes in the canaries and the blocks that matter."""
    if not big:
        return Buffer(geo.total, [(0, rng.integers(0, 256, geo.total, dtype=np.uint8))])
    blocks = np.unique(np.concatenate([case.mapped // geo.block_size,
                                       [case.bait // geo.block_size, geo.blocks - 1]]))
    spans = [(0, geo.before), (geo.before + geo.span, geo.total)]
    spans += [(geo.before + int(b) * geo.sb, geo.before + (int(b) + 1) * geo.sb) for b in blocks]
    spans.sort()
    merged = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return Buffer(geo.total, [(s, rng.integers(0, 256, e - s, dtype=np.uint8))
                              for s, e in merged])


def _row_positions(starts, width):
    return (np.asarray(starts, np.int64)[:, None] + np.arange(width)).reshape(-1)


def _fill(geo, rng, case, slots, heads, rows_expected, rows_other, big):
    """The Expected of one cache: the template with poison in the mapped rows
    that differs from both the expected and the other token's bytes."""
    template = _template(geo, rng, big, case)
    starts = geo.row_start(slots, heads)
    pos = _row_positions(starts, geo.row)
    e, a = rows_expected.reshape(-1), rows_other.reshape(-1)
    poison = template.at(pos)
    for _ in range(8):
        same = (poison == e) | (poison == a)
        if not same.any():
            break
        poison[same] += np.uint8(97)
    template.poke(pos, poison)
    order = np.argsort(pos, kind="stable")
    return Expected(geo, template, pos[order], e[order], a[order])


def expect(case, rng):
    """{buffer name: Expected} of a call ("key", "value", and
    "k_scale_cache", "v_scale_cache" for token_head), checked against the CPU
    backend."""
    spec = case.spec
    H, S = case.heads, case.block_size
    case.mapped, case.owner, case.other_owner = owners(case)
    rows, scales = token_rows(case)
    case.token_rows, case.row_scales = rows, scales
    slots = np.repeat(case.mapped, H)
    heads = np.tile(np.arange(H), len(case.mapped))
    t_exp, t_alt = np.repeat(case.owner, H), np.repeat(case.other_owner, H)
    big = spec.extra in BIG
    out = {}
    caches = [("key", case.dims["key"], 1, rows["key"], spec.padded),
              ("value", case.dims["value"], 1, rows["value"], spec.padded)]
    if spec.mode == "token_head":
        caches += [("k_scale_cache", 1, 4, scales["key"], None),
                   ("v_scale_cache", 1, 4, scales["value"], None)]
    for name, dim, size, r, padded in caches:
        geo = Geometry(case.blocks, S, H, dim, spec.layout, size, padded)
        if size == 4:
            r = np.ascontiguousarray(r, np.float32).view(np.uint8).reshape(-1, H, 4)
        out[name] = _fill(geo, rng, case, slots, heads, r[t_exp, heads], r[t_alt, heads], big)
    case.duplicate_tokens = int((case.status == DUPLICATE).sum())
    if not big:
        _check_against_golden(case, out)
    return out


def host_view(buf, geo):
    """The cache view (numpy) over a materialised host buffer."""
    shape, strides = geo.shape_strides()
    base = buf[geo.before:]
    if geo.itemsize == 4:
        base = base.view(np.float32)
    return np.lib.stride_tricks.as_strided(base, shape, strides)


def _check_against_golden(case, out):
    """The CPU backend's result for the call itself must equal the model's."""
    spec = case.spec
    views, wanted = {}, {}
    for name, e in out.items():
        views[name] = host_view(e.template.materialise(), e.geometry)
        full = e.template.materialise()
        full[e.pos] = e.exp
        wanted[name] = np.ascontiguousarray(host_view(full, e.geometry))
    kw = _scale_args(case)
    if spec.mode == "token_head":
        kw.update(k_scale_cache=views["k_scale_cache"], v_scale_cache=views["v_scale_cache"])
    key, value = _golden_inputs(case)
    res = golden.reshape_and_cache(key, value, views["key"], views["value"], case.slots,
                                   swa_mapping=case.swa, layout=spec.layout, **kw)
    got = {"key": res.key_cache, "value": res.value_cache,
           "k_scale_cache": res.k_scale_cache, "v_scale_cache": res.v_scale_cache}
    for name in out:
        if not np.array_equal(golden.as_bytes(got[name]).reshape(-1),
                              golden.as_bytes(wanted[name]).reshape(-1)):
            raise HarnessError("%s: the CPU backend's %s differs from the harness's model "
                               "of the call" % (case.describe(), name))
    oor = bool((case.status == OUT_OF_RANGE).any())
    if oor != (res.error is not None):
        raise HarnessError("%s: the CPU backend %s an out-of-range slot" % (
            case.describe(), "reported" if res.error is not None else "did not report"))
