"""The backup blob: a readable, authenticated header and a sealed, compressed payload.

::

    "SRBK" | format (1 byte) | header length (4 bytes, big-endian) | header | ciphertext | digest

- header: canonical JSON (sorted keys, no spaces), readable without keys. It names the kind,
  name, version count, source instance and vault, security domain, backup-key version,
  creation time, compression, and the HKDF salt and GCM nonce. It is the AEAD associated data,
  so nothing in it is trusted before the seal verifies.
- ciphertext: AES-256-GCM over the compressed payload, under
  HKDF-SHA256(domain backup key, salt, info) (RFC 5869).
- digest: SHA-256 of everything before it. It is not a security control (anyone can recompute
  it); it lets a restore tell *damage* (truncation, a flipped bit) from *tampering or a foreign
  key* and say so, where the AEAD alone would give one answer for all of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from strongroom.errors import BackupRejected

MAGIC = b"SRBK"
FORMAT = 1
_INFO = b"strongroom backup v1"
_DIGEST = 32
_PREFIX = len(MAGIC) + 1 + 4
_MAX_HEADER = 64 * 1024
_REQUIRED = ("format", "kind", "name", "versions", "domain", "keyVersion", "salt", "nonce")

# Inner error codes of a refused restore, one per cause.
MALFORMED = "BackupBlobMalformed"
CORRUPTED = "BackupBlobCorrupted"
UNSUPPORTED = "BackupFormatUnsupported"
TAMPERED = "BackupBlobTampered"


def _derive(backup_key: bytes, salt: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO)
    return AESGCM(hkdf.derive(backup_key))


def _canonical(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def seal(header: dict[str, Any], payload: bytes, backup_key: bytes) -> bytes:
    """Seals ``payload`` (compressed here) under ``backup_key``; returns the whole blob."""
    salt, nonce = os.urandom(16), os.urandom(12)
    full = dict(header, format=FORMAT, compression="zlib", salt=salt.hex(), nonce=nonce.hex())
    head = _canonical(full)
    prefix = MAGIC + bytes([FORMAT]) + len(head).to_bytes(4, "big") + head
    ciphertext = _derive(backup_key, salt).encrypt(nonce, zlib.compress(payload, 6), prefix)
    body = prefix + ciphertext
    return body + hashlib.sha256(body).digest()


@dataclass(frozen=True, slots=True)
class Envelope:
    """A blob whose framing checked out; ``header`` is still unauthenticated."""

    header: dict[str, Any]
    prefix: bytes
    ciphertext: bytes


def _damaged(blob: bytes) -> bool:
    """Whether a blob whose framing does not check out is a Strongroom backup that was damaged
    (cut short, or its magic bytes changed) rather than something else altogether: more than
    the magic and starting with it, or with its digest matching once the magic is put back."""
    if blob[:4] == MAGIC:
        return len(blob) > len(MAGIC)
    body, digest = blob[:-_DIGEST], blob[-_DIGEST:]
    return len(blob) >= _PREFIX + _DIGEST and hashlib.sha256(MAGIC + body[4:]).digest() == digest


def parse(blob: bytes) -> Envelope:
    """Checks framing and integrity; raises ``BackupRejected`` naming what is wrong.

    Damage (a cut, a flipped bit anywhere, the magic included) is ``CORRUPTED``; ``MALFORMED``
    is kept for what is not a Strongroom backup at all, and for a blob whose digest checks out
    but whose framing or header does not (written so, not damaged on the way).
    """
    if len(blob) < _PREFIX + _DIGEST or blob[:4] != MAGIC:
        if _damaged(blob):
            raise BackupRejected(
                "The backup blob is corrupted: it was truncated or its first bytes were "
                "changed after it was made. Use an intact copy of the backup.",
                inner=CORRUPTED,
            )
        raise BackupRejected(
            "The backup blob is not a Strongroom backup (bad magic or far too short). "
            "Pass the exact value a backup operation returned.",
            inner=MALFORMED,
        )
    body, digest = blob[:-_DIGEST], blob[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise BackupRejected(
            "The backup blob is corrupted: it was truncated or changed after it was made "
            "(integrity check failed). Use an intact copy of the backup.",
            inner=CORRUPTED,
        )
    if blob[4] != FORMAT:
        raise BackupRejected(
            f"The backup blob uses format version {blob[4]}, which this server does not "
            f"read (it reads version {FORMAT}). Restore it with a matching Strongroom release.",
            inner=UNSUPPORTED,
        )
    head_len = int.from_bytes(blob[5:9], "big")
    if head_len > _MAX_HEADER or _PREFIX + head_len > len(body):
        raise BackupRejected("The backup blob header length is invalid.", inner=MALFORMED)
    prefix = body[: _PREFIX + head_len]
    try:
        header = json.loads(prefix[_PREFIX:])
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to parse
        raise BackupRejected("The backup blob header is not valid JSON.", inner=MALFORMED) from exc
    if not isinstance(header, dict) or any(k not in header for k in _REQUIRED):
        raise BackupRejected("The backup blob header lacks required fields.", inner=MALFORMED)
    return Envelope(header=header, prefix=prefix, ciphertext=body[len(prefix) :])


def open_sealed(envelope: Envelope, backup_key: bytes) -> bytes:
    """Authenticates header and payload; returns the decompressed payload."""
    try:
        salt = bytes.fromhex(str(envelope.header["salt"]))
        nonce = bytes.fromhex(str(envelope.header["nonce"]))
        packed = _derive(backup_key, salt).decrypt(nonce, envelope.ciphertext, envelope.prefix)
    except (ValueError, InvalidTag) as exc:
        raise BackupRejected(
            "The backup blob failed authentication: it was altered, or it was sealed under a "
            "different key than the one this security domain holds for its key version.",
            inner=TAMPERED,
        ) from exc
    try:
        return zlib.decompress(packed)
    except zlib.error as exc:  # authenticated yet undecodable: written by a broken producer
        raise BackupRejected("The backup payload cannot be decompressed.", inner=MALFORMED) from exc
