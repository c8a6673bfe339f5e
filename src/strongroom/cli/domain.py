"""``strongroom domain ...`` and ``strongroom backup inspect|verify``: local administration."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from strongroom.cli.output import Output, OutputOption, emit, fail
from strongroom.cli.shared import DataDir, local
from strongroom.config import DEFAULT_PORT
from strongroom.services.domains import Domain, DomainService

app = typer.Typer(help="Security domains: the trust boundary of backups.", no_args_is_help=True)
backup_app = typer.Typer(
    help="Look at backup blobs and folders without restoring them.", no_args_is_help=True
)


def _json(d: Domain) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "default": d.default,
        "backupKeyVersions": d.key_versions,
        "currentBackupKeyVersion": d.key_versions[-1] if d.key_versions else None,
        "retiredBackupKeyVersions": d.retired,
    }


@app.command("list")
def list_(data_dir: Path | None = DataDir, output: Output = OutputOption) -> None:
    with local(data_dir, DEFAULT_PORT) as (inst, _):
        emit([_json(d) for d in DomainService(inst).list_domains()], output)


@app.command()
def show(domain: str, data_dir: Path | None = DataDir, output: Output = OutputOption) -> None:
    with local(data_dir, DEFAULT_PORT) as (inst, _):
        emit(_json(DomainService(inst).resolve(domain)), output)


@app.command()
def create(name: str, data_dir: Path | None = DataDir, output: Output = OutputOption) -> None:
    """Make a new security domain with its first backup-key version."""
    with local(data_dir, DEFAULT_PORT, "SecurityDomainCreate", name) as (inst, _):
        emit(_json(DomainService(inst).create_domain(name)), output)


@app.command()
def export(
    domain: str,
    certificate: list[Path] = typer.Option(..., "--certificate", help="Custodian PEM cert."),
    quorum: int = typer.Option(..., "--quorum", help="How many custodians must act together."),
    out: Path = typer.Option(..., "--out", help="Where to write the domain file."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out."),
    data_dir: Path | None = DataDir,
    output: Output = OutputOption,
) -> None:
    """Export the domain's keys so that any QUORUM of the custodians can import them."""
    if out.exists() and not force:
        fail("FileExists", f"{out} already exists; pass --force to overwrite it.")
    pems = [c.read_bytes() for c in certificate]
    with local(data_dir, DEFAULT_PORT, "SecurityDomainExport", domain) as (inst, _):
        content = DomainService(inst).export_domain(domain, pems, quorum)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(content, f, indent=2)
    emit({"file": str(out.resolve()), "domain": content["domain"], "quorum": quorum,
          "custodians": len(pems)}, output)  # fmt: skip


@app.command("import")
def import_(
    file: Path,
    key: list[Path] = typer.Option(..., "--key", help="A custodian's PEM private key."),
    data_dir: Path | None = DataDir,
    output: Output = OutputOption,
) -> None:
    """Import a domain file with the private keys of a quorum of its custodians."""
    try:
        content = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        fail("BadParameter", f"{file} is not a readable domain file: {exc}")
    with local(data_dir, DEFAULT_PORT, "SecurityDomainImport", str(file)) as (inst, _):
        domain = DomainService(inst).import_domain(content, [k.read_bytes() for k in key])
        emit(_json(domain), output)


@app.command("rotate-backup-key")
def rotate_backup_key(
    domain: str, data_dir: Path | None = DataDir, output: Output = OutputOption
) -> None:
    """A new backup-key version for new backups; older blobs still restore."""
    with local(data_dir, DEFAULT_PORT, "SecurityDomainRotateBackupKey", domain) as (inst, _):
        emit(_json(DomainService(inst).rotate_backup_key(domain)), output)


@app.command("retire-backup-key")
def retire_backup_key(
    domain: str, version: str, data_dir: Path | None = DataDir, output: Output = OutputOption
) -> None:
    """Remove a backup-key version: blobs sealed under it are refused from then on."""
    with local(data_dir, DEFAULT_PORT, "SecurityDomainRetireBackupKey", domain) as (inst, _):
        emit(_json(DomainService(inst).retire_backup_key(domain, version)), output)


@backup_app.command()
def inspect(file: Path, data_dir: Path | None = DataDir, output: Output = OutputOption) -> None:
    """Print a blob's header (not yet authenticated) and whether this installation can open it."""
    with local(data_dir, DEFAULT_PORT) as (inst, _):
        emit(DomainService(inst).inspect(file.read_bytes()), output)
