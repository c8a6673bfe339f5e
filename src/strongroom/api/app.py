"""The ASGI application: Host decides whether a request is identity/admin or a vault's data plane.

``localhost[:port]`` (and the loopback literals) → identity, health.
``{vault}.{suffix}[:port]`` → that vault's data plane (Key Vault REST API).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from strongroom.api.console.app import MAX_FORM, Console
from strongroom.api.dataplane import DataPlane
from strongroom.api.errors import JSON, error_body
from strongroom.api.limits import MAX_TOKEN_BODY, BodyLimit
from strongroom.api.routes import route_table
from strongroom.api.routes.admin import AdminRoutes
from strongroom.api.routes.health import Health
from strongroom.api.routes.identity import IdentityRoutes
from strongroom.clock import ManualClock
from strongroom.services.container import Services
from strongroom.services.installation import Installation
from strongroom.services.replication import Follower

log = logging.getLogger(__name__)
# A vault's name as a Host label (identifiers.check_vault_name's rule, lower-cased).
_VAULT_LABEL = re.compile(r"[a-z][a-z0-9-]{1,22}[a-z0-9]")


class StrongroomApp:
    MAX_HOSTS = 4096

    def __init__(self, inst: Installation):
        settings = inst.settings
        self.services = Services(inst)
        self.scheduler = self.services.scheduler
        self._suffix = "." + settings.vault_suffix.lower()
        # Host headers already seen naming a vault ({vault}.{suffix}[:port]), and its name:
        # every data-plane request needs it, and most come from a few hosts.
        self._vaults_by_host: dict[bytes, str] = {}
        self._identity_hosts = {settings.host.lower(), "127.0.0.1", "[::1]"}
        self._forwarded_allow = frozenset(settings.forwarded_allow)
        self.routes = route_table(self.services)
        self._data = DataPlane(
            self.services.identity,
            self.services.vaults,
            self.routes,
            settings.authority,
            settings.vault_resource,
            self.services.access,
            self.services.audit,
            settings.vault_url,
            self.services.rbac,
        )
        suffix_netloc = settings.vault_resource.removeprefix("https://")
        routes = IdentityRoutes(
            self.services.identity, settings.authority, settings.vault_resource, suffix_netloc
        ).routes()
        routes += Health(settings, self.services.identity.tenant_id).routes()
        if isinstance(inst.clock, ManualClock):
            admin = AdminRoutes(self.services.identity, inst.clock, self.scheduler_pass, settings)
            routes += admin.routes()
        self._identity = BodyLimit(Starlette(routes=routes), MAX_TOKEN_BODY)
        self.console = Console(self.services, self._data, self.routes)
        self._console = BodyLimit(self.console, MAX_FORM)
        self._purger: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        host = b""
        for key, value in scope["headers"]:
            if key == b"host":
                host = value
                break
        if self._forwarded_allow:
            scope = self._forwarded_client(scope)
        vault = self._vaults_by_host.get(host)
        if vault is not None:
            await self._data(scope, receive, send, vault)
            return
        name = host.decode("latin-1").lower()
        # "[::1]:8443" keeps its brackets; "host:8443" loses its port. Anything after the
        # name but a port (":8443@evil") makes the Host unknown.
        if name.startswith("["):
            hostname, _, rest = name.partition("]")
            hostname += "]"
            port = rest.removeprefix(":") if rest.startswith(":") else rest
        else:
            hostname, colon, port = name.partition(":")
            port = port if colon else ""
            if colon and not port:
                port = "-"
        if port and not port.isdigit():
            hostname = ""
        if hostname.endswith(self._suffix):
            vault = hostname[: -len(self._suffix)]
            if _VAULT_LABEL.fullmatch(vault):
                if len(self._vaults_by_host) >= self.MAX_HOSTS:
                    self._vaults_by_host.clear()
                self._vaults_by_host[host] = vault
                await self._data(scope, receive, send, vault)
                return
        elif hostname in self._identity_hosts:
            path = scope["path"]
            if path.startswith("//"):  # az joins a resource-manager URL ending in "/" and a path
                scope = dict(scope, path="/" + path.lstrip("/"))
            if path == "/console" or path.startswith("/console/"):
                await self._console(scope, receive, send)
                return
            await self._identity(scope, receive, send)
            return
        response = Response(
            error_body(
                "UnknownHost",
                f"Host '{name[:100]}' is neither this server's identity host nor "
                f"'<vault>{self._suffix}'.",
            ),
            404,
            media_type=JSON,
        )
        await response(scope, receive, send)

    def _forwarded_client(self, scope: Scope) -> Scope:
        """The client a trusted load balancer names: the last address of X-Forwarded-For
        (the one it added itself); from any other peer the header is ignored."""
        peer = scope.get("client")
        if peer is None or peer[0] not in self._forwarded_allow:
            return scope
        forwarded = b""
        for key, value in scope["headers"]:
            if key == b"x-forwarded-for":
                forwarded = value
        client = forwarded.decode("latin-1").rsplit(",", 1)[-1].strip()
        return {**scope, "client": (client[:64], 0)} if client else scope

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message: Any = await receive()
            if message["type"] == "lifespan.startup":
                self._purger = asyncio.create_task(self.scheduler.run_forever())
                follower = Follower(
                    self.services.replication, self.services.installation,
                    self.services.installation.settings.replication_interval,
                )  # fmt: skip
                self._follower = asyncio.create_task(follower.run_forever())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in (self._purger, self._follower):
                    if task is not None:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                await self.services.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def scheduler_pass(self) -> dict[str, int]:
        return await self.scheduler.run_pass()


def create_app(inst: Installation) -> StrongroomApp:
    return StrongroomApp(inst)
