# SPDX-License-Identifier: MIT
"""A zoo of KV-cache writers for fp8kv.conform's tests: one correct writer,
written in numpy on the independent model of the contract (reference.py),
and one deliberately wrong writer per class of difference the harness
names, each with one fault planted (the SGLang-like writer has the three of
the Triton kernel it is modelled on).  All take the reference protocol:

    writer(key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale,
           format=None, swa_mapping=None, overflow="saturate")

numpy arrays (bf16 as uint16 bits, uint8 caches with format=), or torch
tensors through torch_writer().  A writer finds a row's bytes through the
cache's strides (as a kernel does), so that a fault in them is a fault in
where it writes; it reaches two blocks either side of the cache (the
harness's canaries) and skips a row that would land further away (numpy
has no sanitizer).  CLASS names the
class each fault must be reported under, by writer name; CLASSES the
several classes of a writer with several faults.
"""

import ctypes
import os
import sys
import time

import numpy as np

import reference

TWIN = {"e4m3fn": "e4m3fnuz", "e4m3fnuz": "e4m3fn", "e5m2": "e5m2fnuz", "e5m2fnuz": "e5m2"}
E4M3_OF = {"e5m2": "e4m3fn", "e5m2fnuz": "e4m3fnuz"}


def _in_dtype(a):
    return {"float32": "f32", "float16": "f16", "uint16": "bf16"}[a.dtype.name]


def _scale(s, x):
    """A scale array (1 or heads values) shaped to divide x [T, H, D]."""
    s = np.asarray(s, dtype=np.float32).reshape(-1)
    return s.reshape(1, -1, 1) if s.size > 1 else s[0]


def _round_other(y, fmt, saturate, mode):
    """Codes of fp32 y under another rounding mode, from reference's tables:
    "ties_away", "truncation" (toward zero) or "ties_odd"; beyond the
    largest finite value, NaN and Inf as the contract."""
    codes, _ = reference.encode(y, fmt, saturate)
    values, table = reference._TABLES[fmt]
    with np.errstate(invalid="ignore"):
        a = np.abs(np.asarray(y, np.float32).astype(np.float64))
    ok = np.isfinite(a) & (a < values[-1])
    a = np.where(ok, a, 0.0)
    lo = np.clip(np.searchsorted(values, a, side="right") - 1, 0, len(values) - 2)
    inexact = ok & (values[lo] != a)
    tie = inexact & (a - values[lo] == values[lo + 1] - a)
    if mode == "truncation":
        pick, where = table[lo], inexact
    elif mode == "ties_away":
        pick, where = table[lo + 1], tie
    else:
        pick, where = np.where(table[lo] % 2 == 1, table[lo], table[lo + 1]), tie
    sign = np.signbit(y)
    zero, _ = reference.encode(np.copysign(np.float32(0), y), fmt, saturate)
    code = np.where(pick == 0, zero, np.where(sign, pick | 0x80, pick))
    return np.where(where, code, codes).astype(np.uint8)


def _flat(cache):
    """(the bytes from two blocks before a cache's first element to two
    blocks past the end of its last block, as a 1-D uint8 array; where the
    cache starts in it; where it ends).  fp8kv.conform's canaries are those
    blocks: a writer here can write into them as a kernel writes past its
    cache, and no further."""
    sb = cache.strides[0]
    span = cache.shape[0] * sb
    start = cache.__array_interface__["data"][0] - 2 * sb
    mem = (ctypes.c_uint8 * (span + 4 * sb)).from_address(start)
    return np.frombuffer(mem, np.uint8), 2 * sb, 2 * sb + span


