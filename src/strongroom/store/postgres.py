"""PostgreSQL backend (psycopg 3): several Strongroom processes, on one or many machines, sharing
one database.

- **Reads** use one autocommit connection from one thread at a time (the event loop's), as the
  SQLite backend does: each read sees every transaction committed before it started.
- **Writes**: each transaction runs on a pooled connection in a worker thread, at READ
  COMMITTED isolation, and *locks what it decides on*: inside a transaction, reading an object
  or a metadata entry first takes a transaction-scoped advisory lock on its key (which exists
  whether or not the row does). A concurrent writer of the same object, in this process or
  another, waits for the first to commit and then reads its outcome: the second of two deletes
  finds the object deleted (404), the second of two restores finds it present (409), and two
  sets of one name make two versions without either being re-run. Serializable isolation was
  tried first: every concurrent write to one name then failed and was re-run, and under load
  some ran out of attempts. When PostgreSQL still reports a collision (a deadlock, or a unique
  key taken by a transaction that read nothing first), the whole transaction runs again; jobs
  act only through ``tx``, so running one again is safe.
- ``shared`` is True: other processes write too, so the services keep no read caches.
- ``exclusive(name)``: a session advisory lock, so that one process at a time runs the
  scheduler's pass (each due rotation, renewal or regeneration happens once).

The SQL is the SQLite backend's, with ``?`` placeholders turned into psycopg's ``%s``; only the
schema (types, identity columns, byte-order collation of names: ``store.migrations``) and two
statements differ.
Text keys use ``COLLATE "C"`` so that ordering and ``>`` comparisons (paging, prefix scans)
are byte-wise as in SQLite, whatever the database's locale.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar, cast

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from strongroom import telemetry
from strongroom.errors import StoreUnavailable
from strongroom.store import migrations
from strongroom.store.base import ObjectRecord, VersionRecord, claim_pending_audit
from strongroom.store.migrations import SchemaMismatch
from strongroom.store.sql import CURRENT, SqlReads, SqlTx, version_record

T = TypeVar("T")
log = logging.getLogger(__name__)
# Seconds a new connection may take before the database counts as unavailable, and that a
# transaction may wait for a pooled connection: the longest a request waits on a lost database.
CONNECT_TIMEOUT = 3
POOL_TIMEOUT = 5.0

# Errors that mean "a concurrent transaction got in the way": run the transaction again.
_RETRY = (
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.UniqueViolation,
)


@functools.lru_cache(maxsize=512)
def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


class _Conn:
    """sqlite3's ``execute``/``executemany`` shape over a psycopg connection."""

    def __init__(self, conn: psycopg.Connection[Any]):
        self.conn = conn

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(_pg(sql), params)

    def executemany(self, sql: str, rows: list[Any]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(_pg(sql), rows)


def unavailable(exc: Exception) -> StoreUnavailable:
    """PostgreSQL unreachable (or gone mid-request) as the domain's error: nothing of the
    request was written, and it may succeed once the database is back."""
    return StoreUnavailable(
        f"The database is unavailable ({str(exc).strip()[:120] or type(exc).__name__}). "
        "Nothing of this request was written; try again shortly."
    )


class _ReadConn(_Conn):
    """The reads' connection: when the server dropped it, one new connection is tried at once
    (at most ``CONNECT_TIMEOUT`` seconds), then the read fails as ``StoreUnavailable``."""

    def __init__(self, url: str):
        self._url = url
        super().__init__(psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT))

    def execute(self, sql: str, params: Any = ()) -> Any:
        try:
            return super().execute(sql, params)
        except psycopg.OperationalError as first:
            if not (self.conn.closed or self.conn.broken):
                raise unavailable(first) from first
            try:
                self.conn = psycopg.connect(
                    self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
                )
                return super().execute(sql, params)
            except psycopg.OperationalError as again:
                raise unavailable(again) from again


class _SnapshotConn(_Conn):
    """A snapshot's connection: a lost database fails the read as ``StoreUnavailable``."""

    def execute(self, sql: str, params: Any = ()) -> Any:
        try:
            return super().execute(sql, params)
        except psycopg.OperationalError as exc:
            raise unavailable(exc) from exc


_PG_CURRENT = (
    CURRENT.replace("?1", "%(v)s")
    .replace("?2", "%(vault)s")
    .replace("?3", "%(kind)s")
    .replace("?4", "%(lname)s")
)


