"""``strongroom certificate ...`` (az keyvault certificate's names and flags), run in a
subprocess against the session's server."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from tests.cli.conftest import Strongroom

A = ("--vault-name", "vault-a")


@pytest.fixture
def name() -> str:
    return f"c-{os.urandom(4).hex()}"


def thumbprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - x5t is SHA-1


def _self_signed(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return key, cert


def test_create_from_the_default_policy_download_and_lifecycle(
    sr: Strongroom, name: str, tmp_path: Path
) -> None:
    policy = sr.ok("certificate", "get-default-policy")
    policy["x509CertificateProperties"]["subject"] = "CN=cli.example"
    policy["x509CertificateProperties"]["subjectAlternativeNames"] = {"dnsNames": ["cli.example"]}
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    # The default policy renews 90 days before expiry: a validity of 3 months (89-92 days)
    # would be due at once on some dates, and the scheduler would add a version mid-test.
    made = sr.ok("certificate", "create", *A, "--name", name, "--policy", "@policy.json",
                 "--validity", "6", "--tags", "team=ops", "env=test")  # fmt: skip
    assert made["status"] == "completed"
    assert made["issuerParameters"]["name"] == "Self"

    shown = sr.ok("certificate", "show", *A, "--name", name)
    assert shown["tags"] == {"team": "ops", "env": "test"}
    assert shown["policy"]["x509CertificateProperties"]["validityInMonths"] == 6
    assert shown["policy"]["keyProperties"]["keyType"] == "RSA"
    assert shown["kid"].endswith(shown["id"].split("/certificates/")[1])
    assert name in [c["name"] for c in sr.ok("certificate", "list", *A)]
    assert len(sr.ok("certificate", "list-versions", *A, "--name", name)) == 1

    sr.ok("certificate", "download", *A, "--name", name, "--file", "c.pem")
    cert = x509.load_pem_x509_certificate((tmp_path / "c.pem").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=cli.example"
    assert thumbprint(cert) == shown["x509ThumbprintHex"]
    sr.ok("certificate", "download", *A, "-n", name, "-f", "c.der", "--encoding", "DER")
    assert x509.load_der_x509_certificate((tmp_path / "c.der").read_bytes()) == cert
    error = sr.fails("certificate", "download", *A, "--name", name, "--file", "c.pem")
    assert error.startswith("(FileExists) ")
    sr.ok("certificate", "download", *A, "-n", name, "-f", "c.pfx", "--encoding", "PFX")
    assert (tmp_path / "c.pfx").stat().st_mode & 0o777 == 0o600
    bundle = pkcs12.load_pkcs12((tmp_path / "c.pfx").read_bytes(), None)
    assert bundle.cert is not None and bundle.cert.certificate == cert
    assert bundle.key is not None
    assert bundle.key.public_key().public_numbers() == cert.public_key().public_numbers()

    disabled = sr.ok("certificate", "set-attributes", *A, "--name", name, "--enabled", "false")
    assert disabled["attributes"]["enabled"] is False

    written = sr.ok("certificate", "backup", *A, "--name", name)
    path = Path(written["file"])
    assert path.name.startswith(f"vault-a-{name}-") and path.parent == tmp_path
    error = sr.fails("certificate", "backup", *A, "--name", name, "--file", str(path))
    assert error.startswith("(FileExists) ")

    deleted = sr.ok("certificate", "delete", *A, "--name", name)
    assert deleted["recoveryId"].endswith(f"/deletedcertificates/{name}")
    assert name in [c["name"] for c in sr.ok("certificate", "list-deleted", *A)]
    assert (
        sr.ok("certificate", "recover", *A, "--name", name)["x509ThumbprintHex"]
        == shown["x509ThumbprintHex"]
    )
    sr.ok("certificate", "delete", *A, "--name", name)
    sr.ok("certificate", "purge", *A, "--name", name)
    assert sr.fails("certificate", "show", *A, "--name", name).startswith("(CertificateNotFound) ")
    restored = sr.ok("certificate", "restore", "--vault-name", "vault-b", "--file", str(path))
    assert restored["id"].startswith("https://vault-b.")
    assert restored["x509ThumbprintHex"] == shown["x509ThumbprintHex"]


def test_import_pem_and_pfx(sr: Strongroom, name: str, tmp_path: Path) -> None:
    key, cert = _self_signed("pem.example")
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    (tmp_path / "c.pem").write_bytes(pem)
    imported = sr.ok("certificate", "import", *A, "--name", name, "--file", "c.pem")
    assert imported["x509ThumbprintHex"] == thumbprint(cert)
    assert imported["contentType"] == "application/x-pem-file"
    # Kept as PEM; downloaded as PKCS#12 with its key.
    sr.ok("certificate", "download", *A, "-n", name, "-f", "pem.pfx", "--encoding", "PFX")
    bundle = pkcs12.load_pkcs12((tmp_path / "pem.pfx").read_bytes(), None)
    assert bundle.cert is not None and bundle.cert.certificate == cert
    assert bundle.key is not None and bundle.key.private_numbers() == key.private_numbers()

    key, cert = _self_signed("pfx.example")
    pfx = pkcs12.serialize_key_and_certificates(
        b"pfx", key, cert, None, serialization.BestAvailableEncryption(b"pw")
    )
    (tmp_path / "c.pfx").write_bytes(pfx)
    imported = sr.ok("certificate", "import", *A, "--name", f"{name}-pfx", "--file", "c.pfx",
                     "--password", "pw", "--tags", "from=pfx")  # fmt: skip
    assert imported["x509ThumbprintHex"] == thumbprint(cert)
    assert imported["contentType"] == "application/x-pkcs12"
    assert imported["tags"] == {"from": "pfx"}


def test_a_pending_certificate_prints_its_csr(sr: Strongroom, name: str) -> None:
    policy = {"issuer_parameters": {"name": "Unknown"},
              "key_properties": {"key_type": "EC", "curve": "P-256", "exportable": True},
              "x509_certificate_properties": {"subject": "CN=pending.example"}}  # fmt: skip
    made = sr.ok("certificate", "create", *A, "--name", name, "--policy", json.dumps(policy))
    assert made["status"] == "inProgress"
    csr = x509.load_der_x509_csr(base64.b64decode(made["csr"]))
    assert csr.subject.rfc4514_string() == "CN=pending.example"
    error = sr.fails("certificate", "create", *A, "--name", name, "--policy", "{not json")
    assert error.startswith("(BadParameter) --policy is not JSON")


def _sign(csr: x509.CertificateSigningRequest) -> tuple[x509.Certificate, x509.Certificate]:
    """A certificate for ``csr`` and the CA that signed it."""
    ca_key, ca = _self_signed("cli test ca")
    now = dt.datetime.now(dt.UTC)
    leaf = (
        x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject)
        .public_key(csr.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    return leaf, ca


def test_pending_show_merge_and_delete(sr: Strongroom, name: str, tmp_path: Path) -> None:
    policy = {"issuer_parameters": {"name": "Unknown"},
              "key_properties": {"key_type": "EC", "curve": "P-256", "exportable": True},
              "x509_certificate_properties": {"subject": "CN=merge.example"}}  # fmt: skip
    (tmp_path / "p.json").write_text(json.dumps(policy))
    sr.ok("certificate", "create", *A, "--name", name, "--policy", "p.json")
    pending = sr.ok("certificate", "pending", "show", *A, "--name", name)
    assert pending["status"] == "inProgress"
    leaf, ca = _sign(x509.load_der_x509_csr(base64.b64decode(pending["csr"])))
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca))
    (tmp_path / "chain.pem").write_bytes(pem)
    merged = sr.ok("certificate", "pending", "merge", *A, "--name", name, "--file", "chain.pem",
                   "--tags", "signed=yes")  # fmt: skip
    assert merged["x509ThumbprintHex"] == thumbprint(leaf)
    assert merged["tags"] == {"signed": "yes"}
    assert sr.ok("certificate", "pending", "show", *A, "-n", name, "--query", "status") == (
        "completed"
    )
    (tmp_path / "junk.pem").write_text("no certificate here")
    error = sr.fails("certificate", "pending", "merge", *A, "-n", name, "-f", "junk.pem")
    assert error.startswith("(BadParameter) --file holds no PEM or DER certificate")

    other = f"{name}-del"
    sr.ok("certificate", "create", *A, "--name", other, "--policy", "p.json")
    assert sr.ok("certificate", "pending", "delete", *A, "--name", other)["status"] in (
        "inProgress", "cancelled",
    )  # fmt: skip
    error = sr.fails("certificate", "pending", "show", *A, "--name", other)
    assert error.startswith("(PendingCertificateNotFound) ")


def test_issuers(sr: Strongroom, name: str) -> None:
    made = sr.ok("certificate", "issuer", "create", *A, "--issuer-name", name,
                 "--provider-name", "Test", "--account-id", "acct-1", "--password", "pw",
                 "--organization-id", "org-1")  # fmt: skip
    assert made["provider"] == "Test" and made["credentials"] == {"accountId": "acct-1"}
    assert made["organizationDetails"]["id"] == "org-1"
    assert made["attributes"]["enabled"] is True
    assert "pw" not in json.dumps(made)
    shown = sr.ok("certificate", "issuer", "show", *A, "--issuer-name", name)
    assert shown["id"] == made["id"] and shown["id"].endswith(f"/certificates/issuers/{name}")
    listed = sr.ok("certificate", "issuer", "list", *A)
    assert {"id": made["id"], "name": name, "provider": "Test"} in listed
    updated = sr.ok("certificate", "issuer", "update", *A, "--issuer-name", name,
                    "--account-id", "acct-2", "--enabled", "false")  # fmt: skip
    assert updated["credentials"]["accountId"] == "acct-2"
    assert updated["attributes"]["enabled"] is False
    assert updated["provider"] == "Test"  # what is not given stays
    sr.ok("certificate", "issuer", "delete", *A, "--issuer-name", name)
    error = sr.fails("certificate", "issuer", "show", *A, "--issuer-name", name)
    assert error.startswith("(CertificateIssuerNotFound) ")


def test_contacts(sr: Strongroom) -> None:
    b = ("--vault-name", "vault-b")
    for email in [c["email"] for c in sr.ok("certificate", "contact", "list", *b)]:
        sr.ok("certificate", "contact", "delete", *b, "--email", email)
    assert sr.ok("certificate", "contact", "list", *b) == []
    added = sr.ok("certificate", "contact", "add", *b, "--email", "a@example.com",
                  "--name", "Ann", "--phone", "555")  # fmt: skip
    assert added == [{"email": "a@example.com", "name": "Ann", "phone": "555"}]
    sr.ok("certificate", "contact", "add", *b, "--email", "b@example.com")
    emails = sr.ok("certificate", "contact", "list", *b, "--query", "[].email")
    assert emails == ["a@example.com", "b@example.com"]
    error = sr.fails("certificate", "contact", "add", *b, "--email", "a@example.com")
    assert error.startswith("(ContactExists) ")
    left = sr.ok("certificate", "contact", "delete", *b, "--email", "a@example.com")
    assert [c["email"] for c in left] == ["b@example.com"]
    error = sr.fails("certificate", "contact", "delete", *b, "--email", "a@example.com")
    assert error.startswith("(ContactNotFound) ")
    assert sr.ok("certificate", "contact", "delete", *b, "--email", "b@example.com") == []
    assert sr.ok("certificate", "contact", "list", *b) == []
