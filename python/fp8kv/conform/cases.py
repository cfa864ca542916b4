# SPDX-License-Identifier: MIT
"""The case matrix: every call fp8kv.conform makes a writer do.

plan() lists the calls of a level as Spec tuples (cheap, so that a progress
bar knows the total); build() makes one call's inputs, slot mapping and
scales, the same for the same seed.  Values come in streams, each with the
scale it is divided by:
  patterns   every bf16 or every fp16 bit pattern;
  midpoints  fp32 values within a few ulp of m * s for every rounding
             midpoint m of the format (the overflow threshold included),
             both signs, for every scale s of the level;
  specials   +-0, fp32 subnormals, +-Inf, NaNs of both signs and payloads,
             FP8 subnormals, maxima and thresholds times s;
  random     normal values across magnitudes (the dynamic scale mode).
Placement varies from call to call: padding slots, a second (SWA) mapping
with padding entries, out-of-range slots, duplicate slots, strided inputs,
NHD and HND caches.
"""

import collections
import math

import numpy as np

from .. import to_float

FP8_FORMATS = ("e4m3fn", "e4m3fnuz", "e5m2", "e5m2fnuz")
HEADS, HEAD_DIM, BLOCK_SIZE = 4, 64, 16
ULPS = 4                # the midpoint search: x0 and 4 fp32 neighbours each way
SWA_GUARD = 8           # table entries past the SWA table (and 1 before it)

# Scales: non-powers of two, tiny (one where m * s is an fp32 subnormal),
# huge and negative; full adds more of each and a subnormal scale.
QUICK_SCALES = (0.37, 1 / 3, 1e-3, -2.5, 1.0, 3.0e4, 1.5e-38)
FULL_SCALES = QUICK_SCALES + (0.5, 2.0 ** -10, 0.1, 3.0, 7.0, 0.7, 6.1e-5, -0.37, -1e-3,
                              1e4, 3.4e5, 1e30, 2.0 ** -126, 1e-40)
SPECIAL_SCALES = {"quick": (1.0, -0.37, 1e-3), "full": (1.0, -0.37, 1e-3, 0.37, 3.0e4,
                                                         1.5e-38, -2.5, 1e-40)}
PATTERN_SCALES = {"quick": ((0.37, 1.0),), "full": ((0.37, 1.0), (1 / 3, -2.5),
                                                     (1e-3, 3.0e4))}

# token status
VALID, PAD, SWA_PAD, OUT_OF_RANGE, DUPLICATE = range(5)
STATUS_NAMES = ("valid", "padding", "SWA padding", "out of range", "duplicate")

Spec = collections.namedtuple(
    "Spec", "index fmt overflow in_dtype values mode k_scales v_scales layout swa strided "
    "out_of_range duplicates index_type")
Spec.__doc__ = """One call of the matrix: its format, overflow mode, input dtype,
value kind, scale mode and scales (one per group: one for "tensor", one per
head for "head", none for "one" and "dynamic"), layout and placement."""


class Claims:
    """What a writer says it does; the matrix covers exactly this."""

    def __init__(self, formats, inputs, scales, layouts, overflows, swa, out_of_range,
                 index_types=("i64",)):
        self.formats, self.inputs, self.scales = tuple(formats), tuple(inputs), tuple(scales)
        self.layouts, self.overflows = tuple(layouts), tuple(overflows)
        self.swa, self.out_of_range = bool(swa), bool(out_of_range)
        self.index_types = tuple(index_types)

    def as_dict(self):
        return dict(formats=list(self.formats), inputs=list(self.inputs),
                    scales=list(self.scales), layouts=list(self.layouts),
                    overflow=list(self.overflows), swa=self.swa,
                    out_of_range=self.out_of_range, index_types=list(self.index_types))


def _scale_groups(mode, scales):
    """The calls that cover `scales` in a scale mode, as (k_scales, v_scales)."""
    if mode == "tensor":
        s = list(scales) + list(scales[:1]) * (len(scales) % 2)
        return [((s[i],), (s[i + 1],)) for i in range(0, len(s), 2)]
    if mode == "head":
        per = 2 * HEADS
        s = list(scales)
        s += [s[i % len(s)] for i in range((-len(s)) % per)]
        return [(tuple(s[i:i + HEADS]), tuple(s[i + HEADS:i + per]))
                for i in range(0, len(s), per)]
    return [((), ())]


