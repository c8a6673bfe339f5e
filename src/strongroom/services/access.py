"""Access policies per vault, in Key Vault's model: for a principal, permissions per kind.

A vault is either *open* (``open_access``, chosen at ``vault create --open``: every principal
of the installation may do everything) or closed: then only the principals its policies list
may act, each within its permissions, and a closed vault without policies denies everyone.
Revoking never grants: removing a vault's last policy leaves it closed to all.
Policies live in the store's metadata under ``vault/{vault_id}/access/{client_id}``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from strongroom.errors import BadParameter, Forbidden, NotFound
from strongroom.services.installation import Installation
from strongroom.store.base import SETTINGS, Tx, VaultRecord

PERMISSIONS: dict[str, tuple[str, ...]] = {
    "keys": (
        "get", "list", "update", "create", "import", "delete", "recover", "backup", "restore",
        "purge", "decrypt", "encrypt", "unwrapKey", "wrapKey", "verify", "sign", "rotate",
        "getrotationpolicy", "setrotationpolicy", "rng", "replicate",
    ),
    "secrets": (
        "get", "list", "set", "delete", "recover", "backup", "restore", "purge", "replicate",
    ),
    "certificates": (
        "get", "list", "update", "create", "import", "delete", "recover", "backup", "restore",
        "purge", "managecontacts", "manageissuers", "getissuers", "listissuers", "setissuers",
        "deleteissuers", "replicate",
    ),
    "storage": (
        "get", "list", "set", "delete", "update", "regeneratekey", "backup", "restore",
        "recover", "purge", "getsas", "listsas", "setsas", "deletesas", "replicate",
    ),
}  # fmt: skip
_ISSUER_PERMISSIONS = {"getissuers", "listissuers", "setissuers", "deleteissuers"}


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    client_id: str
    principal: str
    permissions: dict[str, list[str]]


def replicated_prefix(vault_id: str) -> str:
    """Where a replica keeps its source's access policies (``services.replication``)."""
    return f"vault/{vault_id}/replica/access/"


def note_settings(tx: Tx, vault: VaultRecord) -> None:
    """Numbers a change of the vault's replicated settings (issuers, contacts, access
    policies), for its replicas."""
    if vault.replicable:
        tx.note_change(vault.id, SETTINGS, "")


def _key(vault: VaultRecord, client_id: str) -> str:
    return f"vault/{vault.id}/access/{client_id}"


def normalise(kind: str, requested: list[str]) -> list[str]:
    known = {p.lower(): p for p in PERMISSIONS[kind]}
    if any(p.lower() == "all" for p in requested):
        return list(PERMISSIONS[kind])
    out = []
    for p in requested:
        if p.lower() not in known:
            raise BadParameter(
                f"'{p[:30]}' is not a {kind} permission; use {', '.join(PERMISSIONS[kind])} or all."
            )
        out.append(known[p.lower()])
    return sorted(set(out), key=out.index)


