"""What a load balancer and Prometheus see of a server: /health, /ready (failing while the
database is down or its schema is not this release's), a metrics listener of its own summing
every worker's figures, and Key Vault's x-ms-request-id on every answer."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.keyvault.secrets import SecretClient

from tests import pg
from tests.conftest import Server, ca_trusted, free_port, make_server

pytestmark = pytest.mark.slow
_GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def _scrape(port: int) -> dict[str, float]:
    """Every sample of the metrics page: ``name{labels}`` -> value."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def _sample(samples: dict[str, float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    total = 0.0
    for key, value in samples.items():
        metric, _, rest = key.partition("{")
        if metric != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if all(found.get(k) == v for k, v in labels.items()):
            total += value
    return total


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory, metrics_port: int) -> Iterator[Server]:
    srv = make_server(
        tmp_path_factory.mktemp("observed"), ("obs-a",), "--metrics-port", str(metrics_port),
        "--workers", "2",
    )  # fmt: skip
    try:
        with ca_trusted(srv.ca):
            yield srv
    finally:
        srv.stop()


def test_metrics_sum_every_workers_requests_by_operation_status_and_vault(
    observed: Server, metrics_port: int
) -> None:
    before = _scrape(metrics_port)
    client = SecretClient(observed.vault_url("obs-a"), observed.credential())
    client.set_secret("counted", "v")
    # Each GET on a connection of its own, so that the kernel spreads them over both workers.
    token = observed.token()
    for _ in range(20):
        with httpx.Client(verify=observed.tls()) as http:
            answer = http.get(
                f"{observed.vault_url('obs-a')}/secrets/counted",
                params={"api-version": "7.6"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 200
    missing = httpx.get(
        f"{observed.vault_url('obs-a')}/secrets/nothing-here",
        params={"api-version": "7.6"},
        headers={"Authorization": f"Bearer {token}"},
        verify=observed.tls(),
    )
    assert missing.status_code == 404
    httpx.get(f"{observed.vault_url('obs-a')}/secrets", verify=observed.tls())  # no token
    after = _scrape(metrics_port)

    def grew(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert grew("strongroom_requests_total", operation="SecretGet", status="200",
                vault="obs-a") == 20  # fmt: skip
    assert grew("strongroom_requests_total", operation="SecretGet", status="404") == 1
    assert grew("strongroom_requests_total", operation="SecretSet", status="200") == 1
    assert grew("strongroom_requests_total", operation="Unauthenticated", status="401") >= 1
    assert grew("strongroom_request_seconds_count", operation="SecretGet") == 21
    assert grew("strongroom_tokens_issued_total") >= 2
    assert grew("strongroom_store_commit_seconds_count") >= 1
    assert _sample(after, "strongroom_store_commit_group_size_count") >= 1
    # Both workers answered some of them (their figures are summed from files of their own).
    files = list((observed.data_dir / "metrics").glob("*.db"))
    assert len({f.name.rsplit("_", 1)[-1] for f in files}) >= 2


def test_a_failed_token_request_is_counted(observed: Server, metrics_port: int) -> None:
    before = _sample(_scrape(metrics_port), "strongroom_token_failures_total")
    refused = httpx.post(
        f"{observed.authority}/{observed.tenant_id}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": observed.client_id,
              "client_secret": "wrong", "scope": f"{observed.resource}/.default"},
        verify=observed.tls(),
    )  # fmt: skip
    assert refused.status_code == 401
    after = _sample(
        _scrape(metrics_port), "strongroom_token_failures_total", error="invalid_client"
    )
    assert after == before + 1


def test_every_data_plane_answer_has_its_own_request_id(observed: Server) -> None:
    ids = set()
    for path in ("/secrets", "/secrets/absent"):
        for auth in ({}, {"Authorization": f"Bearer {observed.token()}"}):
            answer = httpx.get(
                f"{observed.vault_url('obs-a')}{path}", params={"api-version": "7.6"},
                headers=auth, verify=observed.tls(),
            )  # fmt: skip
            ids.add(answer.headers["x-ms-request-id"])
            assert re.fullmatch(_GUID, answer.headers["x-ms-request-id"])
    assert len(ids) == 4


def test_health_and_ready_on_sqlite_and_a_schema_of_another_release(
    tmp_path: Path,
) -> None:
    server = make_server(tmp_path, ("ready-a",), database_url=None)
    try:
        if server.database_url is not None:
            pytest.skip("this case edits the SQLite file")
        health = httpx.get(f"{server.authority}/health", verify=server.tls())
        assert health.status_code == 200 and health.json()["status"] == "ok"
        ready = httpx.get(f"{server.authority}/ready", verify=server.tls())
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready" and ready.json()["backend"] == "sqlite"
        head = ready.json()["revision"]
        with sqlite3.connect(server.data_dir / "strongroom.db") as conn:
            conn.execute("UPDATE alembic_version SET version_num='0001'")
        stale = httpx.get(f"{server.authority}/ready", verify=server.tls())
        assert stale.status_code == 503
        assert f"at 0001; this release needs {head}" in stale.json()["reason"]
        assert httpx.get(f"{server.authority}/health", verify=server.tls()).status_code == 200
        with sqlite3.connect(server.data_dir / "strongroom.db") as conn:
            conn.execute("UPDATE alembic_version SET version_num=?", (head,))
        assert httpx.get(f"{server.authority}/ready", verify=server.tls()).status_code == 200
    finally:
        server.stop()


def test_ready_fails_while_postgresql_is_down_and_recovers_with_it(tmp_path: Path) -> None:
    if not pg.available():
        pytest.skip("PostgreSQL is not installed (make test installs it)")
    own = pg.Cluster()  # a cluster of this test's own: it is stopped below
    try:
        server = make_server(tmp_path, ("ready-pg",), database_url=own.new_database("ready"))
        try:
            url = f"{server.authority}/ready"
            assert httpx.get(url, verify=server.tls()).json()["backend"] == "postgresql"
            own.halt()
            down = httpx.get(url, verify=server.tls(), timeout=30)
            assert down.status_code == 503
            assert down.json()["reason"].startswith("The database does not answer")
            assert httpx.get(f"{server.authority}/health", verify=server.tls()).status_code == 200
            own.start()
            deadline = time.monotonic() + 20
            while httpx.get(url, verify=server.tls(), timeout=30).status_code != 200:
                assert time.monotonic() < deadline, "not ready again 20 s after the database"
                time.sleep(0.2)
            client = SecretClient(server.vault_url("ready-pg"), server.credential(),
                                  connection_verify=str(server.ca))  # fmt: skip
            client.set_secret("after", "the outage")
            assert client.get_secret("after").value == "the outage"
        finally:
            server.stop()
    finally:
        own.stop()


def test_json_logs_have_one_line_per_request_named_by_its_request_id(tmp_path: Path) -> None:
    server = make_server(tmp_path, ("log-a",), "--log-level", "info", "--log-format", "json")
    try:
        client = SecretClient(server.vault_url("log-a"), server.credential(),
                              connection_verify=str(server.ca))  # fmt: skip
        client.set_secret("logged", "never-in-a-log")
        answer = httpx.get(
            f"{server.vault_url('log-a')}/secrets/logged", params={"api-version": "7.6"},
            headers={"Authorization": f"Bearer {server.token()}"}, verify=server.tls(),
        )  # fmt: skip
        rid = answer.headers["x-ms-request-id"]
    finally:
        server.stop()
    text = (tmp_path / f"server-{server.port}.log").read_text()
    assert "never-in-a-log" not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("requestId") == rid]
    assert len(mine) == 1
    assert mine[0]["logger"] == "strongroom.requests"
    assert mine[0]["operation"] == "SecretGet" and mine[0]["status"] == 200
    assert mine[0]["vault"] == "log-a" and mine[0]["principal"] == server.client_id
    assert mine[0]["durationMs"] >= 0
    assert any(line.get("operation") == "SecretSet" for line in lines)
