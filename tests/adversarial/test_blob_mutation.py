"""Mutated backup blobs: none is restored, each is refused with the inner code its mutation
class must get, and a refused restore writes nothing.

Valid blobs of every kind are made in-process (``open_installation``): a secret of three
versions, keys (EC of two versions, oct, one RSA), a self-signed certificate of two versions
and a managed storage account with a SAS definition. The storage account's provider is
``AzuriteProvider`` reading an Azurite accounts file that this module writes; listing an
account's keys only reads that file, so no Azurite process is needed, and the blob comes from
the same ``StorageService.backup_object`` the server runs. Beside them: blobs of a second
installation (a security domain not held here), of a second domain held here, under a retired
backup-key version, and under a version of this installation's domain that only the second
installation holds (it imported the domain, then rotated its backup key).

Which inner code each mutation class gets (``crypto.backup.parse``, then
``services.backup.open_blob``, in this order):

- damage, the digest left as it is: any change of bytes, a cut at 5 bytes or more, bytes
  appended: ``BackupBlobCorrupted``. Nothing but the digest is looked at before it. A cut to
  4 bytes or fewer (``""`` .. ``"SRBK"``) is ``BackupBlobMalformed``: nothing tells it from a
  file that is not a backup. So is damage that reaches the magic *and* other bytes (the magic
  alone damaged is recognised: the digest matches once the magic is put back).
- deliberate edits, the digest recomputed: the readable header routes the refusal. A changed
  magic or framing, or a header that is not a JSON object with the required fields:
  ``BackupBlobMalformed``; a format byte other than 1: ``BackupFormatUnsupported``; a domain
  not held: ``BackupSecurityDomainUnknown``; a key version not held:
  ``BackupKeyVersionRetired`` if it was retired here, else ``BackupKeyVersionUnknown``; a
  domain held but not the vault's: ``BackupSecurityDomainMismatch``; anything else (ciphertext,
  salt, nonce, name, kind, any other header byte): ``BackupBlobTampered``.
- an intact blob through another kind's restore: ``BackupKindMismatch`` (checked after the
  seal, so a header whose kind was rewritten is ``BackupBlobTampered``).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongroom.config import Settings
from strongroom.crypto import backup as blobfmt
from strongroom.errors import BackupRejected
from strongroom.models import Kind
from strongroom.services import backup as backup_service
from strongroom.services.certificate_policy import policy_from_json
from strongroom.services.container import Services
from strongroom.services.domains import DomainService
from strongroom.services.installation import Installation, open_installation
from strongroom.services.objects import AttributeInput
from strongroom.services.vaults import VaultService
from strongroom.store.base import VaultRecord
from tests.adversarial.conftest import scale
from tests.adversarial.report import record
from tests.conftest import Server
from tests.x509util import private_pem, self_signed

pytestmark = pytest.mark.adversarial

MALFORMED = "BackupBlobMalformed"
CORRUPTED = "BackupBlobCorrupted"
TAMPERED = "BackupBlobTampered"
UNSUPPORTED = "BackupFormatUnsupported"
DOMAIN_UNKNOWN = "BackupSecurityDomainUnknown"
DOMAIN_MISMATCH = "BackupSecurityDomainMismatch"
VERSION_UNKNOWN = "BackupKeyVersionUnknown"
VERSION_RETIRED = "BackupKeyVersionRetired"
KIND_MISMATCH = "BackupKindMismatch"

MAGIC = b"SRBK"
PREFIX = 9  # magic, format byte, 4-byte header length
DIGEST = 32
MAX_HEADER = 64 * 1024
REQUIRED = ("format", "kind", "name", "versions", "domain", "keyVersion", "salt", "nonce")
KINDS = (Kind.SECRET, Kind.KEY, Kind.CERTIFICATE, Kind.STORAGE)
COLLECTION = {
    Kind.SECRET: "secrets",
    Kind.KEY: "keys",
    Kind.CERTIFICATE: "certificates",
    Kind.STORAGE: "storage",
}
ACCOUNT = "blobmutacct"
RESOURCE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/dev/providers/"
    f"Microsoft.Storage/storageAccounts/{ACCOUNT}"
)
EC_POLICY = {
    "key_props": {"kty": "EC", "crv": "P-256"},
    "x509_props": {"subject": "CN=blob-mutation"},
    "issuer": {"name": "Self"},
}

EXAMPLES = scale(ci=200, soak=5000)
FULL_CHECK_EVERY = 64
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# What the module tried, for the report (``record("blobs", ...)`` at module teardown).
TRIED: Counter[str] = Counter()  # mutation class -> mutated blobs tried
CODES: Counter[str] = Counter()  # inner code -> refusals of mutated blobs
API_CODES: Counter[str] = Counter()  # the same, over TLS
ACCEPTED: list[str] = []  # mutated blobs restored (must stay empty)
FORGED_CODES: Counter[str] = Counter()  # forged authenticated payloads: inner code -> count


# -- the blob's layout ---------------------------------------------------------------------


def header_length(blob: bytes) -> int:
    return int.from_bytes(blob[5:PREFIX], "big")


def regions(blob: bytes) -> dict[str, range]:
    """Where each part of an intact blob lies."""
    end = PREFIX + header_length(blob)
    return {
        "magic": range(0, 4),
        "format": range(4, 5),
        "length": range(5, PREFIX),
        "header": range(PREFIX, end),
        "ciphertext": range(end, len(blob) - DIGEST),
        "digest": range(len(blob) - DIGEST, len(blob)),
    }


def prefix_of(blob: bytes) -> bytes:
    return blob[: PREFIX + header_length(blob)]


def ciphertext_of(blob: bytes) -> bytes:
    return blob[PREFIX + header_length(blob) : -DIGEST]


def redigest(body: bytes) -> bytes:
    """``body`` with its integrity digest recomputed, as a deliberate tamperer would."""
    return body + hashlib.sha256(body).digest()


def with_header(blob: bytes, header: bytes) -> bytes:
    """``blob`` with its header bytes replaced (the length field follows), digest recomputed."""
    return redigest(blob[:5] + len(header).to_bytes(4, "big") + header + ciphertext_of(blob))


def canonical(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def header_of(blob: bytes) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(blob[PREFIX : PREFIX + header_length(blob)])
    return parsed


def b64url(blob: bytes) -> str:
    return base64.urlsafe_b64encode(blob).decode().rstrip("=")


# -- the world: installations, vaults, blobs ------------------------------------------------


@dataclass(frozen=True)
class Blob:
    label: str
    kind: Kind
    data: bytes


@dataclass
class World:
    runner: asyncio.Runner
    home: Installation
    services: Services
    dst: VaultRecord  # the restore target: default domain, holds objects (some deleted)
    elsewhere: VaultRecord  # a vault of a second domain of this installation
    control: VaultRecord  # where intact blobs are restored, to show they are restorable
    probe: VaultRecord  # where blobs with forged (authenticated) payloads are restored
    valid: list[Blob]  # this installation's, current key version, default domain
    foreign: list[Blob]  # another installation's own domain
    other_domain: list[Blob]  # this installation's second domain
    retired: list[Blob]  # the default domain's retired key version
    unheld: list[Blob]  # the default domain, a key version only the other installation holds
    shared: Blob  # made on the other installation under a version held here: restorable
    held: dict[str, set[str]]  # domain -> backup-key versions this installation holds
    retired_versions: set[tuple[str, str]]
    db: sqlite3.Connection
    baseline: Any = None
    baseline_commits: int = 0
    baseline_rows: Any = None
    checked: int = 0
    restorers: dict[Kind, Callable[[VaultRecord, bytes], Coroutine[Any, Any, Any]]] = field(
        default_factory=dict
    )

    @property
    def every(self) -> list[Blob]:
        return [*self.valid, *self.foreign, *self.other_domain, *self.retired, *self.unheld]

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.runner.run(coro)

    def listing(self, vault: VaultRecord) -> Any:
        """Every object of every kind in ``vault``, deleted or not, with all its versions and
        its policy, and the vault's object count (which also counts an object whose latest
        version is missing: a partial object)."""
        reads = self.home.store.reads
        listing: list[Any] = [reads.count_objects(vault.id)]
        for kind in Kind:
            for deleted in (False, True):
                rows = reads.list_objects(
                    vault.id, kind.value, deleted=deleted, after=None, limit=100_000
                )
                for obj, _ in rows:
                    versions = reads.all_versions(vault.id, kind.value, obj.lname)
                    policy = reads.get_policy(vault.id, kind.value, obj.lname)
                    listing.append((obj, tuple(versions), policy))
        return listing

    def commits(self) -> int:
        """Changes whenever any connection to the database commits (SQLite's data_version,
        seen from a connection of this module's own that never writes)."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def rows(self) -> dict[str, list[str]]:
        """Every row of every table a restore could write, of every vault (an orphan version
        shows here where the listing would not show it)."""
        return {
            table: sorted(map(repr, self.db.execute(f"SELECT * FROM {table}").fetchall()))
            for table in ("objects", "versions", "policies", "meta", "domain_keys", "vaults")
        }

    def settle(self) -> None:
        """Takes the state every refused restore must leave as it is."""
        self.baseline = {v.id: self.listing(v) for v in (self.dst, self.elsewhere, self.probe)}
        self.baseline_commits = self.commits()
        self.baseline_rows = self.rows()

    def unchanged(self, vault: VaultRecord, what: str) -> None:
        """Nothing was written: no commit at all, and the target's listing is as it was;
        every row of the database compared too, every ``FULL_CHECK_EVERY`` attempts."""
        assert self.commits() == self.baseline_commits, f"{what}: a refused restore committed"
        assert self.listing(vault) == self.baseline[vault.id], f"{what}: the vault changed"
        self.checked += 1
        if self.checked % FULL_CHECK_EVERY == 0:
            assert self.rows() == self.baseline_rows, f"{what}: a row changed"


def _accounts_file(path: Path) -> Path:
    def key() -> str:
        return base64.b64encode(os.urandom(64)).decode()

    path.write_text(f"{ACCOUNT}:{key()}:{key()}")
    return path


def _vault(inst: Installation, name: str, domain_id: str | None = None) -> VaultRecord:
    VaultService(inst).create(name, open_access=True, domain_id=domain_id)
    record = inst.store.reads.get_vault(name)
    assert record is not None
    return record


async def _fill(services: Services, vault: VaultRecord, suffix: str = "") -> None:
    """One object of every kind, most with several versions."""
    for i in range(3):
        await services.secrets.set_secret(vault, f"sec{suffix}", f"value {i}", content_type="t")
    await services.keys.create_key(vault, f"kec{suffix}", "EC", crv="P-256")
    await services.keys.rotate_key(vault, f"kec{suffix}")
    await services.keys.create_key(vault, f"koct{suffix}", "oct", key_size=256)
    for _ in range(2):
        policy = policy_from_json(EC_POLICY)
        await services.issuance.create_certificate(vault, f"cert{suffix}", policy)
    await services.storage.set_account(
        vault, f"acct{suffix}", resource_id=RESOURCE_ID, active_key_name="key1",
        auto_regenerate_key=False, regeneration_period=None, attributes=None, tags={"t": "1"},
    )  # fmt: skip
    template = generate_account_sas(
        "ignored",
        base64.b64encode(b"templates are signed with any key").decode(),
        ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, list=True),
        dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
    )
    await services.storage.sas.set_sas(
        vault, f"acct{suffix}", "reader", template_uri=template, sas_type="account",
        validity_period="PT2H", attributes=AttributeInput(), tags=None,
    )  # fmt: skip


