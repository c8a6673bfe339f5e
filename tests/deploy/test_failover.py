"""Database failover (issue 23): two server processes on a PostgreSQL primary and its streaming
standby, named together in one multi-host URL with ``target_session_attrs=read-write``. The
primary stops, the standby is promoted, and the servers go on without a restart: the requests
made meanwhile fail as Key Vault's 503 ServiceUnavailable (never a 500, no traceback), the
others succeed, no acknowledged write is lost, ``/ready`` says 503 then 200, and revocations
are heard again (the listening connection is made again, on the new primary).

Run with ``-s`` to see the figures measured (how long requests failed, how many, recovery)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.secrets import SecretClient

from tests import pg
from tests.conftest import Server, another_process, ca_trusted, cli, make_server

pytestmark = pytest.mark.slow

VAULT = "failover"
# How long the primary stays stopped before the standby is promoted (seconds).
OUTAGE = float(os.environ.get("STRONGROOM_FAILOVER_OUTAGE", "3"))
# Longest requests may go on failing once the standby is promoted.
RECOVERY = 12.0


@dataclass
class Outcome:
    at: float  # time.monotonic() when the answer came
    server: int  # the server's port
    op: str  # "set" or "get"
    status: int  # HTTP status; 0 for no answer at all
    code: str = ""  # Key Vault's error code, for a failure
    retrying: bool = False  # made by a client with the SDK's retries on
    took: float = 0.0  # seconds, the SDK's retries included


@dataclass
class Load:
    """What the load threads saw: every answer, and every acknowledged write."""

    outcomes: list[Outcome] = field(default_factory=list)
    acked: dict[str, str] = field(default_factory=dict)  # name -> value
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def note(self, outcome: Outcome, written: tuple[str, str] | None = None) -> None:
        with self.lock:
            self.outcomes.append(outcome)
            if written is not None:
                self.acked[written[0]] = written[1]

    def successes(self, server: int, after: float = 0.0) -> int:
        with self.lock:
            return sum(
                1 for o in self.outcomes if o.server == server and o.status == 200 and o.at > after
            )


def _drive(server: Server, load: Load, prefix: str, retrying: bool = False) -> None:
    """Sets secrets (a new name each time), then reads each back, until told to stop. With
    the SDK's own retries off every failure is seen; with them on (``retrying``, the SDK's
    defaults, as an application has them), a call should ride out the switch."""
    options = {} if retrying else {"retry_total": 0}
    client = SecretClient(
        server.vault_url(VAULT), server.credential(), connection_verify=str(server.ca),
        **options,
    )  # fmt: skip
    for i in range(10**9):
        if load.stop.is_set():
            return
        name, value = f"{prefix}-{i}", os.urandom(12).hex()
        for op in ("set", "get"):
            started = time.monotonic()

            def outcome(status: int, code: str = "", op: str = op, t0: float = started) -> Outcome:
                now = time.monotonic()
                return Outcome(now, server.port, op, status, code, retrying, now - t0)

            try:
                if op == "set":
                    client.set_secret(name, value)
                else:
                    assert client.get_secret(name).value == value
            except HttpResponseError as exc:
                code = exc.error.code if exc.error is not None else ""
                load.note(outcome(exc.status_code or 0, code))
                if op == "set":
                    break  # it may or may not have been written: it is not acknowledged
            except Exception as exc:  # no answer at all: counted, and fails the test
                load.note(outcome(0, type(exc).__name__))
                time.sleep(0.05)
                break
            else:
                written = (name, value) if op == "set" else None
                load.note(outcome(200), written)


def _ready(server: Server) -> int:
    return httpx.get(f"{server.authority}/ready", verify=server.tls(), timeout=30).status_code


def _wait(what: str, condition: object, timeout: float) -> float:
    """Polls ``condition()`` until it is true; the time it took."""
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.1)
    return time.monotonic() - started


def _listeners(url: str) -> int:
    """Connections LISTENing for revocations on the database at ``url``."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN strongroom%%'"
        ).fetchone()
        return int(row[0]) if row else 0


