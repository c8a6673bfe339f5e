"""A seed file's entries as typed values, and reading a document into them with every check
``load_seed`` promises (``services.seed`` describes the format).

Each entry keeps the line it starts on, so that what the installation later refuses can be
named in the file too. Checks are the services' own (names, limits, tags, permissions, key
parameters, certificate policies), and key material and certificates are loaded here, so a
file that reads without error fails in ``apply_seed`` only where the installation is in the way.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.crypto import keys as kc
from strongroom.crypto import x509 as cx
from strongroom.errors import BadParameter
from strongroom.identifiers import check_object_name, check_vault_name
from strongroom.models import CertificatePolicy
from strongroom.services.access import PERMISSIONS, normalise
from strongroom.services.certificate_policy import given, request_policy, with_members
from strongroom.services.certificate_rules import (
    check_policy,
    complete_imported_policy,
    complete_policy,
    self_issued,
)
from strongroom.services.identity import check_client_secret, check_principal_name
from strongroom.services.objects import (
    MAX_UNIXTIME,
    AttributeInput,
    check_content_type,
    check_tags,
    check_window,
)
from strongroom.services.secrets import MAX_VALUE_BYTES
from strongroom.services.seed_files import DocumentError, LineList, LineMap

# -- the seed, checked ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrincipalSeed:
    name: str
    line: int
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AccessPolicySeed:
    principal: str
    permissions: dict[str, list[str]]  # by kind (PERMISSIONS' keys), normalised
    line: int


@dataclass(frozen=True, slots=True)
class SecretVersionSeed:
    value: str = field(repr=False)
    content_type: str | None
    tags: dict[str, str] | None
    attributes: AttributeInput
    line: int


@dataclass(frozen=True, slots=True)
class SecretSeed:
    name: str
    versions: tuple[SecretVersionSeed, ...]
    line: int


@dataclass(frozen=True, slots=True)
class KeyVersionSeed:
    """A version to generate (``kty``) or to import (``jwk``, a PEM key already converted)."""

    line: int
    kty: str | None
    key_size: int | None
    crv: str | None
    public_exponent: int | None
    jwk: dict[str, Any] | None = field(repr=False)
    key_ops: list[str] | None
    tags: dict[str, str] | None
    attributes: AttributeInput


@dataclass(frozen=True, slots=True)
class KeySeed:
    name: str
    versions: tuple[KeyVersionSeed, ...]
    line: int


@dataclass(frozen=True, slots=True)
class CertificateVersionSeed:
    """A version to issue (``value`` None: self-signed from ``policy``) or to import
    (``value``: standard base64 of the PFX bytes or PEM text, as ImportCertificate takes it)."""

    line: int
    policy: CertificatePolicy | None
    value: str | None = field(repr=False)
    password: str | None = field(repr=False)
    enabled: bool | None
    tags: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class CertificateSeed:
    name: str
    versions: tuple[CertificateVersionSeed, ...]
    line: int


@dataclass(frozen=True, slots=True)
class VaultSeed:
    name: str
    line: int
    open_access: bool
    retention_days: int
    purge_protection: bool
    access_policies: tuple[AccessPolicySeed, ...]
    secrets: tuple[SecretSeed, ...]
    keys: tuple[KeySeed, ...]
    certificates: tuple[CertificateSeed, ...]


@dataclass(frozen=True, slots=True)
class Seed:
    path: Path
    principals: tuple[PrincipalSeed, ...]
    vaults: tuple[VaultSeed, ...]


# -- reading the file -------------------------------------------------------------------------

_TOP = ("principals", "vaults")
_PRINCIPAL = ("name", "secret")
_VAULT = ("name", "open", "retentionDays", "purgeProtection", "accessPolicies", "secrets",
          "keys", "certificates")  # fmt: skip
_ACCESS_POLICY = ("principal", "permissions")
_ATTRIBUTES = ("enabled", "nbf", "exp")
_SECRET_VERSION = ("value", "contentType", "tags", "attributes")
_KEY_GENERATE = ("key_size", "crv", "public_exponent")
_KEY_VERSION = ("kty", *_KEY_GENERATE, "jwk", "pem", "key_ops", "tags", "attributes")
_CERTIFICATE_VERSION = ("policy", "pfx", "pem", "password", "tags", "attributes")


def _what(value: Any) -> str:
    """How a message names what the file holds."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dt.date):
        return "a date"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


