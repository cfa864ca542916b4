# SPDX-License-Identifier: MIT
"""The grouped write (include/fp8kv.h section 8): key and value rows cut into
groups of group_size elements, each group with its own scale, computed by
the backend and stored through the scale arrays' strides; FP8, e2m1 (two
values a byte) and int8 caches.

PARAMS is the write's one table (P-ONE-SIGNATURE): fp8kv.reshape_and_cache_
grouped, fp8kv.golden's, the torch schema, kernel and fake come from it.
plan() checks the arguments and packs fp8kv_cache_write and
fp8kv_group_scales as one descriptor (_capi.GroupedWrite); hot() reuses
plans (P-PLAN-CACHE)."""

import ctypes

from . import _capi, _plans
from ._arrays import describe, f32, float32_bits, integer, same_device, wrong_dtype
from ._signature import (AMAX, COUNTERS, FORMAT, KV, LAYOUT, MAPPINGS, Param, function,
                         positional_count)
from ._signature import REQUIRED  # noqa: F401 (tests read _grouped.REQUIRED)
from ._types import CODES, FP8_FORMATS, dtype_name, parse_format
from ._write import (amax_args, cache_dims, check_inputs, counter_args, index_mapping, run_with,
                     swa_mapping_arg, token_count)

PARAMS = KV + MAPPINGS + (
    Param("rule", "str", "f32", False, None),
    Param("group_size", "int", None, False, None),
    Param("k_scales", "Tensor", None, True, None),
    Param("v_scales", "Tensor", None, True, None),
    Param("k_global", "Tensor", None, False, ("f32",)),
    Param("v_global", "Tensor", None, False, ("f32",)),
    Param("divisor", "float", None, False, None),
    Param("scale_floor", "float", None, False, None),
    Param("rounding", "str", "nearest_even", False, None),
) + COUNTERS + AMAX + (FORMAT, LAYOUT)
POSITIONAL = positional_count(PARAMS)
OUTPUTS = tuple(p.name for p in PARAMS if p.written)

RULES = {"f32": _capi.GROUP_F32, "e8m0_floor": _capi.GROUP_E8M0_FLOOR,
         "e8m0_rceil": _capi.GROUP_E8M0_RCEIL, "nvfp4": _capi.GROUP_NVFP4}
ROUNDINGS = {"nearest_even": _capi.ROUND_NEAREST_EVEN, "toward_zero": _capi.ROUND_TOWARD_ZERO}
# group_size=None: the rule's usual group (NVFP4's 16, MX's 32); f32: the row
DEFAULT_GROUP = {"nvfp4": 16, "e8m0_floor": 32, "e8m0_rceil": 32}
# the kinds a scale array may hold, by rule: fp32, or bytes (E8M0, e4m3fn)
SCALE_KINDS = {"f32": ("f32",), "e8m0_floor": ("u8", "e8m0"), "e8m0_rceil": ("u8", "e8m0"),
               "nvfp4": ("u8", "e4m3fn")}
ELEMENT_FORMATS = FP8_FORMATS + ("e2m1", "int8")


def element_format(kind, format, name):
    """The cache's element format from its kind and format=: a float8 or
    float4_e2m1fn_x2 dtype, int8 (torch.int8, numpy int8), or uint8 with
    format= (FP8, "e2m1" or "int8"); fn/fnuz is never guessed."""
    if format is not None and not (isinstance(format, str) and format in ELEMENT_FORMATS):
        format = parse_format(format)      # a torch float8 dtype, or a clear error
    implied = {"i8": "int8", "e2m1": "e2m1"}.get(kind, kind if kind in FP8_FORMATS else None)
    if implied is not None:
        if format is not None and format != implied:
            raise ValueError("format: %r contradicts %s's dtype (%s)"
                             % (format, name, dtype_name(kind)))
        return implied
    if kind == "u8":
        if format is None:
            raise TypeError("%s: a uint8 cache needs format= (one of %s)"
                            % (name, ", ".join(ELEMENT_FORMATS)))
        return format
    raise TypeError("%s: a grouped write's cache holds FP8, e2m1 or int8 elements (a float8, "
                    "float4_e2m1fn_x2 or int8 dtype, or uint8 with format=), not %s"
                    % (name, dtype_name(kind)))


