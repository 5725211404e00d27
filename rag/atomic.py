"""Atomic file replacement: write a temporary sibling, fsync it, rename it over the target.

Readers see either the old file or the new one, never a torn one. A crash can leave a
`.<name>.tmp-<pid>` sibling behind; `remove_stale_temporaries` sweeps those. This module knows
nothing about what the files contain.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

TEMP_MARKER = ".tmp-"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temporary_path)`, make it durable, then rename it to `path`."""
    temporary = path.with_name(f".{path.name}{TEMP_MARKER}{os.getpid()}")
    try:
        write(temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_directory(path.parent)


def atomic_write_json(path: Path, value: Any) -> None:
    """Write `value` as indented JSON, atomically."""
    atomic_write(path, lambda target: target.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8"))


def fsync_directory(path: Path) -> None:
    """Make a rename or a new entry in `path` durable."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporaries that a crashed `atomic_write` left in `folder`."""
    for leftover in folder.glob(f".*{TEMP_MARKER}*"):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
