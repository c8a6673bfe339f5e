"""Fixtures: a real Strongroom server over TLS in a subprocess, and credentials for it.

``*.vault.localhost`` resolves through libnss-myhostname where it is installed (``make test``
installs it on Debian); otherwise this process resolves ``*.localhost`` to loopback itself.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

# The servers tests start run one process unless a test asks for more (`serve`'s default is one
# per CPU): CI starts hundreds of them on two cores. tests/scaleout and tests/deploy run several.
os.environ.setdefault("STRONGROOM_WORKERS", "1")

_real_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(host, str) and host.endswith(".localhost"):
        host = "localhost"
    return _real_getaddrinfo(host, *args, **kwargs)


try:
    socket.getaddrinfo("probe.vault.localhost", 443)
except socket.gaierror:
    socket.getaddrinfo = _getaddrinfo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# STRONGROOM_TEST_BACKEND=postgresql: every server made by make_server keeps its data in a
# database of its own on a throwaway PostgreSQL server (tests/pg.py) rather than in SQLite.
BACKEND = os.environ.get("STRONGROOM_TEST_BACKEND", "sqlite")
_DATABASES: dict[Path, str] = {}  # data dir -> database URL, for the commands run on it


def another_process(first: Server) -> Server:
    """A second server process on ``first``'s data dir and database, on a port of its own."""
    second = Server(
        data_dir=first.data_dir, port=free_port(), extra_args=first.extra_args,
        tenant_id=first.tenant_id, client_id=first.client_id, client_secret=first.client_secret,
    )  # fmt: skip
    second.start()
    return second


def database_env(data_dir: Path) -> dict[str, str]:
    """What a command on ``data_dir`` needs in its environment to find its database."""
    url = _DATABASES.get(data_dir)
    return {"STRONGROOM_DATABASE_URL": url} if url else {}


def env_for(data_dir: Path) -> dict[str, str]:
    return {**os.environ, **database_env(data_dir)}


def admin(server: Server, *args: str, ok: bool = True) -> Any:
    """An administration command on a server's data dir: its JSON output, or (``ok=False``)
    its (stdout, stderr) once it has failed."""
    done = subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", *args, "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, timeout=120, env=env_for(server.data_dir),
    )  # fmt: skip
    if ok:
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    assert done.returncode != 0, done.stdout
    return done.stdout, done.stderr


def cli(data_dir: Path, *args: str, port: int | None = None) -> Any:
    """Runs an administration command on a data dir and returns its JSON output."""
    cmd = [sys.executable, "-m", "strongroom.cli.main", *args, "--data-dir", str(data_dir)]
    if port is not None:
        cmd += ["--port", str(port)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, check=True, timeout=60, env=env_for(data_dir)
    )
    return json.loads(done.stdout)


@dataclass
class Server:
    data_dir: Path
    port: int
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    process: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def database_url(self) -> str | None:
        return _DATABASES.get(self.data_dir)

    @property
    def ca(self) -> Path:
        return self.data_dir / "tls" / "ca.pem"

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    @property
    def authority(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def resource(self) -> str:
        return f"https://vault.localhost:{self.port}"

    def vault_url(self, vault: str) -> str:
        return f"https://{vault}.vault.localhost:{self.port}"

    def start(self) -> None:
        log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "strongroom.cli.main", "serve"),
                *("--data-dir", str(self.data_dir), "--port", str(self.port)),
                *self.extra_args,
            ],
            stdout=log,
            stderr=log,
            env=env_for(self.data_dir),
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                if self.ca.exists():
                    httpx.get(f"{self.authority}/health", verify=self.tls(), timeout=2)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start in 30 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def credential(self) -> Any:
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(
            self.tenant_id,
            self.client_id,
            self.client_secret,
            authority=self.authority,
            disable_instance_discovery=True,
            connection_verify=str(self.ca),
        )

    def client(self, vault: str) -> Any:
        from azure.keyvault.secrets import SecretClient

        return SecretClient(
            self.vault_url(vault), self.credential(), connection_verify=str(self.ca)
        )

    def token(self, scope: str | None = None) -> str:
        response = httpx.post(
            f"{self.authority}/{self.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "scope": scope or f"{self.resource}/.default",
            },
            verify=self.tls(),
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def advance_clock(self, seconds: int) -> dict[str, Any]:
        """Test clock only (--test-clock): moves it forward and runs one scheduler pass;
        the pass's counts and the new time."""
        response = httpx.post(
            f"{self.authority}/admin/clock/advance",
            json={"seconds": seconds},
            headers={"Authorization": f"Bearer {self.token()}"},
            verify=self.tls(),
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def http(self, vault: str) -> httpx.Client:
        """A raw HTTP client for one vault, authenticated, for protocol-level checks."""
        return httpx.Client(
            base_url=self.vault_url(vault),
            verify=self.tls(),
            headers={"Authorization": f"Bearer {self.token()}"},
            params={"api-version": "7.6"},
        )


def make_server(
    root: Path,
    vaults: tuple[str, ...] = ("vault-a", "vault-b"),
    *extra_args: str,
    database_url: str | None = None,
) -> Server:
    """A server with ``vaults`` and a principal ``tests``, started. ``database_url``: keep its
    data there (PostgreSQL) whatever STRONGROOM_TEST_BACKEND says."""
    server = Server(data_dir=root / "data", port=free_port(), extra_args=extra_args)
    if database_url is not None:
        _DATABASES[server.data_dir] = database_url
    elif BACKEND == "postgresql":
        from tests import pg

        _DATABASES[server.data_dir] = pg.cluster().new_database("server")
    for name in vaults:
        cli(server.data_dir, "vault", "create", name, "--open")
    created = cli(server.data_dir, "principal", "create", "tests", port=server.port)
    server.tenant_id = created["tenantId"]
    server.client_id = created["clientId"]
    server.client_secret = created["clientSecret"]
    server.start()
    return server


@contextmanager
def ca_trusted(ca: Path) -> Iterator[None]:
    """Clients trust ``ca`` the way a user would make them: through the environment."""
    saved = {k: os.environ.get(k) for k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
    os.environ["REQUESTS_CA_BUNDLE"] = os.environ["SSL_CERT_FILE"] = str(ca)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("server"))
    try:
        with ca_trusted(srv.ca):
            yield srv
    finally:
        srv.stop()


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    """A secret name unique to the test, so tests share one server without colliding."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:80].strip("-")
    return f"{base}-{os.urandom(3).hex()}"
