"""The commands every kind shares (cli/lifecycle.py), on secrets: list, list-versions,
list-deleted, delete, recover, purge, through the real command."""

from __future__ import annotations

import os

from tests.cli.conftest import Strongroom

A = ("--vault-name", "vault-a")


def test_a_secret_deleted_listed_recovered_deleted_and_purged(sr: Strongroom) -> None:
    name = f"life-{os.urandom(3).hex()}"
    sr.ok("secret", "set", *A, "--name", name, "--value", "one")
    sr.ok("secret", "set", *A, "--name", name, "--value", "two")
    assert len(sr.ok("secret", "list-versions", *A, "--name", name)) == 2
    deleted = sr.ok("secret", "delete", *A, "--name", name)
    assert deleted["recoveryId"].endswith(f"/deletedsecrets/{name}")
    listed = {d["name"]: d for d in sr.ok("secret", "list-deleted", *A)}
    assert listed[name]["scheduledPurgeDate"]
    assert name not in [s["name"] for s in sr.ok("secret", "list", *A)]
    sr.ok("secret", "recover", *A, "--name", name)
    assert name in [s["name"] for s in sr.ok("secret", "list", *A)]
    sr.ok("secret", "delete", *A, "--name", name)
    sr.ok("secret", "purge", *A, "--name", name)
    assert name not in [d["name"] for d in sr.ok("secret", "list-deleted", *A)]
    assert "(SecretNotFound)" in sr.fails("secret", "recover", *A, "--name", name)
