"""The examples a user starts from, run as a user would run them: the example project's own
test suite through the pytest plugin with two xdist workers, and the generic CI step
(`examples/ci/with-strongroom.sh`) exporting the ephemeral server's environment to the
unmodified Python SDK, the JavaScript SDK (Node.js) and `az`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    """This environment without any Azure settings or CA of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "STRONGROOM_"))}
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_example_projects_suite_with_two_workers() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-q"],
        cwd=EXAMPLES / "pytest-app", env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "6 passed" in done.stdout


def _wrapped(*command: str, extra: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(EXAMPLES / "ci" / "with-strongroom.sh"), "--vault", "app", "--", *command],
        env={**_env(), **(extra or {})}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_the_ci_step_gives_the_python_sdk_its_environment() -> None:
    assert _wrapped(sys.executable, str(EXAMPLES / "ci" / "check_sdk.py")).strip() == "hello"


def test_the_ci_step_gives_the_javascript_sdk_its_environment() -> None:
    if not (EXAMPLES / "js" / "node_modules").is_dir() or shutil.which("node") is None:
        if os.environ.get("STRONGROOM_REQUIRE_NODE"):
            pytest.fail("examples/js needs `npm ci` (make test does it)")
        pytest.skip("examples/js is not installed (npm ci --prefix examples/js)")
    out = _wrapped("npm", "test", "--prefix", str(EXAMPLES / "js"))
    assert "# pass 3" in out and "# fail 0" in out


def test_the_ci_step_gives_az_its_environment() -> None:
    az = os.environ.get("STRONGROOM_AZ", "")
    if not (az and Path(az).exists()):
        pytest.skip("STRONGROOM_AZ does not name an az executable (make test sets it)")
    out = _wrapped(str(EXAMPLES / "ci" / "check_az.sh"), extra={"AZ": az})
    assert out.strip().splitlines()[-1] == "hello"
