"""X.509 for certificates: self-signed issuance, CSRs, merge checks, PFX and PEM, imports.

Every pyca failure becomes ``BadParameter`` with a message that says which input is wrong.
Policies' x509 properties arrive completed (``services.certificate_rules``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ObjectIdentifier

from strongroom import codec
from strongroom.crypto.keys import load_private
from strongroom.errors import BadParameter
from strongroom.models import SubjectAlternativeNames, X509Properties

PFX = "application/x-pkcs12"
PEM = "application/x-pem-file"
_PEM_KEY = re.compile(rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.S)
_UPN = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")  # Microsoft UPN otherName
_USAGES = {
    "digitalSignature": "digital_signature",
    "nonRepudiation": "content_commitment",
    "keyEncipherment": "key_encipherment",
    "dataEncipherment": "data_encipherment",
    "keyAgreement": "key_agreement",
    "keyCertSign": "key_cert_sign",
    "cRLSign": "crl_sign",
    "encipherOnly": "encipher_only",
    "decipherOnly": "decipher_only",
}
KEY_USAGES = tuple(_USAGES)  # the key_usage names a certificate policy may give


def x5t(der: bytes) -> str:
    """base64url SHA-1 thumbprint, as Key Vault's ``x5t``."""
    digest = hashlib.sha1(der).digest()  # noqa: S324 - x5t is SHA-1 by definition (RFC 7515 4.1.7)
    return codec.b64url_encode(digest)


def _add_months(when: dt.datetime, months: int) -> dt.datetime:
    month = when.month - 1 + months
    year, month = when.year + month // 12, month % 12 + 1
    day = min(
        when.day,
        [31, 29 if year % 4 == 0 else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1],
    )
    return when.replace(year=year, month=month, day=day)


def _name(subject: str | None) -> x509.Name:
    if not subject:
        return x509.Name([])  # SANs alone name the subject (RFC 5280 4.2.1.6)
    try:
        return x509.Name.from_rfc4514_string(subject.replace(", ", ","))
    except ValueError as exc:
        raise BadParameter(
            f"x509_props.subject '{subject[:80]}' is not a distinguished name such as CN=example."
        ) from exc


def _sans(sans: SubjectAlternativeNames | None) -> list[x509.GeneralName]:
    sans = sans or SubjectAlternativeNames()
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in sans.dns_names or ()]
    names += [x509.RFC822Name(e) for e in sans.emails or ()]
    names += [
        x509.OtherName(_UPN, b"\x0c" + bytes([len(u.encode())]) + u.encode())
        for u in sans.upns or ()
    ]
    names += [x509.UniformResourceIdentifier(u) for u in sans.uris or ()]
    try:
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in sans.ip_addresses or ()]
    except ValueError as exc:
        raise BadParameter(f"x509_props.sans.ipAddresses: {exc}.") from exc
    return names


def _extensions(builder: Any, x509_props: X509Properties, *, ca: bool = False) -> Any:
    sans = _sans(x509_props.sans)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    ekus = x509_props.ekus or ()
    if ekus:
        try:
            oids = [ObjectIdentifier(e) for e in ekus]
        except ValueError as exc:
            raise BadParameter(f"x509_props.ekus: {exc}.") from exc
        builder = builder.add_extension(x509.ExtendedKeyUsage(oids), critical=False)
    usages = x509_props.key_usage or ()
    if usages:
        unknown = [u for u in usages if u not in _USAGES]
        if unknown:
            raise BadParameter(f"x509_props.key_usage: unknown usage {unknown[0]!r:.40}.")
        flags = {v: False for v in _USAGES.values()}
        flags.update({_USAGES[u]: True for u in usages})
        if flags["encipher_only"] or flags["decipher_only"]:
            # RFC 5280 4.2.1.3: these bits qualify keyAgreement, which they therefore imply.
            flags["key_agreement"] = True
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    return builder


