"""Settings, built once at the edge (CLI) and passed in. Nothing else reads the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

DEFAULT_PORT = 8443
DEFAULT_HOST = "localhost"
DEFAULT_VAULT_SUFFIX = "vault.localhost"
# A file of this name in the data directory marks a throwaway installation (the ephemeral
# test server's, which creates it): only there may vaults be exported in plaintext.
EPHEMERAL_MARKER = "EPHEMERAL"


MAX_WORKERS = 64


def default_workers() -> int:
    """``serve``'s processes unless told: one per CPU this process may run on (its affinity,
    which a container's CPU set narrows), at most ``MAX_WORKERS``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cpus))


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("strongroom", appauthor=False))


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    port: int = DEFAULT_PORT
    # Host of identity and administration, and DNS suffix under which vaults live.
    host: str = DEFAULT_HOST
    vault_suffix: str = DEFAULT_VAULT_SUFFIX
    bind: tuple[str, ...] = ("127.0.0.1", "::1")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    token_lifetime: int = 3600
    # Seconds between passes of the scheduler (rotation by policy, purge after retention).
    scheduler_interval: float = 60.0
    # Test mode only: a clock that POST /admin/clock/advance moves forward.
    test_clock: bool = False
    # Managed storage accounts served by Azurite: the file holding its AZURITE_ACCOUNTS text,
    # and (optional) its blob endpoint, to confirm a regenerated key is accepted.
    # PostgreSQL (postgresql://…) instead of the embedded SQLite file in data_dir.
    database_url: str | None = None
    azurite_accounts_file: Path | None = None
    azurite_blob_endpoint: str | None = None
    # Blob storage endpoints (besides Azure's and Azurite's) whole-vault backups may use.
    backup_storage: tuple[str, ...] = ()
    # A backup or restore job whose server has shown no sign of it for this long (it died)
    # reads as Failed.
    job_stale_seconds: float = 30.0
    # Seconds between a replica's pulls of its source's changes once caught up.
    replication_interval: float = 1.0
    # The port to listen on, when clients dial another (``port``, of the public URL: a load
    # balancer's); None: ``port``.
    listen_port: int | None = None
    # Listen without TLS: only behind a load balancer that terminates it.
    plain_http: bool = False
    # Peers (load balancers) whose X-Forwarded-For names the client; nobody else's is believed.
    forwarded_allow: tuple[str, ...] = ()

    @property
    def listen(self) -> int:
        return self.port if self.listen_port is None else self.listen_port

    def _netloc(self, host: str) -> str:
        return host if self.port == 443 else f"{host}:{self.port}"

    @property
    def authority(self) -> str:
        """Base URL of the token issuer, e.g. ``https://localhost:8443``."""
        return f"https://{self._netloc(self.host)}"

    @property
    def vault_resource(self) -> str:
        """The challenge ``resource``: a dot-suffix of every vault's host:port."""
        return f"https://{self._netloc(self.vault_suffix)}"

    def vault_url(self, name: str) -> str:
        return f"https://{self._netloc(f'{name}.{self.vault_suffix}')}"

    @property
    def database(self) -> Path:
        return self.data_dir / "strongroom.db"

    @property
    def master_key_file(self) -> Path:
        return self.data_dir / "master.key"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def ephemeral_marker(self) -> Path:
        return self.data_dir / EPHEMERAL_MARKER


def parse_public_url(url: str) -> tuple[str, int]:
    """``https://host[:port]`` (what clients dial) as (host, port); ``ValueError`` says why
    not."""
    parts = urlsplit(url.strip())
    if parts.scheme != "https":
        raise ValueError(f"'{url}' must start with https:// (the Azure SDKs dial only HTTPS).")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError(f"'{url}' must be https://host or https://host:port, nothing more.")
    try:
        port = parts.port or 443
    except ValueError as exc:
        raise ValueError(f"'{url}' has no valid port.") from exc
    return parts.hostname.lower(), port


def is_ephemeral(settings: Settings) -> bool:
    """Whether the installation is a throwaway one, marked by ``EPHEMERAL_MARKER`` in its data
    directory. A plain file only: a directory or a dangling link of that name marks nothing."""
    return settings.ephemeral_marker.is_file()
