"""Replication between two real installations on loopback: A's vault is the source, B holds its
security domain and follows it with a read-only replica; promote, then fail back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.certificates import CertificateClient, CertificatePolicy
from azure.keyvault.keys import KeyClient
from azure.keyvault.secrets import SecretClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import Server, cli, env_for, make_server
from tests.x509util import private_pem, self_signed

pytestmark = pytest.mark.slow


def strongroom(server: Server, *args: str, ok: bool = True) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", *args, "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, timeout=120, env=env_for(server.data_dir),
    )  # fmt: skip
    if ok:
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    assert done.returncode != 0, done.stdout
    return done.stderr


@dataclass
class Pair:
    a: Server
    b: Server
    domain: str
    replicator: dict[str, str]  # a principal of A with replicate

    def clients(self, server: Server, vault: str) -> tuple[SecretClient, KeyClient, Any]:
        url, credential, ca = server.vault_url(vault), server.credential(), str(server.ca)
        return (
            SecretClient(url, credential, connection_verify=ca),
            KeyClient(url, credential, connection_verify=ca),
            CertificateClient(url, credential, connection_verify=ca),
        )

    def follow(self, replica: str, source: str) -> Any:
        return strongroom(
            self.b, "replica", "follow", "-n", replica, "--source", self.a.vault_url(source),
            "--client-id", self.replicator["clientId"],
            "--client-secret", self.replicator["clientSecret"],
            "--source-ca", str(self.a.ca), "--create", "--domain", self.domain,
        )  # fmt: skip


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("replication")
    a = make_server(root / "a", ())
    b = make_server(root / "b", ())
    try:
        keys = []
        args = ["domain", "export", "default", "--quorum", "2", "--out", str(root / "d.json")]
        for i in range(2):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            cert = self_signed(key, f"custodian {i}", days=3)
            (root / f"c{i}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            (root / f"k{i}.pem").write_bytes(private_pem(key))
            args += ["--certificate", str(root / f"c{i}.pem")]
            keys.append(str(root / f"k{i}.pem"))
        domain = strongroom(a, *args)["domain"]["id"]
        strongroom(b, "domain", "import", str(root / "d.json"), "--key", keys[0], "--key", keys[1])
        replicator = cli(a.data_dir, "principal", "create", "replicator", port=a.port)
        yield Pair(a, b, domain, replicator)
    finally:
        a.stop()
        b.stop()


def _until(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.2)


def _state(pair: Pair, server: Server, vault: str) -> dict[str, Any]:
    """Every object of a vault, every version with its attributes, tags and value."""
    secrets, keys, certs = pair.clients(server, vault)
    out: dict[str, Any] = {}
    for p in secrets.list_properties_of_secrets():
        versions = sorted(
            (v.version, v.enabled, v.tags, v.content_type, v.expires_on)
            for v in secrets.list_properties_of_secret_versions(p.name)
        )
        values = [secrets.get_secret(p.name, v[0]).value for v in versions if v[1]]
        out[f"secret/{p.name}"] = (versions, values)
    for p in keys.list_properties_of_keys():
        versions = sorted(
            (v.version, v.enabled, v.tags) for v in keys.list_properties_of_key_versions(p.name)
        )
        out[f"key/{p.name}"] = (versions, keys.get_key(p.name).key.x)
    for p in certs.list_properties_of_certificates():
        out[f"certificate/{p.name}"] = certs.get_certificate(p.name).cer
    return out


def test_a_replica_follows_its_source_and_is_read_only(pair: Pair) -> None:
    cli(pair.a.data_dir, "vault", "create", "prod", "--open")
    secrets, keys, certs = pair.clients(pair.a, "prod")
    secrets.set_secret("before", "made before replication")
    strongroom(pair.a, "vault", "update", "prod", "--replicable")
    followed = pair.follow("prod-dr", "prod")
    assert followed["replicaOf"] == pair.a.vault_url("prod")
    cli(pair.b.data_dir, "vault", "update", "prod-dr", "--open")
    for value in ("one", "two"):
        secrets.set_secret("db", value, tags={"v": value})
    keys.create_ec_key("signing")
    keys.rotate_key("signing")
    certs.begin_create_certificate("tls", CertificatePolicy.get_default()).result()
    secrets.set_secret("gone", "x")
    secrets.begin_delete_secret("gone").wait()

    replica, _, _ = pair.clients(pair.b, "prod-dr")
    _until(lambda: _state(pair, pair.b, "prod-dr") == _state(pair, pair.a, "prod"))
    assert replica.get_secret("before").value == "made before replication"
    assert replica.get_deleted_secret("gone").name == "gone"

    with pytest.raises(HttpResponseError) as refused:
        replica.set_secret("db", "written on the replica")
    assert refused.value.status_code == 403
    assert refused.value.error is not None and "ReplicaReadOnly" in str(refused.value)
    assert pair.a.vault_url("prod") in str(refused.value)

    status = strongroom(pair.b, "replica", "status", "-n", "prod-dr")
    assert status["lagChanges"] == 0 and status["lastError"] is None
    assert status["position"] == status["sourcePosition"] > 0
