"""Secrets: Key Vault's secret operations, named after the REST API."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from strongroom.crypto import x509 as cx
from strongroom.errors import BadParameter, Forbidden
from strongroom.identifiers import check_object_name, new_version
from strongroom.models import Deletion, Kind, Page, SecretVersion
from strongroom.services.installation import Installation
from strongroom.services.objects import (
    AttributeInput,
    ObjectService,
    ReadCache,
    attributes_of,
    check_content_type,
    check_tags,
    check_window,
    tags_of,
)
from strongroom.store.base import ObjectRecord, VaultRecord, VersionRecord

MAX_VALUE_BYTES = 25 * 1024

__all__ = ["AttributeInput", "SecretService"]


class SecretService(ObjectService[SecretVersion]):
    KIND = Kind.SECRET
    NOUN = "secret"
    TITLE = "Secret"
    NOT_FOUND = "SecretNotFound"

    def __init__(self, inst: Installation):
        super().__init__(inst)
        self._cache: ReadCache[SecretVersion] = ReadCache(inst.store)

    def forget_reads(self, vault_id: str, lname: str) -> None:
        self._cache.forget(vault_id, lname)

    def forget_all_reads(self) -> None:
        self._cache.clear()

    def _model(self, obj: ObjectRecord, v: VersionRecord) -> SecretVersion:
        return SecretVersion(
            name=obj.name,
            version=v.version,
            attributes=attributes_of(v),
            content_type=v.content_type,
            tags=tags_of(v),
            managed=v.managed,
        )

    # -- reads ------------------------------------------------------------------------------

    def get_secret(self, vault: VaultRecord, name: str, version: str = "") -> SecretVersion:
        lname = name.lower()
        hit = self._cache.get(vault.id, lname, version)
        if hit is not None:
            return hit
        obj, record = self.current(vault, name, version)
        if not record.enabled:
            raise Forbidden(
                "Operation get is not allowed on a disabled secret.", inner="SecretDisabled"
            )
        # Not dataclasses.replace: a read that misses the cache (any vault larger than it)
        # builds one per request, and replace costs 3x a constructor.
        secret = SecretVersion(
            obj.name, record.version, attributes_of(record), record.content_type,
            tags_of(record), self.unseal(vault, record).decode(), record.managed,
        )  # fmt: skip
        self._cache.put(vault.id, lname, version, secret)
        return secret

    def get_secret_as(
        self, vault: VaultRecord, name: str, version: str, out_content_type: str
    ) -> SecretVersion:
        """A certificate-backed secret converted between PFX and PEM (2025-07-01)."""
        secret = self.get_secret(vault, name, version)
        if not secret.managed or secret.value is None or secret.content_type is None:
            raise BadParameter("outContentType applies only to certificate-backed secrets.")
        value = cx.convert_secret(secret.value, secret.content_type, out_content_type)
        return replace(secret, value=value, content_type=out_content_type)

    def get_secrets(
        self, vault: VaultRecord, maxresults: int | None, skiptoken: str | None
    ) -> Page[SecretVersion]:
        return self.list_page(vault, maxresults, skiptoken)

    def get_secret_versions(
        self, vault: VaultRecord, name: str, maxresults: int | None, skiptoken: str | None
    ) -> Page[SecretVersion]:
        return self.versions_page(vault, name, maxresults, skiptoken)

    async def set_secret(
        self,
        vault: VaultRecord,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        attributes: AttributeInput | None = None,
        tags: dict[str, str] | None = None,
    ) -> SecretVersion:
        check_object_name(name, self.NOUN)
        raw = value.encode()
        if len(raw) > MAX_VALUE_BYTES:
            raise BadParameter(
                f"The secret value is {len(raw)} bytes; the limit is {MAX_VALUE_BYTES} bytes "
                "(25 KiB)."
            )
        attrs = attributes or AttributeInput()
        check_window(attrs.nbf, attrs.exp)
        check_content_type(content_type)
        lname, version, now = name.lower(), new_version(), self._inst.clock.now()
        record = VersionRecord(
            vault_id=vault.id, kind=self._kind, lname=lname, version=version, created=now,
            updated=now, enabled=True if attrs.enabled is None else attrs.enabled,
            nbf=attrs.nbf, exp=attrs.exp, content_type=content_type, tags=check_tags(tags),
            sealed=self.seal(vault, lname, version, raw),
        )  # fmt: skip
        made = await self.add_version(vault, name, record)
        # Not dataclasses.replace: this runs on every write, and replace costs 3x a constructor.
        return SecretVersion(
            made.name, made.version, made.attributes, made.content_type, made.tags, value,
            made.managed,
        )  # fmt: skip

    async def update_secret(
        self,
        vault: VaultRecord,
        name: str,
        version: str = "",
        *,
        content_type: str | None = None,
        attributes: AttributeInput | None = None,
        tags: dict[str, str] | None = None,
    ) -> SecretVersion:
        attrs = attributes or AttributeInput()
        tags_text = check_tags(tags)
        check_content_type(content_type)

        def change(current: VersionRecord) -> VersionRecord:
            return replace(
                current,
                enabled=current.enabled if attrs.enabled is None else attrs.enabled,
                nbf=current.nbf if attrs.nbf is None else attrs.nbf,
                exp=current.exp if attrs.exp is None else attrs.exp,
                content_type=current.content_type if content_type is None else content_type,
                tags=current.tags if tags is None else tags_text,
                updated=self._inst.clock.now(),
            )

        return await self.change_version(vault, name, version, change)

    async def delete_secret(self, vault: VaultRecord, name: str) -> tuple[SecretVersion, Deletion]:
        return await self.delete(vault, name)

    # -- backup and restore -----------------------------------------------------------------

    def _backup_material(self, vault: VaultRecord, v: VersionRecord) -> dict[str, Any]:
        return {"value": self.unseal(vault, v).decode()}

    def _restored_material(self, item: dict[str, Any]) -> bytes:
        if not isinstance(item["value"], str):
            raise TypeError("a secret's value is text")
        return str(item["value"]).encode()
