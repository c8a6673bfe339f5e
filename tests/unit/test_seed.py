"""Seed files applied through the services on real SQLite installations, and the plaintext
export of an ephemeral installation's vault read back as a seed."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from strongroom.config import EPHEMERAL_MARKER, Settings
from strongroom.crypto import keys as kc
from strongroom.services.container import Services
from strongroom.services.installation import open_installation
from strongroom.services.seed import (
    ExportRefused,
    SeedError,
    SeedReport,
    apply_seed,
    export_vault,
    load_seed,
)
from tests.x509util import private_pem, self_signed

ROOT = Path(__file__).resolve().parents[2]
CI_SECRET = "ci-bot-fixed-secret-0123456789"


@dataclass(frozen=True)
class Material:
    """Keys and certificates made for one test run, in the forms a seed file holds."""

    pem_key: str
    jwk: dict[str, str]
    pfx_b64: str
    pfx_cert: bytes  # DER
    pem_bundle: str  # private key, then certificate
    pem_cert: bytes  # DER


@pytest.fixture(scope="module")
def material() -> Material:
    pem_key = private_pem(ec.generate_private_key(ec.SECP384R1())).decode()
    jwk = kc.jwk_from_pem(private_pem(ec.generate_private_key(ec.SECP256R1())))
    pfx_key = ec.generate_private_key(ec.SECP256R1())
    pfx_cert = self_signed(pfx_key, "seeded-pfx", days=30)
    pfx = pkcs12.serialize_key_and_certificates(
        b"pfx", pfx_key, pfx_cert, None, serialization.BestAvailableEncryption(b"pfx-password")
    )
    pem_key_2 = ec.generate_private_key(ec.SECP256R1())
    pem_cert = self_signed(pem_key_2, "seeded-pem", days=30)
    der = serialization.Encoding.DER
    return Material(
        pem_key=pem_key,
        jwk=jwk,
        pfx_b64=base64.b64encode(pfx).decode(),
        pfx_cert=pfx_cert.public_bytes(der),
        pem_bundle=(
            private_pem(pem_key_2) + pem_cert.public_bytes(serialization.Encoding.PEM)
        ).decode(),
        pem_cert=pem_cert.public_bytes(der),
    )


def _block(text: str, indent: int) -> str:
    return textwrap.indent(text.strip(), " " * indent)


def full_seed(m: Material) -> str:
    """Every kind of entry (line numbers matter to the tests below: see BAD_FILES)."""
    return f"""\
principals:
  - name: ci-bot
    secret: {CI_SECRET}
  - name: reader
vaults:
  - name: app
    secrets:
      - name: db-password
        versions:
          - value: first
            attributes: {{enabled: false}}
          - value: second
            contentType: text/plain
            tags: {{env: ci, owner: qa}}
            attributes:
              nbf: 2026-01-01T00:00:00Z
              exp: 4102444800
      - name: plain
        value: just-one
    keys:
      - {{name: ec-key, kty: EC, crv: P-384, key_ops: [sign, verify]}}
      - name: rsa-key
        kty: RSA
        key_size: 2048
        tags: {{purpose: wrap}}
      - name: pem-key
        pem: |
{_block(m.pem_key, 10)}
      - name: jwk-key
        jwk: {json.dumps(m.jwk)}
        attributes: {{exp: "2099-12-31"}}
    certificates:
      - name: self-signed
        tags: {{site: www}}
        policy:
          key_props: {{kty: EC, crv: P-256}}
          x509_props:
            subject: CN=self.example.test
            sans: {{dns_names: [self.example.test]}}
      - name: from-pfx
        pfx: {m.pfx_b64}
        password: pfx-password
      - name: from-pem
        attributes: {{enabled: false}}
        pem: |
{_block(m.pem_bundle, 10)}
  - name: locked
    open: false
    retentionDays: 7
    accessPolicies:
      - principal: ci-bot
        permissions: {{secrets: [get, list], keys: [sign], certificates: [all]}}
      - principal: reader
        permissions: {{secrets: [get]}}
    secrets:
      - name: inside
        value: locked-value
