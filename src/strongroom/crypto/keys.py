"""Key material and Key Vault's cryptographic operations, as tables over pyca/cryptography.

Material is what gets sealed at rest: PKCS#8 DER for RSA and EC keys, raw bytes for oct keys.
Loaded key objects are cached by material, since parsing an RSA key with validation costs
~33 ms (design.md, "Costs"); keys reach this module only after we made or validated them, so
reloading skips pyca's RSA validation.

Every pyca failure becomes ``BadParameter`` here, with a message that names what to fix.
Algorithms: JSON Web Algorithms (RFC 7518) as Key Vault names them (keys.json, 2025-07-01).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap,
    aes_key_wrap_with_padding,
)

from strongroom import codec
from strongroom.errors import BadParameter

RSA_SIZES = (2048, 3072, 4096)
OCT_SIZES = (128, 192, 256)
CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-256K": ec.SECP256K1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
_CURVE_NAMES = {cls.name: name for name, cls in CURVES.items()}
KTYS = ("RSA", "RSA-HSM", "EC", "EC-HSM", "oct", "oct-HSM")
DEFAULT_OPS = {
    "RSA": ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"],
    "EC": ["sign", "verify"],
    "oct": ["encrypt", "decrypt", "wrapKey", "unwrapKey"],
}
OPERATIONS = ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export")


def family(kty: str) -> str:
    """'RSA-HSM' → 'RSA'. HSM types are software-protected here (README)."""
    return kty.removesuffix("-HSM")


b64u = codec.b64url_encode


def unb64u(text: Any, field: str) -> bytes:
    return codec.b64url_decode(text, field)


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _bytes(value: int, length: int | None = None) -> bytes:
    return value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big")


# -- loading ----------------------------------------------------------------------------------

_LOADED: dict[bytes, Any] = {}
_MAX_LOADED = 4096


def load_private(material: bytes) -> Any:
    key = _LOADED.get(material)
    if key is None:
        key = serialization.load_der_private_key(
            material, password=None, unsafe_skip_rsa_key_validation=True
        )
        if len(_LOADED) >= _MAX_LOADED:
            _LOADED.clear()
        _LOADED[material] = key
    return key


def _pkcs8(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# -- creating and importing -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What ``generate`` makes: parameters checked and defaults filled in."""

    kind: str  # RSA, EC or oct
    size: int | None
    crv: str | None
    exponent: int | None


def check_generate(kty: str, size: int | None, crv: str | None, exponent: int | None) -> KeySpec:
    """The parameters of a key to generate, checked (``BadParameter`` names the wrong one)."""
    if kty not in KTYS:
        raise BadParameter(f"'kty' must be one of {', '.join(KTYS)}; got {kty!r:.40}.")
    kind = family(kty)
    if kind == "RSA":
        if crv is not None:
            raise BadParameter("'crv' applies to EC keys, not RSA keys.")
        size = size or 2048
        if size not in RSA_SIZES:
            raise BadParameter(f"RSA key_size {size} is not supported; use 2048, 3072 or 4096.")
        exponent = exponent or 65537
        if exponent not in (3, 65537):
            raise BadParameter("public_exponent must be 65537 (or 3).")
        return KeySpec(kind, size, None, exponent)
    if kind == "EC":
        crv = crv or "P-256"
        if crv not in CURVES:
            raise BadParameter(f"Curve '{crv}' is not supported; use {', '.join(CURVES)}.")
        return KeySpec(kind, None, crv, None)
    size = size or 256
    if size not in OCT_SIZES:
        raise BadParameter(f"oct key_size {size} is not supported; use 128, 192 or 256.")
    return KeySpec(kind, size, None, None)


