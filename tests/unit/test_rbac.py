"""RBAC's tables and rules, directly: every route has its action, built-in roles mean what they
mean in Azure, scopes inherit downwards only, wildcards and notDataActions, deny by default."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from strongroom.api.routes import route_table
from strongroom.api.routes.access_control import parse_filter
from strongroom.api.routing import RouteTable
from strongroom.config import Settings
from strongroom.errors import BadParameter, Forbidden
from strongroom.services.container import Services
from strongroom.services.installation import open_installation
from strongroom.services.rbac import (
    ACTIONS,
    BUILT_IN_ROLES,
    CUSTOM,
    Permission,
    RbacService,
    RoleDefinition,
    covers,
    normalise_scope,
    permits,
    request_scope,
)
from strongroom.services.vaults import VaultService

ADMIN = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
READER = "21090545-7ca7-4776-b22c-e363652d74d2"
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"
DATA_ACCESS_ADMIN = "8b54135c-b56d-4d72-a534-26097cfdc8d8"


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouteTable]:
    inst = open_installation(Settings(data_dir=tmp_path_factory.mktemp("rbac-table")))
    yield route_table(Services(inst))
    inst.close()


def test_every_route_has_exactly_one_action(table: RouteTable) -> None:
    operations = {route.need.operation for route in table.routes}
    assert operations - ACTIONS.keys() == set()
    assert ACTIONS.keys() - operations == set()  # no stale entries either


def test_the_eleven_built_in_roles_with_azure_ids() -> None:
    names = {r.role_name for r in BUILT_IN_ROLES.values()}
    assert len(names) == 11
    assert BUILT_IN_ROLES[SECRETS_USER].role_name == "Key Vault Secrets User"
    assert BUILT_IN_ROLES[ADMIN].id.endswith("/roleDefinitions/" + ADMIN)


@pytest.mark.parametrize(
    ("role", "operation", "allowed"),
    [
        (ADMIN, "SecretGet", True),
        (ADMIN, "KeySign", True),
        (ADMIN, "VaultBackup", True),
        (ADMIN, "RoleAssignmentCreate", False),  # as in Azure: not a permissions manager
        (ADMIN, "RoleAssignmentList", True),
        (READER, "SecretList", True),
        (READER, "SecretGet", False),  # metadata, never values
        (READER, "KeyGet", True),
        (READER, "KeySign", False),
        (READER, "CertificateIssuerGet", True),
        (SECRETS_USER, "SecretGet", True),
        (SECRETS_USER, "SecretSet", False),
        (SECRETS_USER, "KeyGet", False),
        (CRYPTO_USER, "KeySign", True),
        (CRYPTO_USER, "KeyDelete", False),
        (DATA_ACCESS_ADMIN, "RoleAssignmentCreate", True),
        (DATA_ACCESS_ADMIN, "RoleDefinitionSet", False),
        (DATA_ACCESS_ADMIN, "SecretGet", False),
    ],
)
def test_built_in_roles(role: str, operation: str, allowed: bool) -> None:
    assert permits(BUILT_IN_ROLES[role], ACTIONS[operation]) is allowed


def test_wildcards_and_not_data_actions() -> None:
    role = RoleDefinition(
        "0" * 8 + "-0000-0000-0000-" + "0" * 12, "r", "", CUSTOM,
        (Permission(data_actions=("microsoft.keyvault/VAULTS/secrets/*",),
                    not_data_actions=("Microsoft.KeyVault/vaults/secrets/delete",)),),
    )  # fmt: skip
    assert permits(role, ACTIONS["SecretSet"])  # case-insensitive
    assert not permits(role, ACTIONS["SecretDelete"])
    assert not permits(role, ACTIONS["KeyGet"])


@pytest.mark.parametrize(
    ("raw", "scope"),
    [("", "/"), ("/", "/"), ("//", "/"), ("keys", "/keys"), ("//Keys/K1", "/keys/k1"),
     ("/secrets/s1/", "/secrets/s1"), ("/storage/acct", "/storage/acct")],
)  # fmt: skip
def test_scopes(raw: str, scope: str) -> None:
    assert normalise_scope(raw) == scope


@pytest.mark.parametrize("raw", ["/vaults", "/keys/k1/v1", "/secrets/a_b", "/keys/" + "k" * 200])
def test_bad_scopes(raw: str) -> None:
    with pytest.raises(BadParameter):
        normalise_scope(raw)


def test_inheritance_reaches_down_only() -> None:
    assert covers("/", "/secrets/s1")
    assert covers("/secrets", "/secrets/s1")
    assert covers("/secrets/s1", "/secrets/s1")
    assert not covers("/secrets/s1", "/secrets/s2")
    assert not covers("/secrets/s1", "/secrets/s10")
    assert not covers("/secrets/s1", "/secrets")
    assert not covers("/keys", "/secrets/s1")


def test_request_scopes(table: RouteTable) -> None:
    def scope(method: str, path: str) -> str:
        route, args = table.find(method, path)
        return request_scope(route.path, args)

    assert scope("GET", "/secrets/S1/") == "/secrets/s1"
    assert scope("GET", "/secrets") == "/secrets"
    assert scope("DELETE", "/deletedsecrets/s1") == "/secrets/s1"
    assert scope("POST", "/secrets/restore") == "/secrets"
    assert scope("GET", "/certificates/issuers/i1") == "/certificates"
    assert scope("POST", "/keys/k1//sign") == "/keys/k1"
    assert scope("POST", "/rng") == "/"
    assert scope("POST", "/backup") == "/"


def test_filters() -> None:
    assert parse_filter(None) == (False, None)
    assert parse_filter("atScope()") == (True, None)
    assert parse_filter("principalId eq 'abc' and atScope()") == (True, "abc")
    for bad in ("roleName eq 'x'", "principalId eq abc", "principalId ne 'a'", "x" * 600):
        with pytest.raises(BadParameter):
            parse_filter(bad)


def test_deny_by_default_and_grant(tmp_path_factory: pytest.TempPathFactory) -> None:
    inst = open_installation(Settings(data_dir=tmp_path_factory.mktemp("rbac-deny")))
    try:
        VaultService(inst).create("vault-one")
        record = VaultService(inst).get_record("vault-one")
        rbac = RbacService(inst)
        rbac.set_enabled(record, True)
        with pytest.raises(Forbidden) as info:
            rbac.authorize(record, "p1", "SecretGet", "/secrets/s1")
        assert info.value.inner == "ForbiddenByRbac"
        assert "Microsoft.KeyVault/vaults/secrets/getSecret/action" in info.value.message
        name = "11111111-2222-3333-4444-555555555555"
        rbac.create_assignment(record, "/secrets/s1", name, SECRETS_USER, "p1")
        assert rbac.authorize(record, "P1", "SecretGet", "/secrets/s1") == name
        with pytest.raises(Forbidden):
            rbac.authorize(record, "p1", "SecretGet", "/secrets/s2")
        with pytest.raises(Forbidden):
            rbac.authorize(record, "p2", "SecretGet", "/secrets/s1")
    finally:
        inst.close()


def test_data_access_administrator_delegates_only_the_listed_roles(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    inst = open_installation(Settings(data_dir=tmp_path_factory.mktemp("rbac-delegate")))
    try:
        VaultService(inst).create("vault-two")
        record = VaultService(inst).get_record("vault-two")
        rbac = RbacService(inst)
        rbac.set_enabled(record, True)
        rbac.create_assignment(record, "/", "11111111-2222-3333-4444-555555555555",
                               DATA_ACCESS_ADMIN, "keeper")  # fmt: skip
        rbac.check_delegation(record, "keeper", "/keys", SECRETS_USER)
        rbac.check_delegation(record, "keeper", "/", ADMIN)
        for role in (DATA_ACCESS_ADMIN, "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba", str(uuid.uuid4())):
            with pytest.raises(Forbidden):
                rbac.check_delegation(record, "keeper", "/", role)
        with pytest.raises(Forbidden):  # someone without the role at all
            rbac.check_delegation(record, "stranger", "/", SECRETS_USER)
    finally:
        inst.close()
