"""``strongroom vault role assignment|definition``: the operator's hand on a vault's role
assignments (``services.rbac``), like ``az keyvault role``, on the local installation. The
operator may always manage them, in either permission model: that is how the first
assignment of an RBAC vault is made."""

from __future__ import annotations

from pathlib import Path

import typer

from strongroom.cli.output import Output, OutputOption, emit
from strongroom.cli.shared import DataDir, local
from strongroom.config import DEFAULT_PORT

app = typer.Typer(help="Role assignments and definitions of a vault (RBAC).", no_args_is_help=True)
assignment_app = typer.Typer(help="Role assignments.", no_args_is_help=True)
definition_app = typer.Typer(help="Role definitions.", no_args_is_help=True)
app.add_typer(assignment_app, name="assignment")
app.add_typer(definition_app, name="definition")

Vault = typer.Option(..., "--vault-name", "-n", help="The vault.")
Scope = typer.Option("/", "--scope", help="/, /keys, /keys/NAME, /secrets, /secrets/NAME, ...")


@assignment_app.command("create")
def assignment_create(
    vault: str = Vault,
    role: str = typer.Option(..., "--role", help='Role name ("Key Vault Secrets User") or id.'),
    assignee: str = typer.Option(..., "--assignee", help="Principal name or client id."),
    scope: str = Scope,
    name: str | None = typer.Option(None, "--name", help="The assignment's name (a GUID)."),
    data_dir: Path | None = DataDir,
    output: Output = OutputOption,
) -> None:
    import uuid

    from strongroom.api.routes.access_control import assignment_json
    from strongroom.services.identity import IdentityService
    from strongroom.services.rbac import RbacService, normalise_scope
    from strongroom.services.vaults import VaultService

    with local(data_dir, DEFAULT_PORT, "RoleAssignmentCreate", vault) as (inst, _):
        record = VaultService(inst).get_record(vault)
        rbac = RbacService(inst)
        principal = IdentityService(inst).find_principal(assignee)
        by_name = {d.role_name.lower(): d for d in rbac.list_definitions(record)}
        definition = by_name.get(role.lower())
        role_id = definition.id if definition is not None else role
        created = rbac.create_assignment(
            record, normalise_scope(scope), name or str(uuid.uuid4()), role_id,
            principal.client_id,
        )  # fmt: skip
        emit(assignment_json(created), output)


@assignment_app.command("list")
def assignment_list(
    vault: str = Vault,
    scope: str = Scope,
    assignee: str | None = typer.Option(None, "--assignee", help="Only this principal's."),
    data_dir: Path | None = DataDir,
    output: Output = OutputOption,
) -> None:
    from strongroom.api.routes.access_control import assignment_json
    from strongroom.services.identity import IdentityService
    from strongroom.services.rbac import RbacService, normalise_scope
    from strongroom.services.vaults import VaultService

    with local(data_dir, DEFAULT_PORT) as (inst, _):
        record = VaultService(inst).get_record(vault)
        principal = IdentityService(inst).find_principal(assignee).client_id if assignee else None
        found = RbacService(inst).list_assignments(
            record, normalise_scope(scope), principal_id=principal
        )
        emit([assignment_json(a) for a in found], output)


@assignment_app.command("delete")
def assignment_delete(
    vault: str = Vault,
    name: str = typer.Option(..., "--name", help="The assignment's name."),
    scope: str = Scope,
    data_dir: Path | None = DataDir,
    output: Output = OutputOption,
) -> None:
    from strongroom.api.routes.access_control import assignment_json
    from strongroom.services.rbac import RbacService, normalise_scope
    from strongroom.services.vaults import VaultService

    with local(data_dir, DEFAULT_PORT, "RoleAssignmentDelete", vault) as (inst, _):
        record = VaultService(inst).get_record(vault)
        deleted = RbacService(inst).delete_assignment(record, normalise_scope(scope), name)
        emit(assignment_json(deleted), output)


@definition_app.command("list")
def definition_list(
    vault: str = Vault,
    data_dir: Path | None = DataDir,
    output: Output = OutputOption,
) -> None:
    from strongroom.api.routes.access_control import definition_json
    from strongroom.services.rbac import RbacService
    from strongroom.services.vaults import VaultService

    with local(data_dir, DEFAULT_PORT) as (inst, _):
        record = VaultService(inst).get_record(vault)
        emit([definition_json(d) for d in RbacService(inst).list_definitions(record)], output)
