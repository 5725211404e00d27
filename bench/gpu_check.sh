#!/usr/bin/env bash
# One command that measures lorag on a GPU within one device call (8 minutes; GPU_CHECK_BUDGET_S, default 450 s):
#   1. installs the carried wheels (bench/gpu-wheels/, filled by `make gpu-wheels`; see bench/gpu_carry.py);
#   2. runs the `gpu`-marked tests (tests/gpu/), at most GPU_CHECK_TESTS_S seconds (default 150);
#   3. measures the figures with what is left of the budget (bench/gpu_figures.py: LocalEngine base vs 4 mixed
#      adapters, SFT and DPO vs plain TRL, on random-weight shapes; stages that no longer fit are skipped, saying so).
# Results go to $OUT when it is set (gpu_results.md, gpu_results.json, gpu_tests.log, gpu_check.log), else to a
# temporary folder named at the end. Without CUDA it says so in one line and exits 0. Exit status otherwise: 1 if a
# test or a stage failed.
#
# From the device tool: run(command="bash bench/gpu_check.sh", carry=["bench/gpu-wheels"], timeout_s=540)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
    echo "gpu_check: needs CUDA (no GPU visible to $PYTHON's torch); nothing run"
    exit 0
fi

START=$(date +%s)
DEADLINE=$((START + ${GPU_CHECK_BUDGET_S:-450}))
RESULTS=${OUT:-$(mktemp -d -t lorag-gpu-check-XXXX)}
WORK=$(mktemp -d -t lorag-gpu-work-XXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$RESULTS"
exec > >(tee "$RESULTS/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
cd "$ROOT" || exit 1

if compgen -G "bench/gpu-wheels/*.whl" >/dev/null; then
    if ! "$PYTHON" -m pip install -q --root-user-action=ignore --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$WORK/site" bench/gpu-wheels/*.whl; then
        echo "gpu_check: installing bench/gpu-wheels failed"
        exit 1
    fi
    export PYTHONPATH="$WORK/site:$ROOT"
else
    echo "gpu_check: no wheels in bench/gpu-wheels (make gpu-wheels); using what $PYTHON has"
    export PYTHONPATH="$ROOT"
fi
nvidia-smi -L 2>/dev/null
"$PYTHON" - <<'EOF'
from importlib.metadata import PackageNotFoundError, version
import torch
def found(name):
    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return f"{name} missing"
names = ("transformers", "peft", "accelerate", "trl", "datasets", "pydantic", "xgrammar", "typing_extensions")
print("gpu_check:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "|", ", ".join(map(found, names)))
EOF

echo "gpu_check: tests/gpu ($(( $(date +%s) - START )) s in)"
timeout "${GPU_CHECK_TESTS_S:-150}" "$PYTHON" -m pytest tests/gpu -m gpu -q -p no:cacheprovider 2>&1 \
    | tee "$RESULTS/gpu_tests.log"
TESTS=${PIPESTATUS[0]}
[ "$TESTS" -eq 124 ] && echo "gpu_check: the tests ran past ${GPU_CHECK_TESTS_S:-150} s and were stopped"

echo "gpu_check: figures ($(( $(date +%s) - START )) s in, until $((DEADLINE - START)) s)"
# A stage that overruns its estimate is stopped 45 s past the deadline; the stages before it are already written.
LEFT=$((DEADLINE + 45 - $(date +%s)))
[ "$LEFT" -lt 1 ] && LEFT=1  # timeout 0 would mean no limit
timeout "$LEFT" "$PYTHON" bench/gpu_figures.py --out "$RESULTS" --work "$WORK" --deadline "$DEADLINE"
FIGURES=$?
if [ "$FIGURES" -eq 124 ]; then
    echo "gpu_check: the figures ran past the budget and were stopped; what was measured before:"
    cat "$RESULTS/gpu_results.md" 2>/dev/null
fi

echo "gpu_check: done in $(( $(date +%s) - START )) s; tests exit $TESTS, figures exit $FIGURES; results in $RESULTS"
[ "$TESTS" -eq 0 ] && [ "$FIGURES" -eq 0 ]
