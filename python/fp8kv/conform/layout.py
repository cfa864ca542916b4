# SPDX-License-Identifier: MIT
"""Layout faults, named before element faults (V-CONFORM-LAYOUT-FIRST).

A writer that reads a row from the wrong place in its input, or writes a
row to the wrong place in its cache, leaves bytes that no element model
explains, and pollutes the element classes with rows that were never the
contract's.  So each call's differing bytes are first held to models of
whole-row faults, each re-deriving the rows that writer would leave:

  read from the wrong input position (the rows the CPU backend would
  write for the misread inputs, at the right slots):
    input_head_stride   the input's head stride taken as the head dim;
    input_token_stride  the input's token stride taken as heads x dim;
    input_strides       both (the input read as contiguous);
    kv_swapped          key rows from value and value rows from key;
    heads_transposed    the input read as [heads, tokens, dim];
  written to the wrong place (the contract's rows, at other positions):
    cache_inner_strides the cache's slot and head strides taken as
                        contiguous within a block (its block stride kept);
    cache_strides       every cache stride from the shape;
    layout_swapped      NHD rows written as HND, or the reverse;
    block_size          another block size (1 to 256);
    slot_truncated      the slot's high bits dropped (kept to k bits);
    offset32            the row's byte offset wrapped at 32 bits.

A row fits a model when most of the row's differing bytes are the ones it
predicts.  A model is taken for a call when at least half the rows where
it predicts a difference fit it (a whole-row fault moves or misreads every
row it touches; an element fault matches a structured stream's rows here
and there), and the bytes it predicts were written more often than the
contract's bytes were written where it predicts a difference; then every
differing byte of the rows that fit it is its.  For a
model that moves rows, the bytes it leaves unwritten at the right places
are its too.  What no model takes goes on to the element and placement
models (fp8kv.conform.classify).  A call varies one layout at most (inputs
or caches, fp8kv.conform.cases), so a writer wrong in both shows each in
its own calls.
"""

import numpy as np

from .classes import LAYOUT, PLACES, READS  # noqa: F401  (PLACES: the tests')
from .guard import token_rows

TITLES = LAYOUT

CLASSES = tuple(LAYOUT)
BLOCK_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
MIN_BYTES = 4           # a model takes a call on this many confirmed bytes at least


