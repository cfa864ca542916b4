# SPDX-License-Identifier: MIT
"""Where a writer runs: in this process, or in a child process of its own
(V-CONFORM-ISOLATE).

An executor resolves the target, makes each call's arrays from a Request
(host data: the template of every cache, the input buffers, the mapping,
the scales), calls the writer, and returns a Result: how the call ended,
every changed byte of every cache buffer, and every input the writer
modified.  The harness never touches the writer's arrays itself, so the
same code serves both places.

In a child process (python3 -m fp8kv.conform runs every writer so, and
fp8kv.conform.run(isolate=True)), a writer that calls os._exit(), crashes
the interpreter or hangs is seen: the child's end, or the per-call timeout,
fails the writer on that call.  In this process, sys.exit() and exceptions
are caught, and the timeout interrupts Python code only (SIGALRM, main
thread): a writer hung inside a C call, or ending the process, ends the
harness with it.
"""

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection

import numpy as np

from . import targets
from .sparse import available as sparse_available
from .streams import FP8_FORMATS

DEFAULT_TIMEOUT = 300.0     # seconds per call (a first GPU call may compile a kernel)


class Request:
    """A call's host data (picklable)."""

    def __init__(self, case, exp, sparse):
        spec = case.spec
        self.index, self.description = spec.index, case.describe()
        self.fmt, self.overflow, self.layout, self.mode = spec.fmt, spec.overflow, \
            spec.layout, spec.mode
        self.sparse = sparse
        self.caches = {name: (e.geometry, e.template) for name, e in exp.items()}
        self.inputs = case.inputs
        self.slots, self.swa_guarded = case.slots, case.swa_guarded
        self.swa_length = None if case.swa is None else len(case.swa)
        self.k_scale, self.v_scale = case.k_scale, case.v_scale

    def originals(self):
        """{input name: its bytes before the call}."""
        out = {name: ib.flat for name, ib in self.inputs.items()}
        out["slot_mapping"] = self.slots
        if self.swa_guarded is not None:
            out["swa_mapping"] = self.swa_guarded
        if self.k_scale is not None:
            out["k_scale"], out["v_scale"] = self.k_scale, self.v_scale
        return out


class Result:
    """How a call ended.

    status     "ok", "raised" (error: type, message, trace), "exit" (the
               writer called sys.exit: error says with what), "timeout",
               "died" (the child process ended: error says how);
    changes    {cache buffer name: (positions, bytes)} where the buffer
               differs from its template (None when unknown: timeout, died);
    modified   {input name: (bytes changed, first byte, before, after)};
    seconds    the writer's own time."""

    def __init__(self, status, error=None, changes=None, modified=None, seconds=0.0):
        self.status, self.error, self.changes = status, error, changes
        self.modified, self.seconds = modified or {}, seconds


def _trace(e):
    return "".join(traceback.format_exception(type(e), e, e.__traceback__)[-3:]).rstrip()


class _Timeout(BaseException):
    """Raised in the writer by the in-process timer (not an Exception, so
    that a writer's `except Exception` does not swallow it)."""


class LocalExecutor:
    """Runs the writer in this process."""

    def __init__(self, target, convention, arrays, device):
        self.target, self.convention = target, convention
        self.arrays_name, self.device = arrays, device

    def start(self):
        """Resolves the target and the arrays; returns the info the plan
        needs: {"float8": {format: bool}, "sparse": bool, "dense_limit":
        bytes, "has_setter": bool, "arrays": name, "device": str}.  Raises
        UsageError."""
        fn, conv, label = targets.resolve(self.target, self.convention)
        self.fn, self.conv = fn, conv
        self.arrays = targets.arrays_for(self.arrays_name, self.device, conv)
        module = sys.modules.get(getattr(fn, "__module__", None) or "")
        limit = 0
        if self.arrays.device.startswith("cuda"):
            free, _ = self.arrays.torch.cuda.mem_get_info(self.arrays.device)
            limit = free // 3
        return {"float8": {f: self.arrays.has_float8(f) for f in FP8_FORMATS},
                "sparse": self.arrays.can_sparse and sparse_available(),
                "dense_limit": int(limit), "has_setter": hasattr(module, "set_fp8_format"),
                "arrays": self.arrays.name, "device": self.arrays.device,
                "convention": conv, "label": label}

    def call(self, req, timeout=None):
        try:
            c = targets.make_call(req, self.arrays)
        except Exception as e:
            return Result("harness", {"type": type(e).__name__, "message": "the call's "
                                      "arrays could not be made: %s: %s" % (type(e).__name__, e),
                                      "trace": _trace(e)})
        status, error = "ok", None
        t0 = time.perf_counter()
        timer = _arm(timeout)
        try:
            targets.invoke(self.fn, self.conv, c)
        except _Timeout:
            status = "timeout"
        except KeyboardInterrupt:
            raise
        except SystemExit as e:
            status, error = "exit", {"type": "SystemExit", "message": "the writer called "
                                     "sys.exit(%r)" % (e.code,), "trace": _trace(e)}
        except BaseException as e:      # the writer's own failure, reported
            status, error = "raised", {"type": type(e).__name__,
                                       "message": "%s: %s" % (type(e).__name__, e),
                                       "trace": _trace(e)}
        finally:
            _disarm(timer)
        seconds = time.perf_counter() - t0
        if status == "timeout":
            return Result("timeout", seconds=seconds)
        changes = {name: self.arrays.changes(buf, req.caches[name][1], c.memory[name])
                   for name, buf in c.buffers.items()}
        modified = {}
        for name, before in req.originals().items():
            after = np.ascontiguousarray(self.arrays.to_host(c.inputs[name])).view(np.uint8)
            b = np.ascontiguousarray(before).view(np.uint8)
            if not np.array_equal(after.reshape(-1), b.reshape(-1)):
                d = np.flatnonzero(after.reshape(-1) != b.reshape(-1))
                modified[name] = (len(d), int(d[0]), int(b.reshape(-1)[d[0]]),
                                  int(after.reshape(-1)[d[0]]))
        return Result(status, error, changes, modified, seconds)

    def close(self):
        if hasattr(self, "fn"):
            targets.finish(self.fn, self.conv)


