"""The data plane of one vault: authenticate first, then find the vault, check api-version, route.

Order matters for the Azure SDK: a request without a valid token is answered 401 with the
challenge before anything about it is validated (contract notes 1.2), since the SDK's first
request to a host is a bodiless copy of the real one.

Which handler serves a request, and what it needs, comes from the route table
(``api.routing``).

This layer speaks raw ASGI rather than through a framework's request and response objects:
the framework layer was most of the cost of a GET (design.md, "Costs"), and a data-plane
request needs only its method, path, query, two headers and body.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import Receive, Scope, Send

from strongroom import logs, telemetry
from strongroom.api.calls import Call, Reply
from strongroom.api.errors import JSON, error_body, error_parts
from strongroom.api.routing import Route, RouteTable
from strongroom.errors import Forbidden, NotFound, Unauthorized
from strongroom.identifiers import check_api_version
from strongroom.services.access import AccessService
from strongroom.services.audit import AuditLog
from strongroom.services.identity import Caller, IdentityService
from strongroom.services.rbac import RBAC_KIND, RbacService, request_scope
from strongroom.services.replication import read_only
from strongroom.services.vaults import VaultService
from strongroom.store.base import PENDING_AUDIT, PendingAudit, VaultRecord

_REQUEST_LOG = logs.REQUESTS
_MISSING_TOKEN = "AKV10000: Request is missing a Bearer or PoP token."  # noqa: S105 - a message
_JSON_HEADER = (b"content-type", JSON.encode())
_PROVIDERS = "/providers/microsoft.authorization/"


class _RequestIds:
    """Key Vault names every answer with a GUID of its own (x-ms-request-id; clients log it).
    Here: a random GUID per process and fork (its first 80 bits) with a counter in its last
    48, unique without a random draw per request (that was a tenth of a GET's cost)."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)  # a worker draws a prefix of its own

    def reset(self) -> None:
        self._prefix = str(uuid.uuid4())[:24].encode()
        # From 16**11: twelve hex digits for the next 16**12 - 16**11 requests of the process.
        self._next = itertools.count(16**11).__next__

    def __call__(self) -> bytes:
        return self._prefix + b"%x" % self._next()


new_request_id = _RequestIds()


async def _send(
    send: Send, rid: bytes, status: int, body: bytes, extra: list[Any] | None = None
) -> None:
    headers = [_JSON_HEADER, (b"content-length", str(len(body)).encode())] if body else []
    headers.append((b"x-ms-request-id", rid))
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_QUERIES: dict[bytes, dict[str, str]] = {}  # query strings seen, parsed (most are a handful)
_MAX_QUERIES = 1024


def _query_of(scope: Scope) -> dict[str, str]:
    """The request's query parameters, in a dict of its own (handlers may keep it)."""
    raw: bytes = scope.get("query_string", b"")
    parsed = _QUERIES.get(raw)
    if parsed is None:
        parsed = _parse_query(raw.decode("latin-1"))
        if len(_QUERIES) >= _MAX_QUERIES:
            _QUERIES.clear()
        _QUERIES[raw] = parsed
    return parsed.copy()


def _parse_query(raw: str) -> dict[str, str]:
    if "%" in raw or "+" in raw:
        return dict(parse_qsl(raw, keep_blank_values=True))
    # The common case (api-version=7.6) needs no unquoting; parse_qsl's generality costs more
    # than the rest of a cached GET.
    query: dict[str, str] = {}
    for part in raw.split("&"):
        if part:
            key, _, value = part.partition("=")
            query[key] = value
    return query


class DataPlane:
    MAX_ROUTES = 4096

    def __init__(
        self,
        identity: IdentityService,
        vaults: VaultService,
        table: RouteTable,
        authority: str,
        resource: str,
        access: AccessService,
        audit: AuditLog,
        vault_url: Callable[[str], str],
        rbac: RbacService,
    ):
        self._identity = identity
        self._vaults = vaults
        self._table = table
        self._taken: dict[tuple[str, str], tuple[Route, tuple[str, ...]]] = {}
        self._access = access
        self._rbac = rbac
        self._audit = audit
        self._vault_url = vault_url  # ids are built from configuration, never from Host
        self._urls: dict[str, str] = {}  # vault name -> its URL, as vault_url made it
        self._audiences = [resource, resource + "/"]
        tenant_url = f"{authority}/{identity.tenant_id}"
        # No "," or "=" may appear inside values: the SDK splits on both.
        challenge = f'Bearer authorization="{tenant_url}", resource="{resource}"'
        self._challenge = [(b"www-authenticate", challenge.encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send, vault_name: str) -> None:
        auth = request_id = b""
        length: int | None = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                auth = value
            elif key == b"content-length":
                length = int(value) if value.isdigit() else None
            elif key == b"x-ms-client-request-id":
                request_id = value
        note = _Note(vault_name, scope, request_id)
        rid = new_request_id()
        scheme, _, token = auth.decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            await _send(send, rid, 401, error_body("Unauthorized", _MISSING_TOKEN), self._challenge)
            if (t := telemetry.active) is not None:
                t.requests.labels("Unauthenticated", "401", vault_name).inc()
            return  # the SDK's bodiless first request: not worth an audit record
        try:
            caller = self._identity.verify(token, self._audiences)
        except Unauthorized as exc:
            await _send(send, rid, 401, error_body("Unauthorized", exc.message), self._challenge)
            note.auth_failed(self._audit)
            if (t := telemetry.active) is not None:
                t.requests.labels("Unauthenticated", "401", vault_name).inc()
            return
        except Exception as exc:  # the store failing while it checks the principal
            status, body = error_parts(exc)
            await _send(send, rid, status, body)
            return
        started = time.perf_counter()
        try:
            reply = await self._handle(scope, receive, vault_name, caller, length, note)
        except Exception as exc:  # every failure gets Key Vault's error shape
            status, body = error_parts(exc)
            reply = Reply(status, body)
        self._finish(note, caller, vault_name, reply.status, started, rid)
        await _send(send, rid, reply.status, reply.body, reply.headers)

    def _finish(
        self, note: _Note, caller: Caller, vault_name: str, status: int, started: float, rid: bytes
    ) -> None:
        """What follows every answered request: its audit record, metrics and log line."""
        note.audit(self._audit, caller.client_id, note.operation, status)
        if (t := telemetry.active) is not None:
            t.request(note.operation, status, vault_name, time.perf_counter() - started)
        if _REQUEST_LOG.isEnabledFor(logging.INFO):
            ms = (time.perf_counter() - started) * 1000
            logs.request(rid.decode(), caller.client_id, vault_name, note.operation, status, ms)

    async def invoke(
        self,
        vault_name: str,
        caller: Caller,
        method: str,
        path: str,
        query: dict[str, str],
        body: bytes = b"",
        client: str | None = None,
    ) -> Reply:
        """One data-plane operation for a caller authenticated in this process (the web
        console's signed-in principal): routed, authorized, audited and answered exactly as
        the same request over HTTP would be, token aside."""
        scope: Scope = {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": urlencode(query).encode("latin-1"),
            "headers": [],
            "client": (client, 0) if client else None,
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        note = _Note(vault_name, scope, b"")
        started = time.perf_counter()
        try:
            reply = await self._handle(scope, receive, vault_name, caller, len(body), note)
        except Exception as exc:  # every failure gets Key Vault's error shape
            status, answer = error_parts(exc)
            reply = Reply(status, answer)
        self._finish(note, caller, vault_name, reply.status, started, new_request_id())
        return reply

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        vault_name: str,
        caller: Caller,
        length: int | None,
        note: _Note,
    ) -> Reply:
        query = _query_of(scope)
        check_api_version(query.get("api-version"))
        method: str = scope["method"]
        route, args = self._route(method, scope["path"])
        need = route.need
        note.operation = need.operation
        try:
            record, vault = self._vaults.lookup(vault_name)
        except NotFound:
            # A principal is told the same of a vault that does not exist as of one it may not
            # use, so that vault names cannot be enumerated.
            raise self._access.denied(
                vault_name, caller.client_id, need.kind, need.permission
            ) from None
        if not caller.operator:
            self._authorize(record, caller, route, args, note)
        if record.replica_of is not None and route.changes_vault:
            raise read_only(record)
        base = self._urls.get(vault_name)
        if base is None:
            if len(self._urls) >= self.MAX_ROUTES:
                self._urls.clear()
            base = self._urls[vault_name] = self._vault_url(vault_name)
        call = Call(method, record, vault, caller, base, query, args, receive, length)
        if method == "GET":
            return await route.handler(call)
        # A request that may write: its audit record goes with its first write's transaction.
        note.pending = PendingAudit(
            self._audit.make(caller.client_id, note.vault, need.operation, note.path,
                             need.status, note.request_id, note.caller, note.grant)
        )  # fmt: skip
        token = PENDING_AUDIT.set(note.pending)
        try:
            return await route.handler(call)
        finally:
            PENDING_AUDIT.reset(token)

    def _authorize(
        self, record: VaultRecord, caller: Caller, route: Route, args: tuple[str, ...], note: _Note
    ) -> None:
        """Raises ``Forbidden`` unless the vault's permission model lets the caller do this:
        under RBAC a role assignment (whose name the audit record keeps; a caller holding
        none in the vault is answered as for a vault that does not exist), else access
        policies. Role management under access policies is the operator's alone, unless the
        vault is open."""
        need = route.need
        if self._rbac.enabled(record):
            if not self._rbac.may_use(record, caller.client_id):
                # No role at all in the vault: told the same as of a vault that does not
                # exist, so that RBAC vaults cannot be enumerated either.
                raise self._access.denied(record.name, caller.client_id, need.kind, need.permission)
            scope = request_scope(route.path, args)
            note.grant = self._rbac.authorize(record, caller.client_id, need.operation, scope)
        elif need.kind == RBAC_KIND:
            if not record.open_access:
                raise Forbidden(
                    f"Vault '{record.name}' uses access policies, so its role assignments and "
                    f"definitions are managed by the operator alone (strongroom vault role "
                    f"...), or by role holders once RBAC is enabled: strongroom vault update "
                    f"{record.name} --enable-rbac-authorization true",
                    inner="ForbiddenByPolicy",
                )
        else:
            self._access.check(record, caller.client_id, need.kind, need.permission)
            for kind, permission in need.also:
                self._access.check(record, caller.client_id, kind, permission)

    def _route(self, method: str, path: str) -> tuple[Route, tuple[str, ...]]:
        """The route and its arguments for a method and path; routing depends on nothing
        else, so routes already taken are remembered (errors are not). Role management
        paths (``{scope}/providers/Microsoft.Authorization/...``) are routed by their tail,
        their scope handed over as the first argument."""
        key = (method, path)
        taken = self._taken.get(key)
        if taken is None:
            at = path.lower().find(_PROVIDERS)
            if at >= 0:
                route, args = self._table.find(method, path[at:])
                taken = route, (path[:at], *args)
            else:
                taken = self._table.find(method, path)
            if len(self._taken) >= self.MAX_ROUTES:
                self._taken.clear()
            self._taken[key] = taken
        return taken


class _Note:
    """What the audit record of one request needs, gathered as the request is handled."""

    __slots__ = ("caller", "grant", "operation", "path", "pending", "request_id", "vault")

    def __init__(self, vault: str, scope: Scope, request_id: bytes):
        self.operation = "Unknown"
        self.vault = vault
        self.path: str = scope["path"]
        self.request_id = request_id.decode("latin-1") or None
        client = scope.get("client")
        self.caller: str | None = client[0] if client else None
        self.pending: PendingAudit | None = None  # committed with the request's first write
        self.grant: str | None = None  # under RBAC: the role assignment that allowed it

    def audit(self, log: AuditLog, principal: str | None, operation: str, status: int) -> None:
        pending = self.pending
        if pending is not None and pending.committed and pending.record.status == status:
            return  # already in the store, with the write it tells of
        log.record(
            log.make(
                principal, self.vault, operation, self.path, status, self.request_id,
                self.caller, self.grant,
            )
        )  # fmt: skip

    def auth_failed(self, log: AuditLog) -> None:
        log.auth_failed(self.vault, self.path, self.request_id, self.caller)
