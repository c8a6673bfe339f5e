"""``strongroom key ...`` (az keyvault key's names and flags), run in a subprocess against the
session's server."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.cli.conftest import Strongroom

A = ("--vault-name", "vault-a")


@pytest.fixture
def name() -> str:
    return f"k-{os.urandom(4).hex()}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_lifecycle(sr: Strongroom, name: str) -> None:
    made = sr.ok("key", "create", *A, "--name", name, "--kty", "RSA", "--size", "2048",
                 "--ops", "encrypt", "decrypt", "sign", "--tags", "a=b", "c=d")  # fmt: skip
    assert made["key"]["kty"] == "RSA"
    assert made["key"]["keyOps"] == ["encrypt", "decrypt", "sign"]
    assert made["tags"] == {"a": "b", "c": "d"}
    assert made["attributes"]["enabled"] is True
    assert made["key"]["kid"].startswith("https://vault-a.vault.localhost:")
    assert len(base64.b64decode(made["key"]["n"])) == 256
    shown = sr.ok("key", "show", *A, "--name", name)
    assert shown["key"]["kid"] == made["key"]["kid"]
    assert name in [k["name"] for k in sr.ok("key", "list", *A)]

    rotated = sr.ok("key", "rotate", *A, "--name", name)
    assert rotated["key"]["kid"] != made["key"]["kid"]
    assert rotated["key"]["keyOps"] == ["encrypt", "decrypt", "sign"]
    versions = sr.ok("key", "list-versions", *A, "--name", name)
    assert {v["kid"] for v in versions} == {made["key"]["kid"], rotated["key"]["kid"]}
    first = made["key"]["kid"].rsplit("/", 1)[1]
    assert (
        sr.ok("key", "show", *A, "--name", name, "--version", first)["key"]["n"] == made["key"]["n"]
    )

    changed = sr.ok("key", "set-attributes", *A, "--name", name, "--enabled", "false",
                    "--tags", "x=1", "--expires", "2040-01-01T00:00:00Z")  # fmt: skip
    assert changed["attributes"]["enabled"] is False
    assert changed["attributes"]["expires"].startswith("2040-01-01T00:00:00")
    assert changed["tags"] == {"x": "1"}
    assert sr.ok("key", "set-attributes", *A, "-n", name, "--enabled", "true")["attributes"][
        "enabled"
    ]

    deleted = sr.ok("key", "delete", *A, "--name", name)
    assert deleted["recoveryId"].endswith(f"/deletedkeys/{name}")
    assert name in [k["name"] for k in sr.ok("key", "list-deleted", *A)]
    assert sr.ok("key", "recover", *A, "--name", name)["key"]["kid"] == rotated["key"]["kid"]
    sr.ok("key", "delete", *A, "--name", name)
    sr.ok("key", "purge", *A, "--name", name)
    assert sr.fails("key", "show", *A, "--name", name).startswith("(KeyNotFound) ")


def test_rsa_encrypt_decrypt_wrap_unwrap(sr: Strongroom, name: str) -> None:
    sr.ok("key", "create", *A, "--name", name, "--kty", "RSA")
    sealed = sr.ok("key", "encrypt", *A, "--name", name, "--algorithm", "RSA-OAEP-256",
                   "--value", "hello, key", "--data-type", "plaintext")  # fmt: skip
    assert sealed["algorithm"] == "RSA-OAEP-256"
    assert len(base64.b64decode(sealed["result"])) == 256
    opened = sr.ok("key", "decrypt", *A, "--name", name, "-a", "RSA-OAEP-256",
                   "--value", sealed["result"], "--data-type", "plaintext")  # fmt: skip
    assert opened["result"] == "hello, key"
    opened = sr.ok("key", "decrypt", *A, "--name", name, "-a", "RSA-OAEP-256",
                   "--value", sealed["result"])  # fmt: skip
    assert base64.b64decode(opened["result"]) == b"hello, key"

    cek = os.urandom(32)
    wrapped = sr.ok("key", "wrap", *A, "--name", name, "-a", "RSA-OAEP", "--value", b64(cek))
    unwrapped = sr.ok("key", "unwrap", *A, "--name", name, "-a", "RSA-OAEP",
                      "--value", wrapped["result"])  # fmt: skip
    assert base64.b64decode(unwrapped["result"]) == cek


def test_aes_gcm_takes_iv_tag_and_aad_in_hex(sr: Strongroom, name: str) -> None:
    sr.ok("key", "create", *A, "--name", name, "--kty", "oct-HSM", "--size", "256")
    sealed = sr.ok("key", "encrypt", *A, "--name", name, "-a", "A256GCM",
                   "--value", b64(b"secret data"), "--aad", "0a0b0c")  # fmt: skip
    assert sealed["aad"] == "0a0b0c"
    assert bytes.fromhex(sealed["iv"]) and bytes.fromhex(sealed["tag"])
    opened = sr.ok("key", "decrypt", *A, "--name", name, "-a", "A256GCM",
                   "--value", sealed["result"], "--iv", sealed["iv"], "--tag", sealed["tag"],
                   "--aad", "0a0b0c", "--data-type", "plaintext")  # fmt: skip
    assert opened["result"] == "secret data"
    error = sr.fails("key", "decrypt", *A, "--name", name, "-a", "A256GCM",
                     "--value", sealed["result"], "--iv", sealed["iv"], "--tag", sealed["tag"],
                     "--aad", "ffff")  # fmt: skip
    assert error.startswith("(")
    assert "Traceback" not in error
    # a key without a public part cannot be downloaded
    assert sr.fails("key", "download", *A, "-n", name, "-f", "k.pem").startswith("(BadParameter) ")


def test_ec_sign_verify_and_download(sr: Strongroom, name: str, tmp_path: Path) -> None:
    made = sr.ok("key", "create", *A, "--name", name, "--kty", "EC", "--curve", "P-256")
    assert made["key"]["crv"] == "P-256"
    digest = hashlib.sha256(b"message").digest()
    signed = sr.ok("key", "sign", *A, "--name", name, "-a", "ES256", "--digest", b64(digest))
    assert signed["keyId"] == made["key"]["kid"] and signed["algorithm"] == "ES256"
    good = sr.ok("key", "verify", *A, "--name", name, "-a", "ES256", "--digest", b64(digest),
                 "--signature", signed["signature"])  # fmt: skip
    assert good["isValid"] is True
    other = b64(hashlib.sha256(b"other").digest())
    bad = sr.ok("key", "verify", *A, "--name", name, "-a", "ES256", "--digest", other,
                "--signature", signed["signature"])  # fmt: skip
    assert bad["isValid"] is False

    # the downloaded public key verifies the signature (raw r||s, RFC 7518 section 3.4)
    sr.ok("key", "download", *A, "--name", name, "--file", "pub.pem")
    public = serialization.load_pem_public_key((tmp_path / "pub.pem").read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    raw = base64.b64decode(signed["signature"])
    der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    public.verify(der, b"message", ec.ECDSA(hashes.SHA256()))
    sr.ok("key", "download", *A, "--name", name, "--file", "pub.der", "--encoding", "DER")
    assert serialization.load_der_public_key((tmp_path / "pub.der").read_bytes()) == public
    again = sr.fails("key", "download", *A, "--name", name, "--file", "pub.pem")
    assert again.startswith("(FileExists) ")


def test_import_pem_with_password_and_jwk(sr: Strongroom, name: str, tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )  # fmt: skip
    (tmp_path / "k.pem").write_bytes(pem)
    imported = sr.ok("key", "import", *A, "--name", name, "--pem-file", "k.pem", "--pem-password",
                     "pw", "--protection", "hsm", "--ops", "sign", "verify")  # fmt: skip
    assert imported["key"]["kty"] == "RSA-HSM"
    assert imported["key"]["keyOps"] == ["sign", "verify"]
    n = private.public_key().public_numbers().n
    assert int.from_bytes(base64.b64decode(imported["key"]["n"])) == n
    error = sr.fails("key", "import", *A, "--name", name, "--pem-file", "k.pem")
    assert error.startswith("(BadParameter) Import failed: ") and "--pem-password" in error

    curve = ec.generate_private_key(ec.SECP384R1())
    numbers = curve.private_numbers()

    def u(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes(48)).rstrip(b"=").decode()

    public = numbers.public_numbers
    jwk = {"kty": "EC", "crv": "P-384", "x": u(public.x), "y": u(public.y),
           "d": u(numbers.private_value), "use": "sig"}  # fmt: skip
    (tmp_path / "k.json").write_text(json.dumps(jwk))
    imported = sr.ok("key", "import", *A, "--name", f"{name}-ec", "--jwk-file", "k.json")
    assert imported["key"]["crv"] == "P-384"
    assert base64.b64decode(imported["key"]["x"]) == public.x.to_bytes(48)


def test_backup_auto_named_force_and_restore(sr: Strongroom, name: str) -> None:
    made = sr.ok("key", "create", *A, "--name", name, "--kty", "EC")
    written = sr.ok("key", "backup", *A, "--name", name)
    path = Path(written["file"])
    assert path.parent == sr.cwd
    assert path.name.startswith(f"vault-a-{name}-") and path.name.endswith(".blob")
    error = sr.fails("key", "backup", *A, "--name", name, "--file", str(path))
    assert error.startswith("(FileExists) ")
    sr.ok("key", "backup", *A, "--name", name, "--file", str(path), "--force")
    restored = sr.ok("key", "restore", "--vault-name", "vault-b", "--file", str(path))
    assert restored["key"]["kid"].startswith("https://vault-b.")
    assert restored["key"]["x"] == made["key"]["x"]


def test_rotation_policy_from_a_file_as_az_writes_it(sr: Strongroom, name: str) -> None:
    sr.ok("key", "create", *A, "--name", name, "--kty", "EC")
    policy = {
        "lifetime_actions": [
            {"trigger": {"time_after_create": "P90D"}, "action": {"type": "rotate"}},
            {"trigger": {"time_before_expiry": "P30D"}, "action": {"type": "Notify"}},
        ],
        "attributes": {"expiry_time": "P2Y"},
    }
    (sr.cwd / "policy.json").write_text(json.dumps(policy))
    updated = sr.ok("key", "rotation-policy", "update", *A, "--name", name,
                    "--value", "policy.json")  # fmt: skip
    assert updated["expiresIn"] == "P2Y"
    shown = sr.ok("key", "rotation-policy", "show", *A, "--name", name)
    actions = {a["action"]: a for a in shown["lifetimeActions"]}
    assert actions["Rotate"]["timeAfterCreate"] == "P90D"
    assert actions["Notify"]["timeBeforeExpiry"] == "P30D"
    # what `show` prints goes back in, as inline JSON
    again = sr.ok("key", "rotation-policy", "update", *A, "--name", name,
                  "--value", json.dumps(shown))  # fmt: skip
    assert again["lifetimeActions"] == shown["lifetimeActions"]


def test_bad_input_is_named_before_any_request(sr: Strongroom, name: str) -> None:
    error = sr.fails("key", "sign", *A, "--name", name, "-a", "RS999", "--digest", "AAAA")
    assert error.startswith("(BadParameter) 'RS999' is not one of ")
    error = sr.fails("key", "create", *A, "--name", name, "--ops", "sign", "frob")
    assert error.startswith("(BadParameter) 'frob' is not a key operation")
    error = sr.fails("key", "create", *A, "--name", name, "--expires", "soon")
    assert error.startswith("(BadParameter) --expires takes an ISO 8601 time")
    assert "Invalid value" in sr.fails("key", "create", *A, "--name", name, "--kty", "DSA")
