"""Pausing a fine-tuning job stops its training and keeps its checkpoints; resuming trains on from the last one.

Through the OpenAI SDK's ``jobs.pause`` and ``jobs.resume``, against ``lorag serve`` on the tiny model.
A paused job stays paused across a gateway restart, and only a running job can be paused.
"""

from __future__ import annotations

import signal
import time

import openai
import pytest
from openai import OpenAI

from tests.gateway.test_fine_tuning_api import WHO, chats
from tests.gateway.test_fine_tuning_restart import _trainer_pid, alive
from tests.gateway.test_serve_command import start_serve


def start_job(client: OpenAI, model: str, folder, **hyperparameters):
    """A long supervised job on ``chats()``: 60 epochs, a checkpoint every 6."""
    (folder / "train.jsonl").write_text(chats())
    file = client.files.create(file=(folder / "train.jsonl").open("rb"), purpose="fine-tune")
    method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 60, **hyperparameters}}}
    return client.fine_tuning.jobs.create(
        model=model, training_file=file.id, method=method, extra_body={"lorag": {"replay_prompts": None}}
    )  # a random model's own answers are noise to train on


def wait_for_a_checkpoint(client: OpenAI, job_id: str) -> None:
    deadline = time.monotonic() + 120
    while not client.fine_tuning.jobs.checkpoints.list(job_id).data:
        assert time.monotonic() < deadline, client.fine_tuning.jobs.retrieve(job_id)
        time.sleep(0.2)


def wait_for(client: OpenAI, job_id: str, statuses: tuple[str, ...], timeout_s: float = 240):
    deadline = time.monotonic() + timeout_s
    while (job := client.fine_tuning.jobs.retrieve(job_id)).status not in statuses:
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def test_a_paused_job_keeps_its_checkpoints_and_resumes_from_the_last_one(tiny_raw_dir, tiny_model_dir, tmp_path):
    folders = {"adapters_dir": tmp_path / "adapters", "jobs_dir": str(tmp_path / "jobs")}
    server, port = start_serve(tiny_raw_dir, tiny_model_dir, **folders)
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=60)
    try:
        job = start_job(client, str(tiny_raw_dir), tmp_path, learning_rate_multiplier=10)
        with pytest.raises(openai.BadRequestError, match="only a paused job can be resumed"):
            client.fine_tuning.jobs.resume(job.id)
        wait_for_a_checkpoint(client, job.id)
        trainer = _trainer_pid(tmp_path, job.id)

        assert client.fine_tuning.jobs.pause(job.id).status == "paused"
        assert not alive(trainer)
        paused = next(e.message for e in client.fine_tuning.jobs.list_events(job.id) if "paused" in e.message)
        assert "resuming continues from step" in paused
        with pytest.raises(openai.BadRequestError, match="only a running job can be paused"):
            client.fine_tuning.jobs.pause(job.id)

        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
        server, port = start_serve(tiny_raw_dir, tiny_model_dir, **folders)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=60)
        time.sleep(2)
        assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"  # a restart does not resume it

        assert client.fine_tuning.jobs.resume(job.id).status in ("queued", "running")
        job = wait_for(client, job.id, ("succeeded", "failed", "cancelled"))
        assert job.status == "succeeded", job.error
        events = list(client.fine_tuning.jobs.list_events(job.id, limit=1000))  # newest first
        resumed = next(i for i, e in enumerate(events) if e.message == "The job was resumed")
        steps = [e.data["step"] for e in events[:resumed] if e.type == "metrics"]
        assert min(steps) > 1  # trained on from the checkpoint, not from the first step
        reply = client.chat.completions.create(model=job.fine_tuned_model, messages=WHO, temperature=0, max_tokens=8)
        assert reply.choices[0].message.content == "lorag assistant"
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)


def test_cancelling_a_paused_job_removes_its_checkpoints(tiny_raw_dir, tiny_model_dir, tmp_path):
    folders = {"adapters_dir": tmp_path / "adapters", "jobs_dir": str(tmp_path / "jobs")}
    server, port = start_serve(tiny_raw_dir, tiny_model_dir, **folders)
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=60)
    try:
        job = start_job(client, str(tiny_raw_dir), tmp_path)
        wait_for_a_checkpoint(client, job.id)
        client.fine_tuning.jobs.pause(job.id)
        runs = tmp_path / "jobs" / job.id / "runs"
        assert list(runs.glob("*/checkpoint-*"))

        assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
        assert not runs.exists()
        assert [m.id for m in client.models.list()] == [str(tiny_raw_dir)]  # no adapter
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
