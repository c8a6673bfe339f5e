"""Alembic's environment for Strongroom's schema: run by ``strongroom.store.migrations`` with
the database URL in ``config.attributes["url"]`` (no alembic.ini)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text
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
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=False)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several processes may start on a new database at once: one migrates, the others
            # wait here and then find nothing left to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SETUP_LOCK})
        context.run_migrations()
engine.dispose()