def _backups(services: Services, vault: VaultRecord, origin: str, suffix: str = "") -> list[Blob]:
    made = {
        "secret": (Kind.SECRET, services.secrets.backup_object, "sec"),
        "key EC": (Kind.KEY, services.keys.backup_object, "kec"),
        "key oct": (Kind.KEY, services.keys.backup_object, "koct"),
        "certificate": (Kind.CERTIFICATE, services.certificates.backup_object, "cert"),
        "storage": (Kind.STORAGE, services.storage.backup_object, "acct"),
    }
    return [
        Blob(f"{origin} {label}", kind, backup(vault, name + suffix))
        for label, (kind, backup, name) in made.items()
    ]


def _custodians() -> tuple[list[bytes], list[bytes]]:
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]
    certificates = [
        self_signed(k, f"custodian {i}").public_bytes(Encoding.PEM) for i, k in enumerate(keys)
    ]
    return certificates, [private_pem(k) for k in keys]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("blobs")
    accounts = _accounts_file(root / "azurite-accounts")
    runner = asyncio.Runner()
    # The accounts file makes ``Services`` give its StorageService an AzuriteProvider.
    home = open_installation(Settings(data_dir=root / "home", azurite_accounts_file=accounts))
    away = open_installation(Settings(data_dir=root / "away", azurite_accounts_file=accounts))
    here, there = Services(home), Services(away)
    db = sqlite3.connect(f"file:{home.settings.database}?mode=ro", uri=True)
    try:
        domains = DomainService(home)
        default = home.default_domain_id
        src = _vault(home, "src")
        # Blobs sealed under the first backup-key version, which is then retired.
        runner.run(here.secrets.set_secret(src, "old-secret", "sealed under version 1"))
        runner.run(here.keys.create_key(src, "old-key", "oct", key_size=256))
        retired = [
            Blob("retired secret", Kind.SECRET, here.secrets.backup_object(src, "old-secret")),
            Blob("retired key", Kind.KEY, here.keys.backup_object(src, "old-key")),
        ]
        first = domains.resolve(default).key_versions[0]
        domains.rotate_backup_key(default)
        domains.retire_backup_key(default, first)

        # Every kind under the current version; one RSA key as well.
        runner.run(_fill(here, src))
        runner.run(here.keys.create_key(src, "krsa", "RSA", key_size=2048))
        valid = [
            *_backups(here, src, "home"),
            Blob("home key RSA", Kind.KEY, here.keys.backup_object(src, "krsa")),
        ]

        # A second domain held here, and a vault of it.
        second = domains.create_domain("second")
        elsewhere = _vault(home, "elsewhere", second.id)
        runner.run(_fill(here, elsewhere, "2"))
        other_domain = _backups(here, elsewhere, "second-domain", "2")

        # The other installation: blobs of its own domain; then the default domain of this
        # one, imported, under the version held here (restorable) and under a new version
        # that only it holds.
        away_vault = _vault(away, "away")
        runner.run(_fill(there, away_vault))
        foreign = _backups(there, away_vault, "foreign")
        certificates, private_keys = _custodians()
        exported = domains.export_domain(default, certificates, 2)
        theirs = DomainService(away)
        theirs.import_domain(exported, private_keys)
        shared_vault = _vault(away, "shared", default)
        runner.run(there.secrets.set_secret(shared_vault, "shared", "made elsewhere"))
        runner.run(there.keys.create_key(shared_vault, "shared-key", "oct", key_size=256))
        shared = Blob(
            "shared secret", Kind.SECRET, there.secrets.backup_object(shared_vault, "shared")
        )
        theirs.rotate_backup_key(default)
        unheld = [
            Blob("unheld secret", Kind.SECRET, there.secrets.backup_object(shared_vault, "shared")),
            Blob("unheld key", Kind.KEY, there.keys.backup_object(shared_vault, "shared-key")),
        ]

        # The target: objects of every kind, one of each deleted, so that "nothing written"
        # compares something.
        dst = _vault(home, "dst")
        runner.run(_fill(here, dst, "keep"))
        runner.run(here.secrets.set_secret(dst, "gone", "deleted"))
        runner.run(here.secrets.delete(dst, "gone"))
        runner.run(here.keys.create_key(dst, "gone-key", "oct", key_size=256))
        runner.run(here.keys.delete_key(dst, "gone-key"))
        control, probe = _vault(home, "control"), _vault(home, "probe")

        held = {d.id: set(d.key_versions) for d in domains.list_domains()}
        world = World(
            runner=runner, home=home, services=here, dst=dst, elsewhere=elsewhere,
            control=control, probe=probe, valid=valid, foreign=foreign, other_domain=other_domain,
            retired=retired, unheld=unheld, shared=shared, held=held,
            retired_versions={(default, first)}, db=db,
        )  # fmt: skip
        world.restorers = {
            Kind.SECRET: here.secrets.restore_object,
            Kind.KEY: here.keys.restore_object,
            Kind.CERTIFICATE: here.certificates.restore_object,
            Kind.STORAGE: here.storage.restore_object,
        }
        world.settle()
        yield world
        assert world.rows() == world.baseline_rows, "a refused restore wrote"
    finally:
        db.close()
        for services in (here, there):
            services.cpu.close()
        home.close()
        away.close()
        runner.close()
        _record()


