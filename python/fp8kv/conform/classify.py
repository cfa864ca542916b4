# SPDX-License-Identifier: MIT
"""Why bytes differ: every differing byte is held to models of specific
wrong writers, each re-deriving what that writer would have written.

Value models (a byte at a mapped slot, from input x, scale s, format f):
  format:F        the encoding of x / s in another format F;
  scale_ignored   the encoding of x (the scale-1 result);
  reciprocal      the encoding of fl(x * fl(1 / s));
  overflow_first  overflow decided before rounding: |x / s| > max overflows;
  saturation      the other overflow mode's encoding;
  negative_zero   a zero with the other sign (fnuz: 0x80, which is NaN);
  ftz_output      an FP8 subnormal result flushed to zero;
  ftz_input       fp32 subnormal inputs or scales flushed (DAZ);
  nan, inf        any other code for a NaN or an infinite x / s;
  division        the encoding of a value within ULPS fp32 ulp of x / s
                  (a division not correctly rounded: bytes differ only
                  where x / s lies that close to a rounding midpoint).
Placement models (a row, by where it landed and whose bytes it holds):
  padding_written, swa_padding_read, stray_writes, out_of_bounds,
  not_written.
A byte that fits no model is unexplained.

A byte may fit several models.  Over a whole writer's run, each class that
some byte fits alone is taken as a cause; the bytes left are given to as few
further causes as cover them, preferring models the writer's correct bytes
do not contradict (a model contradicted where it predicts a difference and
the writer wrote the contract's byte), then exact models over loose ones.
A class chosen without any byte that fits it alone is reported with the
classes it cannot be told apart from.
"""

import collections

import numpy as np

from .. import quantize
from .cases import FP8_FORMATS, OUT_OF_RANGE, PAD, STATUS_NAMES, SWA_PAD, ULPS, widen

TITLES = collections.OrderedDict([
    ("format_confusion", "fn/fnuz or e4m3/e5m2 confusion (the other format's encoding)"),
    ("scale_ignored", "scale ignored (the bytes of scale 1)"),
    ("reciprocal", "multiplication by 1/s instead of division by s"),
    ("overflow_first", "overflow decided before rounding"),
    ("saturation", "saturating where asked not to, or the reverse"),
    ("negative_zero", "negative zero"),
    ("ftz", "subnormals flushed"),
    ("nan", "NaN sign dropped or NaN encoded as another code"),
    ("inf", "Inf handling"),
    ("division", "division not correctly rounded (x/s within a few ulp of a midpoint)"),
    ("padding_written", "padding written"),
    ("swa_padding_read", "SWA padding read through the mapping"),
    ("stray_writes", "stray writes"),
    ("out_of_bounds", "out-of-bounds writes"),
    ("not_written", "mapped slots not written"),
    ("unexplained", "unexplained"),
])

# Hypotheses in priority order (ties go to the earlier), each a bit.
VALUE_MODELS = tuple("format:" + f for f in FP8_FORMATS) + (
    "scale_ignored", "reciprocal", "overflow_first", "saturation", "negative_zero",
    "ftz_output", "ftz_input", "nan", "inf", "division")
LOOSE = ("nan", "inf", "division")
PLACEMENT = ("padding_written", "swa_padding_read", "stray_writes", "out_of_bounds",
             "not_written")
MODELS = VALUE_MODELS + PLACEMENT
BIT = {name: 1 << i for i, name in enumerate(MODELS)}
SAMPLE = 2048           # correct bytes per cache and call held to the models


def class_of(model):
    if model.startswith("format:"):
        return "format_confusion"
    if model.startswith("ftz_"):
        return "ftz"
    return model


# ---- the contract and the models --------------------------------------------------

def encode(y, fmt, overflow):
    """FP8 codes of fp32 values, by the CPU backend (steps 2-4 of the contract)."""
    y = np.ascontiguousarray(y, dtype=np.float32)
    out = np.empty(y.shape, np.uint8)
    if y.size:
        quantize(y, out, format=fmt, overflow=overflow)
    return out


def quotient(x, s):
    """x / s as the contract divides: IEEE fp32, NaN signed by x if x is NaN,
    else by sign(x) XOR sign(s)."""
    with np.errstate(all="ignore"):
        y = (x / s).astype(np.float32)
    nan = np.isnan(y)
    if nan.any():
        neg = np.where(np.isnan(x), np.signbit(x), np.signbit(x) ^ np.signbit(s))
        y[nan] = np.copysign(np.float32(np.nan), np.where(neg, -1.0, 1.0)[nan])
    return y


