"""pytest fixtures for testing code that uses Azure Key Vault against Strongroom.

Loaded by pytest from the ``pytest11`` entry point once Strongroom is installed; nothing starts
until a test asks for a fixture:

- ``strongroom_server`` (session): one ephemeral server (``strongroom serve --ephemeral``) for
  the session. Under pytest-xdist, each worker is a process with its own session, so each
  worker has its own server (``-n 2``: two servers); their vaults never mix.
- ``strongroom_vault`` (function): a new vault on that server for one test, deleted after it,
  so tests do not see each other's objects (``TestVault``: ``url``, ``name``, ``credential``,
  ``ca``, ``secret_client()``, ``key_client()``, ``certificate_client()``,
  ``async_secret_client()``; ``server`` has the principal, ``async_credential()`` and the
  environment).
- ``strongroom_private_server`` (function): a server of the test's own, for tests that need
  one to themselves (each costs about a second).

The session's server starts from a seed file (vaults, principals, secrets, keys,
certificates: ``strongroom.services.seed``) named by the ini option ``strongroom_seed``
(relative to the rootdir) or ``--strongroom-seed``.

While ``strongroom_server`` lives, ``REQUESTS_CA_BUNDLE`` and ``SSL_CERT_FILE`` in the test
process name its CA, so clients made without ``connection_verify`` trust it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from strongroom.testing import EphemeralServer, TestVault


def pytest_addoption(parser: pytest.Parser) -> None:
    help_text = "A Strongroom seed file for the session's server (strongroom_server)."
    parser.addini("strongroom_seed", help_text, default="")
    parser.addoption("--strongroom-seed", default=None, help=help_text)


@pytest.fixture(scope="session")
def strongroom_server(pytestconfig: pytest.Config) -> Iterator[EphemeralServer]:
    from strongroom.testing import EphemeralServer

    given = pytestconfig.getoption("--strongroom-seed") or pytestconfig.getini("strongroom_seed")
    seed = None if not given else pytestconfig.rootpath / str(given)
    with EphemeralServer(seed=seed) as server, server.trust_ca_in_environment():
        yield server


@pytest.fixture
def strongroom_vault(strongroom_server: EphemeralServer) -> Iterator[TestVault]:
    made = strongroom_server.create_vault()
    try:
        yield made
    finally:
        strongroom_server.delete_vault(made.name)


@pytest.fixture
def strongroom_private_server() -> Iterator[EphemeralServer]:
    from strongroom.testing import EphemeralServer

    with EphemeralServer() as server:
        yield server
