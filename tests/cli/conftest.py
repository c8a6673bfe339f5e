"""The ``strongroom`` command run as a user runs it: a subprocess, against the session's server
over TLS, with the profile ``principal create --save-profile`` wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, database_env

Done = subprocess.CompletedProcess[str]


@dataclass
class Strongroom:
    cwd: Path
    env: dict[str, str]

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "strongroom.cli", *args],
            capture_output=True, text=True, timeout=120, cwd=self.cwd,
            env={**self.env, **(env or {})},
        )  # fmt: skip

    def ok(self, *args: str) -> Any:
        """The command's JSON output (None when it printed none); it must succeed."""
        done = self.run(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return json.loads(done.stdout) if done.stdout.strip() else None

    def fails(self, *args: str, env: dict[str, str] | None = None) -> str:
        """What the command printed on stderr; it must fail."""
        done = self.run(*args, env=env)
        assert done.returncode != 0, (args, done.stdout)
        return done.stderr


@pytest.fixture
def sr(server: Server, tmp_path: Path) -> Strongroom:
    """The command with a profile of its own (a new principal), in a fresh working directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    env["STRONGROOM_PROFILE"] = str(tmp_path / "profile.json")
    env.pop("STRONGROOM_VAULT_DNS_SUFFIX", None)
    # The session server's CA, whatever another session fixture (the pytest plugin's server,
    # while it lives) has put in this process's environment.
    env["REQUESTS_CA_BUNDLE"] = env["SSL_CERT_FILE"] = str(server.ca)
    env.update(database_env(server.data_dir))  # administration commands find the database
    strongroom = Strongroom(cwd=tmp_path, env=env)
    strongroom.ok(
        "principal", "create", f"sr-{tmp_path.name}", "--save-profile",
        "--data-dir", str(server.data_dir), "--port", str(server.port),
    )  # fmt: skip
    return strongroom
