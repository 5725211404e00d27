"""A python grader's ``grade(sample, item)`` run in a child process with limits, and what protects what.

Each run is a fresh ``python -I`` process (:mod:`graders.sandbox_child` is its program) in its own session,
started with an empty environment (no secrets from the server's) in an empty temporary folder, which is
removed afterwards. The layers, honestly:

- **Kernel, always:** ``RLIMIT_CPU`` (the process is killed past its CPU seconds), ``RLIMIT_AS`` (allocations
  past the memory limit fail with ``MemoryError``), ``RLIMIT_FSIZE`` (its output file cannot grow past a bound),
  ``RLIMIT_NOFILE``, no core dumps; a wall-clock limit after which the parent kills the whole process group.
- **Kernel, where Linux allows it:** a new network namespace (``unshare``; for a non-root server inside a new user
  namespace), which has no network device but a loopback that is down: nothing can be reached.
  ``RLIMIT_NPROC`` bounds forks, but Linux does not apply it to root.
- **Python's audit hooks, always** (:mod:`graders.sandbox_child`, installed before the user's code): socket
  creation, process creation (fork, exec, spawn, ``subprocess``, ``os.system``), ``ctypes`` and files outside the
  folder (read: also the Python library, so imports work) are refused with ``PermissionError``. Audit hooks are
  not a security boundary against determined code that finds an interpreter bug; for a server running as root
  they are what stops fork loops and reading files, so python graders are off unless the operator turns them on.

This module knows nothing about graders' JSON.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CHILD = Path(__file__).with_name("sandbox_child.py")
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 10
    wall_s: float = 20.0
    memory_mb: int = 1024
    output_kb: int = 1024
    processes: int = 16  # not applied by Linux to root (the audit hook still refuses new processes)


class PythonGraderFailed(RuntimeError):
    """The user's code failed or was stopped: ``kind`` says how (``error``, ``cpu_time``, ``wall_clock``, ...)."""

    def __init__(self, kind: str, details: str):
        super().__init__(details)
        self.kind = kind


def run_python(source: str, sample: dict, item: object, limits: Limits = Limits()) -> float:
    """What ``grade(sample, item)`` in ``source`` returns, as a float; :class:`PythonGraderFailed` otherwise."""
    folder = Path(tempfile.mkdtemp(prefix="lorag-grader-"))
    work, private = folder / "work", folder / "private"
    work.mkdir(mode=0o700)
    private.mkdir(mode=0o700)
    try:
        (private / "input.json").write_text(json.dumps({"source": source, "sample": sample, "item": item}))
        started = time.monotonic()
        with (private / "input.json").open("rb") as given, (private / "output").open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-I", str(CHILD), str(work)],
                stdin=given, stdout=output, stderr=subprocess.STDOUT, cwd=work, env={},
                start_new_session=True, preexec_fn=lambda: confine(limits),
            )  # fmt: skip
            try:
                code = process.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                _kill_group(process.pid)
                process.wait()
        return _result(code, (private / "output").read_bytes(), limits, time.monotonic() - started)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _result(code: int | None, output: bytes, limits: Limits, elapsed: float) -> float:
    if code is None:
        raise PythonGraderFailed("wall_clock", f"stopped after {elapsed:.1f} s: over the {limits.wall_s:g} s limit")
    if code == -signal.SIGXCPU:
        raise PythonGraderFailed("cpu_time", f"stopped: over the {limits.cpu_s} s CPU-time limit")
    if code == -signal.SIGXFSZ:
        raise PythonGraderFailed("output", f"stopped: printed more than {limits.output_kb} KiB")
    if code is not None and code < 0:
        raise PythonGraderFailed("killed", f"stopped by signal {signal.Signals(-code).name}")
    lines = output.decode(errors="replace").strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        answer = {}
    if not isinstance(answer, dict) or "lorag_grade" not in answer:
        tail = "\n".join(lines[-5:]) or f"exit status {code}"
        raise PythonGraderFailed("error", f"the grader ended without a grade: {tail[-1000:]}")
    if answer["lorag_grade"] is None:
        raise PythonGraderFailed("error", answer.get("error", "unknown error"))
    return float(answer["lorag_grade"])


def confine(limits: Limits) -> None:
    """In the child, before it runs Python (``preexec_fn``): the kernel's limits, then no network."""
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))  # SIGXCPU first, SIGKILL a second on
    for limit, value in ((resource.RLIMIT_AS, limits.memory_mb * 2**20), (resource.RLIMIT_FSIZE, limits.output_kb *
                         1024), (resource.RLIMIT_NOFILE, 64), (resource.RLIMIT_CORE, 0),
                         (resource.RLIMIT_NPROC, limits.processes)):  # fmt: skip
        resource.setrlimit(limit, (value, value))
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0:
        libc.unshare(CLONE_NEWNET)
    else:
        libc.unshare(CLONE_NEWUSER | CLONE_NEWNET)  # may fail where user namespaces are off: the hook still holds


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
