"""`lorag compare` in process on the embedded default model: the base model against the identity adapter.

The command starts the gateway itself (in-process engine), asks held-out identity questions of
both arms, and writes the report; the adapter, trained to say who it is, must score higher.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from serve.embedded import DEFAULT_MODEL as BASE

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.slow


def test_compare_in_process_base_against_identity_adapter(identity_adapter, embedded_model_dir, tmp_path):
    rows = [json.loads(line)["messages"] for line in open(ROOT / "tuner/data/lorag-identity/eval.jsonl")][:3]
    questions = tmp_path / "identity.jsonl"
    lines = [json.dumps({"question": m[0]["content"], "answer": m[1]["content"]}) + "\n" for m in rows]
    questions.write_text("".join(lines))
    env = os.environ | {
        "LORAG_ADAPTERS_DIR": str(identity_adapter.parent),
        "LORAG_KB_DIR": str(tmp_path / "kbs"),
        "LORAG_REPORTS_DIR": str(tmp_path / "reports"),
        "LORAG_ENGINE": "local",
    }
    lorag = str(Path(sys.executable).parent / "lorag")
    command = [lorag, "compare", "--questions", str(questions), "--arms", f"{BASE},lorag-identity",
               "--max-tokens", "32", "--concurrency", "2"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    [folder] = (tmp_path / "reports").iterdir()  # the default: <reports_dir>/<YYYYmmdd-HHMMSS>
    assert f"report: {folder / 'report.html'}" in done.stdout
    report = json.loads((folder / "report.json").read_text())
    summary = {row["arm"]: row for row in report["summary"]}
    assert set(summary) == {BASE, "lorag-identity"}
    assert all(row["errors"] == 0 and row["completion_tokens"] > 0 for row in summary.values())
    assert summary["lorag-identity"]["f1"] > summary[BASE]["f1"], done.stdout
    assert all("lorag" in a["text"].lower() for a in report["answers"] if a["arm"] == "lorag-identity")
    for name in ("report.md", "report.html"):
        text = (folder / name).read_text()
        assert BASE in text and "lorag-identity" in text
    assert (folder / "chart.png").read_bytes().startswith(b"\x89PNG")
