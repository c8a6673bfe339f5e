"""SQLite backend: WAL, synchronous=FULL, commits grouped on the event loop or a writer thread.

Its SQL is ``store.sql``'s; what the processes sharing a file coordinate through is
``store.coordination``'s. This module holds the connections, the schema's preparation and the
group commit.

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
import logging
import os
import queue
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from strongroom import telemetry
from strongroom.errors import StoreUnavailable
from strongroom.store import migrations
from strongroom.store.base import Tx, claim_pending_audit
from strongroom.store.coordination import CommitCounters, FileLock, RevocationMark
from strongroom.store.sql import SqlReads, SqlTx

SchemaMismatch = migrations.SchemaMismatch
T = TypeVar("T")
log = logging.getLogger(__name__)

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


def unavailable(exc: sqlite3.Error) -> StoreUnavailable:
    """A driver error of the machine's (a full disk, an I/O error, a damaged file) as the
    domain's: the request failed whole and may succeed later."""
    return StoreUnavailable(
        f"The database could not be read or written ({str(exc)[:100]}). Nothing of this "
        "request was written; try again once the server's disk or database is healthy."
    )


class Guarded:
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

    def executemany(self, sql: str, rows: list[Any]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise
        except sqlite3.DatabaseError as exc:
            raise unavailable(exc) from exc


def _connect(path: Path, busy_ms: int = 10_000) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def revision(conn: sqlite3.Connection) -> str | None:
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


def _create_head(conn: sqlite3.Connection) -> None:
    script = (Path(migrations.__file__).with_name("sqlite_head.sql")).read_text()
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("SELECT 1 FROM sqlite_master").fetchone() is not None:
            conn.execute("ROLLBACK")  # another process made it meanwhile
            return
        body = "\n".join(line for line in script.splitlines() if not line.startswith("--"))
        for statement in body.split(";\n"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (migrations.HEAD,))
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
    """Brings the file to the newest revision (SQLite is embedded: it upgrades itself). A new,
    empty file gets the newest schema in one transaction, from ``sqlite_head.sql``, without
    importing Alembic (which alone took a third of a second of an ephemeral server's start)."""
    setup = _connect(path)
    try:
        found = revision(setup)
        if found == migrations.HEAD:
            return
        if found is None and setup.execute("SELECT 1 FROM sqlite_master").fetchone() is None:
            _create_head(setup)
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


class _Checkpointer:
    """Copies the write-ahead log's pages into the database file on a thread of its own.

    SQLite would otherwise do it in the connection whose commit takes the log past 1,000 pages,
    and that connection is the group commit's: the next group waited while thousands of pages
    were written and the file synced. Here the write connections never checkpoint; after a
    commit this thread lets ``INTERVAL`` pass (more commits join), then runs a PASSIVE
    checkpoint, which copies what no reader still needs and waits for no lock. The file is
    synced before the log is reused (``synchronous=FULL``), so a crash loses nothing either
    way; administration commands, which open their own connections, keep SQLite's default.
    """

    INTERVAL = 0.2

    def __init__(self, path: Path):
        self._conn = _connect(path, busy_ms=0)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="strongroom-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._stopping.wait(self.INTERVAL):
                return
            self._wake.clear()
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:
                if not _busy(exc):  # busy: another worker's checkpoint is copying the log
                    # A full disk, an I/O error: the next commit wakes this thread again.
                    log.warning("could not checkpoint the database's write-ahead log: %s", exc)

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._conn.close()


def _run_jobs(
    conn: sqlite3.Connection, tx: SqlTx, fns: list[Callable[[Tx], Any]]
) -> list[_Outcome]:
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


def _run_batch(
    conn: sqlite3.Connection, tx: SqlTx, fns: list[Callable[[Tx], Any]]
) -> list[_Outcome]:
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


class _WriteTx(SqlTx):
    """A transaction of a write connection, knowing whether it wrote anything but audit
    records: only then may the other workers' caches be out of date when it commits."""

    changes_before = 0

    def begin(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        self.revoked, self.audit_rows, self.changes_before = False, 0, conn.total_changes

    def wrote_data(self, conn: sqlite3.Connection) -> bool:
        # Rows a rolled-back job changed are counted too: then it says yes, which is safe.
        return conn.total_changes - self.changes_before > self.audit_rows


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


class SqliteStore:
    """The SQLite store. ``reads`` may be used from one thread at a time (the event loop's).

    Two write paths share the transaction contract of ``store.base``:

    - ``transact_async`` (the server): jobs run on the event loop's thread, grouped into one
      transaction per loop iteration; only the COMMIT (the fsync) goes to a thread, during
      which the next group gathers. When a commit is done, the next group's statements run
      and its commit starts before the finished group's callers are answered. Running the
      statements on the loop avoids handing the GIL back and forth between a writer thread
      and a busy loop on every statement, which cost more than the statements themselves
      (bench/README.md).
    - ``transact`` (administration commands, tests): a writer thread with its own connection.

    With ``counters`` (a process among several ``serve --workers``), both paths take the
    writers' file lock before BEGIN IMMEDIATE and release it after COMMIT. On the event-loop
    path a group takes it at once when it is free; when another worker holds it, the committer
    thread waits for it and hands the group back to the loop. The group's COMMIT then runs on
    the loop itself (see ``_flush_locked``).
    """

    MAX_BATCH = 256
    # uvloop's timers count whole milliseconds: a shorter delay is no delay, and a group finding
    # the lock taken would retry on every loop iteration.
    BUSY_RETRY_SECONDS = 0.001
    shared = False  # one server process per database file

    def __init__(self, path: Path, counters: CommitCounters | None = None):
        self._path = path
        self._counters = counters
        _private_files(path)
        _prepare(path)
        self._read_conn = _connect(path)
        self._reads = SqlReads(Guarded(self._read_conn))
        self._checkpointer = _Checkpointer(path)
        # Thread path.
        self._write_conn = _connect(path)
        self._write_conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's work
        self._queue: queue.SimpleQueue[tuple[Callable[[Tx], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._writer = threading.Thread(target=self._run, name="strongroom-writer", daemon=True)
        self._writer.start()
        # Event-loop path. It never waits for the write lock: when another connection (the
        # writer thread, an administration command) holds it, the group tries again shortly.
        self._loop_conn = _connect(path, busy_ms=0)
        self._loop_conn.execute("PRAGMA wal_autocheckpoint=0")
        self._loop_tx = _WriteTx(Guarded(self._loop_conn))
        # Jobs waiting for the next group, each with the audit record it carries (if any).
        self._pending: list[tuple[Callable[[Tx], Any], asyncio.Future[Any], Any]] = []
        self._busy = False  # a flush is scheduled or a commit is in flight
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="strongroom-commit")
        # Processes sharing the file (serve --workers): the writers' lock, one per write path.
        lock_path = path.with_name(path.name + "-writer.lock")
        self._loop_lock = None if counters is None else FileLock(lock_path)
        self._thread_lock = None if counters is None else FileLock(lock_path)
        self._revocations = RevocationMark(path.with_name(path.name + "-revocations"))
        self._exclusive: dict[str, list[Any]] = {}  # name -> [its file lock, holders here]
        self._exclusive_guard = threading.Lock()

    @property
    def reads(self) -> SqlReads:
        return self._reads

    def _commit(self, conn: sqlite3.Connection, tx: _WriteTx) -> None:
        """COMMIT, then count it for the other workers (unless it wrote only audit records,
        which no cache holds), and mark a revocation for every process of the file (both
        before any caller hears of it)."""
        _commit(conn)
        self._checkpointer.committed()
        if self._counters is not None and tx.wrote_data(conn):
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
                lock = FileLock(self._path.with_name(f"{self._path.name}-{name}.lock"))
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

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[SqlReads]:
        # A deferred transaction on a connection of its own: in WAL mode its first read fixes
        # the state it sees, and writers go on committing beside it.
        conn = _connect(self._path)
        try:
            conn.execute("BEGIN")
            guarded = Guarded(conn)
            guarded.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
            yield SqlReads(guarded)
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            conn.close()

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
        started = time.perf_counter()
        conn = self._loop_conn
        audits: list[Any] = []  # the PendingAudit records this group commits
        try:
            self._loop_tx.begin(conn)
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
                if (t := telemetry.active) is not None:
                    t.commit(time.perf_counter() - started, len(batch))
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
            # idle millisecond (the other workers use the cores meanwhile; bench/README.md).
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
        self._checkpointer.close()
        self._loop_conn.close()
        self._read_conn.close()
        self._revocations.close()
        for lock in (self._loop_lock, self._thread_lock):
            if lock is not None:
                lock.close()

    def _run(self) -> None:
        conn = self._write_conn
        tx = _WriteTx(Guarded(conn))
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
                tx.begin(conn)
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
