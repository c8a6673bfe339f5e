"""A production shape on one machine: HAProxy (Debian's package) terminating TLS in front of
three `strongroom serve --plain-http` processes on one PostgreSQL database, with the
deploy/haproxy.cfg that the README documents, unchanged. The unmodified SDK (and az) work
through it; a backend killed under load, and a rolling restart of every backend, lose no
acknowledged write and show the application no failure."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from tests import pg
from tests.conftest import ca_trusted, free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
AZ = os.environ.get("STRONGROOM_AZ", "")


def _haproxy() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if found is None:
        if os.environ.get("STRONGROOM_REQUIRE_HAPROXY"):
            pytest.fail("HAProxy is not installed: apt-get install haproxy (make test does it).")
        pytest.skip("HAProxy is not installed (apt-get install haproxy); make test does it")
    return found


def _run_cli(data_dir: Path, *args: str) -> Any:
    """An administration command with no database URL in its environment: the data directory
    remembers the one its servers run with."""
    env = {k: v for k, v in os.environ.items() if k != "STRONGROOM_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip().startswith(("{", "[")) else done.stdout


@dataclass
class Backend:
    data_dir: Path
    port: int
    public_port: int
    database_url: str
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.data_dir.parent / f"backend-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "strongroom.cli.main", "serve",
                "--data-dir", str(self.data_dir), "--port", str(self.port),
                "--bind", "127.0.0.1", "--plain-http",
                "--public-url", f"https://localhost:{self.public_port}",
                "--forwarded-allow", "127.0.0.1", "--database-url", self.database_url,
            ],
            stdout=log, stderr=log,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, "the backend exited"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the backend was not ready in 30 s"
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@dataclass
class Deployment:
    data_dir: Path
    port: int  # HAProxy's: what clients dial
    backends: list[Backend]
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = field(default="", repr=False)

    @property
    def ca(self) -> Path:
        return self.data_dir / "tls" / "ca.pem"

    @property
    def authority(self) -> str:
        return f"https://localhost:{self.port}"

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def vault_url(self, vault: str) -> str:
        return f"https://{vault}.vault.localhost:{self.port}"

    def client(self, vault: str) -> SecretClient:
        credential = ClientSecretCredential(
            self.tenant_id, self.client_id, self.client_secret, authority=self.authority,
            disable_instance_discovery=True,
        )  # fmt: skip
        return SecretClient(self.vault_url(vault), credential)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    haproxy = _haproxy()
    if not pg.available():
        if os.environ.get("STRONGROOM_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed: apt-get install postgresql")
        pytest.skip("PostgreSQL is not installed (make test installs it)")
    root = tmp_path_factory.mktemp("haproxy")
    data_dir = root / "data"
    url = pg.cluster().new_database("lb")
    lb_port = free_port()
    backends = [Backend(data_dir, free_port(), lb_port, url) for _ in range(3)]
    backends[0].start()  # creates the schema, the TLS files, and remembers the database URL
    for backend in backends[1:]:
        backend.start()
    _run_cli(data_dir, "vault", "create", "lb-a", "--open", "--output", "json")
    created = _run_cli(data_dir, "principal", "create", "lb-app", "--port", str(lb_port),
                       "--output", "json")  # fmt: skip
    tls = data_dir / "tls"
    pem = root / "haproxy.pem"
    pem.write_bytes((tls / "server.pem").read_bytes() + (tls / "server-key.pem").read_bytes())
    env = dict(
        os.environ, STRONGROOM_LB_BIND=f"127.0.0.1:{lb_port}", STRONGROOM_LB_PEM=str(pem),
        STRONGROOM_LB_HOST="localhost",
        **{f"STRONGROOM_BACKEND_{i + 1}": f"127.0.0.1:{b.port}" for i, b in enumerate(backends)},
    )  # fmt: skip
    check = subprocess.run([haproxy, "-c", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
                           env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    log = open(root / "haproxy.log", "ab")  # noqa: SIM115
    proxy = subprocess.Popen(
        [haproxy, "-db", "-f", str(ROOT / "deploy" / "haproxy.cfg")], env=env, stdout=log,
        stderr=log,
    )  # fmt: skip
    found = Deployment(data_dir, lb_port, backends, created["tenantId"], created["clientId"],
                       created["clientSecret"])  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{found.authority}/ready", verify=found.tls()).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "HAProxy did not answer in 30 s"
            time.sleep(0.2)
        with ca_trusted(found.ca):
            yield found
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        for backend in backends:
            backend.stop()


def test_the_sdk_works_through_the_load_balancer_with_its_public_url(
    deployment: Deployment,
) -> None:
    client = deployment.client("lb-a")
    made = client.set_secret("through-lb", "balanced")
    # Ids name the address clients dial, not the port a backend listens on.
    assert made.id.startswith(f"https://lb-a.vault.localhost:{deployment.port}/secrets/through-lb/")
    assert client.get_secret("through-lb").value == "balanced"
    bare = httpx.get(f"{deployment.vault_url('lb-a')}/secrets", params={"api-version": "7.6"},
                     verify=deployment.tls())  # fmt: skip
    assert bare.status_code == 401
    challenge = bare.headers["www-authenticate"]
    assert f'resource="https://vault.localhost:{deployment.port}"' in challenge
    assert f'authorization="https://localhost:{deployment.port}/' in challenge
    # A server's own port knows the public URL too: the same ids from any backend.
    token = httpx.post(
        f"{deployment.authority}/{deployment.tenant_id}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": deployment.client_id,
              "client_secret": deployment.client_secret,
              "scope": f"https://vault.localhost:{deployment.port}/.default"},
        verify=deployment.tls(),
    ).json()["access_token"]  # fmt: skip
    for backend in deployment.backends:
        direct = httpx.get(
            f"http://127.0.0.1:{backend.port}/secrets/through-lb",
            params={"api-version": "7.6"},
            headers={"Host": f"lb-a.vault.localhost:{deployment.port}",
                     "Authorization": f"Bearer {token}"},
        )  # fmt: skip
        assert direct.status_code == 200
        assert direct.json()["id"].startswith(f"https://lb-a.vault.localhost:{deployment.port}/")


def test_only_the_load_balancers_forwarded_address_is_believed(deployment: Deployment) -> None:
    token = (
        deployment.client("lb-a")
        ._client._config.credential.get_token(  # type: ignore[attr-defined]
            f"https://vault.localhost:{deployment.port}/.default"
        )
        .token
    )
    backend = deployment.backends[0]

    def ask(tag: str, local: str, forwarded: str) -> None:
        with httpx.Client(transport=httpx.HTTPTransport(local_address=local)) as http:
            answer = http.get(
                f"http://127.0.0.1:{backend.port}/secrets/{tag}", params={"api-version": "7.6"},
                headers={"Host": f"lb-a.vault.localhost:{deployment.port}",
                         "Authorization": f"Bearer {token}", "X-Forwarded-For": forwarded},
            )  # fmt: skip
            assert answer.status_code == 404

    ask("from-the-balancer", "127.0.0.1", "203.0.113.7")  # 127.0.0.1 is --forwarded-allow
    ask("from-elsewhere", "127.0.0.2", "203.0.113.8")  # anyone else's header is ignored
    time.sleep(1.0)  # audit records are written in batches at most 0.5 s apart
    records = _run_cli(deployment.data_dir, "audit", "list", "--vault", "lb-a", "--output", "json")
    callers = {r["objectId"]: r["callerAddress"] for r in records if r.get("objectId")}
    assert callers["/secrets/from-the-balancer"] == "203.0.113.7"
    assert callers["/secrets/from-elsewhere"] == "127.0.0.2"


class Load:
    """Writers through the balancer, each write a new secret; what was acknowledged, and
    every failure the application saw (after the SDK's own retries)."""

    def __init__(self, deployment: Deployment, tag: str, threads: int = 2):
        self._deployment = deployment
        self._tag = tag
        self.acknowledged: dict[str, str] = {}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._write, args=(i,)) for i in range(threads)]

    def _write(self, index: int) -> None:
        client = self._deployment.client("lb-a")
        n = 0
        while not self._stop.is_set():
            name, value = f"{self._tag}-{index}-{n}", f"value-{index}-{n}"
            try:
                client.set_secret(name, value)
                self.acknowledged[name] = value
            except Exception as exc:  # what the application would see
                self.failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
            n += 1

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def check(self) -> None:
        assert self.failures == []
        client = self._deployment.client("lb-a")
        for name, value in self.acknowledged.items():
            assert client.get_secret(name).value == value


