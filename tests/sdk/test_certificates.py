"""Certificates through the real CertificateClient, with the PFX/PEM read back by SecretClient
and checked with pyca."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.certificates import (
    CertificateClient,
    CertificateContentType,
    CertificatePolicy,
    KeyType,
    WellKnownIssuerNames,
)
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import Server
from tests.x509util import private_pem, self_signed


def _certs(server: Server, vault: str = "vault-a") -> CertificateClient:
    return CertificateClient(
        server.vault_url(vault), server.credential(), connection_verify=str(server.ca)
    )


def _keys(server: Server, vault: str = "vault-a") -> KeyClient:
    return KeyClient(server.vault_url(vault), server.credential(), connection_verify=str(server.ca))


def _pfx(
    server: Server, name: str, vault: str = "vault-a"
) -> tuple[Any, x509.Certificate, list[Any]]:
    secret = server.client(vault).get_secret(name)
    assert secret.properties.content_type == "application/x-pkcs12"
    key, cert, extra = pkcs12.load_key_and_certificates(base64.b64decode(secret.value), None)
    assert key is not None and cert is not None
    return key, cert, extra


def test_default_policy_is_completed_and_owns_key_and_secret(server: Server, unique: str) -> None:
    certs = _certs(server)
    cert = certs.begin_create_certificate(unique, CertificatePolicy.get_default()).result()
    policy = cert.policy
    assert (policy.key_type, policy.key_size, policy.exportable, policy.reuse_key) == (
        KeyType.rsa, 2048, True, False,
    )  # fmt: skip
    assert policy.content_type == CertificateContentType.pkcs12
    assert sorted(policy.enhanced_key_usage) == ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]
    assert sorted(policy.key_usage) == ["digitalSignature", "keyEncipherment"]
    assert policy.validity_in_months == 12
    assert policy.lifetime_actions[0].lifetime_percentage == 80
    assert policy.lifetime_actions[0].action == "AutoRenew"

    der = bytes(cert.cer)
    assert cert.properties.x509_thumbprint == hashlib.sha1(der).digest()  # noqa: S324
    parsed = x509.load_der_x509_certificate(der)
    assert parsed.subject.rfc4514_string() == "CN=DefaultPolicy"
    version = cert.properties.version
    assert cert.key_id.endswith(f"/keys/{unique}/{version}")
    assert cert.secret_id.endswith(f"/secrets/{unique}/{version}")

    key = _keys(server).get_key(unique)
    assert key.properties.managed is True
    assert key.properties.version == version
    assert key.properties.expires_on == cert.properties.expires_on
    secret = server.client("vault-a").get_secret(unique)
    assert secret.properties.managed is True
    assert secret.properties.key_id == cert.key_id
    pkey, pcert, _ = _pfx(server, unique)
    assert pcert.fingerprint(hashes.SHA256()) == parsed.fingerprint(hashes.SHA256())
    assert pkey.public_key().public_numbers() == parsed.public_key().public_numbers()


@pytest.mark.parametrize("kty", ["RSA", "EC"])
def test_self_signed_with_sans_and_ekus(server: Server, unique: str, kty: str) -> None:
    policy = CertificatePolicy(
        issuer_name=WellKnownIssuerNames.self,
        subject="CN=svc.example, O=Strongroom",
        san_dns_names=["svc.example", "alt.example"],
        san_emails=["ops@example.com"],
        key_type=KeyType(kty.lower() if kty == "RSA" else "EC"),
        key_curve_name="P-384" if kty == "EC" else None,
        key_size=3072 if kty == "RSA" else None,
        enhanced_key_usage=["1.3.6.1.5.5.7.3.1"],
        key_usage=["digitalSignature"],
        validity_in_months=3,
        content_type=CertificateContentType.pem,
    )
    cert = _certs(server).begin_create_certificate(unique, policy).result()
    parsed = x509.load_der_x509_certificate(bytes(cert.cer))
    assert parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "svc.example"
    sans = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["svc.example", "alt.example"]
    assert sans.get_values_for_type(x509.RFC822Name) == ["ops@example.com"]
    ekus = parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(ekus) == [ExtendedKeyUsageOID.SERVER_AUTH]
    if kty == "EC":
        assert isinstance(parsed.public_key(), ec.EllipticCurvePublicKey)
        assert parsed.public_key().curve.name == "secp384r1"
    else:
        assert parsed.public_key().key_size == 3072
    days = (parsed.not_valid_after_utc - parsed.not_valid_before_utc).days
    assert 88 <= days <= 93
    pem = server.client("vault-a").get_secret(unique)
    assert pem.properties.content_type == "application/x-pem-file"
    assert pem.value.index("PRIVATE KEY") < pem.value.index("BEGIN CERTIFICATE")


def _ca() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, self_signed(key, "Test Issuing CA", days=30, ca=True)


def _sign_csr(csr_der: bytes, ca_key: rsa.RSAPrivateKey, ca: x509.Certificate) -> bytes:
    csr = x509.load_der_x509_csr(csr_der)
    now = dt.datetime.now(dt.UTC)
    leaf = (
        x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject)
        .public_key(csr.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=10))
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    return leaf.public_bytes(serialization.Encoding.DER)


def test_csr_merge_with_an_external_ca(server: Server, unique: str) -> None:
    certs = _certs(server)
    policy = CertificatePolicy(issuer_name=WellKnownIssuerNames.unknown, subject="CN=external")
    operation = certs.begin_create_certificate(unique, policy).result()
    assert operation.status == "inProgress"
    assert "merge" in operation.status_details.lower()
    pending = certs.get_certificate_operation(unique)
    assert pending.csr
    listed = [c.name for c in certs.list_properties_of_certificates()]
    assert unique not in listed
    assert unique in [c.name for c in certs.list_properties_of_certificates(include_pending=True)]

    ca_key, ca = _ca()
    _, other_ca = _ca()
    with pytest.raises(HttpResponseError) as mismatch:  # a certificate for another key
        certs.merge_certificate(unique, [other_ca.public_bytes(serialization.Encoding.DER)])
    assert mismatch.value.status_code == 400
    assert "does not match" in str(mismatch.value)

    leaf = _sign_csr(bytes(pending.csr), ca_key, ca)
    merged = certs.merge_certificate(unique, [leaf, ca.public_bytes(serialization.Encoding.DER)])
    assert bytes(merged.cer) == leaf
    assert certs.get_certificate_operation(unique).status == "completed"
    _, pcert, chain = _pfx(server, unique)
    assert pcert.public_bytes(serialization.Encoding.DER) == leaf
    assert [c.subject for c in chain] == [ca.subject]


def test_cancel_and_delete_the_pending_operation(server: Server, unique: str) -> None:
    certs = _certs(server)
    certs.begin_create_certificate(unique, CertificatePolicy(issuer_name="Unknown", subject="CN=x"))
    cancelled = certs.cancel_certificate_operation(unique)
    assert cancelled.cancellation_requested is True
    assert cancelled.status == "cancelled"
    deleted = certs.delete_certificate_operation(unique)
    assert deleted.status == "cancelled"
    with pytest.raises(ResourceNotFoundError) as gone:
        certs.get_certificate_operation(unique)
    assert gone.value.error.code == "PendingCertificateNotFound"


def _self_signed_pfx(password: bytes | None) -> tuple[bytes, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, "imported")
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return pkcs12.serialize_key_and_certificates(b"x", key, cert, None, encryption), cert


@pytest.mark.parametrize("password", [None, b"hunter2"])
def test_import_pfx(server: Server, unique: str, password: bytes | None) -> None:
    pfx, cert = _self_signed_pfx(password)
    imported = _certs(server).import_certificate(
        unique, pfx, password=password.decode() if password else None
    )
    assert bytes(imported.cer) == cert.public_bytes(serialization.Encoding.DER)
    assert imported.policy.key_type == KeyType.ec
    _, pcert, _ = _pfx(server, unique)
    assert pcert == cert


def test_import_pem_and_refusals(server: Server, unique: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = self_signed(key, "pem")
    pem = private_pem(key) + cert.public_bytes(serialization.Encoding.PEM)
    certs = _certs(server)
    policy = CertificatePolicy(content_type=CertificateContentType.pem, subject="CN=pem")
    imported = certs.import_certificate(unique, pem, policy=policy)
    assert bytes(imported.cer) == cert.public_bytes(serialization.Encoding.DER)

    pfx, _ = _self_signed_pfx(b"right")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    mismatched = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + cert.public_bytes(serialization.Encoding.PEM)
    cases = [
        (pfx, "wrong", "password is wrong"),
        (b"garbage bytes", None, "not PKCS#12"),
        (mismatched, None, "does not match"),
        (cert.public_bytes(serialization.Encoding.PEM), None, "no private key"),
    ]
    for data, password, says in cases:
        with pytest.raises(HttpResponseError) as info:
            certs.import_certificate(unique + "-bad", data, password=password)
        assert info.value.status_code == 400
        assert says in str(info.value), str(info.value)


def test_delete_recover_purge_cascade(server: Server, unique: str) -> None:
    certs, keys, secrets = _certs(server), _keys(server), server.client("vault-a")
    certs.begin_create_certificate(unique, CertificatePolicy.get_default()).result()
    deleted = certs.begin_delete_certificate(unique).result()
    assert deleted.recovery_id.endswith(f"/deletedcertificates/{unique}")
    for getter in (certs.get_certificate, keys.get_key, secrets.get_secret):
        with pytest.raises(ResourceNotFoundError):
            getter(unique)
    assert keys.get_deleted_key(unique).name == unique
    assert secrets.get_deleted_secret(unique).name == unique
    certs.begin_recover_deleted_certificate(unique).result()
    assert keys.get_key(unique).properties.managed
    assert secrets.get_secret(unique).value
    certs.begin_delete_certificate(unique).result()
    certs.purge_deleted_certificate(unique)
    for getter in (certs.get_deleted_certificate, keys.get_deleted_key, secrets.get_deleted_secret):
        with pytest.raises(ResourceNotFoundError):
            getter(unique)


def test_backup_purge_restore_elsewhere_then_sign(server: Server, unique: str) -> None:
    certs = _certs(server)
    original = certs.begin_create_certificate(unique, CertificatePolicy.get_default()).result()
    before_key, before_cert, _ = _pfx(server, unique)
    blob = certs.backup_certificate(unique)
    certs.begin_delete_certificate(unique).result()
    certs.purge_deleted_certificate(unique)

    restored = _certs(server, "vault-b").restore_certificate_backup(blob)
    assert restored.id.startswith(server.vault_url("vault-b"))
    assert restored.properties.version == original.properties.version
    after_key, after_cert, _ = _pfx(server, unique, "vault-b")
    assert after_cert == before_cert
    fmt = serialization.PrivateFormat.PKCS8
    assert after_key.private_bytes(
        serialization.Encoding.DER, fmt, serialization.NoEncryption()
    ) == (before_key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption()))
    key = _keys(server, "vault-b").get_key(unique)
    digest = hashlib.sha256(b"restored").digest()
    crypto = CryptographyClient(key.id, server.credential(), connection_verify=str(server.ca))
    signature = crypto.sign(SignatureAlgorithm.rs256, digest).signature
    before_cert.public_key().verify(  # type: ignore[call-arg]
        signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())
    )
    with pytest.raises(ResourceExistsError):
        _certs(server, "vault-b").restore_certificate_backup(blob)


def test_name_taken_by_a_plain_secret_is_a_conflict(server: Server, unique: str) -> None:
    server.client("vault-a").set_secret(unique, "not a certificate")
    with pytest.raises(ResourceExistsError):
        _certs(server).begin_create_certificate(unique, CertificatePolicy.get_default())


def test_versions_update_and_policy(server: Server, unique: str) -> None:
    certs = _certs(server)
    certs.begin_create_certificate(unique, CertificatePolicy.get_default()).result()
    certs.begin_create_certificate(unique, CertificatePolicy.get_default()).result()
    assert len(list(certs.list_properties_of_certificate_versions(unique))) == 2
    updated = certs.update_certificate_properties(unique, tags={"owner": "ops"})
    assert updated.properties.tags == {"owner": "ops"}
    policy = certs.update_certificate_policy(unique, CertificatePolicy(validity_in_months=6))
    assert policy.validity_in_months == 6
    assert certs.get_certificate_policy(unique).validity_in_months == 6


def test_issuers_crud_never_return_the_password(server: Server) -> None:
    from azure.keyvault.certificates import AdministratorContact

    certs = _certs(server, "vault-b")
    admin = AdministratorContact(first_name="Ada", last_name="L", email="ada@example.com")
    made = certs.create_issuer(
        "digi", "Test", account_id="acct", password="pa55", organization_id="org",
        admin_contacts=[admin],
    )  # fmt: skip
    assert made.provider == "Test"
    assert made.account_id == "acct"
    assert made.password is None
    assert made.admin_contacts[0].email == "ada@example.com"
    with server.http("vault-b") as http:
        assert "pa55" not in http.get("/certificates/issuers/digi").text
    updated = certs.update_issuer("digi", provider="Other", enabled=False)
    assert (updated.provider, updated.enabled, updated.account_id) == ("Other", False, "acct")
    assert "digi" in [i.name for i in certs.list_properties_of_issuers()]
    assert certs.delete_issuer("digi").provider == "Other"
    with pytest.raises(ResourceNotFoundError):
        certs.get_issuer("digi")


def test_contacts_set_get_delete(server: Server) -> None:
    from azure.keyvault.certificates import CertificateContact

    certs = _certs(server, "vault-b")
    wanted = [CertificateContact(email="a@example.com", name="A", phone="1")]
    assert [c.email for c in certs.set_contacts(wanted)] == ["a@example.com"]
    assert [c.name for c in certs.get_contacts()] == ["A"]
    assert [c.phone for c in certs.delete_contacts()] == ["1"]
    with pytest.raises(ResourceNotFoundError):
        certs.get_contacts()


def test_secret_converted_between_pfx_and_pem(server: Server, unique: str) -> None:
    _certs(server).begin_create_certificate(unique, CertificatePolicy.get_default()).result()
    secrets = server.client("vault-a")
    pfx_key, pfx_cert, _ = _pfx(server, unique)
    pem = secrets.get_secret(unique, out_content_type="application/x-pem-file")
    assert pem.properties.content_type == "application/x-pem-file"
    key = serialization.load_pem_private_key(pem.value.encode(), None)
    assert key.public_key().public_numbers() == pfx_key.public_key().public_numbers()
    assert x509.load_pem_x509_certificates(pem.value.encode())[0] == pfx_cert
    with pytest.raises(HttpResponseError) as plain:
        secrets.set_secret(unique + "-plain", "v")
        secrets.get_secret(unique + "-plain", out_content_type="application/x-pem-file")
    assert plain.value.status_code == 400


def test_managed_key_and_secret_change_only_through_the_certificate(
    server: Server, unique: str
) -> None:
    _certs(server).begin_create_certificate(unique, CertificatePolicy.get_default()).result()
    secrets, keys = server.client("vault-a"), _keys(server)
    for action in (
        lambda: secrets.set_secret(unique, "overwrite"),
        lambda: secrets.update_secret_properties(unique, tags={"a": "b"}),
        lambda: secrets.begin_delete_secret(unique),
        lambda: keys.update_key_properties(unique, enabled=False),
        lambda: keys.rotate_key(unique),
    ):
        with pytest.raises(HttpResponseError) as info:
            action()
        assert info.value.status_code == 403
        assert "ManagedByKeyVault" in str(info.value)
    assert secrets.get_secret(unique).properties.managed
