"""``strongroom``: serve, info, and administration of the local installation.

Administration commands (``principal``, ``vault``) work on the installation in ``--data-dir``
directly; object commands (``secret``, ``key``, ``certificate``) are clients of a running server
through the Azure SDK.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import typer

from strongroom.cli import (
    certificate,
    db,
    domain,
    key,
    replica,
    secret,
    seed,
    serve,
    storage,
    vault_backup,
    vault_roles,
)
from strongroom.cli.completion import complete_vault_name
from strongroom.cli.output import Output, OutputOption, common_options, emit, fail
from strongroom.cli.profile import Profile, profile_path
from strongroom.cli.shared import DataDir, accept_az_lists, local, settings_for
from strongroom.config import DEFAULT_PORT, Settings
from strongroom.errors import NotFound
from strongroom.models import Principal, Vault
from strongroom.services.installation import Installation

app = typer.Typer(
    help="Strongroom: a self-hosted key vault speaking the Azure Key Vault REST API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
principal_app = typer.Typer(help="Service principals (client credentials).", no_args_is_help=True)
vault_app = typer.Typer(help="Vaults of this installation.", no_args_is_help=True)
app.add_typer(principal_app, name="principal")
app.add_typer(vault_app, name="vault")
app.add_typer(secret.app, name="secret")
app.add_typer(key.app, name="key")
app.add_typer(certificate.app, name="certificate")
app.add_typer(storage.app, name="storage")
app.add_typer(domain.app, name="domain")
app.add_typer(domain.backup_app, name="backup")
app.add_typer(db.app, name="db")
app.add_typer(replica.app, name="replica")
vault_backup.register(vault_app, domain.backup_app)
vault_app.add_typer(vault_roles.app, name="role")
app.command(context_settings=serve.CONTEXT)(serve.serve)
seed.register(app, vault_app)

Port = typer.Option(DEFAULT_PORT, "--port", help="HTTPS port of the server.")
VaultArgument = typer.Argument(..., help="The vault.", autocompletion=complete_vault_name)


def _ca_path(settings: Settings) -> Path:
    return settings.tls_dir / "ca.pem"


@app.command()
def info(
    data_dir: Path | None = DataDir,
    port: int = Port,
    shell: bool = typer.Option(
        False, "--shell", help="Print `export` lines that make clients trust the server's CA."
    ),
    output: Output = OutputOption,
) -> None:
    """Print the installation's tenant id, CA path, listen port and URLs."""
    settings = settings_for(data_dir, port)
    if shell:
        ca = shlex.quote(str(_ca_path(settings)))
        typer.echo(f"export REQUESTS_CA_BUNDLE={ca} SSL_CERT_FILE={ca}")
        return
    with local(data_dir, port) as (inst, settings):
        emit(
            {
                "tenantId": inst.tenant_id,
                "instanceId": inst.instance_id,
                "dataDir": str(settings.data_dir),
                "caPath": str(_ca_path(settings)),
                "port": port,
                "authority": settings.authority,
                "vaultUrlTemplate": settings.vault_url("{vault}"),
                "challengeResource": settings.vault_resource,
            },
            output,
        )


