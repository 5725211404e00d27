"""Reinforcement fine-tuning jobs with a model grader and a ``response_format``, through the ``openai`` SDK.

The gateway serves the tiny random model; a job's ``score_model`` grader names that model as its judge, and the
training process asks it through the gateway with the key the gateway gave that run (a keys file is configured,
so a request without it would be refused). The samples are held to the job's JSON schema, so the judge's prompt
shows ``{{ sample.output_json.city }}``, one of the schema's cities.
"""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

from gateway.api.app import create_app
from serve.adapters import AdapterRegistry
from serve.local_engine import LocalEngine
from serve.models import PreparedModel
from tests.gateway.conftest import Served, fake_settings, serving
from tests.gateway.test_fine_tuning_api import finished, upload

CITIES = ["Paris", "Tokyo", "Rome"]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "enum": CITIES}}, "required": ["city"],
          "additionalProperties": False}  # fmt: skip
FORMAT = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}}
TRAINER = "trainer-key-1"


def judged(model: str, **fields) -> dict:
    return {"type": "score_model", "name": "judge", "model": model, "sampling_params": {"max_completions_tokens": 12},
            "input": [{"role": "user", "content": "Is {{ sample.output_json.city }} the capital asked for, "
                                                  "{{ item.reference_answer }}? Score 0 to 1."}]} | fields  # fmt: skip


def reinforcement(grader: dict, response_format: dict | None = FORMAT, **hyperparameters) -> dict:
    settings = {"grader": grader, "hyperparameters": hyperparameters}
    return {"type": "reinforcement", "reinforcement": settings | ({"response_format": response_format}
                                                                  if response_format else {})}  # fmt: skip


@pytest.fixture(scope="module")
def gateway(tiny_model_dir, tmp_path_factory):
    """The gateway over the tiny model with a keys file, counting what its engine is asked: ``(served, base, app,
    asked)``."""
    base = PreparedModel.read(tiny_model_dir)
    engine = LocalEngine(tiny_model_dir, base.id)
    asked = []
    stream = engine.stream

    def counted(messages, params, adapter=None):
        asked.append(messages)
        return stream(messages, params, adapter)

    engine.stream = counted
    folder = tmp_path_factory.mktemp("rft-judge") / "adapters"
    keys = folder.parent / "keys.yaml"
    keys.write_text(f"keys:\n  - {{name: trainer, key: {TRAINER}, train: true, models: ['{base.id}*', 'ft:*']}}\n")
    registry = AdapterRegistry(folder, base.id, base.sha256, engine.info.limits)
    settings = fake_settings(folder, keys_file=str(keys), outbound_urls=["http://judge.example/v1"])
    app = create_app(engine, registry, settings, base_model_dir=tiny_model_dir)
    with serving(app) as url:
        app.state.gateway.fine_tuning.judges.url = url  # as `lorag serve` sets LORAG_SELF_URL from its port
        yield Served(url, engine, folder), base.id, app, asked
    asyncio.run(engine.close())


def test_a_job_whose_grader_asks_a_served_model_reaches_it_through_the_gateway_with_a_key_of_its_own(gateway, tmp_path):
    served, base, app, asked = gateway
    client = served.client(TRAINER)
    rows = [{"messages": [{"role": "user", "content": f"Capital of {c}?"}], "reference_answer": a}
            for c, a in (("France", "Paris"), ("Japan", "Tokyo"))]  # fmt: skip
    file = upload(client, tmp_path, "".join(json.dumps(row) + "\n" for row in rows))
    before = len(asked)
    job = client.fine_tuning.jobs.create(
        model=base, training_file=file.id, suffix="judged",
        method=reinforcement(judged(base), n_epochs=1, batch_size=2, compute_multiplier=0.5),
        extra_body={"lorag": {"max_completion_length": 24, "replay_prompts": None}},
    )  # fmt: skip
    assert job.method.reinforcement.response_format == FORMAT
    job = finished(client, job.id)
    assert job.status == "succeeded", job.error
    prompts = [m[-1].content for m in asked[before:]]
    assert len(prompts) >= 2, prompts  # one judge request per sample: each reached the served model
    assert all(any(f"Is {city} the capital" in p for city in CITIES) for p in prompts), prompts  # output_json
    work = app.state.gateway.fine_tuning.runner.work_dir(job.id)
    assert not (work / "judge.key").exists() and not app.state.gateway.fine_tuning.judges.keys  # gone with the run
    recipe = (work / "recipe.yaml").read_text()
    assert "judge_api_key_file" in recipe and "lorag-judge-" not in recipe
    assert "lorag-judge-" not in (work / "tuner.log").read_text()
    assert "lorag-judge-" not in client.fine_tuning.jobs.retrieve(job.id).model_dump_json()
    events = client.fine_tuning.jobs.list_events(job.id, limit=1000).data
    assert not any("model_grader" in e.message for e in events)


