"""Certificate operations (certificates.json): thin handlers over ``CertificateService`` and
``CertificateIssuance``."""

from __future__ import annotations

from typing import Any

from strongroom.api import wire
from strongroom.api.calls import Call, Reply, json_reply, page_reply
from strongroom.api.kinds import ObjectKind, lifecycle_routes
from strongroom.api.routing import Route
from strongroom.errors import BadParameter
from strongroom.models import CertificateVersion
from strongroom.services.certificate_issuance import CertificateIssuance
from strongroom.services.certificates import CertificateService
from strongroom.services.issuers import IssuerService


class CertificateRoutes:
    def __init__(
        self, service: CertificateService, issuance: CertificateIssuance, issuers: IssuerService
    ):
        self._c = service
        self._n = issuance
        self._i = issuers

    def kind(self) -> ObjectKind[CertificateVersion]:
        return ObjectKind(
            "certificates", "deletedcertificates", "certificates", "Certificate", self._c,
            self._bundle_of,
            lambda call, c: wire.certificate_item(call.base, call.vault, c, versioned=False),
        )  # fmt: skip

    def routes(self) -> list[Route]:
        kind = self.kind()
        need = kind.need
        c, i = "/certificates/{name}", "/certificates/issuers/{issuer}"
        return [
            Route("GET", "/certificates", self.get_certificates, need("list", "List")),
            Route("POST", f"{c}/create", self.create_certificate, need("create", "Create", 202)),
            Route("POST", f"{c}/import", self.import_certificate, need("import", "Import")),
            Route(
                "POST", f"{c}/pending/merge", self.merge_certificate, need("create", "Merge", 201)
            ),
            Route("GET", f"{c}/{{version?}}", self.get_certificate, need("get", "Get")),
            Route("PATCH", f"{c}/{{version?}}", self.update_certificate, need("update", "Update")),
            Route(
                "GET", f"{c}/versions", self.get_certificate_versions, need("list", "ListVersions")
            ),
            Route("GET", f"{c}/policy", self.get_policy, need("get", "PolicyGet")),
            Route("PATCH", f"{c}/policy", self.update_policy, need("update", "PolicyUpdate")),
            Route("GET", f"{c}/pending", self.get_operation, need("get", "PendingGet")),
            Route("PATCH", f"{c}/pending", self.update_operation, need("update", "PendingUpdate")),
            Route("DELETE", f"{c}/pending", self.delete_operation, need("delete", "PendingDelete")),
            Route(
                "GET", "/certificates/issuers", self.get_issuers, need("listissuers", "IssuerList")
            ),
            Route("GET", i, self.get_issuer, need("getissuers", "IssuerGet")),
            Route("PUT", i, self.set_issuer, need("setissuers", "IssuerSet")),
            Route("PATCH", i, self.update_issuer, need("setissuers", "IssuerUpdate")),
            Route("DELETE", i, self.delete_issuer, need("deleteissuers", "IssuerDelete")),
            Route(
                "GET",
                "/certificates/contacts",
                self.get_contacts,
                need("managecontacts", "ContactsGet"),
            ),
            Route(
                "PUT",
                "/certificates/contacts",
                self.set_contacts,
                need("managecontacts", "ContactsSet"),
            ),
            Route(
                "DELETE",
                "/certificates/contacts",
                self.delete_contacts,
                need("managecontacts", "ContactsDelete"),
            ),
            *lifecycle_routes(kind),
        ]

    # -- handlers ---------------------------------------------------------------------------

    def _bundle_of(self, call: Call, cert: CertificateVersion) -> dict[str, Any]:
        policy = self._c.policy_of(call.record, cert.name)
        return wire.certificate_bundle(call.base, call.vault, cert, policy)

    def _bundle(self, call: Call, cert: CertificateVersion, status: int = 200) -> Reply:
        return json_reply(self._bundle_of(call, cert), status)

    async def create_certificate(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        op = await self._n.create_certificate(
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
        cert = await self._n.import_certificate(
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
        cert = await self._n.merge_certificate(
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
            change = wire.certificate_policy_change(data)
            await self._c.update_certificate_policy(call.record, name, change)
        cert = await self._c.update_certificate(
            call.record, name, version, wire.attributes(data), wire.tags(data)
        )
        return self._bundle(call, cert)

    async def get_certificates(self, call: Call) -> Reply:
        pending = call.query.get("includePending", "false").lower() == "true"
        page = self._c.get_certificates(call.record, call.maxresults, call.skiptoken, pending)
        items = [
            wire.certificate_item(call.base, call.vault, c, versioned=False) for c in page.items
        ]
        return page_reply(call, "/certificates", page, items)

    async def get_certificate_versions(self, call: Call) -> Reply:
        (name,) = call.args
        page = self._c.get_certificate_versions(call.record, name, call.maxresults, call.skiptoken)
        items = [
            wire.certificate_item(call.base, call.vault, c, versioned=True) for c in page.items
        ]
        return page_reply(call, f"/certificates/{name}/versions", page, items)

    async def get_policy(self, call: Call) -> Reply:
        (name,) = call.args
        policy = self._c.get_certificate_policy(call.record, name)
        return json_reply(wire.certificate_policy(call.base, name, policy))

    async def update_policy(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        change = wire.certificate_policy_change(data, None)
        policy = await self._c.update_certificate_policy(call.record, name, change)
        return json_reply(wire.certificate_policy(call.base, name, policy))

    async def get_operation(self, call: Call) -> Reply:
        (name,) = call.args
        op = self._n.get_certificate_operation(call.record, name)
        return json_reply(wire.certificate_operation(call.base, name, op))

    async def update_operation(self, call: Call) -> Reply:
        (name,) = call.args
        data = wire.parse_object(await call.body())
        cancel = data.get("cancellation_requested")
        if not isinstance(cancel, bool):
            raise BadParameter("'cancellation_requested' must be true or false.")
        op = await self._n.update_certificate_operation(call.record, name, cancel)
        return json_reply(wire.certificate_operation(call.base, name, op))

    async def delete_operation(self, call: Call) -> Reply:
        (name,) = call.args
        op = await self._n.delete_certificate_operation(call.record, name)
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
