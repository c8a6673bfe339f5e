"""Certificate policies as typed models: read from requests and the store, and written back in
the same shape.

The stored samples below were written by the release before policies were typed (commit
f000dfe: ``complete_policy`` on dicts), so they are what stored rows and backup blobs hold.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from strongroom.errors import BadParameter
from strongroom.models import (
    CertificatePolicy,
    KeyProperties,
    SubjectAlternativeNames,
)
from strongroom.services.certificate_policy import (
    CertificateState,
    dump_state,
    load_state,
    policy_from_json,
    policy_to_json,
    state_from_json,
)

NOW = 1_800_000_000
PEM = "application/x-pem-file"

# A state body as the store held it for a certificate pending merge (sqlite ``policies.body``).
STORED_STATE = (
    '{"policy": {"key_props": {"kty": "EC", "exportable": true, "crv": "P-256", "reuse_key": '
    'false}, "x509_props": {"subject": "CN=p", "ekus": ["1.3.6.1.5.5.7.3.1", '
    '"1.3.6.1.5.5.7.3.2"], "key_usage": ["digitalSignature", "keyEncipherment"], '
    '"validity_months": 12, "sans": {}}, "issuer": {"name": "Unknown"}, "secret_props": '
    '{"contentType": "application/x-pkcs12"}, "lifetime_actions": [{"trigger": '
    '{"lifetime_percentage": 80}, "action": {"action_type": "AutoRenew"}}], "attributes": '
    '{"enabled": true, "created": 1796427380, "updated": 1796427380}}, "operation": {"issuer": '
    '{"name": "Unknown"}, "csr": "MIHFMG4CAQAwDDEKMAgGA1UEAwwBcDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0'
    "IABKz2zP09k+gJ+Yhk2LB07EX41vVmsk+xork6Q6sAwSVcAnWs0GKE1dS+Bxud8kI585duHAMwtcySZLXPY4oynVCg"
    "ADAKBggqhkjOPQQDAgNHADBEAiAmVQQNWh56rZGJiaHb3s72eu1/xIkHAbCzdFX95d8dEQIgWC6v9sn2XRwEcv42IVb"
    'm0YVfjpu7gejpxYavocx6izs=", "cancellation_requested": false, "request_id": '
    '"01a2436a788c74788ce00336fd29a219", "status": "inProgress", "status_details": "Pending '
    'certificate created. Please Perform Merge to complete the request."}}'
)

# A create request with what a raw REST client may send besides what the SDK sends: an id, a
# null, members Strongroom does not model, read-only attributes, platformManaged.
RICH_REQUEST: dict[str, Any] = {
    "id": "https://ignored/certificates/c/policy",
    "key_props": {"exportable": True, "kty": "EC", "crv": "P-384", "reuse_key": None},
    "secret_props": {"contentType": PEM},
    "x509_props": {
        "subject": "CN=svc.example",
        "sans": {"dns_names": ["svc.example"], "emails": ["ops@example.com"]},
        "ekus": ["1.3.6.1.5.5.7.3.1"],
        "key_usage": None,
        "validity_months": 3,
        "newerField": {"a": 1},
    },
    "lifetime_actions": [
        {"trigger": {"days_before_expiry": 10}, "action": {"action_type": "AutoRenew"}},
        {"trigger": {"lifetime_percentage": 50}, "action": {"action_type": "EmailContacts"}},
        None,
    ],
    "issuer": {"name": "Self", "cert_transparency": False},
    "attributes": {"enabled": True, "created": 5, "recoveryLevel": "Purgeable"},
    "platformManaged": {"metadata": {"sans": {"dns_names": ["ignored.example"]}}},
}
# What the previous release stored for RICH_REQUEST at NOW.
RICH_STORED: dict[str, Any] = {
    "attributes": {"created": NOW, "enabled": True, "updated": NOW},
    "issuer": {"cert_transparency": False, "name": "Self"},
    "key_props": {"crv": "P-384", "exportable": True, "kty": "EC", "reuse_key": None},
    "lifetime_actions": [
        {"action": {"action_type": "AutoRenew"}, "trigger": {"days_before_expiry": 10}},
        {"action": {"action_type": "EmailContacts"}, "trigger": {"lifetime_percentage": 50}},
        None,
    ],
    "platformManaged": {"metadata": {"sans": {"dns_names": ["ignored.example"]}}},
    "secret_props": {"contentType": PEM},
    "x509_props": {
        "ekus": ["1.3.6.1.5.5.7.3.1"],
        "key_usage": None,
        "newerField": {"a": 1},
        "sans": {"dns_names": ["svc.example"], "emails": ["ops@example.com"]},
        "subject": "CN=svc.example",
        "validity_months": 3,
    },
}
# What the previous release stored for a policy giving only a subject (the SDK's default).
DEFAULT_STORED: dict[str, Any] = {
    "attributes": {"created": NOW, "enabled": True, "updated": NOW},
    "issuer": {"name": "Unknown"},
    "key_props": {"exportable": True, "key_size": 2048, "kty": "RSA", "reuse_key": False},
    "lifetime_actions": [
        {"action": {"action_type": "AutoRenew"}, "trigger": {"lifetime_percentage": 80}}
    ],
    "secret_props": {"contentType": "application/x-pkcs12"},
    "x509_props": {
        "ekus": ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"],
        "key_usage": ["digitalSignature", "keyEncipherment"],
        "sans": {},
        "subject": "CN=DefaultPolicy",
        "validity_months": 12,
    },
}


def _request(policy: dict[str, Any]) -> CertificatePolicy:
    return policy_from_json(policy)


# -- the stored shape -----------------------------------------------------------------------


def test_a_stored_state_loads_and_is_written_back_unchanged() -> None:
    state = load_state(STORED_STATE)
    assert state.policy is not None
    assert state.policy.key_props == KeyProperties(
        exportable=True, kty="EC", crv="P-256", reuse_key=False
    )
    assert state.policy.x509_props.sans == SubjectAlternativeNames()
    assert state.operation is not None and state.operation["status"] == "inProgress"
    assert json.loads(dump_state(state)) == json.loads(STORED_STATE)
    assert state_from_json(json.loads(STORED_STATE)) == state  # as a backup payload carries it


@pytest.mark.parametrize("stored", [RICH_STORED, DEFAULT_STORED], ids=["rich", "default"])
def test_stored_policies_round_trip_exactly(stored: dict[str, Any]) -> None:
    policy = policy_from_json(json.loads(json.dumps(stored)), strict=False)
    assert policy_to_json(policy) == stored


def test_a_state_without_a_policy_or_operation() -> None:
    assert load_state(None) == CertificateState()
    assert json.loads(dump_state(CertificateState())) == {"policy": None, "operation": None}
    with pytest.raises(TypeError):
        state_from_json(["not", "an", "object"])
    with pytest.raises(TypeError):
        state_from_json({"policy": 5, "operation": None})


def test_members_of_a_wrong_type_in_a_stored_policy_are_kept_as_they_are() -> None:
    """Releases before policies were checked stored whatever PATCH gave."""
    stored = json.loads(json.dumps(DEFAULT_STORED))
    stored["x509_props"]["validity_months"] = "12"
    stored["key_props"]["exportable"] = "yes"
    stored["lifetime_actions"] = "renew"
    policy = policy_from_json(stored, strict=False)
    assert policy.x509_props.validity_months is None
    assert policy.lifetime_actions is None
    assert policy_to_json(policy) == stored


# -- reading a request ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"key_props": 5}, "'key_props' must be an object."),
        ({"key_props": {"key_size": [2048]}}, "'key_props.key_size' must be an integer."),
        ({"key_props": {"exportable": 1}}, "'key_props.exportable' must be true or false."),
        ({"key_props": {"key_size": True}}, "'key_props.key_size' must be an integer."),
        ({"secret_props": {"contentType": 1}}, "'secret_props.contentType' must be a string."),
        (
            {"x509_props": {"validity_months": "12"}},
            "'x509_props.validity_months' must be an integer.",
        ),
        ({"x509_props": {"ekus": "1.2.3"}}, "'x509_props.ekus' must be a list."),
        ({"x509_props": {"key_usage": [1]}}, "'x509_props.key_usage' must be a list of strings."),
        ({"x509_props": {"sans": ["a.example"]}}, "'x509_props.sans' must be an object."),
        (
            {"x509_props": {"sans": {"ipAddresses": [1]}}},
            "'x509_props.sans.ipAddresses' must be a list of strings.",
        ),
        ({"issuer": {"name": 5}}, "'issuer.name' must be a string."),
        ({"attributes": {"enabled": "yes"}}, "'attributes.enabled' must be true or false."),
        ({"lifetime_actions": {}}, "'lifetime_actions' must be a list."),
        ({"lifetime_actions": [None, "renew"]}, "'lifetime_actions[1]' must be an object."),
        (
            {"lifetime_actions": [{"trigger": []}]},
            "'lifetime_actions[0].trigger' must be an object.",
        ),
        (
            {"lifetime_actions": [{"action": {"action_type": 1}}]},
            "'lifetime_actions[0].action.action_type' must be a string.",
        ),
        # The first wrong member in the order the spec lists them is named.
        (
            {"x509_props": {"subject": 1}, "key_props": {"kty": 1}},
            "'key_props.kty' must be a string.",
        ),
    ],
)
def test_a_member_of_a_wrong_type_is_named(policy: dict[str, Any], message: str) -> None:
    with pytest.raises(BadParameter) as info:
        _request(policy)
    assert str(info.value) == message
