"""Replication between two real installations on loopback: A's vault is the source, B holds its
security domain and follows it with a read-only replica; promote, then fail back."""

from __future__ import annotations

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

from tests.conftest import Server, admin, cli, make_server
from tests.x509util import private_pem, self_signed

pytestmark = pytest.mark.slow


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
        return admin(
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
        domain = admin(a, *args)["domain"]["id"]
        admin(b, "domain", "import", str(root / "d.json"), "--key", keys[0], "--key", keys[1])
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
            (v.version, v.enabled, v.tags, v.content_type, v.expires_on, v.created_on,
             v.updated_on)
            for v in secrets.list_properties_of_secret_versions(p.name)
        )  # fmt: skip
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
    admin(pair.a, "vault", "update", "prod", "--replicable")
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

    status = admin(pair.b, "replica", "status", "-n", "prod-dr")
    assert status["lagChanges"] == 0 and status["lastError"] is None
    assert status["position"] == status["sourcePosition"] > 0


def _load(pair: Pair, vault: str, writers: int, each: int, round_: int) -> None:
    """Concurrent writes of every kind on A's vault: new versions, updates, deletes, purges,
    recovers, keys and their rotations."""
    import threading

    def work(w: int) -> None:
        secrets, keys, certs = pair.clients(pair.a, vault)
        for i in range(each):
            name = f"w{w}-s{i % 7}"
            secrets.set_secret(name, f"value {w} {i}", tags={"i": str(i)})
            if i % 5 == 1:
                secrets.update_secret_properties(name, content_type="text/plain")
            if i % 11 == 3:
                keys.create_rsa_key(f"w{w}-k{i % 3}", size=2048)
            if i % 13 == 4:
                deleted = f"r{round_}-w{w}-d{i}"
                secrets.set_secret(deleted, "to go")
                secrets.begin_delete_secret(deleted).wait()
                if i % 2:
                    secrets.purge_deleted_secret(deleted)
                else:
                    secrets.begin_recover_deleted_secret(deleted).wait()
            if i % 40 == 5:
                certs.begin_create_certificate(
                    f"r{round_}-w{w}-c{i}", CertificatePolicy.get_default()
                ).result()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_load_a_killed_replica_and_a_lost_source(pair: Pair) -> None:
    import signal

    cli(pair.a.data_dir, "vault", "create", "busy", "--open")
    admin(pair.a, "vault", "update", "busy", "--replicable")
    pair.follow("busy-dr", "busy")
    cli(pair.b.data_dir, "vault", "update", "busy-dr", "--open")
    _load(pair, "busy", writers=4, each=120, round_=1)
    # B killed mid-stream (SIGKILL), restarted: it goes on from its position.
    assert pair.b.process is not None
    pair.b.process.send_signal(signal.SIGKILL)
    pair.b.process.wait()
    pair.b.process = None
    _load(pair, "busy", writers=2, each=80, round_=2)
    pair.b.start()
    # The link cut: A stopped while B follows, then back.
    pair.a.stop()
    time.sleep(2)
    status = admin(pair.b, "replica", "status", "-n", "busy-dr")
    assert status["lastError"] is not None  # it says why it is behind
    pair.a.start()
    _load(pair, "busy", writers=2, each=60, round_=3)
    _until(lambda: _state(pair, pair.b, "busy-dr") == _state(pair, pair.a, "busy"), 120)
    status = admin(pair.b, "replica", "status", "-n", "busy-dr")
    assert status["lagChanges"] == 0 and status["lastError"] is None
    assert status["position"] == status["sourcePosition"] >= 1000  # changes applied


