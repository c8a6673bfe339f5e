"""Wire-level contract over real TLS: the challenge, tokens, api-version, statuses, error shape."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest

from tests.conftest import Server


def _vault(server: Server, path: str, **kw: object) -> httpx.Response:
    return httpx.request(
        kw.pop("method", "GET"),  # type: ignore[arg-type]
        server.vault_url("vault-a") + path,
        verify=server.tls(),
        **kw,  # type: ignore[arg-type]
    )


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/secrets/x/?api-version=7.6", None),
        ("PUT", "/secrets/x?api-version=7.6", b""),  # the SDK's bodiless first try
        ("PUT", "/secrets/bad name!?api-version=nonsense", b"{not json"),
        ("POST", "/no/such/route", None),
        ("DELETE", "/secrets/x", None),  # no api-version either
    ],
)
def test_challenge_comes_before_any_validation(
    server: Server, method: str, path: str, body: bytes | None
) -> None:
    response = _vault(server, path, method=method, content=body)
    error = _assert_error(response, 401, "Unauthorized")
    assert "Bearer" in str(error["message"])
    challenge = response.headers["www-authenticate"]
    assert challenge == (
        f'Bearer authorization="{server.authority}/{server.tenant_id}", '
        f'resource="{server.resource}"'
    )
    # The SDK splits the challenge on "," and "=": no value may contain either.
    for item in challenge.removeprefix("Bearer ").split(", "):
        assert item.count("=") == 1


def test_wrong_audience_token_is_refused(server: Server) -> None:
    token = server.token(scope=f"{server.authority}/.default")
    response = _vault(
        server, "/secrets?api-version=7.6", headers={"Authorization": f"Bearer {token}"}
    )
    error = _assert_error(response, 401, "Unauthorized")
    assert "audience" in str(error["message"])
    assert "www-authenticate" in response.headers


def test_tampered_and_foreign_tokens_are_refused(server: Server) -> None:
    token = server.token()
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["oid"] = "someone-else"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    forged = f"{header}.{forged_payload}.{signature}"
    response = _vault(
        server, "/secrets?api-version=7.6", headers={"Authorization": f"Bearer {forged}"}
    )
    _assert_error(response, 401, "Unauthorized")

    # Same claims, signed by a key that is not the server's.
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims.update(exp=now + 600, iat=now)
    foreign = jwt.encode(claims, other, algorithm="RS256")
    response = _vault(
        server, "/secrets?api-version=7.6", headers={"Authorization": f"Bearer {foreign}"}
    )
    _assert_error(response, 401, "Unauthorized")


def test_token_endpoint_errors_use_oauth_shape(server: Server) -> None:
    url = f"{server.authority}/{server.tenant_id}/oauth2/v2.0/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": server.client_id,
        "client_secret": "wrong",
        "scope": f"{server.resource}/.default",
    }
    response = httpx.post(url, data=form, verify=server.tls())
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "wrong" not in response.text

    response = httpx.post(url, data=dict(form, grant_type="password"), verify=server.tls())
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"

    response = httpx.post(
        f"{server.authority}/00000000-0000-0000-0000-000000000000/oauth2/v2.0/token",
        data=dict(form, client_secret=server.client_secret),
        verify=server.tls(),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_scope_with_double_slash_is_tolerated(server: Server) -> None:
    token = server.token(scope=f"{server.resource}//.default")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == server.resource
    assert claims["tid"] == server.tenant_id


def test_openid_configuration_for_any_tenant(server: Server) -> None:
    for tenant in (server.tenant_id, "organizations", "contoso.example"):
        doc = httpx.get(
            f"{server.authority}/{tenant}/v2.0/.well-known/openid-configuration",
            verify=server.tls(),
        ).json()
        assert doc["issuer"] == f"{server.authority}/{server.tenant_id}/v2.0"
        assert doc["token_endpoint"] == f"{server.authority}/{tenant}/oauth2/v2.0/token"
    adfs = httpx.get(
        f"{server.authority}/adfs/.well-known/openid-configuration", verify=server.tls()
    ).json()
    assert adfs["token_endpoint"] == f"{server.authority}/adfs/oauth2/token"


@pytest.mark.parametrize(
    "version", ["2016-10-01", "7.0", "7.4", "7.6", "7.6-preview.2", "2025-07-01", "2026-04-01"]
)
def test_every_published_api_version_is_accepted(server: Server, version: str) -> None:
    with server.http("vault-a") as http:
        assert http.get("/secrets", params={"api-version": version}).status_code == 200


@pytest.mark.parametrize("query", ["", "?api-version=", "?api-version=banana", "?api-version=8"])
def test_missing_or_malformed_api_version_is_400(server: Server, query: str) -> None:
    headers = {"Authorization": f"Bearer {server.token()}"}
    response = _vault(server, "/secrets" + query, headers=headers)
    _assert_error(response, 400, "BadParameter")


def test_bad_requests_are_400_with_reasons(server: Server) -> None:
    with server.http("vault-a") as http:
        big = http.put("/secrets/big", json={"value": "x" * (25 * 1024 + 1)})
        assert "25 KiB" in str(_assert_error(big, 400, "BadParameter")["message"])
        assert http.put("/secrets/ok", json={"value": "x" * (25 * 1024)}).status_code == 200

        bad_name = http.put("/secrets/bad_name", json={"value": "v"})
        assert "letters, digits and hyphens" in str(
            _assert_error(bad_name, 400, "BadParameter")["message"]
        )
        no_value = http.put("/secrets/novalue", json={"contentType": "x"})
        assert "'value' is required" in str(_assert_error(no_value, 400, "BadParameter")["message"])
        not_json = http.put(
            "/secrets/nj", content=b"{", headers={"content-type": "application/json"}
        )
        _assert_error(not_json, 400, "BadParameter")
        wrong_type = http.put("/secrets/wt", json={"value": "v", "attributes": {"exp": "soon"}})
        assert "Unix seconds" in str(_assert_error(wrong_type, 400, "BadParameter")["message"])
        wrong_method = http.post("/secrets/x/versions")
        _assert_error(wrong_method, 400, "BadParameter")
        too_many = http.get("/secrets", params={"api-version": "7.6", "maxresults": "26"})
        _assert_error(too_many, 400, "BadParameter")


def test_exact_success_statuses_and_empty_version_segment(server: Server) -> None:
    with server.http("vault-b") as http:
        set_ = http.put("/secrets/statuses", json={"value": "v"})
        assert set_.status_code == 200
        assert http.get("/secrets/statuses/").status_code == 200
        assert http.patch("/secrets/statuses/", json={"tags": {"a": "b"}}).status_code == 200
        deleted = http.delete("/secrets/statuses")
        assert deleted.status_code == 200
        assert "value" not in deleted.json()
        purge = http.delete("/deletedsecrets/statuses")
        assert purge.status_code == 204
        assert purge.content == b""


def test_next_link_is_absolute_on_the_dialled_host(server: Server) -> None:
    with server.http("vault-b") as http:
        for i in range(3):
            http.put(f"/secrets/paging-{i}", json={"value": "v"})
        page = http.get("/secrets", params={"api-version": "7.6", "maxresults": "1"}).json()
        assert len(page["value"]) == 1
        link = page["nextLink"]
        assert link.startswith(server.vault_url("vault-b") + "/secrets?api-version=7.6&$skiptoken=")
        assert link.endswith("&maxresults=1")
        nxt = httpx.get(link, headers=http.headers, verify=server.tls()).json()
        assert nxt["value"][0]["id"] != page["value"][0]["id"]


def test_purge_refused_under_purge_protection(tmp_path: object, server: Server) -> None:
    from tests.conftest import cli

    cli(
        server.data_dir,
        "vault",
        "create",
        "protected",
        "--purge-protection",
        "--retention-days",
        "7",
        "--open",
    )
    with server.http("protected") as http:
        http.put("/secrets/keep", json={"value": "v"})
        deleted = http.delete("/secrets/keep").json()
        assert deleted["attributes"]["recoveryLevel"] == "CustomizedRecoverable"
        assert deleted["scheduledPurgeDate"] - deleted["deletedDate"] == 7 * 86400
        error = _assert_error(http.delete("/deletedsecrets/keep"), 403, "Forbidden")
        assert "purge protection" in str(error["message"])
        assert http.get("/deletedsecrets/keep").status_code == 200


def test_reads_see_every_acknowledged_write(server: Server) -> None:
    """The server caches reads; every acknowledged write must be visible to the next read."""
    with server.http("vault-b") as http:
        for i in range(30):
            assert http.put("/secrets/fresh", json={"value": f"v{i}"}).status_code == 200
            assert http.get("/secrets/fresh/").json()["value"] == f"v{i}"
        http.patch("/secrets/fresh/", json={"attributes": {"enabled": False}})
        assert http.get("/secrets/fresh/").status_code == 403
        http.patch("/secrets/fresh/", json={"attributes": {"enabled": True}})
        assert http.get("/secrets/fresh/").json()["value"] == "v29"
        http.delete("/secrets/fresh")
        assert http.get("/secrets/fresh/").status_code == 404
        http.post("/deletedsecrets/fresh/recover")
        assert http.get("/secrets/fresh/").json()["value"] == "v29"
