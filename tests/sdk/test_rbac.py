"""RBAC on a vault, driven by the unmodified ``KeyVaultAccessControlClient`` (sync and async)
and the real ``SecretClient``: deny by default, scope inheritance, custom roles, who may
manage assignments, switching permission models, a deleted principal, and what an attacker
gets from malformed requests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.administration import (
    KeyVaultAccessControlClient,
    KeyVaultPermission,
    KeyVaultRoleScope,
)
from azure.keyvault.secrets import SecretClient

from tests.conftest import Server, cli, make_server

CACHE = 2.2  # the server re-reads what the CLI changed at most this often
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
DATA_ACCESS_ADMIN = "8b54135c-b56d-4d72-a534-26097cfdc8d8"
ADMINISTRATOR = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
ROLES = "/providers/Microsoft.Authorization/roleAssignments"


class Principal:
    def __init__(self, srv: Server, name: str):
        made = cli(srv.data_dir, "principal", "create", name, port=srv.port)
        self.id: str = made["clientId"]
        self.secret: str = made["clientSecret"]
        self.credential = ClientSecretCredential(
            srv.tenant_id, self.id, self.secret, authority=srv.authority,
            disable_instance_discovery=True, connection_verify=str(srv.ca),
        )  # fmt: skip
        self._srv = srv

    def secrets(self, vault: str) -> SecretClient:
        return SecretClient(
            self._srv.vault_url(vault), self.credential, connection_verify=str(self._srv.ca)
        )

    def roles(self, vault: str) -> KeyVaultAccessControlClient:
        return KeyVaultAccessControlClient(
            self._srv.vault_url(vault), self.credential, connection_verify=str(self._srv.ca)
        )


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = make_server(tmp_path_factory.mktemp("rbac"), ("rbac-open",))
    for vault in ("rbac-one", "rbac-two", "rbac-switch", "rbac-gone"):
        cli(server.data_dir, "vault", "create", vault, "--enable-rbac-authorization")
    cli(server.data_dir, "vault", "create", "rbac-policies")  # access policies, closed
    yield server
    server.stop()


def _operator_grants(srv: Server, vault: str, role: str, who: str, scope: str = "/") -> str:
    made = cli(srv.data_dir, "vault", "role", "assignment", "create", "-n", vault,
               "--role", role, "--assignee", who, "--scope", scope)  # fmt: skip
    return str(made["name"])


def _rbac_denied(action: Callable[[], Any], needed: str) -> str:
    with pytest.raises(HttpResponseError) as info:
        action()
    assert info.value.status_code == 403
    assert info.value.error is not None and info.value.error.code == "Forbidden"
    text = str(info.value)
    assert "ForbiddenByRbac" in text
    assert f"Action: '{needed}'" in text
    return text


def _stranger_denied(action: Callable[[], Any]) -> str:
    """What a principal holding no role in the vault gets: the answer for a vault that does
    not exist (vault names cannot be enumerated), not RBAC's."""
    with pytest.raises(HttpResponseError) as info:
        action()
    assert info.value.status_code == 403
    text = str(info.value)
    assert "ForbiddenByPolicy" in text and "ForbiddenByRbac" not in text
    assert info.value.error is not None
    return str(info.value.error.message)


def test_vault_show_says_which_model(srv: Server) -> None:
    assert cli(srv.data_dir, "vault", "show", "rbac-one")["enableRbacAuthorization"] is True
    assert cli(srv.data_dir, "vault", "show", "rbac-policies")["enableRbacAuthorization"] is False


