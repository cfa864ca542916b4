# SPDX-License-Identifier: MIT
"""The cache write: arguments checked and turned into one fp8kv_cache_write
descriptor, then one call.  This is the hot path of an engine's decode step,
so it reads each array once and packs the descriptor in one struct call."""

from . import _backends, _capi
from ._types import (CODES, FP8_FORMATS, INPUT_DTYPES, OVERFLOW_CODES, SCALE_CODES,
                     Tensor, cache_format, describe, device_name, np, torch)

_INDEX_TYPES = {"i64": _capi.INDEX_INT64, "i32": _capi.INDEX_INT32}


def _same_device(d, dev, name):
    if d != dev:
        raise ValueError("%s: on %s, but key is on %s" % (name, device_name(d), device_name(dev)))


def _contiguous(shape, strides):
    expected = 1
    for n, s in zip(reversed(shape), reversed(strides)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _made_contiguous(x):
    if isinstance(x, Tensor):
        return x.contiguous()
    return np.ascontiguousarray(x)


def _index(x, name, dev, keep):
    """A 1-D int64/int32 mapping as (pointer, length, index type); a strided
    one is copied first (keep holds the copy for the call)."""
    ptr, shape, strides, kind, d = describe(x, name)
    if len(shape) != 1 or kind not in _INDEX_TYPES or d != dev:
        if len(shape) != 1:
            raise ValueError("%s: must be 1-D, got shape %s" % (name, tuple(shape)))
        if kind not in _INDEX_TYPES:
            raise TypeError("%s: must hold int64 or int32, not %s" % (name, kind))
        _same_device(d, dev, name)
    if strides[0] != 1 and shape[0] > 1:
        x = _made_contiguous(x)
        keep.append(x)
        ptr = describe(x, name)[0]
    return ptr, shape[0], _INDEX_TYPES[kind]


_scalar_scales = {}


def _scalar_scale(value, dev, keep):
    """A float scale as one fp32 element on the device (cached, except while a
    CUDA graph is being captured, when it is made on the capturing stream)."""
    key = (dev, float(value))
    x = _scalar_scales.get(key)
    if x is not None:
        return x
    if dev < 0:
        x = np.full(1, value, np.float32) if np is not None else \
            torch.full((1,), value, dtype=torch.float32)
    else:
        x = torch.full((1,), value, dtype=torch.float32, device="cuda:%d" % dev)
        if torch.cuda.is_current_stream_capturing():
            keep.append(x)
            return x
    if len(_scalar_scales) < 256:
        _scalar_scales[key] = x
    return x


_F32 = torch.float32 if torch is not None else None


def _f32(x, name, dev, count, keep):
    """Pointer to `count` contiguous fp32 values (a float becomes one)."""
    if isinstance(x, Tensor):
        # the common case in few tensor calls; anything else takes the
        # general path below, which names the fault
        d = x.get_device()
        if (x.dtype is _F32 and d == dev and x.numel() == count and
                (x.is_cuda if d >= 0 else not x.is_meta) and
                (count == 1 or x.is_contiguous())):
            return x.data_ptr()
    elif isinstance(x, (float, int)) and not isinstance(x, bool):
        x = _scalar_scale(x, dev, keep)
    ptr, shape, strides, kind, d = describe(x, name)
    n = _numel(shape)
    if kind != "f32" or d != dev or n != count or count > 1 and not _contiguous(shape, strides):
        if kind != "f32":
            raise TypeError("%s: must be float32, not %s" % (name, kind))
        _same_device(d, dev, name)
        if n != count:
            raise ValueError("%s: must hold %d value%s, has %d"
                             % (name, count, "" if count == 1 else "s", n))
        raise ValueError("%s: must be contiguous" % name)
    return ptr


def _counter(x, name, dev):
    ptr, shape, _, kind, d = describe(x, name)
    if kind not in ("u64", "i64"):
        raise TypeError("%s: must be a uint64 (or int64) counter, not %s" % (name, kind))
    if _numel(shape) != 1:
        raise ValueError("%s: must hold one counter, has shape %s" % (name, tuple(shape)))
    _same_device(d, dev, name)
    return ptr


def _cache_dims(shape, strides, heads, layout, name):
    """(blocks, block_size, stride block, slot, head) of a 4-D cache whose
    logical order is NHD [blocks, block_size, heads, dim] or HND [blocks,
    heads, block_size, dim]: stated, or read from where the heads are."""
    if len(shape) != 4:
        raise ValueError("%s: must be 4-D, NHD [blocks, block_size, heads, dim] or HND "
                         "[blocks, heads, block_size, dim]; got shape %s" % (name, tuple(shape)))
    if layout is None:
        if shape[1] == shape[2] == heads:
            raise ValueError("layout: %s has shape %s with block_size == heads == %d; "
                             "say layout='NHD' or 'HND'" % (name, tuple(shape), heads))
        layout = "NHD" if shape[2] == heads else "HND" if shape[1] == heads else None
        if layout is None:
            raise ValueError("%s: shape %s has no dimension of %d heads (key's) at 1 or 2"
                             % (name, tuple(shape), heads))
    elif layout not in ("NHD", "HND"):
        raise ValueError("layout: must be 'NHD', 'HND' or None, not %r" % (layout,))
    if layout == "NHD":
        if shape[2] != heads:
            raise ValueError("%s: NHD shape %s, but key has %d heads" % (name, tuple(shape), heads))
        return layout, shape[0], shape[1], strides[0], strides[1], strides[2]
    if shape[1] != heads:
        raise ValueError("%s: HND shape %s, but key has %d heads" % (name, tuple(shape), heads))
    return layout, shape[0], shape[2], strides[0], strides[2], strides[1]


def _scale_cache_strides(k_sc, v_sc, dev, blocks, block_size, heads, layout):
    """(k ptr, v ptr, stride block, slot, head) of the dynamic mode's scale
    caches, [blocks, block_size, heads] or [blocks, heads, block_size] (the
    cache's order when both fit)."""
    if k_sc is None or v_sc is None:
        raise ValueError("%s: scale='dynamic' needs k_scale_cache and v_scale_cache"
                         % ("k_scale_cache" if k_sc is None else "v_scale_cache"))
    kp, kshape, kstr, kkind, kd = describe(k_sc, "k_scale_cache")
    vp, vshape, vstr, vkind, vd = describe(v_sc, "v_scale_cache")
    for name, kind, d in (("k_scale_cache", kkind, kd), ("v_scale_cache", vkind, vd)):
        if kind != "f32":
            raise TypeError("%s: must be float32, not %s" % (name, kind))
        _same_device(d, dev, name)
    nhd, hnd = (blocks, block_size, heads), (blocks, heads, block_size)
    kshape = tuple(kshape)
    if kshape not in (nhd, hnd):
        raise ValueError("k_scale_cache: shape %s is neither %s nor %s" % (kshape, nhd, hnd))
    if tuple(vshape) != kshape or tuple(vstr) != tuple(kstr):
        raise ValueError("v_scale_cache: shape %s and strides %s must equal k_scale_cache's "
                         "%s and %s" % (tuple(vshape), tuple(vstr), kshape, tuple(kstr)))
    if kshape == nhd and (kshape != hnd or layout == "NHD"):
        return kp, vp, kstr[0], kstr[1], kstr[2]
    return kp, vp, kstr[0], kstr[2], kstr[1]


def _check_inputs(kshape, kstr, kkind, vshape, vstr, vkind):
    if len(kshape) != 3 or len(vshape) != 3:
        name, shape = ("key", kshape) if len(kshape) != 3 else ("value", vshape)
        raise ValueError("%s: must be 3-D [tokens, heads, head_dim], got shape %s"
                         % (name, tuple(shape)))
    if kkind not in INPUT_DTYPES:
        raise TypeError("key: must be float32, float16 or bfloat16, not %s" % kkind)
    if vkind != kkind:
        raise TypeError("value: dtype %s differs from key's %s" % (vkind, kkind))
    if vshape[1] != kshape[1]:
        raise ValueError("value: %d heads, key has %d" % (vshape[1], kshape[1]))
    for name, shape, strides in (("key", kshape, kstr), ("value", vshape, vstr)):
        if strides[2] != 1 and shape[2] > 1 and shape[0]:
            raise ValueError("%s: the last dimension must be contiguous (stride 1), got "
                             "strides %s" % (name, tuple(strides)))


def _check_devices(dev, *named):
    for name, d in named:
        _same_device(d, dev, name)


def plan(key, value, key_cache, value_cache, slot_mapping, swa_mapping, scale,
         k_scale, v_scale, k_scale_cache, v_scale_cache, overflow, overflow_count,
         nan_count, k_amax, v_amax, format, layout, num_tokens=None):
    """Checks the arguments and returns (device key, descriptor bytes, keep):
    keep holds the temporaries the descriptor points to.  num_tokens defaults
    to the slot mapping's length; key and value may have more rows.

    Each check is one cheap test on the way; a failing one calls a function
    that finds the argument to name."""
    keep = []
    kp, kshape, kstr, kkind, dev = describe(key, "key")
    vp, vshape, vstr, vkind, vd = describe(value, "value")
    kcp, kcshape, kcstr, kckind, kcd = describe(key_cache, "key_cache")
    vcp, vcshape, vcstr, vckind, vcd = describe(value_cache, "value_cache")
    if not vd == kcd == vcd == dev:
        _check_devices(dev, ("value", vd), ("key_cache", kcd), ("value_cache", vcd))
    if (len(kshape) != 3 or len(vshape) != 3 or kkind not in INPUT_DTYPES or
            vkind != kkind or vshape[1] != kshape[1] or
            (kstr[2] != 1 and kshape[2] > 1 or vstr[2] != 1 and vshape[2] > 1) and
            kshape[0] and vshape[0]):
        _check_inputs(kshape, kstr, kkind, vshape, vstr, vkind)
    heads = kshape[1]

    sp, sshape, sstr, skind, sd = describe(slot_mapping, "slot_mapping")
    if len(sshape) != 1 or skind not in _INDEX_TYPES or sd != dev or sstr[0] != 1:
        sp, _, _ = _index(slot_mapping, "slot_mapping", dev, keep)
    n_slots, slot_type = sshape[0], _INDEX_TYPES[skind]
    if num_tokens is None:
        num_tokens = n_slots
    elif n_slots < num_tokens:
        raise ValueError("slot_mapping: %d entries for %d tokens" % (n_slots, num_tokens))
    if kshape[0] < num_tokens or vshape[0] < num_tokens:
        raise ValueError("%s: %d rows for %d tokens (slot_mapping's length)"
                         % ((("key", kshape[0]) if kshape[0] < num_tokens
                             else ("value", vshape[0])) + (num_tokens,)))

    if vckind != kckind:
        raise TypeError("value_cache: dtype %s differs from key_cache's %s" % (vckind, kckind))
    cache = kckind if format is None and kckind in FP8_FORMATS else \
        cache_format(kckind, format, "key_cache")
    if cache != kkind and cache not in FP8_FORMATS:
        raise TypeError("key_cache: a %s cache for %s input; a cache is FP8 or of the "
                        "input's dtype" % (cache, kkind))
    layout, blocks, block_size, kcb, kcs, kch = _cache_dims(kcshape, kcstr, heads, layout,
                                                           "key_cache")
    _, vblocks, vblock_size, vcb, vcs, vch = _cache_dims(vcshape, vcstr, heads, layout,
                                                         "value_cache")
    if (vblocks != blocks or vblock_size != block_size or kcshape[3] != kshape[2] or
            vcshape[3] != vshape[2] or kcstr[3] != 1 and kshape[2] > 1 or
            vcstr[3] != 1 and vshape[2] > 1):
        _check_caches(blocks, block_size, vblocks, vblock_size, kcshape, kcstr, kshape,
                      vcshape, vcstr, vshape)

    swa = swa_len = swa_type = 0
    if swa_mapping is not None:
        swa, swa_len, swa_type = _index(swa_mapping, "swa_mapping", dev, keep)

    if scale is None:
        scale = _implied_scale(k_scale, v_scale, k_scale_cache, v_scale_cache)
    mode = SCALE_CODES.get(scale) if isinstance(scale, str) else None
    if mode is None:
        raise ValueError("scale: must be None, 'one', 'tensor', 'head' or 'dynamic', not %r"
                         % (scale,))
    ks = vs = ksc = vsc = scb = scs = sch = 0
    if mode:
        if cache not in FP8_FORMATS:
            raise ValueError("scale: %r needs an FP8 cache; key_cache is %s" % (scale, cache))
        if mode != _capi.SCALE_TOKEN_HEAD:
            if k_scale is None or v_scale is None:
                raise ValueError("%s: scale=%r needs k_scale and v_scale"
                                 % ("k_scale" if k_scale is None else "v_scale", scale))
            count = 1 if mode == _capi.SCALE_TENSOR else heads
            ks = _f32(k_scale, "k_scale", dev, count, keep)
            vs = _f32(v_scale, "v_scale", dev, count, keep)
        else:
            ksc, vsc, scb, scs, sch = _scale_cache_strides(k_scale_cache, v_scale_cache, dev,
                                                           blocks, block_size, heads, layout)
    if mode != _capi.SCALE_TOKEN_HEAD and (k_scale_cache is not None or
                                           v_scale_cache is not None):
        raise ValueError("%s: given with scale=%r" % ("k_scale_cache" if k_scale_cache
                                                       is not None else "v_scale_cache", scale))
    if mode in (_capi.SCALE_ONE, _capi.SCALE_TOKEN_HEAD) and (k_scale is not None or
                                                              v_scale is not None):
        raise ValueError("%s: given with scale=%r" % ("k_scale" if k_scale is not None
                                                       else "v_scale", scale))

    ov = OVERFLOW_CODES.get(overflow) if isinstance(overflow, str) else None
    if ov is None:
        raise ValueError("overflow: must be 'saturate' or 'nonsaturating', not %r" % (overflow,))
    oc = 0 if overflow_count is None else _counter(overflow_count, "overflow_count", dev)
    nc = 0 if nan_count is None else _counter(nan_count, "nan_count", dev)
    ka = 0 if k_amax is None else _f32(k_amax, "k_amax", dev, heads, keep)
    va = 0 if v_amax is None else _f32(v_amax, "v_amax", dev, heads, keep)

    desc = _capi.CACHE_WRITE_PACKER.pack(
        kp, vp, CODES[kkind], num_tokens, heads, kshape[2], vshape[2],
        kstr[0], kstr[1], vstr[0], vstr[1],
        kcp, vcp, CODES[cache], blocks, block_size, kcb, kcs, kch, vcb, vcs, vch,
        sp, slot_type, swa, swa_type, swa_len,
        mode, ks, vs, ov, ksc, vsc, scb, scs, sch, oc, nc, ka, va)
    return dev, desc, keep


def _check_caches(blocks, block_size, vblocks, vblock_size, kcshape, kcstr, kshape,
                  vcshape, vcstr, vshape):
    if (vblocks, vblock_size) != (blocks, block_size):
        raise ValueError("value_cache: %d blocks of %d slots, key_cache has %d of %d"
                         % (vblocks, vblock_size, blocks, block_size))
    for name, shape, strides, dim in (("key_cache", kcshape, kcstr, kshape[2]),
                                      ("value_cache", vcshape, vcstr, vshape[2])):
        if shape[3] != dim:
            raise ValueError("%s: head dim %d, its input's is %d" % (name, shape[3], dim))
        if strides[3] != 1 and dim > 1:
            raise ValueError("%s: the last dimension must be contiguous (stride 1), got "
                             "strides %s" % (name, tuple(strides)))


def _implied_scale(k_scale, v_scale, k_scale_cache, v_scale_cache):
    """scale=None: "dynamic" with scale caches, "tensor" or "head" (by the
    number of values) with k_scale/v_scale, else no scale."""
    if k_scale_cache is not None or v_scale_cache is not None:
        return "dynamic"
    x = k_scale if k_scale is not None else v_scale
    if x is None:
        return "one"
    if isinstance(x, (float, int)):
        return "tensor"
    return "tensor" if _numel(describe(x, "k_scale" if x is k_scale else "v_scale")[1]) == 1 \
        else "head"


def write(*args):
    """plan(*args), then the call on the device's backend and stream."""
    dev, desc, keep = plan(*args)
    _capi.raise_for(_capi.fn.reshape_and_cache(_backends.handle(dev), desc,
                                               _backends.stream(dev)))
    del keep