def _daz(v):
    v = np.asarray(v, dtype=np.float32)
    tiny = (v != 0) & (np.abs(v) < np.float32(2.0 ** -126))
    return np.where(tiny, np.copysign(np.float32(0), v), v).astype(np.float32)


def _zero_code(e, fmt):
    return e == 0 if fmt.endswith("fnuz") else (e & 0x7F) == 0


def _subnormal_code(e, fmt):
    mbits = 3 if fmt.startswith("e4m3") else 2
    return ((e & 0x7F) >> mbits == 0) & ((e & 0x7F) != 0)


def predictions(x, s, scaled, fmt, overflow, e):
    """For each exact value model, the bytes it predicts (arrays like e)."""
    y = quotient(x, s) if scaled else x
    other = "saturate" if overflow == "nonsaturating" else "nonsaturating"
    p = {}
    for f in FP8_FORMATS:
        if f != fmt:
            p["format:" + f] = encode(y, f, overflow)
    if scaled:
        p["scale_ignored"] = encode(x, fmt, overflow)
        with np.errstate(all="ignore"):
            r = (np.float32(1) / s).astype(np.float32)
            p["reciprocal"] = encode((x * r).astype(np.float32), fmt, overflow)
    fmax = np.float32(np.nextafter(np.float32(np.inf), np.float32(0)))
    over_code = encode(np.copysign(fmax, y), fmt, overflow)
    top = _fp8_max(fmt)
    with np.errstate(invalid="ignore"):
        p["overflow_first"] = np.where(np.isfinite(y) & (np.abs(y) > top), over_code, e)
    p["saturation"] = encode(y, fmt, other)
    p["negative_zero"] = np.where(_zero_code(e, fmt) & ~np.isnan(y), e ^ np.uint8(0x80), e)
    zero = encode(np.copysign(np.float32(0), y), fmt, overflow)
    p["ftz_output"] = np.where(_subnormal_code(e, fmt), zero, e)
    yd = quotient(_daz(x), _daz(s)) if scaled else _daz(x)
    p["ftz_input"] = encode(yd, fmt, overflow)
    return y, {k: v.astype(np.uint8) for k, v in p.items()}


_MAX = {}


def _fp8_max(fmt):
    if fmt not in _MAX:
        from .. import formats
        _MAX.update((f.name, np.float32(f.max)) for f in formats())
    return _MAX[fmt]


def value_masks(x, s, scaled, fmt, overflow, e, g):
    """(y, masks, confirmed, contradicted): the contract's x / s, the bitmask
    of the models each byte g fits (0 where g == e), and per model the bytes
    where its predicted difference was written and those where the contract's
    byte was written instead."""
    y, pred = predictions(x, s, scaled, fmt, overflow, e)
    differs = g != e
    masks = np.zeros(e.shape, np.int64)
    confirmed, contradicted = {}, {}
    for name, p in pred.items():
        predicts = p != e
        hit = predicts & (p == g)
        masks |= np.where(hit, BIT[name], 0)
        confirmed[name] = int(hit.sum())
        contradicted[name] = int((predicts & ~differs).sum())
    finite = np.isfinite(y)
    masks |= np.where(differs & np.isnan(y), BIT["nan"], 0)
    masks |= np.where(differs & np.isinf(y), BIT["inf"], 0)
    near = np.zeros(e.shape, bool)
    i = np.flatnonzero(differs & finite)
    if len(i):
        up = down = y[i]
        inf = np.float32(np.inf)
        for _ in range(ULPS):
            up, down = np.nextafter(up, inf), np.nextafter(down, -inf)
            near[i] |= (encode(up, fmt, overflow) == g[i]) | (encode(down, fmt, overflow) == g[i])
    masks |= np.where(near, BIT["division"], 0)
    masks = np.where(differs, masks, 0)
    return y, masks, confirmed, contradicted


# ---- one call ---------------------------------------------------------------------

class Tally:
    """Everything the classification of one writer's run needs: per mask the
    bytes and the first example, and per model its confirmed and
    contradicted predictions."""

    def __init__(self):
        self.masks = {}
        self.confirmed = collections.Counter()
        self.contradicted = collections.Counter()
        self.bytes_compared = 0
        self.bytes_differing = 0

    def add(self, mask, count, example):
        entry = self.masks.get(mask)
        if entry is None:
            self.masks[mask] = [count, example() if callable(example) else example]
        else:
            entry[0] += count


