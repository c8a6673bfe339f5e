"""What the scheduler does with the server's clock advanced: key rotation by policy, certificate
renewal by lifetime action, and the policies themselves."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.keys import (
    KeyClient,
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyRotationPolicyAction,
)

from tests.conftest import Server, make_server

DAY = 86400


@pytest.fixture(scope="module")
def clocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("clocked"), ("rotating",), "--test-clock")
    yield srv
    srv.stop()


def _keys(srv: Server) -> KeyClient:
    return KeyClient(srv.vault_url("rotating"), srv.credential(), connection_verify=str(srv.ca))


def test_default_policy_and_round_trip(clocked: Server) -> None:
    keys = _keys(clocked)
    keys.create_ec_key("policy-shape")
    default = keys.get_key_rotation_policy("policy-shape")
    assert default.id == f"{clocked.vault_url('rotating')}/keys/policy-shape/rotationpolicy"
    assert [(a.action, a.time_before_expiry) for a in default.lifetime_actions] == [
        (KeyRotationPolicyAction.notify, "P30D")
    ]
    wanted = KeyRotationPolicy(
        lifetime_actions=[
            KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P90D"),
            KeyRotationLifetimeAction(KeyRotationPolicyAction.notify, time_before_expiry="P30D"),
        ],
        expires_in="P2Y",
    )
    stored = keys.update_key_rotation_policy("policy-shape", wanted)
    assert stored.expires_in == "P2Y"
    assert stored.created_on is not None
    again = keys.get_key_rotation_policy("policy-shape")
    assert [
        (a.action, a.time_after_create, a.time_before_expiry) for a in again.lifetime_actions
    ] == [
        (KeyRotationPolicyAction.rotate, "P90D", None),
        (KeyRotationPolicyAction.notify, None, "P30D"),
    ]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"attributes": {"expiryTime": "P7D"}}, "28 days"),
        (
            {
                "lifetimeActions": [
                    {"trigger": {"timeAfterCreate": "90 days"}, "action": {"type": "Rotate"}}
                ]
            },
            "ISO 8601",
        ),
        ({"lifetimeActions": [{"trigger": {}, "action": {"type": "Rotate"}}]}, "exactly one"),
        ({"attributes": {"expiryTime": "P9999999999999Y"}}, "100 years"),
        ({"attributes": {"expiryTime": "P101Y"}}, "100 years"),
        ({"lifetimeActions": [{"trigger": ["P1D"], "action": {"type": "Rotate"}}]}, "objects"),
        (
            {
                "lifetimeActions": [
                    {"trigger": {"timeAfterCreate": "P1D"}, "action": {"type": "Explode"}}
                ]
            },
            "Rotate or Notify",
        ),
    ],
)
def test_invalid_policies_are_400(clocked: Server, body: dict[str, Any], says: str) -> None:
    _keys(clocked).create_ec_key("bad-policy")
    with httpx.Client(
        base_url=clocked.vault_url("rotating"), verify=clocked.tls(),
        headers={"Authorization": f"Bearer {clocked.token()}"}, params={"api-version": "7.6"},
    ) as http:  # fmt: skip
        response = http.put("/keys/bad-policy/rotationpolicy", json=body)
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]["message"]


def test_rotates_after_create_and_sets_expiry(clocked: Server) -> None:
    keys = _keys(clocked)
    first = keys.create_rsa_key("by-age", key_operations=["sign", "verify"], tags={"t": "1"})
    policy = KeyRotationPolicy(
        lifetime_actions=[
            KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P30D")
        ],
        expires_in="P60D",
    )
    keys.update_key_rotation_policy("by-age", policy)
    assert clocked.advance_clock(29 * DAY)["rotated"] == 0
    assert len(list(keys.list_properties_of_key_versions("by-age"))) == 1
    now = clocked.advance_clock(2 * DAY)["now"]
    latest = keys.get_key("by-age")
    assert latest.properties.version != first.properties.version
    assert latest.key_type == "RSA" and len(latest.key.n) == 256
    assert latest.key_operations == ["sign", "verify"]
    assert latest.properties.tags == {"t": "1"}
    assert latest.properties.expires_on is not None
    assert abs(latest.properties.expires_on.timestamp() - (now + 60 * DAY)) <= 5
    assert clocked.advance_clock(DAY)["rotated"] == 0  # the new version is one day old


def test_rotates_before_expiry(clocked: Server) -> None:
    keys = _keys(clocked)
    now = clocked.advance_clock(0)["now"]
    import datetime as dt

    expires = dt.datetime.fromtimestamp(now + 20 * DAY, dt.UTC)
    keys.create_ec_key("by-expiry", expires_on=expires)
    keys.update_key_rotation_policy(
        "by-expiry",
        KeyRotationPolicy(
            lifetime_actions=[
                KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_before_expiry="P10D")
            ],
            expires_in="P30D",
        ),
    )
    clocked.advance_clock(9 * DAY)
    assert len(list(keys.list_properties_of_key_versions("by-expiry"))) == 1
    later = clocked.advance_clock(2 * DAY)["now"]
    assert len(list(keys.list_properties_of_key_versions("by-expiry"))) == 2
    rotated = keys.get_key("by-expiry").properties.expires_on
    assert rotated is not None and abs(rotated.timestamp() - (later + 30 * DAY)) <= 5


def test_backup_carries_the_policy(clocked: Server) -> None:
    keys = _keys(clocked)
    keys.create_ec_key("carried")
    keys.update_key_rotation_policy(
        "carried",
        KeyRotationPolicy(
            lifetime_actions=[
                KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P45D")
            ]
        ),
    )
    blob = keys.backup_key("carried")
    keys.begin_delete_key("carried").wait()
    keys.purge_deleted_key("carried")
    keys.restore_key_backup(blob)
    actions = keys.get_key_rotation_policy("carried").lifetime_actions
    assert [(a.action, a.time_after_create) for a in actions] == [
        (KeyRotationPolicyAction.rotate, "P45D")
    ]


def test_clock_endpoint_needs_a_token_and_test_mode(clocked: Server, server: Server) -> None:
    unauthenticated = httpx.post(
        f"{clocked.authority}/admin/clock/advance", json={"seconds": 1}, verify=clocked.tls()
    )
    assert unauthenticated.status_code == 401
    normal = httpx.post(
        f"{server.authority}/admin/clock/advance",
        json={"seconds": 1},
        headers={"Authorization": f"Bearer {server.token()}"},
        verify=server.tls(),
    )
    assert normal.status_code == 404


def test_expiry_is_enforced_on_the_servers_clock(clocked: Server) -> None:
    keys = _keys(clocked)
    now = clocked.advance_clock(0)["now"]
    import datetime as dt

    keys.create_ec_key("short-lived", expires_on=dt.datetime.fromtimestamp(now + DAY, dt.UTC))
    from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm

    key = keys.get_key("short-lived")
    crypto = CryptographyClient(key.id, clocked.credential(), connection_verify=str(clocked.ca))
    crypto.sign(SignatureAlgorithm.es256, bytes(32))
    clocked.advance_clock(2 * DAY)
    with pytest.raises(HttpResponseError) as info:
        crypto.sign(SignatureAlgorithm.es256, bytes(32))
    assert "KeyExpired" in str(info.value)


def test_certificates_renew_by_lifetime_action(clocked: Server) -> None:
    from azure.keyvault.certificates import (
        CertificateClient,
        CertificatePolicy,
        CertificatePolicyAction,
        LifetimeAction,
    )

    certs = CertificateClient(
        clocked.vault_url("rotating"), clocked.credential(), connection_verify=str(clocked.ca)
    )
    policy = CertificatePolicy(
        issuer_name="Self",
        subject="CN=renews",
        validity_in_months=1,
        lifetime_actions=[
            LifetimeAction(CertificatePolicyAction.auto_renew, days_before_expiry=10)
        ],
    )
    first = certs.begin_create_certificate("renews", policy).result()
    assert clocked.advance_clock(15 * DAY)["renewed"] == 0
    assert clocked.advance_clock(7 * DAY)["renewed"] == 1
    latest = certs.get_certificate("renews")
    assert latest.properties.version != first.properties.version
    assert latest.cer != first.cer
    assert latest.properties.expires_on > first.properties.expires_on
    assert len(list(certs.list_properties_of_certificate_versions("renews"))) == 2
    key = _keys(clocked).get_key("renews")
    assert key.properties.version == latest.properties.version  # a new managed key version


def _plant_policy(srv: Server, vault: str, key: str, body: dict[str, Any]) -> None:
    """Writes a rotation policy straight into the store, as a bug or an older release might
    have left it: what the API would refuse."""
    text = json.dumps(body)
    if srv.database_url:
        import psycopg

        with psycopg.connect(srv.database_url) as conn:
            conn.execute(
                "UPDATE policies SET body=%s WHERE kind='key' AND lname=%s AND vault_id="
                "(SELECT id FROM vaults WHERE lname=%s)",
                (text, key, vault),
            )
        return
    with sqlite3.connect(srv.data_dir / "strongroom.db") as conn:
        changed = conn.execute(
            "UPDATE policies SET body=? WHERE kind='key' AND lname=? AND vault_id="
            "(SELECT id FROM vaults WHERE lname=?)",
            (text, key, vault),
        ).rowcount
        assert changed == 1


def test_one_bad_policy_does_not_stop_the_scheduler(clocked: Server) -> None:
    """A policy whose rotation would set an expiry centuries away used to end every pass
    with OverflowError: no key rotated and nothing was purged, in any vault."""
    keys = _keys(clocked)
    every_day = KeyRotationPolicy(
        lifetime_actions=[
            KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P28D")
        ],
        expires_in="P60D",
    )
    for name in ("a-healthy", "m-broken", "z-healthy"):
        keys.create_ec_key(name)
        keys.update_key_rotation_policy(name, every_day)
    broken = {
        "lifetimeActions": [{"trigger": {"timeAfterCreate": "P1D"}, "action": {"type": "Rotate"}}],
        "attributes": {"expiryTime": "P9999999999999Y"},
    }
    _plant_policy(clocked, "rotating", "m-broken", broken)
    keys.create_ec_key("doomed")
    keys.begin_delete_key("doomed").wait()
    done = clocked.advance_clock(91 * DAY)  # past the vault's retention: purged too
    assert done["failed"] >= 1
    assert done["rotated"] >= 2
    assert done["purged"] >= 1
    for name in ("a-healthy", "z-healthy"):
        assert len(list(keys.list_properties_of_key_versions(name))) == 2
    assert len(list(keys.list_properties_of_key_versions("m-broken"))) == 1
    with pytest.raises(ResourceNotFoundError):
        keys.get_deleted_key("doomed")
