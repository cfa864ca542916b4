# SPDX-License-Identifier: MIT
"""The cache write: arguments checked and turned into one fp8kv_cache_write
descriptor, then one call.  plan() is the full check, which reads each
array once; hot() makes the hot path of an engine's decode step, which
reuses plan()'s results for arguments like those it checked before
(_plans, P-PLAN-CACHE).

plan() and write() take the parameters of _signature.PARAMS by keyword only
(P-ONE-SIGNATURE); write() and hot()'s functions are built from the table."""

from . import _backends, _capi, _plans, _torch
from ._arrays import (counter, describe, f32, is_number, made_contiguous, numel, same_device,
                      wrong_dtype)
from ._signature import BY_NAME, PARAMS, POSITIONAL, function
from ._types import (CACHE_DTYPES, CODES, FP8_FORMATS, INDEX_CODES, INPUT_DTYPES,
                     OVERFLOW_CODES, SCALE_CODES, SCALE_MODES, cache_format, dtype_name)

_KEY_DTYPES = BY_NAME["key"].dtypes
_INDEX_DTYPES = BY_NAME["slot_mapping"].dtypes
_SCALE_CACHE_DTYPES = BY_NAME["k_scale_cache"].dtypes


def index_mapping(x, name, dev, keep):
    """A 1-D int64/int32 mapping as (pointer, length, index type); a strided
    one is copied first (keep holds the copy for the call)."""
    ptr, shape, strides, kind, d = describe(x, name)
    if len(shape) != 1:
        raise ValueError("%s: must be 1-D, got shape %s" % (name, tuple(shape)))
    if kind not in INDEX_CODES:
        raise wrong_dtype(name, kind, _INDEX_DTYPES, "hold")
    same_device(d, dev, name)
    if strides[0] != 1 and shape[0] > 1:
        x = made_contiguous(x)
        keep.append(x)
        ptr = describe(x, name)[0]
    return ptr, shape[0], INDEX_CODES[kind]


def swa_mapping_arg(swa_mapping, dev, keep):
    """The optional swa_mapping as (pointer, length, index type), zeros when
    None; an empty one is an error (A-ZERO-SIZE)."""
    if swa_mapping is None:
        return 0, 0, 0
    swa, swa_len, swa_type = index_mapping(swa_mapping, "swa_mapping", dev, keep)
    if swa_len < 1:
        raise ValueError("swa_mapping: empty; a mapping must have at least 1 entry "
                         "(A-ZERO-SIZE)")
    return swa, swa_len, swa_type


def counter_args(overflow, overflow_count, nan_count, dev):
    """The overflow policy's code and the optional counters' pointers (0 when
    None), as every write packs them."""
    ov = OVERFLOW_CODES.get(overflow) if isinstance(overflow, str) else None
    if ov is None:
        raise ValueError("overflow: must be 'saturate' or 'nonsaturating', not %r" % (overflow,))
    oc = 0 if overflow_count is None else counter(overflow_count, "overflow_count", dev)
    nc = 0 if nan_count is None else counter(nan_count, "nan_count", dev)
    return ov, oc, nc


def amax_args(k_amax, v_amax, dev, heads, keep):
    """The optional per-head amax outputs' pointers (0 when None)."""
    ka = 0 if k_amax is None else f32(k_amax, "k_amax", dev, heads, keep, True)
    va = 0 if v_amax is None else f32(v_amax, "v_amax", dev, heads, keep, True)
    return ka, va


def run_with(call, planned):
    """call (a library write on handle, descriptor, stream) on a plan()
    result, on the device's backend and stream; raises its error."""
    dev, desc, keep = planned
    _capi.raise_for(call(_backends.handle(dev), desc, _backends.stream(dev)))
    del keep


def token_count(num_tokens, n_slots, kshape, vshape):
    """The tokens a key/value write writes: num_tokens, or the slot
    mapping's length when None; each of key and value must have as many
    rows."""
    if num_tokens is None:
        num_tokens = n_slots
    elif n_slots < num_tokens:
        raise ValueError("slot_mapping: %d entries for %d tokens" % (n_slots, num_tokens))
    if kshape[0] < num_tokens or vshape[0] < num_tokens:
        raise ValueError("%s: %d rows for %d tokens (slot_mapping's length)"
                         % ((("key", kshape[0]) if kshape[0] < num_tokens
                             else ("value", vshape[0])) + (num_tokens,)))
    return num_tokens


