"""The pytest plugin and ``strongroom.testing`` as another project's tests use them: fixtures
from the ``pytest11`` entry point, a vault per test, the context manager and the decorator."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

import strongroom.testing
from strongroom.testing import EphemeralServer, TestVault

pytestmark = pytest.mark.slow


def test_a_vault_per_test_sees_only_its_own_objects(
    strongroom_vault: TestVault, strongroom_server: EphemeralServer
) -> None:
    client = strongroom_vault.secret_client()
    client.set_secret("mine", "1")
    other = strongroom_server.create_vault()
    with pytest.raises(ResourceNotFoundError):
        other.secret_client().get_secret("mine")
    assert strongroom_vault.url.startswith(f"https://{strongroom_vault.name}.vault.localhost:")


def test_the_ca_is_trusted_in_this_process_while_the_server_lives(
    strongroom_vault: TestVault,
) -> None:
    assert os.environ["REQUESTS_CA_BUNDLE"] == str(strongroom_vault.ca)
    # A client made the plain way, with no connection_verify.
    plain = SecretClient(strongroom_vault.url, strongroom_vault.credential)
    assert plain.set_secret("plain", "v").value == "v"


def test_async_clients(strongroom_vault: TestVault) -> None:
    async def run() -> str:
        async with strongroom_vault.async_secret_client() as client:
            await client.set_secret("async", "v")
            return str((await client.get_secret("async")).value)

    assert asyncio.run(run()) == "v"


def test_a_deleted_vault_is_gone_after_its_test(strongroom_server: EphemeralServer) -> None:
    made = strongroom_server.create_vault()
    made.secret_client().set_secret("s", "v")
    strongroom_server.delete_vault(made.name)
    with pytest.raises(HttpResponseError) as gone:
        made.secret_client().get_secret("s")
    # 404 while the server's vault cache (2 s) still has it, then 403 as for any unknown vault
    assert gone.value.status_code in (403, 404)


def test_the_context_manager_and_the_decorator() -> None:
    with strongroom.testing.vault() as v:
        v.secret_client().set_secret("cm", "1")
        first = v.name

    @strongroom.testing.vault()
    def uses(strongroom_vault: TestVault) -> str:
        strongroom_vault.secret_client().set_secret("deco", "2")
        return strongroom_vault.name

    assert uses() != first
    assert strongroom.testing.shared_server() is strongroom.testing.shared_server()


def test_a_private_server_is_removed_with_everything(
    strongroom_private_server: EphemeralServer,
) -> None:
    data_dir = strongroom_private_server.data_dir
    assert (data_dir / "EPHEMERAL").is_file()
    strongroom_private_server.create_vault("private").secret_client().set_secret("s", "v")
    strongroom_private_server.stop()
    assert not Path(data_dir).exists()