"""


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    made = open_services(tmp_path / "installation")
    yield made
    close(made)


def open_services(data_dir: Path) -> Services:
    return Services(open_installation(Settings(data_dir=data_dir)))


def close(services: Services) -> None:
    asyncio.run(services.close())
    services.installation.close()


def write(tmp_path: Path, text: str, name: str = "seed.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def seed_file(services: Services, path: Path) -> SeedReport:
    return asyncio.run(apply_seed(services, load_seed(path)))


def token(services: Services, client_id: str, secret: str) -> dict[str, Any]:
    identity = services.identity
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
            "scope": "https://vault.localhost:8443/.default"}  # fmt: skip
    return asyncio.run(identity.issue_token(identity.tenant_id, form, [], "127.0.0.1"))


def public_numbers(pem: str) -> dict[str, str]:
    return kc.public_info("EC", kc.from_jwk(kc.jwk_from_pem(pem.encode()))[1]).jwk


# -- applying -----------------------------------------------------------------------------------


def test_every_kind_of_entry_is_made_through_the_services(
    services: Services, material: Material, tmp_path: Path
) -> None:
    report = seed_file(services, write(tmp_path, full_seed(material)))
    made = {(o.kind, o.vault, o.name) for o in report.created}
    assert made == {
        ("principal", None, "ci-bot"), ("principal", None, "reader"), ("vault", None, "app"),
        ("secret", "app", "db-password"), ("secret", "app", "plain"), ("key", "app", "ec-key"),
        ("key", "app", "rsa-key"), ("key", "app", "pem-key"), ("key", "app", "jwk-key"),
        ("certificate", "app", "self-signed"), ("certificate", "app", "from-pfx"),
        ("certificate", "app", "from-pem"), ("vault", None, "locked"),
        ("accessPolicy", "locked", "ci-bot"), ("accessPolicy", "locked", "reader"),
        ("secret", "locked", "inside"),
    }  # fmt: skip
    assert report.kept == ()

    # Principals: the fixed secret works and is not echoed; the other one is generated.
    ci, reader = report.principals["ci-bot"], report.principals["reader"]
    assert ci["clientSecret"] is None
    assert CI_SECRET not in repr(report)
    assert token(services, str(ci["clientId"]), CI_SECRET)["token_type"] == "Bearer"
    assert reader["clientSecret"] is not None
    assert token(services, str(reader["clientId"]), reader["clientSecret"])

    app = services.vaults.get_record("app")
    locked = services.vaults.get_record("locked")
    assert app.open_access and not locked.open_access and locked.retention_days == 7

    # A secret with two versions, the last current, each with its own attributes.
    secrets = services.secrets
    current = secrets.get_secret(app, "db-password")
    assert current.value == "second" and current.content_type == "text/plain"
    assert current.tags == {"env": "ci", "owner": "qa"}
    assert current.attributes.nbf == int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp())
    assert current.attributes.exp == 4102444800
    versions = secrets.get_secret_versions(app, "db-password", None, None).items
    assert len(versions) == 2
    first = next(v for v in versions if v.version != current.version)
    assert not first.attributes.enabled
    reads = services.installation.store.reads
    record = reads.get_version(app.id, "secret", "db-password", first.version)
    assert record is not None and secrets.unseal(app, record) == b"first"

    # Keys: two generated, one from a PEM key, one from a JWK.
    keys = services.keys
    ec_key = keys.get_key(app, "ec-key")
    assert (ec_key.kty, ec_key.public["crv"], ec_key.key_ops) == ("EC", "P-384", ["sign", "verify"])
    rsa_key = keys.get_key(app, "rsa-key")
    assert (rsa_key.kty, rsa_key.key_size, rsa_key.tags) == ("RSA", 2048, {"purpose": "wrap"})
    assert keys.get_key(app, "pem-key").public == public_numbers(material.pem_key)
    jwk_key = keys.get_key(app, "jwk-key")
    assert jwk_key.public == {k: material.jwk[k] for k in ("crv", "x", "y")}
    assert jwk_key.attributes.exp == int(dt.datetime(2099, 12, 31, tzinfo=dt.UTC).timestamp())

    # Certificates: issued by Self at once, and imported from PFX and PEM.
    certificates = services.certificates
    issued = certificates.get_certificate(app, "self-signed")
    assert issued.cer is not None and not issued.pending and issued.tags == {"site": "www"}
    loaded = x509.load_der_x509_certificate(issued.cer)
    assert loaded.subject.rfc4514_string() == "CN=self.example.test"
    assert loaded.issuer == loaded.subject
    assert certificates.get_certificate_policy(app, "self-signed").issuer.name == "Self"
    assert certificates.get_certificate(app, "from-pfx").cer == material.pfx_cert
    from_pem = certificates.get_certificate(app, "from-pem")
    assert from_pem.cer == material.pem_cert and not from_pem.attributes.enabled
    assert secrets.get_secret(app, "self-signed").managed  # the certificate's own secret

    # Access policies of the closed vault.
    policies = {p.principal: p.permissions for p in services.access.list_policies(locked)}
    assert policies["ci-bot"]["secrets"] == ["get", "list"]
    assert policies["ci-bot"]["keys"] == ["sign"]
    assert "deleteissuers" in policies["ci-bot"]["certificates"]  # all
    assert policies["reader"] == {"secrets": ["get"]}
    services.access.check(locked, str(ci["clientId"]), "keys", "sign")


def test_applying_a_seed_twice_makes_nothing_the_second_time(
    services: Services, material: Material, tmp_path: Path
) -> None:
    path = write(tmp_path, full_seed(material))
    first = seed_file(services, path)
    app = services.vaults.get_record("app")
    issued = services.certificates.get_certificate(app, "self-signed")
    second = seed_file(services, path)
    assert second.created == ()
    assert {(o.kind, o.vault, o.name) for o in second.kept} == {
        (o.kind, o.vault, o.name) for o in first.created
    }
    assert second.principals["ci-bot"]["clientId"] == first.principals["ci-bot"]["clientId"]
    assert second.principals["reader"]["clientSecret"] is None  # told only when generated
    assert len(services.secrets.get_secret_versions(app, "db-password", None, None).items) == 2
    assert services.certificates.get_certificate(app, "self-signed").version == issued.version
    assert len(services.identity.list_principals()) == 2


def test_what_is_there_is_kept_and_what_is_missing_is_made(
    services: Services, tmp_path: Path
) -> None:
    services.vaults.create("app", open_access=True)
    app = services.vaults.get_record("app")
    asyncio.run(services.secrets.set_secret(app, "existing", "operator's value"))
    report = seed_file(services, write(tmp_path, """\
