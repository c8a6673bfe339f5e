"""The permission matrix: every data-plane route needs a named permission of its kind, and a
principal holding exactly that permission passes while one holding every other is refused."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest

from strongroom.api.routes import route_table
from strongroom.api.routes.certificates import CertificateRoutes
from strongroom.api.routes.keys import KeyRoutes
from strongroom.api.routes.secrets import SecretRoutes
from strongroom.api.routes.storage import StorageRoutes
from strongroom.api.routing import Need, RouteTable
from strongroom.config import Settings
from strongroom.errors import BadParameter, Forbidden
from strongroom.services.access import PERMISSIONS, AccessService
from strongroom.services.container import Services
from strongroom.services.installation import Installation, open_installation
from strongroom.services.rbac import RBAC_KIND
from strongroom.services.vaults import VaultService
from strongroom.store.base import VaultRecord


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouteTable]:
    inst = open_installation(Settings(data_dir=tmp_path_factory.mktemp("table")))
    yield route_table(Services(inst))
    inst.close()


def test_every_route_needs_a_permission_its_kind_has(table: RouteTable) -> None:
    for route in table.routes:
        if route.need.kind == RBAC_KIND:
            continue  # role management: no access-policy permission grants it (test_rbac.py)
        for kind, permission in ((route.need.kind, route.need.permission), *route.need.also):
            assert permission in PERMISSIONS[kind], route.path
        expected = 204 if route.need.operation.endswith("Purge") else route.need.status
        assert route.need.status == expected, route.path


def test_every_permission_but_manageissuers_guards_a_route(table: RouteTable) -> None:
    used = {
        pair
        for r in table.routes
        if r.need.kind != RBAC_KIND
        for pair in ((r.need.kind, r.need.permission), *r.need.also)
    }
    known = {(k, p) for k, ps in PERMISSIONS.items() for p in ps if p != "manageissuers"}
    assert used == known


def test_every_handler_is_routed(table: RouteTable) -> None:
    routed = {getattr(r.handler, "__func__", r.handler) for r in table.routes}
    for cls in (SecretRoutes, KeyRoutes, CertificateRoutes, StorageRoutes):
        for name, fn in inspect.getmembers(cls, inspect.iscoroutinefunction):
            if name.startswith("_") or name == "operation":  # operation: one route per op
                continue
            assert fn in routed, f"{cls.__name__}.{name} has no route"


def test_operations_are_named_once(table: RouteTable) -> None:
    names = [r.need.operation for r in table.routes]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Installation, VaultRecord]]:
    inst = open_installation(Settings(data_dir=tmp_path_factory.mktemp("matrix")))
    VaultService(inst).create("matrix")
    record = inst.store.reads.get_vault("matrix")
    assert record is not None
    yield inst, record
    inst.close()


def _needs() -> list[Need]:
    return [
        Need(kind, permission, "")
        for kind, permissions in sorted(PERMISSIONS.items())
        for permission in permissions
        if permission != "manageissuers"  # no route needs it: it implies every issuer one
    ]


@pytest.mark.parametrize("need", _needs(), ids=lambda n: f"{n.kind}-{n.permission}")
def test_allowed_with_its_permission_refused_without(
    vault: tuple[Installation, VaultRecord], need: Need
) -> None:
    inst, record = vault
    access = AccessService(inst)
    access.set_policy(record, "holder", "holder", {need.kind: [need.permission]})
    others = [p for p in PERMISSIONS[need.kind] if p != need.permission]
    if need.kind == "certificates" and need.permission.endswith("issuers"):
        others.remove("manageissuers")  # which implies every issuer permission
    access.set_policy(record, "everything-else", "everything-else", {need.kind: others})
    access.forget()
    access.check(record, "holder", need.kind, need.permission)
    with pytest.raises(Forbidden) as info:
        access.check(record, "everything-else", need.kind, need.permission)
    assert info.value.inner == "ForbiddenByPolicy"
    with pytest.raises(Forbidden):
        access.check(record, "nobody", need.kind, need.permission)


def test_a_vault_without_policies_denies_everyone(
    vault: tuple[Installation, VaultRecord],
) -> None:
    inst, _ = vault
    VaultService(inst).create("closed-vault")
    record = inst.store.reads.get_vault("closed-vault")
    assert record is not None and not record.open_access
    with pytest.raises(Forbidden):
        AccessService(inst).check(record, "anyone", "secrets", "get")


def test_removing_the_last_policy_denies_rather_than_opens(
    vault: tuple[Installation, VaultRecord],
) -> None:
    inst, _ = vault
    VaultService(inst).create("revoked-vault")
    record = inst.store.reads.get_vault("revoked-vault")
    assert record is not None
    access = AccessService(inst)
    access.set_policy(record, "only", "only", {"secrets": ["get"]})
    access.check(record, "only", "secrets", "get")
    access.delete_policy(record, "only")
    access.forget()
    for who in ("only", "anyone"):
        with pytest.raises(Forbidden):
            access.check(record, who, "secrets", "get")


def test_an_open_vault_admits_every_principal_and_takes_no_policy(
    vault: tuple[Installation, VaultRecord],
) -> None:
    inst, _ = vault
    VaultService(inst).create("open-vault", open_access=True)
    record = inst.store.reads.get_vault("open-vault")
    assert record is not None and record.open_access
    AccessService(inst).check(record, "anyone", "secrets", "purge")
    with pytest.raises(BadParameter, match="--closed"):
        AccessService(inst).set_policy(record, "x", "x", {"secrets": ["get"]})
    closed = VaultService(inst).set_open_access("open-vault", False)
    assert not closed.open_access
    record = inst.store.reads.get_vault("open-vault")
    assert record is not None
    with pytest.raises(Forbidden):
        AccessService(inst).check(record, "anyone", "secrets", "purge")
