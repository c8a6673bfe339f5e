"""A deployment is a file: `serve --config FILE` (TOML keyed by the options' names), the
STRONGROOM_<OPTION> environment over it, the command line over both; a wrong key is named."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow


def _serve(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    return subprocess.Popen(
        [sys.executable, "-m", "strongroom.cli.main", "serve", "--data-dir", str(data_dir), *args],
        env={**clean, "COLUMNS": "400", **(env or {})}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _answers(url: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return httpx.get(url, verify=False, timeout=2).status_code == 200  # noqa: S501
        except httpx.HTTPError:
            time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    out, _ = process.communicate(timeout=20)
    return out


def test_settings_come_from_the_file_then_the_environment_then_the_command_line(
    tmp_path: Path,
) -> None:
    file_port, env_port, metrics = free_port(), free_port(), free_port()
    config = tmp_path / "strongroom.toml"
    config.write_text(
        f'port = {file_port}\nmetrics-port = {metrics}\nbind = ["127.0.0.1"]\n'
        'log-level = "warning"\n'
    )
    server = _serve(tmp_path / "data", "--config", str(config))
    try:
        assert _answers(f"https://127.0.0.1:{file_port}/health")
        assert _answers(f"http://127.0.0.1:{metrics}/metrics")
    finally:
        _stop(server)
    # The environment wins over the file (STRONGROOM_CONFIG names the file as well).
    server = _serve(tmp_path / "data", env={"STRONGROOM_CONFIG": str(config),
                                            "STRONGROOM_PORT": str(env_port)})  # fmt: skip
    try:
        assert _answers(f"https://127.0.0.1:{env_port}/health")
    finally:
        _stop(server)
    # The command line wins over both.
    cli_port = free_port()
    server = _serve(tmp_path / "data", "--config", str(config), "--port", str(cli_port),
                    env={"STRONGROOM_PORT": str(env_port)})  # fmt: skip
    try:
        assert _answers(f"https://127.0.0.1:{cli_port}/health")
    finally:
        _stop(server)


def test_a_wrong_file_is_refused_with_what_to_fix(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("prot = 8443\n")
    done = _serve(tmp_path / "data", "--config", str(config))
    out, _ = done.communicate(timeout=30)
    assert done.returncode == 2
    assert "'prot' is not a setting of serve" in out and "port" in out
    config.write_text("port = [unclosed\n")
    done = _serve(tmp_path / "data", "--config", str(config))
    out, _ = done.communicate(timeout=30)
    assert done.returncode == 2 and "is not valid TOML" in out


def test_a_public_url_must_be_https_host_and_port(tmp_path: Path) -> None:
    done = _serve(tmp_path / "data", "--public-url", "http://kv.example.com")
    out, _ = done.communicate(timeout=30)
    assert done.returncode != 0 and "must start with https://" in out


def _worker_pids(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


def test_serve_runs_one_process_per_cpu_unless_told(tmp_path: Path) -> None:
    cpus = len(os.sched_getaffinity(0))
    port = free_port()
    server = _serve(tmp_path / "data", "--port", str(port))
    try:
        assert _answers(f"https://127.0.0.1:{port}/health")
        # The parent supervises; with more than one CPU, each worker is a child of it (the
        # crypto workers are the workers' children, not the parent's).
        workers = _worker_pids(server.pid)
        assert len(workers) == (cpus if cpus > 1 else 0)
    finally:
        out = _stop(server)
    assert (f"{cpus} worker processes" in out) == (cpus > 1), out
    # --test-clock moves one process's clock: without --workers it runs one.
    port = free_port()
    server = _serve(tmp_path / "data", "--port", str(port), "--test-clock")
    try:
        assert _answers(f"https://127.0.0.1:{port}/health")
        assert _worker_pids(server.pid) == []
    finally:
        out = _stop(server)
    assert "worker processes" not in out
    done = _serve(tmp_path / "data", "--test-clock", "--workers", "2")
    out, _ = done.communicate(timeout=30)
    assert done.returncode != 0 and "use it with --workers 1" in out
