"""What a data-plane handler gets and gives back: ``Call`` in, ``Reply`` out, and the helpers
every kind's handlers share (JSON replies, paging links, backup blobs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from starlette.types import Receive

from strongroom.api import wire
from strongroom.api.limits import MAX_BODY, MAX_RESTORE_BODY, read_body
from strongroom.errors import BadParameter
from strongroom.models import Page, Vault
from strongroom.services.identity import Caller
from strongroom.store.base import VaultRecord


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] | None = None


def json_reply(body: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(body))


@dataclass(slots=True)
class Call:
    """What a data-plane handler gets: the request, its vault, caller and parsed path."""

    method: str
    record: VaultRecord
    vault: Vault
    caller: Caller
    base: str  # the vault's URL, https://{vault}.{suffix}[:port], from configuration
    query: dict[str, str]
    args: tuple[str, ...]
    receive: Receive
    length: int | None  # Content-Length, if the request declared one

    async def body(self, limit: int = MAX_BODY) -> bytes:
        """The request body, refused (413) beyond ``limit`` before or while it is read."""
        return await read_body(self.receive, self.length, limit)

    async def json(self) -> dict[str, Any]:
        """The request body as a JSON object (400 when it is not one)."""
        return wire.parse_object(await self.body())

    def int_query(self, name: str) -> int | None:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError as exc:
            raise BadParameter(f"'{name}' must be an integer; got '{raw[:20]}'.") from exc

    @property
    def maxresults(self) -> int | None:
        return self.int_query("maxresults")

    @property
    def skiptoken(self) -> str | None:
        return self.query.get("$skiptoken")


def blob_reply(blob: bytes) -> Reply:
    """A backup operation's answer: ``{"value": base64url(blob)}``."""
    return json_reply({"value": wire.b64url_encode(blob)})


async def blob_of(call: Call) -> bytes:
    """The blob a restore request carries in ``value``."""
    body = await call.body(MAX_RESTORE_BODY)
    return wire.b64url_decode(wire.req_str(wire.parse_object(body), "value"))


def next_link(call: Call, path: str, page: Page[Any]) -> str | None:
    """Absolute, on the host the client dialled (contract notes 1.11)."""
    if page.next_token is None:
        return None
    link = f"{call.base}{path}?api-version={quote(call.query['api-version'])}"
    link += f"&$skiptoken={quote(page.next_token, safe='')}"
    if "maxresults" in call.query:
        link += f"&maxresults={quote(call.query['maxresults'])}"
    return link


def page_reply(call: Call, path: str, page: Page[Any], items: list[Any]) -> Reply:
    """A list operation's answer: ``{"value": items, "nextLink": ...}``."""
    return json_reply({"value": items, "nextLink": next_link(call, path, page)})
