"""Azurite, the Azure Storage emulator (npm package ``azurite``, installed by ``make test`` under
``tools/azurite``), started through ``tools/azurite/launch.cjs`` on loopback, and a Strongroom
server configured with Azurite's accounts file."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from strongroom.services.storage_providers import parse_accounts
from tests.conftest import Server, free_port, make_server

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "tools" / "azurite" / "launch.cjs"
ACCOUNTS = ("strongacct", "regenacct", "autoacct")


@dataclass
class Azurite:
    endpoint: str  # http://127.0.0.1:PORT
    accounts_file: Path

    def keys(self, account: str) -> dict[str, str]:
        return parse_accounts(self.accounts_file.read_text())[account]

    def account_url(self, account: str) -> str:
        return f"{self.endpoint}/{account}"

    @staticmethod
    def resource_id(account: str) -> str:
        return (
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/dev/providers/"
            f"Microsoft.Storage/storageAccounts/{account}"
        )


def _installed() -> bool:
    return shutil.which("node") is not None and (LAUNCHER.parent / "node_modules").is_dir()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    if not _installed():
        if os.environ.get("STRONGROOM_REQUIRE_AZURITE"):
            pytest.fail("Azurite is not installed: run `npm ci --prefix tools/azurite`.")
        pytest.skip("Azurite is not installed (npm ci --prefix tools/azurite); make test does it")
    root = tmp_path_factory.mktemp("azurite")
    accounts = root / "accounts"
    accounts.write_text(
        ";".join(
            f"{a}:{base64.b64encode(os.urandom(64)).decode()}:"
            f"{base64.b64encode(os.urandom(64)).decode()}"
            for a in ACCOUNTS
        )
    )
    port = free_port()
    log = open(root / "azurite.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [
            *("node", str(LAUNCHER), "--blobHost", "127.0.0.1", "--blobPort", str(port)),
            *("--location", str(root / "data"), "--skipApiVersionCheck", "--disableTelemetry"),
            "--silent",
        ],
        env={**os.environ, "STRONGROOM_AZURITE_ACCOUNTS_FILE": str(accounts)},
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"Azurite exited: {(root / 'azurite.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield Azurite(f"http://127.0.0.1:{port}", accounts)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def storage_server(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[Server]:
    srv = make_server(
        tmp_path_factory.mktemp("storage"),
        ("storage-a", "storage-b"),
        "--test-clock",
        *("--azurite-accounts-file", str(azurite.accounts_file)),
        *("--azurite-blob-endpoint", azurite.endpoint),
    )
    yield srv
    srv.stop()