class Writer:
    """The reference protocol in numpy; correct unless `fault` is set."""

    def __init__(self, fault=None):
        self.fault = fault
        self.__name__ = fault or "correct"
        self.__qualname__ = self.__name__

    # -- conversion

    def quotient(self, x, s):
        f = self.fault
        if s is None or f == "scale_ignored":
            return x
        if f == "scale_band_ignored":      # 0.01 <= s <= 0.3 taken as 1
            s = np.asarray(s, np.float32)
            s = np.where((s >= 0.01) & (s <= 0.3), np.float32(1), s).astype(np.float32)
        s = _scale(s, x)
        if f == "reciprocal":
            with np.errstate(all="ignore"):
                return (x * (np.float32(1) / s).astype(np.float32)).astype(np.float32)
        y = reference.divide(x, s)
        if f == "approx_division":     # off by one ulp where a hash of x says so
            h = (x.view(np.uint32).astype(np.uint64) * 2654435761 >> 13) % 3
            inf = np.float32(np.inf)
            step = np.where(h == 0, np.nextafter(y, inf), np.where(h == 1, np.nextafter(y, -inf),
                                                                   y))
            y = np.where(np.isfinite(y) & (y != 0), step, y).astype(np.float32)
        return y

    def encode(self, y, fmt, saturate, in_dtype=None):
        f = self.fault
        if f == "always_saturate":
            saturate = True
        if f == "fnuz_for_fn":
            fmt = TWIN[fmt]
        if f == "e4m3_in_e5m2":
            fmt = E4M3_OF.get(fmt, fmt)
        if f == "nan_sign_dropped":
            y = np.where(np.isnan(y), np.float32(np.nan), y)
        if f in ("ties_away", "truncation", "ties_odd"):
            return _round_other(y, fmt, saturate, f)
        codes, _ = reference.encode(y, fmt, saturate)
        if f == "overflow_first":      # clamp before rounding: past max overflows
            big, _ = reference.encode(np.copysign(np.float32(3e38), y), fmt, saturate)
            with np.errstate(invalid="ignore"):
                codes = np.where(np.isfinite(y) & (np.abs(y) > reference.fmax(fmt)), big, codes)
        if f == "ftz" or (f == "refuses_out_of_range" and in_dtype == "bf16"):
            mbits = 3 if fmt.startswith("e4m3") else 2
            sub = ((codes & 0x7F) >> mbits == 0) & ((codes & 0x7F) != 0)
            zero, _ = reference.encode(np.copysign(np.float32(0), y), fmt, saturate)
            codes = np.where(sub, zero, codes)
        if f == "negative_zero" and fmt.endswith("fnuz"):
            codes = np.where((codes == 0) & np.signbit(y), 0x80, codes)
        if f == "inf_as_nan" and saturate:
            nan, _ = reference.encode(np.full(y.shape, np.nan, np.float32), fmt, saturate)
            codes = np.where(np.isinf(y), nan, codes)
        return codes.astype(np.uint8)

    # -- placement

    def placement(self, slot_mapping, swa, num_slots):
        """(tokens written, their cache slots); a slot may be negative or past
        the cache where a fault says (rows outside the cache are dropped)."""
        s = np.asarray(slot_mapping).astype(np.int64)
        f = self.fault
        past_table = np.zeros(len(s), bool)
        if swa is not None:
            swa = np.asarray(swa).astype(np.int64)
            past_table = s >= len(swa)
            # these read the table before the padding check: swa[-1]
            early = f in ("swa_minus_one", "sglang_like")
            inside = ~past_table if early else ~past_table & (s >= 0)
            s = np.where(inside, swa[np.where(inside, s, 0)], s)
        pad, past = s < 0, (s >= num_slots) | past_table
        if f == "padding_written":
            write = ~past
        elif f == "write_past_cache":    # no bounds check on the cache
            write = ~pad & ~past_table
        else:
            write = ~pad & ~past
        t = np.flatnonzero(write)
        if f == "drops_token":      # the first token with a slot is never written
            t = t[1:]
        if f == "first_512_tokens":
            t = t[t < 512]
        return t, s[t]

    def strides(self, cache, nhd, heads, dim):
        """(block, slot, head) byte strides the writer uses for a cache."""
        sb, s1, s2 = cache.strides[:3]
        ss, sh = (s1, s2) if nhd else (s2, s1)
        S = cache.shape[1] if nhd else cache.shape[2]
        f = self.fault
        if f == "sglang_like" or f == "cache_inner_strides" and nhd:
            return sb, heads * dim, dim                      # a contiguous block
        if f == "cache_inner_strides":
            return sb, dim, S * dim
        if f == "page_stride_ignored":
            return (S * heads * dim,) + ((heads * dim, dim) if nhd else (dim, S * dim))
        if f == "layout_swapped":
            return (sb,) + ((dim, S * dim) if nhd else (heads * dim, dim))
        return sb, ss, sh

    def read(self, src, other, T):
        """The rows [T, H, D] the writer reads from an input."""
        a = np.asarray(src)
        f = self.fault
        T0, H, D = a.shape
        size = a.itemsize
        if f in ("sglang_like", "input_head_stride"):
            return np.lib.stride_tricks.as_strided(a, (T, H, D), (a.strides[0], D * size, size))
        if f == "input_token_stride":
            return np.lib.stride_tricks.as_strided(a, (T, H, D), (H * D * size, a.strides[1],
                                                                   size))
        if f == "kv_swapped" and np.asarray(other).shape == a.shape:
            return np.asarray(other)[:T]
        if f == "heads_transposed":
            c = np.ascontiguousarray(a[:T])
            return c.reshape(H, T, D).transpose(1, 0, 2)
        return a[:T]

    def __call__(self, key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale,
                 format=None, swa_mapping=None, overflow="saturate"):
        f = self.fault
        if f == "refuses_16bit" and np.asarray(key).dtype.itemsize == 2:
            raise TypeError("16-bit inputs are not supported")
        heads = key.shape[1]
        nhd = key_cache.shape[2] == heads
        block_size = key_cache.shape[1] if nhd else key_cache.shape[2]
        num_slots = key_cache.shape[0] * block_size
        if f == "refuses_out_of_range":
            s = np.asarray(slot_mapping).astype(np.int64)
            if swa_mapping is not None:
                swa = np.asarray(swa_mapping).astype(np.int64)
                if (s >= len(swa)).any():
                    raise IndexError("slot past the SWA table")
                s = np.where(s >= 0, swa[np.where(s >= 0, s, 0)], s)
            if (s >= num_slots).any():
                raise IndexError("slot out of range")
        T = len(slot_mapping)
        t, slots = self.placement(slot_mapping, swa_mapping, num_slots)
        if f == "slot_low_bits":
            slots = slots & 1023
        S = 16 if f == "block_size_16" else block_size
        b, o = np.divmod(slots, S)
        for src, other, cache, s in ((key, value, key_cache, k_scale),
                                     (value, key, value_cache, v_scale)):
            a = np.asarray(src)
            D = a.shape[2]
            x = reference.widen(self.read(src, other, T), _in_dtype(a))
            codes = self.encode(self.quotient(x, s), format, overflow == "saturate",
                                _in_dtype(a))
            flat, lo, hi = _flat(cache)
            if f not in ("write_past_cache", "padding_written", "block_size_16",
                         "slot_low_bits", "offset_uint32", "sglang_like"):
                flat, lo = flat[lo:hi], 0            # the cache only
            sb, ss, sh = self.strides(cache, nhd, heads, D)
            width = min(D, 64) if f == "head_dim_64" else D
            rows = [(b, o, t)]
            if f == "stray_write" and len(t):    # one row a block further on
                rows.append(tuple(np.array([v]) for v in divmod(
                    (int(slots[0]) + block_size) % num_slots, block_size)) + (t[:1],))
            for rb, ro, rt in rows:
                start = rb[:, None] * sb + ro[:, None] * ss + np.arange(heads)[None, :] * sh
                if f == "offset_uint32":            # 32-bit unsigned byte offsets
                    start = start % 2 ** 32
                start = start + lo
                ok = (start >= 0) & (start + D <= len(flat))
                at = start[:, :, None] + np.arange(width)
                flat[at[ok]] = codes[rt][..., :width][ok]
        if f == "touches_input":     # scratch space in the caller's key
            key[0, 0, :4] = 0
        if f == "corrupts_slot_mapping":
            slot_mapping[0] = 12345
        if f == "corrupts_scale" and k_scale is not None:
            k_scale[0] = k_scale[0] * 2
        if f == "corrupts_swa_mapping" and swa_mapping is not None:
            swa_mapping[-1] = -7


