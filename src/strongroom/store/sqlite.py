"""SQLite backend: WAL, synchronous=FULL, one writer thread that groups commits.

Reads use the stdlib driver directly on the caller's thread (a point read is ~8 µs; a hop to a
thread pool would cost more than the read). Writes go to one thread that owns the write
connection. It takes every transaction waiting in its queue, runs each inside its own SAVEPOINT
(a failing one rolls back alone), commits once, and only then resolves the futures: each caller
is answered after its data is durable, and concurrent writers share one fsync.

Several server processes forked from one ``serve`` (``--workers``) may share the file. They
take the write lock in turn through a file lock (a waiter wakes when it is released; SQLite's
own busy handler would poll, sleeping milliseconds), and each counts its commits in memory
they share (``CommitCounters``), so that a process knows when its caches may be out of date.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import queue
import sqlite3
import stat
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from strongroom.errors import StoreUnavailable
from strongroom.store import migrations
from strongroom.store.base import (
    AuditRecord,
    DomainKeyRecord,
    ObjectRecord,
    PrincipalRecord,
    Tx,
    VaultRecord,
    VersionRecord,
    claim_pending_audit,
    pack_audit,
    unpack_audit,
    vault_pattern,
)

SchemaMismatch = migrations.SchemaMismatch
T = TypeVar("T")
log = logging.getLogger(__name__)

_VERSION_COLS = (
    "vault_id, kind, lname, version, created, updated, enabled, nbf, exp, "
    "content_type, tags, sealed, managed, extra"
)
# Before Alembic: schema changes by the version they lead to (store.migrations, LEGACY).
_LEGACY_VERSION = 4
_MIGRATIONS = {
    2: ["ALTER TABLE versions ADD COLUMN extra TEXT"],
    3: [
        "CREATE TABLE policies (vault_id TEXT NOT NULL, kind TEXT NOT NULL, lname TEXT NOT NULL,"
        " body TEXT NOT NULL, PRIMARY KEY (vault_id, kind, lname),"
        " FOREIGN KEY (vault_id, kind, lname) REFERENCES objects (vault_id, kind, lname)"
        " ON DELETE CASCADE)"
    ],
    4: [
        "CREATE TABLE audit (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, principal TEXT,"
        " vault TEXT, operation TEXT NOT NULL, object_id TEXT, status INTEGER NOT NULL,"
        " request_id TEXT, caller TEXT)",
        "CREATE INDEX audit_by_time ON audit (ts)",
    ],
}
_INSERT_AUDIT = "INSERT INTO audit_batches (min_ts, max_ts, vaults, records) VALUES (?, ?, ?, ?)"
# Batches that may hold records of ``vault`` (None: any) at or after ``since``, oldest first.
_AUDIT_BATCHES = (
    "SELECT records FROM audit_batches WHERE max_ts>=? "
    "AND (CAST(? AS TEXT) IS NULL OR vaults LIKE ? ESCAPE '\\') ORDER BY seq"
)
_OBJECT_COLS = "vault_id, kind, lname, name, latest_version, deleted_date, scheduled_purge_date"


def _version(row: Any) -> VersionRecord:
    return VersionRecord(
        row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), row[7], row[8],
        row[9], row[10], bytes(row[11]), bool(row[12]), row[13],
    )  # fmt: skip


def _vault(row: Any) -> VaultRecord:
    return VaultRecord(
        row[0], row[1], row[2], row[3], bool(row[4]), bytes(row[5]), row[6], bool(row[7])
    )


def _principal(row: Any) -> PrincipalRecord:
    return PrincipalRecord(*row)


def _domain_key(row: Any) -> DomainKeyRecord:
    return DomainKeyRecord(row[0], row[1], bytes(row[2]), row[3])


_SET_LATEST_ANY = (
    "UPDATE objects SET latest_version=? WHERE vault_id=? AND kind=? AND lname=? "
    "AND deleted_date IS NULL RETURNING name"
)
# Objects whose latest version is managed (a certificate's key or secret) take new versions
# only from their certificate.
_SET_LATEST = _SET_LATEST_ANY.replace(
    " RETURNING",
    " AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.vault_id=objects.vault_id AND "
    "v.kind=objects.kind AND v.lname=objects.lname AND v.version=objects.latest_version "
    "AND v.managed=1) RETURNING",
)
# The same, for the usual case of a caller naming the object exactly as it is stored: without
# RETURNING, which costs as much as the UPDATE itself (20.4 -> 9.7 us here without it).
_SET_LATEST_NAMED = _SET_LATEST.replace(" RETURNING name", " AND name=?")
_PRINCIPAL_COLS = "client_id, name, secret_hash, certificate_pem, certificate_thumbprint, created"
_VAULT_COLS = (
    "id, name, domain_id, retention_days, purge_protection, wrapped_key, created, open_access"
)
_O_COLS = ", ".join(f"o.{c.strip()}" for c in _OBJECT_COLS.split(","))
_V_COLS = ", ".join(f"v.{c.strip()}" for c in _VERSION_COLS.split(","))
# One statement for the hottest read: an object and one version ("" = its latest).
_CURRENT = (
    f"SELECT {_O_COLS}, {_V_COLS} FROM objects o JOIN versions v "
    "ON v.vault_id=o.vault_id AND v.kind=o.kind AND v.lname=o.lname "
    "AND v.version=(CASE WHEN ?1='' THEN o.latest_version ELSE ?1 END) "
    "WHERE o.vault_id=?2 AND o.kind=?3 AND o.lname=?4"
)


def unavailable(exc: sqlite3.Error) -> StoreUnavailable:
    """A driver error of the machine's (a full disk, an I/O error, a damaged file) as the
    domain's: the request failed whole and may succeed later."""
    return StoreUnavailable(
        f"The database could not be read or written ({str(exc)[:100]}). Nothing of this "
        "request was written; try again once the server's disk or database is healthy."
    )


