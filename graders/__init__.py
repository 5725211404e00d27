"""Graders: OpenAI's grader JSON (string_check, text_similarity, score_model, label_model, python, multi) run on
one model sample, each to a reward, with OpenAI's metadata.

A small package of its own, because two packages need the same graders: the tuner (rewards for ``method: grpo``
and OpenAI's reinforcement fine-tuning) and the gateway (``/v1/fine_tuning/alpha/graders/run`` and
``/validate``). It imports nothing of lorag's and neither torch nor a model: what needs a model comes in as a
plain function (:class:`graders.run.Context`: ``embed`` for cosine similarity, ``judge`` for the model graders).
User Python code runs only in a sandboxed child process (:mod:`graders.sandbox`).
"""

from graders.run import Context, Result, requirements, run_grader
from graders.shapes import GraderError, parse_grader, validate_grader

__all__ = ["Context", "GraderError", "Result", "parse_grader", "requirements", "run_grader", "validate_grader"]