def generate(kty: str, size: int | None, crv: str | None, exponent: int | None) -> bytes:
    """New key material. RSA generation is slow: callers run it off the event loop."""
    spec = check_generate(kty, size, crv, exponent)
    if spec.kind == "RSA":
        assert spec.size is not None and spec.exponent is not None
        return _pkcs8(rsa.generate_private_key(public_exponent=spec.exponent, key_size=spec.size))
    if spec.kind == "EC":
        assert spec.crv is not None
        return _pkcs8(ec.generate_private_key(CURVES[spec.crv]()))
    assert spec.size is not None
    return os.urandom(spec.size // 8)


def from_jwk(jwk: dict[str, Any]) -> tuple[str, bytes]:
    """Validates an imported private JWK; returns (kty, material). Names the bad field."""
    kty = jwk.get("kty")
    if kty not in KTYS:
        raise BadParameter(f"'key.kty' must be one of {', '.join(KTYS)}; got {kty!r:.40}.")
    kind = family(kty)
    try:
        if kind == "RSA":
            numbers = {f: _int(unb64u(jwk.get(f), f"key.{f}")) for f in ("n", "e", "d")}
            extra = {f: jwk.get(f) for f in ("p", "q", "dp", "dq", "qi")}
            n, e, d = numbers["n"], numbers["e"], numbers["d"]
            if all(v is None for v in extra.values()):
                p, q = rsa.rsa_recover_prime_factors(n, e, d)
                dp, dq, qi = rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q)
            elif any(v is None for v in extra.values()):
                raise BadParameter("An RSA key needs all of p, q, dp, dq and qi, or none.")
            else:
                p, q, dp, dq, qi = (_int(unb64u(extra[f], f"key.{f}")) for f in extra)
            public = rsa.RSAPublicNumbers(e, n)
            private = rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, public)
            key = private.private_key()  # validates: inconsistent parts raise ValueError
            if key.key_size not in RSA_SIZES:
                raise BadParameter(
                    f"RSA key size {key.key_size} is not supported; use 2048, 3072 or 4096."
                )
            return kty, _pkcs8(key)
        if kind == "EC":
            crv = jwk.get("crv")
            if crv not in CURVES:
                raise BadParameter(f"'key.crv' must be one of {', '.join(CURVES)}.")
            curve = CURVES[crv]()
            width = (curve.key_size + 7) // 8
            coords = {f: unb64u(jwk.get(f), f"key.{f}") for f in ("x", "y", "d")}
            for f, raw in coords.items():
                if len(raw) != width:
                    raise BadParameter(f"'key.{f}' is {len(raw)} bytes; {crv} needs {width} bytes.")
            point = ec.EllipticCurvePublicNumbers(_int(coords["x"]), _int(coords["y"]), curve)
            try:
                point.public_key()
            except ValueError as exc:
                raise BadParameter(f"'key.x'/'key.y' is not a point on {crv}.") from exc
            eckey = ec.EllipticCurvePrivateNumbers(_int(coords["d"]), point).private_key()
            return kty, _pkcs8(eckey)
        raw = unb64u(jwk.get("k"), "key.k")
        if len(raw) * 8 not in OCT_SIZES:
            raise BadParameter(f"'key.k' is {len(raw) * 8} bits; use 128, 192 or 256 bits.")
        return kty, raw
    except ValueError as exc:
        if isinstance(exc, BadParameter):
            raise
        raise BadParameter(f"The {kind} key's parts are inconsistent: {exc}.") from exc


@dataclass(frozen=True, slots=True)
class PublicInfo:
    jwk: dict[str, str]  # public JWK members: n, e | crv, x, y (empty for oct)
    key_size: int


def public_info(kty: str, material: bytes) -> PublicInfo:
    kind = family(kty)
    if kind == "oct":
        return PublicInfo({}, len(material) * 8)
    key = load_private(material)
    if kind == "RSA":
        nums = key.public_key().public_numbers()
        return PublicInfo({"n": b64u(_bytes(nums.n)), "e": b64u(_bytes(nums.e))}, key.key_size)
    nums = key.public_key().public_numbers()
    width = (key.curve.key_size + 7) // 8
    return PublicInfo(
        {
            "crv": _CURVE_NAMES[key.curve.name],
            "x": b64u(_bytes(nums.x, width)),
            "y": b64u(_bytes(nums.y, width)),
        },
        key.curve.key_size,
    )


def private_jwk(kty: str, material: bytes) -> dict[str, str]:
    """Every private member; used only inside sealed backups."""
    kind = family(kty)
    if kind == "oct":
        return {"k": b64u(material)}
    return {"der": b64u(material)}


