"""The data plane of one vault: authenticate first, then find the vault, check api-version, route.

Order matters for the Azure SDK: a request without a valid token is answered 401 with the
challenge before anything about it is validated (contract notes 1.2), since the SDK's first
request to a host is a bodiless copy of the real one.

Routing is by path segments rather than patterns: Key Vault clients send empty segments
(``GET /secrets/{name}/`` for "latest", ``POST /keys/{n}//release``) that pattern routers
treat as different paths or redirect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from strongroom.api.errors import JSON, error_body, error_response
from strongroom.errors import BadParameter, NotFound, StrongroomError, Unauthorized
from strongroom.identifiers import check_api_version
from strongroom.models import Vault
from strongroom.services.identity import Caller, IdentityService
from strongroom.services.vaults import VaultService, to_vault
from strongroom.store.base import VaultRecord

_MISSING_TOKEN = "AKV10000: Request is missing a Bearer or PoP token."  # noqa: S105 - a message


@dataclass(slots=True)
class Call:
    """What a data-plane handler gets: the request, its vault, caller and parsed path."""

    request: Request
    record: VaultRecord
    vault: Vault
    caller: Caller
    base: str  # https://{host as dialled}
    query: dict[str, str]
    args: tuple[str, ...]

    def int_query(self, name: str) -> int | None:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError as exc:
            raise BadParameter(f"'{name}' must be an integer; got '{raw[:20]}'.") from exc


Handler = Callable[[Call], Awaitable[Response]]
# A router maps (method, path segments after the collection) to a handler and its arguments;
# it raises NotFound/BadParameter itself when nothing matches.
Router = Callable[[str, list[str]], tuple[Handler, tuple[str, ...]]]


class DataPlane:
    def __init__(
        self,
        identity: IdentityService,
        vaults: VaultService,
        routers: dict[str, Router],
        authority: str,
        resource: str,
    ):
        self._identity = identity
        self._vaults = vaults
        self._routers = routers
        self._audiences = [resource, resource + "/"]
        tenant_url = f"{authority}/{identity.tenant_id}"
        # No "," or "=" may appear inside values: the SDK splits on both.
        self._challenge = f'Bearer authorization="{tenant_url}", resource="{resource}"'.encode()

    def _unauthorized(self, message: str) -> Response:
        response = Response(error_body("Unauthorized", message), status_code=401, media_type=JSON)
        response.headers["WWW-Authenticate"] = self._challenge.decode()
        return response

    async def __call__(self, scope: Scope, receive: Receive, send: Send, vault_name: str) -> None:
        request = Request(scope, receive)
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await self._unauthorized(_MISSING_TOKEN)(scope, receive, send)
            return
        try:
            caller = self._identity.verify(token.strip(), self._audiences)
        except Unauthorized as exc:
            await self._unauthorized(exc.message)(scope, receive, send)
            return
        try:
            response = await self._handle(request, vault_name, caller)
        except Exception as exc:
            response = error_response(exc)
        await response(scope, receive, send)

    async def _handle(self, request: Request, vault_name: str, caller: Caller) -> Response:
        record = self._vaults.get_record(vault_name)
        query = dict(parse_qsl(request.url.query, keep_blank_values=True))
        check_api_version(query.get("api-version"))
        segments = request.url.path.split("/")[1:]
        collection = segments[0].lower() if segments else ""
        router = self._routers.get(collection)
        if router is None:
            raise NotFound(
                f"'{request.url.path[:100]}' is not a Key Vault operation on this server.",
                code="NotFound",
            )
        handler, args = router(request.method, segments[1:])
        host = request.headers.get("host", "")
        call = Call(request, record, to_vault(record), caller, f"https://{host}", query, args)
        return await handler(call)


def method_not_allowed(method: str, operation: str) -> StrongroomError:
    return BadParameter(f"Method {method} does not allow operation '{operation}'")
