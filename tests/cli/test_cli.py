"""The ``strongroom`` command: administration and the SDK-backed secret commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from strongroom.cli.main import app
from tests.conftest import Server

runner = CliRunner()


@pytest.fixture
def profile(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "profile.json"
    monkeypatch.setenv("STRONGROOM_PROFILE", str(path))
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"):
        monkeypatch.delenv(name, raising=False)
    ok(
        "principal", "create", f"cli-{tmp_path.name}", "--save-profile",
        "--data-dir", str(server.data_dir), "--port", str(server.port),
    )  # fmt: skip
    monkeypatch.chdir(tmp_path)
    return path


def run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def ok(*args: str) -> Any:
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout) if result.stdout.strip().startswith(("{", "[")) else None


def failed(*args: str) -> str:
    result = run(*args)
    assert result.exit_code != 0
    return str(result.stderr)


def test_principal_create_prints_credentials_and_saves_profile(
    server: Server, profile: Path
) -> None:
    saved = json.loads(profile.read_text())
    assert saved["tenantId"] == server.tenant_id
    assert saved["vaultDnsSuffix"] == f"vault.localhost:{server.port}"
    assert profile.stat().st_mode & 0o777 == 0o600
    listed = ok("principal", "list", "--data-dir", str(server.data_dir))
    assert saved["clientId"] in [p["clientId"] for p in listed]
    assert all("clientSecret" not in p for p in listed)


def test_secret_lifecycle(profile: Path) -> None:
    made = ok("secret", "set", "--vault-name", "vault-a", "--name", "cli-one", "--value", "v1")
    assert made["value"] == "v1"
    assert made["name"] == "cli-one"
    ok("secret", "set", "--vault-name", "vault-a", "--name", "cli-one", "--value", "v2")
    assert ok("secret", "show", "--vault-name", "vault-a", "--name", "cli-one")["value"] == "v2"
    versions = ok("secret", "list-versions", "--vault-name", "vault-a", "--name", "cli-one")
    assert len(versions) == 2
    old = ok(
        "secret", "show", "--vault-name", "vault-a", "--name", "cli-one",
        "--version", made["id"].rsplit("/", 1)[1],
    )  # fmt: skip
    assert old["value"] == "v1"
    updated = ok(
        "secret", "update", "--vault-name", "vault-a", "--name", "cli-one", "--tags", "team=ops"
    )
    assert updated["tags"] == {"team": "ops"}
    assert "cli-one" in [s["name"] for s in ok("secret", "list", "--vault-name", "vault-a")]

    deleted = ok("secret", "delete", "--vault-name", "vault-a", "--name", "cli-one")
    assert deleted["recoveryId"].endswith("/deletedsecrets/cli-one")
    ok("secret", "recover", "--vault-name", "vault-a", "--name", "cli-one")
    ok("secret", "delete", "--vault-name", "vault-a", "--name", "cli-one")
    assert run("secret", "purge", "--vault-name", "vault-a", "--name", "cli-one").exit_code == 0
    error = failed("secret", "show", "--vault-name", "vault-a", "--name", "cli-one")
    assert error.startswith("(SecretNotFound) ")


def test_set_from_file_and_table_output(profile: Path, tmp_path: Path) -> None:
    source = tmp_path / "value.txt"
    source.write_text("from-a-file")
    ok("secret", "set", "--vault-name", "vault-a", "--name", "cli-file", "--file", str(source))
    table = run("secret", "show", "--vault-name", "vault-a", "--name", "cli-file", "-o", "table")
    assert table.exit_code == 0
    assert "from-a-file" in table.stdout
    assert "─" in table.stdout or "-" in table.stdout


def test_backup_auto_named_force_and_restore(profile: Path, tmp_path: Path) -> None:
    ok("secret", "set", "--vault-name", "vault-a", "--name", "cli-bk", "--value", "x1")
    ok("secret", "set", "--vault-name", "vault-a", "--name", "cli-bk", "--value", "x2")
    written = ok("secret", "backup", "--vault-name", "vault-a", "--name", "cli-bk")
    path = Path(written["file"])
    assert path.parent == tmp_path
    assert path.name.startswith("vault-a-cli-bk-") and path.name.endswith(".blob")
    assert path.read_bytes()[:4] == b"SRBK"

    error = failed("secret", "backup", "--vault-name", "vault-a", "--name", "cli-bk",
                   "--file", str(path))  # fmt: skip
    assert error.startswith("(FileExists) ")
    before = path.read_bytes()
    ok("secret", "backup", "--vault-name", "vault-a", "--name", "cli-bk", "--file", str(path),
       "--force")  # fmt: skip
    assert path.read_bytes() != before  # a fresh blob (new salt and nonce)

    restored = ok("secret", "restore", "--vault-name", "vault-b", "--file", str(path))
    assert restored["id"].split("/")[2].startswith("vault-b.")
    shown = ok("secret", "show", "--vault-name", "vault-b", "--name", "cli-bk")
    assert shown["value"] == "x2"
    assert len(ok("secret", "list-versions", "--vault-name", "vault-b", "--name", "cli-bk")) == 2

    again = failed("secret", "restore", "--vault-name", "vault-b", "--file", str(path))
    assert again.startswith("(Conflict) ")


def test_restore_of_a_damaged_file_names_the_cause(profile: Path, tmp_path: Path) -> None:
    ok("secret", "set", "--vault-name", "vault-a", "--name", "cli-dmg", "--value", "x")
    path = tmp_path / "dmg.blob"
    ok("secret", "backup", "--vault-name", "vault-a", "--name", "cli-dmg", "--file", str(path))
    path.write_bytes(path.read_bytes()[:-10])
    error = failed("secret", "restore", "--vault-name", "vault-b", "--file", str(path))
    assert error.startswith("(BadParameter) The backup blob is corrupted")


def test_admin_commands(server: Server) -> None:
    data = ["--data-dir", str(server.data_dir)]
    info = ok("info", *data, "--port", str(server.port))
    assert info["tenantId"] == server.tenant_id
    assert Path(info["caPath"]) == server.ca
    shell = run("info", "--shell", *data)
    assert (
        shell.stdout.strip() == f"export REQUESTS_CA_BUNDLE={server.ca} SSL_CERT_FILE={server.ca}"
    )
    made = ok("vault", "create", "cli-made", "--retention-days", "30", *data)
    assert made["softDeleteRetentionInDays"] == 30
    assert made["recoveryLevel"] == "CustomizedRecoverable+Purgeable"
    assert ok("vault", "show", "cli-made", *data)["id"] == made["id"]
    assert "cli-made" in [v["name"] for v in ok("vault", "list", *data)]
    assert failed("vault", "create", "cli-made", *data).startswith("(VaultAlreadyExists) ")
    assert failed("vault", "create", "9starts-with-digit", *data).startswith("(BadParameter) ")
    assert failed("vault", "create", "ok-name", "--retention-days", "3", *data).startswith(
        "(BadParameter) "
    )
    assert failed("vault", "delete", "cli-made", *data).startswith("(BadParameter) ")
    ok("vault", "delete", "cli-made", "--yes", *data)
    assert failed("vault", "show", "cli-made", *data).startswith("(VaultNotFound) ")


def test_no_credentials_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRONGROOM_PROFILE", str(tmp_path / "none.json"))
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"):
        monkeypatch.delenv(name, raising=False)
    error = failed("secret", "show", "--vault-name", "vault-a", "--name", "x")
    assert error.startswith("(NoCredentials) ")
