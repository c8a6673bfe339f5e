"""What the console's pages show, made from the data plane's JSON answers: no HTTP here."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs12

from strongroom.store.base import AuditRecord


@dataclass(frozen=True, slots=True)
class KindView:
    collection: str  # the data plane's path: "secrets", "keys", "certificates", "storage"
    title: str  # "Secrets"
    one: str  # "secret"
    id_field: str  # where a list item keeps its id
    deleted: str  # the collection of its deleted objects
    versions: bool  # whether it has versions to list


KINDS: dict[str, KindView] = {
    "secrets": KindView("secrets", "Secrets", "secret", "id", "deletedsecrets", True),
    "keys": KindView("keys", "Keys", "key", "kid", "deletedkeys", True),
    "certificates": KindView(
        "certificates", "Certificates", "certificate", "id", "deletedcertificates", True
    ),
    "storage": KindView("storage", "Storage accounts", "storage account", "id", "deletedstorage",
                        False),
}  # fmt: skip


def when(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def day(ts: Any) -> str:
    """An expiry as a date input shows it."""
    if not isinstance(ts, int | float):
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


@dataclass(slots=True)
class Item:
    """One object, or one version of one, as a list or a detail page shows it."""

    name: str
    version: str
    enabled: bool
    created: str
    updated: str
    expires: str
    expires_day: str
    not_before: str
    tags: dict[str, str]
    content_type: str
    managed: bool
    deleted: str = ""
    purge: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def name_and_version(identifier: str, collection: str) -> tuple[str, str]:
    """``https://v.vault.localhost/secrets/name/version`` → (name, version)."""
    parts = [unquote(p) for p in urlsplit(identifier).path.split("/") if p]
    try:
        at = [p.lower() for p in parts].index(collection)
    except ValueError:
        return parts[-1] if parts else "", ""
    rest = parts[at + 1 :]
    return (rest[0] if rest else ""), (rest[1] if len(rest) > 1 else "")


def item_of(raw: dict[str, Any], kind: KindView, deleted: bool = False) -> Item:
    attributes = raw.get("attributes") or {}
    identifier = str(raw.get(kind.id_field) or raw.get("id") or "")
    if deleted and raw.get("recoveryId"):
        name, version = name_and_version(str(raw["recoveryId"]), kind.deleted)
    else:
        name, version = name_and_version(identifier, kind.collection)
    return Item(
        name=name,
        version=version,
        enabled=bool(attributes.get("enabled", True)),
        created=when(attributes.get("created")),
        updated=when(attributes.get("updated")),
        expires=when(attributes.get("exp")),
        expires_day=day(attributes.get("exp")),
        not_before=when(attributes.get("nbf")),
        tags=dict(raw.get("tags") or {}),
        content_type=str(raw.get("contentType") or ""),
        managed=bool(raw.get("managed")),
        deleted=when(raw.get("deletedDate")),
        purge=when(raw.get("scheduledPurgeDate")),
    )


def matches(item: Item, text: str, tag: str) -> bool:
    """The list filter: ``text`` in the name (any case); ``tag`` as ``name`` or ``name=value``."""
    if text and text.lower() not in item.name.lower():
        return False
    if tag:
        key, has_value, value = tag.partition("=")
        found = {k.lower(): v for k, v in item.tags.items()}
        if key.strip().lower() not in found:
            return False
        if has_value and found[key.strip().lower()] != value.strip():
            return False
    return True


def certificate_facts(cer_b64: str) -> dict[str, str]:
    """Subject, issuer, validity and thumbprint of a certificate's DER (base64)."""
    try:
        der = base64.b64decode(cer_b64 + "=" * (-len(cer_b64) % 4), altchars=b"-_")
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return {}
    return {
        "Subject": cert.subject.rfc4514_string(),
        "Issuer": cert.issuer.rfc4514_string(),
        "Serial number": format(cert.serial_number, "x"),
        "Valid from": when(cert.not_valid_before_utc.timestamp()),
        "Valid until": when(cert.not_valid_after_utc.timestamp()),
        "SHA-1 thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - x5t
        "SHA-256 thumbprint": hashlib.sha256(der).hexdigest().upper(),
    }


def chain_of(value: str) -> list[dict[str, str]]:
    """Each certificate of a certificate's managed secret (a PEM bundle, or a base64 PKCS#12
    without a password), leaf first."""
    certs: list[x509.Certificate] = []
    try:
        if "-----BEGIN" in value:
            certs = x509.load_pem_x509_certificates(value.encode())
        else:
            bundle = pkcs12.load_pkcs12(base64.b64decode(value), None)
            if bundle.cert is not None:
                certs.append(bundle.cert.certificate)
            certs += [c.certificate for c in bundle.additional_certs]
    except ValueError:
        return []
    return [
        {
            "subject": c.subject.rfc4514_string(),
            "issuer": c.issuer.rfc4514_string(),
            "until": when(c.not_valid_after_utc.timestamp()),
        }
        for c in certs
    ]


# -- the audit page's pictures ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    x: int
    ok_y: int
    ok_h: int
    denied_y: int
    denied_h: int
    failed_y: int
    failed_h: int
    label: str
    title: str


CHART_W, CHART_H, BARS = 600, 120, 24


def outcome(status: int) -> str:
    if status in (401, 403):
        return "denied"
    return "ok" if status < 400 else "failed"


def chart(records: list[AuditRecord], start: int, end: int) -> list[Bar]:
    """Requests over time in ``BARS`` buckets, each split into allowed, denied and failed."""
    span = max(end - start, BARS)
    width = span / BARS
    counts = [[0, 0, 0] for _ in range(BARS)]
    for r in records:
        i = min(BARS - 1, max(0, int((r.ts - start) / width)))
        counts[i][("ok", "denied", "failed").index(outcome(r.status))] += 1
    top = max((sum(c) for c in counts), default=0) or 1
    bar_w = CHART_W // BARS
    bars = []
    for i, (ok, denied, failed) in enumerate(counts):
        h_ok, h_denied, h_failed = (round(n * CHART_H / top) for n in (ok, denied, failed))
        at = int(start + i * width)
        bars.append(
            Bar(
                x=i * bar_w,
                ok_y=CHART_H - h_ok,
                ok_h=h_ok,
                denied_y=CHART_H - h_ok - h_denied,
                denied_h=h_denied,
                failed_y=CHART_H - h_ok - h_denied - h_failed,
                failed_h=h_failed,
                label=datetime.fromtimestamp(at, UTC).strftime("%H:%M"),
                title=f"{when(at)}: {ok} allowed, {denied} denied, {failed} failed",
            )
        )
    return bars
