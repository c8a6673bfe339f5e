"""Which access-policy permission each data-plane handler needs, and its audit operation name.

Key Vault's permission names per kind (keys: get, list, update, create, import, delete,
recover, backup, restore, purge, decrypt, encrypt, unwrapKey, wrapKey, verify, sign, rotate,
getrotationpolicy, setrotationpolicy; secrets: get, list, set, delete, recover, backup,
restore, purge; certificates: get, list, update, create, import, delete, recover, backup,
restore, purge, managecontacts, getissuers, listissuers, setissuers, deleteissuers; storage:
get, list, set, update, delete, regeneratekey, backup, restore, recover, purge, getsas, listsas,
setsas, deletesas) and its
audit operation names (``SecretGet``, ``KeySign``, ...).
"""

from __future__ import annotations

from typing import NamedTuple


class Need(NamedTuple):
    kind: str  # "secrets", "keys", "certificates", "storage"
    permission: str
    operation: str
    status: int = 200  # the status of success (contract notes 1.5)


# Operations whose success is not 200: every purge is 204, a certificate create 202 and a
# merge 201.
_SUCCESS = {"CertificateCreate": 202, "CertificateMerge": 201}


def _table() -> dict[str, Need]:
    rows: dict[str, Need] = {}

    def add(cls: str, kind: str, entries: dict[str, tuple[str, str]]) -> None:
        for handler, (permission, operation) in entries.items():
            status = 204 if operation.endswith("Purge") else _SUCCESS.get(operation, 200)
            rows[f"{cls}.{handler}"] = Need(kind, permission, operation, status)

    add("SecretRoutes", "secrets", {
        "set_secret": ("set", "SecretSet"),
        "get_secret": ("get", "SecretGet"),
        "update_secret": ("set", "SecretUpdate"),
        "delete_secret": ("delete", "SecretDelete"),
        "get_secrets": ("list", "SecretList"),
        "get_secret_versions": ("list", "SecretListVersions"),
        "get_deleted_secrets": ("list", "SecretListDeleted"),
        "get_deleted_secret": ("list", "SecretGetDeleted"),
        "recover_deleted_secret": ("recover", "SecretRecover"),
        "purge_deleted_secret": ("purge", "SecretPurge"),
        "backup_secret": ("backup", "SecretBackup"),
        "restore_secret": ("restore", "SecretRestore"),
    })  # fmt: skip
    add("KeyRoutes", "keys", {
        "create_key": ("create", "KeyCreate"),
        "import_key": ("import", "KeyImport"),
        "get_key": ("get", "KeyGet"),
        "update_key": ("update", "KeyUpdate"),
        "rotate_key": ("rotate", "KeyRotate"),
        "delete_key": ("delete", "KeyDelete"),
        "get_keys": ("list", "KeyList"),
        "get_key_versions": ("list", "KeyListVersions"),
        "get_deleted_keys": ("list", "KeyListDeleted"),
        "get_deleted_key": ("list", "KeyGetDeleted"),
        "recover_deleted_key": ("recover", "KeyRecover"),
        "purge_deleted_key": ("purge", "KeyPurge"),
        "backup_key": ("backup", "KeyBackup"),
        "restore_key": ("restore", "KeyRestore"),
        "get_rotation_policy": ("getrotationpolicy", "KeyGetRotationPolicy"),
        "update_rotation_policy": ("setrotationpolicy", "KeySetRotationPolicy"),
        # Managed HSM's data action Microsoft.KeyVault/managedHsm/rng/action; a key permission
        # of Strongroom's own, since Key Vault's access policies have no such operation.
        "get_random_bytes": ("rng", "GetRandomBytes"),
    })  # fmt: skip
    add("CertificateRoutes", "certificates", {
        "create_certificate": ("create", "CertificateCreate"),
        "import_certificate": ("import", "CertificateImport"),
        "merge_certificate": ("create", "CertificateMerge"),
        "get_certificate": ("get", "CertificateGet"),
        "update_certificate": ("update", "CertificateUpdate"),
        "delete_certificate": ("delete", "CertificateDelete"),
        "get_certificates": ("list", "CertificateList"),
        "get_certificate_versions": ("list", "CertificateListVersions"),
        "get_policy": ("get", "CertificatePolicyGet"),
        "update_policy": ("update", "CertificatePolicyUpdate"),
        "get_operation": ("get", "CertificatePendingGet"),
        "update_operation": ("update", "CertificatePendingUpdate"),
        "delete_operation": ("delete", "CertificatePendingDelete"),
        "get_issuers": ("listissuers", "CertificateIssuerList"),
        "get_issuer": ("getissuers", "CertificateIssuerGet"),
        "set_issuer": ("setissuers", "CertificateIssuerSet"),
        "update_issuer": ("setissuers", "CertificateIssuerUpdate"),
        "delete_issuer": ("deleteissuers", "CertificateIssuerDelete"),
        "get_contacts": ("managecontacts", "CertificateContactsGet"),
        "set_contacts": ("managecontacts", "CertificateContactsSet"),
        "delete_contacts": ("managecontacts", "CertificateContactsDelete"),
        "get_deleted_certificates": ("list", "CertificateListDeleted"),
        "get_deleted_certificate": ("list", "CertificateGetDeleted"),
        "recover_deleted_certificate": ("recover", "CertificateRecover"),
        "purge_deleted_certificate": ("purge", "CertificatePurge"),
        "backup_certificate": ("backup", "CertificateBackup"),
        "restore_certificate": ("restore", "CertificateRestore"),
    })  # fmt: skip
    add("StorageRoutes", "storage", {
        "set_storage_account": ("set", "StorageAccountSet"),
        "get_storage_account": ("get", "StorageAccountGet"),
        "update_storage_account": ("update", "StorageAccountUpdate"),
        "delete_storage_account": ("delete", "StorageAccountDelete"),
        "get_storage_accounts": ("list", "StorageAccountList"),
        "regenerate_key": ("regeneratekey", "StorageAccountRegenerateKey"),
        "backup_storage_account": ("backup", "StorageAccountBackup"),
        "restore_storage_account": ("restore", "StorageAccountRestore"),
        "get_deleted_accounts": ("list", "StorageAccountListDeleted"),
        "get_deleted_account": ("list", "StorageAccountGetDeleted"),
        "recover_deleted_account": ("recover", "StorageAccountRecover"),
        "purge_deleted_account": ("purge", "StorageAccountPurge"),
        "set_sas_definition": ("setsas", "SasDefinitionSet"),
        "get_sas_definition": ("getsas", "SasDefinitionGet"),
        "update_sas_definition": ("setsas", "SasDefinitionUpdate"),
        "delete_sas_definition": ("deletesas", "SasDefinitionDelete"),
        "get_sas_definitions": ("listsas", "SasDefinitionList"),
        "get_deleted_sas_list": ("listsas", "SasDefinitionListDeleted"),
        "get_deleted_sas": ("getsas", "SasDefinitionGetDeleted"),
        "recover_deleted_sas": ("recover", "SasDefinitionRecover"),
    })  # fmt: skip
    return rows


NEEDS = _table()

# POST /keys/{name}/{version}/{op}: the permission is the operation's own name.
KEY_OPERATIONS = {
    "encrypt": Need("keys", "encrypt", "KeyEncrypt"),
    "decrypt": Need("keys", "decrypt", "KeyDecrypt"),
    "sign": Need("keys", "sign", "KeySign"),
    "verify": Need("keys", "verify", "KeyVerify"),
    "wrapkey": Need("keys", "wrapKey", "KeyWrap"),
    "unwrapkey": Need("keys", "unwrapKey", "KeyUnwrap"),
}


def need_of(qualname: str, args: tuple[str, ...]) -> Need:
    if qualname == "KeyRoutes.operation":
        return KEY_OPERATIONS[args[2]]
    return NEEDS[qualname]
