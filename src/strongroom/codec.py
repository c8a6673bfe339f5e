"""Base64, the one codec of the code base, strict on input.

Key Vault carries binary fields two ways (contract notes 1.8): base64url without padding (JWK
members, backup blobs, cryptographic values) and standard base64 (certificate ``cer``, CSRs,
PFX imports). Decoding is strict: a character outside the alphabet, misplaced padding or an
impossible length is refused with ``BadParameter`` naming the field, never dropped, so that
``"!!!!"`` cannot pass as empty input.

``b64url_decode`` also takes the standard alphabet and padding, which azure-core's and MSAL's
encoders produce in some versions; the two alphabets share 62 characters and map ``-``/``+`` and
``_``/``/`` to the same values, so accepting both is unambiguous.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from strongroom.errors import BadParameter

_URL_OR_STD = re.compile(r"[A-Za-z0-9_+/-]*={0,2}")
_TO_STANDARD = str.maketrans("-_", "+/")


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64_encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _refuse(field: str, what: str, inner: str | None) -> BadParameter:
    return BadParameter(f"'{field}' is not valid {what}.", inner=inner)


def b64url_decode(text: Any, field: str, *, inner: str | None = None) -> bytes:
    """base64url (or standard base64), padded or not; ``inner``: the inner error code."""
    if not isinstance(text, str):
        raise BadParameter(f"'{field}' must be a base64url string.", inner=inner)
    if not _URL_OR_STD.fullmatch(text):
        raise _refuse(field, "base64url", inner)
    body = text.rstrip("=")
    padded = len(text) != len(body)
    if len(body) % 4 == 1 or (padded and len(text) % 4):
        raise _refuse(field, "base64url", inner)
    try:
        return base64.b64decode(
            body.translate(_TO_STANDARD) + "=" * (-len(body) % 4), validate=True
        )
    except (binascii.Error, ValueError) as exc:
        raise _refuse(field, "base64url", inner) from exc


def b64_decode(text: Any, field: str) -> bytes:
    """Standard base64 with its padding (the spec's format ``byte``)."""
    if not isinstance(text, str):
        raise BadParameter(f"'{field}' must be a standard base64 string.")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _refuse(field, "standard base64", None) from exc
