"""The throwaway server (a child ``strongroom serve --ephemeral``) and vaults on it."""

from __future__ import annotations

import atexit
import functools
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from azure.identity import ClientSecretCredential
    from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential

    from strongroom.services.installation import Installation

F = TypeVar("F", bound=Callable[..., Any])


class ServerFailed(RuntimeError):
    """The ephemeral server did not start; the message carries what it printed."""


class EphemeralServer:
    """``strongroom serve --ephemeral`` in a child process, and what a client needs of it.

    Use it as a context manager, or ``start()`` and ``stop()``. ``vaults`` are made at start,
    then what the ``seed`` file describes (``strongroom.services.seed``); ``create_vault()``
    makes more while it runs.
    """

    START_TIMEOUT = 60.0

    def __init__(
        self, vaults: tuple[str, ...] = (), port: int | None = None, seed: Path | None = None
    ):
        self._vaults = vaults
        self._port = port
        self._seed = seed
        self._process: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._inst: Installation | None = None
        self._lock = threading.Lock()
        self.env: dict[str, str] = {}

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> EphemeralServer:
        self._tmp = tempfile.TemporaryDirectory(prefix="strongroom-testing-")
        env_file = Path(self._tmp.name) / "env.json"
        log = Path(self._tmp.name) / "server.log"
        command = [
            *(sys.executable, "-m", "strongroom.cli", "serve", "--ephemeral"),
            *("--env-file", str(env_file), "--env-format", "json"),
        ]
        for name in self._vaults:
            command += ["--vault", name]
        if self._port is not None:
            command += ["--port", str(self._port)]
        if self._seed is not None:
            command += ["--seed", str(self._seed)]
        with open(log, "wb") as out:
            self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.START_TIMEOUT
        while not env_file.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServerFailed(f"strongroom serve --ephemeral did not start:\n{_tail(log)}")
            time.sleep(0.02)
        self.env = json.loads(env_file.read_text())
        return self

    def stop(self) -> None:
        if self._inst is not None:
            self._inst.close()
            self._inst = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EphemeralServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients need ------------------------------------------------------------------

    @property
    def authority(self) -> str:
        return self.env["STRONGROOM_AUTHORITY"]

    @property
    def tenant_id(self) -> str:
        return self.env["STRONGROOM_TENANT_ID"]

    @property
    def client_id(self) -> str:
        return self.env["AZURE_CLIENT_ID"]

    @property
    def client_secret(self) -> str:
        return self.env["AZURE_CLIENT_SECRET"]

    @property
    def ca(self) -> Path:
        """The server's CA certificate (PEM), which clients must trust."""
        return Path(self.env["STRONGROOM_CA"])

    @property
    def data_dir(self) -> Path:
        return Path(self.env["STRONGROOM_DATA_DIR"])

    def vault_url(self, name: str) -> str:
        return self.authority.replace("https://localhost", f"https://{name}.vault.localhost", 1)

    def credential(self) -> ClientSecretCredential:
        """A ready azure-identity credential for the server's principal."""
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(
            self.tenant_id, self.client_id, self.client_secret, authority=self.authority,
            disable_instance_discovery=True, connection_verify=str(self.ca),
        )  # fmt: skip

    def async_credential(self) -> AsyncClientSecretCredential:
        """The same, for asyncio clients (close it, or use it in ``async with``)."""
        from azure.identity.aio import ClientSecretCredential

        return ClientSecretCredential(
            self.tenant_id, self.client_id, self.client_secret, authority=self.authority,
            disable_instance_discovery=True, connection_verify=str(self.ca),
        )  # fmt: skip

    @contextmanager
    def trust_ca_in_environment(self) -> Iterator[None]:
        """``REQUESTS_CA_BUNDLE`` and ``SSL_CERT_FILE`` name the server's CA in this process
        while the context lasts (for clients made without ``connection_verify``). aiohttp reads
        ``SSL_CERT_FILE`` once, when it is imported: asyncio clients take the CA through
        ``connection_verify`` (``TestVault.async_secret_client`` does)."""
        names = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
        saved = {n: os.environ.get(n) for n in names}
        os.environ.update({n: str(self.ca) for n in names})
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    # -- vaults -----------------------------------------------------------------------------

    def _installation(self) -> Installation:
        """The server's installation, opened in this process to make vaults (SQLite lets an
        administration process write beside the server, as `strongroom vault create` does)."""
        with self._lock:
            if self._inst is None:
                from strongroom.config import Settings
                from strongroom.services.installation import open_installation

                port = int(self.authority.rsplit(":", 1)[1])
                self._inst = open_installation(Settings(data_dir=self.data_dir, port=port))
            return self._inst

    def create_vault(self, name: str | None = None) -> TestVault:
        """A new vault, open to the server's principal; a random name unless given."""
        from strongroom.services.vaults import VaultService

        name = name or f"t{secrets.token_hex(6)}"
        VaultService(self._installation()).create(name, open_access=True)
        return TestVault(name, self.vault_url(name), self)

    def delete_vault(self, name: str) -> None:
        from strongroom.services.vaults import VaultService

        VaultService(self._installation()).delete(name)


@dataclass
class TestVault:
    """One vault of an ephemeral server, and clients for it."""

    __test__ = False  # a helper, not a pytest test class

    name: str
    url: str
    server: EphemeralServer = field(repr=False)

    @property
    def credential(self) -> ClientSecretCredential:
        return self.server.credential()

    @property
    def ca(self) -> Path:
        return self.server.ca

    def _kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"connection_verify": str(self.server.ca), **kwargs}

    def secret_client(self, **kwargs: Any) -> Any:
        from azure.keyvault.secrets import SecretClient

        return SecretClient(self.url, self.credential, **self._kwargs(kwargs))

    def key_client(self, **kwargs: Any) -> Any:
        from azure.keyvault.keys import KeyClient  # azure-keyvault-keys, if the project has it

        return KeyClient(self.url, self.credential, **self._kwargs(kwargs))

    def certificate_client(self, **kwargs: Any) -> Any:
        from azure.keyvault.certificates import CertificateClient

        return CertificateClient(self.url, self.credential, **self._kwargs(kwargs))

    def async_secret_client(self, **kwargs: Any) -> Any:
        """An asyncio SecretClient with its own credential (closed with the client)."""
        from azure.keyvault.secrets.aio import SecretClient

        return SecretClient(self.url, self.server.async_credential(), **self._kwargs(kwargs))


_shared: EphemeralServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> EphemeralServer:
    """This process's shared ephemeral server, started on first use and stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = EphemeralServer().start()
            atexit.register(_shared.stop)
        return _shared


class vault:
    """A new vault on this process's shared ephemeral server, deleted afterwards; as a
    decorator, the vault is passed as the keyword argument ``strongroom_vault``."""

    def __init__(self, name: str | None = None):
        self._name = name
        self._made: TestVault | None = None

    def __enter__(self) -> TestVault:
        self._made = shared_server().create_vault(self._name)
        return self._made

    def __exit__(self, *exc: object) -> None:
        if self._made is not None:
            self._made.server.delete_vault(self._made.name)
            self._made = None

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with vault(self._name) as made:
                return fn(*args, strongroom_vault=made, **kwargs)

        return wrapper  # type: ignore[return-value]


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-3000:]
    except OSError:
        return "(no output)"