def test_a_job_key_only_uses_models_and_dies_with_its_run(gateway):
    served, base, app, _ = gateway
    judges = app.state.gateway.fine_tuning.judges
    key_file = served.adapters_dir.parent / "a.key"
    judges.issue("ftjob-x", "trainer", key_file)
    key = key_file.read_text()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    client = served.client(key)
    reply = client.chat.completions.create(model=base, messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    assert reply.model == base
    with pytest.raises(openai.PermissionDeniedError):
        client.files.create(file=("t.jsonl", b'{"prompt": "x"}\n'), purpose="fine-tune")
    judges.revoke("ftjob-x", key_file)
    assert not key_file.exists()
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_a_reinforcement_job_that_cannot_sample_or_judge_as_asked_is_refused(gateway, tmp_path):
    served, base, app, _ = gateway
    client = served.client(TRAINER)
    file = upload(client, tmp_path, json.dumps({"messages": [{"role": "user", "content": "Hi"}]}) + "\n")
    bad_schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objectx"}}}
    wrong = {
        "method.reinforcement.response_format.json_schema.schema": reinforcement(judged(base), bad_schema),
        "method.reinforcement.response_format": reinforcement(judged(base), {"type": "json_object"}),
        "method.reinforcement.grader.base_url": reinforcement(judged(base, base_url="http://elsewhere/v1")),
    }
    count = len(client.fine_tuning.jobs.list().data)
    for param, method in wrong.items():
        with pytest.raises(openai.BadRequestError) as refused:
            client.fine_tuning.jobs.create(model=base, training_file=file.id, method=method)
        assert refused.value.body["param"] == param, refused.value.body
    judges = app.state.gateway.fine_tuning.judges
    url, judges.url = judges.url, None
    try:
        with pytest.raises(openai.BadRequestError, match="LORAG_SELF_URL"):
            client.fine_tuning.jobs.create(model=base, training_file=file.id, method=reinforcement(judged(base)))
        allowed = judged(base, base_url="http://judge.example/v1")  # its own judge, allowed: no need of ours
        job = client.fine_tuning.jobs.create(model=base, training_file=file.id, method=reinforcement(allowed))
        client.fine_tuning.jobs.cancel(job.id)
    finally:
        judges.url = url
    assert len(client.fine_tuning.jobs.list().data) == count + 1


@pytest.mark.parametrize(("host", "url"), [("0.0.0.0", "http://127.0.0.1:8123"), ("10.0.0.5", "http://10.0.0.5:8123")])
def test_lorag_serve_tells_its_training_processes_where_it_listens(host, url, monkeypatch):
    from types import SimpleNamespace

    import uvicorn
    from typer.testing import CliRunner

    from gateway.cli import main

    seen = {}

    def create_app(start, settings):
        seen["url"] = settings.self_url
        return SimpleNamespace(state=SimpleNamespace(gateway=SimpleNamespace(failure=None)))

    monkeypatch.delenv("LORAG_SELF_URL", raising=False)
    monkeypatch.setattr("gateway.api.app.create_app", create_app)
    monkeypatch.setattr(main, "engine_starter", lambda engine, on_failure: None)
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: None)
    result = CliRunner().invoke(main.app, ["serve", "--host", host, "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert seen["url"] == url
