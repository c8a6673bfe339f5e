"""Token issuer routes shaped like Microsoft Entra (v2.0 endpoints) and ADFS, plus health."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from strongroom.api.errors import JSON, error_response
from strongroom.errors import BadParameter, NotFound, OAuthError, StrongroomError, Unauthorized
from strongroom.services.identity import IdentityService

_FORM = "application/x-www-form-urlencoded"


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status, media_type=JSON)


class IdentityRoutes:
    def __init__(
        self, identity: IdentityService, authority: str, vault_resource: str, vault_suffix: str
    ):
        self._id = identity
        self._authority = authority
        self._vault_resource = vault_resource
        self._vault_suffix = vault_suffix  # as az's keyVaultDns: "vault.localhost:8443"

    def routes(self) -> list[Route]:
        return [
            Route("/adfs/.well-known/openid-configuration", self.adfs_configuration),
            Route("/adfs/adfs/v2.0/.well-known/openid-configuration", self.adfs_configuration),
            Route("/adfs/oauth2/token", self.adfs_token, methods=["POST"]),
            Route("/adfs/discovery/keys", self.jwks),
            Route("/{tenant}/v2.0/.well-known/openid-configuration", self.configuration),
            Route("/{tenant}/.well-known/openid-configuration", self.configuration),
            Route("/{tenant}/oauth2/v2.0/token", self.token, methods=["POST"]),
            Route("/{tenant}/discovery/v2.0/keys", self.jwks),
            # What az asks of Azure Resource Manager when registering a cloud and logging in.
            Route("/metadata/endpoints", self.arm_metadata),
            Route("/subscriptions", self.subscriptions),
            Route("/subscriptions/{subscription}", self.subscription),
            Route("/tenants", self.tenants),
            # What az asks of Microsoft Graph to name the principals of role assignments.
            Route("/v1.0/directoryObjects/getByIds", self.directory_objects, methods=["POST"]),
        ]

    @property
    def subscription_id(self) -> str:
        """One subscription per installation, derived from its tenant."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"strongroom:{self._id.tenant_id}"))

    def _subscription(self) -> dict[str, Any]:
        sid = self.subscription_id
        return {
            "id": f"/subscriptions/{sid}",
            "subscriptionId": sid,
            "tenantId": self._id.tenant_id,
            "displayName": "Strongroom",
            "state": "Enabled",
        }

    def _arm_caller(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("A bearer token from this installation is required.")
        base = self._authority
        self._id.verify(token.strip(), [base, base + "/", self._vault_resource])

    async def arm_metadata(self, request: Request) -> Response:
        login = {"loginEndpoint": self._authority, "audiences": [self._authority + "/"]}
        return _json({
            "name": "Strongroom",
            "authentication": login,
            "resourceManager": self._authority + "/",
            # Graph is this server too (directory_objects); every vault serves Managed HSM's
            # administration API, so az's --hsm-name names a vault on the same suffix.
            "microsoftGraphResourceId": self._authority + "/",
            "suffixes": {"keyVaultDns": self._vault_suffix, "mhsmDns": self._vault_suffix},
        })  # fmt: skip

    async def subscriptions(self, request: Request) -> Response:
        try:
            self._arm_caller(request)
        except Unauthorized as exc:
            return error_response(exc)
        return _json({"value": [self._subscription()]})

    async def subscription(self, request: Request) -> Response:
        try:
            self._arm_caller(request)
            if request.path_params["subscription"] != self.subscription_id:
                raise NotFound("Subscription not found.", code="SubscriptionNotFound")
        except (Unauthorized, NotFound) as exc:
            return error_response(exc)
        return _json(self._subscription())

    async def directory_objects(self, request: Request) -> Response:
        """Graph's ``directoryObjects/getByIds``: this installation's principals among the ids
        asked, as service principals (az names role assignments' principals with it)."""
        try:
            self._arm_caller(request)
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise BadParameter("The request body is not valid JSON.") from None
            ids = body.get("ids") if isinstance(body, dict) else None
            if not isinstance(ids, list) or len(ids) > 1000:
                raise BadParameter("'ids' must be a list of at most 1000 ids.")
        except (Unauthorized, BadParameter) as exc:
            return error_response(exc)
        found = []
        for client_id in {i for i in ids if isinstance(i, str)}:
            principal = self._id.get_principal(client_id)
            if principal is not None:
                found.append({
                    "@odata.type": "#microsoft.graph.servicePrincipal",
                    "id": principal.client_id,
                    "appId": principal.client_id,
                    "displayName": principal.name,
                    "servicePrincipalNames": [principal.client_id],
                })  # fmt: skip
        return _json({"value": found})

    async def tenants(self, request: Request) -> Response:
        try:
            self._arm_caller(request)
        except Unauthorized as exc:
            return error_response(exc)
        tid = self._id.tenant_id
        return _json({"value": [{"id": f"/tenants/{tid}", "tenantId": tid}]})

    def _document(self, base: str) -> dict[str, Any]:
        return {
            "issuer": self._id.issuer,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "grant_types_supported": ["client_credentials"],
            "tenant_region_scope": "NA",
        }

    async def configuration(self, request: Request) -> Response:
        # Any tenant string is answered (GUIDs, domains, "organizations"); az resolves a
        # non-GUID tenant through issuer.split("/")[3], which is this installation's tenant.
        tenant = request.path_params["tenant"]
        return _json(self._document(f"{self._authority}/{tenant}"))

    async def adfs_configuration(self, request: Request) -> Response:
        base = f"{self._authority}/adfs"
        doc = self._document(base)
        doc.update(
            authorization_endpoint=f"{base}/oauth2/authorize",
            token_endpoint=f"{base}/oauth2/token",
            jwks_uri=f"{base}/discovery/keys",
        )
        return _json(doc)

    async def jwks(self, request: Request) -> Response:
        return _json(self._id.jwks())

    async def _issue(self, request: Request, tenant: str | None) -> Response:
        try:
            if not request.headers.get("content-type", "").startswith(_FORM):
                raise OAuthError("invalid_request", f"The token request must be {_FORM}.")
            form = dict(parse_qsl((await request.body()).decode(errors="replace")))
            path = f"/{tenant}/oauth2/v2.0/token" if tenant is not None else "/adfs/oauth2/token"
            # A client assertion's audience: this endpoint as configured, never as the
            # request's Host names it.
            urls = [f"{self._authority}{path}"]
            source = request.client.host if request.client else ""
            return _json(await self._id.issue_token(tenant, form, urls, source))
        except StrongroomError as exc:  # OAuth errors, and the store being unavailable
            return error_response(exc)

    async def token(self, request: Request) -> Response:
        return await self._issue(request, request.path_params["tenant"])

    async def adfs_token(self, request: Request) -> Response:
        return await self._issue(request, None)
