# SPDX-License-Identifier: MIT
"""python3 -m fp8kv.conform as a user (or a careless one) drives it: exit
statuses, one clear line for every error and never a traceback, the text
and JSON reports, writers that exit, crash or hang in their child process,
--help without numpy, and the documented default array type."""

import io
import json
import os
import subprocess
import sys

import pytest

from fp8kv.conform import cli

HERE = os.path.dirname(os.path.abspath(__file__))
QUICK = ["--formats", "e5m2", "--inputs", "bf16"]


def main(*argv):
    """In this process, writers too (program() runs them as users do)."""
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(list(argv) + ["--no-isolate"], out, err)
    return status, out.getvalue(), err.getvalue()


def program(*argv, stdout=subprocess.PIPE, env=None, timeout=300):
    """python3 -m fp8kv.conform in a process of its own."""
    e = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""),
             FP8KV_CONFORM_NO_TORCH="1")        # numpy writers: no seconds of importing torch
    e.update(env or {})
    r = subprocess.run([sys.executable, "-m", "fp8kv.conform"] + list(argv), env=e,
                       stdout=stdout, stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=timeout)
    return r.returncode, r.stdout or "", r.stderr


def one_line(err):
    """An error is one line, and never a traceback."""
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_exit_0_when_every_byte_matches():
    status, out, err = main("faulty_writers:correct", *QUICK)
    assert status == 0, out + err
    assert "CLEAN    faulty_writers:correct" in out
    assert err == ""              # no progress bar: stderr is not a TTY


def test_the_default_arrays_are_a_choice_not_an_accident():
    """#33 item 7: numpy for the reference convention on the CPU, whether
    or not torch is installed; --help says what each convention passes."""
    status, out, _ = main("faulty_writers:correct", *QUICK)
    assert "(reference convention, numpy arrays on cpu)" in out
    status, out, _ = main("--help")
    assert status == 0
    for words in ("bf16 inputs as\n          uint16 arrays of the bits", "format=",
                  "torch.bfloat16", "the default is a choice"):
        assert words in out, words


def test_exit_1_and_the_json_report(tmp_path):
    path = str(tmp_path / "report.json")
    status, out, _ = main("faulty_writers:nan_sign_dropped", "--formats", "e4m3fn", "--json",
                          "--json-out", path)
    assert status == 1
    doc = json.loads(out)
    with open(path) as f:
        assert json.load(f) == doc
    assert doc["exit_status"] == 1 and doc["level"] == "quick"
    (w,) = doc["writers"]
    assert w["verdict"] == "differences" and w["target"] == "faulty_writers:nan_sign_dropped"
    assert w["bytes_differing"] == sum(c["bytes"] for c in w["classes"]) > 0
    assert w["isolated"] is False and w["timeout_s"] == 300
    (c,) = w["classes"]
    assert c["class"] == "nan" and c["first"]["format"] == "e4m3fn"
    assert int(c["first"]["expected"], 16) & 0x7F == 0x7F     # a NaN code...
    assert int(c["first"]["written"], 16) == 0x7F              # ...written without its sign
    assert w["claims"]["formats"] == ["e4m3fn"]
    assert any(n["class"] == "overflow_first" for n in w["not_observable"])
    # the classes each call contributes (#35 item 14)
    per_call = w["calls_with_differences"]
    assert per_call and sum(p["bytes"] for p in per_call) == w["bytes_differing"]
    for p in per_call:
        assert p["classes"] == {"nan": p["bytes"]} and p["description"].startswith("call ")
        assert c["calls"][str(p["call"])] == p["bytes"]


def test_text_report_has_a_verdict_line_per_writer_then_the_table():
    status, out, _ = main("faulty_writers:correct", "faulty_writers:scale_ignored",
                          "--formats", "e4m3fnuz", "--inputs", "f32")
    assert status == 1
    lines = out.splitlines()
    assert lines[1].startswith("CLEAN    faulty_writers:correct")
    assert lines[2].startswith("DIFFERS  faulty_writers:scale_ignored")
    assert "scale ignored" in lines[2]
    assert "faulty_writers:scale_ignored: differences by class" in out
    assert "first: call" in out and "in calls: " in out


