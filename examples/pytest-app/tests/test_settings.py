"""The application's tests: each gets a vault of its own (`strongroom_vault`) on the session's
throwaway server (`strongroom_server`), fixtures of Strongroom's pytest plugin."""

from __future__ import annotations

import asyncio

import pytest
from azure.core.exceptions import ResourceNotFoundError
from inventory.settings import Settings


@pytest.fixture
def settings(strongroom_vault):
    return Settings(strongroom_vault.url, strongroom_vault.credential)


def test_database_url_reads_the_password(strongroom_vault, settings):
    strongroom_vault.secret_client().set_secret("db-password", "s3cret")
    assert settings.database_url() == "postgresql://inventory:s3cret@db/inventory"


def test_a_missing_password_is_an_error(settings):
    # A new vault per test: the password set by the test above is not here.
    with pytest.raises(ResourceNotFoundError):
        settings.database_url()


def test_rotation_keeps_the_old_version(strongroom_vault, settings):
    first = settings.rotate_database_password("one")
    second = settings.rotate_database_password("two")
    client = strongroom_vault.secret_client()
    assert client.get_secret("db-password", first).value == "one"
    assert client.get_secret("db-password").properties.version == second


def test_reports_are_signed_and_verified(settings):
    key_id, signature = settings.sign_report(b"42 widgets")
    assert "/keys/reports/" in key_id
    assert settings.verify_report(b"42 widgets", signature)
    assert not settings.verify_report(b"43 widgets", signature)


def test_the_async_client(strongroom_vault):
    async def roundtrip():
        async with strongroom_vault.async_secret_client() as client:
            await client.set_secret("async", "value")
            return (await client.get_secret("async")).value

    assert asyncio.run(roundtrip()) == "value"


def test_one_server_per_worker(strongroom_server, strongroom_vault):
    # Under pytest-xdist each worker process has its own session, so its own server.
    assert strongroom_vault.url.endswith(strongroom_server.authority.rsplit(":", 1)[1])
    assert strongroom_server.tenant_id and strongroom_server.client_id
