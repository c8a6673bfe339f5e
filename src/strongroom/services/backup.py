"""Per-object backup blobs: what goes in the header and payload, and every refusal on restore.

The blob format itself lives in ``crypto.backup``; this module decides which domain key seals
it and checks, on restore, that this installation holds the blob's security domain and key
version, that the target vault belongs to that domain, and that the blob is of the kind the
restore route expects — each refusal with its own inner code.
"""

from __future__ import annotations

import json
import time
from typing import Any

from strongroom.crypto import backup as blobfmt
from strongroom.errors import BackupRejected, BadParameter
from strongroom.models import Kind
from strongroom.services.domains import retired
from strongroom.services.installation import Installation
from strongroom.store.base import VaultRecord

DOMAIN_UNKNOWN = "BackupSecurityDomainUnknown"
DOMAIN_MISMATCH = "BackupSecurityDomainMismatch"
KEY_VERSION_UNKNOWN = "BackupKeyVersionUnknown"
KEY_VERSION_RETIRED = "BackupKeyVersionRetired"
KIND_MISMATCH = "BackupKindMismatch"
# The largest blob a backup makes, so that every backup can be restored: the API takes a
# restore body of up to MAX_BLOB_BYTES in base64url (api.limits).
MAX_BLOB_BYTES = 12 * 1024 * 1024

_COLLECTIONS = {
    Kind.SECRET.value: "secrets",
    Kind.KEY.value: "keys",
    Kind.CERTIFICATE.value: "certificates",
    Kind.STORAGE.value: "storage",
}


def make_blob(
    inst: Installation,
    vault: VaultRecord,
    kind: Kind,
    name: str,
    versions: list[dict[str, Any]],
    extras: dict[str, Any] | None = None,
) -> bytes:
    """``extras``: object-level state beside the versions (a key's rotation policy)."""
    key_record = inst.store.reads.current_domain_key(vault.domain_id)
    assert key_record is not None, "every domain has a backup key from its creation"
    header = {
        "kind": kind.value,
        "name": name,
        "versions": len(versions),
        "instance": inst.instance_id,
        "vault": vault.name,
        "domain": vault.domain_id,
        "keyVersion": key_record.version,
        "created": int(time.time()),
    }
    body = {"name": name, "versions": versions, **(extras or {})}
    payload = json.dumps(body, separators=(",", ":")).encode()
    blob = blobfmt.seal(header, payload, inst.keyring.domain_key(key_record))
    if len(blob) > MAX_BLOB_BYTES:
        raise BadParameter(
            f"The backup of {kind.value} '{name}' ({len(versions)} versions) would be "
            f"{len(blob)} bytes, more than a restore accepts ({MAX_BLOB_BYTES} bytes); "
            "Strongroom does not make a backup it could not restore.",
            inner="BackupTooLarge",
        )
    return blob


def malformed_payload() -> BackupRejected:
    return BackupRejected(
        "The backup blob authenticated but its contents are not a valid object backup.",
        inner=blobfmt.MALFORMED,
    )


def open_blob(
    inst: Installation, vault: VaultRecord, kind: Kind, blob: bytes
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """(name, versions, whole payload) from an authenticated blob, or ``BackupRejected``."""
    envelope = blobfmt.parse(blob)
    domain = str(envelope.header["domain"])
    key_version = str(envelope.header["keyVersion"])
    reads = inst.store.reads
    key_record = reads.get_domain_key(domain, key_version)
    if key_record is None:
        if reads.current_domain_key(domain) is None:
            raise BackupRejected(
                f"The backup was sealed for security domain {domain}, which this installation "
                "does not hold. Restore it on an installation of that domain, or import the "
                "domain here first.",
                inner=DOMAIN_UNKNOWN,
            )
        if retired(reads, domain, key_version):
            raise BackupRejected(
                f"The backup was sealed under backup-key version {key_version} of security "
                f"domain {domain}, which was retired on this installation; it can no longer "
                "be restored here.",
                inner=KEY_VERSION_RETIRED,
            )
        raise BackupRejected(
            f"The backup was sealed under backup-key version {key_version} of security domain "
            f"{domain}, which this installation does not hold; import a newer export of the "
            "domain.",
            inner=KEY_VERSION_UNKNOWN,
        )
    if domain != vault.domain_id:
        raise BackupRejected(
            f"The backup belongs to security domain {domain} but vault '{vault.name}' belongs to "
            f"{vault.domain_id}; restore it into a vault of the backup's domain.",
            inner=DOMAIN_MISMATCH,
        )
    payload = blobfmt.open_sealed(envelope, inst.keyring.domain_key(key_record))
    found = str(envelope.header["kind"])
    if found != kind.value:
        collection = _COLLECTIONS.get(found, found)
        raise BackupRejected(
            f"This is a {found} backup, not a {kind.value} backup; restore it with "
            f"POST /{collection}/restore.",
            inner=KIND_MISMATCH,
        )
    try:
        data = json.loads(payload)
        name, versions = str(data["name"]), list(data["versions"])
    except (ValueError, KeyError, TypeError) as exc:
        raise malformed_payload() from exc
    if name != envelope.header["name"] or len(versions) != envelope.header["versions"]:
        raise malformed_payload()
    return name, versions, data
