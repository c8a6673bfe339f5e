"""Key operations (keys.json): thin handlers over ``KeyService``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from strongroom.api import wire
from strongroom.api.dataplane import (
    Call,
    Handler,
    Reply,
    blob_of,
    blob_reply,
    json_reply,
    method_not_allowed,
    next_link,
    only,
)
from strongroom.errors import BadParameter, NotFound
from strongroom.models import KeyResult, KeyVersion
from strongroom.services.keys import KeyService

# Operations on /keys/{name}/{version}/{op}; spec paths are lower-case.
_OPERATIONS = ("encrypt", "decrypt", "sign", "verify", "wrapkey", "unwrapkey")


def _result(call: Call, r: KeyResult) -> Reply:
    body: dict[str, object] = {
        "kid": f"{call.base}/keys/{r.name}/{r.kid_version}",
        "value": wire.b64url_encode(r.value),
    }
    for field, raw in (("iv", r.iv), ("tag", r.tag), ("aad", r.aad)):
        if raw is not None:
            body[field] = wire.b64url_encode(raw)
    return json_reply(body)


class KeyRoutes:
    def __init__(self, service: KeyService):
        self._k = service

    # -- routers ----------------------------------------------------------------------------

    def keys(self, method: str, rest: list[str]) -> tuple[Handler, tuple[str, ...]]:
        """Paths under /keys."""
        if not rest or rest == [""]:
            return only(method, "GET", "GetKeys", self.get_keys), ()
        name, tail = rest[0], rest[1:]
        if name.lower() == "restore" and not tail:
            return only(method, "POST", "restore", self.restore_key), ()
        if not tail:
            table = {
                "PUT": self.import_key,
                "GET": self.get_key,
                "PATCH": self.update_key,
                "DELETE": self.delete_key,
            }
            if method not in table:
                raise method_not_allowed(method, "key")
            return table[method], (name, "")
        word = tail[0].lower()
        if len(tail) == 1:
            named: dict[str, tuple[str, Callable[[Call], Awaitable[Reply]]]] = {
                "create": ("POST", self.create_key),
                "backup": ("POST", self.backup_key),
                "rotate": ("POST", self.rotate_key),
                "versions": ("GET", self.get_key_versions),
            }
            if word in named:
                wanted, handler = named[word]
                return only(method, wanted, word, handler), (name,)
            if word == "rotationpolicy":
                table = {"GET": self.get_rotation_policy, "PUT": self.update_rotation_policy}
                if method not in table:
                    raise method_not_allowed(method, "rotationpolicy")
                return table[method], (name,)
        if tail == ["versions", ""]:
            return only(method, "GET", "versions", self.get_key_versions), (name,)
        version = tail[0]
        if len(tail) == 1 or (len(tail) == 2 and tail[1] == ""):
            table = {"GET": self.get_key, "PATCH": self.update_key}
            if method not in table:
                raise method_not_allowed(method, "key version")
            return table[method], (name, version)
        if len(tail) == 2 and tail[1].lower() in _OPERATIONS:
            op = tail[1].lower()
            return only(method, "POST", op, self.operation), (name, version, op)
        if len(tail) == 2 and tail[1].lower() in ("release", "attestation"):
            raise BadParameter(
                f"'{tail[1]}' is a Managed HSM operation that Strongroom does not offer."
            )
        raise NotFound(f"No key operation at /keys/{'/'.join(rest)[:100]}.", code="NotFound")

    def deleted_keys(self, method: str, rest: list[str]) -> tuple[Handler, tuple[str, ...]]:
        """Paths under /deletedkeys."""
        if not rest or rest == [""]:
            return only(method, "GET", "GetDeletedKeys", self.get_deleted_keys), ()
        name, tail = rest[0], rest[1:]
        if not tail or tail == [""]:
            table = {"GET": self.get_deleted_key, "DELETE": self.purge_deleted_key}
            if method not in table:
                raise method_not_allowed(method, "deleted key")
            return table[method], (name,)
        if len(tail) == 1 and tail[0].lower() == "recover":
            return only(method, "POST", "recover", self.recover_deleted_key), (name,)
        raise NotFound(f"No operation at /deletedkeys/{'/'.join(rest)[:100]}.", code="NotFound")

    def rng(self, method: str, rest: list[str]) -> tuple[Handler, tuple[str, ...]]:
        if rest and rest != [""]:
            raise NotFound("No operation under /rng.", code="NotFound")
        return only(method, "POST", "GetRandomBytes", self.get_random_bytes), ()

    # -- handlers ---------------------------------------------------------------------------

    def _bundle(self, call: Call, key: KeyVersion) -> Reply:
        return json_reply(wire.key_bundle(call.base, call.vault, key))

    async def create_key(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        key = await self._k.create_key(
            call.record,
            name,
            wire.req_str(data, "kty"),
            key_size=wire.opt_int(data, "key_size"),
            public_exponent=wire.opt_int(data, "public_exponent"),
            crv=wire.opt_str(data, "crv"),
            key_ops=wire.opt_str_list(data, "key_ops"),
            attributes=wire.key_attributes(data),
            tags=wire.tags(data),
            release_policy=wire.opt_object(data, "release_policy"),
        )
        return self._bundle(call, key)

    async def import_key(self, call: Call) -> Reply:
        (name, _) = call.args
        data = wire.parse_object(await call.body())
        jwk = wire.opt_object(data, "key")
        if jwk is None:
            raise BadParameter("'key' (a JSON Web Key with its private parts) is required.")
        hsm = data.get("Hsm")
        if hsm is not None and not isinstance(hsm, bool):
            raise BadParameter("'Hsm' must be true or false.")
        key = await self._k.import_key(
            call.record,
            name,
            jwk,
            hsm=hsm,
            attributes=wire.key_attributes(data),
            tags=wire.tags(data),
            release_policy=wire.opt_object(data, "release_policy"),
        )
        return self._bundle(call, key)

    async def get_key(self, call: Call) -> Reply:
        name, version = call.args
        return self._bundle(call, self._k.get_key(call.record, name, version))

    async def update_key(self, call: Call) -> Reply:
        name, version = call.args
        data = wire.parse_object(await call.body())
        key = await self._k.update_key(
            call.record,
            name,
            version,
            key_ops=wire.opt_str_list(data, "key_ops"),
            attributes=wire.key_attributes(data),
            tags=wire.tags(data),
            release_policy=wire.opt_object(data, "release_policy"),
        )
        return self._bundle(call, key)

    async def rotate_key(self, call: Call) -> Reply:
        (name,) = call.args
        return self._bundle(call, await self._k.rotate_key(call.record, name))

    async def delete_key(self, call: Call) -> Reply:
        (name, _) = call.args
        key, deletion = await self._k.delete_key(call.record, name)
        body = wire.key_bundle(call.base, call.vault, key)
        return json_reply(wire.deleted_key(call.base, key.name, body, deletion))

    async def get_keys(self, call: Call) -> Reply:
        page = self._k.get_keys(
            call.record, call.int_query("maxresults"), call.query.get("$skiptoken")
        )
        items = [wire.key_item(call.base, call.vault, k, versioned=False) for k in page.items]
        return json_reply({"value": items, "nextLink": next_link(call, "/keys", page)})

    async def get_key_versions(self, call: Call) -> Reply:
        (name,) = call.args
        page = self._k.get_key_versions(
            call.record, name, call.int_query("maxresults"), call.query.get("$skiptoken")
        )
        items = [wire.key_item(call.base, call.vault, k, versioned=True) for k in page.items]
        link = next_link(call, f"/keys/{name}/versions", page)
        return json_reply({"value": items, "nextLink": link})

    async def get_deleted_keys(self, call: Call) -> Reply:
        page = self._k.get_deleted_keys(
            call.record, call.int_query("maxresults"), call.query.get("$skiptoken")
        )
        items = [
            wire.deleted_key(
                call.base, k.name, wire.key_item(call.base, call.vault, k, versioned=False), d
            )
            for k, d in page.items
        ]
        return json_reply({"value": items, "nextLink": next_link(call, "/deletedkeys", page)})

    async def get_deleted_key(self, call: Call) -> Reply:
        (name,) = call.args
        key, deletion = self._k.get_deleted_key(call.record, name)
        body = wire.key_bundle(call.base, call.vault, key)
        return json_reply(wire.deleted_key(call.base, key.name, body, deletion))

    async def recover_deleted_key(self, call: Call) -> Reply:
        (name,) = call.args
        return self._bundle(call, await self._k.recover_deleted_key(call.record, name))

    async def purge_deleted_key(self, call: Call) -> Reply:
        (name,) = call.args
        await self._k.purge_deleted_key(call.record, name)
        return Reply(204)

    async def backup_key(self, call: Call) -> Reply:
        (name,) = call.args
        return blob_reply(self._k.backup_key(call.record, name))

    async def restore_key(self, call: Call) -> Reply:
        blob = await blob_of(call)
        return self._bundle(call, await self._k.restore_key(call.record, blob))

    async def operation(self, call: Call) -> Reply:
        name, version, op = call.args
        data = wire.parse_object(await call.body())
        alg = wire.req_str(data, "alg")
        vault = call.record
        if op == "sign":
            return _result(
                call, await self._k.sign(vault, name, version, alg, wire.req_b64(data, "value"))
            )
        if op == "verify":
            digest, signature = wire.req_b64(data, "digest"), wire.req_b64(data, "value")
            _, ok = self._k.verify(vault, name, version, alg, digest, signature)
            return json_reply({"value": ok})
        value = wire.req_b64(data, "value")
        iv, aad = wire.opt_b64(data, "iv"), wire.opt_b64(data, "aad")
        if op == "encrypt":
            return _result(call, await self._k.encrypt(vault, name, version, alg, value, iv, aad))
        if op == "decrypt":
            tag = wire.opt_b64(data, "tag")
            result = await self._k.decrypt(vault, name, version, alg, value, iv, aad, tag)
            return _result(call, result)
        if op == "wrapkey":
            return _result(call, await self._k.wrap_key(vault, name, version, alg, value))
        return _result(call, await self._k.unwrap_key(vault, name, version, alg, value))

    def _policy(self, call: Call, name: str, policy: dict[str, object]) -> Reply:
        return json_reply({"id": f"{call.base}/keys/{name}/rotationpolicy", **policy})

    async def get_rotation_policy(self, call: Call) -> Reply:
        (name,) = call.args
        return self._policy(call, name, self._k.get_key_rotation_policy(call.record, name))

    async def update_rotation_policy(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        policy = await self._k.update_key_rotation_policy(call.record, name, data)
        return self._policy(call, name, policy)

    async def get_random_bytes(self, call: Call) -> Reply:
        data = wire.parse_object(await call.body())
        count = wire.opt_int(data, "count")
        if count is None:
            raise BadParameter("'count' is required.")
        return json_reply({"value": wire.b64url_encode(self._k.get_random_bytes(count))})