def _record() -> None:
    if not TRIED:
        return
    record(
        "blobs",
        {
            "mutated blobs tried": sum(TRIED.values()),
            "accepted": len(ACCEPTED),
            "Hypothesis examples per property (profile)": EXAMPLES,
            "tried by mutation class": dict(sorted(TRIED.items())),
            "refusals by inner code": dict(sorted(CODES.items())),
            "refusals over TLS by inner code": dict(sorted(API_CODES.items())),
            "forged authenticated payloads refused, by inner code": dict(FORGED_CODES),
            "kinds": [k.value for k in KINDS],
        },
    )


# -- what a refused restore must be ---------------------------------------------------------


def restore_refused(
    world: World, route: Kind, blob: bytes, vault: VaultRecord, what: str, *, forged: bool = False
) -> str:
    """Restores ``blob`` through ``route``'s restore into ``vault``: it must be refused with
    ``BackupRejected`` (nothing else: no KeyError, no bare BadParameter) and leave the store
    exactly as it was. Returns the inner code. ``forged``: an authenticated payload, counted
    apart from the mutations."""
    if not forged:
        TRIED[what] += 1
    try:
        world.run(world.restorers[route](vault, blob))
    except BackupRejected as exc:
        code = str(exc.inner)
    except Exception as exc:  # the finding, named: a refusal must be a BackupRejected
        pytest.fail(f"{what}: restore raised {type(exc).__name__}: {exc}")
    else:
        if not forged:
            ACCEPTED.append(what)
        pytest.fail(f"{what}: restored")
    world.unchanged(vault, f"{what} ({code})")
    (FORGED_CODES if forged else CODES)[code] += 1
    return code


