"""The tables of a comparison report as rows of strings, shared by Markdown, HTML and the terminal.

:func:`p_text` is the one way a p-value is written, in the tables and in the CLI's summary.
This module knows nothing about files or markup beyond the plain-text table for the terminal.
"""

from __future__ import annotations

from gateway.compare.stats import ALPHA
from gateway.compare.summary import LABELS

P_DIGITS = 4  # a p-value below 10**-P_DIGITS is written "<0.0001", not "0.0000"


def metrics_of(summary: list[dict]) -> list[str]:
    """The score columns present in any arm, in :data:`gateway.compare.summary.LABELS` order."""
    return [metric for metric in LABELS if any(metric in row for row in summary)]


def estimate(row: dict, metric: str) -> str:
    """``0.512 [0.440, 0.583]``, or ``-`` when the arm has no such score."""
    if row.get(metric) is None:
        return "-"
    low, high = row["ci"][metric]
    return f"{row[metric]:.3f} [{low:.3f}, {high:.3f}]"


def number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def p_text(p_value: float | None, named: bool = False) -> str:
    """``0.0020``, or ``<0.0001`` for a p-value too small for four decimals (a permutation test's p is never 0:
    at least 2/(1 + draws), or 2/2**n when exact), or ``-`` for none; ``named`` gives ``p = 0.0020`` / ``p < 0.0001``.
    """
    if p_value is None:
        text = "-"
    elif p_value < 10**-P_DIGITS:
        text = f"<{10**-P_DIGITS:.{P_DIGITS}f}"
    else:
        text = f"{p_value:.{P_DIGITS}f}"
    if not named:
        return text
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def arm_table(summary: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-arm table (shared by Markdown, HTML and the CLI)."""
    metrics = metrics_of(summary)
    header = [
        "arm", *(LABELS[m] for m in metrics), "answers", "errors", "latency (s)", "prompt tokens", "completion tokens"
    ]  # fmt: skip
    rows = [
        [row["arm"], *(estimate(row, m) for m in metrics), str(row["answers"]), str(row["errors"]),
         number(row["latency_s"]), number(row.get("prompt_tokens"), 1), number(row["completion_tokens"], 1)]
        for row in summary
    ]  # fmt: skip
    return header, rows


def pair_table(tests: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the pairwise significance table."""
    header = ["arm A", "arm B", "metric", "A - B [95% CI]", "questions", "p-value", f"significant at {ALPHA}"]
    rows = []
    for test in tests:
        d = test["difference"]
        diff = "-" if d["mean"] is None else f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
        rows.append([test["a"], test["b"], LABELS[test["metric"]], diff, str(d["n"]), p_text(test["p_value"]),
                     "yes" if test["significant"] else "no"])  # fmt: skip
    return header, rows


def unchecked_sources(report: dict) -> str:
    """A sentence on the answers whose sources could not be searched, or ``""`` when there are none."""
    count = sum(answer.get("sources_error") is not None for answer in report["answers"])
    if not count:
        return ""
    answers = "1 answer" if count == 1 else f"{count} answers"
    return f" The search for the sources of {answers} failed: answer in sources is unknown (-) there."


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with aligned columns, for the terminal."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