def _arm(timeout):
    if not timeout or threading.current_thread() is not threading.main_thread():
        return None

    def fire(signum, frame):
        raise _Timeout()
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, float(timeout))
    return old


def _disarm(old):
    if old is not None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---- a child process ---------------------------------------------------------------

class ChildExecutor:
    """Runs the writer in a child process (python3 with this process's
    sys.path), talking over a socket pair."""

    def __init__(self, target, convention, arrays, device):
        if callable(target):
            try:
                pickle.dumps(target)
            except Exception as e:
                raise targets.UsageError(
                    "isolate: the writer cannot be sent to a child process (%s); pass it "
                    "as 'module:function', or run it without isolation" % e) from None
        self.init = (target, convention, arrays, device)
        self.proc = self.conn = None

    def _spawn(self):
        mine, theirs = socket.socketpair()
        env = dict(os.environ, FP8KV_CONFORM_CHILD=str(theirs.fileno()),
                   FP8KV_CONFORM_PATH=json.dumps(sys.path))
        target, convention, arrays, device = self.init
        if (arrays or targets.default_arrays(convention, device)) == "numpy":
            env.setdefault("FP8KV_CONFORM_NO_TORCH", "1")     # numpy arrays: no seconds of torch
        code = ("import json, os, sys; sys.path[:0] = json.loads(os.environ.pop("
                "'FP8KV_CONFORM_PATH')); from fp8kv.conform.executor import child_main; "
                "child_main()")
        # the child's stdout is our stderr: a writer's prints never reach the report
        self.proc = subprocess.Popen([sys.executable, "-c", code], env=env,
                                     pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                     stdout=sys.stderr.fileno() if _has_fileno(sys.stderr)
                                     else None)
        theirs.close()
        self.conn = Connection(mine.detach())

    def _ask(self, message, timeout):
        """The child's answer, or ("timeout",) / ("died", how)."""
        try:
            self.conn.send(message)
            if not self.conn.poll(timeout):
                self._kill()
                return ("timeout",)
            return self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            code = self.proc.wait(10)
            how = ("exited with status %d" % code if code >= 0 else
                   "was killed by signal %d (%s)" % (-code, _signal_name(-code)))
            return ("died", how)

    def start(self, timeout=DEFAULT_TIMEOUT):
        self._spawn()
        answer = self._ask(("start", self.init), timeout)
        if answer[0] == "ready":
            return answer[1]
        if answer[0] == "usage":
            self.close()
            raise targets.UsageError(answer[1])
        self.close()
        why = {"timeout": "did not start within %g s" % timeout}.get(answer[0], answer[-1])
        raise targets.UsageError("target: the child process running it %s" % why)

    def call(self, req, timeout=None):
        answer = self._ask(("call", req), timeout or DEFAULT_TIMEOUT)
        if answer[0] == "result":
            return answer[1]
        if answer[0] == "timeout":
            return Result("timeout")
        return Result("died", {"type": "died", "message": "the writer's process %s"
                               % answer[1], "trace": ""})

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.conn.send(("close",))
                self.proc.wait(30)
            except Exception:
                pass
        self._kill()
        try:
            self.conn.close()
        except Exception:
            pass
        self.proc = None


def _has_fileno(stream):
    try:
        stream.fileno()
        return True
    except Exception:
        return False


def _signal_name(n):
    try:
        return signal.Signals(n).name
    except ValueError:
        return "?"


def child_main():
    """The child's loop: start, then calls, until told to close."""
    conn = Connection(int(os.environ.pop("FP8KV_CONFORM_CHILD")))
    executor = None
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        except Exception as e:      # a writer pickled by a name the child cannot find
            conn.send(("usage", "target: a child process cannot load it (%s: %s); pass it "
                       "as 'module:function', or run it without isolation"
                       % (type(e).__name__, e)))
            continue
        kind = message[0]
        if kind == "close":
            if executor is not None:
                executor.close()
            conn.send(("closed",))
            return
        if kind == "start":
            try:
                executor = LocalExecutor(*message[1])
                conn.send(("ready", executor.start()))
            except targets.UsageError as e:
                conn.send(("usage", str(e)))
            except BaseException as e:
                conn.send(("usage", "target: %s: %s" % (type(e).__name__, e)))
        elif kind == "call":
            try:
                conn.send(("result", executor.call(message[1])))
            except BaseException as e:
                conn.send(("result", Result("harness", {"type": type(e).__name__,
                                                        "message": "%s: %s" % (
                                                            type(e).__name__, e),
                                                        "trace": _trace(e)})))
