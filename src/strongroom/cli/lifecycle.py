"""The commands every object kind has, made once: ``delete``, ``recover``, ``purge``,
``backup`` and ``restore`` of a secret, key, certificate or storage account, with az's names
and flags. Each kind says how its client does each of them (``Lifecycle``); ``register`` adds
the commands to the kind's group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from strongroom.cli.output import Output, OutputOption, emit, fail

Handle = Any  # what a kind's ``session`` yields: an SDK client, or a REST session


@dataclass(frozen=True)
class Lifecycle:
    one: str  # "secret", "storage account": how help texts name one of them
    group: str  # the command group: "secret", "storage"
    session: Callable[[str | None, str | None], AbstractContextManager[Handle]]
    vault_of: Callable[[Handle], Vault]
    delete: Callable[[Handle, str], Any]  # each returns what the command prints
    recover: Callable[[Handle, str], Any]
    purge: Callable[[Handle, str], None]
    backup: Callable[[Handle, str], bytes]
    restore: Callable[[Handle, bytes], Any]
    list_all: Callable[[Handle], list[Any]]
    list_deleted: Callable[[Handle], list[Any]]
    list_versions: Callable[[Handle, str], list[Any]] | None = None  # None: no versions
    what: str = "all versions"  # what goes with one: "its SAS definitions"
    delete_names: tuple[str, ...] = ("delete",)  # az's name first


def sdk_session(
    make: Callable[[Vault], Any],
) -> Callable[[str | None, str | None], AbstractContextManager[tuple[Vault, Any]]]:
    """A kind whose commands go through an SDK client: its handle is (vault, client)."""

    @contextmanager
    def session(vault_name: str | None, vault_url: str | None) -> Iterator[tuple[Vault, Any]]:
        with connected(vault_name, vault_url) as vault:
            yield vault, make(vault)

    return session


def register(app: typer.Typer, life: Lifecycle, name_option: Any) -> None:
    """Adds list, list-versions, list-deleted, delete, recover, purge, backup and restore to
    ``app``."""
    restore_file = typer.Option(
        ..., "--file", "-f", help=f"A blob written by `{life.group} backup`."
    )

    def list_(
        vault_name: str | None = VaultName, vault_url: str | None = VaultUrl,
        output: Output = OutputOption,
    ) -> None:  # fmt: skip
        with life.session(vault_name, vault_url) as handle:
            emit(life.list_all(handle), output)

    def list_deleted(
        vault_name: str | None = VaultName, vault_url: str | None = VaultUrl,
        output: Output = OutputOption,
    ) -> None:  # fmt: skip
        with life.session(vault_name, vault_url) as handle:
            emit(life.list_deleted(handle), output)

    def list_versions(
        vault_name: str | None = VaultName, vault_url: str | None = VaultUrl,
        name: str = name_option, output: Output = OutputOption,
    ) -> None:  # fmt: skip
        assert life.list_versions is not None
        with life.session(vault_name, vault_url) as handle:
            emit(life.list_versions(handle, name), output)

    def delete(
        vault_name: str | None = VaultName, vault_url: str | None = VaultUrl,
        name: str = name_option, output: Output = OutputOption,
    ) -> None:  # fmt: skip
        with life.session(vault_name, vault_url) as handle:
            emit(life.delete(handle, name), output)

    def recover(
        vault_name: str | None = VaultName, vault_url: str | None = VaultUrl,
        name: str = name_option, output: Output = OutputOption,
    ) -> None:  # fmt: skip
        with life.session(vault_name, vault_url) as handle:
            emit(life.recover(handle, name), output)

    def purge(
        vault_name: str | None = VaultName, vault_url: str | None = VaultUrl,
        name: str = name_option,
    ) -> None:  # fmt: skip
        with life.session(vault_name, vault_url) as handle:
            life.purge(handle, name)

    def backup(
        vault_name: str | None = VaultName, vault_url: str | None = VaultUrl,
        name: str = name_option, file: Path | None = BackupFile, force: bool = Force,
        output: Output = OutputOption,
    ) -> None:  # fmt: skip
        with life.session(vault_name, vault_url) as handle:
            target = backup_target(life.vault_of(handle), name, file, force)
            blob = life.backup(handle, name)
        target.write_bytes(blob)
        emit({"file": str(target.resolve()), "bytes": len(blob)}, output)

    def restore(
        vault_name: str | None = VaultName, vault_url: str | None = VaultUrl,
        file: Path = restore_file, output: Output = OutputOption,
    ) -> None:  # fmt: skip
        if not file.exists():
            fail("FileNotFound", f"{file} does not exist.")
        with life.session(vault_name, vault_url) as handle:
            emit(life.restore(handle, file.read_bytes()), output)

    delete.__doc__ = f"Soft-delete a {life.one} ({life.what})."
    recover.__doc__ = f"Recover a soft-deleted {life.one} ({life.what})."
    purge.__doc__ = f"Permanently remove a soft-deleted {life.one}."
    backup.__doc__ = f"Back up a {life.one} ({life.what}) into a sealed blob file."
    restore.__doc__ = f"Restore a {life.one} ({life.what}) from a backup blob."
    list_.__doc__ = f"The {life.one}s of a vault (without values)."
    list_deleted.__doc__ = f"The soft-deleted {life.one}s of a vault."
    list_versions.__doc__ = f"Every version of a {life.one}."
    app.command("list")(list_)
    if life.list_versions is not None:
        app.command("list-versions")(list_versions)
    app.command("list-deleted")(list_deleted)
    for command in life.delete_names:
        app.command(command)(delete)
    app.command("recover")(recover)
    app.command("purge")(purge)
    app.command("backup")(backup)
    app.command("restore")(restore)
