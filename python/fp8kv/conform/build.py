# SPDX-License-Identifier: MIT
"""One call's arrays (a Case), host side, the same for the same seed and Spec."""

import math

import numpy as np

from .cases import DUPLICATE, OUT_OF_RANGE, PAD, SWA_PAD, VALID  # noqa: F401
from .streams import midpoints, patterns, random_values, raw_of, specials

SWA_GUARD = 8           # table entries past the SWA table (and 1 before it)
PATTERN_ROWS = 65536    # elements of a patterns stream

# Slot counts of the extras (V-CONFORM-SPARSE): past 2^16; past 2^31; and
# byte offsets past 2^31 and 2^32 with slots below 2^31.
WIDE_SLOTS = 2 ** 16 + 2 ** 12
HUGE_SLOTS = 2 ** 31 + 2 ** 16


class InputBuffer:
    """The memory an input (key or value) reaches the writer in: a flat host
    array of the raw dtype and the view (offset, shape, strides, in
    elements) that is the input."""

    def __init__(self, flat, offset, shape, strides):
        self.flat, self.offset = flat, int(offset)
        self.shape, self.strides = tuple(shape), tuple(strides)

    def index(self, t, h, d):
        """Element indices into flat of elements (t, h, d) (broadcast)."""
        st, sh, sd = self.strides
        return self.offset + t * st + h * sh + d * sd


class Case:
    """One call's data, all numpy, host side.

    key, value    raw inputs [T, H, D] (float32, float16 or bf16 bits),
                  contiguous: the values the writer must read;
    inputs        {"key": InputBuffer, "value": ...}: the memory it gets;
    slots         the slot mapping (int64 or int32);
    swa           the SWA table or None; swa_guarded: the table with one
                  entry before and SWA_GUARD after it, each the bait slot;
    k_scale, v_scale  float32 arrays (1 or H values) or None;
    status        each token's status (VALID, PAD, ...); final: each token's
                  cache slot, or -1;
    heads, dims ({"key": dk, "value": dv}), block_size, blocks, num_slots,
    bait (an unmapped slot padding read through the SWA table lands on)."""

    def __init__(self, spec):
        self.spec = spec
        sh = spec.shape
        self.heads, self.block_size = sh.heads, sh.block_size
        self.dims = {"key": sh.dk, "value": sh.dv}

    def describe(self):
        s = self.spec
        scales = {"one": "no scale", "token_head": "token_head scales"}.get(s.mode)
        if scales is None:
            scales = "%s scales k %s, v %s" % (s.mode, "/".join("%.4g" % x for x in s.k_scales),
                                                "/".join("%.4g" % x for x in s.v_scales))
        sh = s.shape
        dims = "%d" % sh.dk if sh.dk == sh.dv else "%d/%d" % (sh.dk, sh.dv)
        extra = [x for x, on in (
            ("SWA", s.swa), ("inputs padded between %s" % (
                "tokens" if s.strided == "tokens" else "heads and tokens"), s.strided),
            ("cache padded between %s" % s.padded, s.padded),
            ("out-of-range slots", s.out_of_range), ("duplicate slots", s.duplicates),
            ("int32 slots", s.index_type == "i32"),
            ({"long": "%s tokens" % s.tokens, "wide": "slots past 2^16",
              "huge": "slots past 2^31", "offset": "byte offsets past 2^32"}.get(s.extra),
             s.extra)) if on]
        return "call %d: %s %s, %s %s, %s, %s, %d heads x %s, block size %d%s" % (
            s.index, s.fmt, s.overflow, s.in_dtype, s.values, scales, s.layout, sh.heads,
            dims, sh.block_size, "".join(", " + e for e in extra))


def _stream(spec, scale, rng, per_token):
    if spec.values == "patterns":
        return patterns(spec.in_dtype, rng)
    if spec.values == "midpoints":
        return midpoints(spec.fmt, scale)
    if spec.values == "specials":
        return specials(spec.fmt, scale)
    return random_values(rng, (spec.tokens or 16) * per_token)


def _groups(spec, scales, rng, dim):
    """(heads, values) per scale group of one tensor."""
    H = spec.shape.heads
    if spec.mode == "head":
        if spec.values == "patterns":
            pat = _stream(spec, None, rng, H * dim)
            return [((h,), part) for h, part in enumerate(np.array_split(pat, H))]
        return [((h,), _stream(spec, s, rng, dim)) for h, s in enumerate(scales)]
    s = scales[0] if scales else 1.0
    return [(tuple(range(H)), _stream(spec, s, rng, H * dim))]


