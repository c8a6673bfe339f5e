"""``strongroom key ...``: like ``az keyvault key``, a client of a running server
(``cli/client.py`` says where it finds the vault and its credentials).

Names, flags and output follow az: JSON in camelCase, key material in standard base64, ``--iv``,
``--aad`` and ``--tag`` in hex, ``--value``/``--digest``/``--signature`` in base64."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from strongroom.cli.client import (
    Vault,
    VaultName,
    VaultUrl,
    connected,
)  # fmt: skip
from strongroom.cli.completion import object_names
from strongroom.cli.jwk import jwk_from_json, jwk_from_pem, public_key_file
from strongroom.cli.lifecycle import Lifecycle, register, sdk_session
from strongroom.cli.output import Output, OutputOption, emit, fail, iso, wire
from strongroom.cli.shared import KEY_OPS, TagsOption, parse_tags

if TYPE_CHECKING:  # the SDK is imported when a command runs: `serve` starts without it
    from azure.keyvault.keys import (
        DeletedKey,
        JsonWebKey,
        KeyClient,
        KeyProperties,
        KeyRotationPolicy,
        KeyVaultKey,
    )  # fmt: skip
    from azure.keyvault.keys.crypto import CryptographyClient

E = TypeVar("E", bound=Enum)

app = typer.Typer(help="Keys in a vault (a client of a running server).", no_args_is_help=True)
rotation_app = typer.Typer(help="A key's rotation policy.", no_args_is_help=True)
app.add_typer(rotation_app, name="rotation-policy")


class Kty(StrEnum):
    RSA = "RSA"
    RSA_HSM = "RSA-HSM"
    EC = "EC"
    EC_HSM = "EC-HSM"
    oct = "oct"
    oct_HSM = "oct-HSM"


class Curve(StrEnum):
    P256 = "P-256"
    P256K = "P-256K"
    P384 = "P-384"
    P521 = "P-521"


class Protection(StrEnum):
    hsm = "hsm"
    software = "software"


class Encoding(StrEnum):
    PEM = "PEM"
    DER = "DER"


class DataType(StrEnum):
    base64 = "base64"
    plaintext = "plaintext"


class TrueFalse(StrEnum):
    true = "true"
    false = "false"


Name = typer.Option(..., "--name", "-n", help="Key name.", autocompletion=object_names("key"))
Version = typer.Option(None, "--version", "-v", help="Key version (default: latest).")
Ops = typer.Option(
    None, "--ops", help=f"Permitted operations, space-separated like az: {' '.join(KEY_OPS)}."
)
Expires = typer.Option(None, "--expires", help="Expiry, ISO 8601 (e.g. 2030-01-01T00:00:00Z).")
NotBefore = typer.Option(None, "--not-before", help="Not usable before, ISO 8601.")
Disabled = typer.Option(False, "--disabled", help="Create the key disabled.")
ProtectionOption = typer.Option(None, "--protection", "-p", help="hsm: make it an -HSM key.")
Algorithm = typer.Option(..., "--algorithm", "-a", help="Algorithm identifier, e.g. RSA-OAEP-256.")


def _client(vault: Vault) -> KeyClient:
    from azure.keyvault.keys import KeyClient

    return KeyClient(vault.url, vault.credential, **vault.options)


def _crypto(vault: Vault, name: str, version: str | None) -> CryptographyClient:
    from azure.keyvault.keys.crypto import CryptographyClient

    key_id = f"{vault.url}/keys/{name}" + (f"/{version}" if version else "")
    return CryptographyClient(key_id, vault.credential, **vault.options)


def _date(text: str | None, flag: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        fail("BadParameter", f"{flag} takes an ISO 8601 time, e.g. 2030-01-01T00:00:00Z.")
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _ops(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    known = {op.lower(): op for op in KEY_OPS}
    words = [w for v in values for w in v.replace(",", " ").split()]
    if unknown := [w for w in words if w.lower() not in known]:
        fail(
            "BadParameter", f"'{unknown[0][:30]}' is not a key operation; use {', '.join(KEY_OPS)}."
        )
    return [known[w.lower()] for w in words]


def _algorithm(kind: type[E], text: str) -> E:
    try:
        return kind(text)
    except ValueError:
        fail("BadParameter", f"'{text[:40]}' is not one of {', '.join(a.value for a in kind)}.")


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str, flag: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        fail("BadParameter", f"{flag} must be base64.")


def _unhex(text: str | None, flag: str) -> bytes | None:
    try:
        return None if text is None else bytes.fromhex(text)
    except ValueError:
        fail("BadParameter", f"{flag} must be hex, as az takes it.")


def _hex(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


def _attributes(p: KeyProperties) -> dict[str, Any]:
    return {
        "created": iso(p.created_on),
        "enabled": p.enabled,
        "expires": iso(p.expires_on),
        "exportable": p.exportable,
        "keySize": getattr(p, "key_size", None),
        "notBefore": iso(p.not_before),
        "recoverableDays": p.recoverable_days,
        "recoveryLevel": p.recovery_level,
        "updated": iso(p.updated_on),
    }


def _properties(p: KeyProperties) -> dict[str, Any]:
    """A key in a list, as az prints it."""
    return {"attributes": _attributes(p), "kid": p.id, "name": p.name, "managed": p.managed,
            "tags": p.tags}  # fmt: skip


def _jwk(jwk: JsonWebKey) -> dict[str, Any]:
    """The public JWK, binary members in standard base64 as az prints them."""
    ops = [wire(op) for op in getattr(jwk, "key_ops", None) or []]
    kid, kty = getattr(jwk, "kid", None), wire(getattr(jwk, "kty", None))
    out: dict[str, Any] = {"kid": kid, "kty": kty, "keyOps": ops}
    for member in ("n", "e", "crv", "x", "y"):
        value = getattr(jwk, member, None)
        if value is not None:
            out[member] = _b64(value) if isinstance(value, bytes) else wire(value)
    return out


def _key(key: KeyVaultKey) -> dict[str, Any]:
    return {"attributes": _attributes(key.properties), "key": _jwk(key.key), "name": key.name,
            "managed": key.properties.managed, "tags": key.properties.tags}  # fmt: skip


def _deleted(key: DeletedKey, listed: bool = False) -> dict[str, Any]:
    shown = _properties(key.properties) if listed or key.key is None else _key(key)
    return dict(shown, recoveryId=key.recovery_id, deletedDate=iso(key.deleted_date),
                scheduledPurgeDate=iso(key.scheduled_purge_date))  # fmt: skip


def _with_hsm(kty: str, protection: Protection | None) -> str:
    if protection is Protection.hsm and not kty.endswith("-HSM"):
        return f"{kty}-HSM"
    return kty


@app.command()
def create(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    kty: Kty = typer.Option(Kty.RSA, "--kty", help="Key type."),
    size: int | None = typer.Option(None, "--size", help="RSA: 2048, 3072, 4096; oct: 128-256."),
    curve: Curve | None = typer.Option(None, "--curve", help="EC curve."),
    ops: list[str] | None = Ops,
    tags: list[str] | None = TagsOption,
    disabled: bool = Disabled,
    expires: str | None = Expires,
    not_before: str | None = NotBefore,
    protection: Protection | None = ProtectionOption,
    output: Output = OutputOption,
) -> None:
    """Create a new key, or a new version of it."""
    options: dict[str, Any] = {
        "size": size, "curve": curve.value if curve else None, "key_operations": _ops(ops),
        "enabled": not disabled, "tags": parse_tags(tags),
        "expires_on": _date(expires, "--expires"), "not_before": _date(not_before, "--not-before"),
    }  # fmt: skip
    with connected(vault_name, vault_url) as vault:
        key = _client(vault).create_key(name, _with_hsm(kty.value, protection), **options)
        emit(_key(key), output)


@app.command("import")
def import_(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    pem_file: Path | None = typer.Option(None, "--pem-file", help="A PEM private key (RSA, EC)."),
    pem_string: str | None = typer.Option(None, "--pem-string", help="The PEM, as text."),
    pem_password: str | None = typer.Option(None, "--pem-password", help="For an encrypted PEM."),
    jwk_file: Path | None = typer.Option(
        None, "--jwk-file", help="A private JSON Web Key (RSA, EC or oct), as a JSON file."
    ),
    ops: list[str] | None = Ops,
    tags: list[str] | None = TagsOption,
    disabled: bool = Disabled,
    expires: str | None = Expires,
    not_before: str | None = NotBefore,
    protection: Protection | None = ProtectionOption,
    output: Output = OutputOption,
) -> None:
    """Import a private key from a PEM (like az) or a JWK file."""
    from azure.keyvault.keys import JsonWebKey

    given = [g for g in (pem_file, pem_string, jwk_file) if g is not None]
    if len(given) != 1:
        fail("BadParameter", "Give exactly one of --pem-file, --pem-string and --jwk-file.")
    try:
        if jwk_file is not None:
            members = jwk_from_json(json.loads(jwk_file.read_text()))
        else:
            pem = pem_file.read_bytes() if pem_file else str(pem_string).encode()
            members = jwk_from_pem(pem, pem_password.encode() if pem_password else None)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        fail("BadParameter", f"Import failed: {exc}")
    members.pop("kid", None)
    if ops is not None:
        members["key_ops"] = _ops(ops)
    members["kty"] = _with_hsm(str(members.get("kty")), protection)
    with connected(vault_name, vault_url) as vault:
        key = _client(vault).import_key(
            name, JsonWebKey(**members), hardware_protected=protection is Protection.hsm or None,
            enabled=not disabled, tags=parse_tags(tags), expires_on=_date(expires, "--expires"),
            not_before=_date(not_before, "--not-before"),
        )  # fmt: skip
        emit(_key(key), output)


@app.command()
def show(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl, name: str = Name,
    version: str | None = Version, output: Output = OutputOption,
) -> None:  # fmt: skip
    with connected(vault_name, vault_url) as vault:
        emit(_key(_client(vault).get_key(name, version)), output)


@app.command("set-attributes")
def set_attributes(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    version: str | None = Version,
    enabled: TrueFalse | None = typer.Option(None, "--enabled", help="true or false."),
    ops: list[str] | None = Ops,
    tags: list[str] | None = TagsOption,
    expires: str | None = Expires,
    not_before: str | None = NotBefore,
    output: Output = OutputOption,
) -> None:
    """Change a key's attributes (az's `key set-attributes`; the REST API's update)."""
    with connected(vault_name, vault_url) as vault:
        key = _client(vault).update_key_properties(
            name, version, enabled=None if enabled is None else enabled is TrueFalse.true,
            key_operations=_ops(ops), tags=parse_tags(tags),
            expires_on=_date(expires, "--expires"), not_before=_date(not_before, "--not-before"),
        )  # fmt: skip
        emit(_key(key), output)


