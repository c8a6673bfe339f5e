"""Crash cycles: under concurrent writes, the server (or one of its workers) is killed with
SIGKILL at a random moment, then restarted; every acknowledged write must be there, exactly,
with its audit record, and nothing may be half-applied.

Each writer thread runs one request at a time, so at most one of its writes is in flight when
the kill lands: that one may or may not have happened, and either is checked to be whole. The
mix: new secret versions, new key versions (EC), and delete → purge → restore of a secret.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import pg
from tests.adversarial.conftest import scale
from tests.adversarial.report import record
from tests.conftest import Server, make_server

VAULT = "crash"
WRITERS = 4
# Kill cycles per configuration: 20 on each backend (SQLite: half of them killing one of two
# workers).
CYCLES = {
    ("sqlite", 1): scale(ci=10, soak=100),
    ("sqlite", 2): scale(ci=10, soak=100),
    ("postgresql", 1): scale(ci=20, soak=200),
}
WRITE_OPS = {"SecretSet", "KeyCreate", "SecretDelete", "SecretPurge", "SecretRestore"}


@dataclass
class Write:
    """One request a writer sent: what it asked, and what the server acknowledged."""

    request_id: str
    op: str  # SecretSet | KeyCreate | SecretDelete | SecretPurge | SecretRestore
    name: str
    value: str = ""
    version: str | None = None  # acknowledged version (sets and key creates)
    acked: bool = False


@dataclass
class Writer:
    index: int
    blob: str  # the backup of its restorable secret
    sent: list[Write] = field(default_factory=list)
    checked: int = 0  # writes before this index were checked after an earlier kill
    # The restorable secret's state after the last acknowledged step, and the step in flight.
    restorable: str = "present"  # present | deleted | absent

    @property
    def restorable_name(self) -> str:
        return f"restorable-{self.index}"


_NEXT = {"present": ("delete", "deleted"), "deleted": ("purge", "absent"),
         "absent": ("restore", "present")}  # fmt: skip


def _client(srv: Server, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=srv.vault_url(VAULT), verify=srv.tls(), timeout=10,
        headers={"Authorization": f"Bearer {token}"}, params={"api-version": "7.6"},
    )  # fmt: skip


def _send(http: httpx.Client, writer: Writer, op: str, method: str, path: str,
          name: str, body: Any = None, value: str = "") -> httpx.Response | None:  # fmt: skip
    write = Write(str(uuid.uuid4()), op, name, value)
    writer.sent.append(write)
    try:
        response = http.request(
            method, path, json=body, headers={"x-ms-client-request-id": write.request_id}
        )
    except httpx.HTTPError:
        return None  # in flight when the server died
    if response.status_code in (200, 204):
        write.acked = True
        payload = response.json() if response.content else {}
        ident = payload.get("id") or payload.get("key", {}).get("kid") or ""
        write.version = ident.rsplit("/", 1)[-1] if op in ("SecretSet", "KeyCreate") else None
    elif response.status_code < 500:
        raise AssertionError(f"{op} {path}: {response.status_code} {response.text}")
    return response


def _load(srv: Server, token: str, writer: Writer, stop: threading.Event) -> None:
    """Writes until ``stop`` or until the server is gone."""
    rng = random.Random(writer.index * 7919 + len(writer.sent))
    with _client(srv, token) as http:
        while not stop.is_set():
            pick = rng.random()
            if pick < 0.6:
                name = f"s{writer.index}-{rng.randrange(4)}"
                value = f"{writer.index}:{len(writer.sent)}:{uuid.uuid4().hex}"
                done = _send(http, writer, "SecretSet", "PUT", f"/secrets/{name}", name,
                             {"value": value}, value)  # fmt: skip
            elif pick < 0.8:
                name = f"k{writer.index}"
                done = _send(http, writer, "KeyCreate", "POST", f"/keys/{name}/create", name,
                             {"kty": "EC", "crv": "P-256"})  # fmt: skip
            else:
                step, after = _NEXT[writer.restorable]
                name = writer.restorable_name
                if step == "delete":
                    done = _send(http, writer, "SecretDelete", "DELETE", f"/secrets/{name}", name)
                elif step == "purge":
                    done = _send(http, writer, "SecretPurge", "DELETE",
                                 f"/deletedsecrets/{name}", name)  # fmt: skip
                else:
                    done = _send(http, writer, "SecretRestore", "POST", "/secrets/restore", name,
                                 {"value": writer.blob})  # fmt: skip
                if done is not None and writer.sent[-1].acked:
                    writer.restorable = after
            if done is None:
                return


def _kill(srv: Server, workers: int, rng: random.Random) -> str:
    """SIGKILL to the server, or (with workers) to one worker, which stops the rest."""
    assert srv.process is not None
    if workers == 1:
        srv.process.send_signal(signal.SIGKILL)
        srv.process.wait(timeout=30)
        what = "server"
    else:
        children = Path(f"/proc/{srv.process.pid}/task/{srv.process.pid}/children").read_text()
        victim = rng.choice([int(p) for p in children.split()])
        os.kill(victim, signal.SIGKILL)
        srv.process.wait(timeout=30)
        what = "worker"
    srv.process = None
    return what


def _structure_problems(srv: Server) -> list[str]:
    """Half-applied writes, read straight from the store: an object whose latest version is
    missing, a version without its object."""
    queries = [
        "SELECT o.lname FROM objects o LEFT JOIN versions v ON v.vault_id=o.vault_id AND "
        "v.kind=o.kind AND v.lname=o.lname AND v.version=o.latest_version WHERE v.version IS NULL",
        "SELECT v.lname FROM versions v LEFT JOIN objects o ON o.vault_id=v.vault_id AND "
        "o.kind=v.kind AND o.lname=v.lname WHERE o.lname IS NULL",
    ]
    problems: list[str] = []
    if srv.database_url:
        import psycopg

        with psycopg.connect(srv.database_url) as conn:
            for query in queries:
                problems += [f"{query[:40]}: {r}" for r in conn.execute(query).fetchall()]
        return problems
    with contextlib.closing(sqlite3.connect(srv.data_dir / "strongroom.db")) as conn:
        check = conn.execute("PRAGMA integrity_check").fetchall()
        if check != [("ok",)]:
            problems.append(f"integrity_check: {check}")
        for query in queries:
            problems += [f"{query[:40]}: {r}" for r in conn.execute(query).fetchall()]
    return problems


def _audited(srv: Server) -> dict[str, int]:
    """Request id -> status of every audited write, read straight from the store."""
    from strongroom.store.base import unpack_audit

    query = "SELECT records FROM audit_batches"
    if srv.database_url:
        import psycopg

        with psycopg.connect(srv.database_url) as conn:
            blobs = [bytes(r[0]) for r in conn.execute(query).fetchall()]
    else:
        with contextlib.closing(sqlite3.connect(srv.data_dir / "strongroom.db")) as conn:
            blobs = [bytes(r[0]) for r in conn.execute(query).fetchall()]
    return {
        r.request_id: r.status
        for blob in blobs
        for r in unpack_audit(blob)
        if r.operation in WRITE_OPS and r.request_id
    }


def _check(srv: Server, token: str, writers: list[Writer]) -> int:
    """Every acknowledged write since the last check is there exactly; the one in flight is
    whole or absent; every acknowledged write has its audit record, and every audited write
    happened. Returns how many acknowledged writes were checked."""
    audited = _audited(srv)
    checked = 0
    with _client(srv, token) as http:
        for writer in writers:
            fresh = writer.sent[writer.checked :]
            writer.checked = len(writer.sent)
            latest: dict[str, Write] = {}
            for write in fresh:
                if write.op == "SecretSet":
                    if write.acked:
                        got = http.get(f"/secrets/{write.name}/{write.version}")
                        assert got.status_code == 200, (write, got.text)
                        assert got.json()["value"] == write.value, write
                        checked += 1
                    latest[write.name] = write
                elif write.op == "KeyCreate" and write.acked:
                    got = http.get(f"/keys/{write.name}/{write.version}")
                    assert got.status_code == 200, (write, got.text)
                    checked += 1
                if write.acked:
                    assert 200 <= audited.get(write.request_id, 0) < 300, ("no audit", write)
                elif 200 <= audited.get(write.request_id, 0) < 300:
                    _assert_happened(http, write, writer)
            for name, last in latest.items():  # the latest version is the last write's
                got = http.get(f"/secrets/{name}/")
                earlier = [w for w in writer.sent if w.name == name and w.acked]
                if got.status_code == 404:  # only if no write of the name ever landed
                    assert not earlier and not last.acked, (name, last)
                    continue
                current = got.json()
                if last.acked:
                    assert current["id"].endswith(f"/{last.version}"), (name, current, last)
                elif current["value"] != last.value:  # the write in flight did not land
                    assert earlier and current["id"].endswith(f"/{earlier[-1].version}")
            _check_restorable(http, writer)
    return checked


def _assert_happened(http: httpx.Client, write: Write, writer: Writer) -> None:
    """An audited write whose answer never arrived must still have happened."""
    if write.op != "SecretSet":
        return
    ids: list[str] = []
    page = http.get(f"/secrets/{write.name}/versions").json()
    while True:
        ids += [item["id"].rsplit("/", 1)[-1] for item in page["value"]]
        if not page.get("nextLink"):
            break
        # Sent as given: the client's default params would replace the link's query.
        page = http.send(httpx.Request("GET", page["nextLink"], headers=http.headers)).json()
    known = {w.version for w in writer.sent if w.name == write.name and w.acked}
    values = {http.get(f"/secrets/{write.name}/{v}").json()["value"] for v in ids if v not in known}
    assert write.value in values, ("audited but not written", write)


def _check_restorable(http: httpx.Client, writer: Writer) -> None:
    name = writer.restorable_name
    live = http.get(f"/secrets/{name}/").status_code == 200
    deleted = http.get(f"/deletedsecrets/{name}").status_code == 200
    state = "present" if live else "deleted" if deleted else "absent"
    last = writer.sent[-1] if writer.sent else None
    in_flight = last is not None and not last.acked and last.name == name
    allowed = {writer.restorable}
    if in_flight:
        allowed.add(_NEXT[writer.restorable][1])
    assert state in allowed, (name, state, allowed)
    writer.restorable = state
    assert not (live and deleted)


@contextlib.contextmanager
def _server(tmp_path: Path, backend: str, workers: int) -> Iterator[Server]:
    url = pg.cluster().new_database("crash") if backend == "postgresql" else None
    extra = ("--workers", str(workers)) if workers > 1 else ()
    srv = make_server(tmp_path, (VAULT,), *extra, database_url=url)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("backend", "workers"),
    list(CYCLES),
    ids=["sqlite-one-process", "sqlite-two-workers", "postgresql-one-process"],
)
def test_no_acknowledged_write_is_lost_to_a_kill(
    tmp_path: Path, backend: str, workers: int
) -> None:
    if backend == "postgresql" and not pg.available():
        if os.environ.get("STRONGROOM_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed; make test installs it")
    rng = random.Random(f"{backend}-{workers}")
    with _server(tmp_path, backend, workers) as srv:
        token = srv.token()
        writers = []
        with _client(srv, token) as http:
            for i in range(WRITERS):
                name = f"restorable-{i}"
                assert http.put(f"/secrets/{name}", json={"value": f"r{i}"}).status_code == 200
                blob = http.post(f"/secrets/{name}/backup").json()["value"]
                writers.append(Writer(i, blob))
        checked = kills = 0
        started = time.monotonic()
        for _ in range(CYCLES[backend, workers]):
            stop = threading.Event()
            threads = [
                threading.Thread(target=_load, args=(srv, token, w, stop), daemon=True)
                for w in writers
            ]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.2, 1.0))
            _kill(srv, workers, rng)
            kills += 1
            stop.set()
            for t in threads:
                t.join(timeout=30)
                assert not t.is_alive()
            assert _structure_problems(srv) == []
            srv.start()
            checked += _check(srv, token, writers)
        acked = sum(w.acked for writer in writers for w in writer.sent)
        unacked = sum(not w.acked for writer in writers for w in writer.sent)
        assert checked > 0
        label = f"{backend}, {'one process' if workers == 1 else 'two workers, one killed'}"
        record("crash", {
            f"{label}: kill cycles": kills,
            f"{label}: writes acknowledged": acked,
            f"{label}: values and versions read back": checked,
            f"{label}: writes in flight at a kill": unacked,
            f"{label}: acknowledged writes lost": 0,
            f"{label}: seconds": round(time.monotonic() - started, 1),
        })  # fmt: skip
