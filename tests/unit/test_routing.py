"""The route table's matching rules, on the data plane's real table: Key Vault clients' empty
segments, literals before parameters, Key Vault's 400 for a known path with the wrong method
and its 404 for an unknown one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from strongroom.api.routes import route_table
from strongroom.api.routing import Need, Route, RouteTable
from strongroom.config import Settings
from strongroom.errors import BadParameter, NotFound
from strongroom.services.container import Services
from strongroom.services.installation import open_installation


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouteTable]:
    inst = open_installation(Settings(data_dir=tmp_path_factory.mktemp("routing")))
    yield route_table(Services(inst))
    inst.close()


@pytest.mark.parametrize(
    ("method", "path", "operation", "args"),
    [
        ("GET", "/secrets", "SecretList", ()),
        ("GET", "/secrets/", "SecretList", ()),
        ("GET", "/secrets/s1", "SecretGet", ("s1", "")),
        ("GET", "/secrets/s1/", "SecretGet", ("s1", "")),  # contract notes 1.6: latest
        ("GET", "/secrets/s1/abc", "SecretGet", ("s1", "abc")),
        ("GET", "/SECRETS/s1/VERSIONS", "SecretListVersions", ("s1",)),
        ("PUT", "/secrets/s1", "SecretSet", ("s1",)),
        ("PATCH", "/secrets/s1/", "SecretUpdate", ("s1", "")),
        ("DELETE", "/secrets/s1", "SecretDelete", ("s1",)),
        ("POST", "/secrets/restore", "SecretRestore", ()),
        ("POST", "/secrets/s1/backup", "SecretBackup", ("s1",)),
        ("DELETE", "/deletedsecrets/s1", "SecretPurge", ("s1",)),
        ("POST", "/deletedsecrets/s1/recover", "SecretRecover", ("s1",)),
        ("POST", "/keys/k1//sign", "KeySign", ("k1", "")),  # double slash: latest
        ("POST", "/keys/k1/v1/wrapkey", "KeyWrap", ("k1", "v1")),
        ("GET", "/keys/k1/rotationpolicy", "KeyGetRotationPolicy", ("k1",)),
        ("POST", "/rng", "GetRandomBytes", ()),
        ("GET", "/certificates/issuers", "CertificateIssuerList", ()),
        ("GET", "/certificates/issuers/i1", "CertificateIssuerGet", ("i1",)),
        ("GET", "/certificates/contacts", "CertificateContactsGet", ()),
        ("POST", "/certificates/c1/pending/merge", "CertificateMerge", ("c1",)),
        ("GET", "/certificates/c1/pending", "CertificatePendingGet", ("c1",)),
        ("GET", "/storage/a1/sas/d1", "SasDefinitionGet", ("a1", "d1")),
        ("POST", "/deletedstorage/a1/sas/d1/recover", "SasDefinitionRecover", ("a1", "d1")),
        ("POST", "/deletedstorage/a1/recover", "StorageAccountRecover", ("a1",)),
    ],
)
def test_found(
    table: RouteTable, method: str, path: str, operation: str, args: tuple[str, ...]
) -> None:
    route, got = table.find(method, path)
    assert (route.need.operation, got) == (operation, args)


def test_a_shape_matched_once_gives_each_path_its_own_arguments(table: RouteTable) -> None:
    """Routes are remembered by the path's shape; names and versions vary, literals do not."""
    for _ in range(2):  # the second time from the remembered shapes
        for n in range(3):
            assert table.find("GET", f"/secrets/s{n}/")[1] == (f"s{n}", "")
            assert table.find("GET", f"/secrets/s{n}/v{n}")[1] == (f"s{n}", f"v{n}")
            assert table.find("POST", f"/keys/k{n}//sign")[1] == (f"k{n}", "")
            route, args = table.find("GET", f"/Secrets/S{n}/Versions")
            assert (route.need.operation, args) == ("SecretListVersions", (f"S{n}",))
        # A name that is also a literal of some route is still a name where a name goes.
        route, args = table.find("GET", "/secrets/versions/")
        assert (route.need.operation, args) == ("SecretGet", ("versions", ""))
        route, args = table.find("GET", "/secrets/sign/versions")
        assert (route.need.operation, args) == ("SecretListVersions", ("sign",))
        with pytest.raises(NotFound):
            table.find("GET", "/secrets/s1/v1/nothing")


@pytest.mark.parametrize(
    ("method", "path", "word"),
    [
        ("PUT", "/secrets/restore", "restore"),  # Key Vault's own example of this error
        ("GET", "/secrets/s1/backup", "backup"),
        ("PUT", "/secrets/s1/v1", "secrets"),
        ("POST", "/certificates/issuers", "issuers"),
        ("GET", "/keys/k1/create", "create"),
    ],
)
def test_known_path_wrong_method_is_400(
    table: RouteTable, method: str, path: str, word: str
) -> None:
    with pytest.raises(BadParameter, match=f"Method {method} does not allow operation '{word}'"):
        table.find(method, path)


@pytest.mark.parametrize(
    "path", ["/", "/nothing", "/secrets/s1/v1/extra", "/secrets//", "/keys/k1/v1/nosuchop"]
)
def test_unknown_path_is_404(table: RouteTable, path: str) -> None:
    with pytest.raises(NotFound):
        table.find("GET", path)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
def test_managed_hsm_operations_are_refused_for_every_method(
    table: RouteTable, method: str
) -> None:
    with pytest.raises(BadParameter, match="Managed HSM"):
        table.find(method, "/keys/k1//release")


def test_a_route_may_not_be_given_twice() -> None:
    async def handler(call: object) -> object:
        raise AssertionError

    need = Need("secrets", "get", "X")
    with pytest.raises(ValueError, match="two routes"):
        RouteTable([Route("GET", "/x/{a}", handler, need), Route("GET", "/x/{a}", handler, need)])  # type: ignore[arg-type]