def check_properties(x509_props: X509Properties) -> None:
    """Refuses, before any key is made, what would stop ``self_signed`` and ``csr``: a subject
    that is not a distinguished name, a SAN or EKU that cannot be encoded."""
    try:
        _extensions(x509.CertificateBuilder().subject_name(_name(x509_props.subject)), x509_props)
    except ValueError as exc:
        if isinstance(exc, BadParameter):
            raise
        raise BadParameter(f"The policy's x509_props cannot make a certificate: {exc}.") from exc


def self_signed(material: bytes, x509_props: X509Properties, now: int) -> bytes:
    """A self-signed certificate (DER); valid from 10 minutes before ``now``."""
    try:
        return _self_signed(material, x509_props, now)
    except ValueError as exc:
        if isinstance(exc, BadParameter):
            raise
        raise BadParameter(f"The policy's x509_props cannot make a certificate: {exc}.") from exc


def _self_signed(material: bytes, x509_props: X509Properties, now: int) -> bytes:
    key = load_private(material)
    subject = _name(x509_props.subject)
    start = dt.datetime.fromtimestamp(now, dt.UTC) - dt.timedelta(minutes=10)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(_add_months(start, x509_props.validity_months or 12))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    builder = _extensions(builder, x509_props)
    return bytes(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))


def csr(material: bytes, x509_props: X509Properties) -> bytes:
    """A PKCS#10 request (DER) for the pending key, for an external issuer to sign."""
    try:
        return _csr(material, x509_props)
    except ValueError as exc:
        if isinstance(exc, BadParameter):
            raise
        raise BadParameter(f"The policy's x509_props cannot make a request: {exc}.") from exc


def _csr(material: bytes, x509_props: X509Properties) -> bytes:
    key = load_private(material)
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(x509_props.subject))
    sans = _sans(x509_props.sans)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _same_key(material: bytes, cert: x509.Certificate) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    mine = load_private(material).public_key().public_bytes(serialization.Encoding.DER, fmt)
    return bool(mine == cert.public_key().public_bytes(serialization.Encoding.DER, fmt))


_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def _der(item: bytes) -> bytes:
    """DER from an x5c item. Tolerates what clients send and the service accepts: PEM text
    (even without line breaks) or the base64 text of the DER (the SDK's merge test sends that,
    which the SDK then base64-encodes again)."""
    if item[:1] == b"\x30":  # a DER SEQUENCE: already what x5c should carry
        return item
    match = _PEM_CERT.search(item)
    body = match.group(1) if match else item  # PEM, or the base64 text of the DER itself
    try:
        text = b"".join(body.split()).decode("ascii")
    except UnicodeDecodeError as exc:
        raise BadParameter("'x5c' items must be standard base64 DER certificates.") from exc
    return codec.b64_decode(text, "x5c")


def check_merge(material: bytes, chain: list[bytes]) -> list[bytes]:
    """The leaf of a signed chain must carry the pending key; returns the chain as DER."""
    if not chain:
        raise BadParameter("'x5c' must hold the signed certificate (and its chain).")
    chain = [_der(c) for c in chain]
    try:
        certs = [x509.load_der_x509_certificate(c) for c in chain]
    except ValueError as exc:
        raise BadParameter("'x5c' items must be standard base64 DER certificates.") from exc
    if not _same_key(material, certs[0]):
        raise BadParameter(
            "The merged certificate's public key does not match the pending request's key."
        )
    return chain


@dataclass(frozen=True, slots=True)
class Validity:
    nbf: int
    exp: int


def validity(der: bytes) -> Validity:
    cert = x509.load_der_x509_certificate(der)
    return Validity(
        int(cert.not_valid_before_utc.timestamp()), int(cert.not_valid_after_utc.timestamp())
    )


def kty_of(material: bytes) -> tuple[str, int, str | None]:
    """(kty, size, crv) of a private key."""
    key = load_private(material)
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA", key.key_size, None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        crv = {
            "secp256r1": "P-256",
            "secp256k1": "P-256K",
            "secp384r1": "P-384",
            "secp521r1": "P-521",
        }
        return "EC", key.curve.key_size, crv.get(key.curve.name)
    raise BadParameter("Certificates need an RSA or EC key.")


