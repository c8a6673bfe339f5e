"""``strongroom secret ...``: like ``az keyvault secret``, a client of a running server.

It uses the Azure SDK, so it works against a real Azure Key Vault too. Credentials come from
``AZURE_TENANT_ID``/``AZURE_CLIENT_ID``/``AZURE_CLIENT_SECRET`` (with ``AZURE_AUTHORITY_HOST``)
or from the profile ``strongroom principal create --save-profile`` wrote.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from strongroom.cli.output import Output, OutputOption, emit, errors, fail
from strongroom.cli.profile import Profile, profile_path
from strongroom.cli.shared import TagsOption, parse_tags
from strongroom.config import DEFAULT_PORT, DEFAULT_VAULT_SUFFIX

if TYPE_CHECKING:  # the SDK is imported when a command runs: `serve` starts without it
    from azure.keyvault.secrets import SecretClient, SecretProperties

app = typer.Typer(help="Secrets in a vault (a client of a running server).", no_args_is_help=True)

VaultName = typer.Option(..., "--vault-name", help="Vault name.")
Name = typer.Option(..., "--name", "-n", help="Secret name.")
Version = typer.Option(None, "--version", help="Secret version (default: latest).")


def _translate(exc: Exception) -> tuple[str, str] | None:
    from azure.core.exceptions import AzureError, HttpResponseError

    if isinstance(exc, HttpResponseError):
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None) or type(exc).__name__
        message = getattr(error, "message", None) or exc.message or str(exc)
        return str(code), str(message).splitlines()[0]
    if isinstance(exc, AzureError):
        return type(exc).__name__, str(exc).splitlines()[0]
    return None


def _client(vault_name: str) -> SecretClient:
    from azure.identity import ClientSecretCredential
    from azure.keyvault.secrets import SecretClient

    env = os.environ
    profile = Profile.load(profile_path())
    suffix = env.get("STRONGROOM_VAULT_DNS_SUFFIX") or (
        profile.vaultDnsSuffix if profile else f"{DEFAULT_VAULT_SUFFIX}:{DEFAULT_PORT}"
    )
    url = f"https://{vault_name}.{suffix.lstrip('.')}"
    kwargs: dict[str, Any] = {}
    if profile and profile.caPath and "REQUESTS_CA_BUNDLE" not in env:
        kwargs["connection_verify"] = profile.caPath
    if env.get("AZURE_CLIENT_ID") and env.get("AZURE_CLIENT_SECRET") and env.get("AZURE_TENANT_ID"):
        authority = env.get("AZURE_AUTHORITY_HOST") or (profile.authority if profile else None)
        extra: dict[str, Any] = {"disable_instance_discovery": True} if authority else {}
        if authority:
            extra["authority"] = authority
        credential = ClientSecretCredential(
            env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"],
            **extra, **kwargs,
        )  # fmt: skip
    elif profile is not None:
        credential = ClientSecretCredential(
            profile.tenantId, profile.clientId, profile.clientSecret,
            authority=profile.authority, disable_instance_discovery=True, **kwargs,
        )  # fmt: skip
    else:
        fail(
            "NoCredentials",
            "No credentials: set AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and "
            "AZURE_AUTHORITY_HOST, or run `strongroom principal create NAME --save-profile`.",
        )
    return SecretClient(url, credential, **kwargs)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _properties(p: SecretProperties) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "contentType": p.content_type,
        "attributes": {
            "enabled": p.enabled,
            "notBefore": _iso(p.not_before),
            "expires": _iso(p.expires_on),
            "created": _iso(p.created_on),
            "updated": _iso(p.updated_on),
            "recoveryLevel": p.recovery_level,
        },
        "tags": p.tags,
        "managed": p.managed,
    }


@app.command("set")
def set_(
    vault_name: str = VaultName,
    name: str = Name,
    value: str | None = typer.Option(None, "--value", help="Secret value."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Read the value from a file."),
    content_type: str | None = typer.Option(None, "--content-type"),
    disabled: bool = typer.Option(False, "--disabled"),
    tags: list[str] | None = TagsOption,
    output: Output = OutputOption,
) -> None:
    """Create a new version of a secret."""
    if (value is None) == (file is None):
        fail("BadParameter", "Give exactly one of --value and --file.")
    text = value if value is not None else file.read_text()  # type: ignore[union-attr]
    with errors(_translate):
        secret = _client(vault_name).set_secret(
            name, text, content_type=content_type, enabled=not disabled, tags=parse_tags(tags)
        )
        emit(dict(_properties(secret.properties), value=secret.value), output)


@app.command()
def show(
    vault_name: str = VaultName, name: str = Name, version: str | None = Version,
    output: Output = OutputOption,
) -> None:  # fmt: skip
    with errors(_translate):
        secret = _client(vault_name).get_secret(name, version)
        emit(dict(_properties(secret.properties), value=secret.value), output)


@app.command("list")
def list_(vault_name: str = VaultName, output: Output = OutputOption) -> None:
    with errors(_translate):
        items = _client(vault_name).list_properties_of_secrets()
        emit([_properties(p) for p in items], output)


@app.command("list-versions")
def list_versions(
    vault_name: str = VaultName, name: str = Name, output: Output = OutputOption
) -> None:
    with errors(_translate):
        items = _client(vault_name).list_properties_of_secret_versions(name)
        emit([_properties(p) for p in items], output)


@app.command()
def update(
    vault_name: str = VaultName,
    name: str = Name,
    version: str | None = Version,
    content_type: str | None = typer.Option(None, "--content-type"),
    enabled: bool | None = typer.Option(None, "--enabled/--disabled"),
    tags: list[str] | None = TagsOption,
    output: Output = OutputOption,
) -> None:
    with errors(_translate):
        props = _client(vault_name).update_secret_properties(
            name, version, content_type=content_type, enabled=enabled, tags=parse_tags(tags)
        )
        emit(_properties(props), output)


@app.command()
def delete(vault_name: str = VaultName, name: str = Name, output: Output = OutputOption) -> None:
    """Soft-delete a secret (all versions)."""
    with errors(_translate):
        deleted = _client(vault_name).begin_delete_secret(name).result()
        emit(
            dict(
                _properties(deleted.properties),
                recoveryId=deleted.recovery_id,
                deletedDate=_iso(deleted.deleted_date),
                scheduledPurgeDate=_iso(deleted.scheduled_purge_date),
            ),
            output,
        )


@app.command()
def recover(vault_name: str = VaultName, name: str = Name, output: Output = OutputOption) -> None:
    with errors(_translate):
        props = _client(vault_name).begin_recover_deleted_secret(name).result()
        emit(_properties(props), output)


@app.command()
def purge(vault_name: str = VaultName, name: str = Name) -> None:
    """Permanently remove a soft-deleted secret."""
    with errors(_translate):
        _client(vault_name).purge_deleted_secret(name)


@app.command()
def backup(
    vault_name: str = VaultName,
    name: str = Name,
    file: Path | None = typer.Option(
        None, "--file", "-f", help="Where to write (default: {vault}-{name}-{unixtime}.blob)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --file."),
    output: Output = OutputOption,
) -> None:
    """Back up a secret with all its versions into a sealed blob file."""
    target = file or Path(f"{vault_name}-{name}-{int(time.time())}.blob")
    if target.exists() and not force:
        fail("FileExists", f"{target} already exists; pass --force to overwrite it.")
    with errors(_translate):
        blob = _client(vault_name).backup_secret(name)
    target.write_bytes(blob)
    emit({"file": str(target.resolve()), "bytes": len(blob)}, output)


@app.command()
def restore(
    vault_name: str = VaultName,
    file: Path = typer.Option(..., "--file", "-f", help="A blob written by `secret backup`."),
    output: Output = OutputOption,
) -> None:
    """Restore a secret, with all its versions, from a backup blob."""
    if not file.exists():
        fail("FileNotFound", f"{file} does not exist.")
    with errors(_translate):
        props = _client(vault_name).restore_secret_backup(file.read_bytes())
        emit(_properties(props), output)
