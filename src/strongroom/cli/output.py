"""Printing results as JSON (camelCase, like az) or a table, and errors as ``(Code) message``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from strongroom.errors import StrongroomError

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class Output(StrEnum):
    json = "json"
    table = "table"


OutputOption = typer.Option(Output.json, "--output", "-o", help="json (default) or table.")


def emit(data: Any, output: Output) -> None:
    if output is Output.json:
        typer.echo(json.dumps(data, indent=2))
        return
    rows = data if isinstance(data, list) else [data]
    table = Table()
    columns: list[str] = []
    for row in rows:
        for key, value in row.items():
            if key not in columns and not isinstance(value, dict | list):
                columns.append(key)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    Console(highlight=False, soft_wrap=True).print(table)


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def wire(item: Any) -> Any:
    """An SDK enum member's wire value (``str()`` of one is its Python name)."""
    return getattr(item, "value", item)


def fail(code: str, message: str) -> NoReturn:
    err_console.print(f"({code}) {message}", markup=False)
    raise typer.Exit(1)


@contextmanager
def errors(
    translate: Callable[[Exception], tuple[str, str] | None] | None = None,
) -> Iterator[None]:
    """Turns domain (and, through ``translate``, client) errors into ``(Code) message``."""
    try:
        yield
    except StrongroomError as exc:
        fail(exc.inner or exc.code, exc.message)
    except Exception as exc:
        found = translate(exc) if translate else None
        if found is None:
            raise
        fail(*found)
