"""Question sets: JSONL and the Wiki-Newpages QA JSON, bad rows named by file and line, seeded samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.data.questions import Question, QuestionsError, load_questions, parse_questions, sample

WIKI_TEST = Path("/work/shared/data/qa/wiki-newpages-2023-10-bio/127_num_qa_663bio_pit_test.json")


def test_jsonl_with_optional_id_and_context(tmp_path):
    path = tmp_path / "q.jsonl"
    rows = [
        {"question": "Capital of France?", "answer": "Paris"},
        {"question": "Who wrote Hamlet?", "answer": "Shakespeare", "id": "hamlet", "context": "Hamlet is a play."},
    ]
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    assert load_questions(path) == [
        Question("1", "Capital of France?", "Paris"),
        Question("hamlet", "Who wrote Hamlet?", "Shakespeare", "Hamlet is a play."),
    ]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"question": "Q"', "q.jsonl:2: not valid JSON"),
        ('{"question": "Q"}', "q.jsonl:2: 'answer' must be a non-empty string (missing)"),
        ('{"question": "Q", "answer": "  "}', "q.jsonl:2: 'answer' must be a non-empty string (empty)"),
        ('{"question": 3, "answer": "A"}', "q.jsonl:2: 'question' must be a non-empty string (a int)"),
        ('["Q", "A"]', "q.jsonl:2: expected a JSON object, got list"),
        ('{"question": "Q", "answer": "A", "context": 1}', "q.jsonl:2: 'context' must be a string"),
        ('{"question": "Q", "answer": "A", "id": "a"}', "q.jsonl:2: question id 'a' appears twice, with other"),
    ],
)
def test_bad_jsonl_rows_are_named_by_file_and_line(tmp_path, line, message):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "Q0", "answer": "A0", "id": "a"}\n' + line + "\n")
    with pytest.raises(QuestionsError) as error:
        load_questions(path)
    assert str(error.value).startswith(str(tmp_path / message))
    assert "\n" not in str(error.value)


def test_missing_or_empty_file(tmp_path):
    with pytest.raises(QuestionsError, match="cannot read questions file"):
        load_questions(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(QuestionsError, match="empty.jsonl: no questions"):
        load_questions(tmp_path / "empty.jsonl")


WIKI_SAMPLE = [
    {
        "evidence_text": "<Ada Example - Wikipedia 1_2_3> Ada Example (born 1 May 1990) is a Welsh chess player.",
        "qa_pairs": [
            {"text": "When was Ada Example born?", "output": "May 1, 1990.\nRef: <Ada Example - Wikipedia 1_2_3>"},
            {"text": "What game does Ada Example play?", "output": "Chess.\nRef: <Ada Example - Wikipedia 1_2_3>"},
        ],
        "page_title": "Ada Example - Wikipedia",
        "id": "1_2_3",
        "num_qa": 2,
    },
    {"evidence_text": "B.", "qa_pairs": [{"text": "Who?", "output": "Bo"}], "page_title": "B", "id": "4_5_6"},
]


def test_wiki_newpages_qa_format(tmp_path):
    path = tmp_path / "wiki.json"
    path.write_text(json.dumps([*WIKI_SAMPLE, WIKI_SAMPLE[0]], indent=1))  # a repeated document is read once
    questions = load_questions(path)
    context = WIKI_SAMPLE[0]["evidence_text"]
    assert questions == [
        Question("1_2_3-0", "When was Ada Example born?", "May 1, 1990.", context),
        Question("1_2_3-1", "What game does Ada Example play?", "Chess.", context),
        Question("4_5_6-0", "Who?", "Bo", "B."),
    ]


def test_bad_wiki_document_is_named_by_the_line_it_starts_on(tmp_path):
    broken = [WIKI_SAMPLE[0], {"id": "7", "qa_pairs": [{"text": "Q?", "output": "\nRef: <x>"}]}]
    path = tmp_path / "wiki.json"
    text = json.dumps(broken, indent=1)
    path.write_text(text)
    line = [n for n, text_line in enumerate(text.splitlines(), 1) if text_line == " {"][1]  # the second document
    with pytest.raises(QuestionsError) as error:
        load_questions(path)
    assert str(error.value) == f"{path}:{line}: qa_pairs[0]: 'output' has no answer before its Ref line"
    path.write_text('[{"qa_pairs": [], "id": true}]')
    with pytest.raises(QuestionsError, match=r"wiki.json:1: a document with 'qa_pairs' needs a string 'id'"):
        load_questions(path)
    path.write_text('[\n{"question": "Q", "answer": "A"},\n')
    with pytest.raises(QuestionsError, match=r"wiki.json:\d+: not valid JSON"):
        load_questions(path)


@pytest.mark.parametrize(
    "pairs, message",
    [
        (["not a pair"], ":2: qa_pairs[0]: expected a JSON object"),
        ([{"text": "Q?", "output": "\nRef: <X>"}], ":2: qa_pairs[0]: 'output' has no answer before its Ref line"),
        (
            [{"text": "Q?", "output": "A"}, {"output": "B"}],
            ":2: qa_pairs[1]: 'text' must be a non-empty string (missing)",
        ),
        ([{"text": "Q?", "output": 3}], ":2: qa_pairs[0]: 'output' must be a non-empty string (a int)"),
        ("Q?", ":2: 'qa_pairs' must be a list"),
    ],
)  # fmt: skip
def test_a_bad_qa_pair_is_one_line_naming_the_file_and_the_pair(tmp_path, pairs, message):
    """The rules every reader of question sets gets: lorag compare, lorag kb raft-data and lorag data build."""
    path = tmp_path / "qa.json"
    path.write_text(json.dumps([{"id": "d0", "evidence_text": "X.", "qa_pairs": pairs}], indent=1))
    with pytest.raises(QuestionsError) as error:
        load_questions(path)
    assert str(error.value) == f"{path}{message}"


@pytest.mark.skipif(not WIKI_TEST.exists(), reason="the shared Wiki-Newpages data is not on this machine")
def test_the_shared_wiki_newpages_test_split_loads():
    questions = load_questions(WIKI_TEST)
    assert len(questions) == 660  # 663 pairs, one document of 3 pairs repeated
    assert len({q.id for q in questions}) == 660
    assert all(q.answer and "Ref:" not in q.answer and q.context for q in questions)


def test_sample_is_seeded_and_keeps_file_order():
    questions = parse_questions("\n".join(json.dumps({"question": f"q{i}", "answer": "a"}) for i in range(50)), "x")
    first = sample(questions, 10, seed=1)
    assert first == sample(questions, 10, seed=1) and first != sample(questions, 10, seed=2)
    assert len(first) == 10 and [int(q.id) for q in first] == sorted(int(q.id) for q in first)
    assert sample(questions, 100) == questions and sample(questions, None) == questions
    with pytest.raises(QuestionsError, match="at least 1"):
        sample(questions, 0)
