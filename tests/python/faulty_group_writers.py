# SPDX-License-Identifier: MIT
"""The zoo of block-scaled writers for fp8kv.conform's referee: each an
engine recipe or a planted fault, with fp8kv.reshape_and_cache_grouped's
keywords, numpy, small.  Their bytes come from the independent models of
recipes_ref.py (exact arithmetic, written from the engines' sources) and
contract_ref.py (fp8kv's contract), never from fp8kv.conform.

ZOO maps a writer's name to (family, what conform must name): a recipe
label ("nvfp4_trtllm", "e8m0_floor + nibbles_swapped", ...) or a placement
class ("stray_writes", ...)."""

import numpy as np

import contract_ref as C
import recipes_exact as X
import recipes_ref as RR

F32 = np.float32


def _bits(row):
    return [int(u) for u in np.asarray(row, F32).view(np.uint32)]


def _write(kw, group_fn, slot_of=None, pad=False):
    """Writes every token's rows, group after group, through group_fn(bits,
    g) -> (code bytes, scale bytes)."""
    G = kw["group_size"]
    for side, cache, scales, glob in (("key", "key_cache", "k_scales", "k_global"),
                                      ("value", "value_cache", "v_scales", "v_global")):
        x = kw[side]
        g = kw.get(glob)
        gbits = _bits(g)[0] if g is not None else 0
        c, s = kw[cache], kw[scales]
        bs = c.shape[1]
        sv = s.view(np.uint8).reshape(s.shape[:3] + (-1,))
        for t, slot in enumerate(kw["slot_mapping"]):
            slot = int(slot) if slot_of is None else slot_of(int(slot))
            if slot < 0 and not pad:
                continue
            b, o = slot // bs, slot % bs
            for h in range(x.shape[1]):
                codes, scb = [], []
                for j in range(0, x.shape[2], G):
                    cb, sb = group_fn(_bits(x[t, h, j:j + G]), gbits)
                    codes.append(np.asarray(cb, np.uint8).view(np.uint8))
                    scb.append(np.asarray(sb, np.uint8))
                c[b, o, h] = np.concatenate(codes)
                sv[b, o, h] = np.concatenate(scb)


def _u8(v):
    return np.array([v], np.uint8)


def _f32b(u):
    return np.array([u], np.uint32).astype("<u4").view(np.uint8)


def _contract(rule, fmt, **kw):
    def fn(bits, g):
        row = C.group_row(rule, fmt, bits, "f32", len(bits), g=g, **kw)
        return np.array(row.codes, np.uint8), np.array(row.scales, np.uint8)
    return fn


def writer(family_fn, **opts):
    def w(**kw):
        _write(kw, family_fn, **opts)
    return w


# ---- engine recipes ------------------------------------------------------------

def _nv(model):
    def fn(bits, g):
        codes, sf = model(bits, "f32", g)
        return codes, _u8(sf)
    return fn


def _mx_even(fmt):
    elem = {"e4m3fn": X.E4M3FN, "e2m1": X.E2M1}[fmt]
    mbits = {"e4m3fn": 3, "e2m1": 1}[fmt]
    emax = {"e4m3fn": 8, "e2m1": 2}[fmt]

    def fn(bits, g):
        amax = RR.amax_finite(bits)
        b = RR.e8m0_even_aiter_cpp(amax, emax, mbits)
        s = X.e8m0_fp32_bits(b)
        ys = [X.f32_div(u, s, nan=u | 0x00400000) for u in bits]
        if fmt == "e2m1":
            cs = [_e2m1_rne(y) for y in ys]
            return X.pack_e2m1(cs), _u8(b)
        return np.array([X.fp8_contract(y, elem) for y in ys], np.uint8), _u8(b)
    return fn