def test_a_backend_killed_under_load_loses_nothing(deployment: Deployment) -> None:
    victim = deployment.backends[1]
    with Load(deployment, "kill") as load:
        time.sleep(2)
        before = len(load.acknowledged)
        victim.stop(signal.SIGKILL)
        time.sleep(2)
        victim.start()
        time.sleep(2)
    assert before > 0 and len(load.acknowledged) > before
    load.check()
    print(f"kill: {len(load.acknowledged)} writes acknowledged, {len(load.failures)} failed")


def test_a_rolling_restart_of_every_backend_drops_nothing(deployment: Deployment) -> None:
    with Load(deployment, "roll") as load:
        time.sleep(1)
        for backend in deployment.backends:
            backend.stop(signal.SIGTERM)
            backend.start()
            time.sleep(0.5)
    assert len(load.acknowledged) > 0
    load.check()
    print(f"rolling restart: {len(load.acknowledged)} writes, {len(load.failures)} failed")


@pytest.mark.skipif(not (AZ and Path(AZ).exists()), reason="STRONGROOM_AZ names no az")
def test_az_works_through_the_load_balancer(deployment: Deployment, tmp_path: Path) -> None:
    config = tmp_path / "az"
    setup = subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", "az-setup", "--apply", "--az", AZ,
         "--data-dir", str(deployment.data_dir), "--port", str(deployment.port),
         "--client-id", deployment.client_id, "--client-secret", deployment.client_secret,
         "--config-dir", str(config)],
        capture_output=True, text=True, timeout=600, check=False,
        env={k: v for k, v in os.environ.items() if k != "STRONGROOM_DATABASE_URL"},
    )  # fmt: skip
    assert setup.returncode == 0, setup.stderr
    env = dict(os.environ, AZURE_CONFIG_DIR=str(config), REQUESTS_CA_BUNDLE=str(deployment.ca))

    def az(*args: str) -> Any:
        done = subprocess.run([AZ, *args, "--only-show-errors"], env=env, capture_output=True,
                              text=True, timeout=300, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    az("keyvault", "secret", "set", "--vault-name", "lb-a", "--name", "az-lb", "--value", "ok")
    shown = az("keyvault", "secret", "show", "--vault-name", "lb-a", "--name", "az-lb")
    assert shown["value"] == "ok"
    assert shown["id"].startswith(f"https://lb-a.vault.localhost:{deployment.port}/")