register(
    app,
    Lifecycle(
        one="key", group="key", session=sdk_session(_client), vault_of=lambda h: h[0],
        delete=lambda h, name: _deleted(h[1].begin_delete_key(name).result()),
        recover=lambda h, name: _key(h[1].begin_recover_deleted_key(name).result()),
        purge=lambda h, name: h[1].purge_deleted_key(name),
        backup=lambda h, name: h[1].backup_key(name),
        restore=lambda h, blob: _key(h[1].restore_key_backup(blob)),
        list_all=lambda h: [_properties(p) for p in h[1].list_properties_of_keys()],
        list_versions=lambda h, name: [
            _properties(p) for p in h[1].list_properties_of_key_versions(name)
        ],
        list_deleted=lambda h: [_deleted(d, listed=True) for d in h[1].list_deleted_keys()],
    ),
    Name,
)  # fmt: skip


@app.command()
def rotate(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl, name: str = Name,
    output: Output = OutputOption,
) -> None:  # fmt: skip
    """Make a new version of the key (same type, size, curve, operations and tags)."""
    with connected(vault_name, vault_url) as vault:
        emit(_key(_client(vault).rotate_key(name)), output)


@app.command()
def download(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    version: str | None = Version,
    file: Path = typer.Option(..., "--file", "-f", help="Where to write the public key."),
    encoding: Encoding = typer.Option(Encoding.PEM, "--encoding", "-e", help="PEM or DER."),
) -> None:
    """Write the public key of an RSA or EC key (SubjectPublicKeyInfo) to a file."""
    if file.exists():
        fail("FileExists", f"{file} already exists.")
    with connected(vault_name, vault_url) as vault:
        key = _client(vault).get_key(name, version)
    try:
        file.write_bytes(public_key_file(key.key, encoding.value))
    except ValueError as exc:
        fail("BadParameter", f"Cannot download: {exc}.")