def test_promote_then_fail_back(pair: Pair) -> None:
    cli(pair.a.data_dir, "vault", "create", "main", "--open")
    admin(pair.a, "vault", "update", "main", "--replicable")
    secrets_a, _, _ = pair.clients(pair.a, "main")
    secrets_a.set_secret("shared", "from A")
    pair.follow("main-dr", "main")
    cli(pair.b.data_dir, "vault", "update", "main-dr", "--open")
    secrets_b, _, _ = pair.clients(pair.b, "main-dr")
    _until(lambda: _state(pair, pair.b, "main-dr") == _state(pair, pair.a, "main"))

    # A is lost; B is promoted and takes writes.
    promoted = admin(pair.b, "replica", "promote", "-n", "main-dr")
    assert promoted["replicaOf"] is None and promoted["replicable"] is True
    time.sleep(2.2)  # the server's vault cache
    secrets_b.set_secret("shared", "from B")
    secrets_b.set_secret("new-on-b", "b")

    # A comes back as a replica of B: B's writes arrive, nothing of B is lost.
    admin(pair.a, "vault", "update", "main", "--not-replicable")
    admin(
        pair.a, "replica", "follow", "-n", "main", "--source", pair.b.vault_url("main-dr"),
        "--client-id", _replicator_of(pair.b)["clientId"],
        "--client-secret", _replicator_of(pair.b)["clientSecret"],
        "--source-ca", str(pair.b.ca),
    )  # fmt: skip
    _until(lambda: _state(pair, pair.a, "main") == _state(pair, pair.b, "main-dr"))
    assert secrets_a.get_secret("shared").value == "from B"
    assert secrets_a.get_secret("new-on-b").value == "b"


_REPLICATORS: dict[str, dict[str, str]] = {}


def _replicator_of(server: Server) -> dict[str, str]:
    if str(server.data_dir) not in _REPLICATORS:
        _REPLICATORS[str(server.data_dir)] = cli(
            server.data_dir, "principal", "create", "replicator", port=server.port
        )
    return _REPLICATORS[str(server.data_dir)]


def test_refusals_are_named_in_the_status(pair: Pair) -> None:
    cli(pair.a.data_dir, "vault", "create", "guarded", "--open")
    admin(pair.a, "vault", "update", "guarded", "--replicable")
    cli(pair.a.data_dir, "vault", "update", "guarded", "--closed")
    cli(pair.a.data_dir, "vault", "set-policy", "guarded", "--principal",
        pair.replicator["clientId"], "--secret-permissions", "get")  # fmt: skip
    # A replica of another domain (B's own default domain) is refused with the reason, and a
    # principal without replicate is refused by the source.
    cli(pair.b.data_dir, "vault", "create", "own-domain")
    admin(
        pair.b, "replica", "follow", "-n", "own-domain", "--source", pair.a.vault_url("guarded"),
        "--client-id", pair.replicator["clientId"],
        "--client-secret", pair.replicator["clientSecret"], "--source-ca", str(pair.a.ca),
    )  # fmt: skip
    _until(lambda: admin(pair.b, "replica", "status", "-n", "own-domain")["lastError"])
    error = admin(pair.b, "replica", "status", "-n", "own-domain")["lastError"]
    assert "403" in error and "replicate" in error
    cli(pair.a.data_dir, "vault", "set-policy", "guarded", "--principal",
        pair.replicator["clientId"], *(f"--{k}-permissions" for k in ()),
        "--secret-permissions", "replicate", "--key-permissions", "replicate",
        "--certificate-permissions", "replicate", "--storage-permissions", "replicate")  # fmt: skip
    time.sleep(2.2)

    def domain_refused() -> bool:
        found = admin(pair.b, "replica", "status", "-n", "own-domain")["lastError"] or ""
        return "security domain" in found

    _until(domain_refused)


def test_the_feed_refuses_strangers_and_bad_requests(pair: Pair) -> None:
    import httpx

    cli(pair.a.data_dir, "vault", "create", "feed", "--open")
    anonymous = httpx.get(
        f"{pair.a.vault_url('feed')}/replication/changes?api-version=7.6", verify=pair.a.tls()
    )
    assert anonymous.status_code == 401
    http = pair.a.http("feed")
    assert http.get("/replication/changes").json()["error"]["innererror"]["code"] == (
        "VaultNotReplicable"
    )
    admin(pair.a, "vault", "update", "feed", "--replicable")
    time.sleep(2.2)  # the server's vault cache
    for bad in ({"limit": 1000}, {"after": -1}, {"after": "x"}):
        refused = http.get("/replication/changes", params=bad)
        assert refused.status_code == 400 and "Replicable" not in refused.text, refused.text
    page = http.get("/replication/changes", params={"after": 0}).json()
    assert [c["kind"] for c in page["changes"]] == ["settings"]  # an empty vault
    assert page["position"] == page["changes"][-1]["seq"] and page["more"] is False
    status = http.get("/replication/status")
    assert status.status_code == 400  # not a replica


