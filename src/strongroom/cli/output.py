"""Printing results as JSON (camelCase, like az) or a table, and errors as ``(Code) message``.

Every command that prints a result takes az's ``--query`` (JMESPath, applied to the JSON
document before it is printed, as JSON or as a table) and ``--only-show-errors`` (no warnings,
notes or progress bars on standard error): ``common_options`` adds both to each such command,
``emit`` and ``note`` apply them."""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NoReturn, get_type_hints

import jmespath
import typer
from jmespath.exceptions import JMESPathError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from strongroom.errors import StrongroomError

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class Output(StrEnum):
    json = "json"
    table = "table"


OutputOption = typer.Option(Output.json, "--output", "-o", help="json (default) or table.")


@dataclass
class Common:
    """What this run of a command was given of the options every printing command takes."""

    query: Any = None  # a compiled JMESPath expression
    only_show_errors: bool = False
    json_asked: bool = False  # --output json given explicitly (a script reads it)


common = Common()


def _query(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return jmespath.compile(text)
    except JMESPathError as exc:
        fail("BadParameter", f"--query is not a JMESPath expression: {str(exc).splitlines()[0]}")


def _with_common(callback: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(callback, eval_str=True)

    @functools.wraps(callback)
    def wrapper(
        *args: Any, _ctx: typer.Context, query: str | None, only_show_errors: bool, **kwargs: Any
    ) -> Any:
        source = _ctx.get_parameter_source("output")
        common.query = _query(query)  # a bad query fails before the command does anything
        common.only_show_errors = only_show_errors
        common.json_asked = kwargs.get("output") is Output.json and getattr(
            source, "name", "DEFAULT"
        ) in ("COMMANDLINE", "ENVIRONMENT")
        return callback(*args, **kwargs)

    keyword = inspect.Parameter.KEYWORD_ONLY
    extra = [
        inspect.Parameter("_ctx", keyword, annotation=typer.Context),
        inspect.Parameter(
            "query", keyword, annotation=str | None,
            default=typer.Option(None, "--query", help="JMESPath query string, as az's."),
        ),
        inspect.Parameter(
            "only_show_errors", keyword, annotation=bool,
            default=typer.Option(
                False, "--only-show-errors", help="Only show errors: no warnings or progress."
            ),
        ),
    ]  # fmt: skip
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *extra]
    )
    wrapper.__annotations__ = {
        **get_type_hints(callback), **{p.name: p.annotation for p in extra}
    }  # fmt: skip
    return wrapper


def common_options(app: typer.Typer) -> None:
    """Gives every command of ``app`` and its sub-apps that takes ``--output`` az's ``--query``
    and ``--only-show-errors`` too (call it once all commands are registered)."""
    for command in app.registered_commands:
        callback = command.callback
        if callback is not None and "output" in inspect.signature(callback).parameters:
            command.callback = _with_common(callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            common_options(group.typer_instance)


def note(text: str) -> None:
    """A warning or note on standard error, unless --only-show-errors."""
    if not common.only_show_errors:
        err_console.print(text, markup=False)


def progress_shown() -> bool:
    """Whether long work shows a progress bar: on a terminal, unless --only-show-errors or an
    explicit ``--output json`` (a script is reading)."""
    return err_console.is_terminal and not (common.only_show_errors or common.json_asked)


@contextmanager
def progress(label: str) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar on standard error (standard output keeps the result), where
    ``progress_shown``; it yields ``update(phase, done, total)``."""
    if not progress_shown():
        yield lambda phase, done, total: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(phase: str, done: int, total: int) -> None:
            bar.update(task, description=f"{label}: {phase}", completed=done, total=total)

        yield update


def emit(data: Any, output: Output) -> None:
    if common.query is not None:
        data = common.query.search(data)
    if output is Output.json:
        typer.echo(json.dumps(data, indent=2))
        return
    rows = data if isinstance(data, list) else [data]
    # az prints what is not an object (a query's string, number, list of them) as "Result"
    rows = [row if isinstance(row, dict) else {"Result": row} for row in rows]
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
