"""Runs the Azure SDK's own keyvault test suites, unmodified, live against a Strongroom server.

    .venv/bin/python conformance/run.py secrets          # or no name: every suite in suites.py

For each suite: installs the test dependencies if missing (``requirements.txt``), downloads the
suite's sdist from PyPI once and unpacks it afresh, starts ``strongroom serve`` on a free port
with a new data directory, one vault and one principal, runs ``pytest tests`` in the unpacked
sdist (``devtools_testutils`` here stands in for the SDK repository's helpers), and stops the
server. Then it writes ``docs/conformance.md`` and exits non-zero if a suite's pass rate is below
its number in ``baseline.json`` (``--write-baseline`` records the measured rates instead).

Everything a run makes lives under ``conformance/.work/`` (git-ignored); each suite's server log,
junit XML and pytest output stay there for reading after the run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fnmatch
import http.client
import json
import math
import os
import platform
import shutil
import socket
import ssl
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import ca
from packaging.requirements import Requirement
from suites import SUITES, Suite

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
WORK = HERE / ".work"
DOWNLOADS = WORK / "downloads"
REPORT = PROJECT / "docs" / "conformance.md"
BASELINE = HERE / "baseline.json"
VAULT = "conformance"

# Credentials and endpoints that would send the suites somewhere else (upstream's helpers and the
# suites' own preparers read them), removed from the tests' environment.
UNSET = (
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_AUTHORITY_HOST",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "KEYVAULT_TENANT_ID",
    "KEYVAULT_CLIENT_ID",
    "KEYVAULT_CLIENT_SECRET",
    "AZURE_MANAGEDHSM_URL",
    "AZURE_KEYVAULT_ATTESTATION_URL",
    "AZURE_TEST_USE_CLI_AUTH",
    "AZURE_TEST_USE_PWSH_AUTH",
    "PYTEST_ADDOPTS",
)


def log(message: str) -> None:
    print(f"[conformance] {message}", flush=True)


# --- Dependencies and sources -------------------------------------------------------------------


def ensure_requirements() -> None:
    """Installs requirements.txt into this interpreter's environment if any is missing."""
    missing = []
    for line in (HERE / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(line)
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            missing.append(line)
    if missing:
        log(f"installing {', '.join(missing)}")
        pip = [sys.executable, "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "-r", str(HERE / "requirements.txt")], check=True)


def unpack_suite(suite: Suite) -> Path:
    """The suite's sdist, downloaded once and unpacked afresh so its tests run unmodified."""
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    archive = DOWNLOADS / f"{suite.sdist_dir_name}.tar.gz"
    if not archive.exists():
        log(f"downloading {suite.distribution}=={suite.version}")
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:"),
                *("--no-deps", f"{suite.distribution}=={suite.version}", "-d", str(DOWNLOADS)),
            ],
            check=True,
        )
    target = WORK / suite.name / "src"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    sdist = target / suite.sdist_dir_name
    if suite.test_ca is not None:
        ca.write(sdist / suite.test_ca[0], sdist / suite.test_ca[1])
    return sdist


