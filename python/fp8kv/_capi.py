# SPDX-License-Identifier: MIT
"""libfp8kv through ctypes: finding the library, its prototypes, and the two
structures of include/fp8kv.h mirrored field for field.

The C header is the source of truth.  make check builds a small C program
that prints sizeof and offsetof of every field (tests/python/struct_layout.c)
and compares them with the structures here.
"""

import ctypes
import os
import struct

from ._errors import Error, ERROR_CLASSES

# The soname the loader is asked for when the package has no built-in path.
SONAME = "libfp8kv.so.1"

# ---- constants of include/fp8kv.h -------------------------------------------

OK, EINVAL, ENOTSUP, ERANGE, ENODEV, EBACKEND, ENOMEM = range(7)
F32, F16, BF16, E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ, E2M1, INT8 = range(9)
SATURATE, NONSATURATING = 0, 1
SCALE_ONE, SCALE_TENSOR, SCALE_HEAD, SCALE_TOKEN_HEAD, SCALE_GROUP = range(5)
GROUP_F32, GROUP_E8M0_FLOOR, GROUP_E8M0_RCEIL, GROUP_NVFP4 = range(4)
ROUND_NEAREST_EVEN, ROUND_TOWARD_ZERO = 0, 1
MLA_PLAIN, MLA_DS = 0, 1
INDEX_INT64, INDEX_INT32 = 0, 1
LAYOUT_NHD, LAYOUT_HND = 0, 1

_i64 = ctypes.c_int64
_int = ctypes.c_int          # the C enums are int-sized
_ptr = ctypes.c_void_p
_u32 = ctypes.c_uint32
_i32 = ctypes.c_int32
_flt = ctypes.c_float


# fp8kv_cache_write's fields in the header's order, pointers as None: the
# pointer type is the platform's (cache_write_structure below).
_CACHE_WRITE_LAYOUT = [
    ("key", None), ("value", None), ("input_dtype", _int),
    ("num_tokens", _i64), ("num_heads", _i64),
    ("head_dim_k", _i64), ("head_dim_v", _i64),
    ("key_stride_token", _i64), ("key_stride_head", _i64),
    ("value_stride_token", _i64), ("value_stride_head", _i64),
    ("key_cache", None), ("value_cache", None), ("cache_dtype", _int),
    ("num_blocks", _i64), ("block_size", _i64),
    ("key_cache_stride_block", _i64), ("key_cache_stride_slot", _i64),
    ("key_cache_stride_head", _i64),
    ("value_cache_stride_block", _i64), ("value_cache_stride_slot", _i64),
    ("value_cache_stride_head", _i64),
    ("slot_mapping", None), ("slot_type", _int),
    ("swa_mapping", None), ("swa_type", _int), ("swa_mapping_len", _i64),
    ("scale_mode", _int), ("k_scale", None), ("v_scale", None),
    ("overflow", _int),
    ("k_scale_cache", None), ("v_scale_cache", None),
    ("scale_cache_stride_block", _i64), ("scale_cache_stride_slot", _i64),
    ("scale_cache_stride_head", _i64),
    ("overflow_count", None), ("nan_count", None),
    ("k_amax", None), ("v_amax", None),
]


def cache_write_structure(pointer=_ptr, pack=None):
    """fp8kv_cache_write as a ctypes structure with pointers of type
    `pointer` (and _pack_ = pack when given): the build's own with the
    defaults; the tests lay out a 32-bit one with a 4-byte pointer type."""
    namespace = {"_fields_": [(name, ctype or pointer) for name, ctype in _CACHE_WRITE_LAYOUT],
                 "__doc__": "fp8kv_cache_write, in the header's order."}
    if pack is not None:
        namespace["_pack_"] = pack
    return type("CacheWrite", (ctypes.Structure,), namespace)


CacheWrite = cache_write_structure()


class SlotReport(ctypes.Structure):
    """fp8kv_slot_report."""
    _fields_ = [
        ("padding", _i64), ("out_of_range", _i64), ("duplicates", _i64),
        ("first_padding", _i64), ("first_out_of_range", _i64),
        ("first_duplicate", _i64),
    ]


