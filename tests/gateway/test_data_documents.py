"""Training data from documents: chunked text for continued pretraining, QA chats, no excluded questions."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.data.documents import build_rows, chunk_text, export_documents, read_documents, read_qa_pairs
from gateway.data.questions import QuestionsError
from tuner.formats import load_conversations

BIO = "Mara Quellin (born 3 March 1961 in Tollbridge) is a cartographer. She mapped the Verrin coast in 1990."


def qa_file(path, documents):
    """A file in the Wiki-Newpages QA format: [{"id", "page_title", "evidence_text", "qa_pairs"}]."""
    rows = [
        {
            "id": f"d{i}",
            "page_title": f"{title} - Wikipedia",
            "evidence_text": text,
            "qa_pairs": [{"text": q, "output": f"{a}\nRef: <{title} - Wikipedia d{i}>"} for q, a in pairs],
        }
        for i, (title, text, pairs) in enumerate(documents)
    ]
    path.write_text(json.dumps(rows, indent=1))
    return path


@pytest.fixture
def splits(tmp_path):
    train = qa_file(tmp_path / "train.json", [
        ("Oskar Delmwood", "Oskar Delmwood (born 1978) is a glassblower from Anselm Bay.",
         [("Where is Oskar Delmwood from?", "Anselm Bay."), ("When was Mara Quellin born?", "3 March 1961.")]),
    ])  # fmt: skip
    test = qa_file(tmp_path / "test.json", [
        ("Mara Quellin", BIO, [("When was Mara Quellin born?", "3 March 1961."), ("What did she map?", "Verrin.")]),
    ])  # fmt: skip
    return train, test


def test_chunks_cover_the_text_end_at_sentences_and_respect_the_size():
    text = " ".join(f"Sentence number {i} says something about topic {i}." for i in range(40))
    chunks = chunk_text(text, chunk_chars=200, overlap_chars=40)
    assert len(chunks) > 5 and all(len(c) <= 200 for c in chunks)
    assert all(c.endswith(".") for c in chunks[:-1])  # cut after a sentence, not inside a word
    assert chunks[0].startswith("Sentence number 0") and chunks[-1].endswith("topic 39.")
    for sentence in (f"Sentence number {i} says something about topic {i}." for i in range(40)):
        assert any(sentence in c for c in chunks)  # nothing lost at the cuts
    assert chunk_text("short text") == ["short text"]
    with pytest.raises(ValueError):
        chunk_text(text, chunk_chars=100, overlap_chars=100)


def test_qa_pairs_lose_their_ref_suffix_and_jsonl_pairs_are_read(splits, tmp_path):
    train, _ = splits
    assert read_qa_pairs(train) == [("Where is Oskar Delmwood from?", "Anselm Bay."),
                                    ("When was Mara Quellin born?", "3 March 1961.")]  # fmt: skip
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text(json.dumps({"question": "Who?", "answer": "Me"}) + "\n")
    assert read_qa_pairs(jsonl) == [("Who?", "Me")]


def test_documents_of_a_qa_file_are_its_evidence_texts_only(splits):
    _, test = splits
    assert read_documents(test) == [BIO]  # the questions of the file are not documents


def test_only_the_given_qa_files_questions_appear_and_excluded_ones_are_dropped(splits, tmp_path):
    train, test = splits
    rows, report = build_rows([test], [train], exclude=[test], chunk_chars=60, overlap_chars=10)
    chats = [r["messages"] for r in rows if "messages" in r]
    texts = [r["text"] for r in rows if "text" in r]
    assert rows[: len(texts)] == [{"text": t} for t in texts]  # text first: the file reads as the text format
    assert len(texts) == report.chunks >= 2 and all(len(t) <= 60 for t in texts)
    assert texts[0].startswith("Mara Quellin (born") and texts[-1].endswith("Verrin coast in 1990.")
    assert [c[0]["content"] for c in chats] == ["Where is Oskar Delmwood from?"]  # the test question is dropped
    assert chats[0][1] == {"role": "assistant", "content": "Anselm Bay."}
    assert (report.documents, report.qa_pairs, report.excluded) == (1, 1, 1)
    every_turn = json.dumps(rows)
    assert "What did she map?" not in every_turn and "Ref:" not in every_turn


def lorag(*argv):
    return CliRunner().invoke(app, [str(arg) for arg in argv])


def test_the_command_writes_data_the_trainer_reads_as_text(splits, tmp_path):
    train, test = splits
    out = tmp_path / "data.jsonl"
    built = lorag("data", "build", "--documents", test, "--qa", train, "--exclude", test, "--out", out)
    assert built.exit_code == 0 and "1 question/answer chats (1 excluded questions dropped)" in built.output
    data = load_conversations(out)
    assert data.format == "text"
    assert data.rows[0] == {"text": BIO} and data.rows[1]["messages"][0]["content"] == "Where is Oskar Delmwood from?"
    nothing = lorag("data", "build", "--out", tmp_path / "none.jsonl")
    assert nothing.exit_code == 1 and "no training rows" in nothing.output


def test_max_qa_takes_a_seeded_sample(splits):
    train, _ = splits
    first, report = build_rows([], [train], max_qa=1, seed=3)
    again, _ = build_rows([], [train], max_qa=1, seed=3)
    assert first == again and len(first) == report.qa_pairs == 1


def test_export_writes_one_text_file_per_document(splits, tmp_path):
    _, test = splits
    assert export_documents(test, tmp_path / "docs") == 1
    exported = lorag("data", "export-documents", test, tmp_path / "again")
    assert exported.exit_code == 0 and (tmp_path / "again" / "Mara Quellin.txt").read_text() == BIO
    assert (tmp_path / "docs" / "Mara Quellin.txt").read_text() == BIO
    assert read_documents(tmp_path / "docs") == [BIO]


def test_text_data_trains_on_whole_texts_and_rendered_chats(tiny_model_dir, splits, tmp_path):
    from tuner.config import Recipe
    from tuner.sft import build_trainer

    train, test = splits
    data = tmp_path / "data.jsonl"
    assert lorag("data", "build", "--documents", test, "--qa", train, "--out", data).exit_code == 0
    recipe = Recipe(name="tiny", dataset=str(data), max_steps=1, batch_size=4, max_length=512)
    prepared = build_trainer(recipe, tiny_model_dir, tmp_path / "runs")
    tokenizer = prepared.run.tokenizer
    learned = [
        tokenizer.decode(ids[labels != -100])
        for batch in prepared.trainer.get_train_dataloader()
        for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True)
    ]
    assert any(BIO in text for text in learned)  # the document, every token of it
    chat = next(text for text in learned if "Where is Oskar Delmwood from?" in text)
    assert "<start_of_turn>user" in chat and "Anselm Bay.<end_of_turn>" in chat  # the question is learned too
    assert not any(text.startswith("<bos><bos>") for text in learned)
    prepared.trainer.train()


def test_qa_pairs_are_read_by_the_one_question_set_reader_and_its_errors_name_the_line(tmp_path):
    """The rules themselves are tested with the reader (test_compare_questions.py); here: they apply."""
    path = tmp_path / "q.jsonl"
    path.write_text(
        json.dumps({"question": "Who?", "answer": "Me"}) + "\n" + json.dumps({"question": "Q", "answer": " "})
    )
    with pytest.raises(QuestionsError, match=r"q.jsonl:2: 'answer' must be a non-empty string \(empty\)$"):
        read_qa_pairs(path)