class _Guarded:
    """sqlite3's ``execute``, with errors of the machine (``OperationalError``: disk full, I/O
    error; ``DatabaseError``: a damaged file) raised as ``StoreUnavailable``. Constraint
    errors (``IntegrityError``) and programming errors stay what they are: they are bugs."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise
        except sqlite3.DatabaseError as exc:
            raise unavailable(exc) from exc


class _Reads:
    def __init__(self, conn: Any):
        self._c = conn  # a _Guarded sqlite3 connection, or the PostgreSQL backend's adapter

    def get_meta(self, key: str) -> str | None:
        row = self._c.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def list_meta(self, prefix: str) -> list[tuple[str, str]]:
        rows = self._c.execute(
            "SELECT key, value FROM meta WHERE substr(key, 1, ?)=? ORDER BY key",
            (len(prefix), prefix),
        ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def get_vault(self, name: str) -> VaultRecord | None:
        row = self._c.execute(
            f"SELECT {_VAULT_COLS} FROM vaults WHERE lname=?", (name.lower(),)
        ).fetchone()
        return None if row is None else _vault(row)

    def get_vault_by_id(self, vault_id: str) -> VaultRecord | None:
        row = self._c.execute(
            f"SELECT {_VAULT_COLS} FROM vaults WHERE id=?", (vault_id,)
        ).fetchone()
        return None if row is None else _vault(row)

    def list_vaults(self) -> list[VaultRecord]:
        rows = self._c.execute(f"SELECT {_VAULT_COLS} FROM vaults ORDER BY lname").fetchall()
        return [_vault(r) for r in rows]

    def get_principal(self, client_id: str) -> PrincipalRecord | None:
        row = self._c.execute(
            f"SELECT {_PRINCIPAL_COLS} FROM principals WHERE client_id=?",
            (client_id,),
        ).fetchone()
        return None if row is None else _principal(row)

    def get_principal_by_name(self, name: str) -> PrincipalRecord | None:
        row = self._c.execute(
            f"SELECT {_PRINCIPAL_COLS} FROM principals WHERE name=?",
            (name,),
        ).fetchone()
        return None if row is None else _principal(row)

    def list_principals(self) -> list[PrincipalRecord]:
        rows = self._c.execute(f"SELECT {_PRINCIPAL_COLS} FROM principals ORDER BY name").fetchall()
        return [_principal(r) for r in rows]

    def get_domain_key(self, domain_id: str, version: str) -> DomainKeyRecord | None:
        row = self._c.execute(
            "SELECT domain_id, version, wrapped_key, created FROM domain_keys "
            "WHERE domain_id=? AND version=?",
            (domain_id, version),
        ).fetchone()
        return None if row is None else _domain_key(row)

    def list_domain_keys(self, domain_id: str) -> list[DomainKeyRecord]:
        rows = self._c.execute(
            "SELECT domain_id, version, wrapped_key, created FROM domain_keys "
            "WHERE domain_id=? ORDER BY seq",
            (domain_id,),
        ).fetchall()
        return [_domain_key(r) for r in rows]

    def current_domain_key(self, domain_id: str) -> DomainKeyRecord | None:
        row = self._c.execute(
            "SELECT domain_id, version, wrapped_key, created FROM domain_keys "
            "WHERE domain_id=? ORDER BY seq DESC LIMIT 1",
            (domain_id,),
        ).fetchone()
        return None if row is None else _domain_key(row)

    def get_object(self, vault_id: str, kind: str, lname: str) -> ObjectRecord | None:
        row = self._c.execute(
            f"SELECT {_OBJECT_COLS} FROM objects WHERE vault_id=? AND kind=? AND lname=?",
            (vault_id, kind, lname),
        ).fetchone()
        return None if row is None else ObjectRecord(*row)

    def get_version(
        self, vault_id: str, kind: str, lname: str, version: str
    ) -> VersionRecord | None:
        row = self._c.execute(
            f"SELECT {_VERSION_COLS} FROM versions "
            "WHERE vault_id=? AND kind=? AND lname=? AND version=?",
            (vault_id, kind, lname, version),
        ).fetchone()
        return None if row is None else _version(row)

    def get_current(
        self, vault_id: str, kind: str, lname: str, version: str
    ) -> tuple[ObjectRecord, VersionRecord] | None:
        row = self._c.execute(_CURRENT, (version, vault_id, kind, lname)).fetchone()
        return None if row is None else (ObjectRecord(*row[:7]), _version(row[7:]))

    def list_objects(
        self, vault_id: str, kind: str, *, deleted: bool, after: str | None, limit: int
    ) -> list[tuple[ObjectRecord, VersionRecord]]:
        rows = self._c.execute(
            f"SELECT {_O_COLS}, {_V_COLS} FROM objects o JOIN versions v "
            "ON v.vault_id=o.vault_id AND v.kind=o.kind AND v.lname=o.lname "
            "AND v.version=o.latest_version "
            "WHERE o.vault_id=? AND o.kind=? AND (o.deleted_date IS NOT NULL)=? AND o.lname>? "
            "ORDER BY o.lname LIMIT ?",
            (vault_id, kind, deleted, after or "", limit),
        ).fetchall()
        return [(ObjectRecord(*r[:7]), _version(r[7:])) for r in rows]

    def list_versions(
        self, vault_id: str, kind: str, lname: str, *, after: int | None, limit: int
    ) -> list[tuple[int, VersionRecord]]:
        rows = self._c.execute(
            f"SELECT seq, {_VERSION_COLS} FROM versions "
            "WHERE vault_id=? AND kind=? AND lname=? AND seq>? ORDER BY seq LIMIT ?",
            (vault_id, kind, lname, after or 0, limit),
        ).fetchall()
        return [(r[0], _version(r[1:])) for r in rows]

    def all_versions(self, vault_id: str, kind: str, lname: str) -> list[VersionRecord]:
        rows = self._c.execute(
            f"SELECT {_VERSION_COLS} FROM versions WHERE vault_id=? AND kind=? AND lname=? "
            "ORDER BY seq",
            (vault_id, kind, lname),
        ).fetchall()
        return [_version(r) for r in rows]

    def get_policy(self, vault_id: str, kind: str, lname: str) -> str | None:
        row = self._c.execute(
            "SELECT body FROM policies WHERE vault_id=? AND kind=? AND lname=?",
            (vault_id, kind, lname),
        ).fetchone()
        return None if row is None else str(row[0])

    def list_policies(self, kind: str) -> list[tuple[str, str, str]]:
        rows = self._c.execute(
            "SELECT p.vault_id, p.lname, p.body FROM policies p JOIN objects o "
            "ON o.vault_id=p.vault_id AND o.kind=p.kind AND o.lname=p.lname "
            "WHERE p.kind=? AND o.deleted_date IS NULL",
            (kind,),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def list_audit(self, vault: str | None, since: int, limit: int) -> list[AuditRecord]:
        found: list[AuditRecord] = []
        if limit <= 0:
            return found
        pattern = None if vault is None else vault_pattern(vault)
        for (blob,) in self._c.execute(_AUDIT_BATCHES, (since, pattern, pattern)):
            for record in unpack_audit(bytes(blob)):
                if record.ts >= since and (vault is None or record.vault == vault):
                    found.append(record)
                    if len(found) == limit:
                        return found
        return found

    def expired_deletions(self, now: int, limit: int) -> list[ObjectRecord]:
        rows = self._c.execute(
            f"SELECT {_OBJECT_COLS} FROM objects WHERE scheduled_purge_date IS NOT NULL "
            "AND scheduled_purge_date<=? LIMIT ?",
            (now, limit),
        ).fetchall()
        return [ObjectRecord(*r) for r in rows]

    def count_objects(self, vault_id: str) -> int:
        row = self._c.execute("SELECT count(*) FROM objects WHERE vault_id=?", (vault_id,))
        return int(row.fetchone()[0])


class _Tx(_Reads):
    revoked = False  # this transaction deleted a principal
    def set_meta(self, key: str, value: str) -> None:
        self._c.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    def insert_audit(self, records: list[AuditRecord]) -> None:
        if records:
            self._c.execute(_INSERT_AUDIT, pack_audit(records))

    def delete_meta(self, key: str) -> None:
        self._c.execute("DELETE FROM meta WHERE key=?", (key,))

    def insert_vault(self, vault: VaultRecord) -> None:
        self._c.execute(
            "INSERT INTO vaults (id, name, lname, domain_id, retention_days, purge_protection, "
            "wrapped_key, created, open_access) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                vault.id, vault.name, vault.name.lower(), vault.domain_id, vault.retention_days,
                int(vault.purge_protection), vault.wrapped_key, vault.created,
                int(vault.open_access),
            ),
        )  # fmt: skip

    def set_vault_open_access(self, vault_id: str, open_access: bool) -> None:
        self._c.execute("UPDATE vaults SET open_access=? WHERE id=?", (int(open_access), vault_id))

    def delete_vault(self, vault_id: str) -> None:
        prefix = f"vault/{vault_id}/"
        self._c.execute("DELETE FROM meta WHERE substr(key, 1, ?)=?", (len(prefix), prefix))
        self._c.execute("DELETE FROM vaults WHERE id=?", (vault_id,))

    def insert_principal(self, principal: PrincipalRecord) -> None:
        self._c.execute(
            "INSERT INTO principals (client_id, name, secret_hash, certificate_pem, "
            "certificate_thumbprint, created) VALUES (?, ?, ?, ?, ?, ?)",
            (
                principal.client_id, principal.name, principal.secret_hash,
                principal.certificate_pem, principal.certificate_thumbprint, principal.created,
            ),
        )  # fmt: skip

    def delete_principal(self, client_id: str) -> None:
        self._c.execute("DELETE FROM principals WHERE client_id=?", (client_id,))
        self.revoked = True  # the store tells every process once this commits

    def insert_domain_key(self, key: DomainKeyRecord) -> None:
        self._c.execute(
            "INSERT INTO domain_keys (domain_id, version, wrapped_key, created) VALUES (?,?,?,?)",
            (key.domain_id, key.version, key.wrapped_key, key.created),
        )

    def delete_domain_key(self, domain_id: str, version: str) -> None:
        self._c.execute(
            "DELETE FROM domain_keys WHERE domain_id=? AND version=?", (domain_id, version)
        )

    def insert_object(self, obj: ObjectRecord) -> None:
        self._c.execute(
            f"INSERT INTO objects ({_OBJECT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                obj.vault_id, obj.kind, obj.lname, obj.name, obj.latest_version,
                obj.deleted_date, obj.scheduled_purge_date,
            ),
        )  # fmt: skip

    def set_latest(
        self,
        vault_id: str,
        kind: str,
        lname: str,
        version: str,
        *,
        managed: bool = False,
        name: str | None = None,
    ) -> str | None:
        if name is not None and not managed:
            named = self._c.execute(_SET_LATEST_NAMED, (version, vault_id, kind, lname, name))
            if named.rowcount == 1:
                return name
        row = self._c.execute(
            _SET_LATEST_ANY if managed else _SET_LATEST, (version, vault_id, kind, lname)
        ).fetchone()
        return None if row is None else str(row[0])

    def insert_version(self, version: VersionRecord) -> None:
        self._c.execute(
            f"INSERT INTO versions ({_VERSION_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                version.vault_id, version.kind, version.lname, version.version, version.created,
                version.updated, int(version.enabled), version.nbf, version.exp,
                version.content_type, version.tags, version.sealed, int(version.managed),
                version.extra,
            ),
        )  # fmt: skip

    def update_version(self, version: VersionRecord) -> None:
        self._c.execute(
            "UPDATE versions SET updated=?, enabled=?, nbf=?, exp=?, content_type=?, tags=?, "
            "extra=?, sealed=? WHERE vault_id=? AND kind=? AND lname=? AND version=?",
            (
                version.updated, int(version.enabled), version.nbf, version.exp,
                version.content_type, version.tags, version.extra, version.sealed,
                version.vault_id, version.kind, version.lname, version.version,
            ),
        )  # fmt: skip

    def set_deleted(
        self, vault_id: str, kind: str, lname: str, deleted: int | None, purge: int | None
    ) -> None:
        self._c.execute(
            "UPDATE objects SET deleted_date=?, scheduled_purge_date=? "
            "WHERE vault_id=? AND kind=? AND lname=?",
            (deleted, purge, vault_id, kind, lname),
        )

    def set_policy(self, vault_id: str, kind: str, lname: str, body: str) -> None:
        self._c.execute(
            "INSERT INTO policies (vault_id, kind, lname, body) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (vault_id, kind, lname) DO UPDATE SET body=excluded.body",
            (vault_id, kind, lname, body),
        )

    def purge_object(self, vault_id: str, kind: str, lname: str) -> None:
        args = (vault_id, kind, lname)
        self._c.execute("DELETE FROM policies WHERE vault_id=? AND kind=? AND lname=?", args)
        self._c.execute("DELETE FROM versions WHERE vault_id=? AND kind=? AND lname=?", args)
        self._c.execute("DELETE FROM objects WHERE vault_id=? AND kind=? AND lname=?", args)


def _connect(path: Path, busy_ms: int = 10_000) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _revision(conn: sqlite3.Connection) -> str | None:
    table = "SELECT name FROM sqlite_master WHERE name=?"
    if conn.execute(table, ("alembic_version",)).fetchone() is None:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


def _legacy_upgrade(conn: sqlite3.Connection, path: Path) -> None:
    """A database from before Alembic: its old steps up to version 4 (= revision 0001)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        current = _LEGACY_VERSION if found is None else int(found[0])
        if current > _LEGACY_VERSION:
            raise SchemaMismatch(
                f"database {path} has schema version {current}, which this Strongroom release "
                "does not know. Run a newer release."
            )
        for version in range(current + 1, _LEGACY_VERSION + 1):
            for statement in _MIGRATIONS[version]:
                conn.execute(statement)
        conn.execute("DELETE FROM meta WHERE key='schema_version'")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _private_files(path: Path) -> None:
    """The database file is made 0600 (SQLite gives its -wal and -shm files the database's
    mode); files an earlier release left readable by others are made private."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
            if mode & 0o077:
                file.chmod(0o600)
                log.warning("Made %s private (mode %04o -> 0600).", file, mode)
        except FileNotFoundError:
            continue


def _prepare(path: Path) -> None:
    """Brings the file to the newest revision (SQLite is embedded: it upgrades itself)."""
    setup = _connect(path)
    try:
        found = _revision(setup)
        if found == migrations.HEAD:
            return
        legacy = found is None and (
            setup.execute("SELECT name FROM sqlite_master WHERE name='meta'").fetchone() is not None
        )
        if legacy:
            _legacy_upgrade(setup, path)
    finally:
        setup.close()
    url = migrations.sqlalchemy_url(None, path)
    if legacy:
        migrations.stamp(url, migrations.LEGACY)
        found = migrations.LEGACY
    if migrations.check(found, where=f"database {path}", may_upgrade=True):
        migrations.upgrade(url)


_Outcome = tuple[bool, Any]


def _run_jobs(conn: sqlite3.Connection, tx: _Tx, fns: list[Callable[[Tx], Any]]) -> list[_Outcome]:
    """Runs each job in its own SAVEPOINT in the open transaction; a failure rolls back alone."""
    results: list[_Outcome] = []
    for fn in fns:
        conn.execute("SAVEPOINT job")
        try:
            results.append((True, fn(tx)))
            conn.execute("RELEASE job")
        except Exception as exc:  # handed to the caller's future
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            results.append((False, exc))
    return results


def _run_batch(conn: sqlite3.Connection, tx: _Tx, fns: list[Callable[[Tx], Any]]) -> list[_Outcome]:
    """Runs the jobs in the transaction the caller opened (BEGIN IMMEDIATE).

    Optimistically without a savepoint per job (two statements fewer each); if any job fails,
    the batch's work is rolled back to a savepoint and every job runs again in its own. The
    transaction, and with it the write lock, is kept throughout. Jobs only act through ``tx``,
    so running one again after a rollback is safe.
    """
    conn.execute("SAVEPOINT batch")
    results: list[_Outcome] = []
    try:
        for fn in fns:
            results.append((True, fn(tx)))
        conn.execute("RELEASE batch")
        return results
    except Exception:  # retried below, one savepoint per job
        conn.execute("ROLLBACK TO batch")
        conn.execute("RELEASE batch")
    return _run_jobs(conn, tx, fns)


def _busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


def _commit(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("COMMIT")
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _release(batch: list[tuple[Any, Any, Any]]) -> None:
    """The audit records of a group that did not commit may go with a later transaction."""
    for _, _, pending in batch:
        if pending is not None:
            pending.claimed = False


def _settle(futures: list[Any], results: list[_Outcome]) -> None:
    for fut, (ok, value) in zip(futures, results, strict=True):
        if fut.cancelled():  # its caller gave up (a cancelled request, a loop shutting down)
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


class CommitCounters:
    """How many transactions each server process sharing one SQLite file has committed, in an
    anonymous shared mapping that the parent makes before forking them (``serve --workers``).

    A process adds one to its own count after every commit, before any of its callers is
    answered. A cache in another process compares the sum of the others' counts before each
    use and drops everything when it changed: a read that starts after a write was answered
    then never sees the value that write replaced.
    """

    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError("at least one worker")
        self.workers = workers
        self._mem = mmap.mmap(-1, 8 * workers)  # MAP_SHARED: forked children share it
        self._all = struct.Struct(f"<{workers}Q")
        self._one = struct.Struct("<Q")
        self._index = 0
        self._mine = 0
        self._bumping = threading.Lock()  # the loop and the writer thread both commit

    def claim(self, index: int) -> None:
        """Makes this process worker ``index`` (after the fork, in the child)."""
        if not 0 <= index < self.workers:
            raise ValueError(f"worker {index} of {self.workers}")
        self._index = index
        self._mine = self._one.unpack_from(self._mem, 8 * index)[0]

    def bump(self) -> None:
        with self._bumping:
            self._mine += 1
            self._one.pack_into(self._mem, 8 * self._index, self._mine)

    def others(self) -> int:
        """The sum of the other processes' counts: it changes when any of them commits. One
        snapshot of every count, this process's own taken out of it: a commit of this process
        landing meanwhile cannot hide another's."""
        counts = self._all.unpack_from(self._mem)
        total: int = sum(counts) - counts[self._index]
        return total