def _struct_code(ctype):
    """The struct module's code of an integer, float or pointer ctypes type,
    by its size as ctypes has it on this platform (4-byte pointers on 32-bit
    ones); None for any other type."""
    if ctype is ctypes.c_float:
        return "f"
    if issubclass(ctype, ctypes.c_void_p):
        signed = False
    elif isinstance(getattr(ctype, "_type_", None), str) and ctype._type_ in "bhilqBHILQ":
        signed = ctype._type_.islower()
    else:
        return None
    code = {1: "b", 2: "h", 4: "i", 8: "q"}.get(ctypes.sizeof(ctype))
    return code if code is None or signed else code.upper()


def packer(structure):
    """A struct.Struct that lays values out exactly as ctypes lays out
    `structure` (padding included), so that one pack() call fills a whole
    descriptor: far cheaper than setting forty ctypes attributes.  Sizes are
    ctypes' own.  Raises ImportError (never a bare assert, which python -O
    drops) for a layout it cannot reproduce."""
    fmt, at = "=", 0
    for name, ctype in structure._fields_:
        offset = getattr(structure, name).offset
        code = _struct_code(ctype)
        if code is None or offset < at:
            raise ImportError("fp8kv: cannot mirror %s.%s (%s at offset %d) with struct"
                              % (structure.__name__, name, ctype.__name__, offset))
        fmt += "x" * (offset - at) + code
        at = offset + ctypes.sizeof(ctype)
    fmt += "x" * (ctypes.sizeof(structure) - at)
    result = struct.Struct(fmt)
    if result.size != ctypes.sizeof(structure):
        raise ImportError("fp8kv: the packed %s has %d bytes, ctypes says %d"
                          % (structure.__name__, result.size, ctypes.sizeof(structure)))
    return result


CACHE_WRITE_PACKER = packer(CacheWrite)
CACHE_WRITE_FIELDS = tuple(name for name, _ in CacheWrite._fields_)

# fp8kv_group_scales (section 8), pointers as None.  size is the first field:
# the library reads only the fields a caller's header had.
_GROUP_SCALES_LAYOUT = [
    ("size", _u32), ("rule", _int), ("group_size", _i64), ("rounding", _int),
    ("divisor", _flt), ("scale_floor", _flt),
    ("k_global", None), ("v_global", None), ("k_scales", None), ("v_scales", None),
    ("stride_block", _i64), ("stride_slot", _i64), ("stride_head", _i64),
    ("stride_group", _i64), ("interleave", _i64), ("stride_interleave", _i64),
    ("v_own_layout", _i32),
    ("v_stride_block", _i64), ("v_stride_slot", _i64), ("v_stride_head", _i64),
    ("v_stride_group", _i64), ("v_interleave", _i64), ("v_stride_interleave", _i64),
]

# fp8kv_mla_write (section 9), pointers as None.
_MLA_WRITE_LAYOUT = [
    ("size", _u32), ("kind", _int), ("kv_c", None), ("k_pe", None), ("input_dtype", _int),
    ("num_tokens", _i64), ("kv_lora_rank", _i64), ("pe_dim", _i64),
    ("kv_c_stride_token", _i64), ("k_pe_stride_token", _i64),
    ("cache", None), ("cache_dtype", _int), ("num_blocks", _i64), ("block_size", _i64),
    ("stride_block", _i64), ("stride_slot", _i64),
    ("slot_mapping", None), ("slot_type", _int), ("swa_mapping", None), ("swa_type", _int),
    ("swa_mapping_len", _i64),
    ("scale_mode", _int), ("scale", None), ("divisor", _flt), ("overflow", _int),
    ("overflow_count", None), ("nan_count", None),
]


def _structure(name, layout, doc, pointer=_ptr, pack=None, constant=()):
    """A ctypes structure of a layout, pointers of type `pointer`; the
    pointer fields named in `constant` as unsigned integers of a pointer's
    size (fields a call leaves NULL, constant in every descriptor)."""
    unsigned = {4: ctypes.c_uint32, 8: ctypes.c_uint64}[ctypes.sizeof(pointer)]
    namespace = {"_fields_": [(n, ctype or (unsigned if n in constant else pointer))
                              for n, ctype in layout], "__doc__": doc}
    if pack is not None:
        namespace["_pack_"] = pack
    return type(name, (ctypes.Structure,), namespace)


