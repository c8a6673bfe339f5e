"""Writes ``sqlite_head.sql``: the schema every migration in ``versions/`` makes, run in order on
a new SQLite file, which a new file then gets in one transaction (``store.sqlite``).

    python -m strongroom.store.migrations.freeze
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from strongroom.store import migrations

HEADER = f"""\
-- The schema of revision {migrations.HEAD} (store.migrations.HEAD) for a new SQLite file, made by
-- every migration in versions/ run in order; a new file gets it in one transaction, without
-- Alembic. tests/store/test_migrations.py checks that it matches what the migrations make;
-- regenerate it with: python -m strongroom.store.migrations.freeze
"""
TARGET = Path(__file__).with_name("sqlite_head.sql")


def schema_of(path: Path) -> list[str]:
    """The statements that make a file's tables and indexes, in the order they were made."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name != 'sqlite_sequence' "
            "ORDER BY rowid"
        ).fetchall()
    return [str(r[0]) for r in rows]


def migrated_schema() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "head.db"
        migrations.upgrade(migrations.sqlalchemy_url(None, path))
        return schema_of(path)


def main() -> None:
    TARGET.write_text(HEADER + "\n" + "".join(f"{s};\n" for s in migrated_schema()))
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
