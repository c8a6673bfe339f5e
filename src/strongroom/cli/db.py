"""``strongroom db``: the database's schema version, and upgrading it.

SQLite (embedded, one server process) upgrades itself when opened. A PostgreSQL database is
shared by several processes, so a server refuses to start on a schema older or newer than it
knows, and ``strongroom db upgrade`` (once, with every server of the old release stopped or
compatible) brings it up to date.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from strongroom.cli.output import Output, OutputOption, emit, fail
from strongroom.cli.shared import DataDir, settings_for
from strongroom.config import DEFAULT_PORT
from strongroom.store.migrations import HEAD

app = typer.Typer(help="The database: schema version and upgrades.", no_args_is_help=True)
DatabaseUrl = typer.Option(
    None,
    "--database-url",
    envvar="STRONGROOM_DATABASE_URL",
    help="PostgreSQL URL; without it, the SQLite file in the data dir.",
)


def _describe(url: str | None, path: Path) -> dict[str, object]:
    if url:
        from strongroom.store import postgres

        found, _ = postgres.revision(url)
        return {"backend": "postgresql", "revision": found}
    import sqlite3

    from strongroom.store.sqlite import _revision

    found = None
    if path.exists():
        with contextlib.closing(sqlite3.connect(path)) as conn:
            found = _revision(conn)
    return {"backend": "sqlite", "revision": found, "path": str(path)}


@app.command()
def status(
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
    output: Output = OutputOption,
) -> None:
    """The database's schema revision and the one this release needs."""
    settings = settings_for(data_dir, DEFAULT_PORT)
    try:
        found = _describe(database_url, settings.database)
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
    settings = settings_for(data_dir, DEFAULT_PORT)
    try:
        if database_url:
            from strongroom.store import postgres

            postgres.prepare(database_url, upgrade=True)
        else:
            from strongroom.store.sqlite import SqliteStore

            settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            SqliteStore(settings.database).close()
        found = _describe(database_url, settings.database)
    except Exception as exc:
        fail("DatabaseError", f"Cannot upgrade the database: {exc}")
    emit({**found, "releaseRevision": HEAD}, output)
