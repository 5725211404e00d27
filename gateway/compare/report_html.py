"""The chart and the self-contained HTML page of a comparison report.

:func:`chart_png` draws one group of bars per metric, one bar per arm, with the confidence
interval as error bars (a matplotlib Figure drawn with Agg, imported only here). :func:`html_page` is the
Markdown report's content as one HTML file: inline CSS, the chart embedded as a base64 PNG, and
every question, answer and arm name HTML-escaped. This module knows nothing about how the
numbers were computed.
"""

from __future__ import annotations

import base64
import io
from html import escape

from gateway.compare.report_tables import arm_table, metrics_of, number, pair_table, unchecked_sources
from gateway.compare.stats import CONFIDENCE
from gateway.compare.summary import LABELS

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.answer { white-space: pre-wrap; max-width: 60ch; }
td.error { color: #b00020; }
tr.significant td { background: #eef7ee; }
.question { margin-top: 1.5em; }
.reference { color: #555; }
img { max-width: 100%; }
"""


def chart_png(summary: list[dict]) -> bytes:
    """Bars of each metric's mean per arm with confidence-interval error bars, as PNG bytes."""
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in a worker thread

    metrics = metrics_of(summary)
    width = 0.8 / max(len(summary), 1)
    figure = Figure(figsize=(max(6.0, 0.8 * len(metrics) * max(len(summary), 2)), 4.5))
    axes = figure.subplots()
    for i, row in enumerate(summary):
        xs, means, errors = [], [], [[], []]
        for j, metric in enumerate(metrics):
            if row.get(metric) is None:
                continue
            low, high = row["ci"][metric]
            xs.append(j + (i - (len(summary) - 1) / 2) * width)
            means.append(row[metric])
            errors[0].append(max(row[metric] - low, 0.0))
            errors[1].append(max(high - row[metric], 0.0))
        axes.bar(xs, means, width, yerr=errors, capsize=3, label=row["arm"])
    axes.set_xticks(range(len(metrics)), [LABELS[m] for m in metrics])
    axes.set_ylim(0, 1.05)
    axes.set_ylabel(f"mean score ({CONFIDENCE:.0%} CI)")
    axes.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(len(summary), 4))
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)  # Agg, matplotlib's default canvas for PNG
    return buffer.getvalue()


def _table(header: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_page(report: dict, rows: list[dict], png: bytes) -> str:
    """The whole report as one self-contained HTML document."""
    config, summary = report["config"], report["summary"]
    metrics = metrics_of(summary)
    arms = ", ".join(f"<code>{escape(arm)}</code>" for arm in config["arms"])
    tests = report["pairwise"]
    parts = [
        f"<h1>lorag compare report</h1><p>{len(report['questions'])} questions, arms {arms}; "
        f"max_tokens {config['max_tokens']}, temperature {config['temperature']}, "
        f"judge {escape(config['judge_model'] or 'none')}. Started {escape(report['started'])}, "
        f"took {report['duration_s']:.1f} s.{escape(unchecked_sources(report))}</p>",
        f"<h2>Per arm</h2><p>Means with {CONFIDENCE:.0%} bootstrap confidence intervals.</p>",
        _table(*arm_table(summary)),
        f'<img alt="scores per arm" src="data:image/png;base64,{base64.b64encode(png).decode()}">',
        "<h2>Pairwise comparisons</h2><p>Paired sign-flip permutation test on per-question differences "
        "(two-sided), over the questions both arms answered. Significant rows are shaded.</p>",
        _table(*pair_table(tests), ["significant" if t["significant"] else "" for t in tests]),
        "<h2>Questions, worst disagreements first</h2><p>Sorted by the spread of token F1 across arms.</p>",
    ]
    parts += [_question(row, metrics) for row in rows]
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>lorag compare report</title>'
        f"<style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _question(row: dict, metrics: list[str]) -> str:
    """One question: the reference, its context folded away, and each arm's answer and scores."""
    question = row["question"]
    head = "".join(f"<th>{escape(h)}</th>" for h in ["arm", "answer", *(LABELS[m] for m in metrics)])
    cells = []
    for arm, answer in row["answers"].items():
        if answer.error:
            text = f'<td class="answer error">error: {escape(answer.error)}</td>'
        else:
            text = f'<td class="answer">{escape(answer.text)}</td>'
        scores = "".join(f"<td>{number(answer.scores.get(m))}</td>" for m in metrics)
        cells.append(f"<tr><td>{escape(arm)}</td>{text}{scores}</tr>")
    context = question.context and f"<details><summary>Context</summary><p>{escape(question.context)}</p></details>"
    return (
        f'<div class="question"><h3>{escape(question.id)}: {escape(question.question)}</h3>'
        f'<p class="reference">Reference: {escape(question.answer)} (F1 spread {row["spread"]:.2f})</p>'
        f"{context or ''}<table><thead><tr>{head}</tr></thead><tbody>{''.join(cells)}</tbody></table></div>"
    )