correct = Writer()

# fault name -> the class fp8kv.conform must report it under
CLASS = {
    "reciprocal": "reciprocal",
    "approx_division": "division",
    "overflow_first": "overflow_first",
    "fnuz_for_fn": "format_confusion",
    "nan_sign_dropped": "nan",
    "ftz": "ftz",
    "padding_written": "padding_written",
    "swa_minus_one": "swa_padding_read",
    "stray_write": "stray_writes",
    "write_past_cache": "out_of_bounds",
    "scale_ignored": "scale_ignored",
    "e4m3_in_e5m2": "format_confusion",
    "negative_zero": "negative_zero",
    "always_saturate": "saturation",
    "inf_as_nan": "inf",
    "drops_token": "not_written",
    "ties_away": "ties_away",
    "truncation": "truncation",
    "ties_odd": "ties_odd",
    # inputs modified (#35 item 11)
    "touches_input": "input_modified",
    "corrupts_slot_mapping": "input_modified",
    "corrupts_scale": "input_modified",
    "corrupts_swa_mapping": "input_modified",
    # blind to the shape (#35 item 12)
    "slot_low_bits": "slot_truncated",
    "block_size_16": "block_size",
    "head_dim_64": "not_written",
    "first_512_tokens": "not_written",
    "scale_band_ignored": "scale_ignored",
    "offset_uint32": "offset32",
    # layout (#35 item 14)
    "input_head_stride": "input_head_stride",
    "input_token_stride": "input_token_stride",
    "kv_swapped": "kv_swapped",
    "heads_transposed": "heads_transposed",
    "cache_inner_strides": "cache_inner_strides",
    "page_stride_ignored": "cache_strides",
    "layout_swapped": "layout_swapped",
    # refuses calls with out-of-range slots; flushes bf16 subnormals (#35 item 10)
    "refuses_out_of_range": "ftz",
}

