"""Managed storage accounts and their SAS definitions (storage.json).

A storage account is one object of kind ``storage`` with a single version, updated in place:
its settings (``resourceId``, ``activeKeyName``, ``autoRegenerateKey``, ``regenerationPeriod``)
are public metadata; its two keys are sealed. A SAS definition is an object of kind ``sas``
named ``{account}/{definition}``, its template sealed (a template may carry a real signature).

Deleting an account soft-deletes its definitions with it, at the same dates; recovering the
account recovers those; purging it purges every definition. A definition alone is soft-deleted
and recovered, never purged by request (the scheduler purges it at its date).

The token of a definition is read as the secret ``{account}-{definition}``: minted on each read
with the account's active key (``crypto.sas``), valid for the definition's validity period.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import replace
from typing import Any

from strongroom.crypto import sas as sasfmt
from strongroom.errors import BadParameter, Conflict, Forbidden, NotFound
from strongroom.identifiers import new_version
from strongroom.models import Attributes, Deletion, Kind, Page, SasDefinition, SecretVersion
from strongroom.models import StorageAccount as Account
from strongroom.services import rotation
from strongroom.services.installation import Installation
from strongroom.services.objects import (
    AttributeInput,
    Due,
    ObjectService,
    attributes_of,
    check_page_size,
    check_tags,
    decode_skiptoken,
    encode_skiptoken,
    tags_of,
)
from strongroom.services.storage_providers import KEY_NAMES, StorageProviders, account_of
from strongroom.store.base import ObjectRecord, Reads, Tx, VaultRecord, VersionRecord

log = logging.getLogger(__name__)

_NAME = re.compile(r"[0-9a-zA-Z]{1,127}")
_SAS_SECRET = re.compile(r"([0-9a-zA-Z]{1,127})-([0-9a-zA-Z]{1,127})")
SAS_CONTENT_TYPE = "application/vnd.ms-sastoken-storage"
DEFAULT_REGENERATION = "P90D"
MIN_REGENERATION = 86400


def check_name(name: str, what: str) -> str:
    if not _NAME.fullmatch(name):
        raise BadParameter(
            f"The {what} name '{name[:130]}' is invalid: use 1-127 letters and digits "
            "(^[0-9a-zA-Z]+$)."
        )
    return name


def _check_key_name(key_name: str, field: str) -> str:
    if key_name not in KEY_NAMES:
        raise BadParameter(f"{field} must be key1 or key2; got {key_name!r:.30}.")
    return key_name


def _check_period(period: str | None) -> None:
    if period is not None and rotation.seconds(period, "regenerationPeriod") < MIN_REGENERATION:
        raise BadParameter("regenerationPeriod must be at least one day (P1D).")


def _sas_rows(
    reads: Reads, vault_id: str, account_lname: str, *, deleted: bool
) -> list[tuple[ObjectRecord, VersionRecord]]:
    """Every definition of one account, active or deleted ones."""
    prefix, out = account_lname + "/", []
    after = prefix
    while True:
        rows = reads.list_objects(vault_id, Kind.SAS.value, deleted=deleted, after=after, limit=200)
        mine = [r for r in rows if r[0].lname.startswith(prefix)]
        out += mine
        if len(mine) < len(rows) or len(rows) < 200:
            return out
        after = rows[-1][0].lname


class StorageService(ObjectService[Account]):
    KIND = Kind.STORAGE
    NOUN = "storage account"
    TITLE = "Storage account"
    NOT_FOUND = "StorageAccountNotFound"

    def __init__(self, inst: Installation, providers: StorageProviders):
        super().__init__(inst)
        self.providers = providers
        self.sas = SasService(inst, self)

    def _model(self, obj: ObjectRecord, v: VersionRecord) -> Account:
        extra = json.loads(v.extra or "{}")
        return Account(
            name=obj.name,
            resource_id=extra["resourceId"],
            active_key_name=extra["activeKeyName"],
            auto_regenerate_key=bool(extra["autoRegenerateKey"]),
            regeneration_period=extra.get("regenerationPeriod"),
            attributes=attributes_of(v),
            tags=tags_of(v),
        )

    def get_account(self, vault: VaultRecord, name: str) -> Account:
        return self._model(*self.current(vault, name))

    def keys_of(self, vault: VaultRecord, record: VersionRecord) -> dict[str, str]:
        keys: dict[str, str] = json.loads(self.unseal(vault, record))
        return keys

    def _record(
        self,
        vault: VaultRecord,
        lname: str,
        version: str,
        keys: dict[str, str],
        extra: dict[str, Any],
        **fields: Any,
    ) -> VersionRecord:
        return VersionRecord(
            vault_id=vault.id, kind=self._kind, lname=lname, version=version,
            sealed=self.seal(vault, lname, version, json.dumps(keys).encode()),
            extra=json.dumps(extra), content_type=None, nbf=None, exp=None, **fields,
        )  # fmt: skip

    def _schedule(self, tx: Tx, vault: VaultRecord, lname: str, extra: dict[str, Any]) -> None:
        # The policy row lets the scheduler find accounts to regenerate with one query.
        tx.set_policy(vault.id, self._kind, lname, json.dumps({"auto": extra["autoRegenerateKey"]}))

    # -- writes -----------------------------------------------------------------------------

    async def set_account(
        self,
        vault: VaultRecord,
        name: str,
        *,
        resource_id: str,
        active_key_name: str,
        auto_regenerate_key: bool,
        regeneration_period: str | None,
        attributes: AttributeInput | None,
        tags: dict[str, str] | None,
    ) -> Account:
        """Adds the account, or replaces the settings of an active one (PUT)."""
        check_name(name, self.NOUN)
        _check_key_name(active_key_name, "activeKeyName")
        _check_period(regeneration_period)
        if auto_regenerate_key and regeneration_period is None:
            regeneration_period = DEFAULT_REGENERATION
        tags_text = check_tags(tags)
        provider, account = self.providers.resolve(resource_id)
        keys = await provider.list_keys(account)
        if active_key_name not in keys:
            raise BadParameter(f"The storage account '{account}' has no key {active_key_name}.")
        lname, now = name.lower(), self._inst.clock.now()
        enabled = True if attributes is None or attributes.enabled is None else attributes.enabled
        extra = {
            "resourceId": resource_id, "activeKeyName": active_key_name,
            "autoRegenerateKey": auto_regenerate_key, "regenerationPeriod": regeneration_period,
            "lastRegenerated": now,
        }  # fmt: skip

        def write(tx: Tx) -> tuple[ObjectRecord, VersionRecord]:
            obj = tx.get_object(vault.id, self._kind, lname)
            if obj is not None and obj.deleted_date is not None:
                raise self._deleted_conflict(obj.name)
            version, created = new_version(), now
            if obj is not None:
                current = tx.get_version(vault.id, self._kind, lname, obj.latest_version)
                assert current is not None
                version, created = current.version, current.created
            record = self._record(
                vault, lname, version, keys, extra,
                created=created, updated=now, enabled=enabled, tags=tags_text,
            )  # fmt: skip
            if obj is None:
                obj = ObjectRecord(vault.id, self._kind, lname, name, version, None, None)
                tx.insert_object(obj)
                tx.insert_version(record)
            else:
                tx.update_version(record)
            self._schedule(tx, vault, lname, extra)
            return obj, record

        return self._model(*await self._write(write, vault, lname))

    def _deleted_conflict(self, name: str) -> Conflict:
        return Conflict(
            f"{self.TITLE} {name} is currently in a deleted but recoverable state, and its name "
            f"cannot be reused; in this state, the {self.NOUN} can only be recovered or purged.",
            inner="ObjectIsDeletedButRecoverable",
        )

    async def update_account(
        self,
        vault: VaultRecord,
        name: str,
        *,
        active_key_name: str | None,
        auto_regenerate_key: bool | None,
        regeneration_period: str | None,
        attributes: AttributeInput | None,
        tags: dict[str, str] | None,
    ) -> Account:
        if active_key_name is not None:
            _check_key_name(active_key_name, "activeKeyName")
        _check_period(regeneration_period)
        tags_text = check_tags(tags)
        lname, now = name.lower(), self._inst.clock.now()

        def change(current: VersionRecord) -> VersionRecord:
            extra = json.loads(current.extra or "{}")
            if active_key_name is not None:
                extra["activeKeyName"] = active_key_name
            if auto_regenerate_key is not None:
                extra["autoRegenerateKey"] = auto_regenerate_key
            if regeneration_period is not None:
                extra["regenerationPeriod"] = regeneration_period
            if extra["autoRegenerateKey"] and extra.get("regenerationPeriod") is None:
                extra["regenerationPeriod"] = DEFAULT_REGENERATION
            enabled = attributes.enabled if attributes and attributes.enabled is not None else None
            return replace(
                current,
                extra=json.dumps(extra),
                enabled=current.enabled if enabled is None else enabled,
                tags=current.tags if tags is None else tags_text,
                updated=now,
            )

        def schedule(tx: Tx, record: VersionRecord) -> None:
            self._schedule(tx, vault, lname, json.loads(record.extra or "{}"))

        return await self.change_version(vault, name, "", change, schedule)

    async def regenerate_key(
        self, vault: VaultRecord, name: str, key_name: str, *, activate: bool = False
    ) -> Account:
        """Has the storage service replace one key, and holds the new one. ``activate``
        (automatic regeneration) also makes it the active key."""
        _check_key_name(key_name, "keyName")
        _, record = self.current(vault, name)
        resource_id = json.loads(record.extra or "{}")["resourceId"]
        provider, account = self.providers.resolve(resource_id)
        keys = await provider.regenerate_key(account, key_name)
        lname, now = name.lower(), self._inst.clock.now()

        def change(current: VersionRecord) -> VersionRecord:
            extra = json.loads(current.extra or "{}")
            if activate:
                extra.update(activeKeyName=key_name, lastRegenerated=now)
            return self._record(
                vault, lname, current.version, keys, extra, created=current.created,
                updated=now, enabled=current.enabled, tags=current.tags,
            )  # fmt: skip

        return await self.change_version(vault, name, "", change)

    async def regenerate_due(self) -> Due:
        """One scheduler pass: regenerates the inactive key of every account whose period has
        passed since its last regeneration, and makes that key the active one."""
        now = self._inst.clock.now()
        done = failed = 0
        for vault_id, lname, body in self._store.reads.list_policies(self._kind):
            try:
                if not json.loads(body).get("auto"):
                    continue
                vault = self._store.reads.get_vault_by_id(vault_id)
                found = self._store.reads.get_current(vault_id, self._kind, lname, "")
                if vault is None or found is None or vault.replica_of is not None:
                    continue  # a replica's regenerations come from its source
                extra = json.loads(found[1].extra or "{}")
                period = rotation.seconds(extra["regenerationPeriod"], "regenerationPeriod")
                if now < int(extra["lastRegenerated"]) + period:
                    continue
                inactive = "key2" if extra["activeKeyName"] == "key1" else "key1"
                await self.regenerate_key(vault, found[0].name, inactive, activate=True)
            except Exception:
                log.exception("regenerating a key of storage account %s failed; skipped", lname)
                failed += 1
                continue
            done += 1
        return Due(done, failed)

    def _delete_related(self, tx: Tx, vault: VaultRecord, lname: str, deletion: Deletion) -> None:
        # The account's definitions go with it, at the same dates.
        for sas, _ in _sas_rows(tx, vault.id, lname, deleted=False):
            tx.set_deleted(
                vault.id, Kind.SAS.value, sas.lname,
                deletion.deleted_date, deletion.scheduled_purge_date,
            )  # fmt: skip

    def _recover_related(self, tx: Tx, vault: VaultRecord, obj: ObjectRecord) -> None:
        for sas, _ in _sas_rows(tx, vault.id, obj.lname, deleted=True):
            if sas.deleted_date == obj.deleted_date:  # deleted with the account
                tx.set_deleted(vault.id, Kind.SAS.value, sas.lname, None, None)

    def _purge_related(self, tx: Tx, vault: VaultRecord, lname: str) -> None:
        # A purged account takes every definition of it along, in the same transaction.
        for deleted in (False, True):
            for sas, _ in _sas_rows(tx, vault.id, lname, deleted=deleted):
                tx.purge_object(vault.id, Kind.SAS.value, sas.lname)

    # -- backup and restore -----------------------------------------------------------------

    def _backup_material(self, vault: VaultRecord, v: VersionRecord) -> dict[str, Any]:
        return {"keys": self.keys_of(vault, v)}

    def _restored_material(self, item: dict[str, Any]) -> bytes:
        return json.dumps(item["keys"]).encode()

    def _backup_extras(self, reads: Reads, vault: VaultRecord, obj: ObjectRecord) -> dict[str, Any]:
        definitions = []
        for sas, v in _sas_rows(reads, vault.id, obj.lname, deleted=False):
            entry = self.backup_entry(v)
            entry.update(name=sas.name, templateUri=self.sas.unseal(vault, v).decode())
            definitions.append(entry)
        return {"sasDefinitions": definitions}

    def _prepare_extras(self, vault: VaultRecord, lname: str, payload: dict[str, Any]) -> Any:
        extra = json.loads(payload["versions"][-1]["extra"])
        if not isinstance(extra, dict) or not isinstance(extra["autoRegenerateKey"], bool):
            raise TypeError("the account's settings are not an object with autoRegenerateKey")
        definitions = []
        for item in payload.get("sasDefinitions", []):
            name = check_name(item["name"], "SAS definition")
            if not isinstance(item["templateUri"], str):
                raise TypeError("a SAS definition's templateUri is text")
            slname = f"{lname}/{name.lower()}"
            record = self.sas.restored_version(vault, slname, item, item["templateUri"].encode())
            definitions.append((name, record))
        return extra, definitions

    def _restore_extras(self, tx: Tx, vault: VaultRecord, lname: str, prepared: Any) -> None:
        extra, definitions = prepared
        self._schedule(tx, vault, lname, extra)
        for name, record in definitions:
            tx.insert_object(
                ObjectRecord(
                    vault.id, Kind.SAS.value, record.lname, name, record.version, None, None
                )
            )
            tx.insert_version(record)


class SasService(ObjectService[SasDefinition]):
    KIND = Kind.SAS
    NOUN = "SAS definition"
    TITLE = "SAS definition"
    NOT_FOUND = "SasDefinitionNotFound"

    def change_of(self, lname: str) -> tuple[str, str]:
        return Kind.STORAGE.value, lname.split("/", 1)[0]  # "{account}/{definition}"

    def __init__(self, inst: Installation, accounts: StorageService):
        super().__init__(inst)
        self._accounts = accounts

    def _model(self, obj: ObjectRecord, v: VersionRecord) -> SasDefinition:
        extra = json.loads(v.extra or "{}")
        return SasDefinition(
            account=extra["account"],
            name=obj.name,
            version=v.version,
            template_uri=None,
            sas_type=extra["sasType"],
            validity_period=extra["validityPeriod"],
            attributes=attributes_of(v),
            tags=tags_of(v),
        )

    def _full(self, vault: VaultRecord, obj: ObjectRecord, v: VersionRecord) -> SasDefinition:
        return replace(self._model(obj, v), template_uri=self.unseal(vault, v).decode())

    def _account(self, vault: VaultRecord, account: str) -> tuple[ObjectRecord, VersionRecord]:
        return self._accounts.current(vault, account)

    @staticmethod
    def _lname(account: str, name: str) -> str:
        return f"{account.lower()}/{name.lower()}"

    def _page(
        self,
        vault: VaultRecord,
        account: str,
        *,
        deleted: bool,
        maxresults: int | None,
        skip: str | None,
    ) -> tuple[list[tuple[ObjectRecord, VersionRecord]], str | None]:
        limit = check_page_size(maxresults)
        prefix = account.lower() + "/"
        after = decode_skiptoken(skip) or prefix
        if not after.startswith(prefix):
            raise BadParameter("The $skiptoken is not one this server issued.")
        rows = self._store.reads.list_objects(
            vault.id, self._kind, deleted=deleted, after=after, limit=limit + 1
        )
        rows = [r for r in rows if r[0].lname.startswith(prefix)]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_skiptoken(rows[-1][0].lname) if more else None

    @staticmethod
    def _parse(account_record: VersionRecord, template: str, sas_type: str) -> None:
        resource_id = json.loads(account_record.extra or "{}")["resourceId"]
        sasfmt.parse_template(template, sas_type, account_of(resource_id))

    # -- reads ------------------------------------------------------------------------------

    def get_sas(self, vault: VaultRecord, account: str, name: str) -> SasDefinition:
        self._account(vault, account)
        obj, v = self.current(vault, self._lname(account, name))
        return self._full(vault, obj, v)

    def list_sas(
        self, vault: VaultRecord, account: str, maxresults: int | None, skip: str | None
    ) -> Page[SasDefinition]:
        self._account(vault, account)
        rows, token = self._page(vault, account, deleted=False, maxresults=maxresults, skip=skip)
        return Page([self._model(o, v) for o, v in rows], token)

    def _account_exists(self, vault: VaultRecord, account: str) -> None:
        if self._store.reads.get_object(vault.id, Kind.STORAGE.value, account.lower()) is None:
            raise self._accounts.not_found(account)

    def get_deleted_sas(
        self, vault: VaultRecord, account: str, name: str
    ) -> tuple[SasDefinition, Deletion]:
        self._account_exists(vault, account)
        lname = self._lname(account, name)
        model, deletion = self.get_deleted(vault, lname)
        obj = self._store.reads.get_object(vault.id, self._kind, lname)
        if obj is not None:
            record = self._store.reads.get_version(vault.id, self._kind, lname, obj.latest_version)
            if record is not None:
                model = replace(model, template_uri=self.unseal(vault, record).decode())
        return model, deletion

    def list_deleted_sas(
        self, vault: VaultRecord, account: str, maxresults: int | None, skip: str | None
    ) -> Page[tuple[SasDefinition, Deletion]]:
        self._account_exists(vault, account)
        rows, token = self._page(vault, account, deleted=True, maxresults=maxresults, skip=skip)
        items = [
            (self._model(o, v), Deletion(o.deleted_date or 0, o.scheduled_purge_date or 0))
            for o, v in rows
        ]
        return Page(items, token)

    def token_secret(self, vault: VaultRecord, secret_name: str, version: str) -> SecretVersion:
        """The secret ``{account}-{definition}``: a freshly minted token. NotFound unless the
        name is one of an active definition of an active account."""
        match = _SAS_SECRET.fullmatch(secret_name)
        if match is None:
            raise NotFound("not a SAS definition's secret")
        account, name = match.groups()
        _, account_record = self._account(vault, account)
        _, v = self.current(vault, self._lname(account, name))
        if version and version != v.version:
            raise self.not_found(f"{secret_name}/{version}")
        if not account_record.enabled or not v.enabled:
            what = "storage account" if not account_record.enabled else "SAS definition"
            raise Forbidden(
                f"Operation get is not allowed: the {what} behind this SAS token is disabled.",
                inner="SecretDisabled",
            )
        extra = json.loads(v.extra or "{}")
        account_extra = json.loads(account_record.extra or "{}")
        real_account = account_of(account_extra["resourceId"])
        template = sasfmt.parse_template(
            self.unseal(vault, v).decode(), extra["sasType"], real_account
        )
        key = self._accounts.keys_of(vault, account_record)[account_extra["activeKeyName"]]
        now = self._inst.clock.now()
        expires = now + rotation.seconds(extra["validityPeriod"], "validityPeriod")
        token = sasfmt.mint(template, real_account, key, dt.datetime.fromtimestamp(expires, dt.UTC))
        return SecretVersion(
            name=secret_name,
            version=v.version,
            attributes=Attributes(True, None, expires, now, now),
            content_type=SAS_CONTENT_TYPE,
            tags=tags_of(v),
            value=token,
            managed=True,
        )

    # -- writes -----------------------------------------------------------------------------

    async def set_sas(
        self,
        vault: VaultRecord,
        account: str,
        name: str,
        *,
        template_uri: str,
        sas_type: str,
        validity_period: str,
        attributes: AttributeInput | None,
        tags: dict[str, str] | None,
    ) -> SasDefinition:
        check_name(name, self.NOUN)
        account_obj, account_record = self._account(vault, account)
        self._parse(account_record, template_uri, sas_type)
        rotation.seconds(validity_period, "validityPeriod")
        tags_text = check_tags(tags)
        lname, now = self._lname(account, name), self._inst.clock.now()
        enabled = True if attributes is None or attributes.enabled is None else attributes.enabled
        extra = json.dumps(
            {"account": account_obj.name, "sasType": sas_type, "validityPeriod": validity_period}
        )

        def write(tx: Tx) -> tuple[ObjectRecord, VersionRecord]:
            owner = tx.get_object(vault.id, Kind.STORAGE.value, account.lower())
            if owner is None or owner.deleted_date is not None:
                raise self._accounts.not_found(account)
            obj = tx.get_object(vault.id, self._kind, lname)
            if obj is not None and obj.deleted_date is not None:
                raise Conflict(
                    f"SAS definition {obj.name} is deleted but recoverable; recover it first.",
                    inner="ObjectIsDeletedButRecoverable",
                )
            version, created = new_version(), now
            if obj is not None:
                current = tx.get_version(vault.id, self._kind, lname, obj.latest_version)
                assert current is not None
                version, created = current.version, current.created
            record = VersionRecord(
                vault_id=vault.id, kind=self._kind, lname=lname, version=version,
                created=created, updated=now, enabled=enabled, nbf=None, exp=None,
                content_type=None, tags=tags_text, extra=extra,
                sealed=self.seal(vault, lname, version, template_uri.encode()),
            )  # fmt: skip
            if obj is None:
                obj = ObjectRecord(vault.id, self._kind, lname, name, version, None, None)
                tx.insert_object(obj)
                tx.insert_version(record)
            else:
                tx.update_version(record)
            return obj, record

        obj, record = await self._write(write, vault, lname)
        return replace(self._model(obj, record), template_uri=template_uri)

    async def update_sas(
        self,
        vault: VaultRecord,
        account: str,
        name: str,
        *,
        template_uri: str | None,
        sas_type: str | None,
        validity_period: str | None,
        attributes: AttributeInput | None,
        tags: dict[str, str] | None,
    ) -> SasDefinition:
        _, account_record = self._account(vault, account)
        if validity_period is not None:
            rotation.seconds(validity_period, "validityPeriod")
        tags_text = check_tags(tags)
        lname, now = self._lname(account, name), self._inst.clock.now()
        kept: list[str] = []  # the template the definition ends up with

        def change(current: VersionRecord) -> VersionRecord:
            extra = json.loads(current.extra or "{}")
            if sas_type is not None:
                extra["sasType"] = sas_type
            if validity_period is not None:
                extra["validityPeriod"] = validity_period
            template = template_uri or self.unseal(vault, current).decode()
            self._parse(account_record, template, extra["sasType"])
            kept.append(template)
            enabled = attributes.enabled if attributes and attributes.enabled is not None else None
            return replace(
                current,
                extra=json.dumps(extra),
                enabled=current.enabled if enabled is None else enabled,
                tags=current.tags if tags is None else tags_text,
                updated=now,
                sealed=self.seal(vault, lname, current.version, template.encode()),
            )

        definition = await self.change_version(vault, lname, "", change)
        return replace(definition, template_uri=kept[-1])

    async def delete_sas(
        self, vault: VaultRecord, account: str, name: str
    ) -> tuple[SasDefinition, Deletion]:
        self._account(vault, account)
        return await self.delete(vault, self._lname(account, name))

    async def recover_sas(self, vault: VaultRecord, account: str, name: str) -> SasDefinition:
        self._account(vault, account)
        return await self.recover(vault, self._lname(account, name))