# --- The server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def strongroom(*args: str) -> dict[str, str]:
    command = [sys.executable, "-m", "strongroom.cli.main", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    return dict(json.loads(done.stdout))


@dataclass
class Azurite:
    """Azurite (the Azure Storage emulator, installed under tools/azurite by make) on loopback,
    with one account and one container, for suites whose tests need a blob container."""

    root: Path
    port: int = field(default_factory=free_port)
    account: str = "conformance"
    container: str = "backups"
    process: subprocess.Popen[bytes] | None = None

    @property
    def accounts_file(self) -> Path:
        return self.root / "azurite-accounts"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        """Starts it and makes the container; returns a SAS token for the container."""
        import base64

        from azure.storage.blob import (
            BlobServiceClient,
            ContainerSasPermissions,
            generate_container_sas,
        )

        launcher = PROJECT / "tools" / "azurite" / "launch.cjs"
        if not (launcher.parent / "node_modules").is_dir():
            raise RuntimeError("Azurite is not installed: run `make tools/azurite` (npm ci).")
        key = base64.b64encode(os.urandom(64)).decode()
        self.accounts_file.write_text(f"{self.account}:{key}")
        shutil.rmtree(self.root / "azurite", ignore_errors=True)  # an earlier run's blobs
        with open(self.root / "azurite.log", "wb") as azurite_log:
            self.process = subprocess.Popen(
                [
                    *("node", str(launcher), "--blobHost", "127.0.0.1"),
                    *("--blobPort", str(self.port), "--location", str(self.root / "azurite")),
                    *("--skipApiVersionCheck", "--disableTelemetry", "--silent"),
                ],
                env={**os.environ, "STRONGROOM_AZURITE_ACCOUNTS_FILE": str(self.accounts_file)},
                stdout=azurite_log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Azurite did not start") from None
                time.sleep(0.2)
        credential = {"account_name": self.account, "account_key": key}
        service = BlobServiceClient(f"{self.endpoint}/{self.account}", credential=credential)
        service.create_container(self.container)
        return generate_container_sas(
            self.account, self.container, account_key=key,
            permission=ContainerSasPermissions(read=True, write=True, list=True, create=True,
                                               delete=True),
            expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=6),
        )  # fmt: skip

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None


@dataclass
class Server:
    root: Path
    port: int = field(default_factory=free_port)
    principal: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    serve_args: tuple[str, ...] = ()

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def ca(self) -> Path:
        return self.data_dir / "tls" / "ca.pem"

    @property
    def authority(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def vault_url(self) -> str:
        return f"https://{VAULT}.vault.localhost:{self.port}"

    def start(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        admin = ("--data-dir", str(self.data_dir))
        strongroom("vault", "create", VAULT, "--open", *admin)
        self.principal = strongroom(
            "principal", "create", "conformance", *admin, "--port", str(self.port)
        )
        with open(self.root / "server.log", "wb") as server_log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "strongroom.cli.main", "serve", *admin),
                    *("--port", str(self.port), *self.serve_args),
                ],
                stdout=server_log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"strongroom serve exited with {self.process.returncode}")
            if self.ca.exists() and self._healthy():
                return
            time.sleep(0.2)
        raise RuntimeError("strongroom serve did not answer /health within 60 s")

    def _healthy(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca))
        connection = http.client.HTTPSConnection("localhost", self.port, context=context, timeout=2)
        try:
            connection.request("GET", "/health")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


# --- Running a suite ----------------------------------------------------------------------------


@dataclass
class Case:
    nodeid: str
    outcome: str  # passed | failed | skipped
    message: str = ""
    live: bool = False  # built a client for the server (else it ran against mocks)


@dataclass
class Result:
    suite: Suite
    cases: list[Case]
    excluded: dict[str, str]
    seconds: float
    pytest_exit: int
    package_file: str

    def count(self, outcome: str, *, live_only: bool = False) -> int:
        return sum(1 for c in self.cases if c.outcome == outcome and (c.live or not live_only))

    @property
    def pass_rate(self) -> float:
        applicable = self.count("passed") + self.count("failed")
        return self.count("passed") / applicable if applicable else 0.0


def suite_env(
    suite: Suite, server: Server, work: Path, storage: tuple[Azurite, str] | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")])),
            "AZURE_TEST_RUN_LIVE": "true",
            "AZURE_SKIP_LIVE_RECORDING": "true",
            "AZURE_KEYVAULT_URL": server.vault_url,
            "KEYVAULT_SKU": "premium",
            # CA trust through the environment: requests reads the first, aiohttp the second.
            "REQUESTS_CA_BUNDLE": str(server.ca),
            "SSL_CERT_FILE": str(server.ca),
            # Read by devtools_testutils.AzureRecordedTestCase.get_credential.
            "CONFORMANCE_TENANT_ID": server.principal["tenantId"],
            "CONFORMANCE_CLIENT_ID": server.principal["clientId"],
            "CONFORMANCE_CLIENT_SECRET": server.principal["clientSecret"],
            "CONFORMANCE_AUTHORITY": server.authority,
            "CONFORMANCE_RUN_ID": os.urandom(4).hex(),
            "CONFORMANCE_PLAN": str(work / "plan.json"),
            "CONFORMANCE_DESELECTED_DIR": str(work / "deselected"),
        }
    )
    if storage is not None:
        azurite, token = storage
        env.update(
            {
                "AZURE_MANAGEDHSM_URL": server.vault_url,
                "BLOB_STORAGE_URL": f"{azurite.endpoint}/{azurite.account}",
                "BLOB_CONTAINER_NAME": azurite.container,
                "BLOB_STORAGE_SAS_TOKEN": token,
            }
        )
    if suite.max_sleep is not None:
        env["CONFORMANCE_MAX_SLEEP"] = str(suite.max_sleep)
    env.update(suite.env)
    return env