def routed(world: World, blob: bytes, vault: VaultRecord) -> str:
    """The refusal a blob whose digest checks out, but which is not an intact blob, must get:
    framing, format, then the readable header's domain and key version; else the seal."""
    body = blob[:-DIGEST]
    if len(blob) < PREFIX + DIGEST or blob[:4] != MAGIC:
        return MALFORMED
    if blob[4] != 1:
        return UNSUPPORTED
    length = header_length(blob)
    if length > MAX_HEADER or PREFIX + length > len(body):
        return MALFORMED
    try:
        header = json.loads(body[PREFIX : PREFIX + length])
    except (ValueError, RecursionError):
        return MALFORMED
    if not isinstance(header, dict) or any(k not in header for k in REQUIRED):
        return MALFORMED
    domain, version = str(header["domain"]), str(header["keyVersion"])
    if domain not in world.held:
        return DOMAIN_UNKNOWN
    if version not in world.held[domain]:
        return VERSION_RETIRED if (domain, version) in world.retired_versions else VERSION_UNKNOWN
    if domain != vault.domain_id:
        return DOMAIN_MISMATCH
    return TAMPERED


def damaged(blob: bytes, mutated: bytes) -> str:
    """The refusal damage must get (the digest not recomputed)."""
    if mutated[:4] == MAGIC:
        return CORRUPTED if len(mutated) > len(MAGIC) else MALFORMED
    # The magic was hit: recognised only when nothing else was.
    return CORRUPTED if MAGIC + mutated[4:] == blob else MALFORMED


# -- the intact blobs, and the setup, are what the test thinks ------------------------------


def test_intact_blobs_restore(world: World) -> None:
    """Every blob the refusals below mutate is restorable as made, so a refusal is the
    mutation's doing; and the blob of the other installation under a key version held here
    restores too (foreign origin alone is no reason to refuse)."""
    assert {b.kind for b in world.valid} == set(KINDS)
    for blob in [*world.valid, world.shared]:
        world.run(world.restorers[blob.kind](world.control, blob.data))
    reads = world.home.store.reads
    secret = reads.get_object(world.control.id, Kind.SECRET.value, "sec")
    assert secret is not None
    assert len(reads.all_versions(world.control.id, Kind.SECRET.value, "sec")) == 3
    assert len(reads.all_versions(world.control.id, Kind.CERTIFICATE.value, "cert")) == 2
    assert reads.get_object(world.control.id, Kind.SAS.value, "acct/reader") is not None
    assert reads.get_object(world.control.id, Kind.SECRET.value, "shared") is not None
    assert world.commits() != world.baseline_commits  # the write detector sees writes
    world.settle()  # the control vault now holds them


# -- damage ----------------------------------------------------------------------------------

DAMAGE_REGIONS = ("magic", "format", "length", "header", "ciphertext", "digest")


@PROPERTY
@given(data=st.data())
def test_damaged_bytes_are_refused_as_corrupted(world: World, data: st.DataObject) -> None:
    """Bytes changed anywhere (header, ciphertext, digest, magic), digest left as it was."""
    blob = data.draw(st.sampled_from(world.every), label="blob")
    spans = regions(blob.data)
    changed = bytearray(blob.data)
    for _ in range(data.draw(st.integers(1, 6), label="bytes changed")):
        where = data.draw(st.sampled_from(DAMAGE_REGIONS), label="region")
        position = data.draw(st.sampled_from(spans[where]), label="position")
        changed[position] ^= data.draw(st.integers(1, 255), label="mask")
    mutated = bytes(changed)
    if mutated == blob.data:  # two masks cancelled out
        return
    route = data.draw(st.sampled_from(KINDS), label="route")
    code = restore_refused(world, route, mutated, world.dst, "bytes changed")
    assert code == damaged(blob.data, mutated), blob.label


LENGTH_CLASSES = ("empty", "1..4", "prefix", "header", "ciphertext", "digest", "last byte")