def _misread(case, how):
    """Raw inputs {"key", "value"} [T, H, D] as a writer reading them `how`
    gets them, or None where it reads nothing different; rows it would read
    outside the input's buffer are None-marked in bad[name] (T, H)."""
    out, bad = {}, {}
    for name in ("key", "value"):
        ib, raw = case.inputs[name], getattr(case, name)
        T, H, D = raw.shape
        t, h, d = np.ix_(np.arange(T), np.arange(H), np.arange(D))
        st, sh, _ = ib.strides
        if how == "kv_swapped":
            other = case.value if name == "key" else case.key
            if other.shape != raw.shape:
                return None, None
            out[name], bad[name] = other, np.zeros((T, H), bool)
            continue
        if how == "heads_transposed":
            if H == 1 or T < 2:
                return None, None
            flat = h * T + t
            out[name] = raw[flat // H, flat % H, d]
            bad[name] = np.zeros((T, H), bool)
            continue
        if how == "input_head_stride":
            idx = ib.offset + t * st + h * D + d
        elif how == "input_token_stride":
            idx = ib.offset + t * (H * D) + h * sh + d
        else:
            idx = ib.offset + (t * H + h) * D + d
        if (st, sh) == (H * D, D) or (how == "input_head_stride" and sh == D) or \
                (how == "input_token_stride" and st == H * D):
            return None, None
        inside = idx < len(ib.flat)
        out[name] = ib.flat[np.where(inside, idx, 0)]
        bad[name] = ~inside.all(axis=2)
    return out, bad


class Hypothesis:
    """One model's rows in one cache: the row starts it writes (positions
    [n, width] as pos) and the bytes it writes there, the row starts it
    moves them away from (or None), and the rows' (slot, head, token); a
    place model's place(slots, heads) gives row starts, a read model's
    misread[t, h] every token's misread row."""

    def __init__(self, cls, detail, starts, width, content, moved_from, slots, heads, tokens,
                 place=None, misread=None):
        self.cls, self.detail = cls, detail
        self.starts, self.width, self.content = starts, width, content
        self.moved_starts = moved_from
        self.slots, self.heads, self.tokens = slots, heads, tokens
        self.place, self.misread = place, misread
        self._pos = None

    @property
    def pos(self):
        if self._pos is None:
            self._pos = self.starts[:, None] + np.arange(self.width)
        return self._pos

    @property
    def moved_from(self):
        if self.moved_starts is None:
            return None
        return self.moved_starts[:, None] + np.arange(self.width)


class LayoutAnalysis:
    """The layout models of one call (misread rows computed once for both
    caches)."""

    def __init__(self, case):
        self.case = case
        self._reads = {}

    def reads(self, how):
        if how not in self._reads:
            raw, bad = _misread(self.case, how)
            rows = None
            if raw is not None:
                rows, _ = token_rows(self.case, raw["key"], raw["value"])
            self._reads[how] = (rows, bad)
        return self._reads[how]

    def hypotheses(self, name, geo, rows, want_reads, want_places):
        """The models worth trying on cache `name`: reads where rows differ
        in bulk, places where rows are missing or land elsewhere."""
        case = self.case
        slots, heads, tokens = rows
        W = geo.row
        right = geo.row_start(slots, heads)
        out = []
        if want_reads:
            for how in READS:
                r, bad = self.reads(how)
                if r is None:
                    continue
                keep = ~bad[name][tokens, heads]
                out.append(Hypothesis(how, None, right[keep], W,
                                      r[name][tokens[keep], heads[keep]], None, slots[keep],
                                      heads[keep], tokens[keep], misread=r[name]))
        if want_places:
            content = case.token_rows[name][tokens, heads]
            for cls, detail, place in places(geo):
                starts = place(slots, heads)
                if not (starts != right).any():
                    continue
                out.append(Hypothesis(cls, detail, starts, W, content, right, slots, heads,
                                      tokens, place=place))
        return out


def places(geo):
    """(class, detail, place(slots, heads) -> row starts) of the place
    models of a cache."""
    H, S, row = geo.heads, geo.block_size, geo.row
    nhd = geo.layout == "NHD"
    inner = (H * row, row) if nhd else (row, S * row)      # (ss, sh) contiguous
    other = (row, S * row) if nhd else (H * row, row)       # the other layout's

    def strided(strides, block_size=None):
        return lambda sl, hd: geo.row_start(sl, hd, block_size=block_size, strides=strides)

    yield "cache_inner_strides", None, strided((geo.sb,) + inner)
    yield "cache_strides", None, strided((S * H * row,) + inner)
    yield "layout_swapped", None, strided((geo.sb,) + other)
    for n in BLOCK_SIZES:
        if n != S:
            yield "block_size", n, strided(None, n)
    for k in range(4, (geo.blocks * S - 1).bit_length()):
        yield "slot_truncated", k, (lambda k: lambda sl, hd: geo.row_start(
            np.asarray(sl) & ((1 << k) - 1), hd))(k)
    if geo.span >= 2 ** 31:
        yield "offset32", "signed", lambda sl, hd: geo.before + (
            (geo.row_start(sl, hd) - geo.before + 2 ** 31) % 2 ** 32) - 2 ** 31
    if geo.span >= 2 ** 32:
        yield "offset32", "unsigned", lambda sl, hd: geo.before + (
            geo.row_start(sl, hd) - geo.before) % 2 ** 32


SAMPLE_ROWS = 48        # rows a model is first tried on


def evaluate(h, w):
    """(confirmed, contradicted, rows taken [n] bool, per row: differing mask
    [n, width]) of a hypothesis against the written bytes.  Only rows it
    places inside the guarded buffer count (one placed further away lands
    where nothing is seen).  Rows it places on one spot are a group, of
    which the spot holds one (any: writes to one place race); no row is
    taken unless at least half the groups where it predicts a difference
    hold one of theirs.  A place model that moves every row it moves beyond
    the buffer is confirmed by those rows' bytes, all still the poison, or
    by nothing.  A model is first tried on a sample of its rows."""
    geo = w.geometry
    n, W = len(h.starts), h.width
    taken = np.zeros(n, bool)
    diffrow = np.zeros((n, W), bool)
    inside = (h.starts >= 0) & (h.starts + W <= geo.total)
    if h.moved_starts is not None:
        moved = h.starts != h.moved_starts
        if not (moved & inside).any():
            return _vanished(h, w, moved & ~inside), 0, taken, diffrow
    valid = np.flatnonzero(inside)
    if not len(valid):
        return 0, 0, taken, diffrow
    if len(valid) > 2 * SAMPLE_ROWS:
        pick = valid[np.linspace(0, len(valid) - 1, SAMPLE_ROWS).astype(np.int64)]
        hits, ndiff, predicting, _, _ = _rows(h, w, pick)
        fits = (hits > 0) & (2 * hits > ndiff)
        if 8 * fits.sum() < predicting.sum():     # (collisions leave 1 in k)
            return 0, 0, taken, diffrow
    hits, ndiff, predicting, differs, contra = _rows(h, w, valid)
    # groups of rows on one spot: the member that fits best
    _, group = np.unique(h.starts[valid], return_inverse=True)
    order = np.lexsort((-hits, group))
    first = np.ones(len(order), bool)
    first[1:] = group[order][1:] != group[order][:-1]
    best = order[first]
    fits = (hits[best] > 0) & (2 * hits[best] > ndiff[best])
    groups_predicting = len(np.unique(group[predicting]))
    contradicted = int(contra[best].sum())
    if 2 * fits.sum() < groups_predicting:
        return 0, contradicted, taken, diffrow
    taken[valid[best[fits]]] = True
    diffrow[valid] = differs
    return int(hits[best[fits]].sum()), contradicted, taken, diffrow


def _rows(h, w, rows):
    """Per row of `rows`: (bytes it predicts that were written, bytes that
    differ from the contract, whether it predicts a difference, the
    differing mask [n, width], bytes where it predicts a difference and the
    contract's byte was written)."""
    p = (h.starts[rows][:, None] + np.arange(h.width)).reshape(-1)
    exp, alt = w.expected(p)
    got = w.got(p)
    pred = h.content[rows].reshape(-1)
    shape = (len(rows), h.width)
    predicts = ((pred != exp) & (pred != alt)).reshape(shape)
    differs = ((got != exp) & (got != alt)).reshape(shape)
    hit = predicts & (got == pred).reshape(shape)
    return (hit.sum(axis=1), differs.sum(axis=1), predicts.any(axis=1), differs,
            (predicts & ~differs).sum(axis=1))


def _vanished(h, w, gone):
    """The confirmed bytes of a place model all of whose moved rows land
    beyond the buffer, where nothing is seen: the bytes of the rows it
    moves, if every one of them is still the poison."""
    if not gone.any():
        return 0
    at = (h.moved_starts[gone][:, None] + np.arange(h.width)).reshape(-1)
    return len(at) if np.array_equal(w.got(at), w.template(at)) else 0


def where_text(h, i, geo):
    """Where row i of a hypothesis went, in words."""
    slot, head, t = int(h.slots[i]), int(h.heads[i]), int(h.tokens[i])
    if h.cls in READS:
        return ("slot %d head %d (token %d): holds the row the CPU backend writes for the "
                "input %s" % (slot, head, t, {
                    "input_head_stride": "read with the head stride taken as the head dim",
                    "input_token_stride": "read with the token stride taken as heads x dim",
                    "input_strides": "read as contiguous",
                    "kv_swapped": "of the other tensor (key and value swapped)",
                    "heads_transposed": "read as [heads, tokens, dim]"}[h.cls]))
    region, s2, h2, _ = geo.locate(np.array([h.starts[i]]))
    landed = ("slot %d head %d" % (s2[0], h2[0]) if region[0] == geo.ROW else
              {geo.PADDING: "the cache's padding", geo.BEFORE: "before the cache",
               geo.AFTER: "past the end of the cache"}[int(region[0])])
    how = {"cache_inner_strides": "with the slot and head strides of a contiguous block",
           "cache_strides": "with the strides of a contiguous cache",
           "layout_swapped": "as if the layout were %s" % ("HND" if geo.layout == "NHD"
                                                           else "NHD"),
           "block_size": "as if the block size were %s" % h.detail,
           "slot_truncated": "with the slot kept to its low %s bits" % h.detail,
           "offset32": "with the byte offset wrapped at 32 bits (%s)" % h.detail}[h.cls]
    return "token %d head %d (slot %d): its row written at %s, %s" % (t, head, slot, landed,
                                                                      how)
