"""Throughput of Strongroom's secret GET and SET against a bare ASGI endpoint and raw SQLite.

One run: make a throwaway installation (vault + principal through the CLI), start the real
server, get a token, then, in each of several rounds (``--rounds``, 3), measure back to back:

* raw SQLite committing one row per transaction in WAL with synchronous=FULL, in the same temp
  dir (the baseline for SET);
* with wrk (TLS, keep-alive): a bare ASGI app on the same server stack
  (``strongroom.server.run``: granian's HTTP and TLS, the app on uvloop) as the ceiling for any
  request; ``GET /secrets/s1/``; and ``PUT /secrets/s2`` (a new durable version per request).

Each round gives GET/bare and SET/SQLite; the targets (GET at least 0.60 of bare, SET at least
the SQLite rate) are judged on the median of the rounds. On this VM a figure drifts by 10-20%
over a minute, so a ratio of two figures taken a round apart says more than one taken
a whole run apart.

Run with the project's venv: ``.venv/bin/python bench/secrets_throughput.py``. It exits 0 whether
or not the targets are met, and non-zero when something fails (including any non-2xx response).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

VAULT = "benchvault"
PRINCIPAL = "bench"
API = "api-version=7.6"
SET_BODY = '{"value":"benchmark-value"}'
GET_TARGET = 0.60
SET_TARGET = 1.0
BARE_BODY = b'{"value":"x"}'
WRK = "wrk"


class BenchError(Exception):
    """A failure that makes the figures worthless; the script exits non-zero."""


# -- the bare endpoint (runs in its own process: ``--bare-server``) ------------------------------


async def lifespan(receive: Any, send: Any, on_shutdown: Callable[[], None] | None = None) -> None:
    """Answers an ASGI lifespan's messages until its shutdown (for the bench's bare apps)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if on_shutdown is not None:
                on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal raw ASGI app: reads any request body, answers 200 with a small fixed JSON body;
    handles lifespan."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
    if scope["type"] != "http":
        return
    if scope["method"] != "GET":  # read the body, as the real server must (the signing floor)
        while (await receive()).get("more_body", False):
            pass
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(BARE_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BARE_BODY})


def serve_bare(port: int, certfile: str, keyfile: str, workers: int = 1) -> None:
    """The bare app on the server stack; with ``workers`` > 1, in as many processes as
    ``strongroom serve --workers`` runs (``server.run_workers``)."""
    from strongroom import server

    def worker(index: int, addresses: tuple[str, ...]) -> None:
        server.run(
            bare_app,
            addresses=addresses,
            port=port,
            certfile=Path(certfile),
            keyfile=Path(keyfile),
            check_port=False,
        )

    if workers == 1:
        worker(0, server.bindable(("127.0.0.1",), port))
    else:
        sys.exit(server.run_workers(workers, ("127.0.0.1",), port, worker))


