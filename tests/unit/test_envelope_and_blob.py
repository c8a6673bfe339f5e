"""The at-rest envelope and the backup blob format, without a server."""

from __future__ import annotations

import pytest

from strongroom.crypto import backup as blobfmt
from strongroom.crypto.envelope import SealBroken, Sealer, aad, new_key
from strongroom.errors import BackupRejected


def test_sealed_value_is_bound_to_its_place() -> None:
    sealer = Sealer(new_key())
    here = aad("vault-1", "secret", "name", "v1")
    sealed = sealer.seal(b"value", here)
    assert sealer.open(sealed, here) == b"value"
    assert b"value" not in sealed
    for elsewhere in (
        aad("vault-2", "secret", "name", "v1"),
        aad("vault-1", "key", "name", "v1"),
        aad("vault-1", "secret", "name", "v2"),
        aad("vault-1", "secret", "namev", "1"),  # length prefixes keep parts apart
    ):
        with pytest.raises(SealBroken):
            sealer.open(sealed, elsewhere)
    with pytest.raises(SealBroken):
        Sealer(new_key()).open(sealed, here)


def test_sealer_repr_hides_the_key() -> None:
    key = new_key()
    assert key.hex() not in repr(Sealer(key))


def test_blob_round_trip_and_header_readable_without_key() -> None:
    key = new_key()
    header = {"kind": "secret", "name": "n", "versions": 2, "domain": "d", "keyVersion": "k"}
    blob = blobfmt.seal(header, b'{"payload": true}', key)
    envelope = blobfmt.parse(blob)
    assert envelope.header["name"] == "n"
    assert envelope.header["compression"] == "zlib"
    assert blobfmt.open_sealed(envelope, key) == b'{"payload": true}'
    with pytest.raises(BackupRejected) as info:
        blobfmt.open_sealed(envelope, new_key())
    assert info.value.inner == blobfmt.TAMPERED


def test_two_backups_of_the_same_data_differ() -> None:
    key = new_key()
    header = {"kind": "secret", "name": "n", "versions": 1, "domain": "d", "keyVersion": "k"}
    assert blobfmt.seal(header, b"x", key) != blobfmt.seal(header, b"x", key)


@pytest.mark.parametrize(
    ("blob", "inner"),
    [
        (b"", blobfmt.MALFORMED),
        (b"SRBK", blobfmt.MALFORMED),
        (b"XXXX" + bytes(64), blobfmt.MALFORMED),
    ],
)
def test_parse_refusals(blob: bytes, inner: str) -> None:
    with pytest.raises(BackupRejected) as info:
        blobfmt.parse(blob)
    assert info.value.inner == inner