@PROPERTY
@given(data=st.data())
def test_truncated_or_extended_blobs_are_refused(world: World, data: st.DataObject) -> None:
    """A cut at every length class, and bytes appended or a tail zeroed."""
    blob = data.draw(st.sampled_from(world.every), label="blob")
    size, end = len(blob.data), PREFIX + header_length(blob.data)
    lengths = {
        "empty": range(0, 1),
        "1..4": range(1, 5),
        "prefix": range(5, PREFIX),
        "header": range(PREFIX, end),
        "ciphertext": range(end, size - DIGEST),
        "digest": range(size - DIGEST, size - 1),
        "last byte": range(size - 1, size),
    }
    how = data.draw(st.sampled_from((*LENGTH_CLASSES, "appended", "tail zeroed")), label="how")
    if how == "appended":
        mutated = blob.data + data.draw(st.binary(min_size=1, max_size=64), label="tail")
    elif how == "tail zeroed":
        keep = data.draw(st.integers(0, size - 1), label="kept")
        mutated = blob.data[:keep] + bytes(size - keep)
        if mutated == blob.data:
            return
    else:
        mutated = blob.data[: data.draw(st.sampled_from(lengths[how]), label="length")]
    route = data.draw(st.sampled_from(KINDS), label="route")
    code = restore_refused(world, route, mutated, world.dst, f"cut: {how}")
    # A cut to the magic or less, or a tail zeroed from inside the magic, is not recognisable.
    assert code == damaged(blob.data, mutated), (blob.label, how, len(mutated))


def test_every_cut_of_one_blob_is_refused(world: World) -> None:
    """Exhaustively, for the secret: every length from 0 to one byte short."""
    blob = world.valid[0]
    assert blob.kind is Kind.SECRET
    for length in range(len(blob.data)):
        code = restore_refused(world, blob.kind, blob.data[:length], world.dst, "cut: every")
        assert code == (MALFORMED if length <= len(MAGIC) else CORRUPTED), length


# -- deliberate edits: the digest recomputed -------------------------------------------------