def xdist_available() -> bool:
    try:
        metadata.version("pytest-xdist")
    except metadata.PackageNotFoundError:
        return False
    return True


def run_suite(suite: Suite, workers: str, pytest_args: list[str]) -> Result:
    work = WORK / suite.name
    sdist = unpack_suite(suite)
    shutil.rmtree(work / "deselected", ignore_errors=True)
    (work / "deselected").mkdir(parents=True)
    plan = {
        "exclude": [{"pattern": e.pattern, "reason": e.reason} for e in suite.exclusions],
        "first": list(suite.slow),
    }
    (work / "plan.json").write_text(json.dumps(plan, indent=1))
    junit = work / "junit.xml"
    junit.unlink(missing_ok=True)

    server = Server(work)
    azurite: Azurite | None = None
    storage: tuple[Azurite, str] | None = None
    if suite.managed_hsm_with_storage:
        azurite = Azurite(work)
        storage = (azurite, azurite.start())
        server.serve_args = (
            *("--azurite-accounts-file", str(azurite.accounts_file)),
            *("--azurite-blob-endpoint", azurite.endpoint),
        )
    log(f"{suite.name}: starting strongroom on port {server.port}")
    try:
        server.start()
    except BaseException:
        if azurite is not None:
            azurite.stop()
        raise
    try:
        env = suite_env(suite, server, work, storage)
        # Run from the sdist's root, as upstream does: its azure/ package (the version the tests
        # were written for) comes first on sys.path, extended by the installed azure.* packages.
        probe = "import azure.keyvault as k; print(k.__path__[0])"
        package_file = subprocess.run(
            [sys.executable, "-c", probe], cwd=sdist, env=env, capture_output=True, text=True
        ).stdout.strip()
        command = [
            *(sys.executable, "-m", "pytest", *suite.paths, "--ignore=tests/perfstress_tests"),
            *("-c", str(HERE / "pytest.ini"), "--rootdir", str(sdist)),
            *(f"--junitxml={junit}", "-q"),
        ]
        workers = suite.workers or workers
        if workers != "0" and xdist_available():
            # loadgroup hands out one test at a time from the start, so the tests the plan puts
            # first land on different workers (load would give them all to the first).
            command += ["-n", workers, "--dist", "loadgroup"]
        command += pytest_args
        log(f"{suite.name}: {' '.join(command[1:])}")
        started = time.monotonic()
        with open(work / "pytest.log", "w") as out:
            done = subprocess.run(command, cwd=sdist, env=env, stdout=out, stderr=subprocess.STDOUT)
        seconds = time.monotonic() - started
    finally:
        server.stop()
        if azurite is not None:
            azurite.stop()

    excluded: dict[str, str] = {}
    for path in (work / "deselected").glob("*.json"):
        excluded.update(json.loads(path.read_text()))
    cases = read_junit(junit, sdist) if junit.exists() else []
    result = Result(suite, cases, excluded, seconds, done.returncode, package_file)
    log(
        f"{suite.name}: {result.count('passed')} passed, {result.count('failed')} failed, "
        f"{result.count('skipped')} skipped, {len(excluded)} excluded in {seconds:.0f} s "
        f"(pytest exit {done.returncode}; output in {work / 'pytest.log'})"
    )
    return result


