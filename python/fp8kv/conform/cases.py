# SPDX-License-Identifier: MIT
"""The case matrix: every call fp8kv.conform makes a writer do.

plan() lists the calls of a level as Spec tuples (cheap, so that a progress
bar knows the total); fp8kv.conform.build makes one call's arrays, the same
for the same seed.  The values come in streams (fp8kv.conform.streams).

What varies from call to call, so that a writer blind to one of them is
seen (V-CONFORM-SHAPES):
  shape      heads (1 to 16), head dims 64, 80, 96, 128, 192, 256 (key and
             value dims that differ), block sizes 1, 16, 32, 64, 128, 256;
  layout     NHD or HND caches; at most one layout variation per call, so
             that a layout fault is told apart (V-CONFORM-LAYOUT-FIRST):
             inputs padded between tokens, or between heads and tokens;
             caches padded between blocks, or between rows;
  placement  padding slots, a second (SWA) mapping with padding entries,
             out-of-range and duplicate slots;
  extras     once per writer: a call past 4096 tokens, one with slots past
             2^16, and where memory allows one with slots past 2^31 and one
             whose byte offsets pass 2^31 and 2^32 (V-CONFORM-SPARSE).
Every value of every claim reaches the writer in a call without
out-of-range slots, so that a writer refusing such calls is still seen
(V-CONFORM-REFUSE).
"""

import collections

# Scales: non-powers of two, tiny (one where m * s is an fp32 subnormal),
# huge and negative, and every decade between; full adds more of each and
# a subnormal scale.
QUICK_SCALES = (0.37, 1 / 3, 1e-3, -2.5, 1.0, 3.0e4, 1.5e-38, 0.05, 0.2, 0.013, 7.0, 250.0)
FULL_SCALES = QUICK_SCALES + (0.5, 2.0 ** -10, 0.1, 3.0, 0.7, 6.1e-5, -0.37, -1e-3, 0.029,
                              1e4, 3.4e5, 1e30, 2.0 ** -126, 1e-40, 0.011, 0.3)
SPECIAL_SCALES = {"quick": (1.0, -0.37, 1e-3), "full": (1.0, -0.37, 1e-3, 0.37, 3.0e4,
                                                         1.5e-38, -2.5, 1e-40, 0.02)}
PATTERN_SCALES = {"quick": ((0.37, 1.0),), "full": ((0.37, 1.0), (1 / 3, -2.5),
                                                     (1e-3, 3.0e4))}

SCALE_MODES = ("one", "tensor", "head", "token_head")

# token status
VALID, PAD, SWA_PAD, OUT_OF_RANGE, DUPLICATE = range(5)
STATUS_NAMES = ("valid", "padding", "SWA padding", "out of range", "duplicate")

Shape = collections.namedtuple("Shape", "heads dk dv block_size")
Shape.__doc__ = "A call's heads, key and value head dims, and block size."

# The rotation of shapes; the first is the shape of every call before the
# shapes varied.  Between them: every block size and head dim of the matrix.
SHAPES = (Shape(4, 64, 64, 16), Shape(2, 128, 128, 64), Shape(8, 80, 80, 1),
          Shape(1, 96, 96, 128), Shape(3, 192, 128, 256), Shape(16, 256, 256, 32),
          Shape(5, 64, 96, 16), Shape(2, 96, 80, 64))

# Once per writer: (kind, shape, tokens or None); the big kinds only where
# the arrays can hold their caches (sparse host memory, or enough device
# memory; fp8kv.conform.executor says).
EXTRAS = (("long", Shape(2, 64, 64, 16), 4500), ("wide", Shape(1, 16, 16, 64), None),
          ("huge", Shape(1, 8, 8, 256), None), ("offset", Shape(6, 128, 128, 16), None))
BIG = ("huge", "offset")

