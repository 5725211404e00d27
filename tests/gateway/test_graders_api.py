"""OpenAI's graders API through the unmodified ``openai`` SDK: every grader type, errors, hostile python code.

The model graders' judge is the gateway's own (fake) model, asked with a JSON schema; python graders run in
their sandboxed child process, and hostile ones are stopped and reported while the server keeps answering.
"""

from __future__ import annotations

import json
import time

import openai
import pytest

from tests.fakes.fake_engine import FakeEngine

EXACT = {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}",
         "reference": "{{ item.answer }}", "operation": "eq"}  # fmt: skip
ASK = [{"role": "user", "content": "Is '{{ sample.output_text }}' the answer '{{ item.answer }}'?"}]


def judge_reply(messages, params, adapter) -> str:
    """The fake judge: a score or a label, as the schema asks, from whether the sample is the answer."""
    schema = json.loads(params.json_schema or "{}")
    right = "'Paris' the answer 'Paris'" in messages[-1].content
    if "label" in schema.get("properties", {}):
        return json.dumps({"label": "correct" if right else "wrong"})
    return json.dumps({"result": 0.9 if right else 0.1})


@pytest.fixture
def grading(make_gateway):
    served = make_gateway(FakeEngine(reply=judge_reply), allow_python_graders=True, python_grader_cpu_s=2,
                          python_grader_timeout_s=5, python_grader_memory_mb=512)  # fmt: skip
    return served, served.client().fine_tuning.alpha.graders


GRADERS = {
    "string_check": (EXACT, 1.0),
    "text_similarity": ({"type": "text_similarity", "name": "sim", "input": "{{ sample.output_text }}",
                         "reference": "{{ item.answer }}", "evaluation_metric": "fuzzy_match"}, 1.0),
    "cosine": ({"type": "text_similarity", "name": "cos", "input": "{{ sample.output_text }}",
                "reference": "{{ item.answer }}", "evaluation_metric": "cosine"}, 1.0),
    "score_model": ({"type": "score_model", "name": "judge", "model": "fake-base", "input": ASK}, 0.9),
    "label_model": ({"type": "label_model", "name": "label", "model": "fake-base", "input": ASK,
                     "labels": ["correct", "wrong"], "passing_labels": ["correct"]}, 1.0),
    "python": ({"type": "python", "name": "py", "source": "def grade(sample, item):\n"
                "    return 0.5 + 0.5 * (sample['output_text'] == item['answer'])\n"}, 1.0),
    "multi": ({"type": "multi", "name": "both", "calculate_output": "0.5 * exact + 0.5 * judge",
               "graders": {"exact": EXACT, "judge": {"type": "score_model", "name": "judge", "model": "fake-base",
                                                     "input": ASK}}}, 0.95),
}  # fmt: skip


@pytest.mark.parametrize("kind", GRADERS)
def test_every_grader_type_runs_and_validates_through_the_sdk(grading, kind):
    served, graders = grading
    grader, reward = GRADERS[kind]
    result = graders.run(grader=grader, model_sample="Paris", item={"answer": "Paris"})
    assert result.reward == pytest.approx(reward)
    assert result.metadata.name == grader["name"] and result.metadata.type == grader["type"]
    assert not result.metadata.errors.invalid_variable_error and result.metadata.execution_time >= 0
    if kind == "multi":
        assert result.sub_rewards == {"exact": 1.0, "judge": pytest.approx(0.9)}
    if kind in ("score_model", "label_model"):
        assert served.engine.calls[-1][1].json_schema  # the judge was held to the grader's JSON
    assert graders.validate(grader=grader).grader.type == grader["type"]
    wrong = graders.run(grader=grader, model_sample="Lyon", item={"answer": "Paris"})
    assert wrong.reward < reward


def test_a_missing_variable_is_reported_in_the_metadata_not_as_a_failure(grading):
    _, graders = grading
    result = graders.run(grader=EXACT, model_sample="Paris", item={"other": 1})
    assert result.reward == 0 and result.metadata.errors.invalid_variable_error


@pytest.mark.parametrize(("grader", "param"), [
    (EXACT | {"operation": "equal"}, "grader.operation"),
    (EXACT | {"input": "{{ __import__('os') }}"}, "grader.input"),
    ({"type": "multi", "name": "m", "graders": {"a": EXACT}, "calculate_output": "a + b"},
     "grader.calculate_output"),
    ({"type": "python", "name": "p", "source": "def grade(:"}, "grader.source"),
    (GRADERS["score_model"][0] | {"base_url": "http://elsewhere.example/v1"}, "grader.base_url"),
])  # fmt: skip
def test_bad_graders_are_400_naming_the_field(grading, grader, param):
    _, graders = grading
    for call in (lambda: graders.validate(grader=grader), lambda: graders.run(grader=grader, model_sample="x")):
        with pytest.raises(openai.BadRequestError) as refused:
            call()
        assert refused.value.body["param"] == param


def test_python_graders_are_off_unless_the_operator_allows_them(gateway):
    graders = gateway.client().fine_tuning.alpha.graders
    with pytest.raises(openai.BadRequestError, match="LORAG_ALLOW_PYTHON_GRADERS"):
        graders.run(grader=GRADERS["python"][0], model_sample="Paris", item={"answer": "Paris"})


HOSTILE = {
    "endless loop": ("def grade(sample, item):\n    while True:\n        pass\n", "limit"),  # CPU or, when busy, clock
    "sleeping": ("import time\ndef grade(sample, item):\n    time.sleep(60)\n", "s limit"),
    "memory bomb": ("def grade(sample, item):\n    blocks = []\n    while True:\n"
                    "        blocks.append(bytearray(2**26))\n", "MemoryError"),
    "reads a file outside its folder": ("def grade(sample, item):\n    return len(open('/etc/passwd').read())\n",
                                        "only its own folder"),
    "opens a socket": ("import socket\ndef grade(sample, item):\n    socket.create_connection(('127.0.0.1', 80))\n",
                       "may not import socket"),
    "fork loop": ("import os\ndef grade(sample, item):\n    while True:\n        os.fork()\n", "os.fork"),
    "runs a command": ("import os\ndef grade(sample, item):\n    return os.system('id')\n", "os.system"),
    "reads secrets from the environment": ("import os\ndef grade(sample, item):\n"
                                           "    return 1 if 'LORAG_API_KEYS' in os.environ else 0.25\n", None),
}  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_python_graders_are_stopped_and_reported_while_the_server_stays_up(grading, name, monkeypatch):
    monkeypatch.setenv("LORAG_API_KEYS", "a-secret")
    served, graders = grading
    source, reported = HOSTILE[name]
    started = time.monotonic()
    result = graders.run(grader={"type": "python", "name": "hostile", "source": source}, model_sample="x", item={})
    assert time.monotonic() - started < 15
    errors = result.metadata.errors
    if reported is None:
        assert result.reward == 0.25 and not errors.python_grader_runtime_error
    else:
        assert result.reward == 0 and errors.python_grader_runtime_error
        assert reported in errors.python_grader_runtime_error_details
    assert served.client().models.list().data  # the gateway still answers
