# SPDX-License-Identifier: MIT
"""A zoo of KV-cache writers for fp8kv.conform's tests: one correct writer,
written in numpy on the independent model of the contract (reference.py),
and one deliberately wrong writer per class of difference the harness
names, each with one fault planted.  All take the reference protocol:

    writer(key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale,
           format=None, swa_mapping=None, overflow="saturate")

numpy arrays (bf16 as uint16 bits, uint8 caches with format=), or torch
tensors through torch_writer().  CLASS names the class each fault must be
reported under, by writer name.
"""

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

    def encode(self, y, fmt, saturate):
        f = self.fault
        if f == "always_saturate":
            saturate = True
        if f == "fnuz_for_fn":
            fmt = TWIN[fmt]
        if f == "e4m3_in_e5m2":
            fmt = E4M3_OF.get(fmt, fmt)
        if f == "nan_sign_dropped":
            y = np.where(np.isnan(y), np.float32(np.nan), y)
        codes, _ = reference.encode(y, fmt, saturate)
        if f == "overflow_first":      # clamp before rounding: past max overflows
            big, _ = reference.encode(np.copysign(np.float32(3e38), y), fmt, saturate)
            with np.errstate(invalid="ignore"):
                codes = np.where(np.isfinite(y) & (np.abs(y) > reference.fmax(fmt)), big, codes)
        if f == "ftz":
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
        """(tokens written, their cache slots); a slot may be negative (numpy
        indexing wraps it to the end) or past the cache where a fault says."""
        s = np.asarray(slot_mapping).astype(np.int64)
        f = self.fault
        past_table = np.zeros(len(s), bool)
        if swa is not None:
            swa = np.asarray(swa).astype(np.int64)
            past_table = s >= len(swa)
            # the fault reads the table before the padding check: swa[-1]
            inside = ~past_table if f == "swa_minus_one" else ~past_table & (s >= 0)
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
        return t, s[t]

    def __call__(self, key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale,
                 format=None, swa_mapping=None, overflow="saturate"):
        heads = key.shape[1]
        nhd = key_cache.shape[2] == heads
        block_size = key_cache.shape[1] if nhd else key_cache.shape[2]
        num_slots = key_cache.shape[0] * block_size
        T = len(slot_mapping)
        t, slots = self.placement(slot_mapping, swa_mapping, num_slots)
        b, o = np.divmod(slots, block_size)
        for src, cache, s in ((key, key_cache, k_scale), (value, value_cache, v_scale)):
            x = reference.widen(np.asarray(src)[:T], _in_dtype(np.asarray(src)))
            codes = self.encode(self.quotient(x, s), format, overflow == "saturate")
            if self.fault == "write_past_cache":
                cache = np.lib.stride_tricks.as_strided(
                    cache, (cache.shape[0] + 2,) + cache.shape[1:], cache.strides)
            rows = [(b, o, codes[t])]
            if self.fault == "stray_write" and len(t):    # one row a block further on
                rows.append(divmod((int(slots[0]) + block_size) % num_slots, block_size) +
                            (codes[t[0]],))
            for rb, ro, c in rows:
                if nhd:
                    cache[rb, ro] = c
                else:
                    cache[rb, :, ro] = c
        if self.fault == "touches_input":     # scratch space in the caller's key
            key[0, 0, :4] = 0


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
    "touches_input": "stray_writes",
}

for _fault in CLASS:
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


def raises(key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale, **options):
    """A writer that fails to run: fp8kv.conform must say so (exit status 3)."""
    raise RuntimeError("kernel launch failed")
