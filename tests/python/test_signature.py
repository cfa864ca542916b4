# SPDX-License-Identifier: MIT
"""One signature for the cache write (issue #34 item 4): the table in
fp8kv/_signature.py is the only list of its parameters; the public
function, fp8kv.golden's, the torch schema, the operator's kernel and fake
are built from it and pass every argument by keyword, so that a parameter
inserted anywhere cannot shift the others."""

import ast
import inspect
import os

import pytest

import fp8kv
from fp8kv import _signature, _write, golden

NAMES = ("key", "value", "key_cache", "value_cache", "slot_mapping", "swa_mapping", "scale",
         "k_scale", "v_scale", "k_scale_cache", "v_scale_cache", "overflow", "overflow_count",
         "nan_count", "k_amax", "v_amax", "format", "layout")
WRITTEN = ("key_cache", "value_cache", "k_scale_cache", "v_scale_cache", "overflow_count",
           "nan_count", "k_amax", "v_amax")


def test_the_table_is_the_write_s_parameters():
    assert tuple(p.name for p in _signature.PARAMS) == NAMES
    assert tuple(p.name for p in _signature.PARAMS if p.written) == WRITTEN


@pytest.mark.parametrize("fn", [fp8kv.reshape_and_cache, golden.reshape_and_cache],
                         ids=["fp8kv", "golden"])
def test_public_signatures_come_from_the_table(fn):
    params = list(inspect.signature(fn).parameters.values())
    assert tuple(p.name for p in params) == NAMES
    for p, row in zip(params, _signature.PARAMS):
        positional = row.name in NAMES[:5]
        assert p.kind == (p.POSITIONAL_OR_KEYWORD if positional else p.KEYWORD_ONLY), p
        assert p.default == (p.empty if positional else row.default), p
    assert fn.__doc__ and fn.__name__ == "reshape_and_cache"


def test_the_schema_comes_from_the_table():
    schema = _signature.SCHEMA
    assert schema.startswith("(") and schema.endswith(") -> ()")
    entries = schema[1:-len(") -> ()")].split(", ")
    assert [e.split(" ")[1].split("=")[0] for e in entries] == list(NAMES)
    aliases = [e.split(" ")[0] for e in entries if "!" in e]
    assert len(set(aliases)) == len(WRITTEN) == len(aliases)
    for e in entries:
        name = e.split(" ")[1].split("=")[0]
        assert ("!" in e) == (name in WRITTEN), e
        assert ("=" in e) == (name not in NAMES[:5]), e


def test_generated_functions_pass_every_argument_by_keyword():
    """Each name reaches the target under its own name, with the value given
    for it, whether given by position or keyword; defaults fill the rest."""
    seen = {}
    fn = _signature.function("probe", "A probe.", lambda **kw: seen.update(kw),
                             positional=len(NAMES))
    values = {n: object() for n in NAMES}
    fn(*(values[n] for n in NAMES))
    assert seen == values
    seen.clear()
    fn(**values)
    assert seen == values
    seen.clear()
    fn(*(values[n] for n in NAMES[:5]))
    assert seen == dict({n: values[n] for n in NAMES[:5]},
                        **{p.name: p.default for p in _signature.PARAMS[5:]})


def test_a_planted_insertion_cannot_shift_arguments(monkeypatch):
    """The fault the table exists to prevent: a parameter inserted in the
    middle.  Built from the altered table, every function still hands each
    argument to the parameter of its name."""
    row = _signature.PARAMS[0]._replace(name="inserted", default=None, written=False)
    altered = _signature.PARAMS[:7] + (row,) + _signature.PARAMS[7:]
    monkeypatch.setattr(_signature, "PARAMS", altered)
    seen = {}
    fn = _signature.function("probe", "A probe.", lambda **kw: seen.update(kw))
    fn(*range(5), k_scale=7, inserted="x", layout="HND")
    assert seen["k_scale"] == 7 and seen["inserted"] == "x" and seen["layout"] == "HND"
    assert seen["scale"] is None and seen["slot_mapping"] == 4


def test_the_write_takes_keywords_only():
    params = inspect.signature(_write.plan).parameters.values()
    assert all(p.kind == p.KEYWORD_ONLY for p in params)
    assert [p.name for p in params] == list(NAMES) + ["num_tokens"]
    assert [p.name for p in params if p.default is not p.empty] == ["num_tokens"]
    for fn in (_write.plan, _write.write):
        with pytest.raises(TypeError):
            fn(*range(len(NAMES)))


def test_no_module_imports_another_s_private_names():
    """_bulk.py used five private helpers of _write; what modules share is
    public in the module that owns it (_arrays.py)."""
    here = os.path.dirname(fp8kv.__file__)
    modules = {f[:-3] for f in os.listdir(here) if f.endswith(".py")}
    for f in sorted(os.listdir(here)):
        if not f.endswith(".py"):
            continue
        with open(os.path.join(here, f)) as fh:
            tree = ast.parse(fh.read(), f)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                for alias in node.names:
                    private = alias.name.startswith("_") and alias.name not in modules
                    assert not private, "%s imports %s from .%s" % (f, alias.name,
                                                                    node.module)