def _hex(v, width=2):
    return "0x%0*x" % (width, int(v))


def _input_text(raw, in_dtype):
    bits = raw.view(np.uint32) if in_dtype == "f32" else raw.view(np.uint16)
    x = float(widen(np.array([raw]))[0])
    return "%.9g" % x, _hex(bits, 8 if in_dtype == "f32" else 4)


def _row_hashes(rows):
    """A 64-bit hash of each row of a uint8 array [n, dim] (dim % 8 == 0)."""
    w = np.ascontiguousarray(rows).view(np.uint64)
    mult = (np.arange(w.shape[1], dtype=np.uint64) * np.uint64(2) + np.uint64(1)) * \
        np.uint64(0x9E3779B97F4A7C15)
    return (w * mult).sum(axis=1, dtype=np.uint64)


class _Values:
    """The value models' verdict on a cache's mapped bytes: per picked byte
    (at buffer position pos) its mask, row and the data of its example."""

    def __init__(self, pos, masks, r_i, d_i, s, slots, tokens, heads, y, e, g):
        self.masks, self.r_i, self.d_i, self.s = masks, r_i, d_i, s
        self.slots, self.tokens, self.heads, self.y, self.e, self.g = slots, tokens, heads, y, e, g
        self._order = np.argsort(pos, kind="stable")
        self._sorted = pos[self._order]

    def lookup(self, at):
        """Indices of the bytes at buffer positions `at` (all picked ones)."""
        return self._order[np.searchsorted(self._sorted, at)]


