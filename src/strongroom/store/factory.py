"""Opening a store from settings: PostgreSQL when ``database_url`` names one, otherwise the
SQLite file in the data directory. The one place that knows which backends exist."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

from strongroom.config import Settings
from strongroom.store.base import Store
from strongroom.store.coordination import CommitCounters


def open_store(settings: Settings, counters: CommitCounters | None = None) -> Store:
    """The installation's store, its schema checked (SQLite: brought up to date).
    ``counters``: this process is one of several workers of one ``serve`` on the SQLite file."""
    if settings.database_url:
        from strongroom.store.postgres import PostgresStore

        return PostgresStore(settings.database_url)
    from strongroom.store.sqlite import SqliteStore

    return SqliteStore(settings.database, counters)


def describe_schema(settings: Settings) -> dict[str, Any]:
    """The backend and the schema revision its database is at (None: no schema yet); for
    PostgreSQL, whether the server reached takes no writes (``readOnly``: a standby)."""
    if settings.database_url:
        from strongroom.store import postgres

        return postgres.describe(settings.database_url)
    from strongroom.store.sqlite import revision

    path = settings.database
    at = None
    if path.exists():
        with contextlib.closing(sqlite3.connect(path)) as conn:
            at = revision(conn)
    return {"backend": "sqlite", "revision": at, "path": str(path)}


def upgrade_schema(settings: Settings) -> None:
    """Creates the schema in an empty database, or brings an older one up to date."""
    if settings.database_url:
        from strongroom.store import postgres

        postgres.prepare(settings.database_url, upgrade=True)
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    open_store(settings).close()