def test_deny_by_default_then_scoped_grants(srv: Server) -> None:
    owner = srv.client("rbac-open")  # an access-policy vault beside it, untouched
    owner.set_secret("x", "y")
    stranger = Principal(srv, "rbac-stranger")
    # The installation's own test principal holds nothing in an RBAC vault: it is told what
    # it would be told of a vault that does not exist.
    here = _stranger_denied(lambda: srv.client("rbac-one").set_secret("s1", "v"))
    nowhere = _stranger_denied(lambda: srv.client("rbac-nowhere").set_secret("s1", "v"))
    assert here.replace("rbac-one", "V") == nowhere.replace("rbac-nowhere", "V")
    _operator_grants(srv, "rbac-one", "Key Vault Secrets Officer", "tests", "/secrets")
    _operator_grants(srv, "rbac-one", "Key Vault Data Access Administrator", "tests")
    time.sleep(CACHE)
    mine = srv.client("rbac-one")
    mine.set_secret("s1", "one")
    mine.set_secret("s2", "two")

    admin = KeyVaultAccessControlClient(
        srv.vault_url("rbac-one"), srv.credential(), connection_verify=str(srv.ca)
    )
    granted = admin.create_role_assignment("/secrets/s1", SECRETS_USER, stranger.id)
    assert granted.properties.scope == "/secrets/s1"
    assert granted.properties.role_definition_id.endswith(SECRETS_USER)
    assert granted.role_assignment_id == f"/secrets/s1{ROLES}/{granted.name}"

    reader = stranger.secrets("rbac-one")
    assert reader.get_secret("s1").value == "one"
    _rbac_denied(
        lambda: reader.get_secret("s2"), "Microsoft.KeyVault/vaults/secrets/getSecret/action"
    )
    _rbac_denied(
        lambda: reader.set_secret("s1", "mine"),
        "Microsoft.KeyVault/vaults/secrets/setSecret/action",
    )
    _rbac_denied(lambda: list(reader.list_properties_of_secrets()),
                 "Microsoft.KeyVault/vaults/secrets/readMetadata/action")  # fmt: skip
    # A grant in one vault reaches no other, and the stranger may not manage roles.
    _stranger_denied(lambda: stranger.secrets("rbac-two").get_secret("s1"))
    _rbac_denied(
        lambda: stranger.roles("rbac-one").create_role_assignment(
            "/", SECRETS_OFFICER, stranger.id
        ),
        "Microsoft.Authorization/roleAssignments/write",
    )
    _rbac_denied(lambda: list(stranger.roles("rbac-one").list_role_assignments("/")),
                 "Microsoft.Authorization/roleAssignments/read")  # fmt: skip

    # Listing: at, above and below the scope; atScope() at and above; by principal.
    everything = {a.name for a in admin.list_role_assignments(KeyVaultRoleScope.GLOBAL)}
    assert granted.name in everything and len(everything) == 3
    assert granted.name in {a.name for a in admin.list_role_assignments("/secrets")}
    assert granted.name not in {a.name for a in admin.list_role_assignments("/keys")}
    with srv.http("rbac-one") as http:
        at = http.get(f"/secrets{ROLES}", params={"$filter": "atScope()"}).json()["value"]
        assert [a["properties"]["scope"] for a in at] == ["/", "/secrets"]
        mine_only = http.get(ROLES, params={"$filter": f"principalId eq '{stranger.id}'"})
        assert [a["name"] for a in mine_only.json()["value"]] == [granted.name]

    assert admin.get_role_assignment("/secrets/s1", granted.name).properties.principal_id == (
        stranger.id
    )
    with pytest.raises(ResourceNotFoundError):
        admin.get_role_assignment("/secrets/s2", granted.name)  # not at another scope
    admin.delete_role_assignment("/secrets/s1", granted.name)
    _stranger_denied(lambda: reader.get_secret("s1"))  # its last role in the vault is gone


def test_who_may_manage_assignments(srv: Server) -> None:
    # Key Vault Administrator does everything to data but, as in Azure, cannot assign roles.
    boss = Principal(srv, "rbac-boss")
    _operator_grants(srv, "rbac-two", "Key Vault Administrator", boss.id)
    time.sleep(CACHE)
    boss.secrets("rbac-two").set_secret("a", "b")
    first = next(iter(boss.roles("rbac-two").list_role_definitions("/")))
    assert first.name == ADMINISTRATOR
    _rbac_denied(
        lambda: boss.roles("rbac-two").create_role_assignment(
            "/", ADMINISTRATOR, str(uuid.uuid4())
        ),
        "Microsoft.Authorization/roleAssignments/write",
    )
    # A Data Access Administrator scoped to one secret manages assignments there only.
    keeper = Principal(srv, "rbac-keeper")
    _operator_grants(srv, "rbac-two", "Key Vault Data Access Administrator", keeper.id,
                     "/secrets/a")  # fmt: skip
    time.sleep(CACHE)
    keeper.roles("rbac-two").create_role_assignment("/secrets/a", SECRETS_USER, keeper.id)
    _rbac_denied(
        lambda: keeper.roles("rbac-two").create_role_assignment(
            "/secrets", SECRETS_USER, keeper.id
        ),
        "Microsoft.Authorization/roleAssignments/write",
    )
    assert keeper.secrets("rbac-two").get_secret("a").value == "b"
    # Azure's condition on that role: it hands out the listed data roles, not itself.
    with pytest.raises(HttpResponseError) as info:
        keeper.roles("rbac-two").create_role_assignment(
            "/secrets/a", DATA_ACCESS_ADMIN, str(uuid.uuid4())
        )
    assert info.value.status_code == 403 and "may assign only" in str(info.value)
    # In a closed access-policy vault nobody but the operator manages roles over the API.
    closed = KeyVaultAccessControlClient(
        srv.vault_url("rbac-policies"), srv.credential(), connection_verify=str(srv.ca)
    )
    with pytest.raises(HttpResponseError) as info:
        list(closed.list_role_assignments("/"))
    assert info.value.status_code == 403 and "ForbiddenByPolicy" in str(info.value)


