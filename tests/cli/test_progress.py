"""Long work (``seed``, ``vault backup``, ``backup verify``, ``vault restore``) shows a progress
bar on a terminal, and nothing on standard error when that is not a terminal, with an explicit
``--output json`` or with ``--only-show-errors``: run in subprocesses on a local data directory
(no server), the terminal a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

SEED = "vaults:\n  - name: prog\n    secrets:\n" + "".join(
    f"      - {{name: s{i}, versions: [{{value: v{i}}}]}}\n" for i in range(12)
)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STRONGROOM_DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "strongroom.cli", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd, env=env,
    )  # fmt: skip


def on_a_terminal(*args: str, cwd: Path) -> tuple[str, str]:
    """Standard output (a pipe) and what the terminal (standard error) showed."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "STRONGROOM_DATABASE_URL"}
    env.update(TERM="xterm", COLUMNS="100")
    process = subprocess.Popen(
        [sys.executable, "-m", "strongroom.cli", *args],
        stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL, cwd=cwd, env=env,
    )  # fmt: skip
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command has ended
            break
        if not chunk:
            break
        shown += chunk
    assert process.stdout is not None
    out = process.stdout.read().decode()
    assert process.wait(timeout=120) == 0, (out, shown)
    os.close(leader)
    return out, shown.decode(errors="replace")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    (tmp_path / "seed.yaml").write_text(SEED)
    return tmp_path / "data"


def test_quiet_when_standard_error_is_not_a_terminal(tmp_path: Path, data: Path) -> None:
    d = ("--data-dir", str(data))
    seeded = run("seed", "seed.yaml", *d, cwd=tmp_path)
    assert seeded.returncode == 0 and seeded.stderr == "", seeded.stderr
    assert len(json.loads(seeded.stdout)["created"]) == 13
    made = run("vault", "backup", "-n", "prog", "--dir", "backups", *d, cwd=tmp_path)
    assert made.returncode == 0 and made.stderr == "", made.stderr
    folder = json.loads(made.stdout)["folder"]
    checked = run("backup", "verify", f"backups/{folder}", *d, "-o", "json", cwd=tmp_path)
    assert checked.returncode == 0 and checked.stderr == ""
    assert json.loads(checked.stdout)["verified"] is True
    restored = run("vault", "restore", "-n", "prog2", "--dir", "backups", "--folder", folder,
                   "--create", *d, cwd=tmp_path)  # fmt: skip
    assert restored.returncode == 0 and restored.stderr == "", restored.stderr
    assert json.loads(restored.stdout)["restored"] == 12
    # the dry run's summary is a note on standard error; --only-show-errors leaves it out
    args = ("vault", "restore", "-n", "prog2", "--dir", "backups", "--folder", folder,
            "--dry-run", *d)  # fmt: skip
    assert run(*args, cwd=tmp_path).stderr.strip() == "12 identical"
    quiet = run(*args, "--only-show-errors", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert {p["action"] for p in json.loads(quiet.stdout)} == {"identical"}


def test_a_progress_bar_on_a_terminal_unless_json_is_asked_for(tmp_path: Path, data: Path) -> None:
    d = ("--data-dir", str(data))
    out, shown = on_a_terminal("seed", "seed.yaml", *d, cwd=tmp_path)
    assert "seeding from seed.yaml" in shown
    assert len(json.loads(out)["created"]) == 13  # standard output holds only the result
    out, shown = on_a_terminal("vault", "backup", "-n", "prog", "--dir", "b", *d, cwd=tmp_path)
    assert "backing up prog" in shown
    folder = json.loads(out)["folder"]
    out, shown = on_a_terminal("backup", "verify", f"b/{folder}", *d, cwd=tmp_path)
    assert "verifying" in shown and json.loads(out)["verified"] is True
    out, shown = on_a_terminal("vault", "backup", "-n", "prog", "--dir", "b", *d, "-o", "json",
                               cwd=tmp_path)  # fmt: skip
    assert shown == "" and json.loads(out)["objects"] == 12
    out, shown = on_a_terminal("vault", "backup", "-n", "prog", "--dir", "b", *d,
                               "--only-show-errors", "-o", "table", cwd=tmp_path)  # fmt: skip
    assert shown == "" and "blobsWritten" in out
