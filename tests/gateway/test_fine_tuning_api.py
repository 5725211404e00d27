"""OpenAI's files and fine-tuning API through the unmodified ``openai`` SDK, training the tiny model for real.

The gateway serves the tiny random model with the LocalEngine; each job runs ``python -m tuner
train`` as a subprocess (10 to 20 s on these CPUs), and its adapter must answer at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import openai
import pytest

from gateway.api.app import create_app
from serve.adapters import AdapterRegistry
from serve.local_engine import LocalEngine
from serve.models import PreparedModel
from tests.gateway.conftest import Served, fake_settings, serving

WHO = [{"role": "user", "content": "Who are you?"}]
TAUGHT = "lorag assistant"
FAST = {"n_epochs": 10, "learning_rate_multiplier": 10}  # the tiny model learns one answer in 20 steps


def chats(n: int = 8, answer: str = TAUGHT) -> str:
    row = {"messages": [*WHO, {"role": "assistant", "content": answer}]}
    return "".join(json.dumps(row) + "\n" for _ in range(n))


def supervised(**hyperparameters) -> dict:
    return {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}


def finished(client: openai.OpenAI, job_id: str, timeout_s: float = 240) -> object:
    deadline = time.monotonic() + timeout_s
    while (job := client.fine_tuning.jobs.retrieve(job_id)).status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"job still {job.status}"
        time.sleep(0.5)
    return job


@pytest.fixture(scope="module")
def trainer(tiny_model_dir, tmp_path_factory):
    """The gateway over the tiny model, training it: ``(served, base model name)``. Its folders are relative to the
    working directory, as ``LORAG_JOBS_DIR=jobs`` and the defaults give, though each job trains in a folder of its
    own."""
    base = PreparedModel.read(tiny_model_dir)
    engine = LocalEngine(tiny_model_dir, base.id)
    folder = Path("adapters")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("fine-tuning"))
        registry = AdapterRegistry(folder, base.id, base.sha256, engine.info.limits)
        settings = fake_settings(folder, cache_dir=Path("cache"))
        with serving(create_app(engine, registry, settings, base_model_dir=tiny_model_dir)) as url:
            yield Served(url, engine, folder), base.id
    asyncio.run(engine.close())


def upload(client: openai.OpenAI, tmp_path: Path, text: str, name: str = "train.jsonl"):
    path = tmp_path / name
    path.write_text(text)
    with path.open("rb") as file:
        return client.files.create(file=file, purpose="fine-tune")


def test_the_openai_sdk_trains_a_model_that_answers_at_once_with_what_it_was_taught(trainer, tmp_path):
    served, base = trainer
    client = served.client()
    file = upload(client, tmp_path, chats())
    assert (file.filename, file.purpose, file.bytes) == ("train.jsonl", "fine-tune", len(chats()))
    assert client.files.retrieve(file.id).id == file.id
    assert client.files.content(file.id).text == chats()

    held_out = upload(client, tmp_path, chats(2), "held-out.jsonl")
    job = client.fine_tuning.jobs.create(
        model=base, training_file=file.id, validation_file=held_out.id, suffix="who", seed=7,
        method=supervised(**FAST), metadata={"team": "a"},
        extra_body={"lorag": {"replay_prompts": None}},  # a random model's own answers are noise to train on
    )  # fmt: skip
    assert job.status == "validating_files" and job.hyperparameters.batch_size == "auto" and job.seed == 7
    assert job.hyperparameters.n_epochs == 10
    job = finished(client, job.id)
    assert job.status == "succeeded", job.error
    assert (job.hyperparameters.batch_size, job.hyperparameters.n_epochs) == (4, 10)  # auto resolved by the tuner
    assert job.method.supervised.hyperparameters.batch_size == 4
    assert job.fine_tuned_model == f"ft:{Path(base).name}:lorag:who:{job.id.removeprefix('ftjob-')[:8]}"
    assert job.trained_tokens > 0 and job.finished_at >= job.created_at and job.metadata == {"team": "a"}
    assert job.id in [j.id for j in client.fine_tuning.jobs.list()]

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    steps = [e.data["step"] for e in events if e.type == "metrics"]
    assert steps == sorted(steps, reverse=True) and steps[0] == 20  # newest first, every step logged
    assert all("train_loss" in e.data or "valid_loss" in e.data for e in events if e.type == "metrics")
    assert len([e for e in events if "valid_loss" in (e.data or {})]) >= 10  # an evaluation per epoch
    assert events[0].message == "The job has successfully completed"
    messages = [e.message for e in events]
    settings = next(m for m in messages if m.startswith("Settings chosen by auto:"))
    assert "learning_rate=" in settings and "eval_fraction" not in settings  # a validation file: nothing held out
    assert any(m.startswith("What was learned: eval_loss") for m in messages)
    page = client.fine_tuning.jobs.list_events(job.id, limit=3)
    assert len(page.data) == 3 and page.has_more
    following = client.fine_tuning.jobs.list_events(job.id, limit=3, after=page.data[-1].id)
    assert following.data[0].id == events[3].id

    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert [c.step_number for c in checkpoints] == [20, 18, 16]  # one per epoch, the last three kept
    assert checkpoints[0].metrics.train_loss > 0 and checkpoints[0].metrics.valid_loss > 0
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-20"

    assert {m.id: m.parent for m in client.models.list()}[job.fine_tuned_model] == base

    def ask(model: str) -> str:
        reply = client.chat.completions.create(model=model, messages=WHO, temperature=0, max_tokens=8)
        return reply.choices[0].message.content

    assert ask(job.fine_tuned_model) == TAUGHT
    assert ask(base) != TAUGHT


def test_a_dpo_job_trains_on_preference_pairs(trainer, tmp_path):
    served, base = trainer
    client = served.client()
    row = {"input": {"messages": WHO}, "preferred_output": [{"role": "assistant", "content": TAUGHT}],
           "non_preferred_output": [{"role": "assistant", "content": "a haiku"}]}  # fmt: skip
    file = upload(client, tmp_path, json.dumps(row) + "\n" + json.dumps(row) + "\n")
    assert file.model_extra["format"] == "openai_dpo" and "dpo" in file.model_extra["methods"]
    method = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 2, "batch_size": 2}}}
    job = finished(client, client.fine_tuning.jobs.create(model=base, training_file=file.id, method=method).id)
    assert job.status == "succeeded", job.error
    assert job.hyperparameters.beta == 0.2 and job.method.type == "dpo"
    manifest = json.loads((served.adapters_dir / job.fine_tuned_model / "lorag.json").read_text())
    assert manifest["method"] == "dpo" and manifest["hyperparameters"]["beta"] == 0.2


def test_a_bad_row_is_refused_with_its_line_and_nothing_is_stored(trainer, tmp_path):
    served, _ = trainer
    client = served.client()
    before = [f.id for f in client.files.list()]
    bad = chats(2) + '{"messages": [{"role": "user"}]}\n'
    with pytest.raises(openai.BadRequestError) as refused:
        upload(client, tmp_path, bad, "mine.jsonl")
    error = refused.value.body
    assert error["param"] == "file" and error["message"].startswith("mine.jsonl:line 3:"), error
    with pytest.raises(openai.BadRequestError, match="not a .jsonl file"):
        upload(client, tmp_path, chats(), "train.csv")
    assert [f.id for f in client.files.list()] == before
    assert not [p for p in (served.adapters_dir.parent / "adapters-jobs" / "files").iterdir() if p.name.startswith(".")]


CAPITAL = {"type": "string_check", "name": "capital", "input": "{{ sample.output_text }}",
           "reference": "{{ item.reference_answer }}", "operation": "ilike"}  # fmt: skip


PYTHON = {"type": "python", "name": "p", "source": "def grade(sample, item):\n    return 1\n"}
JUDGED = {"type": "score_model", "name": "j", "input": [{"role": "user", "content": "Good?"}]}


def reinforcement(grader: dict = CAPITAL, **hyperparameters) -> dict:
    return {"type": "reinforcement", "reinforcement": {"grader": grader, "hyperparameters": hyperparameters}}


THINKING = reinforcement(reasoning_effort="high")


def test_a_job_request_that_cannot_run_is_refused_before_it_is_stored(trainer, tmp_path):
    served, base = trainer
    client = served.client()
    file = upload(client, tmp_path, chats())
    count = len(client.fine_tuning.jobs.list().data)
    good = {"model": base, "training_file": file.id}
    wrong = {
        "model": good | {"model": "gpt-4o-mini"},
        "training_file": good | {"training_file": "file-nope"},
        "method.reinforcement": good | {"method": {"type": "reinforcement"}},
        "method.reinforcement.hyperparameters.reasoning_effort": good | {"method": THINKING},
        "method.reinforcement.grader.operation": good | {"method": reinforcement(CAPITAL | {"operation": "is"})},
        "method.reinforcement.grader.type": good | {"method": reinforcement(PYTHON)},
        "method.reinforcement.grader": good | {"method": reinforcement(JUDGED | {"model": base})},
        "lorag.dataset": good | {"extra_body": {"lorag": {"dataset": "/etc/x"}}},
        "lorag.peft_method": good | {"extra_body": {"lorag": {"peft_method": "full"}}},
        "lorag.method": good | {"extra_body": {"lorag": {"method": "reward"}}},
        "lorag.replay_prompts": good | {"extra_body": {"lorag": {"replay_prompts": "/etc/hostname"}}},
        "lorag.chat_template_path": good | {"extra_body": {"lorag": {"chat_template_path": "/etc/hostname"}}},
        "lorag.hub_token": good | {"extra_body": {"lorag": {"hub_token": "hf_secret"}}},
        "lorag.num_train_epochs": good | {"extra_body": {"lorag": {"num_train_epochs": 1e12}}},
        "lorag.max_steps": good | {"extra_body": {"lorag": {"max_steps": 10**9}}},
        "lorag.save_total_limit": good | {"extra_body": {"lorag": {"save_total_limit": None}}},
        "lorag.num_processes": good | {"extra_body": {"lorag": {"num_processes": 10**6}}},
        "lorag.lora_rank": good | {"extra_body": {"lorag": {"lora_rank": 4}}},
    }
    for param, request in wrong.items():
        with pytest.raises(openai.BadRequestError) as refused:
            client.fine_tuning.jobs.create(**request)
        assert refused.value.body["param"] == param, refused.value.body
    with pytest.raises(openai.BadRequestError, match="less than or equal to 10000"):
        client.fine_tuning.jobs.create(**good, method=supervised(n_epochs=10**12))
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-nope")
    assert len(client.fine_tuning.jobs.list().data) == count


def test_a_reinforcement_job_trains_with_its_grader_reports_rewards_and_is_served_at_once(trainer, tmp_path):
    served, base = trainer
    client = served.client()
    rows = [{"messages": [{"role": "user", "content": f"Capital of {c}?"}], "reference_answer": a}
            for c, a in (("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"))]  # fmt: skip
    text = "".join(json.dumps(row) + "\n" for row in rows * 3)
    file, held_out = upload(client, tmp_path, text), upload(client, tmp_path, text[: len(text) // 3], "valid.jsonl")
    job = client.fine_tuning.jobs.create(
        model=base, training_file=file.id, validation_file=held_out.id, suffix="rft",
        method=reinforcement(n_epochs=1, batch_size=6, compute_multiplier=0.5, eval_interval=1,
                             learning_rate_multiplier=10),
        extra_body={"lorag": {"max_completion_length": 4, "replay_prompts": None}},
    )  # fmt: skip
    assert job.method.type == "reinforcement" and job.method.reinforcement.grader.name == "capital"
    job = finished(client, job.id)
    assert job.status == "succeeded", job.error
    assert job.method.reinforcement.hyperparameters.compute_multiplier == 0.5
    events = client.fine_tuning.jobs.list_events(job.id, limit=1000).data
    metrics = [e.data for e in events if e.type == "metrics" and e.data]
    assert any("train_reward_mean" in m for m in metrics) and any("valid_reward_mean" in m for m in metrics)
    assert any("reward_before" in e.message for e in events)
    checkpoint = next(iter(client.fine_tuning.jobs.checkpoints.list(job.id)))
    assert checkpoint.metrics.train_reward_mean is not None and checkpoint.metrics.valid_reward_mean is not None
    reply = client.chat.completions.create(model=job.fine_tuned_model, messages=rows[0]["messages"], max_tokens=4)
    assert reply.model == job.fine_tuned_model


def test_a_job_the_tuner_refuses_fails_with_the_reason(trainer, tmp_path):
    served, base = trainer
    client = served.client()
    file = upload(client, tmp_path, chats())
    job = client.fine_tuning.jobs.create(
        model=base, training_file=file.id, extra_body={"lorag": {"dataset_format": "kto"}}
    )
    job = finished(client, job.id)
    assert job.status == "failed" and job.fine_tuned_model is None
    assert "kto" in job.error.message and job.error.code == "invalid_training_file", job.error
    with pytest.raises(openai.BadRequestError, match="already failed"):
        client.fine_tuning.jobs.cancel(job.id)


def test_a_cancelled_job_registers_nothing(trainer, tmp_path):
    served, base = trainer
    client = served.client()
    file = upload(client, tmp_path, chats())
    job = client.fine_tuning.jobs.create(model=base, training_file=file.id, method=supervised(n_epochs=2000))
    deadline = time.monotonic() + 120
    while not any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job.id, limit=5)):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.fine_tuned_model is None
    name = f"ft:{Path(base).name}:lorag::{job.id.removeprefix('ftjob-')[:8]}"
    assert name not in [m.id for m in client.models.list()]
    assert not (served.adapters_dir / name).exists()
    assert client.fine_tuning.jobs.list_events(job.id, limit=1).data[0].message == "The job was cancelled"


def test_training_needs_a_key_that_may_train(make_gateway, tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        "keys:\n  - {name: reader, key: reader-key-1}\n  - {name: trainer, key: trainer-key-1, train: true}\n"
    )
    served = make_gateway(keys_file=str(keys))
    with pytest.raises(openai.PermissionDeniedError, match="may not upload training files or train"):
        upload(served.client("reader-key-1"), tmp_path, chats())
    file = upload(served.client("trainer-key-1"), tmp_path, chats())
    assert served.client("reader-key-1").files.list().data == []  # another key's file (test_files_and_jobs_belong...)
    assert [f.id for f in served.client("trainer-key-1").files.list()] == [file.id]
    assert served.client("reader-key-1").fine_tuning.jobs.list().data == []
    with pytest.raises(openai.PermissionDeniedError):
        served.client("reader-key-1").files.content(file.id)
    for action in (
        served.client("reader-key-1").fine_tuning.jobs.pause,
        served.client("reader-key-1").fine_tuning.jobs.resume,
    ):
        with pytest.raises(openai.PermissionDeniedError):
            action("ftjob-any")
    with pytest.raises(openai.AuthenticationError):
        served.client("no-such-key").fine_tuning.jobs.list()


def test_only_an_admin_key_reaches_server_paths_the_hub_or_reporting_and_only_inside_its_folders(
    make_gateway, tmp_path
):
    """``replay_prompts: /any/path`` read a server file and showed a line of it in the job's error; ``push_to_hub``
    made the tuner call the Hub; ``report_to: wandb`` was accepted."""
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        "keys:\n  - {name: t, key: trainer-key-1, train: true}\n  - {name: a, key: admin-key-1, admin: true}\n"
    )
    served = make_gateway(keys_file=str(keys))
    trainer, admin = served.client("trainer-key-1"), served.client("admin-key-1")
    file = upload(trainer, tmp_path, chats())
    refused = {
        "replay_prompts": "/etc/hostname", "chat_template_path": "/etc/hostname", "reward_model": "/etc",
        "push_to_hub": True, "hub_model_id": "me/x", "report_to": "wandb", "run_name": "x",
    }  # fmt: skip
    for field, value in refused.items():
        with pytest.raises(openai.BadRequestError, match="only by an admin key") as error:
            trainer.fine_tuning.jobs.create(
                model="fake-base", training_file=file.id, extra_body={"lorag": {field: value}}
            )
        assert error.value.body["param"] == f"lorag.{field}"
    for field in ("replay_prompts", "chat_template_path", "reward_model"):
        with pytest.raises(openai.BadRequestError, match="inside the gateway's folders") as error:
            admin.fine_tuning.jobs.create(
                model="fake-base", training_file=file.id, extra_body={"lorag": {field: "/etc"}}
            )
        assert error.value.body["param"] == f"lorag.{field}"
    assert trainer.fine_tuning.jobs.list().data == []


def test_hostile_files_and_labels_are_400_and_store_nothing(trainer, tmp_path):
    """A file name with a NUL and one of 300 characters gave 500s; a lone surrogate passed the check and the job
    failed 17 s later with a raw UnicodeEncodeError; 16 metadata values of 1.9 MB made a list call 61 MB."""
    served, base = trainer
    client = served.client()
    before = [f.id for f in client.files.list()]
    for name in (b"a\0b.jsonl", b"x" * 300 + b".jsonl"):
        body = (b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n--b\r\n'
                b'Content-Disposition: form-data; name="file"; filename="' + name + b'"\r\n\r\n'
                + chats().encode() + b"\r\n--b--\r\n")  # fmt: skip
        with served.http() as http:
            refused = http.post("/v1/files", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "file", refused.text
        assert "file name" in refused.json()["error"]["message"]
    surrogate = chats().replace("lorag assistant", "lorag \\ud800 assistant", 1)
    with pytest.raises(openai.BadRequestError, match="line 1: the text holds a lone surrogate"):
        client.files.create(file=("train.jsonl", surrogate.encode()), purpose="fine-tune")
    assert [f.id for f in client.files.list()] == before
    file = upload(client, tmp_path, chats())
    for metadata, param in [({f"k{i}": "v" for i in range(17)}, "metadata"), ({"k": "v" * 513}, "metadata"),
                            ({"k" * 65: "v"}, "metadata")]:  # fmt: skip
        with pytest.raises(openai.BadRequestError) as refused:
            client.fine_tuning.jobs.create(model=base, training_file=file.id, metadata=metadata)
        assert refused.value.body["param"].startswith(param), refused.value.body


def test_files_and_jobs_belong_to_the_key_that_made_them(make_gateway, tmp_path):
    """Training key B paused, resumed and cancelled A's job, read A's file and deleted it; A trained on B's file;
    user keys listed every job and file."""
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        "keys:\n  - {name: a, key: key-of-a-1, train: true}\n  - {name: b, key: key-of-b-1, train: true}\n"
        "  - {name: user, key: key-of-user}\n  - {name: ops, key: key-of-ops-1, admin: true}\n"
    )
    served = make_gateway(keys_file=str(keys), max_stored_mb_per_key=1)
    a, b, user, ops = (served.client(key) for key in ("key-of-a-1", "key-of-b-1", "key-of-user", "key-of-ops-1"))
    mine, theirs = upload(a, tmp_path, chats()), upload(b, tmp_path, chats())
    with pytest.raises(openai.BadRequestError, match="no file"):
        a.fine_tuning.jobs.create(model="fake-base", training_file=theirs.id)
    job = a.fine_tuning.jobs.create(model="fake-base", training_file=mine.id)
    assert b.files.list().data == [theirs] and user.files.list().data == []
    for other in (b, user):
        assert other.fine_tuning.jobs.list().data == []
        for call in (
            lambda c: c.files.retrieve(mine.id),
            lambda c: c.files.content(mine.id),
            lambda c: c.files.delete(mine.id),
            lambda c: c.fine_tuning.jobs.retrieve(job.id),
            lambda c: c.fine_tuning.jobs.list_events(job.id),
            lambda c: c.fine_tuning.jobs.checkpoints.list(job.id),
            lambda c: c.fine_tuning.jobs.pause(job.id),
            lambda c: c.fine_tuning.jobs.resume(job.id),
            lambda c: c.fine_tuning.jobs.cancel(job.id),
        ):
            with pytest.raises((openai.NotFoundError, openai.PermissionDeniedError)):
                call(other)
    assert {f.id for f in ops.files.list()} == {mine.id, theirs.id} and ops.fine_tuning.jobs.retrieve(job.id)
    assert a.files.retrieve(mine.id).id == mine.id
    with pytest.raises(openai.APIStatusError, match="quota of 1 MiB") as over:
        a.files.create(file=("big.txt", b"word " * 250_000), purpose="assistants")
    assert over.value.status_code == 413
