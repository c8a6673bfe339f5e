"""Certificate policy rules: what a policy may say, the defaults the service fills in, how a
change applies to a stored policy, and when an AutoRenew action is due.

Checks name the first member out of range, so that nothing stored fails later (at issuance,
in the scheduler's renewal pass, or when a client reads it back) on a value a request slipped
in, and a change (PATCH) is held to what a create is. Member types are checked before, when a
request is read (``certificate_policy.policy_from_json``).

Policies are completed as Key Vault completes them (RSA 2048, exportable, PKCS#12, serverAuth
and clientAuth, digitalSignature and keyEncipherment, 12 months, AutoRenew at 80 %). A default
fills only a member that was not given at all: one given as null stays null (and its default
stays out), as the service has always stored and echoed it.
"""

from __future__ import annotations

import dataclasses
import re

from strongroom.crypto.keys import CURVES, RSA_SIZES, family
from strongroom.crypto.x509 import KEY_USAGES, PEM, PFX
from strongroom.errors import BadParameter
from strongroom.models import (
    Action,
    CertificatePolicy,
    LifetimeAction,
    PolicyChange,
    SubjectAlternativeNames,
    Trigger,
    X509Properties,
)
from strongroom.services.certificate_policy import (
    change_part,
    given,
    members_of,
    part_from_json,
    part_to_json,
    with_defaults,
    with_members,
)

MAX_VALIDITY_MONTHS = 1200  # 100 years, the longest duration Strongroom accepts anywhere
MAX_DAYS_BEFORE_EXPIRY = MAX_VALIDITY_MONTHS * 31
SERVER_AUTH, CLIENT_AUTH = "1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"
CERTIFICATE_KTYS = ("RSA", "RSA-HSM", "EC", "EC-HSM")
_ACTIONS = ("autorenew", "emailcontacts")
_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]{0,19})){1,40}")
_SECTIONS = ("key_props", "secret_props", "x509_props", "issuer", "attributes")
_KTY_MESSAGE = "key_props.kty must be RSA, RSA-HSM, EC or EC-HSM for a certificate."
DEFAULT_LIFETIME_ACTIONS = (
    LifetimeAction(Trigger(lifetime_percentage=80), Action(action_type="AutoRenew")),
)


