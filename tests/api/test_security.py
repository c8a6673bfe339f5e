"""The trust model under attack (issue 17): each test drives a real server over TLS the way an
attacker would and fails on the defect it names.

- encrypt-only principals cannot choose an AES-GCM nonce;
- revoked principals and policies stop working at once, and revoking never grants;
- bodies, timestamps, durations and base64 are bounded and strict (400/413, never 500);
- failed client authentication is throttled, costs the same for unknown and known ids, and
  runs off the event loop; client assertions cannot be replayed or made long-lived;
- ids never echo the Host header; vault names cannot be enumerated; /rng needs a permission.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding

from tests.conftest import Server, cli, make_server
from tests.x509util import self_signed


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"], body
    return dict(body["error"])


def _principal(server: Server, name: str) -> dict[str, Any]:
    made = cli(server.data_dir, "principal", "create", name, port=server.port)
    return dict(made)


def _token(server: Server, client_id: str, secret: str, scope: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{server.authority}/{server.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": scope or f"{server.resource}/.default",
        },
        verify=server.tls(),
        timeout=30,
    )


def _as(server: Server, vault: str, who: dict[str, Any]) -> httpx.Client:
    token = _token(server, who["clientId"], who["clientSecret"]).json()["access_token"]
    return httpx.Client(
        base_url=server.vault_url(vault),
        verify=server.tls(),
        headers={"Authorization": f"Bearer {token}"},
        params={"api-version": "7.6"},
        timeout=30,
    )


def _closed_vault(server: Server, name: str, grants: dict[str, list[str]]) -> None:
    """A vault that is not --open, with policies {principal: [--x-permissions args...]}."""
    cli(server.data_dir, "vault", "create", name)
    for principal, args in grants.items():
        cli(server.data_dir, "vault", "set-policy", name, "--principal", principal, *args)


# -- 1. AES-GCM nonces are the server's ----------------------------------------------------


def test_an_encrypt_only_principal_cannot_replay_a_gcm_nonce(server: Server, unique: str) -> None:
    """The attack: re-encrypt zeros under the victim's IV, XOR, read the plaintext."""
    owner = _principal(server, f"gcm-owner-{unique}")
    encryptor = _principal(server, f"gcm-encryptor-{unique}")
    vault = f"gcm{os.urandom(3).hex()}"
    _closed_vault(server, vault, {
        owner["clientId"]: ["--key-permissions", "create,encrypt,decrypt"],
        encryptor["clientId"]: ["--key-permissions", "encrypt"],
    })  # fmt: skip
    secret = b"the launch code is 0000-1234"
    with _as(server, vault, owner) as http, _as(server, vault, encryptor) as attacker:
        assert http.post("/keys/k/create", json={"kty": "oct", "key_size": 256}).status_code == 200
        sealed = http.post("/keys/k//encrypt", json={"alg": "A256GCM", "value": _b64(secret)})
        victim = sealed.json()
        assert len(_unb64(victim["iv"])) == 12
        zeros = _b64(bytes(len(secret)))
        replay = attacker.post(
            "/keys/k//encrypt", json={"alg": "A256GCM", "value": zeros, "iv": victim["iv"]}
        )
        error = _error(replay, 400)
        assert "iv" in error["message"] and "nonce" in error["message"]
        # Without an iv, every encryption gets a fresh nonce.
        ivs = {
            attacker.post("/keys/k//encrypt", json={"alg": "A256GCM", "value": zeros}).json()["iv"]
            for _ in range(5)
        }
        assert len(ivs | {victim["iv"]}) == 6
        back = http.post(
            "/keys/k//decrypt",
            json={"alg": "A256GCM", "value": victim["value"], "iv": victim["iv"],
                  "tag": victim["tag"]},
        )  # fmt: skip
        assert _unb64(back.json()["value"]) == secret
        for iv, tag in ((_b64(bytes(8)), victim["tag"]), (victim["iv"], _b64(bytes(4)))):
            bad = http.post(
                "/keys/k//decrypt",
                json={"alg": "A256GCM", "value": victim["value"], "iv": iv, "tag": tag},
            )
            assert "12-byte" in _error(bad, 400)["message"]


