"""The shapes of what certificates.json lets clients store: certificate policies
(``CertificatePolicy``), issuers (``IssuerBundle``) and contacts (``Contact``). Each is checked
before it is completed, stored or used: every field has the type the spec gives it and every
value its range, so that nothing stored fails later (at issuance, in the scheduler's renewal
pass, or when a client reads it back) on a value a request slipped in, and a change (PATCH)
is held to what a create is.

``None`` counts as "not given", as the SDK omits unset fields and the service fills defaults.
"""

from __future__ import annotations

import re
from typing import Any

from strongroom.crypto.keys import CURVES, RSA_SIZES, family
from strongroom.crypto.x509 import KEY_USAGES
from strongroom.errors import BadParameter

MAX_VALIDITY_MONTHS = 1200  # 100 years, the longest duration Strongroom accepts anywhere
MAX_DAYS_BEFORE_EXPIRY = MAX_VALIDITY_MONTHS * 31
_ACTIONS = ("autorenew", "emailcontacts")
_SAN_LISTS = ("dns_names", "emails", "upns", "uris", "ipAddresses")
_CERTIFICATE_KTYS = ("RSA", "RSA-HSM", "EC", "EC-HSM")
_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]{0,19})){1,40}")


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadParameter(f"'{where}' must be an object.")
    return value


def _typed(section: dict[str, Any], where: str, field: str, kind: type | tuple[type, ...]) -> Any:
    value = section.get(field)
    wanted = kind if isinstance(kind, tuple) else (kind,)
    if value is not None and (
        not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted)
    ):
        names = {str: "a string", bool: "true or false", int: "an integer", list: "a list"}
        raise BadParameter(f"'{where}.{field}' must be {names[wanted[0]]}.")
    return value


def _int_in(section: dict[str, Any], where: str, field: str, low: int, high: int) -> None:
    value = _typed(section, where, field, int)
    if value is not None and not low <= value <= high:
        raise BadParameter(f"'{where}.{field}' must be from {low} to {high}; got {value}.")


def _strings(section: dict[str, Any], where: str, field: str) -> None:
    value = _typed(section, where, field, list)
    if value is not None and not all(isinstance(v, str) for v in value):
        raise BadParameter(f"'{where}.{field}' must be a list of strings.")


def check_policy(policy: dict[str, Any]) -> None:
    """Raises ``BadParameter`` naming the first field of the wrong type or out of range."""
    keys = _object(policy.get("key_props"), "key_props")
    _typed(keys, "key_props", "exportable", bool)
    _typed(keys, "key_props", "reuse_key", bool)
    kty = _typed(keys, "key_props", "kty", str)
    crv = _typed(keys, "key_props", "crv", str)
    size = _typed(keys, "key_props", "key_size", int)
    if kty is not None and kty not in _CERTIFICATE_KTYS:
        raise BadParameter("key_props.kty must be RSA, RSA-HSM, EC or EC-HSM for a certificate.")
    if kty is not None and family(kty) == "RSA":
        if crv is not None:
            raise BadParameter("'key_props.crv' applies to EC keys, not RSA keys.")
        if size is not None and size not in RSA_SIZES:
            raise BadParameter(f"RSA key_size {size} is not supported; use 2048, 3072 or 4096.")
    if crv is not None and crv not in CURVES:
        raise BadParameter(f"'key_props.crv' must be one of {', '.join(CURVES)}.")
    _typed(_object(policy.get("secret_props"), "secret_props"), "secret_props", "contentType", str)
    x509 = _object(policy.get("x509_props"), "x509_props")
    _typed(x509, "x509_props", "subject", str)
    _strings(x509, "x509_props", "ekus")
    _strings(x509, "x509_props", "key_usage")
    for usage in x509.get("key_usage") or []:
        if usage not in KEY_USAGES:
            raise BadParameter(f"x509_props.key_usage: unknown usage {usage!r:.40}.")
    for eku in x509.get("ekus") or []:
        if not _OID.fullmatch(eku):
            raise BadParameter(f"x509_props.ekus: {eku!r:.60} is not a dotted object identifier.")
    _int_in(x509, "x509_props", "validity_months", 1, MAX_VALIDITY_MONTHS)
    sans = _object(x509.get("sans"), "x509_props.sans")
    for field in _SAN_LISTS:
        _strings(sans, "x509_props.sans", field)
    issuer = _object(policy.get("issuer"), "issuer")
    _typed(issuer, "issuer", "name", str)
    _typed(issuer, "issuer", "cty", str)
    _typed(issuer, "issuer", "cert_transparency", bool)
    _typed(_object(policy.get("attributes"), "attributes"), "attributes", "enabled", bool)
    actions = policy.get("lifetime_actions")
    if actions is None:
        return
    if not isinstance(actions, list):
        raise BadParameter("'lifetime_actions' must be a list.")
    for i, entry in enumerate(actions):
        where = f"lifetime_actions[{i}]"
        entry = _object(entry, where)
        trigger = _object(entry.get("trigger"), f"{where}.trigger")
        _int_in(trigger, f"{where}.trigger", "lifetime_percentage", 1, 99)
        _int_in(trigger, f"{where}.trigger", "days_before_expiry", 1, MAX_DAYS_BEFORE_EXPIRY)
        action = _object(entry.get("action"), f"{where}.action")
        kind = _typed(action, f"{where}.action", "action_type", str)
        if kind is not None and kind.lower() not in _ACTIONS:
            raise BadParameter(f"'{where}.action.action_type' must be AutoRenew or EmailContacts.")


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
