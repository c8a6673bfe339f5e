"""Disaster recovery across installations: three real servers, one security domain moved
between two of them under 2-of-3 custodian control, rotation, retirement, inspect/verify."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.certificates import CertificateClient, CertificatePolicy
from azure.keyvault.keys import KeyClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from strongroom.cli.main import app
from tests.conftest import Server, database_env, make_server
from tests.x509util import private_pem, self_signed

runner = CliRunner()


def strongroom(data_dir: Path, *args: str, ok: bool = True) -> Any:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)], env=database_env(data_dir))
    if ok:
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return json.loads(result.stdout)
    assert result.exit_code != 0, result.stdout
    return result.stderr


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    made = {
        "a": make_server(tmp_path_factory.mktemp("site-a"), ("prod",)),
        "b": make_server(tmp_path_factory.mktemp("site-b"), ("local",)),
        "c": make_server(tmp_path_factory.mktemp("site-c"), ("prod",)),
    }
    yield made
    for server in made.values():
        server.stop()


@pytest.fixture(scope="module")
def custodians(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("custodians")
    out = []
    for i in range(1, 4):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = self_signed(key, f"custodian {i}", days=30)
        cert_path, key_path = root / f"c{i}.pem", root / f"k{i}.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(private_pem(key))
        out.append((cert_path, key_path))
    return out


def _export(site: Server, custodians: list[tuple[Path, Path]], out: Path) -> dict[str, Any]:
    args = ["domain", "export", "default", "--quorum", "2", "--out", str(out), "--force"]
    for cert, _ in custodians:
        args += ["--certificate", str(cert)]
    return strongroom(site.data_dir, *args)  # type: ignore[no-any-return]


def _restore_error(exc: HttpResponseError) -> str:
    assert exc.status_code == 400
    return str(exc.error.innererror["code"])  # type: ignore[union-attr]


def test_dr_across_installations(
    sites: dict[str, Server], custodians: list[tuple[Path, Path]], tmp_path: Path
) -> None:
    a, b, c = sites["a"], sites["b"], sites["c"]
    secrets_a = a.client("prod")
    for value in ("one", "two", "three"):
        secrets_a.set_secret("db-password", value)
    keys_a = KeyClient(a.vault_url("prod"), a.credential(), connection_verify=str(a.ca))
    keys_a.create_ec_key("signing")
    keys_a.rotate_key("signing")
    certs_a = CertificateClient(a.vault_url("prod"), a.credential(), connection_verify=str(a.ca))
    certs_a.begin_create_certificate("tls", CertificatePolicy.get_default()).result()
    blobs = {
        "secret": secrets_a.backup_secret("db-password"),
        "key": keys_a.backup_key("signing"),
        "certificate": certs_a.backup_certificate("tls"),
    }

    exported = _export(a, custodians, tmp_path / "domain.json")
    domain_id = exported["domain"]["id"]
    assert exported["quorum"] == 2 and exported["custodians"] == 3

    # C has its own domain: A's blobs are refused, naming A's domain.
    with pytest.raises(HttpResponseError) as foreign:
        c.client("prod").restore_secret_backup(blobs["secret"])
    assert _restore_error(foreign.value) == "BackupSecurityDomainUnknown"
    assert domain_id in str(foreign.value)

    # Import refusals on B: too few keys, a stranger's key, a damaged file.
    (_, k1), (_, k2), (_, k3) = custodians
    few = strongroom(b.data_dir, "domain", "import", str(tmp_path / "domain.json"),
                     "--key", str(k1), ok=False)  # fmt: skip
    assert "needs 2" in few
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(
        private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    )
    wrong = strongroom(b.data_dir, "domain", "import", str(tmp_path / "domain.json"),
                       "--key", str(k1), "--key", str(stranger), ok=False)  # fmt: skip
    assert "belongs to no custodian" in wrong
    damaged = json.loads((tmp_path / "domain.json").read_text())
    damaged["payload"] = damaged["payload"][:-8] + "AAAAAAAA"
    (tmp_path / "damaged.json").write_text(json.dumps(damaged))
    broken = strongroom(b.data_dir, "domain", "import", str(tmp_path / "damaged.json"),
                        "--key", str(k1), "--key", str(k3), ok=False)  # fmt: skip
    assert "damaged" in broken

    imported = strongroom(b.data_dir, "domain", "import", str(tmp_path / "domain.json"),
                          "--key", str(k3), "--key", str(k2))  # fmt: skip
    assert imported["id"] == domain_id
    strongroom(b.data_dir, "vault", "create", "dr-vault", "--domain", domain_id, "--open")

    # Into B's own-domain vault: refused as a domain mismatch.
    with pytest.raises(HttpResponseError) as mismatch:
        b.client("local").restore_secret_backup(blobs["secret"])
    assert _restore_error(mismatch.value) == "BackupSecurityDomainMismatch"

    # Into B's vault of A's domain: everything, with every version.
    secrets_b = b.client("dr-vault")
    secrets_b.restore_secret_backup(blobs["secret"])
    versions_a = sorted(
        p.version for p in secrets_a.list_properties_of_secret_versions("db-password")
    )
    versions_b = sorted(
        p.version for p in secrets_b.list_properties_of_secret_versions("db-password")
    )
    assert versions_a == versions_b
    assert secrets_b.get_secret("db-password").value == "three"
    keys_b = KeyClient(b.vault_url("dr-vault"), b.credential(), connection_verify=str(b.ca))
    assert keys_b.restore_key_backup(blobs["key"]).key.x == keys_a.get_key("signing").key.x
    assert len(list(keys_b.list_properties_of_key_versions("signing"))) == 2
    certs_b = CertificateClient(
        b.vault_url("dr-vault"), b.credential(), connection_verify=str(b.ca)
    )
    assert certs_b.restore_certificate_backup(blobs["certificate"]).cer == (
        certs_a.get_certificate("tls").cer
    )

    # Inspect and verify, without restoring.
    blob_file = tmp_path / "secret.blob"
    blob_file.write_bytes(blobs["secret"])
    seen_c = strongroom(c.data_dir, "backup", "inspect", str(blob_file))
    assert seen_c["header"]["name"] == "db-password"
    assert seen_c["header"]["versions"] == 3
    assert seen_c["openable"].startswith("no: security domain")
    assert strongroom(b.data_dir, "backup", "inspect", str(blob_file))["openable"] == "yes"
    verified = strongroom(b.data_dir, "backup", "verify", str(blob_file))
    assert verified["verified"] is True and sorted(verified["versions"]) == versions_a
    assert "not held" in strongroom(c.data_dir, "backup", "verify", str(blob_file), ok=False)

    # Rotation on A: new blobs use the new version; B needs a newer export to open them.
    old_version = strongroom(a.data_dir, "domain", "show", "default")["currentBackupKeyVersion"]
    rotated = strongroom(a.data_dir, "domain", "rotate-backup-key", "default")
    new_version = rotated["currentBackupKeyVersion"]
    assert new_version != old_version
    secrets_a.set_secret("after-rotation", "x")
    new_blob = secrets_a.backup_secret("after-rotation")
    with pytest.raises(HttpResponseError) as unknown:
        secrets_b.restore_secret_backup(new_blob)
    assert _restore_error(unknown.value) == "BackupKeyVersionUnknown"
    _export(a, custodians, tmp_path / "domain2.json")
    strongroom(b.data_dir, "domain", "import", str(tmp_path / "domain2.json"),
               "--key", str(k1), "--key", str(k2))  # fmt: skip
    assert secrets_b.restore_secret_backup(new_blob).name == "after-rotation"
    secrets_a.begin_delete_secret("db-password").wait()
    secrets_a.purge_deleted_secret("db-password")
    assert secrets_a.restore_secret_backup(blobs["secret"]).name == "db-password"  # old still opens

    # Retiring the old version on A: its blobs are refused there, naming the version.
    assert "rotate" in strongroom(a.data_dir, "domain", "retire-backup-key", "default",
                                  new_version, ok=False)  # fmt: skip
    strongroom(a.data_dir, "domain", "retire-backup-key", "default", old_version)
    secrets_a.begin_delete_secret("db-password").wait()
    secrets_a.purge_deleted_secret("db-password")
    with pytest.raises(HttpResponseError) as gone:
        secrets_a.restore_secret_backup(blobs["secret"])
    assert _restore_error(gone.value) == "BackupKeyVersionRetired"
    assert old_version in str(gone.value)
