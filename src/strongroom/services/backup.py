"""Per-object backup blobs: what goes in the header and payload, and every refusal on restore.

The blob format itself lives in ``crypto.backup``; this module decides which domain key seals
it and checks, on restore, that this installation holds the blob's security domain and key
version, that the target vault belongs to that domain, and that the blob is of the kind the
restore route expects — each refusal with its own inner code.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from strongroom.crypto import backup as blobfmt
from strongroom.errors import BackupRejected, BadParameter
from strongroom.identifiers import check_object_name
from strongroom.models import Kind
from strongroom.services.domains import retired
from strongroom.services.installation import Installation
from strongroom.store.base import DomainKeyRecord, Reads, VaultRecord

if TYPE_CHECKING:
    from strongroom.services.objects import Export

DOMAIN_UNKNOWN = "BackupSecurityDomainUnknown"
DOMAIN_MISMATCH = "BackupSecurityDomainMismatch"
KEY_VERSION_UNKNOWN = "BackupKeyVersionUnknown"
KEY_VERSION_RETIRED = "BackupKeyVersionRetired"
KIND_MISMATCH = "BackupKindMismatch"
MANIFEST = "manifest"  # the header kind of a whole-vault backup's manifest
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
    key_record: DomainKeyRecord | None = None,
) -> bytes:
    """``extras``: object-level state beside the versions (a key's rotation policy)."""
    key_record = key_record or inst.store.reads.current_domain_key(vault.domain_id)
    assert key_record is not None, "every domain has a backup key from its creation"
    header = {
        "kind": kind.value,
        "name": name,
        "versions": len(versions),
        "instance": inst.instance_id,
        "vault": vault.name,
        "domain": vault.domain_id,
        "keyVersion": key_record.version,
        "created": inst.clock.now(),
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


def seal_export(
    inst: Installation, vault: VaultRecord, export: Export, key: DomainKeyRecord | None = None
) -> bytes:
    """The blob of one exported object, sealed under ``key`` (by default its domain's
    current backup key)."""
    return make_blob(inst, vault, export.kind, export.name, export.versions, export.extras, key)


def malformed_payload() -> BackupRejected:
    return BackupRejected(
        "The backup blob authenticated but its contents are not a valid object backup.",
        inner=blobfmt.MALFORMED,
    )


# A version entry as ``ObjectService.backup_entry`` writes it: each field and what it may hold,
# as loosely as any release wrote it (``restored_version`` takes ints for booleans and numbers
# for times). "extra" may be missing: ``restored_version`` reads it with ``get``.
_NUMBER = (int, float)
_ENTRY: dict[str, tuple[type, ...]] = {
    "version": (str,), "created": _NUMBER, "updated": _NUMBER, "enabled": (bool, int),
    "nbf": (*_NUMBER, type(None)), "exp": (*_NUMBER, type(None)),
    "contentType": (str, type(None)), "tags": (str, type(None)), "managed": (bool, int),
    "extra": (str, type(None)),
}  # fmt: skip
_TIMES = ("created", "updated", "nbf", "exp")
# Lists of such entries a kind carries beside its versions (a certificate's key and secret
# versions, a storage account's SAS definitions).
_ENTRY_LISTS = {Kind.CERTIFICATE: ("keys", "secrets"), Kind.STORAGE: ("sasDefinitions",)}


def _json_object(text: str | None) -> bool:
    if text is None:
        return True
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


# Each field of _ENTRY: (name, types, whether it may be missing, whether it is a time (never a
# bool), whether it may be a number (then within the stores' 64-bit integers)).
_FIELD_CHECKS = tuple(
    (name, types, name == "extra", name in _TIMES, int in types or float in types)
    for name, types in _ENTRY.items()
)
_LIMIT = 2**62


def _valid_entries(entries: Any) -> bool:
    """Whether ``entries`` are version entries that can be written back as they are: a store
    given a field of another type fails the transaction (a 500) or keeps a value its reads
    cannot render; two entries of one version break its unique index."""
    if not isinstance(entries, list):
        return False
    seen: set[str] = set()
    for item in entries:
        if not isinstance(item, dict):
            return False
        for name, types, optional, time, numeric in _FIELD_CHECKS:
            if name not in item:
                if optional:
                    continue
                return False
            value = item[name]
            if not isinstance(value, types):
                return False
            if numeric and value is not None:
                if time and isinstance(value, bool):
                    return False
                if not -_LIMIT < cast(float, value) < _LIMIT:
                    return False  # beyond what the stores' 64-bit integers hold
        if not item["version"] or item["version"] in seen:
            return False
        seen.add(item["version"])
        if not _json_object(item["tags"]) or not _json_object(item.get("extra")):
            return False
    return True


def _domain_key(
    inst: Installation, envelope: blobfmt.Envelope, reads: Reads | None = None
) -> DomainKeyRecord:
    """The backup key a blob names, or ``BackupRejected`` saying why this installation has
    none (domain not held, key version retired or unknown). ``reads``: the store's unless
    given (off the event loop, a snapshot's)."""
    domain = str(envelope.header["domain"])
    key_version = str(envelope.header["keyVersion"])
    reads = reads or inst.store.reads
    key_record = reads.get_domain_key(domain, key_version)
    if key_record is not None:
        return key_record
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


def _check_domain(envelope: blobfmt.Envelope, vault: VaultRecord) -> None:
    domain = str(envelope.header["domain"])
    if domain != vault.domain_id:
        raise BackupRejected(
            f"The backup belongs to security domain {domain} but vault '{vault.name}' belongs to "
            f"{vault.domain_id}; restore it into a vault of the backup's domain.",
            inner=DOMAIN_MISMATCH,
        )


def seal_document(
    inst: Installation,
    vault: VaultRecord,
    kind: str,
    name: str,
    body: dict[str, Any],
    key_record: DomainKeyRecord | None = None,
    count: int = 0,
) -> bytes:
    """A JSON document sealed like an object blob, its header naming ``kind`` (which no
    object restore takes): a whole-vault backup's manifest, a replica's settings."""
    key_record = key_record or inst.store.reads.current_domain_key(vault.domain_id)
    assert key_record is not None, "every domain has a backup key from its creation"
    header = {
        "kind": kind, "name": name, "versions": count, "instance": inst.instance_id,
        "vault": vault.name, "domain": vault.domain_id, "keyVersion": key_record.version,
        "created": inst.clock.now(),
    }  # fmt: skip
    payload = json.dumps(body, separators=(",", ":")).encode()
    return blobfmt.seal(header, payload, inst.keyring.domain_key(key_record))


def open_document(
    inst: Installation,
    blob: bytes,
    vault: VaultRecord | None,
    kind: str,
    reads: Reads | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, body) of an authenticated document of ``kind``; with ``vault``, one of its
    security domain."""
    envelope = blobfmt.parse(blob)
    key_record = _domain_key(inst, envelope, reads)
    if vault is not None:
        _check_domain(envelope, vault)
    payload = blobfmt.open_sealed(envelope, inst.keyring.domain_key(key_record))
    if envelope.header["kind"] != kind:
        raise BackupRejected(
            f"This is a {envelope.header['kind']} blob, not a {kind}.", inner=KIND_MISMATCH
        )
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise malformed_payload() from exc
    if not isinstance(body, dict):
        raise malformed_payload()
    return envelope.header, body


def seal_manifest(
    inst: Installation,
    vault: VaultRecord,
    folder: str,
    objects: int,
    body: dict[str, Any],
    key_record: DomainKeyRecord,
) -> bytes:
    """A whole-vault backup's manifest (header kind ``manifest``, named after its folder)."""
    return seal_document(inst, vault, MANIFEST, folder, body, key_record, objects)


def open_manifest(
    inst: Installation, blob: bytes, vault: VaultRecord | None, reads: Reads | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, body) of an authenticated manifest; with ``vault``, one it may restore into."""
    return open_document(inst, blob, vault, MANIFEST, reads)


def blob_header(blob: bytes) -> dict[str, Any]:
    """A blob's header once its framing and integrity check out: not yet authenticated."""
    return blobfmt.parse(blob).header


def authenticate(inst: Installation, blob: bytes, reads: Reads | None = None) -> dict[str, Any]:
    """The header of a blob whose seal this installation can open; else ``BackupRejected``."""
    envelope = blobfmt.parse(blob)
    key_record = _domain_key(inst, envelope, reads)
    blobfmt.open_sealed(envelope, inst.keyring.domain_key(key_record))
    return envelope.header


def check_restorable(
    inst: Installation, vault: VaultRecord, blob: bytes, reads: Reads | None = None
) -> dict[str, Any]:
    """The header of a blob this installation could restore into ``vault`` (its domain and
    key version held, the vault of that domain), authenticated; else ``BackupRejected``."""
    envelope = blobfmt.parse(blob)
    key_record = _domain_key(inst, envelope, reads)
    _check_domain(envelope, vault)
    blobfmt.open_sealed(envelope, inst.keyring.domain_key(key_record))
    return envelope.header


def open_blob(
    inst: Installation, vault: VaultRecord, kind: Kind, blob: bytes
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """(name, versions, whole payload) from an authenticated blob, or ``BackupRejected``."""
    envelope = blobfmt.parse(blob)
    key_record = _domain_key(inst, envelope)
    _check_domain(envelope, vault)
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
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise malformed_payload() from exc
    if name != envelope.header["name"] or len(versions) != envelope.header["versions"]:
        raise malformed_payload()
    try:
        check_object_name(name, kind.value)
    except BadParameter as exc:
        raise malformed_payload() from exc
    if not versions or not _valid_entries(versions):
        raise malformed_payload()
    for extra in _ENTRY_LISTS.get(kind, ()):
        if data.get(extra) is not None and not _valid_entries(data[extra]):
            raise malformed_payload()
    return name, versions, data
