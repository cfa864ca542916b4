# SPDX-License-Identifier: MIT
"""fp8kv.conform as the referee of block-scaled recipes (issue 37 item 5).

    report = fp8kv.conform.groups.run(writer, family="nvfp4")

A grouped writer is called with fp8kv.reshape_and_cache_grouped's keywords
(key, value, key_cache, value_cache, slot_mapping, rule, group_size,
k_scales, v_scales, k_global, v_global, format, ...; numpy arrays, uint8
caches [blocks, block_size, heads, bytes per row], scales [blocks,
block_size, heads, groups per row]) over calls of adversarial groups: zeros,
NaN, Inf, subnormal amax, amax at and around the element format's maximum
times powers of two, e2m1 and int8 ties, block scales past 448 and under
e4m3's least subnormal, several global scales.

Verdict: CLEAN when every byte of every output (canaries around them
included) is the golden path's (fp8kv.golden.reshape_and_cache_grouped with
the family's rule) and no input changed.  Otherwise the referee says which
recipe of the family (fp8kv.conform.catalogue) every written group matches,
exactly or with one variation (nibble order, ties away, the other NaN code,
an unsaturated block scale, approximate reciprocals), or that none does,
with the first differing group decoded on both sides (python/README.md, conform).
fp8kv's own recipes are taken from the golden path; the engines' from
conform's models (fp8kv.conform.recipes).
"""

import itertools

import numpy as np

from . import recipes as R
from . import records
from .catalogue import FAMILIES, PLACEMENT, VARIATIONS, recipe_titles
from .errors import HarnessError, UsageError
from .report import CLEAN, DIFFERENCES, FAILED

B, BS, H, D = 4, 4, 2, 64
SLOTS = B * BS
CANARY = 64
F32 = np.float32

# ---- the calls ----------------------------------------------------------------


def _group_values(rng, pattern, G, fam, g):
    """One group of G fp32 inputs following an adversarial pattern."""
    fmt = fam["format"]
    mx = R.MAXV[fmt]
    x = (rng.standard_normal(G) * 10.0 ** rng.uniform(-2, 2)).astype(F32)
    if pattern == "zero":
        x = np.where(rng.random(G) < 0.5, F32(0), F32(-0.0)).astype(F32)
    elif pattern == "nan":
        x[rng.integers(G)] = np.copysign(F32(np.nan), rng.choice([-1.0, 1.0]))
    elif pattern == "inf":
        x[rng.integers(G)] = F32(np.inf) * F32(rng.choice([-1.0, 1.0]))
    elif pattern == "tiny":
        x = (rng.standard_normal(G) * 1e-40).astype(F32)
    elif pattern == "boundary":   # amax at m * max * 2^k: floor, rceil and even differ
        m = rng.choice([1.0, 1.25, 1.5, 1.7, 1.75, 1.76, 1.875, 1.9, 1.99, 2.0])
        k = int(rng.integers(-6, 6))
        x = (x / np.max(np.abs(x)) * F32(0.9)).astype(F32)
        x[rng.integers(G)] = F32(m * 2.0 ** k * (mx if fmt != "int8" else 1.0))
    elif pattern == "ties":       # quotients at the element format's midpoints
        if fmt == "e2m1":
            k = int(rng.integers(-3, 3))
            s = 2.0 ** k if fam["scale"] == "e8m0" else 2.0 * g
            ties = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 0.5, 1.0, 3.0])
            x = (rng.choice(ties, G) * rng.choice([-1, 1], G) * s).astype(F32)
            x[0] = F32(6 * s)
        elif fmt == "int8":
            k = int(rng.integers(-4, 4))
            x = ((rng.integers(-126, 126, G) + 0.5) * 2.0 ** k).astype(F32)
            x[0] = F32(127 * 2.0 ** k)
        else:
            x = (rng.standard_normal(G) * 2.0 ** int(rng.integers(-8, 8))).astype(F32)
    elif pattern == "big":        # a block scale past e4m3's 448
        x[rng.integers(G)] = F32(6 * g * rng.uniform(450, 4000))
    elif pattern == "underflow":  # a block scale under e4m3's least subnormal
        x = (x / np.max(np.abs(x)) * F32(6 * g * 2.0 ** -11)).astype(F32)
    return x


PATTERNS = ("normal", "zero", "nan", "inf", "tiny", "boundary", "ties", "big", "underflow")


