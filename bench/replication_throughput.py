"""Replication: how fast a replica catches up, the lag it keeps under a steady write rate, and
the per-object backup+restore rate of the same server in the same run (the baseline: what
copying objects one by one through the API costs).

One throwaway installation serves both ends: vault ``src`` (replicable) and vault ``dst``, a
replica of ``src`` that the server itself follows over HTTPS, as a second installation would
(same domain, so no domain transfer is needed for a benchmark). Phases:

* baseline: ``--objects`` secrets backed up (``POST /secrets/{n}/backup``) and restored into a
  third vault (``POST /secrets/restore``), one after the other;
* catch-up: ``src`` filled with ``--objects`` secrets first, then ``dst`` starts following;
  time until its position reaches the source's: changes applied per second;
* steady state: writes at ``--rate`` per second for ``--seconds`` while it follows, the lag
  sampled every quarter second: the source's position now (``GET /replication/changes`` with
  ``limit=0``) less the replica's (``GET /replication/status``), in changes and in seconds of
  writes at that rate.

    .venv/bin/python bench/replication_throughput.py [--objects 2000] [--rate 50] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

API = {"api-version": "7.6"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(data_dir: Path, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout) if done.stdout.strip() else None


class Bench:
    def __init__(self, root: Path):
        self.data = root / "data"
        self.port = _free_port()
        for vault in ("src", "copy"):
            _cli(self.data, "vault", "create", vault, "--open")
        self.principal = _cli(self.data, "principal", "create", "bench", "--port", str(self.port))
        _cli(self.data, "vault", "update", "src", "--replicable")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "strongroom.cli", "serve", "--data-dir", str(self.data),
             "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.ca = self.data / "tls" / "ca.pem"
        deadline = time.monotonic() + 30
        while not self.ca.exists() or not self._healthy():
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        self.token = self._token()

    def _healthy(self) -> bool:
        try:
            return httpx.get(
                f"https://localhost:{self.port}/health", verify=str(self.ca)
            ).is_success
        except httpx.HTTPError:
            return False

    def _token(self) -> str:
        answer = httpx.post(
            f"https://localhost:{self.port}/{self.principal['tenantId']}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "client_id": self.principal["clientId"],
                  "client_secret": self.principal["clientSecret"],
                  "scope": f"https://vault.localhost:{self.port}/.default"},
            verify=str(self.ca),
        )  # fmt: skip
        return str(answer.json()["access_token"])

    def client(self, vault: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"https://{vault}.vault.localhost:{self.port}", verify=str(self.ca),
            headers={"authorization": f"Bearer {self.token}"}, params=API, timeout=60,
        )  # fmt: skip

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


async def _fill(client: httpx.AsyncClient, names: list[str], prefix: str = "v") -> None:
    semaphore = asyncio.Semaphore(32)

    async def one(name: str) -> None:
        async with semaphore:
            response = await client.put(f"/secrets/{name}", json={"value": f"{prefix}-{name}"})
            response.raise_for_status()

    await asyncio.gather(*(one(n) for n in names))


async def baseline(bench: Bench, objects: int) -> float:
    names = [f"b{i}" for i in range(objects)]
    async with bench.client("src") as src, bench.client("copy") as copy:
        await _fill(src, names)
        started = time.perf_counter()
        for name in names:
            blob = (await src.post(f"/secrets/{name}/backup")).json()["value"]
            (await copy.post("/secrets/restore", json={"value": blob})).raise_for_status()
        return objects / (time.perf_counter() - started)


async def status(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/replication/status")
    response.raise_for_status()
    return dict(response.json())


async def catch_up(bench: Bench, objects: int) -> tuple[int, float]:
    async with bench.client("src") as src:
        await _fill(src, [f"c{i}" for i in range(objects)])
        target = int(
            (await src.get("/replication/changes", params={"limit": 0})).json()["position"]
        )
    started = time.perf_counter()
    _cli(bench.data, "replica", "follow", "-n", "dst", "--source",
         f"https://src.vault.localhost:{bench.port}", "--client-id", bench.principal["clientId"],
         "--client-secret", bench.principal["clientSecret"], "--source-ca", str(bench.ca),
         "--create")  # fmt: skip
    _cli(bench.data, "vault", "update", "dst", "--open")
    await asyncio.sleep(2.2)  # the server's vault cache
    async with bench.client("dst") as dst:
        while True:
            found = await status(dst)
            if found["position"] >= target:
                return target, time.perf_counter() - started
            await asyncio.sleep(0.1)


async def steady(bench: Bench, rate: float, seconds: float) -> list[int]:
    """The true lag, sampled: the source's position now less the replica's."""
    lags = []
    async with bench.client("src") as src, bench.client("dst") as dst:
        stop = time.monotonic() + seconds

        async def writer() -> None:
            i = 0
            while time.monotonic() < stop:
                (await src.put(f"/secrets/s{i % 500}", json={"value": str(i)})).raise_for_status()
                i += 1
                await asyncio.sleep(1 / rate)

        task = asyncio.create_task(writer())
        while time.monotonic() < stop:
            source = await src.get("/replication/changes", params={"limit": 0})
            found = await status(dst)
            lags.append(max(0, int(source.json()["position"]) - int(found["position"])))
            await asyncio.sleep(0.25)
        await task
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strongroom-replication-bench-") as tmp:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
        bench = Bench(Path(tmp))
        try:
            base = asyncio.run(baseline(bench, min(args.objects, 500)))
            changes, took = asyncio.run(catch_up(bench, args.objects))
            lags = asyncio.run(steady(bench, args.rate, args.seconds))
        finally:
            bench.stop()
    rate = changes / took
    print(f"per-object backup + restore through the API: {base:,.0f} objects/s (baseline)")
    print(f"catch-up: {changes} changes applied in {took:.1f} s: {rate:,.0f} changes/s "
          f"({rate / base:.2f} x the baseline)")  # fmt: skip
    median = statistics.median(lags)
    print(f"steady state at {args.rate:g} writes/s for {args.seconds:g} s: lag median "
          f"{median:g} changes (max {max(lags)}), about {median / args.rate:.2f} s of writes "
          f"(max {max(lags) / args.rate:.2f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
