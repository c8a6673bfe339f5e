"""Start-up of ``strongroom serve --ephemeral``: from starting the process to its first answered
request, against starting a bare Python interpreter in the same run.

Each of ``--runs`` (10) rounds starts ``strongroom serve --ephemeral --vault app --env-file F``
and times until an HTTPS ``GET /health`` (trusting the CA the environment names) answers 200;
then SIGTERM, and the temporary directory must be gone. The baseline is ``python -c pass`` in
the same round. Target: the median start under one second on this machine.

    .venv/bin/python bench/ephemeral_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 1.0


def _answers(authority: str, ca: str) -> bool:
    host, port = authority.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=ca)
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=2)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def one_start(workdir: Path) -> float:
    env_file = workdir / "env.json"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "strongroom.cli", "serve", "--ephemeral", "--vault", "app",
         "--env-file", str(env_file), "--env-format", "json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while not env_file.exists():
            if process.poll() is not None:
                raise SystemExit("the ephemeral server exited before it was ready")
            time.sleep(0.002)
        env = json.loads(env_file.read_text())
        while not _answers(env["STRONGROOM_AUTHORITY"], env["STRONGROOM_CA"]):
            time.sleep(0.002)
        seconds = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=20)
    if Path(env["STRONGROOM_DATA_DIR"]).exists():
        raise SystemExit("the ephemeral server left its data directory behind")
    return seconds


def bare_python() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    starts, bares = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            bares.append(bare_python())
            starts.append(one_start(Path(tmp)))
    start, bare = statistics.median(starts), statistics.median(bares)
    print(f"ephemeral server, start to first answer: median {start:.3f} s, "
          f"min {min(starts):.3f}, max {max(starts):.3f} ({args.runs} runs)")  # fmt: skip
    print(f"bare python -c pass: median {bare:.3f} s")
    print(f"ratio to bare interpreter: {start / bare:.1f}")
    verdict = "met" if start < TARGET_SECONDS else "NOT met"
    print(f"target (median under {TARGET_SECONDS:.1f} s): {verdict}")


if __name__ == "__main__":
    main()