def test_the_gcm_oracle_would_have_worked() -> None:
    """Why the nonce matters: with a repeated nonce, encrypting zeros gives the keystream."""
    key, nonce = AESGCM.generate_key(bit_length=256), os.urandom(12)
    secret = b"the launch code is 0000-1234"
    victim = AESGCM(key).encrypt(nonce, secret, None)[:-16]
    stream = AESGCM(key).encrypt(nonce, bytes(len(secret)), None)[:-16]
    assert bytes(a ^ b for a, b in zip(victim, stream, strict=True)) == secret


# -- 3. A deleted principal stops at once; its policies go with it --------------------------


def test_a_deleted_principal_is_refused_at_once(server: Server, unique: str) -> None:
    doomed = _principal(server, f"doomed-{unique}")
    vault = f"rev{os.urandom(3).hex()}"
    _closed_vault(server, vault, {
        doomed["clientId"]: ["--secret-permissions", "get,set,list"],
        server.client_id: ["--secret-permissions", "all"],
    })  # fmt: skip
    with _as(server, vault, doomed) as http:
        assert http.put("/secrets/s", json={"value": "v"}).status_code == 200
        assert http.get("/secrets/s/").status_code == 200
        cli(server.data_dir, "principal", "delete", doomed["clientId"])
        refused = http.get("/secrets/s/")  # the same token, no waiting
        assert "no longer exists" in _error(refused, 401)["message"]
        assert "www-authenticate" in refused.headers
    again = _token(server, doomed["clientId"], doomed["clientSecret"])
    assert again.status_code == 401
    shown = cli(server.data_dir, "vault", "show", vault)["accessPolicies"]
    assert [p["clientId"] for p in shown] == [server.client_id]


def test_a_policy_of_a_vanished_principal_is_removable_by_client_id(
    server: Server, unique: str
) -> None:
    """A policy left behind by an earlier release's principal delete."""
    from strongroom.config import Settings
    from strongroom.services.access import AccessService
    from strongroom.services.installation import open_installation

    vault = f"orph{os.urandom(3).hex()}"
    cli(server.data_dir, "vault", "create", vault)
    ghost = str(uuid.uuid4())
    if server.database_url:
        os.environ["STRONGROOM_DATABASE_URL"] = server.database_url
    try:
        inst = open_installation(
            Settings(data_dir=server.data_dir, database_url=server.database_url)
        )
        try:
            record = inst.store.reads.get_vault(vault)
            assert record is not None
            AccessService(inst).set_policy(record, ghost, "gone", {"secrets": ["get"]})
        finally:
            inst.close()
    finally:
        os.environ.pop("STRONGROOM_DATABASE_URL", None)
    removed = cli(server.data_dir, "vault", "delete-policy", vault, "--principal", ghost)
    assert removed["clientId"] == ghost
    assert cli(server.data_dir, "vault", "show", vault)["accessPolicies"] == []


# -- 4. Revoking never grants ----------------------------------------------------------------


def test_removing_the_last_policy_closes_the_vault_to_everyone(server: Server, unique: str) -> None:
    only = _principal(server, f"only-{unique}")
    other = _principal(server, f"other-{unique}")
    vault = f"last{os.urandom(3).hex()}"
    _closed_vault(server, vault, {only["clientId"]: ["--secret-permissions", "get,set"]})
    shown = cli(server.data_dir, "vault", "show", vault)
    assert shown["openToAllPrincipals"] is False
    with _as(server, vault, only) as http, _as(server, vault, other) as stranger:
        assert http.put("/secrets/s", json={"value": "v"}).status_code == 200
        assert _error(stranger.get("/secrets/s/"), 403)["innererror"]["code"] == (
            "ForbiddenByPolicy"
        )
        cli(server.data_dir, "vault", "delete-policy", vault, "--principal", only["clientId"])
        time.sleep(2.2)  # policies reach a running server within 2 s
        for client in (http, stranger):
            assert client.get("/secrets/s/").status_code == 403