@contextlib.contextmanager
def _at(line: int) -> Iterator[None]:
    """A check's ``BadParameter``, as a ``DocumentError`` of ``line``."""
    try:
        yield
    except BadParameter as exc:
        raise DocumentError(line, exc.message) from exc


class _Fields:
    """One mapping of the file, read field by field: each is checked for its type and errors
    name its line. Fields the mapping does not know are refused, naming those it does."""

    def __init__(self, node: Any, where: str, line: int, known: tuple[str, ...]):
        if not isinstance(node, LineMap):
            raise DocumentError(
                line,
                f"{where or 'the seed'} must be a mapping with {', '.join(known)}; "
                f"got {_what(node)}.",
            )
        for key in node:
            if key not in known:
                raise DocumentError(
                    node.line_of(key),
                    f"{where or 'the seed'}: unknown field '{key[:60]}'; the fields are "
                    f"{', '.join(known)}.",
                )
        self.node = node
        self.where = where  # a path such as vaults[0].secrets[1] ("" for the whole file)

    def path(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def line(self, name: str | None = None) -> int:
        return self.node.line if name is None else self.node.line_of(name)

    def has(self, name: str) -> bool:
        return self.node.get(name) is not None

    def _get(self, name: str, kinds: type | tuple[type, ...], what: str, required: bool) -> Any:
        value = self.node.get(name)
        if value is None:
            if required:
                raise DocumentError(self.line(), f"{self.where or 'the seed'} needs '{name}'.")
            return None
        if not isinstance(value, kinds) or (isinstance(value, bool) and kinds is int):
            raise DocumentError(
                self.line(name), f"{self.path(name)} must be {what}; got {_what(value)}."
            )
        return value

    def text(self, name: str, *, required: bool = False) -> str | None:
        value: str | None = self._get(name, str, "text", required)
        return value

    def required_text(self, name: str) -> str:
        value: str = self._get(name, str, "text", True)
        return value

    def flag(self, name: str) -> bool | None:
        value: bool | None = self._get(name, bool, "true or false", False)
        return value

    def integer(self, name: str) -> int | None:
        value: int | None = self._get(name, int, "an integer", False)
        return value

    def mapping(self, name: str, *, required: bool = False) -> LineMap | None:
        value: LineMap | None = self._get(name, LineMap, "a mapping", required)
        return value

    def items(self, name: str) -> LineList:
        value: LineList | None = self._get(name, LineList, "a list", False)
        return value if value is not None else LineList(self.line(name))

    def strings(self, name: str) -> list[str] | None:
        value: LineList | None = self._get(name, LineList, "a list of text", False)
        if value is None:
            return None
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise DocumentError(
                    value.line_of(i), f"{self.path(name)}[{i}] must be text; got {_what(item)}."
                )
        return list(value)

    def tags(self) -> dict[str, str] | None:
        tags = self.mapping("tags")
        if tags is None:
            return None
        for key, value in tags.items():
            if not isinstance(value, str):
                raise DocumentError(
                    tags.line_of(key),
                    f"{self.where}.tags.{key[:60]} must be text; got {_what(value)} "
                    "(quote numbers and true/false).",
                )
        plain = dict(tags)
        with _at(self.line("tags")):
            check_tags(plain)
        return plain

    def unixtime(self, name: str) -> int | None:
        value = self.node.get(name)
        if value is None:
            return None
        where, line = self.path(name), self.line(name)
        example = "Unix seconds or an ISO-8601 time such as 2030-01-01T00:00:00Z"
        if isinstance(value, str):
            try:
                value = (
                    dt.date.fromisoformat(value)
                    if len(value) == 10
                    else dt.datetime.fromisoformat(value)
                )
            except ValueError as exc:
                raise DocumentError(line, f"{where} must be {example}; got {value!r:.40}.") from exc
        if isinstance(value, bool) or not isinstance(value, int | dt.date):
            raise DocumentError(line, f"{where} must be {example}; got {_what(value)}.")
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                raise DocumentError(line, f"{where} needs a time zone (Z or +hh:mm).")
            value = int(value.timestamp())
        elif isinstance(value, dt.date):
            value = int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp())
        if not 0 <= value <= MAX_UNIXTIME:
            raise DocumentError(
                line, f"{where} must be from 1970 to 9999-12-31T23:59:59Z; got {value}."
            )
        return int(value)


