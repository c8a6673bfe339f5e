"""How cost grows with the data: a large installation beside a small one, in the same run.

The large installation holds ``--vaults`` (100) vaults of ``--secrets`` (10,000) secrets of
``--versions`` (3) versions each: 3 million versions. The small one holds ``--small-vaults``
(1) of ``--small-secrets`` (1,000), of as many versions. Both are filled in-process through
the project's own store and sealing (``SecretService.seal``, ``SqlTx.insert_*``), in large
transactions, in ``--fill-procs`` processes (each its own vaults; SQLite takes their
transactions in turn), and kept under ``--data-dir`` so that a later run skips the fill.

Then both servers run side by side (``strongroom serve``, the server's default ``--workers``
unless given) and, small and large interleaved in every round so the VM's drift hits both:

* start-up: from starting ``serve`` to its first answer (``/health``), then to a first secret
  read through the data plane;
* wrk over TLS: GET and durable SET (PUT, a new version) of random secrets of random vaults
  (a Lua script draws each request's vault and name), the target being large >= 0.90 small;
* paging: every page of one vault's secret list through ``nextLink``, and the versions list of
  random secrets;
* RSS of each server process after the load, and database bytes per version.

    .venv/bin/python bench/scale.py --data-dir /var/tmp/strongroom-scale
    .venv/bin/python bench/scale.py --vaults 4 --secrets 2000 --data-dir /tmp/s   # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from secrets_throughput import (
    _LUA_COMMON,
    API,
    BenchError,
    Child,
    Children,
    ensure_wrk,
    fetch_token,
    filesystem_of,
    free_port,
    lua_str,
    print_table,
    run_bench,
    run_cli,
    run_wrk,
    start_server,
)

TARGET = 0.90
PRINCIPAL = "scalebench"
MARKER = "bench-scale.json"  # in the data directory: what was filled, and the principal


def vault_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(count)]


def secret_name(j: int) -> str:
    return f"s{j:05d}"


# -- the fill (in-process, through the store) -------------------------------------------------


def fill_vaults(data_dir: Path, names: list[str], secrets: int, versions: int) -> int:
    """Fills the named vaults (which exist) with ``secrets`` secrets of ``versions`` versions,
    sealed as the server seals them; returns the versions written."""
    from strongroom.config import Settings
    from strongroom.identifiers import new_version
    from strongroom.services.installation import open_installation
    from strongroom.services.secrets import SecretService
    from strongroom.store.base import ObjectRecord, Tx, VersionRecord

    inst = open_installation(Settings(data_dir=data_dir))
    service = SecretService(inst)
    store = inst.store
    now = inst.clock.now()
    chunk = 2000  # secrets per transaction
    written = 0
    pending: list[Any] = []
    try:
        for vault_name in names:
            vault = store.reads.get_vault(vault_name)
            assert vault is not None, vault_name
            for start in range(0, secrets, chunk):
                objects: list[ObjectRecord] = []
                rows: list[VersionRecord] = []
                for j in range(start, min(start + chunk, secrets)):
                    lname = secret_name(j)
                    version = ""
                    for k in range(versions):
                        version = new_version()
                        value = f"value-{vault_name}-{lname}-{k}-".ljust(40, "x").encode()
                        rows.append(VersionRecord(
                            vault.id, "secret", lname, version, now, now, True, None, None,
                            None, None, service.seal(vault, lname, version, value),
                        ))  # fmt: skip
                    objects.append(
                        ObjectRecord(vault.id, "secret", lname, lname, version, None, None)
                    )

                def write(tx: Tx, objects: list[ObjectRecord] = objects,
                          rows: list[VersionRecord] = rows) -> None:  # fmt: skip
                    for obj in objects:
                        tx.insert_object(obj)
                    for row in rows:
                        tx.insert_version(row)

                # One transaction in flight while the next one is sealed.
                pending.append(store.transact(write))
                if len(pending) > 1:
                    pending.pop(0).result()
                written += len(rows)
        for fut in pending:
            fut.result()
    finally:
        store.close()
    return written


def fill(data_dir: Path, prefix: str, vaults: int, secrets: int, versions: int, procs: int,
         port: int) -> dict[str, Any]:  # fmt: skip
    """Makes (or finds, from its marker) a filled installation; returns its marker."""
    marker = data_dir / MARKER
    wanted = {"prefix": prefix, "vaults": vaults, "secrets": secrets, "versions": versions}
    if marker.exists():
        found: dict[str, Any] = json.loads(marker.read_text())
        if {k: found.get(k) for k in wanted} == wanted:
            print(f"{data_dir}: filled before ({found['fill_seconds']:.0f} s), kept",
                  file=sys.stderr)  # fmt: skip
            return found
        raise BenchError(f"{data_dir} holds another fill ({found}); give another --data-dir")
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BenchError(f"{data_dir} is not empty and has no {MARKER}; give an empty one")
    data_dir.mkdir(parents=True, exist_ok=True)
    where = ["--data-dir", str(data_dir), "--port", str(port)]
    principal = run_cli(["principal", "create", PRINCIPAL, *where])
    names = vault_names(prefix, vaults)
    from strongroom.config import Settings
    from strongroom.services.installation import open_installation
    from strongroom.services.vaults import VaultService

    inst = open_installation(Settings(data_dir=data_dir))
    try:
        service = VaultService(inst)
        for name in names:
            service.create(name, open_access=True)
    finally:
        inst.store.close()
    started = time.perf_counter()
    groups = [names[i::procs] for i in range(procs)]
    argv = [sys.executable, __file__, "--fill-worker", str(data_dir)]
    children = [
        subprocess.Popen([*argv, ",".join(group), str(secrets), str(versions)])
        for group in groups
        if group
    ]
    for child in children:
        if child.wait() != 0:
            raise BenchError(f"a fill process exited with {child.returncode}")
    seconds = time.perf_counter() - started
    db = data_dir / "strongroom.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    total = vaults * secrets * versions
    print(f"{data_dir}: filled {total:,} versions in {seconds:.1f} s "
          f"({total / seconds:,.0f}/s, {procs} process(es))", file=sys.stderr)  # fmt: skip
    found = {**wanted, "principal": principal, "fill_seconds": seconds, "fill_procs": procs,
             "db_bytes_after_fill": db.stat().st_size}  # fmt: skip
    marker.write_text(json.dumps(found))
    return found


# -- measuring --------------------------------------------------------------------------------


_RANDOM_REQUEST = """
local hosts = {%(hosts)s}
local auth = %(auth)s
local secrets = %(secrets)d
local method = %(method)s
local body = %(body)s
local headers = {}
local seeded = false

