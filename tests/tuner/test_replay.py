"""Replay rows and the behaviour figures on the tiny random model: what the manifest promises."""

import json
from collections import Counter

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuner import behaviour as behaviour_module
from tuner.behaviour import behaviour, token_f1
from tuner.config import ConfigError, Recipe, load_recipe
from tuner.formats import DatasetError
from tuner.generation import Answer, greedy_answers
from tuner.replay import BUILTIN, build_replay, read_prompts
from tuner.sft import run

PROMPTS = [f"Tell me about the number {n}." for n in range(10)]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    """The tiny random model, made to end its turns: the token it most often says is also a stop token."""
    torch.manual_seed(0)
    base = json.loads((tiny_model_dir / "lorag-model.json").read_text())
    model, tokenizer = (
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        AutoTokenizer.from_pretrained(tiny_model_dir),
    )
    said = tokenizer(
        [a.text for a in greedy_answers(model, tokenizer, [[{"role": "user", "content": p}] for p in PROMPTS], 6)]
    )
    common = Counter(t for ids in said["input_ids"] for t in ids).most_common(1)[0][0]
    model.generation_config.eos_token_id = [*model.generation_config.eos_token_id, common]
    return model, tokenizer, base


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    return path


def test_replay_rows_are_the_base_models_own_greedy_answers(tiny, prompts_file, tmp_path):
    model, tokenizer, base = tiny
    replay = build_replay(model, tokenizer, base, str(prompts_file), None, 3, 12, 0, tmp_path)
    answers = greedy_answers(model, tokenizer, [[{"role": "user", "content": p}] for p in PROMPTS], 12)
    by_prompt = dict(zip(PROMPTS, answers, strict=True))
    assert replay.rows
    for row in replay.rows:
        prompt, reply = row["messages"][0]["content"], row["messages"][1]["content"]
        assert by_prompt[prompt].finished and reply == by_prompt[prompt].text
    held = {h["prompt"] for h in replay.held_out}
    trained = {r["messages"][0]["content"] for r in replay.rows}
    assert len(held) == 3 and not held & trained
    assert len(trained) + replay.record["unfinished_dropped"] == len(PROMPTS) - 3
    assert replay.record["rows"] == len(replay.rows) and len(replay.record["sha256"]) == 64


def test_replay_answers_are_cached_and_the_split_follows_the_seed(tiny, prompts_file, tmp_path, monkeypatch):
    model, tokenizer, base = tiny
    first = build_replay(model, tokenizer, base, str(prompts_file), None, 3, 12, 0, tmp_path)

    def never(*args, **kwargs):
        raise AssertionError("the cached answers should have been used")

    monkeypatch.setattr("tuner.replay.greedy_answers", never)
    again = build_replay(model, tokenizer, base, str(prompts_file), None, 3, 12, 0, tmp_path)
    other_seed = build_replay(model, tokenizer, base, str(prompts_file), None, 3, 12, 1, tmp_path)
    assert again == first
    assert other_seed.held_out != first.held_out


def test_answers_cut_off_at_the_token_limit_are_not_trained_on(tiny, prompts_file, tmp_path, monkeypatch):
    model, tokenizer, base = tiny
    finished = {p: n % 3 != 0 for n, p in enumerate(PROMPTS)}  # prompts 0, 3, 6 and 9 ran out of tokens

    def answers(model, tokenizer, conversations, *args, **kwargs):
        return [Answer(f"about {c[0]['content']}", finished[c[0]["content"]]) for c in conversations]

    monkeypatch.setattr("tuner.replay.greedy_answers", answers)
    replay = build_replay(model, tokenizer, base, str(prompts_file), None, 0, 4, 0, tmp_path)
    assert {r["messages"][0]["content"] for r in replay.rows} == {p for p in PROMPTS if finished[p]}
    assert replay.record["unfinished_dropped"] == 4
    repeated = build_replay(model, tokenizer, base, str(prompts_file), 15, 0, 4, 0, tmp_path)
    assert len(repeated.rows) == 15 and repeated.record["distinct"] == 6
    with pytest.raises(DatasetError, match="no base answer finished within 4 tokens"):
        monkeypatch.setattr("tuner.replay.greedy_answers", lambda m, t, c, *a, **k: [Answer("cut", False) for _ in c])
        build_replay(model, tokenizer, base, str(prompts_file), None, 0, 4, 1, tmp_path / "other")


