"""The single-writer lock of a knowledge-base folder: one process at a time may hold it open.

A knowledge base is SQLite plus index files that its process keeps in memory and saves whole, so
two processes writing one folder would each save an index missing the other's chunks. The first
process to open a folder takes an exclusive ``flock`` on ``writer.lock`` inside it, and keeps it
until it closes the knowledge base or exits (the kernel drops the lock of a process that dies,
so a crash never leaves the folder locked). Another process that opens the folder gets
:class:`rag.errors.KnowledgeBaseLocked`, naming the holder, and changes nothing. Within one
process the lock is shared: opening a folder twice counts, closing it as often releases it.

``flock`` works on local disks and on shared volumes that support it (NFS v4, CephFS); this
module knows nothing about what the folder holds.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from rag.errors import KnowledgeBaseLocked

LOCK_FILE = "writer.lock"


@dataclass
class _Held:
    descriptor: int
    opened: int


_held: dict[str, _Held] = {}
_guard = threading.Lock()


def acquire(folder: Path) -> None:
    """Hold ``folder``'s writer lock for this process; KnowledgeBaseLocked if another process holds it."""
    key = str(Path(folder).resolve())
    with _guard:
        if key in _held:
            _held[key].opened += 1
            return
        descriptor = os.open(Path(key) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 256, 0).decode(errors="replace").strip() or "another process"
            os.close(descriptor)
            raise KnowledgeBaseLocked(Path(key).name, holder) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        _held[key] = _Held(descriptor, 1)


def release(folder: Path, *, all_opens: bool = False) -> None:
    """Count one close of ``folder`` (every open with ``all_opens``); the last one releases the lock."""
    key = str(Path(folder).resolve())
    with _guard:
        held = _held.get(key)
        if held is None:
            return
        held.opened = 0 if all_opens else held.opened - 1
        if held.opened <= 0:
            del _held[key]
            os.close(held.descriptor)  # closing the descriptor drops the flock
