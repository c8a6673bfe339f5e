"""`strongroom serve --ephemeral` as a CI step uses it: the environment it writes, used by the
unmodified SDK through that environment alone, and nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    env_file = tmp_path / "strongroom.env"
    process = subprocess.Popen(
        [sys.executable, "-m", "strongroom.cli.main", "serve", "--ephemeral",
         "--env-file", str(env_file), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not env_file.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return process, env_file


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def test_the_sdk_works_from_the_written_environment_alone(tmp_path: Path) -> None:
    process, env_file = _start(tmp_path, "--vault", "app", "--vault", "other")
    try:
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        # What a CI step gets from `. strongroom.env` in a shell.
        sourced = subprocess.run(
            ["bash", "-c", f'. "{env_file}" && env -0'], capture_output=True, check=True
        ).stdout.decode()
        shell = dict(item.split("=", 1) for item in sourced.split("\0") if "=" in item)
        exported = {k: v for k, v in shell.items() if k.startswith(("AZURE_", "STRONGROOM_"))}
        exported.update({k: shell[k] for k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")})
        assert exported["AZURE_TENANT_ID"] == "adfs"
        urls = exported["STRONGROOM_VAULT_URLS"].split(" ")
        assert exported["AZURE_KEYVAULT_URL"] == urls[0] and urls[0].startswith("https://app.")
        data_dir = Path(exported["STRONGROOM_DATA_DIR"])
        assert (data_dir / "EPHEMERAL").is_file()
        # A program that knows nothing of Strongroom: DefaultAzureCredential and the URL.
        program = (
            "import os; from azure.identity import DefaultAzureCredential; "
            "from azure.keyvault.secrets import SecretClient; "
            "c = SecretClient(os.environ['AZURE_KEYVAULT_URL'], "
            "DefaultAzureCredential(exclude_managed_identity_credential=True)); "
            "c.set_secret('from-env', 'works'); print(c.get_secret('from-env').value)"
        )
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "SSL_"))}
        clean.pop("REQUESTS_CA_BUNDLE", None)
        done = subprocess.run(
            [sys.executable, "-c", program], env={**clean, **exported},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.stdout.strip() == "works", done.stderr
    finally:
        _stop(process)
    assert not data_dir.exists() and not env_file.exists()


@pytest.mark.parametrize("form", ["dotenv", "json"])
def test_other_environment_formats(tmp_path: Path, form: str) -> None:
    process, env_file = _start(tmp_path, "--env-format", form)
    try:
        text = env_file.read_text()
        if form == "json":
            assert json.loads(text)["AZURE_TENANT_ID"] == "adfs"
        else:
            assert "AZURE_TENANT_ID=adfs\n" in text and "export" not in text
    finally:
        _stop(process)


def test_printed_environment_without_a_file(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "strongroom.cli.main", "serve", "--ephemeral"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline().decode()
        assert first.startswith("export AZURE_CLIENT_ID=")
    finally:
        _stop(process)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--data-dir", "somewhere"), "drop --data-dir"),
        (("--workers", "2"), "drop --workers"),
        (("--env-format", "xml"), "--env-format"),
        (("--vault", "x"), "vault name 'x' is invalid"),
    ],
)
def test_refusals(tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    temp = Path(tempfile.gettempdir())
    before = set(temp.glob("strongroom-ephemeral-*"))
    done = subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", "serve", "--ephemeral", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and words in done.stderr, done.stderr
    assert set(temp.glob("strongroom-ephemeral-*")) <= before  # nothing left


def test_vault_and_env_file_need_ephemeral(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", "serve", "--vault", "abc",
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and "go with --ephemeral" in done.stderr


SEED = Path(__file__).resolve().parents[2] / "examples" / "seed" / "example.yaml"


def test_a_seeded_ephemeral_server(tmp_path: Path) -> None:
    from azure.identity import ClientSecretCredential
    from azure.keyvault.keys import KeyClient
    from azure.keyvault.secrets import SecretClient

    process, env_file = _start(tmp_path, "--seed", str(SEED), "--env-format", "json")
    try:
        env = json.loads(env_file.read_text())
        assert env["AZURE_KEYVAULT_URL"].startswith("https://app.vault.localhost:")
        # The seed's principal with its fixed secret, on the seed's open vault.
        credential = ClientSecretCredential(
            env["STRONGROOM_TENANT_ID"], _client_id(env, "ci-bot"),
            "example-ci-bot-secret-0123456789", authority=env["STRONGROOM_AUTHORITY"],
            disable_instance_discovery=True, connection_verify=env["STRONGROOM_CA"],
        )  # fmt: skip
        secrets = SecretClient(
            env["AZURE_KEYVAULT_URL"], credential, connection_verify=env["STRONGROOM_CA"]
        )
        assert secrets.get_secret("db-password").value == "not-a-real-password"
        versions = list(secrets.list_properties_of_secret_versions("api-token"))
        assert len(versions) == 2
        keys = KeyClient(
            env["AZURE_KEYVAULT_URL"], credential, connection_verify=env["STRONGROOM_CA"]
        )
        assert keys.get_key("signing").key.crv == "P-256"
    finally:
        _stop(process)


def _client_id(env: dict[str, str], principal: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", "principal", "list",
         "--data-dir", env["STRONGROOM_DATA_DIR"]],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return next(p["clientId"] for p in json.loads(done.stdout) if p["name"] == principal)


def test_a_bad_seed_file_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("vaults:\n  - name: app\n    secrets:\n      - name: s\n        valeu: x\n")
    temp = Path(tempfile.gettempdir())
    before = set(temp.glob("strongroom-ephemeral-*"))
    done = subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", "serve", "--ephemeral", "--seed", str(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"{bad}:5:" in done.stderr and "valeu" in done.stderr, done.stderr
    assert set(temp.glob("strongroom-ephemeral-*")) <= before


def test_the_testing_api_takes_a_seed() -> None:
    from azure.keyvault.secrets import SecretClient

    from strongroom.testing import EphemeralServer

    with EphemeralServer(seed=SEED) as server:
        client = SecretClient(
            server.vault_url("app"), server.credential(), connection_verify=str(server.ca)
        )
        assert client.get_secret("db-password").value == "not-a-real-password"
