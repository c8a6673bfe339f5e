"""Where a managed storage account's keys come from: a small interface per storage service.

Azure Key Vault asks Azure Storage for an account's keys and to regenerate one. Strongroom
asks a *provider*, chosen from the account's ``resourceId``
(``/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Storage/storageAccounts/{name}``)
among the providers the server was configured with.

``AzuriteProvider`` serves the accounts of Azurite, the Azure Storage emulator. Azurite takes
its accounts from ``AZURITE_ACCOUNTS`` (``name:key1[:key2];...``, keys in base64) and cannot be
told a new key while it runs, so the provider keeps that string in a file it owns, rewrites the
file to regenerate a key, and ``tools/azurite/launch.cjs`` starts Azurite with its accounts
taken from the file and re-read about twice a second. With a blob endpoint configured, a
regeneration returns only once Azurite accepts the new key (checked with a token it signs).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import fcntl
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from strongroom.crypto import sas
from strongroom.errors import BadParameter, Upstream

log = logging.getLogger(__name__)

KEY_NAMES = ("key1", "key2")
_RESOURCE = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Storage/"
    r"storageAccounts/([a-z0-9]{3,24})",
    re.IGNORECASE,
)


class ProviderUnavailable(Upstream):
    """The storage service did not answer as it should."""

    code = "StorageServiceUnavailable"


class StorageProvider(Protocol):
    name: str

    def owns(self, account: str) -> bool: ...
    def account_key(self, account: str) -> str | None:
        """A key of the account (key1), for SAS tokens the server makes for itself."""
        ...

    async def list_keys(self, account: str) -> dict[str, str]:
        """The account's keys by name (``key1``, ``key2``), base64 as Azure gives them."""
        ...

    async def regenerate_key(self, account: str, key_name: str) -> dict[str, str]:
        """Replaces one key with a fresh random one; the account's keys afterwards."""
        ...


def account_of(resource_id: str) -> str:
    match = _RESOURCE.fullmatch(resource_id.strip().rstrip("/"))
    if match is None:
        raise BadParameter(
            "resourceId must be a storage account's Azure resource id: /subscriptions/{id}/"
            "resourceGroups/{group}/providers/Microsoft.Storage/storageAccounts/{name}, the "
            "name 3-24 lower-case letters and digits."
        )
    return match.group(1)


class StorageProviders:
    """The providers this server was configured with, and which one serves a resource."""

    def __init__(self, providers: list[StorageProvider]):
        self._providers = providers

    def resolve(self, resource_id: str) -> tuple[StorageProvider, str]:
        account = account_of(resource_id)
        for provider in self._providers:
            if provider.owns(account):
                return provider, account
        configured = ", ".join(p.name for p in self._providers) or "none"
        raise BadParameter(
            f"No storage service configured on this server holds the account '{account}' "
            f"(providers: {configured}). Add the account to the Azurite accounts file, or start "
            "the server with --azurite-accounts-file naming the file Azurite's accounts are in."
        )

    def account_key(self, account: str) -> str | None:
        for provider in self._providers:
            if provider.owns(account):
                return provider.account_key(account)
        return None


def parse_accounts(text: str) -> dict[str, dict[str, str]]:
    """``AZURITE_ACCOUNTS`` text as {account: {key1: b64, key2: b64}}."""
    accounts: dict[str, dict[str, str]] = {}
    for entry in text.strip().split(";"):
        if not entry.strip():
            continue
        parts = entry.strip().split(":")
        if len(parts) not in (2, 3) or not parts[0]:
            raise ValueError("expected account:key1[:key2] entries separated by ';'")
        accounts[parts[0]] = dict(zip(KEY_NAMES, parts[1:], strict=False))
    return accounts


def format_accounts(accounts: dict[str, dict[str, str]]) -> str:
    return ";".join(
        ":".join([name, *(keys[k] for k in KEY_NAMES if k in keys)])
        for name, keys in accounts.items()
    )


def new_key() -> str:
    """A fresh account key: 64 random bytes, base64, as Azure Storage makes them."""
    return base64.b64encode(os.urandom(64)).decode()


class AzuriteProvider:
    name = "azurite"
    ACCEPT_TIMEOUT = 15.0

    def __init__(self, accounts_file: Path, blob_endpoint: str | None = None):
        self._file = accounts_file
        self._endpoint = blob_endpoint.rstrip("/") if blob_endpoint else None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Several server processes may share one accounts file: one rewrite at a time.
        with open(self._file.with_name(self._file.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            return parse_accounts(self._file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ProviderUnavailable(
                f"The Azurite accounts file {self._file} cannot be read: {exc}."
            ) from exc

    def owns(self, account: str) -> bool:
        return account in self._read()

    def account_key(self, account: str) -> str | None:
        return self._read().get(account, {}).get("key1")

    async def list_keys(self, account: str) -> dict[str, str]:
        keys = self._read().get(account)
        if keys is None:
            raise BadParameter(f"Azurite holds no account '{account}'.")
        return dict(keys)

    async def regenerate_key(self, account: str, key_name: str) -> dict[str, str]:
        keys = await asyncio.to_thread(self._rewrite, account, key_name)
        if self._endpoint is not None:
            await self._until_accepted(account, keys[key_name])
        return keys

    def _rewrite(self, account: str, key_name: str) -> dict[str, str]:
        with self._locked():
            accounts = self._read()
            keys = accounts.get(account)
            if keys is None:
                raise BadParameter(f"Azurite holds no account '{account}'.")
            keys[key_name] = new_key()
            if "key1" not in keys:  # key2 without key1 cannot be written in Azurite's format
                keys["key1"] = new_key()
            temporary = self._file.with_name(self._file.name + ".new")
            temporary.write_text(format_accounts(accounts))
            os.chmod(temporary, 0o600)
            os.replace(temporary, self._file)
            return dict(keys)

    async def _until_accepted(self, account: str, key: str) -> None:
        """Waits until Azurite accepts ``key`` (it re-reads the accounts file by itself)."""
        deadline = time.monotonic() + self.ACCEPT_TIMEOUT
        while True:
            status = await asyncio.to_thread(self._probe, account, key)
            if status == 200:
                return
            if time.monotonic() > deadline:
                log.warning(
                    "Azurite at %s did not accept the regenerated key of %s within %.0f s "
                    "(last status %s); was it started by tools/azurite/launch.cjs?",
                    self._endpoint, account, self.ACCEPT_TIMEOUT, status,
                )  # fmt: skip
                return
            await asyncio.sleep(0.2)

    def _probe(self, account: str, key: str) -> int | str:
        """Lists containers with an account SAS signed by ``key``: 200 once Azurite knows it."""
        template = sas.SasTemplate(
            "account", (("sv", "2021-08-06"), ("ss", "b"), ("srt", "s"), ("sp", "l"))
        )
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        token = sas.mint(template, account, key, expires)
        url = f"{self._endpoint}/{account}?comp=list&{token}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - configured
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError as exc:
            return type(exc).__name__
