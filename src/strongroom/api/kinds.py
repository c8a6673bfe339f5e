"""Object kinds as the data plane sees them, and the routes every kind shares.

An ``ObjectKind`` names a kind's collections, its access-policy kind and audit prefix, the
service that keeps it, and how one object renders. From it ``lifecycle_routes`` builds what
Key Vault serves alike for secrets, keys, certificates and storage accounts: delete, the
deleted list and bundle, recover, purge, backup and restore. A kind's own module adds the
rest of its routes; ``api.routes`` lists the kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from strongroom.api import wire
from strongroom.api.calls import Call, Reply, blob_of, blob_reply, json_reply, page_reply
from strongroom.api.routing import Need, Route
from strongroom.services.objects import ObjectService


class Named(Protocol):
    @property
    def name(self) -> str: ...


M = TypeVar("M", bound=Named)
Render = Callable[[Call, M], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ObjectKind(Generic[M]):
    collection: str  # "secrets": the path segment of live objects
    deleted_collection: str  # "deletedsecrets"
    access: str  # the access-policy kind whose permissions apply: "secrets"
    audit: str  # the audit operations' prefix: "Secret"
    service: ObjectService[M]
    bundle: Render[M]  # one object as a bundle (deleted, recovered, restored)
    item: Render[M]  # one object as a list item, without its version

    def need(self, permission: str, operation: str, status: int = 200) -> Need:
        return Need(self.access, permission, self.audit + operation, status)

    def deleted(self, call: Call, name: str, body: dict[str, Any], deletion: Any) -> Any:
        return wire.deleted(call.base, name, body, deletion, self.deleted_collection)


def lifecycle_routes(kind: ObjectKind[Any]) -> list[Route]:
    """What every kind serves alike: delete, soft-deleted objects, recover, purge, backup and
    restore."""
    service = kind.service
    live, gone = f"/{kind.collection}", f"/{kind.deleted_collection}"

    async def delete(call: Call) -> Reply:
        (name,) = call.args
        obj, deletion = await service.delete(call.record, name)
        return json_reply(kind.deleted(call, obj.name, kind.bundle(call, obj), deletion))

    async def get_deleted_list(call: Call) -> Reply:
        page = service.list_deleted(call.record, call.maxresults, call.skiptoken)
        items = [kind.deleted(call, obj.name, kind.item(call, obj), d) for obj, d in page.items]
        return page_reply(call, gone, page, items)

    async def get_deleted(call: Call) -> Reply:
        (name,) = call.args
        obj, deletion = service.get_deleted(call.record, name)
        return json_reply(kind.deleted(call, obj.name, kind.bundle(call, obj), deletion))

    async def recover(call: Call) -> Reply:
        (name,) = call.args
        return json_reply(kind.bundle(call, await service.recover(call.record, name)))

    async def purge(call: Call) -> Reply:
        (name,) = call.args
        await service.purge(call.record, name)
        return Reply(204)

    async def backup(call: Call) -> Reply:
        (name,) = call.args
        return blob_reply(service.backup_object(call.record, name))

    async def restore(call: Call) -> Reply:
        restored = await service.restore_object(call.record, await blob_of(call))
        return json_reply(kind.bundle(call, restored))

    return [
        Route("DELETE", f"{live}/{{name}}", delete, kind.need("delete", "Delete")),
        Route("GET", gone, get_deleted_list, kind.need("list", "ListDeleted")),
        Route("GET", f"{gone}/{{name}}", get_deleted, kind.need("list", "GetDeleted")),
        Route("DELETE", f"{gone}/{{name}}", purge, kind.need("purge", "Purge", 204)),
        Route("POST", f"{gone}/{{name}}/recover", recover, kind.need("recover", "Recover")),
        Route(
            "POST", f"{live}/{{name}}/backup", backup, kind.need("backup", "Backup"), writes=False
        ),
        Route("POST", f"{live}/restore", restore, kind.need("restore", "Restore")),
    ]
