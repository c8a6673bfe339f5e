"""Service principals and the token issuer, shaped like Microsoft Entra's client credentials.

Principal secrets are stored as scrypt hashes and compared in constant time. Access tokens are
RS256 JWTs signed by the installation's key; verified tokens are cached until they expire, since
an RSA verify costs a sizeable share of a whole GET.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from strongroom.errors import BadParameter, Conflict, NotFound, OAuthError, Unauthorized
from strongroom.models import Principal
from strongroom.services.installation import Installation
from strongroom.store.base import PrincipalRecord, Tx

_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


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


def _thumbprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - x5t is SHA-1 by definition (RFC 7515 4.1.7)


def _b64_any(text: str) -> bytes:
    """Decodes standard or URL-safe base64, padded or not (MSAL versions differ)."""
    text = text.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


@dataclass(frozen=True, slots=True)
class CreatedPrincipal:
    principal: Principal
    client_secret: str | None


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal behind a data-plane request."""

    client_id: str
    tenant_id: str


def to_principal(r: PrincipalRecord) -> Principal:
    return Principal(r.client_id, r.name, r.created, r.certificate_thumbprint)


class IdentityService:
    MAX_CACHE = 50_000

    def __init__(self, inst: Installation):
        self._inst = inst
        key = serialization.load_pem_private_key(inst.signing_key_pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self._signing_key = key
        self._public_key = key.public_key()
        self._kid = hashlib.sha256(
            self._public_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).hexdigest()[:32]
        self._verified: dict[str, tuple[int, Caller]] = {}
        self._lock = threading.Lock()

    @property
    def tenant_id(self) -> str:
        return self._inst.tenant_id

    @property
    def issuer(self) -> str:
        return f"{self._inst.settings.authority}/{self.tenant_id}/v2.0"

    # -- principals -------------------------------------------------------------------------

    def create_principal(self, name: str, certificate_pem: bytes | None = None) -> CreatedPrincipal:
        if not name or len(name) > 100:
            raise BadParameter("A principal name must be 1-100 characters.")
        client_secret: str | None = None
        thumbprint: str | None = None
        cert_text: str | None = None
        if certificate_pem is not None:
            try:
                cert = x509.load_pem_x509_certificate(certificate_pem)
            except ValueError as exc:
                raise BadParameter("The certificate file is not a PEM X.509 certificate.") from exc
            thumbprint = _thumbprint(cert)
            cert_text = cert.public_bytes(serialization.Encoding.PEM).decode()
        else:
            client_secret = secrets.token_urlsafe(32)
        record = PrincipalRecord(
            client_id=str(uuid.uuid4()),
            name=name,
            secret_hash=hash_secret(client_secret) if client_secret else None,
            certificate_pem=cert_text,
            certificate_thumbprint=thumbprint,
            created=int(time.time()),
        )

        def write(tx: Tx) -> None:
            if tx.get_principal_by_name(name) is not None:
                raise Conflict(f"A principal named '{name}' already exists.")
            tx.insert_principal(record)

        self._inst.store.transact(write).result()
        return CreatedPrincipal(to_principal(record), client_secret)

    def list_principals(self) -> list[Principal]:
        return [to_principal(r) for r in self._inst.store.reads.list_principals()]

    def find_principal(self, name_or_id: str) -> Principal:
        reads = self._inst.store.reads
        record = reads.get_principal(name_or_id) or reads.get_principal_by_name(name_or_id)
        if record is None:
            raise NotFound(f"Principal '{name_or_id}' not found.", code="PrincipalNotFound")
        return to_principal(record)

    def delete_principal(self, name_or_id: str) -> Principal:
        def write(tx: Tx) -> PrincipalRecord:
            record = tx.get_principal(name_or_id) or tx.get_principal_by_name(name_or_id)
            if record is None:
                raise NotFound(f"Principal '{name_or_id}' not found.", code="PrincipalNotFound")
            tx.delete_principal(record.client_id)
            return record

        record = self._inst.store.transact(write).result()
        with self._lock:
            self._verified.clear()
        return to_principal(record)

    # -- token endpoint ---------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self._public_key, as_dict=True)
        jwk.update(kid=self._kid, use="sig", alg="RS256")
        return {"keys": [jwk]}

    def issue_token(
        self, tenant: str | None, form: dict[str, str], token_urls: list[str]
    ) -> dict[str, Any]:
        """Client-credentials grant (RFC 6749 section 4.4). ``tenant`` is None on ADFS routes."""
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
        client_id = form.get("client_id", "")
        principal = self._inst.store.reads.get_principal(client_id) if client_id else None
        if principal is None:
            raise OAuthError(
                "invalid_client",
                f"AADSTS700016: Application with identifier '{client_id[:64]}' was not found "
                "in this tenant.",
                status=401,
            )
        if "client_secret" in form:
            if principal.secret_hash is None or not check_secret(
                form["client_secret"], principal.secret_hash
            ):
                raise OAuthError(
                    "invalid_client",
                    "AADSTS7000215: Invalid client secret provided.",
                    status=401,
                )
        elif form.get("client_assertion_type") == _ASSERTION_TYPE and "client_assertion" in form:
            self._check_assertion(principal, form["client_assertion"], token_urls)
        else:
            raise OAuthError(
                "invalid_request",
                "The request must contain client_secret or client_assertion.",
            )
        resource = self._resource_from_scope(form.get("scope", ""))
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
        token = jwt.encode(claims, self._signing_key, algorithm="RS256", headers={"kid": self._kid})
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }

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

    def _check_assertion(
        self, principal: PrincipalRecord, assertion: str, token_urls: list[str]
    ) -> None:
        def refuse(why: str) -> OAuthError:
            return OAuthError(
                "invalid_client", f"AADSTS700027: Client assertion {why}.", status=401
            )

        if principal.certificate_pem is None or principal.certificate_thumbprint is None:
            raise refuse("is not accepted: this principal has no registered certificate")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise refuse("is not a well-formed JWT") from exc
        try:
            if header.get("x5c"):
                presented = _thumbprint(x509.load_der_x509_certificate(_b64_any(header["x5c"][0])))
            elif "x5t" in header:
                presented = _b64_any(str(header["x5t"])).hex()
            else:
                raise refuse("names no certificate (x5t or x5c)")
        except (ValueError, binascii.Error) as exc:
            raise refuse("has an unreadable x5t or x5c header") from exc
        if not hmac.compare_digest(presented, principal.certificate_thumbprint):
            raise refuse("was signed with a certificate not registered for this principal")
        cert = x509.load_pem_x509_certificate(principal.certificate_pem.encode())
        try:
            claims = jwt.decode(
                assertion,
                cert.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"],
                audience=token_urls,
                options={"require": ["exp", "aud", "iss"]},
                leeway=60,
            )
        except jwt.PyJWTError as exc:
            raise refuse(f"is invalid: {exc}") from exc
        if claims.get("iss") != principal.client_id or claims.get("sub", principal.client_id) != (
            principal.client_id
        ):
            raise refuse("must have iss and sub equal to the client id")

    # -- data-plane tokens ------------------------------------------------------------------

    def verify(self, token: str, audiences: list[str]) -> Caller:
        """Checks signature, expiry, audience and tenant; raises ``Unauthorized``."""
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=["RS256"],
                audience=audiences,
                issuer=self.issuer,
                options={"require": ["exp", "aud", "iss", "tid"]},
            )
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
        with self._lock:
            if len(self._verified) >= self.MAX_CACHE:
                self._verified.clear()
            self._verified[token] = (int(claims["exp"]), caller)
        return caller
