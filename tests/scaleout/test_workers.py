"""``serve --workers 2``: two processes on one port and one database (SQLite by default). Both
answer; a write through either is read at once through the other, whatever each had cached;
concurrent writes through both keep every version; and the server stops as a whole."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.keys import KeyClient
from azure.keyvault.secrets import SecretClient

from tests.conftest import Server, cli, env_for, free_port, make_server

CLIENTS = 12  # connections; the kernel spreads them over the workers by their source ports
DIGEST_B64 = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("workers"), ("shared",), "--workers", "2")
    yield srv
    srv.stop()


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _secret_clients(srv: Server) -> list[Any]:
    credential = srv.credential()
    return [
        SecretClient(srv.vault_url("shared"), credential, connection_verify=str(srv.ca))
        for _ in range(CLIENTS)
    ]


def test_both_workers_answer(workers: Server) -> None:
    assert workers.process is not None
    pids = _children(workers.process.pid)
    assert len(pids) == 2
    token = workers.token()
    before = [_cpu_ticks(p) for p in pids]
    for _ in range(2 * CLIENTS):  # a new connection each: spread over both workers
        with httpx.Client(verify=workers.tls()) as client:
            for _ in range(5):
                r = client.get(
                    f"{workers.vault_url('shared')}/secrets?api-version=7.6",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert r.status_code == 200, r.text
    used = [_cpu_ticks(p) - b for p, b in zip(pids, before, strict=True)]
    assert all(u > 0 for u in used), used


def test_a_write_through_one_worker_is_read_at_once_through_every_other(
    workers: Server,
) -> None:
    clients = _secret_clients(workers)
    clients[0].set_secret("coherent", "first")
    for client in clients:  # every worker now holds "first" in its read cache
        assert client.get_secret("coherent").value == "first"
    for i in range(10):
        written = clients[i % CLIENTS].set_secret("coherent", f"value-{i}")
        for client in clients:
            got = client.get_secret("coherent")
            assert (got.value, got.properties.version) == (
                f"value-{i}",
                written.properties.version,
            )
    clients[3].update_secret_properties("coherent", enabled=False)
    for client in clients:  # a disabled secret is refused everywhere, cached or not
        with pytest.raises(HttpResponseError) as refused:
            client.get_secret("coherent")
        assert refused.value.status_code == 403


def test_a_new_key_version_is_used_at_once_by_every_worker(workers: Server) -> None:
    keys = KeyClient(
        workers.vault_url("shared"), workers.credential(), connection_verify=str(workers.ca)
    )
    token = workers.token()

    def sign_with_latest() -> list[str]:
        """The key id that signed, through a new connection each (the SDK's
        CryptographyClient names the version it read, so it would not use the cache)."""
        used = []
        for _ in range(CLIENTS):
            with httpx.Client(verify=workers.tls()) as client:
                r = client.post(
                    f"{workers.vault_url('shared')}/keys/signer//sign?api-version=7.6",
                    json={"alg": "RS256", "value": DIGEST_B64},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert r.status_code == 200, r.text
                used.append(r.json()["kid"])
        return used

    first = keys.create_rsa_key("signer", size=2048)
    assert set(sign_with_latest()) == {first.id}  # cached by every worker that signed
    second = keys.create_rsa_key("signer", size=2048)
    assert set(sign_with_latest()) == {second.id}


def test_concurrent_writes_through_both_workers_keep_every_version(workers: Server) -> None:
    clients = _secret_clients(workers)
    written: list[list[str]] = [[] for _ in clients]
    barrier = threading.Barrier(len(clients))

    def write(i: int) -> None:
        barrier.wait()
        for n in range(6):
            written[i].append(clients[i].set_secret("busy", f"{i}-{n}").properties.version)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    versions = [v for w in written for v in w]
    assert len(versions) == len(set(versions)) == 6 * len(clients)
    listed = {p.version for p in clients[0].list_properties_of_secret_versions("busy")}
    assert listed == set(versions)
    for client in clients:
        assert client.get_secret("busy").properties.version in versions


def _serve(data_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "strongroom.cli.main", "serve", "--data-dir", str(data_dir),
         *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for(data_dir),
    )  # fmt: skip


def test_the_test_clock_needs_one_worker(tmp_path: Path) -> None:
    proc = _serve(tmp_path / "data", "--port", str(free_port()), "--workers", "2", "--test-clock")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert b"(BadParameter) --test-clock moves one process's clock" in err


def test_a_worker_that_dies_stops_the_server(tmp_path: Path) -> None:
    srv = make_server(tmp_path, ("shared",), "--workers", "2")
    try:
        assert srv.process is not None
        first, second = _children(srv.process.pid)
        os.kill(first, signal.SIGKILL)
        assert srv.process.wait(timeout=20) != 0
        deadline = time.monotonic() + 10
        while Path(f"/proc/{second}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{second}").exists() or "Z" in _state(second)
    finally:
        srv.stop()


def test_sigterm_stops_every_worker(tmp_path: Path) -> None:
    srv = make_server(tmp_path, ("shared",), "--workers", "2")
    try:
        assert srv.process is not None
        pids = _children(srv.process.pid)
        srv.process.send_signal(signal.SIGTERM)
        assert srv.process.wait(timeout=30) == 0
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid)
    finally:
        srv.stop()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_workers_on_postgresql(tmp_path: Path) -> None:
    """On PostgreSQL the workers cache nothing (the store is shared), so they agree too."""
    from tests import pg

    if not pg.available():
        if os.environ.get("STRONGROOM_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed; make test installs it")
    url = pg.cluster().new_database("workers")
    srv = make_server(tmp_path, ("shared",), "--workers", "2", database_url=url)
    try:
        clients = _secret_clients(srv)
        for i in range(4):
            written = clients[i].set_secret("on-pg", f"value-{i}")
            for client in clients:
                got = client.get_secret("on-pg")
                assert got.properties.version == written.properties.version
    finally:
        srv.stop()


def _refused_everywhere(srv: Server, token: str, expected: int) -> list[int]:
    """The statuses of requests with ``token`` over new connections (spread over workers)."""
    statuses = []
    for _ in range(2 * CLIENTS):
        with httpx.Client(verify=srv.tls()) as client:
            statuses.append(
                client.get(
                    f"{srv.vault_url('shared')}/secrets?api-version=7.6",
                    headers={"Authorization": f"Bearer {token}"},
                ).status_code
            )
    assert set(statuses) == {expected}, statuses
    return statuses


def test_a_deleted_principal_is_refused_at_once_by_every_worker(workers: Server) -> None:
    made = cli(workers.data_dir, "principal", "create", "leaving", port=workers.port)
    leaving = Server(
        data_dir=workers.data_dir, port=workers.port, tenant_id=workers.tenant_id,
        client_id=made["clientId"], client_secret=made["clientSecret"],
    )  # fmt: skip
    token = leaving.token()
    _refused_everywhere(workers, token, 200)  # every worker has verified and cached it
    cli(workers.data_dir, "principal", "delete", "leaving")
    _refused_everywhere(workers, token, 401)
