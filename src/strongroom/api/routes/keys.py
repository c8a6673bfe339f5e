"""Key operations (keys.json): thin handlers over ``KeyService``."""

from __future__ import annotations

from strongroom.api import wire
from strongroom.api.calls import Call, Reply, json_reply, page_reply
from strongroom.api.kinds import ObjectKind, lifecycle_routes
from strongroom.api.routing import Handler, Need, Refusal, Route
from strongroom.errors import BadParameter
from strongroom.models import KeyResult, KeyVersion
from strongroom.services.keys import KeyService

# POST /keys/{name}/{version}/{op} (spec paths are lower-case): the permission each needs,
# Key Vault's name for it, and the audit operation's suffix.
_OPERATIONS = {
    "encrypt": ("encrypt", "Encrypt"),
    "decrypt": ("decrypt", "Decrypt"),
    "sign": ("sign", "Sign"),
    "verify": ("verify", "Verify"),
    "wrapkey": ("wrapKey", "Wrap"),
    "unwrapkey": ("unwrapKey", "Unwrap"),
}


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

    def kind(self) -> ObjectKind[KeyVersion]:
        return ObjectKind(
            "keys", "deletedkeys", "keys", "Key", self._k,
            lambda call, k: wire.key_bundle(call.base, call.vault, k),
            lambda call, k: wire.key_item(call.base, call.vault, k, versioned=False),
        )  # fmt: skip

    def routes(self) -> list[Route]:
        kind = self.kind()
        need = kind.need
        routes = [
            Route("GET", "/keys", self.get_keys, need("list", "List")),
            Route("PUT", "/keys/{name}", self.import_key, need("import", "Import")),
            Route("POST", "/keys/{name}/create", self.create_key, need("create", "Create")),
            Route("POST", "/keys/{name}/rotate", self.rotate_key, need("rotate", "Rotate")),
            Route(
                "GET", "/keys/{name}/versions", self.get_key_versions, need("list", "ListVersions")
            ),
            Route("GET", "/keys/{name}/{version?}", self.get_key, need("get", "Get")),
            Route("PATCH", "/keys/{name}/{version?}", self.update_key, need("update", "Update")),
            Route(
                "GET",
                "/keys/{name}/rotationpolicy",
                self.get_rotation_policy,
                need("getrotationpolicy", "GetRotationPolicy"),
            ),
            Route(
                "PUT",
                "/keys/{name}/rotationpolicy",
                self.update_rotation_policy,
                need("setrotationpolicy", "SetRotationPolicy"),
            ),
            # Managed HSM's data action Microsoft.KeyVault/managedHsm/rng/action; a key
            # permission of Strongroom's own, since Key Vault's access policies have no such
            # operation.
            Route(
                "POST",
                "/rng",
                self.get_random_bytes,
                Need("keys", "rng", "GetRandomBytes"),
                writes=False,
            ),
            *lifecycle_routes(kind),
        ]
        for op, (permission, operation) in _OPERATIONS.items():
            handler = self._operation(op)
            path = f"/keys/{{name}}/{{version?}}/{op}"
            routes.append(Route("POST", path, handler, need(permission, operation), writes=False))
        return routes

    @staticmethod
    def refusals() -> list[Refusal]:
        return [
            Refusal(
                f"/keys/{{name}}/{{version?}}/{op}",
                f"'{op}' is a Managed HSM operation that Strongroom does not offer.",
            )
            for op in ("release", "attestation")
        ]

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
        (name,) = call.args
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

    async def get_keys(self, call: Call) -> Reply:
        page = self._k.get_keys(call.record, call.maxresults, call.skiptoken)
        items = [wire.key_item(call.base, call.vault, k, versioned=False) for k in page.items]
        return page_reply(call, "/keys", page, items)

    async def get_key_versions(self, call: Call) -> Reply:
        (name,) = call.args
        page = self._k.get_key_versions(call.record, name, call.maxresults, call.skiptoken)
        items = [wire.key_item(call.base, call.vault, k, versioned=True) for k in page.items]
        return page_reply(call, f"/keys/{name}/versions", page, items)

    def _operation(self, op: str) -> Handler:
        async def handler(call: Call) -> Reply:
            return await self.operation(call, op)

        return handler

    async def operation(self, call: Call, op: str) -> Reply:
        name, version = call.args
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
