"""Vaults: create, list, show, delete; and lookup for the data plane."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

from strongroom.crypto.envelope import new_key
from strongroom.errors import BadParameter, Conflict, NotFound
from strongroom.identifiers import check_vault_name
from strongroom.models import Vault
from strongroom.services.installation import Installation
from strongroom.store.base import Tx, VaultRecord


def to_vault(record: VaultRecord) -> Vault:
    return Vault(
        id=record.id,
        name=record.name,
        domain_id=record.domain_id,
        retention_days=record.retention_days,
        purge_protection=record.purge_protection,
        created=record.created,
        open_access=record.open_access,
        replicable=record.replicable,
        replica_of=record.replica_of,
    )


def vault_not_found(name: str) -> NotFound:
    return NotFound(
        f"Vault '{name}' does not exist on this Strongroom server. "
        f"Create it with: strongroom vault create {name}",
        code="VaultNotFound",
    )


class VaultService:
    # Vaults are created and deleted by administration commands, possibly in another process;
    # the data plane looks one up on every request, so found vaults are kept this long.
    CACHE_SECONDS = 2.0

    def __init__(self, inst: Installation):
        self._inst = inst
        self._cache: dict[str, tuple[float, VaultRecord, Vault]] = {}

    def lookup(self, name: str) -> tuple[VaultRecord, Vault]:
        """The vault named ``name`` (any case), from a short-lived cache."""
        now = time.monotonic()
        hit = self._cache.get(name)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        record = self.get_record(name)
        vault = to_vault(record)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[name] = (now + self.CACHE_SECONDS, record, vault)
        return record, vault

    def get_record(self, name: str) -> VaultRecord:
        record = self._inst.store.reads.get_vault(name)
        if record is None:
            raise vault_not_found(name)
        return record

    def show(self, name: str) -> Vault:
        return to_vault(self.get_record(name))

    def list(self) -> list[Vault]:
        return [to_vault(r) for r in self._inst.store.reads.list_vaults()]

    def create(
        self,
        name: str,
        *,
        retention_days: int = 90,
        purge_protection: bool = False,
        domain_id: str | None = None,
        open_access: bool = False,
    ) -> Vault:
        """``open_access``: every principal of the installation may do everything in the
        vault; otherwise (the default) only what access policies grant."""
        check_vault_name(name)
        if not 7 <= retention_days <= 90:
            raise BadParameter(
                f"Retention of {retention_days} days is out of range: use 7 to 90 days."
            )
        vault_id = str(uuid.uuid4())
        record = VaultRecord(
            id=vault_id,
            name=name,
            domain_id=domain_id or self._inst.default_domain_id,
            retention_days=retention_days,
            purge_protection=purge_protection,
            wrapped_key=self._inst.keyring.wrap_vault_key(vault_id, new_key()),
            created=self._inst.clock.now(),
            open_access=open_access,
        )

        def write(tx: Tx) -> None:
            if tx.get_vault(name) is not None:
                raise Conflict(f"A vault named '{name}' already exists.", code="VaultAlreadyExists")
            tx.insert_vault(record)

        self._inst.store.transact(write).result()
        return to_vault(record)

    def set_open_access(self, name: str, open_access: bool) -> Vault:
        """Opens the vault to every principal, or closes it to all but its access policies'
        principals. Reaches running servers within ``CACHE_SECONDS``."""

        def write(tx: Tx) -> VaultRecord:
            record = tx.get_vault(name)
            if record is None:
                raise vault_not_found(name)
            tx.set_vault_open_access(record.id, open_access)
            return replace(record, open_access=open_access)

        return to_vault(self._inst.store.transact(write).result())

    def delete(self, name: str) -> Vault:
        """Deletes the vault and, irrevocably, every object in it."""

        def write(tx: Tx) -> VaultRecord:
            record = tx.get_vault(name)
            if record is None:
                raise vault_not_found(name)
            tx.delete_vault(record.id)
            return record

        return to_vault(self._inst.store.transact(write).result())
