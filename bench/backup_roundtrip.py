"""The backup and restore round trip of a secret of 10 versions, through the API over TLS.

One run: a throwaway installation whose source vault holds ``--secrets`` secrets of
``--versions`` versions each (filled through the services before the server starts), a server
with the README's defaults (one worker per CPU), and for each round an empty target vault of the
same security domain. wrk drives, on every connection: ``POST /secrets/{name}/backup`` of the
next secret of the source, then ``POST /secrets/restore`` of the blob it answered into the
round's target vault — the next request on that connection is a waiting blob's restore if there
is one, else the next backup. A round trip is a restore answered 200; every answer is checked
(a status >= 300 fails the run) and the target vault's count is read back after each round.

Target (issue 25): at least 1,000 round trips a second on this machine.

``.venv/bin/python bench/backup_roundtrip.py [--rounds 3] [--duration 5] [--secrets 20000]``.
Whole-vault backup and restore is measured by ``bench/vault_backup.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

from secrets_throughput import (
    API,
    BenchError,
    Children,
    ensure_wrk,
    free_port,
    lua_script,
    run_bench,
    run_wrk,
    sqlite_baseline,
    start_strongroom,
)
from strongroom.config import Settings
from strongroom.services.container import Services
from strongroom.services.installation import open_installation
from strongroom.services.vaults import VaultService

TARGET = 1000.0
SOURCE = "benchsrc"


def fill(data_dir: Path, secrets: int, versions: int, rounds: int) -> float:
    """The source vault and one target vault per round, through the services; seconds taken."""
    started = time.monotonic()
    services = Services(open_installation(Settings(data_dir=data_dir)))
    vaults = VaultService(services.installation)
    vaults.create(SOURCE, open_access=True)
    for n in range(rounds):
        vaults.create(f"benchdst{n}", open_access=True)
    source = vaults.get_record(SOURCE)

    async def write() -> None:
        batch = 400
        for version in range(versions):
            for start in range(0, secrets, batch):
                await asyncio.gather(
                    *(
                        services.secrets.set_secret(
                            source, f"s{i:06d}", f"value-{i}-{version}-" + "x" * 48
                        )
                        for i in range(start, min(start + batch, secrets))
                    )
                )
        await services.close()

    asyncio.run(write())
    services.installation.close()
    return time.monotonic() - started


_ROUND_TRIP = """
local common_init, common_response, common_done = init, response, done
local setup_count = 0
local thread_count = {threads}
local secrets = {secrets}
local backup_headers, restore_headers = {{}}, {{}}

function setup(thread)
  thread:set("thread_id", setup_count)
  setup_count = setup_count + 1
  table.insert(threads, thread)
end

function init(args)
  common_init(args)
  for k, v in pairs(wrk.headers) do
    backup_headers[k] = v
    restore_headers[k] = v
  end
  backup_headers["Content-Length"] = "0"
  restore_headers["Host"] = {target_host}
  restore_headers["Content-Type"] = "application/json"
  next_name = thread_id
  blobs = {{}}
  restored = 0
  exhausted = 0
end

