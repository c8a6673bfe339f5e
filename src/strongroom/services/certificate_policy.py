"""The shapes of what certificates.json lets clients store: certificate policies
(``CertificatePolicy``), issuers (``IssuerBundle``) and contacts (``Contact``).

A policy is read from JSON into ``models.CertificatePolicy`` here, and written back here, in
one shape for the wire and the store: the stored body is what GET renders (after its ``id``),
and backups carry the stored body. ``policy_from_json`` reads a request strictly, naming the first
member of a wrong type (values are ``certificate_rules``' business). With ``strict=False`` it
reads what is stored and never refuses it: a member of a wrong type, which only a release
older than these checks could have stored, is kept in ``extra`` like a member Strongroom does
not model. ``policy_to_json(policy_from_json(x, strict=False)) == x`` for every policy this
release or an earlier one stored; the unit tests hold samples.

A member given as null is "not given" to the checks, as the SDK omits unset fields; it is kept
(in ``extra``) and echoed, and it keeps its default out (``certificate_rules``).

Issuers and contacts are checked here and stay JSON objects (``services.issuers``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol, TypeVar, cast

from strongroom.errors import BadParameter
from strongroom.models import (
    Action,
    CertificatePolicy,
    IssuerParameters,
    KeyProperties,
    LifetimeAction,
    PolicyAttributes,
    SecretProperties,
    SubjectAlternativeNames,
    Trigger,
    X509Properties,
)


class Part(Protocol):
    """A part of a policy: a frozen dataclass with ``extra`` (``models``)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def extra(self) -> Mapping[str, Any]: ...


P = TypeVar("P", bound=Part)

# What a member holds, besides bool, int, str and the parts of a policy.
STRINGS: Final = "strings"  # a list of strings: a tuple of them in the model
ACTIONS: Final = "actions"  # lifetime_actions: a list of LifetimeAction objects (or nulls)

# Every part's members: (attribute, JSON name, what it holds). A request's members are checked
# in this order, the order of the spec's listing that the checks have always followed: of
# several wrong members, the first is named.
MEMBERS: dict[type, tuple[tuple[str, str, Any], ...]] = {
    CertificatePolicy: (
        ("key_props", "key_props", KeyProperties),
        ("secret_props", "secret_props", SecretProperties),
        ("x509_props", "x509_props", X509Properties),
        ("issuer", "issuer", IssuerParameters),
        ("attributes", "attributes", PolicyAttributes),
        ("lifetime_actions", "lifetime_actions", ACTIONS),
    ),
    KeyProperties: (
        ("exportable", "exportable", bool),
        ("reuse_key", "reuse_key", bool),
        ("kty", "kty", str),
        ("crv", "crv", str),
        ("key_size", "key_size", int),
    ),
    SecretProperties: (("content_type", "contentType", str),),
    X509Properties: (
        ("subject", "subject", str),
        ("ekus", "ekus", STRINGS),
        ("key_usage", "key_usage", STRINGS),
        ("validity_months", "validity_months", int),
        ("sans", "sans", SubjectAlternativeNames),
    ),
    SubjectAlternativeNames: (
        ("dns_names", "dns_names", STRINGS),
        ("emails", "emails", STRINGS),
        ("upns", "upns", STRINGS),
        ("uris", "uris", STRINGS),
        ("ip_addresses", "ipAddresses", STRINGS),
    ),
    IssuerParameters: (
        ("name", "name", str),
        ("cty", "cty", str),
        ("cert_transparency", "cert_transparency", bool),
    ),
    PolicyAttributes: (
        ("enabled", "enabled", bool),
        ("created", "created", int),
        ("updated", "updated", int),
    ),
    LifetimeAction: (("trigger", "trigger", Trigger), ("action", "action", Action)),
    Trigger: (
        ("lifetime_percentage", "lifetime_percentage", int),
        ("days_before_expiry", "days_before_expiry", int),
    ),
    Action: (("action_type", "action_type", str),),
}
_JSON_NAMES = {part: {attr: name for attr, name, _ in members} for part, members in MEMBERS.items()}
_WHAT = {str: "a string", bool: "true or false", int: "an integer", list: "a list"}


