"""The real `az` CLI (azure-cli 2.91) against Strongroom: cloud registration, service-principal
login, `az keyvault {secret,key,certificate} backup --file` / `restore --file`, and whole-vault
`az keyvault backup start` / `restore start` into and from Azurite, unmodified.

`make test` installs az into its own virtual environment and points STRONGROOM_AZ at it; run
directly without it, these tests skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, cli, make_server
from tests.storage.conftest import Azurite
from tests.storage.conftest import azurite as azurite  # the fixture, for this module too

AZ = os.environ.get("STRONGROOM_AZ", "")
pytestmark = pytest.mark.skipif(
    not (AZ and Path(AZ).exists()), reason="STRONGROOM_AZ does not name an az executable"
)


class Az:
    def __init__(self, srv: Server, config: Path):
        self.env = dict(os.environ, AZURE_CONFIG_DIR=str(config), REQUESTS_CA_BUNDLE=str(srv.ca))
        for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"):
            self.env.pop(name, None)

    def __call__(self, *args: str, ok: bool = True) -> Any:
        done = subprocess.run(
            [AZ, *args, "--only-show-errors"], env=self.env, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        if ok:
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout) if done.stdout.strip() else None
        assert done.returncode != 0, done.stdout
        return done.stderr


def az_setup(srv: Server, config_dir: Path) -> None:
    """``strongroom az-setup --apply``: az in ``config_dir`` pointed at ``srv`` and signed in
    as its test principal."""
    setup = subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", "az-setup", "--apply", "--az", AZ,
         "--data-dir", str(srv.data_dir), "--port", str(srv.port),
         "--client-id", srv.client_id, "--client-secret", srv.client_secret,
         "--config-dir", str(config_dir)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stderr


@pytest.fixture(scope="module")
def az(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[tuple[Az, Server]]:
    root = tmp_path_factory.mktemp("az")
    srv = make_server(
        root, ("az-prod", "az-dr", "az-whole", "az-one"),
        *("--azurite-accounts-file", str(azurite.accounts_file)),
        *("--azurite-blob-endpoint", azurite.endpoint),
    )  # fmt: skip
    run = Az(srv, root / "config")
    # strongroom az-setup: cloud register (with endpoint discovery, so /metadata/endpoints is
    # served), cloud set, instance discovery off, and a plain service-principal login (which
    # lists /subscriptions).
    az_setup(srv, root / "config")
    account = run("account", "show")
    assert account["tenantId"] == srv.tenant_id
    yield run, srv
    srv.stop()


def test_secret_set_show_backup_restore(az: tuple[Az, Server], tmp_path: Path) -> None:
    run, _ = az
    run("keyvault", "secret", "set", "--vault-name", "az-prod", "--name", "db", "--value", "one")
    run("keyvault", "secret", "set", "--vault-name", "az-prod", "--name", "db", "--value", "two")
    shown = run("keyvault", "secret", "show", "--vault-name", "az-prod", "--name", "db")
    assert shown["value"] == "two"
    blob = tmp_path / "db.blob"
    run("keyvault", "secret", "backup", "--vault-name", "az-prod", "--name", "db",
        "--file", str(blob))  # fmt: skip
    assert blob.read_bytes()[:4] == b"SRBK"
    restored = run("keyvault", "secret", "restore", "--vault-name", "az-dr", "--file", str(blob))
    assert restored["id"].startswith("https://az-dr.vault.localhost:")
    versions = run("keyvault", "secret", "list-versions", "--vault-name", "az-dr", "--name", "db")
    assert len(versions) == 2
    again = run("keyvault", "secret", "restore", "--vault-name", "az-dr", "--file", str(blob),
                ok=False)  # fmt: skip
    assert "Conflict" in again


def test_key_and_certificate_backup_restore(az: tuple[Az, Server], tmp_path: Path) -> None:
    run, _ = az
    key = run("keyvault", "key", "create", "--vault-name", "az-prod", "--name", "signing",
              "--kty", "EC", "--curve", "P-256")  # fmt: skip
    run("keyvault", "key", "backup", "--vault-name", "az-prod", "--name", "signing",
        "--file", str(tmp_path / "k.blob"))  # fmt: skip
    restored = run("keyvault", "key", "restore", "--vault-name", "az-dr",
                   "--file", str(tmp_path / "k.blob"))  # fmt: skip
    assert restored["key"]["x"] == key["key"]["x"]

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(run("keyvault", "certificate", "get-default-policy")))
    run("keyvault", "certificate", "create", "--vault-name", "az-prod", "--name", "tls",
        "--policy", f"@{policy}")  # fmt: skip
    run("keyvault", "certificate", "backup", "--vault-name", "az-prod", "--name", "tls",
        "--file", str(tmp_path / "c.blob"))  # fmt: skip
    cert = run("keyvault", "certificate", "restore", "--vault-name", "az-dr",
               "--file", str(tmp_path / "c.blob"))  # fmt: skip
    assert (
        cert["x509ThumbprintHex"]
        == run("keyvault", "certificate", "show", "--vault-name", "az-prod", "--name", "tls")[
            "x509ThumbprintHex"
        ]
    )


def test_certificate_import_pfx_backup_restore(az: tuple[Az, Server], tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12

    from tests.x509util import self_signed

    run, _ = az
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, "az-imported")
    pfx = tmp_path / "imported.pfx"
    pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(b"x", key, cert, None, serialization.NoEncryption())
    )
    imported = run("keyvault", "certificate", "import", "--vault-name", "az-prod",
                   "--name", "imported", "--file", str(pfx))  # fmt: skip
    run("keyvault", "certificate", "backup", "--vault-name", "az-prod", "--name", "imported",
        "--file", str(tmp_path / "i.blob"))  # fmt: skip
    run("keyvault", "certificate", "restore", "--vault-name", "az-dr", "--file",
        str(tmp_path / "i.blob"))  # fmt: skip
    shown = run("keyvault", "certificate", "show", "--vault-name", "az-dr", "--name", "imported")
    assert shown["x509ThumbprintHex"] == imported["x509ThumbprintHex"]


def test_a_principal_without_backup_permission_gets_403(
    az: tuple[Az, Server], tmp_path: Path
) -> None:
    run, srv = az
    run("keyvault", "secret", "set", "--vault-name", "az-prod", "--name", "kept", "--value", "x")
    reader = cli(srv.data_dir, "principal", "create", "az-reader", port=srv.port)
    cli(srv.data_dir, "vault", "update", "az-prod", "--closed")
    cli(srv.data_dir, "vault", "set-policy", "az-prod", "--principal", "tests",
        "--secret-permissions", "all")  # fmt: skip
    cli(srv.data_dir, "vault", "set-policy", "az-prod", "--principal", "az-reader",
        "--secret-permissions", "get")  # fmt: skip
    other = Az(srv, tmp_path / "reader-config")
    done = subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", "az-setup", "--apply", "--az", AZ,
         "--data-dir", str(srv.data_dir), "--port", str(srv.port),
         "--client-id", reader["clientId"], "--client-secret", reader["clientSecret"],
         "--config-dir", str(tmp_path / "reader-config")],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    time.sleep(2.2)  # the server re-reads a vault's policies at most every 2 s
    assert (
        other("keyvault", "secret", "show", "--vault-name", "az-prod", "--name", "kept")["value"]
        == "x"
    )
    error = other("keyvault", "secret", "backup", "--vault-name", "az-prod", "--name", "kept",
                  "--file", str(tmp_path / "no.blob"), ok=False)  # fmt: skip
    assert "does not have secrets backup permission" in error
    cli(srv.data_dir, "vault", "delete-policy", "az-prod", "--principal", "az-reader")
    cli(srv.data_dir, "vault", "delete-policy", "az-prod", "--principal", "tests")
    cli(srv.data_dir, "vault", "update", "az-prod", "--open")  # for the module's other tests
    time.sleep(2.2)


def test_a_damaged_blob_is_refused_with_its_cause(az: tuple[Az, Server], tmp_path: Path) -> None:
    run, _ = az
    run("keyvault", "secret", "set", "--vault-name", "az-prod", "--name", "cut", "--value", "x")
    blob = tmp_path / "cut.blob"
    run("keyvault", "secret", "backup", "--vault-name", "az-prod", "--name", "cut",
        "--file", str(blob))  # fmt: skip
    blob.write_bytes(blob.read_bytes()[:-5])
    error = run("keyvault", "secret", "restore", "--vault-name", "az-dr", "--file", str(blob),
                ok=False)  # fmt: skip
    assert "corrupted" in error


def test_whole_vault_backup_start_and_restore_start(
    az: tuple[Az, Server], azurite: Azurite
) -> None:
    import datetime as dt

    from azure.storage.blob import BlobServiceClient, ContainerSasPermissions
    from azure.storage.blob import generate_container_sas as sas_for

    run, srv = az
    run("keyvault", "secret", "set", "--vault-name", "az-prod", "--name", "whole", "--value", "1")
    run("keyvault", "key", "create", "--vault-name", "az-prod", "--name", "whole-key",
        "--kty", "RSA")  # fmt: skip
    account = "strongacct"
    key = azurite.keys(account)["key1"]
    BlobServiceClient(
        azurite.account_url(account), credential={"account_name": account, "account_key": key}
    ).create_container("azbackups")
    token = sas_for(
        account, "azbackups", account_key=key,
        permission=ContainerSasPermissions(read=True, write=True, list=True, create=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )  # fmt: skip
    container = f"{azurite.account_url(account)}/azbackups"
    # --id: az has no Managed HSM DNS suffix for this cloud (contract notes: --hsm-name X
    # would mean https://X).
    started = run("keyvault", "backup", "start", "--id", srv.vault_url("az-prod"),
                  "--storage-resource-uri", container,
                  "--storage-container-SAS-token", token)  # fmt: skip
    assert started["status"] == "Succeeded"
    folder = started["folderUrl"].rsplit("/", 1)[1]
    assert started["folderUrl"] == f"{container}/{folder}"
    run("keyvault", "restore", "start", "--id", srv.vault_url("az-whole"),
        "--storage-resource-uri", container, "--storage-container-SAS-token", token,
        "--backup-folder", folder)  # fmt: skip
    shown = run("keyvault", "secret", "show", "--vault-name", "az-whole", "--name", "whole")
    assert shown["value"] == "1"
    run("keyvault", "restore", "start", "--id", srv.vault_url("az-one"),
        "--storage-resource-uri", container, "--storage-container-SAS-token", token,
        "--backup-folder", folder, "--key-name", "whole-key")  # fmt: skip
    keys = run("keyvault", "key", "list", "--vault-name", "az-one")
    assert [k["name"] for k in keys] == ["whole-key"]
    error = run("keyvault", "restore", "start", "--id", srv.vault_url("az-one"),
                "--storage-resource-uri", container, "--storage-container-SAS-token", token,
                "--backup-folder", "no-such-folder", ok=False)  # fmt: skip
    assert "BackupFileNotFound" in error or "no-such-folder" in error
