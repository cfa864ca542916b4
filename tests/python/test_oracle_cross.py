# SPDX-License-Identifier: MIT
"""Two models of fp8kv.h sections 5b, 5c, 8 and 9 written apart, held to
each other byte for byte: the C oracle (validate/oracle_group.c, which
searches codes and powers of two, through tests/oracle_group_driver) and
the Python contract model (contract_ref.py, which rounds rationals by
formula).  Random and adversarial elements, scales, rows, scale addresses,
MLA entries and DeepSeek records; then planted faults in the Python model,
each of which the same cases must expose."""

import os
import subprocess
from fractions import Fraction

import numpy as np
import pytest

import contract_ref as C
import recipes_exact as X
import recipes_ref as R

FORMATS = ("e4m3fn", "e4m3fnuz", "e5m2", "e5m2fnuz", "e2m1", "int8")
SPECIALS = [0, X.F32_SIGN, X.F32_INF, X.F32_INF | X.F32_SIGN, X.QNAN, X.QNAN | X.F32_SIGN,
            0x7F800001, X.F32_MAX, X.F32_MAX | X.F32_SIGN, 1, 0x80000001, 0x007FFFFF,
            X.F32_MIN_NORMAL]


@pytest.fixture(scope="module")
def driver():
    """The driver built by make check ($abs_top_builddir), or
    FP8KV_ORACLE_DRIVER; outside make check the test is skipped."""
    path = os.environ.get("FP8KV_ORACLE_DRIVER")
    if not path and os.environ.get("abs_top_builddir"):
        path = os.path.join(os.environ["abs_top_builddir"], "tests", "oracle_group_driver")
    if not path:
        pytest.skip("the C oracle's driver is built by make check")
    assert os.access(path, os.X_OK), f"{path}: the driver was not built"
    return path


def ask(driver, lines):
    out = subprocess.run([driver], input="\n".join(lines) + "\n", capture_output=True,
                         text=True, check=True, timeout=120).stdout.splitlines()
    assert len(out) == len(lines)
    return out


def hexbytes(bs):
    return "".join(f"{int(b) & 0xFF:02x}" for b in bs) or "-"


def answer(fn):
    """fn()'s answer line, or ERR where the model refuses the case."""
    try:
        return fn()
    except ValueError:
        return "ERR"


def compare(driver, cases):
    """cases: (driver line, Python answer thunk).  Returns the mismatches."""
    got = ask(driver, [line for line, _ in cases])
    return [(line, g, w) for (line, _), g, w in
            zip(cases, got, [answer(fn) for _, fn in cases]) if g != w]


def first_mismatch(got, cases):
    """The index of the first case whose Python answer is not got's, or None."""
    return next((i for i, ((_, fn), g) in enumerate(zip(cases, got)) if answer(fn) != g), None)


def assert_agree(driver, cases):
    bad = compare(driver, cases)
    assert not bad, f"{len(bad)} of {len(cases)} cases differ; first: " + \
        "; ".join(f"{line[:100]!r}: C {g[:80]!r}, Python {w[:80]!r}" for line, g, w in bad[:3])


# ---- the values cases are made of --------------------------------------------

def ulps(u, n=2):
    """u and its n fp32 neighbours either side (same sign; finite)."""
    return [v for v in range(u - n, u + n + 1) if 0 <= v < X.F32_INF]


def f32(v):
    return X.rn_f32(Fraction(v))


def grid(fmt):
    """The positive finite values of an element format, ascending."""
    if fmt == "int8":
        return [Fraction(k) for k in range(128)]
    f = C.ELEMENTS[fmt]
    vals = set()
    for code in range(1 << (f.ebits + f.mbits)):
        d = f.decode(code)
        if d is not None and d[1] is not None:
            vals.add(d[1])
    return sorted(vals)


def thresholds(fmt):
    """Every rounding boundary of a format: the midpoints, and the one past
    max (max + ulp(max) / 2; 127.5 for int8)."""
    g = grid(fmt)
    g.append(g[-1] + (g[-1] - g[-2]))
    return [(a + b) / 2 for a, b in zip(g, g[1:])] + g


