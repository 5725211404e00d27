"""One grader run on one model sample: the reward, and OpenAI's ``metadata`` (errors, time, scores, tokens).

:func:`run_grader` checks the grader (:func:`graders.shapes.validate_grader`: a :class:`GraderError` for one
that cannot run at all, which the gateway answers with a 400), then grades: a failure while grading (a template
variable the item lacks, a judge that does not answer or answers nonsense, python code that raises or is
stopped, a formula that cannot be computed) gives reward 0 with the matching flag of OpenAI's ``errors`` set,
as OpenAI reports it. A multi grader's named graders are ``sub_rewards``. What needs a model comes from the
:class:`Context`. This module knows nothing about servers or trainers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from graders import judge as judges
from graders.formula import FormulaError, evaluate
from graders.metrics import Embed, similarity, string_check
from graders.sandbox import Limits, PythonGraderFailed, run_python
from graders.shapes import GraderError, LabelModel, Multi, Python, ScoreModel, StringCheck, validate_grader
from graders.templates import TemplateError, render, sample_namespace

FLAGS = ("formula_parse_error", "invalid_variable_error", "model_grader_parse_error", "model_grader_refusal_error",
         "model_grader_server_error", "other_error", "python_grader_runtime_error", "python_grader_server_error",
         "sample_parse_error", "truncated_observation_error", "unresponsive_reward_error")  # fmt: skip
DETAILS = ("model_grader_server_error_details", "python_grader_runtime_error_details",
           "python_grader_server_error_type")  # fmt: skip


@dataclass
class Context:
    """What grading may use: ``embed`` (cosine), ``judge`` (model graders), whether python graders run."""

    embed: Embed | None = None
    judge: judges.Judge | None = None
    allow_python: bool = False
    python_limits: Limits = field(default_factory=Limits)


@dataclass
class Result:
    reward: float
    metadata: dict
    sub_rewards: dict[str, float]
    tokens_per_model: dict[str, int]

    def openai(self) -> dict:
        """The body of OpenAI's ``graders/run`` response."""
        return {"reward": self.reward, "metadata": self.metadata, "sub_rewards": self.sub_rewards,
                "model_grader_token_usage_per_model": self.tokens_per_model}  # fmt: skip


class _Run:
    def __init__(self, context: Context):
        self.context = context
        self.errors: dict = dict.fromkeys(FLAGS, False) | dict.fromkeys(DETAILS)
        self.tokens: dict[str, int] = {}

    def fail(self, flag: str, detail_field: str | None = None, detail: str | None = None) -> None:
        self.errors[flag] = True
        if detail_field:
            self.errors[detail_field] = detail

    def score(self, grader, sample: dict, item) -> float | None:
        """The grader's score, or None after setting the error flag that says why."""
        try:
            return self._score(grader, sample, item)
        except TemplateError as e:  # which variable: lorag's extension field, OpenAI's has none
            self.fail("invalid_variable_error", "invalid_variable_error_details", str(e))
        return None

    def _score(self, grader, sample: dict, item) -> float | None:
        if isinstance(grader, StringCheck):
            return string_check(render(grader.input, item, sample), render(grader.reference, item, sample),
                                grader.operation)  # fmt: skip
        if isinstance(grader, ScoreModel | LabelModel):
            return self._judge(grader, sample, item)
        if isinstance(grader, Python):
            return self._python(grader, sample, item)
        if isinstance(grader, Multi):
            return None  # scored by run_grader, which keeps the sub-rewards
        text, reference = render(grader.input, item, sample), render(grader.reference, item, sample)
        return similarity(text, reference, grader.evaluation_metric, self.context.embed)

    def _judge(self, grader, sample: dict, item) -> float | None:
        messages = [{"role": m.role, "content": _content(m.content, item, sample)} for m in grader.input]
        scored = isinstance(grader, ScoreModel)
        call = (judges.score_call if scored else judges.label_call)(grader, messages)
        try:
            reply = self.context.judge(call)
        except judges.JudgeFailed as e:
            self.fail("model_grader_server_error", "model_grader_server_error_details", str(e))
            return None
        if reply.tokens:
            self.tokens[grader.model] = self.tokens.get(grader.model, 0) + reply.tokens
        try:
            return judges.read_score(grader, reply) if scored else judges.read_label(grader, reply)[1]
        except judges.JudgeParseError as e:
            self.fail("model_grader_parse_error", "model_grader_server_error_details", str(e))
            return None

    def _python(self, grader, sample: dict, item) -> float | None:
        given = sample | {"output_tools": [], "choices": []}
        try:
            return run_python(grader.source, given, item, self.context.python_limits)
        except PythonGraderFailed as e:
            if e.kind == "wall_clock":
                self.fail("unresponsive_reward_error")
            self.fail("python_grader_runtime_error", "python_grader_runtime_error_details", str(e))
        except OSError as e:
            self.fail("python_grader_server_error", "python_grader_server_error_type", type(e).__name__)
        return None


def run_grader(data, model_sample: str, item: object, context: Context) -> Result:
    """Grade ``model_sample`` (the model's answer) for ``item`` (the data row) with the grader ``data``."""
    grader = validate_grader(data, context.allow_python)
    _needs(grader, context)
    started = time.perf_counter()
    run, sample = _Run(context), sample_namespace(model_sample)
    sub_rewards: dict[str, float] = {}
    if isinstance(grader, Multi):
        for name, inner in grader.named().items():
            value = run.score(inner, sample, item)
            if value is not None:
                sub_rewards[name] = value
        reward = None
        if len(sub_rewards) == len(grader.named()):
            try:
                reward = evaluate(grader.calculate_output, sub_rewards)
            except FormulaError:
                run.fail("formula_parse_error")
    else:
        reward = run.score(grader, sample, item)
    metadata = {
        "name": grader.name, "type": grader.type, "errors": run.errors,
        "execution_time": time.perf_counter() - started, "scores": dict(sub_rewards), "token_usage":
        sum(run.tokens.values()) or None, "sampled_model_name": None,
    }  # fmt: skip
    if reward is not None and not isinstance(grader, Multi):
        metadata["scores"] = {grader.name: reward}
    return Result(reward if reward is not None else 0.0, metadata, sub_rewards, run.tokens)


def _content(content, item, sample) -> str:
    items = content if isinstance(content, list) else [content]
    return "".join(render(part if isinstance(part, str) else part.text, item, sample) for part in items)


def requirements(grader) -> set[str]:
    """What a checked grader needs to run: ``judge`` (a model grader), ``default_judge`` (a model grader without a
    ``base_url`` of its own, which asks the caller's judge), ``embed`` (cosine), ``python``."""
    found = set()
    for one in grader.named().values() if isinstance(grader, Multi) else [grader]:
        if isinstance(one, ScoreModel | LabelModel):
            found |= {"judge"} if one.base_url else {"judge", "default_judge"}
        elif isinstance(one, Python):
            found.add("python")
        elif getattr(one, "evaluation_metric", None) == "cosine":
            found.add("embed")
    return found


def _needs(grader, context: Context) -> None:
    """GraderError for a grader this context cannot run: a judge or an embedder it lacks."""
    needed = requirements(grader)
    if "judge" in needed and context.judge is None:
        raise GraderError("grader.model", "model graders need a judge model, and none is reachable here")
    if "embed" in needed and context.embed is None:
        raise GraderError("grader.evaluation_metric", "cosine similarity needs an embedder, and none is here")
