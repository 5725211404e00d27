"""``python -m tuner sft RECIPE.yaml [--set key=value ...]``: train an adapter.

Training data is built by ``lorag data build`` and ``lorag kb raft-data``, which read question
sets and knowledge bases the tuner knows nothing about.

The gateway's ``lorag finetune`` runs this as a subprocess after preparing the base model.
Errors the user can fix print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tuner.config import ConfigError, load_recipe
from tuner.formats import DatasetError
from tuner.manifest import AdapterExistsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuner", description="Train PEFT adapters.")
    commands = parser.add_subparsers(dest="command", required=True)
    sft = commands.add_parser("sft", help="supervised fine-tuning with LoRA (TRL SFTTrainer)")
    sft.add_argument("recipe", type=Path, help="recipe YAML (see tuner/configs/)")
    sft.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    sft.add_argument("--model-dir", type=Path, help="prepared base model folder (default: the recipe's model)")
    sft.add_argument("--adapters-dir", type=Path, default=Path("adapters"), help="where the adapter is written")
    sft.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where checkpoints are written")
    sft.add_argument("--cache-dir", type=Path, help="reusable work, e.g. replay answers (default: the runs dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from tuner.sft import TrainingError, run

    try:
        recipe = load_recipe(args.recipe, args.set)
        if not (args.model_dir or recipe.model):
            raise ConfigError(f"{args.recipe} names no base model: pass --model-dir PREPARED_FOLDER")
        model_dir = args.model_dir or Path(recipe.model)
        adapter = run(recipe, model_dir, args.adapters_dir, args.runs_dir, args.cache_dir)
    except (ConfigError, DatasetError, AdapterExistsError, FileNotFoundError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(adapter)
    return 0


if __name__ == "__main__":
    sys.exit(main())
