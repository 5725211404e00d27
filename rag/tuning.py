"""Tune a knowledge base's embedder on the knowledge base alone, and measure it on pairs training never saw.

`tune_knowledge_base(kb, out, settings)`:
1. makes pairs from the chunks (`rag.tuning_pairs`: inverse cloze, up to four sentences a chunk
   when the chunks are fewer than the pairs wanted; headings; and queries a model writes when the
   caller passes `write_query`), at most `max_pairs` plus the held-out share;
2. keeps the pairs whose chunk the current hybrid retriever ranks in its top `filter_k`, holds out
   the pairs of a share of the chunks, and mines a hard negative for each training pair;
3. trains a copy of the embedder with sentence-transformers' own trainer and
   MultipleNegativesRankingLoss (in-batch and mined negatives), batches without duplicates;
4. evaluates before and after on the held-out pairs (`rag.tuning_eval`), and writes the model to
   `out/model` with `out/tuning.json`: a manifest like an adapter's (base embedder, data hash, pair
   counts by source, settings, held-out figures, loss curve, seconds) and `out/loss.png`.

It does not touch the knowledge base: the caller swaps the embedder (`KnowledgeBase.set_embedder`,
which re-embeds everything before the new index replaces the old). Runs on the CPU or the GPU
sentence-transformers picks. The hashing embedder cannot be tuned.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Interval, Len

from rag.embedder import SentenceTransformerEmbedder, load_sentence_transformer
from rag.errors import RagError
from rag.retriever import retrieve
from rag.store import KnowledgeBase
from rag.tuning_eval import evaluate, pool_ids
from rag.tuning_pairs import (
    SOURCES,
    Pair,
    filter_pairs,
    generated_pairs,
    heading_pairs,
    ict_pairs,
    mine_negatives,
    split_held_out,
)

MANIFEST = "tuning.json"


class CannotTune(RagError):
    """The knowledge base's embedder is not a sentence-transformers model, or it has too little text."""


class Stopped(RagError):
    """The caller's ``stop()`` said to stop: the run ended before its model was complete."""


@dataclass(frozen=True)
class TuningSettings:
    """Every setting of a tuning run, with its bounds (``annotated_types``): the CLI and the fine-tuning job's
    ``lorag`` extension both read this one declaration."""

    sources: Annotated[tuple[str, ...], Len(1, 3)] = ("ict", "headings")
    max_pairs: Annotated[int, Interval(ge=2, le=1_000_000)] = 2000
    """Training pairs at most (sampled), so a run stays bounded on a CPU."""
    held_out: Annotated[float, Interval(gt=0, le=0.5)] = 0.1
    """Share of the chunks whose pairs are held out for evaluation."""
    max_held_out: Annotated[int, Interval(ge=1, le=100_000)] = 300
    filter_k: Annotated[int, Interval(ge=1, le=1000)] = 20
    hard_negatives: bool = True
    epochs: Annotated[float, Interval(gt=0, le=1000)] = 1.0
    batch_size: Annotated[int, Interval(ge=2, le=4096)] = 32
    learning_rate: Annotated[float, Interval(gt=0, le=1)] = 3e-5
    warmup_ratio: Annotated[float, Interval(ge=0, le=1)] = 0.1
    max_seq_length: Annotated[int, Interval(ge=8, le=8192)] | None = 256
    """Tokens the model reads while training (and after): None keeps the base embedder's."""
    eval_pool: Annotated[int, Interval(ge=10, le=1_000_000)] = 3000
    seed: Annotated[int, Interval(ge=0, le=2**31 - 1)] = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if unknown := sorted(set(self.sources) - set(SOURCES)):
            raise ValueError(f"unknown pair source {unknown[0]!r}; use {', '.join(SOURCES)}")


@dataclass(frozen=True)
class TuningResult:
    model_path: Path
    manifest: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        keys = ("pairs", "held_out_before", "held_out_after", "seconds")
        return {key: self.manifest[key] for key in keys}


