"""The graders' JSON shapes as OpenAI has them, checked: one pydantic model per grader ``type``.

:func:`parse_grader` reads a grader dict (a 400-style :class:`GraderError` naming the field for a bad one);
:func:`validate_grader` also checks what can be known without running it: the templates' variables, a multi
grader's formula and names, a python grader's syntax and its ``grade`` function, and whether python graders are
allowed at all. ``base_url`` on the model graders is lorag's extension (a judge outside the gateway). This module
knows nothing about running graders.
"""

from __future__ import annotations

import ast
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from graders.formula import FormulaError, evaluate
from graders.templates import check_template


class GraderError(ValueError):
    """A grader that cannot be used; ``param`` names the field (``grader.graders.a.input``)."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StringCheck(_Shape):
    type: Literal["string_check"]
    name: str
    input: str
    reference: str
    operation: Literal["eq", "ne", "like", "ilike"]


METRICS = ("cosine", "fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_2", "rouge_3", "rouge_4",
           "rouge_5", "rouge_l")  # fmt: skip


class TextSimilarity(_Shape):
    type: Literal["text_similarity"]
    name: str
    input: str
    reference: str
    evaluation_metric: Literal[METRICS]  # type: ignore[valid-type]
    pass_threshold: float | None = None  # OpenAI's evals field: accepted, not used for the reward


class InputText(_Shape):
    type: Literal["input_text", "output_text"]
    text: str


class Message(_Shape):
    role: Literal["user", "assistant", "system", "developer"]
    content: str | InputText | list[str | InputText]
    type: Literal["message"] | None = None


class SamplingParams(_Shape):
    max_completions_tokens: Annotated[int, Field(ge=1, le=8192)] | None = None
    reasoning_effort: str | None = None
    seed: int | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None


class ScoreModel(_Shape):
    type: Literal["score_model"]
    name: str
    model: str
    input: Annotated[list[Message], Field(min_length=1)]
    range: Annotated[list[float], Field(min_length=2, max_length=2)] | None = None
    sampling_params: SamplingParams | None = None
    base_url: str | None = None  # extension: an OpenAI-compatible judge the operator allows


class LabelModel(_Shape):
    type: Literal["label_model"]
    name: str
    model: str
    input: Annotated[list[Message], Field(min_length=1)]
    labels: Annotated[list[str], Field(min_length=1)]
    passing_labels: Annotated[list[str], Field(min_length=1)]
    base_url: str | None = None  # extension


class Python(_Shape):
    type: Literal["python"]
    name: str
    source: Annotated[str, Field(max_length=256_000)]
    image_tag: str | None = None


Single = Annotated[StringCheck | TextSimilarity | ScoreModel | LabelModel | Python, Field(discriminator="type")]


class Multi(_Shape):
    type: Literal["multi"]
    name: str
    graders: Single | dict[str, Single]
    calculate_output: Annotated[str, Field(min_length=1, max_length=4096)]

    def named(self) -> dict[str, Any]:
        """The graders by the names the formula uses: the map's keys (OpenAI's form), or one grader's name."""
        return self.graders if isinstance(self.graders, dict) else {self.graders.name: self.graders}


Grader = Annotated[StringCheck | TextSimilarity | ScoreModel | LabelModel | Python | Multi, Field(discriminator="type")]
_GRADER = TypeAdapter(Grader)


def parse_grader(data: Any, where: str = "grader"):
    """The grader ``data`` describes; :class:`GraderError` naming the first field that is wrong."""
    try:
        return _GRADER.validate_python(data)
    except ValidationError as error:
        first = error.errors()[0]
        path = [str(p) for p in first["loc"] if str(p) not in _TYPE_TAGS]
        raise GraderError(".".join([where, *path]), f"{'.'.join([where, *path])}: {first['msg']}") from None


_TYPE_TAGS = {"string_check", "text_similarity", "score_model", "label_model", "python", "multi", "str",
              "InputText", "list[union[str,InputText]]"}  # fmt: skip


def validate_grader(data: Any, allow_python: bool, where: str = "grader"):
    """The grader, checked as far as it can be without running it; :class:`GraderError` otherwise."""
    grader = parse_grader(data, where)
    _check(grader, allow_python, where)
    return grader


def _check(grader, allow_python: bool, where: str) -> None:
    if isinstance(grader, StringCheck | TextSimilarity):
        for field in ("input", "reference"):
            _template(getattr(grader, field), f"{where}.{field}")
    elif isinstance(grader, ScoreModel | LabelModel):
        for i, message in enumerate(grader.input):
            for text in _texts(message.content):
                _template(text, f"{where}.input.{i}.content")
        if isinstance(grader, ScoreModel) and grader.range and grader.range[0] >= grader.range[1]:
            raise GraderError(f"{where}.range", f"{where}.range: the first number must be below the second")
        if isinstance(grader, LabelModel) and not set(grader.passing_labels) <= set(grader.labels):
            raise GraderError(f"{where}.passing_labels", f"{where}.passing_labels must be a subset of labels")
    elif isinstance(grader, Python):
        if not allow_python:
            raise GraderError(f"{where}.type", "python graders are off on this server: its operator turns them on "
                                               "with LORAG_ALLOW_PYTHON_GRADERS=true")  # fmt: skip
        _python_source(grader.source, f"{where}.source")
    elif isinstance(grader, Multi):
        named = grader.named()
        for name, inner in named.items():
            _check(inner, allow_python, f"{where}.graders.{name}" if isinstance(grader.graders, dict) else
                   f"{where}.graders")  # fmt: skip
        try:  # every score 1: the formula parses and names only graders and functions
            evaluate(grader.calculate_output, dict.fromkeys(named, 1.0))
        except FormulaError as e:
            raise GraderError(f"{where}.calculate_output", f"{where}.calculate_output: {e}") from None


def _texts(content) -> list[str]:
    items = content if isinstance(content, list) else [content]
    return [item if isinstance(item, str) else item.text for item in items]


def _template(text: str, where: str) -> None:
    try:
        check_template(text)
    except ValueError as e:
        raise GraderError(where, f"{where}: {e}") from None


def _python_source(source: str, where: str) -> None:
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise GraderError(where, f"{where}: line {e.lineno}: {e.msg}") from None
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    grade = functions.get("grade")
    if grade is None or len(grade.args.args) != 2:
        raise GraderError(where, f"{where}: define a function grade(sample, item) that returns a number")
