"""``strongroom seed`` and ``strongroom vault export --plaintext-for-tests`` on local data
directories (no server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from strongroom.cli.main import app
from strongroom.config import EPHEMERAL_MARKER

runner = CliRunner()

SEED = """\
principals:
  - name: ci
    secret: ci-fixed-secret-0123456789
  - name: generated
vaults:
  - name: app
    secrets:
      - name: db-password
        versions: [{value: one}, {value: two, contentType: text/plain}]
    keys:
      - {name: signing, kty: EC, crv: P-256}
  - name: locked
    open: false
    accessPolicies:
      - {principal: ci, permissions: {secrets: [get, list]}}
"""


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(*args: str) -> Any:
    result = run(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def refused(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 1, result.stdout
    assert result.stdout == ""
    return str(result.stderr)


def seeded(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (tmp_path / "seed.yaml").write_text(SEED)
    ok("seed", str(tmp_path / "seed.yaml"), "--data-dir", str(data))
    return data


def test_seed_prints_what_it_made_and_the_generated_secret(tmp_path: Path) -> None:
    path, data = tmp_path / "seed.yaml", tmp_path / "data"
    path.write_text(SEED)
    report = ok("seed", str(path), "--data-dir", str(data))
    assert {(o["kind"], o.get("vault"), o["name"]) for o in report["created"]} == {
        ("principal", None, "ci"), ("principal", None, "generated"), ("vault", None, "app"),
        ("secret", "app", "db-password"), ("key", "app", "signing"), ("vault", None, "locked"),
        ("accessPolicy", "locked", "ci"),
    }  # fmt: skip
    assert report["kept"] == []
    assert report["principals"]["ci"]["clientSecret"] is None
    assert len(report["principals"]["generated"]["clientSecret"]) >= 32
    assert report["tenantId"] == ok("info", "--data-dir", str(data))["tenantId"]
    listed = ok("principal", "list", "--data-dir", str(data))
    assert {p["name"]: p["clientId"] for p in listed} == {
        name: p["clientId"] for name, p in report["principals"].items()
    }
    shown = ok("vault", "show", "locked", "--data-dir", str(data))
    assert not shown["openToAllPrincipals"]
    assert [p["principal"] for p in shown["accessPolicies"]] == ["ci"]

    again = ok("seed", str(path), "--data-dir", str(data))
    assert again["created"] == []
    assert len(again["kept"]) == len(report["created"])


def test_a_bad_seed_file_names_its_line_and_opens_nothing(tmp_path: Path) -> None:
    path, data = tmp_path / "seed.yaml", tmp_path / "data"
    path.write_text(SEED.replace("crv: P-256", "crv: P-999"))
    message = refused("seed", str(path), "--data-dir", str(data))
    assert f"(BadParameter) {path}:11: Curve 'P-999' is not supported" in message
    assert not data.exists()


def test_export_is_refused_on_an_installation_that_is_not_ephemeral(tmp_path: Path) -> None:
    data = seeded(tmp_path)
    message = refused("vault", "export", "-n", "app", "--plaintext-for-tests", "--data-dir",
                      str(data))  # fmt: skip
    assert message.startswith("(ExportRefused) ")
    assert "not ephemeral" in message and EPHEMERAL_MARKER in message
    # Without the flag there is nothing to export, ephemeral or not.
    (data / EPHEMERAL_MARKER).write_text("")
    message = refused("vault", "export", "-n", "app", "--data-dir", str(data))
    assert message.startswith("(ExportRefused) The only export is --plaintext-for-tests")


def test_export_of_an_ephemeral_installation_seeds_another(tmp_path: Path) -> None:
    data = seeded(tmp_path)
    (data / EPHEMERAL_MARKER).write_text("")
    printed = ok("vault", "export", "-n", "app", "--plaintext-for-tests", "--data-dir", str(data))
    secret = printed["vaults"][0]["secrets"][0]
    assert [v["value"] for v in secret["versions"]] == ["one", "two"]
    assert "d" in printed["vaults"][0]["keys"][0]["jwk"]  # the private key

    out = tmp_path / "locked.yaml"
    args = ("vault", "export", "-n", "locked", "--plaintext-for-tests", "--data-dir", str(data))
    written = ok(*args, "--out", str(out))
    assert written["file"] == str(out.resolve())
    assert out.stat().st_mode & 0o777 == 0o600
    assert refused(*args, "--out", str(out)).startswith("(FileExists)")
    ok(*args, "--out", str(out), "--force")

    other = tmp_path / "other"
    (tmp_path / "app.json").write_text(json.dumps(printed))
    made = ok("seed", str(tmp_path / "app.json"), "--data-dir", str(other))
    assert ("secret", "db-password") in {(o["kind"], o["name"]) for o in made["created"]}
    made = ok("seed", str(out), "--data-dir", str(other))
    assert ("accessPolicy", "ci") in {(o["kind"], o["name"]) for o in made["created"]}
    assert made["principals"]["ci"]["clientSecret"] is not None  # made anew, with a new secret
    (other / EPHEMERAL_MARKER).write_text("")
    assert ok("vault", "export", "-n", "app", "--plaintext-for-tests", "--data-dir",
              str(other)) == printed  # fmt: skip