class _PgReads(SqlReads):
    def get_current(
        self, vault_id: str, kind: str, lname: str, version: str
    ) -> tuple[ObjectRecord, VersionRecord] | None:
        row = self._c.execute(
            _PG_CURRENT, {"v": version, "vault": vault_id, "kind": kind, "lname": lname}
        ).fetchone()
        return None if row is None else (ObjectRecord(*row[:7]), version_record(row[7:]))


def _lock_key(*parts: str) -> int:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# Every process LISTENs here; a transaction deleting a principal NOTIFYs it, which PostgreSQL
# delivers to each listener when (and only if) that transaction commits.
_REVOCATIONS = "strongroom_revocations"


class _PgTx(_PgReads, SqlTx):
    """Reads that a write decides on lock their key first (see the module's docstring)."""

    def delete_principal(self, client_id: str) -> None:
        super().delete_principal(client_id)
        self._c.execute(f"NOTIFY {_REVOCATIONS}")

    def _lock(self, *parts: str) -> None:
        self._c.execute("SELECT pg_advisory_xact_lock(?)", (_lock_key(*parts),))

    def get_object(self, vault_id: str, kind: str, lname: str) -> ObjectRecord | None:
        self._lock("object", vault_id, kind, lname)
        return super().get_object(vault_id, kind, lname)

    def get_meta(self, key: str) -> str | None:
        self._lock("meta", key)
        return super().get_meta(key)

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
        # Decides, like a read: "is there an active object?". Without the lock, a writer that
        # finds none while another creates it would go on to find it and misjudge why.
        self._lock("object", vault_id, kind, lname)
        return super().set_latest(vault_id, kind, lname, version, managed=managed, name=name)


def _revision(conn: psycopg.Connection[Any]) -> tuple[str | None, bool]:
    has = conn.execute("SELECT to_regclass('alembic_version'), to_regclass('meta')").fetchone()
    assert has is not None
    if has[0] is None:
        return None, has[1] is None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return (None if row is None else str(row[0])), False


def revision(url: str) -> tuple[str | None, bool]:
    """(Alembic revision or None, whether the database has no Strongroom tables at all)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
        return _revision(conn)


def describe(url: str) -> dict[str, Any]:
    """The schema revision, and whether the server reached is a standby (in recovery: it
    takes no writes, as when the URL names a standby without target_session_attrs)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
        found, _ = _revision(conn)
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return {"backend": "postgresql", "revision": found, "readOnly": bool(row and row[0])}


def prepare(url: str, *, upgrade: bool) -> None:
    """Creates the schema in a new database; with ``upgrade``, brings an older one up to date;
    otherwise refuses any but the newest (see ``store.migrations``)."""
    found, empty = revision(url)
    if found is None and not empty:
        raise SchemaMismatch(
            "the database has Strongroom's tables but no schema revision; it was not made by "
            "this release's `strongroom db upgrade`."
        )
    where = "the PostgreSQL database"
    if migrations.check(found, where=where, may_upgrade=upgrade or found is None):
        migrations.upgrade(migrations.sqlalchemy_url(url))


