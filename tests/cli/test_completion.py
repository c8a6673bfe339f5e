"""Shell completion: vault names from the local installation, object names listed from the
vault. The completers are called directly, and a real completion runs through Typer's
``_STRONGROOM_COMPLETE=complete_bash`` protocol in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from strongroom.cli.completion import complete_vault_name, local_vault_names, object_names
from tests.cli.conftest import Strongroom
from tests.conftest import Server, database_env


def ctx(**params: Any) -> Any:
    """What a completer reads of Click's context: the parameters parsed so far."""
    return SimpleNamespace(params=params)


def test_vault_names_come_from_the_local_installation(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in database_env(server.data_dir).items():
        monkeypatch.setenv(key, value)
    assert {"vault-a", "vault-b"} <= set(local_vault_names(server.data_dir))
    found = complete_vault_name(ctx(data_dir=server.data_dir), "vault-")
    assert {"vault-a", "vault-b"} <= set(found) and found == sorted(found)
    assert complete_vault_name(ctx(data_dir=server.data_dir), "VAULT-A") == ["vault-a"]
    monkeypatch.delenv("STRONGROOM_DATABASE_URL", raising=False)
    nowhere = tmp_path / "no-installation"
    assert complete_vault_name(ctx(data_dir=nowhere), "") == []
    assert not nowhere.exists()  # a completion creates nothing


def test_object_names_are_listed_from_the_vault(
    sr: Strongroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"comp-{os.urandom(4).hex()}"
    sr.ok("secret", "set", "--vault-name", "vault-a", "--name", name, "--value", "v")
    for key in [k for k in os.environ if k.startswith("AZURE_")]:
        monkeypatch.delenv(key)
    for key in ("STRONGROOM_PROFILE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(key, sr.env[key])
    complete = object_names("secret")
    assert complete(ctx(vault_name="vault-a", vault_url=None), name[:9]) == [name]
    assert complete(ctx(vault_name="vault-a", vault_url=None), "no-such-prefix") == []
    assert complete(ctx(vault_name=None, vault_url=None), "") == []  # which vault?
    started = time.monotonic()  # a server that is not there: nothing, and soon
    assert complete(ctx(vault_name=None, vault_url="https://127.0.0.1:9"), "") == []
    assert time.monotonic() - started < 5
    assert object_names("key")(ctx(vault_name="vault-a", vault_url=None), name) == []


def test_a_bash_completion_through_the_command(sr: Strongroom, server: Server) -> None:
    name = f"bash-{os.urandom(4).hex()}"
    sr.ok("secret", "set", "--vault-name", "vault-b", "--name", name, "--value", "v")

    def complete(words: str) -> list[str]:
        env = {**sr.env, "_STRONGROOM_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split(" ")) - 1)}  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "strongroom.cli"], capture_output=True, text=True,
            timeout=60, env=env, cwd=sr.cwd,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete(f"strongroom secret show --vault-name vault-b --name {name[:10]}") == [name]
    data = str(server.data_dir)
    assert {"vault-a", "vault-b"} <= set(complete(f"strongroom vault show --data-dir {data} v"))