class CallAnalysis:
    """The differences of one call, by cache, into a Tally."""

    def __init__(self, case, exp, tally):
        self.case, self.exp, self.tally = case, exp, tally
        self.spec = case.spec
        self._rows_by_content = None

    # -- examples

    def _base(self, name):
        return {"call": self.spec.index, "call_description": self.case.describe(),
                "cache": name}

    def _value_example(self, name, t, h, d, slot, s, e, g, y):
        spec = self.spec
        raw = (self.case.key if name == "key" else self.case.value)[t, h, d]
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

    def _candidates(self):
        """bytes of every token's encoded row -> {status: (source cache, token)},
        the first token of each status whose row holds those bytes; and the
        rows' hashes."""
        if self._rows_by_content is None:
            found = {}
            hashes = []
            for src in ("key", "value"):
                rows = self.case.token_rows[src]
                hashes.append(_row_hashes(rows.reshape(-1, rows.shape[-1])))
                for t in range(rows.shape[0]):
                    st = int(self.case.status[t])
                    for h in range(rows.shape[1]):
                        found.setdefault(rows[t, h].tobytes(), {}).setdefault(st, (src, t))
            self._rows_by_content = found
            self._hashes = np.unique(np.concatenate(hashes))
        return self._rows_by_content

    def _content_model(self, row_bytes, region, slot):
        """(mask, token) of a misplaced row: the models of every token status
        whose rows hold these bytes (several where rows coincide, such as rows
        of NaN codes), and the token most likely, by where the row landed."""
        hits = self._candidates().get(row_bytes.tobytes())
        outside = "out_of_bounds" if region != "cache" else "stray_writes"
        if not hits:
            return BIT[outside], None
        mask = 0
        for st in hits:
            if st == PAD:
                swa_read = (self.case.swa is not None and region == "cache" and
                            slot == self.case.bait)
                mask |= BIT["swa_padding_read" if swa_read else "padding_written"]
            elif st == SWA_PAD:
                mask |= BIT["padding_written"]
            else:
                mask |= BIT[outside]
        likely = (OUT_OF_RANGE, PAD, SWA_PAD) if region == "after" else (PAD, SWA_PAD,
                                                                           OUT_OF_RANGE)
        st = next((s for s in likely if s in hits), next(iter(hits)))
        src, t = hits[st]
        return mask, (t, src)

    # -- a cache

    def cache(self, name, got):
        geo = self.exp.geometry[name]
        E, A = self.exp.expected[name], self.exp.alternative[name]
        diff = (got != E) & (got != A)
        self.tally.bytes_compared += got.size
        n_diff = int(diff.sum())
        self.tally.bytes_differing += n_diff
        values = self._values(name, geo, got, diff) if geo.itemsize == 1 else None
        if n_diff:
            self._rows(name, geo, got, diff, values)

    def _mapped_elements(self, name, geo):
        """Rows of the mapped slots: (row index, token, head, scale per row)."""
        case = self.case
        mapped = np.flatnonzero(case.owner >= 0)
        slots = np.repeat(mapped, case.heads)
        heads = np.tile(np.arange(case.heads), len(mapped))
        tokens = case.owner[slots]
        mode = self.spec.mode
        if mode == "dynamic":
            s = case.row_scales[name][tokens, heads]
        elif mode == "one":
            s = np.ones(len(tokens), np.float32)
        else:
            scale = case.k_scale if name == "key" else case.v_scale
            s = scale[heads] if len(scale) > 1 else np.repeat(scale, len(tokens))
        return geo.row_index(slots, heads), slots, tokens, heads, s.astype(np.float32)

    def _values(self, name, geo, got, diff):
        """Value models on the mapped rows' differing bytes, and on a sample of
        the correct ones (for contradictions)."""
        spec, case = self.spec, self.case
        rows, slots, tokens, heads, s = self._mapped_elements(name, geo)
        D = geo.dim
        pos = geo.before + rows[:, None] * D + np.arange(D)
        d_el = diff[pos]
        rng = np.random.default_rng([spec.index, len(name)])
        pick = d_el.copy()
        ok = np.flatnonzero(~d_el.reshape(-1))
        if len(ok):
            pick.reshape(-1)[rng.choice(ok, min(SAMPLE, len(ok)), replace=False)] = True
        r_i, d_i = np.nonzero(pick)
        if not len(r_i):
            return None
        raw = case.key if name == "key" else case.value
        x = widen(raw[tokens[r_i], heads[r_i], d_i])
        e = self.exp.expected[name][pos[r_i, d_i]]
        g = got[pos[r_i, d_i]]
        scaled = spec.mode != "one"
        y, masks, confirmed, contradicted = value_masks(x, s[r_i], scaled, spec.fmt,
                                                        spec.overflow, e, g)
        self.tally.confirmed.update(confirmed)
        self.tally.contradicted.update(contradicted)
        model = encode(y, spec.fmt, spec.overflow)
        if not np.array_equal(model[~d_el[r_i, d_i]], e[~d_el[r_i, d_i]]):
            from .guard import HarnessError
            raise HarnessError("%s: %s: the harness's model of x / s disagrees with the CPU "
                               "backend" % (case.describe(), name))
        return _Values(pos[r_i, d_i], masks, r_i, d_i, s, slots, tokens, heads, y, e, g)

    def _rows(self, name, geo, got, diff, values):
        """Differing bytes: those of mapped rows the value models explain,
        and that hold no other token's row, all at once; every other row by
        where it landed and what it holds."""
        case = self.case
        at = np.flatnonzero(diff)
        row = (at - geo.before) // geo.row
        rows, inverse = np.unique(row, return_inverse=True)
        owner = np.full(len(rows), -1, np.int64)
        inside = (rows >= 0) & (rows < geo.rows)
        if inside.any():
            owner[inside] = case.owner[geo.locate(rows[inside])[0]]
        holds_row = np.zeros(len(rows), bool)
        if geo.itemsize == 1:
            self._candidates()
            content = got[(geo.before + rows * geo.row)[:, None] + np.arange(geo.row)]
            holds_row = np.isin(_row_hashes(content), self._hashes)
        by_value = np.zeros(len(at), bool)
        m = np.flatnonzero((owner >= 0)[inverse] & ~holds_row[inverse])
        if values is not None and len(m):
            vi = values.lookup(at[m])
            unexplained = np.zeros(len(rows), bool)
            unexplained[inverse[m][values.masks[vi] == 0]] = True
            whole = ~unexplained[inverse[m]]
            by_value[m[whole]] = True
            self._value_bytes(name, values, vi[whole])
        rest = np.flatnonzero(~by_value)
        for k in np.unique(inverse[rest]):
            self._row(name, geo, got, int(rows[k]), at[rest][inverse[rest] == k], values)

    def _row(self, name, geo, got, r, in_row, values):
        case = self.case
        start = geo.before + r * geo.row
        written = got[start:start + geo.row]
        expected = self.exp.expected[name][start:start + geo.row]
        slot = None
        if r < 0:
            region, where = "before", "%d bytes before the cache" % (geo.before - int(in_row[0]))
        elif r >= geo.rows:
            region, where = "after", "%d bytes past the end of the cache" % (
                int(in_row[0]) - geo.before - geo.size + 1)
        else:
            region = "cache"
            slot, head = (int(v) for v in geo.locate(np.array(r)))
            owner = int(case.owner[slot])
            where = "slot %d (block %d, offset %d) head %d, %s" % (
                slot, slot // geo.block_size, slot % geo.block_size, head,
                "token %d's" % owner if owner >= 0 else "mapped to no token")
        mapped = region == "cache" and case.owner[slot] >= 0

        def example():
            return self._placement_example(name, where, token, expected, written)
        if geo.itemsize == 4:
            mask, token = (0 if mapped else BIT["out_of_bounds" if region != "cache"
                                                 else "stray_writes"]), None
        else:
            mask, token = self._content_model(written, region, slot)
            if mapped:
                if token is not None:      # another token's row, or value errors
                    self._value_bytes(name, values, values.lookup(in_row), mask, example)
                    return
                if not np.array_equal(written, self.exp.template[name][start:start + geo.row]):
                    self._value_bytes(name, values, values.lookup(in_row))
                    return
                mask = BIT["not_written"]
        self.tally.add(mask, len(in_row), example)

    def _value_bytes(self, name, v, idx, also=0, placement_example=None):
        """Tallies mapped bytes (indices into v) by their value masks, each
        OR'd with `also` (a placement model the whole row fits)."""
        masks = v.masks[idx] | also
        uniq, first, counts = np.unique(masks, return_index=True, return_counts=True)
        for mask, f, c in zip(uniq.tolist(), first.tolist(), counts.tolist()):
            i = idx[f]
            r = v.r_i[i]
            self.tally.add(mask, c, placement_example if placement_example and mask & also
                           else lambda: self._value_example(
                               name, v.tokens[r], v.heads[r], v.d_i[i], v.slots[r], v.s[r],
                               v.e[i], v.g[i], v.y[i]))

    def inputs_changed(self, name, before, after):
        """A writer that wrote into its inputs (bytes of the input arrays
        before and after the call): stray writes."""
        changed = np.flatnonzero(before != after)
        self.tally.bytes_differing += len(changed)
        first = changed[0]
        ex = self._base(name + " input")
        ex.update(where="the %s input was modified (%d bytes, the first at byte %d)"
                  % (name, len(changed), first), expected=_hex(before[first]),
                  written=_hex(after[first]))
        self.tally.add(BIT["stray_writes"], len(changed), ex)


