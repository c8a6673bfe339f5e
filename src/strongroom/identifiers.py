"""Names, versions and api-versions: what Key Vault accepts, checked in one place."""

from __future__ import annotations

import os
import re
import time

from strongroom.errors import BadParameter

# secrets.json / keys.json / certificates.json: "^[0-9a-zA-Z-]+$"; the service caps names at 127.
_OBJECT_NAME = re.compile(r"[0-9a-zA-Z-]{1,127}")
# Azure's vault naming rule: 3-24 characters, letters, digits and hyphens, starting with a letter.
_VAULT_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]")
_VERSION = re.compile(r"[0-9a-f]{32}")
# Every published form: 2016-10-01, 7.0 ... 7.6, 7.x-preview[.N], YYYY-MM-DD[-preview].
_API_VERSION = re.compile(
    r"(?:7\.\d{1,2}(?:-preview(?:\.\d{1,2})?)?|\d{4}-\d{2}-\d{2}(?:-preview)?)"
)


def check_object_name(name: str, what: str = "secret") -> str:
    if not _OBJECT_NAME.fullmatch(name):
        raise BadParameter(
            f"The {what} name '{name[:130]}' is invalid: use 1-127 characters, "
            "only letters, digits and hyphens (^[0-9a-zA-Z-]+$)."
        )
    return name


def check_vault_name(name: str) -> str:
    if not _VAULT_NAME.fullmatch(name) or "--" in name:
        raise BadParameter(
            f"The vault name '{name[:40]}' is invalid: use 3-24 characters, letters, digits and "
            "single hyphens, starting with a letter and not ending with a hyphen."
        )
    return name


def is_version(text: str) -> bool:
    return bool(_VERSION.fullmatch(text))


# A random hex digit's low two bits under RFC 9562's variant bits (10xx): 8, 9, a or b.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def new_version() -> str:
    """A version id as Key Vault shows them (32 lower-case hex digits), laid out as a UUIDv7
    (RFC 9562): 48 bits of Unix milliseconds, the version digit 7, 12 random bits, the variant
    bits and 62 more random bits.

    Clients treat version ids as opaque; time-ordered ones make a new version's entry land at
    the end of the store's version index instead of at a random page of it, so a group commit
    writes a few pages rather than one per version (bench/README.md has the figures). Built from hex
    text rather than integer arithmetic: it runs on every write, on the event loop.
    """
    millis = time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF
    rand = os.urandom(10).hex()  # 20 digits: 3 for rand_a, 1 shares the variant, 15 more
    return f"{millis:012x}7{rand[:3]}{_VARIANT[rand[3]]}{rand[4:19]}"


_ACCEPTED: set[str] = set()


def check_api_version(value: str | None) -> str:
    if value in _ACCEPTED:
        return value
    if value is None or value == "":
        raise BadParameter(
            "The api-version query parameter is missing. Add ?api-version=7.6 "
            "(any published Key Vault version, e.g. 7.4, 2025-07-01) to the URL."
        )
    if not _API_VERSION.fullmatch(value):
        raise BadParameter(
            f"The specified version ({value[:40]}) is not recognized. Use a published Key Vault "
            "api-version such as 7.6 or 2025-07-01."
        )
    if len(_ACCEPTED) < 256:
        _ACCEPTED.add(value)
    return value