def make_pairs(
    kb: KnowledgeBase, settings: TuningSettings, write_query: Callable[[str], str | None] | None = None
) -> tuple[list[Pair], list[Pair], dict[str, int]]:
    """(training pairs with hard negatives, held-out pairs, counts by stage) from the knowledge base's chunks."""
    rng = random.Random(settings.seed)
    chunks = sorted(kb.database.chunks().values(), key=lambda c: c.id)
    if len(chunks) < 4:
        raise CannotTune(f"knowledge base {kb.manifest.name!r} has {len(chunks)} chunks; tuning needs at least 4")
    budget = settings.max_pairs + min(settings.max_held_out, round(settings.max_pairs * settings.held_out)) * 2
    sample = rng.sample(chunks, min(len(chunks), budget))
    pairs: list[Pair] = []
    if "ict" in settings.sources:  # a small knowledge base gives several sentences of each chunk, up to 4
        pairs += ict_pairs(sample, rng, per_chunk=max(1, min(4, budget // len(sample))))
    if "headings" in settings.sources:
        pairs += heading_pairs(sample)
    if "generated" in settings.sources:
        if write_query is None:
            raise CannotTune("the 'generated' pair source needs a model to write queries (a generator)")
        pairs += generated_pairs(sample, write_query)
    counts = {f"made_{source}": sum(p.source == source for p in pairs) for source in settings.sources}

    @cache
    def ranked(query: str) -> tuple[int, ...]:
        depth = max(settings.filter_k, 10)
        return tuple(hit.chunk_id for hit in retrieve(kb, query, mode="hybrid", depth=depth))

    kept = filter_pairs(pairs, lambda query, k: list(ranked(query)[:k]), settings.filter_k)
    training, held = split_held_out(kept, settings.held_out, rng)
    held = rng.sample(held, min(len(held), settings.max_held_out))
    training = rng.sample(training, min(len(training), settings.max_pairs))
    if settings.hard_negatives:
        texts = {c.id: (c.document_id, c.indexed_text) for c in chunks}
        training = mine_negatives(training, lambda query, k: list(ranked(query)[:k]), texts)
    counts |= {"kept": len(kept), "training": len(training), "held_out": len(held)}
    counts["hard_negatives"] = sum(p.negative is not None for p in training)
    if len(training) < 2 or not held:
        raise CannotTune(f"knowledge base {kb.manifest.name!r} gave {len(kept)} usable pairs; too few to tune")
    return training, held, counts


Stop = Callable[[], bool]
"""Asked between stages and after every training step: True ends the run with :class:`Stopped`."""
OnLog = Callable[[int, int, float], None]
"""Told (step, total steps, training loss) at every step logged."""


def train(
    base: str, pairs: list[Pair], out: Path, settings: TuningSettings, progress: bool,
    stop: Stop | None = None, on_log: OnLog | None = None,
) -> list[list[float]]:  # fmt: skip
    """Fine-tune sentence-transformers model `base` on `pairs` into `out`; return the loss curve [[step, loss]]."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    from transformers import TrainerCallback

    class Hooks(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if on_log and logs and "loss" in logs:
                on_log(state.global_step, state.max_steps, float(logs["loss"]))

        def on_step_end(self, args, state, control, **kwargs):
            if stop and stop():
                raise Stopped(f"stopped at training step {state.global_step} of {state.max_steps}")

    model = load_sentence_transformer(base)
    if settings.max_seq_length:
        model.max_seq_length = min(model.max_seq_length, settings.max_seq_length)
    columns: dict[str, list[str]] = {"anchor": [p.query for p in pairs], "positive": [p.passage for p in pairs]}
    if all(p.negative for p in pairs):
        columns["negative"] = [p.negative for p in pairs]
    with tempfile.TemporaryDirectory() as scratch:
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch, num_train_epochs=settings.epochs, per_device_train_batch_size=settings.batch_size,
            learning_rate=settings.learning_rate, warmup_steps=settings.warmup_ratio, seed=settings.seed,
            batch_sampler=BatchSamplers.NO_DUPLICATES, logging_steps=1, save_strategy="no", report_to=[],
            disable_tqdm=not progress,
        )  # fmt: skip
        trainer = SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_dict(columns),
            loss=MultipleNegativesRankingLoss(model),
            callbacks=[Hooks()],
        )
        trainer.train()
        curve = [[entry["step"], round(entry["loss"], 4)] for entry in trainer.state.log_history if "loss" in entry]
    model.save(str(out))
    return curve


def tune_knowledge_base(
    kb: KnowledgeBase,
    out: Path,
    settings: TuningSettings | None = None,
    *,
    write_query: Callable[[str], str | None] | None = None,
    progress: bool = False,
    stop: Stop | None = None,
    on_log: OnLog | None = None,
) -> TuningResult:
    """Make pairs, train, evaluate; the tuned model in `out/model`, the manifest in `out/tuning.json`.

    `stop` is asked between the stages and after every step (:class:`Stopped` when it says so); `on_log` is told
    the loss of every step."""
    settings = settings or TuningSettings()
    if not isinstance(kb.embedder, SentenceTransformerEmbedder):
        raise CannotTune(f"embedder {kb.embedder.id!r} is not a sentence-transformers model; it cannot be tuned")
    started = time.monotonic()
    stop = stop or (lambda: False)

    def check(stage: str) -> None:
        if stop():
            raise Stopped(f"stopped before {stage}")

    training, held, counts = make_pairs(kb, settings, write_query)
    check("the held-out evaluation")
    pool = pool_ids(kb, held, settings.eval_pool, settings.seed)
    before = evaluate(kb, kb.embedder, held, pool)
    check("training")
    out.mkdir(parents=True, exist_ok=True)
    curve = train(kb.embedder.id, training, out / "model", settings, progress, stop, on_log)
    check("the evaluation of the tuned model")
    tuned = SentenceTransformerEmbedder(str(out / "model"))
    after = evaluate(kb, tuned, held, pool)
    data = json.dumps([[p.query, p.passage, p.negative] for p in training], ensure_ascii=False).encode("utf-8")
    manifest = {
        "knowledge_base": kb.manifest.name,
        "base_embedder": kb.embedder.id,
        "loss": "MultipleNegativesRankingLoss",
        "data_sha256": hashlib.sha256(data).hexdigest(),
        "pairs": counts,
        "settings": asdict(settings),
        "eval_pool_chunks": len(pool),
        "held_out_before": before,
        "held_out_after": after,
        "loss_curve": curve,
        "seconds": round(time.monotonic() - started, 1),
        "created": int(time.time()),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    _plot(curve, out / "loss.png")
    return TuningResult(out / "model", manifest)


def _plot(curve: list[list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.plot([s for s, _ in curve], [loss for _, loss in curve])
    axes.set_xlabel("step")
    axes.set_ylabel("training loss (MNRL)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
