"""A vault of a throwaway test installation as a seed document, every secret value and
private key in plaintext (``services.seed`` describes the format and what is left out).

Refused (``ExportRefused``) unless the installation is marked ephemeral: a plaintext export
exists for tests only, and an operator's copies of a vault are sealed backups.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from strongroom import codec
from strongroom.config import is_ephemeral
from strongroom.crypto import keys as kc
from strongroom.crypto import x509 as cx
from strongroom.errors import Forbidden
from strongroom.models import Kind
from strongroom.services.certificate_policy import policy_to_json
from strongroom.services.container import Services
from strongroom.services.objects import tags_of
from strongroom.store.base import Reads, VaultRecord, VersionRecord

KEY, SECRET, CERT = Kind.KEY.value, Kind.SECRET.value, Kind.CERTIFICATE.value


class ExportRefused(Forbidden):
    code = "ExportRefused"


_PAGE = 200


def _attributes_json(v: VersionRecord, times: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"enabled": v.enabled}
    if times and v.nbf is not None:
        out["nbf"] = v.nbf
    if times and v.exp is not None:
        out["exp"] = v.exp
    return out


def _version_json(v: VersionRecord, body: dict[str, Any], times: bool = True) -> dict[str, Any]:
    tags = tags_of(v)
    return {**body, **({"tags": tags} if tags else {}), "attributes": _attributes_json(v, times)}


def _entry(name: str, versions: list[dict[str, Any]]) -> dict[str, Any]:
    """An object: its one version's fields beside its name, or its versions listed."""
    if len(versions) == 1:
        return {"name": name, **versions[0]}
    return {"name": name, "versions": versions}


def _active(reads: Reads, vault: VaultRecord, kind: str) -> Iterator[tuple[str, str]]:
    """(name, lname) of every active object of ``kind`` not managed by a certificate."""
    after = None
    while True:
        rows = reads.list_objects(vault.id, kind, deleted=False, after=after, limit=_PAGE)
        yield from ((obj.name, obj.lname) for obj, latest in rows if not latest.managed)
        if len(rows) < _PAGE:
            return
        after = rows[-1][0].lname


def export_vault(services: Services, vault: str) -> dict[str, Any]:
    """The vault as a seed document with every secret value and private key in plaintext.
    ``ExportRefused`` unless the installation is ephemeral."""
    settings = services.installation.settings
    if not is_ephemeral(settings):
        raise ExportRefused(
            f"This installation ({settings.data_dir}) is not ephemeral, and a plaintext export "
            f"would print its secrets and private keys: it is made only on throwaway test "
            f"installations, whose data directory holds an {settings.ephemeral_marker.name} "
            "file (strongroom serve --ephemeral). Back up a vault with strongroom vault backup."
        )
    record = services.vaults.get_record(vault)
    out: dict[str, Any] = {
        "name": record.name,
        "open": record.open_access,
        "retentionDays": record.retention_days,
        "purgeProtection": record.purge_protection,
    }
    principals: list[dict[str, Any]] = []
    with services.installation.store.snapshot() as reads:
        if not record.open_access:  # an open vault's stored policies grant nothing
            policies = []
            for policy in services.access.list_policies(record):
                principal = reads.get_principal(policy.client_id)
                if principal is not None:  # a policy outliving its principal grants nothing
                    policies.append(
                        {"principal": principal.name, "permissions": policy.permissions}
                    )
            policies.sort(key=lambda p: str(p["principal"]))
            principals = [{"name": p["principal"]} for p in policies]
            if policies:
                out["accessPolicies"] = policies
        secrets = [_export_secret(services, reads, record, n, ln)
                   for n, ln in _active(reads, record, SECRET)]  # fmt: skip
        keys = [_export_key(services, reads, record, n, ln)
                for n, ln in _active(reads, record, KEY)]  # fmt: skip
        certificates = [_export_certificate(services, reads, record, n, ln)
                        for n, ln in _active(reads, record, CERT)]  # fmt: skip
    for name, items in (("secrets", secrets), ("keys", keys), ("certificates", certificates)):
        found = [item for item in items if item is not None]
        if found:
            out[name] = found
    document: dict[str, Any] = {}
    if principals:
        document["principals"] = principals
    document["vaults"] = [out]
    return document


def _export_secret(
    services: Services, reads: Reads, vault: VaultRecord, name: str, lname: str
) -> dict[str, Any]:
    versions = []
    for v in reads.all_versions(vault.id, SECRET, lname):
        body: dict[str, Any] = {"value": services.secrets.unseal(vault, v).decode()}
        if v.content_type is not None:
            body["contentType"] = v.content_type
        versions.append(_version_json(v, body))
    return _entry(name, versions)


def _export_key(
    services: Services, reads: Reads, vault: VaultRecord, name: str, lname: str
) -> dict[str, Any]:
    versions = []
    for v in reads.all_versions(vault.id, KEY, lname):
        meta = json.loads(v.extra or "{}")
        jwk = kc.export_jwk(meta["kty"], services.keys.unseal(vault, v))
        versions.append(_version_json(v, {"jwk": jwk, "key_ops": meta["key_ops"]}))
    return _entry(name, versions)


def _export_certificate(
    services: Services, reads: Reads, vault: VaultRecord, name: str, lname: str
) -> dict[str, Any] | None:
    versions = []
    for v in reads.all_versions(vault.id, CERT, lname):
        meta = json.loads(v.extra or "{}")
        if not meta.get("cer"):
            continue  # pending: no certificate to import
        chain = [codec.b64_decode(c, "chain") for c in meta.get("chain") or [meta["cer"]]]
        material = services.certificates.unseal(vault, v)
        versions.append(_version_json(v, {"pem": cx.secret_value(material, chain, cx.PEM)}, False))
    if not versions:
        return None
    policy = services.certificates.state(reads, vault, lname).policy
    if policy is not None:
        stated = policy_to_json(policy)
        attributes = stated.get("attributes")
        if isinstance(attributes, dict):  # created and updated are the service's to set
            stated["attributes"] = {k: v for k, v in attributes.items() if k == "enabled"}
        versions[-1]["policy"] = stated
    return _entry(name, versions)
