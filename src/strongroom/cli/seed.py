"""``strongroom seed FILE`` and ``strongroom vault export --plaintext-for-tests``: seed files on
the local installation (``services.seed`` describes them).

``seed`` is administration, like ``vault create``: it writes to the installation in
``--data-dir`` directly and prints what it made and kept, with any generated client secret.
The export prints every secret and private key of a vault, so it runs only on an installation
marked ephemeral (``config.is_ephemeral``) and only when asked for by its long name.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
import yaml

from strongroom.cli.completion import complete_vault_name
from strongroom.cli.output import Output, OutputOption, emit, errors, fail, progress
from strongroom.cli.shared import DataDir, local, settings_for
from strongroom.config import DEFAULT_PORT, EPHEMERAL_MARKER, is_ephemeral
from strongroom.services.container import Services
from strongroom.services.installation import Installation
from strongroom.services.seed import Seed, SeedReport, apply_seed, export_vault, load_seed

_REFUSED = "ExportRefused"


def register(app: typer.Typer, vault_app: typer.Typer) -> None:
    app.command("seed")(seed)
    vault_app.command("export")(vault_export)


async def _apply(
    inst: Installation, loaded: Seed, update: Callable[[str, int, int], None]
) -> SeedReport:
    services = Services(inst)
    try:
        return await apply_seed(services, loaded, update)
    finally:
        await services.close()


def seed(
    file: Path = typer.Argument(..., help="The seed file: YAML, or JSON if it ends in .json."),
    data_dir: Path | None = DataDir,
    output: Output = OutputOption,
) -> None:
    """Create what a seed file names, keeping what is already there.

    Vaults, principals, access policies, secrets, keys and certificates: prints what was made
    and kept, and each principal's client id (and its secret, when one was generated)."""
    with errors():
        loaded = load_seed(file)  # a bad file fails before the installation is opened
    with local(data_dir, DEFAULT_PORT, "SeedApply", str(file)) as (inst, _):
        with progress(f"seeding from {file.name}") as update:
            report = asyncio.run(_apply(inst, loaded, update))
        emit({"tenantId": inst.tenant_id, **report.to_json()}, output)


def _export(inst: Installation, vault: str) -> dict[str, Any]:
    services = Services(inst)
    try:
        return export_vault(services, vault)
    finally:
        asyncio.run(services.close())


def vault_export(
    vault_name: str = typer.Option(
        ..., "--vault-name", "-n", help="The vault.", autocompletion=complete_vault_name
    ),
    plaintext_for_tests: bool = typer.Option(
        False,
        "--plaintext-for-tests",
        help="Write every secret value and private key in plaintext, as a seed file. Only on "
        f"an ephemeral installation (its data directory holds {EPHEMERAL_MARKER}).",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Write to this file (mode 0600) instead of printing: YAML if it ends in .yaml or "
        ".yml, JSON otherwise.",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out."),
    data_dir: Path | None = DataDir,
) -> None:
    """Export a test installation's vault as a seed file, in plaintext.

    Only on an ephemeral installation; `strongroom seed` recreates the vault in another one.
    There is no other export: back a vault up with `strongroom vault backup`."""
    if not plaintext_for_tests:
        fail(
            _REFUSED,
            "The only export is --plaintext-for-tests, which writes secrets and private keys "
            "in plaintext for throwaway test installations; back a vault up with `strongroom "
            "vault backup`.",
        )
    settings = settings_for(data_dir, DEFAULT_PORT)
    if not is_ephemeral(settings):  # before opening it: an export never creates anything
        fail(
            _REFUSED,
            f"The installation in {settings.data_dir} is not ephemeral: a plaintext export is "
            f"made only where the data directory holds an {EPHEMERAL_MARKER} file, which the "
            "ephemeral test server creates. Back a vault up with `strongroom vault backup`.",
        )
    if out is not None and out.exists() and not force:
        fail("FileExists", f"{out} already exists; pass --force to overwrite it.")
    with local(data_dir, DEFAULT_PORT, "VaultExport", vault_name) as (inst, _):
        document = _export(inst, vault_name)
    if out is None:
        typer.echo(json.dumps(document, indent=2))
        return
    if out.suffix.lower() in (".yaml", ".yml"):
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(document, indent=2) + "\n"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(out, 0o600)  # an existing file keeps its mode through O_TRUNC
    typer.echo(json.dumps({"file": str(out.resolve()), "vault": vault_name}, indent=2))
