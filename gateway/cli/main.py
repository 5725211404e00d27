"""The ``lorag`` command line.

Each subcommand is a thin shell over a package: ``model`` over ``serve.models``; ``finetune``
resolves and prepares the base model, then runs the tuner as a subprocess
(``python -m tuner train``), since the gateway never imports training code; ``serve`` prepares the
base model and runs the gateway app with uvicorn. Failures the user can fix print one line on
stderr and exit non-zero.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Annotated

import typer
import yaml

from gateway.cli.common import fail
from gateway.cli.compare import compare
from gateway.cli.data import data_app
from gateway.cli.engine_starter import engine_starter, prepare_or_fail
from gateway.cli.export import export
from gateway.cli.kb import kb_app
from gateway.cli.pairs import pairs
from gateway.jobs.tuner_process import train_command
from gateway.settings import get_settings

app = typer.Typer(
    help="lorag: fine-tune LoRA adapters, serve them, retrieve from knowledge bases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Base models: prepare the embedded default or any Hugging Face model.")
app.add_typer(model_app, name="model")
app.add_typer(kb_app, name="kb")
app.add_typer(data_app, name="data")
app.command()(compare)
app.command()(pairs)
app.command()(export)


@model_app.command("prepare")
def model_prepare(
    model: Annotated[
        str | None, typer.Option(help="Hugging Face id or local path; default: the embedded Gemma 3 270M.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Prepare again even if already in the cache.")] = False,
) -> None:
    """Materialise a base model as a prepared folder in the cache and print its path."""
    typer.echo(prepare_or_fail(model or get_settings().base_model, force))


@app.command()
def finetune(
    config: Annotated[Path, typer.Argument(help="Training recipe YAML, e.g. tuner/configs/lorag-identity.yaml.")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a recipe field: key=value (repeatable).")
    ] = None,
    num_processes: Annotated[
        int | None,
        typer.Option(min=1, help="Training processes, through accelerate launch (one per GPU); default: the recipe's."),
    ] = None,
    accelerate_config: Annotated[
        Path | None, typer.Option(help="accelerate config, e.g. deploy/accelerate/fsdp.yaml (default: DDP).")
    ] = None,
) -> None:
    """Train an adapter (or model) with the recipe's method into the adapters folder."""
    overrides = list(set_ or [])
    if num_processes is not None:
        overrides.append(f"num_processes={num_processes}")
    model = _recipe_field(config, overrides, "model") or get_settings().base_model
    processes = int(_recipe_field(config, overrides, "num_processes") or 1)
    settings = get_settings()
    model_dir = prepare_or_fail(model)
    command = train_command(
        config, model_dir, settings.adapters_dir, settings.runs_dir, settings.cache_dir.expanduser(), overrides,
        processes, accelerate_config,
    )  # fmt: skip
    code = subprocess.call(command)
    if code:
        raise typer.Exit(code)


def _recipe_field(config: Path, overrides: list[str], field: str):
    """A field of the recipe (``--set field=...`` wins), or None."""
    for override in reversed(overrides):
        key, _, value = override.partition("=")
        if key.strip() == field:
            return value.strip()
    try:
        recipe = yaml.safe_load(config.read_text()) or {}
    except OSError as e:
        fail(f"cannot read recipe {config}: {e.strerror}")
    except yaml.YAMLError as e:
        fail(f"{config} is not valid YAML: {str(e).splitlines()[0]}")
    if not isinstance(recipe, dict):
        fail(f"{config} must be a YAML mapping of recipe fields")
    return recipe.get(field)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    engine: Annotated[
        str | None, typer.Option(help="auto (vLLM on a GPU, else local), vllm or local; default: LORAG_ENGINE or auto.")
    ] = None,
) -> None:
    """Serve the base model and its adapters behind the OpenAI-compatible API."""
    import uvicorn  # the server stack is only imported by the command that needs it

    from gateway.api.app import create_app

    settings = get_settings()
    if settings.self_url is None:  # where a fine-tuning job's model graders ask this gateway's models
        own = "127.0.0.1" if host in ("0.0.0.0", "::", "") else f"[{host}]" if ":" in host else host
        settings = settings.model_copy(update={"self_url": f"http://{own}:{port}"})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def stop() -> None:
        server.should_exit = True  # nothing to serve: stop instead of answering 503 forever

    start = engine_starter(engine, on_failure=stop)
    api = create_app(start, settings=settings)
    config = uvicorn.Config(api, host=host, port=port, timeout_graceful_shutdown=settings.shutdown_timeout_s)
    server = uvicorn.Server(config)
    server.run()
    if api.state.gateway.failure:
        fail(f"the engine failed to start: {api.state.gateway.failure}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
