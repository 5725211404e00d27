"""The tables of a comparison report as rows of strings, shared by Markdown, HTML and the terminal.

This module knows nothing about files or markup beyond the plain-text table for the terminal.
"""

from __future__ import annotations

from gateway.stats import ALPHA
from gateway.summary import LABELS


def metrics_of(summary: list[dict]) -> list[str]:
    """The score columns present in any arm, in :data:`gateway.summary.LABELS` order."""
    return [metric for metric in LABELS if any(metric in row for row in summary)]


def estimate(row: dict, metric: str) -> str:
    """``0.512 [0.440, 0.583]``, or ``-`` when the arm has no such score."""
    if row.get(metric) is None:
        return "-"
    low, high = row["ci"][metric]
    return f"{row[metric]:.3f} [{low:.3f}, {high:.3f}]"


def number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def arm_table(summary: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-arm table (shared by Markdown, HTML and the CLI)."""
    metrics = metrics_of(summary)
    header = ["arm", *(LABELS[m] for m in metrics), "answers", "errors", "latency (s)", "completion tokens"]
    rows = [
        [row["arm"], *(estimate(row, m) for m in metrics), str(row["answers"]), str(row["errors"]),
         number(row["latency_s"]), number(row["completion_tokens"], 1)]
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
        p = "-" if test["p_value"] is None else f"{test['p_value']:.4f}"
        rows.append([test["a"], test["b"], LABELS[test["metric"]], diff, str(d["n"]), p,
                     "yes" if test["significant"] else "no"])  # fmt: skip
    return header, rows


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with aligned columns, for the terminal."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
