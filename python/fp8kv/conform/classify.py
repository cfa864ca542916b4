# SPDX-License-Identifier: MIT
"""Why bytes differ: every differing byte is held to models of specific
wrong writers, each re-deriving what that writer would have written.

In order (V-CONFORM-LAYOUT-FIRST):
  1. layout models (fp8kv.conform.layout): whole rows read from the wrong
     input position or written to the wrong place take their bytes first;
  2. on the rows left, read and written where they should be, the value
     models (fp8kv.conform.models) for each differing byte of a mapped row,
     and "not written" for a byte still holding its poison;
  3. placement models for rows elsewhere, by where they landed and whose
     bytes they hold: padding_written, swa_padding_read, stray_writes,
     out_of_bounds;
  4. input_modified: an input (key, value, slot_mapping, swa_mapping,
     k_scale, v_scale, or the buffer an input is a view of) changed.
A byte that fits no model is unexplained.

A byte may fit several value models.  Over a whole writer's run, each class
that some byte fits alone is taken as a cause; the bytes left are given to
as few further causes as cover them, preferring models the writer's correct
bytes do not contradict (Tally.is_contradicted; the contradictions are
counted on a sample of the correct bytes that holds the rare ones, such as
ties), then exact models over loose ones.  A class chosen without any byte that fits it alone is
reported with the classes it cannot be told apart from.
"""

import collections

import numpy as np

from . import layout
from .classes import TITLES  # noqa: F401
from .cases import OUT_OF_RANGE, PAD, STATUS_NAMES, SWA_PAD
from .guard import HarnessError, Written, owner_of
from .models import LOOSE, VALUE_MODELS, encode, quotient, value_masks
from .streams import fp8_values, widen

PLACEMENT = ("padding_written", "swa_padding_read", "stray_writes", "out_of_bounds",
             "not_written", "input_modified")
MODELS = VALUE_MODELS + PLACEMENT + layout.CLASSES
BIT = {name: 1 << i for i, name in enumerate(MODELS)}
SAMPLE = 2048           # correct bytes per cache and call held to the models


def class_of(model):
    if model.startswith("format:"):
        return "format_confusion"
    if model.startswith("ftz_"):
        return "ftz"
    return model


class Tally:
    """Everything the classification of one writer's run needs: per mask the
    bytes and the first example, per call its bytes by mask, and per model
    its confirmed and contradicted predictions."""

    def __init__(self):
        self.masks = {}
        self.per_call = collections.defaultdict(collections.Counter)
        self.descriptions = {}
        self.confirmed = collections.Counter()
        self.contradicted = collections.Counter()
        self.bytes_compared = 0
        self.bytes_differing = 0

    def note(self, context, confirmed, contradicted):
        """Adds a call's confirmed and contradicted predictions, per model,
        under its context (format, input dtype)."""
        for m, n in confirmed.items():
            self.confirmed[m, context] += n
        for m, n in contradicted.items():
            self.contradicted[m, context] += n

    def is_contradicted(self, m):
        """A model the writer's correct bytes contradict: where the model
        predicts a difference, the contract's byte was written at least a
        quarter as often as the model's, counted in the contexts (format,
        input dtype) where the model is confirmed at all (a fault may be
        the writer's in some formats or input dtypes only)."""
        if m in LOOSE:
            return False
        contexts = {ctx for (mm, ctx), n in self.confirmed.items() if mm == m and n}
        k = sum(self.confirmed[m, ctx] for ctx in contexts)
        c = sum(self.contradicted[m, ctx] for ctx in contexts)
        return 4 * c > k

    def add(self, mask, count, example, call=None):
        if not count:
            return
        entry = self.masks.get(mask)
        if entry is None:
            self.masks[mask] = [count, example() if callable(example) else example]
        else:
            entry[0] += count
        if call is not None:
            self.per_call[call][mask] += count


def _hex(v, width=2):
    return "0x%0*x" % (width, int(v))


def _input_text(raw, in_dtype):
    bits = raw.view(np.uint32) if in_dtype == "f32" else raw.view(np.uint16)
    x = float(widen(np.array([raw]))[0])
    return "%.9g" % x, _hex(bits, 8 if in_dtype == "f32" else 4)


