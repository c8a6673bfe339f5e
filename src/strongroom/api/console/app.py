"""The web console at ``https://localhost:8443/console``: server-rendered pages, no script.

Every read and change goes through the data plane (``DataPlane.invoke``) as the signed-in
principal, so the console can do nothing its principal could not do over the REST API, and
everything it does is authorized by the route table's needs and audited like any request. What
the principal may not do is shown disabled, with the permission it lacks, from the same needs.

Browser safety: a session is a random id in a ``__Host-`` cookie (``Secure``, ``HttpOnly``,
``SameSite=Strict``) whose hash the store keeps; every form that changes something carries the
session's CSRF token and must come from this origin; pages are ``no-store`` and framed by
nothing; the Content-Security-Policy allows no script at all, and styles only from this server.
No secret travels in a URL: a secret value is shown only in the answer to an explicit POST.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from strongroom.api.console import views
from strongroom.api.console.views import KINDS, KindView
from strongroom.api.dataplane import DataPlane
from strongroom.api.routing import RouteTable
from strongroom.errors import NotFound, OAuthError, StrongroomError, Throttled, Unauthorized
from strongroom.services import backup
from strongroom.services.audit import list_records
from strongroom.services.console_sessions import ConsoleSession, ConsoleSessions
from strongroom.services.container import Services
from strongroom.services.domains import DomainService
from strongroom.services.identity import Caller
from strongroom.services.rbac import ACTIONS, request_scope
from strongroom.store.base import VaultRecord

_HERE = Path(__file__).parent
COOKIE = "__Host-strongroom-console"
SIGN_IN_COOKIE = "__Host-strongroom-sign-in"
API_VERSION = "7.6"
PAGE = 25
FILTER_PAGES = 10  # how many pages of 25 a name or tag filter searches before offering more
MAX_UPLOAD = 16 * 1024 * 1024
# A request's body: an upload, or the confirming form that carries it back in base64.
MAX_FORM = MAX_UPLOAD * 4 // 3 + 65536
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NOTICES = {
    "created": "Saved.",
    "updated": "Updated.",
    "deleted": "Deleted. It can be recovered from the deleted list until it is purged.",
    "recovered": "Recovered.",
    "purged": "Purged for good.",
    "restored": "Restored.",
    "backup-started": "Backup started.",
}


class Problem(Exception):
    """A data-plane refusal, shown on the page: its status, code and message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Console:
    def __init__(self, services: Services, data: DataPlane, routes: RouteTable):
        self._s = services
        self._data = data
        self._routes = routes
        self.sessions = ConsoleSessions(services.installation)
        self._domains = DomainService(services.installation)
        self._env = Environment(
            loader=FileSystemLoader(_HERE / "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.globals.update(kinds=KINDS, when=views.when)
        settings = services.installation.settings
        port = "" if settings.port == 443 else f":{settings.port}"
        self._origins = {settings.authority, f"https://127.0.0.1{port}", f"https://[::1]{port}"}
        self.app = Starlette(routes=self._routes_list())
        self.app.add_exception_handler(HTTPException, self._http_error)  # type: ignore[arg-type]

    # -- plumbing -----------------------------------------------------------------------

    def _routes_list(self) -> list[Route]:
        page = self._page
        return [
            Route("/console", self.home),
            Route("/console/", self.home),
            Route("/console/static/console.css", self.css),
            Route("/console/sign-in", self.sign_in_form, methods=["GET"]),
            Route("/console/sign-in", self.sign_in, methods=["POST"]),
            Route("/console/link", self.link),
            Route("/console/sign-out", self.sign_out, methods=["POST"]),
            Route("/console/vaults", page(self.vaults)),
            Route("/console/domains", page(self.domains)),
            Route("/console/audit", page(self.audit)),
            Route("/console/vaults/{vault}", page(self.vault)),
            Route("/console/vaults/{vault}/restore", page(self.restore_form), methods=["GET"]),
            Route("/console/vaults/{vault}/restore", page(self.restore_check), methods=["POST"]),
            Route("/console/vaults/{vault}/restore/confirm", page(self.restore), methods=["POST"]),
            Route("/console/vaults/{vault}/backups", page(self.backups), methods=["GET"]),
            Route("/console/vaults/{vault}/backups", page(self.start_backup), methods=["POST"]),
            Route("/console/vaults/{vault}/deleted/{kind}", page(self.deleted)),
            Route(
                "/console/vaults/{vault}/deleted/{kind}/{name}/{action}",
                page(self.deleted_action),
                methods=["POST"],
            ),
            Route("/console/vaults/{vault}/secrets/new", page(self.new_secret), methods=["POST"]),
            Route("/console/vaults/{vault}/keys/new", page(self.new_key), methods=["POST"]),
            Route("/console/vaults/{vault}/{kind}", page(self.objects)),
            Route("/console/vaults/{vault}/{kind}/{name}", page(self.detail), methods=["GET"]),
            Route(
                "/console/vaults/{vault}/{kind}/{name}/{action}",
                page(self.object_action),
                methods=["POST"],
            ),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, secured)

    async def _http_error(self, request: Request, exc: HTTPException) -> Response:
        return self._render(
            request, "error.html", {"status": exc.status_code, "message": exc.detail}, None,
            status=exc.status_code,
        )  # fmt: skip

    def _render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        session: ConsoleSession | None,
        status: int = 200,
    ) -> HTMLResponse:
        notice = NOTICES.get(request.query_params.get("notice", ""))
        body = self._env.get_template(template).render(session=session, notice=notice, **context)
        return HTMLResponse(body, status)

    def _session(self, request: Request) -> ConsoleSession | None:
        session = self.sessions.find(request.cookies.get(COOKIE, ""))
        if session is None or session.operator:
            return session
        try:
            self._s.identity.check_alive(session.client_id)
        except Unauthorized:
            return None
        return session

    def _page(
        self, handler: Callable[[Request, ConsoleSession], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """A page that needs a signed-in session; a POST also needs its CSRF token."""

        async def serve(request: Request) -> Response:
            session = self._session(request)
            if session is None:
                return RedirectResponse("/console/sign-in", 303)
            if request.method == "POST":
                await self._check_form(request, session.csrf)
            try:
                return await handler(request, session)
            except Problem as problem:
                return self._render(
                    request, "error.html",
                    {"status": problem.status, "code": problem.code, "message": problem.message},
                    session, status=problem.status,
                )  # fmt: skip

        return serve

    async def _check_form(self, request: Request, expected: str) -> None:
        origin = request.headers.get("origin")
        if origin is not None and origin not in self._origins:
            raise HTTPException(403, "This form was sent from another site; it was refused.")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_FORM:
            raise HTTPException(413, "The upload is larger than 16 MiB.")
        form = await request.form(max_files=1, max_fields=50)
        sent = form.get("csrf")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise HTTPException(
                403, "The form's security token is missing or stale; reload the page and retry."
            )

    @staticmethod
    def _caller(session: ConsoleSession, tenant: str) -> Caller:
        return Caller(session.client_id, tenant, operator=session.operator)

    async def _api(
        self,
        request: Request,
        session: ConsoleSession,
        vault: str,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        """One data-plane operation as the session's principal; its JSON, or ``Problem``."""
        client = request.client.host if request.client else None
        reply = await self._data.invoke(
            vault,
            self._caller(session, self._s.identity.tenant_id),
            method,
            path,
            {"api-version": API_VERSION, **(query or {})},
            orjson.dumps(body) if body is not None else b"",
            client,
        )
        data = orjson.loads(reply.body) if reply.body else None
        if reply.status >= 400:
            error = (data or {}).get("error") or {}
            inner = error.get("innererror") or {}
            raise Problem(
                reply.status,
                str(inner.get("code") or error.get("code") or "Error"),
                str(error.get("message") or "The operation failed."),
            )
        return data

    def _record(self, session: ConsoleSession, vault: str) -> VaultRecord:
        """The vault, if the session may see it; the data plane's answer for others."""
        try:
            record, _ = self._s.vaults.lookup(vault)
        except NotFound:
            record = None
        if record is None or not (session.operator or self._may_use(record, session.client_id)):
            raise Problem(
                403,
                "Forbidden",
                f"You have no access to a vault named '{vault[:30]}' (or there is no such vault).",
            )
        return record

    def _can(self, session: ConsoleSession, record: VaultRecord) -> Callable[[str, str], str]:
        """``can(method, path)``: "" if the principal may, else the permissions it lacks,
        from the route table's need for that operation."""
        cache: dict[tuple[str, str], str] = {}

        def can(method: str, path: str) -> str:
            key = (method, path)
            if key not in cache:
                if session.operator:
                    cache[key] = ""
                elif self._s.rbac.enabled(record):
                    route, args = self._routes.find(method, path)
                    operation, scope = route.need.operation, request_scope(route.path, args)
                    allowed = self._s.rbac.allows(record, session.client_id, operation, scope)
                    cache[key] = "" if allowed else ACTIONS[operation]
                else:
                    route, _ = self._routes.find(method, path)
                    need = route.need
                    lacking = [
                        f"{kind} {permission}"
                        for kind, permission in ((need.kind, need.permission), *need.also)
                        if not self._s.access.allows(record, session.client_id, kind, permission)
                    ]
                    cache[key] = ", ".join(lacking)
            return cache[key]

        return can

    def _may_use(self, record: VaultRecord, client_id: str) -> bool:
        """Whether the principal may see the vault: any role in it under RBAC, else any
        access-policy permission (or an open vault)."""
        if self._s.rbac.enabled(record):
            return self._s.rbac.may_use(record, client_id)
        return self._s.access.may_use(record, client_id)

    @staticmethod
    def _kind(name: str) -> KindView:
        kind = KINDS.get(name)
        if kind is None:
            raise HTTPException(404, f"'{name[:30]}' is not a kind of object a vault holds.")
        return kind

    @staticmethod
    def _back(path: str, notice: str, **params: str) -> RedirectResponse:
        query = urlencode({"notice": notice, **params})
        return RedirectResponse(f"{path}?{query}", 303)

    # -- signing in and out -------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/console/vaults", 303)

    async def css(self, request: Request) -> Response:
        return FileResponse(_HERE / "static" / "console.css", media_type="text/css")

    def _sign_in_page(self, request: Request, error: str = "", status: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        response = self._render(
            request, "sign_in.html", {"csrf": token, "error": error}, None, status=status
        )
        response.set_cookie(
            SIGN_IN_COOKIE, token, max_age=900, path="/", secure=True, httponly=True,
            samesite="strict",
        )  # fmt: skip
        return response

    async def sign_in_form(self, request: Request) -> Response:
        if self._session(request) is not None:
            return RedirectResponse("/console/vaults", 303)
        return self._sign_in_page(request)

    async def sign_in(self, request: Request) -> Response:
        await self._check_form(request, request.cookies.get(SIGN_IN_COOKIE, "") or "-")
        form = await request.form()
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if not isinstance(client_id, str) or not isinstance(secret, str):
            return self._sign_in_page(request, "Give a client id and its secret.", 400)
        source = request.client.host if request.client else "?"
        try:
            principal = await self._s.identity.sign_in(client_id, secret, source)
        except Throttled as exc:
            return self._sign_in_page(request, exc.message, 429)
        except OAuthError:
            return self._sign_in_page(
                request,
                "That client id and secret do not sign in here. Check them (strongroom "
                "principal list) or make a new secret.",
                401,
            )
        new = self.sessions.start(principal.client_id, principal.name)
        return self._signed_in(new.token)

    def _signed_in(self, token: str) -> Response:
        response = RedirectResponse("/console/vaults", 303)
        response.set_cookie(
            COOKIE, token, max_age=8 * 3600, path="/", secure=True, httponly=True,
            samesite="strict",
        )  # fmt: skip
        response.delete_cookie(SIGN_IN_COOKIE, path="/", secure=True, httponly=True)
        return response

    async def link(self, request: Request) -> Response:
        try:
            new = self.sessions.redeem_link(request.query_params.get("token", ""))
        except Unauthorized as exc:
            return self._sign_in_page(request, exc.message, 401)
        return self._signed_in(new.token)

    async def sign_out(self, request: Request) -> Response:
        token = request.cookies.get(COOKIE, "")
        session = self.sessions.find(token)
        if session is not None:
            await self._check_form(request, session.csrf)
            self.sessions.end(token)
        response = RedirectResponse("/console/sign-in", 303)
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True)
        return response

    # -- vaults -------------------------------------------------------------------------

    def _visible_vaults(self, session: ConsoleSession) -> list[VaultRecord]:
        records = self._s.installation.store.reads.list_vaults()
        return [r for r in records if session.operator or self._may_use(r, session.client_id)]

    def _domain_names(self) -> dict[str, str]:
        return {d.id: d.name for d in self._domains.list_domains()}

    async def vaults(self, request: Request, session: ConsoleSession) -> Response:
        reads = self._s.installation.store.reads
        rows = []
        for record in self._visible_vaults(session):
            rows.append({"record": record, "counts": reads.count_by_kind(record.id)})
        return self._render(
            request, "vaults.html", {"rows": rows, "domains": self._domain_names()}, session
        )

    async def vault(self, request: Request, session: ConsoleSession) -> Response:
        record = self._record(session, request.path_params["vault"])
        reads = self._s.installation.store.reads
        policies = []
        if session.operator:
            policies = self._s.access.list_policies(record)
        else:
            policies = [p for p in self._s.access.list_policies(record)
                        if p.client_id == session.client_id]  # fmt: skip
        return self._render(
            request,
            "vault.html",
            {
                "record": record,
                "counts": reads.count_by_kind(record.id),
                "domains": self._domain_names(),
                "policies": policies,
                "vault_url": self._s.installation.settings.vault_url(record.name),
            },
            session,
        )

    # -- objects ------------------------------------------------------------------------

    async def objects(self, request: Request, session: ConsoleSession) -> Response:
        vault = request.path_params["vault"]
        kind = self._kind(request.path_params["kind"])
        record = self._record(session, vault)
        text = request.query_params.get("q", "").strip()[:100]
        tag = request.query_params.get("tag", "").strip()[:200]
        token = request.query_params.get("from") or None
        found: list[views.Item] = []
        pages = FILTER_PAGES if (text or tag) else 1
        for _ in range(pages):
            query = {"maxresults": str(PAGE)}
            if token:
                query["$skiptoken"] = token
            data = await self._api(request, session, vault, "GET", f"/{kind.collection}",
                                   query=query)  # fmt: skip
            found += [
                item for raw in data.get("value", [])
                if views.matches(item := views.item_of(raw, kind), text, tag)
            ]  # fmt: skip
            token = _skiptoken(data.get("nextLink"))
            if token is None or len(found) >= PAGE:
                break
        more = ""
        if token is not None:
            more = "?" + urlencode({"q": text, "tag": tag, "from": token})
        can = self._can(session, record)
        return self._render(
            request,
            "objects.html",
            {"record": record, "kind": kind, "items": found, "q": text, "tag": tag,
             "more": more, "can": can, "filtered": bool(text or tag)},
            session,
        )  # fmt: skip

    async def detail(self, request: Request, session: ConsoleSession) -> Response:
        return await self._detail(request, session)

    async def _detail(
        self, request: Request, session: ConsoleSession, revealed: dict[str, str] | None = None
    ) -> Response:
        vault, name = request.path_params["vault"], request.path_params["name"]
        kind = self._kind(request.path_params["kind"])
        record = self._record(session, vault)
        quoted = quote(name, safe="")
        extra: dict[str, Any] = {}
        if kind.versions:
            data = await self._api(
                request, session, vault, "GET", f"/{kind.collection}/{quoted}/versions",
                query={"maxresults": str(PAGE)},
            )  # fmt: skip
            items = [views.item_of(raw, kind) for raw in data.get("value", [])]
            items.sort(key=lambda i: i.created, reverse=True)
        else:
            raw = await self._api(request, session, vault, "GET", f"/{kind.collection}/{quoted}")
            items = [views.item_of(raw, kind)]
            extra["storage"] = raw
        if not items:
            raise Problem(404, "NotFound", f"There is no {kind.one} named '{name[:60]}'.")
        can = self._can(session, record)
        if kind.collection == "certificates":
            cert = await self._api(request, session, vault, "GET", f"/certificates/{quoted}")
            extra["facts"] = views.certificate_facts(str(cert.get("cer") or ""))
            if not can("GET", f"/certificates/{quoted}/policy"):
                extra["policy"] = orjson.dumps(
                    await self._api(request, session, vault, "GET",
                                    f"/certificates/{quoted}/policy"),
                    option=orjson.OPT_INDENT_2,
                ).decode()  # fmt: skip
            try:
                pending = await self._api(
                    request, session, vault, "GET", f"/certificates/{quoted}/pending"
                )
                extra["pending"] = pending
            except Problem:
                pass
            if revealed is not None and "chain" in revealed:
                extra["chain"] = views.chain_of(revealed.pop("chain"))
        if kind.collection == "keys":
            key = await self._api(request, session, vault, "GET", f"/keys/{quoted}")
            jwk = key.get("key") or {}
            extra["key"] = {
                "Type": jwk.get("kty", ""),
                "Size or curve": jwk.get("crv") or (
                    str(len(base64.urlsafe_b64decode(jwk["n"] + "==")) * 8) if jwk.get("n")
                    else ""
                ),
                "Operations": ", ".join(jwk.get("key_ops") or []),
            }  # fmt: skip
        return self._render(
            request,
            "detail.html",
            {"record": record, "kind": kind, "name": items[0].name or name, "items": items,
             "can": can, "quoted": quoted, "revealed": revealed or {}, "extra": extra},
            session,
        )  # fmt: skip

    def _target(self, request: Request, session: ConsoleSession) -> tuple[str, str, KindView, str]:
        """An action's vault (which the session must see), object name, kind and action."""
        params = request.path_params
        self._record(session, params["vault"])
        return params["vault"], params["name"], self._kind(params["kind"]), params["action"]

    async def object_action(self, request: Request, session: ConsoleSession) -> Response:
        vault, name, kind, action = self._target(request, session)
        form = await request.form()
        quoted = quote(name, safe="")
        version = _field(form, "version", 64)
        here = f"/console/vaults/{quote(vault)}/{kind.collection}/{quoted}"
        if action == "reveal" and kind.collection == "secrets":
            data = await self._api(
                request, session, vault, "GET", f"/secrets/{quoted}/{quote(version, safe='')}"
            )
            return await self._detail(request, session, {version: str(data.get("value", ""))})
        if action == "chain" and kind.collection == "certificates":
            data = await self._api(request, session, vault, "GET", f"/secrets/{quoted}")
            return await self._detail(request, session, {"chain": str(data.get("value", ""))})
        if action == "attributes" and kind.versions:
            attributes: dict[str, Any] = {"enabled": form.get("enabled") == "on"}
            expires = _field(form, "expires", 10)
            attributes["exp"] = _day_to_ts(expires) if expires else None
            await self._api(
                request, session, vault, "PATCH",
                f"/{kind.collection}/{quoted}/{quote(version, safe='')}",
                {"attributes": attributes},
            )  # fmt: skip
            return self._back(here, "updated")
        if action == "delete":
            await self._api(request, session, vault, "DELETE", f"/{kind.collection}/{quoted}")
            return self._back(f"/console/vaults/{quote(vault)}/{kind.collection}", "deleted")
        if action == "backup":
            data = await self._api(
                request, session, vault, "POST", f"/{kind.collection}/{quoted}/backup"
            )
            blob = base64.urlsafe_b64decode(str(data["value"]) + "=" * (-len(data["value"]) % 4))
            filename = f"{vault}-{kind.one.replace(' ', '-')}-{name}.blob"
            return Response(
                blob,
                media_type="application/octet-stream",
                headers={"Content-Disposition": f'attachment; filename="{quote(filename)}"'},
            )
        raise HTTPException(404, f"'{action[:30]}' is not something a {kind.one} can do here.")

    async def new_secret(self, request: Request, session: ConsoleSession) -> Response:
        vault = request.path_params["vault"]
        self._record(session, vault)
        form = await request.form()
        name = _field(form, "name", 127)
        value = form.get("value")
        if not isinstance(value, str):
            raise Problem(400, "BadParameter", "A secret needs a value.")
        body: dict[str, Any] = {"value": value}
        if content_type := _field(form, "content_type", 255):
            body["contentType"] = content_type
        if tags := _tags(_field(form, "tags", 4000)):
            body["tags"] = tags
        await self._api(request, session, vault, "PUT", f"/secrets/{quote(name, safe='')}", body)
        return self._back(
            f"/console/vaults/{quote(vault)}/secrets/{quote(name, safe='')}", "created"
        )

    async def new_key(self, request: Request, session: ConsoleSession) -> Response:
        vault = request.path_params["vault"]
        self._record(session, vault)
        form = await request.form()
        name = _field(form, "name", 127)
        kty = _field(form, "kty", 10) or "RSA"
        body: dict[str, Any] = {"kty": kty}
        size = _field(form, "size", 10)
        if kty.startswith("RSA") and size:
            if not size.isdigit():
                raise Problem(400, "BadParameter", "The key size must be a number of bits.")
            body["key_size"] = int(size)
        if kty.startswith("EC"):
            body["crv"] = _field(form, "curve", 10) or "P-256"
        if tags := _tags(_field(form, "tags", 4000)):
            body["tags"] = tags
        await self._api(
            request, session, vault, "POST", f"/keys/{quote(name, safe='')}/create", body
        )
        return self._back(f"/console/vaults/{quote(vault)}/keys/{quote(name, safe='')}", "created")

    # -- deleted objects ------------------------------------------------------------------

    async def deleted(self, request: Request, session: ConsoleSession) -> Response:
        vault = request.path_params["vault"]
        kind = self._kind(request.path_params["kind"])
        record = self._record(session, vault)
        query = {"maxresults": str(PAGE)}
        if token := request.query_params.get("from"):
            query["$skiptoken"] = token
        data = await self._api(request, session, vault, "GET", f"/{kind.deleted}", query=query)
        items = [views.item_of(raw, kind, deleted=True) for raw in data.get("value", [])]
        token = _skiptoken(data.get("nextLink"))
        return self._render(
            request,
            "deleted.html",
            {"record": record, "kind": kind, "items": items, "can": self._can(session, record),
             "more": "?" + urlencode({"from": token}) if token else ""},
            session,
        )  # fmt: skip

    async def deleted_action(self, request: Request, session: ConsoleSession) -> Response:
        vault, name, kind, action = self._target(request, session)
        quoted = quote(name, safe="")
        if action == "recover":
            await self._api(request, session, vault, "POST", f"/{kind.deleted}/{quoted}/recover")
        elif action == "purge":
            await self._api(request, session, vault, "DELETE", f"/{kind.deleted}/{quoted}")
        else:
            raise HTTPException(404, f"'{action[:30]}' is not something a deleted object can do.")
        return self._back(
            f"/console/vaults/{quote(vault)}/deleted/{kind.collection}",
            "recovered" if action == "recover" else "purged",
        )

    # -- restore of one object's backup -----------------------------------------------------

    async def restore_form(self, request: Request, session: ConsoleSession) -> Response:
        record = self._record(session, request.path_params["vault"])
        return self._render(
            request, "restore.html", {"record": record, "report": None, "can": self._can(
                session, record)}, session,
        )  # fmt: skip

    async def restore_check(self, request: Request, session: ConsoleSession) -> Response:
        """The dry run: what the uploaded blob holds and whether it would restore here, with
        nothing written; the blob goes back in the confirming form."""
        vault = request.path_params["vault"]
        record = self._record(session, vault)
        form = await request.form()
        upload = form.get("blob")
        if not isinstance(upload, UploadFile):
            raise Problem(400, "BadParameter", "Choose a backup file to upload.")
        blob = _blob_bytes(await upload.read(MAX_UPLOAD + 1))
        report: dict[str, Any] = {"ok": False}
        try:
            header = backup.check_restorable(self._s.installation, record, blob)
        except StrongroomError as exc:
            report["problem"] = exc.message
        else:
            kind = KINDS.get(_COLLECTIONS.get(str(header.get("kind")), ""))
            report.update(header=header, created=views.when(header.get("created")), kind=kind)
            if kind is not None:
                lacking = self._can(session, record)("POST", f"/{kind.collection}/restore")
                taken = self._s.installation.store.reads.get_object(
                    record.id, str(header["kind"]), str(header["name"]).lower()
                )
                if lacking:
                    report["problem"] = f"You may not restore here: this needs {lacking}."
                elif taken is not None:
                    state = "a deleted" if taken.deleted_date is not None else "an"
                    report["problem"] = (
                        f"This vault has {state} {kind.one} named '{header['name']}': restoring "
                        "would conflict. Purge it, or restore into another vault."
                    )
                else:
                    report["ok"] = True
                    report["blob"] = base64.b64encode(blob).decode()
        return self._render(
            request, "restore.html",
            {"record": record, "report": report, "can": self._can(session, record)}, session,
        )  # fmt: skip

    async def restore(self, request: Request, session: ConsoleSession) -> Response:
        vault = request.path_params["vault"]
        self._record(session, vault)
        form = await request.form()
        kind = self._kind(_field(form, "kind", 20))
        raw = form.get("blob")
        if not isinstance(raw, str):
            raise Problem(400, "BadParameter", "The confirming form lost its backup; upload again.")
        blob = base64.b64decode(raw)
        value = base64.urlsafe_b64encode(blob).decode().rstrip("=")
        data = await self._api(
            request, session, vault, "POST", f"/{kind.collection}/restore", {"value": value}
        )
        name, _ = views.name_and_version(str(data.get(kind.id_field) or data.get("id")),
                                         kind.collection)  # fmt: skip
        return self._back(
            f"/console/vaults/{quote(vault)}/{kind.collection}/{quote(name, safe='')}", "restored"
        )

    # -- whole-vault backups ------------------------------------------------------------------

    async def backups(self, request: Request, session: ConsoleSession) -> Response:
        record = self._record(session, request.path_params["vault"])
        can = self._can(session, record)
        lacking = can("POST", "/backup")
        jobs = [] if lacking else self._s.jobs.of_vault(record)
        running = any(job.status == "InProgress" for job in jobs)
        return self._render(
            request, "backups.html",
            {"record": record, "jobs": jobs, "lacking": lacking, "running": running},
            session,
        )  # fmt: skip

    async def start_backup(self, request: Request, session: ConsoleSession) -> Response:
        vault = request.path_params["vault"]
        self._record(session, vault)
        form = await request.form()
        body: dict[str, Any] = {"storageResourceUri": _field(form, "container", 2000)}
        if token := _field(form, "sas", 4000):
            body["token"] = token
        else:
            body["useManagedIdentity"] = True
        if form.get("include_deleted") == "on":
            body["includeDeleted"] = True
        await self._api(request, session, vault, "POST", "/backup", body)
        return self._back(f"/console/vaults/{quote(vault)}/backups", "backup-started")

    # -- security domains and the audit log ---------------------------------------------------

    async def domains(self, request: Request, session: ConsoleSession) -> Response:
        visible = {r.domain_id for r in self._visible_vaults(session)}
        vaults_by_domain: dict[str, list[str]] = {}
        for r in self._s.installation.store.reads.list_vaults():
            if session.operator or r.domain_id in visible:
                vaults_by_domain.setdefault(r.domain_id, []).append(r.name)
        domains = [d for d in self._domains.list_domains() if session.operator or d.id in visible]
        return self._render(
            request, "domains.html", {"domains": domains, "vaults": vaults_by_domain}, session
        )

    async def audit(self, request: Request, session: ConsoleSession) -> Response:
        q = request.query_params
        vault = q.get("vault", "").strip().lower()[:24] or None
        principal = q.get("principal", "").strip()[:100]
        operation = q.get("operation", "").strip()[:60]
        result = q.get("result", "")
        hours = q.get("hours", "24")
        span = int(hours) * 3600 if hours.isdigit() and 0 < int(hours) <= 24 * 90 else 86400
        now = self._s.installation.clock.now()
        if not session.operator:
            principal = session.client_id  # a principal sees its own requests only
        visible = {r.name for r in self._visible_vaults(session)}
        if vault is not None and not session.operator and vault not in visible:
            vault = "-"  # no records: not a vault this principal may look at
        await self._s.audit.settle()  # this process's records, written
        records = list_records(self._s.installation, vault, now - span, 20_000)
        records = [
            r for r in records
            if (not principal or r.principal == principal)
            and (not operation or operation.lower() in r.operation.lower())
            and (not result or views.outcome(r.status) == result)
        ]  # fmt: skip
        records.sort(key=lambda r: r.ts, reverse=True)
        return self._render(
            request,
            "audit.html",
            {"records": records[:200], "total": len(records),
             "bars": views.chart(records, now - span, now), "chart_w": views.CHART_W,
             "chart_h": views.CHART_H, "vault": vault if vault != "-" else q.get("vault", ""),
             "principal": "" if not session.operator else principal, "operation": operation,
             "result": result, "hours": str(span // 3600), "outcome": views.outcome},
            session,
        )  # fmt: skip


_COLLECTIONS = {"secret": "secrets", "key": "keys", "certificate": "certificates",
                "storage": "storage"}  # fmt: skip


def _skiptoken(link: Any) -> str | None:
    if not isinstance(link, str) or not link:
        return None
    for part in urlsplit(link).query.split("&"):
        key, _, value = part.partition("=")
        if key == "$skiptoken":
            return unquote(value)
    return None


def _field(form: Any, name: str, limit: int) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    if len(value) > limit:
        raise Problem(400, "BadParameter", f"'{name}' is longer than {limit} characters.")
    return value.strip()


def _tags(text: str) -> dict[str, str]:
    """``a=b, c=d`` (commas or new lines) → tags."""
    tags: dict[str, str] = {}
    for part in text.replace("\n", ",").split(","):
        if part.strip():
            key, has_value, value = part.partition("=")
            if not has_value or not key.strip():
                raise Problem(400, "BadParameter", f"Tags are name=value pairs; got '{part[:40]}'.")
            tags[key.strip()] = value.strip()
    return tags


def _day_to_ts(text: str) -> int:
    try:
        return int(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
    except ValueError as exc:
        raise Problem(400, "BadParameter", f"'{text}' is not a date (YYYY-MM-DD).") from exc


def _blob_bytes(data: bytes) -> bytes:
    """A backup file as ``secret backup``, az and the console write it (raw), or as the
    REST API's base64url ``value``."""
    if len(data) > MAX_UPLOAD:
        raise Problem(413, "RequestTooLarge", "A backup blob is at most 16 MiB.")
    if data.startswith(b"SRBK"):
        return data
    try:
        text = data.decode("ascii").strip()
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, UnicodeDecodeError):
        return data