function request()
  local blob = table.remove(blobs, 1)
  if blob ~= nil then
    restore_headers["Content-Length"] = tostring(#blob)
    return wrk.format("POST", "/secrets/restore?{api}", restore_headers, blob)
  end
  if next_name >= secrets then
    exhausted = 1
    next_name = thread_id
  end
  local path = string.format("/secrets/s%06d/backup?{api}", next_name)
  next_name = next_name + thread_count
  return wrk.format("POST", path, backup_headers, "")
end

function response(status, headers, body)
  common_response(status, headers, body)
  if status == 200 then
    if string.sub(body, 1, 9) == '{{"value":' then
      table.insert(blobs, body)
    else
      restored = restored + 1
    end
  end
end

function done(summary, latency, requests)
  common_done(summary, latency, requests)
  local total, out_of_names = 0, 0
  for _, t in ipairs(threads) do
    total = total + t:get("restored")
    out_of_names = out_of_names + t:get("exhausted")
  end
  io.write(string.format("ROUNDTRIPS restored=%d exhausted=%d\\n", total, out_of_names))
end
"""


def bench(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    wrk = ensure_wrk()
    data_dir = workdir / "data"
    print(f"filling {args.secrets:,} secrets x {args.versions} versions ...", file=sys.stderr)
    fill_seconds = fill(data_dir, args.secrets, args.versions, args.rounds)
    port = free_port()
    started = start_strongroom(workdir, children, port, args.workers)
    base = f"https://127.0.0.1:{port}"
    source_host = f"{SOURCE}.vault.localhost:{port}"
    rows = []
    for n in range(args.rounds):
        target = f"benchdst{n}"
        sqlite_rate, _ = sqlite_baseline(workdir / f"baseline-{n}.db", 2)
        script = lua_script(source_host, started.token, "POST", None) + _ROUND_TRIP.format(
            threads=args.threads,
            secrets=args.secrets,
            target_host=f'"{target}.vault.localhost:{port}"',
            api=API,
        )
        result = run_wrk(wrk, f"round trip {n}", base + "/", script, workdir,
                         threads=args.threads, connections=args.connections,
                         duration=args.duration)  # fmt: skip
        with httpx.Client(verify=started.ctx, timeout=60) as client:
            headers = {"Host": f"{target}.vault.localhost:{port}",
                       "Authorization": f"Bearer {started.token}"}  # fmt: skip
            url: str | None = f"{base}/secrets?{API}&maxresults=25"
            count, names = 0, []
            while url:
                r = client.get(url.replace(f"https://{target}.vault.localhost:{port}", base),
                               headers=headers)  # fmt: skip
                if r.status_code != 200:
                    raise BenchError(f"listing {target} answered {r.status_code}: {r.text[:300]}")
                page = r.json()
                count += len(page["value"])
                names += [item["id"].rsplit("/", 1)[1] for item in page["value"][:1]]
                url = page.get("nextLink")
            # Any restored secret has every version (wrk's first request() of its first thread
            # only checks the script: that backup is never sent).
            sample = names[0] if names else "none"
            r = client.get(f"{base}/secrets/{sample}/versions?{API}", headers=headers)
            versions = len(r.json()["value"]) if r.status_code == 200 else -1
        if count >= args.secrets:
            raise BenchError(f"round {n} restored every secret: raise --secrets above {count}")
        if versions != args.versions:
            raise BenchError(f"{sample} restored with {versions} versions, not {args.versions}")
        rate = count / args.duration
        rows.append((n + 1, rate, result.p50_ms, result.p99_ms, count, sqlite_rate))
    rates = [r[1] for r in rows]
    print()
    print(
        f"Backup + restore round trips of a secret of {args.versions} versions, "
        f"wrk -t{args.threads} -c{args.connections} -d{max(1, round(args.duration))}s, TLS "
        f"keep-alive, {os.cpu_count()} CPUs, {args.workers} server process(es); source filled "
        f"with {args.secrets:,} x {args.versions} versions in {fill_seconds:.0f} s"
    )
    print(f"{'round':>5}  {'round trips/s':>13}  {'p50 ms':>7}  {'p99 ms':>7}  {'restored':>8}  "
          f"{'SQLite commits/s':>16}  {'ratio':>5}")  # fmt: skip
    for n, rate, p50, p99, count, base_rate in rows:
        print(f"{n:>5}  {rate:>13,.0f}  {p50:>7.2f}  {p99:>7.2f}  {count:>8,}  "
              f"{base_rate:>16,.0f}  {rate / base_rate:>5.2f}")  # fmt: skip
    print("(ratio: round trips per SQLite durable commit of one row in the same temp dir, the "
          "round's baseline; each round trip commits one restore of 10 versions)")  # fmt: skip
    median = statistics.median(rates)
    met = median >= TARGET
    verdict = "met" if met else "NOT met"
    print(f"median {median:,.0f} round trips/s: target >= {TARGET:,.0f}: {verdict}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per round (5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each its own target (3)")
    parser.add_argument("--secrets", type=int, default=20000, help="secrets in the source")
    parser.add_argument("--versions", type=int, default=10, help="versions of each (10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="server processes (one per CPU)"
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.secrets < 1 or args.versions < 1:
        parser.error("--rounds, --secrets and --versions must be at least 1")
    return run_bench(bench, args, "strongroom-roundtrip-")


if __name__ == "__main__":
    sys.exit(main())