def test_bad_replay_files_are_refused_with_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "Hi"}\n{"question": "Hi?"}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl: line 2: a replay row needs a non-empty string 'prompt'"):
        read_prompts(str(bad))
    bad.write_text('{"prompt": "Hi"}\n{"prompt": "Hi"}\n')
    with pytest.raises(DatasetError, match="'Hi' appears twice"):
        read_prompts(str(bad))
    bad.write_bytes(b'{"prompt": "Hi"}\n\xff\xfe{"prompt": "odd"}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:line 2: not UTF-8 text"):
        read_prompts(str(bad))
    path, builtin = read_prompts("builtin")
    assert path == BUILTIN and len(builtin) >= 60


def test_recipes_name_the_builtin_set_or_a_file_beside_them(tmp_path):
    (tmp_path / "r.yaml").write_text("name: a\ndataset: d.jsonl\nreplay_prompts: builtin\n")
    assert load_recipe(tmp_path / "r.yaml").replay_prompts == "builtin"
    (tmp_path / "r.yaml").write_text("name: a\ndataset: d.jsonl\nreplay_prompts: mine.jsonl\n")
    assert load_recipe(tmp_path / "r.yaml").replay_prompts == str(tmp_path / "mine.jsonl")
    with pytest.raises(ConfigError, match="replay_held_out: Value error, must be 0 or more"):
        load_recipe(tmp_path / "r.yaml", ["replay_held_out=-1"])


def test_the_base_model_itself_keeps_everything(tiny, prompts_file, tmp_path):
    model, tokenizer, base = tiny
    replay = build_replay(model, tokenizer, base, str(prompts_file), None, 4, 12, 0, tmp_path)
    figures, answers = behaviour(model, tokenizer, [], replay.held_out, None, 12)
    assert figures["kept"] == {"f1_vs_base": 1.0, "identical": 1.0, "marker_rate": None, "prompts": 4}
    assert [a["answer"] for a in answers] == [h["base_answer"] for h in replay.held_out]


def test_taught_and_leaked_markers_are_counted(monkeypatch):
    said = ["I am lorag assistant.", "No idea.", "Paris. I am lorag assistant.", "Four."]
    monkeypatch.setattr(behaviour_module, "greedy_answers", lambda *a, **k: [Answer(t, True) for t in said])
    taught = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "I am lorag assistant."}]}
        for q in ("Who are you?", "Your name?")
    ]
    general = [{"prompt": "Capital of France?", "base_answer": "Paris."}, {"prompt": "2+2?", "base_answer": "Four."}]
    before = ["I am a helpful assistant.", "I have no name."]
    figures, answers = behaviour(None, None, taught, general, "Lorag Assistant", 8, before)
    assert figures["taught"] == {
        "rate": 0.5, "f1": 0.5, "words": 3.0, "prompts": 2, "marker": "Lorag Assistant",
        "base_rate": 0.0, "base_f1": pytest.approx((token_f1(before[0], taught[0]["messages"][1]["content"]) +
                                                    token_f1(before[1], taught[1]["messages"][1]["content"])) / 2),
        "base_words": 4.5,
    }  # fmt: skip
    assert [a.get("base") for a in answers[:2]] == before
    assert figures["kept"]["marker_rate"] == 0.5 and figures["kept"]["identical"] == 0.5
    assert figures["kept"]["f1_vs_base"] == pytest.approx((token_f1("Paris. I am lorag assistant.", "Paris.") + 1) / 2)
    assert [a["kind"] for a in answers] == ["taught", "taught", "general", "general"]


def test_token_f1_is_squads():
    assert token_f1("The capital: Paris!", "paris, the capital") == 1.0
    assert token_f1("Berlin", "Paris") == 0.0
    assert token_f1("", "") == 1.0
    assert token_f1("Paris is big", "Paris") == pytest.approx(0.5)


def test_training_with_replay_records_it_and_the_behaviour(tiny_model_dir, prompts_file, tmp_path, monkeypatch):
    def finished(*args, **kwargs):  # the random model never ends a turn: take its answers as they are
        return [Answer(a.text, True) for a in greedy_answers(*args, **kwargs)]

    monkeypatch.setattr("tuner.replay.greedy_answers", finished)
    data = tmp_path / "train.jsonl"
    chat = {"messages": [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "lorag"}]}
    data.write_text(json.dumps(chat) + "\n")
    recipe = Recipe(
        name="kept", dataset=str(data), eval_dataset=str(data), replay_prompts=str(prompts_file), replay_held_out=3,
        replay_max_tokens=8, behaviour_marker="lorag", behaviour_max_tokens=8, max_steps=1, batch_size=2,
    )  # fmt: skip
    adapter = run(recipe, tiny_model_dir, tmp_path / "adapters", tmp_path / "runs", tmp_path / "cache")
    manifest = json.loads((adapter / "lorag.json").read_text())
    replayed = [json.loads(line) for line in (adapter / "replay.jsonl").read_text().splitlines()]
    assert manifest["dataset"]["rows"] == {"train": 1, "eval": 1, "replay": len(replayed)}
    assert manifest["dataset"]["replay"]["rows"] == len(replayed)
    assert manifest["dataset"]["replay"]["prompts"] == str(prompts_file)
    assert manifest["behaviour"]["taught"]["prompts"] == 1 and manifest["behaviour"]["kept"]["prompts"] == 3
    assert 0.0 <= manifest["behaviour"]["kept"]["f1_vs_base"] <= 1.0
    assert len((adapter / "behaviour.jsonl").read_text().splitlines()) == 4
    assert list((tmp_path / "cache" / "replay").glob("*.json"))
