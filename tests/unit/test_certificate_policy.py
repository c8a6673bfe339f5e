"""Certificate policies as typed models: read from the wire and the store, written back in
the same shape, completed, changed, and asked whether an AutoRenew action is due.

The stored samples below were written by the release before policies were typed (commit
f000dfe: ``complete_policy`` on dicts), so they are what stored rows and backup blobs hold.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from strongroom.api import wire
from strongroom.errors import BadParameter
from strongroom.models import (
    Action,
    CertificatePolicy,
    KeyProperties,
    LifetimeAction,
    PolicyChange,
    SubjectAlternativeNames,
    Trigger,
    X509Properties,
)
from strongroom.services.certificate_policy import (
    CertificateState,
    dump_state,
    load_state,
    policy_from_json,
    policy_to_json,
    state_from_json,
)
from strongroom.services.certificate_rules import (
    change_policy,
    complete_imported_policy,
    complete_policy,
    renewal_due,
    self_issued,
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


def _created(policy: dict[str, Any]) -> CertificatePolicy:
    return complete_policy(_request(policy), NOW)


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


# -- completion -----------------------------------------------------------------------------


def test_a_subject_alone_is_completed_as_the_previous_release_stored_it() -> None:
    completed = _created({"x509_props": {"subject": "CN=DefaultPolicy"}})
    assert policy_to_json(completed) == DEFAULT_STORED


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"key_props": {"kty": "oct"}}, "key_props.kty must be RSA, RSA-HSM, EC or EC-HSM"),
        ({"key_props": {"kty": None}}, "key_props.kty must be RSA, RSA-HSM, EC or EC-HSM"),
        (
            {"key_props": {"kty": "RSA-HSM", "crv": "P-256"}},
            "'key_props.crv' applies to EC keys, not RSA keys.",
        ),
        ({"key_props": {"kty": "EC", "crv": "P-1"}}, "'key_props.crv' must be one of P-256,"),
        ({"key_props": {"kty": "RSA", "key_size": 1024}}, "RSA key_size 1024 is not supported"),
        ({"secret_props": {"contentType": "text/plain"}}, "secret_props.contentType must be"),
        ({"secret_props": {"contentType": None}}, "secret_props.contentType must be"),
        ({"x509_props": {"subject": "CN=a", "key_usage": ["x"]}}, "unknown usage 'x'"),
        ({"x509_props": {"subject": "CN=a", "ekus": ["tls"]}}, "is not a dotted object identifier"),
        ({"x509_props": {"subject": "CN=a", "validity_months": 1201}}, "from 1 to 1200; got 1201"),
        (
            {"x509_props": {"sans": {"dns_names": []}}},
            "needs x509_props.subject or at least one SAN",
        ),
        (
            {"lifetime_actions": [{"trigger": {"lifetime_percentage": 100}}]},
            "'lifetime_actions[0].trigger.lifetime_percentage' must be from 1 to 99; got 100.",
        ),
        (
            {"lifetime_actions": [{"action": {"action_type": "Rotate"}}]},
            "'lifetime_actions[0].action.action_type' must be AutoRenew or EmailContacts.",
        ),
    ],
)
def test_a_value_out_of_range_is_named(policy: dict[str, Any], message: str) -> None:
    policy.setdefault("x509_props", {"subject": "CN=a"})
    with pytest.raises(BadParameter) as info:
        _created(policy)
    assert message in str(info.value)


def test_a_member_given_as_null_keeps_its_default_out() -> None:
    policy = _created({"x509_props": {"subject": "CN=a", "ekus": None}, "lifetime_actions": None})
    assert policy.x509_props.ekus is None
    stored = policy_to_json(policy)
    assert stored["x509_props"]["ekus"] is None
    assert stored["lifetime_actions"] is None
    assert not renewal_due(policy, 0, 100, 100)


def test_a_section_given_as_null_gets_its_defaults() -> None:
    policy = _created({"key_props": None, "x509_props": {"subject": "CN=a"}})
    assert policy_to_json(policy)["key_props"] == DEFAULT_STORED["key_props"]


def test_an_ec_key_gets_a_curve_and_no_size() -> None:
    keys = _created({"key_props": {"kty": "EC-HSM"}, "x509_props": {"subject": "CN=a"}}).key_props
    assert (keys.kty, keys.crv, keys.key_size) == ("EC-HSM", "P-256", None)


def test_platform_managed_policies_name_their_sans_in_metadata() -> None:
    policy = _created({"platformManaged": {"metadata": {"sans": {"dns_names": ["p.example"]}}}})
    assert policy.x509_props.sans == SubjectAlternativeNames(dns_names=("p.example",))
    assert policy.x509_props.subject == ""


def test_completing_again_keeps_created_and_stamps_updated() -> None:
    policy = complete_policy(_created({"x509_props": {"subject": "CN=a"}}), NOW + 60)
    assert (policy.attributes.created, policy.attributes.updated) == (NOW, NOW + 60)


def test_an_import_takes_what_the_request_leaves_out_from_the_certificate() -> None:
    described = X509Properties(
        subject="CN=imported",
        ekus=("1.3.6.1.5.5.7.3.2",),
        sans=SubjectAlternativeNames(dns_names=("imp.example",)),
    )
    given = _request({"x509_props": {"subject": "CN=given"}, "key_props": {"exportable": False}})
    policy = complete_imported_policy(given, described, ("EC", 384, "P-384"), PEM, NOW)
    assert policy.x509_props.subject == "CN=given"
    assert policy.x509_props.ekus == ("1.3.6.1.5.5.7.3.2",)
    assert policy.x509_props.sans == described.sans
    assert policy.key_props == KeyProperties(
        exportable=False, kty="EC", crv="P-384", reuse_key=False
    )
    assert policy.secret_props.content_type == PEM


# -- changes --------------------------------------------------------------------------------


def _changed(stored: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    before = policy_from_json(stored, strict=False)
    return policy_to_json(change_policy(before, PolicyChange(policy_from_json(change)), NOW))


def test_a_change_replaces_the_members_it_gives() -> None:
    after = _changed(
        RICH_STORED,
        {
            "x509_props": {"validity_months": 6, "sans": {"uris": ["https://a.example"]}},
            "issuer": {"cty": None},
            "lifetime_actions": [],
            "platformManaged": {"other": 1},
            "attributes": {"enabled": False},
        },
    )
    expected = json.loads(json.dumps(RICH_STORED))
    expected["x509_props"].update(validity_months=6, sans={"uris": ["https://a.example"]})
    expected["issuer"]["cty"] = None
    expected["lifetime_actions"] = []
    expected["platformManaged"]["other"] = 1  # an object changes member by member
    expected["attributes"]["enabled"] = False
    assert after == expected


def test_a_section_changed_to_null_goes_back_to_its_defaults() -> None:
    after = _changed(RICH_STORED, {"key_props": None})
    assert after["key_props"] == DEFAULT_STORED["key_props"]


def test_a_change_is_checked_with_the_stored_policy() -> None:
    with pytest.raises(BadParameter, match=re.escape("'key_props.crv' applies to EC keys")):
        _changed(RICH_STORED, {"key_props": {"kty": "RSA"}})
    with pytest.raises(BadParameter, match="RSA key_size 1024 is not supported"):
        _changed(DEFAULT_STORED, {"key_props": {"key_size": 1024}})


# -- renewal --------------------------------------------------------------------------------


DAY = 86400
NBF, EXP = 1_000, 1_000 + 10 * DAY  # a version valid for 10 days


def _renewing(*actions: LifetimeAction | None) -> CertificatePolicy:
    return CertificatePolicy(lifetime_actions=actions)


def _autorenew(trigger: Trigger, action_type: str = "AutoRenew") -> LifetimeAction:
    return LifetimeAction(trigger, Action(action_type))


AT_80_PERCENT = _renewing(_autorenew(Trigger(lifetime_percentage=80)))
A_DAY_BEFORE = _renewing(_autorenew(Trigger(days_before_expiry=1)))


@pytest.mark.parametrize(
    ("policy", "now", "due"),
    [
        (AT_80_PERCENT, NBF + 8 * DAY - 1, False),
        (AT_80_PERCENT, NBF + 8 * DAY, True),
        (A_DAY_BEFORE, EXP - DAY - 1, False),
        (A_DAY_BEFORE, EXP - DAY, True),
        # A percentage wins over days before expiry when both are given.
        (
            _renewing(_autorenew(Trigger(lifetime_percentage=99, days_before_expiry=9))),
            EXP - 9 * DAY,
            False,
        ),
        (_renewing(_autorenew(Trigger(lifetime_percentage=80), "autorenew")), NBF + 8 * DAY, True),
        (_renewing(_autorenew(Trigger(lifetime_percentage=1), "EmailContacts")), EXP, False),
        (_renewing(LifetimeAction(Trigger(lifetime_percentage=1))), EXP, False),
        (_renewing(LifetimeAction(None, Action("AutoRenew"))), EXP, False),
        (_renewing(_autorenew(Trigger())), EXP, False),
        (_renewing(None, _autorenew(Trigger(lifetime_percentage=10))), NBF + DAY, True),
        (_renewing(), EXP, False),
        (CertificatePolicy(), EXP, False),
    ],
)
def test_renewal_is_due_by_lifetime_percentage_or_days_before_expiry(
    policy: CertificatePolicy, now: int, due: bool
) -> None:
    assert renewal_due(policy, NBF, EXP, now) is due


def test_only_self_issued_policies_renew_here() -> None:
    assert self_issued(_created({"issuer": {"name": "self"}, "x509_props": {"subject": "CN=a"}}))
    assert not self_issued(_created({"x509_props": {"subject": "CN=a"}}))


# -- the wire -------------------------------------------------------------------------------


def _from_wire(policy: dict[str, Any]) -> CertificatePolicy:
    parsed = wire.certificate_policy_in({"policy": policy})
    assert parsed is not None
    return parsed


def test_a_request_is_completed_as_the_previous_release_stored_it() -> None:
    assert policy_to_json(complete_policy(_from_wire(RICH_REQUEST), NOW)) == RICH_STORED


def test_the_rendered_policy_is_the_stored_one_after_its_id() -> None:
    policy = policy_from_json(RICH_STORED, strict=False)
    rendered = wire.certificate_policy("https://v.vault.localhost", "c", policy)
    assert rendered == {"id": "https://v.vault.localhost/certificates/c/policy", **RICH_STORED}


def test_the_wire_drops_what_the_service_sets() -> None:
    policy = _from_wire({"id": "x", "attributes": {"enabled": False, "created": 1, "updated": 2}})
    assert "id" not in policy.extra
    assert policy.attributes.enabled is False
    assert (policy.attributes.created, policy.attributes.updated) == (None, None)
    assert wire.certificate_policy_in({}) is None
    with pytest.raises(BadParameter, match=re.escape("'policy' must be an object.")):
        wire.certificate_policy_in({"policy": []})


def test_an_empty_change_only_stamps_updated() -> None:
    stored = json.loads(json.dumps(DEFAULT_STORED))
    stored["attributes"]["updated"] = NOW - 10
    after = wire.certificate_policy_change({"policy": None})
    policy = change_policy(policy_from_json(stored, strict=False), after, NOW)
    assert policy_to_json(policy) == DEFAULT_STORED