# ---- the run's causes -----------------------------------------------------------

def _bits(mask):
    return [m for m in MODELS if mask & BIT[m]]


def resolve(tally):
    """[(class, bytes, first example, also-fits classes, models)] in table
    order: the causes chosen for the run's differing bytes."""
    counts = {m: c for m, (c, _) in tally.masks.items()}
    chosen = set()
    for mask in counts:
        if mask and bin(mask).count("1") == 1:
            chosen.add(_bits(mask)[0])

    def contradicted(m):
        c, k = tally.contradicted.get(m, 0), tally.confirmed.get(m, 0)
        return m not in LOOSE and c > k

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

    by_class = collections.OrderedDict()
    for mask, (c, example) in sorted(tally.masks.items(), key=lambda kv: _order(kv[1][1])):
        if mask == 0:
            cls, models = "unexplained", []
        else:
            pick = [b for b in MODELS if mask & BIT[b] and b in chosen][0]
            cls, models = class_of(pick), [pick]
        entry = by_class.setdefault(cls, {"bytes": 0, "first": example, "also": None,
                                          "models": collections.Counter()})
        entry["bytes"] += c
        for m in models:
            entry["models"][m] += c
        others = {class_of(b) for b in _bits(mask) if not contradicted(b)} - {cls}
        entry["also"] = others if entry["also"] is None else entry["also"] & others
    out = []
    for cls in TITLES:
        if cls in by_class:
            entry = by_class[cls]
            out.append((cls, entry["bytes"], entry["first"], sorted(entry["also"] or ()),
                        dict(entry["models"])))
    return out


def _order(example):
    return (example.get("call", 0), example.get("cache", ""))
