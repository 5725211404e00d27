"""A multi grader's ``calculate_output``: a formula over the graders' scores, evaluated by ``simpleeval``.

OpenAI's formulas use ``+ - * / ^``, parentheses, numbers, the graders' names and the functions ``min``,
``max``, ``abs``, ``floor``, ``ceil``, ``exp``, ``sqrt`` and ``log``. ``^`` is a power, as in OpenAI's formulas
(read as ``**``, so it binds before ``*``). simpleeval parses the formula with ``ast`` and evaluates only
those: there is no ``eval``, no attribute access and no other name. This module knows nothing about graders.
"""

from __future__ import annotations

import ast
import math
import operator

from simpleeval import DEFAULT_OPERATORS, SimpleEval

FUNCTIONS = {"min": min, "max": max, "abs": abs, "floor": math.floor, "ceil": math.ceil, "exp": math.exp,
             "sqrt": math.sqrt, "log": math.log}  # fmt: skip
OPERATORS = {op: DEFAULT_OPERATORS[op] for op in (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.UAdd)}
OPERATORS[ast.Pow] = operator.pow


class FormulaError(ValueError):
    """The formula does not parse, or names something that is not a grader or a function."""


def evaluate(formula: str, scores: dict[str, float]) -> float:
    """The formula's value with the graders' ``scores``; :class:`FormulaError` if it cannot be computed."""
    evaluator = SimpleEval(operators=OPERATORS, functions=FUNCTIONS, names=dict(scores))
    try:
        value = evaluator.eval(formula.replace("^", "**"))  # a formula holds no strings: only names, numbers
    except SyntaxError as e:
        raise FormulaError(f"the formula does not parse: {e.msg}") from None
    except Exception as e:  # simpleeval's NameNotDefined, FeatureNotAvailable; ZeroDivisionError, math domain
        raise FormulaError(f"the formula cannot be computed: {e}") from None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise FormulaError("the formula does not give a number")
    return float(value)
