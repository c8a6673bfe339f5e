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
