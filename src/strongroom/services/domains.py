"""Security domains: the trust boundary of backups, movable between installations.

An installation holds one or more domains; each vault belongs to one. A domain has versioned
backup keys: backups are sealed under the newest, older versions open older blobs until they
are retired. Export/import carries a domain's keys to another installation under M-of-N
custodian control (``crypto.domain``). Names and retirements are kept in the store's metadata
(``domain/{id}/...``); the keys themselves are wrapped by the installation's master key.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from strongroom.crypto import backup as blobfmt
from strongroom.crypto import domain as exportfmt
from strongroom.crypto.envelope import new_key
from strongroom.errors import BackupRejected, BadParameter, Conflict, NotFound
from strongroom.services.installation import Installation
from strongroom.store.base import DomainKeyRecord, Tx


@dataclass(frozen=True, slots=True)
class Domain:
    id: str
    name: str
    key_versions: list[str]  # oldest first; the last seals new backups
    retired: list[str]
    default: bool


def _name_key(domain_id: str) -> str:
    return f"domain/{domain_id}/name"


def _retired_key(domain_id: str, version: str) -> str:
    return f"domain/{domain_id}/retired/{version}"


def retired(reads: Any, domain_id: str, version: str) -> bool:
    return reads.get_meta(_retired_key(domain_id, version)) is not None


class DomainService:
    def __init__(self, inst: Installation):
        self._inst = inst
        self._store = inst.store

    # -- reading ----------------------------------------------------------------------------

    def _ids(self) -> list[str]:
        ids = {k.split("/")[1] for k, _ in self._store.reads.list_meta("domain/")}
        ids.add(self._inst.default_domain_id)
        return sorted(ids)

    def _domain(self, domain_id: str) -> Domain:
        reads = self._store.reads
        name = reads.get_meta(_name_key(domain_id)) or (
            "default" if domain_id == self._inst.default_domain_id else domain_id
        )
        retired_list = [
            k.rsplit("/", 1)[1] for k, _ in reads.list_meta(f"domain/{domain_id}/retired/")
        ]
        return Domain(
            id=domain_id,
            name=name,
            key_versions=[k.version for k in reads.list_domain_keys(domain_id)],
            retired=retired_list,
            default=domain_id == self._inst.default_domain_id,
        )

    def list_domains(self) -> list[Domain]:
        return [self._domain(i) for i in self._ids()]

    def resolve(self, name_or_id: str) -> Domain:
        for domain in self.list_domains():
            if name_or_id in (domain.id, domain.name):
                return domain
        raise NotFound(
            f"Security domain '{name_or_id}' is not held by this installation; "
            "`strongroom domain list` shows the ones that are.",
            code="SecurityDomainNotFound",
        )

    # -- changing ---------------------------------------------------------------------------

    def _new_key(self, domain_id: str) -> DomainKeyRecord:
        version = uuid.uuid4().hex
        return DomainKeyRecord(
            domain_id=domain_id,
            version=version,
            wrapped_key=self._inst.keyring.wrap_domain_key(domain_id, version, new_key()),
            created=self._inst.clock.now(),
        )

    def create_domain(self, name: str) -> Domain:
        if not name or len(name) > 64 or "/" in name:
            raise BadParameter("A domain name must be 1-64 characters without '/'.")
        if any(d.name == name for d in self.list_domains()):
            raise Conflict(f"A security domain named '{name}' already exists here.")
        domain_id = str(uuid.uuid4())
        record = self._new_key(domain_id)

        def write(tx: Tx) -> None:
            tx.set_meta(_name_key(domain_id), name)
            tx.insert_domain_key(record)

        self._store.transact(write).result()
        return self._domain(domain_id)

    def rotate_backup_key(self, name_or_id: str) -> Domain:
        domain = self.resolve(name_or_id)
        record = self._new_key(domain.id)
        self._store.transact(lambda tx: tx.insert_domain_key(record)).result()
        return self._domain(domain.id)

    def retire_backup_key(self, name_or_id: str, version: str) -> Domain:
        domain = self.resolve(name_or_id)
        if version not in domain.key_versions:
            raise NotFound(
                f"Domain '{domain.name}' holds no backup-key version {version}.",
                code="BackupKeyVersionNotFound",
            )
        if version == domain.key_versions[-1]:
            raise BadParameter(
                f"Version {version} seals new backups; rotate the backup key before retiring it."
            )

        def write(tx: Tx) -> None:
            tx.delete_domain_key(domain.id, version)
            tx.set_meta(_retired_key(domain.id, version), str(self._inst.clock.now()))

        self._store.transact(write).result()
        return self._domain(domain.id)

    # -- export and import ------------------------------------------------------------------

    def export_domain(
        self, name_or_id: str, certificates: list[bytes], quorum: int
    ) -> dict[str, Any]:
        domain = self.resolve(name_or_id)
        keys = {
            k.version: {"key": self._inst.keyring.domain_key(k), "created": k.created}
            for k in self._store.reads.list_domain_keys(domain.id)
        }
        return exportfmt.export({"id": domain.id, "name": domain.name}, keys, certificates, quorum)

    def import_domain(self, content: dict[str, Any], private_keys: list[bytes]) -> Domain:
        info, keys = exportfmt.open_export(content, private_keys)
        domain_id, name = str(info["id"]), str(info["name"])
        held = {k.version for k in self._store.reads.list_domain_keys(domain_id)}
        records = [
            DomainKeyRecord(
                domain_id=domain_id,
                version=version,
                wrapped_key=self._inst.keyring.wrap_domain_key(domain_id, version, k["key"]),
                created=k["created"],
            )
            for version, k in sorted(keys.items(), key=lambda item: item[1]["created"])
            if version not in held
        ]

        def write(tx: Tx) -> None:
            if tx.get_meta(_name_key(domain_id)) is None:
                tx.set_meta(_name_key(domain_id), name)
            for record in records:
                tx.delete_meta(_retired_key(domain_id, record.version))
                tx.insert_domain_key(record)

        self._store.transact(write).result()
        return self._domain(domain_id)

    # -- looking at blobs -------------------------------------------------------------------

    def inspect(self, blob: bytes) -> dict[str, Any]:
        """The blob's header (unauthenticated until verified) and whether this installation
        holds what opens it."""
        envelope = blobfmt.parse(blob)
        header = {k: v for k, v in envelope.header.items() if k not in ("salt", "nonce")}
        domain, version = str(header["domain"]), str(header["keyVersion"])
        reads = self._store.reads
        if reads.get_domain_key(domain, version) is not None:
            openable = "yes"
        elif retired(reads, domain, version):
            openable = f"no: backup-key version {version} was retired here"
        elif reads.current_domain_key(domain) is None:
            openable = f"no: security domain {domain} is not held here"
        else:
            openable = f"no: backup-key version {version} is not held here"
        return {"header": header, "openable": openable}

    def verify(self, blob: bytes) -> dict[str, Any]:
        """Opens the seal with the local domain key and checks the payload, restoring nothing."""
        envelope = blobfmt.parse(blob)
        domain, version = str(envelope.header["domain"]), str(envelope.header["keyVersion"])
        record = self._store.reads.get_domain_key(domain, version)
        if record is None:
            raise BackupRejected(
                self.inspect(blob)["openable"].removeprefix("no: ").capitalize() + ".",
                inner="BackupNotOpenable",
            )
        payload = json.loads(blobfmt.open_sealed(envelope, self._inst.keyring.domain_key(record)))
        versions = payload.get("versions")
        if (
            payload.get("name") != envelope.header["name"]
            or not isinstance(versions, list)
            or (len(versions) != envelope.header["versions"])
        ):
            raise BackupRejected("The payload does not match its header.", inner=blobfmt.MALFORMED)
        return {
            "kind": envelope.header["kind"],
            "name": payload["name"],
            "versions": [v.get("version") for v in versions],
            "verified": True,
        }
