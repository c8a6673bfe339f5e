"""Certificate issuers and contacts: per-vault settings (certificates.json).

Issuers are stored for clients that manage them; this server itself issues only ``Self``
certificates and CSRs for ``Unknown`` (or any other) issuer. An issuer's password is sealed
under the vault's key like any secret and never returned.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from strongroom.crypto.envelope import aad
from strongroom.errors import BadParameter, NotFound
from strongroom.services.access import note_settings
from strongroom.services.certificate_policy import check_contact, check_issuer
from strongroom.services.installation import Installation
from strongroom.store.base import Reads, Tx, VaultRecord


def _issuer_key(vault: VaultRecord, name: str) -> str:
    return f"vault/{vault.id}/issuer/{name.lower()}"


def _contacts_key(vault: VaultRecord) -> str:
    return f"vault/{vault.id}/contacts"


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def _issuer_not_found() -> NotFound:
    return NotFound("Issuer not found", code="CertificateIssuerNotFound")


class IssuerService:
    def __init__(self, inst: Installation):
        self._inst = inst
        self._store = inst.store

    def _seal_password(self, vault: VaultRecord, name: str, pwd: str) -> str:
        sealer = self._inst.keyring.vault_sealer(vault)
        return sealer.seal(pwd.encode(), aad(vault.id, "issuer", name.lower())).hex()

    def _public(self, stored: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(stored)
        credentials = out.get("credentials")
        if isinstance(credentials, dict):
            credentials.pop("sealed_pwd", None)
        return out

    async def set_certificate_issuer(
        self, vault: VaultRecord, name: str, body: dict[str, Any], *, update: bool
    ) -> dict[str, Any]:
        if not name or len(name) > 127:
            raise BadParameter("An issuer name must be 1-127 characters.")
        check_issuer(body)
        body = _without_nulls(body)  # a null is "not given": never stored, never echoed
        now = self._inst.clock.now()
        key = _issuer_key(vault, name)

        def write(tx: Tx) -> dict[str, Any]:
            old_text = tx.get_meta(key)
            if update and old_text is None:
                raise _issuer_not_found()
            stored: dict[str, Any] = json.loads(old_text) if (update and old_text) else {}
            if not update and not isinstance(body.get("provider"), str):
                raise BadParameter("'provider' is required: the issuer's provider name.")
            for field in ("provider", "org_details"):
                if body.get(field) is not None:
                    stored[field] = body[field]
            credentials = body.get("credentials")
            if isinstance(credentials, dict):
                kept = {k: v for k, v in credentials.items() if k != "pwd"}
                if credentials.get("pwd") is not None:
                    kept["sealed_pwd"] = self._seal_password(vault, name, str(credentials["pwd"]))
                elif isinstance(stored.get("credentials"), dict):
                    kept.setdefault("sealed_pwd", stored["credentials"].get("sealed_pwd"))
                stored["credentials"] = kept
            attributes = dict(stored.get("attributes") or {})
            enabled = (body.get("attributes") or {}).get("enabled")
            attributes["enabled"] = attributes.get("enabled", True) if enabled is None else enabled
            attributes.setdefault("created", now)
            attributes["updated"] = now
            stored.update(name=name, attributes=attributes)
            tx.set_meta(key, json.dumps(stored))
            note_settings(tx, vault)
            return stored

        stored = await self._inst.store.transact_async(write)
        return self._public(stored)

    def get_certificate_issuer(self, vault: VaultRecord, name: str) -> dict[str, Any]:
        text = self._store.reads.get_meta(_issuer_key(vault, name))
        if text is None:
            raise _issuer_not_found()
        return self._public(json.loads(text))

    def get_certificate_issuers(self, vault: VaultRecord) -> list[dict[str, Any]]:
        rows = self._store.reads.list_meta(f"vault/{vault.id}/issuer/")
        return [self._public(json.loads(value)) for _, value in rows]

    async def delete_certificate_issuer(self, vault: VaultRecord, name: str) -> dict[str, Any]:
        key = _issuer_key(vault, name)

        def write(tx: Tx) -> dict[str, Any]:
            text = tx.get_meta(key)
            if text is None:
                raise _issuer_not_found()
            tx.delete_meta(key)
            note_settings(tx, vault)
            return dict(json.loads(text))

        return self._public(await self._inst.store.transact_async(write))

    # -- contacts ---------------------------------------------------------------------------

    async def set_certificate_contacts(
        self, vault: VaultRecord, contacts: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        cleaned = []
        for i, contact in enumerate(contacts):
            given = check_contact(contact, f"contacts[{i}]")
            entry = {k: given[k] for k in ("email", "name", "phone") if given.get(k)}
            if "email" not in entry:
                raise BadParameter(f"'contacts[{i}].email' is required.")
            cleaned.append(entry)
        key = _contacts_key(vault)

        def write(tx: Tx) -> None:
            tx.set_meta(key, json.dumps(cleaned))
            note_settings(tx, vault)

        await self._inst.store.transact_async(write)
        return cleaned

    def get_certificate_contacts(self, vault: VaultRecord) -> list[dict[str, Any]]:
        text = self._store.reads.get_meta(_contacts_key(vault))
        if text is None:
            raise NotFound("Contacts not found", code="ContactsNotFound")
        return list(json.loads(text))

    async def delete_certificate_contacts(self, vault: VaultRecord) -> list[dict[str, Any]]:
        key = _contacts_key(vault)

        def write(tx: Tx) -> list[dict[str, Any]]:
            text = tx.get_meta(key)
            if text is None:
                raise NotFound("Contacts not found", code="ContactsNotFound")
            tx.delete_meta(key)
            note_settings(tx, vault)
            return list(json.loads(text))

        return await self._inst.store.transact_async(write)

    # -- whole-vault backup -----------------------------------------------------------------

    def export_settings(self, reads: Reads, vault: VaultRecord) -> dict[str, Any]:
        """The vault's issuers (passwords in clear, for the sealed manifest to carry) and
        contacts, as ``restore_settings`` takes them back."""
        issuers = []
        for _, text in reads.list_meta(f"vault/{vault.id}/issuer/"):
            stored = json.loads(text)
            credentials = stored.get("credentials")
            if isinstance(credentials, dict) and credentials.get("sealed_pwd"):
                sealed = bytes.fromhex(credentials.pop("sealed_pwd"))
                sealer = self._inst.keyring.vault_sealer(vault)
                pwd = sealer.open(sealed, aad(vault.id, "issuer", str(stored["name"]).lower()))
                credentials["pwd"] = pwd.decode()
            issuers.append(stored)
        contacts = reads.get_meta(_contacts_key(vault))
        return {"issuers": issuers, "contacts": None if contacts is None else json.loads(contacts)}

    def restore_settings(self, tx: Tx, vault: VaultRecord, settings: dict[str, Any]) -> list[str]:
        """Writes back the issuers and contacts ``vault`` lacks (those it has are kept);
        returns what was written, e.g. ``["issuer DigiCert", "contacts"]``."""
        written = []
        for item in settings.get("issuers") or []:
            stored = copy.deepcopy(item)
            name = str(stored["name"])
            if tx.get_meta(_issuer_key(vault, name)) is not None:
                continue
            credentials = stored.get("credentials")
            if isinstance(credentials, dict) and credentials.get("pwd") is not None:
                credentials["sealed_pwd"] = self._seal_password(
                    vault, name, str(credentials.pop("pwd"))
                )
            tx.set_meta(_issuer_key(vault, name), json.dumps(stored))
            note_settings(tx, vault)
            written.append(f"issuer {name}")
        contacts = settings.get("contacts")
        if contacts is not None and tx.get_meta(_contacts_key(vault)) is None:
            tx.set_meta(_contacts_key(vault), json.dumps(contacts))
            note_settings(tx, vault)
            written.append("contacts")
        return written

    def replace_settings(self, tx: Tx, vault: VaultRecord, settings: dict[str, Any]) -> None:
        """Makes the vault's issuers and contacts exactly ``settings``'s (a replica)."""
        for key, _ in tx.list_meta(f"vault/{vault.id}/issuer/"):
            tx.delete_meta(key)
        tx.delete_meta(_contacts_key(vault))
        self.restore_settings(tx, vault, settings)
