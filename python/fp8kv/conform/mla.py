# SPDX-License-Identifier: MIT
"""fp8kv.conform for MLA latent writers (issue 36 item 5).

    report = fp8kv.conform.mla.run(writer, kind="ds_mla")

The writer has vLLM's signature, concat_and_cache_mla(kv_c, k_pe, kv_cache,
slot_mapping, kv_cache_dtype, scale), with numpy arrays: kv_c [T, 512] and
k_pe [T, 64] bf16 as uint16 bits, kv_cache uint8 [blocks, block_size,
entry] (entry 656 bytes for kv_cache_dtype "fp8_ds_mla", 576 for "fp8"),
slot_mapping int64, scale fp32 [1].  Calls cover tiles of zeros, one and all
NaN, Inf, a subnormal amax, one huge element, several per-tensor scales,
padding, and a cache whose entries are padded (its strides).

Every byte of the cache and of canaries around it is held to the golden
path (fp8kv.golden.concat_and_cache_mla); the differences are named
(V-CONFORM-LAYOUT-FIRST as for MHA writers): first where whole records
went (wrong_slot, cache_strides, padding_written, not_written, stray and
out-of-bounds writes), then, on records in their place, the record models
below, each re-deriving a specific wrong writer's record; a byte that fits
none is "unexplained".  A DS record is decoded (4 x 128 e4m3 tiles, 4 LE
fp32 scales, raw 16-bit k_pe) for the first difference.
"""

import collections

import numpy as np

from . import recipes as R
from . import records
from .errors import HarnessError, UsageError
from .models import quotient
from .streams import fp8_values
from .report import CLEAN, DIFFERENCES, FAILED

RANK, PE = 512, 64
TILE = 128
DS_BYTES = RANK + 16 + 2 * PE          # 656
PLAIN_BYTES = RANK + PE                # 576
NB, BS = 4, 8
SLOTS = NB * BS
CANARY = 64
F32 = np.float32
FLT_MIN = F32(2.0 ** -126)

CLASSES = collections.OrderedDict([
    # where records went
    ("wrong_slot", "records written to another entry of the cache (slot or block size "
                   "misread)"),
    ("cache_strides", "records written as if entries were contiguous (the cache's strides "
                      "ignored)"),
    ("padding_written", "padding written (a token of slot -1 landed in the cache)"),
    ("not_written", "mapped entries not written"),
    ("stray_writes", "stray writes (bytes outside the mapped entries changed)"),
    ("out_of_bounds", "out-of-bounds writes (canaries around the cache changed)"),
    ("input_modified", "inputs modified"),
    # what a record holds
    ("vllm_nan_inf", "vLLM's NaN/Inf tiles (an all-NaN tile's scale FLT_MIN, an Inf "
                     "tile's scale Inf and its finite codes +-0, NaN codes 0x7F unsigned)"),
    ("inverted_scale", "scale applied inverted (x * s, not x / s)"),
    ("tile_divisor", "wrong tile divisor (448, 240 or 224)"),
    ("tile_boundaries", "tile boundaries off (tiles of 64, 256 or 512 elements)"),
    ("rope_quantized", "RoPE part quantized where it should be raw"),
    ("rope_raw", "RoPE part left raw where it should be quantized"),
    ("scale_byte_order", "tile scales in the wrong byte order (big-endian)"),
    ("scale_place", "tile scales in the wrong place (after k_pe)"),
    ("scale_ignored", "scale ignored (the bytes of scale 1)"),
    ("reciprocal", "multiplication by 1/s instead of division by s"),
    ("format_confusion", "e4m3/e5m2 confusion (the other format's encoding)"),
    ("nan_sign", "NaN sign dropped (0x7F for every NaN, as cvt.rn.satfinite)"),
    ("unexplained", "unexplained"),
])
DTYPES = {"ds_mla": ("fp8_ds_mla", "e4m3fn"), "fp8": ("fp8", "e4m3fn"),
          "fp8_e5m2": ("fp8_e5m2", "e5m2")}


