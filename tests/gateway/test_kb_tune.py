"""``lorag kb tune`` on a generated corpus with a tiny random embedder: dry run, swap, and a run killed halfway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli.main import app
from rag.embedder import load_embedder
from rag.retriever import retrieve
from rag.store import KnowledgeBase
from tests.tiny_embedder import build_tiny_embedder, generated_corpus

FAST = ["--sources", "ict", "--max-pairs", "100", "--epochs", "6", "--learning-rate", "1e-3", "--batch-size", "16"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory) -> str:
    return str(build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder")))


@pytest.fixture
def corpus(tmp_path, monkeypatch, tiny_embedder):
    """``(lorag, kb folder)``: knowledge base 'corpus' of the generated documents on the tiny embedder."""
    monkeypatch.setenv("LORAG_KB_DIR", str(tmp_path / "kbs"))
    monkeypatch.setenv("LORAG_EMBEDDER", tiny_embedder)
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in generated_corpus().items():
        (docs / name).write_text(text)
    runner = CliRunner()

    def lorag(*args: str):
        return runner.invoke(app, list(args))

    assert lorag("kb", "create", "corpus").exit_code == 0
    assert lorag("kb", "add", "corpus", str(docs)).exit_code == 0
    return lorag, tmp_path / "kbs" / "corpus"


def test_a_dry_run_reports_held_out_figures_and_changes_nothing(corpus, tiny_embedder):
    lorag, folder = corpus
    result = lorag("kb", "tune", "corpus", *FAST, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dense_ndcg@10" in result.stdout and "dry run: the knowledge base is unchanged" in result.stdout
    assert json.loads((folder / "kb.json").read_text())["embedder"] == tiny_embedder
    assert not any((folder / "tuned").iterdir())


def test_after_tuning_the_knowledge_base_answers_with_the_tuned_embedder(corpus):
    lorag, folder = corpus
    result = lorag("kb", "tune", "corpus", *FAST)
    assert result.exit_code == 0, result.output
    (run,) = (folder / "tuned").iterdir()
    embedder = json.loads((folder / "kb.json").read_text())["embedder"]
    assert embedder == str(run / "model") and (run / "tuning.json").is_file() and (run / "loss.png").is_file()
    sentence = generated_corpus()["doc007.txt"].split(".")[2]
    found = lorag("kb", "search", "corpus", sentence, "--mode", "hybrid", "--top-k", "3")
    assert found.exit_code == 0 and "doc007.txt" in found.stdout


def test_a_tuning_killed_halfway_leaves_the_old_index_serving(tmp_path, tiny_embedder):
    folder = tmp_path / "kbs" / "corpus"
    kb = KnowledgeBase.create(folder, load_embedder(tiny_embedder))
    for name, text in generated_corpus().items():
        kb.ingest(name, text.encode())
    kb.close()  # this process lets go of it, so that the command may open it
    lorag = Path(sys.executable).with_name("lorag")
    env = os.environ | {"LORAG_KB_DIR": str(tmp_path / "kbs"), "LORAG_EMBEDDER": tiny_embedder}
    log = open(tmp_path / "tune.log", "wb")  # noqa: SIM115 (closed below; a pipe could fill with progress bars)
    process = subprocess.Popen(
        [str(lorag), "kb", "tune", "corpus", *FAST[:4], "--epochs", "500"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not list((folder / "tuned").glob(".*.partial")) and time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "tune.log").read_text()[-2000:]
        time.sleep(0.5)
    time.sleep(2)  # training
    process.send_signal(signal.SIGKILL)
    process.wait()
    log.close()
    kb = KnowledgeBase(folder, load_embedder(tiny_embedder))  # the old embedder still opens it
    try:
        assert kb.manifest.embedder == tiny_embedder and not kb.manifest.dense_stale
        sentence = generated_corpus()["doc007.txt"].split(".")[2]
        assert retrieve(kb, sentence, top_k=1, mode="bm25")[0].filename == "doc007.txt"
        assert retrieve(kb, sentence, top_k=3, mode="dense")
        assert not [p for p in (folder / "tuned").iterdir() if not p.name.endswith(".partial")]
    finally:
        kb.close()
