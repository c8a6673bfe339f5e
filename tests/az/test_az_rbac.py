"""The real `az keyvault role` (azure-cli 2.91) against a vault under RBAC, unmodified:
assignments created, listed and deleted with `--id <vault URL>`, definitions listed with
`--hsm-name` (az takes no `--id` there; the server's cloud metadata gives Managed HSM the
vaults' DNS suffix), and the principal named through the server's Graph stand-in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.az.test_az import AZ, Az, az_setup
from tests.conftest import Server, cli, make_server

pytestmark = pytest.mark.skipif(
    not (AZ and Path(AZ).exists()), reason="STRONGROOM_AZ does not name an az executable"
)
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"


@pytest.fixture(scope="module")
def az(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Az, Server]]:
    root = tmp_path_factory.mktemp("az-rbac")
    srv = make_server(root, ("az-open",))
    cli(srv.data_dir, "vault", "create", "az-roles", "--enable-rbac-authorization")
    cli(srv.data_dir, "vault", "role", "assignment", "create", "-n", "az-roles",
        "--role", "Key Vault Data Access Administrator", "--assignee", "tests")  # fmt: skip
    az_setup(srv, root / "config")
    yield Az(srv, root / "config"), srv
    srv.stop()


def test_role_definitions(az: tuple[Az, Server]) -> None:
    run, _ = az
    listed = run("keyvault", "role", "definition", "list", "--hsm-name", "az-roles")
    by_name = {d["roleName"]: d for d in listed}
    assert by_name["Key Vault Secrets User"]["name"] == SECRETS_USER
    assert by_name["Key Vault Secrets User"]["permissions"][0]["dataActions"] == [
        "Microsoft.KeyVault/vaults/secrets/getSecret/action",
        "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
    ]
    assert len(by_name) == 11


def test_role_assignment_create_list_delete(az: tuple[Az, Server]) -> None:
    run, srv = az
    url = srv.vault_url("az-roles")
    reader = cli(srv.data_dir, "principal", "create", "az-reader", port=srv.port)
    made = run("keyvault", "role", "assignment", "create", "--id", url,
               "--role", "Key Vault Secrets User", "--assignee", reader["clientId"],
               "--scope", "/secrets/db")  # fmt: skip
    assert made["roleName"] == "Key Vault Secrets User"
    assert made["scope"] == "/secrets/db"
    assert made["principalType"] == "ServicePrincipal"

    at_secret = run("keyvault", "role", "assignment", "list", "--id", url, "--scope", "/secrets/db")
    assert [a["name"] for a in at_secret] == [made["name"]]
    everything = run("keyvault", "role", "assignment", "list", "--id", url)
    assert {a["roleName"] for a in everything} == {
        "Key Vault Secrets User", "Key Vault Data Access Administrator",
    }  # fmt: skip

    # The assignment works for the SDK at once (the same server process wrote it).
    srv_admin = cli(srv.data_dir, "vault", "role", "assignment", "create", "-n", "az-roles",
                    "--role", "Key Vault Secrets Officer", "--assignee", "tests")  # fmt: skip
    time.sleep(2.2)
    srv.client("az-roles").set_secret("db", "pw")
    assert srv_admin["properties"]["scope"] == "/"

    run("keyvault", "role", "assignment", "delete", "--id", url, "--scope", "/secrets/db",
        "--role", "Key Vault Secrets User")  # fmt: skip
    left = run("keyvault", "role", "assignment", "list", "--id", url, "--scope", "/secrets/db")
    assert left == []


def test_role_assignment_refused_without_the_role(az: tuple[Az, Server]) -> None:
    run, srv = az
    cli(srv.data_dir, "vault", "create", "az-noroles", "--enable-rbac-authorization")
    error = run("keyvault", "role", "assignment", "create", "--id", srv.vault_url("az-noroles"),
                "--role", "Key Vault Secrets User", "--assignee", srv.client_id,
                "--scope", "/", ok=False)  # fmt: skip
    # az lists the role definitions first to resolve the role's name: that is refused, in the
    # words a vault that does not exist gets (the caller holds no role in this one).
    assert "does not have permission to RoleDefinitionList on key vault 'az-noroles'" in error
    nowhere = run("keyvault", "role", "definition", "list", "--hsm-name", "az-nowhere", ok=False)
    assert "does not have permission to RoleDefinitionList on key vault 'az-nowhere'" in nowhere
