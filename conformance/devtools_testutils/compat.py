"""Stand-ins for third-party test APIs that the suites call but current releases removed.

certificates' ``test_merge_certificate`` reads the pending certificate's CSR with
``OpenSSL.crypto.load_certificate_request`` and copies its subject and public key into the
certificate it signs. pyOpenSSL deprecated that function in 24.2 and removed it in 26.3, and
every release that still has it caps ``cryptography`` below 49, older than the one Strongroom's
environment needs. ``install()`` puts back a small equivalent built on ``cryptography`` when
the installed pyOpenSSL lacks it; with an older pyOpenSSL it changes nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


class _Request:
    """The part of pyOpenSSL's ``X509Req`` the tests use: subject and public key."""

    def __init__(self, csr: Any) -> None:
        self._csr = csr

    def get_subject(self) -> Any:
        # pyOpenSSL hands out an X509Name only from one of its objects, so carry the subject
        # on a throwaway certificate (signed by a throwaway key) and take it from there.
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from OpenSSL import crypto

        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        carrier = (
            x509.CertificateBuilder()
            .subject_name(self._csr.subject)
            .issuer_name(self._csr.subject)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(minutes=1))
            .sign(key, hashes.SHA256())
        )
        return crypto.X509.from_cryptography(carrier).get_subject()

    def get_pubkey(self) -> Any:
        from OpenSSL import crypto

        return crypto.PKey.from_cryptography_key(self._csr.public_key())


def _load_certificate_request(type: int, buffer: str | bytes) -> _Request:
    from cryptography import x509
    from OpenSSL import crypto

    data = buffer.encode() if isinstance(buffer, str) else buffer
    if type == crypto.FILETYPE_PEM:
        return _Request(x509.load_pem_x509_csr(data))
    if type == crypto.FILETYPE_ASN1:
        return _Request(x509.load_der_x509_csr(data))
    raise ValueError("type argument must be FILETYPE_PEM or FILETYPE_ASN1")


def install() -> None:
    try:
        from OpenSSL import crypto
    except ImportError:
        return
    if not hasattr(crypto, "load_certificate_request"):
        crypto.load_certificate_request = _load_certificate_request  # type: ignore[attr-defined]
