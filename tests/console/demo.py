"""A gateway for the console's browser tests and screenshots: fake engine, adapters, a knowledge base folder.

:func:`demo_gateway` serves the real app on loopback over :class:`~tests.fakes.fake_engine.FakeEngine`
with adapters ``alpha`` (which has a loss curve and a dataset record) and ``beta`` (neither), knowledge bases on
the hashing embedder and compare reports, all under one folder. It knows nothing about browsers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.api.app import create_app
from rag.store import KnowledgeBases
from serve.adapters import AdapterRegistry
from tests.fakes.fake_engine import FAKE_SHA256, FakeEngine, write_adapter
from tests.gateway.conftest import fake_settings, serving
from tuner.manifest import LOSS_CURVE, plot_loss_curve

LOSSES = [2.9, 2.4, 2.0, 1.7, 1.2, 0.9, 0.7, 0.55, 0.5, 0.46]
ALPHA_DATASET = {
    "path": "data/identity/train.jsonl",
    "format": "openai",
    "sha256": "a" * 64,
    "rows": {"train": 60, "eval": 12, "replay": 54},
}
ALPHA_BEHAVIOUR = {
    "taught": {"rate": 1.0, "prompts": 12, "marker": "lorag assistant"},
    "kept": {"f1_vs_base": 0.81, "identical": 0.5, "marker_rate": 0.0, "prompts": 12},
}


@dataclass
class Demo:
    url: str
    engine: FakeEngine
    root: Path


def write_adapters(folder: Path) -> None:
    """``alpha`` with a loss curve, the record of its dataset and its behaviour figures (as the trainer writes them),
    ``beta`` with none of them."""
    alpha = write_adapter(folder / "alpha")
    manifest = json.loads((alpha / "lorag.json").read_text())
    manifest["dataset"] = ALPHA_DATASET
    manifest["behaviour"] = ALPHA_BEHAVIOUR
    (alpha / "lorag.json").write_text(json.dumps(manifest))
    history = {"train": [{"step": i + 1, "loss": loss} for i, loss in enumerate(LOSSES)]}
    plot_loss_curve(history, "alpha on fake-base", alpha / LOSS_CURVE)
    write_adapter(folder / "beta")


@contextmanager
def demo_gateway(root: Path, *, word_delay_s: float = 0.0, **settings) -> Iterator[Demo]:
    """Serve the gateway with its state under ``root`` until the block ends; ``settings`` as for Settings."""
    adapters = root / "adapters"
    write_adapters(adapters)
    engine = FakeEngine(word_delay_s=word_delay_s)
    registry = AdapterRegistry(adapters, engine.info.base_model, FAKE_SHA256, engine.info.limits)
    bases = KnowledgeBases(root / "knowledge_bases", default_embedder="hashing-256")
    config = fake_settings(adapters, reports_dir=root / "reports", **settings)
    with serving(create_app(engine, registry, config, knowledge_bases=bases)) as url:
        yield Demo(url, engine, root)
