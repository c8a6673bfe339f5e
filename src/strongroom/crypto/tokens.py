"""The token issuer's keys and the principals' certificates, over pyca/cryptography and PyJWT:
what ``services.identity`` signs access tokens with, and how it reads the certificate a
client assertion names.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from strongroom.errors import BadParameter


def new_signing_key_pem() -> bytes:
    """A new RSA-2048 token-signing key (PKCS#8 PEM), made once per installation."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class SigningKey:
    """The installation's RS256 key: signs access tokens and verifies them."""

    __slots__ = ("_key", "_public", "kid")

    def __init__(self, pem: bytes):
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the token-signing key is not an RSA key")
        self._key = key
        self._public = key.public_key()
        der = self._public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = hashlib.sha256(der).hexdigest()[:32]

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid})"

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def verify(self, token: str, audiences: list[str], issuer: str) -> dict[str, Any]:
        """The claims of a token this key signed; PyJWT's errors for any other."""
        claims: dict[str, Any] = jwt.decode(
            token,
            self._public,
            algorithms=["RS256"],
            audience=audiences,
            issuer=issuer,
            options={"require": ["exp", "aud", "iss", "tid"]},
        )
        return claims

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self._public, as_dict=True)
        jwk.update(kid=self.kid, use="sig", alg="RS256")
        return {"keys": [jwk]}


def thumbprint(cert: x509.Certificate) -> str:
    """SHA-1 of the DER, hex: what an assertion's x5t names (RFC 7515 section 4.1.7)."""
    return cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - x5t is SHA-1 by definition


def principal_certificate(pem: bytes) -> tuple[str, str]:
    """(normalised PEM, thumbprint) of a principal's certificate, or ``BadParameter``."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise BadParameter("The certificate file is not a PEM X.509 certificate.") from exc
    return cert.public_bytes(serialization.Encoding.PEM).decode(), thumbprint(cert)


def der_thumbprint(der: bytes) -> str:
    """The thumbprint of a DER certificate (an assertion's x5c); ``ValueError`` if unreadable."""
    return thumbprint(x509.load_der_x509_certificate(der))


def verify_assertion(
    assertion: str, certificate_pem: str, audiences: list[str], leeway: int
) -> dict[str, Any]:
    """The claims of a client assertion signed with the certificate's key; PyJWT's errors."""
    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    claims: dict[str, Any] = jwt.decode(
        assertion,
        cert.public_key(),  # type: ignore[arg-type]
        algorithms=["RS256", "PS256"],
        audience=audiences,
        options={"require": ["exp", "aud", "iss", "jti"]},
        leeway=leeway,
    )
    return claims
