"""What every ``lorag`` subcommand shares: how a failure the user can fix is reported, in one line."""

from __future__ import annotations

from typing import NoReturn

import typer
from pydantic import ValidationError


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def invalid_option(error: ValidationError) -> str:
    """The first problem of a validation error in one line: ``top_k: Input should be ...``."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