def _in_range(value: int | None, where: str, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise BadParameter(f"'{where}' must be from {low} to {high}; got {value}.")


def check_policy(policy: CertificatePolicy) -> None:
    """Raises ``BadParameter`` naming the first member out of range."""
    keys = policy.key_props
    if keys.kty is not None and keys.kty not in CERTIFICATE_KTYS:
        raise BadParameter(_KTY_MESSAGE)
    if keys.kty is not None and family(keys.kty) == "RSA":
        if keys.crv is not None:
            raise BadParameter("'key_props.crv' applies to EC keys, not RSA keys.")
        if keys.key_size is not None and keys.key_size not in RSA_SIZES:
            raise BadParameter(
                f"RSA key_size {keys.key_size} is not supported; use 2048, 3072 or 4096."
            )
    if keys.crv is not None and keys.crv not in CURVES:
        raise BadParameter(f"'key_props.crv' must be one of {', '.join(CURVES)}.")
    x509 = policy.x509_props
    for usage in x509.key_usage or ():
        if usage not in KEY_USAGES:
            raise BadParameter(f"x509_props.key_usage: unknown usage {usage!r:.40}.")
    for eku in x509.ekus or ():
        if not _OID.fullmatch(eku):
            raise BadParameter(f"x509_props.ekus: {eku!r:.60} is not a dotted object identifier.")
    _in_range(x509.validity_months, "x509_props.validity_months", 1, MAX_VALIDITY_MONTHS)
    for i, entry in enumerate(policy.lifetime_actions or ()):
        if entry is None:
            continue
        where = f"lifetime_actions[{i}]"
        trigger = entry.trigger or Trigger()
        _in_range(trigger.lifetime_percentage, f"{where}.trigger.lifetime_percentage", 1, 99)
        _in_range(
            trigger.days_before_expiry,
            f"{where}.trigger.days_before_expiry",
            1,
            MAX_DAYS_BEFORE_EXPIRY,
        )
        kind = entry.action.action_type if entry.action else None
        if kind is not None and kind.lower() not in _ACTIONS:
            raise BadParameter(f"'{where}.action.action_type' must be AutoRenew or EmailContacts.")


def _platform_sans(policy: CertificatePolicy) -> SubjectAlternativeNames | None:
    """The SANs a 2026-04-01 platform-managed policy names in its metadata, if it is one."""
    platform = policy.extra.get("platformManaged")
    if not isinstance(platform, dict):
        return None
    metadata = platform.get("metadata")
    sans = metadata.get("sans") if isinstance(metadata, dict) else None
    return part_from_json(SubjectAlternativeNames, sans if isinstance(sans, dict) else {})


def complete_policy(policy: CertificatePolicy, now: int) -> CertificatePolicy:
    """The policy with the service's defaults filled in where the request left gaps, stamped
    ``updated`` (and ``created``, the first time)."""
    check_policy(policy)
    # A section given as null is a section not given.
    extra = {k: v for k, v in policy.extra.items() if not (k in _SECTIONS and v is None)}
    keys = with_defaults(policy.key_props, exportable=True, kty="RSA")
    if keys.kty not in CERTIFICATE_KTYS:  # given as null
        raise BadParameter(_KTY_MESSAGE)
    if family(keys.kty) == "EC":
        keys = with_defaults(keys, crv="P-256")
    else:
        keys = with_defaults(keys, key_size=2048)
    keys = with_defaults(keys, reuse_key=False)
    secret = with_defaults(policy.secret_props, content_type=PFX)
    if secret.content_type not in (PFX, PEM):
        raise BadParameter(f"secret_props.contentType must be {PFX} or {PEM}.")
    x509 = policy.x509_props
    platform_sans = _platform_sans(policy)
    if platform_sans is not None and not part_to_json(x509).get("sans"):
        x509 = with_members(x509, sans=platform_sans)
    # Any SAN member with a value counts, as the JSON reads: one of a kind Strongroom does not
    # model yet (a newer API version's) is not refused.
    has_sans = any(part_to_json(x509.sans).values()) if x509.sans is not None else False
    if not x509.subject and not has_sans:
        raise BadParameter("The policy needs x509_props.subject or at least one SAN.")
    x509 = with_defaults(
        x509,
        subject="",
        ekus=(SERVER_AUTH, CLIENT_AUTH),
        key_usage=("digitalSignature", "keyEncipherment"),
        validity_months=12,
        sans=SubjectAlternativeNames(),
    )
    attributes = with_defaults(policy.attributes, enabled=True, created=now)
    completed = dataclasses.replace(
        policy,
        key_props=keys,
        secret_props=secret,
        x509_props=x509,
        issuer=with_defaults(policy.issuer, name="Unknown"),
        attributes=with_members(attributes, updated=now),
        extra=extra,
    )
    return with_defaults(completed, lifetime_actions=DEFAULT_LIFETIME_ACTIONS)


def complete_imported_policy(
    policy: CertificatePolicy,
    described: X509Properties,
    key: tuple[str, int, str | None],
    content_type: str,
    now: int,
) -> CertificatePolicy:
    """An imported certificate's policy: what the request gave, with what the certificate
    (``described``), its key (kty, size, curve) and its format say where the request is
    silent, then completed."""
    kty, size, crv = key
    key_props = with_defaults(policy.key_props, kty=kty)
    if kty == "RSA":
        key_props = with_defaults(key_props, key_size=size)
    else:
        key_props = with_defaults(key_props, crv=crv)
    given = dataclasses.replace(
        policy,
        key_props=key_props,
        secret_props=with_members(policy.secret_props, content_type=content_type),
        x509_props=with_defaults(policy.x509_props, **members_of(described)),
    )
    return complete_policy(given, now)


def change_policy(stored: CertificatePolicy, change: PolicyChange, now: int) -> CertificatePolicy:
    """A stored policy with a change applied, then checked and completed like a new one.

    A member the change gives replaces the stored one, but for an object given where an
    object is stored (the five sections, and members Strongroom does not model such as
    ``platformManaged``): its members replace the stored object's members one by one (an
    object inside it, such as ``x509_props.sans``, whole). A section given as null goes back
    to its defaults."""
    changed = change.given
    sections = {
        attr: change_part(getattr(stored, attr), getattr(changed, attr))
        for attr in _SECTIONS
        if attr not in changed.extra
    }
    cleared = {attr: type(getattr(stored, attr))() for attr in _SECTIONS if attr in changed.extra}
    merged = with_members(stored, **sections, **cleared)
    if given(changed, "lifetime_actions"):
        merged = with_members(merged, lifetime_actions=changed.lifetime_actions)
    extra = dict(merged.extra)
    for name, value in changed.extra.items():
        before = extra.get(name)
        if isinstance(before, dict) and isinstance(value, dict):
            value = {**before, **value}
        extra[name] = value
    return complete_policy(dataclasses.replace(merged, extra=extra), now)


def renewal_due(policy: CertificatePolicy, nbf: int, exp: int, now: int) -> bool:
    """Whether an AutoRenew action of ``policy`` has come due for a version valid from
    ``nbf`` to ``exp``: at a percentage of its lifetime, or a number of days before expiry."""
    for entry in policy.lifetime_actions or ():
        if entry is None or entry.action is None:
            continue
        if (entry.action.action_type or "").lower() != "autorenew":
            continue
        trigger = entry.trigger or Trigger()
        if trigger.lifetime_percentage is not None:
            due = nbf + (exp - nbf) * trigger.lifetime_percentage // 100
        elif trigger.days_before_expiry is not None:
            due = exp - trigger.days_before_expiry * 86400
        else:
            continue
        if now >= due:
            return True
    return False


def self_issued(policy: CertificatePolicy) -> bool:
    """Whether the policy's issuer is ``Self`` (in any case): this server issues only those."""
    return (policy.issuer.name or "").lower() == "self"
