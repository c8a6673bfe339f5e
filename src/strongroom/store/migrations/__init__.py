"""Schema migrations, with Alembic, for both backends: ``versions/`` holds one revision per
schema change, each writing SQLite's or PostgreSQL's form of it.

- A new database (no tables) is brought to the newest revision when a store first opens it.
- SQLite is embedded (one server process per file): an older file is upgraded when opened.
- PostgreSQL is shared by several processes, so a server refuses to start on an older schema
  and says to run ``strongroom db upgrade``; on a newer or unknown one it says to run a newer
  release. Several processes starting on a new database at once migrate it once (an advisory
  lock in ``env.py``).
- A database made before Strongroom used Alembic (SQLite, ``meta.schema_version`` 1-4) is
  brought to version 4 by the old steps in ``store.sqlite``, then stamped as revision 0001.

Opening a store at the newest revision reads ``alembic_version`` with the store's own driver
and does not import Alembic at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

HEAD = "0007"  # the newest revision in versions/ (tests/store checks that they agree)
LEGACY = "0001"  # what a database made before Alembic is, once at schema version 4
SETUP_LOCK = 0x5354524F  # PostgreSQL advisory lock held while a database is migrated


class SchemaMismatch(Exception):
    pass


def sqlalchemy_url(database_url: str | None, path: Path | None = None) -> str:
    """SQLAlchemy's URL for a store: psycopg 3 for PostgreSQL, the file for SQLite."""
    if database_url:
        scheme, _, rest = database_url.partition("://")
        if scheme in ("postgresql", "postgres"):
            return f"postgresql+psycopg://{rest}"
        return database_url
    assert path is not None
    return f"sqlite:///{path}"


def _config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["url"] = url
    return config


def known_revisions() -> list[str]:
    """Every revision this release has, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config("sqlite://"))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def upgrade(url: str) -> None:
    from alembic import command

    command.upgrade(_config(url), "head")


def stamp(url: str, revision: str) -> None:
    from alembic import command

    command.stamp(_config(url), revision)


def check(found: str | None, *, where: str, may_upgrade: bool) -> bool:
    """Whether a database at revision ``found`` (None: new) needs upgrading; raises
    ``SchemaMismatch`` when it must not be opened."""
    if found == HEAD:
        return False
    if found is None:
        return True
    if found not in known_revisions():
        raise SchemaMismatch(
            f"{where} has schema revision {found}, which this Strongroom release does not know "
            f"(its newest is {HEAD}): it was made by a newer release. Run a newer release."
        )
    if not may_upgrade:
        raise SchemaMismatch(
            f"{where} has schema revision {found}; this release needs {HEAD}. Run "
            "`strongroom db upgrade` (with STRONGROOM_DATABASE_URL or --database-url set) once, "
            "then start the servers."
        )
    return True
