"""Alembic's environment for Strongroom's schema: run by ``strongroom.store.migrations`` with
the database URL in ``config.attributes["url"]`` (no alembic.ini)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from strongroom.store.migrations import SETUP_LOCK

engine = create_engine(context.config.attributes["url"], poolclass=NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=False)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several processes may start on a new database at once: one migrates, the others
            # wait here and then find nothing left to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SETUP_LOCK})
        context.run_migrations()
engine.dispose()
