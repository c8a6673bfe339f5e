"""``strongroom storage ...``: like the ``az keyvault storage`` group that az had (it was removed
from az, and no current Azure SDK covers the API), a client of a running server over REST.

The requests go through httpx, with a token from the credential the other object commands use
(``cli/client.py``), for the scope the vault's 401 challenge names, as the SDKs do. Names, flags
and JSON output follow az's old group (the REST API's camelCase).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

import httpx
import typer

from strongroom.cli.client import (
    Vault,
    VaultName,
    VaultUrl,
    connected,
)  # fmt: skip
from strongroom.cli.lifecycle import Lifecycle, register
from strongroom.cli.output import Output, OutputOption, emit, fail
from strongroom.cli.shared import TagsOption, parse_tags

API_VERSION = "7.4"

app = typer.Typer(
    help="Managed storage accounts and their SAS definitions in a vault (a client of a running "
    "server, over REST).",
    no_args_is_help=True,
)
sas_app = typer.Typer(help="SAS definitions of a managed storage account.", no_args_is_help=True)
app.add_typer(sas_app, name="sas-definition")

Name = typer.Option(..., "--name", "-n", help="Storage account name.")
AccountName = typer.Option(..., "--account-name", help="Storage account name.")
SasName = typer.Option(..., "--name", "-n", help="SAS definition name.")


class KeyName(StrEnum):
    key1 = "key1"
    key2 = "key2"


class SasType(StrEnum):
    account = "account"
    service = "service"


class Rest:
    """Key Vault's storage REST API on one vault: JSON in and out, errors as ``(Code) message``."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        env = os.environ
        verify = (
            vault.options.get("connection_verify") or env.get("REQUESTS_CA_BUNDLE")
            or env.get("SSL_CERT_FILE") or True
        )  # fmt: skip
        self.http = httpx.Client(verify=verify, timeout=30)
        self.token: str | None = None

    def _send(self, method: str, url: str, body: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.vault.tried.append(url)
        try:
            return self.http.request(method, url, json=body, headers=headers)
        except httpx.TransportError as exc:
            fail("CannotConnect", self.vault.unreachable(exc))

    def call(self, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.vault.url}{path}?api-version={API_VERSION}"
        return self._call(method, url, body)

    def _call(self, method: str, url: str, body: Any = None) -> Any:
        response = self._send(method, url, body)
        if response.status_code == 401 and self.token is None:
            self.token = self.vault.credential.get_token(self._scope(response)).token
            response = self._send(method, url, body)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                code, message = str(error["code"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                code, message = f"Http{response.status_code}", response.text[:200]
            fail(code, message.splitlines()[0] if message else code)
        return response.json() if response.content else None

    def pages(self, path: str) -> list[Any]:
        """Every item of a list, following ``nextLink``."""
        page = self.call("GET", path)
        items = list(page.get("value") or [])
        while page.get("nextLink"):
            page = self._call("GET", page["nextLink"])
            items += page.get("value") or []
        return items

    def _scope(self, response: httpx.Response) -> str:
        challenge = response.headers.get("www-authenticate", "")
        found: dict[str, str] = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        if "scope" in found:
            return found["scope"]
        if "resource" in found:
            return found["resource"].rstrip("/") + "/.default"
        fail("Unauthorized", f"{self.vault.url} asked for no bearer token: {challenge!r}")


@contextmanager
def rest(vault_name: str | None, vault_url: str | None) -> Iterator[Rest]:
    with connected(vault_name, vault_url) as vault:
        client = Rest(vault)
        try:
            yield client
        finally:
            client.http.close()


def _attributes(disabled: bool | None) -> dict[str, Any]:
    return {} if disabled is None else {"attributes": {"enabled": not disabled}}


@app.command()
def add(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    resource_id: str = typer.Option(
        ..., "--resource-id",
        help="The account's Azure resource id (/subscriptions/.../storageAccounts/NAME).",
    ),
    active_key_name: KeyName = typer.Option(
        ..., "--active-key-name", help="The key SAS tokens are signed with: key1 or key2."
    ),
    auto_regenerate_key: bool = typer.Option(
        False, "--auto-regenerate-key", help="Regenerate the keys every --regeneration-period."
    ),
    regeneration_period: str | None = typer.Option(
        None, "--regeneration-period", help="ISO-8601 duration, at least P1D (default P90D)."
    ),
    disabled: bool = typer.Option(False, "--disabled", help="Add it disabled."),
    tags: list[str] | None = TagsOption,
    output: Output = OutputOption,
) -> None:  # fmt: skip
    """Have the vault manage a storage account's keys."""
    body: dict[str, Any] = {
        "resourceId": resource_id, "activeKeyName": active_key_name.value,
        "autoRegenerateKey": auto_regenerate_key, **_attributes(disabled or None),
    }  # fmt: skip
    if regeneration_period is not None:
        body["regenerationPeriod"] = regeneration_period
    if tags is not None:
        body["tags"] = parse_tags(tags)
    with rest(vault_name, vault_url) as r:
        emit(r.call("PUT", f"/storage/{name}", body), output)


@app.command()
def update(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    active_key_name: KeyName | None = typer.Option(None, "--active-key-name"),
    auto_regenerate_key: bool | None = typer.Option(
        None, "--auto-regenerate-key/--no-auto-regenerate-key"
    ),
    regeneration_period: str | None = typer.Option(None, "--regeneration-period"),
    tags: list[str] | None = TagsOption,
    output: Output = OutputOption,
) -> None:
    """Change what is given of a managed account; the rest stays."""
    body: dict[str, Any] = {}
    if active_key_name is not None:
        body["activeKeyName"] = active_key_name.value
    if auto_regenerate_key is not None:
        body["autoRegenerateKey"] = auto_regenerate_key
    if regeneration_period is not None:
        body["regenerationPeriod"] = regeneration_period
    if tags is not None:
        body["tags"] = parse_tags(tags)
    with rest(vault_name, vault_url) as r:
        emit(r.call("PATCH", f"/storage/{name}", body), output)


@app.command()
def show(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl, name: str = Name,
    output: Output = OutputOption,
) -> None:  # fmt: skip
    with rest(vault_name, vault_url) as r:
        emit(r.call("GET", f"/storage/{name}"), output)


@app.command("show-deleted")
def show_deleted(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl, name: str = Name,
    output: Output = OutputOption,
) -> None:  # fmt: skip
    with rest(vault_name, vault_url) as r:
        emit(r.call("GET", f"/deletedstorage/{name}"), output)


@app.command("regenerate-key")
def regenerate_key(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    key_name: KeyName = typer.Option(..., "--key-name", help="The key to regenerate."),
    output: Output = OutputOption,
) -> None:
    """Regenerate one of the account's keys (tokens signed with the old one stop working)."""
    with rest(vault_name, vault_url) as r:
        emit(r.call("POST", f"/storage/{name}/regeneratekey", {"keyName": key_name.value}), output)


def _unpadded(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _blob(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


register(
    app,
    Lifecycle(
        one="managed storage account", group="storage", session=rest,
        vault_of=lambda r: r.vault, what="with its SAS definitions",
        delete_names=("remove", "delete"),
        delete=lambda r, name: r.call("DELETE", f"/storage/{name}"),
        recover=lambda r, name: r.call("POST", f"/deletedstorage/{name}/recover"),
        purge=lambda r, name: r.call("DELETE", f"/deletedstorage/{name}"),
        backup=lambda r, name: _blob(str(r.call("POST", f"/storage/{name}/backup")["value"])),
        restore=lambda r, blob: r.call("POST", "/storage/restore", {"value": _unpadded(blob)}),
        list_all=lambda r: r.pages("/storage"),
        list_deleted=lambda r: r.pages("/deletedstorage"),
    ),
    Name,
)  # fmt: skip


@sas_app.command("create")
def sas_create(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    account_name: str = AccountName,
    name: str = SasName,
    template_uri: str = typer.Option(
        ..., "--template-uri",
        help="A SAS token (account SAS) or a blob/container URL with one (service SAS) whose "
        "parameters every minted token takes.",
    ),
    sas_type: SasType = typer.Option(..., "--sas-type", help="account or service."),
    validity_period: str = typer.Option(
        ..., "--validity-period", help="ISO-8601 duration a minted token is valid for."
    ),
    disabled: bool = typer.Option(False, "--disabled", help="Create it disabled."),
    tags: list[str] | None = TagsOption,
    output: Output = OutputOption,
) -> None:  # fmt: skip
    """Define a SAS: reading the secret ACCOUNT-NAME mints a token from it."""
    body: dict[str, Any] = {
        "templateUri": template_uri, "sasType": sas_type.value,
        "validityPeriod": validity_period, **_attributes(disabled or None),
    }  # fmt: skip
    if tags is not None:
        body["tags"] = parse_tags(tags)
    with rest(vault_name, vault_url) as r:
        emit(r.call("PUT", f"/storage/{account_name}/sas/{name}", body), output)


@sas_app.command("show")
def sas_show(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl,
    account_name: str = AccountName, name: str = SasName, output: Output = OutputOption,
) -> None:  # fmt: skip
    with rest(vault_name, vault_url) as r:
        emit(r.call("GET", f"/storage/{account_name}/sas/{name}"), output)


@sas_app.command("list")
def sas_list(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl,
    account_name: str = AccountName, output: Output = OutputOption,
) -> None:  # fmt: skip
    with rest(vault_name, vault_url) as r:
        emit(r.pages(f"/storage/{account_name}/sas"), output)


@sas_app.command("delete")
def sas_delete(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl,
    account_name: str = AccountName, name: str = SasName, output: Output = OutputOption,
) -> None:  # fmt: skip
    """Soft-delete a SAS definition."""
    with rest(vault_name, vault_url) as r:
        emit(r.call("DELETE", f"/storage/{account_name}/sas/{name}"), output)