def cache_dims(shape, strides, heads, layout, name):
    """(layout, blocks, block_size, stride block, slot, head) of a 4-D cache
    whose logical order is NHD [blocks, block_size, heads, dim] or HND
    [blocks, heads, block_size, dim]: stated, or read from where the heads
    are."""
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
    elif not isinstance(layout, str) or layout not in ("NHD", "HND"):
        raise ValueError("layout: must be 'NHD', 'HND' or None, not %r" % (layout,))
    if shape[2 if layout == "NHD" else 1] != heads:
        raise ValueError("%s: %s shape %s, but key has %d heads"
                         % (name, layout, tuple(shape), heads))
    if layout == "NHD":
        blocks, block_size, sb, ss, sh = shape[0], shape[1], strides[0], strides[1], strides[2]
    else:
        blocks, block_size, sb, ss, sh = shape[0], shape[2], strides[0], strides[2], strides[1]
    if blocks < 1 or block_size < 1:
        # the zero-size rule (A-ZERO-SIZE): a dimension is at least 1
        raise ValueError("%s: %d blocks of %d slots; blocks and block_size must be at least 1"
                         % (name, blocks, block_size))
    return layout, blocks, block_size, sb, ss, sh


def _scale_cache_strides(k_sc, v_sc, dev, blocks, block_size, heads, layout):
    """(k ptr, v ptr, stride block, slot, head) of the token_head mode's scale
    caches, [blocks, block_size, heads] or [blocks, heads, block_size] (the
    cache's order when both fit)."""
    if k_sc is None or v_sc is None:
        raise ValueError("%s: scale='token_head' needs k_scale_cache and v_scale_cache"
                         % ("k_scale_cache" if k_sc is None else "v_scale_cache"))
    kp, kshape, kstr, kkind, kd = describe(k_sc, "k_scale_cache", True)
    vp, vshape, vstr, vkind, vd = describe(v_sc, "v_scale_cache", True)
    for name, kind, d in (("k_scale_cache", kkind, kd), ("v_scale_cache", vkind, vd)):
        if kind not in _SCALE_CACHE_DTYPES:
            raise wrong_dtype(name, kind, _SCALE_CACHE_DTYPES)
        same_device(d, dev, name)
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


def check_inputs(kshape, kstr, kkind, vshape, vstr, vkind):
    for name, shape, kind in (("key", kshape, kkind), ("value", vshape, vkind)):
        if len(shape) != 3:
            raise ValueError("%s: must be 3-D [tokens, heads, head_dim], got shape %s"
                             % (name, tuple(shape)))
        if kind not in _KEY_DTYPES:
            raise wrong_dtype(name, kind, _KEY_DTYPES)
    if vkind != kkind:
        raise TypeError("value: dtype %s differs from key's %s"
                        % (dtype_name(vkind), dtype_name(kkind)))
    if vshape[1] != kshape[1]:
        raise ValueError("value: %d heads, key has %d" % (vshape[1], kshape[1]))
    for name, shape, strides in (("key", kshape, kstr), ("value", vshape, vstr)):
        if shape[1] < 1 or shape[2] < 1:
            # the zero-size rule (A-ZERO-SIZE): tokens may be 0, not these
            raise ValueError("%s: shape %s; heads and head_dim must be at least 1"
                             % (name, tuple(shape)))
        if strides[2] != 1 and shape[2] > 1 and shape[0]:
            raise ValueError("%s: the last dimension must be contiguous (stride 1), got "
                             "strides %s" % (name, tuple(strides)))


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
    """scale=None: "token_head" with scale caches, "tensor" or "head" (by the
    number of values) with k_scale/v_scale, else no scale."""
    if k_scale_cache is not None or v_scale_cache is not None:
        return "token_head"
    x, name = (k_scale, "k_scale") if k_scale is not None else (v_scale, "v_scale")
    if x is None:
        return "one"
    if type(x) is _torch.Tensor:       # the hot path; f32() checks it later
        return "tensor" if x.numel() == 1 else "head"
    if type(x) is not float and not is_number(x):
        return "tensor" if numel(describe(x, name)[1]) == 1 else "head"
    return "tensor"