def _token(server: Server, client_id: str, secret: str) -> str:
    answer = httpx.post(
        f"{server.authority}/{server.tenant_id}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": client_id,
              "client_secret": secret, "scope": f"{server.resource}/.default"},
        verify=server.tls(),
    )  # fmt: skip
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def _list_status(server: Server, token: str) -> int:
    return httpx.get(
        f"{server.vault_url(VAULT)}/secrets", params={"api-version": "7.6"},
        headers={"Authorization": f"Bearer {token}"}, verify=server.tls(), timeout=30,
    ).status_code  # fmt: skip


@pytest.fixture
def clusters() -> Iterator[tuple[pg.Cluster, pg.Cluster]]:
    if not pg.available():
        pytest.skip("PostgreSQL is not installed (make test installs it)")
    primary = pg.Cluster()
    try:
        standby = primary.standby()
        try:
            yield primary, standby
        finally:
            standby.stop()
    finally:
        primary.stop()


def test_servers_follow_a_promoted_standby_without_a_restart(
    tmp_path: Path, clusters: tuple[pg.Cluster, pg.Cluster]
) -> None:
    primary, standby = clusters
    database = primary.new_database("failover").rsplit("/", 1)[1]
    url = (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/{database}"
        "?target_session_attrs=read-write"
    )
    first = make_server(tmp_path, (VAULT,), database_url=url)
    servers = [first]
    try:
        servers.append(another_process(first))
        with ca_trusted(first.ca):
            _failover(servers, primary, standby, standby.url(database))
    finally:
        for server in servers:
            server.stop()
    for server in servers:
        log = (server.data_dir.parent / f"server-{server.port}.log").read_text(errors="replace")
        assert "Traceback" not in log, log[-3000:]


def _failover(
    servers: list[Server], primary: pg.Cluster, standby: pg.Cluster, new_primary: str
) -> None:
    load = Load()
    threads = [
        threading.Thread(target=_drive, args=(server, load, f"{kind}{n}", kind == "r"))
        for n, server in enumerate(servers)
        for kind in ("s", "r")  # one client without the SDK's retries, one with them
    ]
    for thread in threads:
        thread.start()
    try:
        for server in servers:
            _wait("load before the failover", lambda s=server: load.successes(s.port) >= 10, 30)

        stopped = time.monotonic()
        primary.halt()
        # Neither host takes writes: every server says it is not ready.
        for server in servers:
            assert _ready(server) == 503
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))
        standby.promote()
        promoted = time.monotonic()
        ready_after = max(
            _wait("/ready after promotion", lambda s=server: _ready(s) == 200, RECOVERY)
            for server in servers
        )
        for server in servers:
            _wait(
                "requests after promotion",
                lambda s=server: load.successes(s.port, after=time.monotonic() - 1.0) >= 10,
                RECOVERY,
            )
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=60)

    failed = [o for o in load.outcomes if o.status != 200]
    answered = [o for o in load.outcomes if o.status == 200 and not o.retrying]
    retried = [o for o in load.outcomes if o.retrying]
    gave_up = [o for o in failed if o.retrying]
    if OUTAGE <= 3:  # the SDK's default retries span about 5 s
        assert not gave_up, "the SDK's retries did not ride it out"
    for outcome in failed:
        assert (outcome.status, outcome.code) == (503, "ServiceUnavailable"), outcome
    assert all(stopped <= o.at for o in failed)
    plain = [o for o in failed if not o.retrying]  # failures the clients saw at once
    last_failure = max((o.at for o in plain), default=stopped)
    assert last_failure - promoted < RECOVERY
    recovered = {
        server.port: min(o.at for o in answered if o.server == server.port and o.at > promoted)
        - promoted
        for server in servers
    }
    first_failure = min((o.at - o.took for o in plain), default=stopped)
    print(
        f"\nfailover: primary stopped, standby promoted {promoted - stopped:.1f} s later; "
        f"{len(plain)} requests failed (all 503 ServiceUnavailable), sent from "
        f"{first_failure - stopped:+.2f} s, answered until "
        f"{last_failure - stopped:+.2f} s from the stop "
        f"({last_failure - first_failure:.2f} s; sets {sum(o.op == 'set' for o in plain)}, "
        f"gets {sum(o.op == 'get' for o in plain)}, the slowest to fail "
        f"{max((o.took for o in plain), default=0):.2f} s), {len(answered)} succeeded "
        f"(after the stop: {sum(o.at > stopped for o in answered)}); first success "
        f"per server {', '.join(f'{t:.2f}' for t in recovered.values())} s after promotion; "
        f"/ready 200 on both {ready_after:.2f} s after promotion; "
        f"{len(load.acked)} acknowledged writes; with the SDK's default retries "
        f"{len(retried)} calls, {len(gave_up)} failed, the slowest "
        f"{max(o.took for o in retried):.2f} s"
    )

    # Every acknowledged write is on the new primary, through either server.
    with SecretClient(
        servers[1].vault_url(VAULT), servers[1].credential(), connection_verify=str(servers[1].ca)
    ) as client:
        for name, value in load.acked.items():
            assert client.get_secret(name).value == value, name

    # Both processes LISTEN again, on the new primary, and hear a revocation made there.
    _wait("both revocation listeners back", lambda: _listeners(new_primary) == 2, 10)
    doomed = cli(servers[0].data_dir, "principal", "create", "doomed", port=servers[0].port)
    tokens = {s.port: _token(s, doomed["clientId"], doomed["clientSecret"]) for s in servers}
    for server in servers:
        assert _list_status(server, tokens[server.port]) == 200
    cli(servers[0].data_dir, "principal", "delete", "doomed")
    for server in servers:
        _wait(
            "the deleted principal refused",
            lambda s=server: _list_status(s, tokens[s.port]) == 401,
            5,
        )