def read_junit(path: Path, root: Path) -> list[Case]:
    cases = []
    # The XML is the junit report pytest wrote in this run, not input from elsewhere.
    for testcase in ET.parse(path).getroot().iter("testcase"):  # noqa: S314
        live = testcase.find("properties/property[@name='live']") is not None
        cases.append(Case(node_id(testcase, root), *outcome(testcase), live=live))
    return cases


def node_id(testcase: ET.Element, root: Path) -> str:
    """The pytest node id back from junit's dotted ``classname`` and ``name``.

    (The ``file`` attribute will not do: for a test wrapped by a preparer it names the module
    that defines the wrapper, e.g. ``tests/_test_case.py``.)
    """
    parts = testcase.get("classname", "").split(".")
    for split in range(len(parts), 0, -1):
        module = Path(*parts[:split]).with_suffix(".py")
        if (root / module).is_file():
            return "::".join([module.as_posix(), *parts[split:], testcase.get("name", "")])
    return "::".join([*parts, testcase.get("name", "")])


def outcome(testcase: ET.Element) -> tuple[str, str]:
    failure = testcase.find("failure")
    if failure is None:
        failure = testcase.find("error")
    if failure is not None:
        return "failed", first_line(failure)
    skipped = testcase.find("skipped")
    if skipped is not None:
        return "skipped", first_line(skipped)
    return "passed", ""


def first_line(element: ET.Element) -> str:
    message = element.get("message") or (element.text or "").strip()
    line = message.strip().splitlines()[0] if message.strip() else element.tag
    return line if len(line) <= 300 else line[:297] + "..."


# --- Report and baseline ------------------------------------------------------------------------


def versions() -> str:
    names = ("azure-core", "azure-identity", "pytest", "pytest-asyncio", "aiohttp", "requests")
    found = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return ", ".join(found)


