"""Wire shapes of Key Vault (secrets.json, 2025-07-01): parsing requests, rendering bundles."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from strongroom import codec
from strongroom.errors import BadParameter
from strongroom.models import (
    Attributes,
    CertificatePolicy,
    CertificateVersion,
    Deletion,
    KeyVersion,
    PolicyChange,
    SasDefinition,
    SecretVersion,
    StorageAccount,
    Vault,
)
from strongroom.services.certificate_policy import policy_to_json, request_policy
from strongroom.services.keys import KeyAttributeInput
from strongroom.services.objects import MAX_UNIXTIME, AttributeInput

# -- requests -------------------------------------------------------------------------------


def parse_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise BadParameter("The request body is empty; send a JSON object.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadParameter(f"The request body is not valid JSON: {str(exc)[:80]}.") from exc
    if not isinstance(data, dict):
        raise BadParameter("The request body must be a JSON object.")
    return data


def opt_str(data: dict[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is not None and not isinstance(value, str):
        raise BadParameter(f"'{field}' must be a string.")
    return value


def req_str(data: dict[str, Any], field: str) -> str:
    value = opt_str(data, field)
    if value is None:
        raise BadParameter(f"'{field}' is required.")
    return value


def tags(data: dict[str, Any]) -> dict[str, str] | None:
    value = data.get("tags")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadParameter("'tags' must be an object of string names to string values.")
    return value


def _unixtime(attrs: dict[str, Any], field: str) -> int | None:
    value = attrs.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadParameter(f"'attributes.{field}' must be integer Unix seconds.")
    if not 0 <= value <= MAX_UNIXTIME:  # also refuses NaN and infinities
        raise BadParameter(
            f"'attributes.{field}' must be Unix seconds from 0 to {MAX_UNIXTIME} "
            f"(9999-12-31T23:59:59Z); got {str(value)[:30]}."
        )
    return int(value)


def attributes(data: dict[str, Any]) -> AttributeInput | None:
    attrs = data.get("attributes")
    if attrs is None:
        return None
    if not isinstance(attrs, dict):
        raise BadParameter("'attributes' must be an object.")
    enabled = attrs.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise BadParameter("'attributes.enabled' must be true or false.")
    return AttributeInput(enabled, _unixtime(attrs, "nbf"), _unixtime(attrs, "exp"))


def b64url_decode(text: str, field: str = "value") -> bytes:
    """A backup blob's base64url (or standard base64) ``value``."""
    return codec.b64url_decode(text, field, inner="BackupBlobMalformed")


b64url_encode = codec.b64url_encode


# -- responses ------------------------------------------------------------------------------


def _attributes(a: Attributes, vault: Vault) -> dict[str, Any]:
    """Key Vault's attributes of any object: integer Unix seconds, and the vault's recovery."""
    out: dict[str, Any] = {"enabled": a.enabled}
    if a.nbf is not None:
        out["nbf"] = a.nbf
    if a.exp is not None:
        out["exp"] = a.exp
    out.update(
        created=a.created,
        updated=a.updated,
        recoveryLevel=vault.recovery_level,
        recoverableDays=vault.retention_days,
    )
    return out