vaults:
  - name: app
    retentionDays: 30
    secrets:
      - {name: existing, value: seed value}
      - {name: added, value: new}
"""))  # fmt: skip
    assert [(o.kind, o.name) for o in report.kept] == [("vault", "app"), ("secret", "existing")]
    assert [(o.kind, o.name) for o in report.created] == [("secret", "added")]
    assert services.secrets.get_secret(app, "existing").value == "operator's value"
    assert services.vaults.get_record("app").retention_days == 90  # kept as it was


def test_no_secret_of_a_seed_reaches_its_repr(material: Material, tmp_path: Path) -> None:
    text = repr(load_seed(write(tmp_path, full_seed(material))))
    assert "db-password" in text  # names are shown ...
    for hidden in (CI_SECRET, "just-one", "locked-value", material.jwk["d"], "pfx-password",
                   material.pfx_b64[:40], "PRIVATE KEY"):  # fmt: skip
        assert hidden not in text  # ... values, key material and passwords are not


def test_the_example_file_loads_and_applies(services: Services) -> None:
    report = seed_file(services, ROOT / "examples" / "seed" / "example.yaml")
    kinds = {o.kind for o in report.created}
    assert kinds == {"principal", "vault", "accessPolicy", "secret", "key", "certificate"}


def test_an_empty_yaml_file_is_an_empty_seed(services: Services, tmp_path: Path) -> None:
    assert seed_file(services, write(tmp_path, "# nothing yet\n")).created == ()


# -- bad files: the line, and nothing made ------------------------------------------------------

# Bad seed files (tests/unit/seeds/), each starting with entries that are fine so that a
# half-applied seed would show: (file, the line the error names, words of the message).
SEEDS = Path(__file__).parent / "seeds"
BAD_FILES = [
    ("yaml-syntax.yaml", 7, "YAML syntax error"),
    ("json-syntax.json", 4, "JSON syntax error"),
    ("unknown-field.yaml", 8, "unknown field 'valeu'; the fields are name, versions, value, "),
    ("unknown-field.json", 9, "unknown field 'colour'"),
    ("wrong-type.yaml", 8, "vaults[0].secrets[1].value must be text; got a number"),
    ("bad-name.yaml", 7, "The secret name 'not_valid!' is invalid"),
    ("bad-vault-name.yaml", 7, "The vault name 'x' is invalid"),
    ("bad-pem.yaml", 9, "not a readable private key"),
    ("bad-pfx-password.yaml", 10, "the password is wrong"),  # its PFX opens with the-right-one
    ("policy-on-open-vault.yaml", 7, "access policies apply only to a closed vault"),
    ("unknown-permission.yaml", 13, "'fly' is not a secrets permission"),
    ("policy-member.yaml", 12, "'x509_props.validity_months' must be an integer"),
    ("other-issuer.yaml", 10, "issuer.name must be Self"),
    ("duplicate-key.yaml", 8, "'name' is given twice"),
    ("same-name-twice.yaml", 7, "has the name of secret 'fine'"),
    ("time-without-zone.yaml", 10, "needs a time zone"),
    ("short-client-secret.yaml", 3, "16 to 1024 characters"),
]


def _state(services: Services) -> tuple[list[str], list[str], int]:
    reads = services.installation.store.reads
    vaults = services.vaults.list()
    objects = sum(reads.count_objects(v.id) for v in vaults)
    return ([v.name for v in vaults], [p.name for p in services.identity.list_principals()],
            objects)  # fmt: skip


@pytest.mark.parametrize(("name", "line", "words"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_a_bad_file_names_its_line_and_makes_nothing(
    services: Services, name: str, line: int, words: str
) -> None:
    path = SEEDS / name
    with pytest.raises(SeedError) as caught:
        seed_file(services, path)
    message = caught.value.message
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message
    assert caught.value.line == line
    assert _state(services) == ([], [], 0)


def test_the_bad_files_start_with_entries_that_apply(services: Services, tmp_path: Path) -> None:
    """What the bad files share before their bad part is fine: had it been made before the
    bad part was found, the test above would see it."""
    start = "".join((SEEDS / "wrong-type.yaml").read_text().splitlines(keepends=True)[:6])
    report = seed_file(services, write(tmp_path, start))
    assert [(o.kind, o.name) for o in report.created] == [
        ("principal", "first"), ("vault", "good"), ("secret", "fine"),
    ]  # fmt: skip


def test_a_missing_file_is_a_seed_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(SeedError, match=r"absent\.yaml:0: cannot read the file"):
        load_seed(path)


# (what, seed text, line): wrong only against what the installation holds, so refused by
# apply_seed before its first write.
IN_THE_WAY: list[tuple[str, str, int]] = [
    ("a principal nobody made",
     "principals: [{name: first}]\nvaults:\n  - name: good\n    open: false\n"
     "    accessPolicies:\n      - {principal: first, permissions: {keys: [get]}}\n"
     "      - {principal: stranger, permissions: {keys: [get]}}\n", 7),
    ("a soft-deleted secret", "principals: [{name: first}]\nvaults:\n  - name: existing\n"
     "    secrets:\n      - {name: gone, value: v}\n", 5),
    ("a secret where a certificate goes", "principals: [{name: first}]\nvaults:\n"
     "  - name: existing\n    certificates:\n      - name: taken\n"
     "        policy: {x509_props: {subject: CN=x}, key_props: {kty: EC}}\n", 5),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line"), [c[1:] for c in IN_THE_WAY], ids=[c[0] for c in IN_THE_WAY]
)
def test_what_the_installation_refuses_is_found_before_any_write(
    services: Services, tmp_path: Path, text: str, line: int
) -> None:
    services.vaults.create("existing", open_access=True)
    vault = services.vaults.get_record("existing")
    asyncio.run(services.secrets.set_secret(vault, "gone", "v"))
    asyncio.run(services.secrets.delete_secret(vault, "gone"))
    asyncio.run(services.secrets.set_secret(vault, "taken", "v"))
    before = _state(services)
    path = write(tmp_path, text)
    seed = load_seed(path)
    with pytest.raises(SeedError) as caught:
        asyncio.run(apply_seed(services, seed))
    assert caught.value.message.startswith(f"{path}:{line}: "), caught.value.message
    assert _state(services) == before


# -- the plaintext export -----------------------------------------------------------------------


def test_export_is_refused_unless_the_installation_is_ephemeral(
    services: Services, tmp_path: Path
) -> None:
    services.vaults.create("app", open_access=True)
    with pytest.raises(ExportRefused, match="not ephemeral"):
        export_vault(services, "app")
    (services.installation.settings.data_dir / EPHEMERAL_MARKER).write_text("")
    assert export_vault(services, "app")["vaults"][0]["name"] == "app"


@pytest.mark.parametrize("form", ["json", "yaml"])
def test_an_export_recreates_the_vault_elsewhere(
    material: Material, tmp_path: Path, form: str
) -> None:
    source = open_services(tmp_path / "a")
    target = open_services(tmp_path / "b")
    try:
        seed_file(source, write(tmp_path, full_seed(material)))
        for services in (source, target):
            (services.installation.settings.data_dir / EPHEMERAL_MARKER).write_text("")
        exported = {name: export_vault(source, name) for name in ("app", "locked")}
        for name, document in exported.items():
            path = tmp_path / f"{name}.{form}"
            if form == "json":
                path.write_text(json.dumps(document, indent=2))
            else:
                path.write_text(yaml.safe_dump(document, sort_keys=False))
            seed_file(target, path)
        # Every value, attribute, tag, key (public and private), certificate and policy.
        for name, document in exported.items():
            assert export_vault(target, name) == document
        app_a, app_b = (s.vaults.get_record("app") for s in (source, target))
        for key in ("ec-key", "rsa-key", "pem-key", "jwk-key"):
            assert source.keys.get_key(app_a, key).public == target.keys.get_key(app_b, key).public
        assert target.secrets.get_secret(app_b, "db-password").value == "second"
        assert (
            source.certificates.get_certificate(app_a, "self-signed").cer
            == target.certificates.get_certificate(app_b, "self-signed").cer
        )
        locked = target.vaults.get_record("locked")
        assert not locked.open_access
        assert {p.principal for p in target.access.list_policies(locked)} == {"ci-bot", "reader"}
        # The exported vault's own installation sees it all as there already.
        assert seed_file(source, tmp_path / f"app.{form}").created == ()
    finally:
        close(source)
        close(target)