def _bf16(x32):
    """fp32 values to bf16 bits, rounded to nearest even (NaN kept quiet)."""
    u = np.ascontiguousarray(x32, F32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x32)
    return np.where(nan, ((u >> 16) | 0x40).astype(np.uint16), r).astype(np.uint16)


def widen(b16):
    return (np.asarray(b16, np.uint32) << 16).view(F32)


def _tile(rng, pattern):
    x = (rng.standard_normal(TILE) * 10.0 ** rng.uniform(-3, 3)).astype(F32)
    if pattern == "zero":
        x = np.where(rng.random(TILE) < 0.5, F32(0), F32(-0.0)).astype(F32)
    elif pattern == "nan":
        x[rng.integers(TILE, size=2)] = np.array([np.nan, -np.nan], F32)
    elif pattern == "all_nan":
        x[:] = np.where(rng.random(TILE) < 0.5, F32(np.nan), -F32(np.nan))
    elif pattern == "inf":
        x[rng.integers(TILE)] = F32(np.inf) * F32(rng.choice([-1.0, 1.0]))
    elif pattern == "tiny":
        x = (rng.standard_normal(TILE) * 1e-39).astype(F32)
    elif pattern == "mid":      # quotients at e4m3's rounding midpoints
        # amaxes (times 2^k) whose s = RN(amax / 448) puts the most bf16
        # quotients within an ulp of a midpoint, where x * RN(1 / s) and
        # x / s round apart (a search over every bf16 amax in [448, 896))
        a = F32(rng.choice([784, 832, 664, 608, 552, 496]) * 2.0 ** rng.integers(-20, 20))
        amax = widen(_bf16(np.array([a], F32)))[0]
        s = F32(amax / F32(448))
        v = fp8_values("e4m3fn")
        mids = ((v[1:] + v[:-1]) / 2)[:-1]
        t = (rng.choice(mids, TILE) * float(s)).astype(F32)
        b = (t.view(np.uint32) >> 16).astype(np.int64) + rng.integers(-1, 2, TILE)
        x = widen(b.astype(np.uint16)) * rng.choice(F32([-1, 1]), TILE)
        x = np.where(np.abs(x) < amax, x, F32(0)).astype(F32)
        x[0] = amax
    elif pattern == "huge":
        x[rng.integers(TILE)] = F32(3e38 * rng.choice([-1.0, 1.0]))
    return x


def midpoint_rows(rng, fmt, scale, rows):
    """rows x 512 bf16 inputs whose quotients by scale lie at and around
    the format's rounding midpoints: the bf16 values either side of m * s
    for every midpoint m (and the overflow threshold), both signs; where a
    division not correctly rounded, or a multiplication by 1/s, shows."""
    v = fp8_values(fmt)
    mids = np.concatenate([(v[1:] + v[:-1]) / 2, [v[-1] + (v[-1] - v[-2]) / 2]])
    t = (mids * float(scale)).astype(F32)
    u = t.view(np.uint32)
    lo = (u >> 16).astype(np.uint16)
    cand = np.concatenate([lo, lo + 1, lo - 1]).astype(np.uint16)
    cand = np.concatenate([cand, cand | 0x8000])
    cand = cand[np.isfinite(widen(cand))]
    pick = rng.choice(cand, rows * RANK, replace=len(cand) < rows * RANK)
    return pick.reshape(rows, RANK).astype(np.uint16)


PATTERNS = ("normal", "normal", "mid", "mid", "zero", "nan", "all_nan", "inf", "tiny", "huge")


