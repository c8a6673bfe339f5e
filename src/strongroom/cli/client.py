"""What the object commands (``secret``, ``key``, ...) share: like az, they are clients of a
running server through the Azure SDK, so they work against a real Azure Key Vault too.

Where: ``--vault-url``, or ``--vault-name`` on the DNS suffix of ``STRONGROOM_VAULT_DNS_SUFFIX``,
else of the profile ``strongroom principal create --save-profile`` wrote (``STRONGROOM_PROFILE``
overrides its path), else ``vault.localhost:8443``. Who: ``AZURE_TENANT_ID``/``AZURE_CLIENT_ID``/
``AZURE_CLIENT_SECRET`` (with ``AZURE_AUTHORITY_HOST``), else the profile. The SDK's errors
print as ``(Code) message``; a server that cannot be reached is named, with how to point
elsewhere.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import typer

from strongroom.cli.completion import complete_vault_name
from strongroom.cli.output import errors, fail
from strongroom.cli.profile import Profile, profile_path
from strongroom.config import DEFAULT_PORT, DEFAULT_VAULT_SUFFIX

if TYPE_CHECKING:  # the SDK is imported when a command runs: `serve` starts without it
    from azure.core.credentials import TokenCredential

SUFFIX_ENV = "STRONGROOM_VAULT_DNS_SUFFIX"

VaultName = typer.Option(
    None, "--vault-name", help="Vault name; its URL is https://NAME.<DNS suffix of the profile>.",
    autocompletion=complete_vault_name,
)  # fmt: skip
VaultUrl = typer.Option(
    None, "--vault-url", help="The vault's URL instead of --vault-name, e.g. "
    f"https://myvault.{DEFAULT_VAULT_SUFFIX}:{DEFAULT_PORT}.",
)  # fmt: skip

BackupFile = typer.Option(
    None, "--file", "-f", help="Where to write (default: {vault}-{name}-{unixtime}.blob)."
)
Force = typer.Option(False, "--force", help="Overwrite an existing --file.")

# What a failed connection's innermost error says, and what to tell the user instead.
_REASONS = {
    "CERTIFICATE_VERIFY_FAILED": "its TLS certificate is not trusted",
    "Connection refused": "connection refused",
    "Name or service not known": "no such host",
    "nodename nor servname": "no such host",
    "timed out": "timed out",
}


@dataclass
class Vault:
    """A vault to talk to: its URL (and where that came from), the credential, and the options
    every SDK client of it takes."""

    url: str
    origin: str
    credential: TokenCredential
    authority_origin: str
    options: dict[str, Any]
    tried: list[str]  # every URL requested, in order (the options' raw_request_hook)

    @property
    def name(self) -> str:
        return (urlsplit(self.url).hostname or "").split(".")[0]

    def translate(self, exc: Exception) -> tuple[str, str] | None:
        from azure.core.exceptions import AzureError, HttpResponseError, ServiceRequestError

        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, ServiceRequestError):
            cause = cause.__cause__
        if cause is not None:
            return "CannotConnect", self.unreachable(cause)
        if isinstance(exc, HttpResponseError):
            error = getattr(exc, "error", None)
            code = getattr(error, "code", None) or type(exc).__name__
            message = getattr(error, "message", None) or exc.message or str(exc)
            return str(code), str(message).splitlines()[0]
        if isinstance(exc, AzureError):
            return type(exc).__name__, str(exc).splitlines()[0]
        return None

    def unreachable(self, error: BaseException) -> str:
        text = str(error)
        while error.__cause__ is not None or error.__context__ is not None:
            error = error.__cause__ or error.__context__  # type: ignore[assignment]
            text += f" {error}"
        reason = next((r for s, r in _REASONS.items() if s in text), text.splitlines()[0])
        tried = _origin(self.tried[-1]) if self.tried else _origin(self.url)
        path = profile_path()
        if tried != _origin(self.url):
            return (
                f"Cannot connect to the token issuer {tried} ({reason}) for the vault "
                f"{self.url}. The issuer came from {self.authority_origin}. Point elsewhere "
                "with AZURE_AUTHORITY_HOST, or save a profile for the server with `strongroom "
                f"principal create NAME --save-profile --port PORT` (written to {path})."
            )
        if reason == _REASONS["CERTIFICATE_VERIFY_FAILED"]:
            return (
                f"Cannot connect to {tried}: {reason}. Trust the server's CA: "
                '`eval "$(strongroom info --shell)"` sets REQUESTS_CA_BUNDLE, or a profile '
                "from `strongroom principal create NAME --save-profile` names it (caPath)."
            )
        return (
            f"Cannot connect to {tried} ({reason}); the vault URL came from {self.origin}. "
            "Is `strongroom serve` running there? Point elsewhere with --vault-url "
            f"https://NAME.HOST:PORT, with {SUFFIX_ENV}=HOST:PORT "
            f"(e.g. {DEFAULT_VAULT_SUFFIX}:{DEFAULT_PORT}), or save a profile for the server "
            f"with `strongroom principal create NAME --save-profile --port PORT` (written to "
            f"{path}; `strongroom az-setup` reads it too)."
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def connect(vault_name: str | None, vault_url: str | None) -> Vault:
    """The vault that ``--vault-name``/``--vault-url`` name, with a credential for it."""
    from azure.identity import ClientSecretCredential

    if (vault_name is None) == (vault_url is None):
        fail("BadParameter", "Give exactly one of --vault-name and --vault-url.")
    # azure-identity logs a failed token request as a warning; the error says it once, below
    logging.getLogger("azure").addHandler(logging.NullHandler())
    env = os.environ
    path = profile_path()
    profile = Profile.load(path)
    if vault_url is not None:
        url, origin = vault_url.rstrip("/"), "--vault-url"
    else:
        if env.get(SUFFIX_ENV):
            suffix, origin = env[SUFFIX_ENV], f"{SUFFIX_ENV}={env[SUFFIX_ENV]}"
        elif profile is not None:
            suffix, origin = profile.vaultDnsSuffix, f"the profile {path}"
        else:
            suffix = f"{DEFAULT_VAULT_SUFFIX}:{DEFAULT_PORT}"
            origin = f"the default DNS suffix {suffix} (there is no profile at {path})"
        url = f"https://{vault_name}.{suffix.lstrip('.')}"
    tried: list[str] = []
    options: dict[str, Any] = {
        "retry_connect": 1,  # a server that is not there fails within a second, not five
        "raw_request_hook": lambda request: tried.append(request.http_request.url),
    }
    if profile and profile.caPath and "REQUESTS_CA_BUNDLE" not in env:
        options["connection_verify"] = profile.caPath
    credential: TokenCredential
    if env.get("AZURE_CLIENT_ID") and env.get("AZURE_CLIENT_SECRET") and env.get("AZURE_TENANT_ID"):
        authority = env.get("AZURE_AUTHORITY_HOST") or (profile.authority if profile else None)
        if env.get("AZURE_AUTHORITY_HOST"):
            authority_origin = "AZURE_AUTHORITY_HOST"
        else:
            authority_origin = f"the profile {path}" if profile else "azure-identity's default"
        extra: dict[str, Any] = {"disable_instance_discovery": True} if authority else {}
        if authority:
            extra["authority"] = authority
        credential = ClientSecretCredential(
            env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"],
            **extra, **options,
        )  # fmt: skip
    elif profile is not None:
        authority_origin = f"the profile {path}"
        credential = ClientSecretCredential(
            profile.tenantId, profile.clientId, profile.clientSecret,
            authority=profile.authority, disable_instance_discovery=True, **options,
        )  # fmt: skip
    else:
        fail(
            "NoCredentials",
            "No credentials: set AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and "
            "AZURE_AUTHORITY_HOST, or run `strongroom principal create NAME --save-profile`.",
        )
    return Vault(url, origin, credential, authority_origin, options, tried)


@contextmanager
def connected(vault_name: str | None, vault_url: str | None) -> Iterator[Vault]:
    """The vault, with the SDK's errors (raised inside) printed as ``(Code) message``."""
    vault = connect(vault_name, vault_url)
    with errors(vault.translate):
        yield vault


def backup_target(vault: Vault, name: str, file: Path | None, force: bool) -> Path:
    """Where ``backup`` writes: ``--file``, else a new name; an existing file only with --force."""
    target = file or Path(f"{vault.name}-{name}-{int(time.time())}.blob")
    if target.exists() and not force:
        fail("FileExists", f"{target} already exists; pass --force to overwrite it.")
    return target
