# SPDX-License-Identifier: MIT
"""The calling conventions fp8kv.conform can call a writer by (no numpy
needed: --help lists them); fp8kv.conform.targets calls them."""

ALL = dict(formats=("e4m3fn", "e4m3fnuz", "e5m2", "e5m2fnuz"), inputs=("f32", "f16", "bf16"),
           scales=("one", "tensor", "head", "token_head"), layouts=("NHD", "HND"),
           overflows=("saturate", "nonsaturating"), strides=("inputs", "caches"))


class Convention:
    """A calling convention: what it can express (supports) and what a
    writer of it is assumed to claim unless told (defaults)."""

    def __init__(self, name, signature, supports, defaults, swa, swa_default, arrays,
                 kv_dims_differ):
        self.name, self.signature = name, signature
        self.supports, self.defaults = supports, defaults
        self.swa, self.swa_default = swa, swa_default
        self.arrays, self.kv_dims_differ = arrays, kv_dims_differ


def _conv(name, signature, scales, layouts, overflows, swa, default_scales=None,
          default_layouts=None, default_overflows=None, swa_default=None, arrays="numpy",
          kv_dims_differ=True):
    supports = dict(ALL, scales=scales, layouts=layouts, overflows=overflows)
    defaults = dict(supports, scales=default_scales or scales,
                    layouts=default_layouts or layouts,
                    overflows=default_overflows or overflows)
    return Convention(name, signature, supports, defaults, swa,
                      swa if swa_default is None else swa_default, arrays, kv_dims_differ)


CONVENTIONS = {c.name: c for c in (
    _conv("reference", "(key, value, key_cache, value_cache, slot_mapping, k_scale, v_scale, "
          "**options)", ("one", "tensor", "head"), ("NHD", "HND"),
          ("saturate", "nonsaturating"), True, default_scales=("one", "tensor"),
          default_layouts=("NHD",), default_overflows=("saturate",), swa_default=False),
    _conv("sglang", "(key, value, key_cache, value_cache, slot_mapping, swa_slot_mapping, "
          "k_scale, v_scale)", ("one", "tensor"), ("NHD",), ("saturate",), True,
          arrays="torch", kv_dims_differ=False),
    _conv("vllm", "(key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype, "
          "k_scale, v_scale)", ("one", "tensor", "head"), ("NHD", "HND"), ("saturate",),
          False, default_scales=("one", "tensor"), arrays="torch", kv_dims_differ=False),
    _conv("fp8kv", "fp8kv.reshape_and_cache(key, value, key_cache, value_cache, "
          "slot_mapping, *, swa_mapping, scale, ...)", ALL["scales"], ALL["layouts"],
          ALL["overflows"], True),
)}
