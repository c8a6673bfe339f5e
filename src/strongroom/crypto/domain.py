"""Security-domain export files: the domain's keys, openable by any M of N custodians.

::

    transport key K (32 random bytes)
    payload  = AES-256-GCM_K(domain keys as JSON), associated data = the file's header
    K        = K1 | K2 (16 bytes each); each half is split M-of-N with Shamir's scheme over
               GF(2^128) (pycryptodome's ``Crypto.Protocol.SecretSharing.Shamir``)
    share i  = (K1_i | K2_i), encrypted to custodian i's RSA key with RSA-OAEP-256

Fewer than M shares interpolate to a wrong K, which the payload's AEAD then rejects; the file
also records M, so too few keys are refused before any decryption with a message saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from Crypto.Protocol.SecretSharing import Shamir
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strongroom import codec
from strongroom.errors import BadParameter

FORMAT = "strongroom-security-domain-1"
MAX_CUSTODIANS = 10
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


_b64 = codec.b64_encode


def _unb64(text: Any) -> bytes:
    return codec.b64_decode(text, "domain file field")


def _fingerprint(public: rsa.RSAPublicKey) -> str:
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def split(secret: bytes, quorum: int, count: int) -> list[bytes]:
    """``count`` shares of a 32-byte secret, any ``quorum`` of which recover it."""
    if len(secret) != 32:
        raise ValueError("the transport key is 32 bytes")
    first = Shamir.split(quorum, count, secret[:16])
    second = Shamir.split(quorum, count, secret[16:])
    return [bytes([i]) + a + b for (i, a), (_, b) in zip(first, second, strict=True)]


def combine(shares: list[bytes]) -> bytes:
    first = [(s[0], s[1:17]) for s in shares]
    second = [(s[0], s[17:33]) for s in shares]
    return bytes(Shamir.combine(first)) + bytes(Shamir.combine(second))


def export(
    domain: dict[str, Any], keys: dict[str, Any], certificates: list[bytes], quorum: int
) -> dict[str, Any]:
    """The export file's content. ``keys``: version → {key (bytes), created}."""
    if not 2 <= quorum <= len(certificates) <= MAX_CUSTODIANS:
        raise BadParameter(
            f"Need 2 <= quorum <= custodians <= {MAX_CUSTODIANS}; got quorum {quorum} of "
            f"{len(certificates)} custodian certificates."
        )
    publics = []
    for i, pem in enumerate(certificates, 1):
        try:
            public = x509.load_pem_x509_certificate(pem).public_key()
        except ValueError as exc:
            raise BadParameter(
                f"Custodian certificate {i} is not a PEM X.509 certificate."
            ) from exc
        if not isinstance(public, rsa.RSAPublicKey) or public.key_size < 2048:
            raise BadParameter(f"Custodian certificate {i} needs an RSA key of 2048 bits or more.")
        publics.append(public)
    if len({_fingerprint(p) for p in publics}) != len(publics):
        raise BadParameter("Each custodian certificate must carry a different key.")
    transport = os.urandom(32)
    header = {"format": FORMAT, "domain": domain, "quorum": quorum, "custodians": len(publics)}
    body = json.dumps(
        {v: {"key": _b64(k["key"]), "created": k["created"]} for v, k in keys.items()}
    ).encode()
    nonce = os.urandom(12)
    sealed = AESGCM(transport).encrypt(nonce, body, json.dumps(header, sort_keys=True).encode())
    shares = [
        {"custodian": _fingerprint(public), "share": _b64(public.encrypt(share, _OAEP))}
        for public, share in zip(publics, split(transport, quorum, len(publics)), strict=True)
    ]
    return {**header, "shares": shares, "nonce": _b64(nonce), "payload": _b64(sealed)}


def open_export(
    content: dict[str, Any], private_keys: list[bytes]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(domain, keys) from an export file and custodians' PEM private keys; names what fails."""
    try:
        header = {k: content[k] for k in ("format", "domain", "quorum", "custodians")}
        shares = {s["custodian"]: _unb64(s["share"]) for s in content["shares"]}
        nonce, sealed = _unb64(content["nonce"]), _unb64(content["payload"])
        quorum = int(header["quorum"])
    except (KeyError, TypeError, ValueError, BadParameter) as exc:
        raise BadParameter(
            "The domain file is damaged: a required field is missing or unreadable."
        ) from exc
    if header["format"] != FORMAT:
        raise BadParameter(
            f"The domain file has format {header['format']!r:.60}; expected {FORMAT}."
        )
    opened: list[bytes] = []
    given: dict[str, int] = {}  # custodian fingerprint -> which key named it first
    for i, pem in enumerate(private_keys, 1):
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise BadParameter(f"Key {i} is not an unencrypted PEM private key.") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise BadParameter(f"Key {i} is not an RSA key; custodians hold RSA keys.")
        fingerprint = _fingerprint(key.public_key())
        if fingerprint in given:
            raise BadParameter(
                f"Key {i} is the same custodian key as key {given[fingerprint]}; give each "
                f"custodian's key once ({quorum} different custodians are needed)."
            )
        given[fingerprint] = i
        share = shares.get(fingerprint)
        if share is None:
            raise BadParameter(f"Key {i} belongs to no custodian of this domain file.")
        try:
            opened.append(key.decrypt(share, _OAEP))
        except ValueError as exc:
            raise BadParameter(
                f"Key {i} cannot open its share: the domain file is damaged."
            ) from exc
    if len({s[0] for s in opened}) < quorum:
        raise BadParameter(
            f"This domain file needs {quorum} different custodians' keys; {len(set(opened))} "
            "were given."
        )
    try:
        transport = combine(opened[:quorum])
    except (ValueError, IndexError) as exc:
        raise BadParameter("The domain file is damaged: its shares do not combine.") from exc
    try:
        body = AESGCM(transport).decrypt(nonce, sealed, json.dumps(header, sort_keys=True).encode())
    except InvalidTag as exc:
        raise BadParameter(
            "The domain file is damaged: its payload failed authentication."
        ) from exc
    keys = {
        v: {"key": _unb64(k["key"]), "created": int(k["created"])}
        for v, k in json.loads(body).items()
    }
    return dict(header["domain"]), keys