def secret_bundle(base: str, vault: Vault, s: SecretVersion, *, value: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if value and s.value is not None:
        out["value"] = s.value
    out["id"] = f"{base}/secrets/{s.name}/{s.version}"
    if s.content_type is not None:
        out["contentType"] = s.content_type
    out["attributes"] = _attributes(s.attributes, vault)
    if s.tags is not None:
        out["tags"] = s.tags
    if s.managed:
        out["managed"] = True
        out["kid"] = f"{base}/keys/{s.name}/{s.version}"  # the certificate's key
    return out


def secret_item(base: str, vault: Vault, s: SecretVersion, *, versioned: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": f"{base}/secrets/{s.name}/{s.version}" if versioned else f"{base}/secrets/{s.name}",
        "attributes": _attributes(s.attributes, vault),
    }
    if s.content_type is not None:
        out["contentType"] = s.content_type
    if s.tags is not None:
        out["tags"] = s.tags
    if s.managed:
        out["managed"] = True
    return out


def deleted(
    base: str, name: str, body: dict[str, Any], d: Deletion, collection: str = "deletedsecrets"
) -> dict[str, Any]:
    """Adds what a deleted bundle or item carries (contract notes 3, Ids)."""
    body["recoveryId"] = f"{base}/{collection}/{name}"
    body["deletedDate"] = d.deleted_date
    body["scheduledPurgeDate"] = d.scheduled_purge_date
    return body


# -- keys -----------------------------------------------------------------------------------


def key_attributes(data: dict[str, Any]) -> KeyAttributeInput | None:
    base = attributes(data)
    raw = data.get("attributes") or {}
    exportable = raw.get("exportable")
    if exportable is not None and not isinstance(exportable, bool):
        raise BadParameter("'attributes.exportable' must be true or false.")
    if base is None and exportable is None:
        return None
    base = base or AttributeInput()
    return KeyAttributeInput(base.enabled, base.nbf, base.exp, exportable)


def opt_bool(data: dict[str, Any], field: str) -> bool | None:
    value = data.get(field)
    if value is not None and not isinstance(value, bool):
        raise BadParameter(f"'{field}' must be true or false.")
    return value


def opt_int(data: dict[str, Any], field: str) -> int | None:
    value = data.get(field)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise BadParameter(f"'{field}' must be an integer.")
    return value


def opt_str_list(data: dict[str, Any], field: str) -> list[str] | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadParameter(f"'{field}' must be a list of strings.")
    return value


def opt_object(data: dict[str, Any], field: str) -> dict[str, Any] | None:
    value = data.get(field)
    if value is not None and not isinstance(value, dict):
        raise BadParameter(f"'{field}' must be an object.")
    return value


def opt_b64(data: dict[str, Any], field: str) -> bytes | None:
    value = data.get(field)
    return None if value is None else b64url_decode_field(value, field)


def req_b64(data: dict[str, Any], field: str) -> bytes:
    value = opt_b64(data, field)
    if value is None:
        raise BadParameter(f"'{field}' is required.")
    return value


def b64url_decode_field(value: Any, field: str) -> bytes:
    return codec.b64url_decode(value, field)


def _key_attributes(k: KeyVersion, vault: Vault) -> dict[str, Any]:
    out = _attributes(k.attributes, vault)
    if k.exportable is not None:
        out["exportable"] = k.exportable
    return out


def key_bundle(base: str, vault: Vault, k: KeyVersion) -> dict[str, Any]:
    jwk: dict[str, Any] = {"kid": f"{base}/keys/{k.name}/{k.version}", "kty": k.kty}
    jwk["key_ops"] = k.key_ops
    jwk.update(k.public)
    out: dict[str, Any] = {"key": jwk, "attributes": _key_attributes(k, vault)}
    if k.tags is not None:
        out["tags"] = k.tags
    if k.managed:
        out["managed"] = True
    if k.release_policy is not None:
        out["release_policy"] = k.release_policy
    return out


def key_item(base: str, vault: Vault, k: KeyVersion, *, versioned: bool) -> dict[str, Any]:
    kid = f"{base}/keys/{k.name}/{k.version}" if versioned else f"{base}/keys/{k.name}"
    out: dict[str, Any] = {"kid": kid, "attributes": _key_attributes(k, vault)}
    if k.tags is not None:
        out["tags"] = k.tags
    if k.managed:
        out["managed"] = True
    return out


def deleted_key(base: str, name: str, body: dict[str, Any], d: Deletion) -> dict[str, Any]:
    return deleted(base, name, body, d, "deletedkeys")


# -- certificates ---------------------------------------------------------------------------


def certificate_policy_in(
    data: dict[str, Any], field: str | None = "policy"
) -> CertificatePolicy | None:
    """A certificate policy as a request gives it (``data[field]``, or ``data`` itself), without
    what the service sets: ``id`` and every attribute but ``enabled``. ``BadParameter`` names
    the first member of a wrong type."""
    policy = data if field is None else opt_object(data, field)
    return None if policy is None else request_policy(policy)


def certificate_policy_change(data: dict[str, Any], field: str | None = "policy") -> PolicyChange:
    """A change to a certificate's policy (``UpdateCertificatePolicy``, or ``policy`` in a
    certificate's PATCH): the members given, read as ``certificate_policy_in`` reads them. A
    ``policy`` of null changes nothing."""
    return PolicyChange(certificate_policy_in(data, field) or CertificatePolicy())


def certificate_policy(base: str, name: str, policy: CertificatePolicy) -> dict[str, Any]:
    # The stored policy is the wire's: what a client set comes back as set (certificate_policy).
    return {"id": f"{base}/certificates/{name}/policy", **policy_to_json(policy)}


def certificate_bundle(
    base: str, vault: Vault, c: CertificateVersion, policy: CertificatePolicy | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": f"{base}/certificates/{c.name}/{c.version}"}
    if c.cer is not None:
        out["kid"] = f"{base}/keys/{c.name}/{c.version}"
        out["sid"] = f"{base}/secrets/{c.name}/{c.version}"
        out["x5t"] = c.x5t
        out["cer"] = codec.b64_encode(c.cer)  # standard base64 (spec format "byte")
    else:
        out["pending"] = {"id": f"{base}/certificates/{c.name}/pending"}
    out["contentType"] = c.content_type
    out["attributes"] = _attributes(c.attributes, vault)
    if c.tags is not None:
        out["tags"] = c.tags
    if policy is not None:
        out["policy"] = certificate_policy(base, c.name, policy)
    if c.preserve_order is not None:
        out["preserveCertOrder"] = c.preserve_order
    return out


def certificate_item(
    base: str, vault: Vault, c: CertificateVersion, *, versioned: bool
) -> dict[str, Any]:
    cid = f"{base}/certificates/{c.name}"
    out: dict[str, Any] = {
        "id": f"{cid}/{c.version}" if versioned else cid,
        "attributes": _attributes(c.attributes, vault),
    }
    if c.x5t is not None:
        out["x5t"] = c.x5t
    if c.tags is not None:
        out["tags"] = c.tags
    return out


def certificate_operation(base: str, name: str, op: dict[str, Any]) -> dict[str, Any]:
    out = {"id": f"{base}/certificates/{name}/pending", **op}
    if "target" in op:
        out["target"] = f"{base}/certificates/{name}"
    return out


def deleted_certificate(base: str, name: str, body: dict[str, Any], d: Deletion) -> dict[str, Any]:
    return deleted(base, name, body, d, "deletedcertificates")


def std_b64_list(data: dict[str, Any], field: str) -> list[bytes]:
    value = data.get(field)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadParameter(f"'{field}' must be a list of standard base64 strings.")
    return [codec.b64_decode(v, f"{field}[{i}]") for i, v in enumerate(value)]


# -- storage accounts -----------------------------------------------------------------------


def req_bool(data: dict[str, Any], field: str) -> bool:
    value = opt_bool(data, field)
    if value is None:
        raise BadParameter(f"'{field}' is required.")
    return value


def storage_item(base: str, vault: Vault, a: StorageAccount) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": f"{base}/storage/{a.name}",
        "resourceId": a.resource_id,
        "attributes": _attributes(a.attributes, vault),
    }
    if a.tags is not None:
        out["tags"] = a.tags
    return out


def storage_bundle(base: str, vault: Vault, a: StorageAccount) -> dict[str, Any]:
    out = storage_item(base, vault, a)
    out["activeKeyName"] = a.active_key_name
    out["autoRegenerateKey"] = a.auto_regenerate_key
    if a.regeneration_period is not None:
        out["regenerationPeriod"] = a.regeneration_period
    return out


def sas_item(base: str, vault: Vault, d: SasDefinition) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": f"{base}/storage/{d.account}/sas/{d.name}",
        "sid": f"{base}/secrets/{d.account}-{d.name}",
        "attributes": _attributes(d.attributes, vault),
    }
    if d.tags is not None:
        out["tags"] = d.tags
    return out


def sas_bundle(base: str, vault: Vault, d: SasDefinition) -> dict[str, Any]:
    out = sas_item(base, vault, d)
    if d.template_uri is not None:
        out["templateUri"] = d.template_uri
    out["sasType"] = d.sas_type
    out["validityPeriod"] = d.validity_period
    return out


def sas_token_secret(base: str, vault: Vault, s: SecretVersion) -> dict[str, Any]:
    """A SAS definition's token as the secret ``{account}-{definition}``."""
    out = secret_bundle(base, vault, replace(s, managed=False), value=True)
    out["managed"] = True
    return out