def git_head() -> str:
    done = subprocess.run(
        ["git", "-C", str(PROJECT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


def md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(results: list[Result], baseline: dict[str, float], total_seconds: float) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Azure SDK conformance",
        "",
        "The Azure SDK for Python's own keyvault test suites, unmodified, run live against a",
        "Strongroom server. Regenerate with `.venv/bin/python conformance/run.py` (one suite:",
        "`conformance/run.py secrets`); `conformance/run.py --help` lists the options.",
        "",
        f"Run {now} on commit {git_head()} (work tree may differ), Python "
        f"{platform.python_version()}, {versions()}. Wall time {total_seconds:.0f} s.",
        "",
        "| suite | version | passed | failed | skipped | excluded | pass rate | baseline "
        "| against the server | time |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        base = baseline.get(r.suite.name)
        lines.append(
            f"| {r.suite.name} | {r.suite.distribution} {r.suite.version} "
            f"| {r.count('passed')} | {r.count('failed')} | {r.count('skipped')} "
            f"| {len(r.excluded)} | {r.pass_rate:.1%} "
            f"| {'-' if base is None else f'{base:.1%}'} "
            f"| {r.count('passed', live_only=True)} passed, "
            f"{r.count('failed', live_only=True)} failed | {r.seconds:.0f} s |"
        )
    lines += [
        "",
        "Pass rate is passed / (passed + failed): skipped and excluded tests do not apply. Live,",
        "the suites run only the default API version, so other versions' parametrisations skip.",
        "A test that errors in setup or teardown counts as failed. *Against the server* counts the",
        "tests that built a client for the server through the harness's credential; the others",
        "exercise the client library against mocks (challenge parsing, polling, models).",
    ]
    for r in results:
        lines += ["", f"## {r.suite.name}", ""]
        package = Path(r.package_file)
        where = package.relative_to(PROJECT) if package.is_relative_to(PROJECT) else package
        lines.append(f"`azure.keyvault` imported from `{md(str(where))}` (the unpacked sdist);")
        lines.append(f"pytest exit code {r.pytest_exit}.")
        if r.suite.paths != ("tests",):
            shown = ", ".join(f"`{md(p)}`" for p in r.suite.paths)
            lines += ["", f"Tests run: {shown}."]
        if r.suite.managed_hsm_with_storage:
            lines += [
                "",
                "The vault serves as the suite's Managed HSM (`AZURE_MANAGEDHSM_URL`); Azurite "
                "gives the blob container, the server holding its account's key for the tests "
                "that use a managed identity.",
            ]
        if r.suite.max_sleep is not None:
            lines += [
                "",
                f"The tests' fixed sleeps (waits for the real service) are capped at "
                f"{r.suite.max_sleep:g} s in the test process (`CONFORMANCE_MAX_SLEEP`).",
            ]
        lines += ["", "### Excluded", ""]
        if r.suite.exclusions:
            lines += ["| pattern | reason | tests |", "| --- | --- | ---: |"]
            reasons = Counter(r.excluded.values())
            for e in r.suite.exclusions:
                lines.append(f"| `{md(e.pattern)}` | {md(e.reason)} | {reasons[e.reason]} |")
        else:
            lines.append(
                "Nothing: no test in this suite needs a Managed HSM or attestation service."
            )
        lines += ["", "### Skipped, by reason", "", "| reason | tests |", "| --- | ---: |"]
        skips = Counter(c.message for c in r.cases if c.outcome == "skipped")
        for reason, n in skips.most_common():
            lines.append(f"| {md(reason)} | {n} |")
        lines += ["", "### Failures", ""]
        failures = [c for c in r.cases if c.outcome == "failed"]
        if failures:
            lines += ["| test | first error line | known cause |", "| --- | --- | --- |"]
            for c in sorted(failures, key=lambda c: c.nodeid):
                cause = next(
                    (
                        text
                        for pattern, text in r.suite.diagnoses.items()
                        if fnmatch.fnmatchcase(c.nodeid, pattern)
                    ),
                    "",
                )
                lines.append(f"| `{md(c.nodeid)}` | {md(c.message)} | {md(cause)} |")
        else:
            lines.append("None.")
    return "\n".join(lines) + "\n"


def main() -> int:
    argv = sys.argv[1:]
    pytest_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Arguments after -- go to pytest, e.g. -- -k crud",
    )
    parser.add_argument("suites", nargs="*", help=f"of {', '.join(SUITES)} (default: all)")
    parser.add_argument(
        "-n",
        "--workers",
        default="4",
        help="pytest-xdist workers sharing the one server; the tests mostly wait, so more than"
        " the CPUs pays ('0': no xdist; default: 4)",
    )
    parser.add_argument(
        "--write-baseline", action="store_true", help="record the measured pass rates"
    )
    parser.add_argument("--no-report", action="store_true", help="leave docs/conformance.md")
    args = parser.parse_args(argv)
    unknown = [name for name in args.suites if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite {', '.join(unknown)}; known: {', '.join(SUITES)}")

    started = time.monotonic()
    ensure_requirements()
    results = [run_suite(SUITES[name], args.workers, pytest_args) for name in args.suites or SUITES]
    total = time.monotonic() - started

    baseline: dict[str, float] = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    if args.write_baseline:
        # Rounded down, so that the run that wrote the baseline meets it.
        baseline.update({r.suite.name: math.floor(r.pass_rate * 1e4) / 1e4 for r in results})
        BASELINE.write_text(json.dumps(baseline, indent=2, sort_keys=True) + "\n")
    if not args.no_report:
        REPORT.parent.mkdir(exist_ok=True)
        REPORT.write_text(render(results, baseline, total))
        log(f"report: {REPORT}")
    log(f"wall time {total:.0f} s")

    status = 0
    for r in results:
        if r.pytest_exit not in (0, 1) or not r.cases:
            log(f"{r.suite.name}: pytest did not run the suite (exit {r.pytest_exit})")
            status = 2
        below = r.pass_rate + 1e-9 < baseline.get(r.suite.name, 0.0)
        if below:
            log(f"{r.suite.name}: pass rate {r.pass_rate:.2%} is below the baseline")
            status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
