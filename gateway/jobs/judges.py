"""How a fine-tuning job's model graders reach a judge: this gateway itself, with a key that lives with the job's run.

A ``score_model`` or ``label_model`` grader without a ``base_url`` asks its ``model`` (the base model or any
adapter this gateway serves) through the gateway's own OpenAI-compatible URL (:attr:`Judges.url`, from
``LORAG_SELF_URL``, which ``lorag serve`` sets from its ``--host`` and ``--port``). The training process gets that
URL in its recipe and, in a file only it reads, a key :meth:`Judges.issue` makes when the process starts and
:meth:`Judges.revoke` forgets when it ends: the key acts as the job's owner may, but only to use models (no
training, no administration, no knowledge bases), and no restart keeps it. A grader's own ``base_url`` is
allowed only under a prefix of ``LORAG_OUTBOUND_URLS`` (:attr:`Judges.allowed`), and is asked without that key.
Keys are never logged nor stored in the job. This module knows nothing about HTTP or training.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Judges:
    url: str | None = None
    """This gateway's base URL as its training processes reach it (``http://127.0.0.1:8000``); None: unknown."""
    allowed: Callable[[str], bool] = lambda url: False
    """Whether a grader's own ``base_url`` is one the operator allows (``LORAG_OUTBOUND_URLS``)."""
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # job id -> (key, owner)

    def issue(self, job_id: str, owner: str, key_file: Path) -> None:
        """A new key for the job's run, written to ``key_file`` (readable by this user only)."""
        key = f"lorag-judge-{secrets.token_urlsafe(32)}"
        key_file.unlink(missing_ok=True)
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(key)
        self.keys[job_id] = (key, owner)

    def revoke(self, job_id: str, key_file: Path) -> None:
        self.keys.pop(job_id, None)
        key_file.unlink(missing_ok=True)

    def find(self, key: str) -> tuple[str, str] | None:
        """``(job id, owner)`` of a live key, compared in constant time over all keys; None for any other."""
        found = None
        for job_id, (known, owner) in list(self.keys.items()):
            if hmac.compare_digest(key.encode(), known.encode()):
                found = (job_id, owner)
        return found