# -- rotation policies ------------------------------------------------------------------------


def _policy(policy: KeyRotationPolicy) -> dict[str, Any]:
    """As az prints it: each lifetime action flat (``action``, ``timeAfterCreate``, ...)."""
    return {
        "createdOn": iso(policy.created_on),
        "expiresIn": policy.expires_in,
        "id": policy.id,
        "lifetimeActions": [
            {
                "action": wire(a.action),
                "timeAfterCreate": a.time_after_create,
                "timeBeforeExpiry": a.time_before_expiry,
            }
            for a in policy.lifetime_actions
        ],
        "updatedOn": iso(policy.updated_on),
    }


def _first(mapping: dict[str, Any], *names: str) -> Any:
    return next((mapping[n] for n in names if mapping.get(n) is not None), None)


def _parse_policy(text: str) -> KeyRotationPolicy:
    """A policy in az's file shape (snake_case), the REST API's (camelCase, trigger/action
    objects) or what ``rotation-policy show`` prints (flat actions)."""
    from azure.keyvault.keys import KeyRotationLifetimeAction, KeyRotationPolicy

    try:
        body = json.loads(text)
        actions = []
        for item in _first(body, "lifetimeActions", "lifetime_actions") or []:
            trigger = item.get("trigger") or item
            action = item.get("action")
            kind = action.get("type") if isinstance(action, dict) else action
            actions.append(KeyRotationLifetimeAction(
                str(kind).capitalize(),
                time_after_create=_first(trigger, "timeAfterCreate", "time_after_create"),
                time_before_expiry=_first(trigger, "timeBeforeExpiry", "time_before_expiry"),
            ))  # fmt: skip
        expiry = ("expiryTime", "expiry_time", "expiresIn", "expires_in")
        expires_in = _first(body.get("attributes") or {}, *expiry) or _first(body, *expiry)
    except (ValueError, AttributeError, TypeError) as exc:
        fail("BadParameter", f"The rotation policy is not one az would take: {exc}.")
    return KeyRotationPolicy(lifetime_actions=actions, expires_in=expires_in)


