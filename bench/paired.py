"""Paired A/B throughput of two Strongroom source trees, for changes smaller than this VM's drift.

Starts one server from each tree (``PYTHONPATH=<tree>/src``), then alternates wrk runs between
them (A B, B A, A B, ...) for GET or SET of a secret, and prints each pair's B/A ratio, the
median, and each server's CPU per request (whole process, and its event-loop thread) from
``/proc``. A figure drifts by 10-20% within a minute here; a ratio of two runs taken seconds
apart, repeated, does not. CPU per request is the steadier reading.

    git worktree add /tmp/before HEAD~1
    .venv/bin/python bench/paired.py /tmp/before . --mode get --pairs 6
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import httpx

from secrets_throughput import (
    API,
    VAULT,
    BenchError,
    Children,
    Started,
    ensure_wrk,
    free_port,
    run_bench,
    run_wrk,
    secret_requests,
    server_cpu_seconds,
    start_strongroom,
)


def _start(tree: Path, workdir: Path, children: Children, workers: int) -> tuple[Started, str]:
    os.environ["PYTHONPATH"] = str(tree.resolve() / "src")
    try:
        port = free_port()
        started = start_strongroom(workdir, children, port, workers)
    finally:
        del os.environ["PYTHONPATH"]
    host = f"{VAULT}.vault.localhost:{port}"
    headers = {"Host": host, "Authorization": f"Bearer {started.token}"}
    with httpx.Client(verify=started.ctx, timeout=30) as client:
        for name in ("s1", "s2"):
            r = client.put(f"https://127.0.0.1:{port}/secrets/{name}?{API}", headers=headers,
                           json={"value": "benchmark"})  # fmt: skip
            if r.status_code != 200:
                raise BenchError(f"{tree}: creating {name} answered {r.status_code}: {r.text}")
    return started, host


def bench(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    wrk = ensure_wrk()
    trees = {"A": Path(args.a), "B": Path(args.b)}
    servers = {}
    for label, tree in trees.items():
        (workdir / label).mkdir()
        servers[label] = _start(tree, workdir / label, children, args.workers)
    opts = {"threads": 2, "connections": args.connections, "duration": args.duration}
    rates: dict[str, list[float]] = {"A": [], "B": []}
    cpu: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    for n in range(args.pairs):
        for label in ("A", "B") if n % 2 == 0 else ("B", "A"):
            started, host = servers[label]
            pid, port = started.server.proc.pid, started.port
            path, script = secret_requests(host, started.token)[f"{args.mode.upper()} secret"]
            server0, loop0 = server_cpu_seconds(pid)
            result = run_wrk(wrk, f"{args.mode} {label}", f"https://127.0.0.1:{port}{path}", script,
                             workdir, **opts)  # fmt: skip
            per = 1e6 / result.requests
            server1, loop1 = server_cpu_seconds(pid)
            cpu[label].append(((server1 - server0) * per, (loop1 - loop0) * per))
            rates[label].append(result.rps)
            server, loop = cpu[label][-1]
            print(f"pair {n + 1} {label}: {result.rps:,.0f}/s, p99 {result.p99_ms:.1f} ms, "
                  f"server {server:.0f} us/request, loop {loop:.0f}", flush=True)  # fmt: skip
    print()
    for label, tree in trees.items():
        print(f"{label} = {tree}: median {statistics.median(rates[label]):,.0f}/s, server CPU "
              f"{statistics.median(c[0] for c in cpu[label]):.1f} us/request, event loop "
              f"{statistics.median(c[1] for c in cpu[label]):.1f}")  # fmt: skip
    ratios = [b / a for a, b in zip(rates["A"], rates["B"], strict=True)]
    print(f"{args.mode.upper()} B/A per pair: {', '.join(f'{r:.3f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.3f}")  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="tree A (a checkout: its src/ is used)")
    parser.add_argument("b", help="tree B")
    parser.add_argument("--mode", choices=("get", "set"), default="get")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--workers", type=int, default=1, help="serve --workers (1)")
    parser.add_argument("--duration", type=float, default=4, help="seconds per wrk run (4)")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    return run_bench(bench, args, "strongroom-paired-", None)


if __name__ == "__main__":
    sys.exit(main())
