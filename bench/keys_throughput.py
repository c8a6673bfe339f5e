"""Throughput of key signing through Strongroom's API against raw pyca on the same cores.

One run: a throwaway installation and server (as in ``secrets_throughput.py``), an RSA-2048
and an EC P-256 key, then wrk drives ``POST /keys/{name}//sign`` (RS256 and ES256 over a
32-byte digest) over TLS with an authenticated client, and the same signatures are made with
pyca directly in one process per core for the same length of time.

Target (issue 3): API RSA-2048 sign ≥ 0.85 of raw pyca throughput on all cores.

It also prints the ceiling of that ratio for any server on this stack, measured in the same
run: every API signature costs at least a raw signature plus what one request costs the
machine when the server does nothing at all (a bare ASGI endpoint on the same HTTP stack,
driven by the same wrk script; its CPU, the server's plus wrk's, per request). With all cores
busy, the ratio can be at most  raw signature CPU / (raw signature CPU + bare request CPU).
That bound takes a bare request's CPU measured with nothing signing beside it, so it is loose;
the run therefore also measures servers on the same stack that do nothing but sign: a bare
signer (the body read, Strongroom's worker processes, a fixed answer) and two processes of it
signing on their event loops. Their ratios are what this stack allows any server.

Run with the project's venv: ``.venv/bin/python bench/keys_throughput.py``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from secrets_throughput import (
    API,
    VAULT,
    BenchError,
    Child,
    Children,
    children_cpu_seconds,
    cpu_seconds,
    ensure_wrk,
    free_port,
    lifespan,
    lua_script,
    run_bench,
    run_wrk,
    start_bare,
    start_strongroom,
    wait_ready,
)

RSA_TARGET = 0.85
DIGEST = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")


def _raw_sign(kind: str, seconds: float) -> int:
    """Signs for ``seconds`` in this process; returns how many signatures it made."""
    digest = bytes(range(32))
    if kind == "RSA":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

        def one() -> None:
            key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    else:
        eckey = ec.generate_private_key(ec.SECP256R1())

        def one() -> None:
            eckey.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))

    count, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(20):
            one()
        count += 20
    return count


# -- the bare signer (runs in its own process: ``--bare-signer``) ------------------------------
# The least any server with Strongroom's architecture can do per RS256 request: granian's HTTP
# and TLS, the body read, the signature in a worker process (``strongroom.crypto.workers``), a
# fixed answer. No authentication, routing, JSON, key lookup or audit.

_SIGNER: dict[str, Any] = {}
_SIGNED = b'{"kid":"bare","value":"signed"}'


async def bare_signer_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send, _SIGNER["pool"].close)
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    if _SIGNER["inline"]:  # on the event loop: no hand-off at all (and no other request)
        _SIGNER["sign"]("RSA", _SIGNER["material"], "RS256", bytes(range(32)))
    else:
        await _SIGNER["pool"].submit("sign", "RSA", _SIGNER["material"], "RS256", bytes(range(32)))
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_SIGNED))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _SIGNED})


def serve_bare_signer(port: int, certfile: str, keyfile: str, mode: str) -> None:
    from strongroom import server
    from strongroom.crypto import keys as kc
    from strongroom.crypto.workers import WorkerPool

    _SIGNER["material"] = kc.generate("RSA", 2048, None, 65537)
    _SIGNER["pool"] = WorkerPool(os.cpu_count())
    _SIGNER["inline"] = mode == "inline"
    _SIGNER["sign"] = kc.sign
    server.run(bare_signer_app, addresses=("127.0.0.1",), port=port, certfile=Path(certfile),
               keyfile=Path(keyfile))  # fmt: skip


def raw_rate(kind: str, seconds: float, workers: int) -> float:
    with ProcessPoolExecutor(workers) as pool:
        counts = list(pool.map(_raw_sign, [kind] * workers, [seconds] * workers))
    return sum(counts) / seconds


def bench(args: argparse.Namespace, workdir: Path, children: Children) -> int:
    wrk = ensure_wrk()
    port = free_port()
    started = start_strongroom(workdir, children, port)
    host = f"{VAULT}.vault.localhost:{port}"
    base = f"https://127.0.0.1:{port}"
    headers = {"Host": host, "Authorization": f"Bearer {started.token}"}
    with httpx.Client(verify=started.ctx, timeout=60) as client:
        for name, body in (("rsa", {"kty": "RSA", "key_size": 2048}), ("ec", {"kty": "EC"})):
            r = client.post(f"{base}/keys/{name}/create?{API}", headers=headers, json=body)
            if r.status_code != 200:
                raise BenchError(f"creating key {name} answered {r.status_code}: {r.text[:300]}")
    workers = os.cpu_count() or 1
    print(f"raw pyca, {workers} processes ...", file=sys.stderr, flush=True)
    raw = {kind: raw_rate(kind, args.raw_seconds, workers) for kind in ("RSA", "EC")}
    opts = {"threads": args.threads, "connections": args.connections, "duration": args.duration}
    api = {}
    for kind, name, alg in (("RSA", "rsa", "RS256"), ("EC", "ec", "ES256")):
        body = json.dumps({"alg": alg, "value": DIGEST})
        script = lua_script(host, started.token, "POST", body)
        api[kind] = run_wrk(
            wrk, f"{alg} sign", f"{base}/keys/{name}//sign?{API}", script, workdir, **opts
        )
    # The floor under any API request: a bare endpoint, the RSA request's script, its CPU.
    tls = started.data_dir / "tls"
    bare, bare_port = start_bare(
        children, workdir, tls / "server.pem", tls / "server-key.pem", started.ctx
    )
    body = json.dumps({"alg": "RS256", "value": DIGEST})
    script = lua_script(f"{VAULT}.vault.localhost:{bare_port}", started.token, "POST", body)
    server_before, wrk_before = cpu_seconds(bare.proc.pid), children_cpu_seconds()
    floor = run_wrk(wrk, "bare endpoint", f"https://127.0.0.1:{bare_port}/", script, workdir,
                    **opts)  # fmt: skip
    bare_cpu = cpu_seconds(bare.proc.pid) - server_before + children_cpu_seconds() - wrk_before
    children.stop(bare)

    def signer(mode: str, n: int) -> tuple[Child, str, str]:
        port = free_port()
        child = children.start(
            f"bare signer {mode} {n}",
            [sys.executable, str(Path(__file__).resolve()), "--bare-signer", str(port),
             str(tls / "server.pem"), str(tls / "server-key.pem"), mode],
            workdir / f"bare-signer-{mode}-{n}.log",
        )  # fmt: skip
        url = f"https://127.0.0.1:{port}/"
        wait_ready(child, url, started.ctx)
        return (
            child,
            url,
            lua_script(f"{VAULT}.vault.localhost:{port}", started.token, "POST", body),
        )

    child, url, script = signer("workers", 0)
    signed = run_wrk(wrk, "bare signer", url, script, workdir, **opts)
    children.stop(child)
    # Two servers signing on their event loops, each driven by half the connections.
    inline = [signer("inline", n) for n in range(2)]
    half = {"threads": max(1, args.threads // 2), "connections": max(1, args.connections // 2),
            "duration": args.duration}  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda s: run_wrk(wrk, "inline signer", s[1], s[2], workdir, **half),
                             inline))  # fmt: skip
    for child, _, _ in inline:
        children.stop(child)
    inline_rps = sum(r.rps for r in runs)
    per_bare = bare_cpu / floor.requests
    per_sig = workers / raw["RSA"]  # each raw process keeps one core busy
    ceiling = per_sig / (per_sig + per_bare)

    print(f"\nStrongroom key signing: wrk -t{args.threads} -c{args.connections} "
          f"-d{args.duration:g}s, TLS keep-alive, {workers} CPUs")  # fmt: skip
    print(f"{'measurement':<28} {'rate':>12}  {'p50 ms':>7}  {'ratio':>12}")
    for kind, label in (("RSA", "RSA-2048 RS256"), ("EC", "EC P-256 ES256")):
        result = api[kind]
        print(f"{'raw pyca ' + label:<28} {raw[kind]:>10,.0f}/s")
        ratio = result.rps / raw[kind]
        print(f"{'API ' + label:<28} {result.rps:>10,.0f}/s  {result.p50_ms:>7.2f}  "
              f"{ratio:>6.2f} x raw")  # fmt: skip
    print(f"{'bare endpoint (floor)':<28} {floor.rps:>10,.0f}/s  {floor.p50_ms:>7.2f}  "
          f"{per_bare * 1e6:>6.0f} us CPU per request (server + wrk)")  # fmt: skip
    print(
        f"ceiling for RSA-2048 on this stack: {ceiling:.2f} x raw "
        f"(a raw signature: {per_sig * 1e6:.0f} us CPU; + a bare request: {per_bare * 1e6:.0f} us)"
    )
    print(
        f"{'bare signer (no app)':<28} {signed.rps:>10,.0f}/s  {signed.p50_ms:>7.2f}  "
        f"{signed.rps / raw['RSA']:>6.2f} x raw: HTTP, TLS, body read and a worker's RS256 only"
    )
    print(
        f"{'two inline signers (no app)':<28} {inline_rps:>10,.0f}/s  {'':>7}  "
        f"{inline_rps / raw['RSA']:>6.2f} x raw: as above, signing on their event loops"
    )
    print(
        f"Strongroom's own handling of an RS256 request costs "
        f"{1 - api['RSA'].rps / signed.rps:.0%} of the bare signer's rate"
    )
    met = api["RSA"].rps / raw["RSA"] >= RSA_TARGET
    print(
        f"target: API RSA-2048 sign >= {RSA_TARGET:.2f} x raw pyca: {'met' if met else 'NOT met'}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8, help="seconds per wrk run (8)")
    parser.add_argument("--raw-seconds", type=float, default=4, help="seconds of raw pyca (4)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--bare-signer", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_signer:
        port, certfile, keyfile, mode = args.bare_signer
        serve_bare_signer(int(port), certfile, keyfile, mode)
        return 0
    return run_bench(bench, args, "strongroom-keybench-")


if __name__ == "__main__":
    sys.exit(main())
