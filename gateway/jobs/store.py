"""The fine-tuning jobs' state on disk: one SQLite database of files, jobs, events, checkpoints and their owners.

Each object is stored whole as its wire model's JSON, beside the columns it is looked up by; a
row's ``seq`` orders lists (newest first) and makes OpenAI's ``after`` cursors exact. Every write
commits at once, in WAL mode, so a gateway killed at any moment restarts with every job it had
accepted. Calls are short and serialised by one lock; the service calls them from the event
loop. This module knows nothing about training or HTTP.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from gateway.jobs.protocol import Checkpoint, FileObject, Job, JobEvent, Page

M = TypeVar("M", bound=BaseModel)
SCHEMA = """
CREATE TABLE IF NOT EXISTS files (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
    purpose TEXT NOT NULL, path TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
    status TEXT NOT NULL, recipe TEXT NOT NULL, pid INTEGER, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
    job_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
    job_id TEXT NOT NULL, path TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_of_job ON events (job_id, seq);
CREATE INDEX IF NOT EXISTS checkpoints_of_job ON checkpoints (job_id, seq);
CREATE TABLE IF NOT EXISTS owners (id TEXT PRIMARY KEY, owner TEXT NOT NULL);
"""


class JobStore:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "progress" not in columns:  # a database from before progress offsets were kept
            self._db.execute("ALTER TABLE jobs ADD COLUMN progress INTEGER NOT NULL DEFAULT 0")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, params: tuple) -> None:
        with self._lock:
            self._db.execute(sql, params)

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # files

    def add_file(self, file: FileObject, path: Path) -> None:
        self._write(
            "INSERT INTO files (id, purpose, path, body) VALUES (?, ?, ?, ?)",
            (file.id, file.purpose, str(path), file.model_dump_json()),
        )

    def file(self, file_id: str) -> tuple[FileObject, Path] | None:
        rows = self._rows("SELECT body, path FROM files WHERE id = ?", (file_id,))
        return (FileObject.model_validate_json(rows[0][0]), Path(rows[0][1])) if rows else None

    def files(
        self, purpose: str | None, after: str | None, limit: int, newest_first: bool, owner: str | None = None
    ) -> Page[FileObject]:
        where, params = ("purpose = ?", (purpose,)) if purpose else ("1", ())
        return self._page("files", where, params, after, limit, FileObject, newest_first, owner)

    def delete_file(self, file_id: str) -> None:
        self._write("DELETE FROM files WHERE id = ?", (file_id,))
        self._write("DELETE FROM owners WHERE id = ?", (file_id,))

    def stored_bytes(self, owner: str) -> int:
        """The bytes of every file the key ``owner`` stored."""
        rows = self._rows("SELECT SUM(json_extract(f.body, '$.bytes')) FROM files f JOIN owners o ON o.id = f.id"
                          " WHERE o.owner = ?", (owner,))  # fmt: skip
        return rows[0][0] or 0

    # owners

    def set_owner(self, object_id: str, owner: str) -> None:
        """Record the name of the key that made the file or job."""
        self._write("INSERT OR REPLACE INTO owners (id, owner) VALUES (?, ?)", (object_id, owner))

    def owner(self, object_id: str) -> str | None:
        """Who made the file or job; None for one made before owners were recorded (admin keys only see it)."""
        rows = self._rows("SELECT owner FROM owners WHERE id = ?", (object_id,))
        return rows[0][0] if rows else None

    # jobs

    def add_job(self, job: Job, recipe: dict) -> None:
        self._write(
            "INSERT INTO jobs (id, status, recipe, body) VALUES (?, ?, ?, ?)",
            (job.id, job.status, json.dumps(recipe), job.model_dump_json()),
        )

    def save_job(self, job: Job, pid: int | None = None) -> None:
        self._write("UPDATE jobs SET status = ?, pid = ?, body = ? WHERE id = ?",
                    (job.status, pid, job.model_dump_json(), job.id))  # fmt: skip

    def job(self, job_id: str) -> Job | None:
        rows = self._rows("SELECT body FROM jobs WHERE id = ?", (job_id,))
        return Job.model_validate_json(rows[0][0]) if rows else None

    def recipe(self, job_id: str) -> tuple[dict, int | None]:
        """The job's recipe fields, and the pid of its training process when one was running."""
        recipe, pid = self._rows("SELECT recipe, pid FROM jobs WHERE id = ?", (job_id,))[0]
        return json.loads(recipe), pid

    def save_progress(self, job_id: str, offset: int) -> None:
        """How far into its progress file the job's events, checkpoints and figures are stored."""
        self._write("UPDATE jobs SET progress = ? WHERE id = ?", (offset, job_id))

    def progress(self, job_id: str) -> int:
        return self._rows("SELECT progress FROM jobs WHERE id = ?", (job_id,))[0][0]

    def jobs(self, after: str | None, limit: int, owner: str | None = None) -> Page[Job]:
        return self._page("jobs", "1", (), after, limit, Job, True, owner)

    def unfinished(self) -> list[Job]:
        """Jobs not yet succeeded, failed or cancelled, oldest first."""
        rows = self._rows("SELECT body FROM jobs WHERE status NOT IN ('succeeded', 'failed', 'cancelled') ORDER BY seq")
        return [Job.model_validate_json(body) for (body,) in rows]

    def jobs_using(self, file_id: str) -> list[str]:
        rows = self._rows("SELECT id, body FROM jobs WHERE status NOT IN ('succeeded', 'failed', 'cancelled')")
        jobs = [Job.model_validate_json(body) for _, body in rows]
        return [job.id for job in jobs if file_id in (job.training_file, job.validation_file)]

    # events and checkpoints

    def add_event(self, job_id: str, event: JobEvent) -> None:
        self._write("INSERT INTO events (id, job_id, body) VALUES (?, ?, ?)",
                    (event.id, job_id, event.model_dump_json()))  # fmt: skip

    def events(self, job_id: str, after: str | None, limit: int) -> Page[JobEvent]:
        return self._page("events", "job_id = ?", (job_id,), after, limit, JobEvent, True)

    def add_checkpoint(self, checkpoint: Checkpoint, path: Path) -> None:
        row = (checkpoint.id, checkpoint.fine_tuning_job_id, str(path), checkpoint.model_dump_json())
        self._write("INSERT INTO checkpoints (id, job_id, path, body) VALUES (?, ?, ?, ?)", row)

    def forget_removed_checkpoints(self, job_id: str) -> None:
        """Drop the checkpoints training has since deleted (it keeps the last few)."""
        for checkpoint_id, path in self._rows("SELECT id, path FROM checkpoints WHERE job_id = ?", (job_id,)):
            if not Path(path).exists():
                self._write("DELETE FROM checkpoints WHERE id = ?", (checkpoint_id,))

    def checkpoints(self, job_id: str, after: str | None, limit: int) -> Page[Checkpoint]:
        return self._page("checkpoints", "job_id = ?", (job_id,), after, limit, Checkpoint, True)

    def _page(
        self, table: str, where: str, params: tuple, after: str | None, limit: int, model: type[M], newest_first: bool,
        owner: str | None = None,
    ) -> Page[M]:  # fmt: skip
        """A page of ``table``; only the rows ``owner`` made when one is given."""
        order, beyond = ("DESC", "<") if newest_first else ("ASC", ">")
        if owner is not None:
            where += " AND id IN (SELECT id FROM owners WHERE owner = ?)"
            params += (owner,)
        if after is not None:
            where += f" AND seq {beyond} COALESCE((SELECT seq FROM {table} WHERE id = ?), -1)"
            params += (after,)
        rows = self._rows(f"SELECT body FROM {table} WHERE {where} ORDER BY seq {order} LIMIT ?", params + (limit + 1,))
        data = [model.model_validate_json(body) for (body,) in rows[:limit]]
        return Page[model](
            data=data, has_more=len(rows) > limit,
            first_id=data[0].id if data else None, last_id=data[-1].id if data else None,
        )  # fmt: skip