class Call:
    def __init__(self, kind, rng, scale, padded, tokens=10):
        self.kind = kind
        self.dtype_name, self.fmt = DTYPES[kind]
        self.entry = DS_BYTES if kind == "ds_mla" else PLAIN_BYTES
        self.stride = self.entry + (16 if padded else 0)
        kv = np.stack([np.concatenate([_tile(rng, p) for p in rng.choice(PATTERNS, 4)])
                       for _ in range(tokens)])
        pe = (rng.standard_normal((tokens, PE)) * 3).astype(F32)
        pe[rng.integers(tokens), rng.integers(PE)] = np.nan
        self.kv_c, self.k_pe = _bf16(kv), _bf16(pe)
        if kind != "ds_mla":    # rows at the rounding midpoints of x / scale
            self.kv_c[:3] = midpoint_rows(rng, self.fmt, scale, 3)
        slots = rng.permutation(SLOTS - 1)[:tokens].astype(np.int64)
        slots[rng.integers(tokens)] = -1
        self.slots = slots
        self.scale = np.array([scale], F32)
        self.poison = int(rng.integers(1, 255))
        n = NB * BS * self.stride
        self.buf = np.full(n + 2 * CANARY, self.poison, np.uint8)
        full = self.buf[CANARY:CANARY + n].reshape(NB, BS, self.stride)
        self.cache = full[:, :, :self.entry]

    def kwargs(self):
        return dict(kv_c=self.kv_c, k_pe=self.k_pe, kv_cache=self.cache,
                    slot_mapping=self.slots, kv_cache_dtype=self.dtype_name, scale=self.scale)

    def mapped(self):
        return [(t, s // BS, s % BS) for t, s in enumerate(self.slots) if s >= 0]

    def entry_offset(self, b, o):
        return CANARY + (b * BS + o) * self.stride


# ---- record models ------------------------------------------------------------------

def _codes(y, fmt, nan=None):
    return R.fp8(y, fmt, "saturate", nan)


def ds_record(kv, pe16, fmt="e4m3fn", divisor=448.0, tile=TILE, mul=False, rcp=False,
              vllm=False, scale_order="<", scale_place="mid", rope="raw", old=None):
    """One DS record (656 bytes) from kv (512 fp32) and pe16 (64 bf16 bits):
    fp8kv's rule by default (fp8kv.h section 9), or a variation."""
    x = kv.reshape(-1, tile)
    if vllm:    # vLLM concat_and_cache_ds_mla: an fmaxf fold from element 0
        a = np.abs(x)
        amax = np.where(np.all(np.isnan(a), axis=1), F32(np.nan), np.nanmax(
            np.where(np.isnan(a), -np.inf, a), axis=1)).astype(F32)
        with np.errstate(all="ignore"):
            s = np.fmax((amax / F32(divisor)).astype(F32), FLT_MIN).astype(F32)
    else:
        amax = R.amax_finite(x)
        with np.errstate(all="ignore"):
            s = np.fmax((amax / F32(divisor)).astype(F32), FLT_MIN).astype(F32)
    if mul or rcp:
        with np.errstate(all="ignore"):
            f = s if mul else (F32(1) / s).astype(F32)
            y = (x * f[:, None]).astype(F32)
    else:
        y = quotient(x, s[:, None])
    codes = _codes(y, fmt, 0x7F if vllm else None).reshape(-1)
    ts = s[:4] if tile <= TILE else s[np.arange(4) * TILE // tile]
    sc = ts[:4].astype(F32).astype(scale_order + "f4").view(np.uint8)
    if rope == "raw":
        pe = np.asarray(pe16, np.uint16).astype("<u2").view(np.uint8)
    else:       # quantized with scale 1 into the first 64 bytes; the rest untouched
        pe = np.concatenate([_codes(widen(pe16), fmt),
                             old[RANK + 16 + PE:] if old is not None else
                             np.zeros(PE, np.uint8)])
    if scale_place == "mid":
        return np.concatenate([codes, sc, pe])
    return np.concatenate([codes, pe, sc])


def plain_record(kv, pe16, fmt, s, how="div", nan=None, rope="quantized"):
    x = np.concatenate([kv, widen(pe16)])
    s = F32(s)
    with np.errstate(all="ignore"):
        if how == "div":
            y = quotient(x, s)
        elif how == "mul":
            y = (x * s).astype(F32)
        elif how == "one":
            y = x
        else:
            y = (x * (F32(1) / s).astype(F32)).astype(F32)
    out = _codes(y, fmt, nan)
    if rope == "raw":
        out[RANK:] = np.asarray(pe16, np.uint16).astype("<u2").view(np.uint8)[:PE]
    return out


def _models(call, t, old):
    """{class: record} of the wrong writers of a token's record."""
    kv, pe = widen(call.kv_c[t]), call.k_pe[t]
    if call.kind == "ds_mla":
        out = {"vllm_nan_inf": ds_record(kv, pe, vllm=True),
               "inverted_scale": ds_record(kv, pe, mul=True),
               "reciprocal": ds_record(kv, pe, rcp=True),
               "rope_quantized": ds_record(kv, pe, rope="quantized", old=old),
               "scale_byte_order": ds_record(kv, pe, scale_order=">"),
               "scale_place": ds_record(kv, pe, scale_place="end")}
        for d in (240.0, 224.0):
            out["tile_divisor@%g" % d] = ds_record(kv, pe, divisor=d)
        for tl in (64, 256, 512):
            out["tile_boundaries@%d" % tl] = ds_record(kv, pe, tile=tl)
        return out
    s = call.scale[0]
    other = "e5m2" if call.fmt == "e4m3fn" else "e4m3fn"
    return {"inverted_scale": plain_record(kv, pe, call.fmt, s, "mul"),
            "scale_ignored": plain_record(kv, pe, call.fmt, s, "one"),
            "reciprocal": plain_record(kv, pe, call.fmt, s, "rcp"),
            "rope_raw": plain_record(kv, pe, call.fmt, s, rope="raw"),
            "format_confusion": plain_record(kv, pe, other, s),
            "nan_sign": plain_record(kv, pe, call.fmt, s, nan=0x7F)}


def _expected_model(call):
    """The whole buffer as conform models fp8kv's rule (held to the golden
    path on every call: a harness check)."""
    buf = call.buf.copy()
    for t, b, o in call.mapped():
        kv, pe = widen(call.kv_c[t]), call.k_pe[t]
        rec = ds_record(kv, pe) if call.kind == "ds_mla" else \
            plain_record(kv, pe, call.fmt, call.scale[0])
        off = call.entry_offset(b, o)
        buf[off:off + call.entry] = rec
    return buf


def _golden(call):
    from .. import golden, typed
    fn = golden.concat_and_cache_mla
    kw = dict(kv_c=typed(call.kv_c, "bf16"), k_pe=typed(call.k_pe, "bf16"),
              kv_cache=call.cache, slot_mapping=call.slots, format=call.fmt)
    if call.kind == "ds_mla":
        kw.update(kind="ds_mla")
    else:
        kw.update(kind="plain", scale="tensor", k_scale=call.scale)
    res = fn(**kw)
    buf = call.buf.copy()
    n = NB * BS * call.stride
    full = buf[CANARY:CANARY + n].reshape(NB, BS, call.stride)
    full[:, :, :call.entry] = np.asarray(res.kv_cache).view(np.uint8)
    return buf


# ---- the run ------------------------------------------------------------------------

class MlaReport:
    def __init__(self, target, kind):
        self.target, self.kind = target, kind
        self.verdict, self.error = CLEAN, None
        self.calls = self.bytes_compared = self.bytes_differing = 0
        self.classes = collections.OrderedDict()
        self.details = {}   # class: the variants seen (a divisor, a tile size)
        self.first = None
        self.golden = "fp8kv.golden"

    def add(self, cls, n):
        if n:
            self.classes[cls] = self.classes.get(cls, 0) + int(n)

    def verdict_line(self):
        head = "%s [mla %s]: %s" % (self.target, self.kind, self.verdict.upper())
        if self.verdict == FAILED:
            return head + " (%s)" % self.error
        if self.verdict == CLEAN:
            return head + " (%d calls, %d bytes, every one the golden path's)" % (
                self.calls, self.bytes_compared)
        return head + " (%d of %d bytes differ: %s)" % (
            self.bytes_differing, self.bytes_compared, ", ".join(self.classes))

    def table(self):
        lines = ["  %-17s %7d bytes  %s%s" % (
            c, n, CLASSES[c], (": " + ", ".join(sorted(self.details[c], key=float)))
            if c in self.details else "") for c, n in self.classes.items()]
        if self.first:
            lines.append("  first differing record: " + self.first)
        return lines

    def as_dict(self):
        return dict(target=self.target, kind=self.kind, verdict=self.verdict,
                    error=self.error, calls=self.calls, bytes_compared=self.bytes_compared,
                    bytes_differing=self.bytes_differing, classes=dict(self.classes),
                    details={c: sorted(v) for c, v in self.details.items()},
                    first_difference=self.first, golden=self.golden)


def decode_ds(rec):
    """A DS record in words: tile scales, the first codes of each tile, k_pe."""
    rec = np.asarray(rec, np.uint8)
    sc = rec[RANK:RANK + 16].view("<f4")
    vals = R.fp8_value(rec[:RANK], "e4m3fn")
    pe = widen(rec[RANK + 16:].view("<u2"))
    return "scales [%s], tile heads [%s], k_pe[:4] [%s]" % (
        " ".join("%.9g" % v for v in sc),
        "; ".join(" ".join("%g" % v for v in vals[i * TILE:i * TILE + 4]) for i in range(4)),
        " ".join("%g" % v for v in pe[:4]))


def _plain_text(call, t, rec, d):
    i = int(np.flatnonzero(d)[0])
    x = widen(call.kv_c[t])[i] if i < RANK else widen(call.k_pe[t])[i - RANK]
    return "element %d (input %.9g, scale %.9g): 0x%02x = %g" % (
        i, x, call.scale[0], rec[i], R.fp8_value(rec[i:i + 1], call.fmt)[0])


def run(writer, kind="ds_mla", seed=0, calls=4, target=None, arrays="numpy", device="cpu"):
    """Holds an MLA writer with vLLM's signature to the golden path over
    `calls` calls of kind "ds_mla", "fp8" or "fp8_e5m2"; arrays "torch"
    passes tensors on device.  Returns an MlaReport."""
    if kind not in DTYPES:
        raise UsageError("kind: %r is not one of %s" % (kind, ", ".join(DTYPES)))
    rep = MlaReport(target or getattr(writer, "__name__", str(writer)), kind)
    rng = np.random.default_rng(seed)
    scales = [1.0, 7.0, 0.37, 1.7, 3.1e-3, 12.5]
    for i in range(calls):
        call = Call(kind, rng, scales[i % len(scales)], padded=(i % 2 == 1))
        ins = [a.copy() for a in (call.kv_c, call.k_pe, call.slots, call.scale)]
        expected = _golden(call)
        if not np.array_equal(expected, _expected_model(call)):
            raise HarnessError("conform's model of the %s record differs from the golden "
                               "path" % kind)
        try:
            records.invoke(writer, call.kwargs(), [call.buf], arrays, device)
        except Exception as e:
            rep.verdict, rep.error = FAILED, "call %d raised %s: %s" % (i, type(e).__name__, e)
            return rep
        rep.calls += 1
        for a, b in zip(ins, (call.kv_c, call.k_pe, call.slots, call.scale)):
            rep.add("input_modified", np.count_nonzero(a.view(np.uint8) != b.view(np.uint8)))
        rep.bytes_compared += expected.size
        diff = expected != call.buf
        rep.bytes_differing += int(diff.sum())
        if diff.any():
            _classify(call, expected, diff, rep)
    if rep.bytes_differing or rep.classes:
        rep.verdict = DIFFERENCES
    return rep


def _classify(call, expected, diff, rep):
    buf, E = call.buf, call.entry
    explained = np.zeros_like(diff)
    explained[:CANARY] = explained[len(buf) - CANARY:] = False
    rep.add("out_of_bounds", diff[:CANARY].sum() + diff[len(buf) - CANARY:].sum())
    explained[:CANARY] = explained[len(buf) - CANARY:] = True
    # where records went: every mapped token's expected record, searched
    offs = [call.entry_offset(b, o) for b in range(NB) for o in range(BS)]
    where = {}
    for off in offs:
        where.setdefault(buf[off:off + E].tobytes(), []).append(off)
    moved, placed = set(), {}
    for t, b, o in call.mapped():
        off = call.entry_offset(b, o)
        rec = expected[off:off + E]
        if np.array_equal(buf[off:off + E], rec):
            continue
        flat = CANARY + (b * BS + o) * E
        if call.stride != E and np.array_equal(buf[flat:flat + E], rec):
            placed[flat] = ("cache_strides", rec)
            moved.add(off)
            continue
        other = [p for p in where.get(rec.tobytes(), []) if p != off]
        if other:
            placed[other[0]] = ("wrong_slot", rec)
            moved.add(off)
    for p, (cls, rec) in placed.items():   # the bytes the moved records explain
        hit = diff[p:p + E] & ~explained[p:p + E] & (buf[p:p + E] == rec)
        rep.add(cls, hit.sum())
        explained[p:p + E] |= hit
    mapped_offs = {call.entry_offset(b, o): t for t, b, o in call.mapped()}
    # records in their place
    tally = collections.Counter()
    per_token = []
    for off, t in mapped_offs.items():
        d = diff[off:off + E] & ~explained[off:off + E]
        if not d.any():
            continue
        got = buf[off:off + E]
        # an entry left as it was (a few bytes equal to the poison by
        # chance are left to the models)
        if np.all(got[d] == call.poison) and (d.sum() >= 8 or np.all(got == call.poison)):
            rep.add("not_written", d.sum())
            explained[off:off + E] |= d
            continue
        models = _models(call, t, got)
        fits = {m: d & (got == r) for m, r in models.items()}
        per_token.append((off, d, fits))
        for m, f in fits.items():
            tally[m] += int(f.sum())
        if rep.first is None:
            rep.first = "token %d, slot %d: writer %s; fp8kv %s" % (
                t, call.slots[t],
                decode_ds(got) if call.kind == "ds_mla" else _plain_text(call, t, got, d),
                decode_ds(expected[off:off + E]) if call.kind == "ds_mla" else
                _plain_text(call, t, expected[off:off + E], d))
    # as few models as cover the bytes, the largest first
    left = {off: d.copy() for off, d, _ in per_token}
    while True:
        best, n = None, 0
        for m in tally:
            k = sum(int((left[off] & fits[m]).sum()) for off, _, fits in per_token)
            if k > n:
                best, n = m, k
        if best is None:
            break
        cls, _, variant = best.partition("@")
        rep.add(cls, n)
        if variant:
            rep.details.setdefault(cls, set()).add(variant)
        for off, _, fits in per_token:
            left[off] &= ~fits[best]
            explained[off:off + E] |= fits[best]
        del tally[best]
    for off, d, _ in per_token:
        nw = left[off] & (buf[off:off + E] == call.poison)
        rep.add("not_written", nw.sum())
        rep.add("unexplained", (left[off] & ~nw).sum())
        explained[off:off + E] |= left[off]
    # outside the mapped entries: the padding's row (slot -1 as an index),
    # else stray
    rest = diff & ~explained
    for off in mapped_offs:
        rest[off:off + E] = False
    last = call.entry_offset(NB - 1, BS - 1)
    if (call.slots < 0).any():
        rep.add("padding_written", rest[last:last + call.stride].sum())
        rest[last:last + call.stride] = False
    rep.add("stray_writes", rest.sum())
