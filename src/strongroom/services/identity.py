"""Service principals and the token issuer, shaped like Microsoft Entra's client credentials.

Principal secrets are stored as scrypt hashes and compared in constant time. Access tokens are
RS256 JWTs signed by the installation's key; verified tokens are cached until they expire, since
an RSA verify costs a sizeable share of a whole GET.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import jwt

from strongroom import codec, telemetry
from strongroom.crypto import tokens
from strongroom.errors import (
    BadParameter,
    Conflict,
    NotFound,
    OAuthError,
    Throttled,
    Unauthorized,
)
from strongroom.models import Principal
from strongroom.services.installation import Installation
from strongroom.services.objects import Due
from strongroom.services.rbac import delete_principal_assignments
from strongroom.services.throttle import FailureThrottle
from strongroom.store.base import PrincipalRecord, Tx

log = logging.getLogger(__name__)
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ASSERTION_PREFIX = "assertion/"  # metadata: assertions already used, until they expire
MAX_ASSERTION_SECONDS = 900
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
# A given client secret: long enough not to be guessed, short enough to be checked whole (the
# token endpoint reads at most MAX_CLIENT_SECRET characters of one).
MIN_CLIENT_SECRET, MAX_CLIENT_SECRET = 16, 1024


def check_principal_name(name: str) -> str:
    if not name or len(name) > 100:
        raise BadParameter("A principal name must be 1-100 characters.")
    return name


def check_client_secret(secret: str) -> str:
    """A client secret given rather than generated; the message never shows it."""
    if not MIN_CLIENT_SECRET <= len(secret) <= MAX_CLIENT_SECRET:
        raise BadParameter(
            f"A client secret must be {MIN_CLIENT_SECRET} to {MAX_CLIENT_SECRET} characters; "
            f"the one given has {len(secret)}."
        )
    return secret


def hash_secret(secret: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_secret(secret: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt_hex), dklen=32, **_SCRYPT)
    return hmac.compare_digest(digest, bytes.fromhex(digest_hex))


@functools.cache
def _stand_in_hash() -> str:
    """What an unknown client's secret is checked against, so it costs what a known one does."""
    return hash_secret(secrets.token_urlsafe(32))


def _invalid_client() -> OAuthError:
    # One answer for an unknown client id, a wrong secret and a bad assertion (no telling
    # which client ids exist); Entra's code for a wrong secret.
    return OAuthError(
        "invalid_client",
        "AADSTS7000215: Invalid client credentials: the client id, client secret or client "
        "assertion is not valid for this tenant.",
        status=401,
    )