class Call:
    """One call: inputs, slots, poisoned outputs in canaried buffers."""

    def __init__(self, family, rng, g, tokens=9):
        fam = FAMILIES[family]
        self.family, self.fam, self.g = family, fam, F32(g)
        self.fmt = fam["format"]
        self.G = fam["group_size"] or D
        self.row_bytes = D // 2 if self.fmt == "e2m1" else D
        self.nsg = D // self.G
        self.scale_item = 4 if fam["scale"] == "f32" else 1
        n = tokens * 2 * H * self.nsg
        pats = rng.choice(PATTERNS, n)
        groups = [_group_values(rng, p, self.G, fam, float(g)) for p in pats]
        x = np.stack(groups).reshape(2, tokens, H, D)
        self.key, self.value = x[0].copy(), x[1].copy()
        # slots: distinct, never the last slot (where -1 lands as an index),
        # one padding token
        slots = rng.permutation(SLOTS - 1)[:tokens].astype(np.int64)
        slots[rng.integers(tokens)] = -1
        self.slots = slots
        self.k_global = np.array([self.g], F32)
        self.v_global = np.array([self.g], F32)
        self.poison = int(rng.integers(1, 255))
        self.bufs = {}
        for side in ("key_cache", "value_cache"):
            self.bufs[side] = self._canaried((B, BS, H, self.row_bytes), np.uint8)
        sdt = np.float32 if self.scale_item == 4 else np.uint8
        for side in ("k_scales", "v_scales"):
            self.bufs[side] = self._canaried((B, BS, H, self.nsg), sdt)

    def _canaried(self, shape, dtype):
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        buf = np.full(n + 2 * CANARY, self.poison, np.uint8)
        view = buf[CANARY:CANARY + n].view(dtype).reshape(shape)
        return buf, view

    def kwargs(self, rule=None):
        fam = self.fam
        kw = dict(key=self.key, value=self.value,
                  key_cache=self.bufs["key_cache"][1], value_cache=self.bufs["value_cache"][1],
                  slot_mapping=self.slots, rule=rule or fam["rule"], group_size=self.G,
                  k_scales=self.bufs["k_scales"][1], v_scales=self.bufs["v_scales"][1],
                  format=self.fmt)
        if fam["rule"] == "nvfp4":
            kw.update(k_global=self.k_global, v_global=self.v_global)
        return kw

    def fresh(self):
        """Buffers back to their poison."""
        for buf, _ in self.bufs.values():
            buf[...] = self.poison

    def mapped(self):
        return [(t, s // BS, s % BS) for t, s in enumerate(self.slots) if s >= 0]


# ---- expected bytes -------------------------------------------------------------

def _pack(codes, fmt, swapped=False):
    """Group codes [n, G] as stored bytes [n, bytes]."""
    if fmt != "e2m1":
        return codes.astype(np.uint8)
    lo, hi = codes[:, 0::2] & 15, codes[:, 1::2] & 15
    if swapped:
        lo, hi = hi, lo
    return (lo | (hi << 4)).astype(np.uint8)


def _scale_bytes(scales, item):
    if item == 4:
        return np.ascontiguousarray(scales, np.uint32).astype("<u4").view(np.uint8).reshape(-1, 4)
    return np.asarray(scales, np.uint8).reshape(-1, 1)


def _model(call, recipe, variation=None, delta=()):
    """A recipe's model (with a variation) as a function of groups x."""
    fmt, g = call.fmt, call.g
    kw = dict(delta=delta)
    if variation == "ties_away":
        kw["ties"] = "away"
    if variation == "scale_nonsaturating":
        kw["sat"] = False
    name = recipe.name
    if name in ("e8m0_floor_torchao", "e8m0_rceil_torchao", "e8m0_rceil_nvidia"):
        base = getattr(R, {"e8m0_floor_torchao": "mx_floor_torchao",
                           "e8m0_rceil_torchao": "mx_rceil_torchao",
                           "e8m0_rceil_nvidia": "mx_rceil_nvidia"}[name])
        return lambda x: base(x, fmt, **kw)
    if name.startswith("e8m0_"):
        base = R.mx_recipe(name[5:])
        if variation == "nan_code" and fmt == "e2m1":
            kw["nan"] = 0x7
        return lambda x: base(x, fmt, **kw)
    if name.startswith("nvfp4_"):
        base = getattr(R, name)
        if variation == "nan_code":
            kw["nan"] = 0x7 if name in ("nvfp4_fp8kv", "nvfp4_flashinfer") else 0x0
        return lambda x: base(x, g, **kw)
    if name == "int8_rne":
        base = R.f32_recipe(R.amax_finite, False, "nearest_even")
    elif name == "int8_trunc":
        base = R.f32_recipe(R.amax_finite, False, "toward_zero")
    else:
        base = R.f32_recipe(R.int8_vllm_amax, True, "toward_zero", floor_override=1e-6)
    return lambda x: base(x, fmt, **kw)


def _group_bytes(call, fn, x, swapped=False):
    codes, scales = fn(x)
    return np.concatenate([_pack(codes, call.fmt, swapped),
                           _scale_bytes(scales, call.scale_item)], axis=1)


def _golden(call, recipe):
    """The golden path's outputs for a recipe fp8kv writes: {side: bytes of
    the whole canaried buffer}."""
    from .. import golden
    fn = golden.reshape_and_cache_grouped
    call.fresh()
    kw = call.kwargs(recipe.fp8kv["rule"])
    kw.update({k: v for k, v in recipe.fp8kv.items() if k != "rule"})
    res = fn(**kw)
    out = {}
    for side in call.bufs:
        buf = call.bufs[side][0].copy()
        arr = getattr(res, side)
        buf[CANARY:len(buf) - CANARY] = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
        out[side] = buf
    return out


def _modelled_image(call, fn):
    """Whole buffers as a recipe model writes them (poison elsewhere)."""
    out = {s: call.bufs[s][0].copy() for s in call.bufs}
    views = {s: out[s][CANARY:len(out[s]) - CANARY] for s in out}
    shapes = {s: call.bufs[s][1].shape for s in call.bufs}
    for side, x in (("key", call.key), ("value", call.value)):
        cache, scales = side + "_cache", side[0] + "_scales"
        cv = views[cache].reshape(shapes[cache])
        sv = views[scales].reshape(shapes[scales][:3] + (-1,))
        for t, b, o in call.mapped():
            gb = _group_bytes(call, fn, x[t].reshape(-1, call.G))
            nb = gb.shape[1] - call.scale_item
            cv[b, o] = gb[:, :nb].reshape(H, -1)
            sv[b, o] = gb[:, nb:].reshape(H, -1)
    return out


# ---- the writer's groups ------------------------------------------------------------

def _writer_groups(call):
    """The written bytes of every mapped group [n, code bytes + scale bytes]
    and its inputs [n, G], in one order."""
    rows, xs = [], []
    for side, x in (("key", call.key), ("value", call.value)):
        cv = call.bufs[side + "_cache"][1]
        sv = call.bufs[side[0] + "_scales"][1].view(np.uint8).reshape(B, BS, H, -1)
        for t, b, o in call.mapped():
            codes = cv[b, o].reshape(H * call.nsg, -1)
            sc = sv[b, o].reshape(H * call.nsg, -1)
            rows.append(np.concatenate([codes, sc], axis=1))
            xs.append(x[t].reshape(-1, call.G))
    return np.concatenate(rows), np.concatenate(xs)


def _candidates(family, call):
    """(label, recipe, variation, delta) in preference order: exact
    recipes, then one variation, then approximate reciprocals."""
    fam = FAMILIES[family]
    out = [(r.name, r, None, ()) for r in fam["recipes"]]
    for v in ("nibbles_swapped", "ties_away", "nan_code", "scale_nonsaturating"):
        if v in ("nibbles_swapped", "nan_code") and call.fmt != "e2m1" or \
                v == "ties_away" and call.fmt not in ("e2m1", "int8") or \
                v == "scale_nonsaturating" and family != "nvfp4":
            continue
        out += [("%s + %s" % (r.name, v), r, v, ()) for r in fam["recipes"]
                if not (v == "ties_away" and r.name in ("int8_trunc", "int8_vllm"))]
    out += [("%s + approximate_reciprocal" % r.name, r, "approximate_reciprocal", None)
            for r in fam["recipes"] if r.deltas]
    return out


def _matches(call, cand, x, got):
    """Per group: does the candidate give the writer's bytes?"""
    label, recipe, variation, delta = cand
    swapped = variation == "nibbles_swapped"
    if variation != "approximate_reciprocal":
        fn = _model(call, recipe, variation, delta)
        return np.all(_group_bytes(call, fn, x, swapped) == got, axis=1)
    exact = np.all(_group_bytes(call, _model(call, recipe), x) == got, axis=1)
    ok = exact.copy()
    todo = ~exact
    # a product with a reciprocal one ulp off may land two ulps from the
    # quotient: +-2 where few operations make it cheap
    span = (-2, -1, 0, 1, 2) if recipe.deltas <= 2 else (-1, 0, 1)
    for d in itertools.product(span, repeat=recipe.deltas):
        if not todo.any():
            break
        if not any(d):
            continue
        fn = _model(call, recipe, None, d)
        hit = np.all(_group_bytes(call, fn, x[todo]) == got[todo], axis=1)
        idx = np.flatnonzero(todo)[hit]
        ok[idx] = True
        todo[idx] = False
    return ok


# ---- the run ---------------------------------------------------------------------

class GroupReport:
    """The referee's result for one writer and family."""

    def __init__(self, target, family):
        self.target, self.family = target, family
        self.verdict, self.error = CLEAN, None
        self.calls = self.groups = 0
        self.bytes_compared = self.bytes_differing = 0
        self.recipe, self.also = None, []
        self.placement = {}
        self.first = None
        self.closest = None
        self.golden = "fp8kv.golden"

    def verdict_line(self):
        head = "%s [%s]: %s" % (self.target, self.family, self.verdict.upper())
        if self.verdict == FAILED:
            return head + " (%s)" % self.error
        if self.verdict == CLEAN:
            return head + " (%d calls, %d groups, %d bytes, every one the golden path's)" % (
                self.calls, self.groups, self.bytes_compared)
        return head + " (%d of %d bytes differ) - %s" % (
            self.bytes_differing, self.bytes_compared,
            ("recipe: " + self.recipe) if self.recipe else "none matches")

    def table(self):
        lines = []
        titles = recipe_titles()
        if self.recipe:
            base, _, var = self.recipe.partition(" + ")
            lines.append("  recipe   %s: %s" % (base, titles[base]))
            if var:
                lines.append("  variation %s: %s" % (var, VARIATIONS[var]))
            if self.also:
                lines.append("  also fits: %s" % ", ".join(self.also))
        for cls, n in self.placement.items():
            lines.append("  %-16s %6d bytes  %s" % (cls, n, PLACEMENT[cls]))
        if self.first:
            lines.append("  first differing group: " + self.first)
        return lines

    def as_dict(self):
        return dict(target=self.target, family=self.family, verdict=self.verdict,
                    error=self.error, calls=self.calls, groups=self.groups,
                    bytes_compared=self.bytes_compared,
                    bytes_differing=self.bytes_differing, recipe=self.recipe,
                    also_fits=self.also, placement=self.placement,
                    first_difference=self.first, closest=self.closest,
                    golden=self.golden)


def _decode(call, gbytes, label):
    nb = gbytes.shape[0] - call.scale_item
    codes, sc = gbytes[:nb], gbytes[nb:]
    if call.fmt == "e2m1":
        c = np.stack([codes & 15, codes >> 4], axis=1).reshape(-1)
        vals = R.e2m1_value(c)
    elif call.fmt == "int8":
        vals = codes.view(np.int8).astype(F32)
    else:
        vals = R.fp8_value(codes, call.fmt)
    if call.scale_item == 4:
        s = "%.9g" % sc.view("<f4")[0]
    elif call.fam["scale"] == "e8m0":
        s = "e8m0 %d (2^%d)" % (sc[0], int(sc[0]) - 127)
    else:
        s = "e4m3 0x%02x (%g)" % (sc[0], R.fp8_value(sc, "e4m3fn")[0])
    return "%s: scale %s, elements [%s]" % (
        label, s, " ".join("%g" % v for v in vals))


def run(writer, family, seed=0, calls=6, target=None, arrays="numpy", device="cpu"):
    """Referees a grouped writer (a callable with
    fp8kv.reshape_and_cache_grouped's keywords) for one family."""
    if family not in FAMILIES:
        raise UsageError("family: %r is not one of %s" % (family, ", ".join(FAMILIES)))
    fam = FAMILIES[family]
    rep = GroupReport(target or getattr(writer, "__name__", str(writer)), family)
    rng = np.random.default_rng(seed)
    gs = [1.0, 0.0371, 2.75, 1.3e-3, 0.5, 11.0] if family == "nvfp4" else [1.0]
    fp8kv_recipe = next(r for r in fam["recipes"] if r.fp8kv and
                        r.fp8kv["rule"] == fam["rule"])
    got_all = []
    for i in range(calls):
        call = Call(family, rng, gs[i % len(gs)])
        inputs = (call.key, call.value, call.slots, call.k_global, call.v_global)
        ins = [a.copy() for a in inputs]
        expected = _golden(call, fp8kv_recipe)
        # the model of fp8kv's recipe is held to the golden path
        model = _modelled_image(call, _model(call, fp8kv_recipe))
        for s in expected:
            if not np.array_equal(model[s], expected[s]):
                raise HarnessError("conform's model of %s differs from the golden "
                                   "path in %s" % (fp8kv_recipe.name, s))
        call.fresh()
        try:
            records.invoke(writer, call.kwargs(), [b for b, _ in call.bufs.values()],
                           arrays, device)
        except Exception as e:  # the writer's failure is the report's
            rep.verdict, rep.error = FAILED, "call %d raised %s: %s" % (
                i, type(e).__name__, e)
            return rep
        rep.calls += 1
        _placement(call, expected, rep)
        for a, b in zip(ins, inputs):
            if not np.array_equal(a.view(np.uint8), b.view(np.uint8)):
                rep.placement["input_modified"] = rep.placement.get("input_modified", 0) + \
                    int(np.count_nonzero(a.view(np.uint8) != b.view(np.uint8)))
        for s in expected:
            rep.bytes_compared += expected[s].size
            rep.bytes_differing += int(np.count_nonzero(expected[s] != call.bufs[s][0]))
        got, x = _writer_groups(call)
        got_all.append((call, got, x))
        rep.groups += len(got)
    if rep.bytes_differing == 0 and not rep.placement:
        return rep
    rep.verdict = DIFFERENCES
    _referee(rep, family, got_all)
    return rep


def _placement(call, expected, rep):
    """Bytes outside the mapped rows and scales: canaries, the padding's
    row as a negative index would place it, elsewhere."""
    mask = {s: np.zeros(call.bufs[s][0].shape, bool) for s in call.bufs}
    for s in call.bufs:
        inner = mask[s][CANARY:len(mask[s]) - CANARY].reshape(B, BS, H, -1)
        for _, b, o in call.mapped():
            inner[b, o] = True
    for s, (buf, _) in call.bufs.items():
        changed = (buf != call.poison) & ~mask[s]
        if not changed.any():
            continue
        edge = np.zeros_like(changed)
        edge[:CANARY] = edge[len(edge) - CANARY:] = True
        last = np.zeros_like(changed)
        last[CANARY:len(last) - CANARY].reshape(B, BS, H, -1)[B - 1, BS - 1] = True
        for cls, m in (("out_of_bounds", changed & edge),
                       ("padding_written", changed & last & ~edge),
                       ("stray_writes", changed & ~last & ~edge)):
            if m.any():
                rep.placement[cls] = rep.placement.get(cls, 0) + int(m.sum())
    for s, (buf, _) in call.bufs.items():   # rows left whole as poison
        inner = buf[CANARY:len(buf) - CANARY].reshape(B, BS, H, -1)
        want = expected[s][CANARY:len(buf) - CANARY].reshape(B, BS, H, -1)
        for _, b, o in call.mapped():
            left = np.all(inner[b, o] == call.poison, axis=1) & \
                np.any(want[b, o] != call.poison, axis=1)
            if left.any():
                rep.placement["not_written"] = rep.placement.get("not_written", 0) + \
                    int(left.sum()) * inner.shape[3]


def _referee(rep, family, got_all):
    cands = _candidates(family, got_all[0][0])
    scores = []
    for cand in cands:
        ok = n = 0
        for call, got, x in got_all:
            m = _matches(call, cand, x, got)
            ok += int(m.sum())
            n += len(m)
        scores.append((ok, n, cand))
    # a variation is named only where its recipe alone does not match
    exact = {c[1].name for ok, n, c in scores if ok == n and n and c[2] is None}
    full = [c[0] for ok, n, c in scores if ok == n and n and
            (c[2] is None or c[1].name not in exact)]
    if full:
        rep.recipe, rep.also = full[0], full[1:]
        if not rep.placement.get("not_written") and not set(rep.placement) - {"input_modified"}:
            return
    best = max(scores, key=lambda s: s[0])
    cand = best[2]
    if not full:
        rep.recipe = None
    for call, got, x in got_all:   # the first group the best candidate misses
        m = _matches(call, cand, x, got) if cand[2] != "approximate_reciprocal" else \
            _matches(call, (cand[0], cand[1], None, ()), x, got)
        if not m.all():
            j = int(np.flatnonzero(~m)[0])
            fn = _model(call, cand[1], cand[2] if cand[2] != "approximate_reciprocal"
                        else None)
            want = _group_bytes(call, fn, x[j:j + 1], cand[2] == "nibbles_swapped")[0]
            rep.closest = dict(recipe=cand[0], groups_matched=best[0], groups=best[1])
            rep.first = "(closest: %s, %d of %d groups) inputs [%s]; %s; %s" % (
                cand[0], best[0], best[1],
                " ".join("%.9g" % v for v in x[j]), _decode(call, got[j], "writer"),
                _decode(call, want, "closest recipe " + cand[0]))
            break
