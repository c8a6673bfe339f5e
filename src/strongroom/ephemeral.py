"""``strongroom serve --ephemeral``: a throwaway server for tests and CI.

Everything lives in a new temporary directory, removed when the server exits (it is marked
ephemeral, which is what lets ``vault export --plaintext-for-tests`` run on it). At start it
makes a principal, the vaults named on the command line (open to that principal) and what a
seed file describes, then listens on the given port or a free one. Once every listener is up it
writes the environment a client needs (``--env-file``, written whole or not at all, so a script
can wait for it to appear; else printed), in shell, dotenv or JSON form:

- ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET``, ``AZURE_TENANT_ID`` (``adfs``) and
  ``AZURE_AUTHORITY_HOST``: what azure-identity's ``EnvironmentCredential`` (and so
  ``DefaultAzureCredential``) reads. ADFS mode, because azure-identity gives no way to turn
  instance discovery off from the environment and MSAL does none for an ADFS authority;
- ``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``, ``NODE_EXTRA_CA_CERTS``: the server's CA, for
  Python (requests, aiohttp) and Node.js;
- ``AZURE_KEYVAULT_URL`` (the first vault named on the command line, else the seed's first;
  the name the SDK samples read),
  ``STRONGROOM_VAULT_URLS`` (every vault, space-separated), ``STRONGROOM_TENANT_ID`` (the real
  tenant, for code that builds its own credential), ``STRONGROOM_AUTHORITY``,
  ``STRONGROOM_DATA_DIR``, ``STRONGROOM_CA``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from strongroom import server
from strongroom.api.app import create_app
from strongroom.config import EPHEMERAL_MARKER, Settings
from strongroom.crypto.tls import ensure_local_tls
from strongroom.services.identity import IdentityService
from strongroom.services.installation import Installation, open_installation
from strongroom.services.vaults import VaultService

if TYPE_CHECKING:
    from strongroom.services.seed import Seed, SeedReport

ENV_FORMATS = ("shell", "dotenv", "json")
PRINCIPAL = "ephemeral"


@dataclass(frozen=True)
class EphemeralOptions:
    settings: Settings  # data_dir and port are chosen here
    vaults: tuple[str, ...] = ()
    seed: Path | None = None  # a seed file (services.seed) applied after the vaults
    env_file: Path | None = None
    env_format: str = "shell"
    port: int | None = None  # None: a free port
    log_level: str = "warning"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render(env: dict[str, str], form: str) -> str:
    if form == "json":
        return json.dumps(env, indent=2) + "\n"
    prefix = "export " if form == "shell" else ""
    quote = shlex.quote if form == "shell" else (lambda v: v)
    return "".join(f"{prefix}{key}={quote(value)}\n" for key, value in env.items())


def _write_whole(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.part")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(temporary, path)


def apply_seed_now(inst: Installation, seed: Seed) -> SeedReport:
    """Applies a loaded seed to an open installation, outside any event loop."""
    import asyncio

    from strongroom.services.container import Services
    from strongroom.services.seed import apply_seed

    services = Services(inst)
    try:
        return asyncio.run(apply_seed(services, seed))
    finally:
        asyncio.run(services.close())


def serve_ephemeral(options: EphemeralOptions, say: Callable[[str], None]) -> int:
    """Serves until SIGINT or SIGTERM, then removes everything; the exit code. A bad seed file
    raises ``SeedError`` before anything is made."""
    started = time.perf_counter()
    seed = None
    if options.seed is not None:
        from strongroom.services.seed import load_seed

        seed = load_seed(options.seed)
    data_dir = Path(tempfile.mkdtemp(prefix="strongroom-ephemeral-"))
    try:
        (data_dir / EPHEMERAL_MARKER).write_text("made by strongroom serve --ephemeral\n")
        settings = replace(options.settings, data_dir=data_dir, port=options.port or free_port())
        inst = open_installation(settings)
        try:
            vaults = VaultService(inst)
            for name in options.vaults:
                vaults.create(name, open_access=True)
            created = IdentityService(inst).create_principal(PRINCIPAL)
            if seed is not None:
                apply_seed_now(inst, seed)
            ca, cert, key = ensure_local_tls(
                settings.tls_dir, [settings.host, f"*.{settings.vault_suffix}"]
            )
            assert created.client_secret is not None
            env = {
                "AZURE_CLIENT_ID": created.principal.client_id,
                "AZURE_CLIENT_SECRET": created.client_secret,
                "AZURE_TENANT_ID": "adfs",
                "AZURE_AUTHORITY_HOST": settings.authority,
                "REQUESTS_CA_BUNDLE": str(ca),
                "SSL_CERT_FILE": str(ca),
                "NODE_EXTRA_CA_CERTS": str(ca),
                "STRONGROOM_TENANT_ID": inst.tenant_id,
                "STRONGROOM_AUTHORITY": settings.authority,
                "STRONGROOM_DATA_DIR": str(data_dir),
                "STRONGROOM_CA": str(ca),
            }
            # The command line's vaults first, then the seed's.
            names = [*options.vaults]
            names += [v.name for v in vaults.list() if v.name not in names]
            env["STRONGROOM_VAULT_URLS"] = " ".join(settings.vault_url(n) for n in names)
            if names:
                env["AZURE_KEYVAULT_URL"] = settings.vault_url(names[0])
            text = render(env, options.env_format)

            def ready() -> None:
                seconds = time.perf_counter() - started
                if options.env_file is not None:
                    _write_whole(options.env_file, text)
                    say(
                        f"Strongroom (ephemeral) ready on {settings.authority} in {seconds:.2f} "
                        f"s; environment in {options.env_file}"
                    )
                else:
                    print(text, end="", flush=True)
                    say(f"Strongroom (ephemeral) ready on {settings.authority} in {seconds:.2f} s")

            server.run(
                create_app(inst), addresses=settings.bind, port=settings.port, certfile=cert,
                keyfile=key, log_level=options.log_level, ready=ready,
            )  # fmt: skip
        finally:
            inst.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if options.env_file is not None:
            with contextlib.suppress(FileNotFoundError):
                options.env_file.unlink()
    return 0
