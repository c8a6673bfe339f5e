"""Managed storage accounts and SAS definitions (storage.json): thin handlers over
``StorageService`` and ``SasService``."""

from __future__ import annotations

from strongroom.api import wire
from strongroom.api.dataplane import (
    Call,
    Handler,
    Reply,
    blob_of,
    blob_reply,
    method_not_allowed,
    next_link,
    only,
)
from strongroom.api.dataplane import json_reply as _json
from strongroom.errors import NotFound
from strongroom.services.storage import StorageService

Route = tuple[Handler, tuple[str, ...]]


def _blank(tail: list[str]) -> bool:
    return not tail or tail == [""]


class StorageRoutes:
    def __init__(self, service: StorageService):
        self._s = service
        self._sas = service.sas

    # -- routers ----------------------------------------------------------------------------

    def storage(self, method: str, rest: list[str]) -> Route:
        """Paths under /storage."""
        if _blank(rest):
            return only(method, "GET", "GetStorageAccounts", self.get_storage_accounts), ()
        name, tail = rest[0], rest[1:]
        if name.lower() == "restore" and not tail:
            return only(method, "POST", "restore", self.restore_storage_account), ()
        if _blank(tail):
            table = {
                "PUT": self.set_storage_account,
                "GET": self.get_storage_account,
                "PATCH": self.update_storage_account,
                "DELETE": self.delete_storage_account,
            }
            if method not in table:
                raise method_not_allowed(method, "storage account")
            return table[method], (name,)
        operation = tail[0].lower()
        if len(tail) == 1 and operation == "regeneratekey":
            return only(method, "POST", "regeneratekey", self.regenerate_key), (name,)
        if len(tail) == 1 and operation == "backup":
            return only(method, "POST", "backup", self.backup_storage_account), (name,)
        if operation == "sas" and _blank(tail[1:]):
            return only(method, "GET", "GetSasDefinitions", self.get_sas_definitions), (name,)
        if operation == "sas" and (len(tail) == 2 or (len(tail) == 3 and tail[2] == "")):
            table = {
                "PUT": self.set_sas_definition,
                "GET": self.get_sas_definition,
                "PATCH": self.update_sas_definition,
                "DELETE": self.delete_sas_definition,
            }
            if method not in table:
                raise method_not_allowed(method, "SAS definition")
            return table[method], (name, tail[1])
        raise NotFound(f"No storage operation at /storage/{'/'.join(rest)[:100]}.", code="NotFound")

    def deleted_storage(self, method: str, rest: list[str]) -> Route:
        """Paths under /deletedstorage."""
        if _blank(rest):
            return only(method, "GET", "GetDeletedStorageAccounts", self.get_deleted_accounts), ()
        name, tail = rest[0], rest[1:]
        if _blank(tail):
            table = {"GET": self.get_deleted_account, "DELETE": self.purge_deleted_account}
            if method not in table:
                raise method_not_allowed(method, "deleted storage account")
            return table[method], (name,)
        operation = tail[0].lower()
        if len(tail) == 1 and operation == "recover":
            return only(method, "POST", "recover", self.recover_deleted_account), (name,)
        if operation == "sas" and _blank(tail[1:]):
            return only(method, "GET", "GetDeletedSasDefinitions", self.get_deleted_sas_list), (
                name,
            )
        if operation == "sas" and (len(tail) == 2 or (len(tail) == 3 and tail[2] == "")):
            return only(method, "GET", "GetDeletedSasDefinition", self.get_deleted_sas), (
                name,
                tail[1],
            )
        if operation == "sas" and len(tail) == 3 and tail[2].lower() == "recover":
            return only(method, "POST", "recover", self.recover_deleted_sas), (name, tail[1])
        raise NotFound(f"No operation at /deletedstorage/{'/'.join(rest)[:100]}.", code="NotFound")

    # -- storage accounts -------------------------------------------------------------------

    async def set_storage_account(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        account = await self._s.set_account(
            call.record,
            name,
            resource_id=wire.req_str(data, "resourceId"),
            active_key_name=wire.req_str(data, "activeKeyName"),
            auto_regenerate_key=wire.req_bool(data, "autoRegenerateKey"),
            regeneration_period=wire.opt_str(data, "regenerationPeriod"),
            attributes=wire.attributes(data),
            tags=wire.tags(data),
        )
        return _json(wire.storage_bundle(call.base, call.vault, account))

    async def get_storage_account(self, call: Call) -> Reply:
        (name,) = call.args
        account = self._s.get_account(call.record, name)
        return _json(wire.storage_bundle(call.base, call.vault, account))

    async def update_storage_account(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        account = await self._s.update_account(
            call.record,
            name,
            active_key_name=wire.opt_str(data, "activeKeyName"),
            auto_regenerate_key=wire.opt_bool(data, "autoRegenerateKey"),
            regeneration_period=wire.opt_str(data, "regenerationPeriod"),
            attributes=wire.attributes(data),
            tags=wire.tags(data),
        )
        return _json(wire.storage_bundle(call.base, call.vault, account))

    async def delete_storage_account(self, call: Call) -> Reply:
        (name,) = call.args
        account, deletion = await self._s.delete(call.record, name)
        body = wire.storage_bundle(call.base, call.vault, account)
        return _json(wire.deleted(call.base, account.name, body, deletion, "deletedstorage"))

    async def get_storage_accounts(self, call: Call) -> Reply:
        page = self._s.list_page(
            call.record, call.int_query("maxresults"), call.query.get("$skiptoken")
        )
        items = [wire.storage_item(call.base, call.vault, a) for a in page.items]
        return _json({"value": items, "nextLink": next_link(call, "/storage", page)})

    async def regenerate_key(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        account = await self._s.regenerate_key(call.record, name, wire.req_str(data, "keyName"))
        return _json(wire.storage_bundle(call.base, call.vault, account))

    async def backup_storage_account(self, call: Call) -> Reply:
        (name,) = call.args
        return blob_reply(self._s.backup_account(call.record, name))

    async def restore_storage_account(self, call: Call) -> Reply:
        account = await self._s.restore_account(call.record, await blob_of(call))
        return _json(wire.storage_bundle(call.base, call.vault, account))

    async def get_deleted_accounts(self, call: Call) -> Reply:
        page = self._s.list_deleted(
            call.record, call.int_query("maxresults"), call.query.get("$skiptoken")
        )
        items = [
            wire.deleted(
                call.base, a.name, wire.storage_item(call.base, call.vault, a), d, "deletedstorage"
            )
            for a, d in page.items
        ]
        return _json({"value": items, "nextLink": next_link(call, "/deletedstorage", page)})

    async def get_deleted_account(self, call: Call) -> Reply:
        (name,) = call.args
        account, deletion = self._s.get_deleted(call.record, name)
        body = wire.storage_bundle(call.base, call.vault, account)
        return _json(wire.deleted(call.base, account.name, body, deletion, "deletedstorage"))

    async def recover_deleted_account(self, call: Call) -> Reply:
        (name,) = call.args
        account = await self._s.recover(call.record, name)
        return _json(wire.storage_bundle(call.base, call.vault, account))

    async def purge_deleted_account(self, call: Call) -> Reply:
        (name,) = call.args
        await self._s.purge(call.record, name)
        return Reply(204)

    # -- SAS definitions --------------------------------------------------------------------

    async def set_sas_definition(self, call: Call) -> Reply:
        account, name = call.args
        data = wire.parse_object(await call.body())
        definition = await self._sas.set_sas(
            call.record,
            account,
            name,
            template_uri=wire.req_str(data, "templateUri"),
            sas_type=wire.req_str(data, "sasType"),
            validity_period=wire.req_str(data, "validityPeriod"),
            attributes=wire.attributes(data),
            tags=wire.tags(data),
        )
        return _json(wire.sas_bundle(call.base, call.vault, definition))

    async def get_sas_definition(self, call: Call) -> Reply:
        account, name = call.args
        definition = self._sas.get_sas(call.record, account, name)
        return _json(wire.sas_bundle(call.base, call.vault, definition))

    async def update_sas_definition(self, call: Call) -> Reply:
        account, name = call.args
        data = wire.parse_object(await call.body())
        definition = await self._sas.update_sas(
            call.record,
            account,
            name,
            template_uri=wire.opt_str(data, "templateUri"),
            sas_type=wire.opt_str(data, "sasType"),
            validity_period=wire.opt_str(data, "validityPeriod"),
            attributes=wire.attributes(data),
            tags=wire.tags(data),
        )
        return _json(wire.sas_bundle(call.base, call.vault, definition))

    async def delete_sas_definition(self, call: Call) -> Reply:
        account, name = call.args
        definition, deletion = await self._sas.delete_sas(call.record, account, name)
        body = wire.sas_bundle(call.base, call.vault, definition)
        return _json(
            wire.deleted(call.base, f"{account}/sas/{name}", body, deletion, "deletedstorage")
        )

    async def get_sas_definitions(self, call: Call) -> Reply:
        (account,) = call.args
        page = self._sas.list_sas(
            call.record, account, call.int_query("maxresults"), call.query.get("$skiptoken")
        )
        items = [wire.sas_item(call.base, call.vault, d) for d in page.items]
        link = next_link(call, f"/storage/{account}/sas", page)
        return _json({"value": items, "nextLink": link})

    async def get_deleted_sas_list(self, call: Call) -> Reply:
        (account,) = call.args
        page = self._sas.list_deleted_sas(
            call.record, account, call.int_query("maxresults"), call.query.get("$skiptoken")
        )
        items = [
            wire.deleted(
                call.base,
                f"{account}/sas/{d.name}",
                wire.sas_item(call.base, call.vault, d),
                deletion,
                "deletedstorage",
            )
            for d, deletion in page.items
        ]
        link = next_link(call, f"/deletedstorage/{account}/sas", page)
        return _json({"value": items, "nextLink": link})

    async def get_deleted_sas(self, call: Call) -> Reply:
        account, name = call.args
        definition, deletion = self._sas.get_deleted_sas(call.record, account, name)
        body = wire.sas_bundle(call.base, call.vault, definition)
        return _json(
            wire.deleted(call.base, f"{account}/sas/{name}", body, deletion, "deletedstorage")
        )

    async def recover_deleted_sas(self, call: Call) -> Reply:
        account, name = call.args
        definition = await self._sas.recover_sas(call.record, account, name)
        return _json(wire.sas_bundle(call.base, call.vault, definition))