def plan(claims, level):
    """The Specs of a level for a writer's claims, in call order."""
    if level not in ("quick", "full"):
        raise ValueError("level: must be 'quick' or 'full', not %r" % (level,))
    scaled = [m for m in ("tensor", "head") if m in claims.scales] or ["one"]
    specs = []
    rotation = [0]

    def add(fmt, overflow, in_dtype, values, mode, k_scales, v_scales):
        i = rotation[0]
        rotation[0] += 1
        specs.append(Spec(
            len(specs), fmt, overflow, in_dtype, values, mode, k_scales, v_scales,
            layout=claims.layouts[i % len(claims.layouts)],
            swa=claims.swa and i % 2 == 0,
            strided=i % 3 == 1,
            out_of_range=claims.out_of_range and i % 4 in (0, 1),
            duplicates=i % 3 == 2,
            index_type=claims.index_types[(i // 2) % len(claims.index_types)]))

    for fmt in claims.formats:
        for overflow in claims.overflows:
            for n, in_dtype in enumerate(d for d in ("bf16", "f16") if d in claims.inputs):
                modes = claims.scales if level == "full" else \
                    [claims.scales[(len(specs) + n) % len(claims.scales)]]
                for mode in modes:
                    pairs = PATTERN_SCALES[level] if mode in ("tensor", "head") else [()]
                    for pair in pairs:
                        for k, v in _scale_groups(mode, pair if mode == "tensor" else
                                                  pair * HEADS):
                            add(fmt, overflow, in_dtype, "patterns", mode, k, v)
            if "f32" not in claims.inputs:
                continue
            modes = scaled if level == "full" else [scaled[len(specs) % len(scaled)]]
            for values, scales in (("midpoints", QUICK_SCALES if level == "quick"
                                    else FULL_SCALES), ("specials", SPECIAL_SCALES[level])):
                for mode in modes:
                    use = scales if mode != "one" else (1.0,)
                    for k, v in _scale_groups(mode, use):
                        add(fmt, overflow, "f32", values, mode, k, v)
            if "dynamic" in claims.scales:
                add(fmt, overflow, "f32", "random", "dynamic", (), ())
    return specs


# ---- values --------------------------------------------------------------------

_POSITIVE = {}


def fp8_values(fmt):
    """The finite non-negative values of a format, ascending (float64)."""
    v = _POSITIVE.get(fmt)
    if v is None:
        v = np.array([to_float(c, fmt) for c in range(0x80)], dtype=np.float64)
        v = _POSITIVE[fmt] = np.unique(v[np.isfinite(v)])
    return v


def _f32(values):
    with np.errstate(all="ignore"):
        return np.asarray(values, dtype=np.float64).astype(np.float32)


def _neighbours(x0, ulps=ULPS):
    out, up, down = [x0], x0, x0
    inf = np.float32(np.inf)
    for _ in range(ulps):
        up, down = np.nextafter(up, inf), np.nextafter(down, -inf)
        out += [up, down]
    return np.concatenate(out)


def midpoints(fmt, s):
    """fp32 x within ULPS ulp of m * s for each rounding midpoint m of fmt and
    the overflow threshold, both signs."""
    v = fp8_values(fmt)
    m = np.concatenate([(v[:-1] + v[1:]) / 2, [v[-1] + (v[-1] - v[-2]) / 2]])
    x0 = _f32(np.concatenate([m, -m]) * float(np.float32(s)))
    return _neighbours(x0[np.isfinite(x0)])


def _nan(bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


def specials(fmt, s):
    """Zeros, fp32 subnormals, Inf, NaNs, and the format's edges times s."""
    v = fp8_values(fmt)
    sub, top = v[1], v[-1]
    normal = v[2 ** (3 if fmt.startswith("e4m3") else 2)]     # after the subnormals
    thr = top + (top - v[-2]) / 2
    edges = np.array([sub, sub / 2, sub * 0.75, sub * 1.5, sub * 0.5000001, normal,
                      normal - sub / 2, top, thr, thr * (1 - 2.0 ** -20),
                      thr * (1 + 2.0 ** -20), 2 * top, 1.0]) * float(np.float32(s))
    plain = np.array([0.0, 1e-45, 1e-40, 2.0 ** -126, 1.1754942e-38, np.inf, 3.4e38, 1e30,
                      1.0])
    fixed = np.concatenate([plain, -plain, edges, -edges])
    nans = _nan([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF, 0xFFFFFFFF,
                 0x7FA00000, 0xFFA00000])
    return np.concatenate([_f32(fixed), nans])


def patterns(in_dtype, rng):
    """Every bit pattern of a 16-bit input type, shuffled: float16 values or
    bf16 bits (uint16)."""
    bits = rng.permutation(65536).astype(np.uint16)
    return bits.view(np.float16) if in_dtype == "f16" else bits


def random_values(rng, n):
    return (rng.standard_normal(n) * np.exp2(rng.integers(-12, 12, n))).astype(np.float32)


def raw_of(x32, in_dtype):
    """fp32 values in an input type's raw form: float32, float16, bf16 bits."""
    x32 = np.asarray(x32, dtype=np.float32)
    if in_dtype == "f32":
        return x32
    if in_dtype == "f16":
        with np.errstate(all="ignore"):
            return x32.astype(np.float16)
    return (x32.view(np.uint32) >> 16).astype(np.uint16)


def widen(raw):
    """Raw input values (float32, float16, or bf16 bits as uint16) as fp32."""
    if raw.dtype == np.uint16:
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32)


def _stream(spec, scale, rng):
    if spec.values == "patterns":
        return patterns(spec.in_dtype, rng)
    if spec.values == "midpoints":
        return midpoints(spec.fmt, scale)
    if spec.values == "specials":
        return specials(spec.fmt, scale)
    return random_values(rng, 16 * HEADS * HEAD_DIM)


def _groups(spec, scales, rng):
    """(heads, values) per scale group of one tensor."""
    if spec.mode == "head":
        if spec.values == "patterns":
            pat = _stream(spec, None, rng)
            return [((h,), part) for h, part in enumerate(np.array_split(pat, HEADS))]
        return [((h,), _stream(spec, s, rng)) for h, s in enumerate(scales)]
    s = scales[0] if scales else 1.0
    return [(tuple(range(HEADS)), _stream(spec, s, rng))]


# ---- one call's arrays ------------------------------------------------------------

class Case:
    """One call's data, all numpy, host side.

    key, value    raw inputs [T, H, D] (float32, float16 or bf16 bits);
    slots         the slot mapping (int64 or int32);
    swa           the SWA table or None; swa_guarded: the table with one
                  entry before and SWA_GUARD after it, each the bait slot;
    k_scale, v_scale  float32 arrays (1 or H values) or None;
    status        each token's status (VALID, PAD, ...); final: each token's
                  cache slot, or -1;
    blocks, num_slots, bait (an unmapped slot padding read through the SWA
    table lands on)."""

    def __init__(self, spec):
        self.spec = spec
        self.heads, self.head_dim, self.block_size = HEADS, HEAD_DIM, BLOCK_SIZE

    def describe(self):
        s = self.spec
        scales = {"one": "no scale", "dynamic": "dynamic scales"}.get(s.mode)
        if scales is None:
            scales = "%s scales k %s, v %s" % (s.mode, "/".join("%.4g" % x for x in s.k_scales),
                                                "/".join("%.4g" % x for x in s.v_scales))
        extra = [x for x, on in (("SWA", s.swa), ("strided inputs", s.strided),
                                 ("out-of-range slots", s.out_of_range),
                                 ("duplicate slots", s.duplicates)) if on]
        return "call %d: %s %s, %s %s, %s, %s%s" % (
            s.index, s.fmt, s.overflow, s.in_dtype, s.values, scales, s.layout,
            "".join(", " + e for e in extra))


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


def _mapping(case, rng, n_valid, order, dup_of):
    """The slot mapping (and SWA table) of a call's tokens, and each token's
    status and cache slot.  Two slots stay unmapped: the last one (where a
    padding slot -1 lands when it wraps) and the bait (where the SWA table's
    entries around it point)."""
    spec, S = case.spec, BLOCK_SIZE
    T = len(order)
    num_slots = S * math.ceil((n_valid + max(6, n_valid // 8) + 2) / S)
    bait = int(rng.integers(1, num_slots - 2))
    free = np.setdiff1d(np.arange(num_slots - 1), [bait])
    valid_slots = rng.choice(free, n_valid, replace=False)
    status, final, slots = np.zeros(T, np.int8), np.full(T, -1, np.int64), np.zeros(T, np.int64)
    if spec.swa:
        L = num_slots + S
        table = np.full(L, -1, np.int64)             # unused entries: SWA padding
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


def _inputs(case, rng, n_valid, kgroups, vgroups):
    """key and value: filler everywhere, the streams in the valid tokens'
    rows, in stream order."""
    spec, H, D = case.spec, HEADS, HEAD_DIM
    T = len(case.order)
    valid = [(t, k) for t, (kind, k) in enumerate(case.order) if kind == "valid"]
    by_stream = np.empty(n_valid, np.int64)
    by_stream[[k for _, k in valid]] = [t for t, _ in valid]
    for name, groups in (("key", kgroups), ("value", vgroups)):
        raw = raw_of(random_values(rng, T * H * D), spec.in_dtype).reshape(T, H, D)
        for heads, values in groups:
            need = math.ceil(len(values) / (len(heads) * D))
            at = np.ix_(by_stream[:need], list(heads))
            rows = raw[at].reshape(-1)
            rows[:len(values)] = values
            raw[at] = rows.reshape(need, len(heads), D)
        setattr(case, name, raw)


def build(spec, seed):
    """The arrays of one call (a Case)."""
    rng = np.random.default_rng([seed, spec.index])
    case = Case(spec)
    kgroups = _groups(spec, spec.k_scales, rng)
    vgroups = _groups(spec, spec.v_scales, rng)
    if spec.values == "patterns":       # value sees the patterns in another order
        vgroups = [(h, rng.permutation(v)) for h, v in vgroups]
    n_valid = max([8] + [math.ceil(len(v) / (len(h) * HEAD_DIM)) for h, v in kgroups + vgroups])
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
