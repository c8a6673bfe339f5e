"""Certificates (certificates.json): reading, changing, deleting, backing up and restoring
them, with the managed key and secret each version owns, and their policies.

A certificate version ``v`` of ``name`` comes with key ``name/v`` and secret ``name/v``, both
``managed``; they are soft-deleted, recovered, purged, backed up and restored together with
the certificate, in one transaction each. The certificate's policy and its pending operation
are object-level state, kept as one JSON body in the store's policies table
(``certificate_policy.CertificateState``). New versions are ``certificate_issuance``'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from strongroom import codec
from strongroom.crypto import x509 as cx
from strongroom.errors import BadParameter, Conflict
from strongroom.identifiers import check_object_name
from strongroom.models import (
    CertificatePolicy,
    CertificateVersion,
    Deletion,
    Kind,
    Page,
    PolicyChange,
)
from strongroom.services import backup
from strongroom.services.certificate_policy import (
    CertificateState,
    dump_state,
    load_state,
    state_from_json,
    state_to_json,
)
from strongroom.services.certificate_rules import change_policy
from strongroom.services.installation import Installation
from strongroom.services.keys import KeyService
from strongroom.services.objects import (
    AttributeInput,
    Export,
    ObjectService,
    attributes_of,
    check_tags,
    deleted_dates,
    tags_of,
)
from strongroom.services.secrets import SecretService
from strongroom.store.base import ObjectRecord, Reads, Tx, VaultRecord, VersionRecord

T = TypeVar("T")
KEY, SECRET, CERT = Kind.KEY.value, Kind.SECRET.value, Kind.CERTIFICATE.value
_b64 = codec.b64_encode


class CertificateService(ObjectService[CertificateVersion]):
    KIND = Kind.CERTIFICATE
    NOUN = "certificate"
    TITLE = "Certificate"
    NOT_FOUND = "CertificateNotFound"

    def __init__(self, inst: Installation, keys: KeyService, secrets: SecretService):
        super().__init__(inst)
        self._keys = keys
        self._secrets = secrets

    def _model(self, obj: ObjectRecord, v: VersionRecord) -> CertificateVersion:
        meta = json.loads(v.extra or "{}")
        cer = codec.b64_decode(meta["cer"], "cer") if meta.get("cer") else None
        return CertificateVersion(
            name=obj.name,
            version=v.version,
            cer=cer,
            x5t=cx.x5t(cer) if cer else None,
            attributes=attributes_of(v),
            tags=tags_of(v),
            content_type=meta.get("contentType", cx.PFX),
            pending=cer is None,
            preserve_order=meta.get("preserveCertOrder"),
        )

    def forget_reads(self, vault_id: str, lname: str) -> None:
        self._secrets.forget_reads(vault_id, lname)
        self._keys.forget_reads(vault_id, lname)

    def forget_all_reads(self) -> None:
        self._secrets.forget_all_reads()
        self._keys.forget_all_reads()

    # -- for issuance (``certificate_issuance``) ---------------------------------------------

    def model(self, obj: ObjectRecord, v: VersionRecord) -> CertificateVersion:
        return self._model(obj, v)

    def state(self, reads: Reads, vault: VaultRecord, lname: str) -> CertificateState:
        """The certificate's policy and operation, read through ``reads`` (or a transaction)."""
        return load_state(reads.get_policy(vault.id, CERT, lname))

    async def transact(self, fn: Callable[[Tx], T], vault: VaultRecord, lname: str) -> T:
        """Runs ``fn`` in one store transaction; the certificate's cached reads, and its key's
        and secret's, are forgotten after it."""
        return await self._write(fn, vault, lname)

    # -- the policy -------------------------------------------------------------------------

    def get_certificate_policy(self, vault: VaultRecord, name: str) -> CertificatePolicy:
        obj = self.active(vault, name)
        policy = self.state(self._store.reads, vault, obj.lname).policy
        if policy is None:
            raise self.not_found(name)
        return policy

    def policy_of(self, vault: VaultRecord, name: str) -> CertificatePolicy | None:
        return self.state(self._store.reads, vault, name.lower()).policy

    async def update_certificate_policy(
        self, vault: VaultRecord, name: str, change: PolicyChange
    ) -> CertificatePolicy:
        lname = name.lower()
        now = self._inst.clock.now()

        def write(tx: Tx) -> CertificatePolicy:
            obj = tx.get_object(vault.id, CERT, lname)
            if obj is None or obj.deleted_date is not None:
                raise self.not_found(name)
            state = self.state(tx, vault, lname)
            policy = change_policy(state.policy or CertificatePolicy(), change, now)
            tx.set_policy(vault.id, CERT, lname, dump_state(replace(state, policy=policy)))
            return policy

        return await self._write(write, vault, lname)

    # -- reads ------------------------------------------------------------------------------

    def get_certificate(
        self, vault: VaultRecord, name: str, version: str = ""
    ) -> CertificateVersion:
        return self._model(*self.current(vault, name, version))

    def get_certificates(
        self, vault: VaultRecord, maxresults: int | None, skip: str | None, include_pending: bool
    ) -> Page[CertificateVersion]:
        page = self.list_page(vault, maxresults, skip)
        if include_pending:
            return page
        return Page([c for c in page.items if not c.pending], page.next_token)

    def get_certificate_versions(
        self, vault: VaultRecord, name: str, maxresults: int | None, skip: str | None
    ) -> Page[CertificateVersion]:
        return self.versions_page(vault, name, maxresults, skip)

    async def update_certificate(
        self,
        vault: VaultRecord,
        name: str,
        version: str = "",
        attributes: AttributeInput | None = None,
        tags: dict[str, str] | None = None,
    ) -> CertificateVersion:
        attrs = attributes or AttributeInput()
        tags_text = check_tags(tags)

        def change(current: VersionRecord) -> VersionRecord:
            return replace(
                current,
                enabled=current.enabled if attrs.enabled is None else attrs.enabled,
                tags=current.tags if tags is None else tags_text,
                updated=self._inst.clock.now(),
            )

        return await self.change_version(vault, name, version, change)

    # -- soft delete, recover, purge: the certificate's key and secret go with it ------------

    async def delete_certificate(
        self, vault: VaultRecord, name: str
    ) -> tuple[CertificateVersion, Deletion]:
        return await self.delete(vault, name)

    def _delete_related(self, tx: Tx, vault: VaultRecord, lname: str, deletion: Deletion) -> None:
        for kind in (KEY, SECRET):
            if tx.get_object(vault.id, kind, lname) is not None:
                tx.set_deleted(
                    vault.id, kind, lname, deletion.deleted_date, deletion.scheduled_purge_date
                )

    def _recover_related(self, tx: Tx, vault: VaultRecord, obj: ObjectRecord) -> None:
        for kind in (KEY, SECRET):
            other = tx.get_object(vault.id, kind, obj.lname)
            if other is not None and other.deleted_date == obj.deleted_date:
                tx.set_deleted(vault.id, kind, obj.lname, None, None)

    def _purge_related(self, tx: Tx, vault: VaultRecord, lname: str) -> None:
        for kind in (KEY, SECRET):
            other = tx.get_object(vault.id, kind, lname)
            if other is not None and other.deleted_date is not None:
                tx.purge_object(vault.id, kind, lname)

    # -- backup and restore -----------------------------------------------------------------

    def export(self, reads: Reads, vault: VaultRecord, obj: ObjectRecord) -> Export:
        def dump(kind: str, service: ObjectService[Any]) -> list[dict[str, Any]]:
            out = []
            for v in reads.all_versions(vault.id, kind, obj.lname):
                entry = self.backup_entry(v)
                entry["material"] = _b64(service.unseal(vault, v))
                out.append(entry)
            return out

        extras = {
            "keys": dump(KEY, self._keys),
            "secrets": dump(SECRET, self._secrets),
            "state": state_to_json(self.state(reads, vault, obj.lname)),
        }
        return Export(self.KIND, obj.name, dump(CERT, self), extras)

    def purge_in(self, tx: Tx, vault: VaultRecord, lname: str) -> None:
        for kind in (CERT, KEY, SECRET):  # the certificate with its key and secret
            tx.purge_object(vault.id, kind, lname)

    async def restore_object(
        self,
        vault: VaultRecord,
        blob: bytes,
        deletion: Deletion | None = None,
        *,
        replace: bool = False,
        after: Callable[[Tx], None] | None = None,
    ) -> CertificateVersion:
        name, items, payload = backup.open_blob(self._inst, vault, self.KIND, blob)
        try:
            check_object_name(name, self.NOUN)
            lname = name.lower()

            def load(
                service: ObjectService[Any], entries: list[dict[str, Any]]
            ) -> list[VersionRecord]:
                return [
                    service.restored_version(
                        vault, lname, i, codec.b64_decode(i["material"], "material")
                    )
                    for i in entries
                ]

            groups = [
                load(self, items),
                load(self._keys, payload.get("keys", [])),
                load(self._secrets, payload.get("secrets", [])),
            ]
            state = state_from_json(payload.get("state") or None)
        except (KeyError, TypeError, ValueError, BadParameter) as exc:
            raise backup.malformed_payload() from exc
        if not groups[0]:
            raise backup.malformed_payload()

        def write(tx: Tx) -> ObjectRecord:
            if replace:
                self.purge_in(tx, vault, lname)
            for records in groups:
                if records and tx.get_object(vault.id, records[0].kind, lname) is not None:
                    raise Conflict(
                        f"There was a conflict restoring the certificate '{name}': a "
                        f"{records[0].kind} with that name exists in this vault (active or "
                        "deleted but recoverable). Purge or rename it first."
                    )
            for records in groups:
                if not records:
                    continue
                obj = ObjectRecord(
                    vault.id, records[0].kind, lname, name, records[-1].version,
                    *deleted_dates(deletion),
                )  # fmt: skip
                tx.insert_object(obj)
                for record in records:
                    tx.insert_version(record)
            tx.set_policy(vault.id, CERT, lname, dump_state(state))
            if after is not None:
                after(tx)
            return ObjectRecord(
                vault.id, CERT, lname, name, groups[0][-1].version, *deleted_dates(deletion)
            )

        obj = await self._write(write, vault, lname)
        return self._model(obj, groups[0][-1])