def group_scales_structure(pointer=_ptr, pack=None):
    """fp8kv_group_scales as a ctypes structure (see cache_write_structure)."""
    return _structure("GroupScales", _GROUP_SCALES_LAYOUT,
                      "fp8kv_group_scales, in the header's order.", pointer, pack)


def mla_write_structure(pointer=_ptr, pack=None):
    """fp8kv_mla_write as a ctypes structure (see cache_write_structure)."""
    return _structure("MlaWrite", _MLA_WRITE_LAYOUT,
                      "fp8kv_mla_write, in the header's order.", pointer, pack)


GroupScales = group_scales_structure()
MlaWrite = mla_write_structure()
GROUP_SCALES_PACKER = packer(GroupScales)
MLA_WRITE_PACKER = packer(MlaWrite)

# The grouped write's two descriptors as one structure, fp8kv_cache_write
# then fp8kv_group_scales, for one pack() call (P-PLAN-CACHE); the call
# splits the bytes at CACHE_WRITE_SIZE.  The MHA scale pointers the grouped
# write leaves NULL are constant fields.  Both structures end on their
# alignment (8), so the second starts where the first ends, as its own.
GroupedWrite = _structure(
    "GroupedWrite", _CACHE_WRITE_LAYOUT + _GROUP_SCALES_LAYOUT,
    "fp8kv_cache_write followed by fp8kv_group_scales.",
    constant=("k_scale", "v_scale", "k_scale_cache", "v_scale_cache"))
CACHE_WRITE_SIZE = ctypes.sizeof(CacheWrite)
if (GroupedWrite.size.offset != CACHE_WRITE_SIZE or ctypes.sizeof(GroupedWrite) !=
        CACHE_WRITE_SIZE + ctypes.sizeof(GroupScales)):
    raise ImportError("fp8kv: fp8kv_group_scales does not follow fp8kv_cache_write "
                      "as itself in one structure")
GROUPED_WRITE_PACKER = packer(GroupedWrite)

# ---- finding and loading the library ------------------------------------------


def library_candidates():
    """Where the library is looked for (I-SONAME): $FP8KV_LIBRARY alone when
    it is set; else the path the package was built with (its _paths module:
    make check's and pip's copies), alone; else the soname through the
    loader's search path (LD_LIBRARY_PATH, ld.so.cache), then the install
    directory make install named as a fallback.  Each entry is (how, path)."""
    env = os.environ.get("FP8KV_LIBRARY")
    if env:
        return [("FP8KV_LIBRARY", env)]
    try:
        from . import _paths
    except ImportError:
        _paths = None
    if getattr(_paths, "LIBRARY", None):
        return [("built-in path", _paths.LIBRARY)]
    found = [("loader search path", SONAME)]
    if getattr(_paths, "FALLBACK", None):
        found.append(("install directory", _paths.FALLBACK))
    return found


def _load():
    tried = []
    for how, path in library_candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append("%s %s: no such file" % (how, path))
            continue
        try:
            # The default mode, RTLD_LOCAL, as every Python program loads a
            # library: fp8kv's modules must not need its symbols global.
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s %s: %s" % (how, path, e))
    raise ImportError("fp8kv: cannot load libfp8kv; tried\n  " + "\n  ".join(tried) +
                      "\nSet FP8KV_LIBRARY to the library's path (after make install, "
                      "run ldconfig).")


lib, LIBRARY_PATH = _load()

