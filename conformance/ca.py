"""A test CA for suites whose sdist leaves theirs out.

certificates' ``test_merge_certificate`` (sync and async) signs the pending certificate's CSR
with ``tests/ca.key``, names ``tests/ca.crt`` as the issuer, and merges the result. The SDK
repository has both files; the sdist ships only ``tests/*.py``. Any CA does, with one care:

The test turns the signed certificate into the PEM body by removing newlines and then calling
``str.lstrip("-----BEGIN CERTIFICATE-----")`` and ``str.rstrip("-----END CERTIFICATE-----")``,
which strip *characters*, not the marker. When the certificate's DER length is a multiple of 3,
its base64 has no ``=`` padding, and a body that happens to end in one of ``ACDEFINRT`` loses
its last characters: a corrupt certificate, whatever the server does (about 1 run in 7 for each
test). Every length in that certificate is fixed except the issuer name (ours) and the
signature (RSA-2048: fixed too), so the CA's name is chosen to make the length no multiple
of 3: the body then ends in ``=`` and survives the strip.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

NAMES = ("Strongroom conformance test CA", "Strongroom conformance test CA 1")


def _ca(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _merge_leaf_length(key: rsa.RSAPrivateKey, ca: x509.Certificate) -> int:
    """DER length of a certificate shaped as the merge test makes it (pyOpenSSL, version 1,
    serial 1, subject CN=MyCert, an RSA-2048 key as Strongroom's default policy gives)."""
    from OpenSSL import crypto

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        leaf_key = crypto.PKey()
        leaf_key.generate_key(crypto.TYPE_RSA, 2048)
        cert = crypto.X509()
        cert.set_serial_number(1)
        cert.gmtime_adj_notBefore(0)
        cert.gmtime_adj_notAfter(60)
        cert.set_issuer(crypto.X509.from_cryptography(ca).get_subject())
        cert.get_subject().CN = "MyCert"
        cert.set_pubkey(leaf_key)
        cert.sign(crypto.PKey.from_cryptography_key(key), "sha256")
        return len(crypto.dump_certificate(crypto.FILETYPE_ASN1, cert))


def write(key_path: Path, cert_path: Path) -> None:
    """A fresh CA key and self-signed CA certificate, both PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for common_name in NAMES:
        ca = _ca(key, common_name)
        if _merge_leaf_length(key, ca) % 3:
            break
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
