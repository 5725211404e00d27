"""A gateway killed during a fine-tuning job loses no job: restarted, it resumes the job from its last checkpoint."""

from __future__ import annotations

import os
import signal
import time

from openai import OpenAI

from tests.gateway.test_fine_tuning_api import WHO, chats
from tests.gateway.test_serve_command import start_serve


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_killing_the_gateway_during_a_job_loses_nothing(tiny_raw_dir, tiny_model_dir, tmp_path):
    folders = {"adapters_dir": tmp_path / "adapters", "jobs_dir": str(tmp_path / "jobs")}
    server, port = start_serve(tiny_raw_dir, tiny_model_dir, **folders)
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=30)
    (tmp_path / "train.jsonl").write_text(chats())
    file = client.files.create(file=(tmp_path / "train.jsonl").open("rb"), purpose="fine-tune")
    hyperparameters = {"n_epochs": 60, "learning_rate_multiplier": 10}
    method = {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}
    job = client.fine_tuning.jobs.create(
        model=str(tiny_raw_dir), training_file=file.id, method=method, extra_body={"lorag": {"replay_prompts": None}}
    )  # a random model's own answers are noise to train on
    deadline = time.monotonic() + 120
    while not client.fine_tuning.jobs.checkpoints.list(job.id).data:
        assert time.monotonic() < deadline, client.fine_tuning.jobs.retrieve(job.id)
        time.sleep(0.2)
    trainer = _trainer_pid(tmp_path, job.id)
    staged = tmp_path / "jobs" / "files" / ".upload-left-by-a-kill"
    staged.mkdir()
    server.kill()  # SIGKILL: no shutdown
    server.wait()
    deadline = time.monotonic() + 30
    while alive(trainer):  # it dies with the gateway (it used to train on, and outlive it)
        assert time.monotonic() < deadline
        time.sleep(0.2)

    server, port = start_serve(tiny_raw_dir, tiny_model_dir, **folders)
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=30)
        assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]
        assert not staged.exists()
        deadline = time.monotonic() + 240
        while (job := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job.status == "succeeded", job.error
        events = list(client.fine_tuning.jobs.list_events(job.id, limit=1000))
        restarted = next(i for i, e in enumerate(events) if "restarted" in e.message)
        resumed = [e.data["step"] for e in events[:restarted] if e.type == "metrics"]
        assert min(resumed) > 1  # resumed from the checkpoint, not from the first step
        before = [e.data["step"] for e in events[restarted:] if e.type == "metrics"]
        assert sorted(set(before) | set(resumed)) == list(range(1, max(resumed) + 1))  # no step lost at the kill
        assert job.trained_tokens and client.fine_tuning.jobs.checkpoints.list(job.id).data
        reply = client.chat.completions.create(model=job.fine_tuned_model, messages=WHO, temperature=0, max_tokens=8)
        assert reply.choices[0].message.content == "lorag assistant"
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)


def _trainer_pid(root, job_id: str) -> int | None:
    """The pid the store recorded for the job's training process."""
    import sqlite3

    with sqlite3.connect(root / "jobs" / "jobs.sqlite") as db:
        (pid,) = db.execute("SELECT pid FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return pid
