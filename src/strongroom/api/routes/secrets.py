"""Secret operations (secrets.json): thin handlers over ``SecretService``."""

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

    # -- routers ----------------------------------------------------------------------------

    def secrets(self, method: str, rest: list[str]) -> tuple[Handler, tuple[str, ...]]:
        """Paths under /secrets."""
        if not rest or rest == [""]:
            return only(method, "GET", "GetSecrets", self.get_secrets), ()
        name, tail = rest[0], rest[1:]
        if name.lower() == "restore" and not tail:
            return only(method, "POST", "restore", self.restore_secret), ()
        if not tail:
            table = {
                "PUT": self.set_secret,
                "GET": self.get_secret,
                "PATCH": self.update_secret,
                "DELETE": self.delete_secret,
            }
            if method not in table:
                raise method_not_allowed(method, "secret")
            return table[method], (name, "")
        if len(tail) == 1 and tail[0].lower() == "backup":
            return only(method, "POST", "backup", self.backup_secret), (name,)
        if tail in (["versions"], ["versions", ""]):
            return only(method, "GET", "GetSecretVersions", self.get_secret_versions), (name,)
        if len(tail) == 1 or (len(tail) == 2 and tail[1] == ""):
            table = {"GET": self.get_secret, "PATCH": self.update_secret}
            if method not in table:
                raise method_not_allowed(method, "secret version")
            return table[method], (name, tail[0])
        raise NotFound(f"No secret operation at /secrets/{'/'.join(rest)[:100]}.", code="NotFound")

    def deleted_secrets(self, method: str, rest: list[str]) -> tuple[Handler, tuple[str, ...]]:
        """Paths under /deletedsecrets."""
        if not rest or rest == [""]:
            return only(method, "GET", "GetDeletedSecrets", self.get_deleted_secrets), ()
        name, tail = rest[0], rest[1:]
        if not tail or tail == [""]:
            table = {"GET": self.get_deleted_secret, "DELETE": self.purge_deleted_secret}
            if method not in table:
                raise method_not_allowed(method, "deleted secret")
            return table[method], (name,)
        if len(tail) == 1 and tail[0].lower() == "recover":
            return only(method, "POST", "recover", self.recover_deleted_secret), (name,)
        raise NotFound(f"No operation at /deletedsecrets/{'/'.join(rest)[:100]}.", code="NotFound")

    # -- handlers ---------------------------------------------------------------------------

    async def set_secret(self, call: Call) -> Reply:
        (name, _) = call.args
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

    async def delete_secret(self, call: Call) -> Reply:
        (name, _) = call.args
        secret, deletion = await self._s.delete_secret(call.record, name)
        body = wire.secret_bundle(call.base, call.vault, secret, value=False)
        return _json(wire.deleted(call.base, secret.name, body, deletion))

    async def get_secrets(self, call: Call) -> Reply:
        page = self._s.get_secrets(
            call.record, call.int_query("maxresults"), call.query.get("$skiptoken")
        )
        items = [wire.secret_item(call.base, call.vault, s, versioned=False) for s in page.items]
        return _json({"value": items, "nextLink": next_link(call, "/secrets", page)})

    async def get_secret_versions(self, call: Call) -> Reply:
        (name,) = call.args
        page = self._s.get_secret_versions(
            call.record, name, call.int_query("maxresults"), call.query.get("$skiptoken")
        )
        items = [wire.secret_item(call.base, call.vault, s, versioned=True) for s in page.items]
        link = next_link(call, f"/secrets/{name}/versions", page)
        return _json({"value": items, "nextLink": link})

    async def get_deleted_secrets(self, call: Call) -> Reply:
        page = self._s.get_deleted_secrets(
            call.record, call.int_query("maxresults"), call.query.get("$skiptoken")
        )
        items = [
            wire.deleted(
                call.base, s.name, wire.secret_item(call.base, call.vault, s, versioned=False), d
            )
            for s, d in page.items
        ]
        return _json({"value": items, "nextLink": next_link(call, "/deletedsecrets", page)})

    async def get_deleted_secret(self, call: Call) -> Reply:
        (name,) = call.args
        secret, deletion = self._s.get_deleted_secret(call.record, name)
        body = wire.secret_bundle(call.base, call.vault, secret, value=False)
        return _json(wire.deleted(call.base, secret.name, body, deletion))

    async def recover_deleted_secret(self, call: Call) -> Reply:
        (name,) = call.args
        secret = await self._s.recover_deleted_secret(call.record, name)
        return _json(wire.secret_bundle(call.base, call.vault, secret, value=False))

    async def purge_deleted_secret(self, call: Call) -> Reply:
        (name,) = call.args
        await self._s.purge_deleted_secret(call.record, name)
        return Reply(204)

    async def backup_secret(self, call: Call) -> Reply:
        (name,) = call.args
        return blob_reply(self._s.backup_secret(call.record, name))

    async def restore_secret(self, call: Call) -> Reply:
        blob = await blob_of(call)
        secret = await self._s.restore_secret(call.record, blob)
        return _json(wire.secret_bundle(call.base, call.vault, secret, value=False))
