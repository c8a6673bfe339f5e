"""Two Strongroom processes on one PostgreSQL database (as behind a load balancer): races
between them leave the data consistent, and the scheduler acts once across them."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.keyvault.keys import KeyClient, KeyRotationLifetimeAction, KeyRotationPolicy
from azure.keyvault.keys import KeyRotationPolicyAction as Action

from tests import pg
from tests.conftest import Server, another_process, cli, make_server

DAY = 86400


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    if not pg.available():
        if os.environ.get("STRONGROOM_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed; make test installs it")
    url = pg.cluster().new_database("pair")
    first = make_server(
        tmp_path_factory.mktemp("pair"), ("shared", "target"), "--test-clock", database_url=url
    )
    second = another_process(first)
    yield first, second
    second.stop()
    first.stop()


def _together(*calls: Callable[[], Any]) -> list[Any]:
    """Runs the calls at the same moment, one thread each; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # returned for the test to look at
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_sets_from_both_processes_keep_every_version(pair: tuple[Server, Server]) -> None:
    clients = [srv.client("shared") for srv in pair for _ in range(2)]

    def writer(client: Any, who: int) -> Callable[[], list[str]]:
        return lambda: [client.set_secret("busy", f"{who}-{i}").properties.version
                        for i in range(12)]  # fmt: skip

    results = _together(*(writer(c, i) for i, c in enumerate(clients)))
    written = [v for r in results for v in r]
    assert len(written) == len(set(written)) == 48
    listed = {p.version for p in clients[0].list_properties_of_secret_versions("busy")}
    assert listed == set(written)
    latest = [srv.client("shared").get_secret("busy").properties.version for srv in pair]
    assert latest[0] == latest[1] and latest[0] in written


def _http(srv: Server, vault: str) -> httpx.Client:
    return srv.http(vault)


def test_racing_restores_have_one_winner(pair: tuple[Server, Server]) -> None:
    first, second = pair
    source = first.client("shared")
    for i in range(5):
        name = f"restored-{i}"
        source.set_secret(name, "v")
        blob = first.http("shared").post(f"/secrets/{name}/backup").json()["value"]
        a, b = _http(first, "target"), _http(second, "target")
        statuses = _together(
            lambda a=a, blob=blob: a.post("/secrets/restore", json={"value": blob}).status_code,
            lambda b=b, blob=blob: b.post("/secrets/restore", json={"value": blob}).status_code,
        )
        assert sorted(statuses) == [200, 409], statuses


def test_a_restore_racing_a_set_of_the_same_name(pair: tuple[Server, Server]) -> None:
    first, second = pair
    for i in range(5):
        name = f"contested-{i}"
        original = first.client("shared").set_secret(name, "from-backup")
        blob = first.http("shared").post(f"/secrets/{name}/backup").json()["value"]
        a, b = _http(first, "target"), _http(second, "target")
        restore, put = _together(
            lambda a=a, blob=blob: a.post("/secrets/restore", json={"value": blob}),
            lambda b=b, name=name: b.put(f"/secrets/{name}", json={"value": "set-directly"}),
        )
        assert put.status_code == 200, put.text
        versions = {p.version for p in
                    second.client("target").list_properties_of_secret_versions(name)}  # fmt: skip
        if restore.status_code == 200:  # the restore won: the set became a second version
            assert versions == {original.properties.version, put.json()["id"].rsplit("/", 1)[1]}
        else:  # the set won: the restore was refused and changed nothing
            assert restore.status_code == 409, restore.text
            assert versions == {put.json()["id"].rsplit("/", 1)[1]}


def test_delete_and_recover_races_are_consistent(pair: tuple[Server, Server]) -> None:
    first, second = pair
    for i in range(4):
        name = f"flip-{i}"
        first.client("shared").set_secret(name, "v")
        a, b = _http(first, "shared"), _http(second, "shared")
        deletes = _together(
            lambda a=a, name=name: a.delete(f"/secrets/{name}").status_code,
            lambda b=b, name=name: b.delete(f"/secrets/{name}").status_code,
        )
        assert sorted(deletes) == [200, 404], deletes
        recovers = _together(
            lambda a=a, name=name: a.post(f"/deletedsecrets/{name}/recover").status_code,
            lambda b=b, name=name: b.post(f"/deletedsecrets/{name}/recover").status_code,
        )
        assert sorted(recovers) == [200, 404], recovers
        assert second.client("shared").get_secret(name).value == "v"


def test_the_scheduler_rotates_once_across_processes(
    pair: tuple[Server, Server], tmp_path: Path
) -> None:
    first, second = pair
    keys = KeyClient(first.vault_url("shared"), first.credential(), connection_verify=str(first.ca))
    names = [f"rotating-{i}" for i in range(3)]
    policy = KeyRotationPolicy(
        lifetime_actions=[KeyRotationLifetimeAction(Action.rotate, time_after_create="P30D")]
    )
    for name in names:
        keys.create_rsa_key(name, size=2048)
        keys.update_key_rotation_policy(name, policy)
    for round_ in (1, 2):
        _together(lambda: first.advance_clock(31 * DAY), lambda: second.advance_clock(31 * DAY))
        for name in names:
            versions = list(keys.list_properties_of_key_versions(name))
            assert len(versions) == 1 + round_, (name, round_, len(versions))


def test_a_deleted_principal_is_refused_at_once_by_every_process(
    pair: tuple[Server, Server],
) -> None:
    """Each process hears of the deletion (LISTEN/NOTIFY) before the command has returned."""
    first = pair[0]
    made = cli(first.data_dir, "principal", "create", "leaving", port=first.port)
    tokens = []
    for srv in pair:
        as_leaving = Server(
            data_dir=srv.data_dir, port=srv.port, tenant_id=srv.tenant_id,
            client_id=made["clientId"], client_secret=made["clientSecret"],
        )  # fmt: skip
        tokens.append(as_leaving.token())

    def statuses() -> list[int]:
        out = []
        for srv, token in zip(pair, tokens, strict=True):
            response = httpx.get(
                f"{srv.vault_url('shared')}/secrets?api-version=7.6",
                headers={"Authorization": f"Bearer {token}"}, verify=srv.tls(),
            )  # fmt: skip
            out.append(response.status_code)
        return out

    assert statuses() == [200, 200]
    cli(first.data_dir, "principal", "delete", "leaving")
    assert statuses() == [401, 401]
