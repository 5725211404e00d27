"""Ids of files, jobs, events and checkpoints in OpenAI's shapes (``file-...``, ``ftjob-...``); nothing else."""

from __future__ import annotations

import uuid


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"
