"""GET and SET secret throughput with 1 and 2 Strongroom processes on PostgreSQL, beside one
process on SQLite, in one run.

    .venv/bin/python bench/scaleout_throughput.py [--duration 8] [--connections 32]

PostgreSQL is a throwaway cluster on loopback (Debian's binaries, as the tests use: tests/pg.py),
with its default durability (fsync on, synchronous_commit on). Each configuration gets the same
total load: wrk with ``--connections`` connections in all, split evenly over the processes (one
wrk per process, as a load balancer would spread them), and the rates are summed. Ratios are
to one process on SQLite in the same run. Needs wrk (Debian package, installed if missing).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import ssl
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import pg

from secrets_throughput import (
    API,
    PRINCIPAL,
    SET_BODY,
    VAULT,
    BenchError,
    Child,
    Children,
    cli_command,
    ensure_wrk,
    free_port,
    lua_script,
    run_bench,
    run_cli,
    run_wrk,
    wait_ready,
)

# Appended to a PUT script: every request sets a secret of a new name, so writers do not queue
# behind one another on one object as they do when all set the same name.
DISTINCT_NAMES = """
counter = 0
function request()
  if counter == 0 then prefix = string.format("d%d", math.random(1, 1000000000)) end
  counter = counter + 1
  return wrk.format(nil, string.format("/secrets/%s-%d?api-version=7.6", prefix, counter))
end
"""


@dataclass
class Process:
    child: Child
    port: int
    token: str


@contextlib.contextmanager
def database(url: str | None) -> Iterator[None]:
    """Every command and server started inside uses ``url`` (None: SQLite)."""
    saved = os.environ.pop("STRONGROOM_DATABASE_URL", None)
    if url:
        os.environ["STRONGROOM_DATABASE_URL"] = url
    try:
        yield
    finally:
        os.environ.pop("STRONGROOM_DATABASE_URL", None)
        if saved is not None:
            os.environ["STRONGROOM_DATABASE_URL"] = saved


def start(
    data_dir: Path, children: Children, count: int, workdir: Path, name: str
) -> list[Process]:
    run_cli(["vault", "create", VAULT, "--open", "--data-dir", str(data_dir)])
    principal = run_cli(["principal", "create", PRINCIPAL, "--data-dir", str(data_dir)])
    processes = []
    for i in range(count):
        port = free_port()
        child = children.start(
            f"{name} server {i + 1}",
            [*cli_command(), "serve", "--data-dir", str(data_dir), "--port", str(port)],
            workdir / f"{name}-{i + 1}.log",
        )
        ca = data_dir / "tls" / "ca.pem"
        deadline = time.monotonic() + 30
        while not (data_dir / "tls" / "server-key.pem").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        ctx = ssl.create_default_context(cafile=str(ca))
        wait_ready(child, f"https://localhost:{port}/health", ctx)
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
                raise BenchError(f"token request answered {r.status_code}: {r.text[:300]}")
            token = r.json()["access_token"]
            if i == 0:
                r = client.put(
                    f"https://127.0.0.1:{port}/secrets/s1?{API}",
                    headers={"Host": f"{VAULT}.vault.localhost:{port}",
                             "Authorization": f"Bearer {token}"},
                    json={"value": "benchmark-read"},
                )  # fmt: skip
                if r.status_code != 200:
                    raise BenchError(f"creating s1 answered {r.status_code}: {r.text[:300]}")
        processes.append(Process(child, port, token))
    return processes


def measure(
    wrk: str, label: str, processes: list[Process], args: argparse.Namespace, workdir: Path
) -> dict[str, float]:
    per = max(args.threads, args.connections // len(processes))
    rates: dict[str, float] = {}
    for operation, method, path, body, extra in (
        ("GET", "GET", "/secrets/s1/", None, ""),
        ("SET", "PUT", "/secrets/s2", SET_BODY, ""),
        ("SET new", "PUT", "/secrets/s3", SET_BODY, DISTINCT_NAMES),
    ):

        def one(p: Process, operation: str = operation, method: str = method, path: str = path,
                body: str | None = body, extra: str = extra) -> float:  # fmt: skip
            host = f"{VAULT}.vault.localhost:{p.port}"
            return run_wrk(
                wrk, f"{label} {operation} :{p.port}", f"https://127.0.0.1:{p.port}{path}?{API}",
                lua_script(host, p.token, method, body) + extra, workdir,
                threads=args.threads, connections=per, duration=args.duration,
            ).rps  # fmt: skip

        with ThreadPoolExecutor(len(processes)) as pool:
            rates[operation] = sum(pool.map(one, processes))
    for p in processes:
        if p.child.proc.poll() is not None:
            raise BenchError(f"{p.child.name} exited:\n{p.child.tail()}")
    return rates


def bench(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    wrk = ensure_wrk()
    cluster = pg.cluster()
    results: list[tuple[str, dict[str, float]]] = []
    configurations = (("SQLite, 1 process", None, 1), ("PostgreSQL, 1 process", "pg", 1),
                      ("PostgreSQL, 2 processes", "pg", 2))  # fmt: skip
    for n, (label, backend, count) in enumerate(configurations):
        url = cluster.new_database("bench") if backend else None
        print(f"{label} ...", file=sys.stderr, flush=True)
        with database(url):
            processes = start(workdir / f"data{n}", children, count, workdir, f"c{n}")
            results.append((label, measure(wrk, label, processes, args, workdir)))
        for p in processes:
            children.stop(p.child)

    base = results[0][1]
    one_pg = results[1][1]
    print()
    print(
        f"Secrets throughput by store and process count: wrk -t{args.threads} "
        f"-c{args.connections} in all, -d{max(1, round(args.duration))}s each, TLS keep-alive, "
        f"{os.cpu_count()} CPUs"
    )
    operations = ("GET", "SET", "SET new")
    print("(SET: every request sets secret s2; SET new: every request a secret of a new name)")
    header = "".join(f"{o + ' req/s':>14}{'x SQLite':>10}" for o in operations)
    print(f"{'configuration':<26}{header}")
    for label, rates in results:
        cells = "".join(f"{rates[o]:>14,.0f}{rates[o] / base[o]:>10.2f}" for o in operations)
        print(f"{label:<26}{cells}")
    two = results[2][1]
    scale = ", ".join(f"{o} {two[o] / one_pg[o]:.2f}x" for o in operations)
    print(f"2 processes / 1 process on PostgreSQL: {scale}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8, help="seconds per wrk run (8)")
    parser.add_argument("--connections", type=int, default=32, help="connections in all (32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads per process (1)")
    args = parser.parse_args()
    return run_bench(bench, args, "strongroom-scaleout-")


if __name__ == "__main__":
    sys.exit(main())