def test_writes_made_while_replication_is_turned_on_are_not_missed(pair: Pair) -> None:
    """For two seconds after a vault is made replicable, a server may still hold a record of
    it that says otherwise, and its writes number nothing; every object is numbered again
    once those records have expired."""
    import threading

    cli(pair.a.data_dir, "vault", "create", "turning", "--open")
    secrets, _, _ = pair.clients(pair.a, "turning")
    secrets.set_secret("warm", "the server caches the vault's record now")
    turned = threading.Thread(
        target=lambda: admin(pair.a, "vault", "update", "turning", "--replicable")
    )
    turned.start()
    written = 0
    while turned.is_alive():
        secrets.set_secret(f"during-{written}", str(written))
        written += 1
    turned.join()
    assert written > 3
    pair.follow("turning-dr", "turning")
    cli(pair.b.data_dir, "vault", "update", "turning-dr", "--open")
    _until(lambda: _state(pair, pair.b, "turning-dr") == _state(pair, pair.a, "turning"))


def test_access_policies_travel_and_become_the_promoted_vaults(pair: Pair) -> None:
    cli(pair.a.data_dir, "vault", "create", "policed")
    admin(pair.a, "vault", "update", "policed", "--replicable")
    cli(pair.a.data_dir, "vault", "set-policy", "policed", "--principal",
        pair.replicator["clientId"], "--secret-permissions", "replicate",
        "--secret-permissions", "get", "--key-permissions", "replicate",
        "--certificate-permissions", "replicate", "--storage-permissions", "replicate")  # fmt: skip
    pair.follow("policed-dr", "policed")
    # B's own principal, by B's own policy on the replica, alongside the source's policies.
    cli(pair.b.data_dir, "vault", "set-policy", "policed-dr", "--principal", pair.b.client_id,
        "--secret-permissions", "get", "--secret-permissions", "list")  # fmt: skip

    def copied() -> bool:
        status = admin(pair.b, "replica", "status", "-n", "policed-dr")
        return status["position"] > 0 and status["lagChanges"] == 0

    _until(copied)
    shown = cli(pair.b.data_dir, "vault", "show", "policed-dr")
    assert [p["clientId"] for p in shown["accessPolicies"]] == [pair.b.client_id]
    admin(pair.b, "replica", "promote", "-n", "policed-dr")
    shown = cli(pair.b.data_dir, "vault", "show", "policed-dr")
    owners = {p["clientId"]: p["permissions"]["secrets"] for p in shown["accessPolicies"]}
    assert owners[pair.b.client_id] == ["get", "list"]
    assert owners[pair.replicator["clientId"]] == ["replicate", "get"]


def test_role_assignments_travel_and_become_the_promoted_vaults(pair: Pair) -> None:
    cli(pair.a.data_dir, "vault", "create", "roled", "--enable-rbac-authorization")
    admin(pair.a, "vault", "update", "roled", "--replicable")
    # Under RBAC the feed is authorised by a role too (its action is under vaults/*).
    made = cli(
        pair.a.data_dir,
        "vault",
        "role",
        "assignment",
        "create",
        "-n",
        "roled",
        "--role",
        "Key Vault Administrator",
        "--assignee",
        pair.replicator["clientId"],
    )
    pair.follow("roled-dr", "roled")

    def copied() -> bool:
        status = admin(pair.b, "replica", "status", "-n", "roled-dr")
        return status["position"] > 0 and status["lagChanges"] == 0

    _until(copied)
    assert cli(pair.b.data_dir, "vault", "show", "roled-dr")["enableRbacAuthorization"] is True
    # B's own principal has no role on the replica: denied, as on the source.
    secrets = pair.clients(pair.b, "roled-dr")[0]
    with pytest.raises(HttpResponseError) as info:
        secrets.get_secret("anything")
    assert info.value.status_code == 403
    cli(pair.b.data_dir, "vault", "role", "assignment", "create", "-n", "roled-dr",
        "--role", "Key Vault Secrets User", "--assignee", pair.b.client_id)  # fmt: skip
    time.sleep(2.2)
    with pytest.raises(HttpResponseError) as info:
        secrets.get_secret("anything")
    assert info.value.status_code == 404  # allowed now: the secret is simply not there

    admin(pair.b, "replica", "promote", "-n", "roled-dr")
    shown = cli(pair.b.data_dir, "vault", "show", "roled-dr")
    assert shown["enableRbacAuthorization"] is True
    names = {a["name"] for a in cli(pair.b.data_dir, "vault", "role", "assignment", "list",
                                     "-n", "roled-dr")}  # fmt: skip
    assert made["name"] in names and len(names) == 2
