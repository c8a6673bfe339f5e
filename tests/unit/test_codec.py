"""The one base64 codec: strict on input (issue 17, item 10), from a table of cases."""

from __future__ import annotations

import pytest

from strongroom.codec import b64_decode, b64url_decode, b64url_encode
from strongroom.errors import BadParameter

VALID = [
    ("", b""),
    ("AA", b"\x00"),
    ("AA==", b"\x00"),  # padded
    ("_-8", b"\xff\xef"),  # url alphabet
    ("/+8=", b"\xff\xef"),  # standard alphabet, padded (azure-core and MSAL send both)
    ("aGVsbG8", b"hello"),
]
INVALID = ["!!!!", "AAAA!", "A", "AAAAA", "AA=A", "AA===", "A=", "AA AA", " AA", "AA\n", "é"]


@pytest.mark.parametrize(("text", "raw"), VALID)
def test_valid_base64url_decodes(text: str, raw: bytes) -> None:
    assert b64url_decode(text, "value") == raw


@pytest.mark.parametrize("text", INVALID)
def test_invalid_base64url_is_refused_with_the_field(text: str) -> None:
    with pytest.raises(BadParameter, match="'value' is not valid base64url"):
        b64url_decode(text, "value")


def test_non_strings_and_inner_codes() -> None:
    with pytest.raises(BadParameter, match="must be a base64url string"):
        b64url_decode(123, "iv")
    with pytest.raises(BadParameter) as info:
        b64url_decode("!", "value", inner="BackupBlobMalformed")
    assert info.value.inner == "BackupBlobMalformed"


def test_round_trip_and_standard_base64() -> None:
    for n in range(40):
        raw = bytes(range(256))[:n]
        assert b64url_decode(b64url_encode(raw), "v") == raw
    assert b64_decode("aGVsbG8=", "cer") == b"hello"
    for bad in ("aGVsbG8", "aGVs bG8=", "aGVs*bG8="):
        with pytest.raises(BadParameter, match="standard base64"):
            b64_decode(bad, "cer")
