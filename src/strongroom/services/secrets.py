"""Secrets: Key Vault's secret operations, named after the REST API.

Writes run as one store transaction each (``transact``), so every check that decides a write
(name soft-deleted? version exists?) is made inside the transaction that performs it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from strongroom.crypto.envelope import SealBroken, aad
from strongroom.errors import BadParameter, Conflict, Forbidden, NotFound, StrongroomError
from strongroom.identifiers import check_object_name, new_version
from strongroom.models import Attributes, Deletion, Kind, Page, SecretVersion
from strongroom.services import backup
from strongroom.services.installation import Installation
from strongroom.store.base import ObjectRecord, Tx, VaultRecord, VersionRecord

T = TypeVar("T")
KIND = Kind.SECRET.value
MAX_VALUE_BYTES = 25 * 1024
MAX_TAGS = 15
MAX_PAGE = 25


@dataclass(frozen=True, slots=True)
class AttributeInput:
    """Attributes as a request gives them: None means "not given"."""

    enabled: bool | None = None
    nbf: int | None = None
    exp: int | None = None


def _not_found(name: str) -> NotFound:
    return NotFound(
        f"A secret with (name/id) {name} was not found in this key vault. If you recently "
        "deleted this secret you may be able to recover it using the correct recovery command.",
        code="SecretNotFound",
    )


def _deleted_not_found(name: str) -> NotFound:
    return NotFound(f"Deleted Secret not found: {name}", code="SecretNotFound")


def _check_tags(tags: dict[str, str] | None) -> str | None:
    if tags is None:
        return None
    if len(tags) > MAX_TAGS:
        raise BadParameter(f"A secret can carry at most {MAX_TAGS} tags; {len(tags)} were given.")
    for key, value in tags.items():
        if len(key) > 512 or len(value) > 256:
            raise BadParameter(
                f"Tag '{key[:40]}' is too long: names may have 512 characters, values 256."
            )
    return json.dumps(tags, separators=(",", ":"))


def _check_window(nbf: int | None, exp: int | None) -> None:
    if nbf is not None and exp is not None and exp < nbf:
        raise BadParameter("attributes.exp must not be earlier than attributes.nbf.")


def _encode_token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> str | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadParameter("The $skiptoken is not one this server issued.") from exc


def check_page_size(maxresults: int | None) -> int:
    if maxresults is None:
        return MAX_PAGE
    if not 1 <= maxresults <= MAX_PAGE:
        raise BadParameter(f"maxresults must be between 1 and {MAX_PAGE}; {maxresults} was given.")
    return maxresults


class _ReadCache:
    """Recently read secret versions, so a hot GET skips the store and the unseal.

    Correct because this process is the only writer of its store (SQLite: one server process)
    and every write forgets the object's entries after its commit and before its caller is
    answered; all of it happens on the event loop's thread. A GET served from here between a
    write's commit and its acknowledgement returns the previous value, which is allowed: the
    write has not completed yet. A backend shared by several processes must not use it.

    Values are plaintext, as they are anyway while a response is built; the process already
    holds every key that opens them.
    """

    MAX_OBJECTS = 10_000

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str], dict[str, SecretVersion]] = {}

    def get(self, vault_id: str, lname: str, version: str) -> SecretVersion | None:
        versions = self._objects.get((vault_id, lname))
        return None if versions is None else versions.get(version)

    def put(self, vault_id: str, lname: str, version: str, secret: SecretVersion) -> None:
        if len(self._objects) >= self.MAX_OBJECTS:
            self._objects.clear()
        self._objects.setdefault((vault_id, lname), {})[version] = secret

    def forget(self, vault_id: str, lname: str) -> None:
        self._objects.pop((vault_id, lname), None)

    def clear(self) -> None:
        self._objects.clear()


class SecretService:
    def __init__(self, inst: Installation):
        self._inst = inst
        self._store = inst.store
        self._cache = _ReadCache()

    async def _write(self, fn: Callable[[Tx], T], vault: VaultRecord, lname: str) -> T:
        try:
            return await self._store.transact_async(fn)
        finally:
            # After the commit and before the caller hears of it (see ``_ReadCache``).
            self._cache.forget(vault.id, lname)

    # -- sealing ----------------------------------------------------------------------------

    def _seal(self, vault: VaultRecord, lname: str, version: str, value: str) -> bytes:
        sealer = self._inst.keyring.vault_sealer(vault)
        return sealer.seal(value.encode(), aad(vault.id, KIND, lname, version))

    def _open(self, vault: VaultRecord, record: VersionRecord) -> str:
        sealer = self._inst.keyring.vault_sealer(vault)
        try:
            plain = sealer.open(record.sealed, aad(vault.id, KIND, record.lname, record.version))
        except SealBroken as exc:
            # The untrusted store handed back a value that is not the one sealed for this row.
            raise StrongroomError(
                f"Stored value of secret version {record.version} failed its integrity check.",
                code="InternalError",
            ) from exc
        return plain.decode()

    @staticmethod
    def _to_model(obj: ObjectRecord, v: VersionRecord, value: str | None = None) -> SecretVersion:
        return SecretVersion(
            name=obj.name,
            version=v.version,
            attributes=Attributes(v.enabled, v.nbf, v.exp, v.created, v.updated),
            content_type=v.content_type,
            tags=json.loads(v.tags) if v.tags is not None else None,
            value=value,
            managed=v.managed,
        )

    # -- reads ------------------------------------------------------------------------------

    def _active(self, vault: VaultRecord, name: str) -> ObjectRecord:
        obj = self._store.reads.get_object(vault.id, KIND, name.lower())
        if obj is None or obj.deleted_date is not None:
            raise _not_found(name)
        return obj

    def get_secret(self, vault: VaultRecord, name: str, version: str = "") -> SecretVersion:
        lname = name.lower()
        hit = self._cache.get(vault.id, lname, version)
        if hit is not None:
            return hit
        found = self._store.reads.get_current(vault.id, KIND, name.lower(), version)
        if found is None or found[0].deleted_date is not None:
            raise _not_found(f"{name}/{version}" if version else name)
        obj, record = found
        if not record.enabled:
            raise Forbidden(
                "Operation get is not allowed on a disabled secret.", inner="SecretDisabled"
            )
        secret = self._to_model(obj, record, self._open(vault, record))
        self._cache.put(vault.id, lname, version, secret)
        return secret

    def get_secrets(
        self, vault: VaultRecord, maxresults: int | None, skiptoken: str | None
    ) -> Page[SecretVersion]:
        limit = check_page_size(maxresults)
        rows = self._store.reads.list_objects(
            vault.id, KIND, deleted=False, after=_decode_token(skiptoken), limit=limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        items = [self._to_model(o, v) for o, v in rows]
        return Page(items, _encode_token(rows[-1][0].lname) if more else None)

    def get_secret_versions(
        self, vault: VaultRecord, name: str, maxresults: int | None, skiptoken: str | None
    ) -> Page[SecretVersion]:
        limit = check_page_size(maxresults)
        obj = self._active(vault, name)
        after_text = _decode_token(skiptoken)
        try:
            after = int(after_text) if after_text else None
        except ValueError as exc:
            raise BadParameter("The $skiptoken is not one this server issued.") from exc
        rows = self._store.reads.list_versions(
            vault.id, KIND, obj.lname, after=after, limit=limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        items = [self._to_model(obj, v) for _, v in rows]
        return Page(items, _encode_token(str(rows[-1][0])) if more else None)

    def get_deleted_secret(self, vault: VaultRecord, name: str) -> tuple[SecretVersion, Deletion]:
        obj = self._store.reads.get_object(vault.id, KIND, name.lower())
        if obj is None or obj.deleted_date is None or obj.scheduled_purge_date is None:
            raise _deleted_not_found(name)
        record = self._store.reads.get_version(vault.id, KIND, obj.lname, obj.latest_version)
        assert record is not None
        return self._to_model(obj, record), Deletion(obj.deleted_date, obj.scheduled_purge_date)

    def get_deleted_secrets(
        self, vault: VaultRecord, maxresults: int | None, skiptoken: str | None
    ) -> Page[tuple[SecretVersion, Deletion]]:
        limit = check_page_size(maxresults)
        rows = self._store.reads.list_objects(
            vault.id, KIND, deleted=True, after=_decode_token(skiptoken), limit=limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            (self._to_model(o, v), Deletion(o.deleted_date or 0, o.scheduled_purge_date or 0))
            for o, v in rows
        ]
        return Page(items, _encode_token(rows[-1][0].lname) if more else None)

    # -- writes -----------------------------------------------------------------------------

    async def set_secret(
        self,
        vault: VaultRecord,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        attributes: AttributeInput | None = None,
        tags: dict[str, str] | None = None,
    ) -> SecretVersion:
        check_object_name(name)
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise BadParameter(
                f"The secret value is {len(value.encode())} bytes; the limit is "
                f"{MAX_VALUE_BYTES} bytes (25 KiB)."
            )
        attrs = attributes or AttributeInput()
        _check_window(attrs.nbf, attrs.exp)
        tags_text = _check_tags(tags)
        lname = name.lower()
        version = new_version()
        sealed = self._seal(vault, lname, version, value)
        now = int(time.time())
        record = VersionRecord(
            vault_id=vault.id, kind=KIND, lname=lname, version=version, created=now, updated=now,
            enabled=True if attrs.enabled is None else attrs.enabled, nbf=attrs.nbf, exp=attrs.exp,
            content_type=content_type, tags=tags_text, sealed=sealed,
        )  # fmt: skip

        def write(tx: Tx) -> str:
            shown = tx.set_latest(vault.id, KIND, lname, version)
            if shown is None:
                existing = tx.get_object(vault.id, KIND, lname)
                if existing is not None:  # set_latest only skips deleted objects
                    raise Conflict(
                        f"Secret {existing.name} is currently in a deleted but recoverable "
                        "state, and its name cannot be reused; in this state, the secret can "
                        "only be recovered or purged.",
                        inner="ObjectIsDeletedButRecoverable",
                    )
                tx.insert_object(ObjectRecord(vault.id, KIND, lname, name, version, None, None))
                shown = name
            tx.insert_version(record)
            return shown

        shown = await self._write(write, vault, lname)
        obj = ObjectRecord(vault.id, KIND, lname, shown, version, None, None)
        return self._to_model(obj, record, value)

    async def update_secret(
        self,
        vault: VaultRecord,
        name: str,
        version: str = "",
        *,
        content_type: str | None = None,
        attributes: AttributeInput | None = None,
        tags: dict[str, str] | None = None,
    ) -> SecretVersion:
        attrs = attributes or AttributeInput()
        tags_text = _check_tags(tags)
        lname = name.lower()

        def write(tx: Tx) -> tuple[ObjectRecord, VersionRecord]:
            obj = tx.get_object(vault.id, KIND, lname)
            if obj is None or obj.deleted_date is not None:
                raise _not_found(name)
            current = tx.get_version(vault.id, KIND, lname, version or obj.latest_version)
            if current is None:
                raise _not_found(f"{name}/{version}")
            nbf = current.nbf if attrs.nbf is None else attrs.nbf
            exp = current.exp if attrs.exp is None else attrs.exp
            _check_window(nbf, exp)
            updated = replace(
                current,
                enabled=current.enabled if attrs.enabled is None else attrs.enabled,
                nbf=nbf,
                exp=exp,
                content_type=current.content_type if content_type is None else content_type,
                tags=current.tags if tags is None else tags_text,
                updated=int(time.time()),
            )
            tx.update_version(updated)
            return obj, updated

        obj, record = await self._write(write, vault, lname)
        return self._to_model(obj, record)

    async def delete_secret(self, vault: VaultRecord, name: str) -> tuple[SecretVersion, Deletion]:
        lname = name.lower()
        now = int(time.time())
        deletion = Deletion(now, now + vault.retention_days * 86400)

        def write(tx: Tx) -> tuple[ObjectRecord, VersionRecord]:
            obj = tx.get_object(vault.id, KIND, lname)
            if obj is None or obj.deleted_date is not None:
                raise _not_found(name)
            tx.set_deleted(
                vault.id, KIND, lname, deletion.deleted_date, deletion.scheduled_purge_date
            )
            latest = tx.get_version(vault.id, KIND, lname, obj.latest_version)
            assert latest is not None
            return obj, latest

        obj, latest = await self._write(write, vault, lname)
        return self._to_model(obj, latest), deletion

    async def recover_deleted_secret(self, vault: VaultRecord, name: str) -> SecretVersion:
        lname = name.lower()

        def write(tx: Tx) -> tuple[ObjectRecord, VersionRecord]:
            obj = tx.get_object(vault.id, KIND, lname)
            if obj is None or obj.deleted_date is None:
                raise _deleted_not_found(name)
            tx.set_deleted(vault.id, KIND, lname, None, None)
            latest = tx.get_version(vault.id, KIND, lname, obj.latest_version)
            assert latest is not None
            return obj, latest

        obj, latest = await self._write(write, vault, lname)
        return self._to_model(obj, latest)

    async def purge_deleted_secret(self, vault: VaultRecord, name: str) -> None:
        lname = name.lower()
        if vault.purge_protection:
            raise Forbidden(
                f"Operation 'DeletedSecretPurge' is not allowed: purge protection is enabled on "
                f"vault '{vault.name}'. The secret is purged automatically at its "
                "scheduledPurgeDate.",
                inner="PurgeProtectionEnabled",
            )

        def write(tx: Tx) -> None:
            obj = tx.get_object(vault.id, KIND, lname)
            if obj is None or obj.deleted_date is None:
                raise _deleted_not_found(name)
            tx.purge_object(vault.id, KIND, lname)

        await self._write(write, vault, lname)

    # -- backup and restore -----------------------------------------------------------------

    def backup_secret(self, vault: VaultRecord, name: str) -> bytes:
        obj = self._active(vault, name)
        versions = self._store.reads.all_versions(vault.id, KIND, obj.lname)
        items: list[dict[str, Any]] = []
        for v in versions:
            items.append(
                {
                    "version": v.version, "created": v.created, "updated": v.updated,
                    "enabled": v.enabled, "nbf": v.nbf, "exp": v.exp,
                    "contentType": v.content_type, "tags": v.tags, "managed": v.managed,
                    "value": self._open(vault, v),
                }
            )  # fmt: skip
        return backup.make_blob(self._inst, vault, Kind.SECRET, obj.name, items)

    async def restore_secret(self, vault: VaultRecord, blob: bytes) -> SecretVersion:
        name, items = backup.open_blob(self._inst, vault, Kind.SECRET, blob)
        try:
            check_object_name(name)
            lname = name.lower()
            records = [
                VersionRecord(
                    vault_id=vault.id,
                    kind=KIND,
                    lname=lname,
                    version=str(i["version"]),
                    created=int(i["created"]),
                    updated=int(i["updated"]),
                    enabled=bool(i["enabled"]),
                    nbf=i["nbf"],
                    exp=i["exp"],
                    content_type=i["contentType"],
                    tags=i["tags"],
                    managed=bool(i["managed"]),
                    sealed=self._seal(vault, lname, str(i["version"]), str(i["value"])),
                )
                for i in items
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise backup.malformed_payload() from exc
        if not records:
            raise backup.malformed_payload()

        def write(tx: Tx) -> ObjectRecord:
            if tx.get_object(vault.id, KIND, lname) is not None:
                raise Conflict(
                    f"There was a conflict restoring the secret '{name}'. This can happen if "
                    "either a secret with the same name exists in this vault (active or "
                    "deleted but recoverable) or a purge of that name has not finished. "
                    "Purge or rename it first.",
                )
            obj = ObjectRecord(vault.id, KIND, lname, name, records[-1].version, None, None)
            tx.insert_object(obj)
            for record in records:
                tx.insert_version(record)
            return obj

        obj = await self._write(write, vault, lname)
        return self._to_model(obj, records[-1])

    # -- housekeeping -----------------------------------------------------------------------

    async def purge_expired(self, now: int | None = None) -> int:
        """Purges deleted objects whose scheduledPurgeDate has passed; returns how many."""
        when = int(time.time()) if now is None else now

        def write(tx: Tx) -> int:
            expired = tx.expired_deletions(when, 500)
            for obj in expired:
                tx.purge_object(obj.vault_id, obj.kind, obj.lname)
            return len(expired)

        try:
            return await self._store.transact_async(write)
        finally:
            self._cache.clear()
