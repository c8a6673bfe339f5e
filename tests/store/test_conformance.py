"""One conformance suite for every store backend: SQLite (a file) and PostgreSQL (a real
server, tests/pg.py). Each test gets a fresh, empty store of each kind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongroom.store.base import AuditRecord, ObjectRecord, Store, Tx, VaultRecord, VersionRecord
from strongroom.store.sqlite import SqliteStore
from tests import pg

VAULT = VaultRecord("v1", "Vault", "default", 90, False, b"wrapped", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made: Store
    if request.param == "sqlite":
        made = SqliteStore(tmp_path / "store.db")
    else:
        if not pg.available():
            if os.environ.get("STRONGROOM_REQUIRE_POSTGRES"):
                pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
            pytest.skip("PostgreSQL is not installed; make test installs it")
        from strongroom.store.postgres import PostgresStore

        made = PostgresStore(pg.cluster().new_database("store"))
    made.transact(lambda tx: tx.insert_vault(VAULT)).result()
    yield made
    made.close()


def run(store: Store, fn: Any) -> Any:
    return store.transact(fn).result(timeout=60)


def version(lname: str, v: str, *, managed: bool = False, sealed: bytes = b"s") -> VersionRecord:
    return VersionRecord(VAULT.id, "secret", lname, v, 10, 10, True, None, None, None, None,
                         sealed, managed)  # fmt: skip


def create(tx: Tx, name: str, v: str, kind: str = "secret", **kw: Any) -> None:
    tx.insert_object(ObjectRecord(VAULT.id, kind, name.lower(), name, v, None, None))
    tx.insert_version(version(name.lower(), v, **kw) if kind == "secret" else
                      VersionRecord(VAULT.id, kind, name.lower(), v, 10, 10, True, None, None,
                                    None, None, b"s"))  # fmt: skip


def add_version(tx: Tx, lname: str, v: str) -> str | None:
    shown = tx.set_latest(VAULT.id, "secret", lname, v)
    if shown is not None:
        tx.insert_version(version(lname, v))
    return shown


def test_create_and_read(store: Store) -> None:
    run(store, lambda tx: create(tx, "MySecret", "a" * 32, sealed=b"\x00sealed\xff"))
    reads = store.reads
    obj = reads.get_object(VAULT.id, "secret", "mysecret")
    assert obj is not None and (obj.name, obj.latest_version) == ("MySecret", "a" * 32)
    got = reads.get_version(VAULT.id, "secret", "mysecret", "a" * 32)
    assert got is not None and got.sealed == b"\x00sealed\xff" and got.enabled is True
    current = reads.get_current(VAULT.id, "secret", "mysecret", "")
    assert current is not None and current[1].version == "a" * 32
    assert reads.get_current(VAULT.id, "secret", "mysecret", "b" * 32) is None
    assert reads.get_object(VAULT.id, "key", "mysecret") is None  # kinds are separate
    assert reads.get_vault("VAULT") == VAULT and reads.get_vault_by_id("v1") == VAULT
    assert reads.count_objects(VAULT.id) == 1


def test_versions_latest_and_paging(store: Store) -> None:
    run(store, lambda tx: create(tx, "s", "0" * 32))
    for i in range(1, 6):
        assert run(store, lambda tx, i=i: add_version(tx, "s", f"{i:032x}")) == "s"
    reads = store.reads
    current = reads.get_current(VAULT.id, "secret", "s", "")
    assert current is not None and current[1].version == f"{5:032x}"
    first = reads.list_versions(VAULT.id, "secret", "s", after=None, limit=4)
    rest = reads.list_versions(VAULT.id, "secret", "s", after=first[-1][0], limit=4)
    versions = [v.version for _, v in first + rest]
    assert versions == [f"{i:032x}" for i in range(6)]
    assert [v.version for v in reads.all_versions(VAULT.id, "secret", "s")] == versions


def test_listing_is_byte_ordered_and_pages_without_gaps(store: Store) -> None:
    names = ["acct/b", "acct/a", "acct0", "acctz", "ACCT1", "a-b", "zeta", "m/1", "M-2", "acct"]

    def write(tx: Tx) -> None:
        for i, name in enumerate(names):
            create(tx, name, f"{i:032x}")

    run(store, write)
    seen: list[str] = []
    after: str | None = None
    while True:
        page = store.reads.list_objects(VAULT.id, "secret", deleted=False, after=after, limit=3)
        seen += [o.lname for o, _ in page]
        if len(page) < 3:
            break
        after = page[-1][0].lname
    assert seen == sorted(n.lower() for n in names)  # Python's order is byte order
    prefixed = store.reads.list_objects(VAULT.id, "secret", deleted=False, after="acct/", limit=3)
    assert [o.lname for o, _ in prefixed] == ["acct/a", "acct/b", "acct0"]


def test_soft_delete_recover_and_purge(store: Store) -> None:
    run(store, lambda tx: create(tx, "gone", "1" * 32))
    run(store, lambda tx: tx.set_policy(VAULT.id, "secret", "gone", '{"p": 1}'))
    run(store, lambda tx: tx.set_deleted(VAULT.id, "secret", "gone", 100, 200))
    reads = store.reads
    assert reads.list_objects(VAULT.id, "secret", deleted=False, after=None, limit=10) == []
    deleted = reads.list_objects(VAULT.id, "secret", deleted=True, after=None, limit=10)
    assert [(o.lname, o.deleted_date, o.scheduled_purge_date) for o, _ in deleted] == [
        ("gone", 100, 200)
    ]
    assert reads.list_policies("secret") == []  # policies of deleted objects are dormant
    assert run(store, lambda tx: add_version(tx, "gone", "2" * 32)) is None  # no new versions
    assert [o.lname for o in run(store, lambda tx: tx.expired_deletions(199, 10))] == []
    assert [o.lname for o in run(store, lambda tx: tx.expired_deletions(200, 10))] == ["gone"]
    run(store, lambda tx: tx.set_deleted(VAULT.id, "secret", "gone", None, None))
    assert reads.list_policies("secret") == [(VAULT.id, "gone", '{"p": 1}')]
    run(store, lambda tx: tx.purge_object(VAULT.id, "secret", "gone"))
    assert reads.get_object(VAULT.id, "secret", "gone") is None
    assert reads.all_versions(VAULT.id, "secret", "gone") == []
    assert reads.get_policy(VAULT.id, "secret", "gone") is None


def test_managed_objects_take_versions_only_when_asked(store: Store) -> None:
    run(store, lambda tx: create(tx, "cert", "1" * 32, managed=True))
    assert run(store, lambda tx: tx.set_latest(VAULT.id, "secret", "cert", "2" * 32)) is None
    assert run(store, lambda tx: tx.set_latest(VAULT.id, "secret", "cert", "2" * 32,
                                               managed=True)) == "cert"  # fmt: skip


def test_set_latest_named_as_stored_or_not(store: Store) -> None:
    """``name``, as the caller wrote it, only spares reading the stored name back: the answer
    and the refusals are those of a call without it."""
    run(store, lambda tx: create(tx, "MixedCase", "1" * 32))

    def set_as(name: str, v: str) -> Any:
        return run(store, lambda tx: tx.set_latest(VAULT.id, "secret", "mixedcase", v, name=name))

    assert set_as("MixedCase", "2" * 32) == "MixedCase"
    assert set_as("MIXEDCASE", "3" * 32) == "MixedCase"  # the stored name, not the caller's
    obj = store.reads.get_object(VAULT.id, "secret", "mixedcase")
    assert obj is not None and obj.latest_version == "3" * 32
    run(store, lambda tx: tx.set_deleted(VAULT.id, "secret", "mixedcase", 100, 200))
    assert set_as("MixedCase", "4" * 32) is None  # deleted
    run(store, lambda tx: create(tx, "cert", "1" * 32, managed=True))
    assert run(store, lambda tx: tx.set_latest(VAULT.id, "secret", "cert", "2" * 32,
                                               name="cert")) is None  # fmt: skip
    assert run(store, lambda tx: tx.set_latest(VAULT.id, "secret", "absent", "1" * 32,
                                               name="absent")) is None  # fmt: skip
    obj = store.reads.get_object(VAULT.id, "secret", "mixedcase")
    assert obj is not None and obj.latest_version == "3" * 32


def test_version_ids_are_unique_and_a_failed_transaction_leaves_nothing(store: Store) -> None:
    run(store, lambda tx: create(tx, "dup", "1" * 32))

    def twice(tx: Tx) -> None:
        create(tx, "other", "2" * 32)
        tx.set_meta("half", "written")
        tx.insert_version(version("dup", "1" * 32))  # the same version id again

    with pytest.raises(Exception):  # noqa: B017 - each driver names its integrity error
        run(store, twice)
    assert store.reads.get_object(VAULT.id, "secret", "other") is None
    assert store.reads.get_meta("half") is None
    assert len(store.reads.all_versions(VAULT.id, "secret", "dup")) == 1


def test_a_transaction_that_raises_rolls_back_completely(store: Store) -> None:
    def failing(tx: Tx) -> None:
        create(tx, "partial", "1" * 32)
        tx.set_meta("partial", "yes")
        raise ValueError("the caller changed its mind")

    with pytest.raises(ValueError, match="changed its mind"):
        run(store, failing)
    assert store.reads.get_object(VAULT.id, "secret", "partial") is None
    assert store.reads.get_meta("partial") is None
    run(store, lambda tx: create(tx, "partial", "2" * 32))  # and the store still works


def test_concurrent_writers_lose_nothing(store: Store) -> None:
    """Eight threads add 20 versions each to one object that none of them created first."""
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(20):
                v = f"{worker:016x}{i:016x}"

                def write(tx: Tx, v: str = v) -> None:
                    if add_version(tx, "race", v) is None:
                        create(tx, "race", v)

                run(store, write)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    versions = [v.version for v in store.reads.all_versions(VAULT.id, "secret", "race")]
    assert len(versions) == len(set(versions)) == 160
    obj = store.reads.get_object(VAULT.id, "secret", "race")
    assert obj is not None and obj.latest_version in versions


def test_event_loop_writes_isolate_a_failure(store: Store) -> None:
    async def main() -> list[Any]:
        def good(i: int) -> Any:
            return lambda tx: create(tx, f"ok{i}", f"{i:032x}")

        def bad(tx: Tx) -> None:
            raise KeyError("no")

        futures = [store.transact_async(good(i)) for i in range(5)]
        futures.insert(2, store.transact_async(bad))
        return await asyncio.gather(*futures, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[2], KeyError)
    assert sum(r is None for r in results) == 5
    assert store.reads.count_objects(VAULT.id) == 5


def test_the_audit_log_is_read_across_batches_by_time_vault_and_limit(store: Store) -> None:
    def rec(ts: int, vault: str | None, operation: str) -> AuditRecord:
        return AuditRecord(ts, "p", vault, operation, "/secrets/x", 200, None, "127.0.0.1")

    first = [rec(10, "va", "a1"), rec(12, "v_", "a2"), rec(11, None, "a3")]
    second = [rec(20, "vb", "b1"), rec(21, "va", "b2"), rec(19, "VA", "b3")]
    run(store, lambda tx: tx.insert_audit(first))
    run(store, lambda tx: tx.insert_audit([]))  # nothing to write: no batch
    run(store, lambda tx: tx.insert_audit(second))
    run(store, lambda tx: tx.insert_audit([rec(30, "vb", "c1")]))

    def ops(vault: str | None, since: int, limit: int = 100) -> list[str]:
        return [r.operation for r in store.reads.list_audit(vault, since, limit)]

    assert ops(None, 0) == ["a1", "a2", "a3", "b1", "b2", "b3", "c1"]  # as written
    assert store.reads.list_audit(None, 0, 1) == first[:1]  # whole records, fields in place
    assert ops(None, 12) == ["a2", "b1", "b2", "b3", "c1"]  # every record at or after 12
    assert ops(None, 0, 4) == ["a1", "a2", "a3", "b1"]  # the limit cuts inside a batch
    assert ops(None, 0, 0) == []
    assert ops(None, 31) == []
    assert ops("va", 0) == ["a1", "b2"]  # exactly that name: not "v_", not "VA"
    assert ops("v_", 0) == ["a2"]  # LIKE's wildcards in a name match only themselves
    assert ops("v%", 0) == []
    assert ops("vb", 21) == ["c1"]
    assert ops("nowhere", 0) == []


def test_metadata_audit_and_the_exclusive_lock(store: Store) -> None:
    def write(tx: Tx) -> None:
        tx.set_meta("vault/v1/access/a", "1")
        tx.set_meta("vault/v1/access/b", "2")
        tx.set_meta("vault/v10/access/c", "3")
        tx.set_meta("vault/v1/access/a", "one")
        tx.insert_audit([AuditRecord(5, "p", "v", "SecretGet", "/x", 200, None, None),
                         AuditRecord(6, "p", "w", "SecretSet", "/y", 403, "r", "c")])  # fmt: skip

    run(store, write)
    assert store.reads.list_meta("vault/v1/") == [
        ("vault/v1/access/a", "one"), ("vault/v1/access/b", "2"),
    ]  # fmt: skip
    assert [r.operation for r in store.reads.list_audit(None, 0, 10)] == ["SecretGet", "SecretSet"]
    assert [r.operation for r in store.reads.list_audit("w", 0, 10)] == ["SecretSet"]
    assert store.reads.list_audit(None, 6, 10)[0].request_id == "r"
    with store.exclusive("scheduler") as held:
        assert held
    run(store, lambda tx: tx.delete_vault(VAULT.id))
    assert store.reads.list_meta("vault/v1/") == []
    assert store.reads.list_vaults() == []


def test_a_requests_audit_record_commits_with_its_first_write_only(store: Store) -> None:
    """What makes a crash leave no acknowledged write without its record, nor the reverse."""
    from strongroom.store.base import PENDING_AUDIT, PendingAudit

    def record(request_id: str) -> AuditRecord:
        return AuditRecord(500, "p", "Vault", "SecretSet", "/secrets/a", 200, request_id, None)

    async def request(request_id: str, *jobs: Any) -> PendingAudit:
        pending = PendingAudit(record(request_id))
        token = PENDING_AUDIT.set(pending)
        try:
            for job in jobs:
                with contextlib.suppress(ValueError):
                    await store.transact_async(job)
        finally:
            PENDING_AUDIT.reset(token)
        return pending

    def fails(tx: Tx) -> None:
        tx.set_meta("half", "written")
        raise ValueError("boom")

    async def main() -> list[PendingAudit]:
        return list(await asyncio.gather(
            request("failed", fails),
            request("written", lambda tx: tx.set_meta("w", "1"), lambda tx: tx.set_meta("x", "2")),
            request("retried", fails, lambda tx: tx.set_meta("r", "1")),
        ))  # fmt: skip

    failed, written, retried = asyncio.run(main())
    assert (failed.committed, written.committed, retried.committed) == (False, True, True)
    ids = [r.request_id for r in store.reads.list_audit(None, 0, 100)]
    assert sorted(ids) == ["retried", "written"]  # once each, with no flush of any buffer
    assert store.reads.get_meta("half") is None


def test_a_snapshot_sees_one_state_while_writers_go_on(store: Store) -> None:
    run(store, lambda tx: create(tx, "before", "1" * 32))
    with store.snapshot() as snap:
        assert snap.get_object(VAULT.id, "secret", "before") is not None
        # Commits after the snapshot was taken: it sees none of them, the store's reads do.
        run(store, lambda tx: create(tx, "after", "2" * 32))
        run(store, lambda tx: add_version(tx, "before", "3" * 32))
        run(store, lambda tx: tx.set_meta("vault/v1/x", "y"))
        assert store.reads.get_object(VAULT.id, "secret", "after") is not None
        assert snap.get_object(VAULT.id, "secret", "after") is None
        obj = snap.get_object(VAULT.id, "secret", "before")
        assert obj is not None and obj.latest_version == "1" * 32
        assert [v.version for v in snap.all_versions(VAULT.id, "secret", "before")] == ["1" * 32]
        assert snap.get_meta("vault/v1/x") is None
        assert len(snap.list_objects(VAULT.id, "secret", deleted=False, after=None, limit=9)) == 1
    with store.snapshot() as later:
        assert later.get_object(VAULT.id, "secret", "after") is not None


def test_changes_of_a_replicable_vault_are_numbered_in_commit_order(store: Store) -> None:
    assert run(store, lambda tx: tx.note_change(VAULT.id, "secret", "a")) is None  # not yet
    assert store.reads.changes_after(VAULT.id, 0, 10) == []
    run(store, lambda tx: tx.set_vault_replication(VAULT.id, replicable=True, replica_of=None))
    vault = store.reads.get_vault_by_id(VAULT.id)
    assert vault is not None and vault.replicable and vault.replica_of is None

    def write(names: tuple[str, ...]) -> Any:
        return lambda tx: [tx.note_change(VAULT.id, "secret", n) for n in names]

    assert run(store, write(("a", "b"))) == [1, 2]
    assert run(store, write(("c",))) == [3]
    assert run(store, write(("a",))) == [4]  # a again: its row now says 4
    assert store.reads.change_position(VAULT.id) == 4
    assert store.reads.changes_after(VAULT.id, 0, 10) == [
        (2, "secret", "b"), (3, "secret", "c"), (4, "secret", "a"),
    ]  # fmt: skip
    assert store.reads.changes_after(VAULT.id, 3, 10) == [(4, "secret", "a")]
    assert store.reads.changes_after(VAULT.id, 0, 1) == [(2, "secret", "b")]

    # A failed transaction numbers nothing.
    def fails(tx: Tx) -> None:
        tx.note_change(VAULT.id, "secret", "z")
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        run(store, fails)
    assert store.reads.change_position(VAULT.id) == 4
    assert run(store, write(("z",))) == [5]

    # Concurrent writers: every number once, each change findable after the one before it.
    threads = [threading.Thread(target=lambda i=i: run(store, write((f"t{i}",)))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [seq for seq, _, _ in store.reads.changes_after(VAULT.id, 5, 100)]
    assert sorted(seqs) == list(range(6, 14))
    run(store, lambda tx: tx.set_vault_replication(VAULT.id, replicable=False, replica_of="x"))
    assert run(store, write(("a",))) == [None]
    vault = store.reads.get_vault_by_id(VAULT.id)
    assert vault is not None and vault.replica_of == "x"