local common_setup = setup
function setup(thread)
  thread:set("seed", #threads + 1)
  common_setup(thread)
end

function request()
  if not seeded then
    math.randomseed(os.time() * 1000 + seed * 7919)
    seeded = true
  end
  headers["Host"] = hosts[math.random(#hosts)]
  headers["Authorization"] = auth
  if body ~= nil then
    headers["Content-Type"] = "application/json"
  end
  local path = string.format("/secrets/s%%05d%(tail)s", math.random(0, secrets - 1))
  return wrk.format(method, path, headers, body)
end
"""


def random_script(hosts: list[str], token: str, secrets: int, method: str) -> str:
    """A wrk script whose every request reads (GET) or writes (PUT) a random secret of a
    random vault."""
    body = '{"value":"scale-benchmark-value-0123456789abcdef"}' if method == "PUT" else None
    return _LUA_COMMON + _RANDOM_REQUEST % {
        "hosts": ", ".join(lua_str(h) for h in hosts),
        "auth": lua_str("Bearer " + token),
        "secrets": secrets,
        "method": lua_str(method),
        "body": "nil" if body is None else lua_str(body),
        "tail": ("/?" if method == "GET" else "?") + API,
    }


@dataclass
class Side:
    """One installation under test (small or large)."""

    label: str
    data_dir: Path
    marker: dict[str, Any]
    port: int = 0
    server: Child | None = None
    ctx: Any = None
    token: str = ""
    starts: list[tuple[float, float]] = field(default_factory=list)  # (health, first read)
    get: list[float] = field(default_factory=list)
    set: list[float] = field(default_factory=list)
    get_p99: list[float] = field(default_factory=list)
    set_p99: list[float] = field(default_factory=list)
    page_ms: list[float] = field(default_factory=list)  # per page of the secret list
    list_s: list[float] = field(default_factory=list)  # the whole list
    first_pages_ms: list[float] = field(default_factory=list)
    last_pages_ms: list[float] = field(default_factory=list)
    pages: int = 0
    listed: int = 0
    versions_ms: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)

    @property
    def hosts(self) -> list[str]:
        names = vault_names(self.marker["prefix"], self.marker["vaults"])
        return [f"{n}.vault.localhost:{self.port}" for n in names]

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def start(side: Side, children: Children, workdir: Path, workers: int | None) -> None:
    side.port = free_port()
    began = time.perf_counter()
    log = workdir / f"{side.label}-server.log"
    side.server, side.ctx = start_server(side.data_dir, log, children, side.port, workers)
    health = time.perf_counter() - began
    side.token = fetch_token(side.port, side.ctx, side.marker["principal"])
    host = side.hosts[-1]
    with httpx.Client(verify=side.ctx, timeout=30) as client:
        r = client.get(f"{side.base}/secrets/{secret_name(side.marker['secrets'] - 1)}/?{API}",
                       headers={"Host": host, "Authorization": f"Bearer {side.token}"})  # fmt: skip
        if r.status_code != 200:
            raise BenchError(f"{side.label}: first read answered {r.status_code}: {r.text[:300]}")
    first = time.perf_counter() - began
    side.starts.append((health, first))


def rss_mib(pid: int) -> list[float]:
    """VmRSS of a server and of each of its child processes, MiB."""
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    out = []
    for p in [pid, *(int(k) for k in kids)]:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out.append(int(line.split()[1]) / 1024)
    return out


def page_through(side: Side) -> None:
    """Every page of the first vault's secret list, through nextLink; then the versions list
    of 200 random secrets of random vaults."""
    hosts = side.hosts
    headers = {"Host": hosts[0], "Authorization": f"Bearer {side.token}"}
    times: list[float] = []
    listed = 0
    with httpx.Client(verify=side.ctx, timeout=30) as client:
        url: str | None = f"{side.base}/secrets?{API}"
        while url:
            t0 = time.perf_counter()
            r = client.get(url, headers=headers)
            times.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise BenchError(f"{side.label}: list answered {r.status_code}: {r.text[:300]}")
            body = r.json()
            listed += len(body["value"])
            link = body.get("nextLink")
            if link:
                parts = urllib.parse.urlsplit(link)
                url = f"{side.base}{parts.path}?{parts.query}"
            else:
                url = None
        side.pages, side.listed = len(times), listed
        side.page_ms.append(statistics.median(times))
        side.list_s.append(sum(times) / 1000)
        side.first_pages_ms.append(statistics.median(times[:10]))
        side.last_pages_ms.append(statistics.median(times[-10:]))
        rng = random.Random(len(side.versions_ms))
        vtimes = []
        for _ in range(200):
            h = {"Host": rng.choice(hosts), "Authorization": f"Bearer {side.token}"}
            name = secret_name(rng.randrange(side.marker["secrets"]))
            t0 = time.perf_counter()
            r = client.get(f"{side.base}/secrets/{name}/versions?{API}", headers=h)
            vtimes.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200 or not r.json()["value"]:
                raise BenchError(f"{side.label}: versions answered {r.status_code}: {r.text[:300]}")
        side.versions_ms.append(statistics.median(vtimes))


def db_figures(side: Side) -> tuple[int, int]:
    """(bytes of the database's pages in use and of its write-ahead log, versions held). Pages
    freed (by a schema upgrade's rebuild, by purges) stay in the file for SQLite to reuse and
    are not counted."""
    db = side.data_dir / "strongroom.db"
    wal = db.with_name(db.name + "-wal")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        pages -= conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = pages * conn.execute("PRAGMA page_size").fetchone()[0]
        size += wal.stat().st_size if wal.exists() else 0
        count = int(conn.execute("SELECT count(*) FROM versions").fetchone()[0])
    finally:
        conn.close()
    return size, count


def bench(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    wrk = ensure_wrk()
    root = args.data_dir or workdir
    print(f"data under {root} ({filesystem_of(root if root.exists() else root.parent)})",
          file=sys.stderr)  # fmt: skip
    cli_port = free_port()
    sides = [
        Side("small", root / "small", fill(root / "small", "small", args.small_vaults,
             args.small_secrets, args.versions, 1, cli_port)),
        Side("large", root / "large", fill(root / "large", "scale", args.vaults, args.secrets,
             args.versions, args.fill_procs, cli_port)),
    ]  # fmt: skip
    # Start-up, small and large in turn; the last start of each stays up for the load.
    for n in range(args.starts):
        for side in sides if n % 2 == 0 else sides[::-1]:
            start(side, children, workdir, args.workers)
            print(f"  start {side.label}: answered after {side.starts[-1][0]:.2f} s, "
                  f"first read {side.starts[-1][1]:.2f} s", file=sys.stderr)  # fmt: skip
            if n < args.starts - 1:
                assert side.server is not None
                children.stop(side.server)
    opts = {"threads": args.threads, "connections": args.connections, "duration": args.duration}
    for n in range(args.rounds):
        print(f"round {n + 1} of {args.rounds} ...", file=sys.stderr, flush=True)
        order = sides if n % 2 == 0 else sides[::-1]
        for method, figures in (("GET", "get"), ("PUT", "set")):
            for side in order:
                script = random_script(side.hosts, side.token, side.marker["secrets"], method)
                result = run_wrk(wrk, f"{method} {side.label}", side.base + "/", script, workdir,
                                 **opts)  # fmt: skip
                getattr(side, figures).append(result.rps)
                getattr(side, figures + "_p99").append(result.p99_ms)
        for side in order:
            page_through(side)
        for side in sides:
            assert side.server is not None
            if side.server.proc.poll() is not None:
                raise BenchError(f"{side.label} server exited:\n{side.server.tail()}")
    for side in sides:
        assert side.server is not None
        side.rss_mib = rss_mib(side.server.proc.pid)
    for side in sides:
        assert side.server is not None
        children.stop(side.server)
    small, large = sides
    sizes = {s.label: db_figures(s) for s in sides}

    def med(values: list[float]) -> float:
        return statistics.median(values)

    print()
    print(
        f"Strongroom at scale: large {large.marker['vaults']} vaults x "
        f"{large.marker['secrets']:,} secrets x {large.marker['versions']} versions, small "
        f"{small.marker['vaults']} x {small.marker['secrets']:,} x {small.marker['versions']}; "
        f"{args.rounds} rounds of wrk -t{args.threads} -c{args.connections} "
        f"-d{max(1, round(args.duration))}s (random secret of a random vault per request), "
        f"{os.cpu_count()} CPUs, serve --workers {args.workers or '(default)'}, data on "
        f"{filesystem_of(root)}"
    )
    rows = [("round", "GET small", "GET large", "ratio", "SET small", "SET large", "ratio")]
    for n in range(args.rounds):
        rows.append((
            str(n + 1), f"{small.get[n]:,.0f}", f"{large.get[n]:,.0f}",
            f"{large.get[n] / small.get[n]:.2f}", f"{small.set[n]:,.0f}", f"{large.set[n]:,.0f}",
            f"{large.set[n] / small.set[n]:.2f}",
        ))  # fmt: skip
    print_table(rows)
    print()
    get_ratio = med([b / a for a, b in zip(small.get, large.get, strict=True)])
    set_ratio = med([b / a for a, b in zip(small.set, large.set, strict=True)])

    def row(name: str, a: float, b: float, fmt: str) -> tuple[str, ...]:
        return (name, format(a, fmt), format(b, fmt), f"{b / a:.2f}" if a else "-")

    table = [
        ("figure (median of rounds)", "small", "large", "large / small"),
        row("GET random secret, req/s", med(small.get), med(large.get), ",.0f"),
        row("GET p99, ms", med(small.get_p99), med(large.get_p99), ".1f"),
        row("SET random secret, req/s", med(small.set), med(large.set), ",.0f"),
        row("SET p99, ms", med(small.set_p99), med(large.set_p99), ".1f"),
        row("secret list, ms per page", med(small.page_ms), med(large.page_ms), ".2f"),
        row("  first 10 pages, ms per page", med(small.first_pages_ms),
            med(large.first_pages_ms), ".2f"),
        row("  last 10 pages, ms per page", med(small.last_pages_ms), med(large.last_pages_ms),
            ".2f"),
        row("  whole vault, pages", small.pages, large.pages, ",.0f"),
        row("  whole vault, s", med(small.list_s), med(large.list_s), ".2f"),
        row("versions list, ms", med(small.versions_ms), med(large.versions_ms), ".2f"),
        row("start until /health answers, s", med([s[0] for s in small.starts]),
            med([s[0] for s in large.starts]), ".2f"),
        row("start until a first secret read, s", med([s[1] for s in small.starts]),
            med([s[1] for s in large.starts]), ".2f"),
        row("RSS per server process, MiB (max)", max(small.rss_mib), max(large.rss_mib), ".0f"),
        row("versions held", sizes["small"][1], sizes["large"][1], ",.0f"),
        row("database bytes per version", sizes["small"][0] / sizes["small"][1],
            sizes["large"][0] / sizes["large"][1], ",.0f"),
    ]  # fmt: skip
    print_table(table)
    print(f"RSS of each process (MiB): small {', '.join(f'{r:.0f}' for r in small.rss_mib)}; "
          f"large {', '.join(f'{r:.0f}' for r in large.rss_mib)}")  # fmt: skip
    print(f"fill of the large installation: {large.marker['fill_seconds']:.0f} s in "
          f"{large.marker['fill_procs']} process(es)")  # fmt: skip
    print()
    print_table([
        ("target", "median ratio", "target", "met"),
        ("GET large / small", f"{get_ratio:.2f}", f">= {TARGET:.2f}",
         "yes" if get_ratio >= TARGET else "NO"),
        ("SET large / small", f"{set_ratio:.2f}", f">= {TARGET:.2f}",
         "yes" if set_ratio >= TARGET else "NO"),
    ])  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--vaults", type=int, default=100)
    parser.add_argument("--secrets", type=int, default=10_000, help="per vault (10,000)")
    parser.add_argument("--versions", type=int, default=3, help="per secret (3)")
    parser.add_argument("--small-vaults", type=int, default=1)
    parser.add_argument("--small-secrets", type=int, default=1_000)
    parser.add_argument("--fill-procs", type=int, default=1, help="processes filling (1)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the installations are kept between runs (default: a temp "
                        "dir, removed after)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--starts", type=int, default=3, help="server starts per side (3)")
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run (5)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None,
                        help="serve --workers (default: the server's own default)")  # fmt: skip
    parser.add_argument("--fill-worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill_worker:
        data_dir, names, secrets, versions = args.fill_worker
        fill_vaults(Path(data_dir), names.split(","), int(secrets), int(versions))
        return 0
    if args.rounds < 1 or args.starts < 1 or args.fill_procs < 1:
        parser.error("--rounds, --starts and --fill-procs must be at least 1")
    return run_bench(bench, args, "strongroom-scale-", None)


if __name__ == "__main__":
    sys.exit(main())