def _scale_strides(x, name, dev, kinds, blocks, block_size, heads, groups, layout):
    """(pointer, (stride block, slot, head, group, interleave, stride
    interleave)) of a scale array: 4-D [blocks, block_size, heads, groups]
    (NHD) or [blocks, heads, block_size, groups] (HND), in the cache's
    order; or 5-D, interleaved by I tokens (section 8): [blocks,
    block_size / I, heads, groups, I] (NHD) or [blocks, heads, block_size /
    I, groups, I] (HND), slot s at (s / I, ..., s % I).  Any strides."""
    if x is None:
        raise ValueError("%s: the grouped write needs k_scales and v_scales, the arrays its "
                         "group scales go to" % name)
    ptr, shape, strides, kind, d = describe(x, name, True)
    if kind not in kinds:
        raise wrong_dtype(name, kind, kinds)
    same_device(d, dev, name)
    shape, strides = tuple(shape), tuple(strides)
    inter = shape[4] if len(shape) == 5 else 0
    if inter and block_size % inter:
        raise ValueError("%s: interleaved by %d (its last dimension), which does not divide "
                         "block_size %d" % (name, inter, block_size))
    slots = block_size // inter if inter else block_size
    order = (blocks, slots, heads, groups) if layout == "NHD" else (blocks, heads, slots, groups)
    want = order + ((inter,) if inter else ())
    if len(shape) not in (4, 5) or shape != want:
        raise ValueError("%s: shape %s; a %s cache of %d blocks of %d slots, %d heads and %d "
                         "groups per row needs %s, or %s interleaved by I tokens"
                         % (name, shape, layout, blocks, block_size, heads, groups, order,
                            order[:1] + ("block_size/I",) + order[2:] + ("I",)
                            if layout == "NHD" else
                            order[:2] + ("block_size/I",) + order[3:] + ("I",)))
    if any(s < 0 for s in strides):
        raise ValueError("%s: negative strides %s" % (name, strides))
    sb, s1, s2, sg = strides[:4]
    ss, sh = (s1, s2) if layout == "NHD" else (s2, s1)
    return ptr, (sb, ss, sh, sg, inter, strides[4] if inter else 0)


def _float(x, name):
    """A float keyword as fp32 (0.0 for None): a number, else TypeError."""
    if x is None:
        return 0.0
    float32_bits(x, name)       # names what is no real number or beyond fp32
    return float(x)


