"""The SQLite store's transaction contract: grouped commits, isolated failures, durability."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from strongroom.store import sqlite as sqlite_store
from strongroom.store.base import AuditRecord, Tx
from strongroom.store.coordination import CommitCounters
from strongroom.store.migrations import HEAD
from strongroom.store.sqlite import SqliteStore


def test_a_failing_transaction_rolls_back_alone(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db")
    gate = threading.Event()
    # Hold the writer so the next three jobs are grouped into one commit.
    blocker = store.transact(lambda tx: gate.wait(5))

    def good(key: str) -> object:
        return lambda tx: tx.set_meta(key, "yes")

    def bad(tx: Tx) -> None:
        tx.set_meta("half", "written")
        raise ValueError("boom")

    futures = [store.transact(good("a")), store.transact(bad), store.transact(good("b"))]
    gate.set()
    blocker.result()
    futures[0].result()
    futures[2].result()
    with pytest.raises(ValueError, match="boom"):
        futures[1].result()
    assert store.reads.get_meta("a") == "yes"
    assert store.reads.get_meta("b") == "yes"
    assert store.reads.get_meta("half") is None
    store.close()

    reopened = SqliteStore(tmp_path / "db")
    assert reopened.reads.get_meta("a") == "yes"
    reopened.close()


def test_a_newer_schema_refuses_to_open(tmp_path: Path) -> None:
    import sqlite3

    SqliteStore(tmp_path / "db").close()
    with sqlite3.connect(tmp_path / "db") as conn:
        conn.execute("UPDATE alembic_version SET version_num='9999'")
    with pytest.raises(Exception, match=r"revision 9999.*Run a newer release"):
        SqliteStore(tmp_path / "db")


def test_a_version_1_database_from_before_alembic_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "db")
    conn.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        "CREATE TABLE versions (seq INTEGER PRIMARY KEY, vault_id TEXT);"
        # Revisions 0006 and 0007 index and rebuild objects, whose columns version 1 had
        # (0001's schema).
        "CREATE TABLE objects (vault_id TEXT, kind TEXT, lname TEXT, name TEXT,"
        " latest_version TEXT, deleted_date INTEGER, scheduled_purge_date INTEGER,"
        " PRIMARY KEY (vault_id, kind, lname));"
        "INSERT INTO objects VALUES ('v', 'secret', 'a', 'A', '1', NULL, NULL);"
        "CREATE TABLE vaults (id TEXT PRIMARY KEY);"
        "INSERT INTO vaults VALUES ('v');"
    )
    conn.close()
    store = SqliteStore(tmp_path / "db")
    assert store.reads.get_meta("schema_version") is None  # Alembic's revision replaces it
    store.close()
    conn = sqlite3.connect(tmp_path / "db")
    assert "extra" in [r[1] for r in conn.execute("PRAGMA table_info(versions)")]
    assert conn.execute("SELECT * FROM objects").fetchall() == [
        ("v", "secret", "a", "A", "1", None, None)
    ]
    assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)
    assert conn.execute(
        "SELECT name FROM sqlite_master WHERE name='audit_batches_by_time'"
    ).fetchone()
    conn.close()


def test_event_loop_path_groups_writes_and_isolates_a_failure(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db")

    def bad(tx: Tx) -> None:
        tx.set_meta("half", "written")
        raise ValueError("boom")

    async def main() -> list[object]:
        jobs = [
            store.transact_async(lambda tx, i=i: tx.set_meta(f"k{i}", str(i))) for i in range(5)
        ]
        jobs.insert(2, store.transact_async(bad))
        return await asyncio.gather(*jobs, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert [type(o).__name__ for o in outcomes] == ["NoneType"] * 2 + ["ValueError"] + [
        "NoneType"
    ] * 3
    assert [store.reads.get_meta(f"k{i}") for i in range(5)] == ["0", "1", "2", "3", "4"]
    assert store.reads.get_meta("half") is None
    store.close()


def test_event_loop_path_waits_for_the_write_lock_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    """Another connection (an administration command, the writer thread) holding the write
    lock delays the loop's group commit; the loop itself keeps running meanwhile."""
    import sqlite3

    store = SqliteStore(tmp_path / "db")
    other = sqlite3.connect(tmp_path / "db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO meta (key, value) VALUES ('other', 'first')")

    async def main() -> tuple[int, bool, list[object]]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        tick_task = asyncio.create_task(ticker())
        good = store.transact_async(lambda tx: tx.set_meta("loop", "second"))

        def bad(tx: Tx) -> None:  # a failing job retries the group while holding the lock
            tx.set_meta("half", "written")
            raise ValueError("boom")

        failing = store.transact_async(bad)
        await asyncio.sleep(0.2)
        waiting = not good.done()
        other.execute("COMMIT")
        outcomes = await asyncio.gather(good, failing, return_exceptions=True)
        tick_task.cancel()
        return ticks, waiting, outcomes

    ticks, waiting, outcomes = asyncio.run(main())
    assert waiting  # the group did not commit while the other connection held the lock
    assert ticks > 50  # and the loop ran on: about 200 ticks of 1 ms
    assert outcomes[0] is None and isinstance(outcomes[1], ValueError)
    assert store.reads.get_meta("other") == "first"
    assert store.reads.get_meta("loop") == "second"
    assert store.reads.get_meta("half") is None
    other.close()
    store.close()


