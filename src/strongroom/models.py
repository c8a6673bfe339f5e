"""Plain data types of the domain. No JSON, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

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