@rotation_app.command("show")
def rotation_show(
    vault_name: str | None = VaultName, vault_url: str | None = VaultUrl, name: str = Name,
    output: Output = OutputOption,
) -> None:  # fmt: skip
    with connected(vault_name, vault_url) as vault:
        emit(_policy(_client(vault).get_key_rotation_policy(name)), output)


@rotation_app.command("update")
def rotation_update(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    value: str = typer.Option(
        ..., "--value", help="The policy as JSON, or the path of a file holding it (as az)."
    ),
    output: Output = OutputOption,
) -> None:
    """Set a key's rotation policy (lifetime actions Rotate/Notify, expiryTime)."""
    path = Path(value)
    policy = _parse_policy(path.read_text() if path.is_file() else value)
    with connected(vault_name, vault_url) as vault:
        emit(_policy(_client(vault).update_key_rotation_policy(name, policy)), output)


# -- cryptographic operations -----------------------------------------------------------------


@app.command()
def encrypt(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    version: str | None = Version,
    algorithm: str = Algorithm,
    value: str = typer.Option(..., "--value", help="What to encrypt (base64 by default)."),
    data_type: DataType = typer.Option(
        DataType.base64, "--data-type", help="base64: --value is base64; plaintext: as is."
    ),
    iv: str | None = typer.Option(None, "--iv", help="Initialization vector (hex), AES-CBC."),
    aad: str | None = typer.Option(None, "--aad", help="Additional authenticated data (hex)."),
    output: Output = OutputOption,
) -> None:
    """Encrypt with a key; prints the ciphertext as base64 (iv, tag, aad as hex), like az."""
    from azure.keyvault.keys.crypto import EncryptionAlgorithm

    data = _unb64(value, "--value") if data_type is DataType.base64 else value.encode()
    with connected(vault_name, vault_url) as vault:
        done = _crypto(vault, name, version).encrypt(
            _algorithm(EncryptionAlgorithm, algorithm), data,
            iv=_unhex(iv, "--iv"), additional_authenticated_data=_unhex(aad, "--aad"),
        )  # fmt: skip
        emit({"kid": done.key_id, "result": _b64(done.ciphertext),
              "algorithm": wire(done.algorithm), "iv": _hex(done.iv), "tag": _hex(done.tag),
              "aad": _hex(done.aad)}, output)  # fmt: skip