class AccessService:
    CACHE_SECONDS = 2.0

    def __init__(self, inst: Installation):
        self._inst = inst
        self._cache: dict[str, tuple[float, dict[str, dict[str, set[str]]]]] = {}

    def list_policies(self, vault: VaultRecord) -> list[AccessPolicy]:
        rows = self._inst.store.reads.list_meta(f"vault/{vault.id}/access/")
        return [AccessPolicy(**json.loads(value)) for _, value in rows]

    def replicated_policies(self, vault: VaultRecord) -> list[AccessPolicy]:
        """A replica's copies of its source's policies, which apply beside its own."""
        rows = self._inst.store.reads.list_meta(replicated_prefix(vault.id))
        return [AccessPolicy(**json.loads(value)) for _, value in rows]

    def set_policy(
        self, vault: VaultRecord, client_id: str, principal: str, permissions: dict[str, list[str]]
    ) -> AccessPolicy:
        """Replaces the principal's permissions for every kind named in ``permissions``."""
        if vault.open_access:
            raise BadParameter(
                f"Vault '{vault.name}' is open to every principal of this installation, so a "
                f"policy would change nothing. Close it first: strongroom vault update "
                f"{vault.name} --closed"
            )
        cleaned = {kind: normalise(kind, perms) for kind, perms in permissions.items()}

        def write(tx: Tx) -> AccessPolicy:
            old = tx.get_meta(_key(vault, client_id))
            merged: dict[str, list[str]] = json.loads(old)["permissions"] if old else {}
            merged.update(cleaned)
            policy = AccessPolicy(client_id, principal, merged)
            body = {"client_id": client_id, "principal": principal, "permissions": merged}
            tx.set_meta(_key(vault, client_id), json.dumps(body))
            note_settings(tx, vault)
            return policy

        return self._inst.store.transact(write).result()

    def delete_policy(self, vault: VaultRecord, client_id: str) -> AccessPolicy:
        def write(tx: Tx) -> AccessPolicy:
            old = tx.get_meta(_key(vault, client_id))
            if old is None:
                raise NotFound(
                    f"Vault '{vault.name}' has no access policy for {client_id}.",
                    code="AccessPolicyNotFound",
                )
            tx.delete_meta(_key(vault, client_id))
            note_settings(tx, vault)
            return AccessPolicy(**json.loads(old))

        return self._inst.store.transact(write).result()

    # -- enforcement ------------------------------------------------------------------------

    def _policies(self, vault: VaultRecord) -> dict[str, dict[str, set[str]]]:
        now = time.monotonic()
        hit = self._cache.get(vault.id)
        if hit is not None and hit[0] > now:
            return hit[1]
        table: dict[str, dict[str, set[str]]] = {}
        found = self.list_policies(vault)
        if vault.replica_of is not None:
            found = self.replicated_policies(vault) + found
        for p in found:
            for kind, perms in p.permissions.items():
                table.setdefault(p.client_id, {}).setdefault(kind, set()).update(perms)
        self._cache[vault.id] = (now + self.CACHE_SECONDS, table)
        return table

    def check(self, vault: VaultRecord, client_id: str, kind: str, permission: str) -> None:
        """Raises ``Forbidden`` (ForbiddenByPolicy) unless the principal may do this."""
        if vault.open_access:
            return
        granted = self._policies(vault).get(client_id, {}).get(kind, set())
        if permission in granted:
            return
        if (
            kind == "certificates"
            and permission in _ISSUER_PERMISSIONS
            and ("manageissuers" in granted)
        ):
            return
        raise self.denied(vault.name, client_id, kind, permission)

    def allows(self, vault: VaultRecord, client_id: str, kind: str, permission: str) -> bool:
        try:
            self.check(vault, client_id, kind, permission)
        except Forbidden:
            return False
        return True

    def may_use(self, vault: VaultRecord, client_id: str) -> bool:
        """Whether the principal has any permission on the vault (the console lists it)."""
        return vault.open_access or any(self._policies(vault).get(client_id, {}).values())

    @staticmethod
    def denied(vault_name: str, client_id: str, kind: str, permission: str) -> Forbidden:
        """What a principal without the permission is told: the same whether or not the
        vault exists (vault names cannot be enumerated)."""
        if kind == "rbac":  # role management (services.rbac): no policy grants it
            return Forbidden(
                f"The user, group or application 'appid={client_id}' does not have permission "
                f"to {permission} on key vault '{vault_name}'.",
                inner="ForbiddenByPolicy",
            )
        return Forbidden(
            f"The user, group or application 'appid={client_id}' does not have {kind} "
            f"{permission} permission on key vault '{vault_name}'. Grant it with: strongroom "
            f"vault set-policy {vault_name} --principal {client_id} "
            f"--{kind.removesuffix('s')}-permissions {permission}",
            inner="ForbiddenByPolicy",
        )

    def forget(self) -> None:
        self._cache.clear()


def policy_json(policy: AccessPolicy) -> dict[str, Any]:
    return {
        "principal": policy.principal,
        "clientId": policy.client_id,
        "permissions": policy.permissions,
    }
