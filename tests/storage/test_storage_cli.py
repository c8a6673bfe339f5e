"""``strongroom storage ...`` (the names and flags of az's former ``az keyvault storage`` group),
run in a subprocess against a server whose storage accounts Azurite holds."""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

from tests.cli.conftest import Strongroom
from tests.conftest import Server, database_env
from tests.storage.conftest import Azurite

A = ("--vault-name", "storage-a")
B = ("--vault-name", "storage-b")


@pytest.fixture
def sr(storage_server: Server, tmp_path: Path) -> Iterator[Strongroom]:
    """The command with a profile of its own for the storage server, in a fresh directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    env["STRONGROOM_PROFILE"] = str(tmp_path / "profile.json")
    env.pop("STRONGROOM_VAULT_DNS_SUFFIX", None)
    env["REQUESTS_CA_BUNDLE"] = env["SSL_CERT_FILE"] = str(storage_server.ca)
    env.update(database_env(storage_server.data_dir))
    strongroom = Strongroom(cwd=tmp_path, env=env)
    strongroom.ok(
        "principal", "create", f"st-{tmp_path.name}", "--save-profile",
        "--data-dir", str(storage_server.data_dir), "--port", str(storage_server.port),
    )  # fmt: skip
    yield strongroom


def _name() -> str:
    return f"cli{os.urandom(4).hex()}"


def _template() -> str:
    return generate_account_sas(
        "ignored", base64.b64encode(b"any key signs a template").decode(),
        ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, list=True),
        dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
    )  # fmt: skip


def test_add_show_list_update_regenerate(sr: Strongroom, azurite: Azurite) -> None:
    name = _name()
    made = sr.ok("storage", "add", *A, "--name", name,
                 "--resource-id", azurite.resource_id("strongacct"),
                 "--active-key-name", "key1", "--auto-regenerate-key",
                 "--regeneration-period", "P30D", "--tags", "team=ops")  # fmt: skip
    assert made["id"].endswith(f"/storage/{name}")
    assert made["activeKeyName"] == "key1" and made["autoRegenerateKey"] is True
    assert made["regenerationPeriod"] == "P30D" and made["tags"] == {"team": "ops"}
    assert sr.ok("storage", "show", *A, "-n", name) == made
    assert name in sr.ok("storage", "list", *A, "--query", "[].id | join(' ', @)")
    updated = sr.ok("storage", "update", *A, "-n", name, "--active-key-name", "key2",
                    "--no-auto-regenerate-key")  # fmt: skip
    assert updated["activeKeyName"] == "key2" and updated["autoRegenerateKey"] is False
    assert updated["tags"] == {"team": "ops"}
    regenerated = sr.ok("storage", "regenerate-key", *A, "-n", name, "--key-name", "key1")
    assert regenerated["id"] == made["id"]

    error = sr.fails("storage", "add", *A, "--name", _name(), "--resource-id", "nonsense",
                     "--active-key-name", "key1")  # fmt: skip
    assert error.startswith("(BadParameter) ") and "storageAccounts" in error
    assert sr.fails("storage", "show", *A, "-n", "nosuch").startswith("(StorageAccountNotFound) ")


def test_sas_definitions_mint_tokens_as_secrets(sr: Strongroom, azurite: Azurite) -> None:
    account = _name()
    sr.ok("storage", "add", *A, "-n", account, "--resource-id",
          azurite.resource_id("strongacct"), "--active-key-name", "key1")  # fmt: skip
    defined = sr.ok("storage", "sas-definition", "create", *A, "--account-name", account,
                    "-n", "ro", "--template-uri", _template(), "--sas-type", "account",
                    "--validity-period", "PT2H")  # fmt: skip
    assert defined["id"].endswith(f"/storage/{account}/sas/ro")
    assert defined["sid"].endswith(f"/secrets/{account}-ro")
    shown = sr.ok("storage", "sas-definition", "show", *A, "--account-name", account, "-n", "ro")
    assert shown["validityPeriod"] == "PT2H" and shown["sasType"] == "account"
    listed = sr.ok("storage", "sas-definition", "list", *A, "--account-name", account)
    assert [d["id"] for d in listed] == [defined["id"]]
    token = sr.ok("secret", "show", *A, "--name", f"{account}-ro")
    assert token["contentType"] == "application/vnd.ms-sastoken-storage"
    assert "sig=" in token["value"]
    deleted = sr.ok("storage", "sas-definition", "delete", *A, "--account-name", account,
                    "-n", "ro")  # fmt: skip
    assert deleted["id"] == defined["id"]
    assert sr.ok("storage", "sas-definition", "list", *A, "--account-name", account) == []


def test_delete_recover_purge_backup_restore(
    sr: Strongroom, azurite: Azurite, tmp_path: Path
) -> None:
    name = _name()
    sr.ok("storage", "add", *A, "-n", name, "--resource-id", azurite.resource_id("strongacct"),
          "--active-key-name", "key2")  # fmt: skip
    sr.ok("storage", "sas-definition", "create", *A, "--account-name", name, "-n", "rw",
          "--template-uri", _template(), "--sas-type", "account",
          "--validity-period", "PT1H")  # fmt: skip
    written = sr.ok("storage", "backup", *A, "--name", name)
    path = Path(written["file"])
    assert path.parent == tmp_path and path.name.startswith(f"storage-a-{name}-")
    assert path.stat().st_size == written["bytes"] > 0
    error = sr.fails("storage", "backup", *A, "--name", name, "--file", str(path))
    assert error.startswith("(FileExists) ")
    sr.ok("storage", "backup", *A, "--name", name, "--file", str(path), "--force")

    deleted = sr.ok("storage", "remove", *A, "--name", name)
    assert deleted["recoveryId"].endswith(f"/deletedstorage/{name}")
    assert name in [d["id"].rsplit("/", 1)[1] for d in sr.ok("storage", "list-deleted", *A)]
    assert sr.ok("storage", "show-deleted", *A, "-n", name)["recoveryId"] == deleted["recoveryId"]
    recovered = sr.ok("storage", "recover", *A, "--name", name)
    assert recovered["activeKeyName"] == "key2"
    sr.ok("storage", "delete", *A, "--name", name)
    assert sr.ok("storage", "purge", *A, "--name", name) is None
    assert sr.fails("storage", "show", *A, "-n", name).startswith("(StorageAccountNotFound) ")

    restored = sr.ok("storage", "restore", *B, "--file", str(path))
    assert restored["id"].startswith("https://storage-b.") and restored["activeKeyName"] == "key2"
    sas = sr.ok("storage", "sas-definition", "list", *B, "--account-name", name)
    assert [d["id"].rsplit("/", 1)[1] for d in sas] == ["rw"]
    assert sr.fails("storage", "restore", *B, "--file", str(path)).startswith("(Conflict) ")
