"""Azure role-based access control for a vault's data plane, as Managed HSM serves it.

A vault's *permission model* is access policies (the default, ``services.access``) or RBAC.
Under RBAC, access policies and the open setting are ignored and every data-plane operation
is authorised by role assignments alone: an operation is one *action* (``ACTIONS``, keyed by
the route table's audit operation names, so the route table, the audit log and this table
name operations alike), asked at one *scope* of the vault (``/``, ``/keys``, ``/keys/{name}``,
``/secrets``, ``/secrets/{name}``, ``/certificates``, ``/certificates/{name}`` and
Strongroom's ``/storage``, ``/storage/{name}``). It is allowed when some assignment of the
caller, at that scope or one above it, names a role one of whose permissions matches the
action (``*`` matches any run of characters, case-insensitively) and none of that
permission's ``not…`` lists does. Nothing else allows anything: deny by default, and a grant
on one secret does not reach another.

Data-plane operations are matched against a role's ``dataActions``; managing role
assignments and definitions (``Microsoft.Authorization/…``) against its ``actions``, as Azure
Resource Manager does, so Key Vault Data Access Administrator may manage assignments and Key
Vault Administrator may not, exactly as in Azure. The operator (local CLI) may always.

Stored in the store's metadata beside access policies: ``vault/{id}/rbac/enabled``,
``vault/{id}/rbac/assignments/{name}`` and ``vault/{id}/rbac/definitions/{name}`` (custom
roles; the built-in ones are the table ``BUILT_IN_ROLES``). Changes reach running servers
within ``CACHE_SECONDS``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from strongroom.errors import BadParameter, Conflict, Forbidden, NotFound
from strongroom.services.access import note_settings
from strongroom.services.installation import Installation
from strongroom.store.base import Reads, Tx, VaultRecord

RBAC_KIND = "rbac"  # the Need kind of role management routes: no access policy grants it
ROLE_DEFINITION_PREFIX = "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/"
MAX_ASSIGNMENTS = 2000  # per vault (Azure's limit per subscription is 4000)
MAX_CUSTOM_ROLES = 100
MAX_ACTIONS = 100  # entries per permission list
MAX_ACTION_LENGTH = 256
MAX_TEXT = 1024  # role name and description

_KV = "Microsoft.KeyVault/vaults/"
_AUTH = "Microsoft.Authorization/"


def _actions(prefix: str, **by_operation: str) -> dict[str, str]:
    return {operation: prefix + action for operation, action in by_operation.items()}


# The action each data-plane operation needs, by the route table's operation name (the audit
# log's). Key Vault's data actions where Azure has one (learn.microsoft.com, "Azure built-in
# roles for Security", and the Microsoft.KeyVault resource provider operations); Strongroom's,
# in the same namespace, for what Azure Key Vault does not serve (storage accounts, whole-vault
# backup, replication, rng), so that ``Microsoft.KeyVault/vaults/*`` covers them too.
ACTIONS: dict[str, str] = {
    **_actions(
        _KV + "secrets/",
        SecretList="readMetadata/action", SecretListVersions="readMetadata/action",
        SecretGet="getSecret/action", SecretSet="setSecret/action",
        SecretUpdate="update/action", SecretDelete="delete",
        SecretListDeleted="readMetadata/action", SecretGetDeleted="readMetadata/action",
        SecretPurge="purge/action", SecretRecover="recover/action",
        SecretBackup="backup/action", SecretRestore="restore/action",
        SecretSelectiveRestore="restore/action",
    ),
    **_actions(
        _KV + "keys/",
        KeyList="read", KeyListVersions="read", KeyGet="read", KeyImport="import/action",
        KeyCreate="create/action", KeyRotate="rotate/action", KeyUpdate="update/action",
        KeyDelete="delete", KeyListDeleted="read", KeyGetDeleted="read",
        KeyPurge="purge/action", KeyRecover="recover/action", KeyBackup="backup/action",
        KeyRestore="restore/action", KeySelectiveRestore="restore/action",
        KeyEncrypt="encrypt/action", KeyDecrypt="decrypt/action", KeySign="sign/action",
        KeyVerify="verify/action", KeyWrap="wrap/action", KeyUnwrap="unwrap/action",
    ),
    **_actions(
        _KV + "keyrotationpolicies/",
        KeyGetRotationPolicy="read", KeySetRotationPolicy="write",
    ),
    **_actions(
        _KV + "certificates/",
        CertificateList="read", CertificateListVersions="read", CertificateGet="read",
        CertificateCreate="create/action", CertificateImport="import/action",
        CertificateMerge="create/action", CertificateUpdate="update/action",
        CertificatePolicyGet="read", CertificatePolicyUpdate="update/action",
        CertificatePendingGet="read", CertificatePendingUpdate="update/action",
        CertificatePendingDelete="delete", CertificateDelete="delete",
        CertificateListDeleted="read", CertificateGetDeleted="read",
        CertificatePurge="purge/action", CertificateRecover="recover/action",
        CertificateBackup="backup/action", CertificateRestore="restore/action",
        CertificateSelectiveRestore="restore/action",
    ),
    **_actions(
        _KV + "certificatecas/",
        CertificateIssuerList="read", CertificateIssuerGet="read",
        CertificateIssuerSet="write", CertificateIssuerUpdate="write",
        CertificateIssuerDelete="delete",
    ),
    **_actions(
        _KV + "certificatecontacts/",
        CertificateContactsGet="read", CertificateContactsSet="write",
        CertificateContactsDelete="write",
    ),
    **_actions(
        _KV + "storageaccounts/",
        StorageAccountList="read", StorageAccountGet="read", StorageAccountSet="set/action",
        StorageAccountUpdate="update/action", StorageAccountRegenerateKey="regeneratekey/action",
        StorageAccountDelete="delete", StorageAccountListDeleted="read",
        StorageAccountGetDeleted="read", StorageAccountPurge="purge/action",
        StorageAccountRecover="recover/action", StorageAccountBackup="backup/action",
        StorageAccountRestore="restore/action", StorageAccountSelectiveRestore="restore/action",
        SasDefinitionList="sas/read", SasDefinitionGet="sas/read",
        SasDefinitionSet="sas/set/action", SasDefinitionUpdate="sas/set/action",
        SasDefinitionDelete="sas/delete", SasDefinitionListDeleted="sas/read",
        SasDefinitionGetDeleted="sas/read", SasDefinitionRecover="sas/recover/action",
    ),
    **_actions(
        _KV,
        GetRandomBytes="rng/action",
        VaultBackup="backup/start/action", VaultPreBackup="backup/start/action",
        VaultBackupStatus="backup/status/action",
        VaultRestore="restore/start/action", VaultPreRestore="restore/start/action",
        VaultRestoreStatus="restore/status/action",
        ReplicationChanges="replication/read", ReplicationStatus="replication/read",
    ),
    **_actions(
        _AUTH,
        RoleAssignmentList="roleAssignments/read", RoleAssignmentGet="roleAssignments/read",
        RoleAssignmentCreate="roleAssignments/write",
        RoleAssignmentDelete="roleAssignments/delete",
        RoleDefinitionList="roleDefinitions/read", RoleDefinitionGet="roleDefinitions/read",
        RoleDefinitionSet="roleDefinitions/write", RoleDefinitionDelete="roleDefinitions/delete",
    ),
}  # fmt: skip

# The collections a scope may name, by the first segment of a route's path.
_SCOPE_OF_COLLECTION = {
    "secrets": "secrets", "deletedsecrets": "secrets",
    "keys": "keys", "deletedkeys": "keys",
    "certificates": "certificates", "deletedcertificates": "certificates",
    "storage": "storage", "deletedstorage": "storage",
}  # fmt: skip
_SCOPE_COLLECTIONS = frozenset(_SCOPE_OF_COLLECTION.values())
_OBJECT_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")


@dataclass(frozen=True, slots=True)
class Permission:
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RoleDefinition:
    name: str  # a GUID
    role_name: str
    description: str
    role_type: str  # "AKVBuiltInRole" or "CustomRole"
    permissions: tuple[Permission, ...]
    assignable_scopes: tuple[str, ...] = ("/",)

    @property
    def id(self) -> str:
        return ROLE_DEFINITION_PREFIX + self.name

    @property
    def built_in(self) -> bool:
        return self.role_type == BUILT_IN


@dataclass(frozen=True, slots=True)
class RoleAssignment:
    name: str  # a GUID
    scope: str  # normalised: "/", "/keys", "/keys/k1", ...
    role: str  # the role definition's name (GUID)
    principal_id: str

    @property
    def role_definition_id(self) -> str:
        return ROLE_DEFINITION_PREFIX + self.role


BUILT_IN, CUSTOM = "AKVBuiltInRole", "CustomRole"


def _role(name: str, role_name: str, description: str, data: Iterable[str] = (),
          actions: Iterable[str] = ()) -> RoleDefinition:  # fmt: skip
    return RoleDefinition(
        name, role_name, description, BUILT_IN,
        (Permission(actions=tuple(actions), data_actions=tuple(data)),),
    )  # fmt: skip


_ONLY_RBAC = (
    " Only works for key vaults that use the 'Azure role-based access control' permission model."
)
# Azure's built-in Key Vault roles, with their real ids and data actions (learn.microsoft.com,
# "Azure built-in roles for Security"). Their control-plane actions are Azure Resource
# Manager's; only the Microsoft.Authorization ones mean anything here.
BUILT_IN_ROLES: dict[str, RoleDefinition] = {
    r.name: r
    for r in (
        _role("00482a5a-887f-4fb3-b363-3b7fe8e74483", "Key Vault Administrator",
              "Perform all data plane operations on a key vault and all objects in it, "
              "including certificates, keys, and secrets. Cannot manage key vault resources "
              "or manage role assignments." + _ONLY_RBAC,
              [_KV + "*"], [_AUTH + "*/read"]),
        _role("21090545-7ca7-4776-b22c-e363652d74d2", "Key Vault Reader",
              "Read metadata of key vaults and its certificates, keys, and secrets. Cannot "
              "read sensitive values such as secret contents or key material." + _ONLY_RBAC,
              [_KV + "*/read", _KV + "secrets/readMetadata/action"], [_AUTH + "*/read"]),
        _role("b86a8fe4-44ce-4948-aee5-eccb2c155cd7", "Key Vault Secrets Officer",
              "Perform any action on the secrets of a key vault, except manage permissions."
              + _ONLY_RBAC, [_KV + "secrets/*"], [_AUTH + "*/read"]),
        _role("4633458b-17de-408a-b874-0445c86b69e6", "Key Vault Secrets User",
              "Read secret contents." + _ONLY_RBAC,
              [_KV + "secrets/getSecret/action", _KV + "secrets/readMetadata/action"]),
        _role("14b46e9e-c2b7-41b4-b07b-48a6ebf60603", "Key Vault Crypto Officer",
              "Perform any action on the keys of a key vault, except manage permissions."
              + _ONLY_RBAC, [_KV + "keys/*", _KV + "keyrotationpolicies/*"],
              [_AUTH + "*/read"]),
        _role("12338af0-0e69-4776-bea7-57ae8d297424", "Key Vault Crypto User",
              "Perform cryptographic operations using keys." + _ONLY_RBAC,
              [_KV + "keys/" + a for a in (
                  "read", "update/action", "backup/action", "encrypt/action", "decrypt/action",
                  "wrap/action", "unwrap/action", "sign/action", "verify/action")]),
        _role("e147488a-f6f5-4113-8e2d-b22465e65bf6", "Key Vault Crypto Service Encryption User",
              "Read metadata of keys and perform wrap/unwrap operations." + _ONLY_RBAC,
              [_KV + "keys/read", _KV + "keys/wrap/action", _KV + "keys/unwrap/action"]),
        _role("08bbd89e-9f13-488c-ac41-acfcb10c90ab", "Key Vault Crypto Service Release User",
              "Release keys." + _ONLY_RBAC, [_KV + "keys/release/action"]),
        _role("a4417e6f-fecd-4de8-b567-7b0420556985", "Key Vault Certificates Officer",
              "Perform any action on the certificates of a key vault, except managing "
              "permissions." + _ONLY_RBAC,
              [_KV + "certificatecas/*", _KV + "certificates/*",
               _KV + "certificatecontacts/write"], [_AUTH + "*/read"]),
        _role("db79e9a7-68ee-4b58-9aeb-b90e7c24fcba", "Key Vault Certificate User",
              "Read certificate contents. Includes secret and key portion." + _ONLY_RBAC,
              [_KV + "certificates/read", _KV + "secrets/getSecret/action",
               _KV + "secrets/readMetadata/action", _KV + "keys/read"]),
        _role("8b54135c-b56d-4d72-a534-26097cfdc8d8", "Key Vault Data Access Administrator",
              "Manage access to Azure Key Vault by adding or removing role assignments for "
              "the Key Vault Administrator, Key Vault Certificates Officer, Key Vault Crypto "
              "Officer, Key Vault Crypto Service Encryption User, Key Vault Crypto User, Key "
              "Vault Reader, Key Vault Secrets Officer, or Key Vault Secrets User roles.",
              (), [_AUTH + "roleAssignments/write", _AUTH + "roleAssignments/delete",
                   _AUTH + "*/read"]),
    )
}  # fmt: skip


DATA_ACCESS_ADMINISTRATOR = "8b54135c-b56d-4d72-a534-26097cfdc8d8"
# The roles Key Vault Data Access Administrator may assign: Azure attaches this condition to
# its assignments (the role's description lists them), so it cannot hand out custom roles,
# nor itself.
DELEGABLE_ROLES = frozenset(
    r.name
    for r in BUILT_IN_ROLES.values()
    if r.role_name in {
        "Key Vault Administrator", "Key Vault Certificates Officer", "Key Vault Crypto Officer",
        "Key Vault Crypto Service Encryption User", "Key Vault Crypto User", "Key Vault Reader",
        "Key Vault Secrets Officer", "Key Vault Secrets User",
    }
)  # fmt: skip

# -- scopes -----------------------------------------------------------------------------------


def normalise_scope(raw: str) -> str:
    """A scope as a client writes it (``/``, ``keys``, ``//keys/k1``, ``` ``: the whole vault)
    in the one form assignments are stored and compared in."""
    parts = [p for p in raw.split("/") if p]
    if not parts:
        return "/"
    collection = parts[0].lower()
    if collection in _SCOPE_COLLECTIONS and len(parts) <= 2:
        if len(parts) == 1:
            return f"/{collection}"
        if _OBJECT_NAME.match(parts[1]):
            return f"/{collection}/{parts[1].lower()}"
    raise BadParameter(
        f"The scope '{raw[:100]}' is not valid: use /, /keys, /keys/{{name}}, /secrets, "
        "/secrets/{name}, /certificates, /certificates/{name}, /storage or /storage/{name}.",
        code="BadParameter",
    )


def request_scope(route_path: str, args: tuple[str, ...]) -> str:
    """The scope a request acts at: the object its path names, else its collection, else the
    vault (``/rng``, whole-vault backup). Role management acts at the scope it names."""
    segments = route_path.split("/")
    first = segments[1].lower()
    if first == "providers":
        return normalise_scope(args[0])
    collection = _SCOPE_OF_COLLECTION.get(first)
    if collection is None:
        return "/"
    if len(segments) > 2 and segments[2].startswith("{") and args and args[0]:
        return f"/{collection}/{args[0].lower()}"
    return f"/{collection}"


def covers(assigned: str, requested: str) -> bool:
    """Whether an assignment at ``assigned`` reaches a request at ``requested``."""
    return assigned == "/" or requested == assigned or requested.startswith(assigned + "/")


_PATTERNS: dict[str, re.Pattern[str]] = {}


def matches(pattern: str, action: str) -> bool:
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        regex = ".*".join(re.escape(part) for part in pattern.split("*"))
        compiled = re.compile(regex, re.IGNORECASE)
        if len(_PATTERNS) < 10_000:
            _PATTERNS[pattern] = compiled
    return compiled.fullmatch(action) is not None


def permits(role: RoleDefinition, action: str) -> bool:
    control = action.startswith(_AUTH)
    for p in role.permissions:
        granted, excluded = (
            (p.actions, p.not_actions) if control else (p.data_actions, p.not_data_actions)
        )
        if any(matches(g, action) for g in granted) and not any(
            matches(x, action) for x in excluded
        ):
            return True
    return False


# -- storage ----------------------------------------------------------------------------------


def _enabled_key(vault_id: str) -> str:
    return f"vault/{vault_id}/rbac/enabled"


def replicated_rbac_key(vault_id: str) -> str:
    """Where a replica keeps its source's ``export_rbac`` (``services.replication``)."""
    return f"vault/{vault_id}/replica/rbac"


def assignments_prefix(vault_id: str) -> str:
    return f"vault/{vault_id}/rbac/assignments/"


def definitions_prefix(vault_id: str) -> str:
    return f"vault/{vault_id}/rbac/definitions/"


def assignment_to_json(a: RoleAssignment) -> str:
    return json.dumps(asdict(a))


def assignment_from_json(text: str) -> RoleAssignment:
    return RoleAssignment(**json.loads(text))


def definition_to_json(d: RoleDefinition) -> str:
    return json.dumps(asdict(d))


def definition_from_json(text: str) -> RoleDefinition:
    data = json.loads(text)
    data["permissions"] = tuple(
        Permission(**{k: tuple(v) for k, v in p.items()}) for p in data["permissions"]
    )
    data["assignable_scopes"] = tuple(data["assignable_scopes"])
    return RoleDefinition(**data)


def check_guid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadParameter(f"The {what} '{value[:60]}' is not valid: it must be a GUID.") from None


def role_name_of(definition_id: str) -> str:
    """The role definition's name (GUID) from any form a client sends: the full id
    (``Microsoft.KeyVault/providers/…/roleDefinitions/{guid}``, with or without a leading
    slash or the provider prefix) or the bare GUID."""
    return check_guid(definition_id.rstrip("/").rsplit("/", 1)[-1], "role definition id")


@dataclass(slots=True)
class _VaultRoles:
    enabled: bool
    by_principal: dict[str, list[RoleAssignment]] = field(default_factory=dict)
    custom: dict[str, RoleDefinition] = field(default_factory=dict)


class RbacService:
    CACHE_SECONDS = 2.0

    def __init__(self, inst: Installation):
        self._inst = inst
        self._cache: dict[str, tuple[float, _VaultRoles]] = {}

    # -- the permission model ---------------------------------------------------------------

    def enabled(self, vault: VaultRecord) -> bool:
        return self._roles(vault).enabled

    def set_enabled(self, vault: VaultRecord, enabled: bool) -> None:
        def write(tx: Tx) -> None:
            if enabled:
                tx.set_meta(_enabled_key(vault.id), "1")
            else:
                tx.delete_meta(_enabled_key(vault.id))
            note_settings(tx, vault)

        self._inst.store.transact(write).result()
        self._cache.pop(vault.id, None)

    def _roles(self, vault: VaultRecord) -> _VaultRoles:
        now = time.monotonic()
        hit = self._cache.get(vault.id)
        if hit is not None and hit[0] > now:
            return hit[1]
        reads = self._inst.store.reads
        roles = _VaultRoles(reads.get_meta(_enabled_key(vault.id)) is not None)
        assignments, custom = self._assignments(reads, vault), self._custom(reads, vault)
        if vault.replica_of is not None:  # the source's apply beside the replica's own
            source = json.loads(reads.get_meta(replicated_rbac_key(vault.id)) or "{}")
            roles.enabled = roles.enabled or bool(source.get("enabled"))
            custom += [definition_from_json(json.dumps(d)) for d in source.get("definitions", [])]
            assignments += [
                assignment_from_json(json.dumps(a)) for a in source.get("assignments", [])
            ]
        if roles.enabled:
            for a in assignments:
                roles.by_principal.setdefault(a.principal_id.lower(), []).append(a)
            roles.custom = {d.name: d for d in custom}
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[vault.id] = (now + self.CACHE_SECONDS, roles)
        return roles

    def forget(self) -> None:
        self._cache.clear()

    # -- enforcement ------------------------------------------------------------------------

    def authorize(self, vault: VaultRecord, client_id: str, operation: str, scope: str) -> str:
        """The name of an assignment that allows ``operation`` at ``scope``; ``Forbidden``
        (ForbiddenByRbac) when none does."""
        action = ACTIONS[operation]
        roles = self._roles(vault)
        for a in roles.by_principal.get(client_id.lower(), ()):
            if not covers(a.scope, scope):
                continue
            role = BUILT_IN_ROLES.get(a.role) or roles.custom.get(a.role)
            if role is not None and permits(role, action):
                return a.name
        raise denied(vault.name, client_id, action, scope)

    def check_delegation(
        self, vault: VaultRecord, client_id: str, scope: str, role_definition_id: str
    ) -> None:
        """Under RBAC, whether the caller (already allowed to write assignments at ``scope``)
        may assign this role: through Key Vault Data Access Administrator only the roles of
        ``DELEGABLE_ROLES``, as Azure's condition on that role says."""
        role = role_name_of(role_definition_id)
        roles = self._roles(vault)
        action = ACTIONS["RoleAssignmentCreate"]
        for a in roles.by_principal.get(client_id.lower(), ()):
            held = BUILT_IN_ROLES.get(a.role) or roles.custom.get(a.role)
            if held is None or not covers(a.scope, scope) or not permits(held, action):
                continue
            if a.role != DATA_ACCESS_ADMINISTRATOR or role in DELEGABLE_ROLES:
                return
        raise Forbidden(
            f"The role assignment of '{role}' is not allowed: Key Vault Data Access "
            "Administrator may assign only Key Vault Administrator, Certificates Officer, "
            "Crypto Officer, Crypto Service Encryption User, Crypto User, Reader, Secrets "
            "Officer and Secrets User.",
            inner="ForbiddenByRbac",
        )

    def allows(self, vault: VaultRecord, client_id: str, operation: str, scope: str) -> bool:
        try:
            self.authorize(vault, client_id, operation, scope)
        except Forbidden:
            return False
        return True

    def may_use(self, vault: VaultRecord, client_id: str) -> bool:
        """Whether the principal holds any role in the vault (the console lists it)."""
        return bool(self._roles(vault).by_principal.get(client_id.lower()))

    # -- assignments ------------------------------------------------------------------------

    @staticmethod
    def _assignments(reads: Reads, vault: VaultRecord) -> list[RoleAssignment]:
        rows = reads.list_meta(assignments_prefix(vault.id))
        return [assignment_from_json(value) for _, value in rows]

    @staticmethod
    def _custom(reads: Reads, vault: VaultRecord) -> list[RoleDefinition]:
        rows = reads.list_meta(definitions_prefix(vault.id))
        return [definition_from_json(value) for _, value in rows]

    def list_assignments(
        self, vault: VaultRecord, scope: str, *, at_scope: bool = False,
        principal_id: str | None = None,
    ) -> list[RoleAssignment]:  # fmt: skip
        """Assignments at ``scope``, above it, and (unless ``at_scope``) below it."""
        found = []
        for a in self._assignments(self._inst.store.reads, vault):
            if principal_id is not None and a.principal_id.lower() != principal_id.lower():
                continue
            if covers(a.scope, scope) or (not at_scope and covers(scope, a.scope)):
                found.append(a)
        return sorted(found, key=lambda a: (a.scope, a.name))

    def get_assignment(self, vault: VaultRecord, scope: str, name: str) -> RoleAssignment:
        text = self._inst.store.reads.get_meta(assignments_prefix(vault.id) + name.lower())
        found = assignment_from_json(text) if text else None
        if found is None or found.scope != scope:
            raise assignment_not_found(name)
        return found

    def create_assignment(
        self, vault: VaultRecord, scope: str, name: str, role_definition_id: str,
        principal_id: str,
    ) -> RoleAssignment:  # fmt: skip
        name = check_guid(name, "role assignment name")
        role = role_name_of(role_definition_id)
        if not principal_id or len(principal_id) > 128:
            raise BadParameter("'principalId' must be 1-128 characters.")
        assignment = RoleAssignment(name, scope, role, principal_id)

        def write(tx: Tx) -> RoleAssignment:
            if (
                role not in BUILT_IN_ROLES
                and tx.get_meta(definitions_prefix(vault.id) + role) is None
            ):
                raise BadParameter(
                    f"The role definition '{role}' does not exist in vault '{vault.name}'. "
                    "List them with: az keyvault role definition list --id <vault URL>",
                    code="RoleDefinitionDoesNotExist",
                )
            existing = [
                assignment_from_json(v) for _, v in tx.list_meta(assignments_prefix(vault.id))
            ]
            for other in existing:
                if other.name == name:
                    raise Conflict(
                        f"A role assignment named '{name}' already exists.",
                        code="RoleAssignmentExists",
                    )
                if (other.scope, other.role, other.principal_id.lower()) == (
                    scope,
                    role,
                    principal_id.lower(),
                ):
                    raise Conflict(
                        f"The role assignment already exists (as '{other.name}'): principal "
                        f"'{principal_id}' already holds role '{role}' at scope '{scope}'.",
                        code="RoleAssignmentExists",
                    )
            if len(existing) >= MAX_ASSIGNMENTS:
                raise BadParameter(
                    f"Vault '{vault.name}' has {MAX_ASSIGNMENTS} role assignments, the most it "
                    "may have; delete some first.",
                    code="RoleAssignmentLimitExceeded",
                )
            tx.set_meta(assignments_prefix(vault.id) + name, assignment_to_json(assignment))
            note_settings(tx, vault)
            return assignment

        created = self._inst.store.transact(write).result()
        self._cache.pop(vault.id, None)
        return created

    def delete_assignment(self, vault: VaultRecord, scope: str, name: str) -> RoleAssignment:
        key = assignments_prefix(vault.id) + name.lower()

        def write(tx: Tx) -> RoleAssignment:
            text = tx.get_meta(key)
            found = assignment_from_json(text) if text else None
            if found is None or found.scope != scope:
                raise assignment_not_found(name)
            tx.delete_meta(key)
            note_settings(tx, vault)
            return found

        deleted = self._inst.store.transact(write).result()
        self._cache.pop(vault.id, None)
        return deleted

    # -- definitions ------------------------------------------------------------------------

    def list_definitions(self, vault: VaultRecord) -> list[RoleDefinition]:
        custom = sorted(self._custom(self._inst.store.reads, vault), key=lambda d: d.role_name)
        return list(BUILT_IN_ROLES.values()) + custom

    def get_definition(self, vault: VaultRecord, name: str) -> RoleDefinition:
        key = name.lower()
        built_in = BUILT_IN_ROLES.get(key)
        if built_in is not None:
            return built_in
        text = self._inst.store.reads.get_meta(definitions_prefix(vault.id) + key)
        if text is None:
            raise definition_not_found(name)
        return definition_from_json(text)

    def set_definition(self, vault: VaultRecord, definition: RoleDefinition) -> RoleDefinition:
        name = check_guid(definition.name, "role definition name")
        if name in BUILT_IN_ROLES:
            raise built_in_read_only(name)
        _check_definition(definition)
        stored = RoleDefinition(
            name, definition.role_name, definition.description, CUSTOM,
            definition.permissions, definition.assignable_scopes or ("/",),
        )  # fmt: skip

        def write(tx: Tx) -> RoleDefinition:
            key = definitions_prefix(vault.id) + name
            others = [definition_from_json(v) for k, v in tx.list_meta(definitions_prefix(vault.id))
                      if k != key]  # fmt: skip
            if tx.get_meta(key) is None and len(others) >= MAX_CUSTOM_ROLES:
                raise BadParameter(
                    f"Vault '{vault.name}' has {MAX_CUSTOM_ROLES} custom roles, the most it may "
                    "have.",
                    code="RoleDefinitionLimitExceeded",
                )
            taken = {d.role_name.lower() for d in others} | {
                r.role_name.lower() for r in BUILT_IN_ROLES.values()
            }
            if stored.role_name and stored.role_name.lower() in taken:
                raise Conflict(
                    f"A role named '{stored.role_name}' already exists.",
                    code="RoleDefinitionWithSameNameExists",
                )
            tx.set_meta(key, definition_to_json(stored))
            note_settings(tx, vault)
            return stored

        result = self._inst.store.transact(write).result()
        self._cache.pop(vault.id, None)
        return result

    def delete_definition(self, vault: VaultRecord, name: str) -> RoleDefinition:
        key_name = name.lower()
        if key_name in BUILT_IN_ROLES:
            raise built_in_read_only(key_name)
        key = definitions_prefix(vault.id) + key_name

        def write(tx: Tx) -> RoleDefinition:
            text = tx.get_meta(key)
            if text is None:
                raise definition_not_found(name)
            for _, value in tx.list_meta(assignments_prefix(vault.id)):
                if assignment_from_json(value).role == key_name:
                    raise Conflict(
                        f"Role definition '{name}' is used by role assignment "
                        f"'{assignment_from_json(value).name}'; delete its assignments first.",
                        code="RoleDefinitionHasAssignments",
                    )
            tx.delete_meta(key)
            note_settings(tx, vault)
            return definition_from_json(text)

        deleted = self._inst.store.transact(write).result()
        self._cache.pop(vault.id, None)
        return deleted


def export_rbac(reads: Reads, vault: VaultRecord) -> dict[str, Any]:
    """The vault's permission model, role assignments and custom roles, as a whole-vault
    backup's manifest and replication carry them."""
    return {
        "enabled": reads.get_meta(_enabled_key(vault.id)) is not None,
        "assignments": [json.loads(v) for _, v in reads.list_meta(assignments_prefix(vault.id))],
        "definitions": [json.loads(v) for _, v in reads.list_meta(definitions_prefix(vault.id))],
    }


def import_rbac(tx: Tx, vault: VaultRecord, exported: dict[str, Any]) -> list[str]:
    """Writes what ``export_rbac`` gave that the vault lacks (an assignment or custom role
    already there by name is kept), and the permission model; what it wrote, for reports."""
    written: list[str] = []
    try:
        definitions = [definition_from_json(json.dumps(d)) for d in exported.get("definitions", [])]
        assignments = [assignment_from_json(json.dumps(a)) for a in exported.get("assignments", [])]
    except (TypeError, ValueError) as exc:
        raise BadParameter("The backup's role assignments or definitions are malformed.") from exc
    for d in definitions:
        key = definitions_prefix(vault.id) + d.name
        if tx.get_meta(key) is None:
            tx.set_meta(key, definition_to_json(d))
            written.append(f"role definition {d.name}")
    for a in assignments:
        key = assignments_prefix(vault.id) + a.name
        if tx.get_meta(key) is None:
            tx.set_meta(key, assignment_to_json(a))
            written.append(f"role assignment {a.name}")
    if "enabled" in exported:
        enabled = bool(exported["enabled"])
        if enabled != (tx.get_meta(_enabled_key(vault.id)) is not None):
            if enabled:
                tx.set_meta(_enabled_key(vault.id), "1")
            else:
                tx.delete_meta(_enabled_key(vault.id))
            written.append("RBAC authorization" if enabled else "access-policy authorization")
    return written


def delete_principal_assignments(tx: Tx, vault_id: str, principal_id: str) -> None:
    """In the transaction that deletes a principal: its role assignments go with it."""
    for key, value in tx.list_meta(assignments_prefix(vault_id)):
        if assignment_from_json(value).principal_id.lower() == principal_id.lower():
            tx.delete_meta(key)


def _check_definition(d: RoleDefinition) -> None:
    if len(d.role_name) > MAX_TEXT or len(d.description) > MAX_TEXT:
        raise BadParameter(f"'roleName' and 'description' may have at most {MAX_TEXT} characters.")
    if len(d.permissions) > 10:
        raise BadParameter("A role definition may have at most 10 permissions.")
    for p in d.permissions:
        for actions in (p.actions, p.not_actions, p.data_actions, p.not_data_actions):
            if len(actions) > MAX_ACTIONS:
                raise BadParameter(f"A permission may list at most {MAX_ACTIONS} actions.")
            for action in actions:
                if not action or len(action) > MAX_ACTION_LENGTH:
                    raise BadParameter(
                        f"An action must be 1-{MAX_ACTION_LENGTH} characters; got '{action[:40]}'."
                    )
    for scope in d.assignable_scopes:
        if normalise_scope(scope) != "/":
            raise BadParameter("Custom roles are assignable at scope '/' only.")


def denied(vault_name: str, client_id: str, action: str, scope: str) -> Forbidden:
    """Azure's answer under RBAC when no assignment grants the action."""
    return Forbidden(
        "Caller is not authorized to perform action on resource.\n"
        "If role assignments, deny assignments or role definitions were changed recently, "
        "please observe propagation time.\n"
        f"Caller: appid={client_id};oid={client_id}\n"
        f"Action: '{action}'\n"
        f"Resource: '{vault_name}{'' if scope == '/' else scope}'\n"
        f"Assignment: (not found): no role assignment at scope '{scope}' or above grants it\n"
        "DecisionReason: 'DeniedWithNoValidRBAC'\n"
        f"Vault: {vault_name};location=strongroom\n",
        inner="ForbiddenByRbac",
    )


def assignment_not_found(name: str) -> NotFound:
    return NotFound(
        f"The role assignment '{name[:60]}' was not found at this scope.",
        code="RoleAssignmentNotFound",
    )


def definition_not_found(name: str) -> NotFound:
    return NotFound(
        f"The role definition '{name[:60]}' was not found.", code="RoleDefinitionNotFound"
    )


def built_in_read_only(name: str) -> Forbidden:
    return Forbidden(
        f"Role definition '{name}' is built in and cannot be changed or deleted.",
        inner="BuiltInRoleDefinitionReadOnly",
    )
