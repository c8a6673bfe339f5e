"""Schema revisions (Alembic) on both backends: new databases get the newest, SQLite upgrades
itself, a PostgreSQL server refuses an older or newer schema and `strongroom db upgrade` brings
it up to date, and processes starting together on a new database migrate it once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from alembic import command

from strongroom.store import migrations
from strongroom.store.migrations import HEAD, SchemaMismatch
from strongroom.store.sqlite import SqliteStore
from tests import pg


def test_head_is_the_newest_revision() -> None:
    assert migrations.known_revisions()[-1] == HEAD


def test_sqlite_upgrades_an_older_file_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    command.upgrade(migrations._config(migrations.sqlalchemy_url(None, path)), "0001")
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)


def test_audit_rows_move_into_batches_and_back(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    url = migrations.sqlalchemy_url(None, path)
    command.upgrade(migrations._config(url), "0002")
    rows = [
        (1000 + i, "p", f"v{i % 3}", "SecretGet", f"/secrets/s{i}", 200, f"r{i}", "::1")
        for i in range(4500)  # three batches
    ]
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO audit (ts, principal, vault, operation, object_id, status, request_id,"
            " caller) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    store = SqliteStore(path)  # upgrades the file to HEAD
    try:
        # Records from before RBAC name no role assignment.
        assert [tuple(r) for r in store.reads.list_audit(None, 0, 10_000)] == [
            (*row, None) for row in rows
        ]
        assert [r.request_id for r in store.reads.list_audit("v1", 4000, 2)] == ["r3001", "r3004"]
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM audit_batches").fetchone() == (3,)
        assert conn.execute("SELECT name FROM sqlite_master WHERE name='audit'").fetchone() is None
    command.downgrade(migrations._config(url), "0002")
    with sqlite3.connect(path) as conn:
        back = conn.execute(
            "SELECT ts, principal, vault, operation, object_id, status, request_id, caller "
            "FROM audit ORDER BY seq"
        ).fetchall()
    assert back == rows


@pytest.fixture
def database() -> str:
    if not pg.available():
        if os.environ.get("STRONGROOM_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed; make test installs it")
    return pg.cluster().new_database("migrate")


def _db(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", "db", *args, "--output", "json"],
        env={**os.environ, "STRONGROOM_DATABASE_URL": url},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_postgres_refuses_an_older_schema_until_db_upgrade(database: str) -> None:
    from strongroom.store.postgres import PostgresStore

    command.upgrade(migrations._config(migrations.sqlalchemy_url(database)), "0001")
    with pytest.raises(SchemaMismatch, match=r"revision 0001.*strongroom db upgrade"):
        PostgresStore(database)
    assert '"revision": "0001"' in _db(database, "status").stdout
    upgraded = _db(database, "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f'"revision": "{HEAD}"' in upgraded.stdout
    PostgresStore(database).close()
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT to_regclass('audit_batches_by_time')").fetchone() != (None,)


def test_postgres_refuses_a_newer_schema(database: str) -> None:
    from strongroom.store.postgres import PostgresStore

    PostgresStore(database).close()
    with psycopg.connect(database) as conn:
        conn.execute("UPDATE alembic_version SET version_num='9999'")
    with pytest.raises(SchemaMismatch, match=r"9999.*Run a newer release"):
        PostgresStore(database)


def test_processes_starting_together_on_a_new_database_migrate_it_once(
    database: str, tmp_path: Path
) -> None:
    """Four administration commands at once on a new database: each opens the installation
    (schema, tenant, signing key); they must agree on one of each."""
    env = {**os.environ, "STRONGROOM_DATABASE_URL": database}
    command_ = [sys.executable, "-m", "strongroom.cli.main", "info", "--output", "json",
                "--data-dir", str(tmp_path / "data")]  # fmt: skip
    processes = [
        subprocess.Popen(command_, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, [e for _, e in outputs]
    tenants = {json.loads(out)["tenantId"] for out, _ in outputs}
    assert len(tenants) == 1
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]


def test_a_new_sqlite_file_gets_exactly_the_migrated_schema(tmp_path: Path) -> None:
    """sqlite_head.sql (a new file's schema in one step) is what the migrations make."""
    from strongroom.store.migrations import freeze

    SqliteStore(tmp_path / "new.db").close()
    assert freeze.schema_of(tmp_path / "new.db") == freeze.migrated_schema()
    with sqlite3.connect(tmp_path / "new.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)
    assert "alembic" not in subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from strongroom.store.sqlite import SqliteStore; "
         f"SqliteStore(Path({str(tmp_path / 'other.db')!r})).close(); print(sorted(sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