class _RevocationMark:
    """Eight bytes in a file beside the database that every process (servers, workers,
    administration commands) maps: a transaction that deleted a principal writes new random
    bytes there after its COMMIT, so a reader comparing them with what it saw last knows, for
    the cost of a memory read, that it must check its principals again. Random rather than a
    count, so that two processes marking at once need no lock to change it."""

    def __init__(self, path: Path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < 8:
                os.pwrite(fd, os.urandom(8), 0)
            self._mem = mmap.mmap(fd, 8)
        finally:
            os.close(fd)

    def read(self) -> int:
        value: int = _MARK.unpack_from(self._mem)[0]
        return value

    def mark(self) -> None:
        self._mem[:8] = os.urandom(8)

    def close(self) -> None:
        self._mem.close()


_MARK = struct.Struct("<Q")


class _FileLock:
    """An exclusive ``flock`` on a file next to the database. Each instance opens its own
    descriptor, so two instances exclude each other even inside one process."""

    def __init__(self, path: Path):
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self, blocking: bool = True) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


class SqliteStore:
    """The SQLite store. ``reads`` may be used from one thread at a time (the event loop's).

    Two write paths share the transaction contract of ``store.base``:

    - ``transact_async`` (the server): jobs run on the event loop's thread, grouped into one
      transaction per loop iteration; only the COMMIT (the fsync) goes to a thread, during
      which the next group gathers. When a commit is done, the next group's statements run
      and its commit starts before the finished group's callers are answered. Running the
      statements on the loop avoids handing the GIL back and forth between a writer thread
      and a busy loop on every statement, which cost more than the statements themselves
      (measured again with granian: a writer thread answered 2,251 SETs/s, the loop ~3,000).
    - ``transact`` (administration commands, tests): a writer thread with its own connection.

    With ``counters`` (a process among several ``serve --workers``), both paths take the
    writers' file lock before BEGIN IMMEDIATE and release it after COMMIT. On the event-loop
    path a group takes it at once when it is free; when another worker holds it, the committer
    thread waits for it and hands the group back to the loop. The group's COMMIT then runs on
    the loop itself (see ``_flush_locked``).
    """

    MAX_BATCH = 256
    # uvloop's timers count whole milliseconds: a shorter delay is no delay, and a group finding
    # the lock taken retried on every loop iteration (0.5 ms: ~50,000 retries a second, 10-13k
    # in one bench run while audit batches held the lock).
    BUSY_RETRY_SECONDS = 0.001
    shared = False  # one server process per database file

    def __init__(self, path: Path, counters: CommitCounters | None = None):
        self._path = path
        self._counters = counters
        _private_files(path)
        _prepare(path)
        self._read_conn = _connect(path)
        self._reads = _Reads(_Guarded(self._read_conn))
        # Thread path.
        self._write_conn = _connect(path)
        self._queue: queue.SimpleQueue[tuple[Callable[[Tx], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._writer = threading.Thread(target=self._run, name="strongroom-writer", daemon=True)
        self._writer.start()
        # Event-loop path. It never waits for the write lock: when another connection (the
        # writer thread, an administration command) holds it, the group tries again shortly.
        self._loop_conn = _connect(path, busy_ms=0)
        self._loop_tx = _Tx(_Guarded(self._loop_conn))
        # Jobs waiting for the next group, each with the audit record it carries (if any).
        self._pending: list[tuple[Callable[[Tx], Any], asyncio.Future[Any], Any]] = []
        self._busy = False  # a flush is scheduled or a commit is in flight
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="strongroom-commit")
        # Processes sharing the file (serve --workers): the writers' lock, one per write path.
        lock_path = path.with_name(path.name + "-writer.lock")
        self._loop_lock = None if counters is None else _FileLock(lock_path)
        self._thread_lock = None if counters is None else _FileLock(lock_path)
        self._revocations = _RevocationMark(path.with_name(path.name + "-revocations"))
        self._exclusive: dict[str, list[Any]] = {}  # name -> [its file lock, holders here]
        self._exclusive_guard = threading.Lock()

    @property
    def reads(self) -> _Reads:
        return self._reads

    def _commit(self, conn: sqlite3.Connection, tx: _Tx) -> None:
        """COMMIT, then count it for the other workers, and mark a revocation for every
        process of the file (both before any caller hears of it)."""
        _commit(conn)
        if self._counters is not None:
            self._counters.bump()
        if tx.revoked:
            tx.revoked = False
            self._revocations.mark()

    def foreign_commits(self) -> int:
        return 0 if self._counters is None else self._counters.others()

    def revocation_marker(self) -> int:
        return self._revocations.read()

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """A file lock named ``name`` next to the database, if no other process holds it.
        Callers in this process share it, as PostgreSQL's advisory lock of one session is."""
        with self._exclusive_guard:
            entry = self._exclusive.get(name)
            if entry is None:
                lock = _FileLock(self._path.with_name(f"{self._path.name}-{name}.lock"))
                if not lock.acquire(blocking=False):
                    lock.close()
                    entry = None
                else:
                    entry = self._exclusive[name] = [lock, 0]
            if entry is not None:
                entry[1] += 1
        try:
            yield entry is not None
        finally:
            if entry is not None:
                with self._exclusive_guard:
                    entry[1] -= 1
                    if entry[1] == 0:
                        del self._exclusive[name]
                        entry[0].release()
                        entry[0].close()

    def transact(self, fn: Callable[[Tx], T]) -> Future[T]:
        fut: Future[T] = Future()
        self._queue.put((fn, fut))
        return fut

    def transact_async(self, fn: Callable[[Tx], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._pending.append((fn, fut, claim_pending_audit()))
        if not self._busy:
            self._busy = True
            loop.call_soon(self._flush, loop)  # let this iteration's other writes join
        return fut

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        lock = self._loop_lock
        if lock is None or lock.acquire(blocking=False):  # free: no hop to the committer
            self._flush_locked(loop)
            return

        def take() -> None:  # on the committer thread: wait for the other processes' writes
            lock.acquire()
            try:
                loop.call_soon_threadsafe(self._flush_locked, loop)
            except RuntimeError:  # the loop is closed: nobody will write
                lock.release()

        self._committer.submit(take)

    def _unlock(self) -> None:
        if self._loop_lock is not None:
            self._loop_lock.release()

    def _flush_locked(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending = self._pending[: self.MAX_BATCH], self._pending[self.MAX_BATCH :]
        if not batch:
            self._unlock()
            self._busy = False
            return
        futures = [fut for _, fut, _ in batch]
        conn = self._loop_conn
        audits: list[Any] = []  # the PendingAudit records this group commits
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._loop_tx.revoked = False
            results = _run_batch(conn, self._loop_tx, [fn for fn, _, _ in batch])
            # The records of the jobs that succeeded, in the same transaction as their writes.
            audits = [p for (ok, _), (_, _, p) in zip(results, batch, strict=True) if ok and p]
            if audits:
                self._loop_tx.insert_audit([p.record for p in audits])
        except Exception as exc:
            busy = isinstance(exc, sqlite3.Error) and _busy(exc)
            if busy and not conn.in_transaction:  # the lock is taken: try again shortly
                self._unlock()
                self._pending[:0] = batch  # first in line
                loop.call_later(self.BUSY_RETRY_SECONDS, self._flush, loop)
                return
            if isinstance(exc, sqlite3.Error):
                exc = unavailable(exc)
            if isinstance(exc, StoreUnavailable):
                log.error("store could not run a transaction: %s", exc.message)
            else:
                log.exception("store could not run a transaction")
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error as rollback:
                log.error("store could not roll a transaction back: %s", rollback)
            finally:
                self._unlock()  # whatever happened, the other workers may write
            _release(batch)
            _settle(futures, [(False, exc)] * len(batch))
            self._after_commit(loop)
            return

        def committed(error: BaseException | None) -> None:
            if error is not None:
                log.error("store commit failed: %s", error)
                if isinstance(error, sqlite3.Error):
                    error = unavailable(error)
                _release(batch)
            else:
                for (ok, _), (_, _, pending) in zip(results, batch, strict=True):
                    if pending is not None:
                        # A failed job's record may still go with its request's next write.
                        pending.committed, pending.claimed = ok, ok
            try:
                # The next group's statements and commit go first, so that its fsync overlaps
                # with this group's callers resuming and answering.
                if self._pending:
                    self._flush(loop)
                else:
                    self._busy = False
            finally:
                _settle(futures, results if error is None else [(False, error)] * len(batch))

        def finish() -> BaseException | None:
            try:
                self._commit(conn, self._loop_tx)
            except BaseException as exc:  # every caller of the group hears of it
                return exc
            finally:
                self._unlock()
            return None

        if self._loop_lock is not None:
            # A worker among several: the commit blocks this loop (the fsync without the GIL)
            # rather than going to the committer thread and back, two thread hops whose CPU
            # and GIL waits cost more, on a machine the workers keep busy, than this loop's
            # idle millisecond (the other workers use the cores meanwhile). 16 paired wrk
            # runs of SET with --workers 2: +2% to +13% (medians of three sets), server CPU
            # 381-385 -> 340-355 us per SET.
            loop.call_soon(committed, finish())
            return

        def commit() -> None:  # on the committer thread
            error = finish()
            # One hop back to the loop; a run_in_executor future would take two.
            loop.call_soon_threadsafe(committed, error)

        self._committer.submit(commit)

    def _after_commit(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pending:
            loop.call_soon(self._flush, loop)
        else:
            self._busy = False

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join(timeout=10)
        self._committer.shutdown(wait=True)
        self._loop_conn.close()
        self._read_conn.close()
        self._revocations.close()
        for lock in (self._loop_lock, self._thread_lock):
            if lock is not None:
                lock.close()

    def _run(self) -> None:
        conn = self._write_conn
        tx = _Tx(_Guarded(conn))
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.MAX_BATCH:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            # A job whose caller cancelled it is dropped (answering it would raise and end this
            # thread); the others can no longer be cancelled.
            batch = [job for job in batch if job[1].set_running_or_notify_cancel()]
            if not batch:
                continue
            lock = self._thread_lock
            if lock is not None:
                lock.acquire()
            try:
                conn.execute("BEGIN IMMEDIATE")
                tx.revoked = False
                results = _run_batch(conn, tx, [fn for fn, _ in batch])
                self._commit(conn, tx)
            except sqlite3.Error as exc:
                log.error("store commit failed: %s", exc)
                try:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                except sqlite3.Error as rollback:
                    log.error("store could not roll a transaction back: %s", rollback)
                results = [(False, unavailable(exc))] * len(batch)
            finally:
                if lock is not None:
                    lock.release()
            _settle([fut for _, fut in batch], results)
        conn.close()
