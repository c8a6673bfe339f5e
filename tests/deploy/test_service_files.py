"""deploy/: the systemd unit's command line, run as systemd would run it (systemd itself is
not in CI), with deploy/strongroom.toml as its settings; the unit's hardening; the container
build file's paths."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests import pg
from tests.conftest import free_port

pytestmark = pytest.mark.slow
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _unit() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit (a key may repeat, as systemd allows)."""
    found: dict[str, list[str]] = {}
    for line in (DEPLOY / "strongroom.service").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_is_hardened() -> None:
    unit = _unit()
    for key, value in {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "DynamicUser": "yes",
        "ProtectHome": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": "",
        "StateDirectory": "strongroom", "UMask": "0077",
    }.items():  # fmt: skip
        assert unit[key] == [value], key


def test_the_units_command_serves_with_the_example_settings(tmp_path: Path) -> None:
    argv = shlex.split(_unit()["ExecStart"][0])
    assert argv[0].endswith("/bin/strongroom")
    assert argv[1:] == ["serve", "--config", "/etc/strongroom/strongroom.toml"]
    # As systemd would run it, but with this machine's paths: the config file is the example,
    # and what must differ here (addresses, ports, directories, database) comes from the
    # environment, which the settings file yields to.
    port, metrics, public = free_port(), free_port(), free_port()
    database = pg.cluster().new_database("unit") if pg.available() else ""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    env.update(
        STRONGROOM_DATA_DIR=str(tmp_path / "state"), STRONGROOM_PORT=str(port),
        STRONGROOM_BIND="127.0.0.1", STRONGROOM_FORWARDED_ALLOW="127.0.0.1",
        STRONGROOM_METRICS_PORT=str(metrics), STRONGROOM_METRICS_ADDRESS="127.0.0.1",
        STRONGROOM_PUBLIC_URL=f"https://localhost:{public}",
        STRONGROOM_VAULT_SUFFIX="vault.localhost", STRONGROOM_DATABASE_URL=database,
    )  # fmt: skip
    command = [
        sys.executable,
        "-m",
        "strongroom.cli.main",
        *argv[1:-1],
        str(DEPLOY / "strongroom.toml"),
    ]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert ready.json()["backend"] == ("postgresql" if database else "sqlite")
        scrape = httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5)
        assert "strongroom_tokens_issued_total 0.0" in scrape.text
        # The default of one process per CPU took effect, and the public URL is what it
        # announces.
        server.terminate()
        out, _ = server.communicate(timeout=30)
        cpus = len(os.sched_getaffinity(0))
        assert (f"{cpus} worker processes" in out) == (cpus > 1), out
        assert f"serving https://localhost:{public}" in out
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def test_the_container_build_file_copies_what_exists() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    root = DEPLOY.parent
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (root / source).exists(), source
    assert 'ENTRYPOINT ["strongroom", "serve"]' in text
