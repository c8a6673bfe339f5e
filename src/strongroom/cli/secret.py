"""``strongroom secret ...``: like ``az keyvault secret``, a client of a running server
(``cli/client.py`` says where it finds the vault and its credentials)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from strongroom.cli.client import (
    BackupFile,
    Force,
    Vault,
    VaultName,
    VaultUrl,
    backup_target,
    connected,
)
from strongroom.cli.completion import object_names
from strongroom.cli.output import Output, OutputOption, emit, fail
from strongroom.cli.shared import TagsOption, parse_tags

if TYPE_CHECKING:  # the SDK is imported when a command runs: `serve` starts without it
    from azure.keyvault.secrets import SecretClient, SecretProperties

app = typer.Typer(help="Secrets in a vault (a client of a running server).", no_args_is_help=True)

Name = typer.Option(..., "--name", "-n", help="Secret name.", autocompletion=object_names("secret"))
Version = typer.Option(None, "--version", help="Secret version (default: latest).")


def _client(vault: Vault) -> SecretClient:
    from azure.keyvault.secrets import SecretClient

    return SecretClient(vault.url, vault.credential, **vault.options)


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
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
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
    with connected(vault_name, vault_url) as vault:
        secret = _client(vault).set_secret(
            name, text, content_type=content_type, enabled=not disabled, tags=parse_tags(tags)
        )
        emit(dict(_properties(secret.properties), value=secret.value), output)


@app.command()
def show(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl, name: str = Name, version: str | None = Version,
    output: Output = OutputOption,
) -> None:  # fmt: skip
    with connected(vault_name, vault_url) as vault:
        secret = _client(vault).get_secret(name, version)
        emit(dict(_properties(secret.properties), value=secret.value), output)


@app.command("list")
def list_(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    output: Output = OutputOption,
) -> None:
    with connected(vault_name, vault_url) as vault:
        items = _client(vault).list_properties_of_secrets()
        emit([_properties(p) for p in items], output)


@app.command("list-versions")
def list_versions(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    output: Output = OutputOption,
) -> None:
    with connected(vault_name, vault_url) as vault:
        items = _client(vault).list_properties_of_secret_versions(name)
        emit([_properties(p) for p in items], output)


@app.command()
def update(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    version: str | None = Version,
    content_type: str | None = typer.Option(None, "--content-type"),
    enabled: bool | None = typer.Option(None, "--enabled/--disabled"),
    tags: list[str] | None = TagsOption,
    output: Output = OutputOption,
) -> None:
    with connected(vault_name, vault_url) as vault:
        props = _client(vault).update_secret_properties(
            name, version, content_type=content_type, enabled=enabled, tags=parse_tags(tags)
        )
        emit(_properties(props), output)


@app.command()
def delete(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    output: Output = OutputOption,
) -> None:
    """Soft-delete a secret (all versions)."""
    with connected(vault_name, vault_url) as vault:
        deleted = _client(vault).begin_delete_secret(name).result()
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
def recover(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    output: Output = OutputOption,
) -> None:
    with connected(vault_name, vault_url) as vault:
        props = _client(vault).begin_recover_deleted_secret(name).result()
        emit(_properties(props), output)


@app.command()
def purge(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl, name: str = Name
) -> None:
    """Permanently remove a soft-deleted secret."""
    with connected(vault_name, vault_url) as vault:
        _client(vault).purge_deleted_secret(name)


@app.command()
def backup(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    file: Path | None = BackupFile,
    force: bool = Force,
    output: Output = OutputOption,
) -> None:
    """Back up a secret with all its versions into a sealed blob file."""
    with connected(vault_name, vault_url) as vault:
        target = backup_target(vault, name, file, force)
        blob = _client(vault).backup_secret(name)
    target.write_bytes(blob)
    emit({"file": str(target.resolve()), "bytes": len(blob)}, output)


@app.command()
def restore(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    file: Path = typer.Option(..., "--file", "-f", help="A blob written by `secret backup`."),
    output: Output = OutputOption,
) -> None:
    """Restore a secret, with all its versions, from a backup blob."""
    if not file.exists():
        fail("FileNotFound", f"{file} does not exist.")
    with connected(vault_name, vault_url) as vault:
        props = _client(vault).restore_secret_backup(file.read_bytes())
        emit(_properties(props), output)
