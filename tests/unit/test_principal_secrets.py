"""Principals created with a client secret the caller gives (a test's fixed credentials)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.errors import BadParameter, OAuthError
from strongroom.services.identity import IdentityService
from strongroom.services.installation import Installation, open_installation

FIXED = "correct-horse-battery-staple"


@pytest.fixture
def inst(tmp_path: Path) -> Iterator[Installation]:
    installation = open_installation(Settings(data_dir=tmp_path))
    yield installation
    installation.close()


def _token(identity: IdentityService, client_id: str, secret: str) -> dict[str, object]:
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "scope": "https://vault.localhost:8443/.default",
    }
    return asyncio.run(identity.issue_token(identity.tenant_id, form, [], "127.0.0.1"))


def test_a_given_secret_authenticates_and_is_not_echoed(inst: Installation) -> None:
    identity = IdentityService(inst)
    created = identity.create_principal("ci", client_secret=FIXED)
    assert created.client_secret is None
    assert FIXED not in repr(created)
    assert _token(identity, created.principal.client_id, FIXED)["token_type"] == "Bearer"
    with pytest.raises(OAuthError):
        _token(identity, created.principal.client_id, FIXED + "x")


def test_a_generated_secret_is_returned_once(inst: Installation) -> None:
    identity = IdentityService(inst)
    created = identity.create_principal("generated")
    assert created.client_secret is not None
    assert created.client_secret not in repr(created)
    assert _token(identity, created.principal.client_id, created.client_secret)


@pytest.mark.parametrize("secret", ["too-short", "x" * 1025])
def test_a_given_secret_must_be_16_to_1024_characters(inst: Installation, secret: str) -> None:
    with pytest.raises(BadParameter, match="16 to 1024 characters") as caught:
        IdentityService(inst).create_principal("short", client_secret=secret)
    assert secret not in caught.value.message
    assert inst.store.reads.get_principal_by_name("short") is None
