"""Shell completion (``strongroom --install-completion``): vault names from the local
installation, and object names (``--name``) listed from the vault through the SDK.

Each completer answers within a few seconds whatever happens, and answers nothing when it
cannot: no installation, no credentials, no server, an error. It never creates anything: a
data directory without a database completes no vault names.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import typer

TIMEOUT = 3.0  # seconds a completion may take, in all


def quickly(find: Callable[[], Iterable[str]], timeout: float = TIMEOUT) -> list[str]:
    """What ``find`` returns, or nothing when it fails or takes longer than ``timeout``."""
    found: list[str] = []

    def run() -> None:
        with contextlib.suppress(BaseException):  # a completion fails silently
            found.extend(find())

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    return [] if worker.is_alive() else found


def _matching(names: Iterable[str], incomplete: str) -> list[str]:
    return sorted(n for n in names if n.lower().startswith(incomplete.lower()))


def local_vault_names(data_dir: Path | None) -> list[str]:
    """The vaults of the installation in ``data_dir`` (default: per-user), if there is one."""
    from strongroom.cli.shared import settings_for
    from strongroom.config import DEFAULT_PORT
    from strongroom.services.installation import open_installation
    from strongroom.services.vaults import VaultService

    settings = settings_for(data_dir, DEFAULT_PORT)
    if settings.database_url is None and not settings.database.exists():
        return []
    inst = open_installation(settings)
    try:
        return [v.name for v in VaultService(inst).list()]
    finally:
        inst.close()


def complete_vault_name(ctx: typer.Context, incomplete: str) -> list[str]:
    """``--vault-name`` (or a vault NAME argument): the local installation's vaults."""
    data_dir = ctx.params.get("data_dir")
    return _matching(quickly(lambda: local_vault_names(data_dir)), incomplete)


def _sdk_names(kind: str, vault_name: str | None, vault_url: str | None) -> list[str]:
    from strongroom.cli.client import connect

    vault = connect(vault_name, vault_url)
    options: dict[str, Any] = dict(
        vault.options, retry_total=0, connection_timeout=2, read_timeout=2
    )
    if kind == "secret":
        from azure.keyvault.secrets import SecretClient

        items: Iterable[Any] = SecretClient(
            vault.url, vault.credential, **options
        ).list_properties_of_secrets()
    elif kind == "key":
        from azure.keyvault.keys import KeyClient

        items = KeyClient(vault.url, vault.credential, **options).list_properties_of_keys()
    else:
        from azure.keyvault.certificates import CertificateClient

        client = CertificateClient(vault.url, vault.credential, **options)
        items = client.list_properties_of_certificates()
    return [str(p.name) for p in items if p.name]


def object_names(kind: str) -> Callable[[typer.Context, str], list[str]]:
    """A completer of ``--name`` for objects of ``kind`` (secret, key, certificate) in the vault
    that ``--vault-name``/``--vault-url``, given before it, name."""

    def complete(ctx: typer.Context, incomplete: str) -> list[str]:
        name, url = ctx.params.get("vault_name"), ctx.params.get("vault_url")
        if (name is None) == (url is None):
            return []
        return _matching(quickly(lambda: _sdk_names(kind, name, url)), incomplete)

    return complete
