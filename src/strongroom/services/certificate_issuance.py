"""Issuing certificates (certificates.json): self-signed and external (CSR + merge) issuance,
import, the pending operation, and renewal by AutoRenew lifetime action.

Every issued version ``v`` of certificate ``name`` comes with key ``name/v`` and secret
``name/v``, both ``managed``, written with the certificate's version and state in one
transaction. ``Self`` issuance is immediate; any other issuer gets a CSR and an operation in
progress until merge, as this server reaches no external CA.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from strongroom import codec
from strongroom.crypto import keys as kc
from strongroom.crypto import x509 as cx
from strongroom.crypto.pool import CpuPool
from strongroom.errors import BadParameter, Conflict, NotFound
from strongroom.identifiers import check_object_name, new_version
from strongroom.models import CertificatePolicy, CertificateVersion, Kind
from strongroom.services.certificate_policy import CertificateState, dump_state, load_state
from strongroom.services.certificate_rules import (
    check_policy,
    complete_imported_policy,
    complete_policy,
    renewal_due,
    self_issued,
)
from strongroom.services.certificates import CertificateService
from strongroom.services.installation import Installation
from strongroom.services.keys import KeyService
from strongroom.services.objects import AttributeInput, Due, check_tags, tags_of
from strongroom.services.secrets import SecretService
from strongroom.store.base import ObjectRecord, Tx, VaultRecord, VersionRecord

KEY, SECRET, CERT = Kind.KEY.value, Kind.SECRET.value, Kind.CERTIFICATE.value
MERGE_TEXT = "Pending certificate created. Please Perform Merge to complete the request."
log = logging.getLogger(__name__)
_b64 = codec.b64_encode


def _pending_not_found(name: str) -> NotFound:
    return NotFound(f"Pending certificate not found: {name}", code="PendingCertificateNotFound")


class CertificateIssuance:
    """New versions of certificates, with their managed keys and secrets. The certificates
    themselves (reads, changes, deletion, backup) are ``CertificateService``'s."""

    def __init__(
        self,
        inst: Installation,
        certificates: CertificateService,
        pool: CpuPool,
        keys: KeyService,
        secrets: SecretService,
    ):
        self._inst = inst
        self._store = inst.store
        self._certs = certificates
        self._pool = pool
        self._keys = keys
        self._secrets = secrets

    # -- writing the three objects ----------------------------------------------------------

    def _put(self, tx: Tx, vault: VaultRecord, name: str, record: VersionRecord) -> str:
        """Adds ``record`` as the latest version of its kind's object ``name``."""
        shown = tx.set_latest(vault.id, record.kind, record.lname, record.version, managed=True)
        if shown is not None:
            tx.insert_version(record)
            return shown
        existing = tx.get_object(vault.id, record.kind, record.lname)
        if existing is not None:
            raise Conflict(
                f"{record.kind.title()} {existing.name} is currently in a deleted but "
                "recoverable state, and its name cannot be reused; in this state, it can only "
                "be recovered or purged.",
                inner="ObjectIsDeletedButRecoverable",
            )
        tx.insert_object(
            ObjectRecord(vault.id, record.kind, record.lname, name, record.version, None, None)
        )
        tx.insert_version(record)
        return name

    def _check_free(self, tx: Tx, vault: VaultRecord, name: str) -> None:
        """A certificate's key and secret names must be free or already the certificate's."""
        for kind in (KEY, SECRET):
            obj = tx.get_object(vault.id, kind, name.lower())
            if obj is None:
                continue
            latest = tx.get_version(vault.id, kind, obj.lname, obj.latest_version)
            if latest is not None and not latest.managed:
                raise Conflict(
                    f"A {kind} named '{obj.name}' exists and is not managed by a certificate; "
                    "choose another certificate name.",
                )

    def _records(
        self,
        vault: VaultRecord,
        name: str,
        version: str,
        material: bytes,
        chain: list[bytes],
        policy: CertificatePolicy,
        attrs: AttributeInput,
        tags: dict[str, str] | None,
    ) -> list[VersionRecord]:
        """The managed key and secret versions for one issued certificate version."""
        lname, now = name.lower(), self._inst.clock.now()
        valid = cx.validity(chain[0])
        tags_text = check_tags(tags)
        kty = policy.key_props.kty or cx.kty_of(material)[0]
        info = kc.public_info(kty, material)
        ops = ["sign", "verify"] + (
            ["encrypt", "decrypt", "wrapKey", "unwrapKey"] if kc.family(kty) == "RSA" else []
        )
        key_meta = {
            "kty": kty,
            "key_ops": ops,
            "jwk": info.jwk,
            "key_size": info.key_size,
            "exportable": policy.key_props.exportable,
            "release_policy": None,
        }
        enabled = True if attrs.enabled is None else attrs.enabled
        content_type = _content_type(policy)
        value = cx.secret_value(material, chain, content_type).encode()

        def record(kind: str, sealed: bytes, ct: str | None, extra: str | None) -> VersionRecord:
            return VersionRecord(
                vault_id=vault.id, kind=kind, lname=lname, version=version, created=now,
                updated=now, enabled=enabled, nbf=valid.nbf, exp=valid.exp, content_type=ct,
                tags=tags_text, sealed=sealed, managed=True, extra=extra,
            )  # fmt: skip

        return [
            record(
                KEY, self._keys.seal(vault, lname, version, material), None, json.dumps(key_meta)
            ),
            record(SECRET, self._secrets.seal(vault, lname, version, value), content_type, None),
        ]

    def _cert_record(
        self,
        vault: VaultRecord,
        name: str,
        version: str,
        material: bytes,
        chain: list[bytes] | None,
        policy: CertificatePolicy,
        attrs: AttributeInput,
        tags: dict[str, str] | None,
        preserve_order: bool | None = None,
    ) -> VersionRecord:
        lname, now = name.lower(), self._inst.clock.now()
        valid = cx.validity(chain[0]) if chain else None
        meta = {
            "cer": _b64(chain[0]) if chain else None,
            "chain": [_b64(c) for c in chain or []],
            "contentType": _content_type(policy),
            "preserveCertOrder": preserve_order,
        }
        enabled = (True if attrs.enabled is None else attrs.enabled) and chain is not None
        return VersionRecord(
            vault_id=vault.id, kind=CERT, lname=lname, version=version, created=now, updated=now,
            enabled=enabled, nbf=valid.nbf if valid else None, exp=valid.exp if valid else None,
            content_type=None, tags=check_tags(tags),
            sealed=self._certs.seal(vault, lname, version, material), extra=json.dumps(meta),
        )  # fmt: skip

    async def _material(self, vault: VaultRecord, name: str, policy: CertificatePolicy) -> bytes:
        props = policy.key_props
        if props.reuse_key:
            found = self._store.reads.get_current(vault.id, CERT, name.lower(), "")
            if found is not None:
                return self._certs.unseal(vault, found[1])
        kty = _kty(policy)
        args = (kty, props.key_size, props.crv, None)
        if kc.family(kty) == "RSA":
            return await self._pool.run(kc.generate, *args)
        return kc.generate(*args)

    # -- issuance ---------------------------------------------------------------------------

    async def create_certificate(
        self,
        vault: VaultRecord,
        name: str,
        policy_in: CertificatePolicy | None,
        attributes: AttributeInput | None = None,
        tags: dict[str, str] | None = None,
        preserve_order: bool | None = None,
    ) -> dict[str, Any]:
        """Self: issued now, the operation already completed. Any other issuer: a CSR and an
        operation in progress until merge (this server reaches no external CA)."""
        check_object_name(name, self._certs.NOUN)
        now = self._inst.clock.now()
        policy = complete_policy(policy_in or CertificatePolicy(), now)
        attrs = attributes or AttributeInput()
        check_tags(tags)
        if policy.issuer.name is None:  # given as null
            raise BadParameter("'issuer.name' must be a string.")
        material = await self._material(vault, name, policy)
        version = new_version()
        issuer = policy.issuer.name
        self_signed = self_issued(policy)
        x509 = policy.x509_props
        chain = [cx.self_signed(material, x509, now)] if self_signed else None
        cert = self._cert_record(
            vault, name, version, material, chain, policy, attrs, tags, preserve_order
        )
        extra = (
            self._records(vault, name, version, material, chain, policy, attrs, tags)
            if chain
            else []
        )
        operation: dict[str, Any] = {
            "issuer": {"name": issuer},
            "csr": _b64(cx.csr(material, x509)),
            "cancellation_requested": False,
            "request_id": new_version(),
        }
        if preserve_order is not None:
            operation["preserveCertOrder"] = preserve_order
        if self_signed:
            operation.update(status="completed", target=name)
        else:
            operation.update(status="inProgress", status_details=MERGE_TEXT)
        lname = name.lower()

        def write(tx: Tx) -> None:
            op = self._certs.state(tx, vault, lname).operation
            if op is not None and op.get("status") == "inProgress":
                raise Conflict(
                    f"Certificate {name} has an operation in progress; merge, cancel or delete "
                    "it (DELETE /certificates/{name}/pending) first."
                )
            self._check_free(tx, vault, name)
            self._put(tx, vault, name, cert)
            for record in extra:
                self._put(tx, vault, name, record)
            tx.set_policy(vault.id, CERT, lname, dump_state(CertificateState(policy, operation)))

        await self._certs.transact(write, vault, lname)
        if self_signed:
            # Issued already, but the 202 must say inProgress: azure-core's LROPoller never runs
            # a polling method that is finished from the start, so a "completed" 202 leaves
            # begin_create_certificate().result() None. The SDK's first poll of /pending reads
            # "completed" and fetches the certificate without sleeping.
            return dict(operation, status="inProgress", status_details="Issuing the certificate.")
        return operation

    async def merge_certificate(
        self,
        vault: VaultRecord,
        name: str,
        x5c: list[bytes],
        attributes: AttributeInput | None = None,
        tags: dict[str, str] | None = None,
    ) -> CertificateVersion:
        obj, pending = self._certs.current(vault, name)
        state = self._certs.state(self._store.reads, vault, obj.lname)
        op = state.operation
        if (
            op is None
            or op.get("status") != "inProgress"
            or json.loads(pending.extra or "{}").get("cer")
        ):
            raise _pending_not_found(name)
        policy = state.policy
        if policy is None:  # an operation in progress always has its policy beside it
            raise _pending_not_found(name)
        material = self._certs.unseal(vault, pending)
        chain = cx.check_merge(material, x5c)
        attrs = attributes or AttributeInput()
        keep = json.loads(pending.extra or "{}").get("preserveCertOrder")
        cert = self._cert_record(
            vault, name, pending.version, material, chain, policy, attrs, tags, keep
        )
        extra = self._records(vault, name, pending.version, material, chain, policy, attrs, tags)
        op = dict(op, status="completed", target=name)
        op.pop("status_details", None)

        def write(tx: Tx) -> None:
            self._check_free(tx, vault, name)
            tx.update_version(cert)
            tx.set_policy(vault.id, CERT, obj.lname, dump_state(CertificateState(policy, op)))
            for record in extra:
                self._put(tx, vault, name, record)

        await self._certs.transact(write, vault, obj.lname)
        return self._certs.model(obj, cert)

    async def import_certificate(
        self,
        vault: VaultRecord,
        name: str,
        value: str,
        password: str | None,
        policy_in: CertificatePolicy | None,
        attributes: AttributeInput | None = None,
        tags: dict[str, str] | None = None,
        preserve_order: bool | None = None,
    ) -> CertificateVersion:
        check_object_name(name, self._certs.NOUN)
        given = policy_in or CertificatePolicy()
        check_policy(given)
        requested_type = given.secret_props.content_type
        material, chain, content_type = cx.parse_import(value, password, requested_type)
        policy = complete_imported_policy(
            given, cx.describe(chain[0]), cx.kty_of(material), content_type, self._inst.clock.now()
        )
        attrs = attributes or AttributeInput()
        version = new_version()
        cert = self._cert_record(
            vault, name, version, material, chain, policy, attrs, tags, preserve_order
        )
        extra = self._records(vault, name, version, material, chain, policy, attrs, tags)
        lname = name.lower()

        def write(tx: Tx) -> str:
            self._check_free(tx, vault, name)
            shown = self._put(tx, vault, name, cert)
            for record in extra:
                self._put(tx, vault, name, record)
            tx.set_policy(vault.id, CERT, lname, dump_state(CertificateState(policy, None)))
            return shown

        shown = await self._certs.transact(write, vault, lname)
        obj = ObjectRecord(vault.id, CERT, lname, shown, version, None, None)
        return self._certs.model(obj, cert)

    # -- the pending operation --------------------------------------------------------------

    def get_certificate_operation(self, vault: VaultRecord, name: str) -> dict[str, Any]:
        obj = self._certs.active(vault, name)
        op = self._certs.state(self._store.reads, vault, obj.lname).operation
        if op is None:
            raise _pending_not_found(name)
        return dict(op)

    async def update_certificate_operation(
        self, vault: VaultRecord, name: str, cancel: bool
    ) -> dict[str, Any]:
        return await self._change_operation(vault, name, lambda op: dict(
            op, cancellation_requested=cancel,
            **({"status": "cancelled", "status_details": "Cancelled by the user."}
               if cancel and op.get("status") == "inProgress" else {}),
        ))  # fmt: skip

    async def delete_certificate_operation(self, vault: VaultRecord, name: str) -> dict[str, Any]:
        return await self._change_operation(vault, name, lambda op: None)

    async def _change_operation(
        self,
        vault: VaultRecord,
        name: str,
        change: Callable[[dict[str, Any]], dict[str, Any] | None],
    ) -> dict[str, Any]:
        lname = name.lower()

        def write(tx: Tx) -> dict[str, Any]:
            obj = tx.get_object(vault.id, CERT, lname)
            state = self._certs.state(tx, vault, lname)
            op = state.operation
            if obj is None or obj.deleted_date is not None or op is None:
                raise _pending_not_found(name)
            changed = change(op)
            tx.set_policy(vault.id, CERT, lname, dump_state(replace(state, operation=changed)))
            return dict(changed or op)

        return await self._certs.transact(write, vault, lname)

    # -- renewal by lifetime action ---------------------------------------------------------

    async def renew_due_certificates(self) -> Due:
        """One scheduler pass: a new version of every self-issued certificate whose AutoRenew
        action has come due (a new key unless the policy says reuse_key). Certificates of
        other issuers are left alone: this server reaches no external CA."""
        now = self._inst.clock.now()
        renewed = failed = 0
        for vault_id, lname, body in self._store.reads.list_policies(CERT):
            try:
                policy = load_state(body).policy
                vault = self._store.reads.get_vault_by_id(vault_id)
                found = self._store.reads.get_current(vault_id, CERT, lname, "")
                if policy is None or vault is None or found is None or vault.replica_of:
                    continue  # a replica's renewals come from its source
                latest = found[1]
                if not self_issued(policy):
                    continue
                if latest.nbf is None or latest.exp is None:
                    continue  # pending
                if renewal_due(policy, latest.nbf, latest.exp, now):
                    await self.create_certificate(
                        vault, found[0].name, policy, tags=tags_of(latest)
                    )
                    renewed += 1
            except Exception:
                log.exception("renewing certificate %s of vault %s failed", lname, vault_id)
                failed += 1
        return Due(renewed, failed)


def _kty(policy: CertificatePolicy) -> str:
    kty = policy.key_props.kty
    if kty is None:  # completed policies have one (complete_policy)
        raise BadParameter("key_props.kty must be RSA, RSA-HSM, EC or EC-HSM for a certificate.")
    return kty


def _content_type(policy: CertificatePolicy) -> str:
    content_type = policy.secret_props.content_type
    if content_type is None:  # completed policies have one (complete_policy)
        raise BadParameter(f"secret_props.contentType must be {cx.PFX} or {cx.PEM}.")
    return content_type
