"""The audit buffer: written within FLUSH_SECONDS, and at once when MAX_BUFFER records pile up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.services.audit import AuditLog
from strongroom.services.installation import Installation, open_installation


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Installation]:
    installation = open_installation(Settings(data_dir=tmp_path))
    yield installation
    installation.close()


def _record(log: AuditLog, n: int) -> None:
    log.record(log.make(
        principal="p", vault="v", operation="SecretGet", object_id=f"/secrets/s{n}",
        status=200, request_id=None, caller="127.0.0.1",
    ))  # fmt: skip


def _stored(inst: Installation) -> int:
    return len(inst.store.reads.list_audit(None, 0, 100_000))


def test_a_full_buffer_is_written_at_once_not_after_the_timer(inst: Installation) -> None:
    log = AuditLog(inst)
    log.MAX_BUFFER = 50
    log.FLUSH_SECONDS = 60  # the timer would not fire during the test

    async def scenario() -> tuple[int, int]:
        _record(log, 0)  # starts the 60 s timer
        for n in range(1, 50):
            _record(log, n)  # the 50th fills the buffer
        for _ in range(200):
            if _stored(inst) >= 50:
                break
            await asyncio.sleep(0.01)
        full = _stored(inst)
        for n in range(50, 60):
            _record(log, n)  # wait for the timer, or for close
        early = _stored(inst)
        await log.close()
        return full, early

    full, early = asyncio.run(scenario())
    assert full == 50
    assert early == 50
    assert _stored(inst) == 60  # close wrote the rest
