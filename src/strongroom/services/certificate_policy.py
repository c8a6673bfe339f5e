"""The shape of a certificate policy (certificates.json ``CertificatePolicy``), checked before a
policy is completed, stored or used: every field has the type the spec gives it and every
number its range, so that a stored policy never fails later (at issuance, or in the scheduler's
renewal pass) on a value a request slipped in.

``None`` counts as "not given", as the SDK omits unset fields and the service fills defaults.
"""

from __future__ import annotations

from typing import Any

from strongroom.errors import BadParameter

MAX_VALIDITY_MONTHS = 1200  # 100 years, the longest duration Strongroom accepts anywhere
MAX_DAYS_BEFORE_EXPIRY = MAX_VALIDITY_MONTHS * 31
_ACTIONS = ("autorenew", "emailcontacts")
_SAN_LISTS = ("dns_names", "emails", "upns", "uris", "ipAddresses")


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
    _typed(keys, "key_props", "kty", str)
    _typed(keys, "key_props", "crv", str)
    _typed(keys, "key_props", "key_size", int)
    _typed(_object(policy.get("secret_props"), "secret_props"), "secret_props", "contentType", str)
    x509 = _object(policy.get("x509_props"), "x509_props")
    _typed(x509, "x509_props", "subject", str)
    _strings(x509, "x509_props", "ekus")
    _strings(x509, "x509_props", "key_usage")
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
