"""Certificate operations (certificates.json): thin handlers over ``CertificateService``."""

from __future__ import annotations

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
from strongroom.models import CertificateVersion
from strongroom.services.certificates import CertificateService
from strongroom.services.issuers import IssuerService


class CertificateRoutes:
    def __init__(self, service: CertificateService, issuers: IssuerService):
        self._c = service
        self._i = issuers

    # -- routers ----------------------------------------------------------------------------

    def certificates(self, method: str, rest: list[str]) -> tuple[Handler, tuple[str, ...]]:
        """Paths under /certificates."""
        if not rest or rest == [""]:
            return only(method, "GET", "GetCertificates", self.get_certificates), ()
        name, tail = rest[0], rest[1:]
        if name.lower() == "restore" and not tail:
            return only(method, "POST", "restore", self.restore_certificate), ()
        if name.lower() == "contacts" and not tail:
            table = {
                "GET": self.get_contacts,
                "PUT": self.set_contacts,
                "DELETE": self.delete_contacts,
            }
            if method not in table:
                raise method_not_allowed(method, "contacts")
            return table[method], ()
        if name.lower() == "issuers":
            if not tail or tail == [""]:
                return only(method, "GET", "GetCertificateIssuers", self.get_issuers), ()
            if len(tail) == 1:
                table = {
                    "GET": self.get_issuer,
                    "PUT": self.set_issuer,
                    "PATCH": self.update_issuer,
                    "DELETE": self.delete_issuer,
                }
                if method not in table:
                    raise method_not_allowed(method, "issuer")
                return table[method], (tail[0],)
        if not tail:
            table = {
                "GET": self.get_certificate,
                "PATCH": self.update_certificate,
                "DELETE": self.delete_certificate,
            }
            if method not in table:
                raise method_not_allowed(method, "certificate")
            return table[method], (name, "")
        word = tail[0].lower()
        if len(tail) == 1:
            posts = {
                "create": self.create_certificate,
                "import": self.import_certificate,
                "backup": self.backup_certificate,
            }
            if word in posts:
                return only(method, "POST", word, posts[word]), (name,)
            if word == "versions":
                return only(method, "GET", "versions", self.get_certificate_versions), (name,)
            if word == "policy":
                table = {"GET": self.get_policy, "PATCH": self.update_policy}
                if method not in table:
                    raise method_not_allowed(method, "policy")
                return table[method], (name,)
            if word == "pending":
                table = {
                    "GET": self.get_operation,
                    "PATCH": self.update_operation,
                    "DELETE": self.delete_operation,
                }
                if method not in table:
                    raise method_not_allowed(method, "pending")
                return table[method], (name,)
        if len(tail) == 2 and word == "pending" and tail[1].lower() == "merge":
            return only(method, "POST", "merge", self.merge_certificate), (name,)
        if len(tail) == 1 or (len(tail) == 2 and tail[1] == ""):
            table = {"GET": self.get_certificate, "PATCH": self.update_certificate}
            if method not in table:
                raise method_not_allowed(method, "certificate version")
            return table[method], (name, tail[0])
        raise NotFound(
            f"No certificate operation at /certificates/{'/'.join(rest)[:100]}.", code="NotFound"
        )

    def deleted_certificates(self, method: str, rest: list[str]) -> tuple[Handler, tuple[str, ...]]:
        if not rest or rest == [""]:
            return only(method, "GET", "GetDeletedCertificates", self.get_deleted_certificates), ()
        name, tail = rest[0], rest[1:]
        if not tail or tail == [""]:
            table = {"GET": self.get_deleted_certificate, "DELETE": self.purge_deleted_certificate}
            if method not in table:
                raise method_not_allowed(method, "deleted certificate")
            return table[method], (name,)
        if len(tail) == 1 and tail[0].lower() == "recover":
            return only(method, "POST", "recover", self.recover_deleted_certificate), (name,)
        raise NotFound(
            f"No operation at /deletedcertificates/{'/'.join(rest)[:100]}.", code="NotFound"
        )

    # -- handlers ---------------------------------------------------------------------------

    def _bundle(self, call: Call, cert: CertificateVersion, status: int = 200) -> Reply:
        policy = self._c.policy_of(call.record, cert.name)
        return json_reply(wire.certificate_bundle(call.base, call.vault, cert, policy), status)

    async def create_certificate(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        op = await self._c.create_certificate(
            call.record,
            name,
            wire.certificate_policy_in(data),
            wire.attributes(data),
            wire.tags(data),
            wire.opt_bool(data, "preserveCertOrder"),
        )
        return json_reply(wire.certificate_operation(call.base, name, op), 202)

    async def import_certificate(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        cert = await self._c.import_certificate(
            call.record,
            name,
            wire.req_str(data, "value"),
            wire.opt_str(data, "pwd"),
            wire.certificate_policy_in(data),
            wire.attributes(data),
            wire.tags(data),
            wire.opt_bool(data, "preserveCertOrder"),
        )
        return self._bundle(call, cert)

    async def merge_certificate(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        cert = await self._c.merge_certificate(
            call.record,
            name,
            wire.std_b64_list(data, "x5c"),
            wire.attributes(data),
            wire.tags(data),
        )
        return self._bundle(call, cert, 201)

    async def get_certificate(self, call: Call) -> Reply:
        name, version = call.args
        return self._bundle(call, self._c.get_certificate(call.record, name, version))

    async def update_certificate(self, call: Call) -> Reply:
        name, version = call.args
        data = wire.parse_object(await call.body())
        if "policy" in data:
            await self._c.update_certificate_policy(
                call.record, name, wire.certificate_policy_in(data) or {}
            )
        cert = await self._c.update_certificate(
            call.record, name, version, wire.attributes(data), wire.tags(data)
        )
        return self._bundle(call, cert)

    async def delete_certificate(self, call: Call) -> Reply:
        (name, _) = call.args
        policy = self._c.policy_of(call.record, name)
        cert, deletion = await self._c.delete_certificate(call.record, name)
        body = wire.certificate_bundle(call.base, call.vault, cert, policy)
        return json_reply(wire.deleted_certificate(call.base, cert.name, body, deletion))

    async def get_certificates(self, call: Call) -> Reply:
        pending = call.query.get("includePending", "false").lower() == "true"
        page = self._c.get_certificates(
            call.record, call.int_query("maxresults"), call.query.get("$skiptoken"), pending
        )
        items = [
            wire.certificate_item(call.base, call.vault, c, versioned=False) for c in page.items
        ]
        return json_reply({"value": items, "nextLink": next_link(call, "/certificates", page)})

    async def get_certificate_versions(self, call: Call) -> Reply:
        (name,) = call.args
        page = self._c.get_certificate_versions(
            call.record, name, call.int_query("maxresults"), call.query.get("$skiptoken")
        )
        items = [
            wire.certificate_item(call.base, call.vault, c, versioned=True) for c in page.items
        ]
        link = next_link(call, f"/certificates/{name}/versions", page)
        return json_reply({"value": items, "nextLink": link})

    async def get_policy(self, call: Call) -> Reply:
        (name,) = call.args
        policy = self._c.get_certificate_policy(call.record, name)
        return json_reply(wire.certificate_policy(call.base, name, policy))

    async def update_policy(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        changes = wire.certificate_policy_in(data, None)
        policy = await self._c.update_certificate_policy(call.record, name, changes)
        return json_reply(wire.certificate_policy(call.base, name, policy))

    async def get_operation(self, call: Call) -> Reply:
        (name,) = call.args
        op = self._c.get_certificate_operation(call.record, name)
        return json_reply(wire.certificate_operation(call.base, name, op))

    async def update_operation(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        cancel = data.get("cancellation_requested")
        if not isinstance(cancel, bool):
            raise BadParameter("'cancellation_requested' must be true or false.")
        op = await self._c.update_certificate_operation(call.record, name, cancel)
        return json_reply(wire.certificate_operation(call.base, name, op))

    async def delete_operation(self, call: Call) -> Reply:
        (name,) = call.args
        op = await self._c.delete_certificate_operation(call.record, name)
        return json_reply(wire.certificate_operation(call.base, name, op))

    # -- issuers and contacts ---------------------------------------------------------------

    def _issuer(self, call: Call, issuer: dict[str, object]) -> Reply:
        body: dict[str, object] = {"id": f"{call.base}/certificates/issuers/{issuer['name']}"}
        body.update({k: v for k, v in issuer.items() if k != "name"})
        return json_reply(body)

    async def get_issuers(self, call: Call) -> Reply:
        items = [
            {"id": f"{call.base}/certificates/issuers/{i['name']}", "provider": i.get("provider")}
            for i in self._i.get_certificate_issuers(call.record)
        ]
        return json_reply({"value": items, "nextLink": None})

    async def get_issuer(self, call: Call) -> Reply:
        (name,) = call.args
        return self._issuer(call, self._i.get_certificate_issuer(call.record, name))

    async def set_issuer(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        issuer = await self._i.set_certificate_issuer(call.record, name, data, update=False)
        return self._issuer(call, issuer)

    async def update_issuer(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        issuer = await self._i.set_certificate_issuer(call.record, name, data, update=True)
        return self._issuer(call, issuer)

    async def delete_issuer(self, call: Call) -> Reply:
        (name,) = call.args
        return self._issuer(call, await self._i.delete_certificate_issuer(call.record, name))

    def _contacts(self, call: Call, contacts: list[dict[str, object]]) -> Reply:
        return json_reply({"id": f"{call.base}/certificates/contacts", "contacts": contacts})

    async def get_contacts(self, call: Call) -> Reply:
        return self._contacts(call, self._i.get_certificate_contacts(call.record))

    async def set_contacts(self, call: Call) -> Reply:
        data = wire.parse_object(await call.body())
        contacts = data.get("contacts")
        if not isinstance(contacts, list):
            raise BadParameter("'contacts' must be a list of {email, name, phone}.")
        return self._contacts(call, await self._i.set_certificate_contacts(call.record, contacts))

    async def delete_contacts(self, call: Call) -> Reply:
        return self._contacts(call, await self._i.delete_certificate_contacts(call.record))

    async def get_deleted_certificates(self, call: Call) -> Reply:
        page = self._c.get_deleted_certificates(
            call.record, call.int_query("maxresults"), call.query.get("$skiptoken")
        )
        items = [
            wire.deleted_certificate(
                call.base,
                c.name,
                wire.certificate_item(call.base, call.vault, c, versioned=False),
                d,
            )
            for c, d in page.items
        ]
        link = next_link(call, "/deletedcertificates", page)
        return json_reply({"value": items, "nextLink": link})

    async def get_deleted_certificate(self, call: Call) -> Reply:
        (name,) = call.args
        cert, deletion = self._c.get_deleted_certificate(call.record, name)
        policy = self._c.policy_of(call.record, name)
        body = wire.certificate_bundle(call.base, call.vault, cert, policy)
        return json_reply(wire.deleted_certificate(call.base, cert.name, body, deletion))

    async def recover_deleted_certificate(self, call: Call) -> Reply:
        (name,) = call.args
        return self._bundle(call, await self._c.recover_deleted_certificate(call.record, name))

    async def purge_deleted_certificate(self, call: Call) -> Reply:
        (name,) = call.args
        await self._c.purge_deleted_certificate(call.record, name)
        return Reply(204)

    async def backup_certificate(self, call: Call) -> Reply:
        (name,) = call.args
        return blob_reply(self._c.backup_certificate(call.record, name))

    async def restore_certificate(self, call: Call) -> Reply:
        blob = await blob_of(call)
        return self._bundle(call, await self._c.restore_certificate(call.record, blob))
