"""Alembic's environment for Strongroom's schema: run by ``strongroom.store.migrations`` with
the database URL in ``config.attributes["url"]`` (no alembic.ini)."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import NullPool

from strongroom.store.migrations import SETUP_LOCK

url: str = context.config.attributes["url"]
scheme, _, rest = url.partition("://")
if scheme == "postgresql+psycopg":
    import psycopg

    # libpq reads the URL itself: SQLAlchemy's parser knows one host, libpq several
    # (``host1:port1,host2:port2``, with ``target_session_attrs``: a primary and its standby).
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(f"postgresql://{rest}"),
        poolclass=NullPool,
    )
else:
    engine = create_engine(url, poolclass=NullPool)

    # The stdlib driver opens a transaction only before a row is written, so a schema statement
    # before that would commit alone: every revision of an upgrade runs in one transaction that
    # SQLAlchemy begins (BEGIN IMMEDIATE, holding the write lock), as on PostgreSQL, so that an
    # upgrade stopped half way leaves the file as it was.
    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


with engine.connect() as connection:
    context.configure(
        connection=connection, transaction_per_migration=False, transactional_ddl=True
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several processes may start on a new database at once: one migrates, the others
            # wait here and then find nothing left to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SETUP_LOCK})
        context.run_migrations()
engine.dispose()