# Layout variations, one per call at most: inputs in a larger buffer with
# tokens (or tokens and heads) apart; caches with blocks (or rows) apart.
VARIATIONS = (None, "inputs:heads", "caches:rows", "inputs:tokens", "caches:blocks", None)

Spec = collections.namedtuple(
    "Spec", "index fmt overflow in_dtype values mode k_scales v_scales layout swa strided "
    "padded out_of_range duplicates index_type shape extra tokens")
Spec.__doc__ = """One call of the matrix: its format, overflow mode, input dtype,
value kind, scale mode and scales (one per group: one for "tensor", one per
head for "head", none for "one" and "token_head"), layout, layout variation
(strided: None, "tokens" or "heads"; padded: None, "blocks" or "rows"),
placement, shape, extra (None or a kind of EXTRAS) and token count (None:
what the streams need)."""


class Claims:
    """What a writer says it does; the matrix covers exactly this."""

    def __init__(self, formats, inputs, scales, layouts, overflows, swa, out_of_range,
                 index_types=("i64",), strides=("inputs", "caches"), kv_dims_differ=True):
        self.formats, self.inputs, self.scales = tuple(formats), tuple(inputs), tuple(scales)
        self.layouts, self.overflows = tuple(layouts), tuple(overflows)
        self.swa, self.out_of_range = bool(swa), bool(out_of_range)
        self.index_types, self.strides = tuple(index_types), tuple(strides)
        self.kv_dims_differ = bool(kv_dims_differ)

    def as_dict(self):
        return dict(formats=list(self.formats), inputs=list(self.inputs),
                    scales=list(self.scales), layouts=list(self.layouts),
                    overflow=list(self.overflows), swa=self.swa,
                    out_of_range=self.out_of_range, index_types=list(self.index_types),
                    strides=list(self.strides), kv_dims_differ=self.kv_dims_differ)


def _cycle(values, n):
    values = list(values)
    return tuple(values[i % len(values)] for i in range(n))


