"""``strongroom certificate ...``: like ``az keyvault certificate``, a client of a running server
(``cli/client.py`` says where it finds the vault and its credentials).

Names, flags and output follow az. A policy (``--policy``) is JSON inline, ``@file`` or a file's
path, with az's snake_case names, the camelCase ``get-default-policy`` prints, or the REST
API's (``key_props``, ``x509_props``, ...)."""

from __future__ import annotations

import base64
import json
import os
import re
import textwrap
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from strongroom.cli.client import (
    Vault,
    VaultName,
    VaultUrl,
    connected,
)  # fmt: skip
from strongroom.cli.completion import object_names
from strongroom.cli.lifecycle import Lifecycle, register, sdk_session
from strongroom.cli.output import Output, OutputOption, emit, fail, iso, wire
from strongroom.cli.shared import TagsOption, parse_tags

if TYPE_CHECKING:  # the SDK is imported when a command runs: `serve` starts without it
    from azure.keyvault.certificates import (
        CertificateClient,
        CertificateOperation,
        CertificatePolicy,
        CertificateProperties,
        DeletedCertificate,
        KeyVaultCertificate,
    )  # fmt: skip

app = typer.Typer(
    help="Certificates in a vault (a client of a running server).", no_args_is_help=True
)

Name = typer.Option(
    ..., "--name", "-n", help="Certificate name.", autocompletion=object_names("certificate")
)
Version = typer.Option(None, "--version", "-v", help="Certificate version (default: latest).")
PolicyOption = typer.Option(
    None, "--policy", "-p", help="The policy: JSON, @file or a file (see get-default-policy)."
)


class Encoding(StrEnum):
    PEM = "PEM"
    DER = "DER"
    PFX = "PFX"  # Strongroom's: with the private key (az: secret download --encoding base64)


class TrueFalse(StrEnum):
    true = "true"
    false = "false"


# az's default policy (`az keyvault certificate get-default-policy`), as it prints it.
DEFAULT_POLICY: dict[str, Any] = {
    "issuerParameters": {"name": "Self"},
    "keyProperties": {"exportable": True, "keySize": 2048, "keyType": "RSA", "reuseKey": True},
    "lifetimeActions": [
        {"action": {"actionType": "AutoRenew"}, "trigger": {"daysBeforeExpiry": 90}}
    ],
    "secretProperties": {"contentType": "application/x-pkcs12"},
    "x509CertificateProperties": {
        "keyUsage": [
            "cRLSign",
            "dataEncipherment",
            "digitalSignature",
            "keyEncipherment",
            "keyAgreement",
            "keyCertSign",
        ],
        "subject": "CN=CLIGetDefaultPolicy",
        "validityInMonths": 12,
    },
}

# The REST API's member names, as az's (snake_case) policy names them.
_ALIASES = {
    "key_props": "key_properties", "secret_props": "secret_properties",
    "x509_props": "x509_certificate_properties", "issuer": "issuer_parameters",
    "kty": "key_type", "crv": "curve", "sans": "subject_alternative_names",
    "validity_months": "validity_in_months", "cty": "certificate_type",
    "cert_transparency": "certificate_transparency",
}  # fmt: skip