def secret_value(material: bytes, chain: list[bytes], content_type: str) -> str:
    """The managed secret: standard base64 PFX, or PEM text (private key, then chain)."""
    key = load_private(material)
    certs = [x509.load_der_x509_certificate(c) for c in chain]
    if content_type == PEM:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return str(pem) + "".join(
            c.public_bytes(serialization.Encoding.PEM).decode() for c in certs
        )
    pfx = pkcs12.serialize_key_and_certificates(
        None, key, certs[0], certs[1:] or None, serialization.NoEncryption()
    )
    return codec.b64_encode(pfx)


def _pkcs8(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def parse_import(
    value: str, password: str | None, content_type: str | None
) -> tuple[bytes, list[bytes], str]:
    """(key material, chain DER, content type) from an import's ``value`` (standard base64
    of PFX bytes or of PEM text). Names what is wrong."""
    raw = codec.b64_decode(value, "value")
    if b"-----BEGIN" in raw:
        try:
            certs = x509.load_pem_x509_certificates(raw)
        except ValueError as exc:
            raise BadParameter("The PEM holds no readable certificate.") from exc
        block = _PEM_KEY.search(raw)
        if block is None:
            raise BadParameter("The PEM holds no private key; import needs the key and chain.")
        try:
            key = serialization.load_pem_private_key(
                block.group(0), password.encode() if password else None
            )
        except (ValueError, TypeError) as exc:
            raise BadParameter(
                "The PEM private key cannot be read (wrong password or damaged key)."
            ) from exc
        kind = PEM
    else:
        try:
            loaded, cert, extra = pkcs12.load_key_and_certificates(
                raw, password.encode() if password else None
            )
        except ValueError as exc:
            raise BadParameter(
                "The PFX cannot be read: the password is wrong or the data is not PKCS#12."
            ) from exc
        if loaded is None or cert is None:
            raise BadParameter("The PFX must hold a private key and its certificate.")
        key = loaded
        certs = [cert, *extra]
        kind = PFX
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise BadParameter("Certificates need an RSA or EC key.")
    material = _pkcs8(key)
    leaf = next((c for c in certs if _same_key(material, c)), None)
    if leaf is None:
        raise BadParameter("The private key does not match any certificate in the import.")
    chain = [leaf, *(c for c in certs if c is not leaf)]
    return (
        material,
        [c.public_bytes(serialization.Encoding.DER) for c in chain],
        content_type or kind,
    )


def describe(der: bytes) -> X509Properties:
    """Subject, EKUs and DNS names of a certificate, as a policy's x509_props."""
    cert = x509.load_der_x509_certificate(der)
    ekus: tuple[str, ...] | None = None
    sans: SubjectAlternativeNames | None = None
    try:
        found = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        ekus = tuple(o.dotted_string for o in found)
    except x509.ExtensionNotFound:
        pass
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = tuple(san.get_values_for_type(x509.DNSName))
        sans = SubjectAlternativeNames(dns_names=dns_names or None)
    except x509.ExtensionNotFound:
        pass
    return X509Properties(subject=cert.subject.rfc4514_string(), ekus=ekus, sans=sans)


def convert_secret(value: str, current: str, wanted: str) -> str:
    """A certificate-backed secret in the other format (GET ...?outContentType=)."""
    if wanted not in (PFX, PEM):
        raise BadParameter(f"outContentType must be {PFX} or {PEM}.")
    if wanted == current:
        return value
    if current == PFX:
        key, cert, extra = pkcs12.load_key_and_certificates(codec.b64_decode(value, "value"), None)
        if key is None or cert is None:
            raise BadParameter("The stored PFX holds no key and certificate to convert.")
        chain = [cert, *extra]
    else:
        raw = value.encode()
        block = _PEM_KEY.search(raw)
        if block is None:
            raise BadParameter("The stored PEM holds no private key to convert.")
        key = serialization.load_pem_private_key(block.group(0), None)
        chain = x509.load_pem_x509_certificates(raw)
    material = _pkcs8(key)
    return secret_value(
        material, [c.public_bytes(serialization.Encoding.DER) for c in chain], wanted
    )