def _row_hashes(rows):
    """A 64-bit hash of each row of a uint8 array [n, width]."""
    rows = np.ascontiguousarray(rows)
    pad = (-rows.shape[1]) % 8
    if pad:
        rows = np.concatenate([rows, np.zeros((rows.shape[0], pad), np.uint8)], axis=1)
    w = rows.view(np.uint64)
    mult = (np.arange(w.shape[1], dtype=np.uint64) * np.uint64(2) + np.uint64(1)) * \
        np.uint64(0x9E3779B97F4A7C15)
    return (w * mult).sum(axis=1, dtype=np.uint64)


def _member(sorted_values, x):
    """Which x are in the sorted array."""
    if not len(sorted_values):
        return np.zeros(np.shape(x), bool)
    i = np.minimum(np.searchsorted(sorted_values, x), len(sorted_values) - 1)
    return sorted_values[i] == x


class _Values:
    """The value models' data of a buffer's differing bytes, for examples:
    for bytes idx (ascending) of D, x / s (y), the scale and the contract's
    byte."""

    def __init__(self, n, idx=None, y=None, s=None, exp=None):
        self.n = n
        self.idx = np.zeros(0, np.int64) if idx is None else idx
        self.y, self.s, self.exp = y, s, exp

    def subset(self, k):
        """The same for D[k] (k ascending)."""
        pos = np.full(self.n, -1, np.int64)
        pos[self.idx] = np.arange(len(self.idx))
        sub = pos[k]
        have = sub >= 0
        if not have.any():
            return _Values(len(k))
        return _Values(len(k), np.flatnonzero(have), self.y[sub[have]], self.s[sub[have]],
                       self.exp[sub[have]])

    def find(self, j):
        """The index of byte j in these arrays, or None."""
        k = np.searchsorted(self.idx, j)
        return int(k) if k < len(self.idx) and self.idx[k] == j else None