# -- processes ---------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class Children:
    """Every subprocess started here; ``stop_all`` ends them (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self._children: list[Child] = []

    def start(self, name: str, argv: list[str], log: Path) -> Child:
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        child = Child(name, proc, log)
        self._children.append(child)
        return child

    @staticmethod
    def stop(child: Child) -> None:
        if child.proc.poll() is None:
            child.proc.terminate()
            try:
                child.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(timeout=10)

    def stop_all(self) -> None:
        for child in reversed(self._children):
            with contextlib.suppress(Exception):
                self.stop(child)
        self._children.clear()


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def cli_command() -> list[str]:
    exe = Path(sys.executable).with_name("strongroom")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "strongroom.cli.main"]


def run_cli(args: list[str]) -> dict[str, Any]:
    argv = [*cli_command(), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise BenchError(
            f"`{' '.join(args)}` failed ({done.returncode}):\n{done.stderr.strip()}"
            f"\n{done.stdout.strip()}"
        )
    try:
        data: dict[str, Any] = json.loads(done.stdout)
    except ValueError as exc:
        raise BenchError(f"`{' '.join(args)}` printed no JSON: {done.stdout[:300]!r}") from exc
    return data


def free_port() -> int:
    """A port free on both 127.0.0.1 and ::1 (the server binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s4:
            s4.bind(("127.0.0.1", 0))
            port = int(s4.getsockname()[1])
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s6.bind(("::1", port))
            except OSError:
                continue
            return port
    raise BenchError("found no TCP port free on both 127.0.0.1 and ::1")


def wait_ready(child: Child, url: str, ctx: ssl.SSLContext, host: str | None = None) -> None:
    headers = {"Host": host} if host else {}
    deadline = time.monotonic() + 30
    last = "no attempt"
    with httpx.Client(verify=ctx, timeout=2) as client:
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                raise BenchError(
                    f"{child.name} exited with {child.proc.returncode} before answering:\n"
                    f"{child.tail()}"
                )
            try:
                r = client.get(url, headers=headers)
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
    raise BenchError(f"{child.name} did not answer {url} within 30 s ({last}):\n{child.tail()}")


# -- wrk ---------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which(WRK)
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError(
            "wrk is not installed and this is not root; install it: sudo apt-get install -y wrk"
        )
    print("wrk not found; installing it with apt-get ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise BenchError(f"`{' '.join(argv)}` failed:\n{done.stderr.strip()[-2000:]}")
    found = shutil.which(WRK)
    if not found:
        raise BenchError("apt-get installed wrk, but it is not on PATH")
    return found


_LUA_SAFE = re.compile(r"[A-Za-z0-9_.:/{}\",\-= ]*")


def lua_str(text: str) -> str:
    if not _LUA_SAFE.fullmatch(text):
        raise BenchError(f"unexpected characters for a Lua string: {text[:60]!r}")
    return '"' + text.replace('"', '\\"') + '"'


_LUA_COMMON = """
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  first_bad = 0
  first_body = ""
end

function response(status, headers, body)
  if status >= 300 then
    bad = bad + 1
    if first_bad == 0 then
      first_bad = status
      first_body = body or ""
    end
  end
end

function done(summary, latency, requests)
  local total_bad, first, body = 0, 0, ""
  for _, t in ipairs(threads) do
    total_bad = total_bad + t:get("bad")
    if first == 0 and t:get("first_bad") ~= 0 then
      first = t:get("first_bad")
      body = t:get("first_body")
    end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d bad=%d first_bad=%d connect=%d read=%d write=%d timeout=%d status=%d"
    .. " p50_us=%d p99_us=%d\\n",
    summary.requests, total_bad, first, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
  if first ~= 0 then
    io.write("BENCH-FIRST-BAD-BODY " .. string.sub(string.gsub(body, "%s+", " "), 1, 400) .. "\\n")
  end
end
"""


def lua_script(host: str, token: str | None, method: str, body: str | None) -> str:
    lines = [f"wrk.method = {lua_str(method)}", f'wrk.headers["Host"] = {lua_str(host)}']
    if token is not None:
        lines.append(f'wrk.headers["Authorization"] = {lua_str("Bearer " + token)}')
    if body is not None:
        lines.append(f"wrk.body = {lua_str(body)}")
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    return "\n".join(lines) + "\n" + _LUA_COMMON


@dataclass
class WrkResult:
    label: str
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float


_BENCH_LINE = re.compile(r"^BENCH (.*)$", re.MULTILINE)


def run_wrk(
    wrk: str,
    label: str,
    url: str,
    script: str,
    workdir: Path,
    *,
    threads: int,
    connections: int,
    duration: float,
) -> WrkResult:
    lua = workdir / f"{re.sub(r'[^a-z0-9]+', '-', label.lower())}.lua"
    lua.write_text(script)
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "-s",
        str(lua),
        url,
    ]
    print(f"  wrk {label}: {' '.join(argv[1:])}", file=sys.stderr, flush=True)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    out = done.stdout
    if done.returncode != 0:
        raise BenchError(f"wrk ({label}) failed ({done.returncode}):\n{done.stderr}\n{out}")
    rps_match = re.search(r"^Requests/sec:\s*([0-9.]+)", out, re.MULTILINE)
    stats_match = _BENCH_LINE.search(out)
    if rps_match is None or stats_match is None:
        raise BenchError(f"cannot read wrk's output ({label}):\n{out}\n{done.stderr}")
    stats = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", stats_match.group(1))}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    problems = []
    if stats["bad"] or stats["status"] or non2xx:
        body = re.search(r"^BENCH-FIRST-BAD-BODY (.*)$", out, re.MULTILINE)
        problems.append(
            f"{stats['bad']} responses with status >= 300 (first: {stats['first_bad']}"
            f"{', body: ' + body.group(1) if body else ''})"
        )
    errors = {k: stats[k] for k in ("connect", "read", "write", "timeout") if stats[k]}
    if errors:
        problems.append(f"socket errors {errors}")
    if stats["requests"] == 0:
        problems.append("no request completed")
    if problems:
        raise BenchError(f"wrk ({label}): " + "; ".join(problems) + f"\n{out}")
    return WrkResult(
        label,
        float(rps_match.group(1)),
        stats["requests"],
        stats["p50_us"] / 1000,
        stats["p99_us"] / 1000,
    )


# -- SQLite baseline ---------------------------------------------------------------------------


def sqlite_baseline(path: Path, seconds: float) -> tuple[float, int]:
    """Commits/s of one single-row INSERT per transaction, WAL + synchronous=FULL."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            "CREATE TABLE t (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "
            "version TEXT NOT NULL, created INTEGER NOT NULL, sealed BLOB NOT NULL)"
        )
        blob = os.urandom(60)
        commits = 0
        start = time.perf_counter()
        end = start + seconds
        while True:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO t (name, version, created, sealed) VALUES (?, ?, ?, ?)",
                ("s2", os.urandom(16).hex(), int(time.time()), blob),
            )
            conn.execute("COMMIT")
            commits += 1
            now = time.perf_counter()
            if now >= end:
                return commits / (now - start), commits
    finally:
        conn.close()


# -- the run -----------------------------------------------------------------------------------


def filesystem_of(path: Path) -> str:
    best, fstype = "", "?"
    with contextlib.suppress(OSError), open("/proc/mounts") as mounts:
        target = str(path.resolve())
        for line in mounts:
            parts = line.split()
            if len(parts) >= 3:
                mount = parts[1]
                inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) > len(best):
                    best, fstype = mount, parts[2]
    return fstype


def start_bare(
    children: Children,
    workdir: Path,
    cert: Path,
    key: Path,
    ctx: ssl.SSLContext,
    workers: int = 1,
) -> tuple[Child, int]:
    """The bare ASGI app on Strongroom's server stack, in its own process (or ``workers``
    processes, as ``serve --workers``); and its port."""
    port = free_port()
    bare = children.start(
        "bare ASGI server",
        [sys.executable, str(Path(__file__).resolve()), "--bare-server", str(port), str(cert),
         str(key), str(workers)],
        workdir / "bare.log",
    )  # fmt: skip
    wait_ready(bare, f"https://127.0.0.1:{port}/", ctx)
    return bare, port


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU time a running process (or one of its threads) has used so far
    (Linux /proc)."""
    stat = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time used so far by a server (``pid`` and its worker processes, as ``serve
    --workers`` forks them), and by its event-loop threads alone: (whole, loops)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    pids = [pid, *(int(c) for c in children)]
    return sum(cpu_seconds(p) for p in pids), sum(cpu_seconds(p, p) for p in pids)