def _caught_up(primary: pg.Cluster, standby: pg.Cluster) -> None:
    """Waits until the standby has replayed everything the primary has written."""
    with psycopg.connect(primary.url(), autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    with psycopg.connect(standby.url(), autocommit=True) as conn:
        _wait(
            "the standby catching up",
            lambda: bool(
                conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (row[0],)).fetchone()[
                    0
                ]  # type: ignore[index]
            ),
            10,
        )


def _unavailable(exc: HttpResponseError) -> bool:
    return (
        exc.status_code == 503
        and exc.error is not None
        and exc.error.code == ("ServiceUnavailable")
    )


def test_writes_reaching_a_read_only_standby_are_503_until_it_is_promoted(
    tmp_path: Path, clusters: tuple[pg.Cluster, pg.Cluster]
) -> None:
    """Without target_session_attrs, libpq takes the first host that answers: the standby
    once the primary is gone. Reads go on there; writes fail as 503 (never a 500) until the
    standby is promoted, and then succeed on the same connections' successors."""
    primary, standby = clusters
    database = primary.new_database("readonly").rsplit("/", 1)[1]
    url = f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/{database}"
    server = make_server(tmp_path, (VAULT,), database_url=url)
    try:
        client = SecretClient(
            server.vault_url(VAULT), server.credential(), connection_verify=str(server.ca),
            retry_total=0,
        )  # fmt: skip
        client.set_secret("before", "the stop")
        _caught_up(primary, standby)
        primary.halt()

        def read() -> bool:
            try:
                return client.get_secret("before").value == "the stop"
            except HttpResponseError as exc:
                assert _unavailable(exc), exc
                return False

        _wait("reads served by the standby", read, 10)
        for n in range(5):
            with pytest.raises(HttpResponseError) as refused:
                client.set_secret(f"during-{n}", "the outage")
            assert _unavailable(refused.value), refused.value
        ready = httpx.get(f"{server.authority}/ready", verify=server.tls(), timeout=30)
        assert ready.status_code == 503 and "standby" in ready.json()["reason"]

        standby.promote()

        def write() -> bool:
            try:
                client.set_secret("after", "the promotion")
                return True
            except HttpResponseError as exc:
                assert _unavailable(exc), exc
                return False

        _wait("writes after promotion", write, RECOVERY)
        assert client.get_secret("after").value == "the promotion"
        assert _ready(server) == 200
    finally:
        server.stop()
    log = (server.data_dir.parent / f"server-{server.port}.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