def test_custom_roles(srv: Server) -> None:
    admin = KeyVaultAccessControlClient(
        srv.vault_url("rbac-open"), srv.credential(), connection_verify=str(srv.ca)
    )  # an open vault: every principal may manage its roles
    name = str(uuid.uuid4())
    made = admin.set_role_definition(
        KeyVaultRoleScope.GLOBAL, name=name, role_name="Secret writer, no deletes",
        permissions=[KeyVaultPermission(
            data_actions=["Microsoft.KeyVault/vaults/secrets/*"],
            not_data_actions=["Microsoft.KeyVault/vaults/secrets/delete"],  # type: ignore[list-item]
        )],
    )  # fmt: skip
    assert made.role_type == "CustomRole" and made.name == name
    assert admin.get_role_definition("/", name).role_name == "Secret writer, no deletes"
    # Built-in roles are read-only; a second role of the same name is refused.
    with pytest.raises(HttpResponseError) as info:
        admin.set_role_definition("/", name=SECRETS_USER, role_name="mine")
    assert info.value.status_code == 403
    with pytest.raises(HttpResponseError) as info:
        admin.set_role_definition("/", role_name="Secret writer, no deletes")
    assert info.value.status_code == 409

    writer = Principal(srv, "rbac-writer")
    assignment = admin.create_role_assignment("/", made.id, writer.id)
    cli(srv.data_dir, "vault", "update", "rbac-open", "--closed",
        "--enable-rbac-authorization", "true")  # fmt: skip
    _operator_grants(srv, "rbac-open", "Key Vault Data Access Administrator", "tests")
    time.sleep(CACHE)
    mine = writer.secrets("rbac-open")
    mine.set_secret("w", "1")
    _rbac_denied(lambda: mine.begin_delete_secret("w"), "Microsoft.KeyVault/vaults/secrets/delete")
    # Data Access Administrator may not write definitions, nor delete one still assigned.
    _rbac_denied(lambda: admin.delete_role_definition("/", name),
                 "Microsoft.Authorization/roleDefinitions/delete")  # fmt: skip
    cli(srv.data_dir, "vault", "update", "rbac-open", "--open",
        "--enable-rbac-authorization", "false")  # fmt: skip
    time.sleep(CACHE)
    with pytest.raises(HttpResponseError) as info:
        admin.delete_role_definition("/", name)
    assert info.value.status_code == 409
    admin.delete_role_assignment("/", assignment.name)
    admin.delete_role_definition("/", name)
    with pytest.raises(ResourceNotFoundError):
        admin.get_role_definition("/", name)


def test_switching_models(srv: Server) -> None:
    user = Principal(srv, "rbac-switcher")
    _operator_grants(srv, "rbac-switch", "Key Vault Secrets Officer", user.id)
    time.sleep(CACHE)
    client = user.secrets("rbac-switch")
    client.set_secret("k", "v")
    # Back to access policies: the assignment no longer counts, a policy does.
    shown = cli(srv.data_dir, "vault", "update", "rbac-switch", "--enable-rbac-authorization",
                "false")  # fmt: skip
    assert shown["enableRbacAuthorization"] is False
    time.sleep(CACHE)
    with pytest.raises(HttpResponseError) as info:
        client.get_secret("k")
    assert info.value.status_code == 403 and "ForbiddenByPolicy" in str(info.value)
    cli(srv.data_dir, "vault", "set-policy", "rbac-switch", "--principal", user.id,
        "--secret-permissions", "get")  # fmt: skip
    time.sleep(CACHE)
    assert client.get_secret("k").value == "v"
    # And RBAC again: the policy no longer counts, the assignment does.
    cli(srv.data_dir, "vault", "update", "rbac-switch", "--enable-rbac-authorization", "true")
    cli(srv.data_dir, "vault", "delete-policy", "rbac-switch", "--principal", user.id)
    time.sleep(CACHE)
    client.set_secret("k", "w")


