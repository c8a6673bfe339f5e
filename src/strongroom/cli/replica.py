"""``strongroom replica follow|status|promote``: a vault of this installation as a read-only
replica of a vault on another installation (``services.replication``). Administration of the
local installation: the replica's server does the following."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from strongroom.cli.output import Output, OutputOption, emit
from strongroom.cli.shared import DataDir, local
from strongroom.config import DEFAULT_PORT
from strongroom.services.installation import Installation

if TYPE_CHECKING:
    from strongroom.services.replication import Replication

app = typer.Typer(
    help="Replicas: read-only copies of a vault of another installation.", no_args_is_help=True
)
VaultName = typer.Option(
    ..., "--vault-name", "-n", help="The replica vault (of this installation)."
)


@contextmanager
def _replication(inst: Installation) -> Iterator[Replication]:
    from strongroom.services.container import Services

    services = Services(inst)
    try:
        yield services.replication
    finally:
        asyncio.run(services.close())


@app.command()
def follow(
    vault_name: str = VaultName,
    source: str = typer.Option(
        ..., "--source", help="The source vault's URL (https://V.vault.host:port)."
    ),
    client_id: str = typer.Option(
        ...,
        "--client-id",
        help="A principal of the source's installation with 'replicate' "
        "on every kind of the source vault.",
    ),
    client_secret: str = typer.Option(
        ...,
        "--client-secret",
        envvar="STRONGROOM_REPLICA_CLIENT_SECRET",
        help="Its client secret (sealed under the replica vault's key).",
    ),
    source_ca: Path | None = typer.Option(
        None,
        "--source-ca",
        help="The source server's CA certificate (PEM), if it is not trusted otherwise.",
    ),
    create: bool = typer.Option(
        False, "--create", help="Create the replica vault (in --domain) if it is missing."
    ),
    domain: str | None = typer.Option(
        None, "--domain", help="With --create: the security domain, which must be the source's."
    ),
    data_dir: Path | None = DataDir,
    output: Output = OutputOption,
) -> None:
    """Make a vault a read-only replica of a source vault; its server follows the source."""
    from strongroom.services.domains import DomainService
    from strongroom.services.vaults import VaultService

    ca = source_ca.read_text() if source_ca is not None else None
    with local(data_dir, DEFAULT_PORT, "ReplicaFollow", vault_name) as (inst, _):
        vaults = VaultService(inst)
        if create and vault_name.lower() not in {v.name.lower() for v in vaults.list()}:
            domain_id = DomainService(inst).resolve(domain).id if domain else None
            vaults.create(vault_name, domain_id=domain_id)
        with _replication(inst) as replication:
            vault = replication.follow(vault_name, source, client_id, client_secret, ca)
        emit({"vault": vault.name, "replicaOf": vault.replica_of, "domain": vault.domain_id},
             output)  # fmt: skip


@app.command()
def status(vault_name: str = VaultName, data_dir: Path | None = DataDir,
           output: Output = OutputOption) -> None:  # fmt: skip
    """The replica's position, its source's, the lag and the last error."""
    from strongroom.services.vaults import VaultService

    with local(data_dir, DEFAULT_PORT) as (inst, _), _replication(inst) as replication:
        vault = VaultService(inst).get_record(vault_name)
        found = replication.status(vault)
        emit({"vault": vault.name, **found.to_json(inst.clock.now())}, output)


@app.command()
def promote(vault_name: str = VaultName, data_dir: Path | None = DataDir,
            output: Output = OutputOption) -> None:  # fmt: skip
    """Stop following: the replica becomes an ordinary, writable, replicable vault."""
    with (
        local(data_dir, DEFAULT_PORT, "ReplicaPromote", vault_name) as (inst, _),
        _replication(inst) as replication,
    ):
        vault = replication.promote(vault_name)
        emit({"vault": vault.name, "replicaOf": vault.replica_of, "replicable": vault.replicable},
             output)  # fmt: skip