@pytest.mark.parametrize("argv,message", [
    (["nosuchmodule:f"], "cannot import nosuchmodule"),
    (["faulty_writers"], "is not 'module:function'"),
    (["faulty_writers:nope"], "has no attribute"),
    (["faulty_writers:correct@nosuch"], "convention"),
    (["faulty_writers:correct", "--scales", "dynamic"], "scales"),
    (["faulty_writers:correct", "--level", "huge"], "invalid choice"),
    (["faulty_writers:correct", "--seed", "-1"], "seed"),
    (["faulty_writers:correct", "--seed", "x"], "seed"),
    (["faulty_writers:correct", "--timeout", "0"], "timeout"),
    (["faulty_writers:correct", "--device", "cuda:x"], "device"),
    (["faulty_writers:correct", "--device", "tpu"], "device"),
    (["faulty_writers:correct", "--json-out", "/nonexistent/dir/r.json"], "json-out"),
    (["faulty_writers:correct", "--strides", "caches,heads"], "strides"),
    (["--no-isolate"], "arguments are required"),
])
def test_exit_2_on_usage_errors(argv, message):
    status, out, err = main(*argv)
    assert status == 2 and out == ""
    assert message in err


@pytest.mark.parametrize("argv", [["--device", "cuda:x"], ["--device", "tpu"],
                                  ["--seed", "-1"], ["--json-out", "/"]])
def test_usage_errors_are_one_line_from_the_program(argv):
    status, out, err = program("faulty_writers:correct", *argv)
    assert status == 2 and out == ""
    assert one_line(err).startswith("fp8kv.conform: ")


def test_exit_3_when_a_writer_fails_to_run():
    status, out, _ = main("faulty_writers:raises", "faulty_writers:reciprocal", "--formats",
                          "e4m3fn")
    assert status == 3
    assert "FAILED   faulty_writers:raises" in out and "kernel launch failed" in out
    assert "DIFFERS  faulty_writers:reciprocal" in out


@pytest.mark.parametrize("writer,words", [
    ("calls_sys_exit", "the writer called sys.exit(0) during call 0"),
    ("calls_os_exit", "the writer's process exited with status 0 during call 0"),
    ("hangs", "call 0 did not return within 2 s"),
])
def test_exit_3_when_a_writer_exits_or_hangs(writer, words):
    targets = ["faulty_writers:" + writer]
    if writer == "calls_os_exit":       # the next writer still runs
        targets.append("faulty_writers:correct")
    # only the hang waits out its limit; the others get one a loaded
    # machine's child start-up cannot reach (the correct writer runs after)
    status, out, err = program(*targets, "--timeout", "2" if writer == "hangs" else "60",
                               *QUICK)
    assert status == 3, out + err
    assert "FAILED   faulty_writers:%s" % writer in out and words in out
    assert ("CLEAN    faulty_writers:correct" in out) == (len(targets) == 2)
    assert "Traceback" not in err


def test_a_hang_on_a_later_call_names_that_call():
    status, out, _ = main("faulty_writers:writes_then_hangs_on_bf16", "--timeout", "1",
                          "--formats", "e5m2", "--inputs", "f32,bf16")
    assert status == 3
    assert "did not return within 1 s" in out and " bf16 " in out.split("failed to run on")[1]


def test_exit_3_when_the_report_cannot_be_written():
    with open("/dev/full", "w") as full:
        status, out, err = program("faulty_writers:correct", *QUICK, stdout=full)
    assert status == 3
    assert one_line(err) == ("fp8kv.conform: cannot write the report to stdout: No space "
                             "left on device\n")


def test_help_needs_no_numpy(tmp_path):
    """#33 item 8: --help always works; without numpy a run is one line."""
    blocker = tmp_path / "numpy"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('No module named numpy')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), HERE, os.environ.get("PYTHONPATH",
                                                                               "")]),
           "FP8KV_CONFORM_NO_TORCH": "1"}
    status, out, err = program("--help", env=env)
    assert status == 0 and "usage: python3 -m fp8kv.conform" in out, err
    status, out, err = program("faulty_writers:correct", env=env)
    assert status == 2 and out == ""
    assert "needs numpy" in one_line(err)


def test_the_module_runs_as_a_program():
    status, out, err = program("faulty_writers:ftz", "--formats", "e5m2", "--inputs", "bf16",
                               env={"FP8KV_CONFORM_NO_TORCH": "1"})
    assert status == 1, out + err
    assert "subnormals flushed" in out


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_is_drawn_on_a_terminal_only():
    import faulty_writers as fw
    import fp8kv.conform as conform
    tty, pipe = FakeTerminal(), io.StringIO()
    for stream in (tty, pipe):
        rep = conform.run(fw.correct, arrays="numpy", formats="e4m3fn,e5m2", inputs="bf16",
                          progress=conform.report.Progress(stream))
    n = rep.planned
    assert "] 1/%d faulty_writers:correct" % n in tty.getvalue()
    assert "[" + "#" * 30 + "] %d/%d" % (n, n) in tty.getvalue()
    assert pipe.getvalue() == ""
