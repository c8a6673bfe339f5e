"""Putting a server together: the installation, its TLS files, the app, and the process or
processes serving it. ``strongroom serve`` parses its options and calls ``serve``; nothing here
reads the command line or the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from strongroom import server, telemetry
from strongroom.api.app import create_app
from strongroom.clock import ManualClock
from strongroom.config import Settings
from strongroom.crypto.tls import ensure_local_tls
from strongroom.services.installation import Installation, open_installation
from strongroom.store.coordination import CommitCounters

ListenFailed = server.ListenFailed


@dataclass(frozen=True)
class ServeOptions:
    settings: Settings
    workers: int = 1
    tls_cert: Path | None = None  # both or neither
    tls_key: Path | None = None
    log_level: str = "warning"
    # Prometheus metrics on a plain-HTTP listener of their own: (address, port), or None.
    metrics: tuple[str, int] | None = None


def serve(
    options: ServeOptions,
    say: Callable[[str], None],
    guard: Callable[[Callable[[], Installation]], Installation] = lambda open_it: open_it(),
) -> int:
    """Serves until SIGINT or SIGTERM; the exit code. ``say`` gets what an operator should read
    at start-up; ``guard`` runs each opening of the installation (in each worker too) and may
    turn its failures into the caller's. Raises ``ListenFailed`` when the port cannot be
    bound."""
    settings = options.settings
    clock = ManualClock() if settings.test_clock else None

    def open_one(counters: CommitCounters | None = None) -> Installation:
        return guard(lambda: open_installation(settings, clock, counters))

    inst = open_one()
    if options.metrics is not None:
        telemetry.prepare(settings.data_dir / "metrics")
        address, port = options.metrics
        try:
            telemetry.serve(address, port)
        except OSError as exc:
            inst.close()
            raise ListenFailed(f"Cannot listen for metrics on {address}:{port}: {exc}.") from exc
        say(f"Metrics (Prometheus) on http://{address}:{port}/metrics")
    if options.tls_cert is not None and options.tls_key is not None:
        cert, key = options.tls_cert, options.tls_key
        ca_note = f"Using your certificate {cert}."
    else:
        ca, cert, key = ensure_local_tls(
            settings.tls_dir, [settings.host, f"*.{settings.vault_suffix}"]
        )
        ca_note = f"CA certificate: {ca}\n  export REQUESTS_CA_BUNDLE={ca} SSL_CERT_FILE={ca}"
    certfile, keyfile = (None, None) if settings.plain_http else (cert, key)
    if settings.plain_http:
        ca_note = "Plain HTTP: a load balancer in front terminates TLS."
    workers = options.workers
    processes = "" if workers == 1 else f", {workers} worker processes"
    scheme = "http" if settings.plain_http else "https"
    where = ", ".join(settings.bind)
    say(
        f"Strongroom serving {settings.authority}, listening on {scheme} port {settings.listen} "
        f"({where}{processes})\n"
        f"  tenant {inst.tenant_id}\n  vaults at {settings.vault_url('<name>')}\n  {ca_note}"
    )
    if workers == 1:
        if options.metrics is not None:
            telemetry.start()
        try:
            server.run(
                create_app(inst), addresses=settings.bind, port=settings.listen, certfile=certfile,
                keyfile=keyfile, log_level=options.log_level,
            )  # fmt: skip
        finally:
            inst.close()
        return 0
    # The first start's files exist now; each worker opens its own installation.
    inst.close()
    counters = None if settings.database_url else CommitCounters(workers)

    def worker(index: int, addresses: tuple[str, ...]) -> None:
        if counters is not None:
            counters.claim(index)
        if options.metrics is not None:
            telemetry.start()
        mine = open_one(counters)
        try:
            server.run(
                create_app(mine), addresses=addresses, port=settings.listen, certfile=certfile,
                keyfile=keyfile, log_level=options.log_level, check_port=False,
            )  # fmt: skip
        finally:
            mine.close()

    return server.run_workers(workers, settings.bind, settings.listen, worker)
