"""At-rest envelope: AES-256-GCM with associated data binding each value to its place.

Sealed form: ``0x01 | nonce (12 bytes) | ciphertext+tag``. The leading byte is the envelope
version so the format can change without guessing. Associated data is built by ``aad`` from
length-prefixed parts, so no two different (vault, kind, name, version) tuples share it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_NONCE = 12
KEY_BYTES = 32


class SealBroken(Exception):
    """The sealed value does not open under this key and associated data."""


def aad(*parts: str) -> bytes:
    out = bytearray()
    for part in parts:
        raw = part.encode()
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


class Sealer:
    """Seals and opens values under one AES-256 key. Holds the key; never shows it."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes):
        if len(key) != KEY_BYTES:
            raise ValueError("an AES-256 key is 32 bytes")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "Sealer(<hidden>)"

    def seal(self, plaintext: bytes, associated: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, associated)

    def open(self, sealed: bytes, associated: bytes) -> bytes:
        if len(sealed) < 1 + _NONCE + 16 or sealed[:1] != _VERSION:
            raise SealBroken("not a sealed value of a known envelope version")
        try:
            return self._aead.decrypt(sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :], associated)
        except InvalidTag as exc:
            raise SealBroken("sealed value failed authentication") from exc


class MasterKeyError(Exception):
    """The master key file is missing, damaged or exposed; the message says what to do."""


def load_master_key(path: Path) -> bytes:
    """Reads the installation's master key, refusing a file other users may read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise MasterKeyError(
            f"The master key file {path} is missing, but this installation's database was "
            "made with it: every sealed value needs it. Restore master.key from your backup "
            "of the data directory (mode 0600). Strongroom will not make a new one, which "
            "could open nothing already stored."
        ) from exc
    if mode & 0o077:
        raise MasterKeyError(
            f"The master key file {path} may be read by other users (mode "
            f"{stat.S_IMODE(mode):04o}). Make it private with: chmod 600 {path}"
        )
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"master key file {path} is damaged: expected {KEY_BYTES} bytes")
    return key


def create_master_key(path: Path) -> bytes:
    """Creates the master key (mode 0600) of a new installation, or reads the one another
    process starting at the same moment made.

    Processes starting together on a new data directory agree on one key: it is written
    whole to a private temporary file and linked into place, which fails if another process
    linked its own first; that one is then read.
    """
    key = new_key()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            return key
        except FileExistsError:
            pass  # another process's key won
    finally:
        tmp.unlink(missing_ok=True)
    return load_master_key(path)