@dataclass(frozen=True, slots=True)
class CreatedPrincipal:
    principal: Principal
    client_secret: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal behind a data-plane request."""

    client_id: str
    tenant_id: str
    # The installation's operator, signed in to the web console through a one-time link that
    # only a local administration command makes; never a token's bearer.
    operator: bool = False


def to_principal(r: PrincipalRecord) -> Principal:
    return Principal(r.client_id, r.name, r.created, r.certificate_thumbprint)


class IdentityService:
    MAX_CACHE = 50_000

    def __init__(self, inst: Installation):
        self._inst = inst
        self._key = tokens.SigningKey(inst.signing_key_pem)
        self._verified: dict[str, tuple[int, Caller]] = {}
        self._lock = threading.Lock()
        # Principals seen to exist, with the store's revocation marker at the time.
        self._alive: dict[str, int] = {}
        self._throttle = FailureThrottle()
        self._hashing = ThreadPoolExecutor(2, thread_name_prefix="strongroom-hash")

    @property
    def tenant_id(self) -> str:
        return self._inst.tenant_id

    @property
    def issuer(self) -> str:
        return f"{self._inst.settings.authority}/{self.tenant_id}/v2.0"

    # -- principals -------------------------------------------------------------------------

    def create_principal(
        self,
        name: str,
        certificate_pem: bytes | None = None,
        *,
        client_secret: str | None = None,
    ) -> CreatedPrincipal:
        """A principal authenticating with ``certificate_pem``, or with a client secret: the
        one given (a test's fixed credentials) or a new random one. ``client_secret`` of the
        result is the secret only when it was generated here: a given one is not echoed."""
        check_principal_name(name)
        thumbprint: str | None = None
        cert_text: str | None = None
        generated: str | None = None
        if certificate_pem is not None:
            if client_secret is not None:
                raise BadParameter("A principal has a certificate or a client secret, not both.")
            cert_text, thumbprint = tokens.principal_certificate(certificate_pem)
        elif client_secret is not None:
            check_client_secret(client_secret)
        else:
            client_secret = generated = secrets.token_urlsafe(32)
        record = PrincipalRecord(
            client_id=str(uuid.uuid4()),
            name=name,
            secret_hash=hash_secret(client_secret) if client_secret else None,
            certificate_pem=cert_text,
            certificate_thumbprint=thumbprint,
            created=self._inst.clock.now(),
        )

        def write(tx: Tx) -> None:
            if tx.get_principal_by_name(name) is not None:
                raise Conflict(f"A principal named '{name}' already exists.")
            tx.insert_principal(record)

        self._inst.store.transact(write).result()
        return CreatedPrincipal(to_principal(record), generated)

    def list_principals(self) -> list[Principal]:
        return [to_principal(r) for r in self._inst.store.reads.list_principals()]

    def get_principal(self, client_id: str) -> Principal | None:
        record = self._inst.store.reads.get_principal(client_id[:100])
        return to_principal(record) if record is not None else None

    def find_principal(self, name_or_id: str) -> Principal:
        reads = self._inst.store.reads
        record = reads.get_principal(name_or_id) or reads.get_principal_by_name(name_or_id)
        if record is None:
            raise NotFound(f"Principal '{name_or_id}' not found.", code="PrincipalNotFound")
        return to_principal(record)

    def delete_principal(self, name_or_id: str) -> Principal:
        """Deletes the principal, its access policy and role assignments in every vault, in one
        transaction.
        Its tokens are refused from then on by every server process (see ``verify``)."""

        def write(tx: Tx) -> PrincipalRecord:
            record = tx.get_principal(name_or_id) or tx.get_principal_by_name(name_or_id)
            if record is None:
                raise NotFound(f"Principal '{name_or_id}' not found.", code="PrincipalNotFound")
            tx.delete_principal(record.client_id)
            for vault in tx.list_vaults():
                tx.delete_meta(f"vault/{vault.id}/access/{record.client_id}")
                delete_principal_assignments(tx, vault.id, record.client_id)
            return record

        record = self._inst.store.transact(write).result()
        with self._lock:
            self._verified.clear()
            self._alive.clear()
        return to_principal(record)

    # -- token endpoint ---------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        return self._key.jwks()

    async def issue_token(
        self, tenant: str | None, form: dict[str, str], token_urls: list[str], source: str
    ) -> dict[str, Any]:
        """Client-credentials grant (RFC 6749 section 4.4). ``tenant`` is None on ADFS routes;
        ``source``: the caller's address, for throttling failed attempts.

        Every wrong credential gets one answer, whether or not the client id exists, and the
        same work: an unknown client's secret is hashed against a stand-in."""
        if tenant is not None and tenant.lower() not in (self.tenant_id, "organizations"):
            raise OAuthError(
                "invalid_request",
                f"AADSTS90002: Tenant '{tenant[:64]}' not found. This installation's tenant "
                f"is {self.tenant_id}.",
            )
        grant = form.get("grant_type")
        if grant != "client_credentials":
            raise OAuthError(
                "unsupported_grant_type",
                f"Grant type '{(grant or '')[:40]}' is not supported; use client_credentials.",
            )
        client_id = form.get("client_id", "")[:100]
        resource = self._resource_from_scope(form.get("scope", ""))
        keys, principal = self._claimed(client_id, source)
        try:
            if "client_secret" in form:
                await self._check_secret(principal, form["client_secret"])
            elif (
                form.get("client_assertion_type") == _ASSERTION_TYPE and "client_assertion" in form
            ):
                await self._check_assertion(
                    principal, client_id, form["client_assertion"], token_urls, resource
                )
            else:
                raise OAuthError(
                    "invalid_request", "The request must contain client_secret or client_assertion."
                )
        except OAuthError as exc:
            if exc.code == "invalid_client":
                self._throttle.failed(*keys)
            if (t := telemetry.active) is not None:
                t.token_failures.labels(exc.code).inc()
            raise
        assert principal is not None  # the checks refuse an unknown client
        # Token times are the real time, not the installation's clock: PyJWT checks them
        # against it (a test clock moved ahead would make every token not yet valid).
        now = int(time.time())
        lifetime = self._inst.settings.token_lifetime
        claims = {
            "aud": resource,
            "iss": self.issuer,
            "tid": self.tenant_id,
            "oid": principal.client_id,
            "sub": principal.client_id,
            "appid": principal.client_id,
            "azp": principal.client_id,
            "iat": now,
            "nbf": now - 60,
            "exp": now + lifetime,
            "ver": "2.0",
        }
        token = self._key.sign(claims)
        if (t := telemetry.active) is not None:
            t.tokens.inc()
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }

    def _claimed(
        self, client_id: str, source: str
    ) -> tuple[tuple[str, str], PrincipalRecord | None]:
        """The throttle's keys for an attempt to authenticate as ``client_id`` from
        ``source`` (``Throttled`` while they are held back), and the principal, if any."""
        keys = (f"client:{client_id}", f"address:{source}")
        wait = self._throttle.retry_after(*keys)
        if wait:
            raise Throttled(wait)
        return keys, self._inst.store.reads.get_principal(client_id) if client_id else None

    async def sign_in(self, client_id: str, secret: str, source: str) -> Principal:
        """The principal whose client id and secret these are (the web console's sign-in),
        throttled and answered as the token endpoint is: one refusal for every wrong pair."""
        keys, principal = self._claimed(client_id.strip()[:100], source)
        try:
            await self._check_secret(principal, secret)
        except OAuthError:
            self._throttle.failed(*keys)
            raise
        assert principal is not None  # the check refuses an unknown client
        return to_principal(principal)

    async def _check_secret(self, principal: PrincipalRecord | None, secret: str) -> None:
        stored = principal.secret_hash if principal is not None else None
        # The same scrypt for an unknown client (or one without a secret) as for a known one,
        # off the event loop: it costs tens of milliseconds of CPU.
        ok = await asyncio.get_running_loop().run_in_executor(
            self._hashing, check_secret, secret[:1024], stored or _stand_in_hash()
        )
        if not ok or stored is None:
            raise _invalid_client()

    @staticmethod
    def _resource_from_scope(scope: str) -> str:
        for item in scope.split():
            if item.endswith("/.default"):
                # az login asks for "<resource>//.default" when its resource id ends in "/".
                return item[: -len("/.default")].rstrip("/")
        raise OAuthError(
            "invalid_scope",
            "AADSTS1002012: The scope must be '<resource>/.default', "
            "e.g. https://vault.localhost:8443/.default.",
        )

    async def _check_assertion(
        self,
        principal: PrincipalRecord | None,
        client_id: str,
        assertion: str,
        token_urls: list[str],
        resource: str,
    ) -> None:
        """A client assertion (RFC 7523), signed with the principal's registered certificate,
        for this token endpoint, expiring within ``MAX_ASSERTION_SECONDS``, and not seen
        before for this scope. MSAL reuses one assertion for up to nine minutes across
        scopes, so a replay is the same assertion asking for the same scope again."""

        def refuse(why: str) -> OAuthError:
            log.info("client assertion for %s refused: %s", client_id[:64], why)
            return _invalid_client()

        if principal is None or principal.certificate_pem is None:
            raise refuse("no such principal, or it has no registered certificate")
        thumbprint = principal.certificate_thumbprint or ""
        try:
            header = jwt.get_unverified_header(assertion)
            if header.get("x5c"):
                der = codec.b64url_decode(header["x5c"][0], "x5c")
                presented = tokens.der_thumbprint(der)
            elif "x5t" in header:
                presented = codec.b64url_decode(header["x5t"], "x5t").hex()
            else:
                raise refuse("it names no certificate (x5t or x5c)")
        except (jwt.PyJWTError, BadParameter, ValueError, TypeError, KeyError, IndexError) as exc:
            raise refuse("not a JWT with a readable x5t or x5c header") from exc
        if not hmac.compare_digest(presented, thumbprint):
            raise refuse("signed with a certificate not registered for this principal")
        try:
            claims = tokens.verify_assertion(
                assertion, principal.certificate_pem, token_urls, leeway=60
            )
        except jwt.PyJWTError as exc:
            raise refuse(f"invalid: {exc}") from exc
        if claims.get("iss") != principal.client_id or claims.get("sub", principal.client_id) != (
            principal.client_id
        ):
            raise refuse("iss and sub must equal the client id")
        now = int(time.time())
        expires = claims["exp"]
        if not isinstance(expires, int | float) or expires > now + MAX_ASSERTION_SECONDS:
            raise refuse(f"it must expire within {MAX_ASSERTION_SECONDS} seconds")
        seen = hashlib.sha256(
            "\x1f".join((principal.client_id, str(claims["jti"]), resource)).encode()
        ).hexdigest()
        key = f"{_ASSERTION_PREFIX}{seen}"

        def remember(tx: Tx) -> None:
            if tx.get_meta(key) is not None:
                raise refuse("it was already used for this scope (jti replayed)")
            tx.set_meta(key, str(int(expires) + 60))

        await self._inst.store.transact_async(remember)

    async def forget_used_assertions(self) -> Due:
        """A scheduler step: drops the replay records of assertions that have expired."""
        now = int(time.time())  # assertions' exp is the real time, as the JWT checks read it
        old = [
            k
            for k, v in self._inst.store.reads.list_meta(_ASSERTION_PREFIX)
            if not v.isdigit() or int(v) < now
        ]

        def write(tx: Tx) -> None:
            for key in old:
                tx.delete_meta(key)

        if old:
            await self._inst.store.transact_async(write)
        return Due(len(old), 0)

    # -- data-plane tokens ------------------------------------------------------------------

    def verify(self, token: str, audiences: list[str]) -> Caller:
        """Checks signature, expiry, audience and tenant; raises ``Unauthorized``."""
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None and hit[0] > now:
            self.check_alive(hit[1].client_id)
            return hit[1]
        try:
            claims = self._key.verify(token, audiences, self.issuer)
        except jwt.InvalidAudienceError as exc:
            raise Unauthorized(
                f"Error validating token: the audience is not {audiences[0]}. "
                f"Request the token with scope {audiences[0]}/.default."
            ) from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Error validating token: {exc}.") from exc
        if claims.get("tid") != self.tenant_id:
            raise Unauthorized("Error validating token: the token was issued for another tenant.")
        caller = Caller(client_id=str(claims.get("oid", "")), tenant_id=self.tenant_id)
        self.check_alive(caller.client_id)
        with self._lock:
            if len(self._verified) >= self.MAX_CACHE:
                self._verified.clear()
            self._verified[token] = (int(claims["exp"]), caller)
        return caller

    def check_alive(self, client_id: str) -> None:
        """Refuses the token of a principal that has been deleted, by any process: the
        principal is read again whenever the store's revocation marker has moved since it
        was last seen (``Store.revocation_marker``)."""
        marker = self._inst.store.revocation_marker()
        if self._alive.get(client_id) == marker:
            return
        if self._inst.store.reads.get_principal(client_id) is None:
            raise Unauthorized(
                "Error validating token: the principal it was issued to no longer exists."
            )
        if len(self._alive) >= self.MAX_CACHE:
            self._alive.clear()
        self._alive[client_id] = marker