class PostgresStore:
    """The PostgreSQL store. ``reads`` may be used from one thread at a time."""

    shared = True
    RETRIES = 30
    POOL_SIZE = 8

    def __init__(self, url: str):
        self._url = url
        prepare(url, upgrade=False)
        self._read_conn = _ReadConn(url)
        self._reads = _PgReads(cast(Any, self._read_conn))

        def configure(conn: psycopg.Connection[Any]) -> None:
            conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED

        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=self.POOL_SIZE,
            configure=configure,
            open=True,
            timeout=POOL_TIMEOUT,
            kwargs={"connect_timeout": CONNECT_TIMEOUT},
            reconnect_timeout=0,  # keep trying to reconnect for as long as it takes
            # A connection is checked as it is handed out, so that after a database restart
            # no transaction is started on a dead one (which would fail the request).
            check=ConnectionPool.check_connection,
        )
        self._executor = ThreadPoolExecutor(self.POOL_SIZE, thread_name_prefix="strongroom-pg")
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._lock_guard = threading.Lock()
        # Revocations (see ``revocation_marker``): counted by a thread that LISTENs.
        self._closing = threading.Event()
        self._listening = False
        self._revocations = 0
        self._ticks = itertools.count()
        self._listener = threading.Thread(
            target=self._listen, name="strongroom-pg-listen", daemon=True
        )
        self._listener.start()

    @property
    def reads(self) -> _PgReads:
        return self._reads

    def _run(self, fn: Callable[[Any], T]) -> T:
        collisions = 0
        for attempt in range(self.RETRIES):
            try:
                started = time.perf_counter()
                with self._pool.connection() as conn:
                    try:
                        with conn.transaction():
                            result = fn(_PgTx(cast(Any, _Conn(conn))))
                    except pg_errors.ReadOnlySqlTransaction:
                        # A standby's connection (a URL naming it without
                        # target_session_attrs=read-write): closed, so that the pool connects
                        # anew, through the URL's hosts, to one that takes writes.
                        conn.close()
                        raise
                if (t := telemetry.active) is not None:
                    t.commit(time.perf_counter() - started, 1)
                return result
            except _RETRY as exc:
                # A key taken by a concurrent insert is seen at once on the next run; one that
                # stays taken is the job's own error.
                collisions += isinstance(exc, pg_errors.UniqueViolation)
                if attempt == self.RETRIES - 1 or collisions > 3:
                    raise
                log.debug("transaction collided (%s); running it again", type(exc).__name__)
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311 - jitter
            except PoolTimeout as exc:  # no connection within POOL_TIMEOUT: the database is gone
                raise unavailable(exc) from exc
            except psycopg.OperationalError as exc:  # the connection failed under the job
                raise unavailable(exc) from exc
            except pg_errors.ReadOnlySqlTransaction as exc:  # no primary yet: try again later
                raise unavailable(exc) from exc
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[_PgReads]:
        # REPEATABLE READ: every statement of the transaction sees the state its first one saw.
        try:
            conn = psycopg.connect(self._url, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.OperationalError as exc:
            raise unavailable(exc) from exc
        try:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                yield _PgReads(cast(Any, _SnapshotConn(conn)))
        finally:
            conn.close()

    def transact(self, fn: Callable[[Any], T]) -> Future[T]:
        return self._executor.submit(self._run, fn)

    def transact_async(self, fn: Callable[[Any], T]) -> asyncio.Future[T]:
        pending = claim_pending_audit()
        if pending is None:
            return asyncio.wrap_future(self.transact(fn))

        def with_audit(tx: Any) -> T:
            result = fn(tx)
            tx.insert_audit([pending.record])
            return result

        def settled(done: Future[T]) -> None:  # before the caller's loop hears of it
            if done.cancelled() or done.exception() is not None:
                pending.claimed = False
            else:
                pending.committed = True

        future = self.transact(with_audit)
        future.add_done_callback(settled)
        return asyncio.wrap_future(future)

    def foreign_commits(self) -> int:
        return 0  # shared: nothing is cached above this store

    def revocation_marker(self) -> int:
        """The count of revocations heard while listening; while not listening (starting,
        or the connection lost), a new number on every call, so that callers check the
        database each time rather than trust what they saw."""
        if self._listening:
            return self._revocations
        return -1 - next(self._ticks)

    LISTEN_RETRY_SECONDS = 1.0

    def _listen(self) -> None:
        while not self._closing.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {_REVOCATIONS}")
                    self._revocations += 1  # anything before LISTEN went unheard
                    self._listening = True
                    while not self._closing.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._revocations += 1
            except Exception as exc:  # the database went away: check it per call until back
                if not self._closing.is_set():
                    log.warning("revocation listener lost its connection: %s", exc)
            finally:
                self._listening = False
            self._closing.wait(self.LISTEN_RETRY_SECONDS)

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Holds the named lock across processes if it is free; yields whether it is held."""
        try:
            with self._lock_guard:
                if self._lock_conn is None or self._lock_conn.closed or self._lock_conn.broken:
                    self._lock_conn = psycopg.connect(
                        self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
                    )
                conn = self._lock_conn
            row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (name,)).fetchone()
        except psycopg.OperationalError as exc:
            raise unavailable(exc) from exc
        held = bool(row and row[0])
        try:
            yield held
        finally:
            if held:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))

    def close(self) -> None:
        self._closing.set()
        self._listener.join(timeout=5)
        self._executor.shutdown(wait=True)
        self._pool.close()
        self._read_conn.conn.close()
        if self._lock_conn is not None:
            self._lock_conn.close()
