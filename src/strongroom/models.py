"""Plain data types of the domain. No JSON, no HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Kind(StrEnum):
    SECRET = "secret"  # noqa: S105 - a kind name, not a password
    KEY = "key"
    CERTIFICATE = "certificate"
    STORAGE = "storage"
    SAS = "sas"  # a storage account's SAS definition; its name is "{account}/{definition}"


@dataclass(frozen=True, slots=True)
class Vault:
    id: str
    name: str
    domain_id: str
    retention_days: int
    purge_protection: bool
    created: int
    open_access: bool = False  # every principal of the installation may do everything
    replicable: bool = False  # replicas on other installations may follow it
    replica_of: str | None = None  # a read-only replica of this source vault

    @property
    def recovery_level(self) -> str:
        # Key Vault's DeletionRecoveryLevel values: "Customized" when retention < 90 days,
        # "+Purgeable" unless purge protection is on.
        base = "Recoverable" if self.retention_days == 90 else "CustomizedRecoverable"
        return base if self.purge_protection else f"{base}+Purgeable"


@dataclass(frozen=True, slots=True)
class Attributes:
    enabled: bool = True
    nbf: int | None = None
    exp: int | None = None
    created: int = 0
    updated: int = 0


@dataclass(frozen=True, slots=True)
class SecretVersion:
    """One version of a secret, value already unsealed (or None when not requested)."""

    name: str
    version: str
    attributes: Attributes
    content_type: str | None
    tags: dict[str, str] | None
    value: str | None = field(default=None, repr=False)
    managed: bool = False


@dataclass(frozen=True, slots=True)
class Deletion:
    deleted_date: int
    scheduled_purge_date: int


@dataclass(frozen=True, slots=True)
class Principal:
    client_id: str
    name: str
    created: int
    certificate_thumbprint: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str | None


@dataclass(frozen=True, slots=True)
class KeyVersion:
    """One version of a key: public parts only. Material stays sealed in the service."""

    name: str
    version: str
    kty: str
    key_ops: list[str]
    public: dict[str, str]  # JWK members n, e | crv, x, y
    key_size: int
    attributes: Attributes
    tags: dict[str, str] | None
    managed: bool = False
    exportable: bool | None = None
    release_policy: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class KeyResult:
    """The outcome of a key operation: which version did it, and the bytes."""

    kid_version: str
    name: str
    value: bytes
    iv: bytes | None = None
    tag: bytes | None = None
    aad: bytes | None = None


@dataclass(frozen=True, slots=True)
class CertificateVersion:
    """One version of a certificate; ``cer`` is None while issuance is pending."""

    name: str
    version: str
    cer: bytes | None
    x5t: str | None
    attributes: Attributes
    tags: dict[str, str] | None
    content_type: str
    pending: bool = False
    preserve_order: bool | None = None


@dataclass(frozen=True, slots=True)
class StorageAccount:
    """A managed storage account's settings. Its keys stay sealed in the service."""

    name: str
    resource_id: str
    active_key_name: str
    auto_regenerate_key: bool
    regeneration_period: str | None
    attributes: Attributes
    tags: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class SasDefinition:
    account: str
    name: str
    version: str
    sas_type: str
    validity_period: str
    attributes: Attributes
    tags: dict[str, str] | None
    # May carry a real signature: kept out of reprs. None in list items.
    template_uri: str | None = field(default=None, repr=False)


# -- certificate policies (certificates.json ``CertificatePolicy``) ---------------------------
#
# Each part of a policy is a frozen dataclass of the members Strongroom understands, ``None``
# where a member was not given. ``extra`` holds, unread and unchanged, the rest of what a client
# sent there: members Strongroom does not model (2026-04-01's ``platformManaged``, anything
# newer), and members given as ``null``, which are kept and echoed, and which stand in for the
# default the service would otherwise fill. A policy is stored and rendered exactly as it reads
# here, so that what a client set comes back as set (``services.certificate_policy``).
#
# The five sections of a policy are never ``None``: an absent section and an empty one mean the
# same in a request and in a change, and a completed policy has all five.


@dataclass(frozen=True, slots=True)
class KeyProperties:
    exportable: bool | None = None
    kty: str | None = None
    key_size: int | None = None
    crv: str | None = None
    reuse_key: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SecretProperties:
    content_type: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubjectAlternativeNames:
    dns_names: tuple[str, ...] | None = None
    emails: tuple[str, ...] | None = None
    upns: tuple[str, ...] | None = None
    uris: tuple[str, ...] | None = None
    ip_addresses: tuple[str, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class X509Properties:
    subject: str | None = None
    ekus: tuple[str, ...] | None = None
    key_usage: tuple[str, ...] | None = None
    validity_months: int | None = None
    sans: SubjectAlternativeNames | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IssuerParameters:
    name: str | None = None
    cty: str | None = None
    cert_transparency: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PolicyAttributes:
    enabled: bool | None = None
    created: int | None = None
    updated: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Trigger:
    lifetime_percentage: int | None = None
    days_before_expiry: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Action:
    action_type: str | None = None  # AutoRenew or EmailContacts, in any case
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LifetimeAction:
    trigger: Trigger | None = None
    action: Action | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CertificatePolicy:
    """A certificate's policy: as a request gives it, or completed with the service's
    defaults (``services.certificate_rules.complete_policy``) as it is stored."""

    key_props: KeyProperties = field(default_factory=KeyProperties)
    secret_props: SecretProperties = field(default_factory=SecretProperties)
    x509_props: X509Properties = field(default_factory=X509Properties)
    issuer: IssuerParameters = field(default_factory=IssuerParameters)
    attributes: PolicyAttributes = field(default_factory=PolicyAttributes)
    # None entries are nulls a client sent in the list, kept as sent.
    lifetime_actions: tuple[LifetimeAction | None, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """A change to a stored policy (``PATCH …/policy``, or ``policy`` in a certificate's
    PATCH): the members the request gave. A section given changes the stored section member
    by member; anything else given (``lifetime_actions``, a section given as null, members
    Strongroom does not model) replaces what is stored."""

    given: CertificatePolicy
