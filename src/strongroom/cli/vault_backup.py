"""``strongroom vault backup|restore`` and ``strongroom backup verify``: whole-vault backups by
the operator, on the local installation, into a directory or a blob container.

The same folders as the server's ``POST /backup`` writes: the operator's restore differs only
in also restoring the vault's access policies and open/closed setting (``--no-access`` leaves
them), and in creating the vault from the backup's settings when it does not exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from strongroom.cli.completion import complete_vault_name
from strongroom.cli.output import Output, OutputOption, emit, fail, note, progress
from strongroom.cli.shared import DataDir, local
from strongroom.config import DEFAULT_PORT
from strongroom.errors import BadParameter, NotFound
from strongroom.models import Kind
from strongroom.services import backup
from strongroom.services.backup_locations import DirectoryLocation, Location, check_folder
from strongroom.services.container import Services
from strongroom.services.installation import Installation
from strongroom.services.vault_backup import (
    CONFLICT_POLICIES,
    CREATE,
    DELETED,
    EXISTS,
    IDENTICAL,
    MANIFEST,
    REFUSED,
    Manifest,
    PlanItem,
    VerifyReport,
)
from strongroom.services.vaults import VaultService

VaultName = typer.Option(
    ..., "--vault-name", "-n", help="The vault.", autocompletion=complete_vault_name
)
Dir = typer.Option(None, "--dir", help="A local directory holding backup folders.")
ContainerUrl = typer.Option(
    None, "--container-url", help="A blob container holding backup folders (with --sas-token)."
)
SasToken = typer.Option(None, "--sas-token", help="A SAS token for --container-url.")
_KINDS = {k.value: k for k in (Kind.SECRET, Kind.KEY, Kind.CERTIFICATE, Kind.STORAGE)}


def _location(
    services: Services, directory: Path | None, url: str | None, token: str | None
) -> Location:
    if (directory is None) == (url is None):
        raise BadParameter("Give exactly one of --dir and --container-url.")
    if directory is not None:
        return DirectoryLocation(directory)
    if not token:
        raise BadParameter("--container-url needs --sas-token.")
    assert url is not None
    return services.blob_location(url, token, False)


@contextmanager
def _services(inst: Installation) -> Iterator[Services]:
    services = Services(inst)
    try:
        yield services
    finally:
        asyncio.run(services.close())


def register(vault_app: typer.Typer, backup_app: typer.Typer) -> None:
    vault_app.command("backup")(vault_backup)
    vault_app.command("restore")(vault_restore)
    backup_app.command("verify")(backup_verify)


def vault_backup(
    vault_name: str = VaultName,
    directory: Path | None = Dir,
    container_url: str | None = ContainerUrl,
    sas_token: str | None = SasToken,
    include_deleted: bool = typer.Option(
        False, "--include-deleted", help="Soft-deleted objects too (restored soft-deleted)."
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        help="An earlier backup folder of the same place: write only what "
        "changed after it (an incremental backup; restoring it needs that folder too).",
    ),
    folder: str | None = typer.Option(None, "--folder", help="The new folder's name."),
    data_dir: Path | None = DataDir,
    output: Output = OutputOption,
) -> None:
    """Back up a whole vault into a new folder: a blob per object and a sealed manifest."""
    with (
        local(data_dir, DEFAULT_PORT, "VaultBackup", vault_name) as (inst, _),
        _services(inst) as services,
    ):
        vault = VaultService(inst).get_record(vault_name)
        location = _location(services, directory, container_url, sas_token)
        with progress(f"backing up {vault_name}") as update:
            result = services.vault_backups.backup(
                vault, location, folder=folder, include_deleted=include_deleted, since=since,
                progress=update,
            )  # fmt: skip
        emit({"folder": result.folder, "location": result.url, "objects": result.objects,
              "blobsWritten": result.written, "bytes": result.bytes, "base": result.base},
             output)  # fmt: skip


def _plan_json(item: PlanItem) -> dict[str, Any]:
    return {"kind": item.kind.value, "name": item.name, "action": item.action,
            "detail": item.detail}  # fmt: skip


def vault_restore(
    vault_name: str = VaultName,
    directory: Path | None = Dir,
    container_url: str | None = ContainerUrl,
    sas_token: str | None = SasToken,
    folder: str | None = typer.Option(None, "--folder", help="The backup folder to restore."),
    file: Path | None = typer.Option(
        None, "--file", help="One object's blob instead of a folder (with --dry-run)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Report what a restore would do with each object; write nothing."
    ),
    conflict: str = typer.Option(
        "fail",
        "--conflict",
        help="What to do where the vault already holds an object with "
        "other content: fail (write nothing) or skip (leave those, restore the rest).",
    ),
    only: str | None = typer.Option(
        None, "--only", help="One object, as KIND/NAME (secret/db, key/k1, certificate/c1)."
    ),
    create: bool = typer.Option(
        False, "--create", help="Create the vault, with the backup's settings, if it is missing."
    ),
    no_access: bool = typer.Option(
        False, "--no-access", help="Leave the vault's access policies and open setting as they are."
    ),
    data_dir: Path | None = DataDir,
    output: Output = OutputOption,
) -> None:
    """Restore a backup folder into a vault (or report what it would do, --dry-run)."""
    if conflict not in CONFLICT_POLICIES:
        fail("BadParameter", f"--conflict must be one of {', '.join(CONFLICT_POLICIES)}.")
    wanted = _only(only)
    audit = None if dry_run else "VaultRestore"
    with local(data_dir, DEFAULT_PORT, audit, vault_name) as (inst, _), _services(inst) as services:
        if file is not None:
            if not dry_run:
                fail(
                    "BadParameter",
                    "--file is for --dry-run; restore one blob with `strongroom secret "
                    "restore` (or az's key and certificate restore) against the server.",
                )
            vault = VaultService(inst).get_record(vault_name)
            emit(_blob_plan(inst, services, vault, file.read_bytes()), output)
            return
        if folder is None:
            fail("BadParameter", "Name the backup folder with --folder.")
        check_folder(folder)  # before the progress bar, which would frame the error
        location = _location(services, directory, container_url, sas_token)
        backups = services.vault_backups
        try:
            vault = VaultService(inst).get_record(vault_name)
        except NotFound:
            if not create or dry_run:
                raise
            manifest = backups.read_manifest(location, folder)
            vault = _create_vault(inst, vault_name, manifest)
        if dry_run:
            plan = backups.plan(vault, location, folder, wanted)
            emit([_plan_json(p) for p in plan], output)
            counts = {a: sum(p.action == a for p in plan)
                      for a in (CREATE, IDENTICAL, EXISTS, DELETED, REFUSED)}  # fmt: skip
            note(", ".join(f"{n} {a}" for a, n in counts.items() if n) or "nothing to restore")
            return
        with progress(f"restoring {folder}") as update:
            report = asyncio.run(
                backups.restore(
                    vault,
                    location,
                    folder,
                    conflict=conflict,
                    only=wanted,
                    access=not no_access,
                    progress=update,
                )
            )
        emit({"folder": folder, "vault": vault_name, "restored": report.created,
              "alreadyThere": report.identical, "skipped": report.skipped,
              "settings": report.settings}, output)  # fmt: skip


def _only(only: str | None) -> tuple[Kind, str] | None:
    if only is None:
        return None
    kind, _, name = only.partition("/")
    if kind not in _KINDS or not name:
        fail("BadParameter", f"--only takes KIND/NAME, KIND one of {', '.join(_KINDS)}.")
    return _KINDS[kind], name


def _create_vault(inst: Installation, name: str, manifest: Manifest) -> Any:
    settings = manifest.vault
    VaultService(inst).create(
        name,
        retention_days=int(settings.get("retentionDays", 90)),
        purge_protection=bool(settings.get("purgeProtection", False)),
        domain_id=manifest.domain,
        open_access=False,  # the restore sets it (and the access policies) from the backup
    )
    return VaultService(inst).get_record(name)


def _blob_plan(inst: Installation, services: Services, vault: Any, blob: bytes) -> dict[str, Any]:
    """What restoring one blob into ``vault`` would do."""
    header = backup.blob_header(blob)
    kind, name = Kind(str(header["kind"])), str(header["name"])
    try:
        backup.check_restorable(inst, vault, blob)
    except Exception as exc:
        return {"kind": kind.value, "name": name, "action": REFUSED,
                "detail": getattr(exc, "message", str(exc))}  # fmt: skip
    obj = inst.store.reads.get_object(vault.id, kind.value, name.lower())
    if obj is None:
        return {"kind": kind.value, "name": name, "action": CREATE, "detail": ""}
    if obj.deleted_date is not None:
        return {"kind": kind.value, "name": name, "action": DELETED,
                "detail": f"soft-deleted, to be purged at {obj.scheduled_purge_date}"}  # fmt: skip
    return {"kind": kind.value, "name": name, "action": EXISTS,
            "detail": "a restore of a single blob refuses an existing name"}  # fmt: skip


def _report_json(report: VerifyReport) -> dict[str, Any]:
    return {
        "folder": report.folder, "verified": report.ok, "objects": report.objects,
        "blobsChecked": report.checked, "baseFolders": report.chain,
        "problems": [{"path": p.path, "code": p.code, "message": p.message, "fatal": p.fatal}
                     for p in report.problems],
    }  # fmt: skip


def backup_verify(
    path: Path | None = typer.Argument(
        None, help="A blob file, or a backup folder (a directory holding manifest.srbk)."
    ),
    container_url: str | None = ContainerUrl,
    sas_token: str | None = SasToken,
    folder: str | None = typer.Option(None, "--folder", help="The folder, with --container-url."),
    data_dir: Path | None = DataDir,
    output: Output = OutputOption,
) -> None:
    """Check a blob, or a whole backup folder (every seal, the manifest, completeness and the
    chain of an incremental backup), with the local domain keys; restores nothing."""
    from strongroom.services.domains import DomainService

    with local(data_dir, DEFAULT_PORT) as (inst, _), _services(inst) as services:
        if path is not None and path.is_file():
            emit(DomainService(inst).verify(path.read_bytes()), output)
            return
        if path is not None:
            location: Location = DirectoryLocation(path.parent)
            name = path.name
            if not (path / MANIFEST).exists() and not path.is_dir():
                fail("BackupFolderNotFound", f"{path} is neither a blob file nor a folder.")
        elif folder is not None:
            location, name = _location(services, None, container_url, sas_token), folder
        else:
            fail("BadParameter", "Give a file or folder path, or --container-url with --folder.")
        with progress(f"verifying {name}") as update:
            report = services.vault_backups.verify(location, name, update)
        emit(_report_json(report), output)
        if not report.ok:
            first = next(p for p in report.problems if p.fatal)
            fail(first.code, f"{first.path}: {first.message}")