def _e2m1_rne(u, ties_away=False):
    """e2m1 per fp8kv.h 5b (NaN 0x0), or with ties away from zero."""
    if X.is_nan(u):
        return 0
    sign = 8 if u & X.F32_SIGN else 0
    if X.is_inf(u):
        return sign | 7
    v = abs(float(np.array([u], np.uint32).view(F32)[0]))   # exact in a double
    mags = [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    best = 0
    for i, m in enumerate(mags):
        d, bd = abs(v - m), abs(v - mags[best])
        if d < bd or (d == bd and (ties_away or i % 2 == 0) and i > best):
            best = i
    return sign | best


def _mx8(model, elem="e4m3fn"):
    def fn(bits, g):
        codes, b = model(bits, "f32", elem)
        return codes, _u8(b)
    return fn


def _int8_vllm(bits, g):
    q, s = RR.int8_vllm_trunc(bits, "f32")
    return q.view(np.uint8), _f32b(s)


# ---- planted faults on fp8kv's recipes ------------------------------------------

def _swap_nibbles(fn):
    def f(bits, g):
        c, s = fn(bits, g)
        c = np.asarray(c, np.uint8)
        return ((c >> 4) | (c << 4)).astype(np.uint8), s
    return f


def _nan_0x7(fn):
    def f(bits, g):
        c, s = fn(bits, g)
        c = np.asarray(c, np.uint8).copy()
        for i, u in enumerate(bits):
            if X.is_nan(u):
                sh = 4 * (i % 2)
                c[i // 2] = (c[i // 2] & ~(15 << sh)) | (7 << sh)
        return c, s
    return f


def _mx_ties_away(fmt):
    def f(bits, g):
        row = C.group_row("e8m0_floor", fmt, bits, "f32", len(bits))
        b = row.scales[0]
        s = X.e8m0_fp32_bits(b)
        cs = [_e2m1_rne(X.f32_div(u, s), ties_away=True) for u in bits]
        return X.pack_e2m1(cs), _u8(b)
    return f


def _nvfp4_approx(bits, g):
    """fp8kv's NVFP4 with an approximate reciprocal: x * rcp(s), rcp the
    reciprocal truncated toward zero (within one ulp, as rcp.approx)."""
    row = C.group_row("nvfp4", "e2m1", bits, "f32", len(bits), g=g)
    sf = row.scales[0]
    dec = X.E4M3FN.decode(sf)
    sfv = X.bits_of(False, dec[1]) if dec else 0
    s = X.f32_mul(sfv, g)
    if not RR.f32_positive(s):
        return np.array(row.codes, np.uint8), _u8(sf)
    from fractions import Fraction
    r = Fraction(1) / X.value(s)
    rt = X.round_binary(r, 24, -126)        # nearest
    if rt > r:                              # truncate: one ulp down where rounded up
        rt = X.value(X.bits_of(False, rt) - 1)
    rb = X.bits_of(False, rt)
    cs = [_e2m1_rne(X.f32_mul(u, rb)) for u in bits]
    return X.pack_e2m1(cs), _u8(sf)


def _nvfp4_scale_nonsat(bits, g):
    """fp8kv's NVFP4 with a block scale past e4m3's range stored as its NaN
    (0x7F, the non-saturating conversion): s = NaN * g, every x / s a NaN,
    which e2m1 stores as 0x0."""
    c, s = _contract("nvfp4", "e2m1")(bits, g)
    amax = RR.amax_finite(bits)
    sfv = X.f32_div(amax, X.f32_mul(RR.SIX, g))
    if RR.f32_positive(g) and X.is_finite(g) and X.fp8_contract(sfv, X.E4M3FN, saturate=False) == 0x7F:
        return np.zeros_like(c), _u8(0x7F)
    return c, s


def _int8_ties_away(bits, g):
    row = C.group_row("f32", "int8", bits, "f32", len(bits))
    s = int.from_bytes(bytes(row.scales), "little")
    out = []
    for u in bits:
        y = X.f32_div(u, s)
        if X.is_nan(y):
            out.append(0)
            continue
        v = X.value(y) if X.is_finite(y) else (1e9 if not y & X.F32_SIGN else -1e9)
        q = int(abs(v) + 0.5) * (1 if v >= 0 else -1) if abs(v) < 1e8 else int(v)
        out.append(max(-127, min(127, q)))
    return np.array(out, np.int8).view(np.uint8), np.array(row.scales, np.uint8)


def _off_by_one_scale(bits, g):
    """fp8kv's floor recipe with every E8M0 byte one too high and the
    elements as that scale gives them: no recipe's bytes."""
    row = C.group_row("e8m0_floor", "e4m3fn", bits, "f32", len(bits))
    b = min(row.scales[0] + 3, 254)
    s = X.e8m0_fp32_bits(b)
    return np.array([X.fp8_contract(X.f32_div(u, s), X.E4M3FN) for u in bits],
                    np.uint8), _u8(b)


ZOO = {
    # exact writers: fp8kv's recipe of the family (CLEAN)
    "exact_mxfp8": ("mxfp8", writer(_contract("e8m0_rceil", "e4m3fn")), "CLEAN"),
    "exact_mxfp4": ("mxfp4", writer(_contract("e8m0_rceil", "e2m1")), "CLEAN"),
    "exact_nvfp4": ("nvfp4", writer(_contract("nvfp4", "e2m1")), "CLEAN"),
    "exact_int8": ("int8", writer(_contract("f32", "int8")), "CLEAN"),
    # other recipes
    "floor_mxfp8": ("mxfp8", writer(_contract("e8m0_floor", "e4m3fn")), "e8m0_floor"),
    "floor_mxfp4": ("mxfp4", writer(_contract("e8m0_floor", "e2m1")), "e8m0_floor"),
    "even_mxfp4": ("mxfp4", writer(_mx_even("e2m1")), "e8m0_even"),
    "even_mxfp8": ("mxfp8", writer(_mx_even("e4m3fn")), "e8m0_even"),
    "torchao_mxfp8": ("mxfp8", writer(_mx8(RR.mx_floor_ocp)), "e8m0_floor_torchao"),
    "torchao_rceil_mxfp8": ("mxfp8", writer(_mx8(RR.mx_rceil_torchao)), "e8m0_rceil_torchao"),
    "torchao_mxfp4": ("mxfp4", writer(_mx8(RR.mx_floor_ocp, "e2m1")), "e8m0_floor_torchao"),
    "torchao_rceil_mxfp4": ("mxfp4", writer(_mx8(RR.mx_rceil_torchao, "e2m1")),
                            "e8m0_rceil_torchao"),
    "trtllm_mxfp8": ("mxfp8", writer(_mx8(RR.mx_rceil_nvidia)), "e8m0_rceil_nvidia"),
    "flashinfer_nvfp4": ("nvfp4", writer(_nv(RR.nvfp4_flashinfer)), "nvfp4_flashinfer"),
    "trtllm_nvfp4": ("nvfp4", writer(_nv(RR.nvfp4_trtllm)), "nvfp4_trtllm"),
    "vllm_nvfp4": ("nvfp4", writer(_nv(RR.nvfp4_vllm)), "nvfp4_vllm"),
    "trunc_int8": ("int8", writer(_contract("f32", "int8", rounding="trunc")), "int8_trunc"),
    "vllm_int8": ("int8", writer(_int8_vllm), "int8_vllm"),
    # planted faults
    "swapped_nibbles_mxfp4": ("mxfp4", writer(_swap_nibbles(_contract("e8m0_rceil", "e2m1"))),
                              "e8m0_rceil + nibbles_swapped"),
    "ties_away_mxfp4": ("mxfp4", writer(_mx_ties_away("e2m1")), "e8m0_floor + ties_away"),
    "nan7_nvfp4": ("nvfp4", writer(_nan_0x7(_contract("nvfp4", "e2m1"))),
                   "nvfp4_fp8kv + nan_code"),
    "approx_rcp_nvfp4": ("nvfp4", writer(_nvfp4_approx),
                         "nvfp4_fp8kv + approximate_reciprocal"),
    "scale_nonsat_nvfp4": ("nvfp4", writer(_nvfp4_scale_nonsat),
                           "nvfp4_fp8kv + scale_nonsaturating"),
    "ties_away_int8": ("int8", writer(_int8_ties_away), "int8_rne + ties_away"),
    "scale_plus3_mxfp8": ("mxfp8", writer(_off_by_one_scale), "none"),
    # torchao FLOOR as run on an x86 CPU: x * NaN keeps the quiet NaN
    # 0x7FC00000, which torchao's e2m1 bit trick makes code 3, not the GPU's 4
    "torchao_cpu_nan_mxfp4": ("mxfp4", writer(_mx8(lambda b, d, e: RR.mx_floor_ocp(
        b, d, e, nan_bits=X.QNAN), "e2m1")), "none"),
    "stray_mxfp8": ("mxfp8", writer(_contract("e8m0_rceil", "e4m3fn"),
                                    slot_of=lambda s: s if s < 0 else s + 1),
                    "stray_writes"),
    "padding_mxfp8": ("mxfp8", writer(_contract("e8m0_rceil", "e4m3fn"), pad=True),
                      "padding_written"),
}


# ---- MLA writers: vLLM's signature (kv_c, k_pe, kv_cache, slot_mapping,
# kv_cache_dtype, scale), bf16 inputs as uint16 bits ---------------------------

def _bf16_f32(b16):
    return (np.asarray(b16, np.uint32) << 16).view(F32)


def _q(y, fmt="e4m3fn"):
    import fp8kv
    out = np.empty(np.shape(y), np.uint8)
    fp8kv.quantize(np.ascontiguousarray(y, F32).reshape(-1), out.reshape(-1), format=fmt)
    return out


def _ds_numpy(kv16, pe16, divisor=448.0, tile=128, mul=False, rcp=False):
    """A DS record by its definition, in numpy (fp8kv's bulk conversion for
    the codes), with a planted variation: divisor, tile size, x * s."""
    x = _bf16_f32(kv16).reshape(-1, tile)
    fin = np.where(np.isfinite(x), np.abs(x), F32(0))
    with np.errstate(all="ignore"):
        s = np.maximum((fin.max(axis=1) / F32(divisor)).astype(F32), F32(2.0 ** -126))
        y = (x * s[:, None]) if mul else (x * (F32(1) / s)[:, None]) if rcp else \
            (x / s[:, None])
    codes = _q(y.astype(F32)).reshape(-1)
    s4 = s[(np.arange(4) * 128) // tile] if tile > 128 else s[:4]
    return np.concatenate([codes, s4.astype("<f4").view(np.uint8),
                           np.asarray(pe16, "<u2").view(np.uint8)])


def _ds_exact(kv16, pe16):
    return RR.mla_ds_fp8kv(kv16, pe16, "bf16")


def _ds_vllm(kv16, pe16):
    return RR.mla_ds_vllm(kv16, pe16, "bf16")


def _ds_be(kv16, pe16):
    r = _ds_exact(kv16, pe16).copy()
    r[512:528] = r[512:528].reshape(4, 4)[:, ::-1].reshape(-1)
    return r


def _ds_place(kv16, pe16):
    r = _ds_exact(kv16, pe16)
    return np.concatenate([r[:512], r[528:], r[512:528]])


def _ds_rope_q(kv16, pe16, old):
    r = _ds_exact(kv16, pe16).copy()
    r[528:592] = _q(_bf16_f32(pe16))
    r[592:] = old[592:]
    return r


def _plain(how="div", rope_raw=False):
    def rec(kv16, pe16, fmt, s):
        x = np.concatenate([_bf16_f32(kv16), _bf16_f32(pe16)])
        with np.errstate(all="ignore"):
            y = {"mul": lambda: x * s, "div": lambda: x / s, "one": lambda: x,
                 "e4m3": lambda: x / s, "rcp": lambda: x * (F32(1) / s)}[how]()
        out = _q(y.astype(F32), "e4m3fn" if how == "e4m3" else fmt)
        if rope_raw:
            out[512:] = np.asarray(pe16, "<u2").view(np.uint8)[:64]
        return out
    return rec


def mla_writer(record, pad=False, contiguous=False, skip_odd=False, neighbour=False):
    def w(kv_c, k_pe, kv_cache, slot_mapping, kv_cache_dtype, scale):
        fmt = "e5m2" if kv_cache_dtype == "fp8_e5m2" else "e4m3fn"
        E = kv_cache.shape[2]
        cache = kv_cache
        if contiguous:
            cache = np.lib.stride_tricks.as_strided(kv_cache, shape=kv_cache.shape,
                                                    strides=(kv_cache.shape[1] * E, E, 1))
        block = kv_cache.shape[1]
        for t, slot in enumerate(slot_mapping):
            slot = int(slot)
            if (slot < 0 and not pad) or (skip_odd and t % 2):
                continue
            if neighbour and slot >= 0:
                slot ^= 1
            b, o = slot // block, slot % block
            if kv_cache_dtype == "fp8_ds_mla":
                try:
                    r = record(kv_c[t], k_pe[t])
                except TypeError:
                    r = record(kv_c[t], k_pe[t], cache[b, o])
            else:
                r = record(kv_c[t], k_pe[t], fmt, np.float32(scale[0]))
            cache[b, o] = r
    return w


def _overrun(kv_c, k_pe, kv_cache, slot_mapping, kv_cache_dtype, scale):
    """The exact records, and 16 zero bytes after each entry where the
    cache's entries are padded (into the padding, never another entry)."""
    mla_writer(_ds_exact)(kv_c, k_pe, kv_cache, slot_mapping, kv_cache_dtype, scale)
    E, stride = kv_cache.shape[2], kv_cache.strides[1]
    if stride >= E + 16:
        wide = np.lib.stride_tricks.as_strided(kv_cache, shape=kv_cache.shape[:2] + (E + 16,),
                                               strides=kv_cache.strides)
        for slot in slot_mapping:
            if slot >= 0:
                wide[slot // kv_cache.shape[1], slot % kv_cache.shape[1], E:] = 0


MLA_ZOO = {
    "exact_ds": ("ds_mla", mla_writer(_ds_exact), "CLEAN"),
    "exact_plain": ("fp8", mla_writer(_plain()), "CLEAN"),
    "exact_plain_e5m2": ("fp8_e5m2", mla_writer(_plain()), "CLEAN"),
    "vllm_ds": ("ds_mla", mla_writer(_ds_vllm), "vllm_nan_inf"),
    "vllm_plain": ("fp8", mla_writer(lambda k, p, f, s: RR.mla_plain_vllm(
        k, p, "bf16", "fp8", int(np.float32(s).view(np.uint32)))), "nan_sign"),
    "inverted_ds": ("ds_mla", mla_writer(lambda k, p: _ds_numpy(k, p, mul=True)),
                    "inverted_scale"),
    "reciprocal_ds": ("ds_mla", mla_writer(lambda k, p: _ds_numpy(k, p, rcp=True)),
                      "reciprocal"),
    "divisor240_ds": ("ds_mla", mla_writer(lambda k, p: _ds_numpy(k, p, 240.0)),
                      "tile_divisor"),
    "divisor224_ds": ("ds_mla", mla_writer(lambda k, p: _ds_numpy(k, p, 224.0)),
                      "tile_divisor"),
    "tiles64_ds": ("ds_mla", mla_writer(lambda k, p: _ds_numpy(k, p, tile=64)),
                   "tile_boundaries"),
    "tiles512_ds": ("ds_mla", mla_writer(lambda k, p: _ds_numpy(k, p, tile=512)),
                    "tile_boundaries"),
    "rope_quantized_ds": ("ds_mla", mla_writer(_ds_rope_q), "rope_quantized"),
    "scale_big_endian_ds": ("ds_mla", mla_writer(_ds_be), "scale_byte_order"),
    "scale_after_rope_ds": ("ds_mla", mla_writer(_ds_place), "scale_place"),
    "inverted_plain": ("fp8", mla_writer(_plain("mul")), "inverted_scale"),
    "reciprocal_plain": ("fp8", mla_writer(_plain("rcp")), "reciprocal"),
    "scale_ignored_plain": ("fp8", mla_writer(_plain("one")), "scale_ignored"),
    "e4m3_for_e5m2_plain": ("fp8_e5m2", mla_writer(_plain("e4m3")), "format_confusion"),
    "rope_raw_plain": ("fp8", mla_writer(_plain(rope_raw=True)), "rope_raw"),
    "padding_ds": ("ds_mla", mla_writer(_ds_exact, pad=True), "padding_written"),
    "neighbour_slot_ds": ("ds_mla", mla_writer(_ds_exact, neighbour=True), "wrong_slot"),
    "strides_ds": ("ds_mla", mla_writer(_ds_exact, contiguous=True), "cache_strides"),
    "overrun_ds": ("ds_mla", _overrun, "stray_writes"),
    "skips_ds": ("ds_mla", mla_writer(_ds_exact, skip_odd=True), "not_written"),
}

# every writer by name, for "faulty_group_writers:NAME" targets
globals().update({n: w for n, (_, w, _) in list(ZOO.items()) + list(MLA_ZOO.items())})
