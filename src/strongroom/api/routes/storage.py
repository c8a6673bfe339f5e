"""Managed storage accounts and SAS definitions (storage.json): thin handlers over
``StorageService`` and ``SasService``."""

from __future__ import annotations

from strongroom.api import wire
from strongroom.api.calls import Call, Reply, page_reply
from strongroom.api.calls import json_reply as _json
from strongroom.api.kinds import ObjectKind, lifecycle_routes
from strongroom.api.routing import Need, Route
from strongroom.models import StorageAccount
from strongroom.services.storage import StorageService


class StorageRoutes:
    def __init__(self, service: StorageService):
        self._s = service
        self._sas = service.sas

    def kind(self) -> ObjectKind[StorageAccount]:
        return ObjectKind(
            "storage", "deletedstorage", "storage", "StorageAccount", self._s,
            lambda call, a: wire.storage_bundle(call.base, call.vault, a),
            lambda call, a: wire.storage_item(call.base, call.vault, a),
        )  # fmt: skip

    def routes(self) -> list[Route]:
        kind = self.kind()
        need = kind.need
        sas, gone = "/storage/{account}/sas", "/deletedstorage/{account}/sas"

        def sas_need(permission: str, operation: str) -> Need:
            return Need("storage", permission, "SasDefinition" + operation)

        return [
            Route("GET", "/storage", self.get_storage_accounts, need("list", "List")),
            Route("PUT", "/storage/{name}", self.set_storage_account, need("set", "Set")),
            Route("GET", "/storage/{name}", self.get_storage_account, need("get", "Get")),
            Route(
                "PATCH", "/storage/{name}", self.update_storage_account, need("update", "Update")
            ),
            Route(
                "POST",
                "/storage/{name}/regeneratekey",
                self.regenerate_key,
                need("regeneratekey", "RegenerateKey"),
            ),
            *lifecycle_routes(kind),
            Route("GET", sas, self.get_sas_definitions, sas_need("listsas", "List")),
            Route("PUT", f"{sas}/{{name}}", self.set_sas_definition, sas_need("setsas", "Set")),
            Route("GET", f"{sas}/{{name}}", self.get_sas_definition, sas_need("getsas", "Get")),
            Route(
                "PATCH", f"{sas}/{{name}}", self.update_sas_definition, sas_need("setsas", "Update")
            ),
            Route(
                "DELETE",
                f"{sas}/{{name}}",
                self.delete_sas_definition,
                sas_need("deletesas", "Delete"),
            ),
            Route("GET", gone, self.get_deleted_sas_list, sas_need("listsas", "ListDeleted")),
            Route(
                "GET", f"{gone}/{{name}}", self.get_deleted_sas, sas_need("getsas", "GetDeleted")
            ),
            Route(
                "POST",
                f"{gone}/{{name}}/recover",
                self.recover_deleted_sas,
                sas_need("recover", "Recover"),
            ),
        ]

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

    async def get_storage_accounts(self, call: Call) -> Reply:
        page = self._s.list_page(call.record, call.maxresults, call.skiptoken)
        items = [wire.storage_item(call.base, call.vault, a) for a in page.items]
        return page_reply(call, "/storage", page, items)

    async def regenerate_key(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        account = await self._s.regenerate_key(call.record, name, wire.req_str(data, "keyName"))
        return _json(wire.storage_bundle(call.base, call.vault, account))

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
        page = self._sas.list_sas(call.record, account, call.maxresults, call.skiptoken)
        items = [wire.sas_item(call.base, call.vault, d) for d in page.items]
        return page_reply(call, f"/storage/{account}/sas", page, items)

    async def get_deleted_sas_list(self, call: Call) -> Reply:
        (account,) = call.args
        page = self._sas.list_deleted_sas(call.record, account, call.maxresults, call.skiptoken)
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
        return page_reply(call, f"/deletedstorage/{account}/sas", page, items)

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
