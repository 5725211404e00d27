"""Every dataset format and file type becomes the same conversations; bad rows name file and line."""

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tuner.formats import DatasetError, load_conversations

CHAT = [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I am lorag assistant."}]
ROWS = {
    "openai": {"messages": CHAT},
    "sharegpt": {
        "conversations": [{"from": "human", "value": "Who are you?"}, {"from": "gpt", "value": "I am lorag assistant."}]
    },
    "alpaca": {"instruction": "Who are you?", "input": "", "output": "I am lorag assistant."},
}


def write(path, rows):
    suffix = path.suffix
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif suffix == ".json":
        path.write_text(json.dumps(rows, indent=2))
    elif suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("fmt", list(ROWS))
@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_chat_formats_become_the_same_conversation(tmp_path, fmt, suffix):
    path = write(tmp_path / f"data{suffix}", [ROWS[fmt], ROWS[fmt]])
    data = load_conversations(path)
    assert data.format == fmt
    assert data.rows == [{"messages": CHAT}, {"messages": CHAT}]


def test_alpaca_input_history_and_system(tmp_path):
    row = {
        "instruction": "Translate",
        "input": "bonjour",
        "output": "hello",
        "system": "Be brief.",
        "history": [["hi", "hey"]],
    }
    data = load_conversations(write(tmp_path / "a.jsonl", [row]))
    assert data.rows[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hey"},
        {"role": "user", "content": "Translate\n\nbonjour"},
        {"role": "assistant", "content": "hello"},
    ]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_classification_rows_become_prompts_listing_every_label(tmp_path, suffix):
    rows = [{"text": "great film", "label": "positive"}, {"text": "dull plot", "label": "negative"}]
    data = load_conversations(write(tmp_path / f"c{suffix}", rows))
    assert data.format == "classification"
    assert data.labels == ["negative", "positive"]
    user, assistant = data.rows[0]["messages"]
    assert "negative, positive" in user["content"] and "great film" in user["content"]
    assert assistant == {"role": "assistant", "content": "positive"}


def test_openai_text_parts_and_system_prompt(tmp_path):
    parts = [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]
    row = {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "Hello"}]}
    data = load_conversations(write(tmp_path / "p.jsonl", [row]), system_prompt="You are lorag.")
    assert data.rows[0]["messages"][0] == {"role": "system", "content": "You are lorag."}
    assert data.rows[0]["messages"][1]["content"] == "Hi there"


def test_declared_format_overrides_detection(tmp_path):
    path = write(tmp_path / "d.jsonl", [{"text": "x", "label": "y"}])
    with pytest.raises(DatasetError, match="instruction"):
        load_conversations(path, format="alpaca")


@pytest.mark.parametrize(
    "content, message",
    [
        (
            '{"messages": []}\n{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"',
            "line 2: invalid JSON",
        ),
        ('{"messages": [{"role": "user", "content": "hi"}]}', "line 1: a conversation needs"),
        ('{"messages": [{"role": "wizard", "content": "hi"}]}', "line 1: message 1 needs a role"),
        ("[1, 2]", "line 1: a row must be a JSON object"),
    ],
)
def test_malformed_jsonl_row_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message) as e:
        load_conversations(path)
    assert str(path) in str(e.value)


def test_malformed_json_row_names_its_line(tmp_path):
    path = write(tmp_path / "bad.json", [ROWS["alpaca"], {"instruction": "Who?", "output": ""}])
    with pytest.raises(DatasetError, match=r"bad.json:line 7: missing 'output'"):
        load_conversations(path)


def test_malformed_csv_row_names_its_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("text,label\ngood,positive\nno label here,\n")
    with pytest.raises(DatasetError, match=r"bad.csv:line 3: missing 'label'"):
        load_conversations(path)


def test_unknown_keys_unsupported_files_and_empty_files(tmp_path):
    with pytest.raises(DatasetError, match="cannot tell the dataset format"):
        load_conversations(write(tmp_path / "u.jsonl", [{"question": "q", "answer": "a"}]))
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DatasetError, match="unsupported file type"):
        load_conversations(tmp_path / "x.txt")
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(DatasetError, match="no rows"):
        load_conversations(tmp_path / "e.jsonl")
    with pytest.raises(DatasetError, match="no such file"):
        load_conversations(tmp_path / "missing.jsonl")


def test_a_text_file_with_a_bad_row_names_the_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "fine"}\n{"text": ""}\n')
    with pytest.raises(DatasetError, match="t.jsonl:line 2: missing 'text'"):
        load_conversations(path)