def secret_requests(vault_host: str, token: str) -> dict[str, tuple[str, str]]:
    """The measured secret requests, by label: their path and query, and their wrk script."""
    return {
        "GET secret": (f"/secrets/s1/?{API}", lua_script(vault_host, token, "GET", None)),
        "SET secret": (f"/secrets/s2?{API}", lua_script(vault_host, token, "PUT", SET_BODY)),
    }


def children_cpu_seconds() -> float:
    """User + system CPU time of this process's reaped children (wrk runs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Started:
    """A running throwaway Strongroom: its port, TLS trust and a bearer token for VAULT."""

    server: Child
    port: int
    ctx: ssl.SSLContext
    token: str
    data_dir: Path


def start_server(
    data_dir: Path, log: Path, children: Children, port: int, workers: int | None = 1
) -> tuple[Child, ssl.SSLContext]:
    """Starts ``strongroom serve`` on an installation (``workers`` None: the server's default)
    and waits until it answers ``/health``; returns it and a TLS context trusting its CA."""
    argv = [*cli_command(), "serve", "--data-dir", str(data_dir), "--port", str(port)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    server = children.start("strongroom serve", argv, log)
    tls = data_dir / "tls"
    ca, key = tls / "ca.pem", tls / "server-key.pem"
    # The server writes the CA, then its certificate, then the key, before it listens.
    deadline = time.monotonic() + 30
    while not key.exists() and time.monotonic() < deadline and server.proc.poll() is None:
        time.sleep(0.05)
    if not key.exists():
        raise BenchError(f"the server made no TLS key at {key}:\n{server.tail()}")
    ctx = ssl.create_default_context(cafile=str(ca))
    wait_ready(server, f"https://localhost:{port}/health", ctx)
    return server, ctx


def fetch_token(port: int, ctx: ssl.SSLContext, principal: dict[str, Any]) -> str:
    """A bearer token for the vaults, for a principal as ``principal create`` printed it."""
    with httpx.Client(verify=ctx, timeout=30) as client:
        r = client.post(
            f"https://localhost:{port}/{principal['tenantId']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": principal["clientId"],
                "client_secret": principal["clientSecret"],
                "scope": f"https://vault.localhost:{port}/.default",
            },
        )
        if r.status_code != 200:
            raise BenchError(f"token request answered {r.status_code}: {r.text[:500]}")
        return str(r.json()["access_token"])


def start_strongroom(workdir: Path, children: Children, port: int, workers: int = 1) -> Started:
    data_dir = workdir / "data"
    where = ["--data-dir", str(data_dir), "--port", str(port)]
    try:
        run_cli(["vault", "create", VAULT, "--open", *where])
    except BenchError as exc:
        if "--open" not in str(exc):
            raise
        # A tree from before open vaults (bench/paired.py): a vault without policies is open.
        run_cli(["vault", "create", VAULT, *where])
    principal = run_cli(
        ["principal", "create", PRINCIPAL, "--data-dir", str(data_dir), "--port", str(port)]
    )
    server, ctx = start_server(data_dir, workdir / "server.log", children, port, workers)
    token = fetch_token(port, ctx, principal)
    return Started(server, port, ctx, token, data_dir)


@dataclass
class Round:
    """One round's figures: the SQLite baseline, then wrk on bare, GET and SET, back to back."""

    sqlite_rate: float
    sqlite_commits: int
    bare: WrkResult
    get: WrkResult
    set: WrkResult

    @property
    def get_ratio(self) -> float:
        return self.get.rps / self.bare.rps

    @property
    def set_ratio(self) -> float:
        return self.set.rps / self.sqlite_rate


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def bench(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    wrk = ensure_wrk()
    port = free_port()
    print(f"temp dir {workdir} ({filesystem_of(workdir)}), server port {port}", file=sys.stderr)

    started = start_strongroom(workdir, children, port, args.workers)
    server, ctx, token = started.server, started.ctx, started.token
    tls = started.data_dir / "tls"
    cert, key = tls / "server.pem", tls / "server-key.pem"
    with httpx.Client(verify=ctx, timeout=30) as client:
        vault_host = f"{VAULT}.vault.localhost:{port}"
        headers = {"Host": vault_host, "Authorization": f"Bearer {token}"}
        base = f"https://127.0.0.1:{port}"
        r = client.put(
            f"{base}/secrets/s1?{API}", headers=headers, json={"value": "benchmark-read"}
        )
        if r.status_code != 200:
            raise BenchError(f"creating secret s1 answered {r.status_code}: {r.text[:500]}")
        r = client.get(f"{base}/secrets/s1/?{API}", headers=headers)
        if r.status_code != 200 or r.json().get("value") != "benchmark-read":
            raise BenchError(f"reading secret s1 answered {r.status_code}: {r.text[:500]}")

    # Idle between its runs; as many processes as the server.
    bare, bare_port = start_bare(children, workdir, cert, key, ctx, args.workers)

    opts = {"threads": args.threads, "connections": args.connections, "duration": args.duration}
    rounds: list[Round] = []
    for n in range(args.rounds):
        print(f"round {n + 1} of {args.rounds} ...", file=sys.stderr, flush=True)
        sqlite_rate, sqlite_commits = sqlite_baseline(
            workdir / f"baseline-{n}.db", args.sqlite_seconds
        )
        bare_result = run_wrk(
            wrk,
            "bare endpoint",
            f"https://127.0.0.1:{bare_port}/",
            # The same request as GET secret (Host shape, bearer token): the difference between
            # the two is what Strongroom adds, not what a longer request costs the HTTP stack.
            lua_script(f"benchvault.vault.localhost:{bare_port}", token, "GET", None),
            workdir,
            **opts,
        )
        get_result, set_result = (
            run_wrk(wrk, label, base + path, script, workdir, **opts)
            for label, (path, script) in secret_requests(vault_host, token).items()
        )
        rounds.append(Round(sqlite_rate, sqlite_commits, bare_result, get_result, set_result))
        if server.proc.poll() is not None:
            raise BenchError(f"the server exited with {server.proc.returncode}:\n{server.tail()}")
    children.stop(bare)

    get_ratio = statistics.median(r.get_ratio for r in rounds)
    set_ratio = statistics.median(r.set_ratio for r in rounds)
    print()
    print(
        f"Strongroom secrets throughput: {args.rounds} rounds of wrk -t{args.threads} "
        f"-c{args.connections} -d{max(1, round(args.duration))}s, TLS keep-alive, "
        f"{os.cpu_count()} CPUs, {args.workers} server process(es) (serve --workers), "
        f"data on {filesystem_of(workdir)}"
    )
    rows = [("round", "bare req/s", "GET req/s", "GET p99 ms", "GET/bare", "SET req/s",
             "SET p99 ms", "SQLite commits/s", "SET/SQLite")]  # fmt: skip
    for n, r in enumerate(rounds, 1):
        rows.append((
            str(n), f"{r.bare.rps:,.0f}", f"{r.get.rps:,.0f}", f"{r.get.p99_ms:.2f}",
            f"{r.get_ratio:.2f}", f"{r.set.rps:,.0f}", f"{r.set.p99_ms:.2f}",
            f"{r.sqlite_rate:,.0f}", f"{r.set_ratio:.2f}",
        ))  # fmt: skip
    print_table(rows)
    print()
    print_table([
        ("target", "median of the rounds", "target", "met"),
        ("GET secret / bare ASGI endpoint", f"{get_ratio:.2f}", f">= {GET_TARGET:.2f}",
         "yes" if get_ratio >= GET_TARGET else "NO"),
        ("durable SET secret / SQLite 1 commit per write", f"{set_ratio:.2f}",
         f">= {SET_TARGET:.2f}", "yes" if set_ratio >= SET_TARGET else "NO"),
    ])  # fmt: skip
    print(
        f"(requests per round: bare {rounds[0].bare.requests}, GET {rounds[0].get.requests}, "
        f"SET {rounds[0].set.requests}; SQLite commits {rounds[0].sqlite_commits} "
        f"in {args.sqlite_seconds:g} s)"
    )
    met = get_ratio >= GET_TARGET and set_ratio >= SET_TARGET
    print("all targets met" if met else "some targets NOT met")
    return 0


def run_bench(
    bench_fn: Callable[[argparse.Namespace, Path, Children], int],
    args: argparse.Namespace,
    prefix: str,
    tmp_root: Path | None = None,
) -> int:
    """Runs one benchmark in a fresh temp dir; stops every child and removes the dir after."""
    signal.signal(signal.SIGTERM, _sigterm)
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=tmp_root))
    try:
        return bench_fn(args, workdir, children)
    except BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted {exc}".rstrip(), file=sys.stderr)
        return 130
    finally:
        children.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run (5)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of baseline, bare, GET and SET (3)"
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--sqlite-seconds", type=float, default=2, help="SQLite baseline per round (2)"
    )
    parser.add_argument(
        "--tmp-root", type=Path, default=None, help="where to make the temp dir (default: TMPDIR)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="server processes (serve --workers), for Strongroom and the bare endpoint alike "
        "(default: one per CPU)",
    )
    parser.add_argument("--bare-server", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        port, certfile, keyfile, workers = args.bare_server
        serve_bare(int(port), certfile, keyfile, int(workers))
        return 0
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    return run_bench(bench, args, "strongroom-bench-", args.tmp_root)


if __name__ == "__main__":
    sys.exit(main())
