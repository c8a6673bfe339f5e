"""Keys through the real KeyClient and CryptographyClient, checked against pyca locally."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.keys import JsonWebKey, KeyClient, KeyOperation
from azure.keyvault.keys.crypto import (
    CryptographyClient,
    EncryptionAlgorithm,
    KeyWrapAlgorithm,
    SignatureAlgorithm,
)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from tests.conftest import Server


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(text: str) -> int:
    return int.from_bytes(_unb64(text), "big")


@pytest.fixture
def keys(server: Server) -> KeyClient:
    return KeyClient(
        server.vault_url("vault-a"), server.credential(), connection_verify=str(server.ca)
    )


def _crypto(server: Server, key: Any) -> CryptographyClient:
    return CryptographyClient(key, server.credential(), connection_verify=str(server.ca))


def _rsa_public(jwk: JsonWebKey) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(
        int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")
    ).public_key()


_CURVES = {
    "P-256": ec.SECP256R1,
    "P-256K": ec.SECP256K1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}


@pytest.mark.parametrize("size", [2048, 3072, 4096])
def test_create_rsa_sizes(keys: KeyClient, unique: str, size: int) -> None:
    key = keys.create_rsa_key(unique, size=size, hardware_protected=size == 3072)
    assert key.key_type == ("RSA-HSM" if size == 3072 else "RSA")
    assert int.from_bytes(key.key.n, "big").bit_length() == size
    assert int.from_bytes(key.key.e, "big") == 65537
    assert sorted(key.key_operations) == sorted(
        ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]
    )


@pytest.mark.parametrize("curve", ["P-256", "P-256K", "P-384", "P-521"])
def test_create_ec_curves_and_sign_verifies_locally(
    server: Server, keys: KeyClient, unique: str, curve: str
) -> None:
    key = keys.create_ec_key(unique, curve=curve)
    assert key.key.crv == curve
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(key.key.x, "big"), int.from_bytes(key.key.y, "big"), _CURVES[curve]()
    ).public_key()  # raises unless the point is on the curve
    alg, hash_ = {
        "P-256": (SignatureAlgorithm.es256, hashes.SHA256()),
        "P-256K": (SignatureAlgorithm.es256_k, hashes.SHA256()),
        "P-384": (SignatureAlgorithm.es384, hashes.SHA384()),
        "P-521": (SignatureAlgorithm.es512, hashes.SHA512()),
    }[curve]
    h = hashes.Hash(hash_)
    h.update(b"message")
    digest = h.finalize()
    signature = _crypto(server, key).sign(alg, digest).signature
    width = (public.curve.key_size + 7) // 8
    assert len(signature) == 2 * width  # raw r || s, not DER
    der = encode_dss_signature(
        int.from_bytes(signature[:width], "big"), int.from_bytes(signature[width:], "big")
    )
    public.verify(der, digest, ec.ECDSA(Prehashed(hash_)))


@pytest.mark.parametrize("size", [128, 192, 256])
def test_create_oct_sizes_never_return_k(server: Server, unique: str, size: int) -> None:
    with server.http("vault-a") as http:
        created = http.post(f"/keys/{unique}/create", json={"kty": "oct", "key_size": size})
        assert created.status_code == 200, created.text
        jwk = created.json()["key"]
        assert jwk["kty"] == "oct"
        assert "k" not in jwk
        assert "k" not in http.get(f"/keys/{unique}/").json()["key"]


@pytest.mark.parametrize(
    ("alg", "hash_", "pss"),
    [
        ("RS256", hashes.SHA256(), False),
        ("RS384", hashes.SHA384(), False),
        ("RS512", hashes.SHA512(), False),
        ("PS256", hashes.SHA256(), True),
        ("PS384", hashes.SHA384(), True),
        ("PS512", hashes.SHA512(), True),
    ],
)
def test_rsa_signatures_verify_with_pyca(
    server: Server, keys: KeyClient, unique: str, alg: str, hash_: Any, pss: bool
) -> None:
    key = keys.create_rsa_key(unique)
    h = hashes.Hash(hash_)
    h.update(os.urandom(40))
    digest = h.finalize()
    signature = _crypto(server, key.id).sign(SignatureAlgorithm(alg), digest).signature
    scheme = asym.PSS(asym.MGF1(hash_), asym.PSS.AUTO) if pss else asym.PKCS1v15()
    _rsa_public(key.key).verify(signature, digest, scheme, Prehashed(hash_))


@pytest.mark.parametrize(
    ("alg", "pad"),
    [
        ("RSA1_5", asym.PKCS1v15()),
        ("RSA-OAEP", asym.OAEP(asym.MGF1(hashes.SHA1()), hashes.SHA1(), None)),  # noqa: S303
        ("RSA-OAEP-256", asym.OAEP(asym.MGF1(hashes.SHA256()), hashes.SHA256(), None)),
    ],
)
def test_rsa_decrypts_what_pyca_encrypted(
    server: Server, keys: KeyClient, unique: str, alg: str, pad: Any
) -> None:
    key = keys.create_rsa_key(unique)
    ciphertext = _rsa_public(key.key).encrypt(b"attack at dawn", pad)
    client = _crypto(server, key.id)
    assert client.decrypt(EncryptionAlgorithm(alg), ciphertext).plaintext == b"attack at dawn"
    wrapped = _rsa_public(key.key).encrypt(b"k" * 32, pad)
    assert client.unwrap_key(KeyWrapAlgorithm(alg), wrapped).key == b"k" * 32


def _op(http: Any, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = http.post(path, json=body)
    assert response.status_code == status, response.text
    return dict(response.json())


@pytest.mark.parametrize("bits", [128, 192, 256])
def test_oct_encryption_and_key_wrap_round_trips(server: Server, unique: str, bits: int) -> None:
    with server.http("vault-a") as http:
        kid = http.post(f"/keys/{unique}/create", json={"kty": "oct-HSM", "key_size": bits})
        assert kid.status_code == 200
        base = f"/keys/{unique}//"  # empty version: the latest
        plain = _b64(b"sixteen byte msg" * 2)
        gcm = _op(
            http, base + "encrypt", {"alg": f"A{bits}GCM", "value": plain, "aad": _b64(b"hdr")}
        )
        back = _op(
            http, base + "decrypt",
            {"alg": f"A{bits}GCM", "value": gcm["value"], "iv": gcm["iv"], "tag": gcm["tag"],
             "aad": _b64(b"hdr")},
        )  # fmt: skip
        assert back["value"] == plain
        bad_tag = _op(
            http, base + "decrypt",
            {"alg": f"A{bits}GCM", "value": gcm["value"], "iv": gcm["iv"], "tag": _b64(bytes(16))},
            status=400,
        )  # fmt: skip
        assert bad_tag["error"]["code"] == "BadParameter"
        for mode in ("CBC", "CBCPAD"):
            enc = _op(http, base + "encrypt", {"alg": f"A{bits}{mode}", "value": plain})
            dec = _op(
                http, base + "decrypt",
                {"alg": f"A{bits}{mode}", "value": enc["value"], "iv": enc["iv"]},
            )  # fmt: skip
            assert dec["value"] == plain
        for alg in (f"A{bits}KW", "CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_PAD"):
            wrapped = _op(http, base + "wrapkey", {"alg": alg, "value": _b64(b"K" * 24)})
            unwrapped = _op(http, base + "unwrapkey", {"alg": alg, "value": wrapped["value"]})
            assert unwrapped["value"] == _b64(b"K" * 24)
        mismatch = "A128GCM" if bits != 128 else "A256GCM"
        error = _op(http, base + "encrypt", {"alg": mismatch, "value": plain}, status=400)
        assert "bit key" in error["error"]["message"]


def test_aes_key_wrap_known_answer(server: Server, unique: str) -> None:
    # RFC 3394 section 4.1: 128-bit KEK wraps 128 bits of key data.
    kek = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
    data = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    expected = bytes.fromhex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
    with server.http("vault-a") as http:
        imported = http.put(f"/keys/{unique}", json={"key": {"kty": "oct", "k": _b64(kek)}})
        assert imported.status_code == 200, imported.text
        wrapped = _op(http, f"/keys/{unique}//wrapkey", {"alg": "A128KW", "value": _b64(data)})
        assert _unb64(wrapped["value"]) == expected


def test_import_rsa_and_ec_and_never_return_private_parts(
    server: Server, keys: KeyClient, unique: str
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    nums = private.private_numbers()

    def b(v: int) -> bytes:
        return v.to_bytes((v.bit_length() + 7) // 8, "big")

    jwk = JsonWebKey(
        kty="RSA", n=b(nums.public_numbers.n), e=b(nums.public_numbers.e), d=b(nums.d),
        p=b(nums.p), q=b(nums.q), dp=b(nums.dmp1), dq=b(nums.dmq1), qi=b(nums.iqmp),
        key_ops=["sign", "verify"],
    )  # fmt: skip
    imported = keys.import_key(unique, jwk)
    assert imported.key.n == jwk.n
    assert imported.key_operations == ["sign", "verify"]
    with server.http("vault-a") as http:
        body = http.get(f"/keys/{unique}/").json()["key"]
    assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(body)

    eckey = ec.generate_private_key(ec.SECP384R1())
    en = eckey.private_numbers()
    ec_jwk = JsonWebKey(
        kty="EC", crv="P-384", x=en.public_numbers.x.to_bytes(48, "big"),
        y=en.public_numbers.y.to_bytes(48, "big"), d=en.private_value.to_bytes(48, "big"),
    )  # fmt: skip
    assert keys.import_key(unique + "-ec", ec_jwk).key.x == ec_jwk.x


@pytest.mark.parametrize(
    ("jwk", "says"),
    [
        (
            {
                "kty": "EC",
                "crv": "P-256",
                "x": _b64(b"\x01" * 31),
                "y": _b64(b"\x01" * 32),
                "d": _b64(b"\x01" * 32),
            },
            "key.x",
        ),
        (
            {
                "kty": "EC",
                "crv": "P-256",
                "x": _b64(b"\x01" * 32),
                "y": _b64(b"\x02" * 32),
                "d": _b64(b"\x01" * 32),
            },
            "not a point",
        ),
        ({"kty": "oct", "k": _b64(b"\x01" * 20)}, "key.k"),
        ({"kty": "RSA", "n": _b64(b"\x01" * 256), "e": _b64(b"\x01\x00\x01")}, "key.d"),
        ({"kty": "DSA"}, "key.kty"),
    ],
)
def test_bad_imports_name_the_field(server: Server, jwk: dict[str, str], says: str) -> None:
    with server.http("vault-a") as http:
        response = http.put("/keys/bad-import", json={"key": jwk})
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]["message"]


def test_key_ops_enabled_nbf_exp_are_enforced(server: Server, keys: KeyClient, unique: str) -> None:
    digest = hashlib.sha256(b"x").digest()
    with server.http("vault-a") as http:
        http.post(
            f"/keys/{unique}/create", json={"kty": "EC", "crv": "P-256", "key_ops": ["verify"]}
        )
        denied = _op(http, f"/keys/{unique}//sign", {"alg": "ES256", "value": _b64(digest)}, 403)
        assert denied["error"]["innererror"]["code"] == "KeyOperationForbidden"
        http.patch(f"/keys/{unique}/", json={"key_ops": ["sign", "verify"]})
        _op(http, f"/keys/{unique}//sign", {"alg": "ES256", "value": _b64(digest)})
        cases = [
            ({"enabled": False}, "KeyDisabled"),
            ({"enabled": True, "nbf": int(time.time()) + 3600}, "KeyNotYetValid"),
            ({"nbf": 0, "exp": int(time.time()) - 10}, "KeyExpired"),
        ]
        for attrs, inner in cases:
            assert http.patch(f"/keys/{unique}/", json={"attributes": attrs}).status_code == 200
            error = _op(http, f"/keys/{unique}//sign", {"alg": "ES256", "value": _b64(digest)}, 403)
            assert error["error"]["innererror"]["code"] == inner


def test_bad_parameters_are_400(server: Server, unique: str) -> None:
    with server.http("vault-a") as http:
        http.post(f"/keys/{unique}/create", json={"kty": "RSA", "key_size": 2048})
        wrong_alg = _op(
            http, f"/keys/{unique}//sign", {"alg": "ES256", "value": _b64(bytes(32))}, 400
        )
        assert "RSA" in wrong_alg["error"]["message"]
        short = _op(http, f"/keys/{unique}//sign", {"alg": "RS256", "value": _b64(bytes(20))}, 400)
        assert "32-byte digest" in short["error"]["message"]
        garbage = _op(
            http, f"/keys/{unique}//decrypt", {"alg": "RSA-OAEP", "value": _b64(bytes(256))}, 400
        )
        assert "cannot be decrypted" in garbage["error"]["message"]
        for body in (
            {"kty": "RSA", "key_size": 1024},
            {"kty": "EC", "crv": "P-999"},
            {"kty": "XYZ"},
        ):
            assert http.post(f"/keys/{unique}-bad/create", json=body).status_code == 400
        assert _op(http, "/rng", {"count": 128})["value"]
        assert len(_unb64(_op(http, "/rng", {"count": 1})["value"])) == 1
        for count in (0, 129):
            _op(http, "/rng", {"count": count}, 400)


def test_lifecycle_rotate_update_delete_recover_purge(keys: KeyClient, unique: str) -> None:
    first = keys.create_ec_key(
        unique, curve="P-384", tags={"team": "a"}, key_operations=[KeyOperation.sign]
    )
    rotated = keys.rotate_key(unique)
    assert rotated.properties.version != first.properties.version
    assert rotated.key.crv == "P-384"
    assert rotated.key_operations == ["sign"]
    assert rotated.properties.tags == {"team": "a"}
    assert len(list(keys.list_properties_of_key_versions(unique))) == 2
    time.sleep(1.1)
    updated = keys.update_key_properties(unique, tags={"team": "b"}, enabled=False)
    assert updated.properties.tags == {"team": "b"}
    assert updated.properties.enabled is False
    assert updated.properties.updated_on > rotated.properties.updated_on
    keys.begin_delete_key(unique).wait()
    with pytest.raises(ResourceNotFoundError):
        keys.get_key(unique)
    with pytest.raises(ResourceExistsError):
        keys.create_ec_key(unique)
    assert unique in [k.name for k in keys.list_deleted_keys()]
    keys.begin_recover_deleted_key(unique).wait()
    assert keys.get_key(unique).properties.version == rotated.properties.version
    keys.begin_delete_key(unique).wait()
    keys.purge_deleted_key(unique)
    with pytest.raises(ResourceNotFoundError):
        keys.get_deleted_key(unique)


def test_backup_purge_restore_elsewhere_then_sign_with_restored(
    server: Server, keys: KeyClient, unique: str
) -> None:
    original = keys.create_rsa_key(unique)
    keys.rotate_key(unique)
    versions = sorted(p.version for p in keys.list_properties_of_key_versions(unique))
    blob = keys.backup_key(unique)
    keys.begin_delete_key(unique).wait()
    keys.purge_deleted_key(unique)

    other = KeyClient(
        server.vault_url("vault-b"), server.credential(), connection_verify=str(server.ca)
    )
    restored = other.restore_key_backup(blob)
    assert restored.id.startswith(server.vault_url("vault-b"))
    assert sorted(p.version for p in other.list_properties_of_key_versions(unique)) == versions
    old = other.get_key(unique, original.properties.version)
    assert old.key.n == original.key.n

    digest = hashlib.sha256(b"after restore").digest()
    signature = _crypto(server, old.id).sign(SignatureAlgorithm.rs256, digest).signature
    _rsa_public(original.key).verify(signature, digest, asym.PKCS1v15(), Prehashed(hashes.SHA256()))

    with pytest.raises(ResourceExistsError):
        other.restore_key_backup(blob)


def test_blobs_of_the_other_kind_are_refused(server: Server, keys: KeyClient, unique: str) -> None:
    keys.create_ec_key(unique)
    key_blob = keys.backup_key(unique)
    secrets = server.client("vault-a")
    secrets.set_secret(unique, "v")
    secret_blob = secrets.backup_secret(unique)
    with pytest.raises(HttpResponseError) as into_secrets:
        secrets.restore_secret_backup(key_blob)
    assert "BackupKindMismatch" in str(into_secrets.value)
    with pytest.raises(HttpResponseError) as into_keys:
        keys.restore_key_backup(secret_blob)
    assert "BackupKindMismatch" in str(into_keys.value)
    assert "POST /secrets/restore" in str(into_keys.value)


def test_operations_follow_every_write_after_a_cached_one(server: Server, unique: str) -> None:
    """Signing keeps what it needs of a version between requests; each write that changes the
    version in use (rotate, delete, recover, a certificate's new version) must be seen."""
    digest = _b64(hashlib.sha256(b"cached").digest())
    body = {"alg": "ES256", "value": digest}
    with server.http("vault-a") as http:
        http.post(f"/keys/{unique}/create", json={"kty": "EC", "crv": "P-256"})
        first = _op(http, f"/keys/{unique}//sign", body)["kid"]
        rotated = http.post(f"/keys/{unique}/rotate").json()["key"]["kid"]
        assert rotated != first
        assert _op(http, f"/keys/{unique}//sign", body)["kid"] == rotated
        assert http.delete(f"/keys/{unique}").status_code == 200
        _op(http, f"/keys/{unique}//sign", body, 404)
        assert http.post(f"/deletedkeys/{unique}/recover").status_code == 200
        assert _op(http, f"/keys/{unique}//sign", body)["kid"] == rotated

        cert = f"{unique}-cert"
        policy = {
            "key_props": {"kty": "EC", "crv": "P-256", "exportable": True},
            "secret_props": {"contentType": "application/x-pkcs12"},
            "x509_props": {"subject": "CN=cached"},
            "issuer": {"name": "Self"},
        }
        for _ in range(2):
            created = http.post(f"/certificates/{cert}/create", json={"policy": policy})
            assert created.status_code == 202, created.text
            kid = http.get(f"/certificates/{cert}/").json()["kid"]
            # The certificate's key (not exportable by our policy) signs with its newest version.
            assert _op(http, f"/keys/{cert}//sign", body)["kid"] == kid


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_rsa_workers_are_replaced_when_killed_and_die_with_the_server(
    tmp_path: Any, unique: str
) -> None:
    """RSA private operations run in worker processes of the server: killing them costs no
    more than the requests they held, and they never outlive the server, even a killed one."""
    import signal

    from tests.conftest import make_server

    srv = make_server(tmp_path, ("vault-a",))
    try:
        digest = _b64(hashlib.sha256(b"workers").digest())
        body = {"alg": "RS256", "value": digest}
        assert srv.process is not None
        with srv.http("vault-a") as http:
            http.post(f"/keys/{unique}/create", json={"kty": "RSA", "key_size": 2048})
            _op(http, f"/keys/{unique}//sign", body)
            workers = _children(srv.process.pid)
            assert workers, "no worker process signed"
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while not all(_gone(pid) for pid in workers) and time.monotonic() < deadline:
                time.sleep(0.05)
            for _ in range(4):
                _op(http, f"/keys/{unique}//sign", body)
            replaced = _children(srv.process.pid)
            assert replaced and not set(replaced) & set(workers)
        srv.process.kill()  # no chance to close anything: the workers see EOF and leave
        srv.process.wait()
        deadline = time.monotonic() + 10
        while not all(_gone(pid) for pid in replaced) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(_gone(pid) for pid in replaced)
    finally:
        srv.stop()
