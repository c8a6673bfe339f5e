"""Secret operations (secrets.json): thin handlers over ``SecretService``."""

from __future__ import annotations

from strongroom.api import wire
from strongroom.api.calls import Call, Reply, page_reply
from strongroom.api.calls import json_reply as _json
from strongroom.api.kinds import ObjectKind, lifecycle_routes
from strongroom.api.routing import Route
from strongroom.errors import NotFound
from strongroom.models import SecretVersion, Vault
from strongroom.services.secrets import SecretService
from strongroom.services.storage import SasService


class SecretRoutes:
    MAX_RENDERED = 10_000

    def __init__(self, service: SecretService, sas: SasService | None = None):
        self._s = service
        self._sas = sas
        # Rendered GET bodies, reused while the service hands back the very same cached
        # SecretVersion object (any write replaces it) for the same vault object and host.
        self._rendered: dict[tuple[int, str], tuple[SecretVersion, Vault, bytes]] = {}

    def kind(self) -> ObjectKind[SecretVersion]:
        return ObjectKind(
            "secrets", "deletedsecrets", "secrets", "Secret", self._s,
            lambda call, s: wire.secret_bundle(call.base, call.vault, s, value=False),
            lambda call, s: wire.secret_item(call.base, call.vault, s, versioned=False),
        )  # fmt: skip

    def routes(self) -> list[Route]:
        kind = self.kind()
        need = kind.need
        return [
            Route("GET", "/secrets", self.get_secrets, need("list", "List")),
            Route("PUT", "/secrets/{name}", self.set_secret, need("set", "Set")),
            Route("GET", "/secrets/{name}/{version?}", self.get_secret, need("get", "Get")),
            Route("PATCH", "/secrets/{name}/{version?}", self.update_secret, need("set", "Update")),
            Route(
                "GET",
                "/secrets/{name}/versions",
                self.get_secret_versions,
                need("list", "ListVersions"),
            ),
            *lifecycle_routes(kind),
        ]

    # -- handlers ---------------------------------------------------------------------------

    async def set_secret(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        secret = await self._s.set_secret(
            call.record,
            name,
            wire.req_str(data, "value"),
            content_type=wire.opt_str(data, "contentType"),
            attributes=wire.attributes(data),
            tags=wire.tags(data),
        )
        return _json(wire.secret_bundle(call.base, call.vault, secret, value=True))

    async def get_secret(self, call: Call) -> Reply:
        name, version = call.args
        wanted = call.query.get("outContentType")
        if wanted:
            converted = self._s.get_secret_as(call.record, name, version, wanted)
            return _json(wire.secret_bundle(call.base, call.vault, converted, value=True))
        try:
            secret = self._s.get_secret(call.record, name, version)
        except NotFound:
            if self._sas is None:
                raise
            return self._sas_token(call, name, version)
        key = (id(secret), call.base)
        hit = self._rendered.get(key)
        if hit is not None and hit[0] is secret and hit[1] is call.vault:
            return Reply(200, hit[2])
        reply = _json(wire.secret_bundle(call.base, call.vault, secret, value=True))
        if len(self._rendered) >= self.MAX_RENDERED:
            self._rendered.clear()
        self._rendered[key] = (secret, call.vault, reply.body)
        return reply

    def _sas_token(self, call: Call, name: str, version: str) -> Reply:
        """No secret of that name: the secret {account}-{definition} of a SAS definition is
        its token (contract notes, storage), minted on each read; else the secret's 404."""
        assert self._sas is not None
        try:
            token = self._sas.token_secret(call.record, name, version)
        except NotFound:
            raise self._s.not_found(f"{name}/{version}" if version else name) from None
        return _json(wire.sas_token_secret(call.base, call.vault, token))

    async def update_secret(self, call: Call) -> Reply:
        name, version = call.args
        data = wire.parse_object(await call.body())
        secret = await self._s.update_secret(
            call.record,
            name,
            version,
            content_type=wire.opt_str(data, "contentType"),
            attributes=wire.attributes(data),
            tags=wire.tags(data),
        )
        # The service leaves the value out of an update's response.
        return _json(wire.secret_bundle(call.base, call.vault, secret, value=False))

    async def get_secrets(self, call: Call) -> Reply:
        page = self._s.get_secrets(call.record, call.maxresults, call.skiptoken)
        items = [wire.secret_item(call.base, call.vault, s, versioned=False) for s in page.items]
        return page_reply(call, "/secrets", page, items)

    async def get_secret_versions(self, call: Call) -> Reply:
        (name,) = call.args
        page = self._s.get_secret_versions(call.record, name, call.maxresults, call.skiptoken)
        items = [wire.secret_item(call.base, call.vault, s, versioned=True) for s in page.items]
        return page_reply(call, f"/secrets/{name}/versions", page, items)