def element_values(fmt, rng, n_random):
    vals = list(SPECIALS)
    for t in thresholds(fmt):
        for u in ulps(f32(t)):
            vals += [u, u | X.F32_SIGN]
    vals += [int(b) for b in rng.integers(0, 1 << 32, n_random, dtype=np.uint64)]
    return vals


# ---- elements ---------------------------------------------------------------

def test_e2m1_elements(driver, rng):
    cases = [(f"e2m1 {y:x}", lambda y=y: "{:x} {:d}".format(*C.e2m1_code(y)))
             for y in element_values("e2m1", rng, 3000)]
    assert_agree(driver, cases)


def test_int8_elements(driver, rng):
    cases = [(f"int8 {y:x} {r}", lambda y=y, r=r: "{:x} {:d}".format(*C.int8_code(y, r)))
             for y in element_values("int8", rng, 1500) for r in ("rne", "trunc")]
    assert_agree(driver, cases)


# ---- scales -----------------------------------------------------------------

EDGE_EXPONENTS = (-149, -140, -136, -133, -130, -129, -128, -127, -126, -125, -124, -122,
                  -120, -100, -60, -20, -9, -8, -3, -2, -1, 0, 1, 2, 3, 8, 20, 60, 100,
                  120, 124, 125, 126, 127)
_AMAX = {}


def amax_values(fmt, rng):
    """amax at the rules' edges: powers of two and max * 2^k with their
    neighbours (subnormal quotients, the floor, the clamps), 0, FLT_MAX,
    and random finite values; computed once per format."""
    if fmt not in _AMAX:
        mx = C.fmt_max(fmt)
        vals = [0, 1, 2, 0x007FFFFF, X.F32_MIN_NORMAL, X.F32_MAX, 0x7F7FFFFE]
        for k in EDGE_EXPONENTS:
            vals += ulps(f32(X.pow2(k)), 1)
            if X.pow2(-149) <= mx * X.pow2(k) <= X.magnitude(X.F32_MAX):
                vals += ulps(f32(mx * X.pow2(k)), 1)
        vals += [int(b) & 0x7F7FFFFF for b in rng.integers(0, 1 << 31, 40)]
        _AMAX[fmt] = sorted(set(v for v in vals if X.is_finite(v)))
    return _AMAX[fmt]


G_VALUES = [0x3F800000, f32(Fraction(1, 10)),
            f32(Fraction(448 * 6, 1000)), 1, 0x00400000, f32(1e30), X.F32_MAX, 0, X.F32_SIGN,
            0xBF800000, X.F32_INF, X.QNAN, 0x40800000, f32(Fraction(7, 3))]


def scale_line(rule, fmt, ovf, rnd, div, floor, g, amax):
    return f"scale {rule} {fmt} {ovf} {rnd} {div:x} {floor:x} {g:x} {amax:x}"


def scale_answer(rule, fmt, div, floor, g, amax):
    sc = C.group_scale(rule, fmt, amax, div, floor, g)
    return f"{0 if sc.zero else sc.s:x} {int(sc.zero)} {hexbytes(sc.stored)}"


def scale_cases(rng):
    cases = []
    for fmt in FORMATS:
        rules = ["f32"] + (["e8m0_floor", "e8m0_rceil"] if fmt != "int8" else []) + \
            (["nvfp4"] if fmt == "e2m1" else [])
        for rule in rules:
            params = [(0, 0, 0)]
            if rule == "f32":
                params += [(f32(224), 0, 0), (0, f32(1e-6), 0), (1, 0, 0), (f32(0.3), f32(2), 0)]
            if rule == "nvfp4":
                params = [(0, 0, g) for g in G_VALUES]
            for div, floor, g in params:
                for amax in amax_values(fmt, rng):
                    cases.append((scale_line(rule, fmt, "saturate", "rne", div, floor, g, amax),
                                  lambda a=(rule, fmt, div, floor, g, amax): scale_answer(*a)))
    return cases


def test_group_scales(driver, rng):
    assert_agree(driver, scale_cases(rng))


# ---- rows -------------------------------------------------------------------

