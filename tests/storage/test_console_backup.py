"""The web console starts a whole-vault backup into a real blob container (Azurite) and shows
the job's progress until it succeeds, in a real headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from azure.keyvault.secrets import SecretClient
from azure.storage.blob import ContainerClient

from tests.conftest import Server, ca_trusted, make_server
from tests.console.browser import chromium_for, shoot
from tests.storage.conftest import Azurite
from tests.storage.test_vault_backup import _container

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[Server]:
    srv = make_server(
        tmp_path_factory.mktemp("console-backup"),
        ("web-bk",),
        *("--azurite-accounts-file", str(azurite.accounts_file)),
        *("--azurite-blob-endpoint", azurite.endpoint),
    )
    try:
        with ca_trusted(srv.ca):
            yield srv
    finally:
        srv.stop()


def test_a_whole_vault_backup_started_and_followed_in_the_console(
    server: Server, azurite: Azurite
) -> None:
    secrets = SecretClient(server.vault_url("web-bk"), server.credential())
    for i in range(5):
        secrets.set_secret(f"s{i}", f"value-{i}")
    container, sas = _container(azurite, "console")
    with chromium_for(server) as browser:
        page: Any = browser.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{server.authority}/console/sign-in")
        page.fill("#client_id", server.client_id)
        page.fill("#client_secret", server.client_secret)
        page.click("#sign-in")
        page.wait_for_url(re.compile(r"/console/vaults$"))
        page.goto(f"{server.authority}/console/vaults/web-bk/backups")
        assert page.inner_text("#no-jobs")
        page.fill("#start-backup input[name=container]", container)
        page.fill("#start-backup input[name=sas]", sas)
        page.click("#start")
        page.wait_for_url(re.compile(r"notice=backup-started$"))
        # The page refreshes itself while the job runs, without script.
        page.locator("#jobs td.status", has_text="Succeeded").wait_for()
        shoot(page, "backups")
        row = page.inner_text("#jobs tbody tr")
        assert "backup" in row and "5 / 5" in row
        folder = re.search(r"/(web-bk-[0-9]+-[0-9a-f]+)", row)
        assert folder is not None
    names = sorted(
        b.name for b in ContainerClient.from_container_url(f"{container}?{sas}").list_blobs()
    )
    prefix = folder.group(1)
    assert names == [f"{prefix}/manifest.srbk"] + [f"{prefix}/secrets/s{i}.blob" for i in range(5)]