# writers with several faults: the classes each must be reported under
CLASSES = {
    # SGLang's Triton launch_reshape_and_cache_flash: reads head * head_size +
    # dim (the head stride ignored), writes rows at block * block_stride +
    # (offset * heads + head) * head_size (slot and head strides ignored),
    # reads the SWA table before the padding check
    "sglang_like": ("input_head_stride", "cache_inner_strides", "swa_padding_read"),
}

for _fault in list(CLASS) + list(CLASSES) + ["refuses_16bit"]:
    globals()[_fault] = Writer(_fault)


# ---- torch ---------------------------------------------------------------------

def _numpy_view(t):
    """A numpy array sharing a CPU tensor's memory (bf16 as uint16 bits,
    float8 as uint8 codes)."""
    import torch
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    if t.element_size() == 1 and t.dtype not in (torch.uint8, torch.int8):
        return t.view(torch.uint8).numpy()
    return t.numpy()


class TorchQuotient(Writer):
    """The same writers on torch tensors, with x / s (or x * (1/s)) computed
    by torch and written back through shared memory."""

    def quotient(self, x, s):
        if s is None or self.fault not in (None, "reciprocal"):
            return super().quotient(x, s)
        import torch
        xt, st = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(
            np.ascontiguousarray(np.asarray(s, np.float32).reshape(-1)))
        st = st.view(1, -1, 1) if st.numel() > 1 else st[0]
        y = xt * (1.0 / st) if self.fault == "reciprocal" else xt / st
        y = y.numpy()
        nan = np.isnan(y)        # the contract's NaN sign, which torch leaves open
        y[nan] = reference.divide(x, _scale(s, x) * np.ones_like(x))[nan]
        return y

    def __call__(self, key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale,
                 format=None, swa_mapping=None, overflow="saturate"):
        import torch
        if format is None:
            format = str(key_cache.dtype).replace("torch.float8_", "")
        args = [_numpy_view(a) if isinstance(a, torch.Tensor) else a
                for a in (key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale,
                          swa_mapping)]
        Writer.__call__(self, *args[:7], format=format, swa_mapping=args[7],
                        overflow=overflow)


def torch_writer(fault=None):
    return TorchQuotient(fault)


# ---- writers that fail to run ---------------------------------------------------------

def raises(key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale, **options):
    """A writer that fails to run: fp8kv.conform must say so (exit status 3)."""
    raise RuntimeError("kernel launch failed")


def calls_sys_exit(*args, **options):
    """Ends the program as if all were well."""
    sys.exit(0)


def calls_os_exit(*args, **options):
    """Ends the process at once, status 0 (seen only from another process)."""
    os._exit(0)


def hangs(*args, **options):
    """Never returns."""
    while True:
        time.sleep(0.05)


def writes_then_hangs_on_bf16(key, *args, **options):
    """Correct, except that a bf16 call never returns."""
    if np.asarray(key).dtype == np.uint16:
        hangs()
    correct(key, *args, **options)
