"""Durability, sealing at rest, and the other ways of authenticating, with the real SDK."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from azure.identity import CertificateCredential, ClientSecretCredential
from azure.keyvault.secrets import SecretClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import Server, cli, make_server
from tests.x509util import private_pem, self_signed


@pytest.fixture
def own_server(tmp_path: Path) -> Server:
    srv = make_server(tmp_path, vaults=("durable",))
    yield srv  # type: ignore[misc]
    srv.stop()


def _client(srv: Server, vault: str) -> SecretClient:
    return srv.client(vault)  # type: ignore[no-any-return]


def test_restart_keeps_everything(own_server: Server) -> None:
    client = _client(own_server, "durable")
    kept = client.set_secret("kept", "before-restart")
    client.set_secret("gone", "x")
    client.begin_delete_secret("gone").wait()
    own_server.stop()
    own_server.start()

    client = _client(own_server, "durable")  # fresh token cache is not needed: same keys
    assert client.get_secret("kept").value == "before-restart"
    assert client.get_secret("kept").properties.version == kept.properties.version
    assert client.get_deleted_secret("gone").name == "gone"


def test_values_are_sealed_at_rest(own_server: Server) -> None:
    marker = "plaintext-marker-" + os.urandom(8).hex()
    client = _client(own_server, "durable")
    for _ in range(3):
        client.set_secret("sealed", marker)
    client.backup_secret("sealed")
    own_server.stop()  # checkpoint the WAL into the main file as well
    if own_server.database_url is None:
        files = [p for p in own_server.data_dir.iterdir() if p.name.startswith("strongroom.db")]
        assert files
        for path in files:
            assert marker.encode() not in path.read_bytes(), path
    else:  # every value of every row of every table, as PostgreSQL hands them out
        import psycopg

        with psycopg.connect(own_server.database_url) as conn:
            tables = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname='public'"
            ).fetchall()
            assert {"versions", "objects", "meta"} <= {t for (t,) in tables}
            for (table,) in tables:
                for row in conn.execute(f'SELECT * FROM "{table}"').fetchall():
                    for value in row:
                        raw = value if isinstance(value, bytes) else str(value).encode()
                        assert marker.encode() not in raw, table
    own_server.start()
    assert _client(own_server, "durable").get_secret("sealed").value == marker


def test_master_key_file_is_private(own_server: Server) -> None:
    mode = (own_server.data_dir / "master.key").stat().st_mode & 0o777
    assert mode == 0o600
    assert (own_server.data_dir / "master.key").stat().st_size == 32


def _self_signed(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert_pem = self_signed(key, "ci-principal", days=1).public_bytes(serialization.Encoding.PEM)
    key_pem = private_pem(key)
    public, both = directory / "cert.pem", directory / "both.pem"
    public.write_bytes(cert_pem)
    both.write_bytes(key_pem + cert_pem)
    return public, both


@pytest.mark.parametrize("send_chain", [False, True])
def test_certificate_principal(server: Server, tmp_path: Path, send_chain: bool) -> None:
    public, both = _self_signed(tmp_path)
    created = cli(
        server.data_dir, "principal", "create", f"cert-{send_chain}-{os.urandom(2).hex()}",
        "--certificate", str(public), port=server.port,
    )  # fmt: skip
    assert "clientSecret" not in created
    credential = CertificateCredential(
        server.tenant_id,
        created["clientId"],
        certificate_path=str(both),
        authority=server.authority,
        disable_instance_discovery=True,
        send_certificate_chain=send_chain,
    )
    client = SecretClient(server.vault_url("vault-a"), credential)
    assert client.set_secret(f"by-cert-{send_chain}", "v").value == "v"

    # Another key presenting the same client id is refused.
    _, impostor = _self_signed(tmp_path / "impostor")
    bad = CertificateCredential(
        server.tenant_id,
        created["clientId"],
        certificate_path=str(impostor),
        authority=server.authority,
        disable_instance_discovery=True,
    )
    from azure.core.exceptions import ClientAuthenticationError

    with pytest.raises(ClientAuthenticationError):
        SecretClient(server.vault_url("vault-a"), bad).get_secret(f"by-cert-{send_chain}")


def test_adfs_mode_credential(server: Server) -> None:
    credential = ClientSecretCredential(
        "adfs",
        server.client_id,
        server.client_secret,
        authority=server.authority,
        disable_instance_discovery=True,
    )
    client = SecretClient(server.vault_url("vault-b"), credential)
    assert client.set_secret("adfs-mode", "v").value == "v"


def test_wrong_secret_credential_fails(server: Server) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    credential = ClientSecretCredential(
        server.tenant_id,
        server.client_id,
        "not-the-secret",
        authority=server.authority,
        disable_instance_discovery=True,
    )
    with pytest.raises(ClientAuthenticationError):
        SecretClient(server.vault_url("vault-a"), credential).get_secret("anything")


def test_a_second_server_on_a_taken_port_refuses_to_start(server: Server, tmp_path: Path) -> None:
    """The HTTP server binds with SO_REUSEPORT; without the check, two installations would
    silently share one port and split its requests between them."""
    done = subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", "serve", "--data-dir",
         str(tmp_path / "other"), "--port", str(server.port)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"(ListenFailed) Cannot listen on 127.0.0.1:{server.port}" in done.stderr
    assert "Address already in use" in done.stderr
    tenant = httpx.get(f"{server.authority}/health", verify=server.tls()).json()["tenantId"]
    assert tenant == server.tenant_id