def _edit(world: World, blob: bytes, data: st.DataObject) -> tuple[str, bytes]:
    """One deliberate edit of ``blob``, its digest recomputed: which, and the result."""
    spans = regions(blob)
    body = bytearray(blob[:-DIGEST])
    how = data.draw(
        st.sampled_from(
            ("magic", "format", "length", "header bytes", "header field", "ciphertext bytes",
             "ciphertext cut", "ciphertext grown", "deep header")
        ),
        label="edit",
    )  # fmt: skip
    if how in ("magic", "header bytes", "ciphertext bytes"):
        span = spans[{"magic": "magic", "header bytes": "header"}.get(how, "ciphertext")]
        for _ in range(data.draw(st.integers(1, 3), label="bytes changed")):
            body[data.draw(st.sampled_from(span), label="position")] ^= data.draw(
                st.integers(1, 255), label="mask"
            )
    elif how == "format":
        body[4] = data.draw(st.integers(0, 255).filter(lambda b: b != 1), label="format")
    elif how == "length":
        length = header_length(blob)
        new = data.draw(
            st.sampled_from((0, 1, length - 1, length + 1, length + 16, len(body) - PREFIX,
                             len(body) - PREFIX + 1, MAX_HEADER, MAX_HEADER + 1, 2**32 - 1))
            | st.integers(0, 2**32 - 1),
            label="header length",
        )  # fmt: skip
        body[5:PREFIX] = new.to_bytes(4, "big")
    elif how == "header field":
        header = header_of(blob)
        key = data.draw(st.sampled_from(sorted(header)), label="field")
        domains = sorted(world.held)
        versions = sorted(v for vs in world.held.values() for v in vs)
        retired = sorted(v for _, v in world.retired_versions)
        value = data.draw(
            st.sampled_from(
                ("removed", None, 0, 2, -1, "", "x", [], {}, True, "00" * 12, "00" * 16,
                 "secret", "key", "certificate", "storage", "sas", "0" * 32,
                 *domains, *versions, *retired)
            ),
            label="value",
        )  # fmt: skip
        if value == "removed":
            del header[key]
        else:
            header[key] = value
        return "header field", with_header(blob, canonical(header))
    elif how == "ciphertext cut":
        ciphertext = ciphertext_of(blob)
        keep = data.draw(st.integers(0, len(ciphertext) - 1), label="kept")
        return how, redigest(prefix_of(blob) + ciphertext[:keep])
    elif how == "ciphertext grown":
        grown = data.draw(st.binary(min_size=1, max_size=32), label="grown")
        return how, redigest(prefix_of(blob) + ciphertext_of(blob) + grown)
    else:  # JSON nested deeper than the parser recurses, within the header limit
        depth = data.draw(st.integers(2_000, MAX_HEADER // 2), label="depth")
        return how, with_header(blob, b"[" * depth + b"]" * depth)
    return how, redigest(bytes(body))


@PROPERTY
@given(data=st.data())
def test_deliberate_edits_are_refused_by_what_the_header_says(
    world: World, data: st.DataObject
) -> None:
    """Edits with the digest recomputed: the framing and the readable header route the refusal;
    anything they do not catch fails the seal (``BackupBlobTampered``)."""
    blob = data.draw(st.sampled_from(world.every), label="blob")
    how, mutated = _edit(world, blob.data, data)
    if mutated == blob.data:
        return
    vault = data.draw(st.sampled_from((world.dst, world.elsewhere)), label="vault")
    route = data.draw(st.sampled_from(KINDS), label="route")
    code = restore_refused(world, route, mutated, vault, f"edited: {how}")
    assert code == routed(world, mutated, vault), (blob.label, how)


def test_the_header_routes_each_code(world: World) -> None:
    """Each code the header can route to, reached by a deliberate edit (so the property above
    does not pass by only ever reaching a few of them)."""
    blob = world.valid[0]
    header = header_of(blob.data)
    second = next(d for d in world.held if d != world.dst.domain_id)
    ((retired_domain, retired_version),) = world.retired_versions
    cases = {
        UNSUPPORTED: redigest(blob.data[:4] + b"\x02" + blob.data[5:-DIGEST]),
        MALFORMED: with_header(blob.data, b"[" * 30_000 + b"]" * 30_000),
        DOMAIN_UNKNOWN: with_header(blob.data, canonical({**header, "domain": "not-held"})),
        VERSION_UNKNOWN: with_header(blob.data, canonical({**header, "keyVersion": "0" * 32})),
        VERSION_RETIRED: with_header(
            blob.data, canonical({**header, "keyVersion": retired_version})
        ),
        DOMAIN_MISMATCH: with_header(
            blob.data,
            canonical({**header, "domain": second, "keyVersion": sorted(world.held[second])[0]}),
        ),
        TAMPERED: with_header(blob.data, canonical({**header, "name": "someone-else"})),
    }  # fmt: skip
    assert retired_domain == world.dst.domain_id
    for expected, mutated in cases.items():
        assert routed(world, mutated, world.dst) == expected
        assert (
            restore_refused(world, blob.kind, mutated, world.dst, "edited: header field")
            == expected
        )


# -- splicing ------------------------------------------------------------------------------


@PROPERTY
@given(data=st.data())
def test_spliced_blobs_are_refused(world: World, data: st.DataObject) -> None:
    """The header of one blob on the body of another (kinds, domains and key versions mixed),
    restored through any kind's route: with either original digest it is damage; with the
    digest recomputed the header routes it, and the seal refuses the rest."""
    head = data.draw(st.sampled_from(world.every), label="header of")
    tail = data.draw(st.sampled_from([b for b in world.every if b != head]), label="body of")
    body = prefix_of(head.data) + ciphertext_of(tail.data)
    digest = data.draw(st.sampled_from(("header's", "body's", "recomputed")), label="digest")
    if digest == "recomputed":
        mutated, expected = redigest(body), None
    else:
        mutated = body + (head if digest == "header's" else tail).data[-DIGEST:]
        expected = CORRUPTED
    vault = data.draw(st.sampled_from((world.dst, world.elsewhere)), label="vault")
    route = data.draw(st.sampled_from(KINDS), label="route")
    code = restore_refused(world, route, mutated, vault, f"spliced, {digest} digest")
    assert code == (expected or routed(world, mutated, vault)), (head.label, tail.label)


# -- kinds, domains and key versions: intact blobs in the wrong place ------------------------


@pytest.mark.parametrize("route", KINDS, ids=[k.value for k in KINDS])
def test_a_blob_of_another_kind_is_refused(world: World, route: Kind) -> None:
    """An intact blob through another kind's restore; and with its header's kind rewritten to
    the route's (digest recomputed), which the seal catches."""
    for blob in world.valid:
        if blob.kind is route:
            continue
        code = restore_refused(world, route, blob.data, world.dst, "another kind")
        assert code == KIND_MISMATCH, blob.label
        forged = with_header(blob.data, canonical({**header_of(blob.data), "kind": route.value}))
        code = restore_refused(world, route, forged, world.dst, "another kind, header rewritten")
        assert code == TAMPERED, blob.label


def test_a_blob_of_another_installation_is_refused(world: World) -> None:
    """Replayed from an installation whose domain is not held here, through every route and
    into a vault of each domain held here."""
    for blob in world.foreign:
        for route in KINDS:
            for vault in (world.dst, world.elsewhere):
                code = restore_refused(world, route, blob.data, vault, "another installation")
                assert code == DOMAIN_UNKNOWN, (blob.label, route)


def test_a_blob_of_another_domain_held_here_is_refused(world: World) -> None:
    """A domain this installation holds, but not the target vault's: both ways round."""
    for blob in world.other_domain:
        code = restore_refused(world, blob.kind, blob.data, world.dst, "another domain held here")
        assert code == DOMAIN_MISMATCH, blob.label
    for blob in world.valid:
        code = restore_refused(
            world, blob.kind, blob.data, world.elsewhere, "another domain held here"
        )
        assert code == DOMAIN_MISMATCH, blob.label


def test_a_blob_under_a_retired_key_version_is_refused(world: World) -> None:
    """Sealed under the first backup-key version, which was rotated away and retired
    (``DomainService.retire_backup_key``, the CLI's ``domain retire-backup-key``)."""
    assert world.retired_versions & {
        (header_of(b.data)["domain"], header_of(b.data)["keyVersion"]) for b in world.retired
    }
    for blob in world.retired:
        for vault in (world.dst, world.elsewhere):
            code = restore_refused(world, blob.kind, blob.data, vault, "retired key version")
            assert code == VERSION_RETIRED, blob.label
    assert "retired" in DomainService(world.home).inspect(world.retired[0].data)["openable"]


def test_a_blob_under_a_key_version_not_held_is_refused(world: World) -> None:
    """Sealed, honestly, by the other installation under a backup-key version of this
    installation's domain that it made after importing the domain."""
    for blob in world.unheld:
        header = header_of(blob.data)
        assert header["domain"] == world.dst.domain_id
        assert header["keyVersion"] not in world.held[world.dst.domain_id]
        for vault in (world.dst, world.elsewhere):
            code = restore_refused(world, blob.kind, blob.data, vault, "key version not held")
            assert code == VERSION_UNKNOWN, blob.label


# -- authenticated payloads a broken producer could seal --------------------------------------
# Not mutations: only a holder of the domain's backup key can seal these. A restore must still
# refuse them as BackupBlobMalformed, never with a 500 or a bare BadParameter, and write
# nothing.


def payload_of(world: World, blob: bytes) -> dict[str, Any]:
    envelope = blobfmt.parse(blob)
    held = world.home.store.reads.get_domain_key(
        envelope.header["domain"], envelope.header["keyVersion"]
    )
    assert held is not None
    opened: dict[str, Any] = json.loads(
        blobfmt.open_sealed(envelope, world.home.keyring.domain_key(held))
    )
    return opened


def sealed_payload(world: World, kind: Kind, payload: dict[str, Any]) -> bytes:
    """``payload`` sealed as ``make_blob`` seals one, under the current key of the domain."""
    versions, extras = (
        payload["versions"],
        {k: v for k, v in payload.items() if k not in ("name", "versions")},
    )
    name = str(payload["name"])
    return backup_service.make_blob(world.home, world.probe, kind, name, versions, extras)


def _first(payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``payload`` with its first version entry changed."""
    return {
        **payload,
        "versions": [{**payload["versions"][0], **changes}, *payload["versions"][1:]],
    }


def _deep_payload(world: World) -> bytes:
    """A payload nested deeper than the JSON parser recurses, sealed with a matching header."""
    key = world.home.store.reads.current_domain_key(world.probe.domain_id)
    assert key is not None
    header = {
        "kind": "secret", "name": "deep", "versions": 1, "domain": world.probe.domain_id,
        "keyVersion": key.version, "instance": world.home.instance_id, "vault": "probe",
        "created": 0,
    }  # fmt: skip
    payload = b'{"name":"deep","versions":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    return blobfmt.seal(header, payload, world.home.keyring.domain_key(key))


def _without(payload: dict[str, Any], field: str) -> dict[str, Any]:
    """``payload`` with one field missing from its first version entry."""
    entry = {k: v for k, v in payload["versions"][0].items() if k != field}
    return {**payload, "versions": [entry, *payload["versions"][1:]]}


def _twice(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "versions": [*payload["versions"], payload["versions"][0]]}


FORGED: dict[str, tuple[Kind, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "name not an object name": (Kind.SECRET, lambda p: {**p, "name": "not a name!"}),
    "no versions": (Kind.SECRET, lambda p: {**p, "versions": []}),
    "a version twice": (Kind.SECRET, _twice),
    "version id a list": (Kind.SECRET, lambda p: _first(p, version=["x"])),
    "version entry not an object": (Kind.SECRET, lambda p: {**p, "versions": [1, 2, 3]}),
    "tags an object, not JSON text": (Kind.SECRET, lambda p: _first(p, tags={"a": "b"})),
    "tags not JSON": (Kind.SECRET, lambda p: _first(p, tags="{not json")),
    "contentType a number": (Kind.SECRET, lambda p: _first(p, contentType=5)),
    "created a string": (Kind.SECRET, lambda p: _first(p, created="yesterday")),
    "nbf true": (Kind.SECRET, lambda p: _first(p, nbf=True)),
    "enabled missing": (Kind.KEY, lambda p: _without(p, "enabled")),
    "key extra not JSON": (Kind.KEY, lambda p: _first(p, extra="{")),
    "certificate key entries not a list": (Kind.CERTIFICATE, lambda p: {**p, "keys": {"a": 1}}),
    "certificate secret entry lacks fields": (
        Kind.CERTIFICATE, lambda p: {**p, "secrets": [{"version": "x"}]}),
    "SAS definition entry lacks fields": (
        Kind.STORAGE, lambda p: {**p, "sasDefinitions": [{"name": "x"}]}),
    "secret value not text": (Kind.SECRET, lambda p: _first(p, value={"not": "text"})),
    "key material not a key": (Kind.KEY, lambda p: _first(p, material={"der": "AAAA"})),
    "certificate material not base64": (Kind.CERTIFICATE, lambda p: _first(p, material="!!")),
    "storage version extra missing": (Kind.STORAGE, lambda p: _first(p, extra=None)),
    "SAS definition name invalid": (
        Kind.STORAGE,
        lambda p: {**p, "sasDefinitions": [{**p["sasDefinitions"][0], "name": "not a name!"}]}),
}  # fmt: skip


def _valid_of(world: World, kind: Kind) -> Blob:
    return next(b for b in world.valid if b.kind is kind)


@pytest.mark.parametrize("what", list(FORGED))
def test_a_forged_payload_that_authenticates_is_refused_as_malformed(
    world: World, what: str
) -> None:
    kind, change = FORGED[what]
    forged = sealed_payload(world, kind, change(payload_of(world, _valid_of(world, kind).data)))
    code = restore_refused(world, kind, forged, world.probe, what, forged=True)
    assert code == MALFORMED


def test_a_payload_nested_too_deep_is_refused_as_malformed(world: World) -> None:
    deep = _deep_payload(world)
    code = restore_refused(world, Kind.SECRET, deep, world.probe, "nested too deep", forged=True)
    assert code == MALFORMED


# -- over TLS, through the real server -------------------------------------------------------


@dataclass
class Api:
    server: Server
    side: Installation  # the server's installation, opened beside it
    target: VaultRecord
    blobs: dict[Kind, bytes]
    foreign: dict[Kind, bytes]


@pytest.fixture(scope="module")
def api(server: Server, world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """Blobs of every kind from the running server: secret, key and certificate made and
    backed up over TLS; the storage account made through the server's installation opened
    beside it (the server has no storage provider configured), backed up over TLS."""
    accounts = _accounts_file(tmp_path_factory.mktemp("api-azurite") / "accounts")
    side = open_installation(
        Settings(
            data_dir=server.data_dir, port=server.port, database_url=server.database_url,
            azurite_accounts_file=accounts,
        )
    )  # fmt: skip
    services = Services(side)
    try:
        tag = os.urandom(3).hex()
        source, target = _vault(side, f"bm-src-{tag}"), _vault(side, f"bm-dst-{tag}")
        asyncio.run(
            services.storage.set_account(
                source, "acct", resource_id=RESOURCE_ID, active_key_name="key1",
                auto_regenerate_key=False, regeneration_period=None, attributes=None, tags=None,
            )
        )  # fmt: skip
        with server.http(source.name) as http:
            for i in range(2):
                assert http.put("/secrets/sec", json={"value": f"v{i}"}).status_code == 200
                assert http.post("/keys/kec/create", json={"kty": "EC"}).status_code == 200
            created = http.post("/certificates/cert/create", json={"policy": EC_POLICY})
            assert created.status_code == 202, created.text
            names = {Kind.SECRET: "sec", Kind.KEY: "kec", Kind.CERTIFICATE: "cert"}
            names[Kind.STORAGE] = "acct"
            blobs = {}
            for kind, name in names.items():
                response = http.post(f"/{COLLECTION[kind]}/{name}/backup")
                assert response.status_code == 200, response.text
                value = response.json()["value"]
                blobs[kind] = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        foreign = {b.kind: b.data for b in world.valid}
        yield Api(server, side, target, blobs, foreign)
    finally:
        services.cpu.close()
        side.close()


def _api_listing(http: httpx.Client) -> dict[str, Any]:
    """Every object the target vault shows, deleted ones and versions included."""
    seen: dict[str, Any] = {}
    for collection in ("secrets", "keys", "certificates", "storage"):
        for listing in (collection, f"deleted{collection}"):
            response = http.get(f"/{listing}")
            assert response.status_code == 200, response.text
            seen[listing] = response.json()["value"]
        if collection == "storage":
            continue
        for item in seen[collection]:
            name = item.get("id", item.get("kid", "")).rstrip("/").split("/")[4]
            versions = http.get(f"/{collection}/{name}/versions")
            assert versions.status_code == 200, versions.text
            seen[f"{collection}/{name}/versions"] = versions.json()["value"]
    return seen


def _api_mutations(api: Api, kind: Kind) -> list[tuple[str, bytes, Kind, str]]:
    """(what, blob, route, expected inner code): a few of each class."""
    blob = api.blobs[kind]
    spans = regions(blob)
    other = next(k for k in KINDS if k is not kind)
    flipped = bytearray(blob)
    flipped[spans["ciphertext"][len(spans["ciphertext"]) // 2]] ^= 0x10
    magic = bytearray(blob)
    magic[1] ^= 0x01
    digest = bytearray(blob)
    digest[-1] ^= 0x80
    header = header_of(blob)
    return [
        ("cut to 3 bytes", blob[:3], kind, MALFORMED),
        ("cut inside the prefix", blob[:7], kind, CORRUPTED),
        ("cut inside the header", blob[: PREFIX + 20], kind, CORRUPTED),
        ("cut inside the ciphertext", blob[: spans["ciphertext"][5]], kind, CORRUPTED),
        ("last byte cut", blob[:-1], kind, CORRUPTED),
        ("ciphertext bit flipped", bytes(flipped), kind, CORRUPTED),
        ("digest bit flipped", bytes(digest), kind, CORRUPTED),
        ("magic bit flipped", bytes(magic), kind, CORRUPTED),
        ("ciphertext edited, digest redone", redigest(bytes(flipped[:-DIGEST])), kind, TAMPERED),
        ("format 2, digest redone", redigest(blob[:4] + b"\x02" + blob[5:-DIGEST]), kind,
         UNSUPPORTED),
        ("header nested too deep", with_header(blob, b"[" * 30_000 + b"]" * 30_000), kind,
         MALFORMED),
        ("key version forged", with_header(blob, canonical({**header, "keyVersion": "0" * 32})),
         kind, VERSION_UNKNOWN),
        ("kind forged", with_header(blob, canonical({**header, "kind": other.value})), other,
         TAMPERED),
        ("spliced onto another kind's body",
         redigest(prefix_of(blob) + ciphertext_of(api.blobs[other])), kind, TAMPERED),
        ("restored as another kind", blob, other, KIND_MISMATCH),
        ("another installation's", api.foreign[kind], kind, DOMAIN_UNKNOWN),
    ]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS, ids=[k.value for k in KINDS])
def test_over_tls_mutated_blobs_get_400_and_nothing_is_written(api: Api, kind: Kind) -> None:
    reads = api.side.store.reads
    with api.server.http(api.target.name) as http:
        before = _api_listing(http)
        count = reads.count_objects(api.target.id)
        for what, blob, route, expected in _api_mutations(api, kind):
            TRIED[f"over TLS: {what}"] += 1
            response = http.post(f"/{COLLECTION[route]}/restore", json={"value": b64url(blob)})
            assert response.status_code == 400, (what, response.status_code, response.text)
            error = response.json()["error"]
            assert error["code"] == "BadParameter", (what, error)
            assert error["innererror"]["code"] == expected, (what, error)
            API_CODES[expected] += 1
            assert reads.count_objects(api.target.id) == count, what
            assert _api_listing(http) == before, what
        # The intact blob restores: the refusals were the mutations' doing.
        restored = http.post(
            f"/{COLLECTION[kind]}/restore", json={"value": b64url(api.blobs[kind])}
        )
        assert restored.status_code == 200, restored.text
