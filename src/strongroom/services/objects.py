"""What every Key Vault object kind shares: versions, paging, soft delete, recover, purge,
backup and restore, and the read cache. ``SecretService`` and ``KeyService`` build on it.

Writes run as one store transaction each, so every check that decides a write (is the name
soft-deleted? does the version exist?) is made inside the transaction that performs it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from strongroom import codec
from strongroom.crypto.envelope import SealBroken, aad
from strongroom.errors import BadParameter, Conflict, Forbidden, NotFound, StrongroomError
from strongroom.identifiers import check_object_name
from strongroom.models import Attributes, Deletion, Kind, Page
from strongroom.services import backup
from strongroom.services.installation import Installation
from strongroom.store.base import ObjectRecord, Reads, Store, Tx, VaultRecord, VersionRecord

T = TypeVar("T")
M = TypeVar("M")
MAX_TAGS = 15
# Timestamps Strongroom accepts: 1970-01-01 to 9999-12-31T23:59:59Z, what the Azure SDK's
# datetime conversion can represent (and far inside what the stores hold).
MAX_UNIXTIME = 253_402_300_799
MAX_PAGE = 25
log = logging.getLogger(__name__)


class Due(NamedTuple):
    """What one scheduler step did: actions done, and objects whose action failed (each is
    logged and skipped, so that one bad object never stops the pass for the others)."""

    done: int
    failed: int


@dataclass(frozen=True, slots=True)
class AttributeInput:
    """Attributes as a request gives them: None means "not given"."""

    enabled: bool | None = None
    nbf: int | None = None
    exp: int | None = None


def check_tags(tags: dict[str, str] | None) -> str | None:
    if tags is None:
        return None
    if len(tags) > MAX_TAGS:
        raise BadParameter(f"An object can carry at most {MAX_TAGS} tags; {len(tags)} were given.")
    for key, value in tags.items():
        if len(key) > 512 or len(value) > 256:
            raise BadParameter(
                f"Tag '{key[:40]}' is too long: names may have 512 characters, values 256."
            )
    return json.dumps(tags, separators=(",", ":"))


MAX_CONTENT_TYPE = 255


def check_content_type(content_type: str | None) -> str | None:
    if content_type is not None and len(content_type) > MAX_CONTENT_TYPE:
        raise BadParameter(
            f"contentType is {len(content_type)} characters; the limit is {MAX_CONTENT_TYPE}."
        )
    return content_type


def check_window(nbf: int | None, exp: int | None) -> None:
    if nbf is not None and exp is not None and exp < nbf:
        raise BadParameter("attributes.exp must not be earlier than attributes.nbf.")


def check_page_size(maxresults: int | None) -> int:
    if maxresults is None:
        return MAX_PAGE
    if not 1 <= maxresults <= MAX_PAGE:
        raise BadParameter(f"maxresults must be between 1 and {MAX_PAGE}; {maxresults} was given.")
    return maxresults


def encode_skiptoken(text: str) -> str:
    return codec.b64url_encode(text.encode())


def decode_skiptoken(token: str | None) -> str | None:
    if not token:
        return None
    try:
        return codec.b64url_decode(token, "$skiptoken").decode()
    except (BadParameter, UnicodeDecodeError) as exc:
        raise BadParameter("The $skiptoken is not one this server issued.") from exc


def attributes_of(v: VersionRecord) -> Attributes:
    return Attributes(v.enabled, v.nbf, v.exp, v.created, v.updated)


def tags_of(v: VersionRecord) -> dict[str, str] | None:
    return json.loads(v.tags) if v.tags is not None else None


def replication_unit(reads: Reads, obj: ObjectRecord) -> tuple[str, str]:
    """What a replica fetches again when ``obj`` changes: a certificate's key or secret is its
    certificate, a SAS definition its storage account, anything else itself."""
    if obj.kind == Kind.SAS.value:
        return Kind.STORAGE.value, obj.lname.split("/", 1)[0]
    if obj.kind in (Kind.KEY.value, Kind.SECRET.value):
        latest = reads.get_version(obj.vault_id, obj.kind, obj.lname, obj.latest_version)
        if latest is not None and latest.managed:
            return Kind.CERTIFICATE.value, obj.lname
    return obj.kind, obj.lname


def deleted_dates(deletion: Deletion | None) -> tuple[int | None, int | None]:
    """An object record's (deleted_date, scheduled_purge_date) for ``deletion``."""
    if deletion is None:
        return None, None
    return deletion.deleted_date, deletion.scheduled_purge_date