def plan(*, key, value, key_cache, value_cache, slot_mapping, swa_mapping, scale, k_scale,
         v_scale, k_scale_cache, v_scale_cache, overflow, overflow_count, nan_count, k_amax,
         v_amax, format, layout, num_tokens=None):
    """Checks the arguments and returns (device key, descriptor bytes, keep):
    keep holds the temporaries the descriptor points to.  num_tokens defaults
    to the slot mapping's length; key and value may have more rows.

    Each check is one cheap test on the way; a failing one calls a function
    that finds the argument to name."""
    keep = []
    kp, kshape, kstr, kkind, dev = describe(key, "key")
    vp, vshape, vstr, vkind, vd = describe(value, "value")
    kcp, kcshape, kcstr, kckind, kcd = describe(key_cache, "key_cache", True)
    vcp, vcshape, vcstr, vckind, vcd = describe(value_cache, "value_cache", True)
    if not vd == kcd == vcd == dev:
        for name, d in (("value", vd), ("key_cache", kcd), ("value_cache", vcd)):
            same_device(d, dev, name)
    if (len(kshape) != 3 or len(vshape) != 3 or kkind not in INPUT_DTYPES or
            vkind != kkind or vshape[1] != kshape[1] or not kshape[1] or not kshape[2] or
            not vshape[2] or
            (kstr[2] != 1 and kshape[2] > 1 or vstr[2] != 1 and vshape[2] > 1) and
            kshape[0] and vshape[0]):
        check_inputs(kshape, kstr, kkind, vshape, vstr, vkind)
    heads = kshape[1]

    sp, sshape, sstr, skind, sd = describe(slot_mapping, "slot_mapping")
    if len(sshape) != 1 or skind not in INDEX_CODES or sd != dev or sstr[0] != 1:
        sp, _, _ = index_mapping(slot_mapping, "slot_mapping", dev, keep)
    n_slots, slot_type = sshape[0], INDEX_CODES[skind]
    num_tokens = token_count(num_tokens, n_slots, kshape, vshape)

    if kckind not in CACHE_DTYPES:
        cache_format(kckind, None, "key_cache")       # names key_cache's dtype
    if vckind != kckind:
        raise TypeError("value_cache: dtype %s differs from key_cache's %s"
                        % (dtype_name(vckind), dtype_name(kckind)))
    cache = kckind if format is None and kckind in FP8_FORMATS else \
        cache_format(kckind, format, "key_cache")
    if cache != kkind and cache not in FP8_FORMATS:
        raise TypeError("key_cache: a %s cache for %s input; a cache is FP8 or of the "
                        "input's dtype" % (dtype_name(cache), dtype_name(kkind)))
    layout, blocks, block_size, kcb, kcs, kch = cache_dims(kcshape, kcstr, heads, layout,
                                                           "key_cache")
    _, vblocks, vblock_size, vcb, vcs, vch = cache_dims(vcshape, vcstr, heads, layout,
                                                         "value_cache")
    if (vblocks != blocks or vblock_size != block_size or kcshape[3] != kshape[2] or
            vcshape[3] != vshape[2] or kcstr[3] != 1 and kshape[2] > 1 or
            vcstr[3] != 1 and vshape[2] > 1):
        _check_caches(blocks, block_size, vblocks, vblock_size, kcshape, kcstr, kshape,
                      vcshape, vcstr, vshape)

    swa, swa_len, swa_type = swa_mapping_arg(swa_mapping, dev, keep)

    if scale is None:
        scale = _implied_scale(k_scale, v_scale, k_scale_cache, v_scale_cache)
    mode = SCALE_CODES.get(scale) if isinstance(scale, str) else None
    if mode is None:
        raise ValueError("scale: must be None, %s, not %r"
                         % (", ".join("'%s'" % m for m in SCALE_MODES), scale))
    ks = vs = ksc = vsc = scb = scs = sch = 0
    if mode:
        if cache not in FP8_FORMATS:
            raise ValueError("scale: %r needs an FP8 cache; key_cache is %s"
                             % (scale, dtype_name(cache)))
        if mode != _capi.SCALE_TOKEN_HEAD:
            if k_scale is None or v_scale is None:
                raise ValueError("%s: scale=%r needs k_scale and v_scale"
                                 % ("k_scale" if k_scale is None else "v_scale", scale))
            count = 1 if mode == _capi.SCALE_TENSOR else heads
            ks = f32(k_scale, "k_scale", dev, count, keep)
            vs = f32(v_scale, "v_scale", dev, count, keep)
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

    ov, oc, nc = counter_args(overflow, overflow_count, nan_count, dev)
    ka, va = amax_args(k_amax, v_amax, dev, heads, keep)

    desc = _capi.CACHE_WRITE_PACKER.pack(
        kp, vp, CODES[kkind], num_tokens, heads, kshape[2], vshape[2],
        kstr[0], kstr[1], vstr[0], vstr[1],
        kcp, vcp, CODES[cache], blocks, block_size, kcb, kcs, kch, vcb, vcs, vch,
        sp, slot_type, swa, swa_type, swa_len,
        mode, ks, vs, ov, ksc, vsc, scb, scs, sch, oc, nc, ka, va)
    return dev, desc, keep


def run(planned):
    """The call of a plan() result on the device's backend and stream."""
    run_with(_capi.fn.reshape_and_cache, planned)


write = function("write", """plan(), then run(): the whole write, every argument by keyword.""",
                 plan, positional=0, then=run, module=__name__)



_DESCRIPTOR = _plans.Descriptor(_capi.CacheWrite, PARAMS)
_cache = {}     # the plans of this write, shared by every hot() function


def hot(name, doc, positional=POSITIONAL, traced=None, prepare=False, module=__name__):
    """The write on cached plans (see _plans.hot): fp8kv.reshape_and_cache,
    the operator's kernel, and prepare()."""
    return _plans.hot(name, doc, plan, _DESCRIPTOR, _capi.fn.reshape_and_cache, _cache,
                      positional=positional, traced=traced, prepare=prepare, module=module)


prepare = hot("prepare", """The eager write's Python work without its library call: returns
(handle, descriptor, stream, what to keep until the call), for
dev/py_call_cost.py and dev/gpu_check.py.""", positional=0, prepare=True)
