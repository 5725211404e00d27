"""A comparison's report files: report.json, report.md, report.html and chart.png in one folder.

report.json holds everything: the configuration, the questions, every answer with its scores,
the per-arm summary and the pairwise tests. report.md and report.html (self-contained: inline
CSS, the chart as a base64 PNG, every answer HTML-escaped) show the per-arm table with 95%
confidence intervals, the bar chart, the pairwise significance table, and every question with
each arm's answer side by side, worst disagreements first (:func:`gateway.compare.summary.disagreements`).
This module knows nothing about how the answers were obtained.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from gateway.compare.report_html import chart_png, html_page
from gateway.compare.report_tables import arm_table, metrics_of, number, pair_table, unchecked_sources
from gateway.compare.runner import CompareResult
from gateway.compare.stats import CONFIDENCE
from gateway.compare.summary import LABELS, disagreements, pairwise, summarize

FILES = ("report.json", "report.md", "report.html", "chart.png")
CONTEXT_CHARS = 300  # of a question's context shown in the Markdown and HTML pages


def default_folder(reports_dir: Path) -> Path:
    """``reports_dir/<YYYYmmdd-HHMMSS>`` (local time)."""
    return Path(reports_dir) / datetime.now().strftime("%Y%m%d-%H%M%S")


def build(result: CompareResult) -> dict:
    """The content of report.json."""
    data = result.as_dict()
    return {
        "object": "compare.report",
        "config": data["config"],
        "started": result.started,
        "finished": result.finished,
        "duration_s": result.duration_s,
        "summary": summarize(result),
        "pairwise": pairwise(result),
        "questions": data["questions"],
        "answers": data["answers"],
    }


def write_report(result: CompareResult, folder: Path) -> dict:
    """Write the four files into ``folder`` (created if needed); return report.json's content."""
    report = build(result)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    png = chart_png(report["summary"])
    (folder / "chart.png").write_bytes(png)
    rows = disagreements(result)
    (folder / "report.md").write_text(markdown(report, rows))
    (folder / "report.html").write_text(html_page(report, rows, png))
    return report


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(_md_cell(cell) for cell in line) + " |" for line in lines)


def _md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") or " "


def markdown(report: dict, rows: list[dict]) -> str:
    config = report["config"]
    metrics = metrics_of(report["summary"])
    parts = [
        "# lorag compare report",
        f"{len(report['questions'])} questions, arms {', '.join(f'`{a}`' for a in config['arms'])}; "
        f"max_tokens {config['max_tokens']}, temperature {config['temperature']}, "
        f"judge {config['judge_model'] or 'none'}. Started {report['started']}, took {report['duration_s']:.1f} s."
        + unchecked_sources(report),
        f"## Per arm\n\nMeans with {CONFIDENCE:.0%} bootstrap confidence intervals.\n\n"
        + _md_table(*arm_table(report["summary"])),
        "![scores per arm](chart.png)",
        "## Pairwise comparisons\n\nPaired sign-flip permutation test on per-question differences "
        "(two-sided), over the questions both arms answered.\n\n" + _md_table(*pair_table(report["pairwise"])),
        "## Questions, worst disagreements first\n\nSorted by the spread of token F1 across arms.",
    ]
    for row in rows:
        question = row["question"]
        header = ["arm", "answer", *(LABELS[m] for m in metrics)]
        answers = [
            [arm, answer.error and f"error: {answer.error}" or answer.text,
             *(number(answer.scores.get(m)) for m in metrics)]
            for arm, answer in row["answers"].items()
        ]  # fmt: skip
        parts.append(
            f"### {question.id}: {_md_cell(question.question)}\n\nReference: {_md_cell(question.answer)} "
            f"(F1 spread {row['spread']:.2f})\n\n" + _context(question.context) + _md_table(header, answers)
        )
    return "\n\n".join(parts) + "\n"


def _context(context: str | None) -> str:
    if not context:
        return ""
    short = " ".join(context.split())
    return f"Context: {_md_cell(short[:CONTEXT_CHARS] + ('…' if len(short) > CONTEXT_CHARS else ''))}\n\n"