@dataclass(frozen=True, slots=True)
class Export:
    """One object as a backup carries it: its name as created, every version with its
    material, and the kind's object-level state (a rotation policy, a certificate's policy,
    SAS definitions). ``fingerprint`` tells two exports of the same content apart from
    different ones: a restore finds an object it would write already there, unchanged."""

    kind: Kind
    name: str
    versions: list[dict[str, Any]]
    extras: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return {"name": self.name, "versions": self.versions, **self.extras}

    def fingerprint(self) -> str:
        text = json.dumps(self.payload(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


class ReadCache(Generic[M]):
    """Recently read versions, so a hot GET skips the store and the unseal.

    Correct because every write of this process forgets the object's entries after its commit
    and before its caller is answered, all of it on the event loop's thread; and because a
    write of another worker of the same ``serve`` (``Store.foreign_commits`` changes) empties
    the cache before its next use. That check comes before the store is read, so a value read
    while another worker commits is dropped at the next use. A GET served from here between a
    write's commit and its acknowledgement returns the previous value, which is allowed: the
    write has not completed yet. With a store shared by processes that tell nothing of their
    writes (``Store.shared``: PostgreSQL) it is built disabled and holds nothing.

    Values may be plaintext, as they are anyway while a response is built; the process already
    holds every key that opens them.
    """

    MAX_OBJECTS = 10_000

    def __init__(self, store: Store) -> None:
        self._objects: dict[tuple[str, str], dict[str, M]] = {}
        self._enabled = not store.shared
        self._foreign = store.foreign_commits
        self._seen = self._foreign()

    def get(self, vault_id: str, lname: str, version: str) -> M | None:
        seen = self._foreign()
        if seen != self._seen:  # another worker wrote: anything here may be stale
            self._objects.clear()
            self._seen = seen
            return None
        versions = self._objects.get((vault_id, lname))
        return None if versions is None else versions.get(version)

    def put(self, vault_id: str, lname: str, version: str, item: M) -> None:
        if not self._enabled:
            return
        if len(self._objects) >= self.MAX_OBJECTS:
            self._objects.clear()
        self._objects.setdefault((vault_id, lname), {})[version] = item

    def forget(self, vault_id: str, lname: str) -> None:
        self._objects.pop((vault_id, lname), None)

    def clear(self) -> None:
        self._objects.clear()


class ObjectService(Generic[M]):
    """Lifecycle shared by every kind. Subclasses set the names and build their model."""

    KIND: Kind
    NOUN: str  # "secret": in messages
    TITLE: str  # "Secret": in messages that start with it
    NOT_FOUND: str  # Key Vault's code, e.g. "SecretNotFound"

    def __init__(self, inst: Installation):
        self._inst = inst
        self._store = inst.store
        self._kind = self.KIND.value

    def _model(self, obj: ObjectRecord, v: VersionRecord) -> M:
        raise NotImplementedError

    def forget_reads(self, vault_id: str, lname: str) -> None:
        """Drops cached reads of one object (subclasses with a cache override this)."""

    def forget_all_reads(self) -> None:
        """Drops every cached read."""

    def change_of(self, lname: str) -> tuple[str, str]:
        """The replication unit an object's write changes (``Tx.note_change``): the object
        itself; a SAS definition's is its storage account."""
        return self._kind, lname

    def _noting(self, fn: Callable[[Tx], T], vault: VaultRecord, lname: str) -> Callable[[Tx], T]:
        kind, unit = self.change_of(lname)

        def job(tx: Tx) -> T:
            result = fn(tx)
            tx.note_change(vault.id, kind, unit)
            return result

        return job

    async def _write(self, fn: Callable[[Tx], T], vault: VaultRecord, lname: str) -> T:
        # A replicable vault's replicas need the change numbered, in the same transaction.
        job = self._noting(fn, vault, lname) if vault.replicable else fn
        try:
            return await self._store.transact_async(job)
        finally:
            # After the commit and before the caller hears of it (see ``ReadCache``).
            self.forget_reads(vault.id, lname)

    # -- errors -----------------------------------------------------------------------------

    def not_found(self, name: str) -> NotFound:
        return NotFound(
            f"A {self.NOUN} with (name/id) {name} was not found in this key vault. If you "
            f"recently deleted this {self.NOUN} you may be able to recover it using the correct "
            "recovery command.",
            code=self.NOT_FOUND,
        )

    def deleted_not_found(self, name: str) -> NotFound:
        return NotFound(f"Deleted {self.TITLE} not found: {name}", code=self.NOT_FOUND)

    def managed_by_key_vault(self, operation: str) -> Forbidden:
        return Forbidden(
            f'Operation "{operation}" is not allowed as this object\'s lifetime is managed by '
            "Key Vault: it belongs to a certificate of the same name; change the certificate.",
            inner=f"{self.TITLE}ManagedByKeyVault",
        )

    def _refuse_managed(
        self, tx: Tx, vault: VaultRecord, obj: ObjectRecord, operation: str
    ) -> None:
        latest = tx.get_version(vault.id, self._kind, obj.lname, obj.latest_version)
        if latest is not None and latest.managed:
            raise self.managed_by_key_vault(operation)

    # -- sealing ----------------------------------------------------------------------------

    def seal(self, vault: VaultRecord, lname: str, version: str, plain: bytes) -> bytes:
        sealer = self._inst.keyring.vault_sealer(vault)
        return sealer.seal(plain, aad(vault.id, self._kind, lname, version))

    def unseal(self, vault: VaultRecord, record: VersionRecord) -> bytes:
        sealer = self._inst.keyring.vault_sealer(vault)
        try:
            return sealer.open(
                record.sealed, aad(vault.id, self._kind, record.lname, record.version)
            )
        except SealBroken as exc:
            # The untrusted store handed back a value that is not the one sealed for this row.
            raise StrongroomError(
                f"Stored {self.NOUN} version {record.version} failed its integrity check.",
                code="InternalError",
            ) from exc

    # -- reads ------------------------------------------------------------------------------

    def active(self, vault: VaultRecord, name: str) -> ObjectRecord:
        obj = self._store.reads.get_object(vault.id, self._kind, name.lower())
        if obj is None or obj.deleted_date is not None:
            raise self.not_found(name)
        return obj

    def current(
        self, vault: VaultRecord, name: str, version: str = ""
    ) -> tuple[ObjectRecord, VersionRecord]:
        """An active object and one version ("" = latest), or the kind's 404."""
        found = self._store.reads.get_current(vault.id, self._kind, name.lower(), version)
        if found is None or found[0].deleted_date is not None:
            raise self.not_found(f"{name}/{version}" if version else name)
        return found

    def list_page(self, vault: VaultRecord, maxresults: int | None, skip: str | None) -> Page[M]:
        limit = check_page_size(maxresults)
        rows = self._store.reads.list_objects(
            vault.id, self._kind, deleted=False, after=decode_skiptoken(skip), limit=limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        items = [self._model(o, v) for o, v in rows]
        return Page(items, encode_skiptoken(rows[-1][0].lname) if more else None)

    def versions_page(
        self, vault: VaultRecord, name: str, maxresults: int | None, skip: str | None
    ) -> Page[M]:
        limit = check_page_size(maxresults)
        obj = self._store.reads.get_object(vault.id, self._kind, name.lower())
        if obj is None or obj.deleted_date is not None:
            # Key Vault lists no versions for an unknown name rather than a 404 (the SDK's
            # recorded sample test_example_secret_list_operations expects an empty page).
            return Page([], None)
        after_text = decode_skiptoken(skip)
        try:
            after = int(after_text) if after_text else None
        except ValueError as exc:
            raise BadParameter("The $skiptoken is not one this server issued.") from exc
        rows = self._store.reads.list_versions(
            vault.id, self._kind, obj.lname, after=after, limit=limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        items = [self._model(obj, v) for _, v in rows]
        return Page(items, encode_skiptoken(str(rows[-1][0])) if more else None)

    def get_deleted(self, vault: VaultRecord, name: str) -> tuple[M, Deletion]:
        obj = self._store.reads.get_object(vault.id, self._kind, name.lower())
        if obj is None or obj.deleted_date is None or obj.scheduled_purge_date is None:
            raise self.deleted_not_found(name)
        record = self._store.reads.get_version(vault.id, self._kind, obj.lname, obj.latest_version)
        assert record is not None
        return self._model(obj, record), Deletion(obj.deleted_date, obj.scheduled_purge_date)

    def list_deleted(
        self, vault: VaultRecord, maxresults: int | None, skip: str | None
    ) -> Page[tuple[M, Deletion]]:
        limit = check_page_size(maxresults)
        rows = self._store.reads.list_objects(
            vault.id, self._kind, deleted=True, after=decode_skiptoken(skip), limit=limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            (self._model(o, v), Deletion(o.deleted_date or 0, o.scheduled_purge_date or 0))
            for o, v in rows
        ]
        return Page(items, encode_skiptoken(rows[-1][0].lname) if more else None)

    # -- writes -----------------------------------------------------------------------------

    async def add_version(self, vault: VaultRecord, name: str, record: VersionRecord) -> M:
        """Adds ``record`` as the new latest version, creating the object if needed."""
        check_object_name(name, self.NOUN)
        lname = record.lname

        def write(tx: Tx) -> str:
            shown = tx.set_latest(vault.id, self._kind, lname, record.version, name=name)
            if shown is None:
                existing = tx.get_object(vault.id, self._kind, lname)
                if existing is not None and existing.deleted_date is None:
                    raise self.managed_by_key_vault("set")
                if existing is not None:
                    raise Conflict(
                        f"{self.TITLE} {existing.name} is currently in a deleted but "
                        f"recoverable state, and its name cannot be reused; in this state, the "
                        f"{self.NOUN} can only be recovered or purged.",
                        inner="ObjectIsDeletedButRecoverable",
                    )
                obj = ObjectRecord(vault.id, self._kind, lname, name, record.version, None, None)
                tx.insert_object(obj)
                shown = name
            tx.insert_version(record)
            return shown

        shown = await self._write(write, vault, lname)
        obj = ObjectRecord(vault.id, self._kind, lname, shown, record.version, None, None)
        return self._model(obj, record)

    async def change_version(
        self,
        vault: VaultRecord,
        name: str,
        version: str,
        change: Callable[[VersionRecord], VersionRecord],
        after: Callable[[Tx, VersionRecord], None] | None = None,
    ) -> M:
        """Applies ``change`` to one version ("" = latest) and stamps ``updated``; ``after``
        writes what goes with the changed version, in the same transaction."""
        lname = name.lower()

        def write(tx: Tx) -> tuple[ObjectRecord, VersionRecord]:
            obj = tx.get_object(vault.id, self._kind, lname)
            if obj is None or obj.deleted_date is not None:
                raise self.not_found(name)
            current = tx.get_version(vault.id, self._kind, lname, version or obj.latest_version)
            if current is None:
                raise self.not_found(f"{name}/{version}")
            if current.managed and self.KIND is not Kind.CERTIFICATE:
                raise self.managed_by_key_vault("update")
            updated = change(current)
            check_window(updated.nbf, updated.exp)
            tx.update_version(updated)
            if after is not None:
                after(tx, updated)
            return obj, updated

        obj, record = await self._write(write, vault, lname)
        return self._model(obj, record)

    async def delete(self, vault: VaultRecord, name: str) -> tuple[M, Deletion]:
        lname = name.lower()
        now = self._inst.clock.now()
        deletion = Deletion(now, now + vault.retention_days * 86400)

        def write(tx: Tx) -> tuple[ObjectRecord, VersionRecord]:
            obj = tx.get_object(vault.id, self._kind, lname)
            if obj is None or obj.deleted_date is not None:
                raise self.not_found(name)
            self._refuse_managed(tx, vault, obj, "delete")
            tx.set_deleted(
                vault.id, self._kind, lname, deletion.deleted_date, deletion.scheduled_purge_date
            )
            self._delete_related(tx, vault, lname, deletion)
            latest = tx.get_version(vault.id, self._kind, lname, obj.latest_version)
            assert latest is not None
            return obj, latest

        obj, latest = await self._write(write, vault, lname)
        return self._model(obj, latest), deletion

    async def recover(self, vault: VaultRecord, name: str) -> M:
        lname = name.lower()

        def write(tx: Tx) -> tuple[ObjectRecord, VersionRecord]:
            obj = tx.get_object(vault.id, self._kind, lname)
            if obj is None or obj.deleted_date is None:
                raise self.deleted_not_found(name)
            tx.set_deleted(vault.id, self._kind, lname, None, None)
            self._recover_related(tx, vault, obj)
            latest = tx.get_version(vault.id, self._kind, lname, obj.latest_version)
            assert latest is not None
            return obj, latest

        obj, latest = await self._write(write, vault, lname)
        return self._model(obj, latest)

    async def purge(self, vault: VaultRecord, name: str) -> None:
        lname = name.lower()
        if vault.purge_protection:
            raise Forbidden(
                f"Operation 'Deleted{self.TITLE}Purge' is not allowed: purge protection is "
                f"enabled on vault '{vault.name}'. The {self.NOUN} is purged automatically at "
                "its scheduledPurgeDate.",
                inner="PurgeProtectionEnabled",
            )

        def write(tx: Tx) -> None:
            obj = tx.get_object(vault.id, self._kind, lname)
            if obj is None or obj.deleted_date is None:
                raise self.deleted_not_found(name)
            tx.purge_object(vault.id, self._kind, lname)
            self._purge_related(tx, vault, lname)

        await self._write(write, vault, lname)

    def _delete_related(self, tx: Tx, vault: VaultRecord, lname: str, deletion: Deletion) -> None:
        """Soft-deletes what goes with the object, inside the delete's transaction."""

    def _recover_related(self, tx: Tx, vault: VaultRecord, obj: ObjectRecord) -> None:
        """Recovers what went with the object (``obj`` as it was, deleted), in the same
        transaction."""

    def _purge_related(self, tx: Tx, vault: VaultRecord, lname: str) -> None:
        """Purges what goes with the object, inside the purge's transaction."""

    async def purge_expired(self, now: int | None = None) -> Due:
        """Purges deleted objects of every kind whose scheduledPurgeDate has passed, each in a
        transaction of its own."""
        when = self._inst.clock.now() if now is None else now
        done = failed = 0
        try:
            for obj in self._store.reads.expired_deletions(when, 500):
                vault = self._store.reads.get_vault_by_id(obj.vault_id)
                if vault is not None and vault.replica_of is not None:
                    continue  # a replica's purges come from its source

                def write(tx: Tx, obj: ObjectRecord = obj) -> None:
                    current = tx.get_object(obj.vault_id, obj.kind, obj.lname)
                    purge = None if current is None else current.scheduled_purge_date
                    if purge is not None and purge <= when:  # not recovered meanwhile
                        unit = replication_unit(tx, obj)
                        tx.purge_object(obj.vault_id, obj.kind, obj.lname)
                        tx.note_change(obj.vault_id, *unit)

                try:
                    await self._store.transact_async(write)
                    done += 1
                except Exception:
                    log.exception("purging %s %s failed; skipped", obj.kind, obj.lname)
                    failed += 1
        finally:
            self.forget_all_reads()
        return Due(done, failed)

    # -- backup and restore -----------------------------------------------------------------

    @staticmethod
    def backup_entry(v: VersionRecord) -> dict[str, Any]:
        """One version's metadata as a backup payload carries it."""
        return {
            "version": v.version, "created": v.created, "updated": v.updated,
            "enabled": v.enabled, "nbf": v.nbf, "exp": v.exp, "contentType": v.content_type,
            "tags": v.tags, "managed": v.managed, "extra": v.extra,
        }  # fmt: skip

    def restored_version(
        self, vault: VaultRecord, lname: str, item: dict[str, Any], plain: bytes
    ) -> VersionRecord:
        """A backed-up version, resealed for ``vault``, with its original id and timestamps."""
        version = str(item["version"])
        return VersionRecord(
            vault_id=vault.id, kind=self._kind, lname=lname, version=version,
            created=int(item["created"]), updated=int(item["updated"]),
            enabled=bool(item["enabled"]), nbf=item["nbf"], exp=item["exp"],
            content_type=item["contentType"], tags=item["tags"], managed=bool(item["managed"]),
            sealed=self.seal(vault, lname, version, plain), extra=item.get("extra"),
        )  # fmt: skip

    def export(self, reads: Reads, vault: VaultRecord, obj: ObjectRecord) -> Export:
        """The object as a backup carries it, read through ``reads`` (the store's, or a
        snapshot's), whether it is active or deleted."""
        items = []
        for v in reads.all_versions(vault.id, self._kind, obj.lname):
            entry = self.backup_entry(v)
            entry.update(self._backup_material(vault, v))
            items.append(entry)
        return Export(self.KIND, obj.name, items, self._backup_extras(reads, vault, obj))

    def _backup_material(self, vault: VaultRecord, v: VersionRecord) -> dict[str, Any]:
        """One version's material, as the kind's backup entries carry it."""
        raise NotImplementedError

    def _restored_material(self, item: dict[str, Any]) -> bytes:
        """The plaintext to seal for one backed-up version (``_backup_material``'s inverse);
        ``KeyError``, ``TypeError`` or ``ValueError`` refuse the blob as malformed."""
        raise NotImplementedError

    def backup_object(self, vault: VaultRecord, name: str) -> bytes:
        """The sealed blob of an active object and all its versions (``POST …/backup``)."""
        obj = self.active(vault, name)
        return backup.seal_export(self._inst, vault, self.export(self._store.reads, vault, obj))

    async def restore_object(
        self,
        vault: VaultRecord,
        blob: bytes,
        deletion: Deletion | None = None,
        *,
        replace: bool = False,
        after: Callable[[Tx], None] | None = None,
    ) -> M:
        """Re-creates the object a blob carries (``POST /{kind}/restore``); with ``deletion``,
        as a soft-deleted object (a whole-vault restore of a deleted one). ``replace``: an
        object of that name is replaced, not a conflict (a replica applying its source's
        state); ``after`` writes what goes with it, in the same transaction."""
        return await self.restore(
            vault, blob, self._restored_material, deletion, replace=replace, after=after
        )

    def purge_in(self, tx: Tx, vault: VaultRecord, lname: str) -> None:
        """Removes an object, whatever its state, with what goes with it, inside ``tx``."""
        tx.purge_object(vault.id, self._kind, lname)
        self._purge_related(tx, vault, lname)

    def _backup_extras(self, reads: Reads, vault: VaultRecord, obj: ObjectRecord) -> dict[str, Any]:
        """Object-level state to carry beside the versions; restored by ``_restore_extras``."""
        return {}

    def _prepare_extras(self, vault: VaultRecord, lname: str, payload: dict[str, Any]) -> Any:
        """Checks and prepares what ``_backup_extras`` carried, before the restore's
        transaction: ``KeyError``, ``TypeError``, ``ValueError`` or ``BadParameter`` here
        refuse the blob as malformed, with nothing written."""
        return None

    def _restore_extras(self, tx: Tx, vault: VaultRecord, lname: str, prepared: Any) -> None:
        """Writes back what ``_prepare_extras`` prepared, inside the restore's transaction."""

    async def restore(
        self,
        vault: VaultRecord,
        blob: bytes,
        material: Callable[[dict[str, Any]], bytes],
        deletion: Deletion | None = None,
        *,
        replace: bool = False,
        after: Callable[[Tx], None] | None = None,
    ) -> M:
        """Re-creates every version with its id and timestamps; ``material`` gives the
        plaintext to seal for one backed-up version (``restore_object`` says the rest)."""
        name, items, payload = backup.open_blob(self._inst, vault, self.KIND, blob)
        try:
            check_object_name(name, self.NOUN)
            lname = name.lower()
            records = [self.restored_version(vault, lname, i, material(i)) for i in items]
            prepared = self._prepare_extras(vault, lname, payload)
        except (KeyError, TypeError, ValueError, BadParameter) as exc:
            raise backup.malformed_payload() from exc
        if not records:
            raise backup.malformed_payload()

        def write(tx: Tx) -> ObjectRecord:
            if tx.get_object(vault.id, self._kind, lname) is not None:
                if not replace:
                    raise Conflict(
                        f"There was a conflict restoring the {self.NOUN} '{name}'. This can "
                        f"happen if either a {self.NOUN} with the same name exists in this "
                        "vault (active or deleted but recoverable) or a purge of that name has "
                        "not finished. Purge or rename it first.",
                    )
                self.purge_in(tx, vault, lname)
            obj = ObjectRecord(
                vault.id, self._kind, lname, name, records[-1].version, *deleted_dates(deletion)
            )
            tx.insert_object(obj)
            tx.insert_versions(records)
            self._restore_extras(tx, vault, lname, prepared)
            if after is not None:
                after(tx)
            return obj

        obj = await self._write(write, vault, lname)
        return self._model(obj, records[-1])
