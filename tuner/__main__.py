"""``python -m tuner sft RECIPE.yaml [--set key=value ...]``: train an adapter;
``python -m tuner build-data --documents DOCS --qa QA --out FILE``: training data from documents.

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
    data = commands.add_parser("build-data", help="training data from documents and question/answer pairs")
    data.add_argument("--documents", type=Path, action="append", default=[], help="folder of .txt/.md, JSONL of "
                      "{text}, or a Wiki-Newpages QA file (only its evidence_text is read); repeatable")  # fmt: skip
    data.add_argument("--qa", type=Path, action="append", default=[],
                      help="QA file or JSONL of {question, answer}: closed-book chats; repeatable")  # fmt: skip
    data.add_argument("--exclude", type=Path, action="append", default=[],
                      help="drop QA pairs whose question is in this file (e.g. the test split)")  # fmt: skip
    data.add_argument("--chunk-chars", type=int, default=800, help="characters per text chunk")
    data.add_argument("--overlap-chars", type=int, default=100, help="characters shared by consecutive chunks")
    data.add_argument("--max-qa", type=int, help="use a seeded random sample of this many QA pairs")
    data.add_argument("--seed", type=int, default=0, help="seed of the --max-qa sample")
    data.add_argument("--out", type=Path, required=True, help="JSONL file to write (the tuner's text format)")
    export = commands.add_parser("export-documents", help="write a QA file's documents as .txt files")
    export.add_argument("source", type=Path, help="Wiki-Newpages QA file or JSONL of {text}")
    export.add_argument("folder", type=Path, help="folder to write the .txt files to")
    args = parser.parse_args(argv)
    if args.command == "build-data":
        return _build_data(args)
    if args.command == "export-documents":
        from tuner.documents import export_documents

        try:
            count = export_documents(args.source, args.folder)
        except DatasetError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"wrote {count} documents to {args.folder}")
        return 0
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


def _build_data(args: argparse.Namespace) -> int:
    from tuner.documents import build_rows, write_jsonl

    try:
        rows, report = build_rows(
            args.documents, args.qa, args.exclude, args.chunk_chars, args.overlap_chars, args.max_qa, args.seed
        )
    except (DatasetError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_jsonl(rows, args.out)
    print(f"wrote {len(rows)} rows to {args.out}: {report.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
