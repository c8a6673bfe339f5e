"""SQLite: the objects table is stored in its key's order (``WITHOUT ROWID``), so that finding an
object walks one b-tree instead of two (its primary-key index, then the row that points to).
Every read of a secret, key or certificate starts there (bench/README.md, "Objects in key
order", has the figures of the layouts compared).

The versions table keeps its rowid: a new version is appended at its end; stored in its key's
order instead, it would be inserted at a random place of a table of large rows, which made a
SET slower. PostgreSQL's tables are heaps with separate indexes either way: this revision
changes nothing there.

SQLite cannot change a table's storage in place: a new table is made and filled, the old one
dropped and the new one renamed, in the one transaction that every revision of an upgrade runs
in (``env.py``), with foreign keys off (dropping ``objects`` with them on would delete every
version and policy through their ``ON DELETE CASCADE``). The old table's pages stay in the file
for SQLite to reuse.

Revision ID: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLS = "vault_id, kind, lname, name, latest_version, deleted_date, scheduled_purge_date"
_OBJECTS = """CREATE TABLE objects_new (
    vault_id TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE, kind TEXT NOT NULL,
    lname TEXT NOT NULL, name TEXT NOT NULL, latest_version TEXT NOT NULL,
    deleted_date INTEGER, scheduled_purge_date INTEGER,
    PRIMARY KEY (vault_id, kind, lname)){storage}"""


def _rebuild(storage: str) -> None:
    bind = op.get_bind()
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("revision 0007 rebuilds the objects table with foreign keys off")
    op.execute(_OBJECTS.format(storage=storage))
    op.execute(
        f"INSERT INTO objects_new ({_COLS}) SELECT {_COLS} FROM objects "
        "ORDER BY vault_id, kind, lname"
    )
    op.execute("DROP TABLE objects")
    op.execute("ALTER TABLE objects_new RENAME TO objects")
    op.execute(
        "CREATE INDEX objects_purge ON objects (scheduled_purge_date) "
        "WHERE scheduled_purge_date IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX objects_deleted ON objects (vault_id, kind, lname) "
        "WHERE deleted_date IS NOT NULL"
    )
    broken = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"revision 0007 left rows without their objects: {broken[:5]}")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(" WITHOUT ROWID")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild("")
