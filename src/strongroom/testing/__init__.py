"""Strongroom in other projects' tests: a throwaway server and a vault per test.

::

    from strongroom.testing import vault

    with vault() as v:                       # a fresh vault on a shared throwaway server
        v.secret_client().set_secret("db-password", "s3cret")
        assert v.secret_client().get_secret("db-password").value == "s3cret"

    @vault()                                 # the same, as a decorator: the vault is passed in
    def test_reads(strongroom_vault): ...

    with EphemeralServer(vaults=("app",)) as server:   # a server of one's own
        client = SecretClient(server.vault_url("app"), server.credential())

A server is ``strongroom serve --ephemeral`` in a child process: a temporary data directory,
a free port, a principal, removed when it stops. ``vault()`` starts one server per process the
first time it is used (stopped at exit) and makes a new vault on it each time, so tests do not
see each other's objects. The CA is trusted per client (``connection_verify``), and
``trust_ca_in_environment`` sets ``REQUESTS_CA_BUNDLE`` and ``SSL_CERT_FILE`` for clients made
without it. The pytest fixtures (``strongroom_server``, ``strongroom_vault``) are in
``strongroom.testing.pytest_plugin``, which pytest loads by itself once Strongroom is installed.
"""

from strongroom.testing._server import EphemeralServer, TestVault, shared_server, vault

__all__ = ["EphemeralServer", "TestVault", "shared_server", "vault"]
