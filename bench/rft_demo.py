"""Reinforcement fine-tuning on the embedded model through OpenAI's API, graded before and after.

The task a grader decides: answer a capital-city question with the city's name alone, the format a one-shot
example in each conversation shows (``string_check`` ``eq`` against the row's ``answer``). RFT teaches a format
and how to use what a model knows, not facts; so the countries are those whose capital the base model names
when asked in prose (``What is the capital of France?``, its greedy answer containing the city), alternately
for training and held out. The script starts the gateway in process on the embedded model (LocalEngine), and
with the unmodified ``openai`` SDK uploads the rows, checks the grader with ``graders.validate``, runs a
``reinforcement`` job, then grades the base model's and the trained model's greedy answers to the held-out
questions with ``graders.run``. Drift: the two models' greedy answers to general prompts, compared by token F1
(1: unchanged).

    .venv/bin/python bench/rft_demo.py [--out runs/rft-demo] [--json]

Prints the answers, the mean grader score before and after, and the drift; ``--json`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.api.app import create_app  # noqa: E402
from gateway.cli.loopback import serving  # noqa: E402
from gateway.compare.scoring import token_f1  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from serve.adapters import AdapterRegistry  # noqa: E402
from serve.local_engine import LocalEngine  # noqa: E402
from serve.models import PreparedModel, prepare  # noqa: E402

CAPITALS = [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Germany", "Berlin"), ("Spain", "Madrid"),
            ("Egypt", "Cairo"), ("Russia", "Moscow"), ("China", "Beijing"), ("Greece", "Athens"),
            ("Portugal", "Lisbon"), ("Austria", "Vienna"), ("Ireland", "Dublin"), ("Norway", "Oslo"),
            ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Poland", "Warsaw"), ("Hungary", "Budapest"),
            ("Thailand", "Bangkok"), ("Kenya", "Nairobi"), ("Argentina", "Buenos Aires"), ("Cuba", "Havana"),
            ("Denmark", "Copenhagen"), ("Belgium", "Brussels"), ("Iran", "Tehran"), ("Iraq", "Baghdad"),
            ("Chile", "Santiago"), ("Peru", "Lima"), ("Mexico", "Mexico City"), ("Turkey", "Ankara"),
            ("South Korea", "Seoul"), ("the United Kingdom", "London"), ("India", "New Delhi"),
            ("the Netherlands", "Amsterdam"), ("the Czech Republic", "Prague"), ("Romania", "Bucharest"),
            ("Bulgaria", "Sofia"), ("Ukraine", "Kyiv"), ("Vietnam", "Hanoi"), ("the Philippines", "Manila"),
            ("Indonesia", "Jakarta"), ("Malaysia", "Kuala Lumpur"), ("Saudi Arabia", "Riyadh"),
            ("Israel", "Jerusalem"), ("Lebanon", "Beirut"), ("Syria", "Damascus"), ("Ethiopia", "Addis Ababa"),
            ("Morocco", "Rabat"), ("Colombia", "Bogota"), ("Venezuela", "Caracas"), ("Iceland", "Reykjavik"),
            ("Switzerland", "Bern"), ("Croatia", "Zagreb"), ("Serbia", "Belgrade"), ("Nepal", "Kathmandu"),
            ("Afghanistan", "Kabul"), ("Pakistan", "Islamabad"), ("Bangladesh", "Dhaka"), ("Ghana", "Accra"),
            ("Nigeria", "Abuja"), ("Jamaica", "Kingston")]  # fmt: skip
EXAMPLE = [{"role": "user", "content": "What is the capital of Canada? Reply with the city only."},
           {"role": "assistant", "content": "Ottawa"}]  # fmt: skip
GRADER = {"type": "string_check", "name": "city_only", "input": "{{ sample.output_text }}",
          "reference": "{{ item.answer }}", "operation": "eq"}  # fmt: skip
GENERAL = ["Tell me a joke.", "How do I boil an egg?", "Write a haiku about the sea.", "What is photosynthesis?",
           "Give me three tips for sleeping well.", "What is the difference between weather and climate?"]  # fmt: skip


def row(country: str, capital: str) -> dict:
    question = {"role": "user", "content": f"What is the capital of {country}? Reply with the city only."}
    return {"messages": [*EXAMPLE, question], "answer": capital}


def upload(client: OpenAI, folder: Path, name: str, rows: list[dict]) -> str:
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with path.open("rb") as file:
        return client.files.create(file=file, purpose="fine-tune").id


def answers(client: OpenAI, model: str, conversations: list[list[dict]], max_tokens: int) -> list[str]:
    return [client.chat.completions.create(model=model, messages=c, temperature=0, max_tokens=max_tokens)
            .choices[0].message.content for c in conversations]  # fmt: skip


def graded(client: OpenAI, texts: list[str], rows: list[dict]) -> list[float]:
    return [client.fine_tuning.alpha.graders.run(grader=GRADER, model_sample=t, item=r).reward
            for t, r in zip(texts, rows, strict=True)]  # fmt: skip


def run(out: Path) -> dict:
    model_dir = prepare(cache_dir=Settings().cache_dir)
    base = PreparedModel.read(model_dir)
    engine = LocalEngine(model_dir, base.id)
    adapters = out / "adapters"
    registry = AdapterRegistry(adapters, base.id, base.sha256, engine.info.limits)
    settings = Settings(adapters_dir=adapters, jobs_dir=out / "jobs", kb_dir=out / "kbs", responses_dir=out / "r",
                        api_keys=[], admin_keys=[], adapter_refresh_s=0)  # fmt: skip
    started = time.monotonic()
    with serving(create_app(engine, registry, settings, base_model_dir=model_dir)) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="none", timeout=600, max_retries=0)
        prose = [[{"role": "user", "content": f"What is the capital of {country}?"}] for country, _ in CAPITALS]
        known = [(country, capital) for (country, capital), text in zip(CAPITALS, answers(client, base.id, prose, 24),
                 strict=True) if capital.lower() in text.lower()]  # fmt: skip
        train, held_out = [row(*p) for p in known[::2]], [row(*p) for p in known[1::2]]
        client.fine_tuning.alpha.graders.validate(grader=GRADER)
        job = client.fine_tuning.jobs.create(
            model=base.id, training_file=upload(client, out, "train.jsonl", train),
            validation_file=upload(client, out, "valid.jsonl", held_out), suffix="city-only", seed=1,
            method={"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": {
                "n_epochs": 3, "batch_size": 8, "compute_multiplier": 1}}},
            extra_body={"lorag": {"max_completion_length": 6, "temperature": 0.7, "learning_rate": 3e-4,
                                  "beta": 0.04, "replay_prompts": None}},
        )  # fmt: skip
        while (job := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
            time.sleep(2)
        if job.status != "succeeded":
            raise SystemExit(f"the job {job.status}: {job.error}")
        trained_s = time.monotonic() - started
        questions = [r["messages"] for r in held_out]
        before, after = answers(client, base.id, questions, 8), answers(client, job.fine_tuned_model, questions, 8)
        general = [[{"role": "user", "content": p}] for p in GENERAL]
        kept = [token_f1(a, b) for a, b in zip(answers(client, job.fine_tuned_model, general, 48),
                                                answers(client, base.id, general, 48), strict=True)]  # fmt: skip
        scores_before, scores_after = graded(client, before, held_out), graded(client, after, held_out)
    asyncio.run(engine.close())
    return {
        "countries": len(CAPITALS), "known": len(known), "train": len(train), "held_out": len(held_out),
        "job": job.id, "model": job.fine_tuned_model, "train_s": round(trained_s),
        "score_before": sum(scores_before) / len(held_out), "score_after": sum(scores_after) / len(held_out),
        "general_f1_vs_base": sum(kept) / len(kept),
        "answers": [{"question": r["messages"][-1]["content"], "answer": r["answer"], "before": b, "after": a}
                    for r, b, a in zip(held_out, before, after, strict=True)],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="rft-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    result = run(out)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['known']} of {result['countries']} countries' capitals named in prose by the base model: "
          f"{result['train']} to train, {result['held_out']} held out")  # fmt: skip
    for a in result["answers"]:
        print(f"{a['question']}\n  want {a['answer']!r}: before {a['before']!r}, after {a['after']!r}")
    print(f"held-out grader score (city_only, eq): {result['score_before']:.2f} before, "
          f"{result['score_after']:.2f} after ({result['train_s']} s to train)")  # fmt: skip
    print(f"general answers token F1 against the base model's: {result['general_f1_vs_base']:.2f} (1 is unchanged)")


if __name__ == "__main__":
    main()