def _attributes(f: _Fields, known: tuple[str, ...] = _ATTRIBUTES) -> AttributeInput:
    node = f.mapping("attributes")
    if node is None:
        return AttributeInput()
    a = _Fields(node, f"{f.where}.attributes", f.line("attributes"), known)
    enabled = a.flag("enabled")
    nbf = a.unixtime("nbf") if "nbf" in known else None
    exp = a.unixtime("exp") if "exp" in known else None
    with _at(a.line("exp")):
        check_window(nbf, exp)
    return AttributeInput(enabled, nbf, exp)


def _each(f: _Fields, name: str, known: tuple[str, ...]) -> Iterator[tuple[int, _Fields]]:
    """The mappings listed under ``name``, with their index."""
    items = f.items(name)
    for i, item in enumerate(items):
        yield i, _Fields(item, f"{f.path(name)}[{i}]", items.line_of(i), known)


def _versions(f: _Fields, version_fields: tuple[str, ...]) -> list[_Fields]:
    """An object's versions: the ``versions`` list, or the object itself as its only one."""
    if not f.has("versions"):
        return [f]
    for name in version_fields:
        if f.has(name):
            raise DocumentError(
                f.line(name),
                f"{f.where}: '{name}' belongs inside each of its 'versions' when they are listed.",
            )
    versions = [v for _, v in _each(f, "versions", version_fields)]
    if not versions:
        raise DocumentError(f.line("versions"), f"{f.where}.versions lists no version.")
    return versions


def _principal(f: _Fields) -> PrincipalSeed:
    name = f.required_text("name")
    with _at(f.line("name")):
        check_principal_name(name)
    secret = f.text("secret")
    if secret is not None:
        with _at(f.line("secret")):
            check_client_secret(secret)
    return PrincipalSeed(name, f.line(), secret)


def _access_policy(f: _Fields) -> AccessPolicySeed:
    principal = f.required_text("principal")
    node = f.mapping("permissions", required=True)
    p = _Fields(node, f"{f.where}.permissions", f.line("permissions"), tuple(PERMISSIONS))
    permissions: dict[str, list[str]] = {}
    for kind in PERMISSIONS:
        names = p.strings(kind)
        if names is None:
            continue
        listed = p.node[kind]
        for i, name in enumerate(names):
            with _at(listed.line_of(i)):
                normalise(kind, [name])
        permissions[kind] = normalise(kind, names)
    if not permissions:
        raise DocumentError(
            f.line("permissions"),
            f"{f.where}.permissions grants nothing; list some of {', '.join(PERMISSIONS)}.",
        )
    return AccessPolicySeed(principal, permissions, f.line())


def _secret_version(f: _Fields) -> SecretVersionSeed:
    value = f.required_text("value")
    size = len(value.encode())
    if size > MAX_VALUE_BYTES:
        raise DocumentError(
            f.line("value"),
            f"{f.where}.value is {size} bytes; the limit is {MAX_VALUE_BYTES} bytes (25 KiB).",
        )
    content_type = f.text("contentType")
    with _at(f.line("contentType")):
        check_content_type(content_type)
    return SecretVersionSeed(value, content_type, f.tags(), _attributes(f), f.line())


def _key_ops(f: _Fields) -> list[str] | None:
    ops = f.strings("key_ops")
    for i, op in enumerate(ops or ()):
        if op not in kc.OPERATIONS:
            raise DocumentError(
                f.node["key_ops"].line_of(i),
                f"'{op[:20]}' is not a key operation; use {', '.join(kc.OPERATIONS)}.",
            )
    return ops


def _key_version(f: _Fields) -> KeyVersionSeed:
    sources = [name for name in ("kty", "jwk", "pem") if f.has(name)]
    if len(sources) != 1:
        line = f.line(sources[1]) if len(sources) > 1 else f.line()
        raise DocumentError(
            line, f"{f.where} needs one of kty (to generate a key), jwk or pem (to import one)."
        )
    key_ops = _key_ops(f)
    tags, attributes = f.tags(), _attributes(f)
    kty = f.text("kty")
    size, crv, exponent = f.integer("key_size"), f.text("crv"), f.integer("public_exponent")
    jwk: dict[str, Any] | None = None
    if kty is not None:
        try:
            kc.check_generate(kty, size, crv, exponent)
        except BadParameter as exc:
            named = [n for n in _KEY_GENERATE if n in exc.message and f.has(n)]
            raise DocumentError(f.line(named[0] if named else "kty"), exc.message) from exc
    else:
        for name in _KEY_GENERATE:
            if f.has(name):
                raise DocumentError(
                    f.line(name),
                    f"{f.where}.{name} is for generated keys (with kty); an imported key's "
                    "comes from its jwk or pem.",
                )
        source = sources[0]
        if source == "jwk":
            node = f.mapping("jwk")
            assert node is not None
            jwk = _plain(node)
        else:
            with _at(f.line("pem")):
                jwk = dict(kc.jwk_from_pem(f.required_text("pem").encode()))
        with _at(f.line(source)):
            kc.from_jwk(jwk)  # loads it: refuses parts that are not a key
        stated = jwk.get("key_ops")
        if key_ops is not None:
            jwk["key_ops"] = key_ops
        elif stated is not None and (
            not isinstance(stated, list) or not all(op in kc.OPERATIONS for op in stated)
        ):
            raise DocumentError(
                f.line("jwk"),
                f"{f.where}.jwk.key_ops must list key operations: {', '.join(kc.OPERATIONS)}.",
            )
    return KeyVersionSeed(f.line(), kty, size, crv, exponent, jwk, key_ops, tags, attributes)


