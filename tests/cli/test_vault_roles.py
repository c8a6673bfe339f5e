"""`strongroom vault role assignment`: the operator's refusals name what to fix, and write
nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"


def _run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--role", "Nope", "--assignee", "p1"), "(BadParameter) The role definition id 'Nope'"),
        (("--role", "Key Vault Secrets User", "--assignee", "nobody"), "(PrincipalNotFound)"),
        (("--role", SECRETS_USER, "--assignee", "p1", "--scope", "/bogus/x"),
         "(BadParameter) The scope '/bogus/x' is not valid"),
        (("--role", SECRETS_USER, "--assignee", "p1", "--name", "notaguid"),
         "(BadParameter) The role assignment name 'notaguid' is not valid"),
        (("--role", SECRETS_USER, "--assignee", "p1", "--scope", "/secrets/" + "s" * 200),
         "(BadParameter)"),
    ],
)  # fmt: skip
def test_bad_assignments_are_refused_and_nothing_is_written(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    data = tmp_path / "data"
    assert _run(data, "vault", "create", "rbacv", "--enable-rbac-authorization").returncode == 0
    assert _run(data, "principal", "create", "p1").returncode == 0
    done = _run(data, "vault", "role", "assignment", "create", "-n", "rbacv", *args)
    assert done.returncode != 0
    assert expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    listed = _run(data, "vault", "role", "assignment", "list", "-n", "rbacv")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def test_unknown_vault_and_assignment_are_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _run(data, "vault", "create", "rbacv", "--enable-rbac-authorization").returncode == 0
    done = _run(data, "vault", "role", "assignment", "list", "-n", "nosuch")
    assert done.returncode != 0 and "(VaultNotFound)" in done.stderr
    done = _run(data, "vault", "role", "assignment", "delete", "-n", "rbacv",
                "--name", "00000000-0000-4000-8000-000000000001")  # fmt: skip
    assert done.returncode != 0 and "(RoleAssignmentNotFound)" in done.stderr
