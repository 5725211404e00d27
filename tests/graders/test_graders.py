"""The graders package on its own: templates, each grader type's score, multi formulas, checks and errors."""

from __future__ import annotations

import pytest

from graders import Context, GraderError, run_grader, validate_grader
from graders.judge import JudgeCall, JudgeReply
from graders.templates import TemplateError, render, sample_namespace

ANSWER = {"type": "string_check", "name": "answer", "input": "{{ sample.output_text }}",
          "reference": "{{ item.answer }}", "operation": "eq"}  # fmt: skip


def test_templates_reach_item_paths_and_the_samples_json():
    sample = sample_namespace('{"city": "Paris", "tags": ["a", "b"]}')
    item = {"refs": [{"name": "Lyon"}], "n": 3}
    text = "{{ item.refs[0].name }}/{{item.refs.0.name}} {{ sample.output_json.city }} {{ sample.output_json.tags }}"
    text += " {{ item.n }}"
    assert render(text, item, sample) == 'Lyon/Lyon Paris ["a", "b"] 3'
    with pytest.raises(TemplateError, match="item.missing"):
        render("{{ item.missing }}", item, sample)
    assert sample_namespace("not json")["output_json"] is None


@pytest.mark.parametrize(("operation", "sample", "reward"), [
    ("eq", "Paris", 1.0), ("eq", "paris", 0.0), ("ne", "Lyon", 1.0), ("like", "It is Paris.", 1.0),
    ("like", "it is paris.", 0.0), ("ilike", "IT IS PARIS.", 1.0),
])  # fmt: skip
def test_string_check_operations(operation, sample, reward):
    result = run_grader(ANSWER | {"operation": operation}, sample, {"answer": "Paris"}, Context())
    assert result.reward == reward
    assert result.metadata["scores"] == {"answer": reward} and not any(
        v for k, v in result.metadata["errors"].items() if isinstance(v, bool)
    )


@pytest.mark.parametrize("metric", ["fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_2", "rouge_5",
                                    "rouge_l", "cosine"])  # fmt: skip
def test_text_similarity_is_one_for_the_same_text_and_lower_for_another(metric):
    grader = {"type": "text_similarity", "name": "sim", "input": "{{ sample.output_text }}",
              "reference": "{{ item.ref }}", "evaluation_metric": metric}  # fmt: skip
    context = Context(embed=lambda texts: [[float(len(t)), float(t.count("a")), 1.0] for t in texts])
    ref = "the cat sat on the mat today and it was happy about that"
    same = run_grader(grader, ref, {"ref": ref}, context).reward
    other = run_grader(grader, "dogs bark loudly at night in town", {"ref": ref}, context).reward
    assert same > 0.99 and 0.0 <= other < same  # METEOR keeps a small fragmentation penalty


def test_a_multi_graders_formula_combines_named_scores_without_eval():
    grader = {"type": "multi", "name": "both", "calculate_output": "0.25 * exact + 0.75 * max(near, 0) ^ 2",
              "graders": {"exact": ANSWER, "near": ANSWER | {"operation": "ilike"}}}  # fmt: skip
    result = run_grader(grader, "paris", {"answer": "Paris"}, Context())
    assert result.reward == 0.75 and result.sub_rewards == {"exact": 0.0, "near": 1.0}
    for formula in ('__import__("os").getcwd()', "exact.__class__", "unknown + 1", "(exact"):
        with pytest.raises(GraderError) as refused:
            validate_grader(grader | {"calculate_output": formula}, allow_python=False)
        assert refused.value.param == "grader.calculate_output"


def test_model_graders_ask_the_judge_with_a_schema_and_read_its_json():
    calls: list[JudgeCall] = []

    def judge(call: JudgeCall) -> JudgeReply:
        calls.append(call)
        return JudgeReply('{"result": 0.8}' if "result" in call.schema["properties"] else '{"label": "good"}', 7)

    messages = [{"role": "user", "content": "Rate {{ sample.output_text }} against {{ item.answer }}"}]
    score = {"type": "score_model", "name": "s", "model": "judge", "input": messages, "range": [0, 1]}
    result = run_grader(score, "Paris", {"answer": "Paris"}, Context(judge=judge))
    assert result.reward == 0.8 and result.tokens_per_model == {"judge": 7}
    assert calls[0].messages[0]["content"] == "Rate Paris against Paris"
    label = {"type": "label_model", "name": "l", "model": "judge", "input": messages, "labels": ["good", "bad"],
             "passing_labels": ["good"]}  # fmt: skip
    assert run_grader(label, "Paris", {"answer": "Paris"}, Context(judge=judge)).reward == 1.0
    nonsense = run_grader(score, "x", {"answer": "y"}, Context(judge=lambda call: JudgeReply("no json")))
    assert nonsense.reward == 0.0 and nonsense.metadata["errors"]["model_grader_parse_error"]


@pytest.mark.parametrize(("change", "param"), [
    ({"operation": "equals"}, "grader.operation"),
    ({"input": "{{ os.environ }}"}, "grader.input"),
    ({"type": "python", "source": "def grade(sample, item):\n    return 1\n"}, "grader.type"),
])  # fmt: skip
def test_bad_graders_are_refused_naming_the_field(change, param):
    grader = {"name": "python"} | change if change.get("type") == "python" else ANSWER | change
    with pytest.raises(GraderError) as refused:
        validate_grader(grader, allow_python=False)
    assert refused.value.param == param


def test_a_python_grader_runs_in_a_child_process_when_allowed():
    source = "import json\ndef grade(sample, item):\n    return float(sample['output_json']['n'] == item['n'])\n"
    grader = {"type": "python", "name": "py", "source": source}
    assert run_grader(grader, '{"n": 2}', {"n": 2}, Context(allow_python=True)).reward == 1.0
    with pytest.raises(GraderError, match="define a function grade"):
        validate_grader(grader | {"source": "x = 1"}, allow_python=True)