_PATH = re.compile(r"[A-Za-z_]\w*(?:\[\d+\])?(?:\.[A-Za-z_]\w*(?:\[\d+\])?)*")
_STEP = re.compile(r"([A-Za-z_]\w*)(?:\[(\d+)\])?")


def _member_line(node: LineMap, message: str, default: int) -> int:
    """The line of the policy member a check's message names (``x509_props.subject``,
    ``lifetime_actions[0].trigger``), or of the nearest member above it that the file holds."""
    for match in _PATH.finditer(message):
        found: int | None = None
        here: Any = node
        for step in match.group(0).split("."):
            parts = _STEP.fullmatch(step)
            if parts is None or not isinstance(here, LineMap) or parts.group(1) not in here:
                break
            found, here = here.line_of(parts.group(1)), here[parts.group(1)]
            if parts.group(2) is not None:
                index = int(parts.group(2))
                if not isinstance(here, LineList) or index >= len(here):
                    break
                found, here = here.line_of(index), here[index]
        if found is not None:
            return found
    return default


@contextlib.contextmanager
def _policy_at(node: LineMap | None, line: int) -> Iterator[None]:
    try:
        yield
    except BadParameter as exc:
        found = line if node is None else _member_line(node, exc.message, line)
        raise DocumentError(found, f"policy: {exc.message}") from exc