def widen_back(u, dtype):
    """Input bits of dtype nearest below fp32 u (truncated; f16 via the
    exact value), for adversarial 16-bit rows."""
    if dtype == "f32":
        return u
    if dtype == "bf16":
        return u >> 16
    v = np.array([u], dtype=np.uint32).view(np.float32)
    with np.errstate(over="ignore"):
        return int(v.astype(np.float16).view(np.uint16)[0])


def adversarial_row(rule, fmt, dtype, n, gsize, rng, g):
    """A row whose groups hold an amax, elements at the format's rounding
    boundaries times the group's scale (and a neighbour), specials and
    random values."""
    bounds = thresholds(fmt)
    bits = []
    for _ in range(n // gsize):
        amax = int(rng.choice(amax_values(fmt, rng)[::7])) if rng.random() < 0.3 else \
            f32(Fraction(float(rng.uniform(0.01, 1000))))
        sc = C.group_scale(rule, fmt, amax, 0, 0, g)
        grp = [amax]
        while len(grp) < gsize:
            pick = rng.random()
            if pick < 0.5 and not sc.zero and X.is_finite(sc.s) and X.magnitude(sc.s):
                t = bounds[int(rng.integers(len(bounds)))] * X.magnitude(sc.s)
                u = f32(t) + int(rng.integers(-1, 2))
                u = u if 0 <= u <= amax else amax
                grp.append(u | (X.F32_SIGN if rng.random() < 0.5 else 0))
            elif pick < 0.6:
                grp.append(int(rng.choice(SPECIALS)))
            else:
                grp.append(int(rng.integers(0, 1 << 32)) & 0xBFFFFFFF)
        rng.shuffle(grp)
        bits += grp
    return [widen_back(u, dtype) for u in bits]


def row_line(rule, fmt, dtype, ovf, rnd, div, floor, g, gsize, bits):
    return (f"row {rule} {fmt} {ovf} {rnd} {div:x} {floor:x} {g:x} {dtype} {gsize:x} "
            f"{len(bits):x} " + " ".join(f"{b:x}" for b in bits))


def row_answer(rule, fmt, dtype, ovf, rnd, div, floor, g, gsize, bits):
    r = C.group_row(rule, fmt, bits, dtype, gsize, saturate=ovf == "saturate", rounding=rnd,
                    divisor=div, floor=floor, g=g)
    return f"{hexbytes(r.codes)} {hexbytes(r.scales)} {r.overflows:x} {r.nans:x} {r.amax:x}"


def row_cases(rng, count):
    cases = []
    combos = [(rule, fmt) for fmt in FORMATS for rule in C.RULES
              if not (rule != "f32" and fmt == "int8") and not (rule == "nvfp4" and fmt != "e2m1")]
    for k in range(count):
        rule, fmt = combos[k % len(combos)]
        dtype = ("f32", "bf16", "f16")[(k // len(combos)) % 3]
        gsize = 16 if rule == "nvfp4" else int(rng.choice([16, 32, 64]))
        n = gsize * int(rng.integers(1, 3))
        ovf = "nonsaturating" if fmt in C.FP8 and rng.random() < 0.4 else "saturate"
        rnd = str(rng.choice(["rne", "trunc"])) if fmt == "int8" else "rne"
        div = floor = g = 0
        if rule == "f32" and rng.random() < 0.3:
            div = int(rng.choice([f32(224), f32(Fraction(int(rng.integers(1, 1000)), 7))]))
        if rule == "f32" and rng.random() < 0.3:
            floor = int(rng.choice([f32(1e-6), f32(Fraction(1, 3)), 1]))
        if rule == "nvfp4":
            g = int(rng.choice(G_VALUES))
        bits = adversarial_row(rule, fmt, dtype, n, gsize, rng, g)
        a = (rule, fmt, dtype, ovf, rnd, div, floor, g, gsize, bits)
        cases.append((row_line(*a), lambda a=a: row_answer(*a)))
    # what both refuse: rules on formats they do not take, bad group sizes
    for a in (("nvfp4", "e4m3fn", "f32", "saturate", "rne", 0, 0, 1, 16, [0] * 16),
              ("nvfp4", "e2m1", "f32", "saturate", "rne", 0, 0, 1, 32, [0] * 32),
              ("e8m0_floor", "int8", "f32", "saturate", "rne", 0, 0, 0, 16, [0] * 16),
              ("f32", "e4m3fn", "f32", "saturate", "trunc", 0, 0, 0, 16, [0] * 16),
              ("f32", "e2m1", "f32", "nonsaturating", "rne", 0, 0, 0, 16, [0] * 16),
              ("f32", "int8", "f32", "saturate", "rne", 0xBF800000, 0, 0, 16, [0] * 16),
              ("f32", "int8", "f32", "saturate", "rne", 0, X.F32_INF, 0, 16, [0] * 16),
              ("f32", "e4m3fn", "f32", "saturate", "rne", 0, 0, 0, 16, [0] * 24)):
        cases.append((row_line(*a), lambda a=a: row_answer(*a)))
    return cases


def test_group_rows(driver, rng):
    assert_agree(driver, row_cases(rng, 240))


def test_nvfp4_divides_where_flashinfer_multiplies(driver):
    """A found block: g = 0x3ed6d15d, amax = RN(6 g) gives sf = 1 and s = g;
    x = 0x3ea11d05 lies within an ulp of the midpoint 0.75 s, so x / s gives
    code 1 and FlashInfer's x * RN(1 / s) code 2.  Both models divide."""
    g, x = 0x3ED6D15D, 0x3EA11D05
    bits = [X.f32_mul(C.SIX, g), x] + [0] * 14
    line = row_line("nvfp4", "e2m1", "f32", "saturate", "rne", 0, 0, g, 16, bits)
    want = row_answer("nvfp4", "e2m1", "f32", "saturate", "rne", 0, 0, g, 16, bits)
    assert ask(driver, [line]) == [want]
    ours, sf = R.nvfp4_fp8kv(bits, "f32", g)
    theirs, sf_fi = R.nvfp4_flashinfer(bits, "f32", g)
    assert sf == sf_fi == 0x38
    assert X.unpack_e2m1(ours)[1] == 0x1 and X.unpack_e2m1(theirs)[1] == 0x2


# ---- scale addresses ------------------------------------------------------------

def test_scale_addresses(driver, rng):
    cases = []
    for _ in range(500):
        st = [int(v) for v in rng.integers(0, 5000, 4)]
        il = int(rng.choice([0, 0, 2, 4, 8]))
        si = int(rng.integers(0, 64)) if il else 0
        idx = [int(v) for v in rng.integers(0, 300, 4)]
        line = "addr " + " ".join(f"{v:x}" for v in st + [il, si] + idx)
        cases.append((line, lambda st=st, il=il, si=si, idx=idx:
                      str(C.scale_index(*idx, *st, interleave=il, stride_interleave=si))))
    assert_agree(driver, cases)


# ---- MLA ------------------------------------------------------------------------

def random_inputs(rng, n, dtype, special_rate=0.05):
    width = 32 if dtype == "f32" else 16
    bits = [int(b) for b in rng.integers(0, 1 << width, n, dtype=np.uint64)]
    for i in range(n):
        if rng.random() < 0.6:   # ordinary magnitudes
            v = float(rng.standard_normal() * 10.0 ** rng.integers(-4, 4))
            u = f32(Fraction(v))
            bits[i] = widen_back(u, dtype)
        if rng.random() < special_rate:
            bits[i] = widen_back(int(rng.choice(SPECIALS)), dtype)
    return bits


def test_mla_plain_entries(driver, rng):
    cases = []
    for k in range(120):
        dtype = ("bf16", "f16", "f32")[k % 3]
        cache = str(rng.choice(list(C.FP8) + [dtype]))
        rank, pe = int(rng.integers(1, 40)), int(rng.integers(0, 12))
        kv, rope = random_inputs(rng, rank, dtype), random_inputs(rng, pe, dtype)
        scaled = rng.random() < 0.7
        s = int(rng.choice([f32(Fraction(int(rng.integers(1, 10 ** 6)), 1000)), 1, X.F32_SIGN,
                            0, X.F32_INF, 0xBF000000])) if scaled else 0
        ovf = str(rng.choice(["saturate", "nonsaturating"]))
        line = (f"plain {dtype} {cache} {ovf} {int(scaled):x} {s:x} {rank:x} {pe:x} " +
                " ".join(f"{b:x}" for b in kv + rope))
        cases.append((line, lambda a=(kv, rope, dtype, cache, s if scaled else None, ovf):
                      "{} {:x} {:x}".format(*_plain(*a))))
    cases.append(("plain bf16 f16 saturate 0 0 1 0 3f80", lambda: answer(
        lambda: "{} {:x} {:x}".format(*_plain([0x3F80], [], "bf16", "f16", None, "saturate")))))
    assert_agree(driver, cases)


def _plain(kv, rope, dtype, cache, scale, ovf):
    e = C.mla_plain_entry(kv, rope, dtype, cache, scale, saturate=ovf == "saturate")
    return hexbytes(e.data), e.overflows, e.nans


def ds_tiles(rng, dtype):
    """512 values in four tiles, each random, huge-element, all-zero, NaN,
    Inf or subnormal."""
    kv = []
    for _ in range(4):
        kind = rng.integers(6)
        tile = random_inputs(rng, 128, dtype, special_rate=0.0)
        if kind == 1:      # one huge element
            tile[int(rng.integers(128))] = 0x7F7F if dtype == "bf16" else 0x7BFF
        elif kind == 2:    # zeros, some negative
            tile = [0x8000 if rng.random() < 0.3 else 0 for _ in range(128)]
        elif kind == 3:    # NaNs among values, or only NaNs
            only = rng.random() < 0.5
            tile = [(0x7FC0 if dtype == "bf16" else 0x7E00) | (0x8000 if rng.random() < 0.5 else 0)
                    if only or rng.random() < 0.2 else t for t in tile]
        elif kind == 4:    # +-Inf among values
            for i in rng.integers(0, 128, 3):
                tile[int(i)] = (0x7F80 if dtype == "bf16" else 0x7C00) | int(rng.integers(2)) << 15
        elif kind == 5:    # a subnormal amax
            tile = [int(rng.integers(0, 0x80)) | int(rng.integers(2)) << 15 for _ in range(128)]
        kv += tile
    return kv


def test_mla_ds_records(driver, rng):
    cases = []
    for k in range(24):
        dtype = ("bf16", "f16")[k % 2]
        fmt = ("e4m3fn", "e4m3fnuz")[(k // 2) % 2]
        div = int(rng.choice([0, f32(224), f32(Fraction(int(rng.integers(100, 500)), 3))]))
        ovf = ("saturate", "nonsaturating")[(k // 4) % 2]
        kv, pe = ds_tiles(rng, dtype), random_inputs(rng, 64, dtype, special_rate=0.1)
        line = f"ds {dtype} {fmt} {ovf} {div:x} " + " ".join(f"{b:x}" for b in kv + pe)
        cases.append((line, lambda a=(kv, pe, dtype, fmt, div, ovf): _ds(*a)))
    assert_agree(driver, cases)


def _ds(kv, pe, dtype, fmt, div, ovf):
    e = C.mla_ds_record(kv, pe, dtype, fmt, divisor=div, saturate=ovf == "saturate")
    return f"{hexbytes(e.data)} {e.overflows:x} {e.nans:x}"


def test_mla_ds_contract_equals_vllm_on_finite_bf16(driver, rng):
    """For finite bf16 the C oracle's record is vLLM's (recipes_ref)."""
    kvs = [[t & 0xFF7F for t in random_inputs(rng, 512, "bf16", 0.0)] for _ in range(4)]
    pe = random_inputs(rng, 64, "bf16", 0.0)
    lines = ["ds bf16 e4m3fn saturate 0 " + " ".join(f"{b:x}" for b in kv + pe) for kv in kvs]
    for kv, got in zip(kvs, ask(driver, lines)):
        assert got.split()[0] == hexbytes(R.mla_ds_vllm(np.array(kv, np.uint16), pe))


# ---- planted faults: the cases must tell a wrong model apart ----------------------

def _ties_away(y):
    code, over = _e2m1_orig(y)
    m = X.magnitude(y) if X.is_finite(y) else None
    if m in X.E2M1_MIDPOINTS and X.E2M1.decode(code & 0x7)[1] < m:
        code += 1
    return code, over


def _int8_allows_minus_128(y, rounding):
    code, over = _int8_orig(y, rounding)
    return (0x80, over) if code == 0x81 and over else (code, over)


def _rceil_aiter(rule, fmt, amax, divisor=0, floor=0, g=0):
    if rule != "e8m0_rceil":
        return _scale_orig(rule, fmt, amax, divisor, floor, g)
    p = X.f32_mul(amax, X.f32_div(0x3F800000, X.bits_of(False, C.fmt_max(fmt))))
    b = R.e8m0_rceil_aiter(p)
    return C.Scale(X.bits_of(False, X.pow2(b - 127)), [b], False)


def _no_floor(rule, fmt, amax, divisor=0, floor=0, g=0):
    sc = _scale_orig(rule, fmt, amax, divisor, floor, g)
    if rule == "f32":
        q = X.f32_div(amax, divisor or X.bits_of(False, C.fmt_max(fmt)))
        if X.magnitude(q) == 0:
            return sc
        return C.Scale(q, [(q >> (8 * i)) & 0xFF for i in range(4)], False)
    return sc


def _nvfp4_reciprocal(x, s, fmt, saturate=True, rounding="rne", scaled=True):
    if fmt != "e2m1" or not scaled or X.magnitude(s) == 0 or not X.is_finite(s):
        return _element_orig(x, s, fmt, saturate, rounding, scaled)
    y = X.f32_mul(x, X.f32_div(0x3F800000, s))
    code, over = C.e2m1_code(y)
    return code, over or (X.is_finite(x) and X.is_inf(y))


def _nan_sign_dropped(y, fmt, saturate):
    code, over = _fp8_orig(y, fmt, saturate)
    return (code & 0x7F if X.is_nan(y) and fmt in ("e4m3fn", "e5m2") else code), over


def _interleave_swapped(block, offset, h, j, sb, ss, sh, sg, interleave=0, stride_interleave=0):
    return _index_orig(block, offset, h, j, sb, ss, sh, sg, interleave and stride_interleave,
                       interleave and interleave)


_e2m1_orig, _int8_orig, _scale_orig = C.e2m1_code, C.int8_code, C.group_scale
_element_orig, _fp8_orig, _index_orig = C.element, C.fp8_code, C.scale_index

FAULTS = {
    "e2m1 ties away from zero": ("e2m1_code", _ties_away, "rows"),
    "int8 writes -128": ("int8_code", _int8_allows_minus_128, "rows"),
    "rceil rounding up any subnormal quotient (aiter)": ("group_scale", _rceil_aiter, "scales"),
    "F32 scale without its floor": ("group_scale", _no_floor, "scales"),
    "NVFP4 by the reciprocal": ("element", _nvfp4_reciprocal, "rows"),
    "NaN sign dropped": ("fp8_code", _nan_sign_dropped, "rows"),
    "interleave strides swapped": ("scale_index", _interleave_swapped, "addr"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_cases_expose_planted_faults(driver, rng, monkeypatch, fault):
    name, wrong, kind = FAULTS[fault]
    if kind == "rows":
        cases = row_cases(rng, 120)
        g, x = 0x3ED6D15D, 0x3EA11D05       # the NVFP4 straddle, as a row
        a = ("nvfp4", "e2m1", "f32", "saturate", "rne", 0, 0, g, 16,
             [X.f32_mul(C.SIX, g), x] + [0] * 14)
        cases.append((row_line(*a), lambda a=a: row_answer(*a)))
    elif kind == "scales":
        cases = scale_cases(rng)
    else:
        cases = []
        for _ in range(100):
            st = [int(v) for v in rng.integers(0, 5000, 4)] + [4, int(rng.integers(1, 64))]
            idx = [int(v) for v in rng.integers(0, 300, 4)]
            cases.append(("addr " + " ".join(f"{v:x}" for v in st + idx),
                          lambda st=st, idx=idx: str(C.scale_index(
                              *idx, *st[:4], interleave=st[4], stride_interleave=st[5]))))
    got = ask(driver, [line for line, _ in cases])
    with monkeypatch.context() as m:
        m.setattr(C, name, wrong)
        i = first_mismatch(got, cases)
    assert i is not None, f"the cases missed the planted fault: {fault}"
    assert answer(cases[i][1]) == got[i], "the true model must agree on that case"
