# SPDX-License-Identifier: MIT
"""The block-scaled families conform referees, their recipes (who uses
each, which fp8kv rule writes it, if any) and the variations a writer may
add to a recipe (no numpy needed: --help and the report read it).

A family fixes what conform asks a writer for: the element format, the
group size, the scale's stored type and fp8kv's rule (fp8kv.h section 8).
The recipes of a family are the ways the engines compute those bytes
(docs/recipes.md, each with the source it was read in)."""

import collections

Recipe = collections.namedtuple("Recipe", "name title fp8kv deltas")
# fp8kv: the fp8kv call that writes it (dict of keywords), or None
# deltas: how many reciprocals/divisions the model has (approximate ones)

FAMILIES = collections.OrderedDict([
    ("mxfp8", dict(format="e4m3fn", group_size=32, scale="e8m0", rule="e8m0_rceil",
                   recipes=(
                       Recipe("e8m0_floor", "E8M0 floor (OCP MX v1.0, torchao FLOOR, aiter "
                              "RoundDown)", dict(rule="e8m0_floor"), 0),
                       Recipe("e8m0_rceil", "E8M0 rceil (NVIDIA cvt.rp.ue8m0: cuBLAS, "
                              "TRT-LLM; aiter's default; torchao RCEIL)",
                              dict(rule="e8m0_rceil"), 0),
                       Recipe("e8m0_even", "E8M0 even (aiter Even and Triton quantizer, "
                              "Quark)", None, 0),
                       Recipe("e8m0_floor_torchao", "E8M0 floor as torchao to_mx: a NaN or "
                              "Inf in the group makes the scale byte 255, NaN codes 0x7F",
                              None, 0),
                       Recipe("e8m0_rceil_torchao", "E8M0 rceil as torchao to_mx RCEIL: "
                              "amax * fp32(1/448) rounded up, a NaN or Inf group's byte "
                              "255, NaN codes 0x7F", None, 0),
                       Recipe("e8m0_rceil_nvidia", "E8M0 rceil as TensorRT-LLM's MXFP8 "
                              "(cvt.rp.satfinite: an Inf group's byte 254 and its finite "
                              "codes +-0; rcp.approx.ftz, NaN 0x7F)", None, 2)))),
    ("mxfp4", dict(format="e2m1", group_size=32, scale="e8m0", rule="e8m0_rceil",
                   recipes=(
                       Recipe("e8m0_floor", "E8M0 floor (OCP MX v1.0, torchao FLOOR, aiter "
                              "RoundDown)", dict(rule="e8m0_floor"), 0),
                       Recipe("e8m0_rceil", "E8M0 rceil (NVIDIA cvt.rp.ue8m0: cuBLAS, "
                              "TRT-LLM; aiter's default; torchao RCEIL)",
                              dict(rule="e8m0_rceil"), 0),
                       Recipe("e8m0_even", "E8M0 even (aiter Even and Triton MXFP4, Quark)",
                              None, 0),
                       Recipe("e8m0_floor_torchao", "E8M0 floor as torchao to_mx: a NaN or "
                              "Inf group's byte 255 and every code 0x4 (the GPU's NaN "
                              "through torchao's e2m1 bit trick)", None, 0),
                       Recipe("e8m0_rceil_torchao", "E8M0 rceil as torchao to_mx RCEIL: "
                              "amax * fp32(1/6) rounded up, a NaN or Inf group's byte 255 "
                              "and every code 0x4", None, 0)))),
    ("nvfp4", dict(format="e2m1", group_size=16, scale="e4m3", rule="nvfp4",
                   recipes=(
                       Recipe("nvfp4_fp8kv", "NVFP4, decode-direction global scale, "
                              "sf = e4m3(amax / (6 g)), x / (sf g) (fp8kv; FlashInfer's "
                              "append in IEEE arithmetic with a division)",
                              dict(rule="nvfp4"), 2),
                       Recipe("nvfp4_flashinfer", "NVFP4 as FlashInfer's append "
                              "(page.cuh): decode g, amax / (6 g), x * (1 / (sf g)), "
                              "NaN 0x0", None, 2),
                       Recipe("nvfp4_vllm", "NVFP4 as vLLM's nvfp4 cache: decode g "
                              "inverted, block scale amax * (g_enc * fp32(1/6)), an "
                              "underflowed block +-0, NaN 0x7", None, 4),
                       Recipe("nvfp4_trtllm", "NVFP4 as TensorRT-LLM: ENCODE-direction "
                              "global scale (448*6/amax), amax * (g * fp32(1/6)), an "
                              "underflowed block +-6, NaN 0x7", None, 3)))),
    ("int8", dict(format="int8", group_size=None, scale="f32", rule="f32",
                  recipes=(
                      Recipe("int8_rne", "int8 per (token, head), amax / 127, rounded to "
                             "nearest even (fp8kv's default)",
                             dict(rule="f32", rounding="nearest_even"), 2),
                      Recipe("int8_trunc", "int8 per (token, head), amax / 127, rounded "
                             "toward zero (fp8kv toward_zero; vLLM's kernel rounding)",
                             dict(rule="f32", rounding="toward_zero"), 2),
                      Recipe("int8_vllm", "int8 as vLLM's Triton per-token-head writer: "
                             "floor 1e-6, Inf counts in amax, x * (1.0 / s), truncated",
                             None, 2)))),
])

VARIATIONS = collections.OrderedDict([
    ("nibbles_swapped", "e2m1 nibble order swapped (element 2i in the high nibble)"),
    ("ties_away", "ties rounded away from zero (not to even)"),
    ("nan_code", "NaN elements stored as the other code (e2m1 0x0 <-> 0x7)"),
    ("scale_nonsaturating", "block scale not saturated (e4m3 NaN 0x7F past 448)"),
    ("approximate_reciprocal", "approximate reciprocal or division (rcp.approx, "
                               "fast-math): the recipe within one ulp of each "
                               "reciprocal, not reproducible on a CPU"),
])

PLACEMENT = collections.OrderedDict([
    ("not_written", "mapped groups not written (bytes still holding their poison)"),
    ("padding_written", "padding written (a token of slot -1 landed in the cache)"),
    ("stray_writes", "stray writes (bytes outside the mapped rows and scales changed)"),
    ("out_of_bounds", "out-of-bounds writes (canaries around an output changed)"),
    ("input_modified", "inputs modified"),
])


def recipe_titles():
    out = collections.OrderedDict()
    for fam in FAMILIES.values():
        for r in fam["recipes"]:
            out[r.name] = r.title
    return out