def _principal_json(p: Principal, tenant: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": p.name, "clientId": p.client_id, "tenantId": tenant}
    if p.certificate_thumbprint:
        out["certificateThumbprint"] = p.certificate_thumbprint
    return out


@principal_app.command("create")
def principal_create(
    name: str,
    certificate: Path | None = typer.Option(None, help="PEM certificate for assertion auth."),
    save_profile: bool = typer.Option(
        False, "--save-profile", help="Save the credentials for strongroom's object commands."
    ),
    data_dir: Path | None = DataDir,
    port: int = Port,
    output: Output = OutputOption,
) -> None:
    """Register a service principal; prints client id, tenant and (once) the secret."""
    from strongroom.services.identity import IdentityService

    with local(data_dir, port, "PrincipalCreate", name) as (inst, settings):
        pem = certificate.read_bytes() if certificate else None
        created = IdentityService(inst).create_principal(name, pem)
        out = _principal_json(created.principal, inst.tenant_id)
        out["authority"] = settings.authority
        if created.client_secret is not None:
            out["clientSecret"] = created.client_secret
            if save_profile:
                path = profile_path()
                Profile(
                    authority=settings.authority,
                    tenantId=inst.tenant_id,
                    clientId=created.principal.client_id,
                    clientSecret=created.client_secret,
                    vaultDnsSuffix=f"{settings.vault_suffix}:{port}",
                    caPath=str(_ca_path(settings)),
                ).save(path)
                out["profile"] = str(path)
        emit(out, output)


@principal_app.command("list")
def principal_list(
    data_dir: Path | None = DataDir, port: int = Port, output: Output = OutputOption
) -> None:
    from strongroom.services.identity import IdentityService

    with local(data_dir, port) as (inst, _):
        found = IdentityService(inst).list_principals()
        emit([_principal_json(p, inst.tenant_id) for p in found], output)


@principal_app.command("delete")
def principal_delete(
    name: str, data_dir: Path | None = DataDir, port: int = Port, output: Output = OutputOption
) -> None:
    from strongroom.services.identity import IdentityService

    with local(data_dir, port, "PrincipalDelete", name) as (inst, _):
        deleted = IdentityService(inst).delete_principal(name)
        emit(_principal_json(deleted, inst.tenant_id), output)


def _vault_json(v: Vault, settings: Settings, inst: Installation | None = None) -> dict[str, Any]:
    policies: list[dict[str, Any]] = []
    rbac = False
    if inst is not None:
        from strongroom.services.access import AccessService, policy_json
        from strongroom.services.rbac import RbacService
        from strongroom.services.vaults import VaultService

        record = VaultService(inst).get_record(v.name)
        policies = [policy_json(p) for p in AccessService(inst).list_policies(record)]
        rbac = RbacService(inst).enabled(record)
    return {
        "name": v.name,
        "vaultUri": settings.vault_url(v.name),
        "id": v.id,
        "securityDomain": v.domain_id,
        "softDeleteRetentionInDays": v.retention_days,
        "enablePurgeProtection": v.purge_protection,
        "openToAllPrincipals": v.open_access,
        # Azure's name: role assignments, not access policies, decide (services.rbac).
        "enableRbacAuthorization": rbac,
        "replicable": v.replicable,
        "replicaOf": v.replica_of,
        "recoveryLevel": v.recovery_level,
        "created": v.created,
        "accessPolicies": policies,
    }


@vault_app.command("create")
def vault_create(
    name: str,
    retention_days: int = typer.Option(90, help="Soft-delete retention, 7-90 days."),
    purge_protection: bool = typer.Option(False, "--purge-protection"),
    domain: str | None = typer.Option(
        None, "--domain", help="Security domain (name or id; default: the installation's first)."
    ),
    open_access: bool = typer.Option(
        False,
        "--open",
        help="Let every principal of this installation do everything in the vault (a "
        "development vault). Without it, only principals given access policies may act.",
    ),
    enable_rbac: bool = typer.Option(
        False,
        "--enable-rbac-authorization",
        help="Authorise data-plane operations by Azure role assignments (strongroom vault role "
        "assignment create, az keyvault role assignment create) instead of access policies.",
    ),
    data_dir: Path | None = DataDir,
    port: int = Port,
    output: Output = OutputOption,
) -> None:
    """Create a vault. It is closed to every principal until `vault set-policy` grants access,
    unless --open makes it open to all of this installation's principals; with
    --enable-rbac-authorization, until a role assignment does."""
    from strongroom.services.domains import DomainService
    from strongroom.services.vaults import VaultService

    with local(data_dir, port, "VaultCreate", name) as (inst, settings):
        domain_id = DomainService(inst).resolve(domain).id if domain else None
        vault = VaultService(inst).create(
            name,
            retention_days=retention_days,
            purge_protection=purge_protection,
            domain_id=domain_id,
            open_access=open_access,
        )
        if enable_rbac:
            from strongroom.services.rbac import RbacService

            RbacService(inst).set_enabled(VaultService(inst).get_record(name), True)
        emit(_vault_json(vault, settings, inst), output)


@vault_app.command("update")
def vault_update(
    name: str = VaultArgument,
    open_access: bool | None = typer.Option(
        None,
        "--open/--closed",
        help="--open: every principal of this installation may do everything in the vault; "
        "--closed: only what access policies grant (a vault without policies denies everyone).",
    ),
    replicable: bool | None = typer.Option(
        None,
        "--replicable/--not-replicable",
        help="--replicable: number the vault's changes so that replicas on other "
        "installations can follow it (strongroom replica follow); every write then costs one "
        "more statement.",
    ),
    enable_rbac: str | None = typer.Option(
        None,
        "--enable-rbac-authorization",
        help="true: role assignments authorise every data-plane operation (access policies "
        "and --open are then ignored); false: access policies do.",
    ),
    data_dir: Path | None = DataDir,
    port: int = Port,
    output: Output = OutputOption,
) -> None:
    """Open a vault to every principal or close it to all but its access policies; make it
    replicable or not; switch its permission model between access policies and RBAC."""
    from strongroom.services.vaults import VaultService

    if open_access is None and replicable is None and enable_rbac is None:
        fail("BadParameter", "Say what to change: --open/--closed, --replicable/--not-replicable, "
             "--enable-rbac-authorization true|false.")  # fmt: skip
    rbac_on = None
    if enable_rbac is not None:
        if enable_rbac.lower() not in ("true", "false"):
            fail("BadParameter", "--enable-rbac-authorization takes true or false.")
        rbac_on = enable_rbac.lower() == "true"
    with local(data_dir, port, "VaultUpdate", name) as (inst, settings):
        if rbac_on is not None:
            from strongroom.services.rbac import RbacService

            RbacService(inst).set_enabled(VaultService(inst).get_record(name), rbac_on)
        if open_access is not None:
            VaultService(inst).set_open_access(name, open_access)
        if replicable is not None:
            from strongroom.services.container import Services

            services = Services(inst)
            try:
                services.replication.make_replicable(name, replicable)
            finally:
                asyncio.run(services.close())
        emit(_vault_json(VaultService(inst).show(name), settings, inst), output)


@vault_app.command("list")
def vault_list(
    data_dir: Path | None = DataDir, port: int = Port, output: Output = OutputOption
) -> None:
    from strongroom.services.vaults import VaultService

    with local(data_dir, port) as (inst, settings):
        emit([_vault_json(v, settings) for v in VaultService(inst).list()], output)


@vault_app.command("show")
def vault_show(
    name: str = VaultArgument,
    data_dir: Path | None = DataDir,
    port: int = Port,
    output: Output = OutputOption,
) -> None:
    from strongroom.services.vaults import VaultService

    with local(data_dir, port) as (inst, settings):
        emit(_vault_json(VaultService(inst).show(name), settings, inst), output)


@vault_app.command("delete")
def vault_delete(
    name: str = VaultArgument,
    yes: bool = typer.Option(False, "--yes", "-y", help="Confirm: every object goes with it."),
    data_dir: Path | None = DataDir,
    port: int = Port,
    output: Output = OutputOption,
) -> None:
    """Delete a vault and every object in it, irrevocably."""
    from strongroom.services.vaults import VaultService

    if not yes:
        fail("BadParameter", f"Deleting vault '{name}' destroys every object in it; add --yes.")
    with local(data_dir, port, "VaultDelete", name) as (inst, settings):
        emit(_vault_json(VaultService(inst).delete(name), settings), output)


@app.command("console")
def console(
    data_dir: Path | None = DataDir,
    port: int = Port,
    output: Output = OutputOption,
) -> None:
    """Print a one-time link that signs the installation's operator in to the web console
    (https://localhost:PORT/console). It works once, within five minutes; principals sign in
    there with their client id and secret instead."""
    from strongroom.services.console_sessions import LINK_SECONDS, ConsoleSessions

    with local(data_dir, port, "ConsoleLink") as (inst, settings):
        token = ConsoleSessions(inst).make_link()
        url = f"{settings.authority}/console/link?token={token}"
        if output is Output.json:
            emit({"url": url, "expiresIn": LINK_SECONDS}, output)
        else:
            typer.echo(f"Open this link within {LINK_SECONDS // 60} minutes; it works once:")
            typer.echo(url)


@app.command("az-setup")
def az_setup(
    data_dir: Path | None = DataDir,
    port: int = Port,
    client_id: str | None = typer.Option(None, help="Service principal (default: the profile's)."),
    client_secret: str | None = typer.Option(None, help="Its secret (default: the profile's)."),
    config_dir: Path = typer.Option(
        Path.home() / ".azure-strongroom", help="An AZURE_CONFIG_DIR of its own for this server."
    ),
    az: str = typer.Option("az", help="The az executable."),
    cloud: str = typer.Option("Strongroom", help="The name to register the cloud under."),
    apply: bool = typer.Option(False, "--apply", help="Run the commands instead of printing them."),
) -> None:
    """Print (or, with --apply, run) the commands that point the real az CLI at this server."""
    settings = settings_for(data_dir, port)
    with local(data_dir, port) as (inst, _):
        tenant = inst.tenant_id
    profile = Profile.load(profile_path())
    client_id = client_id or (profile.clientId if profile else None)
    client_secret = client_secret or (profile.clientSecret if profile else None)
    ca = settings.tls_dir / "ca.pem"
    authority = settings.authority
    commands = [
        [az, "cloud", "register", "-n", cloud, "--endpoint-resource-manager", f"{authority}/",
         "--endpoint-active-directory", authority,
         "--endpoint-active-directory-resource-id", f"{authority}/",
         "--suffix-keyvault-dns", f".{settings.vault_resource.removeprefix('https://')}"],
        [az, "cloud", "set", "-n", cloud],
        [az, "config", "set", "core.instance_discovery=false", "--only-show-errors"],
        # One argument: a generated secret may start with "-", which az would take for an option.
        [az, "login", "--service-principal", "-u", client_id or "<clientId>",
         f"--password={client_secret or '<clientSecret>'}", "--tenant", tenant],
    ]  # fmt: skip
    if not apply:
        typer.echo(f"export AZURE_CONFIG_DIR={shlex.quote(str(config_dir))} "
                   f"REQUESTS_CA_BUNDLE={shlex.quote(str(ca))}")  # fmt: skip
        for command in commands:
            shown = [a.replace(client_secret, "<clientSecret>") if client_secret else a
                     for a in command]  # fmt: skip
            typer.echo(shlex.join(shown))
        return
    if not client_id or not client_secret:
        fail("BadParameter", "--apply needs --client-id and --client-secret (or a saved profile).")
    env = dict(os.environ, AZURE_CONFIG_DIR=str(config_dir), REQUESTS_CA_BUNDLE=str(ca))
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"):
        env.pop(name, None)
    for command in commands:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            fail("AzSetupFailed", f"`{' '.join(command[:3])}` failed: {done.stderr.strip()[-500:]}")
    typer.echo(f"az is set up: export AZURE_CONFIG_DIR={shlex.quote(str(config_dir))} "
               f"REQUESTS_CA_BUNDLE={shlex.quote(str(ca))}")  # fmt: skip


def _permissions(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [p for v in values for p in v.replace(",", " ").split() if p]


@vault_app.command("set-policy")
def vault_set_policy(
    name: str = VaultArgument,
    principal: str = typer.Option(..., "--principal", help="Principal name or client id."),
    secret_permissions: list[str] | None = typer.Option(
        None, "--secret-permissions", help="Space-separated, like az; or repeat the flag."
    ),
    key_permissions: list[str] | None = typer.Option(None, "--key-permissions"),
    certificate_permissions: list[str] | None = typer.Option(None, "--certificate-permissions"),
    storage_permissions: list[str] | None = typer.Option(None, "--storage-permissions"),
    data_dir: Path | None = DataDir,
    output: Output = OutputOption,
) -> None:
    """Grant a principal permissions on a vault, like az keyvault set-policy. In a vault that
    is not --open, only principals with a policy may act, each within its permissions."""
    from strongroom.services.access import AccessService, policy_json
    from strongroom.services.identity import IdentityService
    from strongroom.services.vaults import VaultService

    given = {
        "secrets": _permissions(secret_permissions),
        "keys": _permissions(key_permissions),
        "certificates": _permissions(certificate_permissions),
        "storage": _permissions(storage_permissions),
    }
    permissions = {kind: perms for kind, perms in given.items() if perms is not None}
    if not permissions:
        fail("BadParameter", "Give at least one of --secret-permissions, --key-permissions, "
             "--certificate-permissions, --storage-permissions.")  # fmt: skip
    with local(data_dir, DEFAULT_PORT, "VaultAccessPolicySet", name) as (inst, _):
        who = IdentityService(inst).find_principal(principal)
        record = VaultService(inst).get_record(name)
        policy = AccessService(inst).set_policy(record, who.client_id, who.name, permissions)
        emit(policy_json(policy), output)


@vault_app.command("delete-policy")
def vault_delete_policy(
    name: str = VaultArgument,
    principal: str = typer.Option(..., "--principal", help="Principal name or client id."),
    data_dir: Path | None = DataDir,
    output: Output = OutputOption,
) -> None:
    from strongroom.services.access import AccessService, policy_json
    from strongroom.services.identity import IdentityService
    from strongroom.services.vaults import VaultService

    with local(data_dir, DEFAULT_PORT, "VaultAccessPolicyDelete", name) as (inst, _):
        record = VaultService(inst).get_record(name)
        try:
            client_id = IdentityService(inst).find_principal(principal).client_id
        except NotFound:
            client_id = principal  # a policy may outlive its principal: remove it by client id
        emit(policy_json(AccessService(inst).delete_policy(record, client_id)), output)


audit_app = typer.Typer(help="The audit log of data-plane requests.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("list")
def audit_list(
    vault: str | None = typer.Option(None, "--vault", help="Only this vault."),
    since: int = typer.Option(0, "--since", help="Only records at or after these Unix seconds."),
    limit: int = typer.Option(1000, "--limit"),
    data_dir: Path | None = DataDir,
    output: Output = OutputOption,
) -> None:
    with local(data_dir, DEFAULT_PORT) as (inst, _):
        from strongroom.services.audit import list_records

        records = list_records(inst, vault, since, limit)
        emit([
            {"time": r.ts, "principal": r.principal, "vault": r.vault, "operation": r.operation,
             "objectId": r.object_id, "status": r.status, "clientRequestId": r.request_id,
             "callerAddress": r.caller, "roleAssignment": r.grant}
            for r in records
        ], output)  # fmt: skip


common_options(app)  # after every command is registered
accept_az_lists(app)


def main() -> None:
    app(prog_name="strongroom")


if __name__ == "__main__":
    main()
