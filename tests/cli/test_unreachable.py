"""A client command that cannot reach its server says which URL it tried and how to point
elsewhere, instead of a bare "Connection refused" or a traceback."""

from __future__ import annotations

import json
import time

from tests.cli.conftest import Strongroom
from tests.conftest import Server, free_port


def _dead_profile(sr: Strongroom, dead: int) -> str:
    """The profile, pointed at a port where nothing listens; its path."""
    path = sr.env["STRONGROOM_PROFILE"]
    with open(path) as f:
        saved = json.load(f)
    saved["vaultDnsSuffix"] = f"vault.localhost:{dead}"
    saved["authority"] = f"https://localhost:{dead}"
    with open(path, "w") as f:
        json.dump(saved, f)
    return path


def test_a_vault_nothing_listens_on_is_named_with_the_ways_out(sr: Strongroom) -> None:
    dead = free_port()
    path = _dead_profile(sr, dead)
    started = time.monotonic()
    error = sr.fails("secret", "show", "--vault-name", "vault-a", "--name", "x")
    assert time.monotonic() - started < 20
    assert error.startswith(
        f"(CannotConnect) Cannot connect to https://vault-a.vault.localhost:{dead} "
        "(connection refused); the vault URL came from the profile "
    )
    assert path in error
    for way_out in ("--vault-url", "STRONGROOM_VAULT_DNS_SUFFIX", "--save-profile", "az-setup"):
        assert way_out in error
    assert "Traceback" not in error
    assert len(error.splitlines()) == 1


def test_the_url_came_from_the_option_or_the_environment(sr: Strongroom, server: Server) -> None:
    dead = free_port()
    error = sr.fails("secret", "list", "--vault-url", f"https://vault-a.vault.localhost:{dead}")
    assert error.startswith(
        f"(CannotConnect) Cannot connect to https://vault-a.vault.localhost:{dead} "
        "(connection refused); the vault URL came from --vault-url."
    )
    env = {"STRONGROOM_VAULT_DNS_SUFFIX": f"vault.localhost:{dead}"}
    error = sr.fails("secret", "list", "--vault-name", "vault-b", env=env)
    assert (
        f"Cannot connect to https://vault-b.vault.localhost:{dead} (connection refused); "
        f"the vault URL came from STRONGROOM_VAULT_DNS_SUFFIX=vault.localhost:{dead}."
    ) in error
    # and --vault-url reaches a live server as --vault-name does
    url = server.vault_url("vault-a")
    sr.ok("secret", "set", "--vault-url", url, "--name", "by-url", "--value", "v")
    assert sr.ok("secret", "show", "--vault-name", "vault-a", "--name", "by-url")["value"] == "v"


def test_an_unreachable_token_issuer_is_told_apart(sr: Strongroom, server: Server) -> None:
    dead = free_port()
    _dead_profile(sr, dead)
    env = {"STRONGROOM_VAULT_DNS_SUFFIX": f"vault.localhost:{server.port}"}
    error = sr.fails("secret", "list", "--vault-name", "vault-a", env=env)
    assert error.startswith(
        f"(CannotConnect) Cannot connect to the token issuer https://localhost:{dead} "
        f"(connection refused) for the vault https://vault-a.vault.localhost:{server.port}."
    )
    assert "AZURE_AUTHORITY_HOST" in error


def test_vault_name_or_url_is_needed(sr: Strongroom) -> None:
    error = sr.fails("secret", "list")
    assert error.startswith("(BadParameter) Give exactly one of --vault-name and --vault-url.")
