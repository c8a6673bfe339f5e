"""Version ids: Key Vault's shape (32 lower-case hex digits), laid out as UUIDv7."""

from __future__ import annotations

import time
import uuid

from strongroom.identifiers import is_version, new_version


def test_version_ids_are_uuid7_hex_and_unique() -> None:
    ids = [new_version() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:200]:
        assert is_version(text)
        parsed = uuid.UUID(hex=text)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
    # Every digit after the millisecond stamp is random but for the version and variant bits.
    assert {text[16] for text in ids} == set("89ab")
    for position in (*range(13, 16), *range(17, 32)):
        assert len({text[position] for text in ids}) == 16


def test_version_ids_follow_time_at_millisecond_grain() -> None:
    before = time.time_ns() // 1_000_000
    first = new_version()
    time.sleep(0.003)
    second = new_version()
    after = time.time_ns() // 1_000_000
    stamps = [int(text[:12], 16) for text in (first, second)]
    assert before <= stamps[0] < stamps[1] <= after
    assert first < second  # a later version sorts after, which keeps index inserts at the end