class _Planner:
    def __init__(self, claims, level):
        self.claims, self.level = claims, level
        self.specs = []
        self.rotation = 0
        self.variations = [v for v in VARIATIONS if v is None or v.split(":")[0] in
                           claims.strides]

    def shape(self, i):
        s = SHAPES[i % len(SHAPES)]
        return s if self.claims.kv_dims_differ else s._replace(dv=s.dk)

    def next_shape(self):
        return self.shape(self.rotation)

    def add(self, fmt, overflow, in_dtype, values, mode, k_scales, v_scales, shape=None,
            extra=None, tokens=None):
        c, i = self.claims, self.rotation
        self.rotation += 1
        variation = self.variations[i % len(self.variations)] if extra is None else None
        kind, _, how = (variation or "").partition(":")
        self.specs.append(Spec(
            len(self.specs), fmt, overflow, in_dtype, values, mode, k_scales, v_scales,
            layout=c.layouts[i % len(c.layouts)],
            swa=c.swa and i % 2 == 0,
            strided=how if kind == "inputs" else None,
            padded=how if kind == "caches" else None,
            out_of_range=c.out_of_range and i % 4 in (0, 1),
            duplicates=i % 3 == 2,
            index_type="i64" if extra == "huge" else c.index_types[(i // 2) % len(c.index_types)],
            shape=shape or self.shape(i), extra=extra, tokens=tokens))

    def scaled(self, fmt, overflow, in_dtype, values, mode, scales):
        """Calls covering `scales` in a scale mode: two per call in "tensor"
        (k, v), two per head in "head"; "one" and "token_head" take none."""
        if mode == "tensor":
            s = list(scales) + list(scales[:1]) * (len(scales) % 2)
            for i in range(0, len(s), 2):
                self.add(fmt, overflow, in_dtype, values, mode, (s[i],), (s[i + 1],))
        elif mode == "head":
            s, at = list(scales), 0
            while at < len(s):
                h = self.next_shape().heads
                take = _cycle(s[at:] + s[:at], 2 * h)
                self.add(fmt, overflow, in_dtype, values, mode, take[:h], take[h:])
                at += 2 * h
        else:
            self.add(fmt, overflow, in_dtype, values, mode, (), ())

    def patterns(self, fmt, overflow, n):
        c, level = self.claims, self.level
        for k, in_dtype in enumerate(d for d in ("bf16", "f16") if d in c.inputs):
            modes = c.scales if level == "full" else \
                [c.scales[(len(self.specs) + n + k) % len(c.scales)]]
            for mode in modes:
                if mode == "tensor":
                    for a, b in PATTERN_SCALES[level]:
                        self.add(fmt, overflow, in_dtype, "patterns", mode, (a,), (b,))
                elif mode == "head":
                    for pair in PATTERN_SCALES[level]:
                        h = self.next_shape().heads
                        self.add(fmt, overflow, in_dtype, "patterns", mode, _cycle(pair, h),
                                 _cycle(pair[::-1], h))
                else:
                    self.add(fmt, overflow, in_dtype, "patterns", mode, (), ())

    def f32(self, fmt, overflow):
        c, level = self.claims, self.level
        scaled = [m for m in ("tensor", "head") if m in c.scales] or ["one"]
        modes = scaled if level == "full" else [scaled[len(self.specs) % len(scaled)]]
        for values, scales in (("midpoints", QUICK_SCALES if level == "quick"
                                else FULL_SCALES), ("specials", SPECIAL_SCALES[level])):
            for mode in modes:
                self.scaled(fmt, overflow, "f32", values, mode,
                            scales if mode != "one" else (1.0,))
        if "token_head" in c.scales:
            self.add(fmt, overflow, "f32", "random", "token_head", (), ())

    def extras(self, big):
        """The once-per-writer calls, in the first claimed format, input and
        scale mode (each a plain tensor scale where one is claimed)."""
        c = self.claims
        fmt, overflow, in_dtype = c.formats[0], c.overflows[0], c.inputs[-1]
        mode = next((m for m in ("tensor", "head", "one", "token_head") if m in c.scales))
        for kind, shape, tokens in EXTRAS:
            if kind in BIG and kind not in big:
                continue
            shape = shape._replace(dv=shape.dk)
            k = _cycle((0.37,), shape.heads if mode == "head" else 1) if mode in (
                "tensor", "head") else ()
            v = _cycle((3.0,), len(k)) if k else ()
            self.add(fmt, overflow, in_dtype, "random", mode, k, v, shape=shape, extra=kind,
                     tokens=tokens)


def _every_claim_in_range(specs, claims):
    """Clears out_of_range on the first call of each claimed value (and each
    format and input pair) that has only calls with out-of-range slots (the
    extras, of random values, do not count)."""
    keys = [lambda s: (s.fmt, s.in_dtype), lambda s: s.mode, lambda s: s.layout,
            lambda s: s.overflow, lambda s: s.index_type]
    for key in keys:
        first = {}
        for s in specs:
            if s.extra is not None:
                continue
            k = key(s)
            if k not in first:
                first[k] = s.index
            if not s.out_of_range:
                first[k] = None
        for k, i in first.items():
            if i is not None and specs[i].out_of_range:
                specs[i] = specs[i]._replace(out_of_range=False)
    return specs


def plan(claims, level, big=()):
    """The Specs of a level for a writer's claims, in call order; big: the
    kinds of BIG calls the arrays can hold."""
    if level not in ("quick", "full"):
        raise ValueError("level: must be 'quick' or 'full', not %r" % (level,))
    p = _Planner(claims, level)
    for fmt in claims.formats:
        for n, overflow in enumerate(claims.overflows):
            p.patterns(fmt, overflow, n)
            if "f32" in claims.inputs:
                p.f32(fmt, overflow)
    p.extras(big)
    return _every_claim_in_range(p.specs, claims)
