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


def _fill_0006(path: Path) -> list[tuple[str, str, str, str, int]]:
    """A file at revision 0006 holding two vaults' objects, their versions (numbered across
    objects, as that revision's rowid did) and a policy; returns the versions in seq order."""
    command.upgrade(migrations._config(migrations.sqlalchemy_url(None, path)), "0006")
    versions = []
    with sqlite3.connect(path) as conn:
        for vault in ("va", "vb"):
            conn.execute(
                "INSERT INTO vaults (id, name, lname, domain_id, retention_days, "
                "purge_protection, wrapped_key, created) VALUES (?, ?, ?, 'd', 90, 0, x'00', 1)",
                (vault, vault, vault),
            )
        for i in range(30):  # versions of the objects interleaved, in seq order
            vault, name = ("va", "vb")[i % 2], f"s{i % 3}"
            version = f"{29 - i:032x}"  # later versions sort first by name
            conn.execute(
                "INSERT OR IGNORE INTO objects (vault_id, kind, lname, name, latest_version) "
                "VALUES (?, 'secret', ?, ?, '')",
                (vault, name, name.upper()),
            )
            conn.execute(
                "UPDATE objects SET latest_version=? WHERE vault_id=? AND lname=?",
                (version, vault, name),
            )
            conn.execute(
                "INSERT INTO versions (vault_id, kind, lname, version, created, updated, "
                "enabled, sealed) VALUES (?, 'secret', ?, ?, ?, ?, 1, ?)",
                (vault, name, version, i, i, bytes([i])),
            )
            versions.append((vault, name, version, i))
        conn.execute(
            "INSERT INTO policies (vault_id, kind, lname, body) VALUES ('va', 'secret', 's0', '{}')"
        )
    return versions


def test_objects_are_clustered_and_keep_their_versions(tmp_path: Path) -> None:
    """Revision 0007 rebuilds SQLite's objects table in its key's order: every object, version
    and policy stays, reads find them, and deleting an object still deletes its versions and
    policy (the foreign keys name the new table); downgrading gives the file back."""
    path = tmp_path / "old.db"
    versions = _fill_0006(path)
    with sqlite3.connect(path) as conn:
        objects = conn.execute("SELECT * FROM objects ORDER BY vault_id, lname").fetchall()
    store = SqliteStore(path)  # upgrades the file to HEAD
    try:
        for vault in ("va", "vb"):
            for name in ("s0", "s1", "s2"):
                expected = [(v[2], v[3]) for v in versions if v[:2] == (vault, name)]
                listed = store.reads.list_versions(vault, "secret", name, after=None, limit=100)
                assert [(r.version, r.created) for _, r in listed] == expected
                found = store.reads.get_current(vault, "secret", name, "")
                assert found is not None and found[1].version == expected[-1][0]
        store.transact(lambda tx: tx.purge_object("va", "secret", "s0")).result()
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        tables = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type='table'"))
        assert tables["objects"].endswith("WITHOUT ROWID")
        assert not tables["versions"].endswith("WITHOUT ROWID")
        assert conn.execute("SELECT * FROM objects ORDER BY vault_id, lname").fetchall() == [
            o for o in objects if o[:3] != ("va", "secret", "s0")
        ]
        counts = conn.execute(
            "SELECT count(*), coalesce(sum(lname='s0' AND vault_id='va'), 0) FROM versions"
        ).fetchone()
        assert counts == (30 - 5, 0)  # s0 of va (5 versions) went with its object
        assert conn.execute("SELECT count(*) FROM policies").fetchone() == (0,)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    command.downgrade(migrations._config(migrations.sqlalchemy_url(None, path)), "0006")
    with sqlite3.connect(path) as conn:
        assert (
            "WITHOUT ROWID"
            not in conn.execute("SELECT sql FROM sqlite_master WHERE name='objects'").fetchone()[0]
        )
        back = conn.execute(
            "SELECT vault_id, lname, version, created FROM versions ORDER BY seq"
        ).fetchall()
    assert back == [v for v in versions if v[:2] != ("va", "s0")]


def test_an_upgrade_that_fails_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """Every revision of an upgrade runs in one transaction: one failing at its end (here 0007,
    whose check finds a version without its object, after it has rebuilt the table) leaves the
    file at its revision, whole, with none of the failed revision's tables."""
    path = tmp_path / "old.db"
    _fill_0006(path)
    with sqlite3.connect(path) as conn:  # the sqlite3 module does not enforce foreign keys
        conn.execute(
            "INSERT INTO versions (vault_id, kind, lname, version, created, updated, enabled, "
            "sealed) VALUES ('va', 'secret', 'gone', 'v', 1, 1, 1, x'00')"
        )
        schema = conn.execute("SELECT * FROM sqlite_master ORDER BY name").fetchall()
        rows = {t: conn.execute(f"SELECT * FROM {t}").fetchall() for t in ("objects", "versions")}
    with pytest.raises(RuntimeError, match="without their objects"):
        SqliteStore(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0006",)
        assert conn.execute("SELECT * FROM sqlite_master ORDER BY name").fetchall() == schema
        for table, before in rows.items():
            assert conn.execute(f"SELECT * FROM {table}").fetchall() == before
