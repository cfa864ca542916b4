# SPDX-License-Identifier: MIT
"""The classes of difference fp8kv.conform names, in table order (no numpy
needed: the report and --help use them).  fp8kv.conform.layout,
fp8kv.conform.models and fp8kv.conform.classify say how each is found."""

import collections

LAYOUT = collections.OrderedDict([
    ("input_head_stride", "rows read from the wrong input position: the input's head "
                          "stride ignored"),
    ("input_token_stride", "rows read from the wrong input position: the input's token "
                           "stride ignored"),
    ("input_strides", "rows read from the wrong input position: the input read as "
                      "contiguous"),
    ("kv_swapped", "key and value swapped"),
    ("heads_transposed", "rows read from the wrong input position: heads and tokens "
                         "transposed"),
    ("cache_inner_strides", "rows written to the wrong place: the cache's slot and head "
                            "strides ignored"),
    ("cache_strides", "rows written to the wrong place: the cache's strides ignored"),
    ("layout_swapped", "rows written to the wrong place: NHD and HND swapped"),
    ("block_size", "rows written to the wrong place: another block size assumed"),
    ("slot_truncated", "rows written to the wrong place: the slot's high bits dropped"),
    ("offset32", "rows written to the wrong place: byte offsets wrapped at 32 bits"),
])
READS = ("input_head_stride", "input_token_stride", "input_strides", "kv_swapped",
         "heads_transposed")
PLACES = ("cache_inner_strides", "cache_strides", "layout_swapped", "block_size",
          "slot_truncated", "offset32")

TITLES = collections.OrderedDict(list(LAYOUT.items()) + [
    ("format_confusion", "fn/fnuz or e4m3/e5m2 confusion (the other format's encoding)"),
    ("scale_ignored", "scale ignored (the bytes of scale 1)"),
    ("reciprocal", "multiplication by 1/s instead of division by s"),
    ("overflow_first", "overflow decided before rounding"),
    ("saturation", "saturating where asked not to, or the reverse"),
    ("negative_zero", "negative zero"),
    ("ftz", "subnormals flushed"),
    ("ties_away", "ties rounded away from zero (not to even)"),
    ("truncation", "rounded toward zero (truncation)"),
    ("ties_odd", "ties rounded to odd (not to even)"),
    ("nan", "NaN sign dropped or NaN encoded as another code"),
    ("inf", "Inf handling"),
    ("division", "division not correctly rounded (x/s within a few ulp of a midpoint)"),
    ("padding_written", "padding written"),
    ("swa_padding_read", "SWA padding read through the mapping"),
    ("stray_writes", "stray writes"),
    ("out_of_bounds", "out-of-bounds writes"),
    ("not_written", "mapped slots not written (rows or parts of rows)"),
    ("input_modified", "inputs modified"),
    ("unexplained", "unexplained"),
])