class CallAnalysis:
    """The differences of one call, by buffer, into a Tally."""

    def __init__(self, case, exp, tally):
        self.case, self.exp, self.tally = case, exp, tally
        self.spec = case.spec
        self.call = case.spec.index
        self._context = (case.spec.fmt, case.spec.in_dtype)
        tally.descriptions[self.call] = case.describe()
        self._candidates = {}
        self.layout = layout.LayoutAnalysis(case)
        self._accepted = {}

    def add(self, mask, count, example):
        self.tally.add(mask, count, example, self.call)

    # -- examples

    def _base(self, name):
        return {"call": self.call, "call_description": self.case.describe(), "cache": name}

    def _value_example(self, name, t, h, d, slot, s, e, g, y):
        spec = self.spec
        raw = getattr(self.case, name)[t, h, d]
        value, bits = _input_text(raw, spec.in_dtype)
        ex = self._base(name)
        ex.update(token=int(t), head=int(h), dim=int(d), slot=int(slot),
                  input=value, input_bits=bits, input_dtype=spec.in_dtype,
                  scale=None if spec.mode == "one" else "%.9g" % float(s),
                  quotient="%.9g" % float(y), format=spec.fmt, overflow=spec.overflow,
                  expected=_hex(e), written=_hex(g))
        return ex

    def _placement_example(self, name, where, token, expected, written):
        ex = self._base(name)
        ex["where"] = where
        if token is not None:
            t, src = token
            ex.update(token=int(t), token_status=STATUS_NAMES[self.case.status[t]],
                      token_slot=int(self.case.slots[t]), row_of=src)
        ex.update(expected=" ".join(_hex(b) for b in expected[:8]),
                  written=" ".join(_hex(b) for b in written[:8]))
        return ex

    # -- content of misplaced rows

    def _rows_by_content(self, width):
        """(bytes of every token's encoded row of this width -> {status:
        (source, token)}, sorted row hashes)."""
        if width not in self._candidates:
            found, hashes = {}, []
            for src in ("key", "value"):
                rows = self.case.token_rows[src]
                if rows.shape[-1] != width:
                    continue
                hashes.append(_row_hashes(rows.reshape(-1, width)))
                for t in range(rows.shape[0]):
                    st = int(self.case.status[t])
                    for h in range(rows.shape[1]):
                        found.setdefault(rows[t, h].tobytes(), {}).setdefault(st, (src, t))
            self._candidates[width] = (found, np.unique(np.concatenate(hashes)) if hashes
                                       else np.zeros(0, np.uint64))
        return self._candidates[width]

    def _content_model(self, name, row_bytes, region, slot, width, start):
        """(mask, token) of a misplaced row: the models of every token status
        whose rows hold these bytes (several where rows coincide, such as rows
        of NaN codes), or whose rows misread as a read model taken in this
        call reads them, and the token most likely, by where the row landed.
        A padding row read through the SWA table lands on the bait slot, or
        where a place model taken in this call puts the bait slot's rows."""
        hits = self._rows_by_content(width)[0].get(row_bytes.tobytes())
        accepted = self._accepted.get(name, [])
        if not hits:
            for h in accepted:
                if h.misread is not None and h.misread.shape[-1] == width:
                    m = np.flatnonzero((h.misread == row_bytes).all(axis=2).any(axis=1))
                    if len(m):
                        hits = {}
                        for t in m:
                            hits.setdefault(int(self.case.status[t]), (name, int(t)))
                        break
        outside = "out_of_bounds" if region != "cache" else "stray_writes"
        if not hits:
            return BIT[outside], None
        bait = self.case.swa is not None and (region == "cache" and slot == self.case.bait or any(
            h.place is not None and start in h.place(np.full(self.case.heads, self.case.bait),
                                                     np.arange(self.case.heads))
            for h in accepted))
        mask = 0
        for st in hits:
            if st == PAD:
                mask |= BIT["swa_padding_read" if bait else "padding_written"]
            elif st == SWA_PAD:
                mask |= BIT["padding_written"]
            else:
                mask |= BIT[outside]
        likely = (OUT_OF_RANGE, PAD, SWA_PAD) if region == "after" else (PAD, SWA_PAD,
                                                                           OUT_OF_RANGE)
        st = next((s for s in likely if s in hits), next(iter(hits)))
        src, t = hits[st]
        return mask, (t, src)

    # -- a buffer

    def cache(self, name, changes):
        """The differences of one buffer, from its changed bytes."""
        e = self.exp[name]
        geo = e.geometry
        w = Written(e, changes)
        self.tally.bytes_compared += e.template.materialised
        D = w.diff()
        self.tally.bytes_differing += len(D)
        if geo.itemsize == 1:
            self._sample(name, w)
        if not len(D):
            return
        G = w.got(D)
        region, slot, head, elem = geo.locate(D)
        inside = region == geo.ROW
        owner = np.where(inside, owner_of(self.case, np.where(inside, slot, 0)), -1)
        # a byte still holding its poison was not written, or was written
        # with a wrong value that happens to be the poison: both models fit
        masks = np.where((owner >= 0) & (G == w.template(D)), BIT["not_written"], 0)
        values = self._value_masks(name, w, D, G, owner, head, elem, masks)
        left = np.ones(len(D), bool)
        unexplained = (masks == 0) | (masks == BIT["not_written"])
        if geo.itemsize == 1 and ((owner < 0) | unexplained).any():
            left = self._layout(name, w, D, G, owner)
        if left.any():
            k = np.flatnonzero(left)
            self._elements(name, w, D[k], G[k], region[k], slot[k], head[k], elem[k],
                           owner[k], masks[k], values.subset(k))

    def _mapped_rows(self):
        H = self.case.heads
        return (np.repeat(self.case.mapped, H), np.tile(np.arange(H), len(self.case.mapped)),
                np.repeat(self.case.owner, H))

    def _layout(self, name, w, D, G, owner):
        """Layout models on the differing bytes D; returns the bytes left.  A
        byte two models take in this call carries both (the run decides,
        as for value models)."""
        geo = w.geometry
        mapped = owner >= 0
        unwritten = G == w.template(D)
        want_places = bool((~mapped).any() or (unwritten & mapped).any())
        _, slot, head, _ = geo.locate(D[mapped])
        _, counts = np.unique(slot * geo.heads + head, return_counts=True)
        want_reads = bool(len(counts) and counts.max() >= max(2, geo.row // 4))
        left = np.ones(len(D), bool)
        if not (want_places or want_reads):
            return left
        masks = np.zeros(len(D), np.int64)
        examples = []
        for h in self.layout.hypotheses(name, geo, self._mapped_rows(), want_reads,
                                        want_places):
            conf, contra, taken, diffrow = layout.evaluate(h, w)
            if conf < layout.MIN_BYTES or conf <= contra:
                continue
            t = np.flatnonzero(taken)
            claim = [(h.starts[t][:, None] + np.arange(h.width))[diffrow[t]]]
            if h.moved_starts is not None:
                moved = np.flatnonzero(h.starts != h.moved_starts)
                claim.append((h.moved_starts[moved][:, None] + np.arange(h.width)).reshape(-1))
            mine = _member(np.unique(np.concatenate(claim)), D)
            if not mine.any():
                continue
            masks[mine] |= BIT[h.cls]
            self._accepted.setdefault(name, []).append(h)
            i = int(np.flatnonzero(taken)[0]) if taken.any() else 0

            def example(h=h, i=i):
                row = h.starts[i] + np.arange(h.width)
                return self._placement_example(name, layout.where_text(h, i, geo), None,
                                               w.expected(row)[0], w.got(row))
            examples.append((BIT[h.cls], example))
        claimed = masks != 0
        uniq, counts = np.unique(masks[claimed], return_counts=True)
        for mask, c in zip(uniq.tolist(), counts.tolist()):
            self.add(mask, c, next(ex for bit, ex in examples if mask & bit))
        return ~claimed

    def _scales(self, name, tokens, heads):
        mode, case = self.spec.mode, self.case
        if mode == "token_head":
            return case.row_scales[name][tokens, heads].astype(np.float32)
        if mode == "one":
            return np.ones(len(tokens), np.float32)
        scale = case.k_scale if name == "key" else case.v_scale
        return (scale[heads] if len(scale) > 1 else np.repeat(scale, len(tokens))) \
            .astype(np.float32)

    def _sample(self, name, w):
        """The value models on a sample of a cache's correct mapped bytes:
        their contradictions, and the harness's own check of x / s."""
        e = w.e
        ge = w.got(e.pos)
        right = (ge == e.exp) | (ge == e.alt)
        ok = np.flatnonzero(right)
        if not len(ok):
            return
        rng = np.random.default_rng([self.call, len(name)])
        rare = self._rare(name, e)
        rare = rare[right[rare]]
        pick = np.union1d(rng.choice(ok, min(SAMPLE, len(ok)), replace=False),
                          rare[:4 * SAMPLE])
        pos = e.pos[pick]
        _, slot, head, elem = e.geometry.locate(pos)
        tokens = owner_of(self.case, slot)
        x = widen(getattr(self.case, name)[tokens, head, elem])
        s = self._scales(name, tokens, head)
        exp = e.exp[pick]
        y, _, confirmed, contradicted = value_masks(
            x, s, self.spec.mode != "one", self.spec.fmt, self.spec.overflow, exp, exp, BIT)
        self.tally.note(self._context, {}, contradicted)
        same = e.exp[pick] == e.alt[pick]
        if not np.array_equal(encode(y, self.spec.fmt, self.spec.overflow)[same], exp[same]):
            raise HarnessError("%s: %s: the harness's model of x / s disagrees with the CPU "
                               "backend" % (self.case.describe(), name))

    def _rare(self, name, e):
        """Indices (into e.pos) of the mapped bytes where the exact models
        that rarely differ from the contract do: ties, subnormal and
        overflowing quotients, fp32 subnormal inputs, NaN and Inf.  Kept
        with the call (its writers all need them)."""
        cache = self.case.__dict__.setdefault("rare", {})
        if name not in cache:
            _, slot, head, elem = e.geometry.locate(e.pos)
            tokens = owner_of(self.case, slot)
            x = widen(getattr(self.case, name)[tokens, head, elem])
            s = self._scales(name, tokens, head)
            y = quotient(x, s) if self.spec.mode != "one" else x
            v = fp8_values(self.spec.fmt)
            with np.errstate(invalid="ignore"):
                a = np.abs(y.astype(np.float64))
                ok = np.isfinite(a) & (a < v[-1])
                a = np.where(ok, a, 0)
                lo = np.clip(np.searchsorted(v, a, side="right") - 1, 0, len(v) - 2)
                tie = ok & (2 * a == v[lo] + v[lo + 1])
                small = np.abs(x) < np.float32(2.0 ** -126)
                rare = ~ok | tie | (a < v[2 ** (3 if self.spec.fmt.startswith("e4m3") else 2)]) | \
                    small
            idx = np.flatnonzero(rare)
            rng = np.random.default_rng([self.call, len(name), 7])
            cache[name] = np.sort(rng.permutation(idx)[:4 * SAMPLE])
        return cache[name]

    def _value_masks(self, name, w, D, G, owner, head, elem, masks):
        """ORs the value models' bits into masks for the mapped bytes of D;
        returns their data for examples."""
        i = np.flatnonzero(owner >= 0)
        if w.geometry.itemsize != 1 or not len(i):
            return _Values(len(D))
        t, h, d = owner[i], head[i], elem[i]
        x = widen(getattr(self.case, name)[t, h, d])
        s = self._scales(name, t, h)
        exp = w.expected(D[i])[0]
        y, m, confirmed, contradicted = value_masks(
            x, s, self.spec.mode != "one", self.spec.fmt, self.spec.overflow, exp, G[i], BIT)
        self.tally.note(self._context, confirmed, contradicted)
        masks[i] |= m
        return _Values(len(D), i, y, s, exp)

    def _bait_rows(self, name, w, D, G, owner):
        """Bytes of rows a place model taken in this call put where the bait
        slot's rows go (padding read through the SWA table, placed by that
        model): each such row by its content; returns the bytes left."""
        left = np.ones(len(D), bool)
        if self.case.swa is None:
            return left
        H, W = self.case.heads, w.geometry.row
        for h in self._accepted.get(name, []):
            if h.place is None:
                continue
            for hd, start in enumerate(h.place(np.full(H, self.case.bait),
                                               np.arange(H)).tolist()):
                sel = np.flatnonzero(left & (owner < 0) & (D >= start) & (D < start + W))
                if not len(sel):
                    continue
                row = np.arange(start, start + W)
                written = w.got(row)
                mask, token = self._content_model(name, written, "cache", self.case.bait, W,
                                                  start)
                if token is None:
                    continue
                left[sel] = False
                where = "the row of slot %d head %d (where padding read through the SWA " \
                    "table lands), placed as %s places rows" % (self.case.bait, hd, h.cls)

                def example(where=where, token=token, row=row, written=written):
                    return self._placement_example(name, where, token, w.expected(row)[0],
                                                   written)
                self.add(mask, len(sel), example)
        return left

    def _elements(self, name, w, D, G, region, slot, head, elem, owner, masks, values):
        """Element and placement models on the bytes no layout model took."""
        geo = w.geometry
        W = geo.row
        if geo.itemsize == 1 and self._accepted.get(name):
            k = np.flatnonzero(self._bait_rows(name, w, D, G, owner))
            if len(k) < len(D):
                D, G, region, slot, head, elem, owner, masks = (
                    a[k] for a in (D, G, region, slot, head, elem, owner, masks))
                values = values.subset(k)
        keys = ((slot << 14) + head) * 4 + region
        mapped = owner >= 0
        holds = set()
        rows_at = np.unique(keys[mapped])
        if geo.itemsize == 1 and len(rows_at):
            _, hashes = self._rows_by_content(W)
            r_slot, r_head = np.divmod(rows_at // 4, 1 << 14)
            content = w.got(geo.row_start(r_slot, r_head)[:, None] + np.arange(W))
            holds = set(rows_at[_member(hashes, _row_hashes(content))].tolist())
        by_row = ~mapped | np.isin(keys, list(holds))
        for k in np.unique(keys[by_row]):
            sel = np.flatnonzero(keys == k)
            self._row(name, w, D, G, sel, region, slot, head, elem, owner, masks, values)
        self._tally_values(name, w, D, G, np.flatnonzero(~by_row), masks, slot, head, elem,
                           owner, values)

    def _tally_values(self, name, w, D, G, idx, masks, slot, head, elem, owner, values,
                      also=0, example=None):
        if not len(idx):
            return
        m = masks[idx] | also
        uniq, first, counts = np.unique(m, return_index=True, return_counts=True)
        for mask, f, c in zip(uniq.tolist(), first.tolist(), counts.tolist()):
            j = idx[f]
            k = values.find(j)
            if example is not None and mask & also:
                ex = example
            elif mask == BIT["not_written"] or k is None:
                ex = self._unwritten_example(name, w, D[j], G[j], slot[j], head[j], elem[j],
                                             owner[j])
            else:
                ex = self._value_example(name, owner[j], head[j], elem[j], slot[j],
                                         values.s[k], values.exp[k], G[j], values.y[k])
            self.add(mask, c, ex)

    def _unwritten_example(self, name, w, pos, g, slot, head, elem, owner):
        ex = self._base(name)
        unwritten = g == w.template([pos])[0]
        ex["where"] = "slot %d head %d dim %d, token %d's: %s" % (
            slot, head, elem, owner, "not written (still the poison)" if unwritten
            else "written")
        ex.update(expected=_hex(w.expected([pos])[0][0]), written=_hex(g))
        return ex

    def _row(self, name, w, D, G, sel, region, slot, head, elem, owner, masks, values):
        geo = w.geometry
        j = sel[0]
        r_slot, r_head = int(slot[j]), int(head[j])
        start = int(geo.row_start(r_slot, r_head))
        W = geo.row
        row = np.arange(start, start + W)
        written, expected = w.got(row), w.expected(row)[0]
        reg = int(region[j])
        if reg == geo.BEFORE:
            where_region, where = "before", "%d bytes before the cache" % (
                geo.before - int(D[j]))
        elif reg == geo.AFTER:
            where_region, where = "after", "%d bytes past the end of the cache" % (
                int(D[j]) - geo.before - geo.span + 1)
        elif reg == geo.PADDING:
            where_region, where = "cache", "in the cache's padding (block %d)" % (
                r_slot // geo.block_size)
        else:
            where_region = "cache"
            o = int(owner[j])
            where = "slot %d (block %d, offset %d) head %d, %s" % (
                r_slot, r_slot // geo.block_size, r_slot % geo.block_size, r_head,
                "token %d's" % o if o >= 0 else "mapped to no token")
        token = None
        if geo.itemsize == 4 or reg == geo.PADDING:
            mask = BIT["out_of_bounds" if where_region != "cache" else "stray_writes"]
        else:
            mask, token = self._content_model(name, written, where_region, r_slot, W, start)

        def example():
            return self._placement_example(name, where, token, expected, written)
        if owner[j] >= 0:               # a mapped row holding another token's row
            self._tally_values(name, w, D, G, sel, masks, slot, head, elem, owner, values,
                               mask, example)
            return
        self.add(mask, len(sel), example)

    def inputs_modified(self, modified):
        """Inputs the writer changed: {name: (bytes, first, before, after)}."""
        for name, (n, first, before, after) in sorted(modified.items()):
            self.tally.bytes_differing += n
            ex = self._base(name + " input")
            ex.update(where="the %s input was modified (%d bytes, the first at byte %d)"
                      % (name, n, first), expected=_hex(before), written=_hex(after))
            self.add(BIT["input_modified"], n, ex)


# ---- the run's causes -----------------------------------------------------------

def _bits(mask):
    return [m for m in MODELS if mask & BIT[m]]


def resolve(tally):
    """[(class, bytes, first example, also-fits classes, models, {call:
    bytes})] in table order: the causes chosen for the run's differing
    bytes."""
    counts = {m: c for m, (c, _) in tally.masks.items()}
    chosen = set()
    for mask in counts:
        if mask and bin(mask).count("1") == 1:
            chosen.add(_bits(mask)[0])

    contradicted = tally.is_contradicted

    while True:
        left = {m: c for m, c in counts.items() if m and not any(m & BIT[b] for b in chosen)}
        if not left:
            break
        score = collections.Counter()
        for mask, c in left.items():
            for b in _bits(mask):
                score[b] += c
        best = max(score, key=lambda b: (score[b], not contradicted(b), -MODELS.index(b)))
        chosen.add(best)

    def pick(mask):
        if mask == 0:
            return "unexplained", []
        p = [b for b in MODELS if mask & BIT[b] and b in chosen][0]
        return class_of(p), [p]

    by_class = collections.OrderedDict()
    for mask, (c, example) in sorted(tally.masks.items(), key=lambda kv: _order(kv[1][1])):
        cls, models = pick(mask)
        entry = by_class.setdefault(cls, {"bytes": 0, "first": example, "also": None,
                                          "models": collections.Counter(),
                                          "calls": collections.Counter()})
        entry["bytes"] += c
        for m in models:
            entry["models"][m] += c
        others = {class_of(b) for b in _bits(mask) if not contradicted(b)} - {cls}
        entry["also"] = others if entry["also"] is None else entry["also"] & others
    for call, masks in tally.per_call.items():
        for mask, c in masks.items():
            by_class[pick(mask)[0]]["calls"][call] += c
    out = []
    for cls in TITLES:
        if cls in by_class:
            entry = by_class[cls]
            out.append((cls, entry["bytes"], entry["first"], sorted(entry["also"] or ()),
                        dict(entry["models"]), dict(sorted(entry["calls"].items()))))
    return out


def _order(example):
    return (example.get("call", 0), example.get("cache", ""))
