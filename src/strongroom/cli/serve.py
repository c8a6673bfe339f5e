"""``strongroom serve``: the server (``--ephemeral``: a throwaway one for tests and CI).

Kept apart from the other commands, with only what serving needs imported at the top, because
``strongroom serve`` starts through ``cli.entry`` without importing them: an ephemeral server
must answer within a second of its start (bench/ephemeral_startup.py).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

import typer

from strongroom import logs
from strongroom.cli.output import errors, fail
from strongroom.cli.shared import (
    DataDir,
    remember_database_url,
    remembered_database_url,
    settings_for,
)
from strongroom.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_VAULT_SUFFIX,
    MAX_WORKERS,
    Settings,
    default_workers,
    parse_public_url,
)
from strongroom.services.installation import Installation, open_installation

Suffix = typer.Option(
    None,
    "--vault-suffix",
    help=f"DNS suffix of vault hosts (default {DEFAULT_VAULT_SUFFIX}; with --public-url "
    "https://HOST, vault.HOST).",
)
# Every option of serve may also come from STRONGROOM_<OPTION> (STRONGROOM_METRICS_PORT=9464)
# or from the --config file; the command line wins over the environment, which wins over
# the file.
CONTEXT = {"auto_envvar_prefix": "STRONGROOM"}


def _load_config(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """The TOML file's settings become the defaults of serve's options (a key is an option's
    long name: ``metrics-port = 9464``, ``backup-storage = ["https://..."]``)."""
    if value is None:
        return None
    try:
        data = tomllib.loads(value.read_text())
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {value}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise typer.BadParameter(f"{value} is not valid TOML: {exc}") from exc
    known = {p.name for p in ctx.command.params if p.name and p.name != "config"}
    table: dict[str, object] = {}
    for key, setting in data.items():
        name = key.replace("-", "_")
        if name not in known:
            names = ", ".join(sorted(n.replace("_", "-") for n in known))
            raise typer.BadParameter(f"{value}: '{key}' is not a setting of serve; use {names}.")
        table[name] = setting
    ctx.default_map = {**(ctx.default_map or {}), **table}
    return value


def _listen_failed(exc: Exception) -> NoReturn:
    fail("ListenFailed", f"{exc} Is another server using the port? Choose one with --port.")


def serve(
    config: Path | None = typer.Option(
        None,
        "--config",
        envvar="STRONGROOM_CONFIG",
        is_eager=True,
        callback=_load_config,
        help="A TOML file of settings, keyed by these options' names (port = 8443, workers = 2, "
        'database-url = "postgresql://...", public-url = "https://kv.example.com").',
    ),
    data_dir: Path | None = DataDir,
    port: int | None = typer.Option(
        None, "--port", help=f"HTTPS port (default {DEFAULT_PORT}; with --ephemeral a free one)."
    ),
    vault_suffix: str | None = Suffix,
    public_url: str | None = typer.Option(
        None,
        "--public-url",
        help="What clients dial, https://HOST[:PORT] (a load balancer's address): ids, nextLink, "
        "the 401 challenge's resource, token audiences and the issuer use it, whatever port "
        "this process listens on (--port).",
    ),
    bind: list[str] = typer.Option(
        ["127.0.0.1", "::1"], "--bind", help="An address to listen on; repeat for more."
    ),
    plain_http: bool = typer.Option(
        False,
        "--plain-http",
        help="Listen without TLS, for a load balancer in front that terminates it (set "
        "--public-url to its https:// address).",
    ),
    forwarded_allow: list[str] = typer.Option(
        [],
        "--forwarded-allow",
        help="A load balancer's address whose X-Forwarded-For names the client (for the audit "
        "log and throttling); repeat for more. Nobody else's header is believed.",
    ),
    tls_cert: Path | None = typer.Option(None, help="Your own certificate (PEM, with chain)."),
    tls_key: Path | None = typer.Option(None, help="The key of --tls-cert (PEM)."),
    log_level: str = typer.Option(
        "warning",
        help="Log level (debug, info, warning, error); info logs one line per data-plane "
        "request (request id, principal, vault, operation, status, duration).",
    ),
    log_format: str = typer.Option(
        "text", "--log-format", help="text, or json: one JSON object per line."
    ),
    test_clock: bool = typer.Option(
        False, "--test-clock", help="Tests only: a clock moved by POST /admin/clock/advance."
    ),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        envvar="STRONGROOM_DATABASE_URL",
        help="PostgreSQL (postgresql://user@host/db) instead of the SQLite file in the data "
        "dir; several servers may share it. Set it for the other commands as "
        "STRONGROOM_DATABASE_URL.",
    ),
    azurite_accounts_file: Path | None = typer.Option(
        None,
        envvar="STRONGROOM_AZURITE_ACCOUNTS_FILE",
        help="Managed storage accounts: the file holding Azurite's AZURITE_ACCOUNTS text "
        "(account:key1:key2;...), which key regeneration rewrites. Start Azurite with "
        "tools/azurite/launch.cjs so that it follows the file.",
    ),
    azurite_blob_endpoint: str | None = typer.Option(
        None,
        envvar="STRONGROOM_AZURITE_BLOB_ENDPOINT",
        help="Azurite's blob endpoint (e.g. http://127.0.0.1:10000): a key regeneration then "
        "returns once Azurite accepts the new key.",
    ),
    backup_storage: list[str] = typer.Option(
        [],
        "--backup-storage",
        help="A blob storage endpoint (URL) whole-vault backups may be written to, besides "
        "Azure's *.blob.core.windows.net and --azurite-blob-endpoint; repeat for more. The "
        "server connects to no other storage.",
    ),
    job_stale_seconds: float = typer.Option(
        30.0,
        "--job-stale-seconds",
        min=5.0,
        help="A backup or restore job whose server has shown no sign of it for this long "
        "(it stopped) reads as Failed.",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        max=MAX_WORKERS,
        help="Server processes sharing the port, the kernel spreading connections among them, "
        "each with its own event loop. They take the database's write lock in turn and keep "
        "their caches consistent with each other's writes. Default: one per CPU this process "
        "may run on (1 with --ephemeral or --test-clock).",
    ),
    ephemeral: bool = typer.Option(
        False,
        "--ephemeral",
        help="A throwaway server for tests and CI: everything in a temporary directory removed "
        "at exit, a principal, the --vault vaults, and the environment clients need written to "
        "--env-file (or printed) once it answers.",
    ),
    vault: list[str] = typer.Option(
        [], "--vault", help="With --ephemeral: a vault to create (open); repeat for more."
    ),
    env_file: Path | None = typer.Option(
        None,
        "--env-file",
        help="With --ephemeral: write the environment here once the server answers (removed at "
        "exit), instead of printing it.",
    ),
    env_format: str = typer.Option(
        "shell", "--env-format", help="With --ephemeral: shell (export lines), dotenv or json."
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=1,
        max=65535,
        help="Serve Prometheus metrics on this port (plain HTTP, /metrics), apart from the API: "
        "requests by operation, status and vault, latencies, tokens, store commits, scheduler, "
        "jobs, replication lag.",
    ),
    metrics_address: str = typer.Option(
        "127.0.0.1", "--metrics-address", help="The address the metrics listener binds."
    ),
    seed: Path | None = typer.Option(
        None,
        "--seed",
        help="A seed file (YAML or JSON: vaults, principals, access policies, secrets, keys, "
        "certificates) applied before serving; what exists already is kept.",
    ),
) -> None:
    """Start the HTTPS server (127.0.0.1 and ::1)."""
    from strongroom import bootstrap

    if log_format not in logs.FORMATS:
        fail("BadParameter", f"--log-format is one of {', '.join(logs.FORMATS)}; got {log_format}.")
    logs.configure(log_level, log_format)
    if ephemeral:
        _serve_ephemeral(
            data_dir, port, vault_suffix or DEFAULT_VAULT_SUFFIX, vault, env_file, env_format,
            workers, log_level, seed,
        )  # fmt: skip
        return
    if vault or env_file is not None:
        fail("BadParameter", "--vault and --env-file go with --ephemeral.")
    host, public_port = DEFAULT_HOST, port or DEFAULT_PORT
    if public_url is not None:
        try:
            host, public_port = parse_public_url(public_url)
        except ValueError as exc:
            fail("BadParameter", f"--public-url: {exc}")
    settings = replace(
        settings_for(data_dir, public_port, vault_suffix or f"vault.{host}"),
        host=host,
        listen_port=port or DEFAULT_PORT,
        bind=tuple(bind),
        plain_http=plain_http,
        forwarded_allow=tuple(forwarded_allow),
        test_clock=test_clock,
        database_url=database_url or remembered_database_url(data_dir),
        azurite_accounts_file=azurite_accounts_file,
        azurite_blob_endpoint=azurite_blob_endpoint,
        backup_storage=tuple(backup_storage),
        job_stale_seconds=job_stale_seconds,
    )
    if (tls_cert is None) != (tls_key is None):
        fail("BadParameter", "Pass --tls-cert and --tls-key together.")
    if test_clock and workers is not None and workers > 1:
        fail("BadParameter", "--test-clock moves one process's clock: use it with --workers 1.")
    if workers is None:
        workers = 1 if test_clock else default_workers()
    if test_clock:
        typer.echo("WARNING: --test-clock lets any principal move this server's time.", err=True)
    if seed is not None:
        _seed_before_serving(settings, seed)
    if settings.database_url:
        remember_database_url(settings)
    metrics = None if metrics_port is None else (metrics_address, metrics_port)
    options = bootstrap.ServeOptions(settings, workers, tls_cert, tls_key, log_level, metrics)

    def guard(open_it: Callable[[], Installation]) -> Installation:
        try:
            return open_it()
        except Exception as exc:
            fail("InstallationError", f"Cannot open the installation in {settings.data_dir}: {exc}")

    try:
        code = bootstrap.serve(options, lambda text: typer.echo(text, err=True), guard)
    except bootstrap.ListenFailed as exc:
        _listen_failed(exc)
    raise typer.Exit(code)


def _serve_ephemeral(
    data_dir: Path | None,
    port: int | None,
    vault_suffix: str,
    vaults: list[str],
    env_file: Path | None,
    env_format: str,
    workers: int | None,
    log_level: str,
    seed: Path | None,
) -> None:
    from strongroom import ephemeral
    from strongroom.server import ListenFailed

    if data_dir is not None:
        fail("BadParameter", "--ephemeral makes its own temporary data directory; drop --data-dir.")
    if workers not in (None, 1):
        fail("BadParameter", "--ephemeral runs one server process; drop --workers.")
    if env_format not in ephemeral.ENV_FORMATS:
        fail("BadParameter", f"--env-format must be one of {', '.join(ephemeral.ENV_FORMATS)}.")
    options = ephemeral.EphemeralOptions(
        settings=settings_for(None, port or DEFAULT_PORT, vault_suffix),  # its own dir, later
        vaults=tuple(vaults),
        env_file=env_file.resolve() if env_file is not None else None,
        env_format=env_format,
        seed=seed,
        port=port,
        log_level=log_level,
    )
    with errors():
        try:
            code = ephemeral.serve_ephemeral(options, lambda text: typer.echo(text, err=True))
        except ListenFailed as exc:
            _listen_failed(exc)
    raise typer.Exit(code)


def _seed_before_serving(settings: Settings, path: Path) -> None:
    """Applies a seed file to the installation ``serve`` is about to serve."""
    from strongroom.ephemeral import apply_seed_now
    from strongroom.services.seed import load_seed

    with errors():
        seed = load_seed(path)
        inst = open_installation(settings)
        try:
            report = apply_seed_now(inst, seed)
        finally:
            inst.close()
    typer.echo(
        f"Seed {path}: {len(report.created)} made, {len(report.kept)} already there.", err=True
    )


def serve_only() -> None:
    """``strongroom serve ...`` without the other commands (``cli.entry``)."""
    one = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    one.command(context_settings=CONTEXT)(serve)
    one(prog_name="strongroom serve")