def _plain(value: Any) -> Any:
    """A value of the document as plain dicts and lists, for the services' JSON readers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _certificate_version(f: _Fields) -> CertificateVersionSeed:
    tags, enabled = f.tags(), _attributes(f, ("enabled",)).enabled
    node = f.mapping("policy")
    policy: CertificatePolicy | None = None
    if node is not None:
        with _policy_at(node, f.line("policy")):
            policy = request_policy(_plain(node))
            check_policy(policy)
    if f.has("pfx") and f.has("pem"):
        raise DocumentError(f.line("pem"), f"{f.where} imports a pfx or a pem, not both.")
    now = int(time.time())
    password = f.text("password")
    if f.has("pfx") or f.has("pem"):
        source = "pfx" if f.has("pfx") else "pem"
        text = f.required_text(source)
        if source == "pfx":
            value = "".join(text.split())  # a folded base64 block's line breaks
        else:
            value = base64.b64encode(text.encode()).decode()
        wanted = policy.secret_props.content_type if policy is not None else None
        with _at(f.line(source)):
            material, chain, content_type = cx.parse_import(value, password, wanted)
        with _policy_at(node, f.line("policy")):
            complete_imported_policy(
                policy or CertificatePolicy(), cx.describe(chain[0]), cx.kty_of(material),
                content_type, now,
            )  # fmt: skip
        return CertificateVersionSeed(f.line(), policy, value, password, enabled, tags)
    if password is not None:
        raise DocumentError(f.line("password"), f"{f.where}.password goes with a pfx or pem.")
    if policy is None or node is None:
        raise DocumentError(
            f.line(),
            f"{f.where} needs a policy (to issue a self-signed certificate) or a pfx "
            "or pem (to import one).",
        )
    if not given(policy.issuer, "name"):
        policy = with_members(policy, issuer=with_members(policy.issuer, name="Self"))
    if not self_issued(policy):
        raise DocumentError(
            _member_line(node, "issuer.name", f.line("policy")),
            f"{f.where}.policy: a seed issues certificates itself: issuer.name must be Self "
            "(or left out); import a certificate of another issuer with pfx or pem.",
        )
    with _policy_at(node, f.line("policy")):
        cx.check_properties(complete_policy(policy, now).x509_props)
    return CertificateVersionSeed(f.line(), policy, None, None, enabled, tags)


def _unique(seen: dict[str, str], name: str, what: str, line: int) -> None:
    """Refuses a second object of one name (any case) in one vault: ``seen`` maps the names
    already read (lower case) to what they name."""
    other = seen.get(name.lower())
    if other is not None:
        raise DocumentError(line, f"{what} '{name}' has the name of {other} above in this vault.")
    seen[name.lower()] = f"{what} '{name}'"


def _vault(f: _Fields) -> VaultSeed:
    name = f.required_text("name")
    with _at(f.line("name")):
        check_vault_name(name)
    open_flag = f.flag("open")
    open_access = True if open_flag is None else open_flag
    retention = f.integer("retentionDays")
    if retention is not None and not 7 <= retention <= 90:
        raise DocumentError(
            f.line("retentionDays"),
            f"{f.where}.retentionDays must be from 7 to 90; got {retention}.",
        )
    if f.has("accessPolicies") and open_access:
        raise DocumentError(
            f.line("accessPolicies"),
            f"{f.where}: access policies apply only to a closed vault, and vault '{name}' is "
            f"open to every principal{'' if open_flag else ' (open: true is the default)'}: "
            "add open: false.",
        )
    policies: list[AccessPolicySeed] = []
    for _, p in _each(f, "accessPolicies", _ACCESS_POLICY):
        policy = _access_policy(p)
        if any(policy.principal == other.principal for other in policies):
            raise DocumentError(
                policy.line, f"principal '{policy.principal}' has two access policies here."
            )
        policies.append(policy)
    names: dict[str, str] = {}
    secrets, keys, certificates = [], [], []
    for _, s in _each(f, "secrets", ("name", "versions", *_SECRET_VERSION)):
        secret_name = s.required_text("name")
        with _at(s.line("name")):
            check_object_name(secret_name, "secret")
        _unique(names, secret_name, "secret", s.line())
        versions = tuple(_secret_version(v) for v in _versions(s, _SECRET_VERSION))
        secrets.append(SecretSeed(secret_name, versions, s.line()))
    key_names: dict[str, str] = {}
    for _, k in _each(f, "keys", ("name", "versions", *_KEY_VERSION)):
        key_name = k.required_text("name")
        with _at(k.line("name")):
            check_object_name(key_name, "key")
        _unique(key_names, key_name, "key", k.line())
        key_versions = tuple(_key_version(v) for v in _versions(k, _KEY_VERSION))
        keys.append(KeySeed(key_name, key_versions, k.line()))
    for _, c in _each(f, "certificates", ("name", "versions", *_CERTIFICATE_VERSION)):
        cert_name = c.required_text("name")
        with _at(c.line("name")):
            check_object_name(cert_name, "certificate")
        # A certificate's key and secret take its name.
        _unique(names, cert_name, "certificate", c.line())
        if cert_name.lower() in key_names:
            raise DocumentError(
                c.line(),
                f"certificate '{cert_name}' has the name of "
                f"{key_names[cert_name.lower()]} above: a certificate's key takes its name.",
            )
        cert_versions = tuple(_certificate_version(v) for v in _versions(c, _CERTIFICATE_VERSION))
        certificates.append(CertificateSeed(cert_name, cert_versions, c.line()))
    return VaultSeed(
        name, f.line(), open_access, 90 if retention is None else retention,
        bool(f.flag("purgeProtection")), tuple(policies), tuple(secrets), tuple(keys),
        tuple(certificates),
    )  # fmt: skip


def seed_from_document(path: Path, document: Any) -> Seed:
    """The seed a document read by ``seed_files`` holds, every entry checked: ``DocumentError``
    naming the line of the first thing wrong."""
    if document is None:  # an empty YAML file: nothing to make
        return Seed(path, (), ())
    top = _Fields(document, "", 1, _TOP)
    principals: list[PrincipalSeed] = []
    for _, p in _each(top, "principals", _PRINCIPAL):
        principal = _principal(p)
        if any(principal.name == other.name for other in principals):
            raise DocumentError(principal.line, f"principal '{principal.name}' is listed twice.")
        principals.append(principal)
    vaults: list[VaultSeed] = []
    for _, v in _each(top, "vaults", _VAULT):
        vault = _vault(v)
        if any(vault.name.lower() == other.name.lower() for other in vaults):
            raise DocumentError(vault.line, f"vault '{vault.name}' is listed twice.")
        vaults.append(vault)
    return Seed(path, tuple(principals), tuple(vaults))