def plan(*, key, value, key_cache, value_cache, slot_mapping, swa_mapping, rule, group_size,
         k_scales, v_scales, k_global, v_global, divisor, scale_floor, rounding, overflow,
         overflow_count, nan_count, k_amax, v_amax, format, layout, num_tokens=None):
    """Checks the arguments and returns (device key, descriptor bytes,
    keep), as _write.plan does for the MHA write."""
    keep = []
    kp, kshape, kstr, kkind, dev = describe(key, "key")
    vp, vshape, vstr, vkind, vd = describe(value, "value")
    kcp, kcshape, kcstr, kckind, kcd = describe(key_cache, "key_cache", True)
    vcp, vcshape, vcstr, vckind, vcd = describe(value_cache, "value_cache", True)
    for name, d in (("value", vd), ("key_cache", kcd), ("value_cache", vcd)):
        same_device(d, dev, name)
    check_inputs(kshape, kstr, kkind, vshape, vstr, vkind)
    heads, dk, dv = kshape[1], kshape[2], vshape[2]

    sp, n_slots, slot_type = index_mapping(slot_mapping, "slot_mapping", dev, keep)
    num_tokens = token_count(num_tokens, n_slots, kshape, vshape)

    cache = element_format(kckind, format, "key_cache")
    if vckind != kckind:
        raise TypeError("value_cache: dtype %s differs from key_cache's %s"
                        % (dtype_name(vckind), dtype_name(kckind)))
    layout, blocks, block_size, kcb, kcs, kch = cache_dims(kcshape, kcstr, heads, layout,
                                                          "key_cache")
    _, vblocks, vblock_size, vcb, vcs, vch = cache_dims(vcshape, vcstr, heads, layout,
                                                        "value_cache")
    if (vblocks, vblock_size) != (blocks, block_size):
        raise ValueError("value_cache: %d blocks of %d slots, key_cache has %d of %d"
                         % (vblocks, vblock_size, blocks, block_size))
    per_byte = 2 if cache == "e2m1" else 1
    for name, shape, strides, dim in (("key_cache", kcshape, kcstr, dk),
                                      ("value_cache", vcshape, vcstr, dv)):
        if dim % per_byte:
            raise ValueError("%s: e2m1 rows have an even length; its input's head dim is %d"
                             % (name, dim))
        if shape[3] != dim // per_byte:
            raise ValueError("%s: last dimension %d; its input's head dim %d needs %d%s"
                             % (name, shape[3], dim, dim // per_byte,
                                " (two e2m1 values a byte)" if per_byte == 2 else ""))
        if strides[3] != 1 and shape[3] > 1:
            raise ValueError("%s: the last dimension must be contiguous (stride 1), got "
                             "strides %s" % (name, tuple(strides)))

    swa, swa_len, swa_type = swa_mapping_arg(swa_mapping, dev, keep)

    rule_code = RULES.get(rule) if isinstance(rule, str) else None
    if rule_code is None:
        raise ValueError("rule: must be one of %s, not %r"
                         % (", ".join("'%s'" % r for r in RULES), rule))
    if group_size is None:
        if rule in DEFAULT_GROUP:
            group_size = DEFAULT_GROUP[rule]
        elif dk == dv:
            group_size = dk
        else:
            raise ValueError("group_size: needed when the head dims differ (%d, %d)" % (dk, dv))
    group_size = integer(group_size, "group_size", 1, 1 << 62)
    for name, dim in (("key", dk), ("value", dv)):
        if dim % group_size:
            raise ValueError("group_size: %d does not divide %s's head dim %d"
                             % (group_size, name, dim))
    kinds = SCALE_KINDS[rule]
    ksp, kst = _scale_strides(k_scales, "k_scales", dev, kinds, blocks, block_size, heads,
                              dk // group_size, layout)
    vsp, vst = _scale_strides(v_scales, "v_scales", dev, kinds, blocks, block_size, heads,
                              dv // group_size, layout)
    v_own = int(vst != kst)

    kg = vg = 0
    if rule == "nvfp4":
        if k_global is None or v_global is None:
            raise ValueError("%s: rule='nvfp4' needs k_global and v_global, the global scales "
                             "(decode direction)" % ("k_global" if k_global is None
                                                     else "v_global"))
        kg = f32(k_global, "k_global", dev, 1, keep)
        vg = f32(v_global, "v_global", dev, 1, keep)
    elif k_global is not None or v_global is not None:
        raise ValueError("%s: given with rule=%r; only 'nvfp4' takes global scales"
                         % ("k_global" if k_global is not None else "v_global", rule))
    if rule != "f32" and (divisor is not None or scale_floor is not None):
        raise ValueError("%s: given with rule=%r; only 'f32' takes it"
                         % ("divisor" if divisor is not None else "scale_floor", rule))
    div, floor = _float(divisor, "divisor"), _float(scale_floor, "scale_floor")

    rnd = ROUNDINGS.get(rounding) if isinstance(rounding, str) else None
    if rnd is None:
        raise ValueError("rounding: must be 'nearest_even' or 'toward_zero', not %r"
                         % (rounding,))
    if rnd and cache != "int8":
        raise ValueError("rounding: %r applies to int8 caches; key_cache holds %s"
                         % (rounding, cache))
    ov, oc, nc = counter_args(overflow, overflow_count, nan_count, dev)
    ka, va = amax_args(k_amax, v_amax, dev, heads, keep)

    desc = _capi.GROUPED_WRITE_PACKER.pack(
        kp, vp, CODES[kkind], num_tokens, heads, dk, dv, kstr[0], kstr[1], vstr[0], vstr[1],
        kcp, vcp, CODES[cache], blocks, block_size, kcb, kcs, kch, vcb, vcs, vch,
        sp, slot_type, swa, swa_type, swa_len,
        _capi.SCALE_GROUP, 0, 0, ov, 0, 0, 0, 0, 0, oc, nc, ka, va,
        _GROUP_SCALES_SIZE, rule_code, group_size, rnd, div, floor, kg, vg, ksp, vsp,
        *kst, v_own, *(vst if v_own else (0,) * 6))
    return dev, desc, keep


_GROUP_SCALES_SIZE = ctypes.sizeof(_capi.GroupScales)
_SPLIT = _capi.CACHE_WRITE_SIZE


def call(handle, desc, stream):
    """fp8kv_reshape_and_cache_grouped on a GroupedWrite's bytes."""
    return _capi.fn.reshape_and_cache_grouped(handle, desc[:_SPLIT], desc[_SPLIT:], stream)


def run(planned):
    """The call of a plan() result on the device's backend and stream."""
    run_with(call, planned)


write = function("write", """plan(), then run(): the whole grouped write, by keyword.""",
                 plan, positional=0, then=run, module=__name__, params=PARAMS)

_DESCRIPTOR = _plans.Descriptor(_capi.GroupedWrite, PARAMS)
_cache = {}


def hot(name, doc, positional=POSITIONAL, traced=None, prepare=False, module=__name__):
    """The grouped write on cached plans (see _plans.hot)."""
    return _plans.hot(name, doc, plan, _DESCRIPTOR, call, _cache, positional=positional,
                      traced=traced, prepare=prepare, module=module, params=PARAMS)