# -- 5. Request size limits ------------------------------------------------------------------


def _raw(server: Server, host: str, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request on a fresh TLS connection; (status, whole response)."""
    context = ssl.create_default_context(cafile=str(server.ca))
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
        status = int(data.split(b" ", 2)[1]) if data else 0
        return status, data


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_an_unauthenticated_huge_body_is_refused_before_it_is_read(server: Server) -> None:
    path = f"/{server.tenant_id}/oauth2/v2.0/token"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: localhost:{server.port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {300 * 1024 * 1024}\r\n\r\n"
    )
    started = time.monotonic()
    status, data = _raw(server, "localhost", head, b"grant_type=client_credentials")
    assert status == 413, data
    assert time.monotonic() - started < 5
    assert b'"RequestTooLarge"' in data


def test_a_chunked_body_is_cut_off_at_the_limit(server: Server) -> None:
    assert server.process is not None
    before = _rss_kib(server.process.pid)
    path = f"/{server.tenant_id}/oauth2/v2.0/token"
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(4096):  # up to 256 MiB, if the server kept reading
            sent += 65536
            yield b"a" * 65536

    try:
        response = httpx.post(
            server.authority + path, content=body(), verify=server.tls(),
            headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=60,
        )  # fmt: skip
        assert response.status_code == 413
    except httpx.HTTPError:
        pass  # the server answered and closed while the client still wrote: also a refusal
    assert sent < 64 * 1024 * 1024
    assert _rss_kib(server.process.pid) - before < 64 * 1024


def test_data_plane_bodies_are_limited(server: Server) -> None:
    with server.http("vault-a") as http:
        big = http.put("/secrets/big", content=b'{"value":"' + b"x" * (2 * 1024 * 1024) + b'"}')
        assert _error(big, 413)["code"] == "RequestTooLarge"
        restore = http.post("/secrets/restore", content=b'{"value":"' + b"A" * (20 << 20) + b'"}')
        _error(restore, 413)
        # A restore may be larger than other requests: a 2 MiB blob is read (and refused as
        # not a backup, not as too large).
        blob = http.post("/secrets/restore", json={"value": "A" * (2 * 1024 * 1024)})
        assert _error(blob, 400)["innererror"]["code"] == "BackupBlobMalformed"


# -- 6. Failed client authentication: throttled, uniform, off the event loop -----------------


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: these tests exhaust the loopback address's allowance."""
    srv = make_server(tmp_path_factory.mktemp("throttled"), ("vault-t",))
    yield srv
    srv.stop()


def test_unknown_and_known_client_ids_get_the_same_answer(throttled: Server) -> None:
    known = _token(throttled, throttled.client_id, "wrong-secret")
    unknown = _token(throttled, str(uuid.uuid4()), "wrong-secret")
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()
    assert known.json()["error"] == "invalid_client"


def test_scrypt_runs_off_the_event_loop(throttled: Server) -> None:
    """Vault reads keep their latency while token requests hash secrets (each scrypt is
    ~40 ms of CPU: on the loop, they would queue every GET behind them)."""
    with throttled.http("vault-t") as http:
        http.put("/secrets/hot", json={"value": "v"})

        def latencies(n: int) -> list[float]:
            out = []
            for _ in range(n):
                started = time.perf_counter()
                assert http.get("/secrets/hot/").status_code == 200
                out.append(time.perf_counter() - started)
            return out

        quiet = statistics.median(latencies(30))
        stop = threading.Event()

        def hash_forever() -> None:
            while not stop.is_set():
                assert _token(throttled, throttled.client_id, throttled.client_secret).is_success

        threads = [threading.Thread(target=hash_forever) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            busy = statistics.median(latencies(30))
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert busy < max(0.025, 8 * quiet), (quiet, busy)


def test_a_burst_of_wrong_secrets_is_throttled(throttled: Server) -> None:
    victim = _principal(throttled, "victim")
    statuses = [_token(throttled, victim["clientId"], f"guess-{i}").status_code for i in range(30)]
    # 20 failures per client id or address, refilling at one per 3 s (this address already
    # spent a few in the tests above).
    first = statuses.index(429)
    assert 15 <= first <= 20 and set(statuses[:first]) == {401}, statuses
    assert set(statuses[first:]) == {429}
    refused = _token(throttled, victim["clientId"], victim["clientSecret"])
    assert refused.status_code == 429  # not even checked: no oracle, no hashing
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"] == "temporarily_unavailable"


# -- 7. Timestamps and durations -------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "says"),
    [
        ({"exp": 1e20}, "9999-12-31"),
        ({"nbf": -99999999999}, "from 0"),
        ({"exp": 253402300800}, "9999-12-31"),
        ({"exp": "tomorrow"}, "integer Unix seconds"),
    ],
)
def test_out_of_range_times_are_400(server: Server, attributes: dict[str, Any], says: str) -> None:
    with server.http("vault-a") as http:
        response = http.put("/secrets/when", json={"value": "v", "attributes": attributes})
        assert says in _error(response, 400)["message"]
        response = http.post("/keys/when/create", json={"kty": "EC", "attributes": attributes})
        assert says in _error(response, 400)["message"]


def test_the_latest_representable_time_is_accepted(server: Server) -> None:
    with server.http("vault-a") as http:
        response = http.put(
            "/secrets/far", json={"value": "v", "attributes": {"exp": 253402300799}}
        )
        assert response.json()["attributes"]["exp"] == 253402300799


@pytest.mark.parametrize(
    ("policy", "says"),
    [
        ({"x509_props": {"subject": "CN=a", "validity_months": 99999}}, "validity_months"),
        ({"x509_props": {"subject": "CN=a", "validity_months": "12"}}, "integer"),
        ({"x509_props": {"subject": "CN=a", "sans": ["a.example"]}}, "sans"),
        (
            {"x509_props": {"subject": "CN=a"},
             "lifetime_actions": [{"trigger": {"lifetime_percentage": 0},
                                   "action": {"action_type": "AutoRenew"}}]},
            "lifetime_percentage",
        ),
        ({"x509_props": {"subject": "CN=a"}, "lifetime_actions": ["renew"]}, "object"),
        ({"key_props": {"key_size": [2048]}, "x509_props": {"subject": "CN=a"}}, "key_size"),
    ],
)  # fmt: skip
def test_malformed_certificate_policies_are_400(
    server: Server, policy: dict[str, Any], says: str
) -> None:
    policy.setdefault("issuer", {"name": "Self"})
    with server.http("vault-a") as http:
        response = http.post("/certificates/bad-policy/create", json={"policy": policy})
        assert says in _error(response, 400)["message"]


# -- 10. Strict base64 -----------------------------------------------------------------------


def test_invalid_base64_is_refused_not_dropped(server: Server) -> None:
    with server.http("vault-a") as http:
        http.post("/keys/b64/create", json={"kty": "oct", "key_size": 256})
        for value in ("!!!!", "AAAA!", "A", "AA=A", "AAAAA==="):
            response = http.post("/keys/b64//encrypt", json={"alg": "A256KW", "value": value})
            assert "base64url" in _error(response, 400)["message"], value
        for value in (
            _b64(bytes(16)),
            _b64(bytes(16)) + "==",
            base64.b64encode(bytes(16)).decode(),
        ):
            wrapped = http.post("/keys/b64//wrapkey", json={"alg": "A256KW", "value": value})
            assert wrapped.status_code == 200, value
        restore = http.post("/secrets/restore", json={"value": "U1JCSw!!"})
        assert _error(restore, 400)["innererror"]["code"] == "BackupBlobMalformed"


# -- 11. Ids come from configuration, not from Host ------------------------------------------


def test_a_hostile_host_header_is_not_echoed(server: Server) -> None:
    token = server.token()
    vault_host = f"vault-a.vault.localhost:{server.port}"
    for host in (f"{vault_host}@evil.example", f"{vault_host}:1", "vault-a.vault.localhost:x"):
        head = (
            f"GET /secrets?api-version=7.6 HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        status, data = _raw(server, "vault-a.vault.localhost", head)
        assert status == 404 and b"UnknownHost" in data, data[:300]
    head = (
        f"GET /secrets?api-version=7.6&maxresults=1 HTTP/1.1\r\n"
        f"Host: VAULT-A.vault.localhost:{server.port}\r\n"
        f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    with server.http("vault-a") as http:
        http.put("/secrets/listed-1", json={"value": "v"})
        http.put("/secrets/listed-2", json={"value": "v"})
    status, data = _raw(server, "vault-a.vault.localhost", head)
    assert status == 200
    body = data.split(b"\r\n\r\n", 1)[1]
    assert f"https://vault-a.vault.localhost:{server.port}/secrets".encode() in body
    assert b"VAULT-A" not in body


# -- 12. Failed authentication cannot flood the audit log ------------------------------------


def test_invalid_tokens_add_a_bounded_number_of_audit_records(tmp_path: Path) -> None:
    srv = make_server(tmp_path, ("audited",))
    try:
        with httpx.Client(verify=srv.tls(), timeout=30) as http:
            for i in range(40):
                vault = "audited" if i % 2 else f"nonexistent{i}"
                response = http.get(
                    f"{srv.vault_url(vault)}/secrets?api-version=7.6",
                    headers={"Authorization": f"Bearer forged.{i}.token"},
                )
                assert response.status_code == 401
    finally:
        srv.stop()  # a graceful stop writes the window's summary
    records = cli(srv.data_dir, "audit", "list")
    failures = [r for r in records if r["operation"] == "Authentication"]
    summaries = [r for r in records if r["operation"] == "AuthenticationFailuresSuppressed"]
    addresses = {r["callerAddress"] for r in failures}  # ::1 and 127.0.0.1 may both be used
    for address in addresses:
        assert sum(r["callerAddress"] == address for r in failures) <= 10
    suppressed = sum(int(r["objectId"].removeprefix("suppressed:")) for r in summaries)
    assert len(failures) <= 10 * len(addresses) and len(failures) + suppressed == 40
    assert suppressed >= 20


# -- 13. Vault names cannot be enumerated ----------------------------------------------------


def test_a_missing_vault_looks_like_a_forbidden_one(server: Server, unique: str) -> None:
    outsider = _principal(server, f"outsider-{unique}")
    existing = f"hidden{os.urandom(3).hex()}"
    missing = f"absent{os.urandom(3).hex()}"
    _closed_vault(server, existing, {server.client_id: ["--secret-permissions", "all"]})
    answers = []
    for vault in (existing, missing):
        with _as(server, vault, outsider) as http:
            error = _error(http.get("/secrets/anything/"), 403)
            answers.append(
                (error["code"], error["innererror"], error["message"].replace(vault, "V"))
            )
    assert answers[0] == answers[1]


# -- 15. Client assertions: no replay, bounded lifetime, configured audience -----------------


@pytest.fixture(scope="module")
def cert_principal(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = self_signed(key, "assertion-tests", days=1)
    path = tmp_path_factory.mktemp("assertion") / "cert.pem"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    made = cli(server.data_dir, "principal", "create", f"asserter-{os.urandom(2).hex()}",
               "--certificate", str(path), port=server.port)  # fmt: skip
    thumb = _b64(cert.fingerprint(hashes.SHA1()))  # noqa: S303 - x5t is SHA-1
    return {"clientId": made["clientId"], "key": key, "x5t": thumb}


def _assertion(server: Server, who: dict[str, Any], **claims: Any) -> str:
    now = int(time.time())
    body = {
        "aud": f"{server.authority}/{server.tenant_id}/oauth2/v2.0/token",
        "iss": who["clientId"], "sub": who["clientId"], "jti": str(uuid.uuid4()),
        "nbf": now, "iat": now, "exp": now + 600,
    }  # fmt: skip
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, who["key"], algorithm="RS256", headers={"x5t": who["x5t"]})


def _assert_for(server: Server, who: dict[str, Any], assertion: str, scope: str) -> httpx.Response:
    return httpx.post(
        f"{server.authority}/{server.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials", "client_id": who["clientId"], "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        verify=server.tls(), timeout=30,
    )  # fmt: skip


def test_an_assertion_is_used_once_per_scope(
    server: Server, cert_principal: dict[str, Any]
) -> None:
    assertion = _assertion(server, cert_principal)
    vault_scope = f"{server.resource}/.default"
    assert _assert_for(server, cert_principal, assertion, vault_scope).status_code == 200
    replayed = _assert_for(server, cert_principal, assertion, vault_scope)
    assert replayed.status_code == 401 and replayed.json()["error"] == "invalid_client"
    # MSAL reuses one assertion for several scopes for up to nine minutes: allowed, once each.
    arm_scope = f"{server.authority}/.default"
    assert _assert_for(server, cert_principal, assertion, arm_scope).status_code == 200
    assert _assert_for(server, cert_principal, assertion, arm_scope).status_code == 401


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) + 86400},  # a day-long assertion
        {"jti": None},
        {"aud": "https://evil.example/oauth2/v2.0/token"},
    ],
    ids=["long-lived", "no-jti", "foreign-audience"],
)
def test_assertions_must_be_short_lived_unique_and_for_this_endpoint(
    server: Server, cert_principal: dict[str, Any], claims: dict[str, Any]
) -> None:
    assertion = _assertion(server, cert_principal, **claims)
    refused = _assert_for(server, cert_principal, assertion, f"{server.resource}/.default")
    assert refused.status_code == 401, refused.text


