"""Azure Storage shared access signatures, minted from a SAS definition's template.

A template is a SAS token (or a URL carrying one) signed with any key; a minted token keeps the
template's parameters in their order and replaces its start, expiry and signature: no ``st``
(valid at once, whatever the storage service's clock), ``se`` = now + validity period, and
``sig`` = HMAC-SHA256 under the account key of Azure's string-to-sign for the token's ``sv``:

- account SAS (``ss``, ``srt``, ``sp``): any service;
- service SAS for the blob service (``sr=c`` a container, ``sr=b`` a blob), whose template is a
  URL naming the container (and blob), virtual-host style (``acct.blob.core.windows.net/c``)
  or path style as Azurite serves (``127.0.0.1:10000/acct/c``).

String-to-sign layouts: https://learn.microsoft.com/rest/api/storageservices/create-account-sas
and .../create-service-sas (2015-04-05, 2018-11-09 and 2020-12-06 forms).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from strongroom.errors import BadParameter

OLDEST_VERSION = "2015-04-05"
_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")
_ACCOUNT_REQUIRED = ("sv", "ss", "srt", "sp")
_SERVICE_REQUIRED = ("sv", "sr", "sp")
_BLOB_RESOURCES = {"c": "container", "b": "blob"}
_DROPPED = {"st", "se", "sig"}
_KNOWN = {
    "account": {"sv", "ss", "srt", "sp", "sip", "spr", "ses", "st", "se", "sig"},
    "service": {
        "sv", "sr", "sp", "si", "sip", "spr", "ses", "st", "se", "sig",
        "rscc", "rscd", "rsce", "rscl", "rsct",
    },
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class SasTemplate:
    sas_type: str  # "account" | "service"
    params: tuple[tuple[str, str], ...]  # the template's, in order, without st, se and sig
    container: str | None = None  # service SAS only
    blob: str | None = None  # service SAS on a blob only

    def get(self, name: str) -> str:
        for key, value in self.params:
            if key == name:
                return value
        return ""


def parse_template(template_uri: str, sas_type: str, account: str) -> SasTemplate:
    """The template's parameters, or ``BadParameter`` naming what is wrong with it."""
    if sas_type not in _KNOWN:
        raise BadParameter(f"sasType must be 'account' or 'service'; got {sas_type!r:.30}.")
    text = template_uri.strip()
    if "?" in text:
        base, _, query = text.partition("?")
    elif "://" in text:
        base, query = text, ""
    else:
        base, query = "", text
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise BadParameter("templateUri is not a SAS token: expected name=value pairs.") from exc
    seen: set[str] = set()
    kept = []
    for key, value in pairs:
        if key in seen:
            raise BadParameter(f"templateUri repeats the SAS parameter '{key[:20]}'.")
        seen.add(key)
        if key not in _KNOWN[sas_type]:
            raise BadParameter(
                f"templateUri has '{key[:20]}', which a {sas_type} SAS does not take; "
                f"allowed: {', '.join(sorted(_KNOWN[sas_type] - _DROPPED))}."
            )
        if key not in _DROPPED:
            kept.append((key, value))
    required = _ACCOUNT_REQUIRED if sas_type == "account" else _SERVICE_REQUIRED
    missing = [k for k in required if k not in seen]
    if missing:
        raise BadParameter(
            f"templateUri lacks {', '.join(missing)}: a {sas_type} SAS template needs "
            f"{', '.join(required)}."
        )
    template = SasTemplate(sas_type, tuple(kept))
    version = template.get("sv")
    if not _VERSION.fullmatch(version) or version < OLDEST_VERSION:
        raise BadParameter(
            f"templateUri's sv={version[:20]!r} is not a storage service version Strongroom "
            f"signs; use {OLDEST_VERSION} or later."
        )
    if template.get("ses") and version < "2020-12-06":
        raise BadParameter("An encryption scope (ses) needs sv=2020-12-06 or later.")
    if sas_type == "account":
        return template
    return _service_template(template, base, account)


def _service_template(template: SasTemplate, base: str, account: str) -> SasTemplate:
    resource = template.get("sr")
    if resource not in _BLOB_RESOURCES:
        raise BadParameter(
            f"Service SAS templates with sr={resource[:10]!r} are not supported: Strongroom "
            "mints service SAS tokens for blob containers (sr=c) and blobs (sr=b); use an "
            "account SAS definition for other services."
        )
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadParameter(
            "A service SAS templateUri must be the URL of the container or blob with its token, "
            "e.g. https://account.blob.core.windows.net/container?sv=...&sr=c&sp=r&sig=..."
        )
    segments = [unquote(s) for s in parts.path.split("/")[1:]]
    host = (parts.hostname or "").lower()
    if not host.startswith(account.lower() + ".") and segments and segments[0] == account:
        segments = segments[1:]  # path style: /{account}/{container}
    if not segments or not segments[0]:
        raise BadParameter("The service SAS templateUri names no container.")
    container, blob = segments[0], "/".join(segments[1:])
    if resource == "b" and not blob:
        raise BadParameter("sr=b needs a blob in the templateUri's path.")
    if resource == "c" and blob:
        raise BadParameter("sr=c is for a container; the templateUri's path names a blob.")
    return SasTemplate(
        template.sas_type, template.params, container=container, blob=blob if blob else None
    )


def expiry_text(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def string_to_sign(template: SasTemplate, account: str, expiry: str) -> str:
    """Azure's string-to-sign for a token of ``template`` expiring at ``expiry`` (no start)."""
    g = template.get
    version = g("sv")
    if template.sas_type == "account":
        fields = [account, g("sp"), g("ss"), g("srt"), "", expiry, g("sip"), g("spr"), version]
        if version >= "2020-12-06":
            fields.append(g("ses"))
        return "\n".join([*fields, ""])
    resource = f"/blob/{account}/{template.container}"
    if template.blob:
        resource += f"/{template.blob}"
    fields = [g("sp"), "", expiry, resource, g("si"), g("sip"), g("spr"), version]
    if version >= "2018-11-09":
        fields += [g("sr"), ""]  # signed resource, snapshot time
    if version >= "2020-12-06":
        fields.append(g("ses"))
    fields += [g("rscc"), g("rscd"), g("rsce"), g("rscl"), g("rsct")]
    return "\n".join(fields)


def sign(text: str, key_b64: str) -> str:
    key = base64.b64decode(key_b64)
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).decode()


def mint(template: SasTemplate, account: str, key_b64: str, expires: dt.datetime) -> str:
    """A token (query string without "?") valid from now until ``expires``."""
    expiry = expiry_text(expires)
    signature = sign(string_to_sign(template, account, expiry), key_b64)
    params = [*template.params, ("se", expiry), ("sig", signature)]
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params)
