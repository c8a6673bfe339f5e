"""Console sessions and the operator's sign-in links, on a real store: what the store keeps,
expiry, one use, and sign-out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.errors import Unauthorized
from strongroom.services import console_sessions
from strongroom.services.console_sessions import ConsoleSessions
from strongroom.services.installation import Installation, open_installation


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Installation]:
    installation = open_installation(Settings(data_dir=tmp_path))
    yield installation
    installation.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def sessions(inst: Installation) -> tuple[ConsoleSessions, Clock]:
    found = ConsoleSessions(inst)
    clock = Clock()
    found._now = clock  # type: ignore[method-assign]
    return found, clock


def test_the_store_keeps_a_hash_never_the_token(
    inst: Installation, sessions: tuple[ConsoleSessions, Clock]
) -> None:
    store, _ = sessions
    new = store.start("client-1", "app")
    link = store.make_link()
    everything = " ".join(k + v for k, v in inst.store.reads.list_meta("console/"))
    assert new.token not in everything and link not in everything
    assert new.token not in repr(new) and new.session.csrf not in repr(new.session)
    found = store.find(new.token)
    assert found is not None and found.client_id == "client-1" and not found.operator
    assert store.find(new.token[:-1] + "x") is None


def test_sessions_end_after_eight_hours_and_on_sign_out(
    sessions: tuple[ConsoleSessions, Clock],
) -> None:
    store, clock = sessions
    first, second = store.start("c", "a"), store.start("c", "a")
    clock.now += console_sessions.SESSION_SECONDS - 1
    assert store.find(first.token) is not None
    store.end(first.token)
    assert store.find(first.token) is None
    assert store.find(second.token) is not None
    clock.now += 1
    assert store.find(second.token) is None


def test_a_link_works_once_and_only_within_five_minutes(
    sessions: tuple[ConsoleSessions, Clock],
) -> None:
    store, clock = sessions
    link = store.make_link()
    new = store.redeem_link(link)
    assert new.session.operator and new.session.client_id == console_sessions.OPERATOR
    with pytest.raises(Unauthorized, match="used already"):
        store.redeem_link(link)
    late = store.make_link()
    clock.now += console_sessions.LINK_SECONDS
    with pytest.raises(Unauthorized):
        store.redeem_link(late)
    with pytest.raises(Unauthorized):
        store.redeem_link("made-up")
