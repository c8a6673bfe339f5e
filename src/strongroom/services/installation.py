"""An installation: its data directory, master key, store, tenant, instance and domain.

Opening one for the first time creates the master key (0600), the database, the tenant GUID,
the instance id, the installation's first security domain with its first backup-key version,
and the token-signing key. Every later open reads them back.
"""

from __future__ import annotations

import logging
import stat
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from strongroom.clock import Clock, SystemClock
from strongroom.config import Settings
from strongroom.crypto.envelope import (
    Sealer,
    aad,
    create_master_key,
    load_master_key,
    new_key,
)
from strongroom.crypto.tokens import new_signing_key_pem
from strongroom.store.base import DomainKeyRecord, Store, Tx, VaultRecord
from strongroom.store.coordination import CommitCounters
from strongroom.store.factory import open_store

log = logging.getLogger(__name__)
_TENANT = "tenant_id"
_INSTANCE = "instance_id"
_DOMAIN = "default_domain_id"
_SIGNING_KEY = "token_signing_key"


@dataclass
class Keyring:
    """Unwrapped per-vault data keys and domain backup keys, cached in memory."""

    master: Sealer
    _vault_keys: dict[tuple[str, bytes], Sealer] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap_vault_key(self, vault_id: str, key: bytes) -> bytes:
        return self.master.seal(key, aad("vault-key", vault_id))

    def vault_sealer(self, vault: VaultRecord) -> Sealer:
        cache_key = (vault.id, vault.wrapped_key)
        found = self._vault_keys.get(cache_key)
        if found is None:
            found = Sealer(self.master.open(vault.wrapped_key, aad("vault-key", vault.id)))
            with self._lock:
                self._vault_keys[cache_key] = found
        return found

    def wrap_domain_key(self, domain_id: str, version: str, key: bytes) -> bytes:
        return self.master.seal(key, aad("domain-backup-key", domain_id, version))

    def domain_key(self, record: DomainKeyRecord) -> bytes:
        return self.master.open(
            record.wrapped_key, aad("domain-backup-key", record.domain_id, record.version)
        )


@dataclass
class Installation:
    settings: Settings
    store: Store
    keyring: Keyring
    tenant_id: str
    instance_id: str
    default_domain_id: str
    signing_key_pem: bytes = field(repr=False)
    clock: Clock = field(default_factory=SystemClock)

    def close(self) -> None:
        self.store.close()


def _initialise(tx: Tx, keyring: Keyring, now: int) -> None:
    """Fills in whatever a fresh database lacks; idempotent."""
    if tx.get_meta(_TENANT) is None:
        tx.set_meta(_TENANT, str(uuid.uuid4()))
    if tx.get_meta(_INSTANCE) is None:
        tx.set_meta(_INSTANCE, str(uuid.uuid4()))
    domain_id = tx.get_meta(_DOMAIN)
    if domain_id is None:
        domain_id = str(uuid.uuid4())
        tx.set_meta(_DOMAIN, domain_id)
    if tx.get_meta(f"domain/{domain_id}/name") is None:
        tx.set_meta(f"domain/{domain_id}/name", "default")
    if tx.current_domain_key(domain_id) is None:
        version = uuid.uuid4().hex
        tx.insert_domain_key(
            DomainKeyRecord(
                domain_id=domain_id,
                version=version,
                wrapped_key=keyring.wrap_domain_key(domain_id, version, new_key()),
                created=now,
            )
        )
    if tx.get_meta(_SIGNING_KEY) is None:
        pem = new_signing_key_pem()
        tx.set_meta(_SIGNING_KEY, keyring.master.seal(pem, aad("token-signing-key")).hex())


def _private_directory(path: Path) -> None:
    """Creates the data directory (0700), or makes an existing one private to its owner."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        try:
            path.chmod(0o700)
        except OSError:
            log.warning(
                "The data directory %s may be read by other users (mode %04o) and could not "
                "be made private; run: chmod 700 %s",
                path, mode, path,
            )  # fmt: skip
        else:
            log.warning("Made the data directory %s private (mode %04o -> 0700).", path, mode)


def open_installation(
    settings: Settings, clock: Clock | None = None, counters: CommitCounters | None = None
) -> Installation:
    """Opens (creating on first use) the installation; ``counters``: this process is one of
    several workers of one ``serve`` on the SQLite file."""
    _private_directory(settings.data_dir)
    store = open_store(settings, counters)
    try:
        # A database that already holds an installation was made with a master key: never
        # make another one for it (nothing sealed would open).
        made = store.reads.get_meta(_TENANT) is not None
        path = settings.master_key_file
        master = load_master_key(path) if made or path.exists() else create_master_key(path)
        keyring = Keyring(master=Sealer(master))
        clock = clock or SystemClock()
        store.transact(lambda tx: _initialise(tx, keyring, clock.now())).result()
    except BaseException:
        store.close()
        raise
    reads = store.reads

    def meta(key: str) -> str:
        value = reads.get_meta(key)
        assert value is not None, f"installation metadata {key} missing after initialisation"
        return value

    return Installation(
        settings=settings,
        store=store,
        keyring=keyring,
        tenant_id=meta(_TENANT),
        instance_id=meta(_INSTANCE),
        default_domain_id=meta(_DOMAIN),
        signing_key_pem=keyring.master.open(
            bytes.fromhex(meta(_SIGNING_KEY)), aad("token-signing-key")
        ),
        clock=clock or SystemClock(),
    )