def _token_order(rng, n_valid, extras, dup_of):
    """A random order of n_valid valid tokens and the extras, with each
    duplicate ahead of the token whose slot it shares (the CPU backend
    writes in token order; the later token's bytes carry the stream)."""
    kinds = [("valid", k) for k in range(n_valid)] + extras
    order = list(rng.permutation(len(kinds)))
    pos = {kinds[j]: p for p, j in enumerate(order)}
    for e in extras:
        if e[0] == "dup":
            a, b = pos[e], pos[("valid", dup_of[e[1]])]
            if a > b:
                order[a], order[b] = order[b], order[a]
                pos[e], pos[("valid", dup_of[e[1]])] = b, a
    return [kinds[j] for j in order]


def _num_slots(spec, n_valid):
    return num_slots_of(spec.extra, spec.shape, n_valid)


def num_slots_of(extra, shape, n_valid=0):
    S = shape.block_size
    want = {"wide": WIDE_SLOTS, "huge": HUGE_SLOTS,
            "offset": 2 ** 32 // (shape.heads * max(shape.dk, shape.dv)) + 2 ** 12}.get(
        extra, n_valid + max(6, n_valid // 8) + 2)
    return S * math.ceil(want / S)


def extra_bytes(kind, shape):
    """The bytes of one cache of an extra call (V-CONFORM-SPARSE)."""
    return num_slots_of(kind, shape) * shape.heads * max(shape.dk, shape.dv)


def _edge(spec):
    """The slot the extras are about: past 2^16, past 2^31, and the first
    whose byte offset is past 2^32 (half the slots below it have offsets
    past 2^31)."""
    sh = spec.shape
    return {"wide": 2 ** 16, "huge": 2 ** 31,
            "offset": 2 ** 32 // (sh.heads * max(sh.dk, sh.dv)) + 1}.get(spec.extra)


def _valid_slots(rng, spec, n_valid, num_slots, bait):
    """n_valid distinct slots below num_slots - 1, none the bait; for the
    extras, half of them past the edge the call is about."""
    edge = _edge(spec)
    if edge is None:
        free = np.setdiff1d(np.arange(num_slots - 1), [bait])
        return rng.choice(free, n_valid, replace=False)
    out = set()
    while len(out) < n_valid:
        hi = len(out) % 2 == 0
        s = int(rng.integers(edge, num_slots - 1) if hi else rng.integers(0, edge))
        if s != bait:
            out.add(s)
    return np.array(sorted(out), np.int64)[rng.permutation(n_valid)]


def _mapping(case, rng, n_valid, order, dup_of):
    """The slot mapping (and SWA table) of a call's tokens, and each token's
    status and cache slot.  Two slots stay unmapped: the last one (where a
    padding slot -1 lands when it wraps) and the bait (where the SWA table's
    entries around it point)."""
    spec, S = case.spec, case.block_size
    T = len(order)
    num_slots = _num_slots(spec, n_valid)
    bait = int(rng.integers(1, num_slots - 2))
    valid_slots = _valid_slots(rng, spec, n_valid, num_slots, bait)
    status, final, slots = np.zeros(T, np.int8), np.full(T, -1, np.int64), np.zeros(T, np.int64)
    if spec.swa:
        L = n_valid + 2 * (T - n_valid) + S + 8      # unused entries: SWA padding
        table = np.full(L, -1, np.int64)
        idx = rng.permutation(L - 1)
        valid_idx, spare = idx[:n_valid], list(idx[n_valid:])
        table[valid_idx] = valid_slots
        table[L - 1] = bait
    for t, (kind, k) in enumerate(order):
        if kind in ("valid", "dup"):
            v = k if kind == "valid" else dup_of[k]
            status[t] = VALID if kind == "valid" else DUPLICATE
            final[t] = valid_slots[v]
            slots[t] = valid_idx[v] if spec.swa else valid_slots[v]
        elif kind == "pad":
            status[t] = PAD
            slots[t] = -1 if spec.swa else (-1, -2, -1)[k]
        elif kind == "swapad":
            status[t] = SWA_PAD
            slots[t] = spare.pop()
        else:
            status[t] = OUT_OF_RANGE
            j = int(rng.integers(0, S))
            if not spec.swa:
                slots[t] = num_slots + j
            elif k == 0:                             # past the table
                slots[t] = L + int(rng.integers(0, SWA_GUARD))
            else:                                    # mapped past the cache
                slots[t] = spare.pop()
                table[slots[t]] = num_slots + j
    case.order, case.status, case.final = order, status, final
    case.num_slots, case.blocks, case.bait = num_slots, num_slots // S, bait
    index_dtype = np.int32 if spec.index_type == "i32" else np.int64
    case.slots = slots.astype(index_dtype)
    case.swa_guarded = case.swa = None
    if spec.swa:
        guarded = np.concatenate([[bait], table, np.full(SWA_GUARD, bait)]).astype(index_dtype)
        case.swa_guarded, case.swa = guarded, guarded[1:1 + L]


def _input_buffer(raw, how, rng, in_dtype):
    """The memory of an input: raw itself, or raw inside a larger buffer of
    other values, tokens apart ("tokens", as in a fused QKV tensor) or heads
    and tokens apart ("heads")."""
    T, H, D = raw.shape
    if how is None:
        return InputBuffer(raw.reshape(-1), 0, raw.shape, (H * D, D, 1))
    if how == "tokens":
        st, sh, offset = H * D + 3 * D, D, D
    else:
        st, sh, offset = (H + 2) * (D + 8), D + 8, D + 8 + 4
    n = offset + (T - 1) * st + (H - 1) * sh + D + 16 if T else offset + 16
    flat = raw_of(random_values(rng, n), in_dtype)
    buf = InputBuffer(flat, offset, raw.shape, (st, sh, 1))
    t, h, d = np.ix_(np.arange(T), np.arange(H), np.arange(D))
    flat[buf.index(t, h, d)] = raw
    return buf


def _inputs(case, rng, n_valid, kgroups, vgroups):
    """key and value: filler everywhere, the streams in the valid tokens'
    rows, in stream order."""
    spec, H = case.spec, case.heads
    T = len(case.order)
    valid = [(t, k) for t, (kind, k) in enumerate(case.order) if kind == "valid"]
    by_stream = np.empty(n_valid, np.int64)
    by_stream[[k for _, k in valid]] = [t for t, _ in valid]
    case.inputs = {}
    for name, groups in (("key", kgroups), ("value", vgroups)):
        D = case.dims[name]
        raw = raw_of(random_values(rng, T * H * D), spec.in_dtype).reshape(T, H, D)
        for heads, values in groups:
            need = math.ceil(len(values) / (len(heads) * D))
            at = np.ix_(by_stream[:need], list(heads))
            rows = raw[at].reshape(-1)
            rows[:len(values)] = values
            raw[at] = rows.reshape(need, len(heads), D)
        setattr(case, name, raw)
        case.inputs[name] = _input_buffer(raw, spec.strided, rng, spec.in_dtype)


def build(spec, seed):
    """The arrays of one call (a Case)."""
    rng = np.random.default_rng([seed, spec.index])
    case = Case(spec)
    dk, dv = case.dims["key"], case.dims["value"]
    kgroups = _groups(spec, spec.k_scales, rng, dk)
    vgroups = _groups(spec, spec.v_scales, rng, dv)
    if spec.values == "patterns":       # value sees the patterns in another order
        vgroups = [(h, rng.permutation(v)) for h, v in vgroups]
    n_valid = max([8, spec.tokens or 0] +
                  [math.ceil(len(v) / (len(h) * dk)) for h, v in kgroups] +
                  [math.ceil(len(v) / (len(h) * dv)) for h, v in vgroups])
    n_dup = 2 if spec.duplicates else 0
    dup_of = list(rng.choice(n_valid, n_dup, replace=False)) if n_dup else []
    extras = [("pad", i) for i in range(3)] + [("dup", i) for i in range(n_dup)]
    if spec.out_of_range:
        extras += [("oor", 0), ("oor", 1)]
    if spec.swa:
        extras += [("swapad", 0), ("swapad", 1)]
    order = _token_order(rng, n_valid, extras, dup_of)
    _mapping(case, rng, n_valid, order, dup_of)
    _inputs(case, rng, n_valid, kgroups, vgroups)
    scaled = spec.mode in ("tensor", "head")
    case.k_scale = np.array(spec.k_scales, np.float32) if scaled else None
    case.v_scale = np.array(spec.v_scales, np.float32) if scaled else None
    return case
