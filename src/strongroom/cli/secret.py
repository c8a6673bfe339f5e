"""``strongroom secret ...``: like ``az keyvault secret``, a client of a running server
(``cli/client.py`` says where it finds the vault and its credentials)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from strongroom.cli.client import (
    Vault,
    VaultName,
    VaultUrl,
    connected,
)
from strongroom.cli.completion import object_names
from strongroom.cli.lifecycle import Lifecycle, register, sdk_session
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


def _deleted(deleted: Any) -> dict[str, Any]:
    return dict(
        _properties(deleted.properties),
        recoveryId=deleted.recovery_id,
        deletedDate=_iso(deleted.deleted_date),
        scheduledPurgeDate=_iso(deleted.scheduled_purge_date),
    )


register(
    app,
    Lifecycle(
        one="secret", group="secret", session=sdk_session(_client), vault_of=lambda h: h[0],
        delete=lambda h, name: _deleted(h[1].begin_delete_secret(name).result()),
        recover=lambda h, name: _properties(h[1].begin_recover_deleted_secret(name).result()),
        purge=lambda h, name: h[1].purge_deleted_secret(name),
        backup=lambda h, name: h[1].backup_secret(name),
        restore=lambda h, blob: _properties(h[1].restore_secret_backup(blob)),
        list_all=lambda h: [_properties(p) for p in h[1].list_properties_of_secrets()],
        list_versions=lambda h, name: [
            _properties(p) for p in h[1].list_properties_of_secret_versions(name)
        ],
        list_deleted=lambda h: [_deleted(d) for d in h[1].list_deleted_secrets()],
    ),
    Name,
)  # fmt: skip