@app.command()
def decrypt(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    version: str | None = Version,
    algorithm: str = Algorithm,
    value: str = typer.Option(..., "--value", help="The ciphertext, base64 (`key encrypt`)."),
    data_type: DataType = typer.Option(
        DataType.base64, "--data-type", help="base64: print the result as base64; plaintext: as is."
    ),
    iv: str | None = typer.Option(None, "--iv", help="The encryption's IV (hex), AES."),
    aad: str | None = typer.Option(None, "--aad", help="Additional authenticated data (hex)."),
    tag: str | None = typer.Option(None, "--tag", help="Authentication tag (hex), AES-GCM."),
    output: Output = OutputOption,
) -> None:
    from azure.keyvault.keys.crypto import EncryptionAlgorithm

    with connected(vault_name, vault_url) as vault:
        done = _crypto(vault, name, version).decrypt(
            _algorithm(EncryptionAlgorithm, algorithm), _unb64(value, "--value"),
            iv=_unhex(iv, "--iv"),
            authentication_tag=_unhex(tag, "--tag"),
            additional_authenticated_data=_unhex(aad, "--aad"),
        )  # fmt: skip
        plain = done.plaintext
        result = _b64(plain) if data_type is DataType.base64 else plain.decode(errors="replace")
        emit({"kid": done.key_id, "result": result, "algorithm": wire(done.algorithm)}, output)


@app.command()
def sign(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    version: str | None = Version,
    algorithm: str = Algorithm,
    digest: str = typer.Option(..., "--digest", help="The digest to sign, base64."),
    output: Output = OutputOption,
) -> None:
    from azure.keyvault.keys.crypto import SignatureAlgorithm

    with connected(vault_name, vault_url) as vault:
        done = _crypto(vault, name, version).sign(
            _algorithm(SignatureAlgorithm, algorithm), _unb64(digest, "--digest")
        )
        emit({"algorithm": wire(done.algorithm), "keyId": done.key_id,
              "signature": _b64(done.signature)}, output)  # fmt: skip


@app.command()
def verify(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    version: str | None = Version,
    algorithm: str = Algorithm,
    digest: str = typer.Option(..., "--digest", help="The signed digest, base64."),
    signature: str = typer.Option(..., "--signature", help="The signature, base64."),
    output: Output = OutputOption,
) -> None:
    from azure.keyvault.keys.crypto import SignatureAlgorithm

    with connected(vault_name, vault_url) as vault:
        done = _crypto(vault, name, version).verify(
            _algorithm(SignatureAlgorithm, algorithm), _unb64(digest, "--digest"),
            _unb64(signature, "--signature"),
        )  # fmt: skip
        emit({"algorithm": wire(done.algorithm), "isValid": done.is_valid,
              "keyId": done.key_id}, output)  # fmt: skip


@app.command()
def wrap(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    version: str | None = Version,
    algorithm: str = Algorithm,
    value: str = typer.Option(..., "--value", help="The key to wrap, base64."),
    output: Output = OutputOption,
) -> None:
    """Wrap (encrypt) a symmetric key with a key (the REST API's wrapKey)."""
    from azure.keyvault.keys.crypto import KeyWrapAlgorithm

    with connected(vault_name, vault_url) as vault:
        done = _crypto(vault, name, version).wrap_key(
            _algorithm(KeyWrapAlgorithm, algorithm), _unb64(value, "--value")
        )
        emit({"kid": done.key_id, "result": _b64(done.encrypted_key),
              "algorithm": wire(done.algorithm)}, output)  # fmt: skip


@app.command()
def unwrap(
    vault_name: str | None = VaultName,
    vault_url: str | None = VaultUrl,
    name: str = Name,
    version: str | None = Version,
    algorithm: str = Algorithm,
    value: str = typer.Option(..., "--value", help="The wrapped key, base64 (`key wrap`)."),
    output: Output = OutputOption,
) -> None:
    """Unwrap a key that `key wrap` wrapped (the REST API's unwrapKey)."""
    from azure.keyvault.keys.crypto import KeyWrapAlgorithm

    with connected(vault_name, vault_url) as vault:
        done = _crypto(vault, name, version).unwrap_key(
            _algorithm(KeyWrapAlgorithm, algorithm), _unb64(value, "--value")
        )
        emit({"kid": done.key_id, "result": _b64(done.key),
              "algorithm": wire(done.algorithm)}, output)  # fmt: skip