def test_an_audience_named_by_the_host_header_is_refused(
    server: Server, cert_principal: dict[str, Any]
) -> None:
    path = f"/{server.tenant_id}/oauth2/v2.0/token"
    assertion = _assertion(server, cert_principal, aud=f"https://localhost:9{path}")
    form = (
        f"grant_type=client_credentials&client_id={cert_principal['clientId']}"
        f"&scope={server.resource}/.default"
        "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
        f"&client_assertion={assertion}"
    ).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: localhost:9\r\nConnection: close\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(form)}\r\n\r\n"
    )
    status, data = _raw(server, "localhost", head, form)
    assert status == 401, data[:300]
    assert b"access_token" not in data


# -- 16. /rng needs a permission ---------------------------------------------------------------


def test_random_bytes_need_the_rng_permission(server: Server, unique: str) -> None:
    getter = _principal(server, f"rng-no-{unique}")
    roller = _principal(server, f"rng-yes-{unique}")
    vault = f"rng{os.urandom(3).hex()}"
    _closed_vault(server, vault, {
        getter["clientId"]: ["--key-permissions", "get,list"],
        roller["clientId"]: ["--key-permissions", "rng"],
    })  # fmt: skip
    with _as(server, vault, getter) as http:
        assert "keys rng permission" in _error(http.post("/rng", json={"count": 8}), 403)["message"]
    with _as(server, vault, roller) as http:
        assert len(_unb64(http.post("/rng", json={"count": 8}).json()["value"])) == 8
