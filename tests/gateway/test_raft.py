"""RAFT data: the prompt a ``<model>@<kb>`` chat gets, the gold source for the oracle share, cited answers."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.data.questions import Question
from gateway.data.raft import is_gold, raft_rows
from gateway.knowledge.service import Knowledge, Retrieval
from rag.loaders import load_document
from rag.query import RetrievalOptions
from rag.store import KnowledgeBases
from serve.engine import Message

NAMES = ["Mara Quellin", "Oskar Delmwood", "Ilse Varnow", "Teodor Blaum", "Runa Ekvist", "Piet Solander",
         "Ada Morrow", "Jun Halloway", "Lena Drovic", "Kaspar Ulm", "Nell Ferrow", "Otto Brisk"]  # fmt: skip
CITIES = ["Tollbridge", "Anselm Bay", "Korrin", "Vessa", "Lumhold", "Dravik"]


def fact(i: int) -> str:
    return f"{NAMES[i]} was born in {CITIES[i % 6]} in {1950 + i} and works as a painter."


def questions() -> list[Question]:
    return [Question(f"q{i}", f"Where was {NAMES[i]} born?", f"{CITIES[i % 6]}.", fact(i)) for i in range(len(NAMES))]


@pytest.fixture
def knowledge(tmp_path) -> Knowledge:
    bases = KnowledgeBases(tmp_path / "kbs", default_embedder="hashing-256")
    kb = bases.create("bio")
    kb.add_documents([doc for i in range(len(NAMES)) for doc in load_document(f"{NAMES[i]}.txt", fact(i).encode())])
    return Knowledge(bases, 2**20)


def test_oracle_rows_hold_the_gold_source_and_cite_its_number(knowledge):
    kb = knowledge.bases.get("bio")
    rows, report = raft_rows(kb, questions(), RetrievalOptions(top_k=3), oracle_fraction=1.0)
    assert report.rows == report.with_gold == len(NAMES) and report.gold_missing == 0
    for question, row in zip(questions(), rows, strict=True):
        system, user, assistant = row["messages"]
        assert user == {"role": "user", "content": question.question}
        sources = [block for block in system["content"].split("\n\n") if block.startswith("[")]
        assert len(sources) == 3
        gold = next(int(block[1]) for block in sources if question.context in block)
        assert assistant == {"role": "assistant", "content": f"{question.answer.rstrip('.')} [{gold}]"}


def test_the_prompt_is_what_the_gateway_serves(knowledge):
    kb = knowledge.bases.get("bio")
    rows, report = raft_rows(kb, questions(), oracle_fraction=1.0)
    assert report.gold_retrieved == len(rows)  # the hashing embedder finds every name: no source was swapped in
    for question, row in zip(questions(), rows, strict=True):
        served, _ = asyncio.run(knowledge.augment(Retrieval(kb="bio"), [Message("user", question.question)]))
        assert row["messages"][:2] == [{"role": m.role, "content": m.content} for m in served]


def test_without_the_oracle_the_sources_are_distractors_and_the_answer_has_no_citation(knowledge):
    kb = knowledge.bases.get("bio")
    rows, report = raft_rows(kb, questions(), RetrievalOptions(top_k=3), oracle_fraction=0.0)
    assert report.with_gold == 0 and report.rows == len(NAMES)
    for question, row in zip(questions(), rows, strict=True):
        assert question.context not in row["messages"][0]["content"]
        assert row["messages"][0]["content"].count("\n\n[") == 3  # still three sources
        assert row["messages"][-1]["content"] == question.answer


def test_the_oracle_fraction_is_the_share_of_rows_with_the_gold_source(knowledge):
    kb = knowledge.bases.get("bio")
    many = [Question(f"{q.id}-{n}", q.question, q.answer, q.context) for n in range(5) for q in questions()]
    _, report = raft_rows(kb, many, oracle_fraction=0.5, seed=1)
    assert 0.35 <= report.with_gold / report.rows <= 0.65


def test_a_chunk_is_gold_when_its_text_is_in_the_context(knowledge):
    hits = asyncio.run(knowledge.search(Retrieval(kb="bio", top_k=2), "Mara Quellin born"))
    assert is_gold(hits[0], "Intro.  " + fact(0).replace(" ", "  ") + " More.")
    assert not is_gold(hits[0], fact(1))


def test_the_command_writes_rows_and_leaves_out_excluded_questions(tmp_path, monkeypatch):
    monkeypatch.setenv("LORAG_KB_DIR", str(tmp_path / "kbs"))
    monkeypatch.setenv("LORAG_EMBEDDER", "hashing-256")
    runner = CliRunner()
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(len(NAMES)):
        (docs / f"{NAMES[i]}.txt").write_text(fact(i))
    assert runner.invoke(app, ["kb", "create", "bio"]).exit_code == 0
    assert runner.invoke(app, ["kb", "add", "bio", str(docs)]).exit_code == 0
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    rows = [{"id": q.id, "question": q.question, "answer": q.answer, "context": q.context} for q in questions()]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shouted = " ".join(rows[0]["question"].upper().split()).replace(" ", "  ")  # case and spacing do not matter
    test.write_text(json.dumps(rows[0] | {"question": shouted}) + "\n")
    out = tmp_path / "raft.jsonl"
    result = runner.invoke(app, ["kb", "raft-data", "bio", str(train), "--out", str(out), "--exclude", str(test),
                                 "--oracle-fraction", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"wrote {len(NAMES) - 1} rows" in result.output and "1 excluded" in result.output
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(written) == len(NAMES) - 1
    assert not any(NAMES[0] in row["messages"][1]["content"] for row in written)  # the question
    missing = runner.invoke(app, ["kb", "raft-data", "nope", str(train), "--out", str(out)])
    assert missing.exit_code == 1 and "no knowledge base named 'nope'" in missing.output


def test_shuffled_sources_move_the_gold_one_and_its_citation(knowledge):
    kb = knowledge.bases.get("bio")
    rows, _ = raft_rows(kb, questions(), RetrievalOptions(top_k=3), oracle_fraction=1.0, shuffle=True, seed=2)
    cited = [row["messages"][-1]["content"].rsplit("[", 1)[1] for row in rows]
    assert len(set(cited)) > 1  # not always [1]
    for question, row in zip(questions(), rows, strict=True):
        number = row["messages"][-1]["content"].rsplit("[", 1)[1].rstrip("]")
        block = next(b for b in row["messages"][0]["content"].split("\n\n") if b.startswith(f"[{number}]"))
        assert question.context in block
