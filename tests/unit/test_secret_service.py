"""Domain logic of secrets, called directly (no HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.errors import NotFound
from strongroom.services.installation import Installation, open_installation
from strongroom.services.secrets import SecretService
from strongroom.services.vaults import VaultService


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Installation]:
    installation = open_installation(Settings(data_dir=tmp_path))
    yield installation
    installation.close()


def test_deleted_secrets_are_purged_once_their_date_passes(inst: Installation) -> None:
    VaultService(inst).create("short", retention_days=7)
    vault = inst.store.reads.get_vault("short")
    assert vault is not None
    secrets = SecretService(inst)

    async def scenario() -> tuple[int, int, int]:
        await secrets.set_secret(vault, "old", "x")
        await secrets.set_secret(vault, "kept", "y")
        _, deletion = await secrets.delete_secret(vault, "old")
        due = deletion.scheduled_purge_date
        assert due - deletion.deleted_date == 7 * 86400
        early = await secrets.purge_expired(now=due - 1)
        on_time = await secrets.purge_expired(now=due)
        again = await secrets.purge_expired(now=due + 10)
        return early.done, on_time.done, again.done

    assert asyncio.run(scenario()) == (0, 1, 0)
    with pytest.raises(NotFound):
        secrets.get_deleted(vault, "old")
    assert secrets.get_secret(vault, "kept").value == "y"


def test_reopening_keeps_tenant_domain_and_keys(tmp_path: Path) -> None:
    first = open_installation(Settings(data_dir=tmp_path))
    ids = (first.tenant_id, first.instance_id, first.default_domain_id, first.signing_key_pem)
    first.close()
    second = open_installation(Settings(data_dir=tmp_path))
    assert (
        second.tenant_id,
        second.instance_id,
        second.default_domain_id,
        second.signing_key_pem,
    ) == ids
    second.close()