def export_jwk(kty: str, material: bytes) -> dict[str, str]:
    """The key as a private JWK with every member (RFC 7518 sections 6.2.2, 6.3.2, 6.4.1), as
    ``from_jwk`` takes it back. Only a test installation's plaintext export writes one."""
    kind = family(kty)
    if kind == "oct":
        return {"kty": kty, "k": b64u(material)}
    key = load_private(material)
    if kind == "RSA":
        p = key.private_numbers()
        members = {"n": p.public_numbers.n, "e": p.public_numbers.e, "d": p.d, "p": p.p,
                   "q": p.q, "dp": p.dmp1, "dq": p.dmq1, "qi": p.iqmp}  # fmt: skip
        return {"kty": kty, **{name: b64u(_bytes(value)) for name, value in members.items()}}
    width = (key.curve.key_size + 7) // 8
    public = key.public_key().public_numbers()
    return {
        "kty": kty,
        "crv": _CURVE_NAMES[key.curve.name],
        "x": b64u(_bytes(public.x, width)),
        "y": b64u(_bytes(public.y, width)),
        "d": b64u(_bytes(key.private_numbers().private_value, width)),
    }


def jwk_from_pem(pem: bytes) -> dict[str, str]:
    """A PEM private key (PKCS#8 or traditional, unencrypted) as a private JWK for ``from_jwk``."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise BadParameter(
            "The PEM is not a readable private key (an unencrypted PKCS#8 or traditional "
            "'BEGIN ... PRIVATE KEY' block)."
        ) from exc
    if isinstance(key, rsa.RSAPrivateKey):
        return export_jwk("RSA", _pkcs8(key))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, tuple(CURVES.values())):
            raise BadParameter(f"Curve {key.curve.name} is not supported; use {', '.join(CURVES)}.")
        return export_jwk("EC", _pkcs8(key))
    raise BadParameter("The PEM key must be an RSA or EC key.")


def material_from_backup(kty: str, fields: dict[str, str]) -> bytes:
    return unb64u(fields["k"] if family(kty) == "oct" else fields["der"], "material")


# -- signatures -------------------------------------------------------------------------------

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
# ES* algorithms: the curve each requires (RFC 7518 section 3.4; ES256K from RFC 8812).
_EC_ALGS = {"ES256": "P-256", "ES256K": "P-256K", "ES384": "P-384", "ES512": "P-521"}
_EC_HASH = {"ES256": "256", "ES256K": "256", "ES384": "384", "ES512": "512"}


def _sign_scheme(kind: str, alg: str) -> tuple[str, hashes.HashAlgorithm]:
    if kind == "RSA" and alg[:2] in ("RS", "PS") and alg[2:] in _HASHES:
        return alg[:2], _HASHES[alg[2:]]()
    if kind == "EC" and alg in _EC_ALGS:
        return "ES", _HASHES[_EC_HASH[alg]]()
    allowed = "RS256/384/512, PS256/384/512" if kind == "RSA" else "ES256, ES256K, ES384, ES512"
    raise BadParameter(f"Algorithm '{alg:.20}' cannot sign with an {kind} key; use {allowed}.")


def _check_digest(alg: str, digest: bytes, hash_: hashes.HashAlgorithm) -> None:
    if len(digest) != hash_.digest_size:
        raise BadParameter(
            f"{alg} needs a {hash_.digest_size}-byte digest ({hash_.name}); "
            f"got {len(digest)} bytes."
        )


def _ec_curve_check(key: Any, alg: str) -> None:
    want = _EC_ALGS[alg]
    have = _CURVE_NAMES[key.curve.name]
    if want != have:
        raise BadParameter(f"{alg} needs a {want} key; this key is on {have}.")


def sign(kty: str, material: bytes, alg: str, digest: bytes) -> bytes:
    kind = family(kty)
    scheme, hash_ = _sign_scheme(kind, alg)
    _check_digest(alg, digest, hash_)
    key = load_private(material)
    if scheme == "RS":
        return bytes(key.sign(digest, asym.PKCS1v15(), Prehashed(hash_)))
    if scheme == "PS":
        pss = asym.PSS(mgf=asym.MGF1(hash_), salt_length=hash_.digest_size)
        return bytes(key.sign(digest, pss, Prehashed(hash_)))
    _ec_curve_check(key, alg)
    r, s = decode_dss_signature(key.sign(digest, ec.ECDSA(Prehashed(hash_))))
    width = (key.curve.key_size + 7) // 8
    return _bytes(r, width) + _bytes(s, width)  # JWS form: r || s (RFC 7518 section 3.4)


def verify(kty: str, material: bytes, alg: str, digest: bytes, signature: bytes) -> bool:
    kind = family(kty)
    scheme, hash_ = _sign_scheme(kind, alg)
    _check_digest(alg, digest, hash_)
    public = load_private(material).public_key()
    try:
        if scheme == "RS":
            public.verify(signature, digest, asym.PKCS1v15(), Prehashed(hash_))
        elif scheme == "PS":
            pss = asym.PSS(mgf=asym.MGF1(hash_), salt_length=asym.PSS.AUTO)
            public.verify(signature, digest, pss, Prehashed(hash_))
        else:
            _ec_curve_check(public, alg)
            width = (public.curve.key_size + 7) // 8
            if len(signature) != 2 * width:
                return False
            der = encode_dss_signature(_int(signature[:width]), _int(signature[width:]))
            public.verify(der, digest, ec.ECDSA(Prehashed(hash_)))
    except InvalidSignature:
        return False
    return True


# -- encryption and key wrapping --------------------------------------------------------------

_RSA_PADDINGS: dict[str, Callable[[], asym.AsymmetricPadding]] = {
    "RSA1_5": asym.PKCS1v15,
    "RSA-OAEP": lambda: asym.OAEP(asym.MGF1(hashes.SHA1()), hashes.SHA1(), None),  # noqa: S303 - RFC 7518 4.3 defines RSA-OAEP with SHA-1
    "RSA-OAEP-256": lambda: asym.OAEP(asym.MGF1(hashes.SHA256()), hashes.SHA256(), None),
}
_AES_BITS = {"128": 128, "192": 192, "256": 256}
_GCM_NONCE, _GCM_TAG = 12, 16


@dataclass(frozen=True, slots=True)
class Encrypted:
    value: bytes
    iv: bytes | None = None
    tag: bytes | None = None
    aad: bytes | None = None


def _aes_alg(alg: str, material: bytes, suffixes: tuple[str, ...]) -> str:
    """'A256GCM' → 'GCM' after checking the key is 256 bits."""
    if len(alg) > 4 and alg[0] == "A" and alg[1:4] in _AES_BITS and alg[4:] in suffixes:
        if _AES_BITS[alg[1:4]] != len(material) * 8:
            raise BadParameter(
                f"{alg} needs a {alg[1:4]}-bit key; this key is {len(material) * 8} bits."
            )
        return alg[4:]
    return ""


def encrypt(
    kty: str, material: bytes, alg: str, plaintext: bytes, iv: bytes | None, aad: bytes | None
) -> Encrypted:
    kind = family(kty)
    if kind == "RSA" and alg in _RSA_PADDINGS:
        try:
            return Encrypted(
                load_private(material).public_key().encrypt(plaintext, _RSA_PADDINGS[alg]())
            )
        except ValueError as exc:
            raise BadParameter(f"{alg} cannot encrypt this plaintext: {exc}.") from exc
    if kind == "oct":
        mode = _aes_alg(alg, material, ("GCM", "CBC", "CBCPAD"))
        if mode == "GCM":
            if iv is not None:
                # A nonce the caller chooses can be one already used with this key: encrypting
                # zeros under it yields the keystream of the earlier ciphertext, and GCM's
                # authentication key with it. Managed HSM refuses one too.
                raise BadParameter(
                    f"{alg} encryption does not take an 'iv': the server makes a fresh 12-byte "
                    "nonce for every encryption and returns it in 'iv'. Remove 'iv'."
                )
            nonce = os.urandom(_GCM_NONCE)
            sealed = AESGCM(material).encrypt(nonce, plaintext, aad)
            return Encrypted(sealed[:-16], nonce, sealed[-16:], aad)
        if mode in ("CBC", "CBCPAD"):
            # The Azure SDK requires the caller's IV for CBC (and sends it); docs/security.md
            # says what a caller-chosen CBC IV allows.
            iv = iv or os.urandom(16)
            if len(iv) != 16:
                raise BadParameter(f"{alg} needs a 16-byte iv; got {len(iv)} bytes.")
            data = plaintext
            if mode == "CBCPAD":
                padder = padding.PKCS7(128).padder()
                data = padder.update(plaintext) + padder.finalize()
            elif len(data) % 16:
                raise BadParameter(f"{alg} needs a plaintext that is a multiple of 16 bytes.")
            enc = Cipher(algorithms.AES(material), modes.CBC(iv)).encryptor()
            return Encrypted(enc.update(data) + enc.finalize(), iv)
    raise BadParameter(f"Algorithm '{alg:.20}' cannot encrypt with an {kind} key.")


def decrypt(
    kty: str,
    material: bytes,
    alg: str,
    ciphertext: bytes,
    iv: bytes | None,
    aad: bytes | None,
    tag: bytes | None,
) -> bytes:
    kind = family(kty)
    if kind == "RSA" and alg in _RSA_PADDINGS:
        try:
            return bytes(load_private(material).decrypt(ciphertext, _RSA_PADDINGS[alg]()))
        except ValueError as exc:
            raise BadParameter(
                f"The ciphertext cannot be decrypted with this key and {alg}."
            ) from exc
    if kind == "oct":
        mode = _aes_alg(alg, material, ("GCM", "CBC", "CBCPAD"))
        if mode == "GCM":
            if iv is None or tag is None:
                raise BadParameter(f"{alg} decryption needs 'iv' and 'tag'.")
            if len(iv) != _GCM_NONCE or len(tag) != _GCM_TAG:
                raise BadParameter(
                    f"{alg} decryption needs the 12-byte 'iv' and 16-byte 'tag' that encryption "
                    f"returned; got {len(iv)} and {len(tag)} bytes."
                )
            try:
                return AESGCM(material).decrypt(iv, ciphertext + tag, aad)
            except InvalidTag as exc:
                raise BadParameter(
                    f"{alg} decryption failed: the ciphertext, iv, tag or aad is wrong."
                ) from exc
        if mode in ("CBC", "CBCPAD"):
            if iv is None or len(iv) != 16 or len(ciphertext) % 16:
                raise BadParameter(f"{alg} needs a 16-byte iv and whole 16-byte blocks.")
            dec = Cipher(algorithms.AES(material), modes.CBC(iv)).decryptor()
            data = dec.update(ciphertext) + dec.finalize()
            if mode == "CBC":
                return data
            try:
                unpadder = padding.PKCS7(128).unpadder()
                return unpadder.update(data) + unpadder.finalize()
            except ValueError as exc:
                raise BadParameter(f"{alg} decryption failed: bad padding.") from exc
    raise BadParameter(f"Algorithm '{alg:.20}' cannot decrypt with an {kind} key.")


_KW = {"KW": (aes_key_wrap, aes_key_unwrap)}
_CKM = {
    "CKM_AES_KEY_WRAP": (aes_key_wrap, aes_key_unwrap),  # RFC 3394
    "CKM_AES_KEY_WRAP_PAD": (aes_key_wrap_with_padding, aes_key_unwrap_with_padding),  # RFC 5649
}


def _wrapper(kind: str, alg: str, material: bytes) -> tuple[Any, Any] | None:
    if kind != "oct":
        return None
    if alg in _CKM:
        return _CKM[alg]
    mode = _aes_alg(alg, material, ("KW",))
    return _KW.get(mode)


def wrap_key(kty: str, material: bytes, alg: str, key: bytes) -> bytes:
    kind = family(kty)
    if kind == "RSA" and alg in _RSA_PADDINGS:
        return encrypt(kty, material, alg, key, None, None).value
    funcs = _wrapper(kind, alg, material)
    if funcs is None:
        raise BadParameter(f"Algorithm '{alg:.20}' cannot wrap with an {kind} key.")
    try:
        return bytes(funcs[0](material, key))
    except ValueError as exc:
        raise BadParameter(f"{alg} cannot wrap this key: {exc}.") from exc


def unwrap_key(kty: str, material: bytes, alg: str, wrapped: bytes) -> bytes:
    kind = family(kty)
    if kind == "RSA" and alg in _RSA_PADDINGS:
        return decrypt(kty, material, alg, wrapped, None, None, None)
    funcs = _wrapper(kind, alg, material)
    if funcs is None:
        raise BadParameter(f"Algorithm '{alg:.20}' cannot unwrap with an {kind} key.")
    try:
        return bytes(funcs[1](material, wrapped))
    except (InvalidUnwrap, ValueError) as exc:
        raise BadParameter(
            f"{alg} unwrap failed: the wrapped key does not match this key."
        ) from exc


def is_private_rsa_op(kty: str, operation: str) -> bool:
    """RSA private operations cost ~1 ms of CPU each: they run in worker processes
    (``crypto.workers``), off the event loop."""
    return family(kty) == "RSA" and operation in ("sign", "decrypt", "unwrapKey")
