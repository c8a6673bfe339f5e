"""The client's conversions between PEM/DER keys and JSON Web Keys (RFC 7517/7518), for
``strongroom key import`` and ``key download``. The client does them itself, with
``cryptography``, as az does: it talks to any Key Vault, not only to this server's code."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# JWK curve names (RFC 7518 section 6.2.1.1; P-256K from RFC 8812) and cryptography's curves.
CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-256K": ec.SECP256K1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
_NAMES = {"secp256r1": "P-256", "secp256k1": "P-256K", "secp384r1": "P-384", "secp521r1": "P-521"}


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _bytes(value: int, width: int | None = None) -> bytes:
    return value.to_bytes(width or (value.bit_length() + 7) // 8 or 1, "big")


def jwk_from_pem(pem: bytes, password: bytes | None) -> dict[str, Any]:
    """A PEM private key (RSA or EC, PKCS#8 or traditional, encrypted with ``password`` or
    not) as a private JWK. ValueError says what is wrong with it."""
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except TypeError as exc:  # encrypted without a password, or a password for a clear key
        raise ValueError(f"{exc} (--pem-password)") from exc
    if isinstance(key, rsa.RSAPrivateKey):
        p = key.private_numbers()
        members = {"n": p.public_numbers.n, "e": p.public_numbers.e, "d": p.d, "p": p.p,
                   "q": p.q, "dp": p.dmp1, "dq": p.dmq1, "qi": p.iqmp}  # fmt: skip
        return {"kty": "RSA", **{name: _bytes(value) for name, value in members.items()}}
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in _NAMES:
            raise ValueError(f"curve {key.curve.name} is not one of {', '.join(CURVES)}")
        width = (key.curve.key_size + 7) // 8
        public = key.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": _NAMES[key.curve.name],
            "x": _bytes(public.x, width),
            "y": _bytes(public.y, width),
            "d": _bytes(key.private_numbers().private_value, width),
        }
    raise ValueError("the PEM key must be an RSA or EC private key")


def jwk_from_json(jwk: dict[str, Any]) -> dict[str, Any]:
    """A JWK file's members, binary ones decoded from base64url (``JsonWebKey`` takes bytes)."""
    binary = {"n", "e", "d", "p", "q", "dp", "dq", "qi", "k", "x", "y", "t"}
    if not isinstance(jwk, dict):
        raise ValueError("a JWK file holds one JSON object")
    out = {name: unb64u(value) if name in binary else value for name, value in jwk.items()
           if name in binary | {"kty", "crv", "key_ops"}}  # fmt: skip
    return out


def _name(member: Any) -> str:
    """An SDK enum member's wire value (``str()`` of one is its Python name)."""
    return str(getattr(member, "value", member))


def public_key_file(jwk: Any, encoding: str) -> bytes:
    """The public key of an SDK ``JsonWebKey`` as SubjectPublicKeyInfo, PEM or DER."""
    kty = _name(jwk.kty).removesuffix("-HSM")
    public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    if kty == "RSA":
        public = rsa.RSAPublicNumbers(
            int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")
        ).public_key()
    elif kty == "EC":
        curve = CURVES[_name(jwk.crv)]()
        public = ec.EllipticCurvePublicNumbers(
            int.from_bytes(jwk.x, "big"), int.from_bytes(jwk.y, "big"), curve
        ).public_key()
    else:
        raise ValueError(f"an {_name(jwk.kty)} key has no public key to download")
    fmt = serialization.Encoding.PEM if encoding == "PEM" else serialization.Encoding.DER
    return public.public_bytes(fmt, serialization.PublicFormat.SubjectPublicKeyInfo)
