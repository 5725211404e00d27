"""Every preference format becomes the same conversational pair (or KTO row); bad rows name file and line."""

import json

import pytest

from tests.tuner.test_formats import write
from tuner.formats import DatasetError
from tuner.preferences import load_preferences

QUESTION = "What is the capital of France?"
SHORT, LONG = "Paris.", "The capital of France is Paris, a city which has long been the centre of the country."
PAIR = {
    "prompt": [{"role": "user", "content": QUESTION}],
    "chosen": [{"role": "assistant", "content": SHORT}],
    "rejected": [{"role": "assistant", "content": LONG}],
}
ROWS = {
    "strings": {"prompt": QUESTION, "chosen": SHORT, "rejected": LONG},
    "messages": PAIR,
    "implicit prompt": {
        "chosen": PAIR["prompt"] + PAIR["chosen"],
        "rejected": PAIR["prompt"] + PAIR["rejected"],
    },
    "openai_dpo": {
        "input": {"messages": PAIR["prompt"]},
        "preferred_output": PAIR["chosen"],
        "non_preferred_output": PAIR["rejected"],
    },
    "sharegpt": {
        "conversations": [{"from": "human", "value": QUESTION}],
        "chosen": {"from": "gpt", "value": SHORT},
        "rejected": {"from": "gpt", "value": LONG},
    },
}


@pytest.mark.parametrize("name", list(ROWS))
@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_every_pair_format_becomes_the_same_conversational_pair(tmp_path, name, suffix):
    data = load_preferences(write(tmp_path / f"pairs{suffix}", [ROWS[name]] * 2))
    assert data.rows == [PAIR, PAIR] and data.paired


def test_kto_rows_keep_their_label_and_a_system_prompt_is_added(tmp_path):
    rows = [
        {"prompt": QUESTION, "completion": SHORT, "label": True},
        {"prompt": QUESTION, "completion": LONG, "label": "false"},
    ]
    data = load_preferences(write(tmp_path / "kto.jsonl", rows), system_prompt="Be brief.")
    assert data.format == "kto" and not data.paired
    assert [r["label"] for r in data.rows] == [True, False]
    assert data.rows[0]["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert data.rows[1]["completion"] == [{"role": "assistant", "content": LONG}]


@pytest.mark.parametrize(
    "row, complaint",
    [
        ({"prompt": QUESTION, "chosen": SHORT, "rejected": ""}, "'rejected' must be a non-empty string"),
        ({"prompt": QUESTION, "chosen": SHORT, "rejected": SHORT}, "are the same"),
        ({"prompt": QUESTION, "chosen": [{"role": "user", "content": "x"}], "rejected": LONG}, "end with"),
        ({"chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]},
         "share no first turns"),
        ({"input": {"messages": []}, "preferred_output": SHORT, "non_preferred_output": LONG}, "is empty"),
        ({"input": "x", "preferred_output": SHORT, "non_preferred_output": LONG}, "'input' must be an object"),
        ({"prompt": QUESTION, "completion": SHORT, "label": "maybe"}, "'label' must be true"),
        ({"question": QUESTION, "answer": SHORT}, "cannot tell the preference format"),
    ],
)  # fmt: skip
def test_a_malformed_row_is_refused_naming_file_and_line(tmp_path, row, complaint):
    good = {"prompt": QUESTION, "completion": SHORT, "label": True} if "label" in row else ROWS["strings"]
    good = ROWS["openai_dpo"] if "input" in row else good  # a file's format is its first row's
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(row) + "\n")
    if "cannot tell" in complaint:
        path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DatasetError, match=complaint) as caught:
        load_preferences(path)
    assert str(caught.value).startswith(f"{path}:line {1 if 'cannot tell' in complaint else 3}")
