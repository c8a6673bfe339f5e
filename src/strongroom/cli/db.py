"""``strongroom db``: the database's schema version, and upgrading it.

SQLite (embedded, one server process) upgrades itself when opened. A PostgreSQL database is
shared by several processes, so a server refuses to start on a schema older or newer than it
knows, and ``strongroom db upgrade`` (once, with every server of the old release stopped or
compatible) brings it up to date.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from strongroom.cli.output import Output, OutputOption, emit, fail
from strongroom.cli.shared import DataDir, settings_for
from strongroom.config import DEFAULT_PORT
from strongroom.store.factory import describe_schema, upgrade_schema
from strongroom.store.migrations import HEAD

app = typer.Typer(help="The database: schema version and upgrades.", no_args_is_help=True)
DatabaseUrl = typer.Option(
    None,
    "--database-url",
    envvar="STRONGROOM_DATABASE_URL",
    help="PostgreSQL URL; without it, the SQLite file in the data dir.",
)


@app.command()
def status(
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
    output: Output = OutputOption,
) -> None:
    """The database's schema revision and the one this release needs."""
    settings = replace(settings_for(data_dir, DEFAULT_PORT), database_url=database_url)
    try:
        found = describe_schema(settings)
    except Exception as exc:
        fail("DatabaseError", f"Cannot read the database: {exc}")
    emit({**found, "releaseRevision": HEAD}, output)


@app.command()
def upgrade(
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
    output: Output = OutputOption,
) -> None:
    """Creates the schema in an empty database, or brings an older one up to date."""
    settings = replace(settings_for(data_dir, DEFAULT_PORT), database_url=database_url)
    try:
        upgrade_schema(settings)
        found = describe_schema(settings)
    except Exception as exc:
        fail("DatabaseError", f"Cannot upgrade the database: {exc}")
    emit({**found, "releaseRevision": HEAD}, output)