def test_a_cancelled_thread_job_is_skipped_and_the_writer_thread_goes_on(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    try:
        gate = threading.Event()
        blocker = store.transact(lambda tx: gate.wait(10))  # holds the writer thread
        cancelled = store.transact(lambda tx: tx.set_meta("cancelled", "yes"))
        assert cancelled.cancel()
        gate.set()
        blocker.result(timeout=10)
        after = store.transact(lambda tx: tx.set_meta("after", "yes"))
        after.result(timeout=10)  # the writer thread survived the cancelled job
        assert store.reads.get_meta("after") == "yes"
        assert store.reads.get_meta("cancelled") is None
    finally:
        store.close()


def test_commit_counters_are_shared_with_forked_workers() -> None:
    counters = CommitCounters(2)
    with warnings.catch_warnings():  # Python 3.12+ warns of a fork beside threads (pytest's)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # worker 1: three commits
        try:
            counters.claim(1)
            for _ in range(3):
                counters.bump()
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    counters.claim(0)
    counters.bump()  # this process's own commits are not "foreign"
    assert counters.others() == 3


def test_only_commits_of_data_tell_the_other_workers(tmp_path: Path) -> None:
    """Another worker's caches are emptied when this one commits data, on either write path,
    but not when it commits only audit records (each worker writes a batch of them every
    second under load, which emptied the others' caches over and over)."""
    counters = CommitCounters(2)
    counters.claim(0)
    store = SqliteStore(tmp_path / "db", counters)
    record = AuditRecord(1, "p", "v", "SecretGet", "/secrets/a", 200, "r", "::1")

    def seen_by_worker_1() -> int:
        counters.claim(1)
        try:
            return counters.others()
        finally:
            counters.claim(0)

    async def on_the_loop(fn: Callable[[Tx], object]) -> None:
        await store.transact_async(fn)

    try:
        store.transact(lambda tx: tx.insert_audit([record] * 3)).result()
        store.transact(lambda tx: tx.insert_audit([])).result()
        assert seen_by_worker_1() == 0
        store.transact(lambda tx: tx.set_meta("k", "1")).result()
        assert seen_by_worker_1() == 1
        store.transact(lambda tx: (tx.insert_audit([record]), tx.set_meta("k", "2"))).result()
        assert seen_by_worker_1() == 2
        asyncio.run(on_the_loop(lambda tx: tx.set_meta("k", "3")))
        assert seen_by_worker_1() == 3
        store.transact(lambda tx: tx.insert_audit([record])).result()
        assert seen_by_worker_1() == 3
        assert len(store.reads.list_audit(None, 0, 100)) == 5
    finally:
        store.close()


def test_the_log_is_copied_into_the_file_off_the_commit_path(tmp_path: Path) -> None:
    """The write connections never checkpoint (a group commit would wait for it): a thread of
    the store copies the write-ahead log into the database file shortly after commits, so the
    file alone (no -wal beside it) holds what was committed, and closing does not wait."""
    import shutil
    import time

    store = SqliteStore(tmp_path / "db")

    def file_alone() -> list[tuple[str, str]]:
        copy = tmp_path / "copy.db"
        shutil.copyfile(tmp_path / "db", copy)
        with sqlite3.connect(copy) as conn:
            return conn.execute("SELECT key, value FROM meta WHERE key LIKE 'k%'").fetchall()

    try:
        for i in range(20):
            store.transact(lambda tx, i=i: tx.set_meta(f"k{i:02}", str(i))).result()
        deadline = time.monotonic() + 5
        while len(file_alone()) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(file_alone()) == [(f"k{i:02}", str(i)) for i in range(20)]
        store.transact(lambda tx: tx.set_meta("k99", "last")).result()
    finally:
        started = time.monotonic()
        store.close()
        assert time.monotonic() - started < 2
    assert ("k99", "last") in file_alone()


def test_workers_take_the_write_lock_in_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stores with counters on one file, as two workers (here in one process: the file
    lock, one descriptor per write path, excludes them alike): interleaved writes on the loop
    path and the thread path all land, and none finds SQLite's write lock taken."""
    found_busy: list[bool] = []
    real_busy = sqlite_store._busy

    def busy(exc: sqlite3.Error) -> bool:
        found_busy.append(real_busy(exc))
        return found_busy[-1]

    monkeypatch.setattr(sqlite_store, "_busy", busy)
    a = SqliteStore(tmp_path / "db", CommitCounters(1))
    b = SqliteStore(tmp_path / "db", CommitCounters(1))

    async def main() -> None:
        jobs = [
            (a if i % 2 else b).transact_async(lambda tx, i=i: tx.set_meta(f"k{i}", str(i)))
            for i in range(40)
        ]
        jobs += [asyncio.wrap_future(b.transact(lambda tx: tx.set_meta("thread", "yes")))]
        await asyncio.gather(*jobs)

    asyncio.run(main())
    assert [a.reads.get_meta(f"k{i}") for i in range(40)] == [str(i) for i in range(40)]
    assert b.reads.get_meta("thread") == "yes"
    assert not any(found_busy)
    with a.exclusive("job") as held_a, b.exclusive("job") as held_b:
        assert (held_a, held_b) == (True, False)
        with a.exclusive("job") as again:  # callers in one process share it
            assert again
        with b.exclusive("job") as still:
            assert not still
    with b.exclusive("job") as held_b:
        assert held_b
    a.close()
    b.close()


def test_a_worker_waits_for_the_writers_lock_off_the_loop(tmp_path: Path) -> None:
    """While another worker holds the writers' lock (here: in the middle of a transaction on
    its writer thread), a group on the loop path waits for it on the committer thread: the
    loop keeps running, and the group commits once the lock is released."""
    a = SqliteStore(tmp_path / "db", CommitCounters(1))
    b = SqliteStore(tmp_path / "db", CommitCounters(1))
    inside, release = threading.Event(), threading.Event()

    def held(tx: Tx) -> None:
        tx.set_meta("b", "first")
        inside.set()
        release.wait(10)

    holder = b.transact(held)
    assert inside.wait(10)

    async def main() -> int:
        ticks = 0
        write = a.transact_async(lambda tx: tx.set_meta("a", "second"))
        for _ in range(20):
            await asyncio.sleep(0.005)
            ticks += 1
        assert not write.done()  # still waiting for the lock
        release.set()
        await asyncio.wait_for(write, 10)
        return ticks

    assert asyncio.run(main()) == 20
    holder.result(10)
    assert (a.reads.get_meta("b"), a.reads.get_meta("a")) == ("first", "second")
    a.close()
    b.close()
