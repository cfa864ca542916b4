# SPDX-License-Identifier: MIT
"""The cache write's parameters, once (P-ONE-SIGNATURE).  PARAMS is the only
list of them: fp8kv.reshape_and_cache, fp8kv.golden.reshape_and_cache, the
torch schema of torch.ops.fp8kv.reshape_and_cache and its kernel and fake
are all built from it, and every one of them hands its arguments on by
keyword, so that a parameter inserted anywhere cannot shift the others.

Each row: the name; its type in the torch schema ("Tensor", "str", "int"
or "float", with a number also taken where a tensor of one value is); its default (REQUIRED
for the five positional parameters); whether the write writes it (an
output: must be writable, and marked mutated in the schema); and the
dtypes it may hold (kinds, see _types; None where the rule is more than a
list: the caches, whose dtype is the format or the input's).
"""

import collections

from . import _torch
from ._types import COUNTER_DTYPES, INDEX_DTYPES, INPUT_DTYPES

REQUIRED = object()

Param = collections.namedtuple("Param", "name type default written dtypes")

# Row groups the grouped and MLA writes' tables share (_grouped.PARAMS,
# _mla.PARAMS): one spelling of each parameter every write has.
KV = (
    Param("key", "Tensor", REQUIRED, False, INPUT_DTYPES),
    Param("value", "Tensor", REQUIRED, False, INPUT_DTYPES),
    Param("key_cache", "Tensor", REQUIRED, True, None),
    Param("value_cache", "Tensor", REQUIRED, True, None),
)
MAPPINGS = (
    Param("slot_mapping", "Tensor", REQUIRED, False, INDEX_DTYPES),
    Param("swa_mapping", "Tensor", None, False, INDEX_DTYPES),
)
COUNTERS = (
    Param("overflow", "str", "saturate", False, None),
    Param("overflow_count", "Tensor", None, True, COUNTER_DTYPES),
    Param("nan_count", "Tensor", None, True, COUNTER_DTYPES),
)
AMAX = (
    Param("k_amax", "Tensor", None, True, ("f32",)),
    Param("v_amax", "Tensor", None, True, ("f32",)),
)
FORMAT = Param("format", "str", None, False, None)
LAYOUT = Param("layout", "str", None, False, None)

PARAMS = KV + MAPPINGS + (
    Param("scale", "str", None, False, None),
    Param("k_scale", "Tensor", None, False, ("f32",)),
    Param("v_scale", "Tensor", None, False, ("f32",)),
    Param("k_scale_cache", "Tensor", None, True, ("f32",)),
    Param("v_scale_cache", "Tensor", None, True, ("f32",)),
) + COUNTERS + AMAX + (FORMAT, LAYOUT)

BY_NAME = {p.name: p for p in PARAMS}
OUTPUTS = tuple(p.name for p in PARAMS if p.written)


def schema(params=None):
    """The torch schema: "(Tensor key, ..., Tensor(a!) key_cache, ...,
    str? layout=None) -> ()", every output with its own alias set; of
    PARAMS, or of another write's table."""
    entries, alias = [], iter("abcdefghijklmnopqrstuvwxyz")
    for p in PARAMS if params is None else params:
        t = p.type + ("(%s!)" % next(alias) if p.written else "")
        if p.default is REQUIRED:
            entries.append("%s %s" % (t, p.name))
        elif p.default is None:
            entries.append("%s? %s=None" % (t, p.name))
        elif isinstance(p.default, str):
            entries.append('%s %s="%s"' % (t, p.name, p.default))
        else:
            entries.append("%s %s=%r" % (t, p.name, p.default))
    return "(%s) -> ()" % ", ".join(entries)


SCHEMA = schema()


POSITIONAL = sum(p.default is REQUIRED for p in PARAMS)   # the first five


def numbers(params):
    """The parameters a Python number may stand for: the float32 arrays the
    write only reads (k_scale, v_scale), where a number is one value."""
    return tuple(p.name for p in params
                 if p.type == "Tensor" and not p.written and p.dtypes == ("f32",))


def defaults(params=None):
    """The optional parameters' defaults, by name."""
    return {p.name: p.default for p in (PARAMS if params is None else params)
            if p.default is not REQUIRED}


def positional_count(params):
    """How many parameters of a table are required (the positional ones)."""
    return sum(p.default is REQUIRED for p in params)


def signature_text(name, positional=POSITIONAL, params=None):
    """("def name(key, ..., *, swa_mapping=_defaults['swa_mapping'], ...):",
    "key=key, value=value, ..."): the source text of a function with the
    table's parameters, the first `positional` of them positional, and of
    the call that hands them all on by keyword.  The function's namespace
    holds the defaults as _defaults."""
    entries, call = [], []
    for i, p in enumerate(PARAMS if params is None else params):
        if i == positional:
            entries.append("*")
        entries.append("%s=_defaults[%r]" % (p.name, p.name) if p.default is not REQUIRED
                       else p.name)
        call.append("%s=%s" % (p.name, p.name))
    return "def %s(%s):" % (name, ", ".join(entries)), ", ".join(call)


def function(name, doc, target, positional=POSITIONAL, then=None, traced=None,
             module=__name__, params=None):
    """A function `name` with the table's parameters, the first `positional`
    of them positional and the rest keyword-only (torch calls a kernel with
    them all positional), that returns target(key=key, value=value, ...),
    or then(target(...)) with then.  With traced, it calls traced(...)
    instead while torch.compile traces it.  Built from source text, so that
    it costs one call with keywords, shows its real signature, and lists
    the parameters nowhere but in PARAMS (or params, another write's
    table)."""
    header, call = signature_text(name, positional, params)
    body = "    return %s\n" % ("_then(_target(%s))" if then else "_target(%s)") % call
    if traced is not None:
        body = "    if _torch.compiling():\n        return _traced(%s)\n" % call + body
    source = header + "\n" + body
    namespace = {"_target": target, "_then": then, "_traced": traced, "_torch": _torch,
                 "_defaults": defaults(params)}
    exec(compile(source, "<fp8kv %s>" % name, "exec"), namespace)
    fn = namespace[name]
    fn.__doc__, fn.__module__ = doc, module
    return fn