def _snake(value: Any) -> Any:
    if isinstance(value, list):
        return [_snake(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()
        out[_ALIASES.get(name, name)] = _snake(item)
    return out


def _policy_json(text: str) -> dict[str, Any]:
    path = Path(text.removeprefix("@"))
    try:
        if text.startswith("@") or (not text.lstrip().startswith("{") and path.is_file()):
            text = path.read_text()
        body = json.loads(text)
    except (OSError, ValueError) as exc:
        fail("BadParameter", f"--policy is not JSON, @file or a file holding JSON: {exc}.")
    if not isinstance(body, dict):
        fail("BadParameter", "--policy must be a JSON object.")
    return dict(_snake(body))


def _policy(body: dict[str, Any], validity: int | None = None) -> CertificatePolicy:
    """az's build_certificate_policy: the SDK's flat CertificatePolicy from the nested JSON."""
    from azure.keyvault.certificates import CertificatePolicy, LifetimeAction

    key = body.get("key_properties") or {}
    x509 = body.get("x509_certificate_properties") or {}
    sans = x509.get("subject_alternative_names") or {}
    issuer = body.get("issuer_parameters") or {}
    actions = [
        LifetimeAction(
            (item.get("action") or {}).get("action_type"),
            lifetime_percentage=(item.get("trigger") or {}).get("lifetime_percentage"),
            days_before_expiry=(item.get("trigger") or {}).get("days_before_expiry"),
        )
        for item in body.get("lifetime_actions") or []
    ]
    return CertificatePolicy(
        issuer_name=issuer.get("name"), subject=x509.get("subject"),
        san_emails=sans.get("emails"), san_dns_names=sans.get("dns_names"),
        san_user_principal_names=sans.get("upns"), exportable=key.get("exportable"),
        key_type=key.get("key_type"), key_size=key.get("key_size"),
        reuse_key=key.get("reuse_key"), key_curve_name=key.get("curve"),
        enhanced_key_usage=x509.get("ekus"), key_usage=x509.get("key_usage"),
        content_type=(body.get("secret_properties") or {}).get("content_type"),
        validity_in_months=validity or x509.get("validity_in_months"),
        lifetime_actions=actions or None, certificate_type=issuer.get("certificate_type"),
        certificate_transparency=issuer.get("certificate_transparency"),
    )  # fmt: skip


def _client(vault: Vault) -> CertificateClient:
    from azure.keyvault.certificates import CertificateClient

    return CertificateClient(vault.url, vault.credential, **vault.options)


def _properties(p: CertificateProperties) -> dict[str, Any]:
    """As az prints a certificate in a list."""
    thumbprint = p.x509_thumbprint
    return {
        "attributes": {
            "created": iso(p.created_on), "enabled": p.enabled, "expires": iso(p.expires_on),
            "notBefore": iso(p.not_before), "recoveryLevel": p.recovery_level,
            "updated": iso(p.updated_on),
        },
        "id": p.id,
        "name": p.name,
        "tags": p.tags,
        "x509Thumbprint": base64.b64encode(thumbprint).decode() if thumbprint else None,
        "x509ThumbprintHex": thumbprint.hex().upper() if thumbprint else None,
    }  # fmt: skip


def _shown_policy(policy: CertificatePolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "issuerParameters": {"certificateTransparency": policy.certificate_transparency,
                             "certificateType": policy.certificate_type,
                             "name": policy.issuer_name},
        "keyProperties": {"curve": wire(policy.key_curve_name), "exportable": policy.exportable,
                          "keySize": policy.key_size, "keyType": wire(policy.key_type),
                          "reuseKey": policy.reuse_key},
        "lifetimeActions": [
            {"action": {"actionType": wire(a.action)},
             "trigger": {"daysBeforeExpiry": a.days_before_expiry,
                         "lifetimePercentage": a.lifetime_percentage}}
            for a in policy.lifetime_actions or []
        ],
        "secretProperties": {"contentType": wire(policy.content_type)},
        "x509CertificateProperties": {
            "ekus": policy.enhanced_key_usage,
            "keyUsage": [wire(u) for u in policy.key_usage or []],
            "subject": policy.subject,
            "subjectAlternativeNames": {"emails": policy.san_emails,
                                        "upns": policy.san_user_principal_names,
                                        "dnsNames": policy.san_dns_names},
            "validityInMonths": policy.validity_in_months,
        },
    }  # fmt: skip


def _certificate(cert: KeyVaultCertificate) -> dict[str, Any]:
    assert cert.properties is not None  # the SDK sets them on every certificate it returns
    shown = _properties(cert.properties)
    shown.update(
        cer=base64.b64encode(cert.cer).decode() if cert.cer else None,
        contentType=wire(cert.policy.content_type) if cert.policy else None,
        kid=cert.key_id, sid=cert.secret_id, policy=_shown_policy(cert.policy),
    )  # fmt: skip
    return shown


def _deleted(cert: DeletedCertificate, listed: bool = False) -> dict[str, Any]:
    shown = _properties(cert.properties) if listed else _certificate(cert)  # type: ignore[arg-type]
    return dict(shown, deletedDate=iso(cert.deleted_on), recoveryId=cert.recovery_id,
                scheduledPurgeDate=iso(cert.scheduled_purge_date))  # fmt: skip


def _operation(op: CertificateOperation) -> dict[str, Any]:
    return {
        "cancellationRequested": op.cancellation_requested,
        "csr": base64.b64encode(op.csr).decode() if op.csr else None,
        "error": None if op.error is None else {"code": op.error.code,
                                                "message": op.error.message},
        "id": op.id,
        "issuerParameters": {"certificateTransparency": op.certificate_transparency,
                             "certificateType": op.certificate_type, "name": op.issuer_name},
        "name": op.name,
        "requestId": op.request_id,
        "status": op.status,
        "statusDetails": op.status_details,
        "target": op.target,
    }  # fmt: skip


@app.command("get-default-policy")
def get_default_policy(output: Output = OutputOption) -> None:
    """az's default policy (self-signed RSA 2048, 12 months): a start for --policy."""
    emit(DEFAULT_POLICY, output)


@app.command()
def create(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    policy: str = typer.Option(
        ..., "--policy", "-p", help="The policy: JSON, @file or a file (see get-default-policy)."
    ),
    validity: int | None = typer.Option(None, "--validity", help="Months; overrides the policy."),
    disabled: bool = typer.Option(False, "--disabled", help="Create it disabled."),
    tags: list[str] | None = TagsOption,
    output: Output = OutputOption,
) -> None:
    """Create a certificate; a self-signed one is waited for, as az does (an `Unknown` issuer's
    operation is printed pending, with its CSR)."""
    built = _policy(_policy_json(policy), validity)
    with connected(vault_name, vault_url) as vault:
        client = _client(vault)
        poller = client.begin_create_certificate(
            name, built, enabled=not disabled, tags=parse_tags(tags)
        )
        if (built.issuer_name or "").lower() != "unknown":
            poller.result()
        emit(_operation(client.get_certificate_operation(name)), output)


@app.command("import")
def import_(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    file: Path = typer.Option(
        ..., "--file", "-f", help="PKCS#12 or PEM file holding the certificate and private key."
    ),
    password: str | None = typer.Option(None, "--password", help="For an encrypted key/PFX."),
    policy: str | None = PolicyOption,
    disabled: bool = typer.Option(False, "--disabled", help="Import it disabled."),
    tags: list[str] | None = TagsOption,
    output: Output = OutputOption,
) -> None:
    """Import a certificate with its private key, from PEM or PKCS#12 (PFX), like az."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail("FileNotFound", f"Cannot read {file}: {exc.strerror}.")
    body = _policy_json(policy) if policy else {}
    secret = body.setdefault("secret_properties", {})
    if not secret.get("content_type"):  # az looks at the file for it
        pem = b"-----BEGIN" in data
        secret["content_type"] = "application/x-pem-file" if pem else "application/x-pkcs12"
    with connected(vault_name, vault_url) as vault:
        cert = _client(vault).import_certificate(
            name, data, enabled=not disabled, tags=parse_tags(tags), password=password,
            policy=_policy(body),
        )  # fmt: skip
        emit(_certificate(cert), output)


@app.command()
def show(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl, name: str = Name,
    version: str | None = Version, output: Output = OutputOption,
) -> None:  # fmt: skip
    with connected(vault_name, vault_url) as vault:
        client = _client(vault)
        cert = client.get_certificate_version(name, version) if version else None
        emit(_certificate(cert or client.get_certificate(name)), output)


@app.command("set-attributes")
def set_attributes(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    version: str | None = Version,
    enabled: TrueFalse | None = typer.Option(None, "--enabled", help="true or false."),
    tags: list[str] | None = TagsOption,
    policy: str | None = PolicyOption,
    output: Output = OutputOption,
) -> None:
    """Enable or disable a certificate, set its tags, or replace its policy."""
    with connected(vault_name, vault_url) as vault:
        client = _client(vault)
        if policy is not None:
            client.update_certificate_policy(name, _policy(_policy_json(policy)))
        cert = client.update_certificate_properties(
            name, version, enabled=None if enabled is None else enabled is TrueFalse.true,
            tags=parse_tags(tags),
        )  # fmt: skip
        emit(_certificate(cert), output)


register(
    app,
    Lifecycle(
        one="certificate", group="certificate", session=sdk_session(_client),
        vault_of=lambda h: h[0],
        delete=lambda h, name: _deleted(h[1].begin_delete_certificate(name).result()),
        recover=lambda h, name: _certificate(
            h[1].begin_recover_deleted_certificate(name).result()
        ),
        purge=lambda h, name: h[1].purge_deleted_certificate(name),
        backup=lambda h, name: h[1].backup_certificate(name),
        restore=lambda h, blob: _certificate(h[1].restore_certificate_backup(blob)),
        list_all=lambda h: [_properties(p) for p in h[1].list_properties_of_certificates()],
        list_versions=lambda h, name: [
            _properties(p) for p in h[1].list_properties_of_certificate_versions(name)
        ],
        list_deleted=lambda h: [
            _deleted(d, listed=True) for d in h[1].list_deleted_certificates()
        ],
    ),
    Name,
)  # fmt: skip


@app.command()
def download(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    version: str | None = Version,
    file: Path = typer.Option(..., "--file", "-f", help="Where to write the certificate."),
    encoding: Encoding = typer.Option(
        Encoding.PEM,
        "--encoding",
        "-e",
        help="PEM or DER: the certificate alone; PFX: PKCS#12 with its private key and chain "
        "(needs secrets get, as it reads the certificate's secret).",
    ),
) -> None:
    """Write the certificate to a file: its public part, or with PFX its private key too."""
    if file.exists():
        fail("FileExists", f"{file} already exists.")
    if encoding is Encoding.PFX:
        _download_pfx(vault_name, vault_url, name, version, file)
        return
    with connected(vault_name, vault_url) as vault:
        client = _client(vault)
        cert = client.get_certificate_version(name, version) if version else None
        der = (cert or client.get_certificate(name)).cer
    if der is None:
        fail("CertificateNotFound", f"Certificate '{name}' has no issued certificate yet.")
    if encoding is Encoding.DER:
        file.write_bytes(der)
        return
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    file.write_text(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")


def _download_pfx(
    vault_name: str | None, vault_url: str | None, name: str, version: str | None, file: Path
) -> None:
    """The certificate's secret as PKCS#12 (no password): as stored when its content type is
    PKCS#12, converted from PEM otherwise. Written 0600: it holds a private key."""
    from azure.keyvault.secrets import SecretClient
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import (
        NoEncryption,
        load_pem_private_key,
        pkcs12,
    )

    with connected(vault_name, vault_url) as vault:
        secret = SecretClient(vault.url, vault.credential, **vault.options).get_secret(
            name, version
        )
    value = secret.value or ""
    if secret.properties.content_type == "application/x-pem-file":
        data = value.encode()
        certs = x509.load_pem_x509_certificates(data)
        key = load_pem_private_key(data, None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            fail("BadParameter", f"Certificate '{name}' has a key PKCS#12 cannot carry here.")
        blob = pkcs12.serialize_key_and_certificates(
            name.encode(), key, certs[0], certs[1:] or None, NoEncryption()
        )
    else:
        blob = base64.b64decode(value)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(blob)


# --- pending, issuer, contact: az keyvault certificate pending|issuer|contact ---------------

pending_app = typer.Typer(
    help="A certificate's pending operation (a CSR awaiting its signed certificate).",
    no_args_is_help=True,
)
issuer_app = typer.Typer(help="Certificate issuers of the vault.", no_args_is_help=True)
contact_app = typer.Typer(
    help="Contacts told of the vault's certificate events.", no_args_is_help=True
)
app.add_typer(pending_app, name="pending")
app.add_typer(issuer_app, name="issuer")
app.add_typer(contact_app, name="contact")


def _chain(data: bytes) -> list[bytes]:
    """The DER certificates of a PEM (one or more) or DER file."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding as Der

    try:
        if b"-----BEGIN" in data:
            return [c.public_bytes(Der.DER) for c in x509.load_pem_x509_certificates(data)]
        return [x509.load_der_x509_certificate(data).public_bytes(Der.DER)]
    except ValueError as exc:
        fail("BadParameter", f"--file holds no PEM or DER certificate: {exc}.")


@pending_app.command("show")
def pending_show(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl, name: str = Name,
    output: Output = OutputOption,
) -> None:  # fmt: skip
    """The certificate's operation: its status and, while pending, its CSR."""
    with connected(vault_name, vault_url) as vault:
        emit(_operation(_client(vault).get_certificate_operation(name)), output)


@pending_app.command("merge")
def pending_merge(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    file: Path = typer.Option(
        ..., "--file", "-f", help="The signed certificate or chain (PEM or DER) to merge."
    ),
    disabled: bool = typer.Option(False, "--disabled", help="Leave the certificate disabled."),
    tags: list[str] | None = TagsOption,
    output: Output = OutputOption,
) -> None:
    """Merge the signed certificate (or chain) with the pending operation's key pair."""
    try:
        chain = _chain(file.read_bytes())
    except OSError as exc:
        fail("FileNotFound", f"Cannot read {file}: {exc.strerror}.")
    with connected(vault_name, vault_url) as vault:
        cert = _client(vault).merge_certificate(
            name, chain, enabled=False if disabled else None, tags=parse_tags(tags)
        )
        emit(_certificate(cert), output)


@pending_app.command("delete")
def pending_delete(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl, name: str = Name,
    output: Output = OutputOption,
) -> None:  # fmt: skip
    """Stop and delete the pending operation (the certificate stays, unissued)."""
    with connected(vault_name, vault_url) as vault:
        emit(_operation(_client(vault).delete_certificate_operation(name)), output)


IssuerName = typer.Option(..., "--issuer-name", help="Certificate issuer name.")
AccountId = typer.Option(None, "--account-id", help="The account id at the provider.")
Password = typer.Option(None, "--password", help="The account's password at the provider.")
OrganizationId = typer.Option(None, "--organization-id", help="Id of the organization.")


def _issuer(issuer: Any) -> dict[str, Any]:
    """As the REST API has an issuer (the password is never printed)."""
    admins = [{"emailAddress": a.email, "firstName": a.first_name, "lastName": a.last_name,
               "phone": a.phone} for a in issuer.admin_contacts or []]  # fmt: skip
    return {
        "attributes": {"created": iso(issuer.created_on), "enabled": issuer.enabled,
                       "updated": iso(issuer.updated_on)},
        "credentials": {"accountId": issuer.account_id},
        "id": issuer.id,
        "name": issuer.name,
        "organizationDetails": {"adminDetails": admins, "id": issuer.organization_id},
        "provider": issuer.provider,
    }  # fmt: skip


@issuer_app.command("create")
def issuer_create(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    issuer_name: str = IssuerName,
    provider_name: str = typer.Option(..., "--provider-name", help="The issuer's provider."),
    account_id: str | None = AccountId,
    password: str | None = Password,
    organization_id: str | None = OrganizationId,
    disabled: bool = typer.Option(False, "--disabled", help="Create it disabled."),
    output: Output = OutputOption,
) -> None:
    """Register a certificate issuer (its provider and account) in the vault."""
    with connected(vault_name, vault_url) as vault:
        issuer = _client(vault).create_issuer(
            issuer_name, provider_name, enabled=not disabled, account_id=account_id,
            password=password, organization_id=organization_id,
        )  # fmt: skip
        emit(_issuer(issuer), output)


@issuer_app.command("show")
def issuer_show(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl,
    issuer_name: str = IssuerName, output: Output = OutputOption,
) -> None:  # fmt: skip
    with connected(vault_name, vault_url) as vault:
        emit(_issuer(_client(vault).get_issuer(issuer_name)), output)


@issuer_app.command("list")
def issuer_list(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl,
    output: Output = OutputOption,
) -> None:  # fmt: skip
    with connected(vault_name, vault_url) as vault:
        items = _client(vault).list_properties_of_issuers()
        emit([{"id": i.id, "name": i.name, "provider": i.provider} for i in items], output)


@issuer_app.command("update")
def issuer_update(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    issuer_name: str = IssuerName,
    provider_name: str | None = typer.Option(None, "--provider-name", help="A new provider."),
    account_id: str | None = AccountId,
    password: str | None = Password,
    organization_id: str | None = OrganizationId,
    enabled: TrueFalse | None = typer.Option(None, "--enabled", help="true or false."),
    output: Output = OutputOption,
) -> None:
    """Change what is given of an issuer; the rest stays."""
    with connected(vault_name, vault_url) as vault:
        issuer = _client(vault).update_issuer(
            issuer_name, provider=provider_name, account_id=account_id, password=password,
            organization_id=organization_id,
            enabled=None if enabled is None else enabled is TrueFalse.true,
        )  # fmt: skip
        emit(_issuer(issuer), output)


@issuer_app.command("delete")
def issuer_delete(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl,
    issuer_name: str = IssuerName, output: Output = OutputOption,
) -> None:  # fmt: skip
    with connected(vault_name, vault_url) as vault:
        emit(_issuer(_client(vault).delete_issuer(issuer_name)), output)


Email = typer.Option(..., "--email", help="The contact's e-mail address.")


def _contacts(contacts: list[Any]) -> list[dict[str, Any]]:
    return [{"email": c.email, "name": c.name, "phone": c.phone} for c in contacts]


def _current_contacts(client: CertificateClient) -> list[Any]:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return list(client.get_contacts())
    except ResourceNotFoundError:  # none set yet
        return []


@contact_app.command("add")
def contact_add(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    email: str = Email,
    contact_name: str | None = typer.Option(None, "--name", help="The contact's name."),
    phone: str | None = typer.Option(None, "--phone", help="The contact's phone number."),
    output: Output = OutputOption,
) -> None:
    """Add a contact, keeping the others (as az does, an address already there is refused)."""
    from azure.keyvault.certificates import CertificateContact

    with connected(vault_name, vault_url) as vault:
        client = _client(vault)
        contacts = _current_contacts(client)
        if any((c.email or "").lower() == email.lower() for c in contacts):
            fail("ContactExists", f"Contact '{email}' already exists.")
        contacts.append(CertificateContact(email=email, name=contact_name, phone=phone))
        emit(_contacts(client.set_contacts(contacts)), output)


@contact_app.command("list")
def contact_list(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl,
    output: Output = OutputOption,
) -> None:  # fmt: skip
    with connected(vault_name, vault_url) as vault:
        emit(_contacts(_current_contacts(_client(vault))), output)


@contact_app.command("delete")
def contact_delete(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl, email: str = Email,
    output: Output = OutputOption,
) -> None:  # fmt: skip
    """Remove one contact; the others stay."""
    with connected(vault_name, vault_url) as vault:
        client = _client(vault)
        contacts = _current_contacts(client)
        remaining = [c for c in contacts if (c.email or "").lower() != email.lower()]
        if len(remaining) == len(contacts):
            fail("ContactNotFound", f"Contact '{email}' not found in vault '{vault.name}'.")
        if remaining:
            emit(_contacts(client.set_contacts(remaining)), output)
        else:
            client.delete_contacts()
            emit([], output)
