"""The repository interface every backend implements, and its records.

Contract, for every backend:

- The store is untrusted: it only ever sees sealed values (``sealed`` columns) and metadata.
- Reads (``Reads``) see every transaction committed before they start.
- ``transact(fn)`` runs ``fn`` in one transaction that commits completely or not at all, and
  resolves its future only once the commit is durable. Backends may group several transactions
  into one commit; a failing ``fn`` never affects the others grouped with it.
- Object names are matched case-insensitively through ``lname`` (the lower-cased name) and
  echoed as created through ``name``.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeVar

import orjson

T = TypeVar("T")


# The replication unit (``Tx.note_change``) of a vault's certificate issuers and contacts.
SETTINGS = "settings"


@dataclass(frozen=True, slots=True)
class VaultRecord:
    id: str
    name: str
    domain_id: str
    retention_days: int
    purge_protection: bool
    wrapped_key: bytes
    created: int
    # Every principal of the installation may do everything; otherwise access policies decide.
    open_access: bool = False
    # Its writes record their changes, for replicas to follow (``Tx.note_change``).
    replicable: bool = False
    # A replica: the URL of the vault it follows; writes to it are refused.
    replica_of: str | None = None


@dataclass(frozen=True, slots=True)
class PrincipalRecord:
    client_id: str
    name: str
    secret_hash: str | None
    certificate_pem: str | None
    certificate_thumbprint: str | None
    created: int


@dataclass(frozen=True, slots=True)
class DomainKeyRecord:
    domain_id: str
    version: str
    wrapped_key: bytes
    created: int


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    vault_id: str
    kind: str
    lname: str
    name: str
    latest_version: str
    deleted_date: int | None
    scheduled_purge_date: int | None


@dataclass(frozen=True, slots=True)
class VersionRecord:
    vault_id: str
    kind: str
    lname: str
    version: str
    created: int
    updated: int
    enabled: bool
    nbf: int | None
    exp: int | None
    content_type: str | None
    tags: str | None  # JSON text, or None for no tags
    sealed: bytes
    managed: bool = False
    extra: str | None = None  # JSON: kind-specific public metadata (a key's kty, key_ops, JWK)


class AuditRecord(NamedTuple):
    """One audited request. Never a secret value, key material or token."""

    ts: int
    principal: str | None
    vault: str | None
    operation: str
    object_id: str | None
    status: int
    request_id: str | None
    caller: str | None
    # Under RBAC, the role assignment that allowed the request (older batches lack it).
    grant: str | None = None


# The audit log is stored a batch per row (``audit_batches``): a row per request cost the server
# ten times the CPU per record in b-tree inserts (bench/README.md).
# ``records`` is a format byte, then a JSON array holding each record's fields as an array in
# AuditRecord's order: compressed with zlib (level 1) after AUDIT_BATCH_FORMAT, as it is after
# AUDIT_BATCH_PLAIN; ``vaults`` is "/v1/v2/", the batch's vault names, so a search for one
# vault skips batches without it.
AUDIT_BATCH_FORMAT = b"\x01"
# The same JSON, not compressed: a small batch (a write transaction's own records, committed
# with it) costs zlib's set-up, ~14 us, for nothing it saves.
AUDIT_BATCH_PLAIN = b"\x02"
_COMPRESS_FROM = 2048  # bytes of JSON


class AuditBatch(NamedTuple):
    min_ts: int
    max_ts: int
    vaults: str
    records: bytes


def pack_audit(records: list[AuditRecord]) -> AuditBatch:
    stamps = [r.ts for r in records]
    names = sorted({r.vault for r in records if r.vault})
    text = orjson.dumps([tuple(r) for r in records])
    packed = (
        AUDIT_BATCH_FORMAT + zlib.compress(text, 1)
        if len(text) >= _COMPRESS_FROM
        else AUDIT_BATCH_PLAIN + text
    )
    return AuditBatch(min(stamps), max(stamps), "/" + "".join(f"{n}/" for n in names), packed)


def unpack_audit(blob: bytes) -> list[AuditRecord]:
    if blob[:1] == AUDIT_BATCH_FORMAT:
        text = zlib.decompress(blob[1:])
    elif blob[:1] == AUDIT_BATCH_PLAIN:
        text = blob[1:]
    else:
        raise ValueError(f"unknown audit batch format {blob[:1]!r}")
    return [AuditRecord(*fields) for fields in orjson.loads(text)]


class PendingAudit:
    """The audit record of the request being handled, which ``transact_async`` commits in the
    same transaction as the request's first write: no acknowledged write lacks its record, and
    no record tells of a write that was not made, whatever moment the process dies at.
    ``committed`` says whether that happened (the request's handler then records nothing
    more, unless its answer differs from the record's status)."""

    __slots__ = ("claimed", "committed", "record")

    def __init__(self, record: AuditRecord):
        self.record = record
        self.claimed = False  # a transaction carrying it is under way
        self.committed = False


# Set by the data plane for each request that may write; read by the stores' transact_async.
PENDING_AUDIT: ContextVar[PendingAudit | None] = ContextVar("pending_audit", default=None)


def claim_pending_audit() -> PendingAudit | None:
    """The request's audit record, for the transaction about to be queued to carry."""
    pending = PENDING_AUDIT.get()
    if pending is None or pending.claimed or pending.committed:
        return None
    pending.claimed = True
    return pending


def vault_pattern(vault: str) -> str:
    """A LIKE pattern (ESCAPE '\\') for the batches whose ``vaults`` name ``vault``."""
    escaped = vault.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%/{escaped}/%"


class Reads(Protocol):
    def get_meta(self, key: str) -> str | None: ...
    def list_meta(self, prefix: str) -> list[tuple[str, str]]:
        """(key, value) of every metadata entry whose key starts with ``prefix``, by key.
        Keys under ``vault/{vault_id}/`` belong to that vault and go with it."""
        ...

    def get_vault(self, name: str) -> VaultRecord | None: ...
    def get_vault_by_id(self, vault_id: str) -> VaultRecord | None: ...
    def list_vaults(self) -> list[VaultRecord]: ...
    def get_principal(self, client_id: str) -> PrincipalRecord | None: ...
    def get_principal_by_name(self, name: str) -> PrincipalRecord | None: ...
    def list_principals(self) -> list[PrincipalRecord]: ...
    def get_domain_key(self, domain_id: str, version: str) -> DomainKeyRecord | None: ...
    def current_domain_key(self, domain_id: str) -> DomainKeyRecord | None: ...
    def list_domain_keys(self, domain_id: str) -> list[DomainKeyRecord]:
        """Every backup-key version held for a domain, oldest first."""
        ...

    def get_object(self, vault_id: str, kind: str, lname: str) -> ObjectRecord | None: ...
    def get_version(
        self, vault_id: str, kind: str, lname: str, version: str
    ) -> VersionRecord | None: ...
    def get_current(
        self, vault_id: str, kind: str, lname: str, version: str
    ) -> tuple[ObjectRecord, VersionRecord] | None:
        """An object with one of its versions ("" = the latest), deleted or not."""
        ...

    def list_objects(
        self, vault_id: str, kind: str, *, deleted: bool, after: str | None, limit: int
    ) -> list[tuple[ObjectRecord, VersionRecord]]: ...
    def list_versions(
        self, vault_id: str, kind: str, lname: str, *, after: int | None, limit: int
    ) -> list[tuple[int, VersionRecord]]: ...
    def all_versions(self, vault_id: str, kind: str, lname: str) -> list[VersionRecord]: ...
    def get_policy(self, vault_id: str, kind: str, lname: str) -> str | None:
        """An object's policy (a key's rotation policy) as JSON text, or None."""
        ...

    def list_policies(self, kind: str) -> list[tuple[str, str, str]]:
        """(vault_id, lname, body) of every policy of an active object of ``kind``."""
        ...

    def list_audit(self, vault: str | None, since: int, limit: int) -> list[AuditRecord]: ...
    def count_objects(self, vault_id: str) -> int: ...
    def count_by_kind(self, vault_id: str) -> dict[str, tuple[int, int]]:
        """(active, deleted) objects of the vault by kind."""
        ...

    def change_position(self, vault_id: str) -> int:
        """The number of the vault's last recorded change (0: none)."""
        ...

    def changes_after(self, vault_id: str, after: int, limit: int) -> list[tuple[int, str, str]]:
        """(seq, kind, lname) of what changed after ``after``, by seq: each object (or the
        vault's ``settings``) once, with the number of the last change that touched it."""
        ...

    def expired_deletions(self, now: int, limit: int) -> list[ObjectRecord]:
        """Deleted objects whose scheduled purge date is at or before ``now``."""
        ...


class Tx(Reads, Protocol):
    def set_meta(self, key: str, value: str) -> None: ...
    def delete_meta(self, key: str) -> None: ...
    def insert_audit(self, records: list[AuditRecord]) -> None: ...
    def insert_vault(self, vault: VaultRecord) -> None: ...
    def delete_vault(self, vault_id: str) -> None: ...
    def set_vault_open_access(self, vault_id: str, open_access: bool) -> None: ...
    def set_vault_replication(
        self, vault_id: str, *, replicable: bool, replica_of: str | None
    ) -> None: ...
    def note_change(self, vault_id: str, kind: str, lname: str) -> int | None:
        """Records that this transaction changed an object (or, kind ``settings``, the
        vault's settings) of a replicable vault, and returns the change's number; None (and
        nothing written) for a vault that is not replicable. Numbers follow commit order:
        the transaction holds the vault's row until it commits."""
        ...

    def insert_principal(self, principal: PrincipalRecord) -> None: ...
    def delete_principal(self, client_id: str) -> None: ...
    def insert_domain_key(self, key: DomainKeyRecord) -> None: ...
    def delete_domain_key(self, domain_id: str, version: str) -> None: ...
    def insert_object(self, obj: ObjectRecord) -> None: ...
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
        """Points an *active* object at ``version``; returns its name, or None if there is no
        such object or (unless ``managed``) its latest version is managed by a certificate.
        ``name``: the name as the caller wrote it, which is usually the stored one; a backend
        may then skip reading the stored name back."""
        ...

    def insert_version(self, version: VersionRecord) -> None: ...
    def insert_versions(self, versions: list[VersionRecord]) -> None:
        """``insert_version`` of each, in one statement (a restore's versions)."""
        ...

    def update_version(self, version: VersionRecord) -> None:
        """Replaces everything of a version but its identity and ``created`` (a storage
        account's keys and a SAS definition's template are resealed in place)."""
        ...

    def set_deleted(
        self, vault_id: str, kind: str, lname: str, deleted: int | None, purge: int | None
    ) -> None: ...
    def set_policy(self, vault_id: str, kind: str, lname: str, body: str) -> None: ...
    def purge_object(self, vault_id: str, kind: str, lname: str) -> None:
        """Removes the object, its versions and its policy."""
        ...


class Store(Protocol):
    # True when other processes write to the same database (PostgreSQL): nothing read may be
    # cached above the store, since no write of another process would forget it.
    shared: bool

    @property
    def reads(self) -> Reads: ...
    def revocation_marker(self) -> int:
        """A number that has changed by the time any process's transaction deleting a
        principal has committed (it may change more often): a caller that saw a principal
        exist under one value re-reads it when the value differs. Cheap: read per request."""
        ...

    def foreign_commits(self) -> int:
        """A number that changes whenever another process sharing this store (not ``shared``:
        a worker of the same ``serve``) has committed; a cache compares it before each use."""
        ...

    def exclusive(self, name: str) -> AbstractContextManager[bool]:
        """A lock across every process of the store: yields True if this one holds it (it is
        released on exit), False if another holds it now."""
        ...

    def snapshot(self) -> AbstractContextManager[Reads]:
        """Reads of one consistent state of the whole store: every transaction committed
        before it was taken and none after, for as long as the context lasts (a whole-vault
        backup). For the thread that entered it only; it holds no lock writers wait for."""
        ...

    def transact(self, fn: Callable[[Tx], T]) -> Future[T]: ...
    def transact_async(self, fn: Callable[[Tx], T]) -> asyncio.Future[T]:
        """Like ``transact``, for callers on an event loop: resolves on the caller's loop.
        Commits the request's ``PendingAudit`` record, if any, in the same transaction."""
        ...

    def close(self) -> None: ...