def test_deleted_principal_loses_its_assignments(srv: Server) -> None:
    gone = Principal(srv, "rbac-leaver")
    name = _operator_grants(srv, "rbac-gone", "Key Vault Secrets Officer", gone.id)
    time.sleep(CACHE)
    gone.secrets("rbac-gone").set_secret("t", "1")
    token = gone.credential.get_token(f"{srv.resource}/.default").token
    cli(srv.data_dir, "principal", "delete", "rbac-leaver")
    listed = cli(srv.data_dir, "vault", "role", "assignment", "list", "-n", "rbac-gone")
    assert name not in {a["name"] for a in listed}
    with httpx.Client(verify=srv.tls()) as http:  # its token is refused outright
        answer = http.get(f"{srv.vault_url('rbac-gone')}/secrets/t",
                          params={"api-version": "7.6"},
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert answer.status_code == 401


def test_audit_names_the_assignment(srv: Server) -> None:
    user = Principal(srv, "rbac-audited")
    name = _operator_grants(srv, "rbac-gone", "Key Vault Secrets User", user.id, "/secrets/t")
    time.sleep(CACHE)
    user.secrets("rbac-gone").get_secret("t")
    time.sleep(1.0)  # the audit log writes in batches at most 0.5 s apart
    records = cli(srv.data_dir, "audit", "list", "--vault", "rbac-gone")
    gets = [r for r in records if r["principal"] == user.id and r["operation"] == "SecretGet"]
    assert gets and gets[-1]["roleAssignment"] == name and gets[-1]["status"] == 200


def _fixed(n: int) -> str:
    """A name fixed at collection (pytest-xdist's workers must collect the same tests)."""
    return f"00000000-0000-4000-8000-{n:012d}"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("PUT", f"{ROLES}/{_fixed(1)}", b"{not json", 400),
        ("PUT", f"{ROLES}/{_fixed(2)}", b"[]", 400),
        ("PUT", f"{ROLES}/{_fixed(3)}", b'{"properties": {"principalId": "p"}}', 400),
        ("PUT", f"{ROLES}/not-a-guid",
         b'{"properties": {"principalId": "p", "roleDefinitionId": "' + SECRETS_USER.encode()
         + b'"}}', 400),
        ("PUT", f"{ROLES}/{_fixed(4)}",
         b'{"properties": {"principalId": "p", "roleDefinitionId": "' + _fixed(5).encode()
         + b'"}}', 400),  # no such role
        ("PUT", f"/vaults/x{ROLES}/{_fixed(6)}",
         b'{"properties": {"principalId": "p", "roleDefinitionId": "' + SECRETS_USER.encode()
         + b'"}}', 400),  # no such scope
        ("PUT", f"{ROLES}/{_fixed(7)}", b'{"p": "' + b"a" * 2_000_000 + b'"}', 413),
        ("GET", f"{ROLES}", None, 200),
        ("GET", f"{ROLES}/{_fixed(8)}", None, 404),
        ("DELETE", f"{ROLES}/{_fixed(9)}", None, 404),
        ("GET", f"{ROLES}?$filter=roleName eq 'x'", None, 400),
        ("PUT", f"/providers/Microsoft.Authorization/roleDefinitions/{SECRETS_USER}",
         b'{"properties": {"roleName": "x"}}', 403),
        ("PUT", f"/keys/providers/Microsoft.Authorization/roleDefinitions/{_fixed(10)}",
         b'{"properties": {"roleName": "x"}}', 400),  # custom roles at "/" only
        ("PUT", f"/providers/Microsoft.Authorization/roleDefinitions/{_fixed(11)}",
         b'{"properties": {"permissions": [{"dataActions": ["' + b"a" * 300 + b'"]}]}}', 400),
    ],
    ids=lambda v: f"{len(v)}-bytes" if isinstance(v, bytes) else None,
)  # fmt: skip
def test_malformed_requests(
    srv: Server, method: str, path: str, body: bytes | None, status: int
) -> None:
    """In an open vault (every principal may manage roles), so that validation is what
    answers; nothing is half-written."""
    with srv.http("rbac-open") as http:
        before = http.get(ROLES).json()["value"]
        path, _, query = path.partition("?")
        answer = http.request(method, path, content=body, params=dict(parse_qsl(query)),
                              headers={"Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code == status, answer.text
        if status >= 400:
            error = answer.json()["error"]
            assert error["code"] and error["message"]
        assert http.get(ROLES).json()["value"] == before


def test_unauthenticated(srv: Server) -> None:
    with httpx.Client(verify=srv.tls()) as http:
        answer = http.put(f"{srv.vault_url('rbac-one')}{ROLES}/{uuid.uuid4()}",
                          params={"api-version": "7.6"}, content=b"{}")  # fmt: skip
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "Unauthorized"
    assert "www-authenticate" in answer.headers


def test_async_client(srv: Server) -> None:
    from azure.identity.aio import ClientSecretCredential as AsyncCredential
    from azure.keyvault.administration.aio import (
        KeyVaultAccessControlClient as AsyncAccessControlClient,
    )

    async def run() -> None:
        credential = AsyncCredential(
            srv.tenant_id, srv.client_id, srv.client_secret, authority=srv.authority,
            disable_instance_discovery=True, connection_verify=str(srv.ca),
        )  # fmt: skip
        async with (
            credential,
            AsyncAccessControlClient(
                srv.vault_url("rbac-one"), credential, connection_verify=str(srv.ca)
            ) as client,
        ):
            definitions = [d async for d in client.list_role_definitions("/")]
            assert {d.role_name for d in definitions} >= {"Key Vault Secrets User"}
            made = await client.create_role_assignment("/keys", SECRETS_USER, str(uuid.uuid4()))
            got = await client.get_role_assignment("/keys", made.name)
            assert got.properties.scope == "/keys"
            names = [a.name async for a in client.list_role_assignments("/keys")]
            assert made.name in names
            await client.delete_role_assignment("/keys", made.name)
            with pytest.raises(ResourceNotFoundError):
                await client.get_role_assignment("/keys", made.name)

    asyncio.run(run())


def test_whole_vault_backup_carries_roles(srv: Server, tmp_path: Path) -> None:
    """The operator's backup keeps the permission model, assignments and custom roles; the
    operator's restore into a new vault brings them back, and they work there."""
    owner = Principal(srv, "rbac-carried")
    _operator_grants(srv, "rbac-two", "Key Vault Secrets Officer", owner.id, "/secrets/c")
    open_admin = KeyVaultAccessControlClient(
        srv.vault_url("rbac-open"), srv.credential(), connection_verify=str(srv.ca)
    )
    custom = open_admin.set_role_definition("/", role_name="Carried role", permissions=[
        KeyVaultPermission(data_actions=["Microsoft.KeyVault/vaults/keys/read"])])  # fmt: skip
    made = cli(srv.data_dir, "vault", "backup", "-n", "rbac-open", "--dir", str(tmp_path))
    open_admin.delete_role_definition("/", custom.name)
    restored = cli(srv.data_dir, "vault", "restore", "-n", "rbac-open-copy", "--dir",
                   str(tmp_path), "--folder", made["folder"], "--create")  # fmt: skip
    assert f"role definition {custom.name}" in restored["settings"]

    made = cli(srv.data_dir, "vault", "backup", "-n", "rbac-two", "--dir", str(tmp_path))
    restored = cli(srv.data_dir, "vault", "restore", "-n", "rbac-two-copy", "--dir",
                   str(tmp_path), "--folder", made["folder"], "--create")  # fmt: skip
    assert "RBAC authorization" in restored["settings"]
    assert cli(srv.data_dir, "vault", "show", "rbac-two-copy")["enableRbacAuthorization"] is True
    listed = cli(srv.data_dir, "vault", "role", "assignment", "list", "-n", "rbac-two-copy",
                 "--assignee", owner.id)  # fmt: skip
    assert [a["properties"]["scope"] for a in listed] == ["/secrets/c"]
    time.sleep(CACHE)
    owner.secrets("rbac-two-copy").set_secret("c", "1")
    _rbac_denied(lambda: owner.secrets("rbac-two-copy").set_secret("d", "1"),
                 "Microsoft.KeyVault/vaults/secrets/setSecret/action")  # fmt: skip
