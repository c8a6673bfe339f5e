"""Every class of bad backup blob is refused with 400, its own inner code, and nothing written."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from strongroom.config import Settings
from strongroom.models import Kind
from strongroom.services import backup
from strongroom.services.installation import Installation, open_installation
from strongroom.services.secrets import SecretService
from strongroom.services.vaults import VaultService
from tests.conftest import Server


def _b64(blob: bytes) -> str:
    return base64.urlsafe_b64encode(blob).decode().rstrip("=")


def _redigest(body: bytes) -> bytes:
    """Recomputes the integrity digest, as a deliberate tamperer would."""
    return body + hashlib.sha256(body).digest()


def _header_span(blob: bytes) -> tuple[int, int]:
    length = int.from_bytes(blob[5:9], "big")
    return 9, 9 + length


def _rewrite_header(blob: bytes, **changes: object) -> bytes:
    start, end = _header_span(blob)
    header = json.loads(blob[start:end])
    header.update(changes)
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    body = blob[:5] + len(raw).to_bytes(4, "big") + raw + blob[end:-32]
    return _redigest(body)


@pytest.fixture(scope="module")
def blob(server: Server) -> bytes:
    with server.http("vault-a") as http:
        http.put("/secrets/refusals", json={"value": "first"})
        http.put("/secrets/refusals", json={"value": "second"})
        value = http.post("/secrets/refusals/backup").json()["value"]
        http.delete("/secrets/refusals")
        assert http.delete("/deletedsecrets/refusals").status_code == 204
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


@pytest.fixture(scope="module")
def server_installation(server: Server) -> Iterator[Installation]:
    """The running server's own installation, opened beside it (SQLite WAL allows it)."""
    inst = open_installation(
        Settings(data_dir=server.data_dir, port=server.port, database_url=server.database_url)
    )
    yield inst
    inst.close()


def _restore(server: Server, value: str) -> httpx.Response:
    with server.http("vault-b") as http:
        response = http.post("/secrets/restore", json={"value": value})
        assert http.get("/secrets/refusals/").status_code in (404, 200)
        return response


def _refused(server: Server, value: str, inner: str) -> str:
    response = _restore(server, value)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "BadParameter"
    assert error["innererror"]["code"] == inner
    with server.http("vault-b") as http:  # nothing was half-restored
        assert http.get("/secrets/refusals/").status_code == 404
        assert http.get("/deletedsecrets/refusals").status_code == 404
    return str(error["message"])


def test_intact_blob_restores(server: Server, blob: bytes) -> None:
    with server.http("vault-b") as http:
        assert http.post("/secrets/restore", json={"value": _b64(blob)}).status_code == 200
        assert http.get("/secrets/refusals/").json()["value"] == "second"
        http.delete("/secrets/refusals")
        http.delete("/deletedsecrets/refusals")


def test_not_base64(server: Server) -> None:
    _refused(server, "not base64 at all!!", "BackupBlobMalformed")


def test_not_a_strongroom_blob(server: Server) -> None:
    message = _refused(server, _b64(b"PK\x03\x04" + bytes(100)), "BackupBlobMalformed")
    assert "not a Strongroom backup" in message


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_truncated(server: Server, blob: bytes, keep: float) -> None:
    cut = blob[: int(len(blob) * keep)]
    # Past the 4-byte magic, a cut blob is a damaged Strongroom backup.
    inner = "BackupBlobMalformed" if len(cut) <= 4 else "BackupBlobCorrupted"
    _refused(server, _b64(cut), inner)


def test_a_flipped_bit_anywhere_is_refused(server: Server, blob: bytes) -> None:
    # Positions in the magic, format byte, header length, header, ciphertext and digest.
    start, end = _header_span(blob)
    positions = [0, 4, 6, start + 3, (start + end) // 2, end + 1, len(blob) - 40, len(blob) - 1]
    for position in positions:
        flipped = bytearray(blob)
        flipped[position] ^= 0x01
        response = _restore(server, _b64(bytes(flipped)))
        assert response.status_code == 400, position
        assert response.json()["error"]["innererror"]["code"] in (
            "BackupBlobMalformed",
            "BackupBlobCorrupted",
        ), position


def test_tampered_payload_with_recomputed_digest(server: Server, blob: bytes) -> None:
    body = bytearray(blob[:-32])
    body[-5] ^= 0x80
    message = _refused(server, _b64(_redigest(bytes(body))), "BackupBlobTampered")
    assert "failed authentication" in message


def test_tampered_header_with_recomputed_digest(server: Server, blob: bytes) -> None:
    forged = _rewrite_header(blob, name="someone-else")
    _refused(server, _b64(forged), "BackupBlobTampered")


def test_unsupported_format_version(server: Server, blob: bytes) -> None:
    body = bytearray(blob[:-32])
    body[4] = 9
    message = _refused(server, _b64(_redigest(bytes(body))), "BackupFormatUnsupported")
    assert "format version 9" in message


def test_unknown_backup_key_version(server: Server, blob: bytes) -> None:
    forged = _rewrite_header(blob, keyVersion="0" * 32)
    message = _refused(server, _b64(forged), "BackupKeyVersionUnknown")
    assert "0" * 32 in message


def test_blob_from_another_installation(server: Server, tmp_path: Path) -> None:
    other = open_installation(Settings(data_dir=tmp_path / "other"))
    try:
        VaultService(other).create("elsewhere")
        vault = other.store.reads.get_vault("elsewhere")
        assert vault is not None
        secrets = SecretService(other)
        asyncio.run(secrets.set_secret(vault, "refusals", "foreign"))
        foreign = secrets.backup_object(vault, "refusals")
    finally:
        other.close()
    message = _refused(server, _b64(foreign), "BackupSecurityDomainUnknown")
    assert other.default_domain_id in message


def test_blob_of_another_kind(
    server: Server, server_installation: Installation, blob: bytes
) -> None:
    vault = server_installation.store.reads.get_vault("vault-a")
    assert vault is not None
    key_blob = backup.make_blob(server_installation, vault, Kind.KEY, "refusals", [{"x": 1}])
    message = _refused(server, _b64(key_blob), "BackupKindMismatch")
    assert "POST /keys/restore" in message
