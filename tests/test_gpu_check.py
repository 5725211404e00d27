"""bench/gpu_check.sh and its Python parts, on a machine without a GPU: the one-line no-CUDA answer, the report's
ratios, the shapes' sizes, what a device call would send, and (slow) the serving figures on a tiny shape on CPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


@pytest.fixture
def bench(monkeypatch):
    """bench/ on the import path, as its scripts run (``python bench/gpu_figures.py``)."""
    monkeypatch.syspath_prepend(str(BENCH))


def no_cuda() -> bool:
    import torch

    return not torch.cuda.is_available()


@pytest.mark.skipif(not no_cuda(), reason="with a GPU the check runs in full")
@pytest.mark.parametrize("python", [sys.executable, "python-that-does-not-exist"])
def test_without_cuda_the_check_says_so_in_one_line_and_exits_0(tmp_path, python):
    env = os.environ | {"PYTHON": python, "OUT": str(tmp_path / "out")}
    done = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"gpu_check: needs CUDA (no GPU visible to {python}'s torch); nothing run"]
    assert done.stderr == "" and not (tmp_path / "out").exists()


@pytest.mark.skipif(not no_cuda(), reason="with a GPU the figures run")
def test_the_figures_script_imports_and_without_cuda_says_so(tmp_path):
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(BENCH / "gpu_figures.py"), "--out", str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "gpu_figures: needs CUDA (torch sees no GPU); --device cpu tries it on a CPU"
    bad = subprocess.run(command + ["--shapes", "llama-70b"], env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown shape llama-70b" in bad.stderr


def test_the_report_puts_each_figure_beside_its_ratio_to_the_peer(bench):
    import gpu_report

    rows = [{"workload": w, "concurrency": c, "tokens_per_s": v}
            for w, c, v in [("base", 1, 100.0), ("4 mixed adapters", 1, 50.0), ("base", 8, 400.0),
                            ("4 mixed adapters", 8, 300.0)]]  # fmt: skip
    arms = [
        {"arm": "trl", "tokens_per_s": 1000.0, "s_per_step": 0.5, "peak_rss_gib": 3.0, "peak_gpu_gib": 10.0},
        {"arm": "lorag", "tokens_per_s": 1500.0, "s_per_step": 0.3, "peak_rss_gib": 3.0, "peak_gpu_gib": 12.0,
         "bf16": True},
    ]  # fmt: skip
    skipped = [{"stage": "serve llama-8b", "reason": "needs about 190 s, 40 s of the budget left"}]
    results = {"device": "NVIDIA H100 80GB HBM3", "serving": {"llama-1b": {"rows": rows}}, "sft": {"llama-1b": arms},
               "skipped": skipped}  # fmt: skip
    text = gpu_report.markdown(results)
    assert "Device: NVIDIA H100 80GB HBM3" in text
    assert "| llama-1b | 1 | 100.0 | 50.0 | 0.50x |" in text and "| llama-1b | 8 | 400.0 | 300.0 | 0.75x |" in text
    assert "| llama-1b | lorag | 1500.0 | 0.300 | 12.00 | yes | 1.50x | 1.20x |" in text
    assert "| llama-1b | trl | 1000.0 | 0.500 | 10.00 | no | 1.00x | 1.00x |" in text
    assert "- serve llama-8b: needs about 190 s, 40 s of the budget left" in text
    assert "## DPO" not in text  # nothing measured, no table


def test_the_shapes_have_the_sizes_of_the_models_they_stand_for(bench):
    import gpu_models

    assert round(gpu_models.parameters("embedded") / 1e6, 1) == 134.5  # SmolLM2-135M-Instruct
    assert round(gpu_models.parameters("llama-1b") / 1e9, 2) == 1.24  # Llama 3.2 1B
    assert round(gpu_models.parameters("llama-8b") / 1e9, 2) == 8.03  # Llama 3.1 8B


def test_the_embedded_shape_is_the_prepared_embedded_models_config(bench):
    import gpu_models

    prepared = Path("~/.cache/lorag/models/smollm2-135m-instruct/config.json").expanduser()
    if not prepared.is_file():
        pytest.skip("the embedded model is not prepared here (lorag model prepare)")
    config = json.loads(prepared.read_text())
    shape = gpu_models.SHAPES["embedded"]
    shared = [k for k in shape if k in config]
    assert len(shared) == len(shape) - 1  # rope_theta sits in rope_parameters there
    assert all(math.isclose(config[k], shape[k], rel_tol=1e-6) for k in shared)  # eps: float32 as saved
    assert config["rope_parameters"]["rope_theta"] == shape["rope_theta"]


def test_a_device_call_with_the_wheels_stays_under_64_mib(bench):
    import gpu_carry

    sizes = gpu_carry.sent_bytes()
    assert sizes["tree"] > 1_000_000  # the repository itself was counted
    folder = ROOT / gpu_carry.FOLDER
    if any(folder.glob("*.whl")):
        assert gpu_carry.wheel_problems(folder) == []
        assert sizes["carried"] <= gpu_carry.WHEELS_BOUND
    assert sizes["tree"] + gpu_carry.WHEELS_BOUND <= gpu_carry.LIMIT


def test_the_download_line_fetches_exactly_the_pinned_wheels_for_python_3_12(bench):
    import gpu_carry

    command = gpu_carry.download_command()
    assert command[:4] == ["python3", "-m", "pip", "download"] and "--no-deps" in command
    assert command[command.index("--python-version") + 1] == "3.12"
    assert command[-len(gpu_carry.WHEELS) :] == gpu_carry.WHEELS and all("==" in w for w in gpu_carry.WHEELS)


@pytest.mark.slow
def test_the_serving_figures_run_on_a_tiny_shape_on_cpu(tmp_path):
    """The figures' serving stage end to end on CPU: every request runs to max_tokens (end of sequence ignored)."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(BENCH / "gpu_figures.py"), "--out", str(tmp_path), "--device", "cpu",
               "--shapes", "tiny", "--parts", "serve", "--max-tokens", "4"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_results.json").read_text())
    rows = results["serving"]["tiny"]["rows"]
    assert [(r["workload"], r["concurrency"]) for r in rows] == [
        (w, c) for w in ("base", "4 mixed adapters") for c in (1, 8, 32)
    ]
    assert all(r["every_request_ran_to_max_tokens"] and r["tokens_per_s"] > 0 for r in rows)
    assert all(sum(r["batch_sizes"]) == r["requests"] and max(r["batch_sizes"]) <= 32 for r in rows)
    assert "| tiny | 32 |" in (tmp_path / "gpu_results.md").read_text() and not results["failed"]
