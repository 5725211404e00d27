"""Retriever fine-tuning jobs (``lorag.method: "retriever"``) through the unmodified ``openai`` SDK.

A gateway over the fake engine holds knowledge base 'corpus' of the generated documents on the tiny
random embedder (tests/tiny_embedder.py); each job tunes that embedder for a few seconds on the CPU.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import openai
import pytest

from gateway.errors import LoragError
from gateway.knowledge.tuning import check_backend
from tests.tiny_embedder import build_tiny_embedder, generated_corpus

FAST = {"sources": ["ict"], "max_pairs": 100, "held_out": 0.25, "epochs": 6, "learning_rate": 1e-3, "batch_size": 16}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory) -> str:
    return str(build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder")))


@pytest.fixture
def served(make_gateway, tiny_embedder):
    """``(served gateway, base model)`` with knowledge base 'corpus' of the generated documents."""
    served = make_gateway(embedder=tiny_embedder)
    with served.http() as http:
        assert http.post("/v1/knowledge_bases", json={"name": "corpus"}).status_code == 201
        files = [("files", (name, text.encode())) for name, text in generated_corpus().items()]
        assert http.post("/v1/knowledge_bases/corpus/documents", files=files).status_code == 201
    return served, served.client().models.list().data[0].id


def create(client: openai.OpenAI, base: str, **lorag):
    extension = {"method": "retriever", "knowledge_base": "corpus"} | lorag
    return client.fine_tuning.jobs.create(model=base, training_file="", extra_body={"lorag": extension})


def finished(client: openai.OpenAI, job_id: str, timeout_s: float = 240):
    deadline = time.monotonic() + timeout_s
    while (job := client.fine_tuning.jobs.retrieve(job_id)).status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"job still {job.status}"
        time.sleep(0.3)
    return job


def events(client: openai.OpenAI, job_id: str) -> list:
    return list(reversed(client.fine_tuning.jobs.list_events(job_id, limit=1000).data))


def embedder_of(served) -> str:
    with served.http() as http:
        return http.get("/v1/knowledge_bases/corpus").json()["embedder"]


def test_a_retriever_job_tunes_the_knowledge_base_which_then_answers_with_the_tuned_embedder(served, tiny_embedder):
    served, base = served
    client = served.client()
    job = create(client, base, **FAST)
    assert job.method.type == "retriever" and job.status == "queued" and job.hyperparameters.batch_size == 16
    job = finished(client, job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model is None  # no adapter is served: the knowledge base is what changed
    found = events(client, job.id)
    figures = next(e for e in found if e.message.startswith("Held-out pairs"))
    before, after = figures.data["before"], figures.data["after"]
    assert after["dense_ndcg@10"] > before["dense_ndcg@10"] and "hybrid_recall@10" in after
    assert any(e.type == "metrics" and "train_loss" in (e.data or {}) for e in found)
    assert any(e.message.startswith("Re-indexing knowledge base 'corpus'") for e in found)
    embedder = embedder_of(served)
    assert embedder != tiny_embedder and embedder.endswith("/model") and "/tuned/" in embedder
    sentence = generated_corpus()["doc007.txt"].split(".")[2]
    with served.http() as http:
        hits = http.post("/v1/knowledge_bases/corpus/search", json={"query": sentence, "top_k": 3}).json()["data"]
    assert "doc007.txt" in [hit["filename"] for hit in hits]


def test_a_dry_run_job_reports_figures_and_leaves_the_embedder(served, tiny_embedder):
    served, base = served
    client = served.client()
    job = finished(client, create(client, base, **FAST, dry_run=True).id)
    assert job.status == "succeeded", job.error
    messages = [e.message for e in events(client, job.id)]
    assert (
        any(m.startswith("Held-out pairs") for m in messages)
        and "Dry run: knowledge base 'corpus' is unchanged" in messages
    )
    assert embedder_of(served) == tiny_embedder


def test_a_cancelled_job_leaves_the_knowledge_base_as_it_was(served, tiny_embedder, adapters_dir):
    served, base = served
    client = served.client()
    job = create(client, base, **FAST | {"epochs": 500})
    deadline = time.monotonic() + 120
    while not any(e.type == "metrics" for e in events(client, job.id)):  # training has begun
        assert time.monotonic() < deadline and client.fine_tuning.jobs.retrieve(job.id).status in ("queued", "running")
        time.sleep(0.3)
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    assert finished(client, job.id).status == "cancelled"
    assert embedder_of(served) == tiny_embedder
    tuned = adapters_dir.with_name(f"{adapters_dir.name}-kbs") / "corpus" / "tuned"
    assert not list(tuned.iterdir())  # neither a run nor its partial folder is left
    with served.http() as http:
        hits = http.post("/v1/knowledge_bases/corpus/search", json={"query": "w41 w42", "top_k": 3}).json()["data"]
    assert hits


@pytest.mark.parametrize(
    ("lorag", "param"),
    [
        ({"max_pairs": 0}, "lorag.max_pairs"),
        ({"held_out": 0.9}, "lorag.held_out"),
        ({"sources": ["questions"]}, "lorag.sources"),
        ({"lora_r": 8}, "lorag.lora_r"),
        ({"epochs": None}, "lorag.epochs"),
        ({"knowledge_base": "nowhere"}, "lorag.knowledge_base"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(served, lorag, param):
    served, base = served
    with pytest.raises(openai.BadRequestError) as refused:
        create(served.client(), base, **lorag)
    assert refused.value.body["param"] == param, refused.value.body
    assert not served.client().fine_tuning.jobs.list().data


def test_a_training_file_is_refused_and_a_retriever_job_cannot_be_paused(served):
    served, base = served
    client = served.client()
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(model=base, training_file="file-abc", extra_body={"lorag": {
            "method": "retriever", "knowledge_base": "corpus"}})  # fmt: skip
    assert refused.value.body["param"] == "training_file"
    job = create(client, base, **FAST | {"epochs": 500})
    with pytest.raises(openai.BadRequestError, match="cannot be paused"):
        client.fine_tuning.jobs.pause(job.id)
    client.fine_tuning.jobs.cancel(job.id)
    assert finished(client, job.id).status == "cancelled"


def test_a_milvus_knowledge_base_cannot_be_tuned():
    with pytest.raises(LoragError, match="only knowledge bases of the folder backend") as refused:
        check_backend(SimpleNamespace(manifest=SimpleNamespace(name="shared")))
    assert (refused.value.status, refused.value.code) == (400, "unsupported_backend")


def test_lorag_kb_tune_checks_its_options_against_the_same_bounds():
    from typer.testing import CliRunner

    from gateway.cli.main import app

    result = CliRunner().invoke(app, ["kb", "tune", "corpus", "--max-pairs", "1"])
    assert result.exit_code != 0 and "--max-pairs: Input should be greater than or equal to 2" in result.output


def test_a_retriever_job_needs_a_key_that_may_write_the_knowledge_base(make_gateway, tmp_path):
    """It re-indexes a knowledge base: a training key is not enough where admin keys exist, and a key's
    knowledge-base scopes apply (a knowledge base outside them is as one that does not exist)."""
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        "keys:\n  - {name: t, key: trainer-key-1, train: true}\n  - {name: a, key: admin-key-1, admin: true}\n"
        "  - {name: o, key: other-kb-key-1, admin: true, knowledge_bases: ['other*']}\n"
    )
    served = make_gateway(keys_file=str(keys))
    admin = served.client("admin-key-1")
    with served.http("admin-key-1") as http:
        assert http.post("/v1/knowledge_bases", json={"name": "corpus"}).status_code == 201
    with pytest.raises(openai.PermissionDeniedError):
        create(served.client("trainer-key-1"), "fake-base", dry_run=True)
    with pytest.raises(openai.BadRequestError) as refused:
        create(served.client("other-kb-key-1"), "fake-base", dry_run=True)
    assert refused.value.body["param"] == "lorag.knowledge_base" and "no knowledge base 'corpus'" in str(refused.value)
    job = create(admin, "fake-base", dry_run=True)
    job = finished(admin, job.id)  # accepted, and failed with the reason: this gateway's default embedder
    assert (job.status, job.error.code) == ("failed", "tuning_failed") and "cannot be tuned" in job.error.message


def test_a_retriever_job_stopped_with_the_gateway_starts_again_with_it(tmp_path, tiny_embedder):
    from gateway.api.app import create_app
    from gateway.cli.loopback import serving
    from serve.adapters import AdapterRegistry
    from tests.fakes.fake_engine import FAKE_SHA256, FakeEngine
    from tests.gateway.conftest import Served, fake_settings

    def gateway():
        engine = FakeEngine()
        registry = AdapterRegistry(tmp_path / "adapters", "fake-base", FAKE_SHA256, engine.info.limits)
        return serving(create_app(engine, registry, fake_settings(tmp_path / "adapters", embedder=tiny_embedder)))

    with gateway() as url:
        served = Served(url, None, tmp_path / "adapters")
        with served.http() as http:
            assert http.post("/v1/knowledge_bases", json={"name": "corpus"}).status_code == 201
            files = [("files", (name, text.encode())) for name, text in generated_corpus().items()]
            assert http.post("/v1/knowledge_bases/corpus/documents", files=files).status_code == 201
        client = served.client()
        job = create(client, "fake-base", **FAST | {"epochs": 500})
        deadline = time.monotonic() + 120
        while not any(e.type == "metrics" for e in events(client, job.id)):
            assert time.monotonic() < deadline
            time.sleep(0.3)
    with gateway() as url:  # the run was stopped with the gateway, and starts again from the beginning
        served = Served(url, None, tmp_path / "adapters")
        client = served.client()
        assert embedder_of(served) == tiny_embedder
        assert client.fine_tuning.jobs.retrieve(job.id).status in ("queued", "running")
        assert any("The gateway restarted" in e.message for e in events(client, job.id))
        assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
        assert embedder_of(served) == tiny_embedder


def test_lorag_kb_tune_job_runs_the_tuning_as_a_job_of_the_gateway_that_holds_the_knowledge_base(served):
    from typer.testing import CliRunner

    from gateway.cli.main import app

    served, _ = served
    options = ["--sources", "ict", "--max-pairs", "100", "--epochs", "2", "--batch-size", "16", "--dry-run"]
    result = CliRunner().invoke(app, ["kb", "tune", "corpus", *options, "--job", "--base-url", served.url])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("job ftjob-") and "Held-out pairs" in result.output
    assert "Dry run: knowledge base 'corpus' is unchanged" in result.output
    (job,) = served.client().fine_tuning.jobs.list().data
    assert job.status == "succeeded" and job.method.retriever["dry_run"] is True
    refused = CliRunner().invoke(app, ["kb", "tune", "corpus", "--job"])
    assert refused.exit_code != 0 and "--job needs --base-url" in refused.output