_c_char_p = ctypes.c_char_p
_PROTOTYPES = {
    # name: (restype, argtypes)
    "fp8kv_version": (_c_char_p, []),
    "fp8kv_strerror": (_c_char_p, [_int]),
    "fp8kv_last_error": (_c_char_p, []),
    "fp8kv_dtype_size": (ctypes.c_size_t, [_int]),
    "fp8kv_dtype_name": (_c_char_p, [_int]),
    "fp8kv_dtype_from_name": (_int, [_c_char_p, ctypes.POINTER(_int)]),
    "fp8kv_dtype_is_fp8": (_int, [_int]),
    "fp8kv_fp8_max": (ctypes.c_float, [_int]),
    "fp8kv_backend_open": (_int, [_c_char_p, ctypes.POINTER(_ptr)]),
    "fp8kv_backend_close": (None, [_ptr]),
    "fp8kv_backend_name": (_c_char_p, [_ptr]),
    "fp8kv_backend_device": (_c_char_p, [_ptr]),
    "fp8kv_backend_synchronize": (_int, [_ptr, _ptr]),
    "fp8kv_buffer_alloc": (_int, [_ptr, ctypes.c_size_t, ctypes.POINTER(_ptr)]),
    "fp8kv_buffer_free": (None, [_ptr, _ptr]),
    "fp8kv_buffer_upload": (_int, [_ptr, _ptr, _ptr, ctypes.c_size_t]),
    "fp8kv_buffer_download": (_int, [_ptr, _ptr, _ptr, ctypes.c_size_t]),
    "fp8kv_buffer_fill": (_int, [_ptr, _ptr, ctypes.c_uint8, ctypes.c_size_t]),
    "fp8kv_from_float": (ctypes.c_uint8, [ctypes.c_float, _int, _int]),
    "fp8kv_to_float": (ctypes.c_float, [ctypes.c_uint8, _int]),
    "fp8kv_quantize": (_int, [_ptr, _ptr, _int, _ptr, _int, ctypes.c_size_t, _int,
                              _ptr, _int, _ptr, _ptr]),
    "fp8kv_dequantize": (_int, [_ptr, _ptr, _int, _ptr, _int, ctypes.c_size_t, _int,
                                _ptr, _ptr]),
    "fp8kv_cache_write_init": (None, [ctypes.POINTER(CacheWrite), _i64, _i64, _i64,
                                      _i64, _i64, _i64, _int]),
    # The descriptor goes in as the bytes CACHE_WRITE_PACKER made: ctypes
    # passes a bytes object's own buffer to a char pointer, without a copy.
    "fp8kv_reshape_and_cache": (_int, [_ptr, _c_char_p, _ptr]),
    "fp8kv_group_scales_init": (None, [ctypes.POINTER(GroupScales), _int, _i64, _i64, _i64,
                                       _i64, _int]),
    "fp8kv_reshape_and_cache_grouped": (_int, [_ptr, _c_char_p, _c_char_p, _ptr]),
    "fp8kv_mla_write_init": (None, [ctypes.POINTER(MlaWrite), _int, _i64, _i64, _i64,
                                    _i64, _i64]),
    "fp8kv_concat_and_cache_mla": (_int, [_ptr, _c_char_p, _ptr]),
    "fp8kv_amax": (_int, [_ptr, _ptr, _int, ctypes.c_size_t,
                          ctypes.POINTER(ctypes.c_float)]),
    "fp8kv_suggest_scale": (ctypes.c_float, [ctypes.c_float, _int]),
    "fp8kv_check_slots": (_int, [_ptr, _ptr, _i64, _int, _i64,
                                 ctypes.POINTER(SlotReport)]),
}


class _Functions:
    """The library's functions as attributes, without the fp8kv_ prefix."""


fn = _Functions()
for _name, (_restype, _argtypes) in _PROTOTYPES.items():
    _f = getattr(lib, _name)
    _f.restype, _f.argtypes = _restype, _argtypes
    setattr(fn, _name[len("fp8kv_"):], _f)


def last_error():
    """fp8kv_last_error() of the calling thread, as str."""
    return fn.last_error().decode("utf-8", "replace")


def raise_for(status):
    """Raises the Error subclass of a failing status, with the message the
    library left for this thread; does nothing for FP8KV_OK."""
    if status:
        message = last_error() or fn.strerror(status).decode()
        raise ERROR_CLASSES.get(status, Error)(message, status)
