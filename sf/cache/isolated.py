"""Run a function on an untrusted file in a forked child with a memory and time limit.

A damaged HDF5 file can make the HDF5 C library crash (SIGSEGV) or allocate without bound while it
parses object headers and attributes, which no Python `except` can catch. Whatever parses a store's
metadata for the first time therefore runs here: a crash, a runaway allocation or a hang becomes a
`Crashed` reason the caller reports in one line. Forking costs milliseconds (the parent has h5py
loaded already); where fork is unavailable the function runs in-process.
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import resource
import select
import signal
import time
from collections.abc import Callable

DEFAULT_TIMEOUT_S = 120.0
HEADROOM_BYTES = 2 * 2**30  # address space the child may add on top of the parent's


class Crashed(Exception):
    """The child died (signal, memory limit) or ran past its time limit; str(e) says how."""


def _vm_size() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_isolated(fn: Callable, *args, timeout: float = DEFAULT_TIMEOUT_S, extra_bytes: int = 0):
    """fn(*args) in a forked child; returns its value, re-raises its exception, or raises Crashed."""
    if not hasattr(os, "fork"):
        return fn(*args)
    r, w = os.pipe()
    limit = _vm_size() + HEADROOM_BYTES + extra_bytes
    pid = os.fork()
    if pid == 0:  # child: never returns into the caller's code
        code = 0
        try:
            os.close(r)
            faulthandler.disable()  # a crash here is the expected answer, not something to dump
            if _vm_size():
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                payload = pickle.dumps(("ok", fn(*args)))
            except BaseException as e:  # sent back to the parent to re-raise there
                try:
                    payload = pickle.dumps(("raised", e))
                except Exception:
                    payload = pickle.dumps(("raised", RuntimeError(f"{type(e).__name__}: {e}")))
            with os.fdopen(w, "wb") as out:
                out.write(payload)
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    os.close(w)
    chunks, deadline = [], time.monotonic() + timeout
    with os.fdopen(r, "rb") as inp:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise Crashed(f"did not finish within {timeout:.0f} s")
            ready, _, _ = select.select([inp], [], [], min(left, 1.0))
            if ready:
                block = os.read(inp.fileno(), 1 << 20)
                if not block:
                    break
                chunks.append(block)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise Crashed(f"the HDF5 library crashed reading it ({signal.Signals(os.WTERMSIG(status)).name})")
    try:
        kind, value = pickle.loads(b"".join(chunks))
    except Exception:
        raise Crashed("reading it ran out of memory or failed without an answer") from None
    if kind == "raised":
        if isinstance(value, MemoryError):
            raise Crashed("reading it needed more memory than a store of its size can (damaged sizes)")
        raise value
    return value
