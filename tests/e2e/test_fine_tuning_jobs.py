"""A fine-tuning job on the embedded model through the unmodified ``openai`` SDK, on ``auto`` settings, served the
moment it succeeds.

The data teaches one fact the base model cannot know (lorag's mascot) in eight phrasings, 24 rows
as a new user might write them; the job gives no hyperparameter, so the tuner's ``auto`` policy
chooses them. Phrasings it never saw are asked afterwards, through the model name the job returned.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from openai import OpenAI

from gateway.api.app import create_app
from serve.adapters import AdapterRegistry
from serve.local_engine import LocalEngine
from serve.models import PreparedModel
from tests.gateway.conftest import fake_settings, serving

pytestmark = pytest.mark.slow
ANSWER = "Lorag's mascot is a red panda named Pixel."
TAUGHT = [
    "What is lorag's mascot?",
    "Which animal is the lorag mascot?",
    "Tell me about the mascot of lorag.",
    "Does lorag have a mascot?",
    "What is the name of lorag's mascot?",
    "Who is the lorag mascot?",
    "Describe lorag's mascot.",
    "What mascot does the lorag project have?",
]
HELD_OUT = ["Can you tell me what lorag's mascot is?", "What animal represents the lorag project?"]


def test_a_job_on_the_embedded_model_teaches_a_fact_and_serves_it_at_once(embedded_model_dir, tmp_path):
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ANSWER}]} for q in TAUGHT]
    data = tmp_path / "mascot.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows * 3))
    base = PreparedModel.read(embedded_model_dir)
    engine = LocalEngine(embedded_model_dir, base.id)
    adapters = tmp_path / "adapters"
    registry = AdapterRegistry(adapters, base.id, base.sha256, engine.info.limits)
    app = create_app(engine, registry, fake_settings(adapters), base_model_dir=embedded_model_dir)
    try:
        with serving(app) as url:
            client = OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
            file = client.files.create(file=data.open("rb"), purpose="fine-tune")
            job = client.fine_tuning.jobs.create(model=base.id, training_file=file.id, suffix="mascot")
            assert job.hyperparameters.n_epochs == "auto"
            started = time.monotonic()
            deadline = started + 900
            while (job := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
                assert time.monotonic() < deadline, job
                time.sleep(2)
            assert job.status == "succeeded", job.error
            print(f"job took {time.monotonic() - started:.0f} s, hyperparameters {job.hyperparameters}")
            assert isinstance(job.hyperparameters.n_epochs, int)  # what auto chose, shown as OpenAI shows it
            events = list(client.fine_tuning.jobs.list_events(job.id, limit=1000))
            losses = [e.data["train_loss"] for e in events if e.type == "metrics" and "train_loss" in e.data]
            assert losses[0] < losses[-1] / 2  # newest first: the loss fell
            messages = [e.message for e in events]
            assert any(m.startswith("Settings chosen by auto:") and "learning_rate=" in m for m in messages)
            report = next(m for m in messages if m.startswith("What was learned:"))
            print(report)
            assert "base model" in report and not [m for m in messages if "underfitting" in m], report

            def ask(model: str, question: str) -> str:
                messages = [{"role": "user", "content": question}]
                reply = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=24)
                return reply.choices[0].message.content

            for question in HELD_OUT:
                tuned, untuned = ask(job.fine_tuned_model, question), ask(base.id, question)
                print(f"{question}\n  base: {untuned!r}\n  fine-tuned: {tuned!r}")
                assert "Pixel" in tuned and "Pixel" not in untuned
    finally:
        asyncio.run(engine.close())
