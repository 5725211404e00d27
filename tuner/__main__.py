"""``python -m tuner train RECIPE.yaml [--set key=value ...]``: train with the recipe's method.

``python -m tuner check FILE`` checks a data file (any format a method trains on) and
``python -m tuner check --recipe RECIPE.yaml`` a recipe with its data, without loading a model; each prints
what it found as one JSON line (``tuner.checks``).

The recipe's ``method`` names its record (:mod:`tuner.methods`), which names the module that trains
it (``tuner.sft``, ``tuner.dpo``, ...; each has a ``run``). Training data is built by ``lorag data
build``, ``lorag kb raft-data`` and ``lorag pairs``, which read question sets, knowledge bases and
models the tuner knows nothing about.

The gateway's ``lorag finetune`` runs this as a subprocess after preparing the base model (through
``accelerate launch`` for several processes). Errors the user can fix print one line on stderr
and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

from tuner.config import ConfigError, load_recipe
from tuner.formats import DatasetError
from tuner.manifest import AdapterExistsError
from tuner.methods import METHODS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuner", description="Train adapters and models.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help=f"train with the recipe's method ({', '.join(METHODS)}) on TRL")
    train.add_argument("recipe", type=Path, help="recipe YAML (see tuner/configs/)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    train.add_argument("--model-dir", type=Path, help="prepared base model folder (default: the recipe's model)")
    train.add_argument("--adapters-dir", type=Path, default=Path("adapters"), help="where the adapter is written")
    train.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where checkpoints are written")
    train.add_argument("--cache-dir", type=Path, help="reusable work, e.g. replay answers (default: the runs dir)")
    check = commands.add_parser("check", help="check a data file, or a recipe and its data, without a model")
    check.add_argument("file", type=Path, nargs="?", help="a training data file")
    check.add_argument("--recipe", type=Path, help="a recipe YAML: its fields, and its data read as its method does")
    check.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from tuner.training import TrainingError

    try:
        recipe = load_recipe(args.recipe, args.set)
        if not (args.model_dir or recipe.model):
            raise ConfigError(f"{args.recipe} names no base model: pass --model-dir PREPARED_FOLDER")
        model_dir = args.model_dir or Path(recipe.model)
        run = importlib.import_module(METHODS[recipe.method].trainer).run
        adapter = run(recipe, model_dir, args.adapters_dir, args.runs_dir, args.cache_dir)
    except (ConfigError, DatasetError, AdapterExistsError, FileNotFoundError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if adapter is not None:  # the other processes of a multi-process run write nothing
        print(adapter)
    return 0


def _check(args) -> int:
    from tuner.checks import check_file, check_recipe

    if (args.file is None) == (args.recipe is None):
        print("error: check takes a data FILE or --recipe RECIPE.yaml", file=sys.stderr)
        return 2
    try:
        found = check_file(args.file) if args.file else check_recipe(load_recipe(args.recipe, args.set))
    except (ConfigError, DatasetError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
