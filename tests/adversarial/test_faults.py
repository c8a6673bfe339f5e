"""Broken machines: a data directory whose disk fills up, and a PostgreSQL server that restarts
and then stays down for 10 seconds, both while the server is under load. Failing requests get
Key Vault's error shape with 503 ``ServiceUnavailable`` (never a 500, never a hang longer than
the store's timeouts), nothing already stored is lost, and the server recovers by itself."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests import pg
from tests.adversarial.conftest import scale
from tests.adversarial.report import record
from tests.conftest import Server, make_server

# The longest any request may take while the store is failing: the PostgreSQL store's pool
# timeout (5 s) and connect timeout (3 s), with room for a loaded machine.
STORE_TIMEOUT = 10.0


def _client(srv: Server, vault: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=srv.vault_url(vault), verify=srv.tls(), timeout=30,
        headers={"Authorization": f"Bearer {token}"}, params={"api-version": "7.6"},
    )  # fmt: skip


def _is_unavailable(response: httpx.Response) -> bool:
    if response.status_code != 503:
        return False
    error = response.json()["error"]
    return error["code"] == "ServiceUnavailable" and bool(error["message"])


def _no_tracebacks(srv: Server) -> None:
    log = srv.data_dir.parent / f"server-{srv.port}.log"  # where tests.conftest puts it
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]


# -- a full disk ---------------------------------------------------------------------------


@contextlib.contextmanager
def _small_disk(path: Path, megabytes: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0700", "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk test (run as root): {mounted.stderr}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def test_a_full_disk_fails_writes_cleanly_and_loses_nothing(tmp_path: Path) -> None:
    with _small_disk(tmp_path / "disk", 24) as disk:
        srv = make_server(disk, ("full",))
        try:
            _fill_and_recover(srv, disk)
        finally:
            srv.stop()


def _fill_and_recover(srv: Server, disk: Path) -> None:
    # Room to give back later: freed, it lets writes succeed again without a restart.
    ballast = disk / "ballast"
    ballast.write_bytes(os.urandom(6 * 1024 * 1024))
    stored: dict[str, str] = {}
    failures: list[httpx.Response] = []
    started = time.monotonic()
    with _client(srv, "full", srv.token()) as http:
        for i in range(4000):
            value = os.urandom(9 * 1024).hex()  # 18 KiB, incompressible
            response = http.put(f"/secrets/fill-{i % 50}", json={"value": value})
            if response.status_code == 200:
                stored[response.json()["id"]] = value
                continue
            failures.append(response)
            if len(failures) >= 5:
                break
        assert failures, "the disk never filled"
        assert all(_is_unavailable(r) for r in failures), [r.text for r in failures]
        filled_after = len(stored)
        # Reads keep working while the disk is full.
        some = list(stored.items())[-20:]
        for ident, value in some:
            assert http.get(ident).json()["value"] == value
        assert http.get("/secrets").status_code == 200
        still = http.put("/secrets/one-more", json={"value": os.urandom(9 * 1024).hex()})
        assert _is_unavailable(still), still.text
        # Space comes back: writes succeed again, with no restart.
        ballast.unlink()
        deadline = time.monotonic() + 30
        while True:
            again = http.put("/secrets/after", json={"value": "back"})
            if again.status_code == 200 or time.monotonic() > deadline:
                break
            assert _is_unavailable(again), again.text
            time.sleep(0.2)
        assert again.status_code == 200, again.text
        recovered_after = time.monotonic()
        # Nothing stored before was lost or damaged.
        for ident, value in stored.items():
            got = http.get(ident)
            assert got.status_code == 200 and got.json()["value"] == value, ident
    with contextlib.closing(sqlite3.connect(srv.data_dir / "strongroom.db")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    _no_tracebacks(srv)
    record("disk", {
        "disk size (MiB)": 24,
        "secret versions written before the disk filled": filled_after,
        "writes refused while full (all 503 ServiceUnavailable)": len(failures) + 1,
        "reads while full": len(some) + 1,
        "stored values checked after recovery": len(stored),
        "seconds from filling to writing again": round(recovered_after - started, 1),
        "500s": 0,
    })  # fmt: skip


# -- losing the database server --------------------------------------------------------------


@dataclass
class Outcome:
    started: float
    seconds: float
    status: int
    unavailable: bool


@dataclass
class Load:
    outcomes: list[Outcome] = field(default_factory=list)
    acked: dict[str, str] = field(default_factory=dict)  # secret id -> value
    stop: threading.Event = field(default_factory=threading.Event)


def _drive(srv: Server, token: str, load: Load, index: int) -> None:
    with _client(srv, "lost", token) as http:
        i = 0
        while not load.stop.is_set():
            i += 1
            value = f"{index}-{i}-{uuid.uuid4().hex}"
            begun = time.monotonic()
            try:
                if i % 2:
                    response = http.put(f"/secrets/pg-{index}", json={"value": value})
                else:
                    response = http.get(f"/secrets/pg-{index}/")
            except httpx.HTTPError as exc:
                raise AssertionError(f"the server dropped a request: {exc!r}") from exc
            took = time.monotonic() - begun
            status = response.status_code
            load.outcomes.append(Outcome(begun, took, status, _is_unavailable(response)))
            if status == 200 and i % 2:
                load.acked[response.json()["id"]] = value
            elif status not in (200, 404) and not _is_unavailable(response):
                raise AssertionError(f"{status}: {response.text}")
            time.sleep(0.01)


def test_losing_postgresql_fails_requests_cleanly_and_recovers(tmp_path: Path) -> None:
    if not pg.available():
        if os.environ.get("STRONGROOM_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed; make test installs it")
    cluster = pg.Cluster()  # a server of its own, to restart and stop
    down_for = scale(ci=10.0, soak=30.0)
    try:
        srv = make_server(tmp_path, ("lost",), database_url=cluster.new_database("lost"))
        try:
            token = srv.token()
            load = Load()
            threads = [
                threading.Thread(target=_drive, args=(srv, token, load, i), daemon=True)
                for i in range(3)
            ]
            for t in threads:
                t.start()
            time.sleep(1.5)
            restart_at = time.monotonic()
            cluster.restart()
            time.sleep(2.0)
            down_at = time.monotonic()
            cluster.halt()
            time.sleep(down_for)
            cluster.start()
            up_at = time.monotonic()
            deadline = up_at + 30
            while time.monotonic() < deadline:
                recent = [o for o in load.outcomes if o.started > up_at]
                if len(recent) > 20 and all(o.status == 200 for o in recent[-10:]):
                    break
                time.sleep(0.2)
            load.stop.set()
            for t in threads:
                t.join(timeout=60)
                assert not t.is_alive()
            outcomes = load.outcomes
            recovered = [o for o in outcomes if o.started > up_at and o.status == 200]
            assert recovered, "requests never succeeded again after the database came back"
            back_after = min(o.started + o.seconds for o in recovered) - up_at
            during = [o for o in outcomes if down_at <= o.started < up_at]
            assert during and all(o.unavailable for o in during if o.status != 200)
            assert sum(o.unavailable for o in during) > 0
            slowest = max(o.seconds for o in outcomes)
            assert slowest < STORE_TIMEOUT, slowest
            assert not [o for o in outcomes if o.status >= 500 and not o.unavailable]
            with _client(srv, "lost", token) as http:
                for ident, value in load.acked.items():
                    assert http.get(ident).json()["value"] == value
            _no_tracebacks(srv)
            record("database", {
                "requests": len(outcomes),
                "restart of PostgreSQL after (s)": round(restart_at - outcomes[0].started, 1),
                "PostgreSQL down for (s)": down_for,
                "requests while down": len(during),
                "of which 503 ServiceUnavailable": sum(o.unavailable for o in during),
                "500s": 0,
                "slowest request (s)": round(slowest, 2),
                "first success after PostgreSQL was back (s)": round(back_after, 2),
                "acknowledged writes checked afterwards": len(load.acked),
            })  # fmt: skip
        finally:
            srv.stop()
    finally:
        cluster.stop()
