"""Keys: Key Vault's key operations (keys.json), named after the REST API.

Key material is sealed at rest like secret values. The public parts and the key's metadata
(kty, key_ops, public JWK, size, exportable, release policy) live in the version's ``extra``
JSON, so listing and reading keys never touches private material.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from typing import Any

from strongroom.crypto import keys as kc
from strongroom.crypto.pool import CpuPool
from strongroom.crypto.workers import OPERATIONS
from strongroom.errors import BadParameter, Forbidden
from strongroom.identifiers import check_object_name, new_version
from strongroom.models import Deletion, KeyResult, KeyVersion, Kind, Page
from strongroom.services import rotation
from strongroom.services.installation import Installation
from strongroom.services.objects import (
    AttributeInput,
    Due,
    ObjectService,
    ReadCache,
    attributes_of,
    check_tags,
    check_window,
    tags_of,
)
from strongroom.store.base import ObjectRecord, Reads, Tx, VaultRecord, VersionRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeyAttributeInput(AttributeInput):
    exportable: bool | None = None


def _check_ops(key_ops: list[str] | None) -> list[str] | None:
    if key_ops is None:
        return None
    for op in key_ops:
        if op not in kc.OPERATIONS:
            raise BadParameter(
                f"'{op:.20}' is not a key operation; use {', '.join(kc.OPERATIONS)}."
            )
    return list(key_ops)


def _check_release(exportable: bool | None, policy: dict[str, Any] | None) -> None:
    if exportable and policy is None:
        raise BadParameter("Exportable keys must have release policy")
    if policy is not None and not exportable:
        raise BadParameter("Non-exportable keys must not have release policy")


@dataclass(frozen=True, slots=True)
class _Usable:
    """What a cryptographic operation needs of one version, kept between operations."""

    record: VersionRecord
    kty: str
    key_ops: frozenset[str]
    material: bytes


class KeyService(ObjectService[KeyVersion]):
    KIND = Kind.KEY
    NOUN = "key"
    TITLE = "Key"
    NOT_FOUND = "KeyNotFound"

    def __init__(self, inst: Installation, pool: CpuPool):
        super().__init__(inst)
        self._pool = pool
        # Versions used by cryptographic operations: a sign or decrypt then skips the store
        # read, the unseal and the metadata parse (the same rules as the secrets' cache).
        self._usable_cache: ReadCache[_Usable] = ReadCache(inst.store)

    def forget_reads(self, vault_id: str, lname: str) -> None:
        self._usable_cache.forget(vault_id, lname)

    def forget_all_reads(self) -> None:
        self._usable_cache.clear()

    def _model(self, obj: ObjectRecord, v: VersionRecord) -> KeyVersion:
        meta = json.loads(v.extra or "{}")
        return KeyVersion(
            name=obj.name,
            version=v.version,
            kty=meta["kty"],
            key_ops=meta["key_ops"],
            public=meta["jwk"],
            key_size=meta["key_size"],
            attributes=attributes_of(v),
            tags=tags_of(v),
            managed=v.managed,
            exportable=meta.get("exportable"),
            release_policy=meta.get("release_policy"),
        )

    def _record(
        self,
        vault: VaultRecord,
        name: str,
        kty: str,
        material: bytes,
        key_ops: list[str] | None,
        attrs: KeyAttributeInput,
        tags: dict[str, str] | None,
        release_policy: dict[str, Any] | None,
        version: str | None = None,
    ) -> VersionRecord:
        info = kc.public_info(kty, material)
        meta = {
            "kty": kty,
            "key_ops": key_ops if key_ops is not None else kc.DEFAULT_OPS[kc.family(kty)],
            "jwk": info.jwk,
            "key_size": info.key_size,
            "exportable": attrs.exportable,
            "release_policy": release_policy,
        }
        lname, version, now = name.lower(), version or new_version(), self._inst.clock.now()
        return VersionRecord(
            vault_id=vault.id, kind=self._kind, lname=lname, version=version, created=now,
            updated=now, enabled=True if attrs.enabled is None else attrs.enabled,
            nbf=attrs.nbf, exp=attrs.exp, content_type=None, tags=check_tags(tags),
            sealed=self.seal(vault, lname, version, material),
            extra=json.dumps(meta, separators=(",", ":")),
        )  # fmt: skip

    # -- lifecycle --------------------------------------------------------------------------

    async def create_key(
        self,
        vault: VaultRecord,
        name: str,
        kty: str,
        *,
        key_size: int | None = None,
        public_exponent: int | None = None,
        crv: str | None = None,
        key_ops: list[str] | None = None,
        attributes: KeyAttributeInput | None = None,
        tags: dict[str, str] | None = None,
        release_policy: dict[str, Any] | None = None,
    ) -> KeyVersion:
        check_object_name(name, self.NOUN)
        if kty not in kc.KTYS:
            raise BadParameter(f"'kty' must be one of {', '.join(kc.KTYS)}; got {kty!r:.40}.")
        attrs = attributes or KeyAttributeInput()
        check_window(attrs.nbf, attrs.exp)
        _check_release(attrs.exportable, release_policy)
        ops = _check_ops(key_ops)
        check_tags(tags)
        if kc.family(kty) == "RSA":
            material = await self._pool.run(kc.generate, kty, key_size, crv, public_exponent)
        else:
            material = kc.generate(kty, key_size, crv, public_exponent)
        record = self._record(vault, name, kty, material, ops, attrs, tags, release_policy)
        return await self.add_version(vault, name, record)

    async def import_key(
        self,
        vault: VaultRecord,
        name: str,
        jwk: dict[str, Any],
        *,
        hsm: bool | None = None,
        attributes: KeyAttributeInput | None = None,
        tags: dict[str, str] | None = None,
        release_policy: dict[str, Any] | None = None,
    ) -> KeyVersion:
        check_object_name(name, self.NOUN)
        attrs = attributes or KeyAttributeInput()
        check_window(attrs.nbf, attrs.exp)
        _check_release(attrs.exportable, release_policy)
        ops = _check_ops(jwk.get("key_ops"))
        kty, material = kc.from_jwk(jwk)
        if hsm and not kty.endswith("-HSM"):
            kty += "-HSM"
        record = self._record(vault, name, kty, material, ops, attrs, tags, release_policy)
        return await self.add_version(vault, name, record)

    async def rotate_key(self, vault: VaultRecord, name: str) -> KeyVersion:
        """A new version of the same type, size and curve, keeping key_ops and tags."""
        _, latest = self.current(vault, name)
        meta = json.loads(latest.extra or "{}")
        kty = meta["kty"]
        kind = kc.family(kty)
        size = None if kind == "EC" else meta["key_size"]
        crv = meta["jwk"].get("crv")
        if kind == "RSA":
            material = await self._pool.run(kc.generate, kty, size, None, None)
        else:
            material = kc.generate(kty, size, crv, None)
        expiry = rotation.expiry_seconds(self._policy(vault, name.lower()))
        now = self._inst.clock.now()
        attrs = KeyAttributeInput(
            exp=None if expiry is None else now + expiry, exportable=meta.get("exportable")
        )
        record = self._record(
            vault, name, kty, material, meta["key_ops"], attrs, tags_of(latest),
            meta.get("release_policy"),
        )  # fmt: skip
        return await self.add_version(vault, name, record)

    # -- rotation policy --------------------------------------------------------------------

    def _policy(self, vault: VaultRecord, lname: str) -> dict[str, Any] | None:
        body = self._store.reads.get_policy(vault.id, self._kind, lname)
        return None if body is None else dict(json.loads(body))

    def get_key_rotation_policy(self, vault: VaultRecord, name: str) -> dict[str, Any]:
        obj = self.active(vault, name)
        return self._policy(vault, obj.lname) or rotation.DEFAULT_POLICY

    async def update_key_rotation_policy(
        self, vault: VaultRecord, name: str, requested: dict[str, Any]
    ) -> dict[str, Any]:
        policy = rotation.validate(requested)
        lname = name.lower()
        now = self._inst.clock.now()

        def write(tx: Tx) -> dict[str, Any]:
            obj = tx.get_object(vault.id, self._kind, lname)
            if obj is None or obj.deleted_date is not None:
                raise self.not_found(name)
            old = tx.get_policy(vault.id, self._kind, lname)
            created = json.loads(old)["attributes"].get("created", now) if old else now
            policy["attributes"].update(created=created, updated=now)
            tx.set_policy(vault.id, self._kind, lname, json.dumps(policy))
            return policy

        return await self._write(write, vault, lname)

    async def rotate_due_keys(self) -> Due:
        """One pass of the scheduler: rotates every key whose policy says it is time."""
        now = self._inst.clock.now()
        rotated = failed = 0
        for vault_id, lname, body in self._store.reads.list_policies(self._kind):
            try:
                vault = self._store.reads.get_vault_by_id(vault_id)
                found = self._store.reads.get_current(vault_id, self._kind, lname, "")
                if vault is None or found is None or vault.replica_of is not None:
                    continue  # a replica's rotations come from its source
                latest = found[1]
                if rotation.rotation_due(json.loads(body), latest.created, latest.exp, now):
                    await self.rotate_key(vault, found[0].name)
                    rotated += 1
            except Exception:
                log.exception("rotating key %s of vault %s failed; skipped", lname, vault_id)
                failed += 1
        return Due(rotated, failed)

    def _backup_extras(self, reads: Reads, vault: VaultRecord, obj: ObjectRecord) -> dict[str, Any]:
        policy = reads.get_policy(vault.id, self._kind, obj.lname)
        return {} if policy is None else {"rotationPolicy": json.loads(policy)}

    def _prepare_extras(self, vault: VaultRecord, lname: str, payload: dict[str, Any]) -> Any:
        policy = payload.get("rotationPolicy")
        if policy is not None and not isinstance(policy, dict):
            raise TypeError("rotationPolicy is not an object")
        return policy

    def _restore_extras(self, tx: Tx, vault: VaultRecord, lname: str, prepared: Any) -> None:
        if prepared is not None:
            tx.set_policy(vault.id, self._kind, lname, json.dumps(prepared))

    # -- reads ------------------------------------------------------------------------------

    def get_key(self, vault: VaultRecord, name: str, version: str = "") -> KeyVersion:
        return self._model(*self.current(vault, name, version))

    def get_keys(
        self, vault: VaultRecord, maxresults: int | None, skip: str | None
    ) -> Page[KeyVersion]:
        return self.list_page(vault, maxresults, skip)

    def get_key_versions(
        self, vault: VaultRecord, name: str, maxresults: int | None, skip: str | None
    ) -> Page[KeyVersion]:
        return self.versions_page(vault, name, maxresults, skip)

    async def update_key(
        self,
        vault: VaultRecord,
        name: str,
        version: str = "",
        *,
        key_ops: list[str] | None = None,
        attributes: KeyAttributeInput | None = None,
        tags: dict[str, str] | None = None,
        release_policy: dict[str, Any] | None = None,
    ) -> KeyVersion:
        attrs = attributes or KeyAttributeInput()
        ops = _check_ops(key_ops)
        tags_text = check_tags(tags)

        def change(current: VersionRecord) -> VersionRecord:
            meta = json.loads(current.extra or "{}")
            if ops is not None:
                meta["key_ops"] = ops
            if attrs.exportable is not None:
                meta["exportable"] = attrs.exportable
            if release_policy is not None:
                old = meta.get("release_policy") or {}
                if old.get("immutable"):
                    raise BadParameter(
                        "AKV.SKR.1020: Immutable Key Release Policy cannot be modified."
                    )
                meta["release_policy"] = release_policy
            if release_policy is not None or attrs.exportable is not None:
                _check_release(meta.get("exportable"), meta.get("release_policy"))
            return replace(
                current,
                enabled=current.enabled if attrs.enabled is None else attrs.enabled,
                nbf=current.nbf if attrs.nbf is None else attrs.nbf,
                exp=current.exp if attrs.exp is None else attrs.exp,
                tags=current.tags if tags is None else tags_text,
                extra=json.dumps(meta, separators=(",", ":")),
                updated=self._inst.clock.now(),
            )

        return await self.change_version(vault, name, version, change)

    async def delete_key(self, vault: VaultRecord, name: str) -> tuple[KeyVersion, Deletion]:
        return await self.delete(vault, name)

    def _backup_material(self, vault: VaultRecord, v: VersionRecord) -> dict[str, Any]:
        kty = json.loads(v.extra or "{}")["kty"]
        return {"material": kc.private_jwk(kty, self.unseal(vault, v))}

    def _restored_material(self, item: dict[str, Any]) -> bytes:
        kty = json.loads(item["extra"])["kty"]
        raw = kc.material_from_backup(kty, item["material"])
        kc.public_info(kty, raw)  # loads it: material no operation could use is refused
        return raw

    # -- cryptographic operations -----------------------------------------------------------

    def _usable(
        self, vault: VaultRecord, name: str, version: str, operation: str
    ) -> tuple[VersionRecord, str, bytes]:
        """The version to use, its kty and material, after every check Key Vault makes."""
        lname = name.lower()
        usable = self._usable_cache.get(vault.id, lname, version)
        if usable is None:
            _, found = self.current(vault, name, version)
            meta = json.loads(found.extra or "{}")
            usable = _Usable(
                found, meta["kty"], frozenset(meta["key_ops"]), self.unseal(vault, found)
            )
            self._usable_cache.put(vault.id, lname, version, usable)
        record = usable.record
        if not record.enabled:
            raise Forbidden(
                f"Operation {operation} is not allowed on a disabled key.", inner="KeyDisabled"
            )
        now = self._inst.clock.now()
        if record.nbf is not None and now < record.nbf:
            raise Forbidden(
                f"Operation {operation} is not allowed: the key is not valid before "
                f"{record.nbf} (nbf).",
                inner="KeyNotYetValid",
            )
        if record.exp is not None and now >= record.exp:
            raise Forbidden(
                f"Operation {operation} is not allowed: the key expired at {record.exp} (exp).",
                inner="KeyExpired",
            )
        if operation not in usable.key_ops:
            raise Forbidden(
                f"Operation {operation} is not permitted on this key.",
                inner="KeyOperationForbidden",
            )
        return record, usable.kty, usable.material

    async def _private_op(self, kty: str, operation: str, *args: Any) -> Any:
        """``crypto.workers.OPERATIONS[operation](kty, *args)``: in a worker process when it is
        an RSA private operation, here otherwise (EC and AES ones cost microseconds)."""
        if kc.is_private_rsa_op(kty, operation):
            return await self._pool.private(operation, kty, *args)
        return OPERATIONS[operation](kty, *args)

    async def sign(
        self, vault: VaultRecord, name: str, version: str, alg: str, digest: bytes
    ) -> KeyResult:
        record, kty, material = self._usable(vault, name, version, "sign")
        value = await self._private_op(kty, "sign", material, alg, digest)
        return KeyResult(record.version, name, value)

    def verify(
        self, vault: VaultRecord, name: str, version: str, alg: str, digest: bytes, sig: bytes
    ) -> tuple[str, bool]:
        record, kty, material = self._usable(vault, name, version, "verify")
        return record.version, kc.verify(kty, material, alg, digest, sig)

    async def encrypt(
        self,
        vault: VaultRecord,
        name: str,
        version: str,
        alg: str,
        plaintext: bytes,
        iv: bytes | None,
        aad: bytes | None,
    ) -> KeyResult:
        record, kty, material = self._usable(vault, name, version, "encrypt")
        out = kc.encrypt(kty, material, alg, plaintext, iv, aad)
        return KeyResult(record.version, name, out.value, out.iv, out.tag, out.aad)

    async def decrypt(
        self,
        vault: VaultRecord,
        name: str,
        version: str,
        alg: str,
        ciphertext: bytes,
        iv: bytes | None,
        aad: bytes | None,
        tag: bytes | None,
    ) -> KeyResult:
        record, kty, material = self._usable(vault, name, version, "decrypt")
        value = await self._private_op(kty, "decrypt", material, alg, ciphertext, iv, aad, tag)
        return KeyResult(record.version, name, value)

    async def wrap_key(
        self, vault: VaultRecord, name: str, version: str, alg: str, key: bytes
    ) -> KeyResult:
        record, kty, material = self._usable(vault, name, version, "wrapKey")
        return KeyResult(record.version, name, kc.wrap_key(kty, material, alg, key))

    async def unwrap_key(
        self, vault: VaultRecord, name: str, version: str, alg: str, wrapped: bytes
    ) -> KeyResult:
        record, kty, material = self._usable(vault, name, version, "unwrapKey")
        value = await self._private_op(kty, "unwrapKey", material, alg, wrapped)
        return KeyResult(record.version, name, value)

    @staticmethod
    def get_random_bytes(count: int) -> bytes:
        if not 1 <= count <= 128:
            raise BadParameter(
                "GetRandomBytesRequest: count cannot be greater than 128 or less than 1"
            )
        return os.urandom(count)