class _Unreadable(Exception):
    """A stored member of a wrong type: kept as it is, in ``extra``."""


def _path(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _wrong(strict: bool, message: str) -> Exception:
    return BadParameter(message) if strict else _Unreadable()


def _scalar(value: Any, kind: type, path: str, strict: bool) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _wrong(strict, f"'{path}' must be {_WHAT[kind]}.")
    return value


def _string_list(value: Any, path: str, strict: bool) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _wrong(strict, f"'{path}' must be a list.")
    if not all(isinstance(v, str) for v in value):
        raise _wrong(strict, f"'{path}' must be a list of strings.")
    return tuple(value)


def _actions(value: Any, path: str, strict: bool) -> tuple[LifetimeAction | None, ...]:
    if not isinstance(value, list):
        raise _wrong(strict, f"'{path}' must be a list.")
    return tuple(
        None if entry is None else part_from_json(LifetimeAction, entry, f"{path}[{i}]", strict)
        for i, entry in enumerate(value)
    )


def part_from_json(part: type[P], value: Any, where: str = "", strict: bool = False) -> P:
    """One part of a policy from its JSON object (``policy_from_json``); ``where`` names it in
    messages."""
    if not isinstance(value, dict):
        raise _wrong(strict, f"'{where}' must be an object.")
    known = _JSON_NAMES[part].values()
    fields: dict[str, Any] = {}
    extra = {k: v for k, v in value.items() if k not in known or v is None}
    for attr, name, kind in MEMBERS[part]:
        member = value.get(name)
        if member is None:
            continue
        path = _path(where, name)
        try:
            if kind is STRINGS:
                fields[attr] = _string_list(member, path, strict)
            elif kind is ACTIONS:
                fields[attr] = _actions(member, path, strict)
            elif kind in MEMBERS:
                fields[attr] = part_from_json(kind, member, path, strict)
            else:
                fields[attr] = _scalar(member, kind, path, strict)
        except _Unreadable:
            extra[name] = member
    make: Any = part  # a dataclass of models: its members and extra are its fields
    return cast(P, make(**fields, extra=extra))


def policy_from_json(data: dict[str, Any], *, strict: bool = True) -> CertificatePolicy:
    """A policy from its JSON object: a request's (``strict``: ``BadParameter`` naming the
    first member of a wrong type) or a stored one (never refused)."""
    return part_from_json(CertificatePolicy, data, "", strict)


def request_policy(data: dict[str, Any]) -> CertificatePolicy:
    """A policy as a client gives it (a request's, a seed file's), without what the service
    sets: ``id`` and every attribute but ``enabled``. ``BadParameter`` names the first member
    of a wrong type."""
    cleaned = {k: v for k, v in data.items() if k != "id"}
    attributes = cleaned.get("attributes")
    if isinstance(attributes, dict):
        cleaned["attributes"] = {k: v for k, v in attributes.items() if k == "enabled"}
    return policy_from_json(cleaned)


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if type(value) in MEMBERS:
        return part_to_json(value)
    return value


def part_to_json(part: Part) -> dict[str, Any]:
    """One part of a policy as JSON: its members, then its ``extra`` (which wins: a section a
    request gave as null is null, not the empty section that stands for it in the model)."""
    out = {
        name: _to_json(getattr(part, attr))
        for attr, name, _ in MEMBERS[type(part)]
        if getattr(part, attr) is not None
    }
    out.update(part.extra)
    return out


def policy_to_json(policy: CertificatePolicy) -> dict[str, Any]:
    """The policy as it is stored, and rendered after its ``id``."""
    return part_to_json(policy)


# -- members given and set: what the rules fill in and what a change replaces ----------------


def given(part: Part, attr: str) -> bool:
    """Whether ``part`` holds member ``attr``: a value, or a null (or unreadable) in extra."""
    return getattr(part, attr) is not None or _JSON_NAMES[type(part)][attr] in part.extra


def members_of(part: Part) -> dict[str, Any]:
    """The members ``part`` has a value for, by attribute."""
    return {a: getattr(part, a) for a in _JSON_NAMES[type(part)] if getattr(part, a) is not None}


def with_members(part: P, **values: Any) -> P:
    """``part`` with members set, as in its JSON object: ``None`` sets a null."""
    names = _JSON_NAMES[type(part)]
    setting = {names[attr] for attr in values}
    extra = {k: v for k, v in part.extra.items() if k not in setting}
    extra.update({names[attr]: None for attr, value in values.items() if value is None})
    return dataclasses.replace(part, extra=extra, **values)


def with_defaults(part: P, **defaults: Any) -> P:
    """``part`` with each default set where its member was not given at all."""
    missing = {attr: value for attr, value in defaults.items() if not given(part, attr)}
    return with_members(part, **missing) if missing else part


def change_part(stored: P, change: P) -> P:
    """``stored`` with every member ``change`` gives (a value or a null) in place of its own,
    and the members ``change`` holds that Strongroom does not model added."""
    attrs = [attr for attr in _JSON_NAMES[type(change)] if given(change, attr)]
    changed = with_members(stored, **{attr: getattr(change, attr) for attr in attrs})
    return dataclasses.replace(changed, extra={**changed.extra, **change.extra})


# -- a certificate's stored state ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertificateState:
    """What the store keeps for a certificate beside its versions, as one JSON body
    ``{"policy": …, "operation": …}``; backups carry that body as it is."""

    policy: CertificatePolicy | None = None
    operation: dict[str, Any] | None = None  # the pending (or last) issuance operation


def state_from_json(data: Any) -> CertificateState:
    """A state from its JSON object (or null), as stored or as a backup carries it.
    ``TypeError`` for anything else."""
    if data is None:
        return CertificateState()
    if not isinstance(data, dict):
        raise TypeError("a certificate's state must be an object")
    policy, operation = data.get("policy"), data.get("operation")
    if not isinstance(policy, dict | None) or not isinstance(operation, dict | None):
        raise TypeError("a certificate's policy and operation must be objects")
    return CertificateState(
        None if policy is None else policy_from_json(policy, strict=False), operation
    )


def state_to_json(state: CertificateState) -> dict[str, Any]:
    policy = None if state.policy is None else policy_to_json(state.policy)
    return {"policy": policy, "operation": state.operation}


def load_state(body: str | None) -> CertificateState:
    """The state of a certificate from the store's text (None: the certificate has none)."""
    return state_from_json(None if body is None else json.loads(body))


def dump_state(state: CertificateState) -> str:
    return json.dumps(state_to_json(state))


# -- issuers and contacts --------------------------------------------------------------------


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadParameter(f"'{where}' must be an object.")
    return value


def _typed(section: dict[str, Any], where: str, field: str, kind: type) -> Any:
    value = section.get(field)
    if value is not None:
        _scalar(value, kind, f"{where}.{field}", True)
    return value


def check_issuer(body: dict[str, Any]) -> None:
    """An issuer as set or updated (``IssuerBundle``): names the first field of a wrong type."""
    _typed(body, "issuer", "provider", str)
    credentials = _object(body.get("credentials"), "credentials")
    _typed(credentials, "credentials", "account_id", str)
    _typed(credentials, "credentials", "pwd", str)
    org = _object(body.get("org_details"), "org_details")
    _typed(org, "org_details", "id", str)
    admins = _typed(org, "org_details", "admin_details", list) or []
    for i, admin in enumerate(admins):
        where = f"org_details.admin_details[{i}]"
        admin = _object(admin, where)
        for field in ("first_name", "last_name", "email", "phone"):
            _typed(admin, where, field, str)
    _typed(_object(body.get("attributes"), "attributes"), "attributes", "enabled", bool)


def check_contact(contact: Any, where: str) -> dict[str, Any]:
    """A certificate contact (``Contact``): email, name and phone, each text if given."""
    entry = _object(contact, where)
    for field in ("email", "name", "phone"):
        _typed(entry, where, field, str)
    return entry
